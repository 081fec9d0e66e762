#include <penne/mongo/compression.hpp>
#include <penne/mongo/connection.hpp>
#include <penne/mongo/dns_client.hpp>
#include <penne/mongo/scram.hpp>
#include <penne/mongo/tls.hpp>
#include <penne/mongo/wire.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <optional>
#include <string>
#include <tuple>

namespace penne::mongo {

namespace asio = boost::asio;
using asio::awaitable;
using tcp = asio::ip::tcp;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// Bytes a large reply waits for before its reader wakes (see impl::set_low_water).
constexpr std::size_t large_read = 256 * 1024;

// Runs `op` against a deadline. The loser is cancelled; a timer that fires first turns
// into penne::errc::timeout, an outer cancellation into the op's own operation_aborted.
awaitable<error_code> with_deadline(awaitable<error_code> op, std::chrono::milliseconds d) {
    using namespace asio::experimental::awaitable_operators;
    asio::steady_timer timer(co_await asio::this_coro::executor, d);
    auto result = co_await (std::move(op) || timer.async_wait(use_tuple));
    if (result.index() == 0)
        co_return std::get<0>(result);
    auto [tec] = std::get<1>(result);
    co_return tec ? make_error_code(penne::errc::cancelled) : make_error_code(penne::errc::timeout);
}

std::string_view command_name(byte_view command) {
    bson_iter_t it;
    if (is_document(command) && bson_iter_init_from_data(&it, command.data(), command.size()) &&
        bson_iter_next(&it))
        return {bson_iter_key(&it), bson_iter_key_len(&it)};
    return "command";
}

// Errors of the TLS layer itself (alerts, protocol, OpenSSL), as opposed to the socket's.
bool tls_layer_error(const error_code& ec) {
    return ec.category() == asio::error::get_ssl_category() ||
           ec.category() == asio::ssl::error::get_stream_category();
}

}  // namespace

std::string describe_failure(std::string_view name, const command_reply& reply) {
    std::string msg = std::string(name) + " failed: ";
    msg += reply.errmsg.empty() ? std::string_view("(no message)") : reply.errmsg;
    msg += " (";
    if (!reply.code_name.empty()) {
        msg += reply.code_name;
        msg += ", ";
    }
    msg += "code " + std::to_string(reply.code) + ")";
    return msg;
}

struct connection::impl {
    explicit impl(asio::any_io_executor ex) : socket(ex) {}

    tcp::socket socket;
    // The TLS session over `socket` when opts.tls is set. It is replaced only by the next
    // connect (close() may run while an operation on it is still unwinding).
    std::optional<asio::ssl::stream<tcp::socket&>> tls;
    bool host_mismatch = false;  // the verify callback rejected the host name
    bool connecting = false;     // inside connect(): TLS failures are fatal configuration
    wire::frame_reader reader;
    std::vector<std::uint8_t> out;
    std::vector<std::uint8_t> plain;     // the uncompressed request while `out` holds it packed
    std::vector<std::uint8_t> inflated;  // spare buffer that compressed replies inflate into
    codec_set codecs;
    std::optional<compressor_id> compressor;
    std::int32_t next_request_id = 1;
    bool busy = false;
    bool open = false;
    int low_water = 1;             // the socket's SO_RCVLOWAT (see set_low_water)
    std::int32_t outstanding = 0;  // the request id send() wrote and receive() has not read
    std::string outstanding_name;  // its command's name, for diagnostics
    hello_reply hello;
    host_port peer;
    connection_options opts;

    void shut() noexcept {
        error_code ignored;
        socket.shutdown(tcp::socket::shutdown_both, ignored);
        socket.close(ignored);
        reader.reset();
        open = false;
        outstanding = 0;
        compressor.reset();
        low_water = 1;
    }

