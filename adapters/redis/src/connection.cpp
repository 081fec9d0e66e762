#include <penne/detail/await_on.hpp>
#include <penne/redis/connection.hpp>
#include <penne/redis/error.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <array>
#include <atomic>
#include <optional>

namespace penne::redis {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using asio::awaitable;
using tcp = asio::ip::tcp;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

bool cancelled(const asio::cancellation_state& cs) noexcept {
    return cs.cancelled() != asio::cancellation_type::none;
}

// Runs `op` against a deadline. The loser is cancelled; a timer that fires first becomes
// penne::errc::timeout, an outer cancellation of the timer penne::errc::cancelled.
awaitable<error_code> with_deadline(awaitable<error_code> op, std::chrono::milliseconds d) {
    using namespace asio::experimental::awaitable_operators;
    asio::steady_timer timer(co_await asio::this_coro::executor, d);
    auto result = co_await (std::move(op) || timer.async_wait(use_tuple));
    if (result.index() == 0)
        co_return std::get<0>(result);
    auto [tec] = std::get<1>(result);
    co_return tec ? make_error_code(errc::cancelled) : make_error_code(errc::timeout);
}

std::string hex(const unsigned char* p, std::size_t n) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(n * 2);
    for (std::size_t i = 0; i < n; ++i) {
        out += digits[p[i] >> 4];
        out += digits[p[i] & 0xf];
    }
    return out;
}

bool is_ip_literal(const std::string& host) {
    error_code ec;
    (void)asio::ip::make_address(host, ec);
    return !ec;
}

}  // namespace

script::script(std::string body) : body_(std::move(body)) {
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1(reinterpret_cast<const unsigned char*>(body_.data()), body_.size(), digest);
    sha1_ = hex(digest, sizeof digest);
}

struct connection::impl : std::enable_shared_from_this<impl> {
    impl(asio::any_io_executor ex, connection_options o)
        : strand(asio::make_strand(ex)), opts(std::move(o)), lock(strand, 1), bo(opts.retry) {}

    asio::strand<asio::any_io_executor> strand;
    connection_options opts;
    // One request on the wire at a time: holding the lock is having the one buffered
    // message of this channel; release takes it out again.
    asio::experimental::channel<void(error_code)> lock;
    backoff bo;
    std::optional<ssl::context> tls_context;
    std::optional<tcp::socket> plain;
    std::optional<ssl::stream<tcp::socket>> secure;
    bool open = false;
    reply_parser parser;
    std::array<char, 16 * 1024> buffer{};
    std::atomic<std::uint64_t> connects{0};
    counter connect_counter;  // detached unless set_connect_counter()

    void shut() noexcept {
        error_code ignored;
        if (secure) {
            secure->next_layer().shutdown(tcp::socket::shutdown_both, ignored);
            secure->next_layer().close(ignored);
        }
        if (plain) {
            plain->shutdown(tcp::socket::shutdown_both, ignored);
            plain->close(ignored);
        }
        open = false;
    }

    error_code make_tls_context(diagnostics& diag) {
        if (tls_context)
            return {};
        ssl::context ctx(ssl::context::tls_client);
        ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                        ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
        error_code ec;
        if (opts.tls_ca_file.empty())
            ctx.set_default_verify_paths(ec);
        else
            ctx.load_verify_file(opts.tls_ca_file, ec);
        if (ec) {
            diag.message = "cannot load TLS CA certificates " +
                           (opts.tls_ca_file.empty() ? std::string("(system default paths)")
                                                     : "from '" + opts.tls_ca_file + "'") +
                           ": " + ec.message();
            return make_error_code(redis_errc::tls_setup);
        }
        ctx.set_verify_mode(ssl::verify_peer);
        tls_context.emplace(std::move(ctx));
        return {};
    }

