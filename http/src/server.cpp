#include <penne/detail/await_on.hpp>
#include <penne/http/server.hpp>
#include <penne/version.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <set>
#include <string_view>

namespace penne::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using asio::awaitable;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

constexpr std::string_view server_name = "penne/" PENNE_VERSION_STRING;
constexpr std::string_view exposition_type = "text/plain; version=0.0.4; charset=utf-8";

// Accept failures that concern one connection or a momentary resource shortage: the
// listener itself is fine, so accepting resumes after a short pause.
bool transient_accept_error(const error_code& ec) {
    namespace e = boost::system::errc;
    return ec == e::connection_aborted || ec == e::too_many_files_open ||
           ec == e::too_many_files_open_in_system || ec == e::no_buffer_space ||
           ec == e::not_enough_memory || ec == e::protocol_error || ec == e::interrupted;
}

struct reply {
    bhttp::status status = bhttp::status::ok;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
    bool allow_header = false;  // 405: say which methods work
};

}  // namespace

struct server::impl : std::enable_shared_from_this<impl> {
    struct session {
        explicit session(tcp::socket s) : stream(std::move(s)) {}
        beast::tcp_stream stream;
        bool idle = true;  // waiting for a request (may be cut on stop)
    };

    impl(executor_type ex, server_options o, server_handlers h)
        : strand(asio::make_strand(ex)),
          opts(std::move(o)),
          handlers(std::move(h)),
          acceptor(strand),
          drained(strand) {}

    asio::strand<executor_type> strand;
    server_options opts;
    server_handlers handlers;
    tcp::acceptor acceptor;
    asio::steady_timer drained;  // cancelled whenever a session ends during a stop
    std::atomic<std::uint16_t> bound_port{0};
    // Strand-only state.
    bool stopping = false;
    std::set<std::shared_ptr<session>> sessions;

    void begin_stop() {
        if (stopping)
            return;
        stopping = true;
        error_code ignored;
        acceptor.close(ignored);
        // Idle connections would otherwise sit until read_timeout; busy ones finish the
        // response they are writing and then close because `stopping` is set.
        for (const auto& s : sessions)
            if (s->idle)
                s->stream.cancel();
    }

    reply route(const bhttp::request<bhttp::string_body>& req) const {
        std::string_view target = req.target();
        if (auto q = target.find('?'); q != std::string_view::npos)
            target = target.substr(0, q);

        reply r;
        bool known = target == "/health" || target == "/ready" || target == "/status" ||
                     (target == "/metrics" && handlers.metrics);
        if (!known) {
            r.status = bhttp::status::not_found;
            r.body = "not found\n";
            return r;
        }
        if (req.method() != bhttp::verb::get && req.method() != bhttp::verb::head) {
            r.status = bhttp::status::method_not_allowed;
            r.body = "method not allowed\n";
            r.allow_header = true;
            return r;
        }
        try {
            if (target == "/health") {
                r.body = "ok\n";
            } else if (target == "/metrics") {
                r.content_type = exposition_type;
                handlers.metrics(r.body);
            } else if (target == "/ready") {
                readiness rd = handlers.ready ? handlers.ready() : readiness{};
                if (rd.ready) {
                    r.body = "ready\n";
                } else {
                    r.status = bhttp::status::service_unavailable;
                    r.body = "not ready: " + (rd.reason.empty() ? "unknown" : rd.reason) + "\n";
                }
            } else {
                r.content_type = "application/json";
                r.body = handlers.status ? handlers.status() : std::string("{}");
                r.body += '\n';
            }
        } catch (const std::exception&) {
            // What went wrong may quote configuration; the embedder's logs are the place.
            r = reply{};
            r.status = bhttp::status::internal_server_error;
            r.body = "internal error\n";
        }
        return r;
    }

    template <class Body>
    static void set_common(bhttp::response<Body>& res, const reply& r, bool keep_alive) {
        res.set(bhttp::field::server, server_name);
        res.set(bhttp::field::content_type, r.content_type);
        res.set(bhttp::field::cache_control, "no-store");
        if (r.allow_header)
            res.set(bhttp::field::allow, "GET, HEAD");
        res.keep_alive(keep_alive);
    }

    // Writes the reply (headers only for HEAD); false when the connection must close.
    awaitable<bool> respond(session& s, unsigned version, bool head, reply r, bool keep_alive) {
        s.stream.expires_after(opts.write_timeout);
        error_code ec;
        if (head) {
            bhttp::response<bhttp::empty_body> res{r.status, version};
            set_common(res, r, keep_alive);
            res.content_length(r.body.size());
            auto [wec, n] = co_await bhttp::async_write(s.stream, res, use_tuple);
            ec = wec;
        } else {
            bhttp::response<bhttp::string_body> res{r.status, version};
            set_common(res, r, keep_alive);
            res.body() = std::move(r.body);
            res.prepare_payload();
            auto [wec, n] = co_await bhttp::async_write(s.stream, res, use_tuple);
            ec = wec;
        }
        co_return !ec && keep_alive;
    }