    // A large reply (a getMore batch of up to 16 MiB) arrives as fast as the server writes
    // it: without a low-water mark, every few dozen KiB that land in the socket wake the
    // reader for one small read (~70 KiB per wake-up, ~175 per 16 MiB reply, measured).
    // With SO_RCVLOWAT the socket reports readable only once `large_read` bytes are
    // queued, so a reply is read in few large pieces. The mark never exceeds the bytes the
    // current frame still needs (they are on their way; a higher mark would wait for bytes
    // that never come): near the end of a frame it is what is left, and 1 once less than a
    // quarter of `large_read` is. Not under TLS: the TLS stream reads records of its own
    // sizes from the socket.
    void set_low_water(std::size_t remaining) noexcept {
        const int want =
            remaining > large_read / 4 ? static_cast<int>(std::min(remaining, large_read)) : 1;
        if (want == low_water || tls)
            return;
        error_code ignored;  // only an optimization: reads work the same without it
        socket.set_option(asio::socket_base::receive_low_watermark(want), ignored);
        if (!ignored)
            low_water = want;
    }

    // Writes `out` (one encoded request).
    awaitable<error_code> write_out() {
        error_code wec;
        std::size_t written = 0;
        if (tls)
            std::tie(wec, written) = co_await asio::async_write(*tls, asio::buffer(out), use_tuple);
        else
            std::tie(wec, written) =
                co_await asio::async_write(socket, asio::buffer(out), use_tuple);
        co_return wec;
    }

    // Reads the frame answering `request_id` into `frame` (inflated when compressed).
    awaitable<error_code> read_reply(std::int32_t request_id, std::vector<std::uint8_t>& frame) {
        reader.reset();
        while (!reader.ready()) {
            auto space = reader.prepare();
            set_low_water(space.size());
            error_code rec;
            std::size_t n = 0;
            auto buf = asio::buffer(space.data(), space.size());
            if (tls)
                std::tie(rec, n) = co_await tls->async_read_some(buf, use_tuple);
            else
                std::tie(rec, n) = co_await socket.async_read_some(buf, use_tuple);
            if (rec == asio::error::eof || rec == asio::error::connection_reset ||
                rec == asio::ssl::error::stream_truncated)
                co_return make_error_code(client_errc::connection_closed);
            if (rec)
                co_return rec;
            if (auto ec = reader.commit(n))
                co_return ec;
        }
        reader.take(frame);
        const auto header = wire::read_header(frame);
        if (header.response_to != request_id)
            co_return make_error_code(client_errc::response_mismatch);
        if (header.op_code == static_cast<std::int32_t>(wire::opcode::compressed)) {
            // The reply names its own codec; inflate and hand the caller the plain frame.
            if (auto ec = codecs.decompress(frame, reader.max_message_size(), inflated))
                co_return ec;
            frame.swap(inflated);
        }
        co_return error_code{};
    }

    // Writes `out` and reads the frame answering `request_id` into `frame`.
    awaitable<error_code> exchange(std::int32_t request_id, std::vector<std::uint8_t>& frame) {
        error_code wec = co_await write_out();
        if (wec)
            co_return wec;
        co_return co_await read_reply(request_id, frame);
    }

    // Encodes and writes one OP_MSG command; its reply is read by receive(). At most one
    // request is outstanding.
    awaitable<error_code> send(byte_view command, std::chrono::milliseconds deadline,
                               diagnostics& diag) {
        if (!open) {
            diag.message = "MongoDB connection to " + peer.to_string() + " is closed";
            co_return make_error_code(client_errc::not_connected);
        }
        if (busy || outstanding != 0)
            co_return make_error_code(client_errc::busy);
        busy = true;
        std::int32_t id = next_request_id++;
        out.clear();
        wire::encode_op_msg(out, id, 0, command);
        std::string_view name = command_name(command);
        if (compressor && may_compress(name)) {
            out.swap(plain);
            out.clear();
            if (auto cec = codecs.compress(*compressor, plain, out)) {
                busy = false;
                diag.message = "cannot compress " + std::string(name) + " with " +
                               std::string(to_string(*compressor)) + ": " + cec.message();
                co_return cec;
            }
        }
        error_code ec = co_await with_deadline(write_out(), deadline);
        busy = false;
        if (ec) {
            shut();
            co_return exchange_failed(ec, name, diag);
        }
        outstanding = id;
        outstanding_name.assign(name);
        co_return error_code{};
    }