    awaitable<error_code> write_all(const std::string& bytes) {
        if (secure) {
            auto [ec, n] = co_await asio::async_write(*secure, asio::buffer(bytes), use_tuple);
            (void)n;
            co_return ec;
        }
        auto [ec, n] = co_await asio::async_write(*plain, asio::buffer(bytes), use_tuple);
        (void)n;
        co_return ec;
    }

    awaitable<error_code> read_some(std::size_t& n) {
        n = 0;
        error_code ec;
        if (secure) {
            auto [rec, got] = co_await secure->async_read_some(asio::buffer(buffer), use_tuple);
            ec = rec;
            n = got;
        } else {
            auto [rec, got] = co_await plain->async_read_some(asio::buffer(buffer), use_tuple);
            ec = rec;
            n = got;
        }
        co_return ec;
    }

    // Network-level failure of an open connection, in the adapter's terms.
    error_code io_failure(error_code ec, const char* what, diagnostics& diag) {
        diag.message = std::string("Redis connection to ") + opts.server.redacted() + " failed " +
                       what + ": " + ec.message();
        if (ec == asio::error::eof || ec == asio::error::connection_reset ||
            ec == asio::error::operation_aborted || ec == ssl::error::stream_truncated ||
            ec.category() == asio::error::get_ssl_category())
            return make_error_code(redis_errc::connection_closed);
        return ec;
    }

    // Writes `req` and reads its replies (the stream must be open).
    awaitable<error_code> round_trip(const request& req, std::vector<value>& replies,
                                     diagnostics& diag) {
        replies.clear();
        replies.reserve(req.size());
        error_code wec = co_await write_all(req.payload());
        if (wec)
            co_return io_failure(wec, "while writing", diag);
        while (replies.size() < req.size()) {
            value v;
            error_code pec;
            bool got = parser.next(v, pec);
            if (pec) {
                diag.message = "Redis at " + opts.server.redacted() +
                               " sent a malformed reply: " + parser.error_text();
                co_return pec;
            }
            if (got) {
                replies.push_back(std::move(v));
                continue;
            }
            std::size_t n = 0;
            error_code rec = co_await read_some(n);
            if (rec)
                co_return io_failure(rec, "while reading", diag);
            (void)parser.feed(std::string_view(buffer.data(), n));
        }
        co_return error_code{};
    }

    awaitable<error_code> open_stream(diagnostics& diag) {
        const auto& server = opts.server;
        if (server.tls) {
            if (auto ec = make_tls_context(diag))
                co_return ec;
        }
        tcp::resolver resolver(strand);
        auto [rec, results] =
            co_await resolver.async_resolve(server.host, std::to_string(server.port), use_tuple);
        if (rec) {
            diag.message = "cannot resolve Redis host '" + server.host + "': " + rec.message();
            co_return rec;
        }
        tcp::socket socket(strand);
        auto [cec, ep] = co_await asio::async_connect(socket, results, use_tuple);
        (void)ep;
        if (cec) {
            diag.message = "cannot connect to Redis at " + server.redacted() + ": " + cec.message();
            co_return cec;
        }
        error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        plain.reset();
        secure.reset();
        if (!server.tls) {
            plain.emplace(std::move(socket));
            co_return error_code{};
        }
        secure.emplace(std::move(socket), *tls_context);
        if (!is_ip_literal(server.host) &&
            !SSL_set_tlsext_host_name(secure->native_handle(), server.host.c_str())) {
            diag.message = "cannot set the TLS server name '" + server.host + "'";
            co_return make_error_code(redis_errc::tls_setup);
        }
        secure->set_verify_callback(ssl::host_name_verification(server.host));
        auto [hec] = co_await secure->async_handshake(ssl::stream_base::client, use_tuple);
        if (hec) {
            std::string why = hec.message();
            const long verify = SSL_get_verify_result(secure->native_handle());
            if (verify != X509_V_OK)
                why = X509_verify_cert_error_string(verify);
            diag.message = "TLS handshake with Redis at " + server.redacted() + " failed: " + why;
            if (hec == asio::error::eof || hec == asio::error::connection_reset)
                co_return make_error_code(redis_errc::connection_closed);
            if (hec.category() == asio::error::get_ssl_category() ||
                hec == ssl::error::stream_truncated)
                co_return make_error_code(redis_errc::tls_handshake);
            co_return hec;
        }
        co_return error_code{};
    }

