// End to end, as an operator sees it: mongosim (a real process, written to by libmongoc) →
// penne (a real process, metrics.port = 0) → a local directory. /metrics is scraped while
// documents are inserted and must count exactly what the output holds (read back
// independently); every scrape passes our exposition checker and `promtool check metrics`,
// with and without the rigatoni names. /ready follows the change stream: 503 before it
// opens and while mongosim is frozen (SIGSTOP), 200 once it streams. /status is JSON
// without secrets and lists the scope with its lag; /health answers throughout.

#include "../http/exposition_check.hpp"

#include <boost/json/parse.hpp>

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <set>
#include <thread>

#include "exactly_once.hpp"
#include "mongo_inserter.hpp"
#include "ops_endpoints.hpp"
#include "output_reader.hpp"
#include "process.hpp"
#include "temp_dir.hpp"

namespace penne::test {
namespace {

using namespace std::chrono_literals;

const auto* const env = ::testing::AddGlobalTestEnvironment(new mongoc_env);

// The sum of every sample of `name` (all label sets).
double sum_of(const std::string& exposition, const std::string& name) {
    double total = 0;
    std::istringstream in(exposition);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#')
            continue;
        exposition_sample s;
        std::string err;
        if (parse_sample_line(line, s, err) && s.name == name)
            total += s.value;
    }
    return total;
}

class metrics_e2e : public ::testing::Test {
protected:
    void SetUp() override {
        port_ = free_port();
        mongosim_ = std::make_unique<process>(
            std::vector<std::string>{build_path("tests/mongosim/mongosim"), "--port",
                                     std::to_string(port_)},
            dir_ / "mongosim.log");
        ASSERT_TRUE(mongosim_->wait_for_output("mongosim listening on", 10s)) << mongosim_->log();
    }
    void TearDown() override {
        if (mongosim_)
            mongosim_->signal(SIGCONT);  // never leave a frozen process behind
    }

    void write_config(const std::string& metrics) {
        std::ofstream f(dir_ / "penne.toml");
        f << "[mongodb]\nuri = \"mongodb://127.0.0.1:" << port_
          << "/?directConnection=true\"\nmax_await_ms = 200\nconnect_timeout_ms = 2000\n\n"
          << "[[watch]]\nlevel = \"database\"\ndatabase = \"shop\"\n"
          << "[batch]\nmax_events = 400\nmax_age_ms = 300\n"
          << "[output]\nprefix = \"cdc\"\n"
          << "[destination]\ntype = \"local\"\npath = \"" << (dir_ / "out") << "\"\n"
          << "[state]\ntype = \"file\"\npath = \"" << (dir_ / "state") << "\"\n"
          << "[pipeline]\ncheckpoint_interval_ms = 100\n"
          << "[log]\nlevel = \"debug\"\nprogress_interval_ms = 0\n"
          << "[metrics]\nport = 0\nnot_ready_after_ms = 1000\n"
          << metrics;
    }

    // Starts penne and returns the ops server's port, read from its log line.
    int start_penne() {
        penne_ = std::make_unique<process>(
            std::vector<std::string>{build_path("app/penne"), "run", "-c", dir_ / "penne.toml"},
            dir_ / "penne.log");
        const std::string line = "ops server listening on 127.0.0.1:";
        if (!penne_->wait_for_output(line, 20s)) {
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
        auto code = penne_->wait(60s);
        ASSERT_TRUE(code) << "penne did not stop";
        EXPECT_EQ(*code, 0) << penne_->log();
        penne_.reset();
    }

    // Polls /ready until it answers `status`.
    bool wait_ready(int port, int status, std::chrono::seconds timeout) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < deadline) {
            if (http_get(port, "/ready").status == status)
                return true;
            std::this_thread::sleep_for(50ms);
        }
        return false;
    }

