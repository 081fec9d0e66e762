#pragma once
// Capped exponential backoff with full jitter (the AWS architecture blog's "full jitter"):
// the n-th retry waits a uniformly random time in [0, min(max_delay, initial * 2^n)].
// Whether to retry at all is decided by the error's category (penne::is_retryable), never
// by its message.
//
// backoff is a small state machine: next_delay() advances it, reset() after a success.
// Thread safety: none (one per retry loop). The random source is injected for tests.
// Cost: constructing one is a few stores. The random engine is seeded (from
// std::random_device unless a seed was given) only when a retry first waits: the engine
// builds a backoff for every state write and upload, and almost all of them never retry.

#include <penne/error.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <random>

namespace penne {

struct retry_policy {
    std::chrono::milliseconds initial_delay{100};
    std::chrono::milliseconds max_delay{10'000};
    // 0: retry retryable errors until cancelled (the default for uploads and state writes:
    // giving up would mean dropping data).
    std::uint32_t max_attempts = 0;
};

class backoff {
public:
    explicit backoff(retry_policy policy) : policy_(policy) {}
    backoff(retry_policy policy, std::uint64_t seed) : policy_(policy), seed_(seed) {}

    // Whether another attempt is allowed after `ec` (the attempt that just failed).
    bool should_retry(const error_code& ec) const noexcept {
        if (!is_retryable(ec))
            return false;
        return policy_.max_attempts == 0 || attempts_ < policy_.max_attempts;
    }
    // The delay before the next attempt; advances the state.
    std::chrono::milliseconds next_delay();
    // The upper bound of the next delay, without randomness (for tests and logs).
    std::chrono::milliseconds ceiling() const noexcept;
    std::uint32_t attempts() const noexcept { return attempts_; }
    void reset() noexcept { attempts_ = 0; }

private:
    retry_policy policy_;
    std::uint32_t attempts_ = 0;
    std::optional<std::uint64_t> seed_;  // empty: std::random_device on first use
    std::optional<std::mt19937_64> rng_;
};

}  // namespace penne
