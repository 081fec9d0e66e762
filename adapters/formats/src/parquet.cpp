#include <penne/formats/compress.hpp>
#include <penne/formats/parquet.hpp>
#include <penne/formats/tabular.hpp>
#include <penne/version.hpp>

#include "detail/parquet_rle.hpp"
#include "detail/parquet_thrift.hpp"
#include "detail/rigatoni.hpp"

#include <snappy.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <functional>
#include <new>
#include <optional>
#include <vector>

namespace penne::formats {

namespace parquet_detail {

void rle_encoder::put(std::uint32_t v) {
    if (run_len_ != 0 && v == run_value_) {
        ++run_len_;
        return;
    }
    commit_run();
    run_value_ = v;
    run_len_ = 1;
}

// Places the finished run of run_len_ × run_value_: first it completes a partly filled
// group (a bit-packed run holds whole groups of 8), then what is left becomes an RLE run
// when it is long enough to pay off, or the start of the next group otherwise.
void rle_encoder::commit_run() {
    while (group_n_ != 0 && run_len_ != 0) {
        group_[group_n_++] = run_value_;
        --run_len_;
        if (group_n_ == 8)
            pack_group();
    }
    if (run_len_ == 0)
        return;
    if (run_len_ >= 8) {
        flush_packed();
        append_varint(run_len_ << 1, body_);
        for (unsigned b = 0; b < (width_ + 7) / 8; ++b)
            body_ += static_cast<char>(run_value_ >> (8 * b));
    } else {
        // group_n_ is 0 here, so fewer than 8 values always fit.
        while (run_len_ != 0) {
            group_[group_n_++] = run_value_;
            --run_len_;
        }
    }
    run_len_ = 0;
}

void rle_encoder::pack_group() {
    std::uint64_t acc = 0;
    unsigned bits = 0;
    for (unsigned i = 0; i < 8; ++i) {
        acc |= std::uint64_t{group_[i]} << bits;
        bits += width_;
        while (bits >= 8) {
            packed_ += static_cast<char>(acc & 0xFF);
            acc >>= 8;
            bits -= 8;
        }
    }
    group_n_ = 0;
    if (++groups_ == 63)
        flush_packed();
}

void rle_encoder::flush_packed() {
    if (groups_ == 0)
        return;
    append_varint((std::uint64_t{groups_} << 1) | 1, body_);
    body_ += packed_;
    packed_.clear();
    groups_ = 0;
}

void rle_encoder::finish(std::string& out) {
    commit_run();
    if (group_n_ != 0) {
        while (group_n_ < 8)
            group_[group_n_++] = 0;  // padding: the reader knows the real count
        pack_group();
    }
    flush_packed();
    out += body_;
    body_.clear();
    run_len_ = 0;
}

void append_rle_hybrid(std::span<const std::uint32_t> values, unsigned bit_width,
                       std::string& out) {
    rle_encoder e(bit_width);
    for (const std::uint32_t v : values)
        e.put(v);
    e.finish(out);
}

}  // namespace parquet_detail

namespace {

using parquet_detail::compact_type;
using parquet_detail::compact_writer;

// Values of parquet.thrift's enums that the writer uses.
namespace pq {
constexpr int type_int64 = 2;
constexpr int type_byte_array = 6;
constexpr int required = 0;
constexpr int optional = 1;
constexpr int converted_utf8 = 0;
constexpr int converted_timestamp_millis = 9;
constexpr int converted_timestamp_micros = 10;
constexpr int plain = 0;
constexpr int plain_dictionary = 2;
constexpr int rle = 3;
constexpr int rle_dictionary = 8;
constexpr int data_page = 0;
constexpr int dictionary_page = 2;
}  // namespace pq

// A data page is also flushed at this many values, which keeps the dictionary indices
// buffered per page small and gives readers pages they can skip.
constexpr std::size_t page_max_values = 20000;
// min_value/max_value longer than this are left out of the statistics.
constexpr std::size_t stats_max_bytes = 4096;

enum class value_kind : std::uint8_t { text, int64 };
enum class annotation : std::uint8_t { none, string, timestamp };

struct column_def {
    std::string_view name;
    value_kind kind;
    bool optional;
    annotation logical;
    bool utc;  // timestamps: isAdjustedToUTC
};

constexpr column_def text_column(std::string_view name, bool optional) {
    return {name, value_kind::text, optional, annotation::string, false};
}

constexpr std::array<column_def, tabular_column_count> penne_defs = {{
    text_column("operation", false),
    text_column("database", true),
    text_column("collection", true),
    {"cluster_time", value_kind::int64, false, annotation::timestamp, true},
    {"cluster_time_increment", value_kind::int64, false, annotation::none, false},
    {"wall_time", value_kind::int64, true, annotation::timestamp, true},
    text_column("document_key", true),
    text_column("full_document", true),
    text_column("update_description", true),
    text_column("full_document_before_change", true),
    {"txn_number", value_kind::int64, true, annotation::none, false},
    text_column("lsid", true),
    text_column("resume_token", false),
}};

constexpr std::array<column_def, 7> rigatoni_defs = {{
    text_column("operation", false),
    text_column("database", false),
    text_column("collection", false),
    {"cluster_time", value_kind::int64, false, annotation::timestamp, false},
    text_column("document_key", true),
    text_column("full_document", true),
    text_column("resume_token", false),
}};

constexpr std::array<std::string_view, 7> rigatoni_names = {
    "operation",    "database",      "collection",   "cluster_time",
    "document_key", "full_document", "resume_token",
};

std::span<const column_def> defs_of(parquet_layout layout) noexcept {
    if (layout == parquet_layout::rigatoni)
        return rigatoni_defs;
    return penne_defs;
}

void append_le32(std::uint32_t v, std::string& out) {
    char b[4];
    for (int i = 0; i < 4; ++i)
        b[i] = static_cast<char>(v >> (8 * i));
    out.append(b, 4);
}

void append_le64(std::int64_t v, std::string& out) {
    char b[8];
    const auto u = static_cast<std::uint64_t>(v);
    for (int i = 0; i < 8; ++i)
        b[i] = static_cast<char>(u >> (8 * i));
    out.append(b, 8);
}

// Unsigned byte-wise order (the Parquet order of BYTE_ARRAY and STRING).
bool less_bytes(std::string_view a, std::string_view b) noexcept {
    const std::size_t n = std::min(a.size(), b.size());
    const int c = n == 0 ? 0 : std::memcmp(a.data(), b.data(), n);
    return c < 0 || (c == 0 && a.size() < b.size());
}

// Statistics of a page or a column chunk.
struct value_stats {
    std::int64_t nulls = 0;
    bool any = false;  // at least one non-null value
    std::int64_t imin = 0;
    std::int64_t imax = 0;
    std::string smin;
    std::string smax;

