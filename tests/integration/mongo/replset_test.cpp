// penne's change stream against a 3-member mongosim replica set: discovery from one seed,
// the primary by default, readPreference secondary / secondaryPreferred / nearest honoured,
// directConnection to a secondary, and failover: with the primary stepping down every 500 ms
// while a writer inserts, the stream resumes on each new primary and delivers every event
// exactly once (no gap, no repeated token).

#include <penne/mongo/change_stream.hpp>

#include <mongosim/server.hpp>

#include <gtest/gtest.h>
#include <mongoc/mongoc.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <chrono>
#include <exception>
#include <functional>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using asio::awaitable;
using penne::mongo::change_stream;
using penne::mongo::source_options;
using penne::mongo::stream_config;

std::int64_t document_key(const penne::change_event& e) {
    bson_t doc;
    bson_iter_t it, key;
    if (bson_init_static(&doc, e.raw.data(), e.raw.size()) && bson_iter_init(&it, &doc) &&
        bson_iter_find_descendant(&it, "documentKey._id", &key) && BSON_ITER_HOLDS_INT(&key))
        return bson_iter_as_int64(&key);
    return -1;
}

penne::watch_scope collection(std::string db, std::string coll) {
    return {penne::watch_scope::level::collection, std::move(db), std::move(coll)};
}

class MongoReplset : public ::testing::Test {
protected:
    static void SetUpTestSuite() { mongoc_init(); }

    void start(std::chrono::milliseconds step_down_every = 0ms) {
        mongosim::server_options opts;
        opts.members = 3;
        opts.step_down_every = step_down_every;
        sim_ = std::make_unique<mongosim::background>(opts);
    }

    std::string member(std::size_t i) const {
        return "127.0.0.1:" + std::to_string(sim_->ports().at(i));
    }

    std::shared_ptr<const stream_config> config(const std::string& uri) {
        source_options o;
        o.uri = uri;
        o.max_await = 100ms;
        o.connect_timeout = 2s;
        o.socket_timeout = 5s;
        o.reconnect_initial = 20ms;
        o.reconnect_max = 500ms;
        auto cfg = std::make_shared<stream_config>();
        penne::diagnostics d;
        EXPECT_FALSE(penne::mongo::prepare(o, *cfg, d)) << d.message;
        return cfg;
    }

    // Inserts _id from..to-1 into db.coll through the set, in unordered bulks of `chunk`,
    // pausing `pause` between bulks. A bulk cut by a step-down is sent again; documents it
    // already wrote come back as duplicate keys, which is what a retry should see.
    void write(const char* db, const char* coll, int from, int to, int chunk,
               std::chrono::milliseconds pause) {
        // tryOnce=false: a single-threaded libmongoc client would otherwise refuse to select for
        // 5 s ("no servers yet eligible for rescan") after a member dropped a connection.
        const std::string uri =
            sim_->uri() + "&serverSelectionTimeoutMS=10000&serverSelectionTryOnce=false";
        mongoc_client_t* client = mongoc_client_new(uri.c_str());
        ASSERT_NE(client, nullptr);
        mongoc_client_set_error_api(client, MONGOC_ERROR_API_VERSION_2);
        mongoc_collection_t* c = mongoc_client_get_collection(client, db, coll);
        for (int base = from; base < to; base += chunk) {
            bool done = false;
            std::string last_error;
            for (int attempt = 0; attempt < 50 && !done; ++attempt) {
                bson_t opts = BSON_INITIALIZER;
                BSON_APPEND_BOOL(&opts, "ordered", false);
                mongoc_bulk_operation_t* bulk =
                    mongoc_collection_create_bulk_operation_with_opts(c, &opts);
                for (int i = base; i < std::min(to, base + chunk); ++i) {
                    bson_t* doc = BCON_NEW("_id", BCON_INT32(i), "v", BCON_UTF8("payload"));
                    mongoc_bulk_operation_insert(bulk, doc);
                    bson_destroy(doc);
                }
                bson_t reply;
                bson_error_t err;
                done = mongoc_bulk_operation_execute(bulk, &reply, &err) != 0 || err.code == 11000;
                if (!done) {
                    ++write_retries_;
                    last_error = std::to_string(err.domain) + "/" + std::to_string(err.code) +
                                 ": " + err.message;
                }
                bson_destroy(&reply);
                mongoc_bulk_operation_destroy(bulk);
                bson_destroy(&opts);
                if (!done)
                    std::this_thread::sleep_for(50ms);
            }
            ASSERT_TRUE(done) << "writer could not insert from " << base << ": " << last_error;
            std::this_thread::sleep_for(pause);
        }
        mongoc_collection_destroy(c);
        mongoc_client_destroy(client);
    }

