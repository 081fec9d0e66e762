// penne's change stream against mongosim: real sockets, a real writer (libmongoc), and a
// TCP proxy in between when a test needs to cut the connection under the stream.

#include <penne/mongo/change_stream.hpp>

#include <mongosim/server.hpp>

#include <gtest/gtest.h>
#include <mongoc/mongoc.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <exception>
#include <functional>
#include <list>
#include <string>
#include <vector>

// gtest's ASSERT_* return void, which a coroutine cannot; this stops the coroutine.
#define CO_ASSERT_EQ(a, b) \
    do {                   \
        EXPECT_EQ(a, b);   \
        if (!((a) == (b))) \
            co_return;     \
    } while (0)

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using asio::awaitable;
using penne::mongo::change_stream;
using penne::mongo::source_options;
using penne::mongo::stream_config;

// Forwards 127.0.0.1:port() to a target port; cut() closes every forwarded connection.
class tcp_proxy {
public:
    tcp_proxy(asio::io_context& io, std::uint16_t target)
        : io_(io), acceptor_(io, {asio::ip::make_address("127.0.0.1"), 0}), target_(target) {
        asio::co_spawn(io_, accept_loop(), asio::detached);
    }
    std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
    // Closes the sockets but keeps them alive: pumps still waiting on them finish with an
    // error and then touch them once more.
    void cut() {
        for (auto& s : sockets_) {
            boost::system::error_code ec;
            s->close(ec);
        }
    }
    void stop() {
        boost::system::error_code ec;
        acceptor_.close(ec);
        cut();
    }

private:
    using tcp = asio::ip::tcp;
    awaitable<void> accept_loop() {
        for (;;) {
            auto [ec, client] =
                co_await acceptor_.async_accept(asio::as_tuple(asio::use_awaitable));
            if (ec)
                co_return;
            auto c = sockets_.emplace_back(std::make_shared<tcp::socket>(std::move(client)));
            auto s = sockets_.emplace_back(std::make_shared<tcp::socket>(io_));
            auto [cec] = co_await s->async_connect({asio::ip::make_address("127.0.0.1"), target_},
                                                   asio::as_tuple(asio::use_awaitable));
            if (cec)
                continue;
            asio::co_spawn(io_, pump(c, s), asio::detached);
            asio::co_spawn(io_, pump(s, c), asio::detached);
        }
    }
    static awaitable<void> pump(std::shared_ptr<tcp::socket> from_ptr,
                                std::shared_ptr<tcp::socket> to_ptr) {
        tcp::socket& from = *from_ptr;
        tcp::socket& to = *to_ptr;
        std::vector<char> buf(64 * 1024);
        for (;;) {
            auto [ec, n] = co_await from.async_read_some(asio::buffer(buf),
                                                         asio::as_tuple(asio::use_awaitable));
            if (ec)
                break;
            auto [wec, w] = co_await asio::async_write(to, asio::buffer(buf.data(), n),
                                                       asio::as_tuple(asio::use_awaitable));
            if (wec)
                break;
        }
        boost::system::error_code ignored;
        to.close(ignored);
        from.close(ignored);
    }

    asio::io_context& io_;
    tcp::acceptor acceptor_;
    std::uint16_t target_;
    std::vector<std::shared_ptr<tcp::socket>> sockets_;  // shared with the pumps
};

struct received {
    std::string op, db, coll;
    std::int64_t id = -1;  // documentKey._id
    penne::cluster_time time;
    std::int64_t wall = -1;
    penne::resume_token token;
};

received copy_event(const penne::change_event& e) {
    received r{std::string(e.operation), std::string(e.db), std::string(e.coll)};
    r.time = e.time;
    r.wall = e.wall_time_ms;
    r.token.assign(e.token);
    bson_t doc;
    bson_iter_t it, key;
    if (bson_init_static(&doc, e.raw.data(), e.raw.size()) && bson_iter_init(&it, &doc) &&
        bson_iter_find_descendant(&it, "documentKey._id", &key) && BSON_ITER_HOLDS_INT(&key)) {
        r.id = bson_iter_as_int64(&key);
    }
    return r;
}

class MongoIntegration : public ::testing::Test {
protected:
    static void SetUpTestSuite() { mongoc_init(); }

    void SetUp() override { start_sim({}); }
    void TearDown() override {
        if (client_)
            mongoc_client_destroy(client_);
        client_ = nullptr;
    }

    void start_sim(mongosim::server_options opts) {
        if (client_)
            mongoc_client_destroy(client_);
        sim_ = std::make_unique<mongosim::background>(opts);
        client_ = mongoc_client_new((sim_->uri()).c_str());
        ASSERT_NE(client_, nullptr);
    }

