#pragma once
// The common row schema of the tabular formats (CSV, Parquet, Avro; issue 7, DESIGN §9):
// the columns every tabular object carries, extracted from one change event in a single
// pass over the top-level elements of its raw BSON.
//
// Columns (in object order): operation (operationType exactly as MongoDB spells it),
// database, collection, cluster_time (clusterTime seconds, UTC), cluster_time_increment,
// wall_time (ms since the epoch), document_key, full_document, update_description,
// full_document_before_change, txn_number, lsid, resume_token. The document columns are
// Extended JSON text from penne::formats::write_ejson in the configured mode; resume_token
// is the event's `_id` as Extended JSON. Every column but operation, cluster_time,
// cluster_time_increment and resume_token may be null (absent from the event, or BSON null).
//
// Validation: every length is checked against the enclosing document before it is used,
// element types are checked for the fields the schema reads, and the strings it returns
// (operation, database, collection) are valid UTF-8 without NUL bytes. An event that fails
// is reported as penne::errc::unencodable_event with the reason (never document content) in
// the diagnostics; the engine sends it to the dead-letter prefix or stops the scope.
//
// Thread safety: a tabular_extractor belongs to one batch encoder (one strand). Lifetimes:
// a tabular_row holds views into the event's raw bytes and into the extractor's buffer;
// it is valid until the next extract() on the same extractor and while the event's
// buffer lives. Allocation: the JSON buffer is reused, so extraction stops allocating once
// it has grown to the largest event.

#include <penne/error.hpp>
#include <penne/event.hpp>
#include <penne/formats/ejson.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace penne::formats {

enum class tabular_column : std::uint8_t {
    operation,
    database,
    collection,
    cluster_time,
    cluster_time_increment,
    wall_time,
    document_key,
    full_document,
    update_description,
    full_document_before_change,
    txn_number,
    lsid,
    resume_token,
};

inline constexpr std::size_t tabular_column_count = 13;

// Column names as they appear in headers and schemas, indexed by tabular_column.
inline constexpr std::array<std::string_view, tabular_column_count> tabular_column_names = {
    "operation",
    "database",
    "collection",
    "cluster_time",
    "cluster_time_increment",
    "wall_time",
    "document_key",
    "full_document",
    "update_description",
    "full_document_before_change",
    "txn_number",
    "lsid",
    "resume_token",
};

struct tabular_row {
    std::string_view operation;                          // never empty
    std::optional<std::string_view> database;            // ns.db; null for invalidate
    std::optional<std::string_view> collection;          // ns.coll; null for database-wide events
    std::uint32_t cluster_time_seconds = 0;              // UTC seconds since the epoch
    std::uint32_t cluster_time_increment = 0;            // ordinal within the second
    std::optional<std::int64_t> wall_time_ms;            // ms since the epoch (may be negative)
    std::optional<std::string_view> document_key;        // Extended JSON
    std::optional<std::string_view> full_document;       // Extended JSON
    std::optional<std::string_view> update_description;  // Extended JSON
    std::optional<std::string_view> full_document_before_change;  // Extended JSON
    std::optional<std::int64_t> txn_number;
    std::optional<std::string_view> lsid;  // Extended JSON
    std::string_view resume_token;         // Extended JSON of `_id`
};

class tabular_extractor {
public:
    explicit tabular_extractor(ejson_mode mode = ejson_mode::relaxed) noexcept : mode_(mode) {}

    ejson_mode mode() const noexcept { return mode_; }

    // Fills `row` from ev.raw (the other fields of `ev` serve only the diagnostics).
    // On error `row` is unspecified and the diagnostics say which field is at fault.
    error_code extract(const change_event& ev, tabular_row& row, diagnostics& diag);

private:
    ejson_mode mode_;
    std::string json_;  // the JSON columns of the current row, back to back
};

// Appends `ms` since the epoch as ISO-8601 UTC with milliseconds
// ("2026-11-22T05:33:37.123Z"). Years outside 0000-9999 get a sign and at least five
// digits (ISO 8601 expanded form), so every int64 has exactly one spelling.
void append_iso8601_ms(std::int64_t ms, std::string& out);

}  // namespace penne::formats
