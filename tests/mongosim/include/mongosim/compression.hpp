#pragma once
// OP_COMPRESSED's compressors (snappy, zlib, zstd) behind one interface, sans-io. Decompression
// is bounded by the size the message header announces, so a hostile frame cannot make the
// server allocate more than maxMessageSizeBytes.
//
// Thread safety: free functions without shared state (each call owns its codec context).

#include <mongosim/error.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace mongosim {

// The compressorId byte of OP_COMPRESSED.
enum class compressor : std::uint8_t { noop = 0, snappy = 1, zlib = 2, zstd = 3 };

std::optional<compressor> compressor_from_name(std::string_view name) noexcept;
std::string_view compressor_name(compressor c) noexcept;
// The compressors this server offers in hello, in its order of preference.
std::span<const compressor> supported_compressors() noexcept;

// Appends the compressed form of in to out.
error_code compress(compressor c, std::span<const std::uint8_t> in, std::vector<std::uint8_t>& out);
// Decompresses in into out, which must come out exactly expected_size bytes long.
error_code decompress(compressor c, std::span<const std::uint8_t> in, std::size_t expected_size,
                      std::vector<std::uint8_t>& out);

}  // namespace mongosim
