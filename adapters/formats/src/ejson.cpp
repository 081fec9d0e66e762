#include <penne/formats/ejson.hpp>

#include <algorithm>
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

// Writes straight into the caller's string through a raw cursor: one capacity check per
// element instead of one per token. The string's size runs ahead of the cursor while
// writing and is trimmed to the cursor at the end (or back to its old size on failure).
class out_buffer {
public:
    out_buffer(std::string& s, std::size_t hint) : s_(s), base_(s.size()) {
        resize_to(base_, base_ + hint);
    }

    void need(std::size_t n) {
        if (static_cast<std::size_t>(lim_ - cur_) < n) {
            std::size_t used = static_cast<std::size_t>(cur_ - s_.data());
            // Grow by at least what this call has written so far: amortised doubling.
            resize_to(used, used + std::max(n, used - base_ + 256));
        }
    }
    void put(char c) noexcept { *cur_++ = c; }
    void put(const void* p, std::size_t n) noexcept {
        std::memcpy(cur_, p, n);
        cur_ += n;
    }
    template <std::size_t N>
    void lit(const char (&s)[N]) noexcept {
        put(s, N - 1);
    }
    char*& cur() noexcept { return cur_; }

    void commit() { s_.resize(static_cast<std::size_t>(cur_ - s_.data())); }
    void rollback() { s_.resize(base_); }

private:
    void resize_to(std::size_t used, std::size_t size) {
        s_.resize(size);
        cur_ = s_.data() + used;
        lim_ = s_.data() + s_.size();
    }

    std::string& s_;
    std::size_t base_;
    char* cur_ = nullptr;
    char* lim_ = nullptr;
};

constexpr char hex_lower[] = "0123456789abcdef";

// ---- UTF-8 ------------------------------------------------------------------------------
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

inline std::uint64_t has_zero_byte(std::uint64_t v) noexcept {
    return (v - ones8) & ~v & highs8;
}

// True when none of the 8 bytes needs escaping or UTF-8 decoding.
inline bool plain8(std::uint64_t x) noexcept {
    const std::uint64_t below_space = (x - ones8 * 0x20) & ~x & highs8;
    return ((x & highs8) | below_space | has_zero_byte(x ^ (ones8 * '"')) |
            has_zero_byte(x ^ (ones8 * '\\'))) == 0;
}

// Offset of the first NUL in [s, s + n); the caller guarantees there is one. Keys are
// short, so an inline word-at-a-time scan beats a call to memchr.
inline std::size_t find_nul(const std::uint8_t* s, std::size_t n) noexcept {
    std::size_t i = 0;
    for (; n - i >= 8; i += 8) {
        std::uint64_t x;
        std::memcpy(&x, s + i, 8);
        if (const std::uint64_t z = has_zero_byte(x)) {
            return i + static_cast<std::size_t>(std::countr_zero(z) / 8);
        }
    }
    while (s[i] != 0)
        ++i;
    return i;
}