    void reset() noexcept {
        nulls = 0;
        any = false;
        smin.clear();
        smax.clear();
    }
    void add_int(std::int64_t v) noexcept {
        if (!any) {
            imin = imax = v;
            any = true;
        } else {
            imin = std::min(imin, v);
            imax = std::max(imax, v);
        }
    }
    void add_text(std::string_view v) {
        if (!any) {
            smin.assign(v);
            smax.assign(v);
            any = true;
        } else if (less_bytes(v, smin)) {
            smin.assign(v);
        } else if (less_bytes(smax, v)) {
            smax.assign(v);
        }
    }
    void merge(const value_stats& o, value_kind kind) {
        nulls += o.nulls;
        if (!o.any)
            return;
        if (kind == value_kind::int64) {
            add_int(o.imin);
            add_int(o.imax);
        } else {
            add_text(o.smin);
            add_text(o.smax);
        }
    }
    bool has_bounds(value_kind kind) const noexcept {
        return any && (kind == value_kind::int64 ||
                       (smin.size() <= stats_max_bytes && smax.size() <= stats_max_bytes));
    }
    // The fields of a Statistics struct (the caller opens and closes it).
    void write(compact_writer& w, value_kind kind, std::string& scratch) const {
        w.field_i64(3, nulls);
        if (!has_bounds(kind))
            return;
        if (kind == value_kind::int64) {
            scratch.clear();
            append_le64(imax, scratch);
            w.field_binary(5, scratch);
            scratch.clear();
            append_le64(imin, scratch);
            w.field_binary(6, scratch);
        } else {
            w.field_binary(5, smax);
            w.field_binary(6, smin);
        }
        w.field_bool(7, true);  // is_max_value_exact
        w.field_bool(8, true);  // is_min_value_exact
    }
};

// The distinct values of a string column chunk in first-seen order, kept PLAIN-encoded so
// the dictionary page is ready as it is, with an open-addressing index over them (no
// allocation per value; the table doubles at half load).
class text_dictionary {
public:
    static constexpr std::uint32_t absent = 0xFFFFFFFF;

