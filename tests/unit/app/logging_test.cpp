#include "logging.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace penne::app {
namespace {

using namespace std::chrono_literals;
using line = repeat_limiter::line;

// A hand-driven steady clock.
struct fake_clock {
    log_clock::time_point t{std::chrono::hours(1)};
    log_now_function fn() {
        return [this] { return t; };
    }
};

std::vector<line> admit(repeat_limiter& r, log_level l, std::string_view text) {
    std::vector<line> out;
    r.admit(l, text, out);
    return out;
}

std::size_t count_of(const std::string& haystack, const std::string& needle) {
    std::size_t n = 0;
    for (auto p = haystack.find(needle); p != std::string::npos; p = haystack.find(needle, p + 1))
        ++n;
    return n;
}

TEST(repeat_limiter, first_occurrence_written_repeats_counted_then_summarised) {
    fake_clock c;
    repeat_limiter r({10s, 256}, c.fn());
    auto out = admit(r, log_level::warn, "s3 unreachable");
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].text, "s3 unreachable");
    EXPECT_EQ(out[0].level, log_level::warn);
    EXPECT_EQ(out[0].repeated, 0u);
    for (int i = 0; i < 4; ++i) {
        c.t += 2s;  // 2, 4, 6, 8 s: all inside the window
        EXPECT_TRUE(admit(r, log_level::warn, "s3 unreachable").empty());
    }
    c.t += 2s;  // 10 s after the first: the window has closed
    out = admit(r, log_level::warn, "s3 unreachable");
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[0].text, "s3 unreachable");
    EXPECT_EQ(out[0].repeated, 4u);
    EXPECT_EQ(out[0].level, log_level::warn);
    // ... and the new occurrence opens a new window and is written itself.
    EXPECT_EQ(out[1].text, "s3 unreachable");
    EXPECT_EQ(out[1].repeated, 0u);
    EXPECT_EQ(r.tracked(), 1u);
}

TEST(repeat_limiter, level_is_part_of_the_key) {
    fake_clock c;
    repeat_limiter r({10s, 256}, c.fn());
    EXPECT_EQ(admit(r, log_level::warn, "lease lost").size(), 1u);
    EXPECT_EQ(admit(r, log_level::error, "lease lost").size(), 1u);
    EXPECT_TRUE(admit(r, log_level::error, "lease lost").empty());
    EXPECT_EQ(r.tracked(), 2u);
}

TEST(repeat_limiter, errors_and_different_messages_are_never_held_back) {
    fake_clock c;
    repeat_limiter r({10s, 256}, c.fn());
    EXPECT_EQ(admit(r, log_level::error, "upload failed: timeout").size(), 1u);
    EXPECT_TRUE(admit(r, log_level::error, "upload failed: timeout").empty());
    // A different error a moment later is written at once, whatever is pending.
    c.t += 1ms;
    auto out = admit(r, log_level::error, "upload failed: 503");
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].text, "upload failed: 503");
    EXPECT_EQ(out[0].repeated, 0u);
    // Interleaved distinct messages: each first occurrence written.
    for (int i = 0; i < 20; ++i) {
        auto o = admit(r, log_level::info, "scope " + std::to_string(i));
        ASSERT_EQ(o.size(), 1u);
        EXPECT_EQ(o[0].text, "scope " + std::to_string(i));
    }
}

TEST(repeat_limiter, expire_summarises_closed_windows_without_new_messages) {
    fake_clock c;
    repeat_limiter r({10s, 256}, c.fn());
    admit(r, log_level::warn, "a");
    c.t += 1s;
    admit(r, log_level::warn, "b");
    admit(r, log_level::warn, "a");
    admit(r, log_level::warn, "a");
    admit(r, log_level::warn, "b");
    admit(r, log_level::info, "c");  // no repeats: no summary later
    std::vector<line> out;
    c.t += 9s;  // a's window closes (10 s), b's and c's not yet (9 s)
    r.expire(out);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].text, "a");
    EXPECT_EQ(out[0].repeated, 2u);
    out.clear();
    c.t += 1s;
    r.expire(out);
    ASSERT_EQ(out.size(), 1u);  // c had no repeats
    EXPECT_EQ(out[0].text, "b");
    EXPECT_EQ(out[0].repeated, 1u);
    EXPECT_EQ(r.tracked(), 0u);
    // After its window, "a" is a first occurrence again.
    EXPECT_EQ(admit(r, log_level::warn, "a").size(), 1u);
}

TEST(repeat_limiter, summaries_come_out_oldest_first) {
    fake_clock c;
    repeat_limiter r({10s, 256}, c.fn());
    for (int i = 0; i < 30; ++i) {
        admit(r, log_level::warn, "m" + std::to_string(i));
        admit(r, log_level::warn, "m" + std::to_string(i));
    }
    c.t += 10s;
    std::vector<line> out;
    r.expire(out);
    ASSERT_EQ(out.size(), 30u);
    for (int i = 0; i < 30; ++i)
        EXPECT_EQ(out[static_cast<std::size_t>(i)].text, "m" + std::to_string(i));
}

TEST(repeat_limiter, full_table_evicts_the_oldest_with_its_summary) {
    fake_clock c;
    repeat_limiter r({10s, 3}, c.fn());
    admit(r, log_level::warn, "one");
    admit(r, log_level::warn, "one");
    admit(r, log_level::warn, "two");
    admit(r, log_level::warn, "three");
    EXPECT_EQ(r.tracked(), 3u);
    auto out = admit(r, log_level::warn, "four");
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[0].text, "one");
    EXPECT_EQ(out[0].repeated, 1u);
    EXPECT_EQ(out[1].text, "four");
    EXPECT_EQ(out[1].repeated, 0u);
    EXPECT_EQ(r.tracked(), 3u);
    // "two" had no repeats: evicted silently; "one" is new again.
    out = admit(r, log_level::warn, "one");
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].text, "one");
    EXPECT_EQ(out[0].repeated, 0u);
}

