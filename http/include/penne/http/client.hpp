#pragma once
// A small HTTP/1.1 client over Beast for the S3 adapter and the credential providers
// (DESIGN §7): one pool of keep-alive connections per endpoint (scheme, host, port), plain
// TCP or TLS, asynchronous DNS, and every phase bounded by a timeout.
//
// - Connections are reused while the server keeps them alive and dropped after
//   idle_timeout unused. A request sent on a reused connection that the server had already
//   closed (EOF or reset before any response byte) is sent once more on a fresh connection:
//   every request penne makes is idempotent (PUT of a deterministic key, GET, HEAD, DELETE,
//   part uploads, Complete with the same parts).
// - TLS verifies the peer's certificate chain (system store, or ca_file) and host name by
//   default, and sends SNI. verify_peer = false exists for test rigs only.
// - The body is sent from the caller's buffer (no copy). Bodies of at least
//   expect_continue_bytes go with `Expect: 100-continue`: the body is only sent after the
//   server says 100 Continue (or stays silent for expect_continue_timeout), so a request
//   the server refuses (bad signature, no bucket) does not cost the upload.
// - Responses are bounded: a head beyond max_header_bytes or a body beyond max_body_bytes
//   fails with http_errc::response_too_large instead of growing memory.
//
// Errors: network errors as the system reports them (is_retryable knows which are
// transient), penne::errc::timeout when a phase ran past its limit, http_errc for
// malformed or oversized responses and TLS failures. An HTTP error status is not an error
// here: the response carries it and the caller decides.
//
// Thread safety: send() may be called concurrently from any number of coroutines on any
// threads (the pool is guarded by a mutex held only to take or return a connection; each
// request owns its connection while it runs).
//
// Cancellation: send() honours the awaiting coroutine's cancellation slot (terminal); a
// cancelled request's connection is closed, never returned to the pool.
//
// Lifetimes: the client must outlive every send(). request holds views that must stay valid
// until send() completes; response owns its data.

#include <penne/error.hpp>
#include <penne/http/sigv4.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace penne::http {

enum class http_errc {
    malformed_response = 1,  // the peer's bytes are not an HTTP/1.1 response
    response_too_large,      // the head or the body exceeded the configured limit
    connection_closed,       // the peer closed the connection before the response completed
    tls_error,               // TLS handshake or certificate verification failed
    invalid_url,             // the URL cannot be requested (scheme, host, port)
};

const boost::system::error_category& http_category() noexcept;

inline error_code make_error_code(http_errc e) noexcept {
    return {static_cast<int>(e), http_category()};
}

struct client_options {
    std::chrono::milliseconds connect_timeout{10'000};  // DNS + TCP + TLS handshake
    // One request: sending it and receiving the whole response. Large uploads over slow
    // links need more; the S3 adapter scales it with the body size.
    std::chrono::milliseconds request_timeout{60'000};
    std::chrono::milliseconds idle_timeout{
        30'000};  // keep-alive connections unused longer are dropped
    std::size_t max_idle_per_endpoint = 64;
    std::size_t max_header_bytes = 64 * 1024;
    std::size_t max_body_bytes = 256 * 1024 * 1024;
    // Bodies of at least this size are sent with Expect: 100-continue (0: never).
    std::size_t expect_continue_bytes = 1024 * 1024;
    std::chrono::milliseconds expect_continue_timeout{1'000};
    // TLS: verify the server's certificate and host name. CA bundle file; empty: the
    // system's default store.
    bool verify_peer = true;
    std::string ca_file;
    std::string user_agent = "penne";
};

struct endpoint_ref {
    bool tls = false;
    std::string_view host;  // name, IPv4, or IPv6 without brackets
    std::uint16_t port = 0;
};

struct request {
    endpoint_ref endpoint;
    std::string_view method;  // "PUT"
    std::string_view target;  // origin-form as sent: "/bucket/key?partNumber=1"
    // Every field to send, Host included (the signature covers it). Content-Length is
    // added from the body; User-Agent when absent.
    std::span<const header_field> headers;
    std::string_view body;
    // Per-request override of client_options::request_timeout.
    std::optional<std::chrono::milliseconds> timeout;
};

struct response {
    unsigned status = 0;
    std::vector<header_field> headers;  // names as received
    std::string body;                   // empty for HEAD
    // The first field named `name` (case-insensitive), or empty.
    std::string_view header(std::string_view name) const noexcept;
};

// Splits "http://host:port/path?q" into its parts. false when the scheme is not http/https
// or the authority is malformed.
struct parsed_url {
    bool tls = false;
    std::string host;  // without IPv6 brackets
    std::uint16_t port = 0;
    std::string target;  // origin-form, "/" when the URL has no path
    // host[:port] as it goes in the Host field (brackets kept, default port omitted).
    std::string host_header;
};
bool parse_url(std::string_view url, parsed_url& out);

class client {
public:
    using executor_type = boost::asio::any_io_executor;

    client(executor_type ex, client_options opts);
    ~client();
    client(const client&) = delete;
    client& operator=(const client&) = delete;

    // Sends `req` and fills `res` (replacing its content). See the header comment for the
    // errors; on error `diag` says which phase failed and against which endpoint.
    boost::asio::awaitable<error_code> send(const request& req, response& res, diagnostics& diag);

    // Drops every pooled connection (for tests and shutdown).
    void clear_pool();
    std::size_t idle_connections() const;
    // Connections opened since construction (tests observe keep-alive through it).
    std::uint64_t connections_opened() const noexcept;

    const client_options& options() const noexcept;
    executor_type get_executor() const noexcept;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace penne::http

template <>
struct boost::system::is_error_code_enum<penne::http::http_errc> : std::true_type {};
