// Randomized chaos from a seed: penne processes (two by default) share twenty collection
// scopes (two databases of ten) through leases in one redis-server, read a three-member
// mongosim replica set (rs0, through its seed list) and write one Ceph RGW bucket, while a
// writer inserts, updates ($inc, always a real change) and deletes documents continuously;
// one round of inserts in three is a multi-document transaction over all twenty
// collections of both databases (one commit: twenty events sharing one clusterTime).
// Faults at times drawn from the seed: kill -9 and restart of an instance, SIGTERM
// (graceful) and restart, redis-server paused (SIGSTOP/SIGCONT), redis-server killed (-9)
// and restarted with its append-only file (appendfsync always: an outage, not a loss), the
// RGW gateway stopped and started, a failCommand fail point on getMore (closed connection
// or a resumable error), a primary step-down (replSetStepDown: the primary moves to the
// next member and closes its connections), and an instance frozen past its lease TTL and
// thawed (its leases are taken over: theft; not with a single instance). After a graceful
// stop of all, the bucket is mirrored with curl and decoded independently: every insert,
// every update and every delete the writer made appears exactly once, and no change event
// (resume token) twice.
//
// PENNE_CHAOS_SEED (default 20261206), PENNE_CHAOS_SECONDS (default 40) and
// PENNE_CHAOS_INSTANCES (1-3, default 2) choose the run; the seed, the schedule and the
// counts are printed so a failing run can be repeated.

#include <penne/s3/client.hpp>

#include <gtest/gtest.h>
#include <signal.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "bucket_mirror.hpp"
#include "exactly_once.hpp"
#include "mongo_inserter.hpp"  // mongoc_env
#include "output_reader.hpp"
#include "process.hpp"
#include "redis_peer.hpp"
#include "rgw_peer.hpp"
#include "temp_dir.hpp"
#include "wait_until.hpp"

namespace penne::test {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;
using millis = std::chrono::milliseconds;

const auto* const mongoc = ::testing::AddGlobalTestEnvironment(new mongoc_env);
const auto* const rgw = ::testing::AddGlobalTestEnvironment(new rgw_peer_environment);

constexpr int ttl_ms = 1000;
constexpr int retry_ms = 200;
constexpr std::int64_t colls_per_db = 10;
const std::vector<std::string> databases{"shop", "stock"};

std::int64_t env_int(const char* name, std::int64_t fallback) {
    const char* v = std::getenv(name);
    if (!v || !*v)
        return fallback;
    char* end = nullptr;
    const long long x = std::strtoll(v, &end, 10);
    return end && *end == '\0' ? x : fallback;
}

// Where document n lives: rounds of 20 documents, the first ten in "shop", the next ten in
// "stock", collection c<n % 10>.
const std::string& db_of(std::int64_t n) {
    return databases[static_cast<std::size_t>(n / 10 % 2)];
}
std::string coll_of(std::int64_t n) {
    return "c" + std::to_string(n % colls_per_db);
}

// The load: rounds of 20 inserts (one round in three inside a transaction spanning both
// databases) followed by a few $inc updates and deletes of random live documents
// (libmongoc, through the replica set's primary, retryable writes across step-downs),
// until stopped. It records exactly what it did; a write the server did not
// acknowledge as one change stops it with an error.
class workload {
public:
    workload(const std::string& uri, std::uint64_t seed) : rng_(seed) {
        client_ = mongoc_client_new(uri.c_str());
        mongoc_client_set_appname(client_, "chaos-load");
        for (int i = 0; i < colls_per_db; ++i)
            colls_.push_back("c" + std::to_string(i));
        thread_ = std::thread([this] { loop(); });
    }
    ~workload() {
        stop();
        mongoc_client_destroy(client_);
    }
    void stop() {
        stop_ = true;
        if (thread_.joinable())
            thread_.join();
    }
    // After stop() only.
    std::int64_t inserts() const { return next_; }
    const std::map<std::int64_t, std::int64_t>& updates() const { return updates_; }
    const std::set<std::int64_t>& deletes() const { return deleted_; }
    std::int64_t update_count() const { return update_count_; }
    std::int64_t transactions() const { return transactions_; }
    const std::string& error() const { return error_; }

private:
    void loop() {
        try {
            while (!stop_) {
                const auto n = next_;
                if (rng_() % 3 == 0) {
                    insert_in_transaction(n, n + 20);
                } else {
                    for (auto k = n; k < n + 20; ++k)
                        insert(k);
                }
                for (auto k = n; k < n + 20; ++k)
                    live_.push_back(k);
                next_ = n + 20;
                for (int i = 0; i < 6; ++i)
                    update(live_[rng_() % live_.size()]);
                for (int i = 0; i < 2; ++i) {
                    const auto pos = rng_() % live_.size();
                    const auto k = live_[pos];
                    live_[pos] = live_.back();
                    live_.pop_back();
                    remove(k);
                }
                std::this_thread::sleep_for(40ms);
            }
        } catch (const std::exception& e) {
            error_ = e.what();
        }
    }

