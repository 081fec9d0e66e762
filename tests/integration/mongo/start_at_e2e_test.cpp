// [mongodb] start_at end to end: mongosim (a real process) → penne (the real binary) → a
// local directory. Documents A are written, the time is noted, documents B are written; penne
// then starts for the first time with start_at = that time:
//  - as a MongoDB timestamp "<seconds>:<increment>" (the operationTime the server reported
//    after A) and as an RFC 3339 time (a whole second between A and B): exactly B is written;
//  - a restart resumes from the saved token, not from start_at (nothing of B twice), and says
//    so in its log;
//  - a start_at older than the oplog is the server's history lost, and on_history_lost =
//    "restart_from_now" then goes on from the current time, not from start_at again (and the
//    default, "fail", stops saying that start_at is what the server no longer has).

#include <mongoc/mongoc.h>

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <ctime>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "mongo_inserter.hpp"
#include "output_reader.hpp"
#include "process.hpp"
#include "temp_dir.hpp"

namespace penne::test {
namespace {

using namespace std::chrono_literals;

const auto* const env = ::testing::AddGlobalTestEnvironment(new mongoc_env);

// The server's operationTime after a ping: a time at or after every write acknowledged before.
std::pair<std::uint32_t, std::uint32_t> operation_time(int port) {
    const std::string uri =
        "mongodb://127.0.0.1:" + std::to_string(port) + "/?directConnection=true";
    mongoc_client_t* client = mongoc_client_new(uri.c_str());
    bson_t* cmd = BCON_NEW("ping", BCON_INT32(1));
    bson_t reply;
    bson_error_t err;
    std::pair<std::uint32_t, std::uint32_t> out{0, 0};
    if (mongoc_client_command_simple(client, "admin", cmd, nullptr, &reply, &err)) {
        bson_iter_t it;
        if (bson_iter_init_find(&it, &reply, "operationTime") && BSON_ITER_HOLDS_TIMESTAMP(&it))
            bson_iter_timestamp(&it, &out.first, &out.second);
    }
    bson_destroy(&reply);
    bson_destroy(cmd);
    mongoc_client_destroy(client);
    return out;
}

class start_at_e2e : public ::testing::Test {
protected:
    void start_mongosim(std::vector<std::string> extra = {}) {
        port_ = free_port();
        std::vector<std::string> args{build_path("tests/mongosim/mongosim"), "--port",
                                      std::to_string(port_)};
        args.insert(args.end(), extra.begin(), extra.end());
        mongosim_ = std::make_unique<process>(args, dir_ / "mongosim.log");
        ASSERT_TRUE(mongosim_->wait_for_output("mongosim listening on", 10s)) << mongosim_->log();
    }

    void write_config(const std::string& start_at, const std::string& policy = "") {
        std::ofstream f(dir_ / "penne.toml");
        f << "[mongodb]\nuri = \"mongodb://127.0.0.1:" << port_
          << "/?directConnection=true\"\nmax_await_ms = 200\nstart_at = \"" << start_at << "\"\n"
          << (policy.empty() ? "" : "on_history_lost = \"" + policy + "\"\n")
          << "\n[[watch]]\nlevel = \"collection\"\ndatabase = \"shop\"\ncollections = [\"c0\"]\n"
          << "\n[batch]\nmax_events = 10\nmax_age_ms = 200\n"
          << "[output]\nprefix = \"cdc\"\n"
          << "[destination]\ntype = \"local\"\npath = \"" << (dir_ / "out") << "\"\n"
          << "[state]\ntype = \"file\"\npath = \"" << (dir_ / "state") << "\"\n"
          << "[pipeline]\ncheckpoint_interval_ms = 100\n"
          << "[metrics]\nport = 0\n"
          << "[log]\nlevel = \"debug\"\nprogress_interval_ms = 0\n";
    }

    void start_penne() {
        penne_ = std::make_unique<process>(
            std::vector<std::string>{build_path("app/penne"), "run", "-c", dir_ / "penne.toml"},
            dir_ / ("penne-" + std::to_string(++starts_) + ".log"));
    }

    bool wait_log(const std::string& needle, std::chrono::seconds timeout = 20s) {
        return penne_->wait_for_output(needle, timeout);
    }

    void stop_penne() {
        penne_->signal(SIGTERM);
        auto code = penne_->wait(60s);
        ASSERT_TRUE(code) << "penne did not stop";
        EXPECT_EQ(*code, 0) << penne_->log();
    }

    // How many times each sequence number was written so far.
    std::map<std::int64_t, int> written() {
        std::map<std::int64_t, int> ns;
        for (const auto& e : scan_output(dir_ / "out").events)
            if (e.operation == "insert")
                ++ns[e.n];
        return ns;
    }

    bool wait_written(std::int64_t n, std::chrono::seconds timeout = 30s) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < deadline) {
            if (written().count(n))
                return true;
            std::this_thread::sleep_for(100ms);
        }
        return false;
    }

