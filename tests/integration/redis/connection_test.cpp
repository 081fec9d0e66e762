// penne::redis::connection against a real redis-server.
#include "redis_test.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <chrono>
#include <future>
#include <thread>

namespace penne::redis::test {
namespace {

using namespace std::chrono_literals;
using tcp = asio::ip::tcp;

class RedisConnection : public ::testing::Test {
protected:
    runner io;
    std::unique_ptr<redis_peer> peer;

    void SetUp() override { start(); }
    void start(redis_peer_options opts = {}) {
        peer = std::make_unique<redis_peer>(std::move(opts));
        ASSERT_TRUE(peer->ready()) << peer->failure();
    }
    std::unique_ptr<connection> connect(const std::string& url) {
        return std::make_unique<connection>(io.ctx.get_executor(), options_for(url));
    }
    std::unique_ptr<connection> admin() { return connect(peer->url()); }
};

TEST_F(RedisConnection, PingSetGetAndErrorRepliesInAPipeline) {
    auto conn = connect(peer->url());
    diagnostics diag;
    auto ec = io.run(conn->ping(diag));
    ASSERT_FALSE(ec) << ec.message() << ": " << diag.message;
    EXPECT_EQ(conn->connects(), 1u);

    request req;
    req.push({"SET", "k", "v"});
    req.push({"GET", "k"});
    req.push({"INCR", "k"});  // an error reply among successes
    req.push({"GET", "missing"});
    std::vector<value> replies;
    ec = io.run(conn->execute(req, replies, diag));
    ASSERT_FALSE(ec) << diag.message;
    ASSERT_EQ(replies.size(), 4u);
    EXPECT_TRUE(replies[0].is_status("OK"));
    EXPECT_EQ(replies[1].text, "v");
    EXPECT_TRUE(replies[2].is_error());
    EXPECT_TRUE(replies[3].is_nil());

    // call() turns an error reply into its classified code.
    value reply;
    ec = io.run(conn->call(request{"INCR", "k"}, reply, diag));
    EXPECT_EQ(ec, redis_errc::server_error);
    EXPECT_NE(diag.message.find("not an integer"), std::string::npos) << diag.message;
    ec = io.run(conn->call(request{"LPUSH", "k", "x"}, reply, diag));
    EXPECT_EQ(ec, redis_errc::wrong_type);
    EXPECT_EQ(conn->connects(), 1u);  // error replies do not break the connection
}

TEST_F(RedisConnection, PipelinesAThousandCommandsInOneRoundTrip) {
    auto conn = connect(peer->url());
    const std::string big(1000, 'x');
    request fill;
    for (int i = 0; i < 1000; ++i)
        fill.push({"SET", "key:" + std::to_string(i), big + std::to_string(i)});
    std::vector<value> replies;
    diagnostics diag;
    ASSERT_FALSE(io.run(conn->execute(fill, replies, diag))) << diag.message;
    ASSERT_EQ(replies.size(), 1000u);
    for (auto& r : replies)
        EXPECT_TRUE(r.is_status("OK"));

    request read;  // about 1 MB of replies, spread over many socket reads
    for (int i = 0; i < 1000; ++i) {
        read.push({"INCR", "counter"});
        read.push({"GET", "key:" + std::to_string(i)});
    }
    ASSERT_FALSE(io.run(conn->execute(read, replies, diag))) << diag.message;
    ASSERT_EQ(replies.size(), 2000u);
    for (int i = 0; i < 1000; ++i) {
        EXPECT_EQ(replies[2 * i].integer, i + 1);
        EXPECT_EQ(replies[2 * i + 1].text, big + std::to_string(i));
    }
    EXPECT_EQ(conn->connects(), 1u);
}

TEST_F(RedisConnection, AclUserAuthenticatesAndIsLimitedToItsKeys) {
    auto root = admin();
    must_call(io, *root,
              request{"ACL", "SETUSER", "penne", "on", ">s3cr3t-pw", "~penne:*", "+@all"});
    auto conn = connect("redis://penne:s3cr3t-pw@127.0.0.1:" + std::to_string(peer->port()));
    must_call(io, *conn, request{"SET", "penne:a", "1"});
    value reply;
    diagnostics diag;
    auto ec = io.run(conn->call(request{"SET", "other:a", "1"}, reply, diag));
    EXPECT_EQ(ec, redis_errc::no_permission);
    EXPECT_TRUE(is_fatal(ec));
    reply = must_call(io, *root, request{"ACL", "WHOAMI"});
    EXPECT_EQ(reply.text, "default");
}

TEST_F(RedisConnection, WrongPasswordIsFatalAndNeverShown) {
    auto root = admin();
    must_call(io, *root, request{"ACL", "SETUSER", "penne", "on", ">right-pw", "~*", "+@all"});
    auto conn = connect("redis://penne:Wr0ng-Pa55word@127.0.0.1:" + std::to_string(peer->port()));
    diagnostics diag;
    auto ec = io.run(conn->ping(diag));
    EXPECT_EQ(ec, redis_errc::wrong_password);
    EXPECT_TRUE(is_fatal(ec));
    EXPECT_NE(diag.message.find("authentication as user 'penne'"), std::string::npos)
        << diag.message;
    EXPECT_NE(diag.message.find("WRONGPASS"), std::string::npos) << diag.message;
    EXPECT_EQ(diag.message.find("Wr0ng-Pa55word"), std::string::npos) << diag.message;
    EXPECT_EQ(conn->describe().find("Wr0ng-Pa55word"), std::string::npos);
    EXPECT_EQ(ec.message().find("Wr0ng-Pa55word"), std::string::npos);
    EXPECT_EQ(conn->connects(), 0u);
}

TEST_F(RedisConnection, RequirePassWithPasswordOnlyUrl) {
    start({.extra_args = {"--requirepass", "only-pw"}});
    auto anonymous = connect(peer->url());
    diagnostics diag;
    auto ec = io.run(anonymous->ping(diag));
    EXPECT_EQ(ec, redis_errc::no_auth);
    EXPECT_TRUE(is_fatal(ec));
    auto conn = connect("redis://:only-pw@127.0.0.1:" + std::to_string(peer->port()));
    ec = io.run(conn->ping(diag));
    EXPECT_FALSE(ec) << diag.message;
}

TEST_F(RedisConnection, SelectsTheUrlsDatabase) {
    auto db3 = connect(peer->url() + "/3");
    must_call(io, *db3, request{"SET", "in-three", "yes"});
    auto db0 = admin();
    EXPECT_TRUE(must_call(io, *db0, request{"GET", "in-three"}).is_nil());
    must_call(io, *db0, request{"SELECT", "3"});
    EXPECT_EQ(must_call(io, *db0, request{"GET", "in-three"}).text, "yes");

    auto bad = connect(peer->url() + "/999");
    diagnostics diag;
    auto ec = io.run(bad->ping(diag));
    EXPECT_EQ(ec, redis_errc::server_error);
    EXPECT_NE(diag.message.find("SELECT 999"), std::string::npos) << diag.message;
}

TEST_F(RedisConnection, EvalFallsBackToEvalWhenTheScriptCacheIsEmpty) {
    auto conn = connect(peer->url());
    const script s("return redis.call('INCRBY', KEYS[1], ARGV[1])");
    const std::vector<std::string> keys = {"n"}, args = {"5"};
    value reply;
    diagnostics diag;
    ASSERT_FALSE(io.run(conn->eval(s, keys, args, reply, diag))) << diag.message;
    EXPECT_EQ(reply.integer, 5);
    auto exists = must_call(io, *conn, request{"SCRIPT", "EXISTS", s.sha1()});
    ASSERT_EQ(exists.elements.size(), 1u);
    EXPECT_EQ(exists.elements[0].integer, 1);  // the first EVAL loaded it

    must_call(io, *conn, request{"SCRIPT", "FLUSH"});
    ASSERT_FALSE(io.run(conn->eval(s, keys, args, reply, diag))) << diag.message;
    EXPECT_EQ(reply.integer, 10);  // ran exactly once despite the NOSCRIPT round
    exists = must_call(io, *conn, request{"SCRIPT", "EXISTS", s.sha1()});
    EXPECT_EQ(exists.elements[0].integer, 1);

    const script failing("return redis.error_reply('BUSY pretend')");
    auto ec = io.run(conn->eval(failing, keys, args, reply, diag));
    EXPECT_EQ(ec, redis_errc::busy);
    EXPECT_TRUE(is_retryable(ec));
}

TEST_F(RedisConnection, ReconnectsAfterTheServerRestarts) {
    auto conn = connect(peer->url());
    diagnostics diag;
    ASSERT_FALSE(io.run(conn->ping(diag))) << diag.message;

    peer->kill();
    auto ec = io.run(conn->ping(diag));
    EXPECT_TRUE(ec);
    EXPECT_TRUE(is_retryable(ec)) << ec.message() << ": " << diag.message;
    EXPECT_NE(diag.message.find("cannot connect to Redis at redis://127.0.0.1:"), std::string::npos)
        << diag.message;

    // The server comes back while the caller keeps retrying.
    std::thread restarter([&] {
        std::this_thread::sleep_for(300ms);
        peer->restart();
    });
    int failures = 0;
    for (int i = 0; i < 100; ++i) {
        ec = io.run(conn->ping(diag));
        if (!ec)
            break;
        EXPECT_TRUE(is_retryable(ec)) << ec.message();
        ++failures;
        std::this_thread::sleep_for(50ms);
    }
    restarter.join();
    ASSERT_TRUE(peer->ready()) << peer->failure();
    EXPECT_FALSE(ec) << diag.message;
    EXPECT_EQ(conn->connects(), 2u);
    must_call(io, *conn, request{"SET", "after", "restart"});

    // A connection the server drops while idle is replaced transparently for an idempotent
    // request (resend after the broken connection).
    auto root = admin();
    must_call(io, *root, request{"CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"});
    ASSERT_FALSE(io.run(conn->ping(diag))) << diag.message;
    EXPECT_EQ(conn->connects(), 3u);
}

TEST_F(RedisConnection, UnreachableServerGivesARetryableErrorAfterBoundedAttempts) {
    const int port = peer->port();
    peer->kill();
    auto opts = options_for("redis://127.0.0.1:" + std::to_string(port));
    opts.retry = {.initial_delay = 20ms, .max_delay = 40ms, .max_attempts = 3};
    connection conn(io.ctx.get_executor(), opts);
    diagnostics diag;
    const auto t0 = std::chrono::steady_clock::now();
    auto ec = io.run(conn.ping(diag));
    const auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_EQ(ec, asio::error::connection_refused) << ec.message();
    EXPECT_TRUE(is_retryable(ec));
    EXPECT_NE(diag.message.find("cannot connect to Redis at redis://127.0.0.1:"), std::string::npos)
        << diag.message;
    EXPECT_LT(took, 2s);
}

// A TCP peer that accepts connections and never answers, on its own thread (its pending
// accept must not keep the test's io_context running).
struct silent_server {
    asio::io_context ctx;
    tcp::acceptor acceptor{ctx, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)};
    std::vector<std::shared_ptr<tcp::socket>> held;
    std::thread thread;
    silent_server() {
        accept();
        thread = std::thread([this] { ctx.run(); });
    }
    ~silent_server() {
        asio::post(ctx, [this] {
            error_code ignored;
            acceptor.close(ignored);
            for (auto& s : held)
                s->close(ignored);
        });
        thread.join();
    }
    void accept() {
        auto s = std::make_shared<tcp::socket>(ctx);
        acceptor.async_accept(*s, [this, s](error_code ec) {
            if (ec)
                return;
            held.push_back(s);
            accept();
        });
    }
    int port() const { return acceptor.local_endpoint().port(); }
};

TEST_F(RedisConnection, CommandTimeoutIsCancellationAndClosesTheConnection) {
    silent_server silent;
    auto opts = options_for("redis://127.0.0.1:" + std::to_string(silent.port()));
    opts.command_timeout = 200ms;
    connection conn(io.ctx.get_executor(), opts);
    diagnostics diag;
    const auto t0 = std::chrono::steady_clock::now();
    auto ec = io.run(conn.ping(diag));
    const auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_EQ(ec, errc::timeout) << ec.message();
    EXPECT_TRUE(is_retryable(ec));
    EXPECT_NE(diag.message.find("did not answer within 200 ms"), std::string::npos) << diag.message;
    EXPECT_GE(took, 200ms);
    EXPECT_LT(took, 2s);
}

TEST_F(RedisConnection, ConnectTimeoutCoversTheHandshake) {
    silent_server silent;
    auto opts =
        options_for("redis://user:pw@127.0.0.1:" + std::to_string(silent.port()));  // AUTH hangs
    opts.connect_timeout = 150ms;
    opts.retry.max_attempts = 1;
    connection conn(io.ctx.get_executor(), opts);
    diagnostics diag;
    auto ec = io.run(conn.ping(diag));
    EXPECT_EQ(ec, errc::timeout);
    EXPECT_NE(diag.message.find("timed out after 150 ms"), std::string::npos) << diag.message;
}

TEST_F(RedisConnection, CallerCancellationStopsARequestAndTheNextOneReconnects) {
    silent_server silent;
    auto opts = options_for("redis://127.0.0.1:" + std::to_string(silent.port()));
    opts.command_timeout = 10s;
    connection conn(io.ctx.get_executor(), opts);
    asio::cancellation_signal signal;
    std::optional<error_code> result;
    diagnostics diag;
    asio::co_spawn(
        io.ctx, conn.ping(diag),
        asio::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr e, error_code ec) {
            if (e)
                std::rethrow_exception(e);
            result = ec;
        }));
    asio::steady_timer t(io.ctx, 100ms);
    t.async_wait([&](error_code) { signal.emit(asio::cancellation_type::terminal); });
    const auto t0 = std::chrono::steady_clock::now();
    io.ctx.restart();
    io.ctx.run_for(5s);
    ASSERT_TRUE(result);
    EXPECT_EQ(*result, errc::cancelled) << result->message() << ": " << diag.message;
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
}

