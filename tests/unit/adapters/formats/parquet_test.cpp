// The Parquet writer: the Thrift compact encoder against hand-computed bytes, the RLE /
// bit-packed hybrid encoder against a decoder written here, and whole files read back by a
// minimal Parquet reader written here (footer, page headers, levels, PLAIN and dictionary
// pages, all codecs), for both layouts, nulls, dictionary fallback, several row groups and
// pages, statistics and determinism.
#include <penne/formats/compress.hpp>
#include <penne/formats/parquet.hpp>
#include <penne/formats/tabular.hpp>
#include <penne/version.hpp>

// The private building blocks of the writer (no include path leads to src/ on purpose).
#include "../../../../adapters/formats/src/detail/parquet_rle.hpp"
#include "../../../../adapters/formats/src/detail/parquet_thrift.hpp"

#include "bson_corpus.hpp"
#include "event_builder.hpp"

#include <gtest/gtest.h>
#include <snappy.h>

#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace penne::formats {
namespace {

using parquet_detail::compact_type;
using parquet_detail::compact_writer;
using testing::bson_ptr;
using testing::bytes_of;
using testing::compact_json;
using testing::corpus_generator;
using testing::encode_events;
using testing::event_list;
using testing::event_of;
using testing::event_parts;
using testing::make_event;

std::string hex(std::string_view s) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (const char c : s) {
        const auto b = static_cast<unsigned char>(c);
        if (!out.empty())
            out += ' ';
        out += digits[b >> 4];
        out += digits[b & 15];
    }
    return out;
}

// ---------------------------------------------------------------------------------------
// Thrift compact protocol: hand-computed bytes.

TEST(ParquetThrift, VarintsAndZigzag) {
    auto varint = [](std::uint64_t v) {
        std::string s;
        parquet_detail::append_varint(v, s);
        return hex(s);
    };
    EXPECT_EQ(varint(0), "00");
    EXPECT_EQ(varint(1), "01");
    EXPECT_EQ(varint(127), "7f");
    EXPECT_EQ(varint(128), "80 01");
    EXPECT_EQ(varint(300), "ac 02");
    EXPECT_EQ(varint(16384), "80 80 01");
    EXPECT_EQ(varint(std::numeric_limits<std::uint64_t>::max()), "ff ff ff ff ff ff ff ff ff 01");

    EXPECT_EQ(parquet_detail::zigzag(0), 0u);
    EXPECT_EQ(parquet_detail::zigzag(-1), 1u);
    EXPECT_EQ(parquet_detail::zigzag(1), 2u);
    EXPECT_EQ(parquet_detail::zigzag(-2), 3u);
    EXPECT_EQ(parquet_detail::zigzag(2147483647), 4294967294u);
    EXPECT_EQ(parquet_detail::zigzag(-2147483648LL), 4294967295u);
    EXPECT_EQ(parquet_detail::zigzag(std::numeric_limits<std::int64_t>::max()),
              std::numeric_limits<std::uint64_t>::max() - 1);
    EXPECT_EQ(parquet_detail::zigzag(std::numeric_limits<std::int64_t>::min()),
              std::numeric_limits<std::uint64_t>::max());
}

TEST(ParquetThrift, FieldHeadersDeltasAndScalars) {
    std::string out;
    compact_writer w(out);
    w.begin_struct();
    w.field_i32(1, 5);         // delta 1, type 5: 0x15, zigzag 10
    w.field_i32(3, -1);        // delta 2: 0x25, zigzag 1
    w.field_i64(20, 1);        // delta 17: long form 0x06, zigzag(20) = 40, then value 2
    w.field_bool(21, true);    // delta 1, type 1
    w.field_bool(22, false);   // delta 1, type 2
    w.field_i8(23, -1);        // delta 1, type 3, one raw byte
    w.field_i16(30, 3);        // delta 7, type 4, zigzag 6
    w.field_binary(31, "ab");  // delta 1, type 8, length 2
    w.field_i32(2, 0);         // negative delta: long form 0x05, zigzag(2) = 4
    w.field_i64(3, -300);      // delta 1 from 2 (the last id, not the largest): 0x16, 599
    w.end_struct();
    EXPECT_EQ(hex(out), "15 0a 25 01 06 28 02 11 12 13 ff 74 06 18 02 61 62 05 04 00 16 d7 04 00");
    EXPECT_EQ(w.depth(), 0u);
}

TEST(ParquetThrift, NestedStructsRestoreTheEnclosingFieldId) {
    std::string out;
    compact_writer w(out);
    w.begin_struct();
    w.field_i32(1, 1);        // 15 02
    w.begin_field_struct(5);  // delta 4, type 12: 4c
    w.field_i32(1, 7);        // the nested struct starts from id 0: 15 0e
    w.begin_field_struct(2);  // 1c
    w.end_struct();           // 00
    w.end_struct();           // 00
    w.field_i32(6, 2);        // delta 1 from 5: 15 04
    w.end_struct();           // 00
    EXPECT_EQ(hex(out), "15 02 4c 15 0e 1c 00 00 15 04 00");
}

TEST(ParquetThrift, Lists) {
    std::string out;
    compact_writer w(out);
    w.begin_struct();
    w.begin_field_list(1, compact_type::i32, 3);  // 19, size 3 elem i32: 35
    w.element_i32(1);
    w.element_i32(2);
    w.element_i32(-3);
    w.begin_field_list(2, compact_type::binary, 1);  // 19, 18
    w.element_binary("xyz");
    w.begin_field_list(3, compact_type::structure, 2);  // 19, 2c
    w.begin_struct();
    w.field_i32(4, 9);  // ids restart in each element: 45 12
    w.end_struct();
    w.begin_struct();
    w.end_struct();
    w.field_i32(4, 0);                             // delta 1 from the list's id: 15 00
    w.begin_field_list(5, compact_type::i32, 15);  // 19, long form f5 0f
    for (int i = 0; i < 15; ++i)
        w.element_i32(0);
    w.end_struct();
    EXPECT_EQ(hex(out), "19 35 02 04 05 19 18 03 78 79 7a 19 2c 45 12 00 00 15 00 19 f5 0f " +
                            hex(std::string(15, '\0')) + " 00");
}

TEST(ParquetThrift, MisuseIsAProgrammingError) {
    std::string out;
    compact_writer w(out);
    EXPECT_THROW(w.end_struct(), std::logic_error);
    EXPECT_THROW(w.field_i32(1, 1), std::logic_error);
    for (std::size_t i = 0; i < compact_writer::max_depth; ++i)
        w.begin_struct();
    EXPECT_THROW(w.begin_struct(), std::logic_error);
}

// ---------------------------------------------------------------------------------------
// A small compact protocol decoder (the test's own) into a generic tree.

struct node {
    int type = 0;
    std::int64_t i = 0;  // integers and bools
    std::string bin;
    std::vector<node> items;                   // list elements
    std::vector<std::pair<int, node>> fields;  // struct fields in wire order