    static std::int64_t reply_count(const bson_t& reply, const char* field) {
        bson_iter_t it;
        if (bson_iter_init_find(&it, &reply, field) &&
            (BSON_ITER_HOLDS_INT32(&it) || BSON_ITER_HOLDS_INT64(&it)))
            return bson_iter_as_int64(&it);
        return -1;
    }

    // A write refused because the server it reached is not (or no longer) the primary was
    // not applied: the driver retries once, and during back-to-back step-downs that retry
    // can be refused too; then try again after a pause. A server selection failure (no
    // primary known yet right after a step-down) was never sent: also safe to try again.
    // Any other error is the test's.
    static bool again(const bson_error_t& err, int attempt) {
        const bool not_primary = err.code == 10107 || err.code == 13435 ||
                                 std::strstr(err.message, "not primary") != nullptr;
        const bool not_sent = err.domain == MONGOC_ERROR_SERVER_SELECTION;
        if (!(not_primary || not_sent) || attempt >= 50)
            return false;
        std::this_thread::sleep_for(100ms);
        return true;
    }

    void insert(std::int64_t n) {
        mongoc_collection_t* c =
            mongoc_client_get_collection(client_, db_of(n).c_str(), coll_of(n).c_str());
        bson_t* doc = document(n);
        bson_error_t err;
        bool ok = false;
        for (int attempt = 0; !ok; ++attempt) {
            ok = mongoc_collection_insert_one(c, doc, nullptr, nullptr, &err);
            if (!ok && !again(err, attempt))
                break;
        }
        bson_destroy(doc);
        mongoc_collection_destroy(c);
        if (!ok)
            throw std::runtime_error("insert of " + std::to_string(n) + " failed: " + err.message);
    }

    static bson_t* document(std::int64_t n) {
        const std::string coll = coll_of(n);
        return BCON_NEW("n", BCON_INT64(n), "coll", BCON_UTF8(coll.c_str()), "payload",
                        BCON_UTF8("the quick brown fox jumps over the lazy dog"));
    }

    struct transaction_body {
        std::int64_t first;
        std::int64_t last;
    };

    // mongoc_client_session_with_transaction's callback: the inserts of one round.
    static bool insert_round(mongoc_client_session_t* session, void* ctx, bson_t** /*reply*/,
                             bson_error_t* err) {
        const auto* body = static_cast<const transaction_body*>(ctx);
        mongoc_client_t* client = mongoc_client_session_get_client(session);
        for (auto k = body->first; k < body->last; ++k) {
            mongoc_collection_t* c =
                mongoc_client_get_collection(client, db_of(k).c_str(), coll_of(k).c_str());
            bson_t* doc = document(k);
            bson_t opts = BSON_INITIALIZER;
            bool ok = mongoc_client_session_append(session, &opts, err) &&
                      mongoc_collection_insert_one(c, doc, &opts, nullptr, err);
            bson_destroy(&opts);
            bson_destroy(doc);
            mongoc_collection_destroy(c);
            if (!ok)
                return false;
        }
        return true;
    }

    // Whether document n is on the primary (a transaction is all or nothing, so its first
    // document tells whether it committed).
    bool exists(std::int64_t n) {
        mongoc_collection_t* c =
            mongoc_client_get_collection(client_, db_of(n).c_str(), coll_of(n).c_str());
        bson_t* filter = BCON_NEW("n", BCON_INT64(n));
        bson_error_t err;
        std::int64_t count = -1;
        for (int attempt = 0; count < 0; ++attempt) {
            count = mongoc_collection_count_documents(c, filter, nullptr, nullptr, nullptr, &err);
            if (count < 0 && !again(err, attempt))
                break;
        }
        bson_destroy(filter);
        mongoc_collection_destroy(c);
        if (count < 0)
            throw std::runtime_error("counting document " + std::to_string(n) +
                                     " failed: " + err.message);
        return count == 1;
    }

    // Documents first..last-1 in one transaction. The driver retries a transaction labelled
    // TransientTransactionError and a commit with an unknown result; when it gives up (a
    // step-down closed the connection mid-commit, no primary yet), the first document says
    // whether the commit happened before the round is tried again, so no insert is made
    // twice and none is lost.
    void insert_in_transaction(std::int64_t first, std::int64_t last) {
        transaction_body body{first, last};
        for (int attempt = 0;; ++attempt) {
            bson_error_t err;
            bool ok = false;
            if (mongoc_client_session_t* s = mongoc_client_start_session(client_, nullptr, &err)) {
                bson_t reply;
                ok = mongoc_client_session_with_transaction(s, insert_round, nullptr, &body, &reply,
                                                            &err);
                bson_destroy(&reply);
                mongoc_client_session_destroy(s);
            }
            if (ok || exists(first))
                break;
            if (attempt >= 50)
                throw std::runtime_error("transaction of " + std::to_string(first) + ".." +
                                         std::to_string(last - 1) + " failed: " + err.message);
            std::this_thread::sleep_for(100ms);
        }
        ++transactions_;
    }

