// A custom destination: every sealed batch is POSTed to an HTTP endpoint (a webhook, an
// ingestion service) instead of S3. The pipeline treats the batch as durable when put()
// completes without error, so put() only succeeds on a 2xx answer; a 5xx or a network error
// is returned as a retryable error and penne retries it with backoff, never losing it.
// The object key goes in a header, so the receiver can deduplicate the replays that follow
// a crash (same key, same bytes).
//
//   penne_example_http_destination [mongodb-uri] [database] [http://host:port/path]

#include <penne/destination.hpp>
#include <penne/http/client.hpp>
#include <penne/pipeline.hpp>

#include <boost/asio.hpp>

#include <cstdio>
#include <memory>
#include <string>

namespace asio = boost::asio;

class http_post_destination final : public penne::destination {
public:
    http_post_destination(asio::any_io_executor ex, std::string url)
        : client_(ex, penne::http::client_options{}), url_(std::move(url)) {
        ok_ = penne::http::parse_url(url_, target_);
    }

    asio::awaitable<penne::error_code> put(const penne::sealed_object& obj,
                                           penne::diagnostics& diag) override {
        std::vector<penne::http::header_field> headers{
            {"Host", target_.host_header},
            {"Content-Type", std::string(obj.content_type)},
            {"X-Penne-Key", std::string(obj.key)},
            {"X-Penne-Events", std::to_string(obj.event_count)}};
        if (!obj.content_encoding.empty())
            headers.push_back({"Content-Encoding", std::string(obj.content_encoding)});
        penne::http::request req;
        req.endpoint = {target_.tls, target_.host, target_.port};
        req.method = "POST";
        req.target = target_.target;
        req.headers = headers;
        req.body = obj.body;
        penne::http::response res;
        auto ec = co_await client_.send(req, res, diag);
        if (ec)
            co_return ec;  // network errors and timeouts are retryable
        if (res.status >= 200 && res.status < 300)
            co_return penne::error_code{};
        diag.message = "POST " + url_ + " answered " + std::to_string(res.status);
        // 5xx and 429: try again later; anything else stops the pipeline with this message.
        co_return make_error_code(res.status >= 500 || res.status == 429
                                      ? penne::errc::io_error
                                      : penne::errc::permanent_rejection);
    }

    asio::awaitable<penne::error_code> check(penne::diagnostics& diag) override {
        if (!ok_) {
            diag.message = "not an http(s) URL: " + url_;
            co_return make_error_code(penne::errc::invalid_config);
        }
        co_return penne::error_code{};
    }

    std::string describe() const override { return "http-post:" + url_; }

private:
    penne::http::client client_;
    std::string url_;
    penne::http::parsed_url target_;
    bool ok_ = false;
};

int main(int argc, char** argv) {
    asio::io_context ctx;
    penne::config cfg;
    cfg.mongodb.uri = argc > 1 ? argv[1] : "mongodb://127.0.0.1:27017/?replicaSet=rs0";
    cfg.watches.push_back({.level = "database", .database = argc > 2 ? argv[2] : "app"});
    cfg.state.path = "./penne-http-state";
    penne::hooks hooks;
    hooks.dest = std::make_shared<http_post_destination>(
        ctx.get_executor(), argc > 3 ? argv[3] : "http://127.0.0.1:9000/ingest");
    hooks.log = [](penne::log_level, std::string_view line) {
        std::fprintf(stderr, "%.*s\n", static_cast<int>(line.size()), line.data());
    };
    penne::pipeline pipe(ctx.get_executor(), cfg, hooks);

    asio::cancellation_signal stop;
    asio::signal_set signals(ctx, SIGINT, SIGTERM);
    signals.async_wait([&](auto ec, int) {
        if (!ec)
            stop.emit(asio::cancellation_type::terminal);
    });
    int rc = 0;
    asio::co_spawn(
        ctx,
        [&]() -> asio::awaitable<void> {
            penne::diagnostics diag;
            auto [ec] = co_await pipe.async_run(diag, asio::as_tuple(asio::use_awaitable));
            if (ec) {
                std::fprintf(stderr, "stopped: %s: %s\n", ec.message().c_str(),
                             diag.message.c_str());
                rc = 1;
            }
            signals.cancel();
        },
        asio::bind_cancellation_slot(stop.slot(), asio::detached));
    ctx.run();
    return rc;
}
