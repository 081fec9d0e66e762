#pragma once
// The RLE / bit-packed hybrid encoding of Parquet (Encodings.md), used for definition
// levels and for the indices of dictionary-encoded data pages.
//
// The output is a sequence of runs, each starting with a varint header:
// - an RLE run: header (count << 1), then the repeated value in ceil(bit_width / 8) bytes,
//   little endian;
// - a bit-packed run: header (groups << 1 | 1), then groups × 8 values packed
//   least-significant bit first, bit_width bits each (so each group takes bit_width bytes).
// A run of 8 or more equal values becomes an RLE run; the values between runs are
// bit-packed. A bit-packed run must hold whole groups of 8, so values are only padded (with
// zeros) at the very end, where the reader knows the real count from the page header. The
// encoder writes at most 63 groups per bit-packed run, so every header fits in one byte
// (as other writers do; readers accept longer runs as well).
//
// The encoder streams: memory stays O(1) for runs and bit_width bits per bit-packed value.
//
// Thread safety: none; one encoder per page being built.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace penne::formats::parquet_detail {

// Bits needed to store every value in [0, max_value] (0 for max_value 0).
constexpr unsigned bit_width_of(std::uint32_t max_value) noexcept {
    unsigned w = 0;
    while (max_value != 0) {
        ++w;
        max_value >>= 1;
    }
    return w;
}

class rle_encoder {
public:
    // `bit_width` is 0..32; every value put must fit in it.
    explicit rle_encoder(unsigned bit_width) noexcept : width_(bit_width) {}

    void put(std::uint32_t v);
    // Appends the encoded runs to `out` and resets the encoder (same bit width).
    void finish(std::string& out);

    unsigned bit_width() const noexcept { return width_; }

private:
    void commit_run();
    void pack_group();
    void flush_packed();

    unsigned width_;
    std::string body_;    // complete runs
    std::string packed_;  // complete bit-packed groups not yet given a header
    unsigned groups_ = 0;
    std::uint32_t group_[8] = {};
    unsigned group_n_ = 0;
    std::uint32_t run_value_ = 0;
    std::uint64_t run_len_ = 0;
};

// Encodes `values` in one call (a convenience over rle_encoder).
void append_rle_hybrid(std::span<const std::uint32_t> values, unsigned bit_width, std::string& out);

}  // namespace penne::formats::parquet_detail