    void update(std::int64_t n) {
        mongoc_collection_t* c =
            mongoc_client_get_collection(client_, db_of(n).c_str(), coll_of(n).c_str());
        bson_t* sel = BCON_NEW("n", BCON_INT64(n));
        bson_t* upd = BCON_NEW("$inc", "{", "v", BCON_INT32(1), "}");
        bson_error_t err;
        bool ok = false;
        std::int64_t modified = -1;
        for (int attempt = 0; !ok; ++attempt) {
            bson_t reply;
            ok = mongoc_collection_update_one(c, sel, upd, nullptr, &reply, &err);
            if (ok)
                modified = reply_count(reply, "modifiedCount");
            bson_destroy(&reply);
            if (!ok && !again(err, attempt))
                break;
        }
        bson_destroy(sel);
        bson_destroy(upd);
        mongoc_collection_destroy(c);
        if (!ok)
            throw std::runtime_error("update of " + std::to_string(n) + " failed: " + err.message);
        if (modified != 1)
            throw std::runtime_error("update of " + std::to_string(n) + " modified " +
                                     std::to_string(modified));
        ++updates_[n];
        ++update_count_;
    }

    void remove(std::int64_t n) {
        mongoc_collection_t* c =
            mongoc_client_get_collection(client_, db_of(n).c_str(), coll_of(n).c_str());
        bson_t* sel = BCON_NEW("n", BCON_INT64(n));
        bson_error_t err;
        bool ok = false;
        std::int64_t deleted = -1;
        for (int attempt = 0; !ok; ++attempt) {
            bson_t reply;
            ok = mongoc_collection_delete_one(c, sel, nullptr, &reply, &err);
            if (ok)
                deleted = reply_count(reply, "deletedCount");
            bson_destroy(&reply);
            if (!ok && !again(err, attempt))
                break;
        }
        bson_destroy(sel);
        mongoc_collection_destroy(c);
        if (!ok)
            throw std::runtime_error("delete of " + std::to_string(n) + " failed: " + err.message);
        if (deleted != 1)
            throw std::runtime_error("delete of " + std::to_string(n) + " deleted " +
                                     std::to_string(deleted));
        deleted_.insert(n);
    }

