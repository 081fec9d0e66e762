#include <penne/http/client.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/span_body.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <openssl/ssl.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <map>
#include <mutex>
#include <optional>
#include <tuple>

namespace penne::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

class http_category_impl final : public classified_category {
public:
    const char* name() const noexcept override { return "penne.http"; }
    std::string message(int ev) const override {
        switch (static_cast<http_errc>(ev)) {
            case http_errc::malformed_response:
                return "malformed HTTP response";
            case http_errc::response_too_large:
                return "HTTP response exceeds the size limit";
            case http_errc::connection_closed:
                return "connection closed before the response completed";
            case http_errc::tls_error:
                return "TLS handshake or certificate verification failed";
            case http_errc::invalid_url:
                return "invalid URL";
        }
        return "unknown HTTP client error";
    }
    bool retryable(int ev) const noexcept override {
        switch (static_cast<http_errc>(ev)) {
            case http_errc::malformed_response:
            case http_errc::connection_closed:
                return true;
            default:
                return false;
        }
    }
};

bool iequals(std::string_view a, std::string_view b) noexcept {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

// Maps what Beast and Asio report to the errors documented in client.hpp.
error_code classify(const error_code& ec) {
    if (ec == beast::error::timeout)
        return make_error_code(errc::timeout);
    if (ec == bhttp::error::body_limit || ec == bhttp::error::header_limit ||
        ec == bhttp::error::buffer_overflow)
        return make_error_code(http_errc::response_too_large);
    if (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message ||
        ec == asio::ssl::error::stream_truncated)
        return make_error_code(http_errc::connection_closed);
    if (ec.category() == make_error_code(bhttp::error::bad_version).category())
        return make_error_code(http_errc::malformed_response);
    if (ec.category() == asio::error::get_ssl_category())
        return make_error_code(http_errc::tls_error);
    return ec;
}

// A connection that failed this way before any response byte arrived was probably closed
// by the server while it sat in the pool: sending again on a new connection is safe.
bool stale_connection_error(const error_code& ec) {
    return ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
           ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
           ec == asio::ssl::error::stream_truncated;
}

std::string endpoint_text(const endpoint_ref& ep) {
    std::string out = ep.tls ? "https://" : "http://";
    if (ep.host.find(':') != std::string_view::npos) {
        out += '[';
        out += ep.host;
        out += ']';
    } else {
        out += ep.host;
    }
    out += ':';
    out += std::to_string(ep.port);
    return out;
}

}  // namespace

const boost::system::error_category& http_category() noexcept {
    static const http_category_impl cat;
    return cat;
}

std::string_view response::header(std::string_view name) const noexcept {
    for (const auto& h : headers)
        if (iequals(h.name, name))
            return h.value;
    return {};
}

bool parse_url(std::string_view url, parsed_url& out) {
    out = {};
    std::string_view rest;
    if (url.substr(0, 7) == "http://") {
        rest = url.substr(7);
    } else if (url.substr(0, 8) == "https://") {
        out.tls = true;
        rest = url.substr(8);
    } else {
        return false;
    }
    const auto slash = rest.find_first_of("/?#");
    std::string_view authority = rest.substr(0, slash);
    std::string_view target = slash == std::string_view::npos ? "" : rest.substr(slash);
    if (const auto hash = target.find('#'); hash != std::string_view::npos)
        target = target.substr(0, hash);
    if (authority.empty() || authority.find('@') != std::string_view::npos)
        return false;
    std::string_view host = authority;
    std::string_view port;
    if (authority.front() == '[') {
        const auto close = authority.find(']');
        if (close == std::string_view::npos)
            return false;
        host = authority.substr(1, close - 1);
        auto after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':')
                return false;
            port = after.substr(1);
        }
    } else if (const auto colon = authority.rfind(':'); colon != std::string_view::npos) {
        host = authority.substr(0, colon);
        port = authority.substr(colon + 1);
    }
    if (host.empty())
        return false;
    for (char c : host)
        if (std::iscntrl(static_cast<unsigned char>(c)) || c == ' ' || c == '/')
            return false;
    out.host = std::string(host);
    out.port = out.tls ? 443 : 80;
    if (!port.empty()) {
        unsigned value = 0;
        const auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
        if (ec != std::errc{} || p != port.data() + port.size() || value == 0 || value > 65535)
            return false;
        out.port = static_cast<std::uint16_t>(value);
    }
    out.target =
        target.empty() ? "/" : std::string(target.front() == '?' ? "/" : "") + std::string(target);
    const bool default_port = out.port == (out.tls ? 443 : 80);
    out.host_header = authority.front() == '[' ? "[" + out.host + "]" : out.host;
    if (!default_port)
        out.host_header += ":" + std::to_string(out.port);
    return true;
}

