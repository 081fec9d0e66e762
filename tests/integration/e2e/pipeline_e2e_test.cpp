// End to end: mongosim (a real process, written to by libmongoc) → penne (a real process)
// → a local directory, decoded independently. Every inserted document must appear exactly
// once, across graceful restarts and kill -9.

#include <mongoc/mongoc.h>

#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "exactly_once.hpp"
#include "mongo_inserter.hpp"
#include "output_reader.hpp"
#include "process.hpp"
#include "temp_dir.hpp"

namespace penne::test {
namespace {

using namespace std::chrono_literals;

const auto* const env = ::testing::AddGlobalTestEnvironment(new mongoc_env);

class pipeline_e2e : public ::testing::Test {
protected:
    void SetUp() override {
        port_ = free_port();
        mongosim_ = std::make_unique<process>(
            std::vector<std::string>{build_path("tests/mongosim/mongosim"), "--port",
                                     std::to_string(port_)},
            dir_ / "mongosim.log");
        ASSERT_TRUE(mongosim_->wait_for_output("mongosim listening on", 10s)) << mongosim_->log();
    }

    void write_config(const std::string& watch, const std::string& batch,
                      const std::string& pipeline = "", const std::string& output = "") {
        std::ofstream f(dir_ / "penne.toml");
        f << "[mongodb]\nuri = \"mongodb://127.0.0.1:" << port_
          << "/?directConnection=true\"\nmax_await_ms = 200\n\n"
          << watch << "\n[batch]\n"
          << batch << "\n[output]\nprefix = \"cdc\"\n"
          << output << "[destination]\ntype = \"local\"\npath = \"" << (dir_ / "out") << "\"\n"
          << "[state]\ntype = \"file\"\npath = \"" << (dir_ / "state") << "\"\n"
          << "[pipeline]\ncheckpoint_interval_ms = 100\n"
          << pipeline << "[log]\nlevel = \"debug\"\nprogress_interval_ms = 0\n";
    }

    std::unique_ptr<process> start_penne(std::size_t scopes) {
        auto p = std::make_unique<process>(
            std::vector<std::string>{build_path("app/penne"), "run", "-c", dir_ / "penne.toml"},
            dir_ / "penne.log");
        // Ready once every scope's change stream is open.
        const auto deadline = std::chrono::steady_clock::now() + 20s;
        while (std::chrono::steady_clock::now() < deadline) {
            auto log = p->log();
            std::size_t open = 0;
            for (std::size_t pos = 0;
                 (pos = log.find("change stream open", pos)) != std::string::npos; ++pos)
                ++open;
            if (open >= opened_ + scopes) {
                opened_ = open;
                return p;
            }
            if (!p->running())
                break;
            std::this_thread::sleep_for(20ms);
        }
        ADD_FAILURE() << "penne did not open its streams:\n" << p->log();
        return p;
    }

    void stop_penne(std::unique_ptr<process>& p) {
        p->signal(SIGTERM);
        auto code = p->wait(60s);
        ASSERT_TRUE(code) << "penne did not stop";
        EXPECT_EQ(*code, 0) << p->log();
        p.reset();
    }

    // Waits until `expected` distinct inserts are in the bucket.
    output_scan wait_for(std::size_t expected, std::chrono::seconds timeout = 60s) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        output_scan scan;
        while (std::chrono::steady_clock::now() < deadline) {
            scan = scan_output(dir_ / "out");
            if (distinct_inserts(scan) >= expected)
                return scan;
            std::this_thread::sleep_for(100ms);
        }
        return scan;
    }

