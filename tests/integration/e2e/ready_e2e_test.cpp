// /ready and /status of the real daemon while its peers fail, as an operator sees them:
// mongosim (written to by libmongoc under a steady insert load) → penne (a real process;
// state and leases in a real redis-server; destination a real S3, Ceph RGW) → bucket.
// Pausing redis-server (SIGSTOP) turns /ready to 503 with a reason naming the state store;
// stopping the RGW gateway turns it to 503 naming S3 while /status's lag grows; both come
// back to 200 when the peer returns, the lag falls again, and every inserted document is in
// the bucket exactly once (fetched by curl's own SigV4 signer and decoded independently).
// Every /metrics page on the way passes our exposition checker and promtool, and counts the
// S3 client's requests and retries and the Redis reconnects.

#include <boost/json/parse.hpp>

#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <fstream>
#include <map>
#include <optional>
#include <thread>

#include "bucket_mirror.hpp"
#include "exactly_once.hpp"
#include "mongo_inserter.hpp"
#include "ops_endpoints.hpp"
#include "output_reader.hpp"
#include "process.hpp"
#include "redis_peer.hpp"
#include "rgw_peer.hpp"
#include "temp_dir.hpp"

namespace penne::test {
namespace {

using namespace std::chrono_literals;

const auto* const mongoc = ::testing::AddGlobalTestEnvironment(new mongoc_env);
const auto* const rgw = ::testing::AddGlobalTestEnvironment(new rgw_peer_environment);

// Inserts documents 0, 1, 2, … into shop.c0..c2 in small bulks (about 400/s) from its own
// thread until stopped; written() is how many were acknowledged.
class steady_load {
public:
    explicit steady_load(int port)
        : thread_([this, port] {
              inserter ins(port);
              const std::vector<std::string> colls{"c0", "c1", "c2"};
              while (!stop_) {
                  const std::int64_t first = written_;
                  try {
                      ins.insert("shop", colls, first, first + 20, 20);
                  } catch (const std::exception& e) {
                      error_ = e.what();
                      return;
                  }
                  written_ = first + 20;
                  std::this_thread::sleep_for(50ms);
              }
          }) {}
    ~steady_load() { stop(); }
    std::int64_t stop() {
        stop_ = true;
        if (thread_.joinable())
            thread_.join();
        return written_;
    }
    std::int64_t written() const { return written_; }
    const std::string& error() const { return error_; }

private:
    std::atomic<bool> stop_{false};
    std::atomic<std::int64_t> written_{0};
    std::string error_;
    std::thread thread_;
};

class ready_e2e : public ::testing::Test {
protected:
    void SetUp() override {
        peer_ = rgw_peer_environment::peer();
        ASSERT_NE(peer_, nullptr) << rgw_peer_environment::failure();
        ASSERT_TRUE(redis_.ready()) << redis_.failure();
        bucket_ = "ready-" + std::to_string(++count_) + "-" + std::to_string(::getpid());
        port_ = free_port();
        mongosim_ = std::make_unique<process>(
            std::vector<std::string>{build_path("tests/mongosim/mongosim"), "--port",
                                     std::to_string(port_)},
            dir_ / "mongosim.log");
        ASSERT_TRUE(mongosim_->wait_for_output("mongosim listening on", 10s)) << mongosim_->log();
        process mb({build_path("app/penne"), "s3", "mb", "s3://" + bucket_}, dir_ / "mb.log",
                   aws_env());
        ASSERT_EQ(mb.wait(60s), 0) << mb.log();
        write_config();
    }
    void TearDown() override {
        if (redis_.pid() > 0)
            ::kill(redis_.pid(), SIGCONT);  // never leave a frozen process behind
        if (gateway_stopped_)
            peer_->start_gateway();  // the next test needs the shared gateway
    }

