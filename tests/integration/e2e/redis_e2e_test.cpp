// End to end with the Redis state store: mongosim → penne (checkpoints and the write-ahead
// manifest in a real redis-server) → a local directory, decoded independently. Every
// inserted document exactly once across kill -9 of penne and a Redis outage.

#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "exactly_once.hpp"
#include "mongo_inserter.hpp"
#include "output_reader.hpp"
#include "process.hpp"
#include "redis_peer.hpp"
#include "temp_dir.hpp"

namespace penne::test {
namespace {

using namespace std::chrono_literals;

const auto* const mongoc = ::testing::AddGlobalTestEnvironment(new mongoc_env);

class redis_e2e : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_TRUE(redis_.ready()) << redis_.failure();
        port_ = free_port();
        mongosim_ = std::make_unique<process>(
            std::vector<std::string>{build_path("tests/mongosim/mongosim"), "--port",
                                     std::to_string(port_)},
            dir_ / "mongosim.log");
        ASSERT_TRUE(mongosim_->wait_for_output("mongosim listening on", 10s)) << mongosim_->log();
        std::ofstream f(dir_ / "penne.toml");
        f << "[mongodb]\nuri = \"mongodb://127.0.0.1:" << port_
          << "/?directConnection=true\"\nmax_await_ms = 200\n\n"
          << "[[watch]]\nlevel = \"database\"\ndatabase = \"shop\"\n"
          << "[batch]\nmax_events = 60\nmax_age_ms = 150\n"
          << "[output]\nprefix = \"cdc\"\n"
          << "[destination]\ntype = \"local\"\npath = \"" << (dir_ / "out") << "\"\n"
          << "[state]\ntype = \"redis\"\nkey_prefix = \"e2e\"\ncommand_timeout_ms = 500\n"
          << "connect_timeout_ms = 500\n"
          << "[pipeline]\ncheckpoint_interval_ms = 100\n"
          << "[retry]\ninitial_delay_ms = 20\nmax_delay_ms = 200\n"
          << "[metrics]\nenabled = false\n"
          // A restart after kill -9 waits for the dead instance's lease to expire.
          << "[lease]\nttl_ms = 1000\nretry_interval_ms = 200\n"
          << "[log]\nlevel = \"debug\"\nprogress_interval_ms = 0\n";
    }

    std::unique_ptr<process> start_penne() {
        // The URL (with its password, in production) comes from the environment.
        auto p = std::make_unique<process>(
            std::vector<std::string>{build_path("app/penne"), "run", "-c", dir_ / "penne.toml"},
            dir_ / ("penne-" + std::to_string(++starts_) + ".log"),
            std::map<std::string, std::string>{{"PENNE_REDIS_URL", redis_.url()}});
        EXPECT_TRUE(p->wait_for_output("change stream open", 30s)) << p->log();
        return p;
    }

    void stop_penne(std::unique_ptr<process>& p) {
        p->signal(SIGTERM);
        auto code = p->wait(60s);
        ASSERT_TRUE(code) << "penne did not stop";
        EXPECT_EQ(*code, 0) << p->log();
        p.reset();
    }

    void wait_for(std::size_t expected, std::chrono::seconds timeout = 60s) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (distinct_inserts(scan_output(dir_ / "out")) < expected &&
               std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(100ms);
    }

    redis_peer redis_;
    temp_dir dir_{"penne-redis-e2e"};
    int port_ = 0;
    int starts_ = 0;
    std::unique_ptr<process> mongosim_;
    const std::vector<std::string> colls_{"c0", "c1", "c2"};
};

TEST_F(redis_e2e, kill_9_mid_batch_with_redis_state_loses_and_duplicates_nothing) {
    inserter ins(port_);
    std::int64_t next = 0;
    for (int round = 0; round < 4; ++round) {
        auto penne = start_penne();
        std::thread writer([&] {
            for (int i = 0; i < 10; ++i) {
                ins.insert("shop", colls_, next, next + 100, 25);
                next += 100;
                std::this_thread::sleep_for(10ms);
            }
        });
        std::this_thread::sleep_for(std::chrono::milliseconds(60 + 120 * round));
        penne->signal(SIGKILL);
        penne->wait(10s);
        writer.join();
    }
    auto penne = start_penne();
    wait_for(static_cast<std::size_t>(next));
    stop_penne(penne);
    expect_exactly_once(scan_output(dir_ / "out"), next);
}

TEST_F(redis_e2e, a_redis_outage_pauses_the_pipeline_and_loses_nothing) {
    inserter ins(port_);
    auto penne = start_penne();
    ins.insert("shop", colls_, 0, 600);
    wait_for(600);
    // Redis stops answering (its data stays): manifest entries cannot be recorded, so no
    // upload starts; the pipeline retries and carries on when Redis is back.
    ASSERT_EQ(::kill(redis_.pid(), SIGSTOP), 0);
    ins.insert("shop", colls_, 600, 1'500);
    std::this_thread::sleep_for(3s);
    ASSERT_EQ(::kill(redis_.pid(), SIGCONT), 0);
    wait_for(1'500);
    stop_penne(penne);
    expect_exactly_once(scan_output(dir_ / "out"), 1'500);
    // And a restart resumes from what Redis holds.
    ins.insert("shop", colls_, 1'500, 2'000);
    penne = start_penne();
    wait_for(2'000);
    stop_penne(penne);
    expect_exactly_once(scan_output(dir_ / "out"), 2'000);
}

}  // namespace
}  // namespace penne::test
