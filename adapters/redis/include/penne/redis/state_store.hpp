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
//
// Fencing: every write carries a fence_token. The script refuses (errc::lease_lost) a
// write whose fence is lower than the stored fence and, when the token names an owner, a
// write whose owner:fence is not the current lease value. The default token (owner "",
// fence 0) is the unfenced single-instance mode; it keeps working until some instance
// takes a lease on the scope (the fence then rises above 0).
//
// Failures: Redis unreachable, loading, failing over or timing out gives retryable errors
// (the engine retries; nothing is lost, since an unacknowledged write is repeated and
// every write is idempotent); data this build cannot read is errc::state_corrupt (fatal).
//
// Thread safety: as the connection: any scope from any strand or thread, concurrently
// (requests are serialised on the connection). Cancellation: a cancelled coroutine does not
// start its operation (errc::cancelled); a script already sent either ran entirely or not.
// Lifetime: the connection must outlive the store and the store its operations.

#include <penne/redis/connection.hpp>
#include <penne/state_store.hpp>

#include <cstdint>
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

// KEYS and ARGV of the record and commit scripts (exposed for unit tests).
struct script_call {
    std::vector<std::string> keys;
    std::vector<std::string> args;
};
script_call record_call(const scope_keys& k, const fence_token& f, const manifest_entry& e);
script_call commit_call(const scope_keys& k, const fence_token& f, const commit_request& req);

struct state_store_options {
    std::string key_prefix = "penne";
};

class state_store final : public penne::state_store {
public:
    state_store(connection& conn, state_store_options opts = {});

    boost::asio::awaitable<error_code> load(const std::string& scope_id, scope_state& out,
                                            diagnostics& diag) override;
    // Unfenced (fence_token{}) writes.
    boost::asio::awaitable<error_code> record(const std::string& scope_id,
                                              const manifest_entry& entry,
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
    boost::asio::awaitable<error_code> commit(const std::string& scope_id,
                                              const commit_request& req, const fence_token& fence,
                                              diagnostics& diag);

    const std::string& key_prefix() const noexcept { return opts_.key_prefix; }

private:
    boost::asio::awaitable<error_code> write(const std::string& scope_id, const script& s,
                                             const script_call& call, const char* what,
                                             diagnostics& diag);

    connection& conn_;
    state_store_options opts_;
};

}  // namespace penne::redis
