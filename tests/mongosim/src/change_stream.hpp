#pragma once
// Change-stream cursors over the oplog: opening one from an aggregate's $changeStream stage
// (scope, resume options, fullDocument, fullDocumentBeforeChange, showExpandedEvents, user
// $match/$project/$addFields/$set/$unset/$replaceRoot/$replaceWith stages, a final
// $changeStreamSplitLargeEvent) and cutting batches of events
// for the aggregate's firstBatch and for getMore.
//
// Pre- and post-images come from the oplog record (written when the collection had
// changeStreamPreAndPostImages enabled) unless the collection was dropped since, as on mongod.
// An event over 16 MiB fails the cursor with BSONObjectTooLarge (10334), or, with
// $changeStreamSplitLargeEvent, is cut into fragments by top-level field (smallest fields
// first, so the first fragment carries the most context), each with its own resume token.
//
// A cursor remembers only its position in the oplog (a sequence number), so it costs a few
// bytes however far behind it is. Events are rendered when a batch is cut, which is when
// fullDocument: "updateLookup" reads the current document, as on a real server.
//
// Thread safety: none; single-threaded server state.

#include "oplog.hpp"
#include "query.hpp"
#include "stages.hpp"
#include "store.hpp"

#include <optional>

#include <vector>

namespace mongosim {

enum class scope_kind { collection, database, deployment };

// A user stage after $changeStream: a $match filter, a top-level $project, or a reshaping
// stage ($addFields/$set, $unset, $replaceRoot/$replaceWith; stages.hpp).
struct stream_stage {
    bson_ptr filter;                       // set for $match
    std::optional<reshape_stage> reshape;  // set for a reshaping stage
    projection proj;                       // used when neither is set
};

struct change_stream {
    scope_kind scope = scope_kind::collection;
    std::string db, coll;
    std::string full_document = "default";
    std::string full_document_before_change = "off";
    bool show_expanded = false;
    std::vector<stream_stage> stages;  // user stages after $changeStream, in order
    // $changeStreamSplitLargeEvent was the last stage: events over 16 MiB come as fragments.
    bool split_large = false;
    std::uint64_t next_seq = 0;
    // Fragments of the event at next_seq already returned (a batch ended inside a split event,
    // or the stream resumed from a fragment's token).
    std::uint32_t fragments_done = 0;
    std::optional<timestamp> pending_invalidate;  // the event that invalidated the stream
    bool finished = false;                        // invalidate delivered; the cursor is dead
};

// Reads the aggregate's pipeline (its first stage is $changeStream) and positions the stream.
failure open_change_stream(const bson_t& pipeline, scope_kind scope, const std::string& db,
                           const std::string& coll, oplog& log, change_stream& out);

struct batch {
    std::vector<bson_ptr> events;
    std::size_t bytes = 0;
    bool caught_up = false;              // scanned to the end of the oplog
    std::optional<token_position> last;  // token of the last returned event, or scan point
};

// Appends up to max_count events (and about max_bytes) to out.
failure next_batch(change_stream& cs, const oplog& log, store& data, std::size_t max_count,
                   std::size_t max_bytes, batch& out);

}  // namespace mongosim