    // Reads and checks the reply to the request send() wrote; fills `reply` from the frame.
    awaitable<error_code> receive(std::vector<std::uint8_t>& frame, command_reply& reply,
                                  std::chrono::milliseconds deadline, diagnostics& diag) {
        if (!open) {
            diag.message = "MongoDB connection to " + peer.to_string() + " is closed";
            co_return make_error_code(client_errc::not_connected);
        }
        if (busy || outstanding == 0)
            co_return make_error_code(client_errc::busy);
        busy = true;
        const std::int32_t id = std::exchange(outstanding, 0);
        const std::string& name = outstanding_name;
        error_code ec = co_await with_deadline(read_reply(id, frame), deadline);
        busy = false;
        if (ec) {
            shut();
            co_return exchange_failed(ec, name, diag);
        }
        wire::op_msg_view msg;
        if (auto dec = wire::decode_op_msg(frame, msg)) {
            shut();
            diag.message =
                "unreadable reply to " + name + " from " + peer.to_string() + ": " + dec.message();
            co_return dec;
        }
        if (msg.more_to_come()) {
            // We never set exhaustAllowed, so a streamed reply means the peer is confused.
            shut();
            diag.message = "unexpected moreToCome reply to " + name;
            co_return make_error_code(client_errc::malformed_message);
        }
        if (auto pec = parse_reply(msg.body, reply)) {
            shut();
            diag.message = "malformed reply to " + name + " from " + peer.to_string();
            co_return pec;
        }
        if (!reply.ok) {
            diag.message = describe_failure(name, reply);
            co_return make_server_error(reply.code);
        }
        co_return error_code{};
    }

    // One OP_MSG round trip with a deadline for each half; fills `reply` from the frame.
    awaitable<error_code> round_trip(byte_view command, std::vector<std::uint8_t>& frame,
                                     command_reply& reply, std::chrono::milliseconds deadline,
                                     diagnostics& diag) {
        error_code sec = co_await send(command, deadline, diag);
        if (sec)
            co_return sec;
        co_return co_await receive(frame, reply, deadline, diag);
    }

    // The error and diagnostics of a failed exchange. A TLS-layer error while connecting
    // (e.g. the server's alert that it wants a client certificate, which TLS 1.3 sends after
    // our side of the handshake) is a configuration problem: fatal. Once the session has
    // carried the handshake it is a broken connection like any other: retryable.
    error_code exchange_failed(error_code ec, std::string_view name, diagnostics& diag) {
        if (!opts.tls || !tls || !tls_layer_error(ec)) {
            diag.message = std::string(name) + " to " + peer.to_string() + ": " + ec.message();
            return ec;
        }
        tls_failure_info info{ec, SSL_get_verify_result(tls->native_handle()), host_mismatch};
        diagnostics td;
        error_code mapped = describe_tls_failure(info, peer.to_string(), opts.tls->options(), td);
        diag.message = std::string(name) + ": " + td.message;
        return connecting ? mapped : make_error_code(client_errc::connection_closed);
    }

    // The TLS handshake over the connected socket: SNI for host names, the server's chain
    // checked against the context's CAs and its certificate against the host we dialled
    // (unless the URI relaxed either).
    awaitable<error_code> start_tls(diagnostics& diag) {
        const tls_options& topts = opts.tls->options();
        tls.reset();
        host_mismatch = false;
        tls.emplace(socket, opts.tls->native());
        error_code aec;
        asio::ip::make_address(peer.host, aec);
        const bool is_address = !aec;
        // RFC 6066: server_name carries host names only, never address literals.
        if (!is_address && SSL_set_tlsext_host_name(tls->native_handle(), peer.host.c_str()) != 1) {
            diag.message = "cannot set the TLS server name " + peer.host;
            co_return make_error_code(client_errc::tls_failed);
        }
        if (!topts.allow_invalid_certificates && !topts.allow_invalid_hostnames) {
            tls->set_verify_callback([this, is_address,
                                      check = asio::ssl::host_name_verification(peer.host)](
                                         bool preverified, asio::ssl::verify_context& vctx) {
                if (!preverified)
                    return false;  // the chain's own error stays in the verify result
                if (check(preverified, vctx))
                    return true;
                // Only the leaf (depth 0) is checked against the name; record why it
                // failed so the handshake error can say so.
                host_mismatch = true;
                X509_STORE_CTX_set_error(vctx.native_handle(), is_address
                                                                   ? X509_V_ERR_IP_ADDRESS_MISMATCH
                                                                   : X509_V_ERR_HOSTNAME_MISMATCH);
                return false;
            });
        }
        auto [hec] = co_await tls->async_handshake(asio::ssl::stream_base::client, use_tuple);
        if (hec) {
            tls_failure_info info{hec, SSL_get_verify_result(tls->native_handle()), host_mismatch};
            co_return describe_tls_failure(info, peer.to_string(), topts, diag);
        }
        co_return error_code{};
    }