    bool has(int id) const {
        for (const auto& [k, v] : fields) {
            if (k == id)
                return true;
        }
        return false;
    }
    const node& operator[](int id) const {
        for (const auto& [k, v] : fields) {
            if (k == id)
                return v;
        }
        throw std::runtime_error("missing thrift field " + std::to_string(id));
    }
};

class compact_reader {
public:
    explicit compact_reader(std::string_view data, std::size_t pos = 0) : d_(data), pos_(pos) {}

    std::size_t pos() const { return pos_; }

    node read_struct() {
        node n;
        n.type = 12;
        int last = 0;
        for (;;) {
            const std::uint8_t h = byte();
            if (h == 0)
                return n;
            const int type = h & 0x0F;
            int id;
            if ((h >> 4) != 0) {
                id = last + (h >> 4);
            } else {
                id = static_cast<int>(unzigzag(varint()));
            }
            last = id;
            node v;
            if (type == 1 || type == 2) {
                v.type = 1;
                v.i = type == 1 ? 1 : 0;
            } else {
                v = value(type);
            }
            n.fields.emplace_back(id, std::move(v));
        }
    }

private:
    std::uint8_t byte() {
        if (pos_ >= d_.size())
            throw std::runtime_error("thrift data truncated");
        return static_cast<std::uint8_t>(d_[pos_++]);
    }
    std::uint64_t varint() {
        std::uint64_t v = 0;
        for (int shift = 0; shift < 70; shift += 7) {
            const std::uint8_t b = byte();
            v |= std::uint64_t{b & 0x7Fu} << shift;
            if ((b & 0x80) == 0)
                return v;
        }
        throw std::runtime_error("varint too long");
    }
    static std::int64_t unzigzag(std::uint64_t v) {
        return static_cast<std::int64_t>(v >> 1) ^ -static_cast<std::int64_t>(v & 1);
    }
    node value(int type) {
        node v;
        v.type = type;
        switch (type) {
            case 1:
            case 2:  // bool list element
                v.type = 1;
                v.i = byte() == 1 ? 1 : 0;
                return v;
            case 3:
                v.i = static_cast<std::int8_t>(byte());
                return v;
            case 4:
            case 5:
            case 6:
                v.i = unzigzag(varint());
                return v;
            case 8: {
                const std::uint64_t n = varint();
                if (n > d_.size() - pos_)
                    throw std::runtime_error("binary beyond the data");
                v.bin.assign(d_.substr(pos_, n));
                pos_ += n;
                return v;
            }
            case 9:
            case 10: {
                const std::uint8_t h = byte();
                std::uint64_t size = h >> 4;
                if (size == 15)
                    size = varint();
                const int et = h & 0x0F;
                for (std::uint64_t k = 0; k < size; ++k)
                    v.items.push_back(value(et));
                return v;
            }
            case 12:
                return read_struct();
        }
        throw std::runtime_error("unsupported thrift type " + std::to_string(type));
    }

    std::string_view d_;
    std::size_t pos_;
};

TEST(ParquetThrift, TheTestDecoderReadsWhatTheWriterWrites) {
    std::string out;
    compact_writer w(out);
    w.begin_struct();
    w.field_i64(1, std::numeric_limits<std::int64_t>::min());
    w.field_binary(40, std::string(300, 'x'));
    w.begin_field_list(41, compact_type::structure, 20);
    for (int k = 0; k < 20; ++k) {
        w.begin_struct();
        w.field_bool(7, k % 2 == 0);
        w.end_struct();
    }
    w.field_i16(2, -7);
    w.end_struct();
    compact_reader r(out);
    const node n = r.read_struct();
    EXPECT_EQ(r.pos(), out.size());
    EXPECT_EQ(n[1].i, std::numeric_limits<std::int64_t>::min());
    EXPECT_EQ(n[40].bin, std::string(300, 'x'));
    ASSERT_EQ(n[41].items.size(), 20u);
    EXPECT_EQ(n[41].items[3][7].i, 0);
    EXPECT_EQ(n[41].items[4][7].i, 1);
    EXPECT_EQ(n[2].i, -7);
}

// ---------------------------------------------------------------------------------------
// RLE / bit-packed hybrid.

// The test's decoder: `count` values of `width` bits from runs in [p, end).
std::vector<std::uint32_t> decode_hybrid(std::string_view data, unsigned width, std::size_t count) {
    std::vector<std::uint32_t> out;
    std::size_t pos = 0;
    auto byte = [&]() -> std::uint8_t {
        if (pos >= data.size())
            throw std::runtime_error("hybrid data truncated");
        return static_cast<std::uint8_t>(data[pos++]);
    };
    while (out.size() < count) {
        std::uint64_t header = 0;
        for (int shift = 0;; shift += 7) {
            const std::uint8_t b = byte();
            header |= std::uint64_t{b & 0x7Fu} << shift;
            if ((b & 0x80) == 0)
                break;
        }
        if (header & 1) {
            const std::uint64_t n = (header >> 1) * 8;
            std::uint64_t acc = 0;
            unsigned bits = 0;
            for (std::uint64_t k = 0; k < n; ++k) {
                while (bits < width) {
                    acc |= std::uint64_t{byte()} << bits;
                    bits += 8;
                }
                const std::uint32_t v =
                    width == 0 ? 0 : static_cast<std::uint32_t>(acc & ((1ULL << width) - 1));
                acc >>= width;
                bits -= width;
                if (out.size() < count)
                    out.push_back(v);
            }
        } else {
            const std::uint64_t n = header >> 1;
            std::uint32_t v = 0;
            for (unsigned b = 0; b < (width + 7) / 8; ++b)
                v |= std::uint32_t{byte()} << (8 * b);
            for (std::uint64_t k = 0; k < n && out.size() < count; ++k)
                out.push_back(v);
        }
    }
    if (pos != data.size())
        throw std::runtime_error("bytes left after the runs");
    return out;
}

std::string hybrid(const std::vector<std::uint32_t>& v, unsigned width) {
    std::string s;
    parquet_detail::append_rle_hybrid(v, width, s);
    return s;
}

TEST(ParquetRle, HandComputedRuns) {
    // Ten ones at width 1: one RLE run, header 10 << 1, value in one byte.
    EXPECT_EQ(hex(hybrid(std::vector<std::uint32_t>(10, 1), 1)), "14 01");
    // Alternating bits: one bit-packed group, LSB first.
    EXPECT_EQ(hex(hybrid({0, 1, 0, 1, 0, 1, 0, 1}, 1)), "03 aa");
    // Three values at width 2, padded to a group of 8: 1 | 2 << 2 | 3 << 4 = 0x39.
    EXPECT_EQ(hex(hybrid({1, 2, 3}, 2)), "03 39 00");
    // An RLE value of width 9 takes two bytes; 300 = 0x012c.
    EXPECT_EQ(hex(hybrid(std::vector<std::uint32_t>(8, 300), 9)), "10 2c 01");
    // Width 0: runs without value bytes.
    EXPECT_EQ(hex(hybrid(std::vector<std::uint32_t>(20, 0), 0)), "28");
    // A short run is packed with its neighbours, a long run after a partial group first
    // completes the group: [5, 7, 7 × 14] → group [5, 7 ×7] then an RLE run of 7 × 8.
    std::vector<std::uint32_t> v{5};
    v.insert(v.end(), 15, 7);
    EXPECT_EQ(hex(hybrid(v, 3)), "03 fd ff ff 10 07");
    EXPECT_EQ(hex(hybrid({}, 4)), "");
}

