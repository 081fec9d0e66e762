#include <penne/checkpoint.hpp>

#include <gtest/gtest.h>

#include <algorithm>

#include "test_events.hpp"

namespace penne {
namespace {

using test::token;

TEST(watermark, idle_stream_checkpoints_its_position) {
    watermark_tracker t;
    EXPECT_FALSE(t.watermark());
    commit_request req;
    EXPECT_FALSE(t.take_commit(req));
    t.set_position(token(10));
    ASSERT_TRUE(t.take_commit(req));
    EXPECT_EQ(req.watermark, token(10));
    EXPECT_FALSE(t.take_commit(req)) << "an unchanged watermark is not written again";
    t.set_position(token(11));
    ASSERT_TRUE(t.take_commit(req));
    EXPECT_EQ(req.watermark, token(11));
}

TEST(watermark, holds_before_the_oldest_pending_batch_when_uploads_finish_out_of_order) {
    watermark_tracker t;
    t.set_position(token(0));
    auto a = t.open(1, token(0));  // coll A: events 1, 2
    auto b = t.open(3, token(2));  // coll B: events 3, 4
    t.sealed(a, 2, "A1");
    t.sealed(b, 4, "B1");
    t.set_position(token(4));
    EXPECT_EQ(t.watermark(), token(0));

    t.durable(b);  // B finishes first
    commit_request req;
    ASSERT_TRUE(t.take_commit(req));
    EXPECT_EQ(req.durable_keys, std::vector<std::string>{"B1"});
    EXPECT_EQ(req.watermark, token(0)) << "A is still pending";
    EXPECT_TRUE(req.retire_keys.empty());

    t.durable(a);
    ASSERT_TRUE(t.take_commit(req));
    EXPECT_EQ(req.durable_keys, std::vector<std::string>{"A1"});
    EXPECT_EQ(req.watermark, token(4));
    std::sort(req.retire_keys.begin(), req.retire_keys.end());
    EXPECT_EQ(req.retire_keys, (std::vector<std::string>{"A1", "B1"}));
}

TEST(watermark, interleaved_batches_are_retired_only_once_fully_covered) {
    // Database scope: coll A holds events 1 and 5, coll B holds event 3 (sealed later).
    watermark_tracker t;
    auto a = t.open(1, token(0));
    auto b = t.open(3, token(2));
    t.sealed(a, 5, "A");
    t.durable(a);
    commit_request req;
    ASSERT_TRUE(t.take_commit(req));
    EXPECT_EQ(req.durable_keys, std::vector<std::string>{"A"});
    EXPECT_EQ(req.watermark, token(2)) << "just before B's first event";
    EXPECT_TRUE(req.retire_keys.empty()) << "A's event 5 lies past the watermark";

    t.sealed(b, 3, "B");
    t.durable(b);
    t.set_position(token(6));
    ASSERT_TRUE(t.take_commit(req));
    EXPECT_EQ(req.watermark, token(6));
    EXPECT_EQ(req.retire_keys.size(), 2u);
}

TEST(watermark, a_dropped_batch_keeps_holding_the_watermark) {
    watermark_tracker t;
    t.set_position(token(0));
    t.open(1, token(0));  // never sealed: dropped at shutdown
    t.set_position(token(9));
    EXPECT_EQ(t.watermark(), token(0));
}

TEST(watermark, replayed_durable_entries_are_retired_when_passed) {
    watermark_tracker t;
    t.set_position(token(1));
    t.replayed_durable("old", 3);
    auto b = t.open(4, token(3));
    commit_request req;
    t.take_commit(req);
    EXPECT_EQ(req.retire_keys, std::vector<std::string>{"old"});
    t.sealed(b, 4, "new");
    t.durable(b);
    t.take_commit(req);
    EXPECT_EQ(req.durable_keys, std::vector<std::string>{"new"});
}

manifest_entry entry(std::string key, std::uint64_t first, std::uint64_t last, bool durable) {
    manifest_entry e;
    e.key = std::move(key);
    e.first = token(first);
    e.last = token(last);
    e.durable = durable;
    e.count = last - first + 1;
    return e;
}

TEST(replay, skips_durable_batches_and_rebuilds_pending_ones_at_their_boundaries) {
    replay_cursor r;
    r.push(entry("E1", 2, 4, true));
    r.push(entry("E2", 5, 7, false));
    r.push(entry("E3", 8, 8, false));

    using step = replay_cursor::step;
    auto on = [&](std::uint64_t n) {
        auto ev = test::make_event(n);
        return r.on_event(ev.view());
    };
    auto d = on(2);
    EXPECT_EQ(d.what, step::skip);
    EXPECT_TRUE(d.first);
    EXPECT_EQ(on(3).what, step::skip);
    d = on(4);
    EXPECT_EQ(d.what, step::skip);
    EXPECT_TRUE(d.last);
    EXPECT_EQ(d.entry.key, "E1");
    d = on(5);
    EXPECT_EQ(d.what, step::force);
    EXPECT_TRUE(d.first);
    EXPECT_EQ(d.entry.key, "E2");
    d = on(6);
    EXPECT_EQ(d.what, step::force);
    EXPECT_FALSE(d.first || d.last);
    d = on(7);
    EXPECT_TRUE(d.last);
    d = on(8);
    EXPECT_EQ(d.what, step::force);
    EXPECT_TRUE(d.first && d.last) << "a one-event batch starts and ends at once";
    EXPECT_FALSE(r.active());
    EXPECT_EQ(on(9).what, step::pass);
}

TEST(replay, durable_batch_straddling_the_watermark_has_its_tail_skipped) {
    // In a database scope, another collection's pending batch held the watermark back
    // inside this durable batch: only its last events are read again.
    replay_cursor r;
    r.push(entry("E1", 1, 40, true));
    auto tail = test::make_event(37);
    auto d = r.on_event(tail.view());
    EXPECT_EQ(d.what, replay_cursor::step::skip);
    EXPECT_FALSE(d.first);
    for (std::uint64_t n = 38; n < 40; ++n) {
        auto ev = test::make_event(n);
        EXPECT_EQ(r.on_event(ev.view()).what, replay_cursor::step::skip);
    }
    auto last = test::make_event(40);
    d = r.on_event(last.view());
    EXPECT_TRUE(d.last);
    EXPECT_EQ(d.entry.key, "E1");
    EXPECT_FALSE(r.active());
}

TEST(replay, pending_batch_without_its_first_event_is_reported_not_rebuilt) {
    replay_cursor r;
    r.push(entry("E1", 5, 9, false));
    auto ev = test::make_event(6);
    auto d = r.on_event(ev.view());
    EXPECT_EQ(d.what, replay_cursor::step::pass);
    EXPECT_TRUE(d.mismatch);
    EXPECT_FALSE(r.active());
}

}  // namespace
}  // namespace penne
