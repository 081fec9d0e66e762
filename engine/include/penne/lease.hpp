#pragma once
// Leases for running one pipeline's scopes across several instances (DESIGN §5).
//
// - lease_store: where leases live (Redis in production, an in-memory table in unit tests)
//   and the state-store writes that a lease fences. An instance may only run a scope while
//   it holds the scope's lease; every acquisition raises the scope's fencing counter, and
//   every manifest record and checkpoint commit carries the fence it was acquired with, so
//   a write from an instance whose lease has expired is refused (errc::lease_lost) even if
//   that instance has not noticed yet (a paused process, a slow network).
// - lease_state: the sans-io state machine of one held lease: when to refresh, until when
//   the lease is certainly ours, and when to consider it lost. The pipeline drives it with
//   the outcomes of the store's operations and the clock; tests drive it by hand.
// - fair_share(): how many scopes one instance may hold while others are alive.
//
// Thread safety: lease_state has none (one per scope, used on the pipeline's strand).
// lease_store implementations must accept concurrent calls for different scopes.
// Cancellation: through the awaiting coroutine's cancellation slot; a cancelled operation
// either took effect on the store or did not (each is one atomic script).
// Lifetimes: the store must outlive the pipeline that uses it.

#include <penne/error.hpp>
#include <penne/state_store.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace penne {

// The result of a successful acquisition.
struct lease_grant {
    std::uint64_t fence = 0;  // the scope's fencing counter after this acquisition
    // The scope had a holder before whose lease was never released (it expired, or it was
    // lost): this instance takes over its work, replaying its manifest.
    bool takeover = false;
};

class lease_store {
public:
    virtual ~lease_store() = default;

    // This instance's owner id ("host-pid-random" by default); never empty.
    virtual const std::string& owner() const noexcept = 0;

    // Takes the scope's lease for `ttl` when no other owner holds it (one atomic step that
    // also raises the fencing counter). errc::lease_lost when another owner holds it.
    virtual boost::asio::awaitable<error_code> acquire(const std::string& scope_id,
                                                       std::chrono::milliseconds ttl,
                                                       lease_grant& out, diagnostics& diag) = 0;
    // Extends the lease to `ttl` from now if it is still ours with this fence;
    // errc::lease_lost when it is not (expired, or taken by another owner).
    virtual boost::asio::awaitable<error_code> refresh(const std::string& scope_id,
                                                       std::uint64_t fence,
                                                       std::chrono::milliseconds ttl,
                                                       diagnostics& diag) = 0;
    // Gives the lease up if it is still ours with this fence (a lease that is no longer
    // ours is left alone and is not an error).
    virtual boost::asio::awaitable<error_code> release(const std::string& scope_id,
                                                       std::uint64_t fence, diagnostics& diag) = 0;

    // Announces this instance as alive for `ttl` and counts the live instances, this one
    // included (`live` >= 1).
    virtual boost::asio::awaitable<error_code> heartbeat(std::chrono::milliseconds ttl,
                                                         std::size_t& live, diagnostics& diag) = 0;
    // Removes this instance from the live ones (graceful stop).
    virtual boost::asio::awaitable<error_code> withdraw(diagnostics& diag) = 0;

    // The state-store writes of a lease holder: as state_store::record() and commit(), but
    // refused with errc::lease_lost unless (owner(), fence) still holds the scope's lease.
    virtual boost::asio::awaitable<error_code> record(const std::string& scope_id,
                                                      std::uint64_t fence,
                                                      const manifest_entry& entry,
                                                      diagnostics& diag) = 0;
    virtual boost::asio::awaitable<error_code> commit(const std::string& scope_id,
                                                      std::uint64_t fence,
                                                      const commit_request& req,
                                                      diagnostics& diag) = 0;
    // As state_store::record_many(), fenced. The default calls record() for each in turn.
    virtual boost::asio::awaitable<error_code> record_many(const std::string& scope_id,
                                                           std::uint64_t fence,
                                                           std::span<const manifest_entry> entries,
                                                           diagnostics& diag);
};

// One scope's lease as this instance sees it. Times are when requests were SENT: a lease
// the store extended on receiving a request sent at t lasts at least until t + ttl, so
// valid_until() never overestimates, whatever the network delay.
class lease_state {
public:
    using clock = std::chrono::steady_clock;

    explicit lease_state(std::chrono::milliseconds ttl) noexcept : ttl_(ttl) {}

    bool held() const noexcept { return held_; }
    std::uint64_t fence() const noexcept { return fence_; }
    std::chrono::milliseconds ttl() const noexcept { return ttl_; }

    // An acquisition sent at `sent` succeeded.
    void acquired(clock::time_point sent, std::uint64_t fence) noexcept;
    // A refresh sent at `sent` succeeded. Ignored when not held (a late reply).
    void refreshed(clock::time_point sent) noexcept;
    // The store refused a refresh or a fenced write, or the lease expired: not ours now.
    void lost() noexcept;
    // Released on purpose.
    void released() noexcept;

    // When the next refresh is due: a third of the TTL after the last confirmed send.
    clock::time_point refresh_due() const noexcept;
    // Until when the lease is certainly ours (last confirmed send + ttl).
    clock::time_point valid_until() const noexcept;
    // Held, but no refresh confirmed in time: past valid_until(), another instance may
    // already hold the scope, so its work must stop now.
    bool expired(clock::time_point now) const noexcept;

private:
    std::chrono::milliseconds ttl_;
    clock::time_point confirmed_{};
    std::uint64_t fence_ = 0;
    bool held_ = false;
};

// The most scopes one of `live` instances should hold: ceil(scopes / live), and every
// scope when `live` is 0 (nothing known yet about the others).
std::size_t fair_share(std::size_t scopes, std::size_t live) noexcept;

}  // namespace penne
