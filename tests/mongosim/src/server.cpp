#include "connection.hpp"
#include "preload.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <boost/system/errc.hpp>
#include <boost/system/system_error.hpp>

#include <cctype>
#include <cstdio>
#include <future>
#include <optional>
#include <string>

namespace mongosim {
namespace {

std::string advertised_host(const std::string& host) {
    // A wildcard bind is reachable on loopback; hello must name a connectable address.
    if (host == "0.0.0.0" || host.empty())
        return "127.0.0.1";
    if (host == "::")
        return "[::1]";
    if (host.find(':') != std::string::npos)
        return "[" + host + "]";
    return host;
}

// The server's TLS context: TLS 1.2+, the certificate and key, and with a CA file mutual
// TLS (a client without a certificate from that CA fails the handshake).
error_code load_tls(const server_options& o, std::optional<asio::ssl::context>& out,
                    std::string& detail) {
    namespace ssl = asio::ssl;
    if (o.tls_cert_file.empty()) {
        if (!o.tls_key_file.empty() || !o.tls_ca_file.empty()) {
            detail = "TLS needs a certificate: --tls-key and --tls-ca go with --tls-cert";
            return make_error_code(boost::system::errc::invalid_argument);
        }
        return {};
    }
    if (o.tls_key_file.empty()) {
        detail = "--tls-cert needs --tls-key";
        return make_error_code(boost::system::errc::invalid_argument);
    }
    auto& ctx = out.emplace(ssl::context::tls_server);
    boost::system::error_code ec;
    ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                        ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                        ssl::context::single_dh_use,
                    ec);
    // An encrypted key fails to load instead of prompting on the terminal.
    if (!ec)
        ctx.set_password_callback(
            [](std::size_t, ssl::context::password_purpose) { return std::string(); }, ec);
    if (!ec) {
        ctx.use_certificate_chain_file(o.tls_cert_file, ec);
        if (ec)
            detail = "TLS certificate " + o.tls_cert_file + ": " + ec.message();
    }
    if (!ec) {
        ctx.use_private_key_file(o.tls_key_file, ssl::context::pem, ec);
        if (ec)
            detail = "TLS key " + o.tls_key_file + ": " + ec.message();
    }
    if (!ec && SSL_CTX_check_private_key(ctx.native_handle()) != 1) {
        detail = "TLS key " + o.tls_key_file + " does not match " + o.tls_cert_file;
        ec = make_error_code(boost::system::errc::invalid_argument);
    }
    if (!ec && !o.tls_ca_file.empty()) {
        ctx.load_verify_file(o.tls_ca_file, ec);
        if (ec)
            detail = "TLS CA file " + o.tls_ca_file + ": " + ec.message();
        else
            ctx.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert, ec);
    }
    if (ec) {
        if (detail.empty())
            detail = "TLS setup: " + ec.message();
        out.reset();
    }
    return ec;
}

asio::awaitable<void> accept_loop(std::shared_ptr<shared_state> state, std::size_t member) {
    auto& acceptor = state->acceptors[member];
    auto ex = acceptor.get_executor();
    while (!state->stopping && acceptor.is_open()) {
        auto [ec, socket] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
        if (ec) {
            if (state->stopping || ec == asio::error::operation_aborted)
                break;
            continue;  // e.g. EMFILE: the listener stays up for the next client
        }
        boost::system::error_code ignored;
        socket.set_option(asio::ip::tcp::no_delay(true), ignored);
        auto c = std::make_shared<connection>(state, std::move(socket), member);
        asio::co_spawn(ex, c->run(), asio::detached);
    }
}

void step_down_now(shared_state& state) {
    if (state.stopping)
        return;
    if (auto old = state.processor.step_down())
        state.topology_changed(*old);
}

// --step-down-every: the primary moves on at a fixed interval until stop().
asio::awaitable<void> step_down_loop(std::shared_ptr<shared_state> state) {
    auto& timer = *state->step_down_timer;
    while (!state->stopping) {
        timer.expires_after(state->options.step_down_every);
        auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
        if (ec || state->stopping)
            break;
        step_down_now(*state);
    }
}

}  // namespace

server::server(asio::any_io_executor ex, server_options opts)
    : executor_(ex), state_(std::make_shared<shared_state>(ex, std::move(opts))) {
    const preload_options& load = state_->options.preload;
    if (load.events > 0) {
        const preload_summary s = preload(state_->processor.log(), load);
        std::fprintf(stderr,
                     "mongosim: preloaded %llu events (%llu inserts, %llu updates, %llu "
                     "deletes; %.1f MiB of BSON) over %zu x %zu collections in %.2f s\n",
                     static_cast<unsigned long long>(load.events),
                     static_cast<unsigned long long>(s.inserts),
                     static_cast<unsigned long long>(s.updates),
                     static_cast<unsigned long long>(s.deletes),
                     static_cast<double>(s.bson_bytes) / (1024.0 * 1024.0), load.databases,
                     load.collections, s.seconds);
    }
}

server::~server() = default;

