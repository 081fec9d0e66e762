#pragma once
// A state_store in Redis (DESIGN §4): the same contract and the same transitions as
// memory_state_store (apply_record / apply_commit), made durable and shareable. Every
// write is ONE Lua script, so it applies atomically on the server: a record or a commit is
// either entirely visible or not at all, whatever happens to the client or the connection.
//
// Keys (prefix defaults to "penne"; <id> is the scope id escaped by escape_scope_id(), so
// any database or collection name is safe; the braces make every key of a scope share one
// Redis Cluster hash slot, so one script may touch them all):
//   <prefix>:scope:{<id>}:watermark  string: lower-case hex of the watermark's BSON resume
//                                    token; absent while the scope has no watermark
//   <prefix>:scope:{<id>}:manifest   hash: object key -> manifest entry, encoded as
//                                    "<durable 0|1>:<recording number>:<payload>" where
//                                    payload is encode_entry() ("1;" + netstrings)
//   <prefix>:scope:{<id>}:recorded   string: counter giving each record() its recording
//                                    number (entries load sorted by seq, then by it)
//   <prefix>:fence:{<id>}            string: the highest fencing token issued for the scope
//                                    (written by the lease, read by every write here)
//   <prefix>:lease:{<id>}            string "<owner>:<fence>" with a PX expiry while an
//                                    instance holds the scope's lease (written by the lease)
//   <prefix>:store                   string: the store identity (below); not in a scope's
//                                    hash slot: the store needs one Redis server, not a Cluster
//
// Store identity (detecting a Redis that lost its data). <prefix>:store holds one of
//   "<id>:<created>"            the state this Redis holds: <id> is 32 lower-case hex
//                               digits (128 random bits), <created> unix seconds
//   "<id>:<created>:ack:<old>"  the same, created by acknowledge_loss() in place of the
//                               tombstone of store <old>
//   "lost:<old>:<when>"         a tombstone: store <old> was found gone at <when>
// open() reads the identity (creating it on first use, when there is neither an identity
// nor a tombstone) and remembers its id. Every later script (load, record, commit, and the
// lease's acquire and refresh) first checks, in the same atomic step, that <prefix>:store
// still names that id. When it does not (redis-server restarted without persistence, a
// FLUSHALL), the script writes the tombstone and the operation fails with
// redis_errc::store_lost, which is fatal: resuming from "now" would silently skip every
// event since the loss. The tombstone makes every other instance and every later start
// refuse too (systemd restart loops included) until an operator restores Redis from its
// AOF/RDB or acknowledges the gap (acknowledge_loss(), `penne state ack-loss`). A store
// identity created after the loss by an instance that started meanwhile is replaced by the
// tombstone as well (unless it acknowledges this loss), so no instance carries on from
// "now" while another one noticed the gap. Not detectable: a loss while no penne runs,
// followed by a start; it looks like a first start (open() reports `created`).
//
// Fencing: every write carries a fence_token. The script refuses (errc::lease_lost) a
// write whose fence is lower than the stored fence and, when the token names an owner, a
// write whose owner:fence is not the current lease value. The default token (owner "",
// fence 0) is the unfenced single-instance mode; it keeps working until some instance
// takes a lease on the scope (the fence then rises above 0).
//
// Failures: Redis unreachable, loading, failing over or timing out gives retryable errors
// (the engine retries; nothing is lost, since an unacknowledged write is repeated and
// every write is idempotent); data this build cannot read is errc::state_corrupt (fatal);
// a Redis that lost the state is redis_errc::store_lost (fatal, see above).
//
// Thread safety: as the connection: any scope from any strand or thread, concurrently
// (requests are serialised on the connection). Cancellation: a cancelled coroutine does not
// start its operation (errc::cancelled); a script already sent either ran entirely or not.
// Lifetime: the connection must outlive the store and the store its operations.

#include <penne/log.hpp>
#include <penne/redis/connection.hpp>
#include <penne/state_store.hpp>

#include <cstdint>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace penne::redis {

// Which lease holder a write claims to be.
struct fence_token {
    std::string owner;        // "" = unfenced (single instance)
    std::uint64_t fence = 0;  // the fencing counter value from the lease acquisition
};

// The Redis keys of one scope.
struct scope_keys {
    std::string watermark;
    std::string manifest;
    std::string recorded;
    std::string fence;
    std::string lease;
};

// Bytes outside [A-Za-z0-9._-] become %XX (upper-case hex): injective, and free of ':',
// '{', '}' and spaces.
std::string escape_scope_id(std::string_view scope_id);
scope_keys keys_for(std::string_view prefix, std::string_view scope_id);

// The manifest payload (everything but durable, which the commit script flips in place).
std::string encode_entry(const manifest_entry& e);
// Decodes a manifest hash value "<durable>:<recorded>:<payload>"; false when malformed.
bool decode_stored_entry(std::string_view stored, manifest_entry& out, std::uint64_t& recorded);

// KEYS and ARGV of the record and commit scripts (exposed for unit tests). The store
// appends its identity check to every call: <prefix>:store as the last key, the id it
// opened as the last argument.
struct script_call {
    std::vector<std::string> keys;
    std::vector<std::string> args;
};
script_call record_call(const scope_keys& k, const fence_token& f, const manifest_entry& e);
// Several entries in one call, recorded in this order, atomically.
script_call record_call(const scope_keys& k, const fence_token& f,
                        std::span<const manifest_entry> entries);
