#include <penne/redis/connection.hpp>
#include <penne/redis/error.hpp>

#include <gtest/gtest.h>

namespace penne::redis {
namespace {

endpoint parse_ok(std::string_view url) {
    endpoint e;
    diagnostics diag;
    auto ec = parse_url(url, e, diag);
    EXPECT_FALSE(ec) << url << ": " << diag.message;
    return e;
}

TEST(RedisUrl, Defaults) {
    auto e = parse_ok("redis://localhost");
    EXPECT_FALSE(e.tls);
    EXPECT_EQ(e.host, "localhost");
    EXPECT_EQ(e.port, 6379);
    EXPECT_EQ(e.db, 0);
    EXPECT_TRUE(e.user.empty());
    EXPECT_TRUE(e.password.empty());
    EXPECT_EQ(e.redacted(), "redis://localhost:6379/0");
}

TEST(RedisUrl, EveryPart) {
    auto e = parse_ok("rediss://penne:s%40cr%3At@cache.internal:6380/3");
    EXPECT_TRUE(e.tls);
    EXPECT_EQ(e.host, "cache.internal");
    EXPECT_EQ(e.port, 6380);
    EXPECT_EQ(e.user, "penne");
    EXPECT_EQ(e.password, "s@cr:t");  // percent-decoded
    EXPECT_EQ(e.db, 3);
    EXPECT_EQ(e.redacted(), "rediss://penne:***@cache.internal:6380/3");
}

TEST(RedisUrl, PasswordOnlyForms) {
    auto e = parse_ok("redis://:hunter2@127.0.0.1:7000");
    EXPECT_TRUE(e.user.empty());
    EXPECT_EQ(e.password, "hunter2");
    EXPECT_EQ(e.redacted(), "redis://:***@127.0.0.1:7000/0");
    // A lone userinfo field is the password (a user without a password cannot AUTH).
    e = parse_ok("redis://hunter2@127.0.0.1");
    EXPECT_TRUE(e.user.empty());
    EXPECT_EQ(e.password, "hunter2");
}

TEST(RedisUrl, Ipv6AndTrailingSlash) {
    auto e = parse_ok("redis://[::1]:6390/");
    EXPECT_EQ(e.host, "::1");
    EXPECT_EQ(e.port, 6390);
    EXPECT_EQ(e.db, 0);
    EXPECT_EQ(e.redacted(), "redis://[::1]:6390/0");
}

TEST(RedisUrl, BadUrlsAreRefusedWithoutEchoingThePassword) {
    const char* bad[] = {
        "http://host:6379",
        "redis://",
        "redis://:topsecret@host:0",
        "redis://:topsecret@host:99999",
        "redis://:topsecret@host/db1",
        "redis://:topsecret@host/-1",
        "redis://:topsecret@host/1?ssl=true",
        "not a url :topsecret@",
        "redis://:topsecret@host:12ab",
    };
    for (const char* url : bad) {
        endpoint e;
        diagnostics diag;
        auto ec = parse_url(url, e, diag);
        EXPECT_EQ(ec, redis_errc::invalid_url) << url;
        EXPECT_TRUE(is_fatal(ec));
        EXPECT_FALSE(diag.message.empty()) << url;
        EXPECT_EQ(diag.message.find("topsecret"), std::string::npos) << diag.message;
    }
}

}  // namespace
}  // namespace penne::redis