    std::map<std::string, std::string> aws_env() const {
        return {{"AWS_ACCESS_KEY_ID", peer_->access_key()},
                {"AWS_SECRET_ACCESS_KEY", peer_->secret_key()},
                {"AWS_REGION", peer_->region()},
                {"AWS_ENDPOINT_URL", peer_->endpoint()},
                {"AWS_EC2_METADATA_DISABLED", "true"},
                {"HOME", dir_.path().string()}};
    }

    // Short timeouts everywhere, so that an outage shows within a second or two.
    void write_config() {
        std::ofstream f(dir_ / "penne.toml");
        f << "[mongodb]\nuri = \"mongodb://127.0.0.1:" << port_
          << "/?directConnection=true\"\nmax_await_ms = 200\nconnect_timeout_ms = 2000\n\n"
          << "[[watch]]\nlevel = \"database\"\ndatabase = \"shop\"\n"
          << "[batch]\nmax_events = 200\nmax_age_ms = 200\n"
          << "[output]\nprefix = \"cdc\"\n"
          << "[destination]\ntype = \"s3\"\n"
          << "[s3]\nbucket = \"" << bucket_ << "\"\n"
          << "request_timeout_ms = 1000\nconnect_timeout_ms = 500\nmax_retries = 2\n"
          << "[state]\ntype = \"redis\"\nkey_prefix = \"ready\"\ncommand_timeout_ms = 500\n"
          << "connect_timeout_ms = 500\n"
          << "[lease]\nttl_ms = 3000\nretry_interval_ms = 200\n"
          << "[pipeline]\ncheckpoint_interval_ms = 100\n"
          << "[retry]\ninitial_delay_ms = 50\nmax_delay_ms = 500\n"
          << "[metrics]\nport = 0\nnot_ready_after_ms = 1000\n"
          << "[log]\nlevel = \"info\"\nprogress_interval_ms = 0\n";
    }

    // Starts penne and returns the ops server's port, read from its log.
    int start_penne() {
        auto env = aws_env();
        env["PENNE_REDIS_URL"] = redis_.url();
        penne_ = std::make_unique<process>(
            std::vector<std::string>{build_path("app/penne"), "run", "-c", dir_ / "penne.toml"},
            dir_ / "penne.log", env);
        const std::string line = "ops server listening on 127.0.0.1:";
        if (!penne_->wait_for_output(line, 30s)) {
            ADD_FAILURE() << "no ops server line:\n" << penne_->log();
            return 0;
        }
        const auto log = penne_->log();
        const int port = std::atoi(log.c_str() + log.find(line) + line.size());
        EXPECT_GT(port, 0) << log;
        return port;
    }

    void stop_penne() {
        penne_->signal(SIGTERM);
        auto code = penne_->wait(120s);
        ASSERT_TRUE(code) << "penne did not stop";
        EXPECT_EQ(*code, 0) << penne_->log();
        penne_.reset();
    }

    bool wait_ready(int port, int status, std::chrono::seconds timeout) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < deadline) {
            if (http_get(port, "/ready").status == status)
                return true;
            std::this_thread::sleep_for(50ms);
        }
        return false;
    }

    // /status's lag of the one scope; nullopt while unknown.
    std::optional<double> lag(int port) {
        auto st = http_get(port, "/status");
        EXPECT_EQ(st.status, 200);
        if (st.status != 200)
            return std::nullopt;
        auto doc = boost::json::parse(st.body).as_object();
        const auto& v = doc.at("scopes").as_array().at(0).as_object().at("lag_seconds");
        if (!v.is_number())
            return std::nullopt;
        return v.to_number<double>();
    }

    // /metrics, judged by our checker and by promtool.
    std::string scrape(int port) {
        auto m = http_get(port, "/metrics");
        EXPECT_EQ(m.status, 200);
        const auto problems = check_exposition(m.body);
        EXPECT_TRUE(problems.empty()) << problems.front() << "\n" << m.body;
        auto pt = promtool_check(m.body, PENNE_PROMTOOL);
        EXPECT_EQ(pt.exit_code, 0) << "promtool (" << PENNE_PROMTOOL << "): " << pt.output;
        return m.body;
    }

