// Chaos with leases: three penne processes share six collection scopes through one
// redis-server (leases, fencing, manifests, checkpoints), read one mongosim and write one
// local directory, while a writer inserts continuously. Faults: kill -9 of an instance
// (its scopes must move within about one TTL), an instance frozen past its TTL and thawed
// (a zombie owner whose writes must be fenced off), and Redis paused. After a graceful
// stop of all, the directory is decoded independently: every inserted document appears
// exactly once, and no event is in two different objects.

#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
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

constexpr int ttl_ms = 1000;
constexpr int retry_ms = 200;
constexpr int instances = 3;

// Inserts documents continuously (n = 0, 1, 2, ...) until stopped.
class workload {
public:
    workload(int port, std::vector<std::string> colls)
        : ins_(port), colls_(std::move(colls)), thread_([this] { loop(); }) {}
    ~workload() { stop(); }
    void stop() {
        stop_ = true;
        if (thread_.joinable())
            thread_.join();
    }
    std::int64_t count() const { return next_.load(); }
    const std::string& error() const { return error_; }

private:
    void loop() {
        while (!stop_) {
            const auto n = next_.load();
            try {
                ins_.insert("shop", colls_, n, n + 24, 24);
            } catch (const std::exception& e) {
                error_ = e.what();
                return;
            }
            next_ = n + 24;
            std::this_thread::sleep_for(15ms);
        }
    }
    inserter ins_;
    std::vector<std::string> colls_;
    std::atomic<bool> stop_{false};
    std::atomic<std::int64_t> next_{0};
    std::string error_;
    std::thread thread_;
};

