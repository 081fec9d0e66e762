#include <penne/batcher.hpp>

namespace penne {

const char* to_string(seal_reason r) noexcept {
    switch (r) {
        case seal_reason::count:
            return "count";
        case seal_reason::bytes:
            return "bytes";
        case seal_reason::age:
            return "age";
        case seal_reason::shutdown:
            return "shutdown";
        case seal_reason::replay:
            return "replay";
    }
    return "unknown";
}

void batcher::open(std::unique_ptr<batch_encoder> enc, std::string key, const change_event& first,
                   std::uint64_t batch_id, std::uint64_t first_seq, std::uint64_t manifest_seq) {
    encoder_ = std::move(enc);
    key_ = std::move(key);
    first_.assign(first.token);
    first_time_ = first.time;
    count_ = 0;
    batch_id_ = batch_id;
    first_seq_ = first_seq;
    last_seq_ = first_seq;
    manifest_seq_ = manifest_seq;
}

error_code batcher::append(const change_event& ev, std::uint64_t seq, diagnostics& diag) {
    if (auto ec = encoder_->append(ev, diag))
        return ec;
    last_.assign(ev.token);  // reuses the vector's capacity: no allocation per event
    last_seq_ = seq;
    ++count_;
    return {};
}

std::optional<seal_reason> batcher::should_seal(const batch_limits& limits) const noexcept {
    if (!encoder_ || is_forced())
        return std::nullopt;
    if (count_ >= limits.max_events)
        return seal_reason::count;
    if (encoder_->buffered_bytes() >= limits.max_bytes)
        return seal_reason::bytes;
    return std::nullopt;
}

sealed_batch batcher::seal(seal_reason why) {
    sealed_batch b;
    encoder_->finish(b.body);
    encoder_.reset();
    b.key = std::move(key_);
    b.first = std::move(first_);
    b.last = last_;
    b.first_time = first_time_;
    b.count = count_;
    b.batch_id = batch_id_;
    b.first_seq = first_seq_;
    b.last_seq = last_seq_;
    b.manifest_seq = manifest_seq_;
    b.reason = is_forced() ? seal_reason::replay : why;
    key_.clear();
    first_ = {};
    count_ = 0;
    manifest_seq_ = 0;
    return b;
}

void batcher::drop() noexcept {
    encoder_.reset();
    key_.clear();
    count_ = 0;
    manifest_seq_ = 0;
}

}  // namespace penne