    // Opens the stream and authenticates and selects the database in one round trip.
    awaitable<error_code> connect(diagnostics& diag) {
        shut();
        parser.reset();
        error_code ec = co_await open_stream(diag);
        if (ec)
            co_return ec;
        const auto& server = opts.server;
        request hello;
        if (!server.password.empty()) {
            if (server.user.empty())
                hello.push({"AUTH", server.password});
            else
                hello.push({"AUTH", server.user, server.password});
        }
        if (server.db != 0)
            hello.push({"SELECT", std::to_string(server.db)});
        if (!hello.empty()) {
            std::vector<value> replies;
            ec = co_await round_trip(hello, replies, diag);
            if (ec)
                co_return ec;
            for (std::size_t i = 0; i < replies.size(); ++i) {
                const bool is_auth = !server.password.empty() && i == 0;
                if (replies[i].is_error()) {
                    auto code = classify_error_reply(replies[i].text);
                    if (is_auth && code == redis_errc::server_error)
                        code = redis_errc::wrong_password;
                    diag.message =
                        std::string(is_auth ? "authentication"
                                            : "SELECT " + std::to_string(server.db)) +
                        (is_auth && !server.user.empty() ? " as user '" + server.user + "'" : "") +
                        " at " + server.redacted() + " failed: " + replies[i].text;
                    co_return make_error_code(code);
                }
                if (!replies[i].is_status()) {
                    diag.message = "unexpected reply to the connection handshake from " +
                                   server.redacted() + ": " + to_string(replies[i]);
                    co_return make_error_code(redis_errc::unexpected_reply);
                }
            }
        }
        open = true;
        connects.fetch_add(1, std::memory_order_relaxed);
        connect_counter.inc();
        co_return error_code{};
    }

    static bool worth_another_attempt(const error_code& ec) {
        // Connection-level failures only: a timeout already took the whole budget, and a
        // fatal error will not change.
        return is_retryable(ec) && ec != errc::timeout;
    }

    awaitable<error_code> run(const request& req, std::vector<value>& replies, diagnostics& diag) {
        auto self = shared_from_this();
        auto [lec] = co_await lock.async_send(error_code{}, use_tuple);
        if (lec) {
            diag.message = "Redis request cancelled while waiting for the connection";
            co_return make_error_code(errc::cancelled);
        }
        struct unlock {
            impl* i;
            ~unlock() {
                i->lock.try_receive([](error_code) {});
            }
        } guard{this};

        std::uint32_t attempt = 0;
        for (;;) {
            auto cs = co_await asio::this_coro::cancellation_state;
            if (cancelled(cs)) {
                shut();
                diag.message = "Redis request cancelled";
                co_return make_error_code(errc::cancelled);
            }
            error_code ec;
            bool sent = false;
            if (!open) {
                ec = co_await with_deadline(connect(diag), opts.connect_timeout);
                if (ec == errc::timeout) {
                    diag.message = "connecting to Redis at " + opts.server.redacted() +
                                   " timed out after " +
                                   std::to_string(opts.connect_timeout.count()) + " ms";
                }
                if (!ec)
                    bo.reset();
            }
            if (!ec) {
                sent = true;
                ec = co_await with_deadline(round_trip(req, replies, diag), opts.command_timeout);
                if (!ec)
                    co_return ec;
                if (ec == errc::timeout) {
                    diag.message = "Redis at " + opts.server.redacted() +
                                   " did not answer within " +
                                   std::to_string(opts.command_timeout.count()) + " ms";
                }
            }
            shut();
            auto cs2 = co_await asio::this_coro::cancellation_state;
            if (cancelled(cs2)) {
                diag.message = "Redis request cancelled";
                co_return make_error_code(errc::cancelled);
            }
            ++attempt;
            const bool may_resend = !sent || req.idempotent;
            if (!may_resend || !worth_another_attempt(ec) ||
                (opts.retry.max_attempts != 0 && attempt >= opts.retry.max_attempts))
                co_return ec;
            asio::steady_timer timer(strand, bo.next_delay());
            auto [tec] = co_await timer.async_wait(use_tuple);
            if (tec) {
                diag.message = "Redis request cancelled while waiting to reconnect";
                co_return make_error_code(errc::cancelled);
            }
        }
    }
};