class LeaseChaos : public ::testing::Test {
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
            std::ofstream f(dir_ / ("p" + std::to_string(i) + ".toml"));
            f << "[mongodb]\nuri = \"mongodb://127.0.0.1:" << port_
              << "/?directConnection=true\"\nmax_await_ms = 100\n\n"
              << "[[watch]]\nlevel = \"collection\"\ndatabase = \"shop\"\ncollections = [";
            for (std::size_t c = 0; c < colls_.size(); ++c)
                f << (c ? ", " : "") << '"' << colls_[c] << '"';
            f << "]\n[batch]\nmax_events = 20\nmax_age_ms = 100\n"
              << "[output]\nprefix = \"cdc\"\n"
              << "[destination]\ntype = \"local\"\npath = \"" << (dir_ / "out") << "\"\n"
              << "[state]\ntype = \"redis\"\nkey_prefix = \"chaos\"\ncommand_timeout_ms = 300\n"
              << "connect_timeout_ms = 300\n"
              << "[lease]\nttl_ms = " << ttl_ms << "\nretry_interval_ms = " << retry_ms
              << "\nowner = \"p" << i << "\"\n"
              << "[pipeline]\ncheckpoint_interval_ms = 100\nshutdown_timeout_ms = 20000\n"
              << "[retry]\ninitial_delay_ms = 20\nmax_delay_ms = 200\n"
              << "[metrics]\nenabled = false\n"
              << "[log]\nlevel = \"info\"\nprogress_interval_ms = 0\n";
        }
    }

    void start(int i) {
        auto& p = penne_[i];
        p = std::make_unique<process>(
            std::vector<std::string>{build_path("app/penne"), "run", "-c",
                                     dir_ / ("p" + std::to_string(i) + ".toml")},
            dir_ / ("p" + std::to_string(i) + "-" + std::to_string(++starts_) + ".log"),
            std::map<std::string, std::string>{{"PENNE_REDIS_URL", redis_.url()}});
        ASSERT_TRUE(p->wait_for_output("starting:", 10s)) << p->log();
    }

    void start_all() {
        for (int i = 1; i <= instances; ++i)
            start(i);
        // Every scope streaming with its starting position saved (inserts made before a
        // scope's first checkpoint would be before its "now").
        ASSERT_TRUE(wait_until([&] { return watermarks() == colls_.size(); }, 30s))
            << "scopes with a checkpoint: " << watermarks() << "\n"
            << logs();
        ASSERT_TRUE(wait_until([&] { return holders().size() == colls_.size(); }, 10s));
    }

    void stop_all() {
        for (auto& [i, p] : penne_) {
            if (p)
                p->signal(SIGTERM);
        }
        for (auto& [i, p] : penne_) {
            if (!p)
                continue;
            auto code = p->wait(60s);
            ASSERT_TRUE(code) << "p" << i << " did not stop\n" << p->log();
            EXPECT_EQ(*code, 0) << p->log();
            p.reset();
        }
    }

    std::string redis_cli(const std::string& args) { return redis_.cli(args); }

    // Scope -> owner of its live lease.
    std::map<std::string, std::string> holders() {
        std::map<std::string, std::string> out;
        for (auto& c : colls_) {
            auto v = redis_cli("GET 'chaos:lease:{shop." + c + "}'");
            if (auto colon = v.rfind(':'); !v.empty() && colon != std::string::npos)
                out[c] = v.substr(0, colon);
        }
        return out;
    }
    std::size_t watermarks() {
        std::size_t n = 0;
        for (auto& c : colls_)
            n += redis_cli("EXISTS 'chaos:scope:{shop." + c + "}:watermark'") == "1";
        return n;
    }

    std::string logs() {
        std::string s;
        for (auto& [i, p] : penne_)
            if (p)
                s += "---- p" + std::to_string(i) + "\n" + p->log();
        return s;
    }

    std::size_t distinct_inserts() {
        std::set<std::int64_t> seen;
        for (auto& e : scan_output(dir_ / "out").events)
            if (e.operation == "insert")
                seen.insert(e.n);
        return seen.size();
    }

    void expect_exactly_once(std::int64_t count) {
        auto scan = scan_output(dir_ / "out");
        EXPECT_TRUE(scan.errors.empty()) << scan.errors.front();
        std::map<std::int64_t, int> seen;
        std::map<std::string, std::string> token_object;
        std::size_t in_two_objects = 0;
        for (auto& e : scan.events) {
            auto [it, fresh] = token_object.emplace(e.token, e.object);
            if (!fresh)
                ++in_two_objects;
            if (e.operation == "insert")
                ++seen[e.n];
        }
        EXPECT_EQ(in_two_objects, 0u) << "events written twice (in two objects or twice in one)";
        std::int64_t missing = 0, dup = 0;
        for (std::int64_t n = 0; n < count; ++n) {
            auto it = seen.find(n);
            if (it == seen.end())
                ++missing;
            else if (it->second > 1)
                ++dup;
        }
        EXPECT_EQ(missing, 0) << "inserted documents missing from the output";
        EXPECT_EQ(dup, 0) << "documents written more than once";
        EXPECT_EQ(static_cast<std::int64_t>(seen.size()), count) << "documents never inserted";
        std::printf("[chaos] %lld documents inserted, %zu events in %zu objects\n",
                    static_cast<long long>(count), scan.events.size(), scan.objects);
    }

    // Ends the load, lets every instance catch up, stops all gracefully and checks.
    void finish(workload& load) {
        load.stop();
        ASSERT_TRUE(load.error().empty()) << load.error();
        const auto total = load.count();
        EXPECT_TRUE(
            wait_until([&] { return distinct_inserts() >= static_cast<std::size_t>(total); }, 60s))
            << distinct_inserts() << " of " << total << "\n"
            << logs();
        stop_all();
        expect_exactly_once(total);
        EXPECT_TRUE(holders().empty()) << "a graceful stop releases every lease";
    }

    redis_peer redis_;
    temp_dir dir_{"penne-chaos"};
    int port_ = 0;
    int starts_ = 0;
    std::unique_ptr<process> mongosim_;
    std::map<int, std::unique_ptr<process>> penne_;
    std::vector<std::string> colls_;
};

