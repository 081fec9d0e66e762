#pragma once
// An in-process destination: every sealed object (one batch of one collection, encoded and
// compressed as configured) is handed to a user callback instead of being written to S3 or
// a directory. Install it through penne::hooks::dest.
//
// Durability contract: the object counts as durable — its events are checkpointed and
// will not be delivered again after a restart — as soon as the callback completes without
// error. A retryable error (is_retryable(), e.g. make_error_code(penne::errc::io_error) or
// a connection error) is retried with backoff; any other error stops the scope and then
// the pipeline, with the diagnostics' text in the result. After a crash, batches that
// were in flight are delivered again with the same key and the same bytes, so a callback
// that stores by key is idempotent.
//
// Thread safety: the callback is called from the strands of different scopes, concurrently
// for different keys when the io_context runs on several threads, with up to
// config.pipeline.max_concurrent_uploads calls outstanding. Lifetimes: the object's key
// and body are views valid until the callback completes (an awaitable callback may keep
// them across its suspensions); copy what must outlive it. Cancellation: an awaitable
// callback is cancelled through its coroutine's cancellation slot when the pipeline stops
// immediately (second cancellation, shutdown timeout); it must then either finish or fail.

#include <penne/destination.hpp>

#include <boost/asio/awaitable.hpp>

#include <functional>
#include <string>

namespace penne {

class callback_destination final : public destination {
public:
    // A coroutine: co_return an error_code (empty: durable).
    using awaitable_callback =
        std::function<boost::asio::awaitable<error_code>(const sealed_object&, diagnostics&)>;
    // A plain function, run on the scope's strand: keep it short (it holds the strand).
    using plain_callback = std::function<error_code(const sealed_object&, diagnostics&)>;

    // `name` appears in logs and status ("callback:<name>").
    explicit callback_destination(awaitable_callback cb, std::string name = "callback");
    explicit callback_destination(plain_callback cb, std::string name = "callback");

    boost::asio::awaitable<error_code> put(const sealed_object& obj, diagnostics& diag) override;
    // Always usable.
    boost::asio::awaitable<error_code> check(diagnostics& diag) override;
    std::string describe() const override;

private:
    awaitable_callback async_;
    plain_callback plain_;
    std::string name_;
};

}  // namespace penne
