#pragma once
// offload(blocking, fn): runs `fn` through the `blocking` executor (a thread pool the
// embedder owns) and resumes the awaiting coroutine on its own executor (its strand) once
// `fn` returned, so that blocking system calls (write, fsync, rename, mkdir) never hold the
// thread that runs the caller's io_context. Without a `blocking` executor, `fn` runs inline
// on the calling thread (the library creates no threads of its own).
//
// Why not `co_await asio::post(pool, use_awaitable)`: that completes through the
// coroutine's associated executor, so the coroutine would resume where it was and the
// call after it would still block there. Here the posted function object has no
// associated executor (it runs on the pool), and only its completion is posted back to
// the handler's executor, with outstanding work counted there meanwhile so that an
// io_context whose only pending operation is this one does not return from run().
//
// Cancellation: none is forwarded. Once submitted, `fn` runs to completion and the
// coroutine resumes after it; callers check for cancellation before submitting, which is
// the "a cancelled call does not start, a started call completes" rule of the adapter.
// An exception thrown by `fn` (std::bad_alloc) is rethrown in the coroutine.
//
// Thread safety: `fn` runs on another thread while the coroutine is suspended; it may use
// the coroutine's locals by reference (they outlive it) but must not touch state that other
// coroutines on the caller's strand use meanwhile. Lifetime: the execution context behind
// `blocking` must outlive the call.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <exception>
#include <utility>

namespace penne::file::detail {

template <class Fn>
boost::asio::awaitable<void> offload(const boost::asio::any_io_executor& blocking, Fn fn) {
    namespace asio = boost::asio;
    if (!blocking) {
        fn();
        co_return;
    }
    auto init = [&blocking](auto handler, Fn f) {
        // Tracked: keeps the caller's io_context running until the completion is posted.
        auto home = asio::prefer(asio::get_associated_executor(handler),
                                 asio::execution::outstanding_work.tracked);
        asio::post(blocking,
                   [f = std::move(f), h = std::move(handler), home = std::move(home)]() mutable {
                       std::exception_ptr failure;
                       try {
                           f();
                       } catch (...) {
                           failure = std::current_exception();
                       }
                       asio::post(home, asio::append(std::move(h), failure));
                   });
    };
    // use_awaitable rethrows a non-null exception_ptr completion in the coroutine.
    co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(std::exception_ptr)>(
        std::move(init), asio::use_awaitable, std::move(fn));
}

}  // namespace penne::file::detail
