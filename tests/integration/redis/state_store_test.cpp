// The state_store contract (as tests/unit/engine/memory_state_store_test.cpp and
// tests/unit/adapters/file/state_store_test.cpp state it) for penne::redis::state_store
// against a real redis-server, plus what only Redis has: the documented keys, fencing,
// NOSCRIPT after a script cache flush, and an unreachable server.
#include <penne/memory_state_store.hpp>
#include <penne/redis/state_store.hpp>

#include "redis_test.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <future>
#include <random>
#include <set>
#include <span>
#include <thread>

namespace penne::redis::test {
namespace {

using namespace std::chrono_literals;

resume_token token(std::uint32_t n) {
    std::vector<std::uint8_t> b = {
        12, 0, 0, 0, 0x10, 'i', 0, static_cast<std::uint8_t>(n), static_cast<std::uint8_t>(n >> 8),
        0,  0, 0};
    return resume_token(byte_view(b.data(), b.size()));
}

manifest_entry entry(std::uint64_t seq, std::string key, std::uint64_t count = 1) {
    manifest_entry e;
    e.seq = seq;
    e.key = std::move(key);
    e.db = "shop";
    e.coll = "orders";
    e.first = token(static_cast<std::uint32_t>(seq * 100));
    e.last = token(static_cast<std::uint32_t>(seq * 100 + 99));
    e.count = count;
    return e;
}

std::vector<std::string> keys_of(const scope_state& s) {
    std::vector<std::string> out;
    for (auto& e : s.entries)
        out.push_back(e.key);
    return out;
}

class RedisStateStore : public ::testing::Test {
protected:
    runner io;
    std::unique_ptr<redis_peer> peer;
    std::unique_ptr<connection> conn;
    std::unique_ptr<state_store> store;

    void SetUp() override {
        peer = std::make_unique<redis_peer>();
        ASSERT_TRUE(peer->ready()) << peer->failure();
        conn = std::make_unique<connection>(io.ctx.get_executor(), options_for(peer->url()));
        store = std::make_unique<state_store>(*conn);
    }

