#include <penne/retry.hpp>

#include <gtest/gtest.h>
#include <boost/asio/error.hpp>

#include <set>

namespace penne {
namespace {

using std::chrono::milliseconds;

TEST(retry, ceiling_doubles_up_to_the_cap) {
    backoff b({milliseconds(100), milliseconds(1000), 0}, 1);
    std::vector<std::int64_t> ceilings;
    for (int i = 0; i < 6; ++i) {
        ceilings.push_back(b.ceiling().count());
        b.next_delay();
    }
    EXPECT_EQ(ceilings, (std::vector<std::int64_t>{100, 200, 400, 800, 1000, 1000}));
}

TEST(retry, full_jitter_stays_within_the_ceiling_and_varies) {
    backoff b({milliseconds(100), milliseconds(100'000), 0}, 42);
    std::set<std::int64_t> seen;
    for (int i = 0; i < 200; ++i) {
        auto c = b.ceiling();
        auto d = b.next_delay();
        EXPECT_GE(d.count(), 0);
        EXPECT_LE(d, c);
        seen.insert(d.count());
    }
    EXPECT_GT(seen.size(), 50u);
}

TEST(retry, never_overflows_after_many_attempts) {
    backoff b({milliseconds(1), milliseconds(5000), 0}, 7);
    for (int i = 0; i < 10'000; ++i)
        b.next_delay();
    EXPECT_EQ(b.ceiling(), milliseconds(5000));
    b.reset();
    EXPECT_EQ(b.ceiling(), milliseconds(1));
}

TEST(retry, classification_is_by_category_not_message) {
    backoff b({milliseconds(1), milliseconds(2), 0}, 1);
    EXPECT_TRUE(b.should_retry(boost::asio::error::connection_reset));
    EXPECT_TRUE(b.should_retry(boost::asio::error::connection_refused));
    EXPECT_TRUE(b.should_retry(make_error_code(errc::timeout)));
    EXPECT_FALSE(b.should_retry(make_error_code(errc::invalid_config)));
    EXPECT_FALSE(b.should_retry(make_error_code(errc::permanent_rejection)));
    EXPECT_FALSE(b.should_retry(boost::asio::error::access_denied));
    EXPECT_TRUE(is_fatal(make_error_code(errc::history_lost)));
    EXPECT_FALSE(is_fatal(error_code{}));
}

TEST(retry, max_attempts_bounds_retries) {
    backoff b({milliseconds(1), milliseconds(2), 3}, 1);
    const auto ec = make_error_code(errc::timeout);
    int tries = 0;
    while (b.should_retry(ec)) {
        b.next_delay();
        ++tries;
    }
    EXPECT_EQ(tries, 3);
}

}  // namespace
}  // namespace penne