    // The index of `v`, adding it when it is new and the dictionary's PLAIN bytes stay
    // within `max_bytes`; `absent` when it is new and does not fit.
    std::uint32_t find_or_add(std::string_view v, std::size_t max_bytes) {
        const std::size_t h = std::hash<std::string_view>{}(v);
        if (!slots_.empty()) {
            const std::size_t mask = slots_.size() - 1;
            for (std::size_t i = h & mask; slots_[i] != 0; i = (i + 1) & mask) {
                const entry& e = entries_[slots_[i] - 1];
                if (e.hash == h && view(e) == v)
                    return slots_[i] - 1;
            }
        }
        if (plain_.size() + 4 + v.size() > max_bytes)
            return absent;
        if ((entries_.size() + 1) * 2 > slots_.size())
            grow();
        const auto index = static_cast<std::uint32_t>(entries_.size());
        place(h, index);
        append_le32(static_cast<std::uint32_t>(v.size()), plain_);
        entries_.push_back({plain_.size(), h, static_cast<std::uint32_t>(v.size())});
        plain_.append(v);
        return index;
    }

    std::size_t size() const noexcept { return entries_.size(); }
    bool empty() const noexcept { return entries_.empty(); }
    const std::string& plain() const noexcept { return plain_; }
    std::size_t memory() const noexcept {
        return plain_.size() + entries_.size() * sizeof(entry) +
               slots_.size() * sizeof(std::uint32_t);
    }
    void clear() noexcept {
        plain_.clear();
        entries_.clear();
        std::fill(slots_.begin(), slots_.end(), 0);
    }

private:
    struct entry {
        std::size_t offset;  // of the value's bytes in plain_
        std::size_t hash;
        std::uint32_t size;
    };

    std::string_view view(const entry& e) const noexcept {
        return std::string_view(plain_).substr(e.offset, e.size);
    }
    void place(std::size_t h, std::uint32_t index) noexcept {
        const std::size_t mask = slots_.size() - 1;
        std::size_t i = h & mask;
        while (slots_[i] != 0)
            i = (i + 1) & mask;
        slots_[i] = index + 1;
    }
    void grow() {
        slots_.assign(std::max<std::size_t>(64, slots_.size() * 2), 0);
        for (std::uint32_t i = 0; i < entries_.size(); ++i)
            place(entries_[i].hash, i);
    }

    std::string plain_;  // each value as 4-byte little-endian length + bytes
    std::vector<entry> entries_;
    std::vector<std::uint32_t> slots_;  // 0: empty; otherwise entry index + 1
};

// Page compression; gzip and zstd borrow a context from the factory's pool per page.
class page_codec {
public:
    page_codec(parquet_codec codec, std::shared_ptr<compressor_pool> pool) noexcept
        : codec_(codec), pool_(std::move(pool)) {}

    // The compressed form of `body` (`body` itself for codec none), valid until the next
    // call.
    std::string_view compress(const std::string& body) {
        switch (codec_) {
            case parquet_codec::none:
                return body;
            case parquet_codec::snappy:
                out_.clear();
                snappy::Compress(body.data(), body.size(), &out_);
                return out_;
            case parquet_codec::gzip:
            case parquet_codec::zstd:
                // The libraries fail only when they cannot allocate.
                if (pool_->compress(body, out_))
                    throw std::bad_alloc();
                return out_;
        }
        return body;
    }

    int thrift_id() const noexcept {
        switch (codec_) {
            case parquet_codec::none:
                return 0;
            case parquet_codec::snappy:
                return 1;
            case parquet_codec::gzip:
                return 2;
            case parquet_codec::zstd:
                return 6;
        }
        return 0;
    }

private:
    parquet_codec codec_;
    std::shared_ptr<compressor_pool> pool_;
    std::string out_;
};

// What the footer needs to know about one column chunk.
struct chunk_meta {
    std::int64_t num_values = 0;
    std::int64_t uncompressed = 0;  // pages including their headers
    std::int64_t compressed = 0;
    std::int64_t data_page_offset = 0;
    std::optional<std::int64_t> dictionary_page_offset;
    unsigned encodings = 0;  // bit per Encoding value
    value_stats stats;
};

struct row_group_meta {
    std::vector<chunk_meta> columns;
    std::int64_t num_rows = 0;
    std::int64_t file_offset = 0;
    std::int64_t uncompressed = 0;
    std::int64_t compressed = 0;
};

// One column of the open row group: the page being filled, the compressed pages already
// flushed, the dictionary and the statistics.
class column_writer {
public:
    column_writer(const column_def& def, std::size_t page_bytes, std::size_t dictionary_max)
        : def_(def), page_bytes_(page_bytes), dictionary_max_(dictionary_max) {
        dict_mode_ = initial_dict_mode();
    }

