// penne::redis::lease_store against a real redis-server: the documented keys and values,
// SET NX semantics between owners, fencing counter on every acquisition, compare-and-
// pexpire refresh and compare-and-delete release, millisecond TTLs, takeover detection,
// the live-instance count, and the fenced state-store writes refusing a stale owner.
#include <penne/redis/lease.hpp>
#include <penne/redis/state_store.hpp>

#include "redis_test.hpp"

#include <thread>

namespace penne::redis::test {
namespace {

using namespace std::chrono_literals;

class RedisLease : public ::testing::Test {
protected:
    runner io;
    std::unique_ptr<redis_peer> peer;
    std::unique_ptr<connection> conn;
    std::unique_ptr<state_store> store;
    std::unique_ptr<lease_store> a;
    std::unique_ptr<lease_store> b;
    const std::string scope = "shop.orders";

    void SetUp() override {
        peer = std::make_unique<redis_peer>();
        ASSERT_TRUE(peer->ready()) << peer->failure();
        conn = std::make_unique<connection>(io.ctx.get_executor(), options_for(peer->url()));
        store = std::make_unique<state_store>(*conn, state_store_options{"t"});
        a = std::make_unique<lease_store>(*conn, *store, lease_options{"t", "node-a"});
        b = std::make_unique<lease_store>(*conn, *store, lease_options{"t", "node-b"});
    }

