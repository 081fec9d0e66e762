#pragma once
// Scope leases in Redis (DESIGN §5), for several penne instances sharing one pipeline's
// scopes: penne::lease_store over a redis::connection, with the fenced writes of the
// Redis state store.
//
// Keys (beside the state store's; <id> is escape_scope_id(scope id), see state_store.hpp):
//   <prefix>:lease:{<id>}     "<owner>:<fence>" with a PX expiry (the TTL, in milliseconds)
//                             while an instance holds the scope
//   <prefix>:fence:{<id>}     the scope's fencing counter, INCR'ed by every acquisition
//   <prefix>:released:{<id>}  the fence of the last lease given up gracefully (tells a
//                             takeover from an orderly hand-over)
//   <prefix>:instances        sorted set: owner id -> expiry (Redis server time, ms) of its
//                             heartbeat; members past their expiry are pruned and not counted
//
// Every operation is one Lua script (atomic on the server):
//   acquire  if no other owner holds the lease: INCR the fence, SET the lease PX ttl
//   refresh  PEXPIRE the lease if it still holds "<owner>:<fence>" (compare-and-pexpire)
//   release  DEL the lease if it still holds "<owner>:<fence>" (compare-and-delete)
// An owner re-acquiring a lease it still holds (a previous session of the same process)
// gets a new fence, which fences off that session's writes. Acquire and refresh first check
// the store identity (state_store.hpp): on a Redis that lost the state they write its
// tombstone and fail with redis_errc::store_lost (fatal), never a fresh lease at fence 1.
//
// Thread safety and cancellation: as the connection and state_store (any coroutine, any
// thread; a script either ran entirely or not). Lifetimes: the connection and the state
// store must outlive the lease store and its operations. Owner ids are not secrets.

#include <penne/lease.hpp>
#include <penne/redis/connection.hpp>
#include <penne/redis/state_store.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace penne::redis {

struct lease_options {
    std::string key_prefix = "penne";  // the state store's prefix
    std::string owner;                 // empty: default_owner_id()
};

// "<hostname>-<pid>-<8 random hex digits>": unique per process, readable in /status.
std::string default_owner_id();

// Whether `owner` can name a lease holder: non-empty, at most 200 bytes, printable ASCII
// without spaces or ':' (the lease value's separator). False with the reason in `why`.
bool valid_owner_id(std::string_view owner, std::string& why);

// The keys the lease store uses beside keys_for(prefix, scope_id).
std::string released_key(std::string_view prefix, std::string_view scope_id);
std::string instances_key(std::string_view prefix);

class lease_store final : public penne::lease_store {
public:
    lease_store(connection& conn, state_store& store, lease_options opts = {});

    const std::string& owner() const noexcept override { return owner_; }

    boost::asio::awaitable<error_code> acquire(const std::string& scope_id,
                                               std::chrono::milliseconds ttl, lease_grant& out,
                                               diagnostics& diag) override;
    boost::asio::awaitable<error_code> refresh(const std::string& scope_id, std::uint64_t fence,
                                               std::chrono::milliseconds ttl,
                                               diagnostics& diag) override;
    boost::asio::awaitable<error_code> release(const std::string& scope_id, std::uint64_t fence,
                                               diagnostics& diag) override;
    boost::asio::awaitable<error_code> heartbeat(std::chrono::milliseconds ttl, std::size_t& live,
                                                 diagnostics& diag) override;
    boost::asio::awaitable<error_code> withdraw(diagnostics& diag) override;
    boost::asio::awaitable<error_code> record(const std::string& scope_id, std::uint64_t fence,
                                              const manifest_entry& entry,
                                              diagnostics& diag) override;
    boost::asio::awaitable<error_code> record_many(const std::string& scope_id, std::uint64_t fence,
                                                   std::span<const manifest_entry> entries,
                                                   diagnostics& diag) override;
    boost::asio::awaitable<error_code> commit(const std::string& scope_id, std::uint64_t fence,
                                              const commit_request& req,
                                              diagnostics& diag) override;

private:
    connection& conn_;
    state_store& store_;
    std::string prefix_;
    std::string owner_;
};

}  // namespace penne::redis
