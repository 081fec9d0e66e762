#include <penne/formats/csv.hpp>
#include <penne/formats/tabular.hpp>

#include "detail/rigatoni.hpp"

#include <array>
#include <charconv>
#include <cstring>

namespace penne::formats {
namespace {

constexpr std::array<std::string_view, 7> rigatoni_columns = {
    "operation",    "database",      "collection",   "cluster_time",
    "document_key", "full_document", "resume_token",
};

template <typename Int>
void append_int(Int v, std::string& out) {
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
}

class csv_encoder final : public batch_encoder {
public:
    csv_encoder(const csv_options& opts, csv_line_ending ending,
                std::span<const std::string_view> columns)
        : layout_(opts.layout),
          delimiter_(opts.delimiter),
          eol_(ending == csv_line_ending::crlf ? "\r\n" : "\n"),
          extractor_(opts.mode) {
        buf_.reserve(opts.initial_capacity);
        for (std::size_t i = 0; i < columns.size(); ++i) {
            if (i != 0)
                buf_ += delimiter_;
            append_csv_field(columns[i], delimiter_, buf_);
        }
        buf_.append(eol_);
    }

    error_code append(const change_event& ev, diagnostics& diag) override {
        // Extraction reads and validates the whole event before a byte is written, so a
        // rejected event leaves the batch unchanged.
        tabular_row row;
        if (auto ec = extractor_.extract(ev, row, diag))
            return ec;
        if (layout_ == csv_layout::rigatoni) {
            rigatoni_row(row);
        } else {
            penne_row(row);
        }
        buf_.append(eol_);
        return {};
    }

    std::size_t buffered_bytes() const noexcept override { return buf_.size(); }
    std::size_t held_bytes() const noexcept override { return buf_.capacity(); }
    void reserve(std::size_t bytes) override { buf_.reserve(bytes); }

    void finish(std::string& out) override {
        out.swap(buf_);
        buf_.clear();
        buf_.shrink_to_fit();
    }

private:
    void text(std::string_view s) { append_csv_field(s, delimiter_, buf_); }
    void maybe(const std::optional<std::string_view>& s) {
        if (s)
            text(*s);
    }
    void next() { buf_ += delimiter_; }

    void penne_row(const tabular_row& row) {
        text(row.operation);
        next();
        maybe(row.database);
        next();
        maybe(row.collection);
        next();
        // Formatted values go through the field writer too: a delimiter such as '-', ':'
        // or a digit would otherwise split them.
        scratch_.clear();
        append_iso8601_ms(std::int64_t{row.cluster_time_seconds} * 1000, scratch_);
        text(scratch_);
        next();
        scratch_.clear();
        append_int(row.cluster_time_increment, scratch_);
        text(scratch_);
        next();
        if (row.wall_time_ms) {
            scratch_.clear();
            append_iso8601_ms(*row.wall_time_ms, scratch_);
            text(scratch_);
        }
        next();
        maybe(row.document_key);
        next();
        maybe(row.full_document);
        next();
        maybe(row.update_description);
        next();
        maybe(row.full_document_before_change);
        next();
        if (row.txn_number) {
            scratch_.clear();
            append_int(*row.txn_number, scratch_);
            text(scratch_);
        }
        next();
        maybe(row.lsid);
        next();
        text(row.resume_token);
    }

    void rigatoni_row(const tabular_row& row) {
        text(detail::rigatoni_debug_operation(row.operation));
        next();
        maybe(row.database);
        next();
        maybe(row.collection);
        next();
        scratch_.clear();
        detail::append_rigatoni_time(row.cluster_time_seconds, row.cluster_time_increment,
                                     detail::rigatoni_utc_suffix::offset, scratch_);
        text(scratch_);
        next();
        compact(row.document_key);
        next();
        compact(row.full_document);
        next();
        compact(row.resume_token);
    }

    void compact(const std::optional<std::string_view>& json) {
        if (!json)
            return;
        scratch_.clear();
        detail::append_compact_json(*json, scratch_);
        text(scratch_);
    }

    csv_layout layout_;
    char delimiter_;
    std::string_view eol_;
    tabular_extractor extractor_;
    std::string scratch_;  // one formatted field at a time
    std::string buf_;
};

}  // namespace

void append_csv_field(std::string_view field, char delimiter, std::string& out) {
    const char* p = field.data();
    const std::size_t n = field.size();
    std::size_t i = 0;
    while (i < n) {
        const char c = p[i];
        if (c == '"' || c == delimiter || c == '\n' || c == '\r')
            break;
        ++i;
    }
    if (i == n) {
        out.append(field);
        return;
    }
    // Room for the worst case (every byte a quote), written through a pointer. A byte loop
    // beats memchr + memcpy here: JSON has a quote every few bytes.
    const std::size_t base = out.size();
    out.resize(base + 2 * n + 2);
    char* d = out.data() + base;
    *d++ = '"';
    std::memcpy(d, p, i);
    d += i;
    for (; i < n; ++i) {
        const char c = p[i];
        *d++ = c;
        if (c == '"')
            *d++ = '"';
    }
    *d++ = '"';
    out.resize(static_cast<std::size_t>(d - out.data()));
}

error_code validate(const csv_options& opts, diagnostics& diag) {
    // A byte from 0x80 up is part of a multi-byte UTF-8 sequence, never a character.
    const auto d = static_cast<unsigned char>(opts.delimiter);
    if (d == '"' || d == '\r' || d == '\n' || d >= 0x80) {
        diag.message =
            "csv.delimiter must be a single ASCII character other than the double quote, CR "
            "and LF";
        return penne::errc::invalid_config;
    }
    if (opts.layout != csv_layout::penne && opts.layout != csv_layout::rigatoni) {
        diag.message = "csv.layout must be \"penne\" or \"rigatoni\"";
        return penne::errc::invalid_config;
    }
    if (opts.line_ending && *opts.line_ending != csv_line_ending::crlf &&
        *opts.line_ending != csv_line_ending::lf) {
        diag.message = "csv.line_ending must be \"crlf\" or \"lf\"";
        return penne::errc::invalid_config;
    }
    if (opts.mode != ejson_mode::relaxed && opts.mode != ejson_mode::canonical) {
        diag.message = "csv.json_mode must be \"relaxed\" or \"canonical\"";
        return penne::errc::invalid_config;
    }
    return {};
}

error_code csv_encoder_factory::create(const csv_options& opts,
                                       std::unique_ptr<csv_encoder_factory>& out,
                                       diagnostics& diag) {
    if (auto ec = validate(opts, diag))
        return ec;
    out.reset(new csv_encoder_factory(opts));
    return {};
}

encoder_info csv_encoder_factory::info() const noexcept {
    return {"csv", "text/csv", false};
}

csv_line_ending csv_encoder_factory::line_ending() const noexcept {
    if (opts_.line_ending)
        return *opts_.line_ending;
    return opts_.layout == csv_layout::rigatoni ? csv_line_ending::lf : csv_line_ending::crlf;
}

std::span<const std::string_view> csv_encoder_factory::columns() const noexcept {
    if (opts_.layout == csv_layout::rigatoni)
        return rigatoni_columns;
    return tabular_column_names;
}

std::unique_ptr<batch_encoder> csv_encoder_factory::open(std::string_view) const {
    return std::make_unique<csv_encoder>(opts_, line_ending(), columns());
}

}  // namespace penne::formats