    awaitable<error_code> legacy_hello(std::vector<std::uint8_t>& frame, byte_view query,
                                       byte_view& body, diagnostics& diag) {
        std::int32_t id = next_request_id++;
        out.clear();
        wire::encode_op_query(out, id, 0, "admin.$cmd", 0, -1, query);
        error_code ec = co_await with_deadline(exchange(id, frame), opts.connect_timeout);
        if (ec)
            co_return exchange_failed(ec, "isMaster", diag);
        wire::op_reply_view rep;
        if (auto dec = wire::decode_op_reply(frame, rep)) {
            diag.message = "unreadable OP_REPLY from " + peer.to_string();
            co_return dec;
        }
        body = rep.first_document;
        co_return error_code{};
    }

    awaitable<error_code> handshake(diagnostics& diag) {
        std::vector<std::uint8_t> frame;
        std::string sasl_user;
        if (opts.auth && opts.auth->mechanism.empty())
            sasl_user = opts.auth->source + "." + opts.auth->username;
        // The first SCRAM step rides in hello: with an explicit mechanism that one, else
        // SCRAM-SHA-256, which every server that answers speculativeAuthenticate (4.4+) has.
        std::optional<scram_client> speculative;
        scram_mechanism speculative_mech = scram_mechanism::sha256;
        document speculative_start;
        if (opts.auth) {
            if (opts.auth->mechanism == "SCRAM-SHA-1")
                speculative_mech = scram_mechanism::sha1;
            speculative.emplace(speculative_mech, opts.auth->username, opts.auth->password,
                                scram_client::make_nonce());
            speculative_start = make_speculative_sasl_start(
                speculative_mech, speculative->client_first(), opts.auth->source);
        }
        byte_view spec_bytes = opts.auth ? speculative_start.bytes() : byte_view{};
        byte_view body;
        command_reply reply;
        if (opts.legacy_handshake) {
            document q = make_hello(opts.metadata, hello_form::legacy_query, sasl_user,
                                    opts.compressors, spec_bytes);
            // g++ 12 miscompiles co_await inside an if condition: keep it a statement.
            auto ec = co_await legacy_hello(frame, q.bytes(), body, diag);
            if (ec)
                co_return ec;
            if (auto ec = parse_reply(body, reply))
                co_return ec;
            if (!reply.ok) {
                diag.message = describe_failure("isMaster", reply);
                co_return make_server_error(reply.code);
            }
        } else {
            document h = make_hello(opts.metadata, hello_form::hello, sasl_user, opts.compressors,
                                    spec_bytes);
            error_code ec = co_await round_trip(h.bytes(), frame, reply, opts.socket_timeout, diag);
            if (ec == make_server_error(server_code::command_not_found)) {
                // Servers before 4.4.2 know only isMaster.
                document m = make_hello(opts.metadata, hello_form::is_master, sasl_user,
                                        opts.compressors, spec_bytes);
                ec = co_await round_trip(m.bytes(), frame, reply, opts.socket_timeout, diag);
            }
            if (ec)
                co_return ec;
            body = reply.body;
        }
        if (auto ec = parse_hello(body, hello)) {
            diag.message = "malformed hello reply from " + peer.to_string();
            co_return ec;
        }
        if (hello.max_wire_version < 6) {
            diag.message = peer.to_string() + " speaks wire version " +
                           std::to_string(hello.max_wire_version) +
                           "; penne needs MongoDB 3.6 or newer (wire version 6)";
            co_return make_error_code(client_errc::server_too_old);
        }
        reader.set_max_message_size(hello.max_message_size > 0
                                        ? static_cast<std::uint32_t>(hello.max_message_size)
                                        : wire::default_max_message_size);
        // The server lists the offered compressors it accepts; use the first of them that
        // we offered (a server must not invent others, but we never trust it to).
        for (const auto& name : hello.compression) {
            auto id = compressor_from_name(name);
            if (id && *id != compressor_id::noop &&
                std::find(opts.compressors.begin(), opts.compressors.end(), name) !=
                    opts.compressors.end()) {
                compressor = id;
                codecs.set_zlib_level(opts.zlib_level);
                break;
            }
        }
        if (opts.auth)
            co_return co_await authenticate(speculative, speculative_mech, diag);
        co_return error_code{};
    }

