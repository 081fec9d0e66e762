// The operations server over real sockets: every route fetched with a plain Beast client,
// /metrics validated by `promtool check metrics` (exit 0 only) and by our own exposition
// checker in every pipeline state, with and without the rigatoni names; keep-alive, size
// limits, read timeouts, bind errors, and graceful stop by stop() and by cancellation.

#include "exposition_check.hpp"
#include "temp_dir.hpp"

#include <penne/http/server.hpp>
#include <penne/metrics.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/parse.hpp>

#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>

#include <atomic>
#include <fstream>
#include <future>
#include <mutex>
#include <thread>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

// A blocking client socket that never waits longer than `timeout` for the server.
tcp::socket connect_to(asio::io_context& ioc, std::uint16_t port,
                       std::chrono::milliseconds timeout = 5000ms) {
    tcp::socket s(ioc);
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    timeval tv{};
    tv.tv_sec = timeout.count() / 1000;
    tv.tv_usec = (timeout.count() % 1000) * 1000;
    ::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(s.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return s;
}

struct response {
    unsigned status = 0;
    std::string body;
    std::string content_type;
    std::string allow;
    std::string content_length;
    bool keep_alive = false;
};

response exchange(tcp::socket& s, bhttp::verb method, const std::string& target,
                  unsigned version = 11) {
    bhttp::request<bhttp::empty_body> req{method, target, version};
    req.set(bhttp::field::host, "127.0.0.1");
    bhttp::write(s, req);
    beast::flat_buffer buf;
    bhttp::response_parser<bhttp::string_body> p;
    if (method == bhttp::verb::head)
        p.skip(true);
    bhttp::read(s, buf, p);
    const auto& res = p.get();
    response r;
    r.status = res.result_int();
    r.body = res.body();
    r.content_type = std::string(res[bhttp::field::content_type]);
    r.allow = std::string(res[bhttp::field::allow]);
    r.content_length = std::string(res[bhttp::field::content_length]);
    r.keep_alive = res.keep_alive();
    return r;
}

response get(asio::io_context& ioc, std::uint16_t port, const std::string& target,
             bhttp::verb method = bhttp::verb::get) {
    auto s = connect_to(ioc, port);
    return exchange(s, method, target);
}

// True when the server closed the connection (EOF or reset) before `timeout`.
bool closed_by_server(tcp::socket& s) {
    char c;
    boost::system::error_code ec;
    s.read_some(asio::buffer(&c, 1), ec);
    return ec == asio::error::eof || ec == asio::error::connection_reset;
}

struct promtool_result {
    int exit_code = -1;
    std::string output;
};

promtool_result promtool_check(const std::string& exposition) {
    penne::test::temp_dir dir("penne-promtool");
    std::string in = dir / "metrics.prom";
    std::string out = dir / "promtool.out";
    std::ofstream(in, std::ios::binary) << exposition;
    std::string cmd =
        std::string(PENNE_PROMTOOL) + " check metrics < '" + in + "' > '" + out + "' 2>&1";
    int status = std::system(cmd.c_str());
    promtool_result r;
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::ifstream f(out);
    r.output.assign(std::istreambuf_iterator<char>(f), {});
    return r;
}

// An io_context on two threads (the server must be correct with several), one server.
class ServerTest : public ::testing::Test {
protected:
    void SetUp() override {
        for (int i = 0; i < 2; ++i)
            threads_.emplace_back([this] { ioc_.run(); });
    }
    void TearDown() override {
        if (srv_) {
            srv_->stop();
            if (done_.valid()) {
                EXPECT_EQ(done_.wait_for(10s), std::future_status::ready);
            }
        }
        work_.reset();
        for (auto& t : threads_)
            t.join();
    }

    void start(penne::http::server_options opts = {}) {
        opts.port = 0;
        penne::http::server_handlers h;
        h.metrics = [this](std::string& out) { registry_->render(out); };
        h.ready = [this] {
            std::lock_guard lock(mu_);
            return penne::http::readiness{ready_, reason_};
        };
        h.status = [this] {
            if (status_throws_)
                throw std::runtime_error("secret=hunter2");
            return std::string(R"({"scopes":[{"id":"shop","lag_seconds":1.5}]})");
        };
        srv_ = std::make_unique<penne::http::server>(ioc_.get_executor(), opts, h);
        penne::diagnostics diag;
        auto ec = srv_->listen(diag);
        ASSERT_FALSE(ec) << diag.message;
        ASSERT_NE(srv_->port(), 0);
        done_ = asio::co_spawn(ioc_, srv_->run(), asio::use_future);
    }

    void set_ready(bool r, std::string why) {
        std::lock_guard lock(mu_);
        ready_ = r;
        reason_ = std::move(why);
    }

    asio::io_context ioc_;
    asio::executor_work_guard<asio::io_context::executor_type> work_{ioc_.get_executor()};
    std::vector<std::thread> threads_;
    asio::io_context client_;  // blocking client sockets only; never run
    std::unique_ptr<penne::metrics_registry> registry_ =
        std::make_unique<penne::metrics_registry>();
    std::unique_ptr<penne::http::server> srv_;
    std::future<penne::error_code> done_;
    std::mutex mu_;
    bool ready_ = true;
    std::string reason_;
    std::atomic<bool> status_throws_{false};
};

// Touches every family penne declares, with awkward label values, so the exposition
// contains every shape the daemon can produce.
void exercise(const penne::pipeline_metrics& pm) {
    auto now = std::chrono::system_clock::now();
    pm.set_active_collections(2);
    for (std::string_view coll : {"orders", "we\"ird\\na\nme \xc3\xa9"}) {
        auto cm = pm.for_collection("shop", coll);
        penne::operation_counts ops{3, 2, 1, 1, 1};
        cm.received(ops, 8000, 6000);
        cm.sealed(penne::seal_reason::count, 8, 6000);
        cm.sealed(penne::seal_reason::age, 0, 0);
        cm.durable(ops, 2000, 1500ms, 2s);
        cm.failed(make_error_code(penne::errc::unencodable_event));
    }
    auto sm = pm.for_scope("shop");
    sm.uploaded(120ms, 2000);
    sm.upload_attempt_duration.observe(0.05);
    sm.upload_retry(make_error_code(boost::system::errc::timed_out));
    sm.upload_error(make_error_code(penne::errc::permanent_rejection));
    sm.lag.set(now - 2s);
    sm.checkpoint_saved(now);
    sm.events_replay_skipped.inc(4);
    sm.stream_resume("ResumableChangeStreamError");
    sm.stream_reconnect("network");
    sm.lease_acquired(true);
    sm.lease_refreshed();
    sm.lease_acquire_failed("already_held");
    sm.lease_lost();
    sm.lease_acquired(false);
    sm.lease_released();
    pm.state_store_op("checkpoint", 3ms, {});
    pm.state_store_op("record", 40ms, make_error_code(penne::errc::timeout));
    pm.add_backpressure(250ms);
    pm.buffered_bytes.set(1 << 20);
}

TEST_F(ServerTest, HealthReadyStatusAndErrors) {
    start();
    auto h = get(client_, srv_->port(), "/health");
    EXPECT_EQ(h.status, 200u);
    EXPECT_EQ(h.body, "ok\n");

    auto r = get(client_, srv_->port(), "/ready");
    EXPECT_EQ(r.status, 200u);
    EXPECT_EQ(r.body, "ready\n");
    set_ready(false, "scope shop: state store unreachable");
    r = get(client_, srv_->port(), "/ready");
    EXPECT_EQ(r.status, 503u);
    EXPECT_EQ(r.body, "not ready: scope shop: state store unreachable\n");
    set_ready(true, "");
    EXPECT_EQ(get(client_, srv_->port(), "/ready").status, 200u);

    auto st = get(client_, srv_->port(), "/status?pretty=1");
    EXPECT_EQ(st.status, 200u);
    EXPECT_EQ(st.content_type, "application/json");
    auto doc = boost::json::parse(st.body);
    EXPECT_EQ(doc.at("scopes").at(0).at("id").as_string(), "shop");

    status_throws_ = true;
    st = get(client_, srv_->port(), "/status");
    EXPECT_EQ(st.status, 500u);
    EXPECT_EQ(st.body.find("hunter2"), std::string::npos);

    EXPECT_EQ(get(client_, srv_->port(), "/").status, 404u);
    EXPECT_EQ(get(client_, srv_->port(), "/metricsx").status, 404u);
    auto post = get(client_, srv_->port(), "/metrics", bhttp::verb::post);
    EXPECT_EQ(post.status, 405u);
    EXPECT_EQ(post.allow, "GET, HEAD");
    EXPECT_EQ(get(client_, srv_->port(), "/health", bhttp::verb::delete_).status, 405u);

    auto head = get(client_, srv_->port(), "/health", bhttp::verb::head);
    EXPECT_EQ(head.status, 200u);
    EXPECT_EQ(head.content_length, "3");
    EXPECT_TRUE(head.body.empty());
}

TEST_F(ServerTest, MetricsPassPromtoolInEveryStateWithAndWithoutCompat) {
    for (bool compat : {false, true}) {
        SCOPED_TRACE(compat ? "rigatoni compat" : "penne names");
        // The server renders whatever registry_ holds; swap it between runs.
        if (srv_) {
            srv_->stop();
            ASSERT_EQ(done_.wait_for(10s), std::future_status::ready);
            srv_.reset();
        }
        registry_ = std::make_unique<penne::metrics_registry>(penne::metrics_options{
            .max_series = 40});  // small, so the dropped-series counter shows up too
        penne::pipeline_metrics pm(*registry_, {.rigatoni_compat = compat});
        exercise(pm);
        for (int i = 0; i < 50; ++i)
            pm.for_collection("shop", "c" + std::to_string(i)).bytes_received.inc();
        start();
        for (auto s : {penne::pipeline_status::stopped, penne::pipeline_status::running,
                       penne::pipeline_status::degraded, penne::pipeline_status::failed}) {
            pm.set_status(s);
            auto m = get(client_, srv_->port(), "/metrics");
            ASSERT_EQ(m.status, 200u);
            EXPECT_EQ(m.content_type, "text/plain; version=0.0.4; charset=utf-8");
            EXPECT_NE(
                m.body.find("penne_pipeline_status " + std::to_string(static_cast<int>(s)) + "\n"),
                std::string::npos);
            EXPECT_NE(m.body.find("penne_metrics_series_dropped_total{metric="), std::string::npos);
            EXPECT_EQ(m.body.find("rigatoni_") != std::string::npos, compat);
            auto pt = promtool_check(m.body);
            EXPECT_EQ(pt.exit_code, 0) << pt.output << "\n---\n" << m.body;
            auto problems = penne::test::check_exposition(m.body);
            for (const auto& p : problems)
                ADD_FAILURE() << p;
        }
    }
}

TEST_F(ServerTest, CheckerAndPromtoolCatchBrokenExpositions) {
    // The validators themselves must fail on what they claim to catch.
    const std::string no_inf =
        "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n";
    EXPECT_FALSE(penne::test::check_exposition(no_inf).empty());
    const std::string decreasing =
        "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"2\"} 1\n"
        "h_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 2\n";
    EXPECT_FALSE(penne::test::check_exposition(decreasing).empty());
    const std::string count_mismatch =
        "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n";
    EXPECT_FALSE(penne::test::check_exposition(count_mismatch).empty());
    const std::string duplicate =
        "# HELP c_total x\n# TYPE c_total counter\n"
        "c_total{a=\"1\",b=\"2\"} 1\nc_total{b=\"2\",a=\"1\"} 1\n";
    EXPECT_FALSE(penne::test::check_exposition(duplicate).empty());
    EXPECT_NE(promtool_check("# TYPE x gauge\nx{a=\"unterminated} 1\n").exit_code, 0);
}

TEST_F(ServerTest, ScrapeWhileUpdating) {
    penne::pipeline_metrics pm(*registry_);
    start();
    std::atomic<bool> stop{false};
    std::vector<std::thread> writers;
    for (int t = 0; t < 2; ++t) {
        writers.emplace_back([&, t] {
            auto cm = pm.for_collection("s", "c" + std::to_string(t));
            while (!stop.load(std::memory_order_relaxed)) {
                cm.received(penne::metric_operation::insert, 800, 600);
                cm.sealed(penne::seal_reason::count, 1, 600);
            }
        });
    }
    for (int i = 0; i < 20; ++i) {
        auto m = get(client_, srv_->port(), "/metrics");
        ASSERT_EQ(m.status, 200u);
        auto problems = penne::test::check_exposition(m.body);
        for (const auto& p : problems)
            ADD_FAILURE() << p;
    }
    stop = true;
    for (auto& w : writers)
        w.join();
}

TEST_F(ServerTest, KeepAliveAndHttp10) {
    start();
    auto s = connect_to(client_, srv_->port());
    for (const char* target : {"/health", "/metrics", "/ready", "/status"}) {
        auto r = exchange(s, bhttp::verb::get, target);
        EXPECT_EQ(r.status, 200u) << target;
        EXPECT_TRUE(r.keep_alive) << target;
    }
    // HTTP/1.0 without Connection: keep-alive gets one answer, then the server closes.
    auto s10 = connect_to(client_, srv_->port());
    auto r = exchange(s10, bhttp::verb::get, "/health", 10);
    EXPECT_EQ(r.status, 200u);
    EXPECT_FALSE(r.keep_alive);
    EXPECT_TRUE(closed_by_server(s10));
}

TEST_F(ServerTest, SizeLimits) {
    penne::http::server_options o;
    o.max_header_bytes = 1024;
    o.max_body_bytes = 16;
    start(o);
    {
        auto s = connect_to(client_, srv_->port());
        bhttp::request<bhttp::empty_body> req{bhttp::verb::get, "/health", 11};
        req.set("x-padding", std::string(4096, 'a'));
        bhttp::write(s, req);
        beast::flat_buffer buf;
        bhttp::response<bhttp::string_body> res;
        bhttp::read(s, buf, res);
        EXPECT_EQ(res.result_int(), 431u);
        EXPECT_TRUE(closed_by_server(s));
    }
    {
        auto s = connect_to(client_, srv_->port());
        bhttp::request<bhttp::string_body> req{bhttp::verb::get, "/health", 11};
        req.body() = std::string(1000, 'b');
        req.prepare_payload();
        bhttp::write(s, req);
        beast::flat_buffer buf;
        bhttp::response<bhttp::string_body> res;
        bhttp::read(s, buf, res);
        EXPECT_EQ(res.result_int(), 413u);
        EXPECT_TRUE(closed_by_server(s));
    }
    {
        auto s = connect_to(client_, srv_->port());
        asio::write(s, asio::buffer(std::string("NOT HTTP AT ALL\r\n\r\n")));
        beast::flat_buffer buf;
        bhttp::response<bhttp::string_body> res;
        bhttp::read(s, buf, res);
        EXPECT_EQ(res.result_int(), 400u);
    }
    // The server still serves after all that.
    EXPECT_EQ(get(client_, srv_->port(), "/health").status, 200u);
}

TEST_F(ServerTest, ReadTimeoutClosesSilentConnections) {
    penne::http::server_options o;
    o.read_timeout = 300ms;
    start(o);
    auto s = connect_to(client_, srv_->port());
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_TRUE(closed_by_server(s));
    auto waited = std::chrono::steady_clock::now() - t0;
    EXPECT_GE(waited, 250ms);
    EXPECT_LT(waited, 4s);
    // Idle keep-alive connections are subject to the same limit.
    auto k = connect_to(client_, srv_->port());
    EXPECT_EQ(exchange(k, bhttp::verb::get, "/health").status, 200u);
    EXPECT_TRUE(closed_by_server(k));
}

TEST_F(ServerTest, GracefulStopClosesIdleConnectionsAndCompletes) {
    start();
    auto idle = connect_to(client_, srv_->port());
    EXPECT_EQ(exchange(idle, bhttp::verb::get, "/health").status, 200u);
    auto port = srv_->port();
    srv_->stop();
    ASSERT_EQ(done_.wait_for(5s), std::future_status::ready);
    EXPECT_FALSE(done_.get());
    EXPECT_TRUE(closed_by_server(idle));
    tcp::socket s(client_);
    boost::system::error_code ec;
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), ec);
    EXPECT_EQ(ec, asio::error::connection_refused);
    srv_.reset();
}

