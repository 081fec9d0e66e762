// penne's MongoDB client against mongosim with authentication (--auth users) and
// OP_COMPRESSED: each compressor negotiated and used in both directions (proved by the
// server's own serverStatus counters), each SCRAM mechanism, negotiation through
// saslSupportedMechs with and without speculativeAuthenticate, the failures a user sees,
// and a whole change stream with authentication and compression together.

#include <penne/mongo/change_stream.hpp>
#include <penne/mongo/connection.hpp>
#include <penne/mongo/wire.hpp>

#include <mongosim/server.hpp>

#include <gtest/gtest.h>
#include <mongoc/mongoc.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <chrono>
#include <exception>
#include <functional>
#include <string>
#include <vector>

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using asio::awaitable;
using penne::mongo::change_stream;
using penne::mongo::connection;
using penne::mongo::source_options;
using penne::mongo::stream_config;
using tcp = asio::ip::tcp;

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
const std::string user = "alice";
const std::string password = "s3cret-Pa55";

// Forwards 127.0.0.1:port() to a target port frame by frame and renames the
// speculativeAuthenticate field of client messages, so the server behaves like one that
// predates speculative authentication (MongoDB < 4.4) and never answers it.
class hello_rewriting_proxy {
public:
    hello_rewriting_proxy(asio::io_context& io, std::uint16_t target)
        : io_(io), acceptor_(io, {asio::ip::make_address("127.0.0.1"), 0}), target_(target) {
        asio::co_spawn(io_, accept_loop(), asio::detached);
    }
    std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
    int rewritten() const { return rewritten_; }
    void stop() {
        boost::system::error_code ec;
        acceptor_.close(ec);
        for (auto& s : sockets_)
            s->close(ec);
    }

private:
    awaitable<void> accept_loop() {
        for (;;) {
            auto [ec, client] = co_await acceptor_.async_accept(use_tuple);
            if (ec)
                co_return;
            auto c = sockets_.emplace_back(std::make_shared<tcp::socket>(std::move(client)));
            auto s = sockets_.emplace_back(std::make_shared<tcp::socket>(io_));
            auto [cec] = co_await s->async_connect({asio::ip::make_address("127.0.0.1"), target_},
                                                   use_tuple);
            if (cec)
                continue;
            asio::co_spawn(io_, pump(c, s, true), asio::detached);
            asio::co_spawn(io_, pump(s, c, false), asio::detached);
        }
    }
    awaitable<void> pump(std::shared_ptr<tcp::socket> from, std::shared_ptr<tcp::socket> to,
                         bool rewrite) {
        static constexpr std::string_view field = "speculativeAuthenticate";
        std::vector<std::uint8_t> buf;
        for (;;) {
            buf.resize(16);
            auto [ec, n] = co_await asio::async_read(*from, asio::buffer(buf), use_tuple);
            if (ec)
                break;
            std::uint32_t len = std::uint32_t(buf[0]) | std::uint32_t(buf[1]) << 8 |
                                std::uint32_t(buf[2]) << 16 | std::uint32_t(buf[3]) << 24;
            if (len < 16 || len > 64 * 1024 * 1024)
                break;
            buf.resize(len);
            auto [bec, bn] = co_await asio::async_read(
                *from, asio::buffer(buf.data() + 16, len - 16), use_tuple);
            if (bec)
                break;
            if (rewrite) {
                auto it = std::search(buf.begin(), buf.end(), field.begin(), field.end());
                if (it != buf.end()) {
                    *it = 'x';
                    ++rewritten_;
                }
            }
            auto [wec, w] = co_await asio::async_write(*to, asio::buffer(buf), use_tuple);
            if (wec)
                break;
        }
        boost::system::error_code ignored;
        to->close(ignored);
        from->close(ignored);
    }

    asio::io_context& io_;
    tcp::acceptor acceptor_;
    std::uint16_t target_;
    std::vector<std::shared_ptr<tcp::socket>> sockets_;
    int rewritten_ = 0;
};

// One counter of serverStatus, read with libmongoc (0 when absent).
std::int64_t counter(const bson_t& status, const std::string& path) {
    bson_iter_t it, found;
    if (bson_iter_init(&it, &status) && bson_iter_find_descendant(&it, path.c_str(), &found) &&
        BSON_ITER_HOLDS_NUMBER(&found))
        return bson_iter_as_int64(&found);
    return 0;
}

class MongoAuthCompression : public ::testing::Test {
protected:
    static void SetUpTestSuite() { mongoc_init(); }

    void TearDown() override {
        if (client_)
            mongoc_client_destroy(client_);
    }