    // The mechanism for a full conversation: the URI's, else SCRAM-SHA-256 when the server
    // lists it for the user, else SCRAM-SHA-1 (the rule of MongoDB's authentication spec,
    // which also covers servers that list nothing, e.g. for an unknown user).
    scram_mechanism negotiated_mechanism() const {
        const credentials& c = *opts.auth;
        if (c.mechanism == "SCRAM-SHA-1")
            return scram_mechanism::sha1;
        if (c.mechanism == "SCRAM-SHA-256")
            return scram_mechanism::sha256;
        const auto& m = hello.sasl_supported_mechs;
        return std::find(m.begin(), m.end(), "SCRAM-SHA-256") != m.end() ? scram_mechanism::sha256
                                                                         : scram_mechanism::sha1;
    }

    awaitable<error_code> authenticate(std::optional<scram_client>& speculative,
                                       scram_mechanism speculative_mech, diagnostics& diag) {
        const credentials& c = *opts.auth;
        std::vector<std::uint8_t> frame;
        command_reply reply;
        sasl_reply sasl;
        const bool resumed = !hello.speculative_authenticate.empty();
        scram_mechanism mech = resumed ? speculative_mech : negotiated_mechanism();
        auto fail = [&](error_code ec) {
            diag.message = "authentication of user " + c.username + " on " + c.source + " (" +
                           std::string(to_string(mech)) + ") failed: " + diag.message;
            return ec;
        };
        std::optional<scram_client> fresh;
        scram_client* scram = nullptr;
        if (resumed) {
            // The server answered the saslStart carried by hello: continue that conversation.
            scram = &*speculative;
            if (auto ec = parse_sasl_reply(hello.speculative_authenticate, sasl)) {
                diag.message = "malformed speculativeAuthenticate reply";
                co_return fail(ec);
            }
        } else {
            speculative.reset();
            fresh.emplace(mech, c.username, c.password, scram_client::make_nonce());
            scram = &*fresh;
            document start = make_sasl_start(mech, scram->client_first(), c.source);
            // g++ 12 miscompiles co_await inside an if condition: keep it a statement.
            error_code rt =
                co_await round_trip(start.bytes(), frame, reply, opts.socket_timeout, diag);
            if (rt)
                co_return fail(rt);
            if (auto ec = parse_sasl_reply(reply.body, sasl))
                co_return fail(ec);
        }
        std::string client_final;
        if (auto ec = scram->on_server_first(sasl.payload, client_final, diag))
            co_return fail(ec);
        std::int32_t conversation = sasl.conversation_id;
        document cont = make_sasl_continue(conversation, client_final, c.source);
        // g++ 12 miscompiles co_await inside an if condition: keep it a statement.
        error_code rt = co_await round_trip(cont.bytes(), frame, reply, opts.socket_timeout, diag);
        if (rt)
            co_return fail(rt);
        if (auto ec = parse_sasl_reply(reply.body, sasl))
            co_return fail(ec);
        if (auto ec = scram->on_server_final(sasl.payload, diag))
            co_return fail(ec);
        // Servers that ignore skipEmptyExchange want one more, empty, round.
        for (int i = 0; !sasl.done && i < 2; ++i) {
            document empty = make_sasl_continue(conversation, {}, c.source);
            rt = co_await round_trip(empty.bytes(), frame, reply, opts.socket_timeout, diag);
            if (rt)
                co_return fail(rt);
            if (auto ec = parse_sasl_reply(reply.body, sasl))
                co_return fail(ec);
        }
        if (!sasl.done) {
            diag.message = "server did not finish the SASL conversation";
            co_return fail(make_error_code(client_errc::auth_failed));
        }
        co_return error_code{};
    }