TEST(ParquetRle, RoundTripsRandomSequencesAtEveryWidth) {
    std::mt19937_64 rng(42);
    for (unsigned width = 0; width <= 32; ++width) {
        for (int trial = 0; trial < 20; ++trial) {
            const std::uint64_t mask = width == 32 ? 0xFFFFFFFFull : (1ull << width) - 1;
            std::vector<std::uint32_t> values;
            const std::size_t n = rng() % 2000;
            while (values.size() < n) {
                const auto v = static_cast<std::uint32_t>(rng() & mask);
                const std::size_t run = rng() % 3 == 0 ? rng() % 40 : 1;
                values.insert(values.end(), std::min(run, n - values.size()), v);
            }
            const std::string enc = hybrid(values, width);
            EXPECT_EQ(decode_hybrid(enc, width, values.size()), values)
                << "width " << width << " n " << n;
        }
    }
    // More than 63 bit-packed groups in a row are split into several runs.
    std::vector<std::uint32_t> many;
    for (std::uint32_t k = 0; k < 8 * 200; ++k)
        many.push_back(k % 2);
    const std::string enc = hybrid(many, 1);
    EXPECT_EQ(enc.size(), 200u + 4u) << "four one-byte headers for 63+63+63+11 groups";
    EXPECT_EQ(decode_hybrid(enc, 1, many.size()), many);

    parquet_detail::rle_encoder e(4);
    for (std::uint32_t k = 0; k < 30; ++k)
        e.put(k % 16);
    std::string first;
    e.finish(first);
    e.put(3);
    std::string second;
    e.finish(second);
    EXPECT_EQ(hex(second), hex(hybrid({3}, 4))) << "finish() resets the encoder";
}

TEST(ParquetRle, BitWidths) {
    EXPECT_EQ(parquet_detail::bit_width_of(0), 0u);
    EXPECT_EQ(parquet_detail::bit_width_of(1), 1u);
    EXPECT_EQ(parquet_detail::bit_width_of(2), 2u);
    EXPECT_EQ(parquet_detail::bit_width_of(255), 8u);
    EXPECT_EQ(parquet_detail::bit_width_of(256), 9u);
    EXPECT_EQ(parquet_detail::bit_width_of(0xFFFFFFFFu), 32u);
}

// ---------------------------------------------------------------------------------------
// A minimal Parquet reader (the test's own).

struct page_info {
    int type = 0;  // 0 data, 2 dictionary
    int encoding = 0;
    std::int64_t values = 0;
    std::size_t uncompressed = 0;
    node stats;
};

struct chunk_info {
    std::vector<page_info> pages;
    node meta;  // ColumnMetaData
};

struct column_values {
    std::string name;
    node schema;  // SchemaElement
    std::vector<std::optional<std::string>> text;
    std::vector<std::optional<std::int64_t>> ints;
    std::vector<chunk_info> chunks;  // one per row group
    std::size_t size() const { return text.size() + ints.size(); }
};

struct parquet_file {
    node meta;  // FileMetaData
    std::vector<column_values> columns;
};

std::uint32_t le32(std::string_view s, std::size_t pos) {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i)
        v |= std::uint32_t{static_cast<std::uint8_t>(s[pos + i])} << (8 * i);
    return v;
}

std::int64_t le64(std::string_view s, std::size_t pos) {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i)
        v |= std::uint64_t{static_cast<std::uint8_t>(s[pos + i])} << (8 * i);
    return static_cast<std::int64_t>(v);
}

std::string decompress_page(int codec, std::string_view body, std::size_t expected) {
    std::string out;
    diagnostics diag;
    switch (codec) {
        case 0:
            out.assign(body);
            break;
        case 1:
            if (!snappy::Uncompress(body.data(), body.size(), &out))
                throw std::runtime_error("bad snappy page");
            break;
        case 2:
            if (decompress(codec::gzip, body, out, diag))
                throw std::runtime_error("bad gzip page: " + diag.message);
            break;
        case 6:
            if (decompress(codec::zstd, body, out, diag))
                throw std::runtime_error("bad zstd page: " + diag.message);
            break;
        default:
            throw std::runtime_error("unexpected codec " + std::to_string(codec));
    }
    if (out.size() != expected)
        throw std::runtime_error("uncompressed page size differs from its header");
    return out;
}

// Reads `n` PLAIN values of `type` from `data` at `pos`.
void read_plain(int type, std::string_view data, std::size_t& pos, std::size_t n,
                std::vector<std::string>& text, std::vector<std::int64_t>& ints) {
    for (std::size_t k = 0; k < n; ++k) {
        if (type == 6) {
            if (data.size() - pos < 4)
                throw std::runtime_error("PLAIN byte array truncated");
            const std::uint32_t len = le32(data, pos);
            if (data.size() - pos - 4 < len)
                throw std::runtime_error("PLAIN byte array truncated");
            text.emplace_back(data.substr(pos + 4, len));
            pos += 4 + len;
        } else {
            if (data.size() - pos < 8)
                throw std::runtime_error("PLAIN int64 truncated");
            ints.push_back(le64(data, pos));
            pos += 8;
        }
    }
}