error_code server::listen(std::string* detail) {
    std::string why;
    auto fail = [&](error_code ec) {
        if (detail)
            *detail = why.empty() ? ec.message() : why;
        return ec;
    };
    if (auto ec = load_tls(state_->options, state_->tls, why))
        return fail(ec);
    boost::system::error_code ec;
    auto addr = asio::ip::make_address(state_->options.host, ec);
    if (ec) {
        why = "bad address " + state_->options.host;
        return fail(ec);
    }
    auto& acceptors = state_->acceptors;
    const std::uint32_t base = state_->options.port;
    if (base != 0 && base + acceptors.size() - 1 > 65535) {
        why = "ports " + std::to_string(base) + "+" + std::to_string(acceptors.size() - 1) +
              " run past 65535";
        return fail(make_error_code(boost::system::errc::invalid_argument));
    }
    for (std::size_t i = 0; i < acceptors.size(); ++i) {
        // Member i listens on port+i (or a port of the kernel's choosing for port 0).
        const auto port = static_cast<std::uint16_t>(base == 0 ? 0 : base + i);
        asio::ip::tcp::endpoint ep(addr, port);
        auto& acc = acceptors[i];
        acc.open(ep.protocol(), ec);
        if (!ec)
            acc.set_option(asio::socket_base::reuse_address(true), ec);
        if (!ec)
            acc.bind(ep, ec);
        if (!ec)
            acc.listen(asio::socket_base::max_listen_connections, ec);
        if (ec) {
            boost::system::error_code ignored;
            for (auto& a : acceptors)
                a.close(ignored);
            why = "cannot listen on " + state_->options.host + ":" + std::to_string(port) + ": " +
                  ec.message();
            return fail(ec);
        }
    }
    // hello names the members by the ports the kernel picked.
    std::vector<std::string> addresses;
    for (std::size_t i = 0; i < acceptors.size(); ++i)
        addresses.push_back(address(i));
    state_->processor.advertise(std::move(addresses));
    return {};
}

std::uint16_t server::port(std::size_t member) const noexcept {
    if (member >= state_->acceptors.size())
        return 0;
    boost::system::error_code ec;
    auto ep = state_->acceptors[member].local_endpoint(ec);
    return ec ? 0 : ep.port();
}

std::string server::address(std::size_t member) const {
    return advertised_host(state_->options.host) + ":" + std::to_string(port(member));
}

std::size_t server::members() const noexcept {
    return state_->acceptors.size();
}

asio::awaitable<void> server::run() {
    auto state = state_;
    for (std::size_t i = 1; i < state->acceptors.size(); ++i)
        asio::co_spawn(executor_, accept_loop(state, i), asio::detached);
    if (state->options.step_down_every.count() > 0 && state->acceptors.size() > 1) {
        state->step_down_timer.emplace(executor_);
        asio::co_spawn(executor_, step_down_loop(state), asio::detached);
    }
    co_await accept_loop(state, 0);
}

void server::step_down() {
    asio::post(executor_, [state = state_] { step_down_now(*state); });
}

void server::stop() {
    asio::post(executor_, [state = state_] {
        if (state->stopping)
            return;
        state->stopping = true;
        boost::system::error_code ignored;
        for (auto& a : state->acceptors)
            a.close(ignored);
        if (state->step_down_timer)
            state->step_down_timer->cancel();
        // close() may not erase from the set (the coroutine does that), but copy anyway.
        auto conns = state->connections;
        for (auto* c : conns)
            c->close();
        state->notify_oplog();
    });
}

struct background::impl {
    asio::io_context io;
    server srv;
    std::thread thread;
    explicit impl(server_options opts) : srv(io.get_executor(), std::move(opts)) {}
};

background::background(server_options opts)
    : impl_(std::make_unique<impl>(opts)),
      host_(advertised_host(opts.host)),
      replset_(opts.replset) {
    std::string why;
    if (auto ec = impl_->srv.listen(&why))
        throw boost::system::system_error(ec, "mongosim listen: " + why);
    for (std::size_t i = 0; i < impl_->srv.members(); ++i)
        ports_.push_back(impl_->srv.port(i));
    impl_->srv.async_run(asio::detached);
    impl_->thread = std::thread([this] { impl_->io.run(); });
}

background::~background() {
    impl_->srv.stop();
    impl_->thread.join();
}

std::string background::seeds() const {
    std::string out;
    for (auto p : ports_) {
        if (!out.empty())
            out += ',';
        out += host_ + ":" + std::to_string(p);
    }
    return out;
}

std::string background::uri() const {
    return "mongodb://" + seeds() + "/?replicaSet=" + replset_;
}

void background::step_down() {
    std::promise<void> done;
    auto f = done.get_future();
    impl_->srv.step_down();
    // The step-down was posted first, so once this runs it has happened.
    asio::post(impl_->io, [&done] { done.set_value(); });
    f.wait();
}

std::string background::uri(const std::string& user, const std::string& password) const {
    // RFC 3986 userinfo: everything outside the unreserved set is percent-encoded.
    auto encode = [](const std::string& s) {
        std::string out;
        static const char hex[] = "0123456789ABCDEF";
        for (unsigned char c : s) {
            if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
                out.push_back(static_cast<char>(c));
            } else {
                out.push_back('%');
                out.push_back(hex[c >> 4]);
                out.push_back(hex[c & 15]);
            }
        }
        return out;
    };
    return "mongodb://" + encode(user) + ":" + encode(password) + "@" + seeds() +
           "/?replicaSet=" + replset_ + "&authSource=admin";
}

}  // namespace mongosim