    void put_null() {
        defs_.put(0);
        ++page_values_;
        ++page_stats_.nulls;
    }

    void put_int(std::int64_t v) {
        append_le64(v, values_);
        value_added();
        page_stats_.add_int(v);
    }

    void put_text(std::string_view v, page_codec& codec) {
        if (dict_mode_) {
            const std::uint32_t index = dict_.find_or_add(v, dictionary_max_);
            if (index != text_dictionary::absent) {
                indices_.push_back(index);
                value_added();
                page_stats_.add_text(v);
                return;
            }
            // The dictionary is full: the rest of this chunk is PLAIN.
            if (page_values_ != 0)
                flush_page(codec);
            dict_mode_ = false;
        }
        append_le32(static_cast<std::uint32_t>(v.size()), values_);
        values_.append(v);
        value_added();
        page_stats_.add_text(v);
    }

    // Flushes the page being filled once it is full.
    void end_row(page_codec& codec) {
        if (page_values_ >= page_max_values || page_size() >= page_bytes_)
            flush_page(codec);
    }

    // Uncompressed bytes of the chunk so far (what the row group limit counts).
    std::size_t chunk_bytes() const noexcept {
        return static_cast<std::size_t>(chunk_uncompressed_) + dict_.plain().size() + page_size();
    }

    std::size_t held_bytes() const noexcept {
        return values_.size() + indices_.size() * sizeof(std::uint32_t) + (page_values_ + 7) / 8 +
               dict_.memory() + pages_.size();
    }

    // Appends the chunk (dictionary page first) to `file`, describes it in `meta` and
    // starts the column afresh for the next row group.
    void close_chunk(page_codec& codec, std::string& file, chunk_meta& meta) {
        if (page_values_ != 0)
            flush_page(codec);
        meta = chunk_meta{};
        if (!dict_.empty()) {
            const std::string& plain = dict_.plain();
            const std::string_view body = codec.compress(plain);
            header_.clear();
            compact_writer w(header_);
            w.begin_struct();
            w.field_i32(1, pq::dictionary_page);
            w.field_i32(2, static_cast<std::int32_t>(plain.size()));
            w.field_i32(3, static_cast<std::int32_t>(body.size()));
            w.begin_field_struct(7);
            w.field_i32(1, static_cast<std::int32_t>(dict_.size()));
            w.field_i32(2, pq::plain_dictionary);
            w.end_struct();
            w.end_struct();
            meta.dictionary_page_offset = static_cast<std::int64_t>(file.size());
            file += header_;
            file.append(body);
            meta.uncompressed += static_cast<std::int64_t>(header_.size() + plain.size());
            meta.compressed += static_cast<std::int64_t>(header_.size() + body.size());
            meta.encodings |= 1u << pq::plain_dictionary;
        }
        meta.data_page_offset = static_cast<std::int64_t>(file.size());
        file += pages_;
        meta.num_values = chunk_values_;
        meta.uncompressed += chunk_uncompressed_;
        meta.compressed += chunk_compressed_;
        meta.encodings |= encodings_;
        std::swap(meta.stats, chunk_stats_);
        if (!meta.stats.has_bounds(def_.kind)) {
            // Nothing to keep for the footer but the null count.
            meta.stats.any = false;
            meta.stats.smin = std::string();
            meta.stats.smax = std::string();
        }

        pages_.clear();
        dict_.clear();
        dict_mode_ = initial_dict_mode();
        chunk_values_ = chunk_uncompressed_ = chunk_compressed_ = 0;
        encodings_ = 0;
        chunk_stats_.reset();
    }

    const column_def& def() const noexcept { return def_; }

private:
    bool initial_dict_mode() const noexcept {
        return def_.kind == value_kind::text && dictionary_max_ > 0;
    }

    void value_added() {
        if (def_.optional)
            defs_.put(1);
        ++page_values_;
    }