parquet_file read_parquet(std::string_view f) {
    if (f.size() < 12 || f.substr(0, 4) != "PAR1" || f.substr(f.size() - 4) != "PAR1")
        throw std::runtime_error("no PAR1 magic");
    const std::uint32_t footer_len = le32(f, f.size() - 8);
    if (footer_len > f.size() - 12)
        throw std::runtime_error("footer length out of range");
    const std::size_t footer_start = f.size() - 8 - footer_len;
    compact_reader fr(f.substr(0, f.size() - 8), footer_start);
    parquet_file pf;
    pf.meta = fr.read_struct();
    if (fr.pos() != f.size() - 8)
        throw std::runtime_error("footer length does not match its content");

    const node& schema = pf.meta[2];
    const std::size_t ncols = static_cast<std::size_t>(schema.items.at(0)[5].i);
    if (schema.items.size() != ncols + 1)
        throw std::runtime_error("schema element count");
    for (std::size_t c = 0; c < ncols; ++c) {
        column_values col;
        col.schema = schema.items[c + 1];
        col.name = col.schema[4].bin;
        pf.columns.push_back(std::move(col));
    }

    std::int64_t rows = 0;
    for (const node& rg : pf.meta[4].items) {
        const auto& chunks = rg[1].items;
        if (chunks.size() != ncols)
            throw std::runtime_error("row group column count");
        for (std::size_t c = 0; c < ncols; ++c) {
            column_values& col = pf.columns[c];
            const int type = static_cast<int>(col.schema[1].i);
            const bool optional = col.schema[3].i == 1;
            chunk_info ci;
            ci.meta = chunks[c][3];
            const node& md = ci.meta;
            if (md[3].items.at(0).bin != col.name)
                throw std::runtime_error("path_in_schema differs from the schema name");
            const int codec = static_cast<int>(md[4].i);
            std::size_t pos = static_cast<std::size_t>(md.has(11) ? md[11].i : md[9].i);
            const std::size_t end = pos + static_cast<std::size_t>(md[7].i);
            if (end > footer_start)
                throw std::runtime_error("column chunk beyond the data");
            std::int64_t uncompressed_total = 0;
            std::int64_t values_total = 0;
            std::vector<std::string> dict;
            bool first = true;
            while (pos < end) {
                compact_reader hr(f.substr(0, end), pos);
                const node ph = hr.read_struct();
                const std::size_t header_size = hr.pos() - pos;
                pos = hr.pos();
                const auto csize = static_cast<std::size_t>(ph[3].i);
                const auto usize = static_cast<std::size_t>(ph[2].i);
                if (csize > end - pos)
                    throw std::runtime_error("page beyond its column chunk");
                const std::string body = decompress_page(codec, f.substr(pos, csize), usize);
                pos += csize;
                uncompressed_total += static_cast<std::int64_t>(header_size + usize);
                page_info pi;
                pi.type = static_cast<int>(ph[1].i);
                pi.uncompressed = usize;
                if (pi.type == 2) {
                    if (!first)
                        throw std::runtime_error("dictionary page not first in its chunk");
                    if (static_cast<std::int64_t>(pos - csize - header_size) != md[11].i)
                        throw std::runtime_error("dictionary_page_offset");
                    const node& dh = ph[7];
                    pi.encoding = static_cast<int>(dh[2].i);
                    pi.values = dh[1].i;
                    std::size_t p = 0;
                    std::vector<std::int64_t> unused;
                    read_plain(type, body, p, static_cast<std::size_t>(pi.values), dict, unused);
                    if (p != body.size())
                        throw std::runtime_error("bytes left in the dictionary page");
                    ci.pages.push_back(std::move(pi));
                    first = false;
                    continue;
                }
                if (pi.type != 0)
                    throw std::runtime_error("unexpected page type");
                if (static_cast<std::int64_t>(pos - csize - header_size) != md[9].i &&
                    ci.pages.size() == (md.has(11) ? 1u : 0u))
                    throw std::runtime_error("data_page_offset");
                first = false;
                const node& dh = ph[5];
                pi.values = dh[1].i;
                pi.encoding = static_cast<int>(dh[2].i);
                pi.stats = dh[5];
                const auto n = static_cast<std::size_t>(pi.values);
                std::size_t p = 0;
                std::vector<std::uint32_t> defs(n, 1);
                if (optional) {
                    const std::uint32_t len = le32(body, 0);
                    defs = decode_hybrid(std::string_view(body).substr(4, len), 1, n);
                    p = 4 + len;
                }
                std::size_t present = 0;
                for (const auto d : defs)
                    present += d;
                std::vector<std::string> text;
                std::vector<std::int64_t> ints;
                if (pi.encoding == 0) {
                    read_plain(type, body, p, present, text, ints);
                    if (p != body.size())
                        throw std::runtime_error("bytes left in a PLAIN page");
                } else if (pi.encoding == 8 || pi.encoding == 2) {
                    const unsigned width = static_cast<std::uint8_t>(body.at(p));
                    const auto idx =
                        decode_hybrid(std::string_view(body).substr(p + 1), width, present);
                    for (const auto k : idx) {
                        if (k >= dict.size())
                            throw std::runtime_error("dictionary index out of range");
                        text.push_back(dict[k]);
                    }
                } else {
                    throw std::runtime_error("unexpected encoding");
                }
                std::size_t next = 0;
                for (const auto d : defs) {
                    if (type == 6) {
                        col.text.push_back(d ? std::optional<std::string>(text[next++])
                                             : std::nullopt);
                    } else {
                        col.ints.push_back(d ? std::optional<std::int64_t>(ints[next++])
                                             : std::nullopt);
                    }
                }
                values_total += pi.values;
                ci.pages.push_back(std::move(pi));
            }
            if (pos != end)
                throw std::runtime_error("column chunk size");
            if (values_total != md[5].i || values_total != rg[3].i)
                throw std::runtime_error("num_values");
            if (uncompressed_total != md[6].i)
                throw std::runtime_error("total_uncompressed_size");
            col.chunks.push_back(std::move(ci));
        }
        rows += rg[3].i;
    }
    if (rows != pf.meta[3].i)
        throw std::runtime_error("num_rows");
    return pf;
}

// ---------------------------------------------------------------------------------------
// Events and expectations.

// A mix of realistic events (the corpus generator) and hand-made ones with every nullable
// column null somewhere, awkward strings, transactions and negative or absent wall times.
event_list mixed_events(std::uint64_t seed, int n) {
    corpus_generator gen(seed);
    static const char* colls[] = {"orders", "a", "z", "\xc3\xa9t\xc3\xa9", "with space", ""};
    event_list events;
    for (int i = 0; i < n; ++i) {
        if (i % 3 != 2) {
            events.push_back(bytes_of(gen.change_event().get()));
            continue;
        }
        event_parts p;
        p.coll = gen.chance(15) ? nullptr : colls[gen.below(6)];
        p.db = gen.chance(10) ? nullptr : "shop";
        p.op = p.db == nullptr ? "invalidate" : (p.coll == nullptr ? "dropDatabase" : "update");
        p.secs = gen.below(4000000000u);
        p.inc = gen.chance(20) ? 1000 + gen.below(5000) : gen.below(1000);
        if (gen.chance(30)) {
            p.wall = std::nullopt;
        } else {
            p.wall = static_cast<std::int64_t>(gen.u64() % 400000000000000ULL) - 100000000000000LL;
        }
        if (p.coll == nullptr)
            p.document_key = nullptr;
        if (gen.chance(50))
            p.update_description = R"({"updatedFields": {"n": 1, "s": "x \" y"}})";
        if (gen.chance(30))
            p.before_change = R"({"_id": 42, "n": 0})";
        if (gen.chance(40)) {
            p.lsid =
                R"({"id": {"$binary": {"base64": "AAAAAAAAAAAAAAAAAAAAAA==", "subType": "04"}}})";
            p.txn = static_cast<std::int64_t>(gen.u64());
        }
        p.token = "82" + std::to_string(gen.u64());
        events.push_back(make_event(p));
    }
    return events;
}

struct expected_cell {
    std::optional<std::string> text;
    std::optional<std::int64_t> num;
    bool is_int = false;
};