    output_scan mirror() {
        if (!mirror_)
            mirror_ = std::make_unique<bucket_mirror>(*peer_, bucket_, dir_ / "mirror");
        mirror_->sync("cdc/");
        return scan_output(mirror_->root());
    }

    output_scan wait_for(std::size_t expected, std::chrono::seconds timeout = 90s) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        output_scan scan;
        while (std::chrono::steady_clock::now() < deadline) {
            scan = mirror();
            if (distinct_inserts(scan) >= expected)
                break;
            std::this_thread::sleep_for(500ms);
        }
        return scan;
    }

    static inline int count_ = 0;
    const rgw_peer* peer_ = nullptr;
    redis_peer redis_;
    temp_dir dir_{"penne-ready-e2e"};
    std::string bucket_;
    int port_ = 0;
    bool gateway_stopped_ = false;
    std::unique_ptr<bucket_mirror> mirror_;
    std::unique_ptr<process> mongosim_;
    std::unique_ptr<process> penne_;
};

TEST_F(ready_e2e, ready_turns_503_naming_the_state_store_while_redis_is_paused) {
    const int port = start_penne();
    ASSERT_GT(port, 0);
    ASSERT_TRUE(wait_ready(port, 200, 30s)) << http_get(port, "/ready").body << penne_->log();
    steady_load load(port_);
    std::this_thread::sleep_for(1500ms);
    EXPECT_EQ(http_get(port, "/ready").status, 200) << http_get(port, "/ready").body;

    // Redis stops answering (its data stays): manifest, checkpoint and lease requests time
    // out. Under load the scope cannot record its batches, and the leases cannot be renewed.
    ASSERT_EQ(::kill(redis_.pid(), SIGSTOP), 0);
    ASSERT_TRUE(wait_ready(port, 503, 20s)) << http_get(port, "/ready").body << penne_->log();
    const auto r = http_get(port, "/ready");
    EXPECT_NE(r.body.find("state store"), std::string::npos) << r.body;
    EXPECT_NE(r.body.find("redis"), std::string::npos) << r.body;
    EXPECT_EQ(http_get(port, "/health").status, 200);
    {
        auto st = http_get(port, "/status");
        ASSERT_EQ(st.status, 200);
        auto doc = boost::json::parse(st.body).as_object();
        EXPECT_FALSE(doc.at("ready").as_bool());
        EXPECT_NE(std::string(doc.at("ready_reason").as_string()).find("state store"),
                  std::string::npos)
            << st.body;
    }
    scrape(port);
    // Past the lease TTL the scope's lease is lost and it stops: this instance now holds
    // nothing, which is not standby while Redis cannot be reached. Still not ready.
    bool released = false;
    const auto lease_deadline = std::chrono::steady_clock::now() + 15s;
    while (!released && std::chrono::steady_clock::now() < lease_deadline) {
        auto st = http_get(port, "/status");
        auto doc = boost::json::parse(st.body).as_object();
        released = !doc.at("scopes").as_array().at(0).as_object().at("lease_held").as_bool();
        std::this_thread::sleep_for(100ms);
    }
    EXPECT_TRUE(released) << http_get(port, "/status").body;
    std::this_thread::sleep_for(300ms);
    const auto lost = http_get(port, "/ready");
    EXPECT_EQ(lost.status, 503) << lost.body;
    EXPECT_NE(lost.body.find("state store redis:"), std::string::npos) << lost.body;
    EXPECT_NE(lost.body.find("lease requests failing"), std::string::npos) << lost.body;

    ASSERT_EQ(::kill(redis_.pid(), SIGCONT), 0);
    ASSERT_TRUE(wait_ready(port, 200, 40s)) << http_get(port, "/ready").body << penne_->log();

    std::this_thread::sleep_for(1s);
    const auto total = load.stop();
    ASSERT_TRUE(load.error().empty()) << load.error();
    ASSERT_GT(total, 0);
    wait_for(static_cast<std::size_t>(total));
    const auto text = scrape(port);
    // The state connection was re-established after the pause (its requests timed out).
    EXPECT_GE(sample_sum(text, "penne_redis_connects_total", {{"connection", "state"}}), 2) << text;
    EXPECT_GE(sample_sum(text, "penne_redis_connects_total", {{"connection", "lease"}}), 1) << text;
    EXPECT_GT(sample_sum(text, "penne_s3_requests_total",
                         {{"operation", "PutObject"}, {"outcome", "ok"}}),
              0)
        << text;
    stop_penne();
    expect_exactly_once(mirror(), total);
}

