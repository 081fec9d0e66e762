#pragma once
// The CSV format (DESIGN §9, issue 7): RFC 4180 text, one header row and then one row per
// change event, in one of two column layouts.
//
// - layout penne (default): the 13 columns of the common tabular schema (tabular.hpp) in
//   schema order. Timestamps are ISO-8601 UTC with milliseconds
//   ("2026-11-22T05:33:37.123Z"), integers in decimal, documents as Extended JSON text in
//   libbson's spelling (relaxed or canonical as configured). Null is an empty field.
// - layout rigatoni: the seven columns of Rigatoni's CSV writer, for users migrating from
//   it: operation (Rigatoni's spelling: "Insert", "DropDatabase", …), database,
//   collection, cluster_time (RFC 3339 with "+00:00"; the increment as milliseconds, as
//   Rigatoni derived it), document_key, full_document, resume_token, the JSON columns
//   without insignificant spaces. Known differences that remain: Rigatoni rendered
//   documents through serde_json (shortest round-trip doubles, canonical `$date`, its own
//   forms for some other BSON types) where penne writes Extended JSON in the configured
//   mode; operation types Rigatoni did not know are written as MongoDB spells
//   them; for increments of 1000 and more, where Rigatoni substituted the wall clock of
//   its own process, penne writes the second without a fraction.
//
// Quoting (RFC 4180 §2): a field is quoted when it contains the delimiter, a double quote,
// CR or LF, and a double quote inside a quoted field is doubled. Records end in CRLF by
// default (RFC 4180), LF optionally (and by default in the rigatoni layout, as Rigatoni
// wrote). Text is UTF-8 as MongoDB sent it (the extractor rejects invalid UTF-8). The bytes
// depend only on the events and the options, so a replayed batch is identical.
//
// Thread safety: the factory is immutable and may be shared; each batch encoder belongs to
// one strand. Lifetimes: an encoder copies what it needs from an event during append().
// Allocation: the batch buffer grows geometrically and the row's JSON buffer is reused, so
// encoding stops allocating once both have grown to fit.

#include <penne/encoder.hpp>
#include <penne/error.hpp>
#include <penne/formats/ejson.hpp>

#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace penne::formats {

enum class csv_line_ending {
    crlf,  // RFC 4180
    lf,
};

enum class csv_layout {
    penne,     // the common tabular schema
    rigatoni,  // Rigatoni's seven columns
};

struct csv_options {
    csv_layout layout = csv_layout::penne;
    // One ASCII character other than '"', CR and LF (',' ';' '\t' '|' …).
    char delimiter = ',';
    // Unset: CRLF for the penne layout, LF for the rigatoni layout.
    std::optional<csv_line_ending> line_ending;
    ejson_mode mode = ejson_mode::relaxed;
    // Bytes reserved when a batch opens (a guess at the batch size avoids early regrowth).
    std::size_t initial_capacity = 64 * 1024;
};

// penne::errc::invalid_config, with the offending option named in `diag`, when the options
// cannot produce well-formed CSV.
error_code validate(const csv_options& opts, diagnostics& diag);

class csv_encoder_factory final : public encoder_factory {
public:
    // The default options (penne layout, ',' and CRLF).
    csv_encoder_factory() noexcept = default;

    // Validates `opts` (see validate()) and makes a factory from them.
    static error_code create(const csv_options& opts, std::unique_ptr<csv_encoder_factory>& out,
                             diagnostics& diag);

    encoder_info info() const noexcept override;
    std::unique_ptr<batch_encoder> open(std::string_view object_key) const override;

    const csv_options& options() const noexcept { return opts_; }
    csv_line_ending line_ending() const noexcept;
    // The header row's column names, in order.
    std::span<const std::string_view> columns() const noexcept;

private:
    explicit csv_encoder_factory(const csv_options& opts) noexcept : opts_(opts) {}

    csv_options opts_;
};

// Appends `field` to `out` as one RFC 4180 field for `delimiter`: as it is when it holds
// none of delimiter, '"', CR and LF; otherwise quoted, with every '"' doubled.
void append_csv_field(std::string_view field, char delimiter, std::string& out);

}  // namespace penne::formats