    mongoc_client_t* client_ = nullptr;
    std::mt19937_64 rng_;
    std::vector<std::string> colls_;
    std::vector<std::int64_t> live_;
    std::atomic<bool> stop_{false};
    std::int64_t next_ = 0;
    std::map<std::int64_t, std::int64_t> updates_;  // n -> $inc updates made
    std::int64_t update_count_ = 0;
    std::int64_t transactions_ = 0;
    std::set<std::int64_t> deleted_;
    std::string error_;
    std::thread thread_;
};

enum class fault {
    kill9,
    sigterm,
    redis_pause,
    redis_restart,
    rgw_outage,
    mongo_fail_point,
    step_down,
    lease_theft
};

const char* name(fault f) {
    switch (f) {
        case fault::kill9:
            return "kill-9";
        case fault::sigterm:
            return "sigterm";
        case fault::redis_pause:
            return "redis-pause";
        case fault::redis_restart:
            return "redis-restart";
        case fault::rgw_outage:
            return "rgw-outage";
        case fault::mongo_fail_point:
            return "mongo-fail-point";
        case fault::step_down:
            return "step-down";
        case fault::lease_theft:
            return "lease-theft";
    }
    return "?";
}

// One planned fault: when (from the start of the load), what, on which instance, for how
// long (a pause or outage; the gap before a restart), and the fail point's variant.
struct planned_fault {
    millis at{};
    fault kind{};
    int instance = 1;
    millis length{};
    int variant = 0;  // mongo_fail_point: index into fail_point_variants
    int times = 1;    // mongo_fail_point: failed getMores
};

// closeConnection, or a resumable change stream error code (the server labels it).
const std::vector<int> fail_point_variants{0, 10107, 91, 189, 11600, 9001, 89};

std::vector<planned_fault> plan(std::uint64_t seed, std::int64_t seconds, int instances) {
    std::mt19937_64 rng(seed);
    std::vector<fault> kinds{fault::kill9,         fault::sigterm,    fault::redis_pause,
                             fault::redis_restart, fault::rgw_outage, fault::mongo_fail_point,
                             fault::step_down};
    if (instances > 1)
        kinds.push_back(fault::lease_theft);  // another instance must be there to take over
    // Each kind once per 20 s of load (at least once), in a seeded order at seeded times.
    const std::int64_t rounds = std::max<std::int64_t>(1, seconds / 20);
    std::vector<planned_fault> out;
    for (std::int64_t r = 0; r < rounds; ++r)
        for (auto k : kinds)
            out.push_back({millis{}, k});
    std::shuffle(out.begin(), out.end(), rng);
    const std::int64_t span_ms = std::max<std::int64_t>(1000, seconds * 1000 - 3000);
    std::vector<std::int64_t> times;
    for (std::size_t i = 0; i < out.size(); ++i)
        times.push_back(1000 + static_cast<std::int64_t>(rng() % span_ms));
    std::sort(times.begin(), times.end());
    int fail_points = 0;
    for (std::size_t i = 0; i < out.size(); ++i) {
        auto& f = out[i];
        f.at = millis(times[i]);
        f.instance = 1 + static_cast<int>(rng() % static_cast<unsigned>(instances));
        switch (f.kind) {
            case fault::kill9:
                f.length = millis(200 + rng() % 1500);  // down before the restart
                break;
            case fault::sigterm:
                f.length = millis(rng() % 1000);
                break;
            case fault::redis_pause:
                f.length = millis(300 + rng() % 2500);  // sometimes past the TTL
                break;
            case fault::redis_restart:
                f.length = millis(100 + rng() % 2000);  // down before the restart
                break;
            case fault::step_down:
                f.length = millis(200 + rng() % 1000);  // between step-downs
                f.times = 1 + static_cast<int>(rng() % 2);
                break;
            case fault::rgw_outage:
                f.length = millis(1000 + rng() % 3000);
                break;
            case fault::mongo_fail_point:
                f.length = millis(500 + rng() % 1500);
                // Alternately a closed connection and a resumable error code.
                f.variant = fail_points++ % 2 == 0
                                ? 0
                                : 1 + static_cast<int>(rng() % (fail_point_variants.size() - 1));
                f.times = 1 + static_cast<int>(rng() % 4);
                break;
            case fault::lease_theft:
                f.length = millis(rng() % 1000);  // beyond the takeover
                break;
        }
    }
    return out;
}

std::string describe(const planned_fault& f) {
    std::string s = std::to_string(f.at.count()) + " ms " + name(f.kind);
    switch (f.kind) {
        case fault::kill9:
        case fault::sigterm:
        case fault::lease_theft:
            s += " p" + std::to_string(f.instance);
            break;
        default:
            break;
    }
    if (f.kind == fault::mongo_fail_point) {
        const int v = fail_point_variants[static_cast<std::size_t>(f.variant)];
        s += v == 0 ? " closeConnection" : " errorCode " + std::to_string(v);
        s += " x" + std::to_string(f.times);
    }
    if (f.kind == fault::step_down)
        s += " x" + std::to_string(f.times);
    s += " (" + std::to_string(f.length.count()) + " ms)";
    return s;
}

class RandomChaos : public ::testing::Test {
protected:
    void SetUp() override {
        seed_ = static_cast<std::uint64_t>(env_int("PENNE_CHAOS_SEED", 20261206));
        seconds_ = std::max<std::int64_t>(5, env_int("PENNE_CHAOS_SECONDS", 40));
        instances_ =
            static_cast<int>(std::clamp<std::int64_t>(env_int("PENNE_CHAOS_INSTANCES", 2), 1, 3));
        std::printf(
            "[chaos] seed %llu, %lld s, %d instance(s) (PENNE_CHAOS_SEED, "
            "PENNE_CHAOS_SECONDS, PENNE_CHAOS_INSTANCES)\n",
            static_cast<unsigned long long>(seed_), static_cast<long long>(seconds_), instances_);
        peer_ = rgw_peer_environment::peer();
        ASSERT_NE(peer_, nullptr) << rgw_peer_environment::failure();
        ASSERT_TRUE(redis_.ready()) << redis_.failure();
        bucket_ = "chaos-" + std::to_string(::getpid());
        ASSERT_EQ(run_s3({"mb", "s3://" + bucket_}), 0);
        // Three members on free ports; the line it prints lists them, primary first.
        mongosim_ = std::make_unique<process>(
            std::vector<std::string>{build_path("tests/mongosim/mongosim"), "--port", "0",
                                     "--replset", "3"},
            dir_ / "mongosim.log");
        const std::string ready = "mongosim listening on ";
        ASSERT_TRUE(mongosim_->wait_for_output(ready, 10s)) << mongosim_->log();
        const auto log = mongosim_->log();
        const auto from = log.find(ready) + ready.size();
        seeds_ = log.substr(from, log.find_first_of(" \n", from) - from);
        ASSERT_EQ(std::count(seeds_.begin(), seeds_.end(), ','), 2) << log;
        // heartbeatFrequencyMS: how soon a stream on a stepped-down primary moves on.
        mongo_uri_ = "mongodb://" + seeds_ + "/?replicaSet=rs0&heartbeatFrequencyMS=500";
        for (const auto& db : databases)
            for (int c = 0; c < colls_per_db; ++c)
                scopes_.push_back(db + ".c" + std::to_string(c));
        for (int i = 1; i <= instances_; ++i) {
            std::ofstream f(dir_ / ("p" + std::to_string(i) + ".toml"));
            f << "[mongodb]\nuri = \"" << mongo_uri_ << "\"\nmax_await_ms = 100\n\n";
            for (const auto& db : databases) {
                f << "[[watch]]\nlevel = \"collection\"\ndatabase = \"" << db
                  << "\"\ncollections = [";
                for (int c = 0; c < colls_per_db; ++c)
                    f << (c ? ", " : "") << "\"c" << c << '"';
                f << "]\n";
            }
            f << "[batch]\nmax_events = 500\nmax_age_ms = 1000\n"
              << "[output]\nprefix = \"cdc\"\n"
              << "[destination]\ntype = \"s3\"\n"
              << "[s3]\nbucket = \"" << bucket_ << "\"\n"
              << "request_timeout_ms = 2000\nconnect_timeout_ms = 500\nmax_retries = 3\n"
              << "[state]\ntype = \"redis\"\nkey_prefix = \"rchaos\"\ncommand_timeout_ms = 300\n"
              << "connect_timeout_ms = 300\n"
              << "[lease]\nttl_ms = " << ttl_ms << "\nretry_interval_ms = " << retry_ms
              << "\nowner = \"p" << i << "\"\n"
              << "[pipeline]\ncheckpoint_interval_ms = 100\nshutdown_timeout_ms = 30000\n"
              << "[retry]\ninitial_delay_ms = 20\nmax_delay_ms = 500\n"
              << "[metrics]\nenabled = true\naddress = \"127.0.0.1\"\nport = " << metrics_port(i)
              << "\n"
              << "[log]\nlevel = \"info\"\nprogress_interval_ms = 0\n";
        }
    }