    // The page's encoded size, rounded up (an upper bound for bit-packed levels and
    // indices, which runs only make smaller).
    std::size_t page_size() const noexcept {
        std::size_t n = values_.size() + (def_.optional ? (page_values_ + 7) / 8 : 0);
        if (!indices_.empty()) {
            const std::size_t width = std::max(
                1u, parquet_detail::bit_width_of(static_cast<std::uint32_t>(dict_.size() - 1)));
            n += (indices_.size() * width + 7) / 8;
        }
        return n;
    }

    void flush_page(page_codec& codec) {
        body_.clear();
        if (def_.optional) {
            levels_.clear();
            defs_.finish(levels_);
            append_le32(static_cast<std::uint32_t>(levels_.size()), body_);
            body_ += levels_;
        }
        int encoding = pq::plain;
        if (!indices_.empty()) {
            // A bit width of at least 1: some readers mishandle 0 (a one-entry dictionary).
            const unsigned width = std::max(
                1u, parquet_detail::bit_width_of(static_cast<std::uint32_t>(dict_.size() - 1)));
            body_ += static_cast<char>(width);
            parquet_detail::append_rle_hybrid(indices_, width, body_);
            encoding = pq::rle_dictionary;
        } else {
            body_ += values_;
        }
        const std::string_view compressed = codec.compress(body_);

        header_.clear();
        compact_writer w(header_);
        w.begin_struct();
        w.field_i32(1, pq::data_page);
        w.field_i32(2, static_cast<std::int32_t>(body_.size()));
        w.field_i32(3, static_cast<std::int32_t>(compressed.size()));
        w.begin_field_struct(5);
        w.field_i32(1, static_cast<std::int32_t>(page_values_));
        w.field_i32(2, encoding);
        w.field_i32(3, pq::rle);  // definition levels
        w.field_i32(4, pq::rle);  // repetition levels (none: the schema is flat)
        w.begin_field_struct(5);
        page_stats_.write(w, def_.kind, scratch_);
        w.end_struct();
        w.end_struct();
        w.end_struct();

        pages_ += header_;
        pages_.append(compressed);
        chunk_uncompressed_ += static_cast<std::int64_t>(header_.size() + body_.size());
        chunk_compressed_ += static_cast<std::int64_t>(header_.size() + compressed.size());
        chunk_values_ += static_cast<std::int64_t>(page_values_);
        encodings_ |= 1u << encoding;
        if (def_.optional)
            encodings_ |= 1u << pq::rle;
        chunk_stats_.merge(page_stats_, def_.kind);

        page_stats_.reset();
        values_.clear();
        indices_.clear();
        page_values_ = 0;
    }

    column_def def_;
    std::size_t page_bytes_;
    std::size_t dictionary_max_;
    bool dict_mode_;

    // The page being filled.
    std::string values_;                  // PLAIN values
    std::vector<std::uint32_t> indices_;  // dictionary indices
    parquet_detail::rle_encoder defs_{1};
    std::size_t page_values_ = 0;  // including nulls
    value_stats page_stats_;

    // The column chunk of the open row group.
    text_dictionary dict_;
    std::string pages_;  // flushed pages: header + compressed body
    std::int64_t chunk_values_ = 0;
    std::int64_t chunk_uncompressed_ = 0;
    std::int64_t chunk_compressed_ = 0;
    unsigned encodings_ = 0;
    value_stats chunk_stats_;

    // Scratch, reused page after page.
    std::string body_;
    std::string levels_;
    std::string header_;
    std::string scratch_;
};

error_code out_of_range(const change_event& ev, diagnostics& diag) {
    diag.message = "change event";
    if (!ev.operation.empty()) {
        diag.message += " (";
        diag.message.append(ev.operation);
        diag.message += ')';
    }
    if (!ev.db.empty()) {
        diag.message += " in ";
        diag.message.append(ev.db);
        if (!ev.coll.empty()) {
            diag.message += '.';
            diag.message.append(ev.coll);
        }
    }
    diag.message +=
        " cannot be written as a Parquet row: wallTime is out of range for microsecond "
        "timestamps (choose parquet timestamp_unit millis)";
    return penne::errc::unencodable_event;
}

class parquet_encoder final : public batch_encoder {
public:
    parquet_encoder(const parquet_options& opts, std::shared_ptr<compressor_pool> pool)
        : opts_(opts), extractor_(opts.mode), codec_(opts.codec, std::move(pool)) {
        const auto defs = defs_of(opts.layout);
        columns_.reserve(defs.size());
        for (const auto& d : defs)
            columns_.emplace_back(d, opts.page_bytes, opts.dictionary_max_bytes);
        file_ = "PAR1";
    }