TEST_F(LeaseChaos, Kill9MovesScopesWithinAboutOneTtlAndLosesNothing) {
    start_all();
    // Fair spreading: no instance holds more than ceil(6 / 3) scopes once all are alive.
    EXPECT_TRUE(wait_until(
        [&] {
            std::map<std::string, int> n;
            for (auto& [c, o] : holders())
                ++n[o];
            return n.size() == instances &&
                   std::all_of(n.begin(), n.end(), [](auto& x) { return x.second == 2; });
        },
        10s))
        << logs();
    workload load(port_, colls_);
    std::this_thread::sleep_for(1500ms);
    // Kill the instance holding the most scopes.
    std::map<std::string, int> per_owner;
    for (auto& [c, o] : holders())
        ++per_owner[o];
    std::string victim = per_owner.begin()->first;
    for (auto& [o, n] : per_owner)
        if (n > per_owner[victim])
            victim = o;
    const int vi = victim[1] - '0';
    penne_[vi]->signal(SIGKILL);
    penne_[vi]->wait(10s);
    penne_.erase(vi);
    const auto killed = steady::now();
    const bool moved = wait_until(
        [&] {
            auto h = holders();
            if (h.size() != colls_.size())
                return false;
            for (auto& [c, o] : h)
                if (o == victim)
                    return false;
            return true;
        },
        10s);
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - killed);
    ASSERT_TRUE(moved) << logs();
    std::printf("[chaos] scopes of %s moved in %lld ms (ttl %d ms)\n", victim.c_str(),
                static_cast<long long>(took.count()), ttl_ms);
    // One TTL for the lease to expire, a retry interval to notice, and slack for a busy
    // machine.
    EXPECT_LT(took.count(), ttl_ms + 2 * retry_ms + 1500);
    std::this_thread::sleep_for(1s);
    // The victim comes back and gets its fair share again.
    start(vi);
    std::this_thread::sleep_for(3s);
    finish(load);
}

TEST_F(LeaseChaos, AFrozenInstanceIsFencedOffWhenItWakesUp) {
    start_all();
    workload load(port_, colls_);
    std::this_thread::sleep_for(1500ms);
    const auto before = holders();
    std::string zombie;
    for (auto& [c, o] : before)
        zombie = o;
    const int zi = zombie[1] - '0';
    penne_[zi]->signal(SIGSTOP);
    // Longer than the TTL: the others take its scopes over meanwhile.
    ASSERT_TRUE(wait_until(
        [&] {
            auto h = holders();
            if (h.size() != colls_.size())
                return false;
            for (auto& [c, o] : h)
                if (o == zombie)
                    return false;
            return true;
        },
        10s))
        << logs();
    std::this_thread::sleep_for(1s);
    penne_[zi]->signal(SIGCONT);
    // It wakes up believing it still owns its scopes: its watchdog or its refused writes
    // stop them, without failing the process.
    ASSERT_TRUE(penne_[zi]->wait_for_output("lease lost", 10s)) << penne_[zi]->log();
    std::this_thread::sleep_for(3s);
    EXPECT_TRUE(penne_[zi]->running()) << penne_[zi]->log();
    finish(load);
}

TEST_F(LeaseChaos, RedisPausedLongerThanTheTtlLosesNothing) {
    start_all();
    workload load(port_, colls_);
    std::this_thread::sleep_for(1500ms);
    ASSERT_EQ(::kill(redis_.pid(), SIGSTOP), 0);
    std::this_thread::sleep_for(2500ms);
    ASSERT_EQ(::kill(redis_.pid(), SIGCONT), 0);
    // Every instance saw its leases run out; the scopes are taken again.
    ASSERT_TRUE(wait_until([&] { return holders().size() == colls_.size(); }, 15s)) << logs();
    std::this_thread::sleep_for(2s);
    for (auto& [i, p] : penne_)
        EXPECT_TRUE(p->running()) << p->log();
    finish(load);
}

}  // namespace
}  // namespace penne::test