    scope_state load(state_store& s, const std::string& scope) {
        scope_state out;
        diagnostics diag;
        auto ec = io.run(s.load(scope, out, diag));
        EXPECT_FALSE(ec) << ec.message() << ": " << diag.message;
        return out;
    }
    scope_state load(const std::string& scope) { return load(*store, scope); }
    void record(const std::string& scope, const manifest_entry& e) {
        diagnostics diag;
        auto ec = io.run(store->record(scope, e, diag));
        ASSERT_FALSE(ec) << ec.message() << ": " << diag.message;
    }
    void commit(const std::string& scope, const commit_request& req) {
        diagnostics diag;
        auto ec = io.run(store->commit(scope, req, diag));
        ASSERT_FALSE(ec) << ec.message() << ": " << diag.message;
    }
    value raw(request req) { return must_call(io, *conn, std::move(req)); }
};

TEST_F(RedisStateStore, UnknownScopeIsEmptyAndDescribeHidesThePassword) {
    auto s = load("nope");
    EXPECT_FALSE(s.watermark);
    EXPECT_TRUE(s.entries.empty());
    EXPECT_EQ(store->describe(),
              "redis:redis://127.0.0.1:" + std::to_string(peer->port()) + "/0 prefix=penne");
    auto opts = options_for("redis://u:hidden-pw@127.0.0.1:" + std::to_string(peer->port()));
    connection c(io.ctx.get_executor(), opts);
    state_store st(c, {.key_prefix = "x"});
    EXPECT_EQ(st.describe().find("hidden-pw"), std::string::npos) << st.describe();
}

TEST_F(RedisStateStore, RecordRoundTripsEveryFieldAcrossConnections) {
    auto e = entry(7, "shop/orders/2026/01/02/03/abc.jsonl.zst", 42);
    e.durable = true;
    e.first = resume_token();
    e.db = "shöp";
    e.coll = std::string("orders \"quoted\" \\ \n:{x}\0,", 26);
    record("shop", e);
    auto s = load("shop");
    ASSERT_EQ(s.entries.size(), 1u);
    EXPECT_EQ(s.entries[0], e);
    // Durable: a new connection and store see the same.
    connection other(io.ctx.get_executor(), options_for(peer->url()));
    state_store fresh(other);
    s = load(fresh, "shop");
    ASSERT_EQ(s.entries.size(), 1u);
    EXPECT_EQ(s.entries[0], e);
    EXPECT_FALSE(s.watermark);
}

TEST_F(RedisStateStore, RecordOrdersBySeqAndSameKeyReplacesWhereverItWas) {
    record("s", entry(3, "c", 30));
    record("s", entry(1, "a", 10));
    record("s", entry(2, "b", 20));
    EXPECT_EQ(keys_of(load("s")), (std::vector<std::string>{"a", "b", "c"}));
    record("s", entry(1, "a", 11));  // replay of the same batch
    record("s", entry(9, "b", 90));  // same key, later seq: moves to the end
    auto s = load("s");
    ASSERT_EQ(keys_of(s), (std::vector<std::string>{"a", "c", "b"}));
    EXPECT_EQ(s.entries[0].count, 11u);
    EXPECT_EQ(s.entries[2].seq, 9u);
}

TEST_F(RedisStateStore, EqualSeqKeepsRecordingOrder) {
    record("s", entry(1, "y"));
    record("s", entry(1, "x"));
    record("s", entry(1, "z"));
    record("s", entry(1, "y"));  // re-recorded: behind the others of its seq
    EXPECT_EQ(keys_of(load("s")), (std::vector<std::string>{"x", "z", "y"}));
}

// record_many: one script call, entries kept in the order given (the recording order
// breaks seq ties), a fenced call refused as a whole.
TEST_F(RedisStateStore, RecordManyWritesEveryEntryInOrderOrNoneWhenFenced) {
    record("s", entry(1, "a"));
    std::vector<manifest_entry> group = {entry(2, "c"), entry(2, "b"), entry(3, "d", 7)};
    group[2].durable = true;
    diagnostics diag;
    auto ec = io.run(store->record_many("s", group, diag));
    ASSERT_FALSE(ec) << diag.message;
    auto s = load("s");
    ASSERT_EQ(keys_of(s), (std::vector<std::string>{"a", "c", "b", "d"}));
    EXPECT_EQ(s.entries[3], group[2]);
    // Re-recording a group (a retry) replaces its entries; an empty group changes nothing.
    group[0].count = 5;
    ec = io.run(store->record_many("s", group, diag));
    ASSERT_FALSE(ec) << diag.message;
    ec = io.run(store->record_many("s", std::span<const manifest_entry>(), diag));
    ASSERT_FALSE(ec) << diag.message;
    s = load("s");
    ASSERT_EQ(keys_of(s), (std::vector<std::string>{"a", "c", "b", "d"}));
    EXPECT_EQ(s.entries[1].count, 5u);

    const auto k = keys_for("penne", "s");
    raw(request{"SET", k.fence, "10"});
    raw(request{"SET", k.lease, "host-a:10", "PX", "60000"});
    std::vector<manifest_entry> more = {entry(4, "e"), entry(5, "f")};
    ec = io.run(store->record_many("s", more, fence_token{.owner = "host-a", .fence = 9}, diag));
    EXPECT_EQ(ec, errc::lease_lost);
    EXPECT_EQ(keys_of(load("s")).size(), 4u);  // neither entry of the refused call
    ec = io.run(store->record_many("s", more, fence_token{.owner = "host-a", .fence = 10}, diag));
    ASSERT_FALSE(ec) << diag.message;
    EXPECT_EQ(keys_of(load("s")), (std::vector<std::string>{"a", "c", "b", "d", "e", "f"}));
}

TEST_F(RedisStateStore, CommitMarksDurableMovesWatermarkAndRetiresTogether) {
    record("s", entry(1, "a"));
    record("s", entry(2, "b"));
    record("s", entry(3, "c"));
    commit("s", {.durable_keys = {"a", "c"}, .watermark = token(199), .retire_keys = {"a"}});
    auto s = load("s");
    ASSERT_EQ(keys_of(s), (std::vector<std::string>{"b", "c"}));
    EXPECT_FALSE(s.entries[0].durable);
    EXPECT_TRUE(s.entries[1].durable);
    EXPECT_EQ(s.watermark, token(199));
}

TEST_F(RedisStateStore, CommitIsIdempotentKeepsWatermarkAndIgnoresUnknownKeys) {
    record("s", entry(1, "a"));
    commit_request req{
        .durable_keys = {"a", "ghost"}, .watermark = token(3), .retire_keys = {"g2"}};
    commit("s", req);
    commit("s", req);
    commit("s", {.durable_keys = {}, .watermark = std::nullopt, .retire_keys = {}});
    auto s = load("s");
    EXPECT_EQ(s.watermark, token(3));
    ASSERT_EQ(keys_of(s), (std::vector<std::string>{"a"}));
    EXPECT_TRUE(s.entries[0].durable);
    // An empty token is a watermark too, distinct from none.
    commit("s", {.durable_keys = {}, .watermark = resume_token(), .retire_keys = {}});
    s = load("s");
    ASSERT_TRUE(s.watermark);
    EXPECT_TRUE(s.watermark->empty());
}

TEST_F(RedisStateStore, ScopesAreIndependentWhateverTheirNames) {
    const std::vector<std::string> ids = {"db.a", "db.b", "a:b", "a%3Ab",
                                          "{x}",  "",     "ünï", std::string(300, 'z')};
    for (std::size_t i = 0; i < ids.size(); ++i) {
        record(ids[i], entry(i + 1, "k" + std::to_string(i)));
        commit(ids[i], {.durable_keys = {},
                        .watermark = token(static_cast<std::uint32_t>(i)),
                        .retire_keys = {}});
    }
    for (std::size_t i = 0; i < ids.size(); ++i) {
        auto s = load(ids[i]);
        EXPECT_EQ(keys_of(s), (std::vector<std::string>{"k" + std::to_string(i)})) << ids[i];
        EXPECT_EQ(s.watermark, token(static_cast<std::uint32_t>(i))) << ids[i];
    }
}

TEST_F(RedisStateStore, UsesTheDocumentedKeysUnderItsPrefix) {
    state_store custom(*conn, {.key_prefix = "tenant7"});
    diagnostics diag;
    ASSERT_FALSE(io.run(custom.record("shop.orders", entry(1, "obj"), diag))) << diag.message;
    ASSERT_FALSE(io.run(custom.commit(
        "shop.orders", {.durable_keys = {}, .watermark = token(5), .retire_keys = {}}, diag)));
    auto keys = raw(request{"KEYS", "*"});
    std::set<std::string> names;
    for (auto& k : keys.elements)
        names.insert(k.text);
    EXPECT_EQ(names,
              (std::set<std::string>{"tenant7:scope:{shop.orders}:manifest",
                                     "tenant7:scope:{shop.orders}:recorded",
                                     "tenant7:scope:{shop.orders}:watermark", "tenant7:store"}));
    EXPECT_EQ(raw(request{"GET", "tenant7:scope:{shop.orders}:watermark"}).text, token(5).to_hex());
    auto stored = raw(request{"HGET", "tenant7:scope:{shop.orders}:manifest", "obj"});
    EXPECT_EQ(stored.text, "0:1:" + encode_entry(entry(1, "obj")));
    EXPECT_TRUE(load("shop.orders").entries.empty());  // the default prefix is another store
}

TEST_F(RedisStateStore, AgreesWithTheReferenceTransitionsOnARandomHistory) {
    std::mt19937 rng(6);
    scope_state expected;
    std::vector<std::string> known;
    for (int step = 0; step < 300; ++step) {
        const int op = static_cast<int>(rng() % 3);
        if (op < 2 || known.empty()) {
            std::string key = rng() % 4 == 0 && !known.empty() ? known[rng() % known.size()]
                                                               : "k" + std::to_string(step);
            auto e = entry(rng() % 20, key, rng() % 1000);
            e.durable = rng() % 5 == 0;
            apply_record(expected, e);
            record("h", e);
            known.push_back(key);
        } else {
            commit_request req;
            for (int i = 0; i < 3; ++i) {
                req.durable_keys.push_back(known[rng() % known.size()]);
                if (rng() % 2)
                    req.retire_keys.push_back(known[rng() % known.size()]);
            }
            if (rng() % 2)
                req.watermark = token(static_cast<std::uint32_t>(step));
            apply_commit(expected, req);
            commit("h", req);
        }
        if (step % 25 == 0 || step == 299) {
            auto got = load("h");
            ASSERT_EQ(got.watermark, expected.watermark) << "step " << step;
            ASSERT_EQ(got.entries, expected.entries) << "step " << step;
        }
    }
}

TEST_F(RedisStateStore, FencedWritesNeedTheCurrentLeaseAndFence) {
    record("s", entry(1, "a"));  // unfenced works while nobody holds a lease
    const auto k = keys_for("penne", "s");
    raw(request{"SET", k.fence, "10"});  // an instance took the lease (fence 10)
    diagnostics diag;
    auto ec = io.run(store->record("s", entry(2, "b"), diag));
    EXPECT_EQ(ec, errc::lease_lost);
    EXPECT_TRUE(is_fatal(ec));
    EXPECT_NE(diag.message.find("stored fence 10"), std::string::npos) << diag.message;
    ec = io.run(store->commit(
        "s", {.durable_keys = {"a"}, .watermark = token(1), .retire_keys = {}}, diag));
    EXPECT_EQ(ec, errc::lease_lost);

    const fence_token holder{.owner = "host-a", .fence = 10};
    ec = io.run(store->record("s", entry(3, "c"), holder, diag));  // lease key missing
    EXPECT_EQ(ec, errc::lease_lost);
    raw(request{"SET", k.lease, "host-a:10", "PX", "60000"});
    ec = io.run(store->record("s", entry(3, "c"), holder, diag));
    EXPECT_FALSE(ec) << diag.message;
    ec = io.run(store->commit(
        "s", {.durable_keys = {"c"}, .watermark = token(2), .retire_keys = {}}, holder, diag));
    EXPECT_FALSE(ec) << diag.message;
    // "9" < "10" although "9" > "10" as text; and another owner with the right fence fails.
    ec =
        io.run(store->record("s", entry(4, "d"), fence_token{.owner = "host-a", .fence = 9}, diag));
    EXPECT_EQ(ec, errc::lease_lost);
    ec = io.run(
        store->record("s", entry(4, "d"), fence_token{.owner = "host-b", .fence = 10}, diag));
    EXPECT_EQ(ec, errc::lease_lost);
    EXPECT_NE(diag.message.find("lease host-a:10"), std::string::npos) << diag.message;

    auto s = load("s");  // refused writes left nothing behind
    ASSERT_EQ(keys_of(s), (std::vector<std::string>{"a", "c"}));
    EXPECT_FALSE(s.entries[0].durable);
    EXPECT_TRUE(s.entries[1].durable);
    EXPECT_EQ(s.watermark, token(2));
}

TEST_F(RedisStateStore, WorksAfterTheScriptCacheIsFlushed) {
    record("s", entry(1, "a"));
    raw(request{"SCRIPT", "FLUSH"});
    record("s", entry(2, "b"));
    raw(request{"SCRIPT", "FLUSH"});
    commit("s", {.durable_keys = {"b"}, .watermark = token(1), .retire_keys = {"a"}});
    raw(request{"SCRIPT", "FLUSH"});
    auto s = load("s");
    ASSERT_EQ(keys_of(s), (std::vector<std::string>{"b"}));
    EXPECT_TRUE(s.entries[0].durable);
}

TEST_F(RedisStateStore, UnreadableDataIsStateCorruptNeverEmpty) {
    const auto k = keys_for("penne", "s");
    raw(request{"HSET", k.manifest, "obj", "garbage"});
    scope_state out;
    out.watermark = token(1);
    diagnostics diag;
    auto ec = io.run(store->load("s", out, diag));
    EXPECT_EQ(ec, errc::state_corrupt);
    EXPECT_TRUE(is_fatal(ec));
    EXPECT_EQ(out.watermark, token(1));
    EXPECT_NE(diag.message.find(k.manifest), std::string::npos) << diag.message;
    EXPECT_NE(diag.message.find("'obj'"), std::string::npos) << diag.message;

    raw(request{"DEL", k.manifest});
    raw(request{"SET", k.watermark, "zz"});
    ec = io.run(store->load("s", out, diag));
    EXPECT_EQ(ec, errc::state_corrupt);
    EXPECT_NE(diag.message.find("watermark"), std::string::npos) << diag.message;

    // A key of the wrong type: the write fails with a fatal error and changes nothing.
    raw(request{"DEL", k.watermark});
    raw(request{"SET", k.manifest, "a string"});
    ec = io.run(store->record("s", entry(1, "a"), diag));
    EXPECT_TRUE(is_fatal(ec)) << ec.message();
    EXPECT_NE(diag.message.find("manifest record for scope 's'"), std::string::npos)
        << diag.message;
}

TEST_F(RedisStateStore, CancelledBeforeStartHasNoEffect) {
    asio::cancellation_signal signal;
    std::optional<error_code> result;
    diagnostics diag;
    auto outer = [&]() -> asio::awaitable<error_code> {
        co_await asio::this_coro::throw_if_cancelled(false);
        co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
        error_code ec = co_await store->record("s", entry(1, "a"), diag);
        co_return ec;
    };
    asio::co_spawn(io.ctx, outer(),
                   asio::bind_cancellation_slot(
                       signal.slot(), [&](std::exception_ptr, error_code ec) { result = ec; }));
    asio::post(io.ctx, [&] { signal.emit(asio::cancellation_type::terminal); });
    io.ctx.restart();
    io.ctx.run();
    ASSERT_TRUE(result);
    EXPECT_EQ(*result, errc::cancelled);
    EXPECT_TRUE(load("s").entries.empty());
}

TEST_F(RedisStateStore, UnreachableRedisIsRetryableAndWritesLandOnceItIsBack) {
    // With persistence, as in production: a restart is an outage, not a loss (a restart
    // without its data is refused: store_identity_test.cpp).
    store.reset();
    conn.reset();
    peer = std::make_unique<redis_peer>(redis_peer_options{.persistence = true});
    ASSERT_TRUE(peer->ready()) << peer->failure();
    conn = std::make_unique<connection>(io.ctx.get_executor(), options_for(peer->url()));
    store = std::make_unique<state_store>(*conn);
    record("s", entry(1, "a"));
    peer->kill();
    diagnostics diag;
    scope_state out;
    auto ec = io.run(store->load("s", out, diag));
    EXPECT_TRUE(is_retryable(ec)) << ec.message() << ": " << diag.message;
    EXPECT_NE(diag.message.find("state load for scope 's'"), std::string::npos) << diag.message;
    ec = io.run(store->record("s", entry(2, "b"), diag));
    EXPECT_TRUE(is_retryable(ec)) << ec.message();
    ec = io.run(store->commit(
        "s", {.durable_keys = {"b"}, .watermark = token(1), .retire_keys = {}}, diag));
    EXPECT_TRUE(is_retryable(ec)) << ec.message();

    // The engine's loop: retry retryable errors until the write is acknowledged (on a
    // connection that does not retry within a request, so the loop sees the failures).
    auto opts = options_for(peer->url());
    opts.retry.max_attempts = 1;
    connection once(io.ctx.get_executor(), opts);
    state_store direct(once);
    std::thread restarter([&] {
        std::this_thread::sleep_for(300ms);
        peer->restart();
    });
    int attempts = 0;
    do {
        ++attempts;
        ec = io.run(direct.record("s", entry(2, "b"), diag));
        if (ec) {
            ASSERT_TRUE(is_retryable(ec)) << ec.message();
            std::this_thread::sleep_for(50ms);
        }
    } while (ec && attempts < 100);
    restarter.join();
    ASSERT_FALSE(ec) << diag.message;
    EXPECT_GT(attempts, 1);
    commit("s", {.durable_keys = {"b"}, .watermark = token(1), .retire_keys = {}});
    auto s = load("s");
    ASSERT_EQ(keys_of(s), (std::vector<std::string>{"a", "b"}));  // "a" survived the restart
    EXPECT_FALSE(s.entries[0].durable);
    EXPECT_TRUE(s.entries[1].durable);
    EXPECT_EQ(s.watermark, token(1));
}

TEST_F(RedisStateStore, ConcurrentScopesOnAThreadPoolShareOneConnection) {
    constexpr int scopes = 16, batches = 12;
    asio::thread_pool pool(4);
    connection shared(pool.get_executor(), options_for(peer->url()));
    state_store st(shared);
    std::vector<std::future<error_code>> done;
    for (int s = 0; s < scopes; ++s) {
        done.push_back(asio::co_spawn(
            asio::make_strand(pool),
            [&st, s]() -> asio::awaitable<error_code> {
                std::string scope = "db.c" + std::to_string(s);
                diagnostics diag;
                for (int b = 1; b <= batches; ++b) {
                    auto e = entry(static_cast<std::uint64_t>(b), "k" + std::to_string(b));
                    error_code ec = co_await st.record(scope, e, diag);
                    if (ec)
                        co_return ec;
                    scope_state other;
                    ec = co_await st.load("db.c" + std::to_string((s + 1) % scopes), other, diag);
                    if (ec)
                        co_return ec;
                    commit_request req{.durable_keys = {e.key},
                                       .watermark = token(static_cast<std::uint32_t>(b)),
                                       .retire_keys = {"k" + std::to_string(b - 1)}};
                    ec = co_await st.commit(scope, req, diag);
                    if (ec)
                        co_return ec;
                }
                co_return error_code{};
            },
            asio::use_future));
    }
    for (auto& f : done)
        EXPECT_FALSE(f.get());
    pool.join();
    for (int s = 0; s < scopes; ++s) {
        auto st2 = load("db.c" + std::to_string(s));
        EXPECT_EQ(st2.watermark, token(batches));
        ASSERT_EQ(keys_of(st2), (std::vector<std::string>{"k" + std::to_string(batches)}));
        EXPECT_TRUE(st2.entries[0].durable);
    }
}

}  // namespace
}  // namespace penne::redis::test
