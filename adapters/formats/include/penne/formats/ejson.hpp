#pragma once
// BSON → MongoDB Extended JSON, written by hand for the hot path of the JSON lines and CSV
// encoders. The output is byte-identical to libbson 1.23.1's bson_as_relaxed_extended_json /
// bson_as_canonical_extended_json (the `{ "key" : value }` spacing, "%.20g" doubles, ISO
// dates without a zero millisecond part, "{ ... }" below nesting level 200, and so on), so
// users moving between penne and tools built on libbson see the same bytes.
//
// The walker reads the bytes itself: every length is checked against the enclosing
// document before it is trusted, so malformed or hostile input is rejected, never read out
// of range. It accepts exactly what libbson renders, with two deliberate exceptions where
// libbson emits broken JSON or can exhaust the stack: a nested document (or code-with-scope
// scope) whose length is below 5 or that does not end in a NUL byte, and code-with-scope
// values nested more than `ejson_max_frames` documents deep. Both are rejected here.
//
// Thread safety: the functions are pure; concurrent calls on different output strings are
// safe. Lifetimes: the input is read during the call only. Allocation: the output string
// is appended to in place, so a buffer reused across events stops allocating once it has
// grown to the largest event.

#include <penne/event.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

namespace penne::formats {

enum class ejson_mode {
    relaxed,    // native JSON numbers where lossless, ISO-8601 dates from 1970 on
    canonical,  // every number and date type-wrapped ({"$numberInt": "1"}, …)
};

// libbson stops descending below this many nested documents and prints "{ ... }".
inline constexpr unsigned ejson_max_depth = 200;
// Hard bound on recursion (code-with-scope restarts libbson's depth count at every scope).
inline constexpr unsigned ejson_max_frames = 1000;

// Appends the Extended JSON form of the BSON document [bson, bson + len) to `out`.
// Returns false, with `out` restored to its original size, when the bytes are not a
// document libbson can render (bad lengths, truncation, unknown type bytes, invalid UTF-8
// in keys or strings, trailing bytes after the terminator, …).
bool write_ejson(const std::uint8_t* bson, std::size_t len, ejson_mode mode, std::string& out);

inline bool write_ejson(byte_view bson, ejson_mode mode, std::string& out) {
    return write_ejson(bson.data(), bson.size(), mode, out);
}

// libbson's bson_decimal128_to_string for the 16 little-endian bytes of a Decimal128.
// Writes at most 43 characters (no terminator) to `buf` and returns the count.
std::size_t decimal128_to_chars(const std::uint8_t* bytes16, char* buf) noexcept;

}  // namespace penne::formats