    // Runs `body` as a coroutine on a fresh io_context; rethrows its exception.
    void run(std::function<awaitable<void>(asio::io_context&)> body,
             std::chrono::seconds limit = 60s) {
        asio::io_context io;
        std::exception_ptr failure;
        bool finished = false;
        asio::co_spawn(io, body(io), [&](std::exception_ptr e) {
            failure = e;
            finished = true;
        });
        io.run_for(limit);
        EXPECT_TRUE(finished) << "the test coroutine did not finish in time";
        if (failure)
            std::rethrow_exception(failure);
    }

    std::unique_ptr<mongosim::background> sim_;
    std::atomic<int> write_retries_{0};
};

TEST_F(MongoReplset, PrimaryIsFoundFromASecondarySeed) {
    start();
    run([&](asio::io_context& io) -> awaitable<void> {
        change_stream cs(io.get_executor(), collection("shop", "orders"),
                         config("mongodb://" + member(2) + "/?replicaSet=rs0"));
        penne::diagnostics d;
        auto ec = co_await cs.open({}, d);
        EXPECT_FALSE(ec) << d.message;
        if (ec)
            co_return;
        EXPECT_EQ(cs.server_address(), member(0));
        co_await cs.close();
    });
}

// readPreference in the URI picks the member the stream reads from; the events are the same.
class MongoReplsetReadPreference : public MongoReplset,
                                   public ::testing::WithParamInterface<const char*> {};

TEST_P(MongoReplsetReadPreference, StreamReadsFromTheSelectedMember) {
    const std::string mode = GetParam();
    start();
    run([&](asio::io_context& io) -> awaitable<void> {
        change_stream cs(
            io.get_executor(), collection("shop", "orders"),
            config("mongodb://" + member(0) + "/?replicaSet=rs0&readPreference=" + mode));
        penne::diagnostics d;
        auto ec = co_await cs.open({}, d);
        EXPECT_FALSE(ec) << d.message;
        if (ec)
            co_return;
        const std::string server = cs.server_address();
        if (mode == "secondary" || mode == "secondaryPreferred")
            EXPECT_TRUE(server == member(1) || server == member(2)) << server;
        else if (mode == "primaryPreferred")
            EXPECT_EQ(server, member(0));
        else
            EXPECT_FALSE(server.empty());
        std::thread writer([&] { write("shop", "orders", 0, 20, 20, 0ms); });
        std::vector<std::int64_t> ids;
        penne::event_batch batch;
        for (int polls = 0; polls < 100 && ids.size() < 20; ++polls) {
            auto nec = co_await cs.next(batch, d);
            EXPECT_FALSE(nec) << d.message;
            if (nec)
                break;
            for (const auto& e : batch.events)
                ids.push_back(document_key(e));
        }
        writer.join();
        EXPECT_EQ(ids.size(), 20u);
        for (std::size_t i = 0; i < ids.size(); ++i)
            EXPECT_EQ(ids[i], static_cast<std::int64_t>(i));
        // Still on the member it selected: a secondary serves the stream's getMores.
        EXPECT_EQ(cs.server_address(), server);
        EXPECT_EQ(cs.resume_count(), 0u);
        co_await cs.close();
    });
}