namespace {

struct pool_key {
    bool tls;
    std::string host;
    std::uint16_t port;
    bool operator<(const pool_key& o) const {
        return std::tie(tls, host, port) < std::tie(o.tls, o.host, o.port);
    }
};

struct connection {
    std::optional<beast::tcp_stream> plain;
    std::optional<beast::ssl_stream<beast::tcp_stream>> secure;
    beast::flat_buffer buffer;
    std::chrono::steady_clock::time_point idle_since;

    beast::tcp_stream& tcp() { return secure ? secure->next_layer() : *plain; }
    void close() {
        error_code ignored;
        tcp().socket().shutdown(tcp::socket::shutdown_both, ignored);
        tcp().socket().close(ignored);
    }
};

}  // namespace

struct client::impl {
    executor_type ex;
    client_options opts;
    std::optional<ssl::context> tls;  // made on first TLS use
    std::string tls_error;
    std::mutex mutex;  // guards pool and tls (held for a few operations only)
    std::map<pool_key, std::vector<std::unique_ptr<connection>>> pool;
    std::atomic<std::uint64_t> opened{0};

    impl(executor_type e, client_options o) : ex(std::move(e)), opts(std::move(o)) {}

    std::unique_ptr<connection> take(const pool_key& key) {
        const auto now = std::chrono::steady_clock::now();
        std::lock_guard lock(mutex);
        auto it = pool.find(key);
        if (it == pool.end())
            return nullptr;
        auto& idle = it->second;
        while (!idle.empty()) {
            auto c = std::move(idle.back());
            idle.pop_back();
            if (now - c->idle_since < opts.idle_timeout && c->tcp().socket().is_open())
                return c;
            c->close();
        }
        return nullptr;
    }

    void give_back(const pool_key& key, std::unique_ptr<connection> c) {
        c->idle_since = std::chrono::steady_clock::now();
        std::lock_guard lock(mutex);
        auto& idle = pool[key];
        // Expire the oldest first so a burst does not keep stale sockets forever.
        std::erase_if(idle, [&](const std::unique_ptr<connection>& x) {
            if (c->idle_since - x->idle_since >= opts.idle_timeout) {
                x->close();
                return true;
            }
            return false;
        });
        if (idle.size() >= opts.max_idle_per_endpoint) {
            c->close();
            return;
        }
        idle.push_back(std::move(c));
    }

    ssl::context* tls_context(diagnostics& diag) {
        std::lock_guard lock(mutex);
        if (tls)
            return &*tls;
        ssl::context ctx(ssl::context::tls_client);
        ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                        ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
        error_code ec;
        if (opts.ca_file.empty())
            ctx.set_default_verify_paths(ec);
        else
            ctx.load_verify_file(opts.ca_file, ec);
        if (ec) {
            diag.message = "cannot load TLS trust store" +
                           (opts.ca_file.empty() ? std::string() : " '" + opts.ca_file + "'") +
                           ": " + ec.message();
            return nullptr;
        }
        ctx.set_verify_mode(opts.verify_peer ? ssl::verify_peer : ssl::verify_none);
        tls.emplace(std::move(ctx));
        return &*tls;
    }

    asio::awaitable<error_code> connect(const endpoint_ref& ep, connection& c, diagnostics& diag);

    template <class Stream>
    asio::awaitable<error_code> exchange(Stream& stream, connection& c, const request& req,
                                         response& res, bool& received_any, bool& reusable,
                                         diagnostics& diag);
};