    // Each of first..last-1 written exactly once, and nothing else.
    static std::map<std::int64_t, int> once(
        std::vector<std::pair<std::int64_t, std::int64_t>> ranges) {
        std::map<std::int64_t, int> out;
        for (auto [first, last] : ranges)
            for (auto n = first; n < last; ++n)
                out[n] = 1;
        return out;
    }

    temp_dir dir_{"penne-start-at"};
    int port_ = 0;
    int starts_ = 0;
    std::unique_ptr<process> mongosim_;
    std::unique_ptr<process> penne_;
};

TEST_F(start_at_e2e, timestamp_starts_between_a_and_b_and_a_restart_resumes_from_the_token) {
    start_mongosim();
    inserter(port_).insert("shop", {"c0"}, 0, 5);  // A
    const auto [secs, inc] = operation_time(port_);
    ASSERT_GT(secs, 0u);
    inserter(port_).insert("shop", {"c0"}, 100, 105);  // B
    const std::string at = std::to_string(secs) + ":" + std::to_string(inc + 1);
    write_config(at);

    start_penne();
    ASSERT_TRUE(wait_log("scope shop.c0: starting at operation time " + at)) << penne_->log();
    EXPECT_TRUE(wait_log("as the scope has no saved token; a saved token always wins"))
        << penne_->log();
    ASSERT_TRUE(wait_written(104)) << penne_->log();
    ASSERT_TRUE(wait_log("starting position saved")) << penne_->log();
    stop_penne();
    EXPECT_EQ(written(), once({{100, 105}})) << penne_->log();

    // While penne is down: C. The restart starts from the saved token, not from start_at, so
    // B is not written again.
    inserter(port_).insert("shop", {"c0"}, 200, 205);
    start_penne();
    ASSERT_TRUE(wait_log("scope shop.c0: starting from saved checkpoint (start_at is not used"))
        << penne_->log();
    ASSERT_TRUE(wait_written(204)) << penne_->log();
    stop_penne();
    EXPECT_EQ(written(), once({{100, 105}, {200, 205}})) << penne_->log();
    EXPECT_EQ(penne_->log().find("starting at operation time"), std::string::npos) << penne_->log();
}

TEST_F(start_at_e2e, rfc3339_time_starts_at_that_second) {
    start_mongosim();
    inserter(port_).insert("shop", {"c0"}, 0, 5);  // A
    // The next whole second: A's cluster times are all before it, B's at or after it.
    const auto now = std::chrono::system_clock::now();
    const auto boundary = std::chrono::ceil<std::chrono::seconds>(now + 1ms);
    std::this_thread::sleep_until(boundary + 50ms);
    inserter(port_).insert("shop", {"c0"}, 100, 105);  // B
    const std::time_t t = std::chrono::system_clock::to_time_t(boundary);
    std::tm utc{};
    gmtime_r(&t, &utc);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &utc);
    write_config(stamp);

    start_penne();
    ASSERT_TRUE(wait_log("starting at operation time " + std::to_string(t) + ":0 (" + stamp + ")"))
        << penne_->log();
    ASSERT_TRUE(wait_written(104)) << penne_->log();
    stop_penne();
    EXPECT_EQ(written(), once({{100, 105}})) << penne_->log();
}

TEST_F(start_at_e2e, start_at_older_than_the_oplog_is_history_lost_then_now) {
    start_mongosim({"--oplog-size", "40"});
    inserter(port_).insert("shop", {"c0"}, 0, 100);  // the first 60 fall off the oplog
    write_config("1:0", "restart_from_now");

    start_penne();
    ASSERT_TRUE(wait_log("history lost, restarting from now")) << penne_->log();
    ASSERT_TRUE(wait_log("change stream open")) << penne_->log();
    inserter(port_).insert("shop", {"c0"}, 1000, 1005);
    ASSERT_TRUE(wait_written(1004)) << penne_->log();
    stop_penne();
    // From now, not from start_at again: only what came after the restart.
    EXPECT_EQ(written(), once({{1000, 1005}})) << penne_->log();
}

TEST_F(start_at_e2e, start_at_older_than_the_oplog_fails_by_default_and_says_so) {
    start_mongosim({"--oplog-size", "40"});
    inserter(port_).insert("shop", {"c0"}, 0, 100);
    write_config("1:0");

    start_penne();
    auto code = penne_->wait(60s);
    ASSERT_TRUE(code) << "penne kept running:\n" << penne_->log();
    EXPECT_EQ(*code, 1) << penne_->log();
    const auto log = penne_->log();
    EXPECT_NE(log.find("scope shop.c0: starting at operation time 1:0 (1970-01-01T00:00:01Z)"),
              std::string::npos)
        << log;
    EXPECT_NE(log.find("the start_at operation time is no longer in the change stream history"),
              std::string::npos)
        << log;
    EXPECT_TRUE(written().empty());
}

}  // namespace
}  // namespace penne::test