TEST_F(ready_e2e, ready_turns_503_naming_s3_and_lag_grows_while_the_gateway_is_down) {
    const int port = start_penne();
    ASSERT_GT(port, 0);
    ASSERT_TRUE(wait_ready(port, 200, 30s)) << http_get(port, "/ready").body << penne_->log();
    steady_load load(port_);
    wait_for(100, 30s);
    std::optional<double> before;
    for (int i = 0; i < 50 && !before; ++i) {
        before = lag(port);
        std::this_thread::sleep_for(100ms);
    }
    ASSERT_TRUE(before) << http_get(port, "/status").body;
    EXPECT_LT(*before, 10) << http_get(port, "/status").body;
    const auto puts_before = sample_sum(scrape(port), "penne_s3_requests_total",
                                        {{"operation", "PutObject"}, {"outcome", "ok"}});
    EXPECT_GT(puts_before, 0);

    // The gateway dies (connections refused) while events keep coming.
    ASSERT_TRUE(peer_->stop_gateway()) << peer_->log_tail();
    gateway_stopped_ = true;
    ASSERT_TRUE(wait_ready(port, 503, 20s)) << http_get(port, "/ready").body << penne_->log();
    const auto r = http_get(port, "/ready");
    EXPECT_NE(r.body.find("s3://" + bucket_), std::string::npos) << r.body;
    // Nothing becomes durable, so the lag grows with the wall clock.
    double peak = 0;
    const auto grow_deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < grow_deadline && peak < *before + 4) {
        if (auto l = lag(port))
            peak = std::max(peak, *l);
        std::this_thread::sleep_for(200ms);
    }
    EXPECT_GE(peak, *before + 4) << http_get(port, "/status").body;
    EXPECT_EQ(http_get(port, "/ready").status, 503);
    const auto during = scrape(port);
    EXPECT_GT(sample_sum(during, "penne_s3_request_retries_total"), 0) << during;
    EXPECT_GT(sample_sum(during, "penne_s3_requests_total", {{"outcome", "retries_exhausted"}}), 0)
        << during;

    ASSERT_TRUE(peer_->start_gateway()) << peer_->log_tail();
    gateway_stopped_ = false;
    ASSERT_TRUE(wait_ready(port, 200, 60s)) << http_get(port, "/ready").body << penne_->log();
    // The backlog is written and the lag falls back.
    double after = peak;
    const auto fall_deadline = std::chrono::steady_clock::now() + 60s;
    while (std::chrono::steady_clock::now() < fall_deadline && after > peak - 3) {
        if (auto l = lag(port))
            after = *l;
        std::this_thread::sleep_for(200ms);
    }
    EXPECT_LT(after, peak - 3) << http_get(port, "/status").body;

    const auto total = load.stop();
    ASSERT_TRUE(load.error().empty()) << load.error();
    wait_for(static_cast<std::size_t>(total));
    const auto text = scrape(port);
    EXPECT_GT(sample_sum(text, "penne_s3_requests_total",
                         {{"operation", "PutObject"}, {"outcome", "ok"}}),
              puts_before);
    stop_penne();
    expect_exactly_once(mirror(), total);
}

}  // namespace
}  // namespace penne::test
