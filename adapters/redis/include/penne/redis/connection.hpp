#pragma once
// One logical connection to one Redis server (or any RESP2 server: Valkey, Dragonfly),
// over an Asio stream it owns: plain TCP for redis://, TLS with certificate and host name
// verification for rediss://. On (re)connect it authenticates (AUTH user password for an
// ACL user, AUTH password otherwise) and selects the URL's database in one pipelined
// round trip.
//
// Requests: execute() writes a pipeline of commands in one write and reads one reply per
// command. Requests from concurrent callers are serialised (one at a time on the wire) by
// an internal strand and an async lock, so one connection may be shared by coroutines on
// any executors and threads; replies are matched to requests by order.
//
// Failures: error replies are values in the reply vector (execute) or classified codes
// (call, eval; see error.hpp). A network error, a timeout or a protocol error closes the
// socket (a half-read pipeline cannot be resynchronised); the next request reconnects. A
// request retries within itself: connect failures, and broken connections when the
// request is idempotent, are retried after a capped exponential backoff (penne::backoff)
// up to options.retry.max_attempts attempts; then the (retryable) error is returned and
// the caller's own retry loop takes over.
//
// Timeouts are cancellation: every round trip runs against a timer; the timer's expiry
// cancels it and surfaces as penne::errc::timeout. The awaiting coroutine's own
// cancellation (terminal) cancels the request too; then the outcome of a write on the
// server is unknown, and the connection is closed.
//
// Secrets: the password never appears in diagnostics, describe() or error messages.
// Lifetime: the connection must outlive every operation on it.

#include <penne/error.hpp>
#include <penne/metrics.hpp>
#include <penne/redis/resp.hpp>
#include <penne/retry.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace penne::redis {

// What a redis:// or rediss:// URL says:
//   redis://[[user]:password@]host[:port][/db]      rediss:// for TLS
// user and password are percent-decoded; a password without a user ("redis://:pw@h")
// authenticates as the default user, and so does a lone userinfo field ("redis://pw@h"),
// since a user without a password cannot AUTH. IPv6 hosts are written in brackets. Query
// strings are refused: TLS and timeout settings come from connection_options.
struct endpoint {
    bool tls = false;
    std::string host = "127.0.0.1";
    std::uint16_t port = 6379;
    std::string user;      // empty: AUTH with the password only (default user)
    std::string password;  // empty: no AUTH
    int db = 0;

    // The URL without its password ("rediss://penne:***@cache:6380/2"), for logs.
    std::string redacted() const;
};

// Parses `url` into `out`. On failure returns redis_errc::invalid_url with a diagnostics
// message that names the problem but never echoes the password.
error_code parse_url(std::string_view url, endpoint& out, diagnostics& diag);

struct connection_options {
    endpoint server;
    // rediss://: PEM file of the CA certificates to trust; empty: the system's default
    // trust store. The server certificate's name must match server.host.
    std::string tls_ca_file;
    std::chrono::milliseconds connect_timeout{5'000};  // TCP + TLS + AUTH/SELECT
    std::chrono::milliseconds command_timeout{5'000};  // one request, all its replies
    // Attempts within one request (connect and, for idempotent requests, resend).
    retry_policy retry{.initial_delay = std::chrono::milliseconds(50),
                       .max_delay = std::chrono::milliseconds(2'000),
                       .max_attempts = 3};
};

// A Lua script known by its SHA-1: eval() runs it with EVALSHA and falls back to EVAL
// (which also loads it) when the server answers NOSCRIPT.
class script {
public:
    explicit script(std::string body);
    const std::string& body() const noexcept { return body_; }
    const std::string& sha1() const noexcept { return sha1_; }  // lower-case hex

private:
    std::string body_;
    std::string sha1_;
};

class connection {
public:
    connection(boost::asio::any_io_executor ex, connection_options opts);
    ~connection();
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    // Sends every command of `req` and reads one reply per command into `replies`
    // (replaced). Completes without error when every reply arrived, even if some are error
    // replies; fails with a network, timeout, protocol or connection error otherwise.
    boost::asio::awaitable<error_code> execute(const request& req, std::vector<value>& replies,
                                               diagnostics& diag);

    // One command; an error reply becomes its classified code, its text the diagnostics.
    boost::asio::awaitable<error_code> call(const request& req, value& reply, diagnostics& diag);

    // EVALSHA, or EVAL after NOSCRIPT. Scripts are expected to be idempotent (they are
    // resent after a broken connection). An error reply (raised by the script or by Redis)
    // becomes its classified code.
    boost::asio::awaitable<error_code> eval(const script& s, std::span<const std::string> keys,
                                            std::span<const std::string> args, value& reply,
                                            diagnostics& diag);

    // Health check: PING answered by PONG within the command timeout.
    boost::asio::awaitable<error_code> ping(diagnostics& diag);

    // Closes the socket (the next request reconnects). Safe from any thread.
    void close();

    // "redis://127.0.0.1:6379/0" (redacted), for logs and /status.
    std::string describe() const;
    const connection_options& options() const noexcept;
    // How many times a connection was established (for tests and metrics).
    std::uint64_t connects() const noexcept;
    // Also counts every connection established in `c` (a metrics handle such as
    // penne_redis_connects_total{connection="state"}). Call before the first request.
    void set_connect_counter(counter c);

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

}  // namespace penne::redis