asio::awaitable<error_code> client::impl::connect(const endpoint_ref& ep, connection& c,
                                                  diagnostics& diag) {
    using namespace asio::experimental::awaitable_operators;
    const auto where = endpoint_text(ep);
    tcp::resolver::results_type endpoints;
    error_code addr_ec;
    const auto literal = asio::ip::make_address(std::string(ep.host), addr_ec);
    if (!addr_ec) {
        endpoints = tcp::resolver::results_type::create(
            tcp::endpoint(literal, ep.port), std::string(ep.host), std::to_string(ep.port));
    } else {
        tcp::resolver resolver(ex);
        asio::steady_timer timer(ex);
        timer.expires_after(opts.connect_timeout);
        auto outcome =
            co_await (resolver.async_resolve(std::string(ep.host), std::to_string(ep.port),
                                             asio::as_tuple(asio::use_awaitable)) ||
                      timer.async_wait(asio::as_tuple(asio::use_awaitable)));
        if (outcome.index() == 1) {
            diag.message = "resolving " + std::string(ep.host) + " timed out";
            co_return make_error_code(errc::timeout);
        }
        auto [ec, results] = std::get<0>(std::move(outcome));
        if (ec) {
            diag.message = "cannot resolve " + std::string(ep.host) + ": " + ec.message();
            co_return ec;
        }
        endpoints = std::move(results);
    }

    if (ep.tls) {
        auto* ctx = tls_context(diag);
        if (!ctx)
            co_return make_error_code(http_errc::tls_error);
        c.secure.emplace(ex, *ctx);
    } else {
        c.plain.emplace(ex);
    }
    auto& tcp_stream = c.tcp();
    tcp_stream.expires_after(opts.connect_timeout);
    auto [cec, peer] =
        co_await tcp_stream.async_connect(endpoints, asio::as_tuple(asio::use_awaitable));
    if (cec) {
        diag.message = "cannot connect to " + where + ": " + classify(cec).message();
        co_return classify(cec);
    }
    opened.fetch_add(1, std::memory_order_relaxed);
    error_code opt_ec;
    tcp_stream.socket().set_option(tcp::no_delay(true), opt_ec);

    if (ep.tls) {
        const std::string host(ep.host);
        if (addr_ec) {  // SNI only for names, never for IP literals (RFC 6066 §3)
            if (!SSL_set_tlsext_host_name(c.secure->native_handle(), host.c_str())) {
                diag.message = "cannot set TLS SNI for " + host;
                co_return make_error_code(http_errc::tls_error);
            }
        }
        if (opts.verify_peer)
            c.secure->set_verify_callback(ssl::host_name_verification(host));
        tcp_stream.expires_after(opts.connect_timeout);
        auto [hec] = co_await c.secure->async_handshake(ssl::stream_base::client,
                                                        asio::as_tuple(asio::use_awaitable));
        if (hec) {
            diag.message = "TLS handshake with " + where + " failed: " + hec.message();
            if (hec.category() == asio::error::get_ssl_category())
                diag.message +=
                    opts.verify_peer
                        ? " (check the server certificate, its host name and the CA file)"
                        : "";
            co_return classify(hec);
        }
    }
    co_return error_code{};
}

template <class Stream>
asio::awaitable<error_code> client::impl::exchange(Stream& stream, connection& c,
                                                   const request& req, response& res,
                                                   bool& received_any, bool& reusable,
                                                   diagnostics& diag) {
    using namespace asio::experimental::awaitable_operators;
    const auto timeout = req.timeout.value_or(opts.request_timeout);
    auto& tcp_stream = c.tcp();

    bhttp::request<bhttp::span_body<const char>> msg;
    msg.version(11);
    msg.method_string(req.method);
    msg.target(req.target);
    bool has_agent = false;
    for (const auto& h : req.headers) {
        if (iequals(h.name, "user-agent"))
            has_agent = true;
        if (iequals(h.name, "content-length") || iequals(h.name, "expect"))
            continue;  // ours to set
        msg.insert(h.name, h.value);
    }
    if (!has_agent && !opts.user_agent.empty())
        msg.set(bhttp::field::user_agent, opts.user_agent);
    msg.body() = {req.body.data(), req.body.size()};
    const bool body_method = req.method == "PUT" || req.method == "POST";
    if (!req.body.empty() || body_method)
        msg.content_length(req.body.size());
    msg.keep_alive(true);
    const bool expect_continue =
        opts.expect_continue_bytes > 0 && req.body.size() >= opts.expect_continue_bytes;
    if (expect_continue)
        msg.set(bhttp::field::expect, "100-continue");

    std::optional<bhttp::response_parser<bhttp::string_body>> parser;
    auto fresh_parser = [&] {
        parser.emplace();
        parser->header_limit(
            static_cast<std::uint32_t>(std::min<std::size_t>(opts.max_header_bytes, UINT32_MAX)));
        parser->body_limit(opts.max_body_bytes);
        if (req.method == "HEAD")
            parser->skip(true);
    };
    fresh_parser();

    bhttp::request_serializer<bhttp::span_body<const char>> sr(msg);
    tcp_stream.expires_after(timeout);
    bool final_early = false;  // the server answered before we sent the body
    if (expect_continue) {
        auto [hec, hn] =
            co_await bhttp::async_write_header(stream, sr, asio::as_tuple(asio::use_awaitable));
        (void)hn;
        if (hec) {
            diag.message = "sending the request head failed: " + classify(hec).message();
            co_return hec;
        }
        asio::steady_timer timer(ex);
        timer.expires_after(opts.expect_continue_timeout);
        auto outcome = co_await (bhttp::async_read_header(stream, c.buffer, *parser,
                                                          asio::as_tuple(asio::use_awaitable)) ||
                                 timer.async_wait(asio::as_tuple(asio::use_awaitable)));
        if (outcome.index() == 0) {
            auto [rec, rn] = std::get<0>(outcome);
            (void)rn;
            if (rec) {
                diag.message = "reading the interim response failed: " + classify(rec).message();
                co_return rec;
            }
            received_any = true;
            if (parser->get().result() == bhttp::status::continue_)
                fresh_parser();
            else
                final_early = true;  // refused before the body: do not send it
        }
        // When the timer wins the server stays silent about 100-continue: send the body.
    }
    if (!final_early) {
        auto [wec, wn] =
            co_await bhttp::async_write(stream, sr, asio::as_tuple(asio::use_awaitable));
        (void)wn;
        if (wec) {
            diag.message = "sending the request failed: " + classify(wec).message();
            co_return wec;
        }
    }
    for (;;) {
        auto [rec, rn] = co_await bhttp::async_read(stream, c.buffer, *parser,
                                                    asio::as_tuple(asio::use_awaitable));
        (void)rn;
        if (rec) {
            received_any = received_any || parser->got_some() || c.buffer.size() > 0;
            diag.message = "reading the response failed: " + classify(rec).message();
            co_return rec;
        }
        received_any = true;
        // An interim response we did not wait for (a late 100): read the final one.
        if (!final_early && parser->get().result_int() < 200) {
            fresh_parser();
            continue;
        }
        break;
    }

    auto& msg_in = parser->get();
    res.status = msg_in.result_int();
    res.headers.clear();
    for (const auto& f : msg_in)
        res.headers.push_back({std::string(f.name_string()), std::string(f.value())});
    res.body = std::move(msg_in.body());
    reusable = !final_early && msg_in.keep_alive() && msg_in.need_eof() == false;
    co_return error_code{};
}

