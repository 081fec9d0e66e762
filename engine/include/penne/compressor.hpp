#pragma once
// Whole-object compression applied when a batch seals (DESIGN §3, §9). Formats that
// compress inside themselves (Parquet pages, Avro blocks) skip it.
//
// Thread safety: compress() may be called concurrently from several strands; an
// implementation lends out pooled contexts so idle collections own none.

#include <penne/error.hpp>

#include <string>
#include <string_view>

namespace penne {

class compressor {
public:
    virtual ~compressor() = default;
    virtual std::string_view extension() const noexcept = 0;         // "zst", "gz"
    virtual std::string_view content_encoding() const noexcept = 0;  // "zstd", "gzip"
    // Replaces `out` with the compressed form of `in`; deterministic for the same input.
    // Fails only when the codec itself fails (out of memory).
    virtual error_code compress(std::string_view in, std::string& out) = 0;
};

}  // namespace penne
