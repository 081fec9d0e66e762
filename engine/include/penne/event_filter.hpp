#pragma once
// The engine's hook for filtering and rewriting change events before they are batched
// (DESIGN §3, §4). The public facade (include/penne/filter.hpp) adapts a user's callback to
// this interface; the engine itself never parses BSON.
//
// Exactly-once: a filter must be deterministic. After a crash the engine replays events
// from the saved watermark and cuts batches at the boundaries recorded in the manifest;
// if a replayed event got a different verdict or a different replacement than the first
// time, a re-uploaded object would differ from the one it overwrites. Dropped events count
// as filtered: the watermark moves past them like past events in durable objects.
//
// Thread safety: apply() is called from every scope's strand, so concurrently for
// different scopes when the io_context runs on several threads; it must not block.
// Lifetimes: `out` belongs to the calling scope and is reused for its next event; a
// replacement's views must point into out.storage (or into `in`'s buffer).

#include <penne/error.hpp>
#include <penne/event.hpp>

#include <cstdint>
#include <vector>

namespace penne {

enum class filter_verdict : std::uint8_t {
    keep,     // batch the event as it is
    drop,     // leave it out (counted in pipeline_stats::events_filtered)
    replace,  // batch out.event instead; its `_id` must equal the original's
    fail,     // the event cannot be handled: the scope stops with the diagnostics' text
};

struct filtered_event {
    change_event event;                 // views into `storage`
    std::vector<std::uint8_t> storage;  // the replacement document's bytes
};

class event_filter {
public:
    virtual ~event_filter() = default;
    virtual filter_verdict apply(const change_event& in, filtered_event& out,
                                 diagnostics& diag) const = 0;
};

}  // namespace penne