// The rows an independent reader must see, column by column, built from the tabular
// extractor (the schema's definition of each column).
std::vector<std::vector<expected_cell>> expected_columns(const event_list& events,
                                                         const parquet_options& o) {
    tabular_extractor ex(o.mode);
    const bool micros = o.timestamp_unit == parquet_timestamp_unit::micros;
    const bool rigatoni = o.layout == parquet_layout::rigatoni;
    std::vector<std::vector<expected_cell>> cols(rigatoni ? 7 : tabular_column_count);
    auto text = [](std::optional<std::string_view> v) {
        expected_cell c;
        if (v)
            c.text = std::string(*v);
        return c;
    };
    auto num = [](std::optional<std::int64_t> v) {
        expected_cell c;
        c.is_int = true;
        c.num = v;
        return c;
    };
    for (const auto& e : events) {
        tabular_row r;
        diagnostics diag;
        EXPECT_FALSE(ex.extract(event_of(e), r, diag)) << diag.message;
        if (rigatoni) {
            const std::int64_t inc = r.cluster_time_increment < 1000 ? r.cluster_time_increment : 0;
            const std::int64_t ms = std::int64_t{r.cluster_time_seconds} * 1000 + inc;
            auto compact = [&](std::optional<std::string_view> v) {
                return v ? text(compact_json(*v)) : text(std::nullopt);
            };
            cols[0].push_back(text(r.operation));
            cols[1].push_back(text(r.database.value_or("")));
            cols[2].push_back(text(r.collection.value_or("")));
            cols[3].push_back(num(micros ? ms * 1000 : ms));
            cols[4].push_back(compact(r.document_key));
            cols[5].push_back(compact(r.full_document));
            cols[6].push_back(compact(r.resume_token));
            continue;
        }
        const std::int64_t unit = micros ? 1000000 : 1000;
        cols[0].push_back(text(r.operation));
        cols[1].push_back(text(r.database));
        cols[2].push_back(text(r.collection));
        cols[3].push_back(num(std::int64_t{r.cluster_time_seconds} * unit));
        cols[4].push_back(num(std::int64_t{r.cluster_time_increment}));
        std::optional<std::int64_t> wall = r.wall_time_ms;
        if (wall && micros)
            *wall *= 1000;
        cols[5].push_back(num(wall));
        cols[6].push_back(text(r.document_key));
        cols[7].push_back(text(r.full_document));
        cols[8].push_back(text(r.update_description));
        cols[9].push_back(text(r.full_document_before_change));
        cols[10].push_back(num(r.txn_number));
        cols[11].push_back(text(r.lsid));
        cols[12].push_back(text(r.resume_token));
    }
    return cols;
}

std::unique_ptr<parquet_encoder_factory> factory(const parquet_options& o) {
    std::unique_ptr<parquet_encoder_factory> f;
    diagnostics diag;
    EXPECT_FALSE(parquet_encoder_factory::create(o, f, diag)) << diag.message;
    return f;
}

std::string encode(const parquet_options& o, const event_list& events,
                   std::string_view key = "shop/orders/0.parquet") {
    return encode_events(*factory(o), events, key);
}

void expect_same_values(const parquet_file& pf, const event_list& events,
                        const parquet_options& o) {
    const auto expected = expected_columns(events, o);
    ASSERT_EQ(pf.columns.size(), expected.size());
    ASSERT_EQ(pf.meta[3].i, static_cast<std::int64_t>(events.size()));
    for (std::size_t c = 0; c < expected.size(); ++c) {
        const column_values& col = pf.columns[c];
        ASSERT_EQ(col.size(), events.size()) << col.name;
        for (std::size_t r = 0; r < events.size(); ++r) {
            if (expected[c][r].is_int) {
                ASSERT_EQ(col.ints.at(r), expected[c][r].num) << col.name << " row " << r;
            } else {
                ASSERT_EQ(col.text.at(r), expected[c][r].text) << col.name << " row " << r;
            }
        }
    }
}

const parquet_codec all_codecs[] = {parquet_codec::none, parquet_codec::snappy, parquet_codec::gzip,
                                    parquet_codec::zstd};

// ---------------------------------------------------------------------------------------
// Files.

TEST(Parquet, OptionsAndInfo) {
    auto f = factory(parquet_options{});
    ASSERT_TRUE(f);
    const auto info = f->info();
    EXPECT_EQ(info.extension, "parquet");
    EXPECT_EQ(info.content_type, "application/vnd.apache.parquet");
    EXPECT_TRUE(info.compresses_itself);
    EXPECT_EQ(f->options().codec, parquet_codec::zstd) << "zstd by default";
    EXPECT_EQ(f->level(), 3);
    EXPECT_EQ(f->columns().size(), tabular_column_count);

    parquet_options o;
    o.layout = parquet_layout::rigatoni;
    o.codec = parquet_codec::gzip;
    f = factory(o);
    EXPECT_EQ(f->level(), 6);
    EXPECT_EQ(f->columns().size(), 7u);
    o.level = 9;
    EXPECT_EQ(factory(o)->level(), 9);

    auto rejected = [](parquet_options bad, std::string_view what) {
        diagnostics diag;
        std::unique_ptr<parquet_encoder_factory> out;
        EXPECT_EQ(parquet_encoder_factory::create(bad, out, diag),
                  make_error_code(penne::errc::invalid_config))
            << what;
        EXPECT_FALSE(out);
        EXPECT_NE(diag.message.find(what), std::string::npos) << diag.message;
    };
    parquet_options bad;
    bad.codec = parquet_codec::gzip;
    bad.level = 10;
    rejected(bad, "parquet.level");
    bad.codec = parquet_codec::zstd;
    bad.level = 20;
    rejected(bad, "parquet.level");
    bad.level = -1;
    rejected(bad, "parquet.level");
    bad.codec = parquet_codec::snappy;
    bad.level = 1;
    rejected(bad, "parquet.level");
    bad = {};
    bad.page_bytes = 0;
    rejected(bad, "parquet.page_bytes");
    bad = {};
    bad.row_group_bytes = 0;
    rejected(bad, "parquet.row_group_bytes");
    bad = {};
    bad.dictionary_max_bytes = std::size_t(2) << 30;
    rejected(bad, "parquet.dictionary_max_bytes");
    bad = {};
    bad.layout = static_cast<parquet_layout>(7);
    rejected(bad, "parquet.layout");
    bad = {};
    bad.codec = static_cast<parquet_codec>(9);
    rejected(bad, "parquet.codec");

    parquet_codec c{};
    diagnostics diag;
    for (const auto codec : all_codecs) {
        EXPECT_FALSE(parse_parquet_codec(parquet_codec_name(codec), c, diag));
        EXPECT_EQ(c, codec);
    }
    EXPECT_EQ(parse_parquet_codec("lz4", c, diag), make_error_code(penne::errc::invalid_config));
    EXPECT_NE(diag.message.find("snappy"), std::string::npos);
}