    awaitable<error_code> open_socket(diagnostics& diag) {
        error_code cec;
        error_code aec;
        auto address = asio::ip::make_address(peer.host, aec);
        if (!aec) {
            // An address literal needs no resolver (whose work runs on Asio's own thread).
            std::tie(cec) =
                co_await socket.async_connect(tcp::endpoint(address, peer.port), use_tuple);
        } else if (opts.dns) {
            std::vector<std::string> addresses;
            error_code rec = co_await dns_resolve_host(socket.get_executor(), *opts.dns, peer.host,
                                                       addresses, diag);
            if (rec) {
                diag.message = "cannot resolve " + peer.host + ": " + diag.message;
                co_return rec;
            }
            std::vector<tcp::endpoint> endpoints;
            for (const auto& a : addresses)
                endpoints.emplace_back(asio::ip::make_address(a), peer.port);
            tcp::endpoint ep;
            std::tie(cec, ep) = co_await asio::async_connect(socket, endpoints, use_tuple);
        } else {
            tcp::resolver resolver(socket.get_executor());
            auto [rec, endpoints] =
                co_await resolver.async_resolve(peer.host, std::to_string(peer.port), use_tuple);
            if (rec) {
                diag.message = "cannot resolve " + peer.host + ": " + rec.message();
                co_return rec;
            }
            tcp::endpoint ep;
            std::tie(cec, ep) = co_await asio::async_connect(socket, endpoints, use_tuple);
        }
        if (cec) {
            diag.message = "cannot connect to " + peer.to_string() + ": " + cec.message();
            co_return cec;
        }
        socket.set_option(tcp::no_delay(true));
        if (opts.tls) {
            // g++ 12 miscompiles co_await inside an if condition: keep it a statement.
            error_code tec = co_await start_tls(diag);
            if (tec)
                co_return tec;
        }
        open = true;
        co_return error_code{};
    }
};

connection::connection(asio::any_io_executor ex) : impl_(std::make_unique<impl>(ex)) {}
connection::~connection() = default;

awaitable<error_code> connection::connect(const host_port& peer, const connection_options& opts,
                                          diagnostics& diag) {
    impl_->shut();
    impl_->peer = peer;
    impl_->opts = opts;
    impl_->hello = {};
    impl_->connecting = true;
    // The deadline covers the TCP connect and the TLS handshake.
    error_code ec = co_await with_deadline(impl_->open_socket(diag), opts.connect_timeout);
    if (ec == penne::errc::timeout)
        diag.message = "connecting to " + peer.to_string() + " timed out" +
                       (opts.tls ? " (TCP connect and TLS handshake)" : "");
    if (!ec) {
        // The handshake's own round trips use the connect timeout as their deadline.
        auto saved = impl_->opts.socket_timeout;
        impl_->opts.socket_timeout = opts.connect_timeout;
        ec = co_await impl_->handshake(diag);
        impl_->opts.socket_timeout = saved;
    }
    impl_->connecting = false;
    if (ec)
        impl_->shut();
    co_return ec;
}

awaitable<error_code> connection::run_command(byte_view command, std::vector<std::uint8_t>& frame,
                                              command_reply& reply,
                                              std::chrono::milliseconds server_wait,
                                              diagnostics& diag) {
    co_return co_await impl_->round_trip(command, frame, reply,
                                         server_wait + impl_->opts.socket_timeout, diag);
}

awaitable<error_code> connection::send(byte_view command, diagnostics& diag) {
    co_return co_await impl_->send(command, impl_->opts.socket_timeout, diag);
}

awaitable<error_code> connection::receive(std::vector<std::uint8_t>& frame, command_reply& reply,
                                          std::chrono::milliseconds server_wait,
                                          diagnostics& diag) {
    co_return co_await impl_->receive(frame, reply, server_wait + impl_->opts.socket_timeout, diag);
}

bool connection::awaiting_reply() const noexcept {
    return impl_->open && impl_->outstanding != 0;
}

void connection::close() noexcept {
    impl_->shut();
}
bool connection::is_open() const noexcept {
    return impl_->open;
}
const hello_reply& connection::hello() const noexcept {
    return impl_->hello;
}
std::string_view connection::compressor() const noexcept {
    return impl_->compressor ? to_string(*impl_->compressor) : std::string_view{};
}
const host_port& connection::peer() const noexcept {
    return impl_->peer;
}

}  // namespace penne::mongo
