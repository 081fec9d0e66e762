#pragma once
// One collection's open batch (DESIGN §3): events are encoded as they are appended, so a
// batch is one growing buffer, never a list of events. The batch seals on count, bytes or
// age; the caller owns the age timer (it starts with the first event of a batch, not on a
// fixed cadence) and asks should_seal() after each append for the other two limits.
//
// A batcher without an open batch holds no encoder and no buffer: an idle collection
// costs a few dozen bytes.
//
// Thread safety: none; used from its scope's strand.

#include <penne/encoder.hpp>
#include <penne/event.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace penne {

struct batch_limits {
    std::uint64_t max_events = 10'000;
    std::uint64_t max_bytes = 32ull << 20;  // encoded, before compression
    std::chrono::milliseconds max_age{10'000};
};

enum class seal_reason { count, bytes, age, shutdown, replay };
const char* to_string(seal_reason r) noexcept;

// What a sealed batch hands on to compression and upload.
struct sealed_batch {
    std::string key;
    std::string body;  // encoded (not yet compressed) object bytes
    resume_token first;
    resume_token last;
    cluster_time first_time;
    std::uint64_t count = 0;
    std::uint64_t batch_id = 0;  // watermark_tracker id
    std::uint64_t first_seq = 0;
    std::uint64_t last_seq = 0;
    std::uint64_t manifest_seq = 0;  // non-zero when rebuilding a recorded batch
    seal_reason reason = seal_reason::count;
};

class batcher {
public:
    bool is_open() const noexcept { return encoder_ != nullptr; }
    // A rebuilt (replayed) batch is sealed only at its recorded last event.
    bool is_forced() const noexcept { return manifest_seq_ != 0; }
    std::uint64_t batch_id() const noexcept { return batch_id_; }
    std::uint64_t count() const noexcept { return count_; }
    std::size_t buffered_bytes() const noexcept {
        return encoder_ ? encoder_->buffered_bytes() : 0;
    }
    // Memory the open batch holds (batch_encoder::held_bytes): what backpressure counts.
    std::size_t held_bytes() const noexcept { return encoder_ ? encoder_->held_bytes() : 0; }

    // Opens a batch whose first event is `first`.
    void open(std::unique_ptr<batch_encoder> enc, std::string key, const change_event& first,
              std::uint64_t batch_id, std::uint64_t first_seq, std::uint64_t manifest_seq = 0);
    // Encodes the event into the open batch.
    error_code append(const change_event& ev, std::uint64_t seq, diagnostics& diag);
    // Count and bytes limits (age is the caller's timer). Rebuilt batches never seal early.
    std::optional<seal_reason> should_seal(const batch_limits& limits) const noexcept;
    // Completes the batch; the batcher is closed afterwards.
    sealed_batch seal(seal_reason why);
    // Discards the open batch (its events will be read again after a restart).
    void drop() noexcept;

private:
    std::unique_ptr<batch_encoder> encoder_;
    std::string key_;
    resume_token first_;
    resume_token last_;
    cluster_time first_time_;
    std::uint64_t count_ = 0;
    std::uint64_t batch_id_ = 0;
    std::uint64_t first_seq_ = 0;
    std::uint64_t last_seq_ = 0;
    std::uint64_t manifest_seq_ = 0;
};

}  // namespace penne