TEST(Parquet, SchemaOfThePenneLayout) {
    for (const auto unit : {parquet_timestamp_unit::millis, parquet_timestamp_unit::micros}) {
        parquet_options o;
        o.timestamp_unit = unit;
        const auto pf = read_parquet(encode(o, {make_event(event_parts{})}));
        EXPECT_EQ(pf.meta[1].i, 1) << "format version";
        EXPECT_EQ(pf.meta[6].bin, "penne version " PENNE_VERSION_STRING);
        EXPECT_EQ(pf.meta[2].items[0][4].bin, "schema");
        ASSERT_EQ(pf.columns.size(), tabular_column_count);
        for (std::size_t c = 0; c < tabular_column_count; ++c)
            EXPECT_EQ(pf.columns[c].name, tabular_column_names[c]);
        // type, repetition, converted type (-1: none), logical type field (-1: none)
        struct shape {
            int type, repetition, converted, logical;
        };
        const int ts = unit == parquet_timestamp_unit::micros ? 10 : 9;
        const shape shapes[] = {
            {6, 0, 0, 1},   {6, 1, 0, 1}, {6, 1, 0, 1}, {2, 0, ts, 8}, {2, 0, -1, -1},
            {2, 1, ts, 8},  {6, 1, 0, 1}, {6, 1, 0, 1}, {6, 1, 0, 1},  {6, 1, 0, 1},
            {2, 1, -1, -1}, {6, 1, 0, 1}, {6, 0, 0, 1},
        };
        for (std::size_t c = 0; c < tabular_column_count; ++c) {
            const node& s = pf.columns[c].schema;
            SCOPED_TRACE(pf.columns[c].name);
            EXPECT_EQ(s[1].i, shapes[c].type);
            EXPECT_EQ(s[3].i, shapes[c].repetition);
            EXPECT_EQ(s.has(6) ? s[6].i : -1, shapes[c].converted);
            if (shapes[c].logical < 0) {
                EXPECT_FALSE(s.has(10));
                continue;
            }
            const node& lt = s[10];
            ASSERT_EQ(lt.fields.size(), 1u) << "a union sets one field";
            EXPECT_EQ(lt.fields[0].first, shapes[c].logical);
            if (shapes[c].logical == 8) {
                const node& t = lt[8];
                EXPECT_EQ(t[1].i, 1) << "isAdjustedToUTC";
                EXPECT_TRUE(t[2].has(unit == parquet_timestamp_unit::micros ? 2 : 1));
            }
        }
        // Every column declares the type-defined sort order.
        ASSERT_EQ(pf.meta[7].items.size(), tabular_column_count);
        for (const node& order : pf.meta[7].items)
            EXPECT_TRUE(order.has(1));
    }
}

TEST(Parquet, SchemaOfTheRigatoniLayout) {
    parquet_options o;
    o.layout = parquet_layout::rigatoni;
    o.timestamp_unit = parquet_timestamp_unit::micros;
    const auto pf = read_parquet(encode(o, {make_event(event_parts{})}));
    const char* names[] = {"operation",    "database",      "collection",  "cluster_time",
                           "document_key", "full_document", "resume_token"};
    const int repetition[] = {0, 0, 0, 0, 1, 1, 0};
    ASSERT_EQ(pf.columns.size(), 7u);
    for (std::size_t c = 0; c < 7; ++c) {
        EXPECT_EQ(pf.columns[c].name, names[c]);
        EXPECT_EQ(pf.columns[c].schema[3].i, repetition[c]) << names[c];
        EXPECT_EQ(pf.columns[c].schema[1].i, c == 3 ? 2 : 6) << names[c];
    }
    const node& t = pf.columns[3].schema[10][8];
    EXPECT_EQ(t[1].i, 0) << "Rigatoni's timestamps carried no time zone";
    EXPECT_TRUE(t[2].has(2)) << "micros";
}

TEST(Parquet, ReadsBackEveryColumnForEveryCodecAndLayout) {
    const event_list events = mixed_events(7, 300);
    for (const auto layout : {parquet_layout::penne, parquet_layout::rigatoni}) {
        for (const auto codec : all_codecs) {
            for (const auto unit :
                 {parquet_timestamp_unit::millis, parquet_timestamp_unit::micros}) {
                parquet_options o;
                o.layout = layout;
                o.codec = codec;
                o.timestamp_unit = unit;
                o.page_bytes = 2048;
                o.row_group_bytes = 64 * 1024;
                SCOPED_TRACE(std::string(parquet_codec_name(codec)) +
                             (layout == parquet_layout::rigatoni ? " rigatoni" : " penne") +
                             (unit == parquet_timestamp_unit::micros ? " micros" : " millis"));
                const std::string file = encode(o, events);
                parquet_file pf;
                ASSERT_NO_THROW(pf = read_parquet(file));
                expect_same_values(pf, events, o);
                EXPECT_GT(pf.meta[4].items.size(), 1u) << "several row groups";
                const int codec_id = codec == parquet_codec::none     ? 0
                                     : codec == parquet_codec::snappy ? 1
                                     : codec == parquet_codec::gzip   ? 2
                                                                      : 6;
                for (const auto& col : pf.columns) {
                    for (const auto& chunk : col.chunks)
                        EXPECT_EQ(chunk.meta[4].i, codec_id);
                }
            }
        }
    }
}

TEST(Parquet, CanonicalJsonMode) {
    const event_list events = mixed_events(11, 60);
    parquet_options o;
    o.mode = ejson_mode::canonical;
    const auto pf = read_parquet(encode(o, events));
    expect_same_values(pf, events, o);
    bool typed = false;
    for (const auto& v : pf.columns[7].text)
        typed = typed || (v && v->find("$numberInt") != std::string::npos);
    EXPECT_TRUE(typed) << "canonical Extended JSON wraps numbers";
}

TEST(Parquet, NullsUseDefinitionLevels) {
    event_parts all_null;
    all_null.op = "invalidate";
    all_null.db = nullptr;
    all_null.wall = std::nullopt;
    all_null.document_key = nullptr;
    event_parts full;
    full.full_document = R"({"_id": 42, "a": "b"})";
    full.update_description = R"({"updatedFields": {}})";
    full.before_change = R"({"_id": 42})";
    full.lsid = R"({"id": 1})";
    full.txn = -5;
    const event_list events = {make_event(all_null), make_event(full), make_event(all_null)};
    parquet_options o;
    o.codec = parquet_codec::none;
    const auto pf = read_parquet(encode(o, events));
    expect_same_values(pf, events, o);
    for (const auto& col : pf.columns) {
        const bool optional = col.schema[3].i == 1;
        const auto& stats = col.chunks.at(0).meta[12];
        EXPECT_EQ(stats[3].i, optional ? 2 : 0) << col.name << " null_count";
        if (!optional)
            continue;
        EXPECT_FALSE(col.text.empty() ? col.ints[0].has_value() : col.text[0].has_value());
    }
    EXPECT_EQ(pf.columns[10].ints[1], -5);
}

TEST(Parquet, AllNullColumnsAndTheEmptyBatch) {
    // A column chunk with only nulls has no dictionary page and no min/max.
    event_parts p;
    p.wall = std::nullopt;
    const auto pf = read_parquet(encode(parquet_options{}, {make_event(p), make_event(p)}));
    const auto& fd = pf.columns[7];
    ASSERT_EQ(fd.chunks.size(), 1u);
    EXPECT_FALSE(fd.chunks[0].meta.has(11));
    EXPECT_EQ(fd.chunks[0].meta[12][3].i, 2);
    EXPECT_FALSE(fd.chunks[0].meta[12].has(5));
    EXPECT_FALSE(fd.chunks[0].meta[12].has(6));

    for (const auto layout : {parquet_layout::penne, parquet_layout::rigatoni}) {
        parquet_options o;
        o.layout = layout;
        auto f = factory(o);
        auto enc = f->open("k");
        EXPECT_EQ(enc->buffered_bytes(), 4u) << "the magic";
        std::string out = "stale";
        enc->finish(out);
        parquet_file empty;
        ASSERT_NO_THROW(empty = read_parquet(out));
        EXPECT_EQ(empty.meta[3].i, 0);
        EXPECT_TRUE(empty.meta[4].items.empty());
        EXPECT_EQ(empty.columns.size(), f->columns().size());
    }
}

