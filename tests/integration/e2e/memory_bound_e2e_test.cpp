// The memory bound under an S3 outage, end to end: mongosim (--preload: a backlog of
// generated change events, ~800-byte documents, four collections) → penne (a real process;
// file state store) → Ceph RGW, whose gateway is stopped before penne reads anything (penne
// checks the bucket when it starts, so mongosim is frozen meanwhile). penne reads
// until pipeline.max_buffered_bytes and stops reading: the buffered-bytes gauge, sampled
// from /metrics all along, never exceeds the bound plus the slack the engine allows (one
// growth of a batch buffer, at most batch.max_bytes, plus one event), and the events
// received stop growing far short of the backlog. When the gateway returns, every event of
// the backlog reaches the bucket exactly once. No timing is asserted: the gauge is the
// engine's own count of what it holds (RSS is the bench's business, bench/e2e/run.py).

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <set>
#include <string>
#include <thread>

#include "bucket_mirror.hpp"
#include "ops_endpoints.hpp"
#include "output_reader.hpp"
#include "process.hpp"
#include "rgw_peer.hpp"
#include "temp_dir.hpp"

namespace penne::test {
namespace {

using namespace std::chrono_literals;

const auto* const rgw = ::testing::AddGlobalTestEnvironment(new rgw_peer_environment);

constexpr std::int64_t backlog = 60'000;           // preloaded change events (~48 MB of BSON)
constexpr double bound = 8.0 * 1024 * 1024;        // pipeline.max_buffered_bytes
constexpr double batch_bytes = 1.0 * 1024 * 1024;  // batch.max_bytes
// One event of this corpus encodes to about 1.1 KB of JSON; 64 KiB is far above any.
constexpr double one_event = 64.0 * 1024;

class memory_bound_e2e : public ::testing::Test {
protected:
    void SetUp() override {
        peer_ = rgw_peer_environment::peer();
        ASSERT_NE(peer_, nullptr) << rgw_peer_environment::failure();
        bucket_ = "membound-" + std::to_string(::getpid());
        port_ = free_port();
        mongosim_ = std::make_unique<process>(
            std::vector<std::string>{build_path("tests/mongosim/mongosim"), "--port",
                                     std::to_string(port_), "--preload", std::to_string(backlog),
                                     "--preload-collections", "4", "--preload-db", "bench"},
            dir_ / "mongosim.log");
        ASSERT_TRUE(mongosim_->wait_for_output("mongosim listening on", 60s)) << mongosim_->log();
        process mb({build_path("app/penne"), "s3", "mb", "s3://" + bucket_}, dir_ / "mb.log",
                   aws_env());
        ASSERT_EQ(mb.wait(60s), 0) << mb.log();
    }
    void TearDown() override {
        if (mongosim_ && mongosim_->pid() > 0)
            ::kill(mongosim_->pid(), SIGCONT);  // never leave a frozen process behind
        if (gateway_stopped_ && peer_)
            peer_->start_gateway();  // the next test binary's tests need the shared gateway
    }

    std::map<std::string, std::string> aws_env() const {
        return {{"AWS_ACCESS_KEY_ID", peer_->access_key()},
                {"AWS_SECRET_ACCESS_KEY", peer_->secret_key()},
                {"AWS_REGION", peer_->region()},
                {"AWS_ENDPOINT_URL", peer_->endpoint()},
                {"AWS_EC2_METADATA_DISABLED", "true"},
                {"HOME", dir_.path().string()}};
    }

    // The backlog from its oldest event (start_at before it); small batches, so that many
    // objects wait for the gateway; uncompressed, so that the bound is reached after a few
    // thousand events (this corpus compresses about 8:1).
    void write_config() {
        std::ofstream f(dir_ / "penne.toml");
        f << "[mongodb]\nuri = \"mongodb://127.0.0.1:" << port_
          << "/?directConnection=true\"\nmax_await_ms = 200\nstart_at = \"1:0\"\n"
          << "connect_timeout_ms = 30000\n\n"
          << "[[watch]]\nlevel = \"database\"\ndatabase = \"bench\"\n"
          << "[batch]\nmax_events = 2000\nmax_bytes = \"1MiB\"\nmax_age_ms = 500\n"
          << "[output]\nprefix = \"cdc\"\ncompression = \"none\"\n"
          << "[destination]\ntype = \"s3\"\n"
          << "[s3]\nbucket = \"" << bucket_ << "\"\n"
          << "request_timeout_ms = 2000\nconnect_timeout_ms = 500\nmax_retries = 2\n"
          << "[state]\ntype = \"file\"\npath = \"" << (dir_ / "state") << "\"\n"
          << "[pipeline]\nmax_buffered_bytes = \"8MiB\"\ncheckpoint_interval_ms = 200\n"
          << "[retry]\ninitial_delay_ms = 50\nmax_delay_ms = 500\n"
          << "[metrics]\nport = 0\n"
          << "[log]\nlevel = \"info\"\nprogress_interval_ms = 0\n";
    }

