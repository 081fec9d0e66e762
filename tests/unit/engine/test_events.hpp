#pragma once
// Builds change-event views for engine unit tests: a token is a small BSON document
// {_data: "<hex>"}; the raw event is just the token (the engine never parses raw itself).

#include <penne/event.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace penne::test {

// BSON for {_data: "<n as 16 hex digits>"}.
inline std::vector<std::uint8_t> token_bson(std::uint64_t n) {
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(n));
    std::vector<std::uint8_t> b;
    auto put32 = [&](std::uint32_t v) {
        for (int i = 0; i < 4; ++i)
            b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
    };
    const std::string key = "_data";
    const std::uint32_t slen = 17;
    const std::uint32_t total = 4 + 1 + static_cast<std::uint32_t>(key.size()) + 1 + 4 + slen + 1;
    put32(total);
    b.push_back(0x02);
    b.insert(b.end(), key.begin(), key.end());
    b.push_back(0);
    put32(slen);
    b.insert(b.end(), hex, hex + 16);
    b.push_back(0);
    b.push_back(0);
    return b;
}

struct owned_event {
    std::vector<std::uint8_t> token;
    std::string db, coll;
    change_event view() const {
        change_event ev;
        ev.raw = {token.data(), token.size()};
        ev.token = ev.raw;
        ev.operation = "insert";
        ev.db = db;
        ev.coll = coll;
        ev.time = {1'700'000'000, 1};
        return ev;
    }
};

inline owned_event make_event(std::uint64_t n, std::string coll = "c", std::string db = "d") {
    return {token_bson(n), std::move(db), std::move(coll)};
}

inline resume_token token(std::uint64_t n) {
    auto b = token_bson(n);
    return resume_token({b.data(), b.size()});
}

}  // namespace penne::test