TEST_F(ServerTest, CancellingRunStopsTheServer) {
    penne::http::server_handlers h;
    auto srv = std::make_unique<penne::http::server>(ioc_.get_executor(),
                                                     penne::http::server_options{.port = 0}, h);
    penne::diagnostics diag;
    ASSERT_FALSE(srv->listen(diag)) << diag.message;
    asio::cancellation_signal sig;
    auto strand = asio::make_strand(ioc_);
    auto fut = asio::co_spawn(strand, srv->run(),
                              asio::bind_cancellation_slot(sig.slot(), asio::use_future));
    EXPECT_EQ(get(client_, srv->port(), "/health").status, 200u);
    // /metrics without a metrics callback does not exist.
    EXPECT_EQ(get(client_, srv->port(), "/metrics").status, 404u);
    auto idle = connect_to(client_, srv->port());
    EXPECT_EQ(exchange(idle, bhttp::verb::get, "/health").status, 200u);
    asio::post(strand, [&] { sig.emit(asio::cancellation_type::terminal); });
    ASSERT_EQ(fut.wait_for(5s), std::future_status::ready);
    EXPECT_FALSE(fut.get());
    EXPECT_TRUE(closed_by_server(idle));
}

TEST_F(ServerTest, ListenErrorsAreValuesWithDiagnostics) {
    start();
    penne::http::server other(ioc_.get_executor(),
                              penne::http::server_options{.port = srv_->port()}, {});
    penne::diagnostics diag;
    auto ec = other.listen(diag);
    EXPECT_EQ(ec, boost::system::errc::address_in_use);
    EXPECT_NE(diag.message.find("127.0.0.1:" + std::to_string(srv_->port())), std::string::npos)
        << diag.message;

    penne::http::server bad(ioc_.get_executor(),
                            penne::http::server_options{.address = "localhost:80"}, {});
    ec = bad.listen(diag);
    EXPECT_EQ(ec, penne::errc::invalid_config);
    EXPECT_NE(diag.message.find("localhost:80"), std::string::npos);
}

}  // namespace