    error_code append(const change_event& ev, diagnostics& diag) override {
        // Everything that can fail is checked before the first column is touched, so a
        // rejected event leaves the batch unchanged.
        tabular_row row;
        if (auto ec = extractor_.extract(ev, row, diag))
            return ec;
        const bool micros = opts_.timestamp_unit == parquet_timestamp_unit::micros;
        if (opts_.layout == parquet_layout::rigatoni) {
            rigatoni_row(row, micros);
        } else {
            std::optional<std::int64_t> wall = row.wall_time_ms;
            if (wall && micros) {
                std::int64_t us;
                if (__builtin_mul_overflow(*wall, std::int64_t{1000}, &us))
                    return out_of_range(ev, diag);
                wall = us;
            }
            penne_row(row, wall, micros);
        }
        ++rows_in_group_;
        std::size_t group_bytes = 0;
        for (auto& c : columns_) {
            c.end_row(codec_);
            group_bytes += c.chunk_bytes();
        }
        if (group_bytes >= opts_.row_group_bytes)
            close_row_group();
        return {};
    }

    std::size_t buffered_bytes() const noexcept override {
        std::size_t n = file_.size();
        for (const auto& c : columns_)
            n += c.held_bytes();
        return n;
    }

    void finish(std::string& out) override {
        if (rows_in_group_ != 0)
            close_row_group();
        write_footer();
        out.swap(file_);
        file_ = std::string();
        columns_.clear();
        row_groups_.clear();
    }

private:
    void text(std::size_t col, std::string_view v) { columns_[col].put_text(v, codec_); }
    void maybe_text(std::size_t col, const std::optional<std::string_view>& v) {
        if (v) {
            text(col, *v);
        } else {
            columns_[col].put_null();
        }
    }
    void maybe_int(std::size_t col, const std::optional<std::int64_t>& v) {
        if (v) {
            columns_[col].put_int(*v);
        } else {
            columns_[col].put_null();
        }
    }

    void penne_row(const tabular_row& row, const std::optional<std::int64_t>& wall, bool micros) {
        const std::int64_t unit = micros ? 1'000'000 : 1000;
        text(0, row.operation);
        maybe_text(1, row.database);
        maybe_text(2, row.collection);
        columns_[3].put_int(std::int64_t{row.cluster_time_seconds} * unit);
        columns_[4].put_int(std::int64_t{row.cluster_time_increment});
        maybe_int(5, wall);
        maybe_text(6, row.document_key);
        maybe_text(7, row.full_document);
        maybe_text(8, row.update_description);
        maybe_text(9, row.full_document_before_change);
        maybe_int(10, row.txn_number);
        maybe_text(11, row.lsid);
        text(12, row.resume_token);
    }

    void rigatoni_row(const tabular_row& row, bool micros) {
        text(0, row.operation);
        text(1, row.database.value_or(std::string_view()));
        text(2, row.collection.value_or(std::string_view()));
        // Rigatoni's clusterTime: the second plus the increment taken as milliseconds.
        const std::int64_t ms =
            detail::rigatoni_cluster_time_ms(row.cluster_time_seconds, row.cluster_time_increment);
        columns_[3].put_int(micros ? ms * 1000 : ms);
        compact(4, row.document_key);
        compact(5, row.full_document);
        compact(6, row.resume_token);
    }

    void compact(std::size_t col, const std::optional<std::string_view>& json) {
        if (!json) {
            columns_[col].put_null();
            return;
        }
        scratch_.clear();
        detail::append_compact_json(*json, scratch_);
        text(col, scratch_);
    }

    void close_row_group() {
        row_group_meta rg;
        rg.num_rows = rows_in_group_;
        rg.file_offset = static_cast<std::int64_t>(file_.size());
        rg.columns.resize(columns_.size());
        for (std::size_t i = 0; i < columns_.size(); ++i) {
            columns_[i].close_chunk(codec_, file_, rg.columns[i]);
            rg.uncompressed += rg.columns[i].uncompressed;
            rg.compressed += rg.columns[i].compressed;
        }
        total_rows_ += rows_in_group_;
        rows_in_group_ = 0;
        row_groups_.push_back(std::move(rg));
    }

