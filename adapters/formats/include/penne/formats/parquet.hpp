#pragma once
// The Parquet format (DESIGN §9, issue 7): one Parquet file per batch, written by penne's
// own code from the Apache Parquet format specification (no Arrow, no parquet-cpp).
//
// Columns, layout penne (default): the common tabular schema (tabular.hpp), in its order.
//   operation, resume_token                 BYTE_ARRAY STRING, REQUIRED
//   database, collection                    BYTE_ARRAY STRING, OPTIONAL
//   cluster_time                            INT64 TIMESTAMP(isAdjustedToUTC=true, unit),
//                                           REQUIRED, from clusterTime's seconds
//   cluster_time_increment                  INT64 (no annotation), REQUIRED: the increment is
//                                           a uint32, which INT32 cannot hold; INT64 needs no
//                                           unsigned annotation (Athena and Spark lack one)
//   wall_time                               INT64 TIMESTAMP(true, unit), OPTIONAL
//   document_key, full_document, update_description, full_document_before_change, lsid
//                                           BYTE_ARRAY STRING, OPTIONAL: Extended JSON text
//                                           in the configured mode (STRING rather than the
//                                           JSON annotation, so every reader shows text)
//   txn_number                              INT64, OPTIONAL
// `unit` is timestamp_unit (millis by default). A wallTime whose microsecond count does not
// fit in an int64 (beyond ±292,000 years) makes the event unencodable with unit micros.
//
// Layout rigatoni: the seven columns Rigatoni's Parquet writer (Arrow) produced, for users
// migrating from it: operation, database, collection (STRING, REQUIRED; an absent namespace
// part is ""), cluster_time (INT64 TIMESTAMP(isAdjustedToUTC=false, unit), REQUIRED),
// document_key, full_document (STRING, OPTIONAL) and resume_token (STRING, REQUIRED). As in
// the CSV rigatoni layout, cluster_time is clusterTime's second plus the increment taken as
// milliseconds (increments of 1000 and more give the bare second) and the JSON columns have
// no insignificant spaces. Differences that remain: Rigatoni wrote microseconds always
// (penne honours timestamp_unit; choose micros to match), rendered documents through
// serde_json where penne writes Extended JSON, and operation is MongoDB's spelling
// ("insert", "dropDatabase", …).
//
// Encoding: data page v1 pages; REQUIRED columns carry no levels, OPTIONAL ones carry
// definition levels (max level 1) in the RLE/bit-packed hybrid. Every string column starts
// dictionary encoded (a PLAIN_DICTIONARY dictionary page, RLE_DICTIONARY data pages); when
// its dictionary would grow past dictionary_max_bytes, the current page is flushed and the
// rest of that column chunk is written PLAIN. Integer and timestamp columns are PLAIN.
// Every column chunk and every data page carries Statistics (null_count, min_value and
// max_value: unsigned byte order for strings, signed order for integers; min/max are left
// out when either is longer than 4096 bytes), and the footer declares TypeDefinedOrder for
// every column. created_by is "penne version <PENNE_VERSION_STRING>" (the form readers
// parse). Page codecs: none, snappy, gzip (gzip framing, levels 1-9), zstd (levels 1-19);
// level 0 selects the codec's default (gzip 6, zstd 3).
//
// Sizes: a data page is flushed once its encoded size reaches page_bytes (or it holds
// 20,000 values); a row group is closed after the row that brings its uncompressed size
// (pages, dictionaries and the page being filled) to row_group_bytes. Memory per open batch
// is the file bytes already closed, plus per column the compressed pages of the current row
// group, its dictionary (at most dictionary_max_bytes plus a hash table) and one page being
// filled (about page_bytes); buffered_bytes() counts all of these.
//
// A batch with no events still finishes as a valid Parquet file: the schema and zero row
// groups. Determinism: the bytes depend only on the events and the options (no clocks, no
// random numbers, no hash-order iteration), so a replayed batch is identical.
//
// Errors: append() reports penne::errc::unencodable_event (the tabular extractor's reason,
// or the wallTime range) and leaves the batch unchanged. A compressor that fails can only
// be out of memory; that surfaces as std::bad_alloc, like any other allocation here.
//
// Thread safety: the factory is immutable after create() and may be shared; its codec
// contexts come from an internal, thread-safe compressor_pool that encoders borrow from
// for one page at a time (an idle batch owns no compressor). Each batch encoder belongs to
// one strand. Lifetimes: encoders share ownership of the pool, so they may outlive the
// factory; an encoder copies what it needs from an event during append().

#include <penne/encoder.hpp>
#include <penne/error.hpp>
#include <penne/formats/ejson.hpp>

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace penne::formats {

class compressor_pool;

enum class parquet_layout {
    penne,     // the common tabular schema
    rigatoni,  // Rigatoni's seven columns
};

enum class parquet_codec { none, snappy, gzip, zstd };

enum class parquet_timestamp_unit { millis, micros };

struct parquet_options {
    parquet_layout layout = parquet_layout::penne;
    ejson_mode mode = ejson_mode::relaxed;
    parquet_codec codec = parquet_codec::zstd;
    int level = 0;  // 0: the codec's default; none and snappy take no level
    parquet_timestamp_unit timestamp_unit = parquet_timestamp_unit::millis;
    std::size_t row_group_bytes = std::size_t(64) << 20;      // 1 B .. 4 GiB
    std::size_t page_bytes = std::size_t(1) << 20;            // 1 B .. 1 GiB
    std::size_t dictionary_max_bytes = std::size_t(1) << 20;  // 0 (no dictionaries) .. 1 GiB
};

std::string_view parquet_codec_name(parquet_codec c) noexcept;  // "none", "snappy", …
// Parses a codec name from configuration (case-sensitive); penne::errc::invalid_config
// with the allowed values in `diag` otherwise.
error_code parse_parquet_codec(std::string_view name, parquet_codec& out, diagnostics& diag);

// penne::errc::invalid_config, with the offending option named in `diag`, when the options
// cannot produce a valid file.
error_code validate(const parquet_options& opts, diagnostics& diag);

class parquet_encoder_factory final : public encoder_factory {
public:
    // Validates `opts` (see validate()) and makes a factory from them.
    static error_code create(const parquet_options& opts,
                             std::unique_ptr<parquet_encoder_factory>& out, diagnostics& diag);
    ~parquet_encoder_factory() override;

    encoder_info info() const noexcept override;
    std::unique_ptr<batch_encoder> open(std::string_view object_key) const override;

    const parquet_options& options() const noexcept { return opts_; }
    // The codec level in effect (the default when options().level is 0).
    int level() const noexcept { return level_; }
    // The column names of the configured layout, in file order.
    std::span<const std::string_view> columns() const noexcept;

private:
    parquet_encoder_factory(const parquet_options& opts, int level);

    parquet_options opts_;
    int level_;
    std::shared_ptr<compressor_pool> pool_;  // gzip and zstd only
};

}  // namespace penne::formats