    void TearDown() override { penne_.clear(); }

    std::map<std::string, std::string> aws_env() const {
        return {{"AWS_ACCESS_KEY_ID", peer_->access_key()},
                {"AWS_SECRET_ACCESS_KEY", peer_->secret_key()},
                {"AWS_REGION", peer_->region()},
                {"AWS_ENDPOINT_URL", peer_->endpoint()},
                {"AWS_EC2_METADATA_DISABLED", "true"},
                {"HOME", dir_.path().string()}};
    }

    int run_s3(std::vector<std::string> args) {
        args.insert(args.begin(), {build_path("app/penne"), "s3"});
        process p(args, dir_ / "s3-cli.log", aws_env());
        return p.wait(60s).value_or(-1);
    }

    int metrics_port(int i) {
        auto& p = metrics_ports_[i];
        if (p == 0)
            p = free_port();
        return p;
    }

    // The sum of a counter over its series, from the /metrics of instance `only` (0: all
    // running instances).
    std::int64_t metric_sum(const std::string& metric, int only = 0) {
        std::int64_t total = 0;
        for (auto& [i, p] : penne_) {
            if (!p || (only != 0 && i != only))
                continue;
            process curl({"/usr/bin/curl", "--silent", "--max-time", "5",
                          "http://127.0.0.1:" + std::to_string(metrics_port(i)) + "/metrics"},
                         dir_ / ("metrics-" + std::to_string(++scrapes_) + ".txt"));
            curl.wait(10s);
            const auto text = curl.log();
            std::size_t pos = 0;
            while (pos < text.size()) {
                auto nl = text.find('\n', pos);
                if (nl == std::string::npos)
                    nl = text.size();
                const auto line = text.substr(pos, nl - pos);
                pos = nl + 1;
                if (line.rfind(metric, 0) != 0 || line.size() <= metric.size() ||
                    (line[metric.size()] != '{' && line[metric.size()] != ' '))
                    continue;
                if (auto sp = line.rfind(' '); sp != std::string::npos)
                    total += static_cast<std::int64_t>(std::strtod(line.c_str() + sp + 1, nullptr));
            }
        }
        return total;
    }

    void start(int i) {
        auto env = aws_env();
        env["PENNE_REDIS_URL"] = redis_.url();
        auto& p = penne_[i];
        p = std::make_unique<process>(
            std::vector<std::string>{build_path("app/penne"), "run", "-c",
                                     dir_ / ("p" + std::to_string(i) + ".toml")},
            dir_ / ("p" + std::to_string(i) + "-" + std::to_string(++starts_) + ".log"), env);
        ASSERT_TRUE(p->wait_for_output("starting:", 20s)) << p->log();
    }

    void start_all() {
        for (int i = 1; i <= instances_; ++i)
            start(i);
        // Every scope streaming with its starting position saved (writes made before a
        // scope's first checkpoint would be before its "now").
        ASSERT_TRUE(wait_until([&] { return watermarks() == scopes_.size(); }, 60s))
            << "scopes with a checkpoint: " << watermarks() << "\n"
            << logs();
        ASSERT_TRUE(wait_until([&] { return holders().size() == scopes_.size(); }, 20s));
    }

    std::string redis_cli(const std::string& args) { return redis_.cli(args); }

    // Scope -> owner of its live lease, in one redis-cli call.
    std::map<std::string, std::string> holders() {
        std::string args = "MGET";
        for (const auto& s : scopes_)
            args += " 'rchaos:lease:{" + s + "}'";
        const auto out = redis_cli(args);
        std::map<std::string, std::string> h;
        std::size_t pos = 0, i = 0;
        while (pos <= out.size() && i < scopes_.size()) {
            auto nl = out.find('\n', pos);
            if (nl == std::string::npos)
                nl = out.size();
            const auto v = out.substr(pos, nl - pos);
            if (auto colon = v.rfind(':'); !v.empty() && colon != std::string::npos)
                h[scopes_[i]] = v.substr(0, colon);
            pos = nl + 1;
            ++i;
        }
        return h;
    }
    std::size_t owned_by(const std::string& owner) {
        std::size_t n = 0;
        for (const auto& [s, o] : holders())
            n += o == owner;
        return n;
    }
    std::size_t watermarks() {
        std::size_t n = 0;
        for (const auto& s : scopes_)
            n += redis_cli("EXISTS 'rchaos:scope:{" + s + "}:watermark'") == "1";
        return n;
    }

    std::string logs() {
        std::string s;
        for (auto& [i, p] : penne_)
            if (p)
                s += "---- p" + std::to_string(i) + "\n" + p->log();
        return s;
    }