    void write_schema(compact_writer& w) const {
        const auto defs = defs_of(opts_.layout);
        w.begin_field_list(2, compact_type::structure, defs.size() + 1);
        w.begin_struct();
        w.field_binary(4, "schema");
        w.field_i32(5, static_cast<std::int32_t>(defs.size()));
        w.end_struct();
        const bool micros = opts_.timestamp_unit == parquet_timestamp_unit::micros;
        for (const auto& d : defs) {
            w.begin_struct();
            w.field_i32(1, d.kind == value_kind::text ? pq::type_byte_array : pq::type_int64);
            w.field_i32(3, d.optional ? pq::optional : pq::required);
            w.field_binary(4, d.name);
            if (d.logical == annotation::string) {
                w.field_i32(6, pq::converted_utf8);
                w.begin_field_struct(10);
                w.begin_field_struct(1);  // STRING
                w.end_struct();
                w.end_struct();
            } else if (d.logical == annotation::timestamp) {
                w.field_i32(
                    6, micros ? pq::converted_timestamp_micros : pq::converted_timestamp_millis);
                w.begin_field_struct(10);
                w.begin_field_struct(8);  // TIMESTAMP
                w.field_bool(1, d.utc);
                w.begin_field_struct(2);
                w.begin_field_struct(micros ? 2 : 1);  // MICROS or MILLIS
                w.end_struct();
                w.end_struct();
                w.end_struct();
                w.end_struct();
            }
            w.end_struct();
        }
    }

    void write_column_meta(compact_writer& w, const column_def& d, const chunk_meta& m,
                           std::string& scratch) const {
        w.field_i32(1, d.kind == value_kind::text ? pq::type_byte_array : pq::type_int64);
        std::size_t n = 0;
        for (unsigned e = 0; e < 32; ++e)
            n += (m.encodings >> e) & 1u;
        w.begin_field_list(2, compact_type::i32, n);
        for (unsigned e = 0; e < 32; ++e) {
            if ((m.encodings >> e) & 1u)
                w.element_i32(static_cast<std::int32_t>(e));
        }
        w.begin_field_list(3, compact_type::binary, 1);
        w.element_binary(d.name);
        w.field_i32(4, codec_.thrift_id());
        w.field_i64(5, m.num_values);
        w.field_i64(6, m.uncompressed);
        w.field_i64(7, m.compressed);
        w.field_i64(9, m.data_page_offset);
        if (m.dictionary_page_offset)
            w.field_i64(11, *m.dictionary_page_offset);
        w.begin_field_struct(12);
        m.stats.write(w, d.kind, scratch);
        w.end_struct();
    }

    void write_footer() {
        const auto defs = defs_of(opts_.layout);
        std::string meta;
        std::string scratch;
        compact_writer w(meta);
        w.begin_struct();
        w.field_i32(1, 1);  // version
        write_schema(w);
        w.field_i64(3, total_rows_);
        w.begin_field_list(4, compact_type::structure, row_groups_.size());
        for (std::size_t g = 0; g < row_groups_.size(); ++g) {
            const row_group_meta& rg = row_groups_[g];
            w.begin_struct();
            w.begin_field_list(1, compact_type::structure, rg.columns.size());
            for (std::size_t i = 0; i < rg.columns.size(); ++i) {
                w.begin_struct();
                w.field_i64(2, 0);  // file_offset: no ColumnMetaData outside the footer
                w.begin_field_struct(3);
                write_column_meta(w, defs[i], rg.columns[i], scratch);
                w.end_struct();
                w.end_struct();
            }
            w.field_i64(2, rg.uncompressed);
            w.field_i64(3, rg.num_rows);
            w.field_i64(5, rg.file_offset);
            w.field_i64(6, rg.compressed);
            if (g <= 32767)
                w.field_i16(7, static_cast<std::int16_t>(g));
            w.end_struct();
        }
        w.field_binary(6, "penne version " PENNE_VERSION_STRING);
        w.begin_field_list(7, compact_type::structure, defs.size());
        for (std::size_t i = 0; i < defs.size(); ++i) {
            w.begin_struct();
            w.begin_field_struct(1);  // TypeDefinedOrder
            w.end_struct();
            w.end_struct();
        }
        w.end_struct();
        file_ += meta;
        append_le32(static_cast<std::uint32_t>(meta.size()), file_);
        file_ += "PAR1";
    }