connection::connection(asio::any_io_executor ex, connection_options opts)
    : impl_(std::make_shared<impl>(std::move(ex), std::move(opts))) {}

connection::~connection() = default;

awaitable<error_code> connection::execute(const request& req, std::vector<value>& replies,
                                          diagnostics& diag) {
    if (req.empty()) {
        replies.clear();
        co_return error_code{};
    }
    auto op = impl_->run(req, replies, diag);
    error_code ec = co_await penne::detail::await_on(impl_->strand, std::move(op));
    co_return ec;
}

awaitable<error_code> connection::call(const request& req, value& reply, diagnostics& diag) {
    std::vector<value> replies;
    error_code ec = co_await execute(req, replies, diag);
    if (ec)
        co_return ec;
    if (replies.size() != 1) {
        diag.message = "call() expects a request of exactly one command";
        co_return make_error_code(redis_errc::unexpected_reply);
    }
    reply = std::move(replies.front());
    if (reply.is_error()) {
        diag.message = "Redis at " + impl_->opts.server.redacted() + " replied: " + reply.text;
        co_return make_error_code(classify_error_reply(reply.text));
    }
    co_return error_code{};
}

awaitable<error_code> connection::eval(const script& s, std::span<const std::string> keys,
                                       std::span<const std::string> args, value& reply,
                                       diagnostics& diag) {
    std::vector<std::string_view> argv;
    argv.reserve(3 + keys.size() + args.size());
    const std::string nkeys = std::to_string(keys.size());
    argv.push_back("EVALSHA");
    argv.push_back(s.sha1());
    argv.push_back(nkeys);
    argv.insert(argv.end(), keys.begin(), keys.end());
    argv.insert(argv.end(), args.begin(), args.end());
    request evalsha;
    evalsha.push(argv);
    evalsha.idempotent = true;
    error_code ec = co_await call(evalsha, reply, diag);
    if (ec != redis_errc::no_script)
        co_return ec;
    // The server lost its script cache (restart, SCRIPT FLUSH, failover): EVAL loads it.
    argv[0] = "EVAL";
    argv[1] = s.body();
    request full;
    full.push(argv);
    full.idempotent = true;
    diag.clear();
    ec = co_await call(full, reply, diag);
    co_return ec;
}

awaitable<error_code> connection::ping(diagnostics& diag) {
    request req{"PING"};
    req.idempotent = true;
    value reply;
    error_code ec = co_await call(req, reply, diag);
    if (ec)
        co_return ec;
    if (!reply.is_status("PONG")) {
        diag.message =
            "Redis at " + impl_->opts.server.redacted() + " answered PING with " + to_string(reply);
        co_return make_error_code(redis_errc::unexpected_reply);
    }
    co_return error_code{};
}

void connection::close() {
    asio::post(impl_->strand, [self = impl_] { self->shut(); });
}

std::string connection::describe() const {
    return impl_->opts.server.redacted();
}

const connection_options& connection::options() const noexcept {
    return impl_->opts;
}

std::uint64_t connection::connects() const noexcept {
    return impl_->connects.load(std::memory_order_relaxed);
}

void connection::set_connect_counter(counter c) {
    impl_->connect_counter = c;
}

}  // namespace penne::redis
