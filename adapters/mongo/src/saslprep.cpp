#include <penne/mongo/error.hpp>
#include <penne/mongo/saslprep.hpp>

#include <cstdint>

namespace penne::mongo {
namespace {

struct range {
    char32_t lo, hi;
};

template <std::size_t N>
bool in(const range (&table)[N], char32_t c) noexcept {
    for (const auto& r : table) {
        if (c < r.lo)
            return false;  // tables are sorted
        if (c <= r.hi)
            return true;
    }
    return false;
}

// RFC 3454 B.1: commonly mapped to nothing.
constexpr range mapped_to_nothing[] = {
    {0x00AD, 0x00AD}, {0x034F, 0x034F}, {0x1806, 0x1806}, {0x180B, 0x180D},
    {0x200B, 0x200D}, {0x2060, 0x2060}, {0xFE00, 0xFE0F}, {0xFEFF, 0xFEFF},
};

// RFC 3454 C.1.2: non-ASCII space characters.
constexpr range non_ascii_space[] = {
    {0x00A0, 0x00A0}, {0x1680, 0x1680}, {0x2000, 0x200B},
    {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000},
};

// RFC 3454 C.2.1 through C.9 (C.4's non-characters and C.5's surrogates are tested
// arithmetically below), merged and sorted.
constexpr range prohibited[] = {
    {0x0000, 0x001F},     {0x007F, 0x009F},   {0x0340, 0x0341},   {0x06DD, 0x06DD},
    {0x070F, 0x070F},     {0x180E, 0x180E},   {0x200C, 0x200F},   {0x2028, 0x202E},
    {0x2060, 0x2063},     {0x206A, 0x206F},   {0x2FF0, 0x2FFB},   {0xD800, 0xDFFF},
    {0xE000, 0xF8FF},     {0xFDD0, 0xFDEF},   {0xFEFF, 0xFEFF},   {0xFFF9, 0xFFFD},
    {0x1D173, 0x1D17A},   {0xE0001, 0xE0001}, {0xE0020, 0xE007F}, {0xF0000, 0xFFFFD},
    {0x100000, 0x10FFFD},
};

bool is_prohibited(char32_t c) noexcept {
    return (c & 0xFFFE) == 0xFFFE || in(prohibited, c);  // C.4: U+xFFFE and U+xFFFF
}

// Decodes one UTF-8 scalar value at `pos`; false on any malformed or overlong sequence.
bool next_code_point(std::string_view s, std::size_t& pos, char32_t& out) noexcept {
    const auto b0 = static_cast<unsigned char>(s[pos]);
    std::size_t len = 0;
    char32_t c = 0;
    char32_t min = 0;
    if (b0 < 0x80) {
        out = b0;
        ++pos;
        return true;
    } else if ((b0 & 0xE0) == 0xC0) {
        len = 2, c = b0 & 0x1F, min = 0x80;
    } else if ((b0 & 0xF0) == 0xE0) {
        len = 3, c = b0 & 0x0F, min = 0x800;
    } else if ((b0 & 0xF8) == 0xF0) {
        len = 4, c = b0 & 0x07, min = 0x10000;
    } else {
        return false;
    }
    if (s.size() - pos < len)
        return false;
    for (std::size_t i = 1; i < len; ++i) {
        const auto b = static_cast<unsigned char>(s[pos + i]);
        if ((b & 0xC0) != 0x80)
            return false;
        c = c << 6 | (b & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return false;
    out = c;
    pos += len;
    return true;
}

void append_utf8(std::string& out, char32_t c) {
    if (c < 0x80) {
        out += static_cast<char>(c);
    } else if (c < 0x800) {
        out += static_cast<char>(0xC0 | (c >> 6));
        out += static_cast<char>(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
        out += static_cast<char>(0xE0 | (c >> 12));
        out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (c & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (c >> 18));
        out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (c & 0x3F));
    }
}

}  // namespace

error_code saslprep(std::string_view in_text, std::string& out) {
    out.clear();
    out.reserve(in_text.size());
    std::size_t pos = 0;
    while (pos < in_text.size()) {
        char32_t c = 0;
        if (!next_code_point(in_text, pos, c)) {
            out.clear();
            return make_error_code(client_errc::invalid_password);
        }
        if (in(mapped_to_nothing, c))
            continue;
        if (in(non_ascii_space, c))
            c = U' ';
        if (is_prohibited(c)) {
            out.clear();
            return make_error_code(client_errc::invalid_password);
        }
        append_utf8(out, c);
    }
    return {};
}

}  // namespace penne::mongo
