#pragma once
// Reassembly of $changeStreamSplitLargeEvent fragments. A server (7.0, 6.0.9+) cuts a change
// event over 16 MiB into fragments, each with its own resume token and a
// splitEvent {fragment, of} field, and the top-level fields of the event spread over them.
// event_assembler turns them back into one event before the engine sees it: the whole event
// carries the fields of every fragment and the last fragment's _id, so a watermark taken
// from it resumes after the whole event.
//
// While a sequence is incomplete (its fragments span getMore replies) the stream must not
// move its position past the event's start: resuming from a fragment's token would deliver
// only the rest of the event. safe_token() is the position from before the first fragment;
// the source reports it as the batch's post_batch_token until the sequence completes, and
// after any resume the server sends the event again from its first fragment (reset()).
//
// Cost: the fragments of one event are copied and held until the last one arrives (at most
// the event's size, 16 MiB per fragment), then the whole event once more.
//
// Sans-io, no clock. Thread safety: none; one per change stream.

#include <penne/error.hpp>
#include <penne/event.hpp>
#include <penne/mongo/bson.hpp>

#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <vector>

namespace penne::mongo {

struct split_info {
    std::int32_t fragment = 0;  // 1-based
    std::int32_t of = 0;
};

// The splitEvent field of an event; nullopt for a whole event (or a malformed splitEvent).
std::optional<split_info> find_split_info(byte_view event) noexcept;

// True when one of the user's stages is $changeStreamSplitLargeEvent.
bool has_split_stage(std::span<const document> stages) noexcept;

class event_assembler {
public:
    // Rewrites `events` (views into one reply, in order) in place: whole events pass through,
    // fragments are copied and held, and the last fragment of a sequence becomes one whole
    // event whose bytes this object owns until the next process() or reset(). `before` is the
    // stream's position before this reply (the safe token when a sequence starts with the
    // reply's first event). Fails with malformed_reply (diag says why) when fragments come out
    // of sequence, or a whole event interrupts a sequence.
    error_code process(std::vector<change_event>& events, const resume_token& before,
                       diagnostics& diag);

    // A sequence has begun and not completed.
    bool assembling() const noexcept { return of_ != 0; }
    // The position from before the incomplete sequence's first fragment.
    const resume_token& safe_token() const noexcept { return safe_; }
    // Bytes held for the incomplete sequence.
    std::size_t buffered_bytes() const noexcept;
    // Drops the incomplete sequence (the stream restarts from safe_token()).
    void reset() noexcept;

private:
    error_code complete(change_event& out, diagnostics& diag);

    std::vector<std::vector<std::uint8_t>> parts_;  // the fragments so far, in order
    std::int32_t of_ = 0;                           // 0: no sequence in progress
    resume_token safe_;
    std::deque<std::vector<std::uint8_t>> whole_;  // events completed by the last process()
};

}  // namespace penne::mongo
