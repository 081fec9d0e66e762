#pragma once
// penne::pipeline: penne as a library. Streams MongoDB change events into objects in S3, a
// local directory or the embedder's own destination, exactly once (DESIGN §1, §4), on the
// embedder's io_context. Built from a penne::config (the options of the TOML file) and
// optional penne::hooks (logging, metrics, custom destination / state store / encoder,
// event filter).
//
//     boost::asio::io_context ctx;
//     penne::config cfg;                                  // or penne::parse_config(…)
//     cfg.mongodb.uri = "mongodb://127.0.0.1:27017/?replicaSet=rs0";
//     cfg.watches.push_back({.level = "database", .database = "app"});
//     cfg.destination.path = "/var/lib/penne/out";
//     penne::pipeline pipe(ctx.get_executor(), cfg);
//     boost::asio::cancellation_signal stop;  // emit once: drain and stop; twice: stop now
//     penne::diagnostics diag;
//     pipe.async_run(diag, boost::asio::bind_cancellation_slot(
//                              stop.slot(), [&](penne::error_code ec) { /* done */ }));
//     ctx.run();
//
// Asynchronous operations follow Asio's rules: any completion token (use_awaitable,
// deferred, a callback, use_future, as_tuple(…)), completion signature void(error_code),
// the handler invoked through its associated executor. As everywhere in Asio, use_awaitable
// and use_future turn an error into a boost::system::system_error exception; wrap them in
// as_tuple(…) (`auto [ec] = co_await pipe.async_run(diag, as_tuple(use_awaitable))`) to get
// the error_code instead.
//
// Thread model: the pipeline owns no threads, installs no signal handlers, never exits the
// process and touches no global logger or registry. Its work runs on strands of the
// executor given at construction, so the io_context may be run by one thread or several.
// stats(), status(), ready() and the describe functions may be called from any thread at
// any time (before, during and after async_run).
//
// Cancellation (per operation, through the completion handler's cancellation slot): the
// first cancellation of async_run, of any type, starts a graceful stop — stop reading,
// seal open batches, upload them, checkpoint — within config.pipeline.shutdown_timeout;
// the operation then completes without error. A second cancellation stops at once:
// uploads in flight are abandoned (the write-ahead manifest makes the next start replay
// them, so nothing is lost or duplicated) and the operation completes promptly.
//
// Lifetimes: the pipeline must outlive its operations; destroy it after async_run completed
// and before its execution context. async_run may be called once per pipeline object; to
// resume after a stop, construct a new pipeline with the same configuration (it continues
// from the saved checkpoints).

#include <penne/config.hpp>
#include <penne/error.hpp>
#include <penne/hooks.hpp>
#include <penne/pipeline_engine.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/deferred.hpp>

#include <memory>
#include <string>

namespace penne {

class pipeline {
public:
    using executor_type = boost::asio::any_io_executor;

    // Builds every adapter the configuration names (the change-stream source, encoder,
    // compressor, destination, state store, leases) without doing any I/O. Never throws for
    // a bad configuration: check_config() reports it, and async_run completes with it.
    pipeline(executor_type ex, config cfg, hooks h = {});
    ~pipeline();
    pipeline(const pipeline&) = delete;
    pipeline& operator=(const pipeline&) = delete;

    executor_type get_executor() const noexcept;

    // No error when the configuration could be built; otherwise errc::invalid_config with
    // the key at fault in diag ("output.key_layout: …"; no secrets).
    error_code check_config(diagnostics& diag) const;

    // Verifies the destination is usable (directory writable, bucket reachable) without
    // reading any event. Optional: async_run does the same check first unless this one
    // succeeded. Cancellation: terminal; nothing to undo.
    template <boost::asio::completion_token_for<void(error_code)> Token = boost::asio::deferred_t>
    auto async_check(diagnostics& diag, Token&& token = {}) {
        return boost::asio::async_initiate<Token, void(error_code)>(
            [this](boost::asio::any_completion_handler<void(error_code)> h, diagnostics* d) {
                start_check(std::move(h), *d);
            },
            token, &diag);
    }

    // Runs every watch scope until cancelled (then drains and completes without error) or
    // until a scope fails with a fatal error (the others drain too, and the error comes
    // back with its explanation in diag). Completes at once with errc::invalid_config when
    // check_config() reports an error. diag must stay valid until completion.
    template <boost::asio::completion_token_for<void(error_code)> Token = boost::asio::deferred_t>
    auto async_run(diagnostics& diag, Token&& token = {}) {
        return boost::asio::async_initiate<Token, void(error_code)>(
            [this](boost::asio::any_completion_handler<void(error_code)> h, diagnostics* d) {
                start_run(std::move(h), d);
            },
            token, &diag);
    }

    // As above; the explanation of an error is kept in last_diagnostics().
    template <boost::asio::completion_token_for<void(error_code)> Token = boost::asio::deferred_t>
    auto async_run(Token&& token = {}) {
        return boost::asio::async_initiate<Token, void(error_code)>(
            [this](boost::asio::any_completion_handler<void(error_code)> h) {
                start_run(std::move(h), nullptr);
            },
            token);
    }

    // The explanation of async_run(token)'s error. Read it after completion only.
    const diagnostics& last_diagnostics() const noexcept;

    // Counters, readable from any thread (atomics).
    const pipeline_stats& stats() const noexcept;
    // Every scope's position, lag, lease and last error (see pipeline_engine.hpp).
    pipeline_snapshot status() const;
    // For a readiness probe: true while running and every scope streams (see
    // pipeline_engine::ready); otherwise false with the reason.
    bool ready(std::string& reason) const;

    // For logs: where objects and state go ("s3://bucket/…", "file:/dir", "callback:x"),
    // the key template, and this instance's lease owner (empty without leases). Empty
    // strings when check_config() reports an error. No secrets.
    std::string describe_destination() const;
    std::string describe_state() const;
    std::string describe_keys() const;
    std::string lease_owner() const;

private:
    void start_check(boost::asio::any_completion_handler<void(error_code)> h, diagnostics& diag);
    void start_run(boost::asio::any_completion_handler<void(error_code)> h, diagnostics* diag);

    struct impl;
    std::shared_ptr<impl> impl_;
};

}  // namespace penne
