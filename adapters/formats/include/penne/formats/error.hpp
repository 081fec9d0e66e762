#pragma once
// Error codes of the formats room (compression and codec configuration). Malformed events
// are reported with penne::errc::unencodable_event by the encoders, because the engine
// handles them the same way for every format (dead-letter or stop); these codes cover the
// rest. The category is a penne::classified_category so the engine's retry policy can ask
// it whether trying again can help.
//
// Thread safety: the category is an immutable singleton.

#include <penne/error.hpp>

namespace penne::formats {

enum class errc {
    unknown_codec = 1,   // a compression codec name that is not none/gzip/zstd
    invalid_level,       // a compression level outside the codec's range
    compression_failed,  // the compressor library failed (out of memory): retryable
    corrupt_input,       // decompression met bytes that are not a valid gzip/zstd stream
    truncated_input,     // decompression ran out of input in the middle of a frame/member
    output_limit,        // decompressed size would exceed the caller's limit
};

const boost::system::error_category& formats_category() noexcept;

inline error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), formats_category()};
}

}  // namespace penne::formats

template <>
struct boost::system::is_error_code_enum<penne::formats::errc> : std::true_type {};
