#include <mongosim/compression.hpp>

#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>

#include <array>

namespace mongosim {

std::optional<compressor> compressor_from_name(std::string_view name) noexcept {
    if (name == "snappy")
        return compressor::snappy;
    if (name == "zlib")
        return compressor::zlib;
    if (name == "zstd")
        return compressor::zstd;
    if (name == "noop")
        return compressor::noop;
    return std::nullopt;
}

std::string_view compressor_name(compressor c) noexcept {
    switch (c) {
        case compressor::noop:
            return "noop";
        case compressor::snappy:
            return "snappy";
        case compressor::zlib:
            return "zlib";
        case compressor::zstd:
            return "zstd";
    }
    return "unknown";
}

std::span<const compressor> supported_compressors() noexcept {
    static constexpr std::array<compressor, 3> all = {compressor::zstd, compressor::snappy,
                                                      compressor::zlib};
    return all;
}

error_code compress(compressor c, std::span<const std::uint8_t> in,
                    std::vector<std::uint8_t>& out) {
    const std::size_t base = out.size();
    switch (c) {
        case compressor::noop:
            out.insert(out.end(), in.begin(), in.end());
            return {};
        case compressor::snappy: {
            std::size_t n = snappy_max_compressed_length(in.size());
            out.resize(base + n);
            if (snappy_compress(reinterpret_cast<const char*>(in.data()), in.size(),
                                reinterpret_cast<char*>(out.data() + base), &n) != SNAPPY_OK)
                return wire_errc::bad_compression;
            out.resize(base + n);
            return {};
        }
        case compressor::zlib: {
            uLongf n = compressBound(static_cast<uLong>(in.size()));
            out.resize(base + n);
            if (compress2(out.data() + base, &n, in.data(), static_cast<uLong>(in.size()),
                          Z_DEFAULT_COMPRESSION) != Z_OK)
                return wire_errc::bad_compression;
            out.resize(base + n);
            return {};
        }
        case compressor::zstd: {
            std::size_t n = ZSTD_compressBound(in.size());
            out.resize(base + n);
            n = ZSTD_compress(out.data() + base, n, in.data(), in.size(), ZSTD_CLEVEL_DEFAULT);
            if (ZSTD_isError(n))
                return wire_errc::bad_compression;
            out.resize(base + n);
            return {};
        }
    }
    return wire_errc::bad_compression;
}

error_code decompress(compressor c, std::span<const std::uint8_t> in, std::size_t expected_size,
                      std::vector<std::uint8_t>& out) {
    out.resize(expected_size);
    std::size_t got = 0;
    switch (c) {
        case compressor::noop:
            if (in.size() != expected_size)
                return wire_errc::bad_compression;
            std::copy(in.begin(), in.end(), out.begin());
            return {};
        case compressor::snappy: {
            std::size_t n = 0;
            const auto* src = reinterpret_cast<const char*>(in.data());
            // Check the announced length first: snappy writes it in its own header.
            if (snappy_uncompressed_length(src, in.size(), &n) != SNAPPY_OK || n != expected_size)
                return wire_errc::bad_compression;
            if (snappy_uncompress(src, in.size(), reinterpret_cast<char*>(out.data()), &n) !=
                SNAPPY_OK)
                return wire_errc::bad_compression;
            got = n;
            break;
        }
        case compressor::zlib: {
            uLongf n = static_cast<uLongf>(expected_size);
            if (uncompress(out.data(), &n, in.data(), static_cast<uLong>(in.size())) != Z_OK)
                return wire_errc::bad_compression;
            got = n;
            break;
        }
        case compressor::zstd: {
            std::size_t n = ZSTD_decompress(out.data(), expected_size, in.data(), in.size());
            if (ZSTD_isError(n))
                return wire_errc::bad_compression;
            got = n;
            break;
        }
        default:
            return wire_errc::bad_compression;
    }
    if (got != expected_size)
        return wire_errc::bad_compression;
    return {};
}

}  // namespace mongosim
