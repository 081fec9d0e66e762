#pragma once
// Checkpoint watermark and deterministic replay (DESIGN §4). Pure state machines: no I/O,
// no clock; the pipeline feeds them and writes what they decide to the state store.
//
// watermark_tracker. Every event routed in a scope gets a sequence number. A batch is
// pending from the moment it opens until its object is durable. The watermark is the
// stream position just before the oldest pending batch's first event (or the current
// position when nothing is pending): resuming after it replays every event that is not
// yet durable, and no event is skipped. Uploads finish out of order; the watermark only
// moves over contiguous durable events. A manifest entry is retired once the watermark has
// passed its last event.
//
// replay_cursor. After a restart, events from the watermark on are read again. For each
// collection, the recorded manifest entries say where the batches were cut: an entry that
// is durable is skipped (its object already holds those events), an entry that is not is
// rebuilt with exactly the same boundaries (so the upload overwrites the same key with the
// same bytes). Token equality, not ordering, identifies boundaries: tokens are opaque. A
// durable entry may straddle the watermark (in a database scope another collection's
// pending batch can hold the watermark back inside it); its tail is skipped.
//
// Thread safety: none; one instance per scope, used from the scope's strand.

#include <penne/event.hpp>
#include <penne/state_store.hpp>

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace penne {

class watermark_tracker {
public:
    using batch_id = std::uint64_t;

    // The stream position after the last fully routed reply (its postBatchResumeToken).
    void set_position(const resume_token& t) { position_ = t; }
    void set_position(byte_view t) { position_.assign(t); }
    const resume_token& position() const noexcept { return position_; }

    // A batch opened at the event with sequence `first_seq`; `before` is the stream position
    // just before that event.
    batch_id open(std::uint64_t first_seq, const resume_token& before);
    // The batch was sealed with its last event at `last_seq` under manifest key `key`.
    void sealed(batch_id id, std::uint64_t last_seq, std::string key);
    // Its object is durable.
    void durable(batch_id id);
    // An entry loaded from the state store as already durable, whose last event was just
    // seen again at `last_seq` during replay.
    void replayed_durable(std::string key, std::uint64_t last_seq);

    // The token to save: nullopt when no position is known yet.
    std::optional<resume_token> watermark() const;
    std::size_t pending() const noexcept { return pending_.size(); }

    // Fills `out` with what changed since the last call (durable keys, the watermark when it
    // moved, retirable keys). Returns false when there is nothing to write.
    bool take_commit(commit_request& out);

private:
    struct pending_batch {
        std::uint64_t first_seq;
        resume_token before;
        std::uint64_t last_seq = 0;
        std::string key;
        bool sealed = false;
    };
    struct durable_entry {
        std::string key;
        std::uint64_t last_seq;
    };

    resume_token position_;
    batch_id next_id_ = 1;
    std::map<batch_id, pending_batch> pending_;  // ascending id == ascending first_seq
    std::vector<std::string> newly_durable_;
    std::vector<durable_entry> unretired_;
    std::optional<resume_token> last_saved_;
};

class replay_cursor {
public:
    enum class step {
        pass,   // not part of any recorded batch: batch normally
        skip,   // inside a durable entry: already in the bucket
        force,  // inside a non-durable entry: append to the rebuilt batch
    };
    struct decision {
        step what = step::pass;
        bool first = false;     // the entry's first event (open the rebuilt batch)
        bool last = false;      // the entry's last event (seal it / end skipping)
        bool mismatch = false;  // a recorded batch could not be matched (was dropped)
        manifest_entry entry;   // set when first or last
    };

    void push(manifest_entry e) { entries_.push_back(std::move(e)); }
    bool active() const noexcept { return !entries_.empty(); }
    std::size_t remaining() const noexcept { return entries_.size(); }

    decision on_event(const change_event& ev);

private:
    std::deque<manifest_entry> entries_;
    bool inside_ = false;
};

}  // namespace penne