client::client(executor_type ex, client_options opts)
    : impl_(std::make_unique<impl>(std::move(ex), std::move(opts))) {}

client::~client() {
    clear_pool();
}

asio::awaitable<error_code> client::send(const request& req, response& res, diagnostics& diag) {
    auto& d = *impl_;
    diag.clear();
    if (req.endpoint.host.empty() || req.endpoint.port == 0) {
        diag.message = "request without a host or port";
        co_return make_error_code(http_errc::invalid_url);
    }
    const pool_key key{req.endpoint.tls, std::string(req.endpoint.host), req.endpoint.port};
    // At most one retry, and only for a pooled connection that turned out to be closed.
    for (int attempt = 0;; ++attempt) {
        auto c = attempt == 0 ? d.take(key) : nullptr;
        const bool reused = c != nullptr;
        if (!c) {
            c = std::make_unique<connection>();
            auto ec = co_await d.connect(req.endpoint, *c, diag);
            if (ec)
                co_return ec;
        }
        bool received_any = false;
        bool reusable = false;
        error_code ec;
        if (c->secure)
            ec = co_await d.exchange(*c->secure, *c, req, res, received_any, reusable, diag);
        else
            ec = co_await d.exchange(*c->plain, *c, req, res, received_any, reusable, diag);
        if (!ec) {
            if (reusable)
                d.give_back(key, std::move(c));
            else
                c->close();
            co_return error_code{};
        }
        c->close();
        if (reused && !received_any && stale_connection_error(ec))
            continue;
        diag.message = req.method.empty() ? diag.message
                                          : std::string(req.method) + " " +
                                                endpoint_text(req.endpoint) + ": " + diag.message;
        co_return classify(ec);
    }
}

void client::clear_pool() {
    std::lock_guard lock(impl_->mutex);
    for (auto& [key, idle] : impl_->pool)
        for (auto& c : idle)
            c->close();
    impl_->pool.clear();
}

std::size_t client::idle_connections() const {
    std::lock_guard lock(impl_->mutex);
    std::size_t n = 0;
    for (const auto& [key, idle] : impl_->pool)
        n += idle.size();
    return n;
}

std::uint64_t client::connections_opened() const noexcept {
    return impl_->opened.load(std::memory_order_relaxed);
}

const client_options& client::options() const noexcept {
    return impl_->opts;
}

client::executor_type client::get_executor() const noexcept {
    return impl_->ex;
}

}  // namespace penne::http
