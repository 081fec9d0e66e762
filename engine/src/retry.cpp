#include <penne/retry.hpp>

#include <algorithm>

namespace penne {

std::chrono::milliseconds backoff::ceiling() const noexcept {
    using ms = std::chrono::milliseconds;
    const auto initial = std::max<std::int64_t>(policy_.initial_delay.count(), 1);
    const auto cap = std::max<std::int64_t>(policy_.max_delay.count(), initial);
    // Stop doubling once past the cap so the shift never overflows.
    std::int64_t d = initial;
    for (std::uint32_t i = 0; i < attempts_ && d < cap; ++i)
        d *= 2;
    return ms(std::min(d, cap));
}

std::chrono::milliseconds backoff::next_delay() {
    const auto c = ceiling().count();
    ++attempts_;
    if (!rng_)
        rng_.emplace(seed_ ? *seed_ : std::uint64_t{std::random_device{}()});
    std::uniform_int_distribution<std::int64_t> dist(0, c);
    return std::chrono::milliseconds(dist(*rng_));
}

}  // namespace penne
