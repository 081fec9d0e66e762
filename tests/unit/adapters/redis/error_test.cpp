#include <penne/redis/error.hpp>

#include <boost/asio/error.hpp>

#include <gtest/gtest.h>

namespace penne::redis {
namespace {

struct reply_case {
    const char* text;
    redis_errc code;
    bool retryable;
};

TEST(RedisErrors, ErrorRepliesAreClassifiedByPrefix) {
    const reply_case cases[] = {
        {"LOADING Redis is loading the dataset in memory", redis_errc::loading, true},
        {"BUSY Redis is busy running a script.", redis_errc::busy, true},
        {"TRYAGAIN Multiple keys request during rehashing of slot", redis_errc::try_again, true},
        {"READONLY You can't write against a read only replica.", redis_errc::read_only, true},
        {"MASTERDOWN Link with MASTER is down", redis_errc::master_down, true},
        {"CLUSTERDOWN The cluster is down", redis_errc::cluster_down, true},
        {"OOM command not allowed when used memory > 'maxmemory'.", redis_errc::out_of_memory,
         true},
        {"ERR max number of clients reached", redis_errc::max_clients, true},
        {"WRONGPASS invalid username-password pair or user is disabled.",
         redis_errc::wrong_password, false},
        {"ERR invalid password", redis_errc::wrong_password, false},
        {"NOAUTH Authentication required.", redis_errc::no_auth, false},
        {"NOPERM this user has no permissions to run the 'flushall' command",
         redis_errc::no_permission, false},
        {"NOSCRIPT No matching script. Please use EVAL.", redis_errc::no_script, false},
        {"WRONGTYPE Operation against a key holding the wrong kind of value",
         redis_errc::wrong_type, false},
        {"ERR syntax error", redis_errc::server_error, false},
        {"ERR unknown command 'FOO'", redis_errc::server_error, false},
        {"LOADINGX not a known prefix", redis_errc::server_error, false},
        {"", redis_errc::server_error, false},
        {"BUSY", redis_errc::busy, true},
    };
    for (const auto& c : cases) {
        const auto code = classify_error_reply(c.text);
        EXPECT_EQ(code, c.code) << c.text;
        const error_code ec = code;
        EXPECT_EQ(is_retryable(ec), c.retryable) << c.text;
        EXPECT_EQ(is_fatal(ec), !c.retryable) << c.text;
    }
}

TEST(RedisErrors, ClientConditions) {
    EXPECT_TRUE(is_retryable(redis_errc::connection_closed));
    EXPECT_TRUE(is_retryable(redis_errc::not_connected));
    EXPECT_TRUE(is_fatal(redis_errc::invalid_url));
    EXPECT_TRUE(is_fatal(redis_errc::unexpected_reply));
    EXPECT_TRUE(is_fatal(redis_errc::tls_handshake));
    EXPECT_TRUE(is_fatal(redis_errc::tls_setup));
    // Network errors and timeouts keep their own codes, which the engine retries.
    EXPECT_TRUE(is_retryable(boost::asio::error::connection_refused));
    EXPECT_TRUE(is_retryable(make_error_code(errc::timeout)));
}

TEST(RedisErrors, CategoryHasNameAndMessages) {
    const error_code ec = redis_errc::wrong_password;
    EXPECT_STREQ(ec.category().name(), "penne.redis");
    EXPECT_EQ(ec.message(), "Redis rejected the user name or password");
    for (int v = 1; v <= static_cast<int>(redis_errc::not_connected); ++v)
        EXPECT_NE(error_category().message(v), "unknown penne.redis error") << v;
    EXPECT_EQ(error_category().message(999), "unknown penne.redis error");
}

}  // namespace
}  // namespace penne::redis