    // Scrapes /metrics and judges it with our checker (and promtool when asked).
    std::string scrape(int port, bool with_promtool) {
        auto m = http_get(port, "/metrics");
        EXPECT_EQ(m.status, 200);
        const auto problems = check_exposition(m.body);
        EXPECT_TRUE(problems.empty()) << problems.front() << "\n" << m.body;
        if (with_promtool) {
            auto pt = promtool_check(m.body, PENNE_PROMTOOL);
            EXPECT_EQ(pt.exit_code, 0) << "promtool (" << PENNE_PROMTOOL << "): " << pt.output;
        }
        return m.body;
    }

    void metrics_count_what_the_output_holds(bool rigatoni) {
        write_config(rigatoni ? "compat = \"rigatoni\"\n" : "");
        const int port = start_penne();
        ASSERT_GT(port, 0);
        EXPECT_EQ(http_get(port, "/health").status, 200);
        ASSERT_TRUE(wait_ready(port, 200, 20s)) << http_get(port, "/ready").body << penne_->log();
        auto idle = scrape(port, true);
        EXPECT_NE(idle.find("\npenne_pipeline_status 1\n"), std::string::npos) << idle;

        constexpr std::int64_t n = 3000;
        const std::vector<std::string> colls{"c0", "c1", "c2"};
        std::atomic<bool> inserted{false};
        std::thread writer([&] {
            inserter(port_).insert("shop", colls, 0, n, 50);
            inserted = true;
        });
        // Scrape while the events flow: every exposition must be well formed.
        int scrapes = 0;
        while (!inserted) {
            scrape(port, scrapes % 10 == 0);
            ++scrapes;
            std::this_thread::sleep_for(20ms);
        }
        writer.join();
        EXPECT_GT(scrapes, 0);

        // Wait until the output holds every document and the metrics say so too.
        const auto deadline = std::chrono::steady_clock::now() + 60s;
        output_scan scan;
        std::string text;
        for (;;) {
            scan = scan_output(dir_ / "out");
            text = scrape(port, false);
            std::set<std::int64_t> seen;
            for (auto& e : scan.events)
                seen.insert(e.n);
            // The scrape follows the scan, so it can only be ahead of it, never behind.
            if ((seen.size() >= static_cast<std::size_t>(n) &&
                 sum_of(text, "penne_events_written_total") == double(scan.events.size())) ||
                std::chrono::steady_clock::now() > deadline)
                break;
            std::this_thread::sleep_for(100ms);
        }
        ASSERT_TRUE(scan.errors.empty()) << scan.errors.front();
        std::size_t inserts = 0;
        for (auto& e : scan.events)
            inserts += e.operation == "insert";
        EXPECT_EQ(inserts, static_cast<std::size_t>(n));
        // The metrics agree with the independently read output, to the event.
        EXPECT_EQ(sum_of(text, "penne_events_written_total"), double(scan.events.size()));
        EXPECT_EQ(sum_of(text, "penne_events_received_total"), double(scan.events.size()));
        EXPECT_EQ(sum_of(text, "penne_objects_written_total"), double(scan.objects));
        EXPECT_EQ(sum_of(text, "penne_upload_duration_seconds_count"), double(scan.objects));
        EXPECT_EQ(sum_of(text, "penne_batch_events_sum"), double(scan.events.size()));
        EXPECT_GT(sum_of(text, "penne_checkpoints_saved_total"), 0);
        EXPECT_NE(text.find("penne_events_written_total{scope=\"shop\",collection=\"c1\","
                            "operation=\"insert\"} 1000\n"),
                  std::string::npos)
            << text;
        EXPECT_NE(text.find("penne_lag_seconds{scope=\"shop\"}"), std::string::npos);
        EXPECT_EQ(sum_of(text, "penne_active_collections"), 3);
        if (rigatoni) {
            EXPECT_EQ(sum_of(text, "rigatoni_events_processed_total"), double(n));
            EXPECT_EQ(sum_of(text, "rigatoni_batches_written_total"), double(scan.objects));
            EXPECT_NE(text.find("rigatoni_pipeline_status 1\n"), std::string::npos);
        } else {
            EXPECT_EQ(text.find("rigatoni_"), std::string::npos);
        }
        scrape(port, true);

        // /status: JSON with the scope, its lag and counts; no URI, no password.
        auto st = http_get(port, "/status");
        ASSERT_EQ(st.status, 200);
        EXPECT_EQ(st.body.find("mongodb://"), std::string::npos) << st.body;
        auto doc = boost::json::parse(st.body).as_object();
        EXPECT_EQ(doc.at("status").as_string(), "running");
        EXPECT_TRUE(doc.at("ready").as_bool());
        EXPECT_FALSE(doc.at("version").as_string().empty());
        EXPECT_GE(doc.at("uptime_seconds").to_number<double>(), 0);
        auto& scopes = doc.at("scopes").as_array();
        ASSERT_EQ(scopes.size(), 1u);
        auto& s = scopes[0].as_object();
        EXPECT_EQ(s.at("id").as_string(), "shop");
        EXPECT_TRUE(s.at("stream_open").as_bool());
        EXPECT_TRUE(s.at("lag_seconds").is_number()) << st.body;
        EXPECT_LT(s.at("lag_seconds").to_number<double>(), 60);
        EXPECT_EQ(s.at("events_written").to_number<double>(), double(scan.events.size()));
        EXPECT_TRUE(s.at("last_durable_time").is_object()) << st.body;
        const auto state = std::string(s.at("state").as_string());
        EXPECT_TRUE(state == "idle" || state == "streaming") << state;
        stop_penne();
    }

