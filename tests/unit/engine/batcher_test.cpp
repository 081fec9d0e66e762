#include <penne/batcher.hpp>

#include <gtest/gtest.h>

#include <algorithm>

#include "test_events.hpp"

namespace penne {
namespace {

// A pure test encoder: one line of hex token per event.
class hex_encoder final : public batch_encoder {
public:
    error_code append(const change_event& ev, diagnostics&) override {
        buf_ += resume_token(ev.token).to_hex();
        buf_ += '\n';
        return {};
    }
    std::size_t buffered_bytes() const noexcept override { return buf_.size(); }
    void finish(std::string& out) override { out = std::move(buf_); }

private:
    std::string buf_;
};

TEST(batcher, closed_batcher_holds_nothing) {
    batcher b;
    EXPECT_FALSE(b.is_open());
    EXPECT_EQ(b.buffered_bytes(), 0u);
    EXPECT_FALSE(b.should_seal({}));
}

TEST(batcher, seals_on_count) {
    batcher b;
    batch_limits lim{3, 1 << 20, std::chrono::seconds(10)};
    diagnostics d;
    auto e1 = test::make_event(1), e2 = test::make_event(2), e3 = test::make_event(3);
    b.open(std::make_unique<hex_encoder>(), "k", e1.view(), 7, 1);
    EXPECT_FALSE(b.append(e1.view(), 1, d));
    EXPECT_FALSE(b.should_seal(lim));
    EXPECT_FALSE(b.append(e2.view(), 2, d));
    EXPECT_FALSE(b.append(e3.view(), 3, d));
    EXPECT_EQ(b.should_seal(lim), seal_reason::count);
    auto s = b.seal(seal_reason::count);
    EXPECT_FALSE(b.is_open());
    EXPECT_EQ(s.count, 3u);
    EXPECT_EQ(s.key, "k");
    EXPECT_EQ(s.first, test::token(1));
    EXPECT_EQ(s.last, test::token(3));
    EXPECT_EQ(s.batch_id, 7u);
    EXPECT_EQ(s.first_seq, 1u);
    EXPECT_EQ(s.last_seq, 3u);
    EXPECT_EQ(std::count(s.body.begin(), s.body.end(), '\n'), 3);
}

TEST(batcher, seals_on_bytes) {
    batcher b;
    batch_limits lim{1000, 100, std::chrono::seconds(10)};
    diagnostics d;
    auto e = test::make_event(1);
    b.open(std::make_unique<hex_encoder>(), "k", e.view(), 1, 1);
    int n = 0;
    while (!b.should_seal(lim)) {
        ASSERT_FALSE(b.append(e.view(), ++n, d));
    }
    EXPECT_EQ(b.should_seal(lim), seal_reason::bytes);
    EXPECT_GE(b.buffered_bytes(), 100u);
}

TEST(batcher, rebuilt_batches_ignore_limits_and_report_replay) {
    batcher b;
    batch_limits lim{1, 1, std::chrono::seconds(10)};
    diagnostics d;
    auto e = test::make_event(1);
    b.open(std::make_unique<hex_encoder>(), "recorded", e.view(), 1, 1, /*manifest_seq=*/4);
    b.append(e.view(), 1, d);
    b.append(e.view(), 2, d);
    EXPECT_TRUE(b.is_forced());
    EXPECT_FALSE(b.should_seal(lim));
    auto s = b.seal(seal_reason::shutdown);
    EXPECT_EQ(s.reason, seal_reason::replay);
    EXPECT_EQ(s.manifest_seq, 4u);
}

TEST(batcher, drop_discards_the_batch) {
    batcher b;
    diagnostics d;
    auto e = test::make_event(1);
    b.open(std::make_unique<hex_encoder>(), "k", e.view(), 1, 1);
    b.append(e.view(), 1, d);
    b.drop();
    EXPECT_FALSE(b.is_open());
    EXPECT_EQ(b.buffered_bytes(), 0u);
}

}  // namespace
}  // namespace penne
