#pragma once
// One TCP connection to one MongoDB server, TLS when the options carry a tls_context:
// connect (with timeout; the TLS handshake, with verification of the server's certificate
// and host name, runs under it too), handshake (hello with client metadata and compression
// negotiation, optional SCRAM authentication with the mechanism negotiated through
// saslSupportedMechs and a speculativeAuthenticate first step), then one command at a time,
// each awaited to its reply. The socket, TLS and Asio details stay in connection.cpp.
//
// Thread safety: none; use from one strand. At most one command is outstanding (a second
// concurrent run_command fails with client_errc::busy). send() and receive() split a
// round trip in two, so a caller can have the server work on its next command (a
// prefetched getMore) while it processes the last reply.
// Cancellation: every operation honours the awaiting coroutine's cancellation slot; a
// cancelled or timed-out operation leaves the connection closed (a half-read reply cannot
// be resynchronised). Timeouts surface as penne::errc::timeout.
// Lifetimes: the connection must outlive its operations; reply views point into the
// caller's frame vector.

#include <penne/error.hpp>
#include <penne/event.hpp>
#include <penne/mongo/commands.hpp>
#include <penne/mongo/uri.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace penne::mongo {

class tls_context;
struct dns_server_options;

struct connection_options {
    std::chrono::milliseconds connect_timeout{10'000};  // TCP connect + handshake + auth
    // Slack granted to every command on top of the time the server may legitimately wait
    // (getMore's maxTimeMS): a reply later than that means the connection is dead.
    std::chrono::milliseconds socket_timeout{30'000};
    client_metadata metadata;
    std::optional<credentials> auth;
    // OP_COMPRESSED: compressor names offered in hello, in order of preference. The first
    // one the server accepts compresses every later command except the handshake and
    // authentication; replies are inflated with whatever codec they name.
    std::vector<std::string> compressors;
    int zlib_level = -1;  // -1: zlib's default; 0-9
    // Handshake with legacy OP_QUERY isMaster instead of OP_MSG hello (servers that do
    // not accept OP_MSG before the handshake; not needed for MongoDB 3.6+).
    bool legacy_handshake = false;
    // TLS for every connection opened with these options (null: plain TCP). The server's
    // certificate is checked against the host each connection dials.
    std::shared_ptr<const tls_context> tls;
    // Set: host names resolve through this DNS server with penne's own DNS client (A and
    // AAAA), not the system resolver ([mongodb] dns_server, for mongodb+srv://).
    std::shared_ptr<const dns_server_options> dns;
};

class connection {
public:
    explicit connection(boost::asio::any_io_executor ex);
    ~connection();
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    boost::asio::awaitable<error_code> connect(const host_port& peer,
                                               const connection_options& opts, diagnostics& diag);

    // Sends `command` (a complete OP_MSG body with $db) and awaits its reply. `frame`
    // receives the reply frame (its previous buffer is recycled); `reply` views into it.
    // A reply with ok: 0 completes with make_server_error(code) and a filled `reply`.
    // `server_wait` is how long the server may hold the command (maxTimeMS).
    boost::asio::awaitable<error_code> run_command(byte_view command,
                                                   std::vector<std::uint8_t>& frame,
                                                   command_reply& reply,
                                                   std::chrono::milliseconds server_wait,
                                                   diagnostics& diag);

    // The two halves of run_command: send() writes `command` and completes once it is on
    // the wire; receive() awaits its reply (same contract as run_command). One command may
    // be outstanding: send() while one is, or receive() without one, fails with busy.
    boost::asio::awaitable<error_code> send(byte_view command, diagnostics& diag);
    boost::asio::awaitable<error_code> receive(std::vector<std::uint8_t>& frame,
                                               command_reply& reply,
                                               std::chrono::milliseconds server_wait,
                                               diagnostics& diag);
    // A command was sent and its reply not received yet.
    bool awaiting_reply() const noexcept;

    void close() noexcept;
    bool is_open() const noexcept;
    const hello_reply& hello() const noexcept;
    // The negotiated compressor ("zstd", "zlib", "snappy"), empty when messages go plain.
    std::string_view compressor() const noexcept;
    const host_port& peer() const noexcept;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

// Formats the diagnostics text of a failed command reply.
std::string describe_failure(std::string_view command_name, const command_reply& reply);

}  // namespace penne::mongo