script_call commit_call(const scope_keys& k, const fence_token& f, const commit_request& req);

// The store identity key, "<prefix>:store".
std::string store_key(std::string_view prefix);

// What <prefix>:store holds.
struct store_marker {
    enum class kind { absent, live, lost };
    kind state = kind::absent;
    std::string id;            // live: the store id; lost: the id of the store that was lost
    std::int64_t time = 0;     // live: created; lost: when the loss was found (unix seconds)
    std::string acknowledges;  // live: the lost store this one replaced (ack-loss), else ""

    // The stored form (absent: "").
    std::string value() const;
};
// Parses a <prefix>:store value ("" is absent); false when it has none of the forms above.
bool parse_store_marker(std::string_view value, store_marker& out);

// A new store id: 32 lower-case hex digits from 128 random bits.
std::string new_store_id();

// The operator's message for a lost store: what was lost, why restarting from now would be
// wrong, and the two ways out. `found` is what <prefix>:store holds now.
std::string store_lost_message(std::string_view prefix, std::string_view lost_id,
                               const store_marker& found);

struct open_result {
    store_marker identity;   // the live identity now remembered
    bool created = false;    // there was none: this is the store's first use (or a loss
                             // while no penne ran, which cannot be told apart)
    bool had_state = false;  // created, although scope keys exist (kept and used)
};

// Reads <prefix>:store (no side effect).
boost::asio::awaitable<error_code> read_store_marker(connection& conn, std::string_view prefix,
                                                     store_marker& out, diagnostics& diag);

// The operator's acknowledgement of a loss: replaces the tombstone in <prefix>:store by a
// new store identity that names the lost store (in one atomic compare-and-set), after
// which instances start again, every scope without saved state from "now". `before` is
// what was there; `after` the new identity. When there is no tombstone nothing changes
// (after == before).
struct ack_result {
    store_marker before;
    store_marker after;
};
boost::asio::awaitable<error_code> acknowledge_loss(connection& conn, std::string_view prefix,
                                                    ack_result& out, diagnostics& diag);

struct state_store_options {
    std::string key_prefix = "penne";
    // When set, the first open() says how it went: a created identity (a first start, or a
    // loss while no penne ran) is a warning, an existing one info.
    log_function log;
};

class state_store final : public penne::state_store {
public:
    state_store(connection& conn, state_store_options opts = {});

    // Reads the store identity, creating it on first use, and remembers its id for every
    // later operation (see above). store_lost when <prefix>:store holds a tombstone, or no
    // longer the id remembered by an earlier open(). Operations open the store themselves
    // on first use; a daemon calls it first, to refuse early and to log a first start.
    boost::asio::awaitable<error_code> open(open_result& out, diagnostics& diag);
    // The remembered store id, opening the store first when it is not open yet.
    boost::asio::awaitable<error_code> store_id(std::string& out, diagnostics& diag);

    boost::asio::awaitable<error_code> load(const std::string& scope_id, scope_state& out,
                                            diagnostics& diag) override;
    // Unfenced (fence_token{}) writes.
    boost::asio::awaitable<error_code> record(const std::string& scope_id,
                                              const manifest_entry& entry,
                                              diagnostics& diag) override;
    // Every entry in one script call: all recorded, atomically, or none.
    boost::asio::awaitable<error_code> record_many(const std::string& scope_id,
                                                   std::span<const manifest_entry> entries,
                                                   diagnostics& diag) override;
    boost::asio::awaitable<error_code> commit(const std::string& scope_id,
                                              const commit_request& req,
                                              diagnostics& diag) override;
    // "redis:redis://host:6379/0 prefix=penne" (no password).
    std::string describe() const override;

    // Fenced writes: refused with errc::lease_lost unless `fence` is current (see above).
    boost::asio::awaitable<error_code> record(const std::string& scope_id,
                                              const manifest_entry& entry, const fence_token& fence,
                                              diagnostics& diag);
    boost::asio::awaitable<error_code> record_many(const std::string& scope_id,
                                                   std::span<const manifest_entry> entries,
                                                   const fence_token& fence, diagnostics& diag);
    boost::asio::awaitable<error_code> commit(const std::string& scope_id,
                                              const commit_request& req, const fence_token& fence,
                                              diagnostics& diag);

    const std::string& key_prefix() const noexcept { return opts_.key_prefix; }

private:
    boost::asio::awaitable<error_code> write(const std::string& scope_id, const script& s,
                                             script_call call, const char* what, diagnostics& diag);

    connection& conn_;
    state_store_options opts_;
    mutable std::mutex mu_;  // guards id_ (operations run on any thread)
    std::string id_;         // "" until opened
};

// The reply of a script whose identity check failed, {'lost', <marker now>, <found>}, as
// store_lost with the operator's message in `diag`; false for any other reply.
bool store_lost_reply(std::string_view prefix, std::string_view want, const value& reply,
                      error_code& ec, diagnostics& diag);

// The identity check every script of the store and the lease starts with (Lua source
// defining penne_store_lost(key, want); see the header comment).
std::string_view identity_check_lua();

}  // namespace penne::redis
