#pragma once
// The byte layout of BSON values (bsonspec.org), for the rooms that scan BSON directly
// instead of through libbson's iterator on a hot path: the MongoDB reply scanner
// (adapters/mongo) and the tabular encoders' field lookup (adapters/formats). Each function
// takes the bytes left before the end of the enclosing document (`avail`) and returns the
// size a value takes, or bson_npos when it does not fit or is malformed; none reads past
// `avail`. The insides of nested documents are not walked: callers that render them check
// them as they go.

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace penne::detail {

inline constexpr std::size_t bson_npos = static_cast<std::size_t>(-1);

inline std::uint32_t bson_le32(const std::uint8_t* p) noexcept {
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    if constexpr (std::endian::native == std::endian::big)
        v = __builtin_bswap32(v);
    return v;
}

inline std::uint64_t bson_le64(const std::uint8_t* p) noexcept {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    if constexpr (std::endian::native == std::endian::big)
        v = __builtin_bswap64(v);
    return v;
}

// A string value: int32 length (counting the NUL), the bytes, NUL.
inline std::size_t bson_string_size(const std::uint8_t* p, std::size_t avail) noexcept {
    if (avail < 5)
        return bson_npos;
    const std::uint32_t n = bson_le32(p);
    if (n < 1 || n > avail - 4 || p[4 + n - 1] != 0)
        return bson_npos;
    return 4 + std::size_t(n);
}

// A document or array: int32 total length, elements, NUL.
inline std::size_t bson_document_size(const std::uint8_t* p, std::size_t avail) noexcept {
    if (avail < 5)
        return bson_npos;
    const std::uint32_t n = bson_le32(p);
    if (n < 5 || n > avail || p[n - 1] != 0)
        return bson_npos;
    return n;
}

// A C string (element names, regex parts), NUL included.
inline std::size_t bson_cstring_size(const std::uint8_t* p, std::size_t avail) noexcept {
    const auto* nul = static_cast<const std::uint8_t*>(std::memchr(p, 0, avail));
    return nul ? std::size_t(nul - p) + 1 : bson_npos;
}

// A value of BSON type `type`; bson_npos for an unknown type too.
inline std::size_t bson_value_size(std::uint8_t type, const std::uint8_t* p,
                                   std::size_t avail) noexcept {
    std::size_t fixed = 0;
    switch (type) {
        case 0x01:  // double
        case 0x09:  // UTC datetime
        case 0x11:  // timestamp
        case 0x12:  // int64
            fixed = 8;
            break;
        case 0x02:  // string
        case 0x0D:  // JavaScript code
        case 0x0E:  // symbol
            return bson_string_size(p, avail);
        case 0x03:  // document
        case 0x04:  // array
            return bson_document_size(p, avail);
        case 0x05:  // binary: int32 length, subtype, bytes
            if (avail < 5 || bson_le32(p) > avail - 5)
                return bson_npos;
            return 5 + std::size_t(bson_le32(p));
        case 0x06:  // undefined
        case 0x0A:  // null
        case 0x7F:  // max key
        case 0xFF:  // min key
            return 0;
        case 0x07:  // ObjectId
            fixed = 12;
            break;
        case 0x08:  // bool
            fixed = 1;
            break;
        case 0x0B: {  // regex: pattern and options, both C strings
            const std::size_t a = bson_cstring_size(p, avail);
            if (a == bson_npos)
                return bson_npos;
            const std::size_t b = bson_cstring_size(p + a, avail - a);
            return b == bson_npos ? bson_npos : a + b;
        }
        case 0x0C: {  // DBPointer: string, ObjectId
            const std::size_t a = bson_string_size(p, avail);
            return a == bson_npos || avail - a < 12 ? bson_npos : a + 12;
        }
        case 0x0F: {  // code with scope: int32 total, string, document
            if (avail < 4)
                return bson_npos;
            const std::uint32_t n = bson_le32(p);
            if (n < 14 || n > avail)
                return bson_npos;
            const std::size_t a = bson_string_size(p + 4, n - 4);
            if (a == bson_npos)
                return bson_npos;
            const std::size_t b = bson_document_size(p + 4 + a, n - 4 - a);
            return b == bson_npos || 4 + a + b != n ? bson_npos : n;
        }
        case 0x10:  // int32
            fixed = 4;
            break;
        case 0x13:  // decimal128
            fixed = 16;
            break;
        default:
            return bson_npos;
    }
    return fixed <= avail ? fixed : bson_npos;
}

}  // namespace penne::detail