    void insert(const char* db, const char* coll, int from, int to) {
        mongoc_collection_t* c = mongoc_client_get_collection(client_, db, coll);
        for (int i = from; i < to; ++i) {
            bson_t* doc = BCON_NEW("_id", BCON_INT32(i), "v", BCON_UTF8("x"));
            bson_error_t err;
            ASSERT_TRUE(mongoc_collection_insert_one(c, doc, nullptr, nullptr, &err))
                << err.message;
            bson_destroy(doc);
        }
        mongoc_collection_destroy(c);
    }

    std::shared_ptr<const stream_config> config(source_options o) {
        auto cfg = std::make_shared<stream_config>();
        penne::diagnostics d;
        EXPECT_FALSE(penne::mongo::prepare(o, *cfg, d)) << d.message;
        return cfg;
    }

    source_options options(std::uint16_t port) {
        source_options o;
        o.uri = "mongodb://127.0.0.1:" + std::to_string(port) + "/?replicaSet=rs0";
        o.max_await = 200ms;
        o.connect_timeout = 2s;
        o.socket_timeout = 5s;
        return o;
    }

    // Runs `body` as a coroutine on a fresh io_context; rethrows its exception.
    void run(std::function<awaitable<void>(asio::io_context&)> body) {
        asio::io_context io;
        std::exception_ptr failure;
        asio::co_spawn(io, body(io), [&](std::exception_ptr e) { failure = e; });
        io.run_for(60s);
        if (failure)
            std::rethrow_exception(failure);
    }

    // Reads until `n` events arrived (or `polls` batches passed).
    static awaitable<std::vector<received>> read_events(change_stream& cs, std::size_t n,
                                                        int polls = 50) {
        std::vector<received> out;
        penne::event_batch batch;
        for (int i = 0; i < polls && out.size() < n; ++i) {
            penne::diagnostics d;
            auto ec = co_await cs.next(batch, d);
            EXPECT_FALSE(ec) << ec.message() << ": " << d.message;
            if (ec)
                break;
            EXPECT_FALSE(batch.post_batch_token.empty());
            for (const auto& e : batch.events)
                out.push_back(copy_event(e));
            if (!batch.events.empty()) {
                // The batch token is the PBRT or the last event's _id: never before the end.
                EXPECT_FALSE(batch.post_batch_token.empty());
            }
        }
        co_return out;
    }

    std::unique_ptr<mongosim::background> sim_;
    mongoc_client_t* client_ = nullptr;
};

penne::watch_scope collection(std::string db, std::string coll) {
    return {penne::watch_scope::level::collection, std::move(db), std::move(coll)};
}

TEST_F(MongoIntegration, CollectionStreamDeliversInsertsInOrder) {
    run([&](asio::io_context& io) -> awaitable<void> {
        change_stream cs(io.get_executor(), collection("shop", "orders"),
                         config(options(sim_->port())));
        penne::diagnostics d;
        auto ec = co_await cs.open({}, d);
        EXPECT_FALSE(ec) << d.message;
        if (ec)
            co_return;
        insert("shop", "orders", 0, 30);
        insert("shop", "other", 100, 105);  // another collection: not in this stream
        auto events = co_await read_events(cs, 30);
        EXPECT_EQ(events.size(), 30u);
        for (std::size_t i = 0; i < events.size(); ++i) {
            EXPECT_EQ(events[i].op, "insert");
            EXPECT_EQ(events[i].db, "shop");
            EXPECT_EQ(events[i].coll, "orders");
            EXPECT_EQ(events[i].id, static_cast<std::int64_t>(i));
            EXPECT_GT(events[i].time.seconds, 0u);
            EXPECT_GT(events[i].wall, 0);
            if (i > 0) {
                EXPECT_LT(events[i - 1].time, events[i].time);
                EXPECT_NE(events[i - 1].token, events[i].token);
            }
        }
        co_await cs.close();
    });
}