    void start_sim(bool auth) {
        mongosim::server_options o;
        if (auth)
            o.users = {{user, password}};
        sim_ = std::make_unique<mongosim::background>(o);
        client_ = mongoc_client_new((auth ? sim_->uri(user, password) : sim_->uri()).c_str());
        ASSERT_NE(client_, nullptr);
    }

    std::string base_uri(std::uint16_t port, const std::string& userinfo = {}) const {
        return "mongodb://" + userinfo + "127.0.0.1:" + std::to_string(port) + "/";
    }

    // serverStatus through libmongoc (an uncompressed client, so the compression counters
    // are penne's alone).
    std::int64_t status(const std::string& path) {
        bson_t* cmd = BCON_NEW("serverStatus", BCON_INT32(1));
        bson_t reply;
        bson_error_t err;
        bool ok = mongoc_client_command_simple(client_, "admin", cmd, nullptr, &reply, &err);
        bson_destroy(cmd);
        EXPECT_TRUE(ok) << err.message;
        std::int64_t v = ok ? counter(reply, path) : -1;
        bson_destroy(&reply);
        return v;
    }

    void insert(const char* db, const char* coll, int from, int to) {
        mongoc_collection_t* c = mongoc_client_get_collection(client_, db, coll);
        for (int i = from; i < to; ++i) {
            bson_t* doc =
                BCON_NEW("_id", BCON_INT32(i), "pad", BCON_UTF8(std::string(200, 'p').c_str()));
            bson_error_t err;
            EXPECT_TRUE(mongoc_collection_insert_one(c, doc, nullptr, nullptr, &err))
                << err.message;
            bson_destroy(doc);
        }
        mongoc_collection_destroy(c);
    }

    static penne::mongo::connection_options connection_options(const std::string& uri) {
        stream_config cfg;
        source_options o;
        o.uri = uri;
        o.connect_timeout = 3s;
        o.socket_timeout = 5s;
        penne::diagnostics d;
        EXPECT_FALSE(penne::mongo::prepare(o, cfg, d)) << d.message;
        return cfg.connection;
    }

    // Runs `body` as a coroutine on a fresh io_context; rethrows its exception.
    static void run(std::function<awaitable<void>(asio::io_context&)> body) {
        asio::io_context io;
        std::exception_ptr failure;
        bool finished = false;
        asio::co_spawn(io, body(io), [&](std::exception_ptr e) {
            failure = e;
            finished = true;
        });
        io.run_for(60s);
        EXPECT_TRUE(finished);
        if (failure)
            std::rethrow_exception(failure);
    }

    // Connects to `port` with `uri`'s options and runs listDatabases (which needs an
    // authenticated connection when auth is on). Returns the first error.
    static awaitable<penne::error_code> connect_and_list(asio::io_context& io, std::uint16_t port,
                                                         const std::string& uri,
                                                         penne::diagnostics& d,
                                                         std::string* compressor = nullptr) {
        connection conn(io.get_executor());
        auto opts = connection_options(uri);
        // A named peer: g++ 12 destroys braced temporaries of a co_await expression twice.
        const penne::mongo::host_port peer{"127.0.0.1", port};
        auto ec = co_await conn.connect(peer, opts, d);
        if (ec)
            co_return ec;
        if (compressor)
            *compressor = std::string(conn.compressor());
        bson_t* cmd = BCON_NEW("listDatabases", BCON_INT32(1), "$db", BCON_UTF8("admin"));
        std::vector<std::uint8_t> frame;
        penne::mongo::command_reply reply;
        ec = co_await conn.run_command({bson_get_data(cmd), cmd->len}, frame, reply, {}, d);
        bson_destroy(cmd);
        co_return ec;
    }

    std::unique_ptr<mongosim::background> sim_;
    mongoc_client_t* client_ = nullptr;
};

class EachCompressor : public MongoAuthCompression,
                       public ::testing::WithParamInterface<const char*> {};