TEST(repeat_limiter, drain_summarises_open_windows) {
    fake_clock c;
    repeat_limiter r({10s, 256}, c.fn());
    admit(r, log_level::error, "x");
    admit(r, log_level::error, "x");
    admit(r, log_level::error, "x");
    std::vector<line> out;
    r.drain(out);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].level, log_level::error);
    EXPECT_EQ(out[0].repeated, 2u);
    EXPECT_EQ(r.tracked(), 0u);
}

TEST(repeat_limiter, zero_window_writes_everything) {
    fake_clock c;
    repeat_limiter r({0ms, 256}, c.fn());
    for (int i = 0; i < 5; ++i)
        EXPECT_EQ(admit(r, log_level::warn, "same").size(), 1u);
    EXPECT_EQ(r.tracked(), 0u);
}

TEST(repeat_limiter, summary_text) {
    EXPECT_EQ(repeat_limiter::summary_text("s3 down", 41, 10s),
              "s3 down (repeated 41 times in the last 10s)");
    EXPECT_EQ(repeat_limiter::summary_text("s3 down", 1, 10s),
              "s3 down (repeated 1 time in the last 10s)");
    EXPECT_EQ(repeat_limiter::summary_text("x", 2, 1500ms),
              "x (repeated 2 times in the last 1500ms)");
}

TEST(logger, repeats_are_summarised_and_secrets_stay_redacted) {
    fake_clock c;
    testing::internal::CaptureStderr();
    {
        logger log("info", "text", {10s, 256}, c.fn());
        for (int i = 0; i < 5; ++i)
            log.log(log_level::error, "connect to mongodb://app:hunter2@db1:27017/shop failed");
        log.log(log_level::info, "other");
        c.t += 10s;
        log.flush();
    }
    const std::string err = testing::internal::GetCapturedStderr();
    EXPECT_EQ(err.find("hunter2"), std::string::npos) << err;
    EXPECT_EQ(count_of(err, "connect to mongodb://app:****@db1:27017/shop failed"), 2u) << err;
    EXPECT_EQ(count_of(err, "failed (repeated 4 times in the last 10s)"), 1u) << err;
    EXPECT_EQ(count_of(err, "other"), 1u) << err;
    // The summary keeps the level of the message it summarises.
    auto summary = err.find("(repeated 4 times");
    ASSERT_NE(summary, std::string::npos);
    auto line_start = err.rfind('\n', summary);
    line_start = line_start == std::string::npos ? 0 : line_start + 1;
    EXPECT_NE(err.substr(line_start, summary - line_start).find("error"), std::string::npos) << err;
}

TEST(logger, json_summary_carries_the_count) {
    fake_clock c;
    testing::internal::CaptureStderr();
    {
        logger log("info", "json", {10s, 256}, c.fn());
        log.log(log_level::warn, "slow \"s3\"");
        log.log(log_level::warn, "slow \"s3\"");
        log.log(log_level::warn, "slow \"s3\"");
    }  // the last copy going writes the pending summary
    const std::string err = testing::internal::GetCapturedStderr();
    EXPECT_EQ(count_of(err, "\"msg\":\"slow \\\"s3\\\"\"}"), 1u) << err;
    EXPECT_EQ(count_of(err,
                       "\"msg\":\"slow \\\"s3\\\" (repeated 2 times in the last 10s)\","
                       "\"repeated\":2}"),
              1u)
        << err;
}

TEST(logger, filtered_levels_take_no_key_and_print_nothing) {
    fake_clock c;
    testing::internal::CaptureStderr();
    {
        logger log("warn", "text", {10s, 1}, c.fn());
        log.log(log_level::warn, "kept");
        log.log(log_level::warn, "kept");
        log.log(log_level::debug, "noise");  // would evict "kept" if it took the one key
        log.log(log_level::warn, "kept");
    }
    const std::string err = testing::internal::GetCapturedStderr();
    EXPECT_EQ(err.find("noise"), std::string::npos) << err;
    EXPECT_EQ(count_of(err, "kept"), 2u) << err;  // the message and one summary
    EXPECT_EQ(count_of(err, "kept (repeated 2 times in the last 10s)"), 1u) << err;
}

TEST(logger, concurrent_repeats_are_counted_exactly) {
    fake_clock c;  // never advances while the threads run
    constexpr int threads = 4, per_thread = 500;
    testing::internal::CaptureStderr();
    {
        logger log("info", "text", {10s, 256}, c.fn());
        auto fn = log.function();
        std::vector<std::thread> ts;
        for (int t = 0; t < threads; ++t)
            ts.emplace_back([&fn, t] {
                for (int i = 0; i < per_thread; ++i) {
                    fn(log_level::warn, "busy");
                    fn(log_level::info, "thread " + std::to_string(t));
                }
            });
        for (auto& t : ts)
            t.join();
    }
    const std::string err = testing::internal::GetCapturedStderr();
    EXPECT_EQ(count_of(err, "busy\n"), 1u) << err;
    EXPECT_EQ(count_of(err, "busy (repeated " + std::to_string(threads * per_thread - 1) +
                                " times in the last 10s)"),
              1u)
        << err;
    for (int t = 0; t < threads; ++t)
        EXPECT_EQ(count_of(err, "thread " + std::to_string(t) + " (repeated " +
                                    std::to_string(per_thread - 1) + " times"),
                  1u)
            << err;
}

}  // namespace
}  // namespace penne::app
