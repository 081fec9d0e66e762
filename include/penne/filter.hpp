#pragma once
// Event filters and transforms: a callback that sees each decoded change event before it is
// batched and may keep it, drop it, or replace its document (for example to redact fields).
// Install one through penne::hooks::filter.
//
// Exactly-once: the filter must be deterministic — the same event must always get the same
// decision and the same replacement bytes. After a crash penne replays events from the
// last checkpoint and rewrites the objects that were in flight at the same keys; a filter
// that depends on the wall clock, a random number or mutable outside state would make the
// replayed object differ from the first one. Dropped events count as filtered: the
// checkpoint moves past them, and an object whose events were all dropped is never written.
//
// Cost per event: a call through std::function (a few ns) for keep and drop. A replacement
// is parsed back into a change event: from BSON about the cost of a copy; from Extended
// JSON a libbson JSON parse (a few µs for an 800-byte event). to_extended_json() costs
// about 1.5 µs per 800-byte event. Events are filtered on their scope's strand, so a slow
// filter slows that scope's stream (and only that scope).
//
// Thread safety: with a multi-threaded io_context the filter is called concurrently from
// different scopes; it must be safe to call concurrently and must not block or throw.
// Lifetimes: the event's views (change_event) are valid during the call only.

#include <penne/event.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace penne {

enum class filter_decision : std::uint8_t {
    keep,     // batch the event unchanged
    drop,     // leave it out of every object
    replace,  // batch the document put in event_replacement instead
};

// The new document for filter_decision::replace: a complete change event (the original
// with fields changed or removed). Its `_id` (the resume token) must stay exactly as it
// was, and it must keep `operationType`, `ns` and `clusterTime`; otherwise the scope stops
// with errc::unencodable_event. Set `bson` (used when not empty) or `json` (MongoDB
// Extended JSON; canonical mode round-trips every BSON type exactly, relaxed mode turns
// e.g. an int64 that fits in 32 bits into an int32).
struct event_replacement {
    std::vector<std::uint8_t> bson;
    std::string json;
};

using filter_function =
    std::function<filter_decision(const change_event& ev, event_replacement& out)>;

// The event's whole document as MongoDB Extended JSON (relaxed, or canonical when asked),
// byte-identical to libbson's rendering. Empty when the document is not valid BSON.
std::string to_extended_json(const change_event& ev, bool canonical = false);

}  // namespace penne