    temp_dir dir_{"penne-metrics-e2e"};
    int port_ = 0;
    std::unique_ptr<process> mongosim_;
    std::unique_ptr<process> penne_;
};

TEST_F(metrics_e2e, metrics_count_exactly_what_the_output_holds) {
    metrics_count_what_the_output_holds(false);
}

TEST_F(metrics_e2e, rigatoni_compat_names_count_the_same) {
    metrics_count_what_the_output_holds(true);
}

TEST_F(metrics_e2e, ready_follows_the_change_stream) {
    write_config("");
    mongosim_->signal(SIGSTOP);  // accepts connections, answers nothing
    const int port = start_penne();
    ASSERT_GT(port, 0);
    EXPECT_EQ(http_get(port, "/health").status, 200);
    auto r = http_get(port, "/ready");
    EXPECT_EQ(r.status, 503) << r.body;
    EXPECT_NE(r.body.find("scope shop"), std::string::npos) << r.body;
    auto st = http_get(port, "/status");
    ASSERT_EQ(st.status, 200);
    {
        auto doc = boost::json::parse(st.body).as_object();
        EXPECT_FALSE(doc.at("ready").as_bool());
        auto& s = doc.at("scopes").as_array().at(0).as_object();
        EXPECT_FALSE(s.at("stream_open").as_bool());
        const auto state = std::string(s.at("state").as_string());
        EXPECT_TRUE(state == "starting" || state == "retrying") << state;
    }
    scrape(port, true);  // a pipeline that is not streaming yet exposes a valid page too

    mongosim_->signal(SIGCONT);
    ASSERT_TRUE(wait_ready(port, 200, 30s)) << http_get(port, "/ready").body << penne_->log();

    // Frozen server: no replies, so not ready after not_ready_after (1 s).
    mongosim_->signal(SIGSTOP);
    ASSERT_TRUE(wait_ready(port, 503, 15s)) << http_get(port, "/ready").body;
    r = http_get(port, "/ready");
    EXPECT_NE(r.body.find("scope shop"), std::string::npos) << r.body;
    EXPECT_EQ(http_get(port, "/health").status, 200);
    scrape(port, true);

    mongosim_->signal(SIGCONT);
    ASSERT_TRUE(wait_ready(port, 200, 30s)) << http_get(port, "/ready").body << penne_->log();
    // Still delivering after the pause.
    inserter(port_).insert("shop", {"c0"}, 0, 10);
    auto inserts = [&] { return distinct_inserts(scan_output(dir_ / "out")); };
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (inserts() < 10 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(100ms);
    EXPECT_EQ(inserts(), 10u);
    stop_penne();
}

}  // namespace
}  // namespace penne::test