// Validates and JSON-escapes [s, s + n) at the cursor, which must have 6 * n bytes free.
bool escape_utf8(char*& cursor, const std::uint8_t* s, std::size_t n) noexcept {
    char* d = cursor;
    std::size_t i = 0;
    while (i < n) {
        if (n - i >= 8) {
            std::uint64_t x;
            std::memcpy(&x, s + i, 8);
            if (plain8(x)) {
                std::memcpy(d, &x, 8);
                d += 8;
                i += 8;
                continue;
            }
        }
        const std::uint8_t c = s[i];
        if (c >= 0x80) {
            std::size_t k = utf8_sequence(s + i, n - i);
            if (k == 0)
                return false;
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
    cursor = d;
    return true;
}

// Validation without output: array keys (never printed) and the part of a DBPointer
// namespace after an embedded NUL (libbson checks it but prints only up to the NUL).
bool validate_utf8(const std::uint8_t* s, std::size_t n, bool allow_overlong_nul) noexcept {
    std::size_t i = 0;
    while (i < n) {
        if (n - i >= 8) {
            std::uint64_t x;
            std::memcpy(&x, s + i, 8);
            if ((x & highs8) == 0) {
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

// ---- numbers ----------------------------------------------------------------------------

// printf("%.20g") followed by libbson's ".0" when the result looks like an integer.
char* write_double_digits(char* d, double v) noexcept {
    auto r = std::to_chars(d, d + 48, v, std::chars_format::general, 20);
    char* end = r.ptr;
    bool integral = true;
    for (char* q = d; q < end; ++q) {
        if ((*q < '0' || *q > '9') && *q != '-') {
            integral = false;
            break;
        }
    }
    if (integral) {
        end[0] = '.';
        end[1] = '0';
        end += 2;
    }
    return end;
}

template <class Int>
char* write_int(char* d, Int v) noexcept {
    return std::to_chars(d, d + 24, v).ptr;
}

char* write_2digits(char* d, unsigned v) noexcept {
    d[0] = static_cast<char>('0' + v / 10);
    d[1] = static_cast<char>('0' + v % 10);
    return d + 2;
}

// strftime("%Y-%m-%dT%H:%M:%S") of gmtime plus ".mmm" when the milliseconds are not zero,
// for ms >= 0 (libbson switches to $numberLong for negative dates only).
char* write_iso_date(char* d, std::int64_t ms) noexcept {
    const std::int64_t secs = ms / 1000;
    const unsigned milli = static_cast<unsigned>(ms % 1000);
    const std::int64_t days = secs / 86400;
    const unsigned sod = static_cast<unsigned>(secs % 86400);

    // Proleptic Gregorian calendar from a day count, in 400-year eras shifted to start
    // on March 1st so that the leap day falls at the end of the year.
    const std::int64_t z = days + 719468;
    const std::int64_t era = z / 146097;  // z >= 0 here
    const std::int64_t doe = z - era * 146097;
    const std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const std::int64_t mp = (5 * doy + 2) / 153;
    const unsigned day = static_cast<unsigned>(doy - (153 * mp + 2) / 5 + 1);
    const unsigned month = static_cast<unsigned>(mp < 10 ? mp + 3 : mp - 9);
    const std::int64_t year = yoe + era * 400 + (month <= 2 ? 1 : 0);

    d = write_int(d, year);
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
        d[0] = static_cast<char>('0' + milli / 100);
        d[1] = static_cast<char>('0' + milli / 10 % 10);
        d[2] = static_cast<char>('0' + milli % 10);
        d += 3;
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
    for (int i = 0; i < 12; ++i) {
        d[2 * i] = hex_lower[oid[i] >> 4];
        d[2 * i + 1] = hex_lower[oid[i] & 0xF];
    }
    return d + 24;
}

// ---- the walker -------------------------------------------------------------------------

enum class doc_kind { top, nested, array };

class walker {
public:
    walker(out_buffer& w, bool canonical) noexcept : w_(w), canonical_(canonical) {}

    // [p, p + len) has already been checked to be a plausible document: len >= 5, its
    // length prefix equals len and its last byte is NUL.
    bool document(const std::uint8_t* p, std::size_t len, unsigned depth, unsigned frames,
                  doc_kind kind);

private:
    bool string_value(const std::uint8_t* s, std::size_t n) {
        w_.need(6 * n + 8);  // room for a closing " }" too
        w_.put('"');
        if (!escape_utf8(w_.cur(), s, n))
            return false;
        w_.put('"');
        return true;
    }
    void finite_or_special_double(double v);

    out_buffer& w_;
    bool canonical_;
};

void walker::finite_or_special_double(double v) {
    char*& d = w_.cur();
    if (!canonical_ && std::isfinite(v)) {
        d = write_double_digits(d, v);
        return;
    }
    w_.lit("{ \"$numberDouble\" : \"");
    if (std::isnan(v)) {
        w_.lit("NaN");
    } else if (std::isinf(v)) {
        if (v > 0) {
            w_.lit("Infinity");
        } else {
            w_.lit("-Infinity");
        }
    } else {
        d = write_double_digits(d, v);
    }
    w_.lit("\" }");
}

bool walker::document(const std::uint8_t* p, std::size_t len, unsigned depth, unsigned frames,
                      doc_kind kind) {
    if (frames > ejson_max_frames)
        return false;
    const bool array = kind == doc_kind::array;
    w_.need(8);
    // libbson's bson_empty(): a top-level document (or scope) whose first type byte is the
    // terminator prints as empty, whatever bytes follow it.
    if (kind == doc_kind::top && p[4] == 0) {
        w_.lit("{ }");
        return true;
    }
    if (array) {
        w_.lit("[ ");
    } else {
        w_.lit("{ ");
    }

    const std::size_t last = len - 1;  // offset of the terminating NUL
    std::size_t off = 4;
    bool first = true;
    while (off < last) {
        const std::uint8_t type = p[off];
        if (type == 0)
            return false;  // terminator before the end: trailing bytes
        const std::uint8_t* key = p + off + 1;
        // Always found: p[last] is NUL and off + 1 <= last.
        const std::size_t key_len = find_nul(key, last + 1 - (off + 1));
        const std::size_t o = off + 1 + key_len + 1;  // value offset
        if (o >= len)
            return false;  // the key ran into the terminator

        w_.need(6 * key_len + 160);
        if (!first)
            w_.lit(", ");
        first = false;
        if (array) {
            if (!validate_utf8(key, key_len, false))
                return false;
        } else {
            w_.put('"');
            if (!escape_utf8(w_.cur(), key, key_len))
                return false;
            w_.lit("\" : ");
        }

        std::size_t next = 0;
        switch (type) {
            case 0x01: {  // double
                next = o + 8;
                if (next >= len)
                    return false;
                finite_or_special_double(std::bit_cast<double>(le64(p + o)));
                break;
            }
            case 0x02:    // string
            case 0x0D:    // JavaScript code
            case 0x0E: {  // symbol
                if (o + 4 >= len)
                    return false;
                const std::uint32_t l = le32(p + o);
                if (l > len - (o + 4))
                    return false;
                next = o + 4 + l;
                if (l == 0 || next >= len || p[o + 4 + l - 1] != 0)
                    return false;
                if (type == 0x0D) {
                    w_.lit("{ \"$code\" : ");
                } else if (type == 0x0E) {
                    w_.lit("{ \"$symbol\" : ");
                }
                if (!string_value(p + o + 4, l - 1))
                    return false;
                if (type != 0x02)
                    w_.lit(" }");
                break;
            }
            case 0x03:    // document
            case 0x04: {  // array
                if (o >= len - 4)
                    return false;
                const std::uint32_t l = le32(p + o);
                if (l > len || l > len - o)
                    return false;
                next = o + l;
                if (next >= len)
                    return false;
                // libbson silently prints nothing for these; we refuse them instead.
                if (l < 5 || p[o + l - 1] != 0)
                    return false;
                if (depth >= ejson_max_depth) {
                    w_.lit("{ ... }");  // libbson uses braces for arrays here too
                    break;
                }
                if (!document(p + o, l, depth + 1, frames + 1,
                              type == 0x03 ? doc_kind::nested : doc_kind::array))
                    return false;
                break;
            }
            case 0x05: {  // binary
                if (o >= len - 4)
                    return false;
                const std::uint32_t l = le32(p + o);
                if (l >= len - o - 4)
                    return false;
                const std::uint8_t subtype = p[o + 4];
                const std::uint8_t* data = p + o + 5;
                std::size_t data_len = l;
                if (subtype == 0x02) {
                    // The old binary subtype repeats the length inside the payload.
                    if (l < 4 || le32(p + o + 5) + 4u != l)
                        return false;
                    data += 4;
                    data_len -= 4;
                }
                next = o + 5 + l;
                if (next >= len)
                    return false;
                w_.need(4 * (data_len / 3 + 1) + 64);
                w_.lit("{ \"$binary\" : { \"base64\" : \"");
                w_.cur() = write_base64(w_.cur(), data, data_len);
                w_.lit("\", \"subType\" : \"");
                w_.put(hex_lower[subtype >> 4]);
                w_.put(hex_lower[subtype & 0xF]);
                w_.lit("\" } }");
                break;
            }
            case 0x06:  // undefined
                next = o;
                if (next >= len)
                    return false;
                w_.lit("{ \"$undefined\" : true }");
                break;
            case 0x07:  // ObjectId
                next = o + 12;
                if (next >= len)
                    return false;
                w_.lit("{ \"$oid\" : \"");
                w_.cur() = write_oid_hex(w_.cur(), p + o);
                w_.lit("\" }");
                break;
            case 0x08: {  // bool
                next = o + 1;
                if (next >= len || p[o] > 1)
                    return false;
                if (p[o]) {
                    w_.lit("true");
                } else {
                    w_.lit("false");
                }
                break;
            }
            case 0x09: {  // UTC datetime
                next = o + 8;
                if (next >= len)
                    return false;
                const auto ms = static_cast<std::int64_t>(le64(p + o));
                if (canonical_ || ms < 0) {
                    w_.lit("{ \"$date\" : { \"$numberLong\" : \"");
                    w_.cur() = write_int(w_.cur(), ms);
                    w_.lit("\" } }");
                } else {
                    w_.lit("{ \"$date\" : \"");
                    w_.cur() = write_iso_date(w_.cur(), ms);
                    w_.lit("\" }");
                }
                break;
            }
            case 0x0A:  // null
                next = o;
                if (next >= len)
                    return false;
                w_.lit("null");
                break;
            case 0x0B: {  // regular expression: two C strings
                const auto* pat_end =
                    static_cast<const std::uint8_t*>(std::memchr(p + o, 0, len - o));
                const std::size_t opt = static_cast<std::size_t>(pat_end - p) + 1;
                if (opt >= len)
                    return false;
                const auto* opt_end =
                    static_cast<const std::uint8_t*>(std::memchr(p + opt, 0, len - opt));
                next = static_cast<std::size_t>(opt_end - p) + 1;
                if (next >= len)
                    return false;
                const std::size_t pat_len = static_cast<std::size_t>(pat_end - (p + o));
                w_.need(6 * pat_len + 96);
                w_.lit("{ \"$regularExpression\" : { \"pattern\" : \"");
                if (!escape_utf8(w_.cur(), p + o, pat_len))
                    return false;
                w_.lit("\", \"options\" : \"");
                // libbson prints the known flags once each, in this order, and drops the rest.
                const std::size_t opt_len = static_cast<std::size_t>(opt_end - (p + opt));
                for (char flag : {'i', 'l', 'm', 's', 'u', 'x'}) {
                    if (std::memchr(p + opt, flag, opt_len))
                        w_.put(flag);
                }
                w_.lit("\" } }");
                break;
            }
            case 0x0C: {  // DBPointer: namespace string + ObjectId
                if (o >= len - 4)
                    return false;
                const std::uint32_t l = le32(p + o);
                if (l == 0 || l > len - o - 4 || p[o + l + 3] != 0)
                    return false;
                next = o + 4 + l + 12;
                if (next >= len)
                    return false;
                const std::uint8_t* ns = p + o + 4;
                const std::size_t ns_len = l - 1;
                const auto* nul = static_cast<const std::uint8_t*>(std::memchr(ns, 0, ns_len));
                const std::size_t shown = nul ? static_cast<std::size_t>(nul - ns) : ns_len;
                if (nul && !validate_utf8(nul, ns_len - shown, true))
                    return false;
                w_.need(6 * shown + 96);
                w_.lit("{ \"$dbPointer\" : { \"$ref\" : \"");
                if (!escape_utf8(w_.cur(), ns, shown))
                    return false;
                w_.lit("\", \"$id\" : { \"$oid\" : \"");
                w_.cur() = write_oid_hex(w_.cur(), p + o + 4 + l);
                w_.lit("\" } } }");
                break;
            }
            case 0x0F: {  // code with scope: total length, string, document
                if (len < 19 || o >= len - 14)
                    return false;
                const std::uint32_t total = le32(p + o);
                if (total < 14 || total >= len - o)
                    return false;
                next = o + total;
                if (next >= len)
                    return false;
                const std::uint32_t sl = le32(p + o + 4);
                if (sl == 0 || sl >= len - o - 8)
                    return false;
                const std::size_t scope_off = o + 8 + sl;
                if (scope_off + 4 >= next)
                    return false;
                const std::uint32_t scope_len = le32(p + scope_off);
                if (scope_off + scope_len != next)
                    return false;
                if (p[next - 1] != 0)
                    return false;  // scope not terminated (libbson: garbage)
                w_.lit("{ \"$code\" : ");
                // libbson takes the code's length from its prefix and never checks its NUL.
                if (!string_value(p + o + 8, sl - 1))
                    return false;
                w_.need(24);
                w_.lit(", \"$scope\" : ");
                // The scope is rendered as a fresh top-level document (depth starts over).
                if (!document(p + scope_off, scope_len, 0, frames + 1, doc_kind::top))
                    return false;
                w_.need(4);
                w_.lit(" }");
                break;
            }
            case 0x10: {  // int32
                next = o + 4;
                if (next >= len)
                    return false;
                const auto v = static_cast<std::int32_t>(le32(p + o));
                if (canonical_) {
                    w_.lit("{ \"$numberInt\" : \"");
                    w_.cur() = write_int(w_.cur(), v);
                    w_.lit("\" }");
                } else {
                    w_.cur() = write_int(w_.cur(), v);
                }
                break;
            }
            case 0x11: {  // timestamp: increment first, then seconds
                next = o + 8;
                if (next >= len)
                    return false;
                w_.lit("{ \"$timestamp\" : { \"t\" : ");
                w_.cur() = write_int(w_.cur(), le32(p + o + 4));
                w_.lit(", \"i\" : ");
                w_.cur() = write_int(w_.cur(), le32(p + o));
                w_.lit(" } }");
                break;
            }
            case 0x12: {  // int64
                next = o + 8;
                if (next >= len)
                    return false;
                const auto v = static_cast<std::int64_t>(le64(p + o));
                if (canonical_) {
                    w_.lit("{ \"$numberLong\" : \"");
                    w_.cur() = write_int(w_.cur(), v);
                    w_.lit("\" }");
                } else {
                    w_.cur() = write_int(w_.cur(), v);
                }
                break;
            }
            case 0x13: {  // decimal128
                next = o + 16;
                if (next >= len)
                    return false;
                w_.lit("{ \"$numberDecimal\" : \"");
                w_.cur() += decimal128_to_chars(p + o, w_.cur());
                w_.lit("\" }");
                break;
            }
            case 0x7F:  // max key
                next = o;
                if (next >= len)
                    return false;
                w_.lit("{ \"$maxKey\" : 1 }");
                break;
            case 0xFF:  // min key
                next = o;
                if (next >= len)
                    return false;
                w_.lit("{ \"$minKey\" : 1 }");
                break;
            default:
                return false;
        }
        off = next;
    }

    w_.need(4);
    if (array) {
        w_.lit(" ]");
    } else {
        w_.lit(" }");
    }
    return true;
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
    // printed as they are, as libbson does, even though they exceed 34 digits.
    char digits[40];
    int ndigits = 0;
    if (coefficient == 0) {
        digits[ndigits++] = '0';
    } else {
        char rev[40];
        int n = 0;
        while (coefficient != 0) {
            rev[n++] = static_cast<char>('0' + static_cast<unsigned>(coefficient % 10));
            coefficient /= 10;
        }
        while (n > 0)
            digits[ndigits++] = rev[--n];
    }

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
        for (int i = 0; i < ndigits; ++i)
            *d++ = digits[i];
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
    out_buffer w(out, 2 * len + 64);
    walker walk(w, mode == ejson_mode::canonical);
    if (!walk.document(bson, len, 0, 0, doc_kind::top)) {
        w.rollback();
        return false;
    }
    w.commit();
    return true;
}

}  // namespace penne::formats