    // One admin command on the primary, through a fresh client: one that saw a step-down
    // would first need to notice it.
    bool admin_command(const bson_t* cmd, bson_error_t& err) {
        mongoc_client_t* admin = mongoc_client_new(mongo_uri_.c_str());
        mongoc_client_set_appname(admin, "chaos-admin");
        const bool ok = mongoc_client_command_simple(admin, "admin", cmd, nullptr, nullptr, &err);
        mongoc_client_destroy(admin);
        return ok;
    }

    bool fail_point(const std::string& json) {
        bson_error_t err;
        bson_t* cmd = bson_new_from_json(reinterpret_cast<const uint8_t*>(json.data()),
                                         static_cast<ssize_t>(json.size()), &err);
        if (!cmd)
            return false;
        const bool ok = admin_command(cmd, err);
        bson_destroy(cmd);
        EXPECT_TRUE(ok) << err.message;
        return ok;
    }

    // Runs one fault to its end (the instance restarted, the peer back).
    void run(const planned_fault& f) {
        auto& p = penne_[f.instance];
        const std::string owner = "p" + std::to_string(f.instance);
        switch (f.kind) {
            case fault::kill9:
                p->signal(SIGKILL);
                p->wait(10s);
                std::this_thread::sleep_for(f.length);
                start(f.instance);
                break;
            case fault::sigterm: {
                p->signal(SIGTERM);
                auto code = p->wait(60s);
                ASSERT_TRUE(code) << owner << " did not stop\n" << p->log();
                EXPECT_EQ(*code, 0) << p->log();
                std::this_thread::sleep_for(f.length);
                start(f.instance);
                break;
            }
            case fault::redis_pause:
                ASSERT_EQ(::kill(redis_.pid(), SIGSTOP), 0);
                std::this_thread::sleep_for(f.length);
                ASSERT_EQ(::kill(redis_.pid(), SIGCONT), 0);
                break;
            case fault::redis_restart: {
                // With its append-only file (fsync on every write) nothing acknowledged is
                // lost: an outage, never the store loss penne refuses to run through.
                const auto identity = redis_cli("GET rchaos:store");
                redis_.kill();
                std::this_thread::sleep_for(f.length);
                ASSERT_TRUE(redis_.restart()) << redis_.failure();
                EXPECT_EQ(redis_cli("GET rchaos:store"), identity);
                break;
            }
            case fault::step_down: {
                const auto before = metric_sum("penne_stream_resumes_total");
                for (int k = 0; k < f.times; ++k) {
                    if (k > 0)
                        std::this_thread::sleep_for(f.length);
                    bson_t* cmd = BCON_NEW("replSetStepDown", BCON_INT32(10));
                    bson_error_t err;
                    const bool ok = admin_command(cmd, err);
                    bson_destroy(cmd);
                    EXPECT_TRUE(ok) << "replSetStepDown: " << err.message;
                }
                // The streams on the old primary moved to the new one (a resume there).
                std::int64_t after = before;
                wait_until(
                    [&] {
                        after = metric_sum("penne_stream_resumes_total");
                        return after > before;
                    },
                    10s);
                EXPECT_GT(after, before) << "no change stream resumed after the step-down";
                std::printf("[chaos]   change stream resumes: %lld -> %lld\n",
                            static_cast<long long>(before), static_cast<long long>(after));
                break;
            }
            case fault::rgw_outage:
                ASSERT_TRUE(peer_->stop_gateway()) << peer_->log_tail();
                std::this_thread::sleep_for(f.length);
                ASSERT_TRUE(peer_->start_gateway()) << peer_->log_tail();
                break;
            case fault::mongo_fail_point: {
                const int v = fail_point_variants[static_cast<std::size_t>(f.variant)];
                const auto before = metric_sum("penne_stream_resumes_total");
                const std::string what =
                    v == 0 ? R"("closeConnection": true)" : R"("errorCode": )" + std::to_string(v);
                ASSERT_TRUE(
                    fail_point(R"({"configureFailPoint": "failCommand", "mode": {"times": )" +
                               std::to_string(f.times) +
                               R"(}, "data": {"failCommands": ["getMore"], )" + what + "}}"));
                std::this_thread::sleep_for(f.length);
                ASSERT_TRUE(fail_point(R"({"configureFailPoint": "failCommand", "mode": "off"})"));
                // The failed getMores made change streams resume.
                std::int64_t after = before;
                wait_until(
                    [&] {
                        after = metric_sum("penne_stream_resumes_total");
                        return after > before;
                    },
                    10s);
                EXPECT_GT(after, before) << "no change stream resumed after the fail point";
                std::printf("[chaos]   change stream resumes: %lld -> %lld\n",
                            static_cast<long long>(before), static_cast<long long>(after));
                break;
            }
            case fault::lease_theft: {
                const auto held = owned_by(owner);
                // Counted, not read from the log (repeated log lines are rate-limited).
                const auto lost_before = metric_sum("penne_lease_losses_total", f.instance);
                p->signal(SIGSTOP);
                // Frozen until the other instance holds every scope (past the TTL).
                const bool taken = wait_until([&] { return owned_by(owner) == 0; }, 15s);
                std::this_thread::sleep_for(f.length);
                p->signal(SIGCONT);
                EXPECT_TRUE(taken) << owner << " still holds scopes after 15 s frozen";
                bool noticed = false;
                if (held > 0 && taken) {
                    // It wakes up believing it owns its scopes: fenced off, it lets go
                    // without failing.
                    noticed = wait_until(
                        [&] {
                            return metric_sum("penne_lease_losses_total", f.instance) > lost_before;
                        },
                        10s);
                    EXPECT_TRUE(noticed) << p->log();
                }
                EXPECT_TRUE(p->running()) << p->log();
                std::printf(
                    "[chaos]   %s held %zu scopes; taken over: %s; lease loss noticed: %s\n",
                    owner.c_str(), held, taken ? "yes" : "no", noticed ? "yes" : "no");
                break;
            }
        }
    }