INSTANTIATE_TEST_SUITE_P(Modes, MongoReplsetReadPreference,
                         ::testing::Values("secondary", "secondaryPreferred", "nearest",
                                           "primaryPreferred"));

TEST_F(MongoReplset, DirectConnectionToASecondaryReadsThere) {
    start();
    run([&](asio::io_context& io) -> awaitable<void> {
        change_stream cs(io.get_executor(), collection("shop", "orders"),
                         config("mongodb://" + member(1) + "/?directConnection=true"));
        penne::diagnostics d;
        auto ec = co_await cs.open({}, d);
        EXPECT_FALSE(ec) << d.message;
        if (ec)
            co_return;
        EXPECT_EQ(cs.server_address(), member(1));
        std::thread writer([&] { write("shop", "orders", 0, 5, 5, 0ms); });
        std::size_t n = 0;
        penne::event_batch batch;
        for (int polls = 0; polls < 100 && n < 5; ++polls) {
            auto nec = co_await cs.next(batch, d);
            EXPECT_FALSE(nec) << d.message;
            if (nec)
                break;
            n += batch.events.size();
        }
        writer.join();
        EXPECT_EQ(n, 5u);
        co_await cs.close();
    });
}

// The failover test of the brief: the primary moves every 500 ms; the stream, seeded with one
// member only, must resume on every new primary with every event exactly once.
TEST_F(MongoReplset, EveryEventExactlyOnceAcrossStepDowns) {
    start(500ms);
    constexpr int total = 100'000;
    run(
        [&](asio::io_context& io) -> awaitable<void> {
            // A cursor outlives an election on its member: the stream asks its member what it
            // is every heartbeatFrequencyMS and moves to the primary.
            change_stream cs(
                io.get_executor(), collection("chaos", "events"),
                config("mongodb://" + member(2) + "/?replicaSet=rs0&heartbeatFrequencyMS=500"));
            penne::diagnostics d;
            auto ec = co_await cs.open({}, d);
            EXPECT_FALSE(ec) << d.message;
            if (ec)
                co_return;
            // ~4 s of writes: several step-downs happen under the stream.
            std::thread writer([&] { write("chaos", "events", 0, total, 2500, 100ms); });
            std::vector<int> seen(total, 0);
            std::set<std::string> tokens;
            std::set<std::string> servers;
            penne::resume_token last;
            std::size_t received = 0, duplicates = 0;
            penne::event_batch batch;
            const auto deadline = std::chrono::steady_clock::now() + 45s;
            while (received < static_cast<std::size_t>(total) &&
                   std::chrono::steady_clock::now() < deadline) {
                auto nec = co_await cs.next(batch, d);
                EXPECT_FALSE(nec) << nec.message() << ": " << d.message;
                if (nec)
                    break;
                servers.insert(cs.server_address());
                for (const auto& e : batch.events) {
                    const std::int64_t id = document_key(e);
                    EXPECT_GE(id, 0);
                    EXPECT_LT(id, total);
                    if (id < 0 || id >= total)
                        continue;
                    ++seen[static_cast<std::size_t>(id)];
                    ++received;
                    penne::resume_token t;
                    t.assign(e.token);
                    const std::string hex(reinterpret_cast<const char*>(t.bytes().data()),
                                          t.bytes().size());
                    if (!tokens.insert(hex).second)
                        ++duplicates;
                }
            }
            writer.join();
            int missing = 0, repeated = 0;
            for (int c : seen) {
                missing += c == 0;
                repeated += c > 1;
            }
            EXPECT_EQ(received, static_cast<std::size_t>(total));
            EXPECT_EQ(missing, 0);
            EXPECT_EQ(repeated, 0);
            EXPECT_EQ(duplicates, 0u);
            // The stream followed the primary across members.
            EXPECT_GE(cs.resume_count(), 2u);
            EXPECT_GE(servers.size(), 2u);
            co_await cs.close();
        },
        90s);
}

}  // namespace
