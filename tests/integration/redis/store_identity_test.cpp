// The store identity against a real redis-server (state_store.hpp): created on first use,
// remembered, checked by every state and lease script; a redis-server restarted without
// persistence (really restarted, no dump) is detected as a loss, tombstoned for every other
// instance and every later start, and only an operator's acknowledge_loss() lets penne run
// again. A restart WITH persistence (appendonly, appendfsync always) is just an outage.
#include <penne/redis/lease.hpp>
#include <penne/redis/state_store.hpp>

#include "redis_test.hpp"

#include <thread>

namespace penne::redis::test {
namespace {

using namespace std::chrono_literals;
using kind = store_marker::kind;

resume_token token(std::uint32_t n) {
    std::vector<std::uint8_t> b = {
        12, 0, 0, 0, 0x10, 'i', 0, static_cast<std::uint8_t>(n), static_cast<std::uint8_t>(n >> 8),
        0,  0, 0};
    return resume_token(byte_view(b.data(), b.size()));
}

manifest_entry entry(std::uint64_t seq, std::string key) {
    manifest_entry e;
    e.seq = seq;
    e.key = std::move(key);
    e.db = "shop";
    e.coll = "orders";
    e.first = token(static_cast<std::uint32_t>(seq * 100));
    e.last = token(static_cast<std::uint32_t>(seq * 100 + 99));
    e.count = 3;
    return e;
}

const std::string id_a(32, 'a');
const std::string id_b(32, 'b');

TEST(StoreMarker, ParsesTheDocumentedFormsAndRefusesOthers) {
    store_marker m;
    ASSERT_TRUE(parse_store_marker("", m));
    EXPECT_EQ(m.state, kind::absent);
    ASSERT_TRUE(parse_store_marker(id_a + ":1765000000", m));
    EXPECT_EQ(m.state, kind::live);
    EXPECT_EQ(m.id, id_a);
    EXPECT_EQ(m.time, 1765000000);
    EXPECT_TRUE(m.acknowledges.empty());
    EXPECT_EQ(m.value(), id_a + ":1765000000");
    ASSERT_TRUE(parse_store_marker(id_b + ":7:ack:" + id_a, m));
    EXPECT_EQ(m.state, kind::live);
    EXPECT_EQ(m.acknowledges, id_a);
    EXPECT_EQ(m.value(), id_b + ":7:ack:" + id_a);
    ASSERT_TRUE(parse_store_marker("lost:" + id_a + ":9", m));
    EXPECT_EQ(m.state, kind::lost);
    EXPECT_EQ(m.id, id_a);
    EXPECT_EQ(m.time, 9);
    EXPECT_EQ(m.value(), "lost:" + id_a + ":9");
    for (const std::string& bad : std::vector<std::string>{
             "x", id_a, id_a + ":", id_a + ":x", "lost:" + id_a, "lost:abc:1",
             id_a.substr(1) + ":1", std::string(32, 'A') + ":1",
             id_a + ":1:ack:", id_a + ":1:x:" + id_b, id_a + ":1:ack:" + id_b + ":2"})
        EXPECT_FALSE(parse_store_marker(bad, m)) << bad;
}

TEST(StoreMarker, NewIdsAre128RandomBitsInHex) {
    const auto a = new_store_id();
    const auto b = new_store_id();
    store_marker m;
    EXPECT_TRUE(parse_store_marker(a + ":1", m)) << a;
    EXPECT_NE(a, b);
}

class RedisStoreIdentity : public ::testing::Test {
protected:
    runner io;
    std::unique_ptr<redis_peer> peer;
    std::unique_ptr<connection> conn;
    std::vector<std::pair<log_level, std::string>> logged;

    void start(redis_peer_options opts = {}) {
        peer = std::make_unique<redis_peer>(std::move(opts));
        ASSERT_TRUE(peer->ready()) << peer->failure();
        conn = std::make_unique<connection>(io.ctx.get_executor(), options_for(peer->url()));
    }
    void SetUp() override { start(); }