    awaitable<void> serve(std::shared_ptr<session> s) {
        beast::flat_buffer buffer;
        for (;;) {
            bhttp::request_parser<bhttp::string_body> parser;
            parser.header_limit(static_cast<std::uint32_t>(opts.max_header_bytes));
            parser.body_limit(opts.max_body_bytes);
            s->idle = true;
            if (stopping)
                break;
            s->stream.expires_after(opts.read_timeout);
            auto [ec, n] = co_await bhttp::async_read(s->stream, buffer, parser, use_tuple);
            s->idle = false;
            if (ec) {
                // Limits and malformed requests get an answer; a closed, timed-out or
                // cancelled connection does not.
                reply r;
                if (ec == bhttp::error::header_limit) {
                    r.status = bhttp::status::request_header_fields_too_large;
                    r.body = "request header too large\n";
                } else if (ec == bhttp::error::body_limit) {
                    r.status = bhttp::status::payload_too_large;
                    r.body = "request body too large\n";
                } else if (ec.category() ==
                               bhttp::make_error_code(bhttp::error::bad_method).category() &&
                           ec != bhttp::error::end_of_stream &&
                           ec != bhttp::error::partial_message) {
                    r.status = bhttp::status::bad_request;
                    r.body = "bad request\n";
                } else {
                    break;
                }
                co_await respond(*s, 11, false, std::move(r), false);
                break;
            }
            const auto& req = parser.get();
            bool keep_alive = req.keep_alive() && !stopping;
            bool head = req.method() == bhttp::verb::head;
            reply r = route(req);
            bool again = co_await respond(*s, req.version(), head, std::move(r), keep_alive);
            if (!again)
                break;
        }
        error_code ignored;
        s->stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
        s->stream.close();
    }

    void end_session(const std::shared_ptr<session>& s) {
        sessions.erase(s);
        if (stopping && sessions.empty())
            drained.cancel();
    }

    awaitable<error_code> accept_loop() {
        co_await asio::this_coro::throw_if_cancelled(false);
        error_code result;
        asio::steady_timer pause(strand);
        while (!stopping) {
            auto [ec, sock] = co_await acceptor.async_accept(use_tuple);
            if (ec) {
                if (stopping || ec == asio::error::operation_aborted)
                    break;
                if (!transient_accept_error(ec)) {
                    result = ec;
                    break;
                }
                pause.expires_after(std::chrono::milliseconds(100));
                auto [pec] = co_await pause.async_wait(use_tuple);
                if (pec)
                    break;
                continue;
            }
            if (sessions.size() >= opts.max_connections) {
                error_code ignored;
                sock.close(ignored);
                continue;
            }
            auto s = std::make_shared<session>(std::move(sock));
            sessions.insert(s);
            auto self = shared_from_this();
            asio::co_spawn(strand, serve(s), [self, s](std::exception_ptr) {
                // Runs on the strand; an exception (allocation failure) just ends the
                // connection, whose socket closes with the session.
                self->end_session(s);
            });
        }

        // Drain: stop accepting, cut idle connections, let in-flight responses finish.
        co_await asio::this_coro::reset_cancellation_state();
        begin_stop();
        while (!sessions.empty()) {
            drained.expires_at(asio::steady_timer::time_point::max());
            auto [wec] = co_await drained.async_wait(use_tuple);
            (void)wec;  // cancelled by end_session (or by a second cancellation: re-check)
        }
        co_return result;
    }
};

server::server(executor_type ex, server_options opts, server_handlers handlers)
    : impl_(std::make_shared<impl>(std::move(ex), std::move(opts), std::move(handlers))) {}

server::~server() {
    error_code ignored;
    impl_->acceptor.close(ignored);
}

error_code server::listen(diagnostics& diag) {
    auto& d = *impl_;
    error_code ec;
    auto addr = asio::ip::make_address(d.opts.address, ec);
    if (ec) {
        diag.message = "http server: invalid bind address '" + d.opts.address + "'";
        return make_error_code(errc::invalid_config);
    }
    tcp::endpoint ep(addr, d.opts.port);
    auto where = [&] {
        std::string s = addr.is_v6() ? "[" + d.opts.address + "]" : d.opts.address;
        return s + ":" + std::to_string(d.opts.port);
    };
    auto fail = [&](const char* what) {
        diag.message =
            std::string("http server: cannot ") + what + " " + where() + ": " + ec.message();
        error_code ignored;
        d.acceptor.close(ignored);
        return ec;
    };
    d.acceptor.open(ep.protocol(), ec);
    if (ec)
        return fail("open a socket for");
    d.acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    if (ec)
        return fail("configure");
    d.acceptor.bind(ep, ec);
    if (ec)
        return fail("bind");
    d.acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
        return fail("listen on");
    auto local = d.acceptor.local_endpoint(ec);
    if (ec)
        return fail("read the bound port of");
    d.bound_port.store(local.port(), std::memory_order_relaxed);
    return {};
}

std::uint16_t server::port() const noexcept {
    return impl_->bound_port.load(std::memory_order_relaxed);
}

awaitable<error_code> server::run() {
    auto self = impl_;
    // The loop runs on the server's strand whatever executor the caller awaits on; the
    // caller's cancellation reaches the accept loop (see detail/await_on.hpp).
    auto ec = co_await penne::detail::await_on(self->strand, self->accept_loop());
    co_return ec;
}

void server::stop() {
    auto self = impl_;
    asio::dispatch(self->strand, [self] { self->begin_stop(); });
}

}  // namespace penne::http