TEST(Parquet, DictionaryPagesAndFallbackToPlain) {
    // 40 distinct collection names of 10 bytes: 14 bytes each in the dictionary. With a
    // 200-byte limit the first 14 fit, the 15th forces PLAIN for the rest of the chunk.
    event_list events;
    std::vector<std::string> names;
    for (int i = 0; i < 120; ++i) {
        event_parts p;
        char name[16];
        std::snprintf(name, sizeof name, "coll%06d", i % 40);
        names.emplace_back(name);
        p.coll = names.back().c_str();
        p.op = i % 2 ? "update" : "insert";
        events.push_back(make_event(p));
    }
    parquet_options o;
    o.dictionary_max_bytes = 200;
    o.page_bytes = 64;
    for (const auto codec : all_codecs) {
        o.codec = codec;
        const auto pf = read_parquet(encode(o, events));
        expect_same_values(pf, events, o);
        ASSERT_EQ(pf.columns[2].chunks.size(), 1u);
        const auto& coll = pf.columns[2].chunks[0];
        ASSERT_GE(coll.pages.size(), 3u);
        EXPECT_EQ(coll.pages[0].type, 2) << "dictionary page first";
        EXPECT_EQ(coll.pages[0].encoding, 2) << "PLAIN_DICTIONARY";
        EXPECT_EQ(coll.pages[0].values, 14);
        EXPECT_EQ(coll.pages[1].encoding, 8) << "RLE_DICTIONARY data pages";
        EXPECT_EQ(coll.pages.back().encoding, 0) << "PLAIN after the fallback";
        std::int64_t dict_values = 0;
        bool plain_seen = false;
        for (std::size_t k = 1; k < coll.pages.size(); ++k) {
            if (coll.pages[k].encoding == 8) {
                EXPECT_FALSE(plain_seen) << "no dictionary page after a PLAIN one";
                dict_values += coll.pages[k].values;
            } else {
                plain_seen = true;
            }
        }
        EXPECT_EQ(dict_values, 14);
        // The encodings list names every encoding used, ascending.
        std::vector<std::int64_t> encodings;
        for (const auto& e : coll.meta[2].items)
            encodings.push_back(e.i);
        EXPECT_EQ(encodings, (std::vector<std::int64_t>{0, 2, 3, 8}));

        // The operation column keeps its two-entry dictionary throughout.
        const auto& op = pf.columns[0].chunks[0];
        EXPECT_EQ(op.pages[0].type, 2);
        EXPECT_EQ(op.pages[0].values, 2);
        for (std::size_t k = 1; k < op.pages.size(); ++k)
            EXPECT_EQ(op.pages[k].encoding, 8);
        encodings.clear();
        for (const auto& e : op.meta[2].items)
            encodings.push_back(e.i);
        EXPECT_EQ(encodings, (std::vector<std::int64_t>{2, 8})) << "required: no levels";

        // Integer columns are PLAIN.
        for (const auto& pg : pf.columns[3].chunks[0].pages)
            EXPECT_EQ(pg.encoding, 0);
    }

    // With no dictionary budget every string column is PLAIN from the start; a value larger
    // than the budget sends a column to PLAIN at once.
    o.dictionary_max_bytes = 0;
    auto pf = read_parquet(encode(o, events));
    expect_same_values(pf, events, o);
    for (const auto& col : pf.columns) {
        EXPECT_FALSE(col.chunks[0].meta.has(11)) << col.name;
        for (const auto& pg : col.chunks[0].pages)
            EXPECT_EQ(pg.encoding, 0) << col.name;
    }
    o.dictionary_max_bytes = 10;
    pf = read_parquet(encode(o, events));
    expect_same_values(pf, events, o);
    EXPECT_FALSE(pf.columns[2].chunks[0].meta.has(11));
    EXPECT_TRUE(pf.columns[0].chunks[0].meta.has(11)) << "\"insert\" fits in 10 bytes";
}

TEST(Parquet, RowGroupsAndPagesFollowTheSizeLimits) {
    const event_list events = mixed_events(3, 400);
    parquet_options o;
    o.codec = parquet_codec::snappy;
    o.row_group_bytes = 32 * 1024;
    o.page_bytes = 1024;
    o.dictionary_max_bytes = 4096;  // the JSON columns fall back to PLAIN pages early
    const auto pf = read_parquet(encode(o, events));
    expect_same_values(pf, events, o);
    const auto& groups = pf.meta[4].items;
    ASSERT_GT(groups.size(), 3u);
    std::int64_t offset = 4;
    for (std::size_t g = 0; g < groups.size(); ++g) {
        const node& rg = groups[g];
        EXPECT_EQ(rg[7].i, static_cast<std::int64_t>(g)) << "ordinal";
        EXPECT_EQ(rg[5].i, offset) << "row groups are contiguous";
        std::int64_t uncompressed = 0, compressed = 0;
        for (const node& chunk : rg[1].items) {
            uncompressed += chunk[3][6].i;
            compressed += chunk[3][7].i;
        }
        EXPECT_EQ(rg[2].i, uncompressed);
        EXPECT_EQ(rg[6].i, compressed);
        offset += compressed;
        if (g + 1 < groups.size()) {
            EXPECT_GE(uncompressed, o.row_group_bytes / 2);
            EXPECT_LT(uncompressed, o.row_group_bytes + 8 * 1024) << "closed after the row";
        }
    }
    // The full_document column is cut into many pages per row group; each PLAIN page holds
    // page_bytes of values plus at most one value.
    const auto& fd = pf.columns[7].chunks[0];
    EXPECT_GT(fd.pages.size(), 4u);
    std::size_t largest_value = 0;
    for (const auto& v : pf.columns[7].text)
        largest_value = std::max(largest_value, v ? v->size() + 4 : 0);
    for (const auto& pg : fd.pages) {
        if (pg.type == 0 && pg.encoding == 0) {
            EXPECT_LT(pg.uncompressed, o.page_bytes + largest_value + 64);
        }
    }

    // The page value limit: 20,000 values per page at most.
    event_list same(45000, make_event(event_parts{}));
    parquet_options big;
    const auto pf2 = read_parquet(encode(big, same));
    const auto& op = pf2.columns[0].chunks.at(0);
    ASSERT_EQ(op.pages.size(), 4u) << "dictionary page + 20000 + 20000 + 5000";
    EXPECT_EQ(op.pages[1].values, 20000);
    EXPECT_EQ(op.pages[3].values, 5000);
}