TEST_F(MongoIntegration, DatabaseStreamHonoursExcludeList) {
    run([&](asio::io_context& io) -> awaitable<void> {
        auto o = options(sim_->port());
        o.exclude_collections = {"noise"};
        o.batch_size = 4;
        change_stream cs(io.get_executor(), {penne::watch_scope::level::database, "app", ""},
                         config(o));
        penne::diagnostics d;
        auto ec = co_await cs.open({}, d);
        EXPECT_FALSE(ec) << d.message;
        if (ec)
            co_return;
        insert("app", "a", 0, 3);
        insert("app", "noise", 10, 13);
        insert("app", "b", 20, 23);
        insert("elsewhere", "a", 30, 33);
        auto events = co_await read_events(cs, 6);
        CO_ASSERT_EQ(events.size(), 6u);
        std::vector<std::int64_t> ids;
        for (auto& e : events) {
            EXPECT_EQ(e.db, "app");
            EXPECT_NE(e.coll, "noise");
            ids.push_back(e.id);
        }
        EXPECT_EQ(ids, (std::vector<std::int64_t>{0, 1, 2, 20, 21, 22}));
        co_await cs.close();
    });
}

TEST_F(MongoIntegration, DeploymentStreamSeesEveryDatabase) {
    run([&](asio::io_context& io) -> awaitable<void> {
        change_stream cs(io.get_executor(), {penne::watch_scope::level::deployment, "", ""},
                         config(options(sim_->port())));
        penne::diagnostics d;
        auto ec = co_await cs.open({}, d);
        EXPECT_FALSE(ec) << d.message;
        if (ec)
            co_return;
        insert("one", "c", 0, 2);
        insert("two", "c", 2, 4);
        auto events = co_await read_events(cs, 4);
        CO_ASSERT_EQ(events.size(), 4u);
        EXPECT_EQ(events[0].db, "one");
        EXPECT_EQ(events[3].db, "two");
        co_await cs.close();
    });
}

TEST_F(MongoIntegration, ResumeFromSavedTokenGetsExactlyTheRest) {
    run([&](asio::io_context& io) -> awaitable<void> {
        auto cfg = config(options(sim_->port()));
        penne::resume_token saved;
        {
            change_stream cs(io.get_executor(), collection("db", "c"), cfg);
            penne::diagnostics d;
            auto ec = co_await cs.open({}, d);
            EXPECT_FALSE(ec) << d.message;
            if (ec)
                co_return;
            insert("db", "c", 0, 10);
            auto events = co_await read_events(cs, 10);
            EXPECT_EQ(events.size(), 10u);
            if (events.size() < 10)
                co_return;
            saved = events[4].token;
            co_await cs.close();
        }
        change_stream again(io.get_executor(), collection("db", "c"), cfg);
        penne::diagnostics d;
        penne::start_position from;
        from.resume_after = saved;
        auto ec = co_await again.open(from, d);
        EXPECT_FALSE(ec) << d.message;
        if (ec)
            co_return;
        auto rest = co_await read_events(again, 6, 10);  // asks for one more than exists
        CO_ASSERT_EQ(rest.size(), 5u);
        for (std::size_t i = 0; i < rest.size(); ++i)
            EXPECT_EQ(rest[i].id, 5 + (int)i);
        co_await again.close();
    });
}

// A prefetched getMore's reply that was never delivered is dropped by close(); the
// position stays before its events, so a stream resumed from cached_token() reads them.
TEST_F(MongoIntegration, PrefetchedReplyIsReadAgainAfterCloseAndResume) {
    run([&](asio::io_context& io) -> awaitable<void> {
        auto o = options(sim_->port());
        o.batch_size = 3;
        auto cfg = config(o);
        penne::resume_token position;
        std::vector<received> first;
        {
            change_stream cs(io.get_executor(), collection("db", "c"), cfg);
            penne::diagnostics d;
            auto ec = co_await cs.open({}, d);
            EXPECT_FALSE(ec) << d.message;
            if (ec)
                co_return;
            insert("db", "c", 0, 10);
            // At least one reply with events; each holds at most batch_size (3), so at most
            // 5 of the 10 arrive and the stream has a getMore out for more when it closes.
            first = co_await read_events(cs, 3);
            EXPECT_GE(first.size(), 3u);
            EXPECT_LE(first.size(), 5u);
            position = cs.cached_token();
            co_await cs.close();
        }
        change_stream again(io.get_executor(), collection("db", "c"), cfg);
        penne::diagnostics d;
        penne::start_position from;
        from.resume_after = position;
        auto ec = co_await again.open(from, d);
        EXPECT_FALSE(ec) << d.message;
        if (ec)
            co_return;
        const std::size_t n = first.size();
        auto rest = co_await read_events(again, 11 - n, 10);  // asks for one more than exists
        CO_ASSERT_EQ(rest.size(), 10 - n);
        for (std::size_t i = 0; i < n; ++i)
            EXPECT_EQ(first[i].id, static_cast<int>(i));
        for (std::size_t i = 0; i < rest.size(); ++i)
            EXPECT_EQ(rest[i].id, static_cast<int>(n + i));
        co_await again.close();
    });
}

