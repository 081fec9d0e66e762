#pragma once
// OP_COMPRESSED, sans I/O: wrapping an encoded message in a compressed frame and turning a
// compressed frame back into the message it carries, with zstd, zlib or snappy.
//
// A compressed frame names its compressor, so a reply is always inflated with the codec the
// server chose, whatever this side negotiated. Every length is checked before use: the
// announced uncompressed size is bounded by maxMessageSizeBytes (a small frame cannot make
// us allocate gigabytes) and the codec must produce exactly that many bytes, or the frame
// is rejected with client_errc::bad_compression.
//
// Thread safety: a codec_set holds reusable zstd contexts; use one per connection (one
// strand). The free functions are pure.
// Lifetimes: outputs are caller-owned vectors; nothing keeps references to inputs.

#include <penne/event.hpp>
#include <penne/mongo/error.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace penne::mongo {

// The compressorId byte of OP_COMPRESSED.
enum class compressor_id : std::uint8_t { noop = 0, snappy = 1, zlib = 2, zstd = 3 };

std::optional<compressor_id> compressor_from_name(std::string_view name) noexcept;
std::string_view to_string(compressor_id c) noexcept;

// Commands whose messages must never be compressed (the handshake, and authentication,
// whose secrets must not leak through compression side channels).
bool may_compress(std::string_view command_name) noexcept;

// -1 is zlib's default; 0-9 as zlib defines them (the URI's zlibCompressionLevel).
inline constexpr int default_zlib_level = -1;

class codec_set {
public:
    explicit codec_set(int zlib_level = default_zlib_level);
    ~codec_set();
    codec_set(const codec_set&) = delete;
    codec_set& operator=(const codec_set&) = delete;

    void set_zlib_level(int level) noexcept { zlib_level_ = level; }

    // Wraps `message` (a complete frame, header included, not itself OP_COMPRESSED) into an
    // OP_COMPRESSED frame appended to `out`. Fails only when the codec fails.
    error_code compress(compressor_id c, byte_view message, std::vector<std::uint8_t>& out);

    // Inflates the OP_COMPRESSED `frame` into `out` (replaced): the original message with a
    // header whose length and opcode are the carried message's, and the frame's requestID
    // and responseTo, so the result decodes like a frame that was never compressed.
    error_code decompress(byte_view frame, std::uint32_t max_message_size,
                          std::vector<std::uint8_t>& out);

private:
    struct zstd_contexts;
    std::unique_ptr<zstd_contexts> zstd_;
    int zlib_level_;
};

}  // namespace penne::mongo
