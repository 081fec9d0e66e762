#include <penne/formats/ejson.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstring>

namespace penne::formats {
namespace {

static_assert(std::endian::native == std::endian::little,
              "the walker reads BSON's little-endian numbers with memcpy");

std::uint32_t le32(const std::uint8_t* p) noexcept {
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

std::uint64_t le64(const std::uint8_t* p) noexcept {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}

void store64(char* d, std::uint64_t v) noexcept {
    std::memcpy(d, &v, 8);
}

constexpr std::size_t npos = static_cast<std::size_t>(-1);

// ---- output -----------------------------------------------------------------------------
// The walker writes through a raw `char*` cursor that lives in local variables and is
// passed to and returned from every helper. A cursor kept in an object would have to be
// reloaded and stored back around every byte written, because a char store may alias any
// object; as a local it stays in a register.
//
// Room is reserved in a few large steps rather than per token: every element reserves
// `element_slack` bytes up front, which covers the separator, a key that takes the fast
// path and any fixed-size value; values of variable size (strings, binary, regex, …)
// reserve their own room. Word-at-a-time copies may store up to 7 bytes beyond what they
// keep; the reservations include that overshoot.

constexpr std::size_t max_fast_key = 64;    // longer keys take the slow path
constexpr std::size_t element_slack = 256;  // >= 2 + 1 + (max_fast_key + 8) + 4 + 160

// The caller's string, sized ahead of the cursor while writing and trimmed to the cursor
// at the end (or back to its old size on failure).
class out_buffer {
public:
    out_buffer(std::string& s, std::size_t hint) : s_(s), base_(s.size()) {
        s_.resize(base_ + hint);
        lim_ = s_.data() + s_.size();
    }

    char* start() noexcept { return s_.data() + base_; }

    // Returns the cursor, moved if the string had to grow, with at least n bytes after it.
    char* reserve(char* d, std::size_t n) {
        if (static_cast<std::size_t>(lim_ - d) >= n) [[likely]]
            return d;
        return grow(d, n);
    }

    void commit(char* d) { s_.resize(static_cast<std::size_t>(d - s_.data())); }
    void rollback() { s_.resize(base_); }

private:
    [[gnu::noinline]] char* grow(char* d, std::size_t n) {
        const std::size_t used = static_cast<std::size_t>(d - s_.data());
        // Grow by at least what this call has written so far: amortised doubling.
        s_.resize(used + std::max(n, used - base_ + 256));
        lim_ = s_.data() + s_.size();
        return s_.data() + used;
    }

    std::string& s_;
    std::size_t base_;
    char* lim_;
};

template <std::size_t N>
char* lit(char* d, const char (&s)[N]) noexcept {
    std::memcpy(d, s, N - 1);  // constant size: a couple of plain stores
    return d + N - 1;
}

constexpr char hex_lower[] = "0123456789abcdef";

// "00" … "ff": one two-byte load per byte of an ObjectId instead of two nibble lookups.
constexpr auto hex_pairs = [] {
    std::array<char, 512> t{};
    for (int i = 0; i < 256; ++i) {
        t[2 * i] = hex_lower[i >> 4];
        t[2 * i + 1] = hex_lower[i & 0xF];
    }
    return t;
}();

constexpr auto digit_pairs = [] {
    std::array<char, 200> t{};
    for (int i = 0; i < 100; ++i) {
        t[2 * i] = static_cast<char>('0' + i / 10);
        t[2 * i + 1] = static_cast<char>('0' + i % 10);
    }
    return t;
}();

// ---- UTF-8 and JSON escaping ------------------------------------------------------------
// libbson accepts strict UTF-8 (no surrogates, no overlong forms, nothing above U+10FFFF)
// plus, where NUL is allowed, the two-byte overlong NUL C0 80. Its JSON escaper then fails
// on C0 80, so for everything that is printed the rule is plain strict UTF-8.

// Length of the valid multi-byte sequence at s (lead byte >= 0x80), or 0.
inline std::size_t utf8_sequence(const std::uint8_t* s, std::size_t avail) noexcept {
    const std::uint8_t c = s[0];
    if (c < 0xC2)
        return 0;  // stray continuation byte or overlong two-byte lead
    if (c < 0xE0) {
        return (avail >= 2 && (s[1] & 0xC0) == 0x80) ? 2 : 0;
    }
    if (c < 0xF0) {
        if (avail < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
            return 0;
        if (c == 0xE0 && s[1] < 0xA0)
            return 0;  // overlong
        if (c == 0xED && s[1] >= 0xA0)
            return 0;  // UTF-16 surrogate
        return 3;
    }
    if (c < 0xF5) {
        if (avail < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0 && s[1] < 0x90)
            return 0;  // overlong
        if (c == 0xF4 && s[1] >= 0x90)
            return 0;  // above U+10FFFF
        return 4;
    }
    return 0;
}

constexpr std::uint64_t ones8 = 0x0101010101010101ull;
constexpr std::uint64_t highs8 = 0x8080808080808080ull;

// These byte masks may flag false positives, but only in bytes above (later than) a true
// hit, because they come from borrows out of a true hit. Their lowest set bit is exact.
inline std::uint64_t has_zero_byte(std::uint64_t v) noexcept {
    return (v - ones8) & ~v & highs8;
}

// Bytes that cannot be copied into a JSON string as they are: control characters
// (including NUL), '"' and '\\', and bytes >= 0x80 (UTF-8 to validate).
inline std::uint64_t special_bytes(std::uint64_t x) noexcept {
    const std::uint64_t below_space = (x - ones8 * 0x20) & ~x & highs8;
    return (x & highs8) | below_space | has_zero_byte(x ^ (ones8 * '"')) |
           has_zero_byte(x ^ (ones8 * '\\'));
}

// Offset of the first NUL in [s, s + n); the caller guarantees there is one. Keys are
// short, so an inline word-at-a-time scan beats a call to memchr.
inline std::size_t find_nul(const std::uint8_t* s, std::size_t n) noexcept {
    std::size_t i = 0;
    for (; n - i >= 8; i += 8) {
        if (const std::uint64_t z = has_zero_byte(le64(s + i))) {
            return i + static_cast<std::size_t>(std::countr_zero(z) / 8);
        }
    }
    while (s[i] != 0)
        ++i;
    return i;
}

// Validates and JSON-escapes [s + i, s + n) to d (the output position of s[i]), which must
// have 6 * (n - i) bytes free. Returns the new cursor, or nullptr on invalid UTF-8. Clean
// runs still move a word at a time; this is the path for text that needs escaping or holds
// non-ASCII characters, and for callers that cannot offer escape_string's precondition.
char* escape_from(char* d, const std::uint8_t* s, std::size_t i, std::size_t n) noexcept {
    while (i < n) {
        if (n - i >= 8) {
            // Copy the whole word, keep its clean prefix, then handle the first special byte.
            const std::uint64_t x = le64(s + i);
            store64(d, x);
            const std::uint64_t m = special_bytes(x);
            if (m == 0) {
                d += 8;
                i += 8;
                continue;
            }
            const auto clean = static_cast<std::size_t>(std::countr_zero(m) / 8);
            d += clean;
            i += clean;
        }
        const std::uint8_t c = s[i];
        if (c >= 0x80) {
            const std::size_t k = utf8_sequence(s + i, n - i);
            if (k == 0)
                return nullptr;
            std::memcpy(d, s + i, k);
            d += k;
            i += k;
            continue;
        }
        ++i;
        if (c >= 0x20 && c != '"' && c != '\\') {
            *d++ = static_cast<char>(c);
            continue;
        }
        *d++ = '\\';
        switch (c) {
            case '"':
                *d++ = '"';
                break;
            case '\\':
                *d++ = '\\';
                break;
            case '\b':
                *d++ = 'b';
                break;
            case '\f':
                *d++ = 'f';
                break;
            case '\n':
                *d++ = 'n';
                break;
            case '\r':
                *d++ = 'r';
                break;
            case '\t':
                *d++ = 't';
                break;
            default:
                d[0] = 'u';
                d[1] = '0';
                d[2] = '0';
                d[3] = hex_lower[c >> 4];
                d[4] = hex_lower[c & 0xF];
                d += 5;
                break;
        }
    }
    return d;
}

// escape_from for the common case of text that needs no escaping, which it copies a word
// at a time, the last partial word included. Precondition: the 8 bytes before s + n are
// readable (true for BSON string values, which follow at least 10 bytes of their document:
// its length, a type byte, a key's NUL and their own length). d needs 6 * n + 8 bytes free.
inline char* escape_string(char* d, const std::uint8_t* s, std::size_t n) noexcept {
    std::size_t i = 0;
    for (; n - i >= 8; i += 8) {
        const std::uint64_t x = le64(s + i);
        if (special_bytes(x) != 0)
            return escape_from(d + i, s, i, n);
        store64(d + i, x);
    }
    if (i == n)
        return d + n;
    // The last 1-7 bytes: load the word that ends with them, overwrite the bytes before
    // them (already copied, or not part of the string) with a harmless letter so that they
    // cannot be flagged, and shift the tail down into place.
    const unsigned drop = 8 * static_cast<unsigned>(8 - (n - i));
    const std::uint64_t before = (std::uint64_t(1) << drop) - 1;
    const std::uint64_t x = (le64(s + n - 8) & ~before) | (ones8 * 'a' & before);
    if (special_bytes(x) != 0)
        return escape_from(d + i, s, i, n);
    store64(d + i, x >> drop);
    return d + n;
}

// Validation without output: array keys (never printed) and the part of a DBPointer
// namespace after an embedded NUL (libbson checks it but prints only up to the NUL).
bool validate_utf8(const std::uint8_t* s, std::size_t n, bool allow_overlong_nul) noexcept {
    std::size_t i = 0;
    while (i < n) {
        if (n - i >= 8) {
            if ((le64(s + i) & highs8) == 0) {
                i += 8;
                continue;
            }
        }
        const std::uint8_t c = s[i];
        if (c < 0x80) {
            ++i;
            continue;
        }
        if (allow_overlong_nul && c == 0xC0 && n - i >= 2 && s[i + 1] == 0x80) {
            i += 2;
            continue;
        }
        std::size_t k = utf8_sequence(s + i, n - i);
        if (k == 0)
            return false;
        i += k;
    }
    return true;
}

// Keys: one pass that finds the NUL and checks the bytes before it, a word at a time,
// while 8-byte loads stay inside [key, key + avail). Returns the key's length, or npos
// when the key needs the slow path (a byte to escape or validate, a key longer than
// max_fast_key, or the document's end too close for word loads). The key is fine when
// the first flagged byte is its NUL: the lowest bits of the two masks then coincide.
// Comparing them, rather than loading the byte at the flagged offset, keeps a memory
// load off the chain from one element's offset to the next.

inline std::uint64_t lowest_bit(std::uint64_t v) noexcept {
    return v & (~v + 1);
}

// Object keys: also copies the key to d (up to max_fast_key + 8 bytes stored).
inline std::size_t copy_plain_key(char* d, const std::uint8_t* key, std::size_t avail) noexcept {
    for (std::size_t i = 0; i < max_fast_key && avail - i >= 8; i += 8) {
        const std::uint64_t x = le64(key + i);
        store64(d + i, x);
        // The NUL is itself a special byte.
        if (const std::uint64_t m = special_bytes(x)) {
            const std::uint64_t z = has_zero_byte(x);
            if (lowest_bit(m) != lowest_bit(z))
                return npos;
            return i + static_cast<std::size_t>(std::countr_zero(z) / 8);
        }
    }
    return npos;
}

// Array keys are not printed, only validated: any ASCII passes.
inline std::size_t ascii_key_length(const std::uint8_t* key, std::size_t avail) noexcept {
    for (std::size_t i = 0; i < max_fast_key && avail - i >= 8; i += 8) {
        const std::uint64_t x = le64(key + i);
        const std::uint64_t z = has_zero_byte(x);
        if (const std::uint64_t m = z | (x & highs8)) {
            if (lowest_bit(m) != lowest_bit(z))
                return npos;
            return i + static_cast<std::size_t>(std::countr_zero(z) / 8);
        }
    }
    return npos;
}

// ---- numbers ----------------------------------------------------------------------------

// Exactly five digits of v < 10^5, zero-padded.
inline void write_5_digits(char* d, std::uint32_t v) noexcept {
    const std::uint32_t r = v % 10000;
    d[0] = static_cast<char>('0' + v / 10000);
    std::memcpy(d + 1, &digit_pairs[2 * (r / 100)], 2);
    std::memcpy(d + 3, &digit_pairs[2 * (r % 100)], 2);
}

// Exactly ten digits of v < 10^10, zero-padded. Two independent halves rather than one
// chain of five divisions: the divisions are multiplications whose latency adds up.
inline void write_10_digits(char* d, std::uint64_t v) noexcept {
    write_5_digits(d, static_cast<std::uint32_t>(v / 100000));
    write_5_digits(d + 5, static_cast<std::uint32_t>(v % 100000));
}

// libbson prints doubles with printf("%.20g"), so we need the correctly rounded 20
// significant digits of the binary value. For |v| in [2^-26, 2^64) (about 1.5e-8 to
// 1.8e19, where nearly all real-world doubles live) they come straight from integer
// arithmetic: with v = m * 2^e and s = 19 - floor(log10 |v|), v * 10^s is
// m * 5^s * 2^(s + e), i.e. m * 5^s (below 2^116 for s <= 27) shifted by a known amount,
// and the bits shifted out decide the rounding (to nearest, ties to even, as printf does
// in the default rounding mode). Returns nullptr for values outside that range.
char* write_g20_exact(char* d, double v) noexcept {
    static constexpr auto pow5 = [] {
        std::array<std::uint64_t, 28> t{};
        t[0] = 1;
        for (std::size_t i = 1; i < t.size(); ++i)
            t[i] = t[i - 1] * 5;
        return t;
    }();
    using u128 = unsigned __int128;
    constexpr u128 e19 = u128(10'000'000'000'000'000'000ull);
    constexpr u128 e20 = e19 * 10;

    const auto bits = std::bit_cast<std::uint64_t>(v);
    const int biased = static_cast<int>(bits >> 52) & 0x7FF;
    if (biased == 0 || biased == 0x7FF)
        return nullptr;  // zero, subnormal, infinity or NaN
    const std::uint64_t m = (bits & ((std::uint64_t(1) << 52) - 1)) | (std::uint64_t(1) << 52);
    const int e = biased - 1075;
    // |v| is in [2^b, 2^(b+1)), so floor(log10 |v|) is x_est or x_est + 1.
    const int b = biased - 1023;
    const int x_est = (b * 78913) >> 18;  // floor(b * log10(2)) for |b| < 1650
    if (x_est < -8 || x_est > 18)
        return nullptr;

    // floor(|v| * 10^s) and how the discarded part compares with one half.
    struct scaled {
        u128 n;
        int rest;  // < 0 below a half, 0 exactly a half, > 0 above
    };
    auto scale = [&](int s) -> scaled {
        const u128 a = u128(m) * pow5[static_cast<std::size_t>(s)];
        const int t = s + e;
        if (t >= 0)
            return {a << t, -1};  // an integer: nothing discarded
        const int sh = -t;        // at most about 55 in this range
        const u128 n = a >> sh;
        const u128 rem = a - (n << sh);
        const u128 half = u128(1) << (sh - 1);
        return {n, rem < half ? -1 : (rem == half ? 0 : 1)};
    };

    int x = x_est + 1;
    scaled r = scale(19 - x);
    if (r.n < e19) {  // fewer than 20 digits: the exponent is x_est
        x = x_est;
        r = scale(19 - x);
    }
    u128 n = r.n;
    if (r.rest > 0 || (r.rest == 0 && (n & 1) != 0)) {
        if (++n == e20) {  // 99…9.5 rounds up to the next power of ten
            n = e19;
            ++x;
        }
    }

    // The 20 digits. n < 10^20 < 2^67: split it at 10^10 with 64-bit arithmetic only,
    // using 2^64 = 1844674407 * 10^10 + 3709551616.
    const auto hi = static_cast<std::uint64_t>(n >> 64);
    const auto lo = static_cast<std::uint64_t>(n);
    constexpr std::uint64_t e10 = 10'000'000'000ull;
    std::uint64_t top = hi * 1844674407ull + lo / e10;
    std::uint64_t bottom = hi * 3709551616ull + lo % e10;
    top += bottom / e10;
    bottom %= e10;
    // 20 digits, then padding: the copies below move a fixed 20 bytes (a few plain stores,
    // no memcpy call) and the output has room for the excess, which is not kept.
    char digits[40];
    write_10_digits(digits, top);
    write_10_digits(digits + 10, bottom);
    std::memset(digits + 20, '0', 20);
    int last = 19;  // "%g" drops trailing zeros of the fraction
    while (digits[last] == '0')
        --last;

    if (bits >> 63)
        *d++ = '-';
    if (x >= 0) {  // fixed notation (x < 20 here)
        std::memcpy(d, digits, 20);
        if (last > x) {
            d[x + 1] = '.';
            std::memcpy(d + x + 2, digits + x + 1, 20);
            d += last + 2;
        } else {
            d = lit(d + x + 1, ".0");  // libbson marks integral values as doubles
        }
    } else if (x >= -4) {  // "0.000ddd"
        std::memcpy(d, "0.000", 5);
        d += 1 - x;  // "0." and -x - 1 zeros
        std::memcpy(d, digits, 20);
        d += last + 1;
    } else {  // "d.ddde-0X": x is -5 … -8 here
        d[0] = digits[0];
        d[1] = '.';
        std::memcpy(d + 2, digits + 1, 20);
        d += last > 0 ? last + 2 : 1;
        d = lit(d, "e-0");
        *d++ = static_cast<char>('0' - x);
    }
    return d;
}

// printf("%.20g") followed by libbson's ".0" when the result looks like an integer.
// Uses at most 50 bytes at d.
char* write_double_digits(char* d, double v) noexcept {
    if (char* end = write_g20_exact(d, v))
        return end;
    if (v == 0)
        return std::signbit(v) ? lit(d, "-0.0") : lit(d, "0.0");
    // Elsewhere: std::to_chars with a precision is specified to match printf.
    char* end = std::to_chars(d, d + 48, v, std::chars_format::general, 20).ptr;
    bool integral = true;
    for (char* q = d; q < end; ++q) {
        if ((*q < '0' || *q > '9') && *q != '-') {
            integral = false;
            break;
        }
    }
    if (integral)
        end = lit(end, ".0");
    return end;
}

template <class Int>
char* write_int(char* d, Int v) noexcept {
    return std::to_chars(d, d + 24, v).ptr;
}

char* write_2digits(char* d, unsigned v) noexcept {
    std::memcpy(d, &digit_pairs[2 * v], 2);
    return d + 2;
}

// strftime("%Y-%m-%dT%H:%M:%S") of gmtime plus ".mmm" when the milliseconds are not zero,
// for ms >= 0 (libbson switches to $numberLong for negative dates only). The arithmetic is
// unsigned, and 32-bit below the era, because divisions by constants are cheaper that way.
char* write_iso_date(char* d, std::uint64_t ms) noexcept {
    const std::uint64_t secs = ms / 1000;
    const auto milli = static_cast<std::uint32_t>(ms % 1000);
    const std::uint64_t days = secs / 86400;
    const auto sod = static_cast<std::uint32_t>(secs % 86400);

    // Proleptic Gregorian calendar from a day count, in 400-year eras shifted to start
    // on March 1st so that the leap day falls at the end of the year.
    const std::uint64_t z = days + 719468;
    const std::uint64_t era = z / 146097;
    const auto doe = static_cast<std::uint32_t>(z - era * 146097);
    const std::uint32_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const std::uint32_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const std::uint32_t mp = (5 * doy + 2) / 153;
    const std::uint32_t day = doy - (153 * mp + 2) / 5 + 1;
    const std::uint32_t month = mp < 10 ? mp + 3 : mp - 9;
    const std::uint64_t year = yoe + era * 400 + (month <= 2 ? 1 : 0);

    if (year >= 1000 && year <= 9999) {  // every date from 1970 to 9999: no length to find
        d = write_2digits(d, static_cast<unsigned>(year / 100));
        d = write_2digits(d, static_cast<unsigned>(year % 100));
    } else {
        d = write_int(d, year);
    }
    *d++ = '-';
    d = write_2digits(d, month);
    *d++ = '-';
    d = write_2digits(d, day);
    *d++ = 'T';
    d = write_2digits(d, sod / 3600);
    *d++ = ':';
    d = write_2digits(d, sod / 60 % 60);
    *d++ = ':';
    d = write_2digits(d, sod % 60);
    if (milli != 0) {
        *d++ = '.';
        *d++ = static_cast<char>('0' + milli / 100);
        d = write_2digits(d, milli % 100);
    }
    *d++ = 'Z';
    return d;
}

char* write_base64(char* d, const std::uint8_t* s, std::size_t n) noexcept {
    static constexpr char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::size_t i = 0;
    for (; n - i >= 3; i += 3) {
        const std::uint32_t v = std::uint32_t(s[i]) << 16 | std::uint32_t(s[i + 1]) << 8 | s[i + 2];
        d[0] = alphabet[v >> 18];
        d[1] = alphabet[(v >> 12) & 63];
        d[2] = alphabet[(v >> 6) & 63];
        d[3] = alphabet[v & 63];
        d += 4;
    }
    if (n - i == 1) {
        const std::uint32_t v = std::uint32_t(s[i]) << 16;
        d[0] = alphabet[v >> 18];
        d[1] = alphabet[(v >> 12) & 63];
        d[2] = '=';
        d[3] = '=';
        d += 4;
    } else if (n - i == 2) {
        const std::uint32_t v = std::uint32_t(s[i]) << 16 | std::uint32_t(s[i + 1]) << 8;
        d[0] = alphabet[v >> 18];
        d[1] = alphabet[(v >> 12) & 63];
        d[2] = alphabet[(v >> 6) & 63];
        d[3] = '=';
        d += 4;
    }
    return d;
}

char* write_oid_hex(char* d, const std::uint8_t* oid) noexcept {
    for (int i = 0; i < 12; ++i)
        std::memcpy(d + 2 * i, &hex_pairs[2 * oid[i]], 2);
    return d + 24;
}

// ---- the walker -------------------------------------------------------------------------

enum class doc_kind { top, nested, array };

// Every writer takes the cursor and returns it advanced, or nullptr when the input is
// rejected (the caller then rolls the output back).
class walker {
public:
    walker(std::string& out, std::size_t hint, bool canonical)
        : w_(out, hint), canonical_(canonical) {}

    out_buffer& output() noexcept { return w_; }

    // [p, p + len) has already been checked to be a plausible document: len >= 5, its
    // length prefix equals len and its last byte is NUL.
    char* document(char* d, const std::uint8_t* p, std::size_t len, unsigned depth, unsigned frames,
                   doc_kind kind);

private:
    // A quoted string value; s must satisfy escape_string's precondition.
    char* string_value(char* d, const std::uint8_t* s, std::size_t n) {
        d = w_.reserve(d, 6 * n + 16);  // quotes, word overshoot and a closing " }"
        *d++ = '"';
        d = escape_string(d, s, n);
        if (d == nullptr)
            return nullptr;
        *d++ = '"';
        return d;
    }
    char* double_value(char* d, double v) noexcept;

    out_buffer w_;  // held by value: one load less on every reserve()
    bool canonical_;
};

char* walker::double_value(char* d, double v) noexcept {
    if (!canonical_ && std::isfinite(v))
        return write_double_digits(d, v);
    d = lit(d, "{ \"$numberDouble\" : \"");
    if (std::isnan(v)) {
        d = lit(d, "NaN");
    } else if (std::isinf(v)) {
        d = v > 0 ? lit(d, "Infinity") : lit(d, "-Infinity");
    } else {
        d = write_double_digits(d, v);
    }
    return lit(d, "\" }");
}

char* walker::document(char* d, const std::uint8_t* p, std::size_t len, unsigned depth,
                       unsigned frames, doc_kind kind) {
    if (frames > ejson_max_frames)
        return nullptr;
    const bool array = kind == doc_kind::array;
    d = w_.reserve(d, 8);
    // libbson's bson_empty(): a top-level document (or scope) whose first type byte is the
    // terminator prints as empty, whatever bytes follow it.
    if (kind == doc_kind::top && p[4] == 0)
        return lit(d, "{ }");
    d = array ? lit(d, "[ ") : lit(d, "{ ");

    const std::size_t last = len - 1;  // offset of the terminating NUL
    std::size_t off = 4;
    std::size_t sep = 0;  // length of the ", " kept before an element: none before the first
    while (off < last) {
        const std::uint8_t type = p[off];
        if (type == 0)
            return nullptr;  // terminator before the end: trailing bytes
        d = w_.reserve(d, element_slack);
        // Always written, kept only after the first element: no branch on "first".
        d = lit(d, ", ") - 2 + sep;
        sep = 2;

        const std::uint8_t* key = p + off + 1;
        // Bytes from the key to the terminator inclusive; the key's NUL is among them
        // because p[last] is NUL and off + 1 <= last.
        const std::size_t avail = last + 1 - (off + 1);
        std::size_t key_len;
        if (array) {
            key_len = ascii_key_length(key, avail);
            if (key_len == npos) {
                key_len = find_nul(key, avail);
                if (!validate_utf8(key, key_len, false))
                    return nullptr;
            }
        } else {
            *d = '"';
            key_len = copy_plain_key(d + 1, key, avail);
            if (key_len != npos) {
                d += 1 + key_len;
            } else {
                key_len = find_nul(key, avail);
                d = w_.reserve(d, 6 * key_len + element_slack);
                *d++ = '"';
                d = escape_from(d, key, 0, key_len);
                if (d == nullptr)
                    return nullptr;
            }
            d = lit(d, "\" : ");
        }
        const std::size_t o = off + 1 + key_len + 1;  // value offset
        if (o >= len)
            return nullptr;  // the key ran into the terminator

        // Each case sets `next`, the offset after the value, checked to stay before the
        // terminator, before reading anything past o.
        std::size_t next = 0;
        switch (type) {
            case 0x01: {  // double
                next = o + 8;
                if (next >= len)
                    return nullptr;
                d = double_value(d, std::bit_cast<double>(le64(p + o)));
                break;
            }
            case 0x02:    // string
            case 0x0D:    // JavaScript code
            case 0x0E: {  // symbol
                if (o + 4 >= len)
                    return nullptr;
                const std::uint32_t l = le32(p + o);
                if (l > len - (o + 4))
                    return nullptr;
                next = o + 4 + l;
                if (l == 0 || next >= len || p[o + 4 + l - 1] != 0)
                    return nullptr;
                if (type == 0x0D) {
                    d = lit(d, "{ \"$code\" : ");
                } else if (type == 0x0E) {
                    d = lit(d, "{ \"$symbol\" : ");
                }
                d = string_value(d, p + o + 4, l - 1);
                if (d == nullptr)
                    return nullptr;
                if (type != 0x02)
                    d = lit(d, " }");
                break;
            }
            case 0x03:    // document
            case 0x04: {  // array
                if (o >= len - 4)
                    return nullptr;
                const std::uint32_t l = le32(p + o);
                if (l > len || l > len - o)
                    return nullptr;
                next = o + l;
                if (next >= len)
                    return nullptr;
                // libbson silently prints nothing for these; we refuse them instead.
                if (l < 5 || p[o + l - 1] != 0)
                    return nullptr;
                if (depth >= ejson_max_depth) {
                    d = lit(d, "{ ... }");  // libbson uses braces for arrays here too
                    break;
                }
                d = document(d, p + o, l, depth + 1, frames + 1,
                             type == 0x03 ? doc_kind::nested : doc_kind::array);
                if (d == nullptr)
                    return nullptr;
                break;
            }
            case 0x05: {  // binary
                if (o >= len - 4)
                    return nullptr;
                const std::uint32_t l = le32(p + o);
                if (l >= len - o - 4)
                    return nullptr;
                const std::uint8_t subtype = p[o + 4];
                const std::uint8_t* data = p + o + 5;
                std::size_t data_len = l;
                if (subtype == 0x02) {
                    // The old binary subtype repeats the length inside the payload.
                    if (l < 4 || le32(p + o + 5) + 4u != l)
                        return nullptr;
                    data += 4;
                    data_len -= 4;
                }
                next = o + 5 + l;
                if (next >= len)
                    return nullptr;
                d = w_.reserve(d, 4 * (data_len / 3 + 1) + 64);
                d = lit(d, "{ \"$binary\" : { \"base64\" : \"");
                d = write_base64(d, data, data_len);
                d = lit(d, "\", \"subType\" : \"");
                std::memcpy(d, &hex_pairs[2 * subtype], 2);
                d = lit(d + 2, "\" } }");
                break;
            }
            case 0x06:  // undefined
                next = o;
                if (next >= len)
                    return nullptr;
                d = lit(d, "{ \"$undefined\" : true }");
                break;
            case 0x07:  // ObjectId
                next = o + 12;
                if (next >= len)
                    return nullptr;
                d = lit(d, "{ \"$oid\" : \"");
                d = write_oid_hex(d, p + o);
                d = lit(d, "\" }");
                break;
            case 0x08: {  // bool
                next = o + 1;
                if (next >= len || p[o] > 1)
                    return nullptr;
                d = p[o] ? lit(d, "true") : lit(d, "false");
                break;
            }
            case 0x09: {  // UTC datetime
                next = o + 8;
                if (next >= len)
                    return nullptr;
                const auto ms = static_cast<std::int64_t>(le64(p + o));
                if (canonical_ || ms < 0) {
                    d = lit(d, "{ \"$date\" : { \"$numberLong\" : \"");
                    d = write_int(d, ms);
                    d = lit(d, "\" } }");
                } else {
                    d = lit(d, "{ \"$date\" : \"");
                    d = write_iso_date(d, static_cast<std::uint64_t>(ms));
                    d = lit(d, "\" }");
                }
                break;
            }
            case 0x0A:  // null
                next = o;
                if (next >= len)
                    return nullptr;
                d = lit(d, "null");
                break;
            case 0x0B: {  // regular expression: two C strings
                const auto* pat_end =
                    static_cast<const std::uint8_t*>(std::memchr(p + o, 0, len - o));
                const std::size_t opt = static_cast<std::size_t>(pat_end - p) + 1;
                if (opt >= len)
                    return nullptr;
                const auto* opt_end =
                    static_cast<const std::uint8_t*>(std::memchr(p + opt, 0, len - opt));
                next = static_cast<std::size_t>(opt_end - p) + 1;
                if (next >= len)
                    return nullptr;
                const std::size_t pat_len = static_cast<std::size_t>(pat_end - (p + o));
                d = w_.reserve(d, 6 * pat_len + 96);
                d = lit(d, "{ \"$regularExpression\" : { \"pattern\" : \"");
                // The pattern may start only 6 bytes into the document: escape_string's
                // backward load is not allowed here.
                d = escape_from(d, p + o, 0, pat_len);
                if (d == nullptr)
                    return nullptr;
                d = lit(d, "\", \"options\" : \"");
                // libbson prints the known flags once each, in this order, and drops the rest.
                const std::size_t opt_len = static_cast<std::size_t>(opt_end - (p + opt));
                for (char flag : {'i', 'l', 'm', 's', 'u', 'x'}) {
                    if (std::memchr(p + opt, flag, opt_len))
                        *d++ = flag;
                }
                d = lit(d, "\" } }");
                break;
            }
            case 0x0C: {  // DBPointer: namespace string + ObjectId
                if (o >= len - 4)
                    return nullptr;
                const std::uint32_t l = le32(p + o);
                if (l == 0 || l > len - o - 4 || p[o + l + 3] != 0)
                    return nullptr;
                next = o + 4 + l + 12;
                if (next >= len)
                    return nullptr;
                const std::uint8_t* ns = p + o + 4;
                const std::size_t ns_len = l - 1;
                const auto* nul = static_cast<const std::uint8_t*>(std::memchr(ns, 0, ns_len));
                const std::size_t shown = nul ? static_cast<std::size_t>(nul - ns) : ns_len;
                if (nul && !validate_utf8(nul, ns_len - shown, true))
                    return nullptr;
                d = w_.reserve(d, 6 * shown + 96);
                d = lit(d, "{ \"$dbPointer\" : { \"$ref\" : \"");
                d = escape_string(d, ns, shown);  // ns is placed like a string value
                if (d == nullptr)
                    return nullptr;
                d = lit(d, "\", \"$id\" : { \"$oid\" : \"");
                d = write_oid_hex(d, p + o + 4 + l);
                d = lit(d, "\" } } }");
                break;
            }
            case 0x0F: {  // code with scope: total length, string, document
                if (len < 19 || o >= len - 14)
                    return nullptr;
                const std::uint32_t total = le32(p + o);
                if (total < 14 || total >= len - o)
                    return nullptr;
                next = o + total;
                if (next >= len)
                    return nullptr;
                const std::uint32_t sl = le32(p + o + 4);
                if (sl == 0 || sl >= len - o - 8)
                    return nullptr;
                const std::size_t scope_off = o + 8 + sl;
                if (scope_off + 4 >= next)
                    return nullptr;
                const std::uint32_t scope_len = le32(p + scope_off);
                if (scope_off + scope_len != next)
                    return nullptr;
                if (p[next - 1] != 0)
                    return nullptr;  // scope not terminated (libbson: garbage)
                d = lit(d, "{ \"$code\" : ");
                // libbson takes the code's length from its prefix and never checks its NUL.
                d = string_value(d, p + o + 8, sl - 1);
                if (d == nullptr)
                    return nullptr;
                d = w_.reserve(d, 24);
                d = lit(d, ", \"$scope\" : ");
                // The scope is rendered as a fresh top-level document (depth starts over).
                d = document(d, p + scope_off, scope_len, 0, frames + 1, doc_kind::top);
                if (d == nullptr)
                    return nullptr;
                d = w_.reserve(d, 4);
                d = lit(d, " }");
                break;
            }
            case 0x10: {  // int32
                next = o + 4;
                if (next >= len)
                    return nullptr;
                const auto v = static_cast<std::int32_t>(le32(p + o));
                if (canonical_) {
                    d = lit(d, "{ \"$numberInt\" : \"");
                    d = write_int(d, v);
                    d = lit(d, "\" }");
                } else {
                    d = write_int(d, v);
                }
                break;
            }
            case 0x11: {  // timestamp: increment first, then seconds
                next = o + 8;
                if (next >= len)
                    return nullptr;
                d = lit(d, "{ \"$timestamp\" : { \"t\" : ");
                d = write_int(d, le32(p + o + 4));
                d = lit(d, ", \"i\" : ");
                d = write_int(d, le32(p + o));
                d = lit(d, " } }");
                break;
            }
            case 0x12: {  // int64
                next = o + 8;
                if (next >= len)
                    return nullptr;
                const auto v = static_cast<std::int64_t>(le64(p + o));
                if (canonical_) {
                    d = lit(d, "{ \"$numberLong\" : \"");
                    d = write_int(d, v);
                    d = lit(d, "\" }");
                } else {
                    d = write_int(d, v);
                }
                break;
            }
            case 0x13: {  // decimal128
                next = o + 16;
                if (next >= len)
                    return nullptr;
                d = lit(d, "{ \"$numberDecimal\" : \"");
                d += decimal128_to_chars(p + o, d);
                d = lit(d, "\" }");
                break;
            }
            case 0x7F:  // max key
                next = o;
                if (next >= len)
                    return nullptr;
                d = lit(d, "{ \"$maxKey\" : 1 }");
                break;
            case 0xFF:  // min key
                next = o;
                if (next >= len)
                    return nullptr;
                d = lit(d, "{ \"$minKey\" : 1 }");
                break;
            default:
                return nullptr;
        }
        off = next;
    }

    d = w_.reserve(d, 4);
    return array ? lit(d, " ]") : lit(d, " }");
}

}  // namespace

std::size_t decimal128_to_chars(const std::uint8_t* bytes16, char* buf) noexcept {
    const std::uint64_t lo = le64(bytes16);
    const std::uint64_t hi = le64(bytes16 + 8);
    char* d = buf;
    if (hi >> 63)
        *d++ = '-';

    const unsigned combination = static_cast<unsigned>(hi >> 58) & 0x1F;
    unsigned biased_exponent;
    unsigned __int128 coefficient = 0;
    if ((combination >> 3) == 3) {
        if (combination == 30) {
            std::memcpy(d, "Infinity", 8);
            return static_cast<std::size_t>(d + 8 - buf);
        }
        if (combination == 31) {
            std::memcpy(buf, "NaN", 3);  // the sign is not printed
            return 3;
        }
        // The implied coefficient is at least 2^113, above 10^34 - 1: IEEE 754 reads it as 0.
        biased_exponent = static_cast<unsigned>(hi >> 47) & 0x3FFF;
    } else {
        biased_exponent = static_cast<unsigned>(hi >> 49) & 0x3FFF;
        coefficient =
            (static_cast<unsigned __int128>(hi & ((std::uint64_t(1) << 49) - 1)) << 64) | lo;
    }
    const int exponent = static_cast<int>(biased_exponent) - 6176;

    // Coefficient digits, most significant first. Values up to 2^113 - 1 (35 digits) are
    // printed as they are, as libbson does, even though they exceed 34 digits. Digits come
    // from 64-bit conversions: 128-bit division is a slow library call, so it is done at
    // most twice, to split off 19-digit groups.
    constexpr std::uint64_t e19 = 10'000'000'000'000'000'000ull;
    char digits[48];
    char* dd = digits;
    if ((coefficient >> 64) == 0) {
        dd = std::to_chars(dd, digits + sizeof digits, static_cast<std::uint64_t>(coefficient)).ptr;
    } else {
        const auto low = static_cast<std::uint64_t>(coefficient % e19);
        const unsigned __int128 high = coefficient / e19;  // below 2^113 / 10^19 < 2^64
        dd = std::to_chars(dd, digits + sizeof digits, static_cast<std::uint64_t>(high)).ptr;
        // `low` zero-padded to 19 digits.
        char group[20];
        char* g = std::to_chars(group, group + sizeof group, low).ptr;
        const std::size_t glen = static_cast<std::size_t>(g - group);
        std::memset(dd, '0', 19 - glen);
        std::memcpy(dd + 19 - glen, group, glen);
        dd += 19;
    }
    const int ndigits = static_cast<int>(dd - digits);

    const int scientific_exponent = ndigits - 1 + exponent;
    if (scientific_exponent < -6 || exponent > 0) {
        *d++ = digits[0];
        if (ndigits > 1) {
            *d++ = '.';
            // libbson stops at 36 characters, which only bites on 35-digit coefficients.
            for (int i = 1; i < ndigits && (d - buf) < 36; ++i)
                *d++ = digits[i];
        }
        *d++ = 'E';
        if (scientific_exponent >= 0)
            *d++ = '+';
        d = std::to_chars(d, d + 8, scientific_exponent).ptr;
    } else if (exponent == 0) {
        std::memcpy(d, digits, static_cast<std::size_t>(ndigits));
        d += ndigits;
    } else {
        const int radix = ndigits + exponent;  // digits before the decimal point
        int i = 0;
        if (radix > 0) {
            for (; i < radix; ++i)
                *d++ = digits[i];
        } else {
            *d++ = '0';
        }
        *d++ = '.';
        for (int z = radix; z < 0; ++z)
            *d++ = '0';
        for (; i < ndigits; ++i)
            *d++ = digits[i];
    }
    return static_cast<std::size_t>(d - buf);
}

bool write_ejson(const std::uint8_t* bson, std::size_t len, ejson_mode mode, std::string& out) {
    if (bson == nullptr || len < 5 || len > static_cast<std::size_t>(INT_MAX) ||
        le32(bson) != len || bson[len - 1] != 0)
        return false;
    walker walk(out, 2 * len + 64, mode == ejson_mode::canonical);
    char* end = walk.document(walk.output().start(), bson, len, 0, 0, doc_kind::top);
    if (end == nullptr) {
        walk.output().rollback();
        return false;
    }
    walk.output().commit(end);
    return true;
}

}  // namespace penne::formats