    temp_dir dir_{"penne-e2e"};
    int port_ = 0;
    std::size_t opened_ = 0;
    std::unique_ptr<process> mongosim_;
    const std::vector<std::string> colls_{"c0", "c1", "c2", "c3", "c4"};
};

TEST_F(pipeline_e2e, collection_scopes_write_every_document_exactly_once) {
    write_config(
        "[[watch]]\nlevel = \"collection\"\ndatabase = \"shop\"\n"
        "collections = [\"c0\", \"c1\", \"c2\", \"c3\", \"c4\"]\n",
        "max_events = 500\nmax_age_ms = 300\n",
        // Five strands on two threads: the same result as on one.
        "threads = 2\nmax_concurrent_uploads = 3\n");
    auto penne = start_penne(5);
    // The daemon's threads carry names (top -H, ps -L): the second io_context thread, and
    // the four file I/O threads (local destination, file state store).
    std::map<std::string, int> names;
    for (const auto& task :
         std::filesystem::directory_iterator("/proc/" + std::to_string(penne->pid()) + "/task")) {
        std::ifstream comm(task.path() / "comm");
        std::string name;
        std::getline(comm, name);
        ++names[name];
    }
    EXPECT_EQ(names["penne-io"], 1) << ::testing::PrintToString(names);
    EXPECT_EQ(names["penne-file"], 4) << ::testing::PrintToString(names);
    inserter(port_).insert("shop", colls_, 0, 10'000);
    auto scan = wait_for(10'000);
    stop_penne(penne);
    scan = scan_output(dir_ / "out");
    expect_exactly_once(scan, 10'000, "shop");
    // Objects hold one collection each, under the date_hour layout.
    for (auto& e : scan.events) {
        EXPECT_EQ(e.object.rfind("cdc/shop/" + e.coll + "/", 0), 0u) << e.object;
    }
}

TEST_F(pipeline_e2e, database_scope_fans_out_to_collections) {
    write_config("[[watch]]\nlevel = \"database\"\ndatabase = \"shop\"\n",
                 "max_events = 700\nmax_age_ms = 300\n");
    auto penne = start_penne(1);
    inserter(port_).insert("shop", colls_, 0, 10'000);
    auto scan = wait_for(10'000);
    stop_penne(penne);
    scan = scan_output(dir_ / "out");
    expect_exactly_once(scan, 10'000, "shop");
    std::set<std::string> colls;
    for (auto& e : scan.events) {
        colls.insert(e.coll);
        EXPECT_NE(e.object.find("/" + e.coll + "/"), std::string::npos) << e.object;
    }
    EXPECT_EQ(colls.size(), 5u);
}

TEST_F(pipeline_e2e, a_quiet_pipeline_returns_its_freed_heap_once_per_quiet_period) {
    const std::string line = "idle: freed heap returned to the kernel";
    auto count = [&](const std::string& log) {
        std::size_t n = 0;
        for (std::size_t pos = 0; (pos = log.find(line, pos)) != std::string::npos; ++pos)
            ++n;
        return n;
    };
    write_config("[[watch]]\nlevel = \"database\"\ndatabase = \"shop\"\n",
                 "max_events = 1000\nmax_age_ms = 200\n");
    auto penne = start_penne(1);
    std::this_thread::sleep_for(3s);
    EXPECT_EQ(count(penne->log()), 0u) << "nothing to give back before the first event";
    inserter(port_).insert("shop", colls_, 0, 5'000);
    ASSERT_EQ(distinct_inserts(wait_for(5'000)), 5'000u);
    ASSERT_TRUE(penne->wait_for_output(line, 10s)) << penne->log();
    std::this_thread::sleep_for(3s);
    EXPECT_EQ(count(penne->log()), 1u) << "once per quiet period, not every second";
    // A new burst, a new quiet period: one more.
    inserter(port_).insert("shop", colls_, 5'000, 6'000);
    ASSERT_EQ(distinct_inserts(wait_for(6'000)), 6'000u);
    // 15 s: were both lines identical, the log's repeat filter would hold the second back
    // and write it as "(repeated …)" when its 10 s window closes.
    const auto deadline = std::chrono::steady_clock::now() + 15s;
    while (count(penne->log()) < 2 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(100ms);
    EXPECT_EQ(count(penne->log()), 2u) << penne->log();
    stop_penne(penne);
    expect_exactly_once(scan_output(dir_ / "out"), 6'000, "shop");
}

TEST_F(pipeline_e2e, kill_9_right_after_a_fresh_start_loses_nothing) {
    // The starting position must be saved before the first event is read: a crash before
    // anything was written may not restart at a later "now".
    write_config("[[watch]]\nlevel = \"database\"\ndatabase = \"shop\"\n",
                 "max_events = 1000\nmax_age_ms = 5000\n");
    inserter ins(port_);
    std::int64_t next = 0;
    auto penne = start_penne(1);
    std::thread writer([&] {
        for (int i = 0; i < 10; ++i) {
            ins.insert("shop", colls_, next, next + 100, 50);
            next += 100;
            std::this_thread::sleep_for(10ms);
        }
    });
    std::this_thread::sleep_for(5ms);
    penne->signal(SIGKILL);
    penne->wait(10s);
    writer.join();
    penne = start_penne(1);
    auto scan = wait_for(static_cast<std::size_t>(next));
    stop_penne(penne);
    expect_exactly_once(scan_output(dir_ / "out"), next);
}

TEST_F(pipeline_e2e, backpressure_bounds_memory_and_still_delivers) {
    // Batches that never fill and never age: only the buffered-bytes bound cuts them.
    write_config("[[watch]]\nlevel = \"database\"\ndatabase = \"shop\"\n",
                 "max_events = 1000000\nmax_bytes = \"512MiB\"\nmax_age_ms = 3600000\n",
                 "max_buffered_bytes = \"1MiB\"\n");
    auto penne = start_penne(1);
    inserter(port_).insert("shop", colls_, 0, 10'000);
    // Objects appear before shutdown although no batch is full or old: the bound cut them.
    // (What stays below the bound is written at shutdown.)
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (scan_output(dir_ / "out").objects < 3 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(50ms);
    EXPECT_GE(scan_output(dir_ / "out").objects, 3u) << "objects must be cut before shutdown";
    // A graceful stop writes what was read; what was not read yet is read after a restart.
    // Restart until everything is in (each round also checks exactly-once across restarts).
    stop_penne(penne);
    for (int round = 0; round < 10; ++round) {
        if (distinct_inserts(scan_output(dir_ / "out")) >= 10'000)
            break;
        penne = start_penne(1);
        std::this_thread::sleep_for(500ms);
        stop_penne(penne);
    }
    expect_exactly_once(scan_output(dir_ / "out"), 10'000);
}

TEST_F(pipeline_e2e, csv_output_holds_every_event_exactly_once) {
    write_config("[[watch]]\nlevel = \"database\"\ndatabase = \"shop\"\n",
                 "max_events = 800\nmax_age_ms = 300\n", "",
                 "format = \"csv\"\ncompression = \"gzip\"\n");
    auto penne = start_penne(1);
    inserter(port_).insert("shop", colls_, 0, 5'000);
    wait_for(5'000);
    stop_penne(penne);
    auto scan = scan_output(dir_ / "out");
    expect_exactly_once(scan, 5'000);
    for (auto& e : scan.events)
        EXPECT_NE(e.object.find(".csv.gz"), std::string::npos) << e.object;
}

TEST_F(pipeline_e2e, restart_resumes_from_the_file_state_store) {
    write_config("[[watch]]\nlevel = \"database\"\ndatabase = \"shop\"\n",
                 "max_events = 250\nmax_age_ms = 200\n");
    auto penne = start_penne(1);
    inserter ins(port_);
    ins.insert("shop", colls_, 0, 3'000);
    wait_for(3'000);
    stop_penne(penne);
    // Written while penne is down: must be picked up from the saved token.
    ins.insert("shop", colls_, 3'000, 6'000);
    penne = start_penne(1);
    ins.insert("shop", colls_, 6'000, 7'000);
    auto scan = wait_for(7'000);
    stop_penne(penne);
    expect_exactly_once(scan_output(dir_ / "out"), 7'000);
}

TEST_F(pipeline_e2e, kill_9_mid_batch_loses_and_duplicates_nothing) {
    write_config("[[watch]]\nlevel = \"database\"\ndatabase = \"shop\"\n",
                 "max_events = 40\nmax_age_ms = 150\n");
    inserter ins(port_);
    std::int64_t next = 0;
    for (int round = 0; round < 6; ++round) {
        auto penne = start_penne(1);
        // Keep inserting while penne is killed somewhere in the middle of its work.
        std::atomic<bool> done{false};
        std::thread writer([&] {
            for (int i = 0; i < 20; ++i) {
                ins.insert("shop", colls_, next, next + 150, 30);
                next += 150;
                std::this_thread::sleep_for(10ms);
            }
            done = true;
        });
        // Kill at different points: while batches open, seal, record and upload.
        std::this_thread::sleep_for(std::chrono::milliseconds(40 + 90 * round));
        penne->signal(SIGKILL);
        penne->wait(10s);
        writer.join();
        penne.reset();
    }
    auto penne = start_penne(1);
    auto scan = wait_for(static_cast<std::size_t>(next));
    stop_penne(penne);
    expect_exactly_once(scan_output(dir_ / "out"), next);
}

}  // namespace
}  // namespace penne::test