    error_code acquire(lease_store& l, lease_grant& g, std::chrono::milliseconds ttl = 1000ms) {
        diagnostics d;
        return io.run(l.acquire(scope, ttl, g, d));
    }
    std::string get(const std::string& key) {
        auto v = must_call(io, *conn, request({"GET", key}));
        return v.is_nil() ? "<nil>" : v.text;
    }
    std::int64_t pttl(const std::string& key) {
        return must_call(io, *conn, request({"PTTL", key})).integer;
    }
};

TEST_F(RedisLease, AcquireWritesTheDocumentedKeysWithAMillisecondTtl) {
    lease_grant g;
    ASSERT_FALSE(acquire(*a, g, 700ms));
    EXPECT_EQ(g.fence, 1u);
    EXPECT_FALSE(g.takeover);
    EXPECT_EQ(get("t:lease:{shop.orders}"), "node-a:1");
    EXPECT_EQ(get("t:fence:{shop.orders}"), "1");
    const auto ms = pttl("t:lease:{shop.orders}");
    EXPECT_GT(ms, 500);
    EXPECT_LE(ms, 700);
}

TEST_F(RedisLease, AnotherOwnerCannotAcquireAHeldLeaseAndTheFenceDoesNotMove) {
    lease_grant g;
    ASSERT_FALSE(acquire(*a, g));
    lease_grant g2;
    EXPECT_EQ(acquire(*b, g2), errc::lease_lost);
    EXPECT_EQ(get("t:fence:{shop.orders}"), "1") << "a refused attempt must not fence the holder";
    EXPECT_EQ(get("t:lease:{shop.orders}"), "node-a:1");
}

TEST_F(RedisLease, ExpiryInMillisecondsLetsAnotherOwnerTakeOverWithAHigherFence) {
    lease_grant g;
    ASSERT_FALSE(acquire(*a, g, 150ms));
    std::this_thread::sleep_for(250ms);
    lease_grant g2;
    ASSERT_FALSE(acquire(*b, g2));
    EXPECT_EQ(g2.fence, 2u);
    EXPECT_TRUE(g2.takeover) << "a's lease expired without a release";
    EXPECT_EQ(get("t:lease:{shop.orders}"), "node-b:2");
    // a's refresh and release are now refused / ignored; b's lease stays.
    diagnostics d;
    EXPECT_EQ(io.run(a->refresh(scope, g.fence, 1000ms, d)), errc::lease_lost);
    EXPECT_FALSE(io.run(a->release(scope, g.fence, d)));
    EXPECT_EQ(get("t:lease:{shop.orders}"), "node-b:2");
}

TEST_F(RedisLease, RefreshExtendsOnlyTheHoldersLease) {
    lease_grant g;
    ASSERT_FALSE(acquire(*a, g, 300ms));
    std::this_thread::sleep_for(200ms);
    diagnostics d;
    ASSERT_FALSE(io.run(a->refresh(scope, g.fence, 300ms, d))) << d.message;
    EXPECT_GT(pttl("t:lease:{shop.orders}"), 200);
    std::this_thread::sleep_for(200ms);
    EXPECT_EQ(get("t:lease:{shop.orders}"), "node-a:1") << "the refresh kept it alive";
    EXPECT_EQ(io.run(a->refresh(scope, g.fence + 1, 300ms, d)), errc::lease_lost)
        << "a wrong fence is not the holder";
}

TEST_F(RedisLease, ReleaseIsAHandOverNotATakeover) {
    lease_grant g;
    ASSERT_FALSE(acquire(*a, g));
    diagnostics d;
    ASSERT_FALSE(io.run(a->release(scope, g.fence, d)));
    EXPECT_EQ(get("t:lease:{shop.orders}"), "<nil>");
    EXPECT_EQ(get("t:released:{shop.orders}"), "1");
    lease_grant g2;
    ASSERT_FALSE(acquire(*b, g2));
    EXPECT_EQ(g2.fence, 2u);
    EXPECT_FALSE(g2.takeover);
}

TEST_F(RedisLease, TheSameOwnerReacquiringGetsANewFence) {
    lease_grant g;
    ASSERT_FALSE(acquire(*a, g));
    lease_grant g2;
    ASSERT_FALSE(acquire(*a, g2));
    EXPECT_EQ(g2.fence, 2u);
    EXPECT_EQ(get("t:lease:{shop.orders}"), "node-a:2");
}

TEST_F(RedisLease, FencedWritesOfAStaleOwnerAreRefused) {
    lease_grant g;
    ASSERT_FALSE(acquire(*a, g, 150ms));
    manifest_entry e;
    e.seq = 1;
    e.key = "k1";
    e.db = "shop";
    e.coll = "orders";
    e.count = 1;
    diagnostics d;
    ASSERT_FALSE(io.run(a->record(scope, g.fence, e, d))) << d.message;
    std::this_thread::sleep_for(250ms);
    lease_grant g2;
    ASSERT_FALSE(acquire(*b, g2));
    // a is a zombie now: it still believes fence 1 is valid.
    e.key = "k2";
    EXPECT_EQ(io.run(a->record(scope, g.fence, e, d)), errc::lease_lost);
    std::vector<manifest_entry> group(2, e);
    group[1].key = "k3";
    EXPECT_EQ(io.run(a->record_many(scope, g.fence, group, d)), errc::lease_lost);
    commit_request req;
    req.durable_keys = {"k1"};
    EXPECT_EQ(io.run(a->commit(scope, g.fence, req, d)), errc::lease_lost);
    // The holder's writes go through.
    ASSERT_FALSE(io.run(b->commit(scope, g2.fence, req, d))) << d.message;
    scope_state st;
    ASSERT_FALSE(io.run(store->load(scope, st, d)));
    ASSERT_EQ(st.entries.size(), 1u);
    EXPECT_EQ(st.entries[0].key, "k1");
    EXPECT_TRUE(st.entries[0].durable);
}

TEST_F(RedisLease, HeartbeatsCountLiveInstancesAndForgetExpiredOnes) {
    diagnostics d;
    std::size_t live = 0;
    ASSERT_FALSE(io.run(a->heartbeat(200ms, live, d))) << d.message;
    EXPECT_EQ(live, 1u);
    ASSERT_FALSE(io.run(b->heartbeat(200ms, live, d)));
    EXPECT_EQ(live, 2u);
    std::this_thread::sleep_for(300ms);
    ASSERT_FALSE(io.run(a->heartbeat(200ms, live, d)));
    EXPECT_EQ(live, 1u) << "b stopped beating";
    ASSERT_FALSE(io.run(b->heartbeat(200ms, live, d)));
    EXPECT_EQ(live, 2u);
    ASSERT_FALSE(io.run(b->withdraw(d)));
    ASSERT_FALSE(io.run(a->heartbeat(200ms, live, d)));
    EXPECT_EQ(live, 1u);
}

TEST(RedisLeaseOwner, DefaultOwnerIdsAreValidAndUnique) {
    std::string why;
    const auto x = default_owner_id();
    EXPECT_TRUE(valid_owner_id(x, why)) << x << ": " << why;
    EXPECT_NE(x, default_owner_id());
    EXPECT_FALSE(valid_owner_id("a:b", why));
    EXPECT_FALSE(valid_owner_id("", why));
    EXPECT_FALSE(valid_owner_id("a b", why));
}

}  // namespace
}  // namespace penne::redis::test