    std::unique_ptr<state_store> make_store() {
        state_store_options o;
        o.key_prefix = "t";
        o.log = [this](log_level l, std::string_view m) { logged.emplace_back(l, std::string(m)); };
        return std::make_unique<state_store>(*conn, o);
    }
    std::string get(const std::string& key) {
        auto v = must_call(io, *conn, request({"GET", key}));
        return v.is_nil() ? "<nil>" : v.text;
    }
    store_marker marker() {
        store_marker m;
        diagnostics d;
        EXPECT_FALSE(io.run(read_store_marker(*conn, "t", m, d))) << d.message;
        return m;
    }
    error_code record(state_store& s, std::uint64_t seq, diagnostics& d) {
        return io.run(s.record("shop.orders", entry(seq, "k" + std::to_string(seq)), d));
    }
    // The real thing: SIGKILL and a fresh redis-server on the same port, no dump to load.
    void restart_without_data() { ASSERT_TRUE(peer->restart()) << peer->failure(); }
};

TEST_F(RedisStoreIdentity, FirstOpenCreatesTheIdentityAndLaterOpensFindIt) {
    auto s = make_store();
    open_result r;
    diagnostics d;
    ASSERT_FALSE(io.run(s->open(r, d))) << d.message;
    EXPECT_TRUE(r.created);
    EXPECT_FALSE(r.had_state);
    EXPECT_EQ(r.identity.state, kind::live);
    EXPECT_EQ(get("t:store"), r.identity.value());
    ASSERT_EQ(logged.size(), 1u);
    EXPECT_EQ(logged[0].first, log_level::warn);
    EXPECT_NE(logged[0].second.find("state store is empty: every scope starts from now (first "
                                    "start)"),
              std::string::npos)
        << logged[0].second;

    auto other = make_store();  // another instance
    open_result r2;
    ASSERT_FALSE(io.run(other->open(r2, d))) << d.message;
    EXPECT_FALSE(r2.created);
    EXPECT_EQ(r2.identity.id, r.identity.id);
    ASSERT_EQ(logged.size(), 2u);
    EXPECT_EQ(logged[1].first, log_level::info);
    std::string id;
    ASSERT_FALSE(io.run(other->store_id(id, d)));
    EXPECT_EQ(id, r.identity.id);
}

TEST_F(RedisStoreIdentity, OperationsOpenTheStoreOnFirstUse) {
    auto s = make_store();
    diagnostics d;
    ASSERT_FALSE(record(*s, 1, d)) << d.message;
    store_marker m = marker();
    EXPECT_EQ(m.state, kind::live);
    std::string id;
    ASSERT_FALSE(io.run(s->store_id(id, d)));
    EXPECT_EQ(id, m.id);
}

TEST_F(RedisStoreIdentity, StateWrittenBeforeIdentitiesExistedIsAdopted) {
    must_call(io, *conn, request({"SET", "t:scope:{shop.orders}:watermark", token(4).to_hex()}));
    auto s = make_store();
    open_result r;
    diagnostics d;
    ASSERT_FALSE(io.run(s->open(r, d))) << d.message;
    EXPECT_TRUE(r.created);
    EXPECT_TRUE(r.had_state);
    scope_state st;
    ASSERT_FALSE(io.run(s->load("shop.orders", st, d))) << d.message;
    EXPECT_EQ(st.watermark, token(4));
}

TEST_F(RedisStoreIdentity, ARestartWithoutPersistenceIsALossThatEveryOneRefuses) {
    auto s = make_store();
    open_result r;
    diagnostics d;
    ASSERT_FALSE(io.run(s->open(r, d))) << d.message;
    ASSERT_FALSE(record(*s, 1, d)) << d.message;
    const std::string lost = r.identity.id;

    restart_without_data();
    // The next write: refused, fatal, with the operator's message, and the tombstone written.
    auto ec = record(*s, 2, d);
    EXPECT_EQ(ec, redis_errc::store_lost) << ec.message() << ": " << d.message;
    EXPECT_TRUE(is_fatal(ec));
    EXPECT_NE(d.message.find("Redis lost penne's state: store id " + lost + " is gone"),
              std::string::npos)
        << d.message;
    EXPECT_NE(d.message.find("t:store is missing"), std::string::npos) << d.message;
    EXPECT_NE(d.message.find("penne state ack-loss"), std::string::npos) << d.message;
    EXPECT_NE(d.message.find("AOF/RDB"), std::string::npos) << d.message;
    store_marker m = marker();
    EXPECT_EQ(m.state, kind::lost);
    EXPECT_EQ(m.id, lost);
    EXPECT_EQ(get("t:scope:{shop.orders}:manifest"), "<nil>") << "nothing written after the loss";

    // Every other operation of this store, and every new instance (a restart), refuses.
    scope_state st;
    EXPECT_EQ(io.run(s->load("shop.orders", st, d)), redis_errc::store_lost);
    EXPECT_EQ(io.run(s->commit("shop.orders",
                               {.durable_keys = {}, .watermark = token(9), .retire_keys = {}}, d)),
              redis_errc::store_lost);
    EXPECT_EQ(get("t:scope:{shop.orders}:watermark"), "<nil>");
    auto restarted = make_store();
    open_result r2;
    EXPECT_EQ(io.run(restarted->open(r2, d)), redis_errc::store_lost);
    EXPECT_NE(d.message.find("store id " + lost + " is gone (found lost at"), std::string::npos)
        << d.message;
    auto lazy = make_store();
    EXPECT_EQ(record(*lazy, 3, d), redis_errc::store_lost);
    EXPECT_EQ(marker().value(), m.value()) << "the tombstone stays as it was";
}

TEST_F(RedisStoreIdentity, LeaseAcquireAndRefreshDetectTheLossInsteadOfStartingAtFenceOne) {
    auto s = make_store();
    lease_store l(*conn, *s, lease_options{"t", "node-a"});
    lease_grant g;
    diagnostics d;
    ASSERT_FALSE(io.run(l.acquire("shop.orders", 5000ms, g, d))) << d.message;
    const std::string lost = marker().id;

    restart_without_data();
    auto ec = io.run(l.refresh("shop.orders", g.fence, 5000ms, d));
    EXPECT_EQ(ec, redis_errc::store_lost) << "not lease_lost: the lease was not taken";
    EXPECT_EQ(marker().state, kind::lost);
    lease_grant g2;
    EXPECT_EQ(io.run(l.acquire("shop.orders", 5000ms, g2, d)), redis_errc::store_lost);
    EXPECT_EQ(get("t:lease:{shop.orders}"), "<nil>");
    EXPECT_EQ(get("t:fence:{shop.orders}"), "<nil>") << "no fence restarted from 1";
    // Another instance starting now.
    auto s2 = make_store();
    lease_store l2(*conn, *s2, lease_options{"t", "node-b"});
    EXPECT_EQ(io.run(l2.acquire("shop.orders", 5000ms, g2, d)), redis_errc::store_lost);
    EXPECT_NE(d.message.find(lost), std::string::npos) << d.message;
    EXPECT_EQ(get("t:lease:{shop.orders}"), "<nil>");
}

TEST_F(RedisStoreIdentity, AnIdentityCreatedAfterTheLossIsTombstonedToo) {
    auto a = make_store();
    open_result ra;
    diagnostics d;
    ASSERT_FALSE(io.run(a->open(ra, d)));
    restart_without_data();
    // An instance that started after the loss sees an empty store: a first start.
    auto b = make_store();
    open_result rb;
    ASSERT_FALSE(io.run(b->open(rb, d))) << d.message;
    EXPECT_TRUE(rb.created);
    ASSERT_FALSE(record(*b, 1, d)) << d.message;
    // The instance that knew the old store notices, and stops the newcomer as well.
    EXPECT_EQ(record(*a, 2, d), redis_errc::store_lost);
    EXPECT_NE(d.message.find("named store " + rb.identity.id), std::string::npos) << d.message;
    store_marker m = marker();
    EXPECT_EQ(m.state, kind::lost);
    EXPECT_EQ(m.id, ra.identity.id);
    EXPECT_EQ(record(*b, 3, d), redis_errc::store_lost);
    EXPECT_EQ(marker().value(), m.value());
}

TEST_F(RedisStoreIdentity, AcknowledgingTheLossLetsPenneStartAgain) {
    auto a = make_store();
    open_result ra;
    diagnostics d;
    ASSERT_FALSE(io.run(a->open(ra, d)));
    // Nothing to acknowledge while the store is live: nothing changes.
    ack_result ack;
    ASSERT_FALSE(io.run(acknowledge_loss(*conn, "t", ack, d))) << d.message;
    EXPECT_EQ(ack.before.value(), ra.identity.value());
    EXPECT_EQ(ack.after.value(), ra.identity.value());

    restart_without_data();
    EXPECT_EQ(record(*a, 1, d), redis_errc::store_lost);
    const std::string tomb = marker().value();
    ASSERT_FALSE(io.run(acknowledge_loss(*conn, "t", ack, d))) << d.message;
    EXPECT_EQ(ack.before.value(), tomb);
    EXPECT_EQ(ack.after.state, kind::live);
    EXPECT_EQ(ack.after.acknowledges, ra.identity.id);
    EXPECT_NE(ack.after.id, ra.identity.id);
    EXPECT_EQ(marker().value(), ack.after.value());

    // A new start opens the acknowledged store and runs from now.
    auto fresh = make_store();
    open_result rf;
    ASSERT_FALSE(io.run(fresh->open(rf, d))) << d.message;
    EXPECT_FALSE(rf.created);
    EXPECT_EQ(rf.identity.id, ack.after.id);
    ASSERT_FALSE(record(*fresh, 2, d)) << d.message;
    // The old process still refuses, without tombstoning the acknowledged store.
    EXPECT_EQ(record(*a, 3, d), redis_errc::store_lost);
    EXPECT_NE(d.message.find("acknowledged"), std::string::npos) << d.message;
    EXPECT_EQ(marker().value(), ack.after.value());
    ASSERT_FALSE(record(*fresh, 4, d)) << d.message;
}

TEST_F(RedisStoreIdentity, ARestartWithPersistenceIsOnlyAnOutage) {
    start({.persistence = true});
    auto s = make_store();
    lease_store l(*conn, *s, lease_options{"t", "node-a"});
    lease_grant g;
    diagnostics d;
    ASSERT_FALSE(io.run(l.acquire("shop.orders", 60000ms, g, d))) << d.message;
    ASSERT_FALSE(io.run(l.record("shop.orders", g.fence, entry(1, "k1"), d))) << d.message;
    const std::string before = marker().value();
    ASSERT_TRUE(peer->restart()) << peer->failure();  // kill -9, then load the AOF
    // The connection reconnects; the identity, the lease and the manifest survived.
    ASSERT_FALSE(io.run(l.refresh("shop.orders", g.fence, 60000ms, d))) << d.message;
    ASSERT_FALSE(io.run(l.record("shop.orders", g.fence, entry(2, "k2"), d))) << d.message;
    EXPECT_EQ(marker().value(), before);
    scope_state st;
    ASSERT_FALSE(io.run(s->load("shop.orders", st, d))) << d.message;
    EXPECT_EQ(st.entries.size(), 2u);
}

}  // namespace
}  // namespace penne::redis::test
