#pragma once
// The source of change events for one watch scope (DESIGN §3): a MongoDB change stream on
// a collection, a database or the whole deployment. The engine drives it; adapters/mongo
// implements it.
//
// Thread safety: none; the pipeline calls a source from its scope's strand only, with at
// most one operation outstanding. Cancellation: any operation may be cancelled through
// the coroutine's cancellation slot; the source is then only good for close().

#include <penne/error.hpp>
#include <penne/event.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace penne {

struct watch_scope {
    enum class level { collection, database, deployment };
    level kind = level::collection;
    std::string db;    // empty for deployment
    std::string coll;  // empty unless kind == collection
    // Database/deployment scopes only: collections to keep or to leave out (at most one of
    // the two lists is set). Sources push them down to the server as a $match on ns.coll.
    std::vector<std::string> include_collections;
    std::vector<std::string> exclude_collections;

    // Stable identifier used in state-store keys, logs and metrics:
    // "db.coll", "db" (database) or "*" (deployment).
    std::string id() const;
    friend bool operator==(const watch_scope&, const watch_scope&) = default;
};

// One reply's worth of events. The source owns the bytes the views point into; they stay
// valid until the next async_next on the same batch object.
struct event_batch {
    std::vector<change_event> events;
    // The postBatchResumeToken of the reply (or the last event's _id when the server sent
    // none). After the batch is processed the stream's position is this token.
    resume_token post_batch_token;
    // Storage for the reply the views point into; owned by the source's implementation.
    std::vector<std::uint8_t> storage;

    void clear() {
        events.clear();
        post_batch_token.clear();
    }
};

// Where a stream starts.
struct start_position {
    std::optional<resume_token> resume_after;  // a saved watermark
    // No token: start at this operation time ([mongodb] start_at), or at the current time
    // ("now") when unset. Ignored when resume_after is set: a saved token always wins.
    std::optional<cluster_time> start_at;
};

class change_source {
public:
    virtual ~change_source() = default;

    // Opens the stream at `from` (aggregate with $changeStream).
    virtual boost::asio::awaitable<error_code> open(const start_position& from,
                                                    diagnostics& diag) = 0;
    // Waits for the next batch (getMore with awaitData). An empty batch with a fresh
    // post_batch_token is a normal, idle reply. Transient errors are resumed internally
    // per the change-stream spec; only errors that need the engine's attention come back.
    virtual boost::asio::awaitable<error_code> next(event_batch& out, diagnostics& diag) = 0;
    // Kills the cursor; never fails (best effort).
    virtual boost::asio::awaitable<void> close() = 0;
    // Resumes done inside next() since construction (metrics); 0 if the source never resumes.
    virtual std::uint64_t resume_count() const noexcept { return 0; }
};

// Creates the source of a scope. Implemented by adapters/mongo, given to the pipeline.
class source_factory {
public:
    virtual ~source_factory() = default;
    virtual std::unique_ptr<change_source> make(boost::asio::any_io_executor ex,
                                                const watch_scope& scope) = 0;
};

}  // namespace penne
