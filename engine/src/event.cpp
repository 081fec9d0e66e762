#include <penne/event.hpp>
#include <penne/source.hpp>

#include <openssl/sha.h>

namespace penne {
namespace {

constexpr char hex_digits[] = "0123456789abcdef";

int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

std::string to_hex(const std::uint8_t* p, std::size_t n) {
    std::string out(n * 2, '\0');
    for (std::size_t i = 0; i < n; ++i) {
        out[2 * i] = hex_digits[p[i] >> 4];
        out[2 * i + 1] = hex_digits[p[i] & 0xf];
    }
    return out;
}

}  // namespace

std::string resume_token::to_hex() const {
    return penne::to_hex(bson_.data(), bson_.size());
}

bool resume_token::assign_hex(std::string_view hex) {
    bson_.clear();
    if (hex.size() % 2 != 0 || hex.size() < 10)
        return false;
    std::vector<std::uint8_t> bytes(hex.size() / 2);
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        bytes[i] = static_cast<std::uint8_t>(hi << 4 | lo);
    }
    // A BSON document starts with its own little-endian length and ends with a NUL.
    std::uint32_t len = bytes[0] | bytes[1] << 8 | bytes[2] << 16 | std::uint32_t(bytes[3]) << 24;
    if (len != bytes.size() || bytes.back() != 0)
        return false;
    bson_ = std::move(bytes);
    return true;
}

std::string resume_token::short_hash() const {
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(bson_.data(), bson_.size(), digest);
    return penne::to_hex(digest, 8);
}

std::string watch_scope::id() const {
    switch (kind) {
        case level::collection:
            return db + "." + coll;
        case level::database:
            return db;
        case level::deployment:
            return "*";
    }
    return {};
}

}  // namespace penne