    int start_penne() {
        penne_ = std::make_unique<process>(
            std::vector<std::string>{build_path("app/penne"), "run", "-c", dir_ / "penne.toml"},
            dir_ / "penne.log", aws_env());
        const std::string line = "ops server listening on 127.0.0.1:";
        if (!penne_->wait_for_output(line, 30s)) {
            ADD_FAILURE() << "no ops server line:\n" << penne_->log();
            return 0;
        }
        const auto log = penne_->log();
        return std::atoi(log.c_str() + log.find(line) + line.size());
    }

    // One /metrics sample; also keeps the gauge's peak.
    struct reading {
        double buffered = 0;
        double received = 0;
        double written = 0;
    };
    reading read(int port) {
        const auto m = http_get(port, "/metrics");
        EXPECT_EQ(m.status, 200);
        reading r{sample_sum(m.body, "penne_buffered_bytes"),
                  sample_sum(m.body, "penne_events_received_total"),
                  sample_sum(m.body, "penne_events_written_total")};
        peak_ = std::max(peak_, r.buffered);
        return r;
    }

    const rgw_peer* peer_ = nullptr;
    temp_dir dir_{"penne-membound-e2e"};
    std::string bucket_;
    int port_ = 0;
    bool gateway_stopped_ = false;
    double peak_ = 0;
    std::unique_ptr<process> mongosim_;
    std::unique_ptr<process> penne_;
};

TEST_F(memory_bound_e2e, reading_stops_at_the_bound_while_s3_is_down_then_all_is_durable_once) {
    // penne starts (its bucket check passes) against a frozen mongosim; the gateway goes
    // down before the stream gives its first event.
    ASSERT_EQ(::kill(mongosim_->pid(), SIGSTOP), 0);
    write_config();
    const int port = start_penne();
    ASSERT_GT(port, 0);
    ASSERT_TRUE(peer_->stop_gateway()) << peer_->log_tail();
    gateway_stopped_ = true;
    ASSERT_EQ(::kill(mongosim_->pid(), SIGCONT), 0);

    // Read until the bound, then nothing more: wait until the received count has stayed
    // the same for two seconds (sampling the gauge all along).
    reading r = read(port);
    double last_received = -1;
    auto still_since = std::chrono::steady_clock::now();
    const auto deadline = std::chrono::steady_clock::now() + 120s;
    while (std::chrono::steady_clock::now() < deadline) {
        r = read(port);
        if (r.received != last_received) {
            last_received = r.received;
            still_since = std::chrono::steady_clock::now();
        } else if (r.received > 0 && std::chrono::steady_clock::now() - still_since > 2s) {
            break;
        }
        std::this_thread::sleep_for(10ms);
    }
    EXPECT_GT(r.received, 0) << penne_->log();
    EXPECT_LT(r.received, backlog / 2) << "penne kept reading with S3 down";
    EXPECT_EQ(r.written, 0);
    // The bound was reached (backpressure engaged) and never overshot by more than the
    // slack: one batch buffer's growth and one event. Before the engine counted per event,
    // one 16 MiB getMore reply (about 22 MiB encoded) could land on top of the bound.
    EXPECT_GE(peak_, bound - batch_bytes - one_event) << penne_->log();
    EXPECT_LE(peak_, bound + batch_bytes + one_event);
    // A while longer paused: still within the bound, still not reading.
    for (int i = 0; i < 100; ++i) {
        r = read(port);
        std::this_thread::sleep_for(10ms);
    }
    EXPECT_EQ(r.received, last_received);
    EXPECT_LE(peak_, bound + batch_bytes + one_event);

    // The gateway returns: the backlog drains, within the bound all the way.
    ASSERT_TRUE(peer_->start_gateway()) << peer_->log_tail();
    gateway_stopped_ = false;
    const auto drain_deadline = std::chrono::steady_clock::now() + 300s;
    while (std::chrono::steady_clock::now() < drain_deadline && r.written < backlog) {
        r = read(port);
        std::this_thread::sleep_for(20ms);
    }
    EXPECT_EQ(r.written, backlog) << penne_->log();
    EXPECT_LE(peak_, bound + batch_bytes + one_event);
    penne_->signal(SIGTERM);
    auto code = penne_->wait(120s);
    ASSERT_TRUE(code) << "penne did not stop";
    EXPECT_EQ(*code, 0) << penne_->log();

    // Exactly once, read back from the bucket: every change event of the backlog, each in
    // one object only (by resume token).
    bucket_mirror mirror(*peer_, bucket_, dir_ / "mirror");
    mirror.sync("cdc/");
    const auto scan = scan_output(mirror.root());
    EXPECT_TRUE(scan.errors.empty()) << scan.errors.front();
    std::set<std::string> tokens;
    for (const auto& e : scan.events)
        tokens.insert(e.token);
    EXPECT_EQ(scan.events.size(), static_cast<std::size_t>(backlog));
    EXPECT_EQ(tokens.size(), static_cast<std::size_t>(backlog)) << "events written twice";
}

}  // namespace
}  // namespace penne::test
