#include <penne/checkpoint.hpp>

#include <algorithm>
#include <limits>

namespace penne {

watermark_tracker::batch_id watermark_tracker::open(std::uint64_t first_seq,
                                                    const resume_token& before) {
    batch_id id = next_id_++;
    pending_.emplace(id, pending_batch{first_seq, before});
    return id;
}

void watermark_tracker::sealed(batch_id id, std::uint64_t last_seq, std::string key) {
    auto it = pending_.find(id);
    if (it == pending_.end())
        return;
    it->second.last_seq = last_seq;
    it->second.key = std::move(key);
    it->second.sealed = true;
}

void watermark_tracker::durable(batch_id id) {
    auto it = pending_.find(id);
    if (it == pending_.end() || !it->second.sealed)
        return;
    newly_durable_.push_back(it->second.key);
    unretired_.push_back({std::move(it->second.key), it->second.last_seq});
    pending_.erase(it);
}

void watermark_tracker::replayed_durable(std::string key, std::uint64_t last_seq) {
    unretired_.push_back({std::move(key), last_seq});
}

std::optional<resume_token> watermark_tracker::watermark() const {
    if (!pending_.empty()) {
        const auto& before = pending_.begin()->second.before;
        if (before.empty())
            return std::nullopt;
        return before;
    }
    if (position_.empty())
        return std::nullopt;
    return position_;
}

bool watermark_tracker::take_commit(commit_request& out) {
    out.durable_keys.clear();
    out.retire_keys.clear();
    out.watermark.reset();

    out.durable_keys.swap(newly_durable_);
    auto wm = watermark();
    if (wm && wm != last_saved_) {
        out.watermark = wm;
        last_saved_ = wm;
    }
    // Every event before the oldest pending batch's first event is durable; entries that
    // end before it are covered by the watermark.
    const std::uint64_t horizon = pending_.empty() ? std::numeric_limits<std::uint64_t>::max()
                                                   : pending_.begin()->second.first_seq;
    auto keep = std::partition(unretired_.begin(), unretired_.end(),
                               [&](const durable_entry& e) { return e.last_seq >= horizon; });
    for (auto it = keep; it != unretired_.end(); ++it)
        out.retire_keys.push_back(std::move(it->key));
    unretired_.erase(keep, unretired_.end());
    return !out.durable_keys.empty() || out.watermark || !out.retire_keys.empty();
}

replay_cursor::decision replay_cursor::on_event(const change_event& ev) {
    decision d;
    if (entries_.empty())
        return d;
    const manifest_entry& front = entries_.front();
    if (!inside_) {
        inside_ = true;
        // The first event of this collection seen after the resume point always belongs to
        // its first recorded entry: earlier batches were retired (wholly before the
        // watermark) and entries are recorded in seal order. A durable entry may have
        // started before the watermark, so its first event is not always seen again.
        d.first = ev.token_equals(front.first);
        if (!d.first && !front.durable) {
            // A batch that is not durable never starts before the watermark; state written
            // by something else. Batch normally rather than overwrite its key with a part.
            entries_.pop_front();
            inside_ = false;
            d.what = step::pass;
            d.mismatch = true;
            return d;
        }
    }
    d.what = front.durable ? step::skip : step::force;
    if (ev.token_equals(front.last)) {
        d.last = true;
        inside_ = false;
    }
    if (d.first || d.last)
        d.entry = front;
    if (d.last)
        entries_.pop_front();
    return d;
}

}  // namespace penne
