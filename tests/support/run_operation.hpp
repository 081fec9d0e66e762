#pragma once
// Runs one awaitable<error_code> operation to completion on a private io_context, for unit
// tests of adapters whose operations are coroutines. With `cancelled`, the operation's
// cancellation slot is emitted after its coroutine was spawned but before the operation
// itself starts, so tests can check what an operation does when cancelled up front.

#include <penne/error.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <optional>
#include <stdexcept>

namespace penne::test {

inline error_code run_operation(boost::asio::awaitable<error_code> op, bool cancelled = false) {
    namespace asio = boost::asio;
    asio::io_context ctx;
    asio::cancellation_signal signal;
    std::optional<error_code> result;
    auto outer = [](asio::awaitable<error_code> op, bool yield) -> asio::awaitable<error_code> {
        // Like an engine coroutine that handles cancellation itself: the operation gets to
        // see the cancelled state instead of asio throwing at the next co_await.
        co_await asio::this_coro::throw_if_cancelled(false);
        if (yield) {
            // Lets the posted emit() run first.
            auto ex = co_await asio::this_coro::executor;
            co_await asio::post(ex, asio::use_awaitable);
        }
        error_code ec = co_await std::move(op);
        co_return ec;
    };
    asio::co_spawn(
        ctx, outer(std::move(op), cancelled),
        asio::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr e, error_code ec) {
            if (e)
                std::rethrow_exception(e);
            result = ec;
        }));
    if (cancelled)
        asio::post(ctx, [&] { signal.emit(asio::cancellation_type::terminal); });
    ctx.run();
    if (!result)
        throw std::runtime_error("operation did not complete");
    return *result;
}

// Starts `op(diag)` (a callable returning awaitable<error_code>) on `ctx` without running
// it; its result lands in `out` when it completes (empty until then). Emitting the signal
// of `slot` cancels it. For tests that overlap several operations on one io_context.
template <class Op>
void start_operation(boost::asio::io_context& ctx, std::optional<error_code>& out, Op op,
                     boost::asio::cancellation_slot slot = {}) {
    namespace asio = boost::asio;
    asio::co_spawn(
        ctx,
        [&out, op = std::move(op)]() -> asio::awaitable<void> {
            diagnostics diag;
            error_code ec = co_await op(diag);
            out = ec;
        },
        asio::bind_cancellation_slot(slot, asio::detached));
}

}  // namespace penne::test
