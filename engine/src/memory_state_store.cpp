#include <penne/memory_state_store.hpp>

#include <boost/asio/cancellation_state.hpp>
#include <boost/asio/this_coro.hpp>

#include <algorithm>
#include <unordered_set>

namespace penne {
namespace {

namespace asio = boost::asio;

// An operation whose coroutine was cancelled before it began must not take effect.
// Read the state with `auto cs = co_await asio::this_coro::cancellation_state;` in the
// operation itself: g++ 12 miscompiles `if (co_await ...)` followed by a `co_return` in
// the branch (the coroutine frame is resumed at the wrong address).
bool cancelled(const asio::cancellation_state& cs) noexcept {
    return cs.cancelled() != asio::cancellation_type::none;
}

}  // namespace

void apply_record(scope_state& state, const manifest_entry& entry) {
    auto& entries = state.entries;
    std::erase_if(entries, [&](const manifest_entry& e) { return e.key == entry.key; });
    auto pos =
        std::upper_bound(entries.begin(), entries.end(), entry.seq,
                         [](std::uint64_t seq, const manifest_entry& e) { return seq < e.seq; });
    entries.insert(pos, entry);
}

void apply_commit(scope_state& state, const commit_request& req) {
    if (!req.durable_keys.empty()) {
        std::unordered_set<std::string_view> durable(req.durable_keys.begin(),
                                                     req.durable_keys.end());
        for (auto& e : state.entries) {
            if (durable.contains(e.key))
                e.durable = true;
        }
    }
    if (req.watermark)
        state.watermark = *req.watermark;
    if (!req.retire_keys.empty()) {
        std::unordered_set<std::string_view> retire(req.retire_keys.begin(), req.retire_keys.end());
        std::erase_if(state.entries,
                      [&](const manifest_entry& e) { return retire.contains(e.key); });
    }
}

asio::awaitable<error_code> memory_state_store::load(const std::string& scope_id, scope_state& out,
                                                     diagnostics& diag) {
    auto cs = co_await asio::this_coro::cancellation_state;
    if (cancelled(cs)) {
        diag.message = "state load for scope '" + scope_id + "' cancelled before it started";
        co_return errc::cancelled;
    }
    out = snapshot(scope_id);
    co_return error_code{};
}

asio::awaitable<error_code> memory_state_store::record(const std::string& scope_id,
                                                       const manifest_entry& entry,
                                                       diagnostics& diag) {
    auto cs = co_await asio::this_coro::cancellation_state;
    if (cancelled(cs)) {
        diag.message = "manifest record for scope '" + scope_id + "' cancelled before it started";
        co_return errc::cancelled;
    }
    std::lock_guard lock(mutex_);
    apply_record(scopes_[scope_id], entry);
    co_return error_code{};
}

asio::awaitable<error_code> memory_state_store::commit(const std::string& scope_id,
                                                       const commit_request& req,
                                                       diagnostics& diag) {
    auto cs = co_await asio::this_coro::cancellation_state;
    if (cancelled(cs)) {
        diag.message = "state commit for scope '" + scope_id + "' cancelled before it started";
        co_return errc::cancelled;
    }
    std::lock_guard lock(mutex_);
    apply_commit(scopes_[scope_id], req);
    co_return error_code{};
}

scope_state memory_state_store::snapshot(const std::string& scope_id) const {
    std::lock_guard lock(mutex_);
    auto it = scopes_.find(scope_id);
    return it == scopes_.end() ? scope_state{} : it->second;
}

}  // namespace penne
