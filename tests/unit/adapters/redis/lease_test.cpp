// The Redis lease store's pure parts: owner ids and the keys beside the state store's.
#include <penne/redis/lease.hpp>

#include <boost/asio/io_context.hpp>

#include <gtest/gtest.h>
#include <unistd.h>

#include <set>
#include <string>

namespace penne::redis {
namespace {

TEST(RedisLeaseKeys, ShareTheScopesHashTagAndEscaping) {
    EXPECT_EQ(released_key("penne", "shop.orders"), "penne:released:{shop.orders}");
    EXPECT_EQ(released_key("p", "my db.a:b"), "p:released:{my%20db.a%3Ab}");
    EXPECT_EQ(keys_for("p", "my db.a:b").lease, "p:lease:{my%20db.a%3Ab}");
    EXPECT_EQ(instances_key("penne"), "penne:instances");
}

TEST(RedisLeaseOwner, DefaultIdsNameTheProcessAndDiffer) {
    std::set<std::string> ids;
    for (int i = 0; i < 20; ++i)
        ids.insert(default_owner_id());
    EXPECT_GE(ids.size(), 19u);  // 32 random bits each
    const auto id = *ids.begin();
    EXPECT_NE(id.find("-" + std::to_string(::getpid()) + "-"), std::string::npos) << id;
    std::string why;
    EXPECT_TRUE(valid_owner_id(id, why)) << why;
}

TEST(RedisLeaseOwner, RefusesIdsThatCannotBeParsedBackFromALeaseValue) {
    std::string why;
    EXPECT_TRUE(valid_owner_id("worker-1.eu", why));
    EXPECT_FALSE(valid_owner_id("", why));
    EXPECT_FALSE(valid_owner_id("a:b", why));
    EXPECT_NE(why.find("':'"), std::string::npos);
    EXPECT_FALSE(valid_owner_id("a b", why));
    EXPECT_FALSE(valid_owner_id("tab\there", why));
    EXPECT_FALSE(valid_owner_id(std::string(201, 'x'), why));
}

TEST(RedisLeaseOwner, AnExplicitOwnerIsKeptAndAnEmptyOneDefaults) {
    boost::asio::io_context ctx;  // never run: constructing performs no I/O
    connection conn(ctx.get_executor(), connection_options{});
    state_store store(conn);
    lease_store named(conn, store, lease_options{"penne", "node-7"});
    EXPECT_EQ(named.owner(), "node-7");
    lease_store unnamed(conn, store);
    std::string why;
    EXPECT_TRUE(valid_owner_id(unnamed.owner(), why)) << unnamed.owner() << ": " << why;
    EXPECT_NE(unnamed.owner(), lease_store(conn, store).owner());
}

}  // namespace
}  // namespace penne::redis