    // An instance that exited on its own (a crash) is a failure; it is restarted so the
    // run goes on and the output is still checked.
    void check_alive(const std::string& after) {
        for (auto& [i, p] : penne_) {
            if (p->running())
                continue;
            const auto code = p->wait(1s);
            ADD_FAILURE() << "p" << i << " exited on its own (code " << code.value_or(-1) << ") by "
                          << after << "\n"
                          << p->log();
            std::printf("[chaos] p%d exited on its own (code %d) by %s; restarting it\n", i,
                        code.value_or(-1), after.c_str());
            start(i);
        }
    }

    // The bucket's objects, fetched with curl into a local mirror (only new or changed ones)
    // and decoded.
    output_scan mirror() {
        if (!mirror_)
            mirror_ = std::make_unique<bucket_mirror>(*peer_, bucket_, dir_ / "mirror");
        mirror_->sync("cdc/");
        return scan_output(mirror_->root());
    }

    struct tally {
        std::size_t inserts = 0, updates = 0, deletes = 0;
    };
    static tally count(const output_scan& scan) {
        tally t;
        std::set<std::int64_t> seen;
        for (const auto& e : scan.events) {
            if (e.operation == "insert")
                seen.insert(e.n);
            t.updates += e.operation == "update";
            t.deletes += e.operation == "delete";
        }
        t.inserts = seen.size();
        return t;
    }

    // Every insert, update and delete of the workload exactly once.
    void verify(const output_scan& scan, const workload& load) {
        const auto total = load.inserts();
        expect_exactly_once(scan, total);
        // documentKey -> n, from the inserts (each document inserted once, above).
        std::map<std::string, std::int64_t> doc;
        std::size_t keyless = 0, other_ops = 0, misplaced = 0;
        for (const auto& e : scan.events) {
            if (e.operation != "insert")
                continue;
            if (e.key.empty())
                ++keyless;
            else
                doc[e.key] = e.n;
            if (e.n >= 0 && (e.db != db_of(e.n) || e.coll != coll_of(e.n)))
                ++misplaced;
        }
        std::map<std::int64_t, std::vector<std::int64_t>> versions;  // n -> update versions
        std::map<std::int64_t, std::int64_t> deleted;                // n -> delete events
        std::size_t stray = 0;
        for (const auto& e : scan.events) {
            if (e.operation == "insert")
                continue;
            if (e.operation != "update" && e.operation != "delete") {
                ++other_ops;
                continue;
            }
            auto it = doc.find(e.key);
            if (it == doc.end()) {
                ++stray;
                continue;
            }
            if (e.operation == "update")
                versions[it->second].push_back(e.version);
            else
                ++deleted[it->second];
        }
        EXPECT_EQ(keyless, 0u) << "insert events without documentKey._id";
        EXPECT_EQ(misplaced, 0u) << "inserts in the wrong namespace";
        EXPECT_EQ(other_ops, 0u) << "events of operations the workload never made";
        EXPECT_EQ(stray, 0u) << "updates or deletes of documents never inserted";
        // Updates: for each document, versions 1..k each exactly once (k = $inc made).
        std::int64_t upd_missing = 0, upd_doubled = 0, upd_unexpected = 0, upd_events = 0;
        for (const auto& [n, made] : load.updates()) {
            std::map<std::int64_t, int> seen;
            if (auto it = versions.find(n); it != versions.end())
                for (auto v : it->second)
                    ++seen[v];
            for (std::int64_t v = 1; v <= made; ++v) {
                const auto c = seen.count(v) ? seen[v] : 0;
                upd_missing += c == 0;
                upd_doubled += c > 1;
                seen.erase(v);
            }
            upd_unexpected += static_cast<std::int64_t>(seen.size());
        }
        for (const auto& [n, vs] : versions) {
            upd_events += static_cast<std::int64_t>(vs.size());
            if (!load.updates().count(n))
                upd_unexpected += static_cast<std::int64_t>(vs.size());
        }
        EXPECT_EQ(upd_missing, 0) << "update events missing";
        EXPECT_EQ(upd_doubled, 0) << "update events written more than once";
        EXPECT_EQ(upd_unexpected, 0) << "update events the workload never caused";
        EXPECT_EQ(upd_events, load.update_count());
        // Deletes: one event per deleted document, none for the others.
        std::int64_t del_missing = 0, del_doubled = 0, del_unexpected = 0, del_events = 0;
        for (auto n : load.deletes()) {
            const auto c = deleted.count(n) ? deleted[n] : 0;
            del_missing += c == 0;
            del_doubled += c > 1;
        }
        for (const auto& [n, c] : deleted) {
            del_events += c;
            if (!load.deletes().count(n))
                ++del_unexpected;
        }
        EXPECT_EQ(del_missing, 0) << "delete events missing";
        EXPECT_EQ(del_doubled, 0) << "delete events written more than once";
        EXPECT_EQ(del_unexpected, 0) << "delete events for documents never deleted";
        EXPECT_GT(load.transactions(), 0) << "no round of inserts ran in a transaction";
        std::printf(
            "[chaos] workload: %lld inserts (%lld rounds in transactions), %lld updates, %zu "
            "deletes\n"
            "[chaos] bucket: %zu objects, %zu events; %zu distinct inserts, %lld update events "
            "(%lld missing, %lld doubled), %lld delete events (%lld missing, %lld doubled)\n",
            static_cast<long long>(total), static_cast<long long>(load.transactions()),
            static_cast<long long>(load.update_count()), load.deletes().size(), scan.objects,
            scan.events.size(), distinct_inserts(scan), static_cast<long long>(upd_events),
            static_cast<long long>(upd_missing), static_cast<long long>(upd_doubled),
            static_cast<long long>(del_events), static_cast<long long>(del_missing),
            static_cast<long long>(del_doubled));
    }

