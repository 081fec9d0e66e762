#include <penne/lease.hpp>

namespace penne {

void lease_state::acquired(clock::time_point sent, std::uint64_t fence) noexcept {
    held_ = true;
    fence_ = fence;
    confirmed_ = sent;
}

void lease_state::refreshed(clock::time_point sent) noexcept {
    if (held_ && sent > confirmed_)
        confirmed_ = sent;
}

void lease_state::lost() noexcept {
    held_ = false;
}

void lease_state::released() noexcept {
    held_ = false;
}

lease_state::clock::time_point lease_state::refresh_due() const noexcept {
    return confirmed_ + ttl_ / 3;
}

lease_state::clock::time_point lease_state::valid_until() const noexcept {
    return confirmed_ + ttl_;
}

bool lease_state::expired(clock::time_point now) const noexcept {
    return held_ && now >= valid_until();
}

std::size_t fair_share(std::size_t scopes, std::size_t live) noexcept {
    if (live == 0)
        return scopes;
    return (scopes + live - 1) / live;
}

}  // namespace penne
