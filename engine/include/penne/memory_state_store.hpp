#pragma once
// A state_store that keeps every scope's state in process memory: for tests, and for
// embedders who re-read their streams from a known point anyway and need no durability.
// Nothing survives the process, so "durable" in the state_store contract means "visible
// to later calls on this object".
//
// Thread safety: every member may be called concurrently, for the same or different
// scopes, from any thread; one short mutex guards the map and is never held across a
// suspension point. Cancellation: every operation completes without suspending, so it
// either took effect entirely or (when the coroutine was already cancelled before it
// started) not at all, reported as errc::cancelled. Lifetime: the store must outlive the
// coroutines that call it.
//
// apply_record() and apply_commit() are the reference state transitions of the
// state_store contract; durable stores (file, Redis) use them so that every store agrees
// on what a record or commit means.

#include <penne/state_store.hpp>

#include <map>
#include <mutex>
#include <string>

namespace penne {

// Inserts `entry` in seq order, replacing an entry with the same key (wherever it was).
// Entries with equal seq keep their recording order.
void apply_record(scope_state& state, const manifest_entry& entry);

// Marks durable_keys durable, moves the watermark when the request carries one, then
// removes retire_keys. Keys that name no entry are ignored, so replaying a commit after
// an uncertain outcome (a timeout, a crash) is harmless.
void apply_commit(scope_state& state, const commit_request& req);

class memory_state_store final : public state_store {
public:
    memory_state_store() = default;
    memory_state_store(const memory_state_store&) = delete;
    memory_state_store& operator=(const memory_state_store&) = delete;

    boost::asio::awaitable<error_code> load(const std::string& scope_id, scope_state& out,
                                            diagnostics& diag) override;
    boost::asio::awaitable<error_code> record(const std::string& scope_id,
                                              const manifest_entry& entry,
                                              diagnostics& diag) override;
    boost::asio::awaitable<error_code> commit(const std::string& scope_id,
                                              const commit_request& req,
                                              diagnostics& diag) override;
    std::string describe() const override { return "memory"; }

    // A copy of a scope's current state without going through a coroutine (for tests
    // and /status); an unknown scope yields an empty state.
    scope_state snapshot(const std::string& scope_id) const;

private:
    mutable std::mutex mutex_;
    std::map<std::string, scope_state, std::less<>> scopes_;
};

}  // namespace penne
