// Chaos: Redis loses penne's state. Two penne processes share six collection scopes through
// leases in one redis-server without persistence, read one mongosim and write one local
// directory. Once everything inserted so far is durable, redis-server is killed (-9) and
// started again empty (a real restart, no dump: not a FLUSHALL) while inserts go on. Then:
// both instances stop with the loss error (exit code 1); the tombstone is in Redis; an
// instance started again refuses to run; every document inserted before the loss is in the
// output exactly once and no change event is written twice; `penne state ack-loss` without
// --yes changes nothing, with --yes it lets both instances start again (from now), and
// everything inserted after that is in the output exactly once. Documents inserted during
// the loss are the acknowledged gap: each at most once.

#include <gtest/gtest.h>
#include <signal.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <thread>

#include "mongo_inserter.hpp"
#include "output_reader.hpp"
#include "process.hpp"
#include "redis_peer.hpp"
#include "temp_dir.hpp"
#include "wait_until.hpp"

namespace penne::test {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

const auto* const mongoc = ::testing::AddGlobalTestEnvironment(new mongoc_env);

constexpr int instances = 2;
const std::string loss_error = "Redis lost penne's state: store id ";

class RedisLossChaos : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_TRUE(redis_.ready()) << redis_.failure();
        port_ = free_port();
        mongosim_ = std::make_unique<process>(
            std::vector<std::string>{build_path("tests/mongosim/mongosim"), "--port",
                                     std::to_string(port_)},
            dir_ / "mongosim.log");
        ASSERT_TRUE(mongosim_->wait_for_output("mongosim listening on", 10s)) << mongosim_->log();
        for (int i = 0; i < 6; ++i)
            colls_.push_back("c" + std::to_string(i));
        for (int i = 1; i <= instances; ++i) {
            std::ofstream f(config(i));
            f << "[mongodb]\nuri = \"mongodb://127.0.0.1:" << port_
              << "/?directConnection=true\"\nmax_await_ms = 100\n\n"
              << "[[watch]]\nlevel = \"collection\"\ndatabase = \"shop\"\ncollections = [";
            for (std::size_t c = 0; c < colls_.size(); ++c)
                f << (c ? ", " : "") << '"' << colls_[c] << '"';
            f << "]\n[batch]\nmax_events = 20\nmax_age_ms = 100\n"
              << "[output]\nprefix = \"cdc\"\n"
              << "[destination]\ntype = \"local\"\npath = \"" << (dir_ / "out") << "\"\n"
              << "[state]\ntype = \"redis\"\nkey_prefix = \"loss\"\ncommand_timeout_ms = 300\n"
              << "connect_timeout_ms = 300\n"
              << "[lease]\nttl_ms = 1000\nretry_interval_ms = 200\nowner = \"p" << i << "\"\n"
              << "[pipeline]\ncheckpoint_interval_ms = 100\nshutdown_timeout_ms = 20000\n"
              << "[retry]\ninitial_delay_ms = 20\nmax_delay_ms = 200\n"
              << "[metrics]\nenabled = false\n"
              << "[log]\nlevel = \"info\"\nprogress_interval_ms = 0\n";
        }
    }

    std::string config(int i) const { return dir_ / ("p" + std::to_string(i) + ".toml"); }
    std::map<std::string, std::string> env() const { return {{"PENNE_REDIS_URL", redis_.url()}}; }

    void start(int i) {
        auto& p = penne_[i];
        p = std::make_unique<process>(
            std::vector<std::string>{build_path("app/penne"), "run", "-c", config(i)},
            dir_ / ("p" + std::to_string(i) + "-" + std::to_string(++starts_) + ".log"), env());
        ASSERT_TRUE(p->wait_for_output("starting:", 10s)) << p->log();
    }

    // Both instances streaming every scope, each with its starting position saved.
    void start_all() {
        for (int i = 1; i <= instances; ++i)
            start(i);
        ASSERT_TRUE(wait_until([&] { return watermarks() == colls_.size(); }, 30s))
            << "scopes with a checkpoint: " << watermarks() << "\n"
            << logs();
        ASSERT_TRUE(wait_until([&] { return holders() == colls_.size(); }, 10s)) << logs();
    }

    // `penne state ack-loss`: its exit code and output.
    int ack_loss(bool yes, std::string& output) {
        std::vector<std::string> argv = {build_path("app/penne"), "state", "ack-loss", "-c",
                                         config(1)};
        if (yes)
            argv.push_back("--yes");
        process p(argv, dir_ / ("ack-" + std::to_string(++acks_) + ".log"), env());
        const auto code = p.wait(30s);
        output = p.log();
        return code.value_or(-1);
    }

    std::string redis_cli(const std::string& args) { return redis_.cli(args); }
    std::size_t holders() {
        std::size_t n = 0;
        for (auto& c : colls_)
            n += !redis_cli("GET 'loss:lease:{shop." + c + "}'").empty();
        return n;
    }
    std::size_t watermarks() {
        std::size_t n = 0;
        for (auto& c : colls_)
            n += redis_cli("EXISTS 'loss:scope:{shop." + c + "}:watermark'") == "1";
        return n;
    }

    std::string logs() {
        std::string s;
        for (auto& [i, p] : penne_)
            if (p)
                s += "---- p" + std::to_string(i) + "\n" + p->log();
        return s;
    }

    // Inserted documents n found in the output, with how often each appears.
    std::map<std::int64_t, int> inserts(output_scan& scan) {
        scan = scan_output(dir_ / "out");
        std::map<std::int64_t, int> seen;
        for (auto& e : scan.events)
            if (e.operation == "insert")
                ++seen[e.n];
        return seen;
    }
    bool all_present(std::int64_t first, std::int64_t last) {
        output_scan scan;
        auto seen = inserts(scan);
        for (auto n = first; n < last; ++n)
            if (!seen.count(n))
                return false;
        return true;
    }

    // Every document in [first, last) exactly once; no change event in two places; every
    // document at most once.
    void expect_exactly_once(std::int64_t first, std::int64_t last, const char* what) {
        output_scan scan;
        auto seen = inserts(scan);
        EXPECT_TRUE(scan.errors.empty()) << scan.errors.front();
        std::set<std::string> tokens;
        std::size_t twice = 0;
        for (auto& e : scan.events)
            twice += !tokens.insert(e.token).second;
        EXPECT_EQ(twice, 0u) << "change events written twice";
        std::int64_t missing = 0, doubled = 0;
        for (auto n = first; n < last; ++n)
            missing += seen.count(n) == 0;
        for (auto& [n, c] : seen)
            doubled += c > 1;
        EXPECT_EQ(missing, 0) << what << ": inserted documents missing from the output";
        EXPECT_EQ(doubled, 0) << "documents written more than once";
    }
    std::size_t present_in(std::int64_t first, std::int64_t last) {
        output_scan scan;
        auto seen = inserts(scan);
        std::size_t n = 0;
        for (auto k = first; k < last; ++k)
            n += seen.count(k);
        return n;
    }

    redis_peer redis_;  // no persistence: a restart loses everything
    temp_dir dir_{"penne-loss-chaos"};
    int port_ = 0;
    int starts_ = 0;
    int acks_ = 0;
    std::unique_ptr<process> mongosim_;
    std::map<int, std::unique_ptr<process>> penne_;
    std::vector<std::string> colls_;
};

