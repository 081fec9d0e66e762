// The lease state machine driven by hand: acquisition, refresh timing from send times,
// expiry, loss, release and re-acquisition with a new fence; and the fair share.

#include <penne/lease.hpp>

#include <gtest/gtest.h>

namespace penne::test {
namespace {

using namespace std::chrono_literals;
using tp = lease_state::clock::time_point;

const tp t0 = tp(1'000'000ms);

TEST(LeaseState, StartsUnheldAndNeverExpires) {
    lease_state s(900ms);
    EXPECT_FALSE(s.held());
    EXPECT_EQ(s.fence(), 0u);
    EXPECT_FALSE(s.expired(t0 + 1h));
}

TEST(LeaseState, AcquisitionSchedulesRefreshAtAThirdAndExpiryAtTheTtlFromTheSendTime) {
    lease_state s(900ms);
    s.acquired(t0, 7);
    EXPECT_TRUE(s.held());
    EXPECT_EQ(s.fence(), 7u);
    EXPECT_EQ(s.refresh_due(), t0 + 300ms);
    EXPECT_EQ(s.valid_until(), t0 + 900ms);
    EXPECT_FALSE(s.expired(t0 + 899ms));
    EXPECT_TRUE(s.expired(t0 + 900ms));
}

TEST(LeaseState, RefreshExtendsFromWhenItWasSentNotWhenTheReplyCame) {
    lease_state s(900ms);
    s.acquired(t0, 1);
    s.refreshed(t0 + 300ms);  // the reply may come much later; the send time counts
    EXPECT_EQ(s.valid_until(), t0 + 1200ms);
    EXPECT_EQ(s.refresh_due(), t0 + 600ms);
    EXPECT_FALSE(s.expired(t0 + 1199ms));
    EXPECT_TRUE(s.expired(t0 + 1200ms));
}

TEST(LeaseState, AnOlderRefreshReplyDoesNotMoveExpiryBack) {
    lease_state s(900ms);
    s.acquired(t0, 1);
    s.refreshed(t0 + 600ms);
    s.refreshed(t0 + 300ms);  // a reordered, older confirmation
    EXPECT_EQ(s.valid_until(), t0 + 1500ms);
}

TEST(LeaseState, FailedRefreshesLetTheLeaseExpire) {
    lease_state s(900ms);
    s.acquired(t0, 3);
    // Refreshes sent at +300 and +600 got no answer: nothing is recorded for them.
    EXPECT_FALSE(s.expired(t0 + 600ms));
    EXPECT_TRUE(s.expired(t0 + 901ms));
    s.lost();
    EXPECT_FALSE(s.held());
    EXPECT_FALSE(s.expired(t0 + 2s));  // not held: nothing left to expire
}

TEST(LeaseState, ALateRefreshReplyAfterLossIsIgnored) {
    lease_state s(900ms);
    s.acquired(t0, 3);
    s.lost();
    s.refreshed(t0 + 300ms);
    EXPECT_FALSE(s.held());
}

TEST(LeaseState, ReacquisitionCarriesTheNewFence) {
    lease_state s(1s);
    s.acquired(t0, 4);
    s.lost();
    s.acquired(t0 + 5s, 6);  // another instance held fence 5 meanwhile
    EXPECT_TRUE(s.held());
    EXPECT_EQ(s.fence(), 6u);
    EXPECT_EQ(s.valid_until(), t0 + 6s);
}

TEST(LeaseState, ReleaseEndsTheLease) {
    lease_state s(1s);
    s.acquired(t0, 2);
    s.released();
    EXPECT_FALSE(s.held());
    EXPECT_FALSE(s.expired(t0 + 10s));
}

TEST(LeaseState, SubSecondTtlsWorkInMilliseconds) {
    lease_state s(150ms);
    s.acquired(t0, 1);
    EXPECT_EQ(s.refresh_due(), t0 + 50ms);
    EXPECT_TRUE(s.expired(t0 + 150ms));
}

TEST(FairShare, IsTheCeilingOfScopesPerLiveInstance) {
    EXPECT_EQ(fair_share(20, 3), 7u);
    EXPECT_EQ(fair_share(21, 3), 7u);
    EXPECT_EQ(fair_share(6, 2), 3u);
    EXPECT_EQ(fair_share(2, 5), 1u);
    EXPECT_EQ(fair_share(0, 2), 0u);
    EXPECT_EQ(fair_share(5, 1), 5u);
}

TEST(FairShare, UnknownLiveCountAllowsEveryScope) {
    EXPECT_EQ(fair_share(20, 0), 20u);
}

}  // namespace
}  // namespace penne::test
