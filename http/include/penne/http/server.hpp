#pragma once
// The operations HTTP server (DESIGN §11): a small HTTP/1.1 server for Prometheus and
// orchestrators. Routes:
//   GET /metrics  200, the Prometheus text exposition (text/plain; version=0.0.4)
//   GET /health   200 "ok" while the process serves requests (liveness)
//   GET /ready    200 "ready" or 503 "not ready: <reason>" from the embedder's callback
//   GET /status   200, the JSON document the embedder's callback returns
// HEAD is answered like GET without a body; other methods on these paths get 405 with
// Allow, other paths 404. Keep-alive is honoured; request heads and bodies are size-bounded
// (431 / 413, then the connection closes); a request that does not arrive in time, or a
// response the peer does not read in time, closes the connection.
//
// The callbacks run on the server's executor (a strand of the executor given at
// construction), one request at a time; they must be safe to call while the pipeline runs
// on other threads (metrics_registry::render is) and should return quickly. An exception
// from a callback becomes a 500 without details. Callbacks must not put secrets in their
// output: /status is meant to be readable by anyone who can reach the port.
//
// Thread safety: listen() before run(); stop() and port() from any thread.
//
// Cancellation and stop: stop(), or cancelling the coroutine awaiting run(), stops
// accepting, closes idle keep-alive connections, lets responses being written finish
// (bounded by write_timeout), and then run() completes. run() may be called once.
//
// Lifetimes: the callbacks' captures must outlive run(). The server object may be
// destroyed once run() has completed (or was never started).

#include <penne/error.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace penne::http {

struct server_options {
    // Loopback by default: metrics and status are for the local Prometheus agent or a
    // sidecar; exposing them is an explicit choice ("0.0.0.0", "::").
    std::string address = "127.0.0.1";
    std::uint16_t port = 9464;  // 0: any free port (see server::port())
    std::size_t max_header_bytes = 8 * 1024;
    std::size_t max_body_bytes = 1024;  // GET requests carry no meaningful body
    // Time allowed to receive one request, including an idle keep-alive gap before it.
    std::chrono::milliseconds read_timeout{30'000};
    std::chrono::milliseconds write_timeout{10'000};
    std::size_t max_connections = 64;  // beyond: new connections are closed at once
};

struct readiness {
    bool ready = true;
    std::string reason;  // why not ready; shown in the 503 body
};

struct server_handlers {
    // Appends the exposition to the string. Empty: /metrics answers 404.
    std::function<void(std::string&)> metrics;
    // Empty: always ready.
    std::function<readiness()> ready;
    // A JSON document. Empty: "{}".
    std::function<std::string()> status;
};

class server {
public:
    using executor_type = boost::asio::any_io_executor;

    server(executor_type ex, server_options opts, server_handlers handlers);
    ~server();
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    // Binds and listens. Errors: penne::errc::invalid_config for an address that does not
    // parse, or the system error of bind/listen (address in use, permission denied), with
    // the address in the diagnostics.
    error_code listen(diagnostics& diag);
    // The bound port once listen() succeeded (the ephemeral one when options.port is 0).
    std::uint16_t port() const noexcept;

    // Serves until stop() or cancellation, then drains as described above. Completes
    // without error after a stop; with the error if accepting fails for good.
    boost::asio::awaitable<error_code> run();
    void stop();

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

}  // namespace penne::http