TEST_P(EachCompressor, NegotiatedAndUsedBothWays) {
    const std::string name = GetParam();
    start_sim(false);
    const std::string prefix = "network.compression." + name;
    const auto sent_before = status(prefix + ".decompressor.bytesIn");
    const auto recv_before = status(prefix + ".compressor.bytesIn");
    run([&](asio::io_context& io) -> awaitable<void> {
        // The server accepts everything offered; we must use the first of its list.
        std::string other = name == "zstd" ? "zlib" : "zstd";
        std::string uri = base_uri(sim_->port()) + "?compressors=" + name + "," + other +
                          "&zlibCompressionLevel=6";
        penne::diagnostics d;
        std::string used;
        for (int i = 0; i < 3; ++i) {
            auto ec = co_await connect_and_list(io, sim_->port(), uri, d, &used);
            EXPECT_FALSE(ec) << d.message;
            EXPECT_EQ(used, name);
        }
        // Without compressors= nothing is compressed.
        auto ec = co_await connect_and_list(io, sim_->port(), base_uri(sim_->port()), d, &used);
        EXPECT_FALSE(ec) << d.message;
        EXPECT_EQ(used, "");
    });
    // The server inflated our requests and compressed its replies with this codec only.
    EXPECT_GT(status(prefix + ".decompressor.bytesIn"), sent_before);
    EXPECT_GT(status(prefix + ".compressor.bytesIn"), recv_before);
    for (const char* o : {"zstd", "zlib", "snappy"}) {
        if (o != name) {
            EXPECT_EQ(status(std::string("network.compression.") + o + ".decompressor.bytesIn"), 0)
                << o;
            EXPECT_EQ(status(std::string("network.compression.") + o + ".compressor.bytesIn"), 0)
                << o;
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Codecs, EachCompressor, ::testing::Values("zstd", "zlib", "snappy"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                             return std::string(info.param);
                         });

struct mechanism_case {
    const char* uri_option;  // authMechanism=… or empty for negotiation
    const char* mechanism;   // the one the server must see
    const char* label;       // the test name's suffix
};

class EachMechanism : public MongoAuthCompression,
                      public ::testing::WithParamInterface<mechanism_case> {};

TEST_P(EachMechanism, LogsInSpeculatively) {
    const auto [option, mech, label] = GetParam();
    (void)label;
    start_sim(true);
    const std::string prefix = std::string("security.authentication.mechanisms.") + mech;
    const auto spec_before = status(prefix + ".speculativeAuthenticate.successful");
    const auto full_before = status(prefix + ".authenticate.successful");
    run([&](asio::io_context& io) -> awaitable<void> {
        std::string uri = base_uri(sim_->port(), user + ":" + password + "@") + "?" + option;
        penne::diagnostics d;
        auto ec = co_await connect_and_list(io, sim_->port(), uri, d);
        EXPECT_FALSE(ec) << d.message;
    });
    // One login, finished from the first step that rode in hello.
    EXPECT_EQ(status(prefix + ".speculativeAuthenticate.successful"), spec_before + 1);
    EXPECT_EQ(status(prefix + ".authenticate.successful"), full_before);
}

INSTANTIATE_TEST_SUITE_P(
    Scram, EachMechanism,
    ::testing::Values(mechanism_case{"authMechanism=SCRAM-SHA-256", "SCRAM-SHA-256", "Sha256"},
                      mechanism_case{"authMechanism=SCRAM-SHA-1", "SCRAM-SHA-1", "Sha1"},
                      mechanism_case{"authSource=admin", "SCRAM-SHA-256", "Negotiated"}),
    [](const ::testing::TestParamInfo<mechanism_case>& info) { return info.param.label; });

TEST_F(MongoAuthCompression, FallsBackWhenSpeculativeAuthIsNotAnswered) {
    start_sim(true);
    const std::string prefix = "security.authentication.mechanisms.SCRAM-SHA-256";
    const auto spec_before = status(prefix + ".speculativeAuthenticate.received");
    const auto full_before = status(prefix + ".authenticate.successful");
    run([&](asio::io_context& io) -> awaitable<void> {
        hello_rewriting_proxy proxy(io, sim_->port());
        std::string uri = base_uri(proxy.port(), user + ":" + password + "@");
        penne::diagnostics d;
        auto ec = co_await connect_and_list(io, proxy.port(), uri, d);
        EXPECT_FALSE(ec) << d.message;
        EXPECT_EQ(proxy.rewritten(), 1);
        proxy.stop();
    });
    // A normal saslStart conversation, with the mechanism saslSupportedMechs offered.
    EXPECT_EQ(status(prefix + ".speculativeAuthenticate.received"), spec_before);
    EXPECT_EQ(status(prefix + ".authenticate.successful"), full_before + 1);
}

TEST_F(MongoAuthCompression, WrongPasswordIsFatalAndNeverShown) {
    start_sim(true);
    for (const char* option : {"", "?authMechanism=SCRAM-SHA-1"}) {
        SCOPED_TRACE(option);
        run([&](asio::io_context& io) -> awaitable<void> {
            const std::string wrong = "Wr0ng-pa55word";
            std::string uri = base_uri(sim_->port(), user + ":" + wrong + "@") + option;
            penne::diagnostics d;
            auto ec = co_await connect_and_list(io, sim_->port(), uri, d);
            EXPECT_TRUE(ec);
            EXPECT_TRUE(penne::is_fatal(ec)) << ec.message();
            EXPECT_NE(d.message.find("authentication of user alice"), std::string::npos)
                << d.message;
            EXPECT_NE(d.message.find("failed"), std::string::npos) << d.message;
            EXPECT_EQ(d.message.find(wrong), std::string::npos) << d.message;
            EXPECT_EQ(d.message.find(password), std::string::npos) << d.message;

            // The change stream gives up at once (no reconnect loop) with the same story.
            source_options o;
            o.uri = base_uri(sim_->port(), user + ":" + wrong + "@") + "?replicaSet=rs0";
            o.connect_timeout = 3s;
            auto cfg = std::make_shared<stream_config>();
            EXPECT_FALSE(penne::mongo::prepare(o, *cfg, d));
            change_stream cs(io.get_executor(),
                             {penne::watch_scope::level::collection, "shop", "orders"}, cfg);
            penne::diagnostics sd;
            auto started = std::chrono::steady_clock::now();
            ec = co_await cs.open({}, sd);
            EXPECT_TRUE(penne::is_fatal(ec)) << ec.message() << ": " << sd.message;
            EXPECT_LT(std::chrono::steady_clock::now() - started, 2s);
            EXPECT_NE(sd.message.find("authentication of user alice"), std::string::npos)
                << sd.message;
            EXPECT_EQ(sd.message.find(wrong), std::string::npos) << sd.message;
            co_await cs.close();
        });
    }
}

TEST_F(MongoAuthCompression, UnknownUserIsFatal) {
    start_sim(true);
    run([&](asio::io_context& io) -> awaitable<void> {
        std::string uri = base_uri(sim_->port(), "mallory:" + password + "@");
        penne::diagnostics d;
        auto ec = co_await connect_and_list(io, sim_->port(), uri, d);
        EXPECT_TRUE(penne::is_fatal(ec)) << ec.message();
        EXPECT_NE(d.message.find("authentication of user mallory"), std::string::npos) << d.message;
        EXPECT_EQ(d.message.find(password), std::string::npos) << d.message;
    });
}

TEST_F(MongoAuthCompression, NoCredentialsMeansUnauthorized) {
    start_sim(true);
    run([&](asio::io_context& io) -> awaitable<void> {
        penne::diagnostics d;
        auto ec = co_await connect_and_list(io, sim_->port(), base_uri(sim_->port()), d);
        EXPECT_EQ(ec, penne::mongo::make_server_error(13)) << ec.message() << ": " << d.message;
    });
}

TEST_F(MongoAuthCompression, ChangeStreamWithAuthAndCompression) {
    start_sim(true);
    const auto sent_before = status("network.compression.zstd.decompressor.bytesIn");
    const auto recv_before = status("network.compression.zstd.compressor.bytesIn");
    std::size_t received = 0;
    run([&](asio::io_context& io) -> awaitable<void> {
        source_options o;
        o.uri = base_uri(sim_->port(), user + ":" + password + "@") +
                "?replicaSet=rs0&compressors=zstd,snappy";
        o.max_await = 200ms;
        o.connect_timeout = 3s;
        o.socket_timeout = 5s;
        auto cfg = std::make_shared<stream_config>();
        penne::diagnostics d;
        EXPECT_FALSE(penne::mongo::prepare(o, *cfg, d)) << d.message;
        change_stream cs(io.get_executor(),
                         {penne::watch_scope::level::collection, "shop", "orders"}, cfg);
        auto ec = co_await cs.open({}, d);
        EXPECT_FALSE(ec) << d.message;
        if (ec)
            co_return;
        insert("shop", "orders", 0, 50);
        std::vector<std::int64_t> ids;
        penne::event_batch batch;
        for (int i = 0; i < 50 && ids.size() < 50; ++i) {
            penne::diagnostics nd;
            auto nec = co_await cs.next(batch, nd);
            EXPECT_FALSE(nec) << nd.message;
            if (nec)
                break;
            for (const auto& e : batch.events) {
                bson_t doc;
                bson_iter_t it, key;
                if (bson_init_static(&doc, e.raw.data(), e.raw.size()) &&
                    bson_iter_init(&it, &doc) &&
                    bson_iter_find_descendant(&it, "documentKey._id", &key))
                    ids.push_back(bson_iter_as_int64(&key));
                EXPECT_EQ(e.operation, "insert");
            }
        }
        std::vector<std::int64_t> want(50);
        for (int i = 0; i < 50; ++i)
            want[static_cast<std::size_t>(i)] = i;
        EXPECT_EQ(ids, want);
        received = ids.size();
        co_await cs.close();
    });
    EXPECT_EQ(received, 50u);
    // The events travelled zstd-compressed (replies far larger than the requests).
    EXPECT_GT(status("network.compression.zstd.decompressor.bytesIn"), sent_before);
    EXPECT_GT(status("network.compression.zstd.compressor.bytesIn"), recv_before + 50 * 200);
    EXPECT_EQ(status("network.compression.snappy.compressor.bytesIn"), 0);
}

}  // namespace