TEST(Parquet, StatisticsUseTheColumnOrders) {
    event_list events;
    const char* colls[] = {"m", "\xc3\xa9", "Z", "a"};  // unsigned order: Z < a < m < é
    const std::int64_t walls[] = {5, -7000, 1700000000000, 0};
    for (int i = 0; i < 4; ++i) {
        event_parts p;
        p.coll = colls[i];
        p.wall = walls[i];
        p.secs = 100 + static_cast<std::uint32_t>(i) * 10;
        p.txn = i == 2 ? std::optional<std::int64_t>(-3) : std::nullopt;
        events.push_back(make_event(p));
    }
    parquet_options o;
    o.page_bytes = 1;  // one value per page: page statistics differ from the chunk's
    const auto pf = read_parquet(encode(o, events));
    auto le = [](std::int64_t v) {
        std::string s;
        for (int i = 0; i < 8; ++i)
            s += static_cast<char>(static_cast<std::uint64_t>(v) >> (8 * i));
        return s;
    };
    const node& coll = pf.columns[2].chunks[0].meta[12];
    EXPECT_EQ(coll[6].bin, "Z");
    EXPECT_EQ(coll[5].bin, "\xc3\xa9") << "bytes compare unsigned";
    EXPECT_EQ(coll[3].i, 0);
    EXPECT_EQ(coll[7].i, 1);
    EXPECT_EQ(coll[8].i, 1);
    const node& wall = pf.columns[5].chunks[0].meta[12];
    EXPECT_EQ(wall[6].bin, le(-7000)) << "signed order";
    EXPECT_EQ(wall[5].bin, le(1700000000000));
    const node& ct = pf.columns[3].chunks[0].meta[12];
    EXPECT_EQ(ct[6].bin, le(100000));
    EXPECT_EQ(ct[5].bin, le(130000));
    const node& txn = pf.columns[10].chunks[0].meta[12];
    EXPECT_EQ(txn[3].i, 3);
    EXPECT_EQ(txn[6].bin, le(-3));
    EXPECT_EQ(txn[5].bin, le(-3));
    // Page statistics: one value each.
    const auto& pages = pf.columns[2].chunks[0].pages;
    ASSERT_EQ(pages.size(), 5u);
    for (int i = 0; i < 4; ++i) {
        EXPECT_EQ(pages[i + 1].stats[6].bin, colls[i]);
        EXPECT_EQ(pages[i + 1].stats[5].bin, colls[i]);
        EXPECT_EQ(pages[i + 1].stats[3].i, 0);
    }

    // Values longer than 4096 bytes leave min/max out; the null count stays.
    event_parts big;
    const std::string long_doc = R"({"s": ")" + std::string(5000, 'x') + R"("})";
    big.full_document = long_doc.c_str();
    const auto pf2 = read_parquet(encode(parquet_options{}, {make_event(big)}));
    const node& fd = pf2.columns[7].chunks[0].meta[12];
    EXPECT_FALSE(fd.has(5));
    EXPECT_FALSE(fd.has(6));
    EXPECT_EQ(fd[3].i, 0);
}

TEST(Parquet, DeterministicBytes) {
    const event_list events = mixed_events(5, 200);
    for (const auto codec : all_codecs) {
        parquet_options o;
        o.codec = codec;
        o.page_bytes = 4096;
        const std::string a = encode(o, events, "a/b/1.parquet");
        const std::string b = encode(o, events, "other/key.parquet");
        EXPECT_EQ(a, b) << parquet_codec_name(codec);
    }
}

TEST(Parquet, CodecLevelIsHonoured) {
    event_list events = mixed_events(9, 300);
    for (const auto codec : {parquet_codec::gzip, parquet_codec::zstd}) {
        parquet_options lo, hi;
        lo.codec = hi.codec = codec;
        lo.level = 1;
        hi.level = codec == parquet_codec::gzip ? 9 : 19;
        const std::string a = encode(lo, events);
        const std::string b = encode(hi, events);
        EXPECT_NE(a, b) << parquet_codec_name(codec);
        EXPECT_LE(b.size(), a.size()) << parquet_codec_name(codec);
        expect_same_values(read_parquet(a), events, lo);
        expect_same_values(read_parquet(b), events, hi);
    }
    parquet_options none;
    none.codec = parquet_codec::none;
    parquet_options zstd;
    EXPECT_LT(encode(zstd, events).size(), encode(none, events).size());
}

TEST(Parquet, ARejectedEventLeavesTheBatchUnchanged) {
    parquet_options o;
    o.timestamp_unit = parquet_timestamp_unit::micros;
    auto f = factory(o);
    auto enc = f->open("k");
    diagnostics diag;
    const auto good = make_event(event_parts{});
    ASSERT_FALSE(enc->append(event_of(good), diag));
    const std::size_t before = enc->buffered_bytes();

    auto broken = good;
    broken.back() = 1;  // no terminator
    EXPECT_EQ(enc->append(event_of(broken), diag), make_error_code(penne::errc::unencodable_event));
    EXPECT_FALSE(diag.message.empty());
    EXPECT_EQ(enc->buffered_bytes(), before);

    // A wall time whose microseconds overflow an int64.
    event_parts far;
    far.wall = std::numeric_limits<std::int64_t>::max() / 100;
    const auto far_event = make_event(far);
    diag.clear();
    EXPECT_EQ(enc->append(event_of(far_event), diag),
              make_error_code(penne::errc::unencodable_event));
    EXPECT_NE(diag.message.find("wallTime"), std::string::npos) << diag.message;
    EXPECT_EQ(enc->buffered_bytes(), before);

    ASSERT_FALSE(enc->append(event_of(good), diag));
    std::string out;
    enc->finish(out);
    EXPECT_EQ(out, encode(o, {good, good}));

    // With millisecond timestamps the same event is fine.
    parquet_options ms;
    const auto pf = read_parquet(encode(ms, {far_event}));
    EXPECT_EQ(pf.columns[5].ints[0], far.wall);
}

TEST(Parquet, BufferedBytesCountWhatTheBatchHolds) {
    const event_list events = mixed_events(13, 200);
    parquet_options o;
    o.codec = parquet_codec::none;
    o.dictionary_max_bytes = 0;
    o.row_group_bytes = 16 * 1024;
    auto f = factory(o);
    auto enc = f->open("k");
    diagnostics diag;
    std::size_t json_bytes = 0;
    tabular_extractor ex;
    std::size_t last = enc->buffered_bytes();
    for (const auto& e : events) {
        ASSERT_FALSE(enc->append(event_of(e), diag));
        tabular_row r;
        ASSERT_FALSE(ex.extract(event_of(e), r, diag));
        for (const auto& v : {r.document_key, r.full_document, r.update_description,
                              r.full_document_before_change, r.lsid})
            json_bytes += v ? v->size() : 0;
        json_bytes += r.resume_token.size();
        const std::size_t now = enc->buffered_bytes();
        EXPECT_GT(now, last);
        last = now;
    }
    EXPECT_GE(last, json_bytes) << "uncompressed, undictionaried values are all held";
    std::string out;
    enc->finish(out);
    EXPECT_LE(last, out.size()) << "the footer is not counted yet";
}

}  // namespace
}  // namespace penne::formats
