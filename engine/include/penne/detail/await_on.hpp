#pragma once
// await_on(ex, op): runs the coroutine `op` on the executor `ex` (typically a strand that
// serialises access to a connection) and awaits its result from a coroutine running
// elsewhere, forwarding the caller's cancellation into `op`.
//
// Why not `co_await co_spawn(ex, op, use_awaitable)`: in Boost 1.81, when the awaiting
// coroutine runs on another executor, co_spawn forwards a cancellation by dispatching an
// emit through a raw pointer to a signal that lives inside the awaiting coroutine's
// cancellation slot. If `op` completes before that dispatched emit runs, the slot is
// cleared and the emit touches freed memory (found by the chaos run under ASan: a hard stop
// after a lease theft cancelled Redis requests that were completing at that moment).
//
// Here every emit into `op` and its completion both run on `ex`, and a flag set by the
// completion (on `ex`) turns later emits into no-ops; the signal lives in a shared state
// that outlives both. Thread safety: any executor, any number of threads.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <exception>
#include <memory>
#include <utility>

namespace penne::detail {

struct await_on_state {
    boost::asio::cancellation_signal signal;  // touched only on the target executor
    bool done = false;                        // likewise
};

// Runs `op` on `ex` and completes `handler` (signature void(std::exception_ptr, T)) through
// its associated executor (default: `ex`), forwarding the cancellations emitted on its
// associated cancellation slot into `op` — on `ex`, and never after `op` completed.
template <class T, class Handler>
void co_spawn_forwarding(boost::asio::any_io_executor ex, boost::asio::awaitable<T> op,
                         Handler handler) {
    namespace asio = boost::asio;
    auto st = std::make_shared<await_on_state>();
    auto slot = asio::get_associated_cancellation_slot(handler);
    if (slot.is_connected()) {
        slot.assign([st, ex](asio::cancellation_type type) {
            asio::post(ex, [st, type] {
                if (!st->done)
                    st->signal.emit(type);
            });
        });
    }
    auto hex = asio::get_associated_executor(handler, ex);
    // A plain completion (no associated executor): co_spawn runs it on `ex` and emits into
    // `op` directly, without the dispatch that 1.81 gets wrong.
    asio::co_spawn(ex, std::move(op),
                   asio::bind_cancellation_slot(
                       st->signal.slot(),
                       [st, hex, h = std::move(handler)](std::exception_ptr e, T result) mutable {
                           st->done = true;
                           asio::dispatch(hex,
                                          [h = std::move(h), e, r = std::move(result)]() mutable {
                                              std::move(h)(e, std::move(r));
                                          });
                       }));
}

template <class T>
boost::asio::awaitable<T> await_on(boost::asio::any_io_executor ex, boost::asio::awaitable<T> op) {
    namespace asio = boost::asio;
    auto init = [](auto handler, asio::any_io_executor ex, asio::awaitable<T> op) {
        co_spawn_forwarding(std::move(ex), std::move(op), std::move(handler));
    };
    return asio::async_initiate<const asio::use_awaitable_t<>&, void(std::exception_ptr, T)>(
        std::move(init), asio::use_awaitable, std::move(ex), std::move(op));
}

}  // namespace penne::detail
