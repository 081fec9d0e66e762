#pragma once
// Where a scope's progress survives restarts (DESIGN §4): its checkpoint watermark and the
// write-ahead manifest of sealed batches whose upload is not yet covered by the watermark.
//
// Contract (every implementation: memory, file, Redis):
// - record() is durable before it completes: after a crash, load() returns the entry.
// - commit() applies atomically: either all of it is visible after a crash, or none.
// - load() returns entries in the order they were recorded (their `seq`).
// - Different scopes may be used concurrently (from different strands). For one scope,
//   calls come from one strand; commit() calls never overlap each other, but record()
//   calls may overlap each other and a commit() (each must be atomic on its own). An
//   entry's record() always completes before a commit() names its key.
// Errors: retryable errors (a store briefly unreachable) are retried by the engine; a
// fatal error stops the scope. Cancellation: through the coroutine's cancellation slot;
// an operation cancelled mid-way either took effect or did not (never half).

#include <penne/error.hpp>
#include <penne/event.hpp>

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace penne {

// A sealed batch, recorded before its upload starts.
struct manifest_entry {
    std::uint64_t seq = 0;  // recording order within the scope (assigned by the engine)
    std::string key;        // object key; unique within the scope, the entry's identity
    std::string db;
    std::string coll;
    resume_token first;  // _id of the batch's first event
    resume_token last;   // _id of its last event
    std::uint64_t count = 0;
    bool durable = false;  // the object is known to be in the destination

    friend bool operator==(const manifest_entry&, const manifest_entry&) = default;
};

struct scope_state {
    std::optional<resume_token> watermark;
    std::vector<manifest_entry> entries;  // ascending seq
};

struct commit_request {
    std::vector<std::string> durable_keys;  // entries whose upload completed
    std::optional<resume_token> watermark;  // new watermark, when it moved
    std::vector<std::string> retire_keys;   // entries now covered by the watermark
};

class state_store {
public:
    virtual ~state_store() = default;

    // Loads a scope's saved state; an unknown scope yields an empty state and no error.
    virtual boost::asio::awaitable<error_code> load(const std::string& scope_id, scope_state& out,
                                                    diagnostics& diag) = 0;
    // Write-ahead record of a sealed batch; an entry with the same key is replaced.
    virtual boost::asio::awaitable<error_code> record(const std::string& scope_id,
                                                      const manifest_entry& entry,
                                                      diagnostics& diag) = 0;
    // Records several sealed batches, in this order, as record() would one after the
    // other. On success all are durable; after an error a prefix of them may be (never an
    // entry without every entry before it), and the engine records them all again. The
    // default calls record() for each in turn; a store that can write them together (one
    // frame and one fsync, one round trip) overrides it.
    virtual boost::asio::awaitable<error_code> record_many(const std::string& scope_id,
                                                           std::span<const manifest_entry> entries,
                                                           diagnostics& diag);
    // Marks entries durable, moves the watermark and retires entries, atomically.
    virtual boost::asio::awaitable<error_code> commit(const std::string& scope_id,
                                                      const commit_request& req,
                                                      diagnostics& diag) = 0;
    // A human-readable name for logs and /status ("file:/var/lib/penne", "memory").
    virtual std::string describe() const = 0;
};

}  // namespace penne