    parquet_options opts_;
    tabular_extractor extractor_;
    page_codec codec_;
    std::vector<column_writer> columns_;
    std::vector<row_group_meta> row_groups_;
    std::int64_t rows_in_group_ = 0;
    std::int64_t total_rows_ = 0;
    std::string file_;
    std::string scratch_;  // one compact JSON value at a time
};

constexpr std::size_t gib = std::size_t(1) << 30;

}  // namespace

std::string_view parquet_codec_name(parquet_codec c) noexcept {
    switch (c) {
        case parquet_codec::none:
            return "none";
        case parquet_codec::snappy:
            return "snappy";
        case parquet_codec::gzip:
            return "gzip";
        case parquet_codec::zstd:
            return "zstd";
    }
    return "none";
}

error_code parse_parquet_codec(std::string_view name, parquet_codec& out, diagnostics& diag) {
    for (const auto c :
         {parquet_codec::none, parquet_codec::snappy, parquet_codec::gzip, parquet_codec::zstd}) {
        if (name == parquet_codec_name(c)) {
            out = c;
            return {};
        }
    }
    diag.message = "parquet.codec must be one of none, snappy, gzip, zstd";
    return penne::errc::invalid_config;
}

error_code validate(const parquet_options& opts, diagnostics& diag) {
    auto bad = [&](const char* what) {
        diag.message = what;
        return make_error_code(penne::errc::invalid_config);
    };
    if (opts.layout != parquet_layout::penne && opts.layout != parquet_layout::rigatoni)
        return bad("parquet.layout must be \"penne\" or \"rigatoni\"");
    if (opts.mode != ejson_mode::relaxed && opts.mode != ejson_mode::canonical)
        return bad("parquet.json_mode must be \"relaxed\" or \"canonical\"");
    if (opts.timestamp_unit != parquet_timestamp_unit::millis &&
        opts.timestamp_unit != parquet_timestamp_unit::micros)
        return bad("parquet.timestamp_unit must be \"millis\" or \"micros\"");
    switch (opts.codec) {
        case parquet_codec::none:
        case parquet_codec::snappy:
            if (opts.level != 0)
                return bad("parquet.level must be 0 for codecs none and snappy");
            break;
        case parquet_codec::gzip:
            if (opts.level < 0 || opts.level > 9)
                return bad("parquet.level must be 1-9 for gzip (0 for the default, 6)");
            break;
        case parquet_codec::zstd:
            if (opts.level < 0 || opts.level > 19)
                return bad("parquet.level must be 1-19 for zstd (0 for the default, 3)");
            break;
        default:
            return bad("parquet.codec must be one of none, snappy, gzip, zstd");
    }
    if (opts.row_group_bytes == 0 || opts.row_group_bytes > 4 * gib)
        return bad("parquet.row_group_bytes must be between 1 byte and 4 GiB");
    if (opts.page_bytes == 0 || opts.page_bytes > gib)
        return bad("parquet.page_bytes must be between 1 byte and 1 GiB");
    if (opts.dictionary_max_bytes > gib)
        return bad("parquet.dictionary_max_bytes must be at most 1 GiB");
    return {};
}

parquet_encoder_factory::parquet_encoder_factory(const parquet_options& opts, int level)
    : opts_(opts), level_(level) {
    if (opts.codec == parquet_codec::gzip || opts.codec == parquet_codec::zstd) {
        compression_options c;
        c.codec = opts.codec == parquet_codec::gzip ? codec::gzip : codec::zstd;
        c.level = level;
        pool_ = std::make_shared<compressor_pool>(c);
    }
}

parquet_encoder_factory::~parquet_encoder_factory() = default;

error_code parquet_encoder_factory::create(const parquet_options& opts,
                                           std::unique_ptr<parquet_encoder_factory>& out,
                                           diagnostics& diag) {
    if (auto ec = validate(opts, diag))
        return ec;
    int level = opts.level;
    if (level == 0) {
        if (opts.codec == parquet_codec::gzip)
            level = default_level(codec::gzip);
        if (opts.codec == parquet_codec::zstd)
            level = default_level(codec::zstd);
    }
    out.reset(new parquet_encoder_factory(opts, level));
    return {};
}

encoder_info parquet_encoder_factory::info() const noexcept {
    return {"parquet", "application/vnd.apache.parquet", true};
}

std::span<const std::string_view> parquet_encoder_factory::columns() const noexcept {
    if (opts_.layout == parquet_layout::rigatoni)
        return rigatoni_names;
    return tabular_column_names;
}

std::unique_ptr<batch_encoder> parquet_encoder_factory::open(std::string_view) const {
    return std::make_unique<parquet_encoder>(opts_, pool_);
}

}  // namespace penne::formats