TEST_F(RedisLossChaos, ARedisRestartedWithoutItsDataStopsEveryInstanceUntilAcknowledged) {
    start_all();
    ASSERT_FALSE(HasFatalFailure());
    const std::string first_logs = logs();
    EXPECT_NE(first_logs.find("state store is empty: every scope starts from now (first start)"),
              std::string::npos)
        << first_logs;
    inserter ins(port_);
    ins.insert("shop", colls_, 0, 600, 60);
    ASSERT_TRUE(wait_until([&] { return all_present(0, 600); }, 30s)) << logs();
    const std::string identity = redis_cli("GET loss:store");
    const std::string id = identity.substr(0, identity.find(':'));
    ASSERT_EQ(id.size(), 32u) << identity;

    // The loss: kill -9 and a fresh, empty redis-server on the same port; inserts go on.
    ASSERT_TRUE(redis_.restart()) << redis_.failure();
    const auto lost_at = steady::now();
    ins.insert("shop", colls_, 600, 720, 20);

    // Both instances stop with the loss error, exit code 1.
    for (auto& [i, p] : penne_) {
        const auto code = p->wait(40s);
        ASSERT_TRUE(code) << "p" << i << " kept running after the loss\n" << p->log();
        EXPECT_EQ(*code, 1) << p->log();
        EXPECT_NE(p->log().find(loss_error + id + " is gone"), std::string::npos) << p->log();
    }
    std::printf("[chaos] both instances stopped %lld ms after the loss\n",
                static_cast<long long>(
                    std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - lost_at)
                        .count()));
    // The tombstone, and nothing else of penne's state came back.
    const std::string tomb = redis_cli("GET loss:store");
    EXPECT_EQ(tomb.rfind("lost:" + id + ":", 0), 0u) << tomb;
    EXPECT_EQ(watermarks(), 0u);
    EXPECT_EQ(holders(), 0u);

    // A restart (systemd) refuses as well, quickly, and leaves the tombstone.
    start(1);
    ASSERT_FALSE(HasFatalFailure());
    const auto code = penne_[1]->wait(20s);
    ASSERT_TRUE(code) << penne_[1]->log();
    EXPECT_EQ(*code, 1);
    EXPECT_NE(penne_[1]->log().find(loss_error + id + " is gone (found lost at"), std::string::npos)
        << penne_[1]->log();
    EXPECT_EQ(redis_cli("GET loss:store"), tomb);

    // Everything durable before the loss is there exactly once; nothing written twice.
    expect_exactly_once(0, 600, "before the loss");
    std::printf("[chaos] inserted during the loss: %zu of 120 in the output\n",
                present_in(600, 720));

    // The operator: without --yes nothing changes; with it penne runs again.
    std::string out;
    EXPECT_EQ(ack_loss(false, out), 1) << out;
    EXPECT_NE(out.find("Run again with --yes"), std::string::npos) << out;
    EXPECT_EQ(redis_cli("GET loss:store"), tomb);
    ASSERT_EQ(ack_loss(true, out), 0) << out;
    EXPECT_NE(out.find("Acknowledged"), std::string::npos) << out;
    const std::string acked = redis_cli("GET loss:store");
    EXPECT_NE(acked.find(":ack:" + id), std::string::npos) << acked;
    EXPECT_EQ(ack_loss(true, out), 0) << out;  // a second time: nothing to do
    EXPECT_NE(out.find("nothing to acknowledge"), std::string::npos) << out;

    start_all();
    ASSERT_FALSE(HasFatalFailure());
    EXPECT_NE(logs().find("when the loss of store " + id + " was acknowledged"), std::string::npos)
        << logs();
    ins.insert("shop", colls_, 1000, 1600, 60);
    ASSERT_TRUE(wait_until([&] { return all_present(1000, 1600); }, 30s)) << logs();
    for (auto& [i, p] : penne_)
        p->signal(SIGTERM);
    for (auto& [i, p] : penne_) {
        const auto c = p->wait(60s);
        ASSERT_TRUE(c) << "p" << i << " did not stop\n" << p->log();
        EXPECT_EQ(*c, 0) << p->log();
    }
    expect_exactly_once(0, 600, "before the loss");
    expect_exactly_once(1000, 1600, "after the acknowledgement");
    EXPECT_EQ(redis_cli("GET loss:store"), acked);
    std::printf(
        "[chaos] before the loss: 600 of 600, after the acknowledgement: %zu of 600, "
        "during the loss: %zu of 120 (the acknowledged gap)\n",
        present_in(1000, 1600), present_in(600, 720));
}

}  // namespace
}  // namespace penne::test