TEST_F(MongoIntegration, IdleStreamTokenAdvances) {
    run([&](asio::io_context& io) -> awaitable<void> {
        change_stream cs(io.get_executor(), collection("quiet", "c"),
                         config(options(sim_->port())));
        penne::diagnostics d;
        auto ec = co_await cs.open({}, d);
        EXPECT_FALSE(ec) << d.message;
        if (ec)
            co_return;
        penne::event_batch batch;
        ec = co_await cs.next(batch, d);
        EXPECT_FALSE(ec) << d.message;
        EXPECT_TRUE(batch.events.empty());
        EXPECT_FALSE(batch.post_batch_token.empty());
        auto first = batch.post_batch_token;
        insert("busy", "c", 0, 5);  // the oplog moves on elsewhere
        ec = co_await cs.next(batch, d);
        EXPECT_FALSE(ec) << d.message;
        EXPECT_TRUE(batch.events.empty());
        EXPECT_NE(batch.post_batch_token, first);
        EXPECT_EQ(cs.cached_token(), batch.post_batch_token);
        co_await cs.close();
    });
}

TEST_F(MongoIntegration, ConnectionLossResumesWithoutLoss) {
    run([&](asio::io_context& io) -> awaitable<void> {
        tcp_proxy proxy(io, sim_->port());
        auto o = options(proxy.port());
        o.uri = "mongodb://127.0.0.1:" + std::to_string(proxy.port()) + "/?directConnection=true";
        o.reconnect_initial = 20ms;
        change_stream cs(io.get_executor(), collection("r", "c"), config(o));
        penne::diagnostics d;
        auto ec = co_await cs.open({}, d);
        EXPECT_FALSE(ec) << d.message;
        if (ec)
            co_return;
        insert("r", "c", 0, 5);
        auto before = co_await read_events(cs, 5);
        EXPECT_EQ(before.size(), 5u);
        proxy.cut();
        insert("r", "c", 5, 10);
        auto after = co_await read_events(cs, 5);
        CO_ASSERT_EQ(after.size(), 5u);
        for (std::size_t i = 0; i < after.size(); ++i)
            EXPECT_EQ(after[i].id, 5 + (int)i);
        EXPECT_GE(cs.resume_count(), 1u);
        co_await cs.close();
        proxy.stop();
    });
}

TEST_F(MongoIntegration, HistoryLostIsReported) {
    mongosim::server_options so;
    so.oplog_size = 5;
    start_sim(so);
    run([&](asio::io_context& io) -> awaitable<void> {
        auto cfg = config(options(sim_->port()));
        penne::resume_token old;
        {
            change_stream cs(io.get_executor(), collection("h", "c"), cfg);
            penne::diagnostics d;
            auto ec = co_await cs.open({}, d);
            EXPECT_FALSE(ec) << d.message;
            if (ec)
                co_return;
            insert("h", "c", 0, 1);
            auto events = co_await read_events(cs, 1);
            EXPECT_EQ(events.size(), 1u);
            if (events.empty())
                co_return;
            old = events[0].token;
            co_await cs.close();
        }
        insert("h", "c", 1, 50);  // pushes the old event out of the oplog
        change_stream cs(io.get_executor(), collection("h", "c"), cfg);
        penne::diagnostics d;
        penne::start_position from;
        from.resume_after = old;
        auto ec = co_await cs.open(from, d);
        if (!ec) {
            penne::event_batch batch;
            ec = co_await cs.next(batch, d);
        }
        EXPECT_EQ(ec, penne::errc::history_lost) << ec.message() << ": " << d.message;
        co_await cs.close();
    });
}

TEST_F(MongoIntegration, UnreachableServerIsRetryable) {
    run([&](asio::io_context& io) -> awaitable<void> {
        // Bind and release a port so nothing listens there.
        std::uint16_t port;
        {
            asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
            port = a.local_endpoint().port();
        }
        auto o = options(port);
        o.uri = "mongodb://u:sekret@127.0.0.1:" + std::to_string(port) + "/";
        change_stream cs(io.get_executor(), collection("x", "y"), config(o));
        penne::diagnostics d;
        auto ec = co_await cs.open({}, d);
        EXPECT_TRUE(ec);
        EXPECT_TRUE(penne::is_retryable(ec)) << ec.message();
        EXPECT_EQ(d.message.find("sekret"), std::string::npos) << d.message;
        EXPECT_NE(d.message.find("127.0.0.1"), std::string::npos) << d.message;
    });
}

}  // namespace
