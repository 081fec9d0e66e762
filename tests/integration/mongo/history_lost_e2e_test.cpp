// The history-lost policy end to end (DESIGN §6): mongosim (a real process, --oplog-size 40)
// → penne (the real binary) → a local directory. penne saves its position and stops; while
// it is down more events are written than the oplog keeps, so the saved position falls off.
//  - on_history_lost = "fail" (the default): penne exits with an error saying the saved
//    position is gone and how to choose the policy; nothing after the gap is written.
//  - on_history_lost = "restart_from_now": penne logs the loss (scope, saved clusterTime, now),
//    counts it in penne_history_lost_total{scope}, shows it in /status last_error, and goes on
//    from the current time: new events are written, the lost ones are not, and the next start
//    resumes normally from the new position.

#include <mongoc/mongoc.h>

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <set>
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

// The body of one GET to 127.0.0.1:port (Connection: close); empty when nothing answers.
std::string http_body(int port, const std::string& path) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return {};
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::string raw;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
        const std::string req =
            "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
        if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
            char buf[65536];
            for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;)
                raw.append(buf, static_cast<std::size_t>(n));
        }
    }
    ::close(fd);
    const auto body = raw.find("\r\n\r\n");
    return body == std::string::npos ? std::string() : raw.substr(body + 4);
}

std::size_t count(const std::string& text, const std::string& needle) {
    std::size_t n = 0;
    for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1))
        ++n;
    return n;
}

class history_lost_e2e : public ::testing::Test {
protected:
    void SetUp() override {
        port_ = free_port();
        mongosim_ = std::make_unique<process>(
            std::vector<std::string>{build_path("tests/mongosim/mongosim"), "--port",
                                     std::to_string(port_), "--oplog-size", "40"},
            dir_ / "mongosim.log");
        ASSERT_TRUE(mongosim_->wait_for_output("mongosim listening on", 10s)) << mongosim_->log();
    }

    void write_config(const std::string& policy) {
        std::ofstream f(dir_ / "penne.toml");
        f << "[mongodb]\nuri = \"mongodb://127.0.0.1:" << port_
          << "/?directConnection=true\"\nmax_await_ms = 200\n"
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

    // Starts penne; returns its ops port once the log names it (0 when it never does).
    int start_penne() {
        penne_ = std::make_unique<process>(
            std::vector<std::string>{build_path("app/penne"), "run", "-c", dir_ / "penne.toml"},
            dir_ / ("penne-" + std::to_string(++starts_) + ".log"));
        const std::string line = "ops server listening on 127.0.0.1:";
        if (!penne_->wait_for_output(line, 20s))
            return 0;
        const auto log = penne_->log();
        return std::atoi(log.c_str() + log.find(line) + line.size());
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

    // The sequence numbers written to the output so far.
    std::set<std::int64_t> written() {
        std::set<std::int64_t> ns;
        for (const auto& e : scan_output(dir_ / "out").events)
            if (e.operation == "insert")
                ns.insert(e.n);
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

    // Runs penne over the first 10 events, stops it (position saved), then writes 200 more
    // than the 40 the oplog keeps while it is down.
    void lose_history() {
        ASSERT_GT(start_penne(), 0) << penne_->log();
        ASSERT_TRUE(wait_log("change stream open")) << penne_->log();
        inserter(port_).insert("shop", {"c0"}, 0, 10);
        ASSERT_TRUE(wait_written(9)) << penne_->log();
        stop_penne();
        inserter(port_).insert("shop", {"c0"}, 10, 210);
    }

    temp_dir dir_{"penne-history-lost"};
    int port_ = 0;
    int starts_ = 0;
    std::unique_ptr<process> mongosim_;
    std::unique_ptr<process> penne_;
};

TEST_F(history_lost_e2e, fail_policy_stops_with_a_clear_error) {
    write_config("");  // the default
    lose_history();
    start_penne();
    auto code = penne_->wait(60s);
    ASSERT_TRUE(code) << "penne kept running after losing its position:\n" << penne_->log();
    EXPECT_EQ(*code, 1) << penne_->log();
    const auto log = penne_->log();
    EXPECT_NE(log.find("scope shop.c0"), std::string::npos) << log;
    EXPECT_NE(log.find("no longer in the change stream history"), std::string::npos) << log;
    EXPECT_NE(log.find("on_history_lost = \"restart_from_now\""), std::string::npos) << log;
    EXPECT_NE(log.find("saved position: clusterTime"), std::string::npos) << log;
    // Nothing from after the gap was written.
    auto ns = written();
    EXPECT_EQ(ns.size(), 10u);
    EXPECT_EQ(*ns.rbegin(), 9);
}

TEST_F(history_lost_e2e, restart_from_now_goes_on_and_reports_the_gap) {
    write_config("restart_from_now");
    lose_history();
    const int ops = start_penne();
    ASSERT_GT(ops, 0) << penne_->log();
    ASSERT_TRUE(wait_log("history lost, restarting from now")) << penne_->log();
    ASSERT_TRUE(wait_log("change stream open")) << penne_->log();
    inserter(port_).insert("shop", {"c0"}, 1000, 1010);
    ASSERT_TRUE(wait_written(1009)) << penne_->log();

    const auto log = penne_->log();
    EXPECT_NE(log.find("scope shop.c0: history lost, restarting from now"), std::string::npos)
        << log;
    EXPECT_NE(log.find("saved position: clusterTime"), std::string::npos) << log;
    const auto status = http_body(ops, "/status");
    EXPECT_NE(status.find("history lost, restarting from now"), std::string::npos) << status;
    const auto metrics = http_body(ops, "/metrics");
    EXPECT_NE(metrics.find("penne_history_lost_total{scope=\"shop.c0\"} 1"), std::string::npos)
        << metrics;
    stop_penne();

    // The gap: 0-9 and 1000-1009 written, none of the 200 written while penne was down.
    auto ns = written();
    for (std::int64_t n = 10; n < 210; ++n)
        EXPECT_FALSE(ns.count(n)) << n;
    EXPECT_EQ(ns.size(), 20u);

    // The new position was saved: the next start resumes without losing anything again.
    ASSERT_GT(start_penne(), 0) << penne_->log();
    ASSERT_TRUE(wait_log("change stream open")) << penne_->log();
    inserter(port_).insert("shop", {"c0"}, 2000, 2005);
    ASSERT_TRUE(wait_written(2004)) << penne_->log();
    EXPECT_EQ(count(penne_->log(), "history lost"), 0u) << penne_->log();
    stop_penne();
    EXPECT_EQ(written().size(), 25u);
}

}  // namespace
}  // namespace penne::test