TEST_F(RedisConnection, SharedByCoroutinesOnManyThreads) {
    asio::thread_pool pool(4);
    connection conn(pool.get_executor(), options_for(peer->url()));
    constexpr int tasks = 8, per_task = 100;
    std::vector<std::future<error_code>> done;
    for (int t = 0; t < tasks; ++t) {
        done.push_back(asio::co_spawn(
            asio::make_strand(pool),
            [&conn, t]() -> asio::awaitable<error_code> {
                diagnostics diag;
                for (int i = 0; i < per_task; ++i) {
                    request req;
                    req.push({"INCR", "total"});
                    req.push({"RPUSH", "list:" + std::to_string(t), std::to_string(i)});
                    std::vector<value> replies;
                    error_code ec = co_await conn.execute(req, replies, diag);
                    if (ec)
                        co_return ec;
                    if (replies.size() != 2 || replies[1].integer != i + 1)
                        co_return make_error_code(redis_errc::unexpected_reply);
                }
                co_return error_code{};
            },
            asio::use_future));
    }
    for (auto& f : done)
        EXPECT_FALSE(f.get());
    pool.join();
    auto root = admin();
    EXPECT_EQ(must_call(io, *root, request{"GET", "total"}).text, std::to_string(tasks * per_task));
    EXPECT_EQ(conn.connects(), 1u);
}

}  // namespace
}  // namespace penne::redis::test
