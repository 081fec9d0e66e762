#pragma once
// mongosim's load mode (--preload N): fills the oplog at startup with N generated change
// events shaped like an order-processing workload, so a change stream can be drained as fast
// as its consumer reads, without a writer in the loop. The mix is about 70 % inserts (an
// order document of about preload_options::doc_bytes BSON bytes in fullDocument), 25 %
// updates ($set-style updateDescription) and 5 % deletes, spread at random over
// databases x collections; updates and deletes only name documents inserted before them
// and not yet deleted. The content is a pure function of the options (ids, values and text
// come from the seed), only the cluster and wall times come from the clock.
//
// Preloaded events live in the oplog only: the store holds no documents for them, so
// fullDocument: "updateLookup" finds nothing for their updates (null, as after a delete).
// Resume from the start of the preloaded range with a high-water token older than the
// server's start (e.g. {_data: "8200000001" "00000000" "03"}) or startAtOperationTime.
//
// Thread safety: none; call before the server runs.

#include "oplog.hpp"

#include <mongosim/server.hpp>

#include <cstdint>
#include <cstdio>

namespace mongosim {

struct preload_summary {
    std::uint64_t inserts = 0, updates = 0, deletes = 0;
    std::uint64_t bson_bytes = 0;  // sum of the stored documents (fullDocument, keys, updates)
    double seconds = 0;
};

// Appends opts.events generated events to log.
preload_summary preload(oplog& log, const preload_options& opts);

}  // namespace mongosim
