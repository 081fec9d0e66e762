// penne next to an existing Beast HTTP server, both on one single-threaded io_context.
//
// The "existing application" is a tiny HTTP server (GET / answers "hello"); penne streams the
// changes of one MongoDB database into a local directory beside it, and the server exposes
// penne's progress at GET /penne (stats() and ready() are safe from any thread; here
// everything runs on the one thread anyway). Ctrl-C stops gracefully (a second Ctrl-C stops
// at once): the application owns the signals and turns them into cancellation.
//
//   penne_example_beast_server [mongodb-uri] [database] [out-dir] [http-port]
//   curl localhost:8080/penne

#include <penne/pipeline.hpp>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <cstdio>
#include <functional>
#include <string>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

// One connection of the application's own server.
asio::awaitable<void> serve(asio::ip::tcp::socket sock, const penne::pipeline& pipe) {
    beast::flat_buffer buf;
    for (;;) {
        http::request<http::string_body> req;
        auto [ec, n] =
            co_await http::async_read(sock, buf, req, asio::as_tuple(asio::use_awaitable));
        if (ec)
            co_return;
        http::response<http::string_body> res{http::status::ok, req.version()};
        res.set(http::field::content_type, "text/plain");
        if (req.target() == "/penne") {
            const auto& st = pipe.stats();
            std::string reason;
            const bool ready = pipe.ready(reason);
            res.body() = "events read " + std::to_string(st.events_received.load()) + ", written " +
                         std::to_string(st.events_written.load()) + " in " +
                         std::to_string(st.objects_written.load()) + " objects; " +
                         (ready ? "ready" : "not ready: " + reason) + "\n";
        } else {
            res.body() = "hello\n";
        }
        res.keep_alive(req.keep_alive());
        res.prepare_payload();
        auto [wec, m] = co_await http::async_write(sock, res, asio::as_tuple(asio::use_awaitable));
        if (wec || !req.keep_alive())
            co_return;
    }
}

asio::awaitable<void> listen(asio::ip::tcp::acceptor& acc, const penne::pipeline& pipe) {
    for (;;) {
        auto [ec, sock] = co_await acc.async_accept(asio::as_tuple(asio::use_awaitable));
        if (ec)
            co_return;
        asio::co_spawn(acc.get_executor(), serve(std::move(sock), pipe), asio::detached);
    }
}

int main(int argc, char** argv) {
    asio::io_context ctx;  // the application's one and only io_context (one thread)

    penne::config cfg;
    cfg.mongodb.uri = argc > 1 ? argv[1] : "mongodb://127.0.0.1:27017/?replicaSet=rs0";
    cfg.watches.push_back({.level = "database", .database = argc > 2 ? argv[2] : "app"});
    cfg.destination.path = argc > 3 ? argv[3] : "./penne-out";
    cfg.state.path = cfg.destination.path + "-state";
    penne::hooks hooks;
    hooks.log = [](penne::log_level, std::string_view line) {
        std::fprintf(stderr, "penne: %.*s\n", static_cast<int>(line.size()), line.data());
    };
    penne::pipeline pipe(ctx.get_executor(), cfg, hooks);

    const auto port = static_cast<unsigned short>(argc > 4 ? std::stoi(argv[4]) : 8080);
    asio::ip::tcp::acceptor acc(ctx, {asio::ip::make_address("127.0.0.1"), port});
    asio::co_spawn(ctx, listen(acc, pipe), asio::detached);

    // Signals belong to the application: the first one drains penne, the second stops it now.
    asio::cancellation_signal stop;
    asio::signal_set signals(ctx, SIGINT, SIGTERM);
    std::function<void(boost::system::error_code, int)> on_signal = [&](auto ec, int) {
        if (ec)
            return;
        stop.emit(asio::cancellation_type::terminal);
        signals.async_wait(on_signal);
    };
    signals.async_wait(on_signal);

    int exit_code = 0;
    penne::diagnostics diag;
    pipe.async_run(diag, asio::bind_cancellation_slot(stop.slot(), [&](penne::error_code ec) {
                       if (ec) {
                           std::fprintf(stderr, "penne stopped: %s: %s\n", ec.message().c_str(),
                                        diag.message.c_str());
                           exit_code = 1;
                       }
                       signals.cancel();  // the application decides when it is done
                       acc.close();
                   }));
    ctx.run();
    return exit_code;
}