    std::uint64_t seed_ = 0;
    std::int64_t seconds_ = 0;
    const rgw_peer* peer_ = nullptr;
    redis_peer redis_{redis_peer_options{.persistence = true}};  // kill -9 keeps the data
    temp_dir dir_{"penne-random-chaos"};
    std::string bucket_;
    int instances_ = 2;
    std::string seeds_;      // host:port of the three members
    std::string mongo_uri_;  // the seed list with replicaSet=rs0
    int starts_ = 0;
    std::unique_ptr<process> mongosim_;
    std::map<int, std::unique_ptr<process>> penne_;
    std::vector<std::string> scopes_;
    std::unique_ptr<bucket_mirror> mirror_;
    std::map<int, int> metrics_ports_;
    int scrapes_ = 0;
};

TEST_F(RandomChaos, EveryInsertUpdateAndDeleteExactlyOnceUnderSeededFaults) {
    const auto schedule = plan(seed_, seconds_, instances_);
    std::printf("[chaos] fault schedule (%zu faults):\n", schedule.size());
    for (const auto& f : schedule)
        std::printf("[chaos]   %s\n", describe(f).c_str());
    std::fflush(stdout);
    start_all();
    if (HasFatalFailure())
        return;
    workload load(mongo_uri_, seed_ + 1);
    const auto begin = steady::now();
    auto elapsed = [&] { return std::chrono::duration_cast<millis>(steady::now() - begin); };
    std::map<std::string, int> ran;
    for (const auto& f : schedule) {
        if (elapsed() < f.at)
            std::this_thread::sleep_for(f.at - elapsed());
        std::printf("[chaos] at %lld ms: %s\n", static_cast<long long>(elapsed().count()),
                    describe(f).c_str());
        std::fflush(stdout);
        run(f);
        if (HasFatalFailure())
            return;
        ++ran[name(f.kind)];
        check_alive(describe(f));
        if (HasFatalFailure())
            return;
    }
    check_alive("the end of the load");
    const auto end = millis(seconds_ * 1000);
    if (elapsed() < end)
        std::this_thread::sleep_for(end - elapsed());
    load.stop();
    ASSERT_TRUE(load.error().empty()) << load.error();
    std::printf("[chaos] load stopped at %lld ms; faults run:",
                static_cast<long long>(elapsed().count()));
    for (const auto& [k, n] : ran)
        std::printf(" %s=%d", k.c_str(), n);
    std::printf("\n");
    std::fflush(stdout);

    // Every instance catches up; then all stop gracefully (leases released).
    const auto want_inserts = static_cast<std::size_t>(load.inserts());
    const auto want_updates = static_cast<std::size_t>(load.update_count());
    const auto want_deletes = load.deletes().size();
    tally got;
    const bool caught_up = wait_until(
        [&] {
            got = count(mirror());
            return got.inserts >= want_inserts && got.updates >= want_updates &&
                   got.deletes >= want_deletes;
        },
        120s);
    EXPECT_TRUE(caught_up) << got.inserts << "/" << want_inserts << " inserts, " << got.updates
                           << "/" << want_updates << " updates, " << got.deletes << "/"
                           << want_deletes << " deletes\n"
                           << logs();
    for (auto& [i, p] : penne_)
        p->signal(SIGTERM);
    for (auto& [i, p] : penne_) {
        auto code = p->wait(90s);
        ASSERT_TRUE(code) << "p" << i << " did not stop\n" << p->log();
        EXPECT_EQ(*code, 0) << p->log();
    }
    EXPECT_TRUE(holders().empty()) << "a graceful stop releases every lease";
    verify(mirror(), load);
}

}  // namespace
}  // namespace penne::test
