#pragma once
// The Avro format (DESIGN §9, issue 7): one Avro 1.11 object container file per batch, with
// one record per change event, in one of two layouts.
//
// - layout penne (default): record `penne.ChangeEvent` with the fields of the common tabular
//   schema (tabular.hpp) in schema order:
//     operation string; database, collection ["null","string"];
//     cluster_time {"type":"long","logicalType":"timestamp-millis"} (or timestamp-micros,
//       see avro_options::timestamp_unit): clusterTime seconds since the epoch;
//     cluster_time_increment long; wall_time ["null", timestamp as for cluster_time];
//     document_key, full_document, update_description, full_document_before_change
//       ["null","string"] (Extended JSON text in the configured mode);
//     txn_number ["null","long"]; lsid ["null","string"] (Extended JSON);
//     resume_token string (Extended JSON of `_id`).
//   Every union field carries "default": null.
// - layout rigatoni: Rigatoni's Avro writer's record `rigatoni.ChangeEvent`, for users
//   migrating from it: operation (Rigatoni's spelling, "Insert", …), database, collection,
//   cluster_time (all four plain strings; cluster_time is RFC 3339 exactly as in the CSV
//   rigatoni layout), document_key and full_document ["null","string"] with default null,
//   resume_token string, JSON without insignificant spaces. Differences that remain:
//   those of the CSV rigatoni layout (csv.hpp: JSON spelling, unknown operation types,
//   increments of 1000 and more); an event without ns.db or ns.coll gets an empty string
//   (the rigatoni schema has no null there); Rigatoni wrote the null codec and optionally
//   gzip/zstd around the whole file, where penne compresses the blocks with an Avro codec
//   and never wraps the file, so any Avro reader opens it directly.
//
// Container (Avro 1.11 "Object Container Files"): "Obj\x01", the metadata map with
// avro.schema (the schema described above, attributes in Parsing Canonical Form order — name,
// type, fields — plus the logicalType and default attributes that form drops) and avro.codec,
// then the 16-byte sync marker, then data blocks (object count, byte size, the records as the
// codec left them, the sync marker). The sync marker is the first 16 bytes of SHA-256 of the
// object key given to open(), so the bytes depend only on the key, the events and the
// options: a replayed batch overwrites its object with identical content.
//
// Codecs: null; deflate (raw RFC 1951, no zlib header); snappy (each block followed by the
// big-endian CRC-32 of its uncompressed bytes); zstandard (one zstd frame per block).
// Blocks: records are appended to an uncompressed block, which is compressed and moved into
// the object as soon as it holds `block_bytes` or more; a block exceeds `block_bytes` by at
// most one record. buffered_bytes() counts the finished blocks plus the open block, so the
// memory an encoder holds follows what the batch limits see.
//
// Content type: "application/avro" for the file (no type is registered with IANA; the spec's
// "avro/binary" names Avro RPC messages over HTTP, not container files). compresses_itself
// is true: the engine must not wrap the object again.
//
// Errors: an event the tabular extractor rejects, or whose wallTime does not fit a
// timestamp-micros long, is penne::errc::unencodable_event and leaves the batch unchanged.
// Compressing a full block during append() can fail only when memory runs out: that is
// formats::errc::compression_failed (retryable), and the batch is unchanged as well. In
// finish(), which has no error path, the same failure surfaces as std::bad_alloc.
//
// Thread safety: the factory is immutable apart from a mutex-guarded pool of codec contexts
// (z_stream, ZSTD_CCtx) that its encoders borrow for one block at a time, so an open batch
// holds no compressor memory between appends; factories may be shared between strands. Each
// batch encoder belongs to one strand. Lifetimes: an encoder shares ownership of the pool and
// may outlive its factory; it copies what it needs from an event during append().

#include <penne/encoder.hpp>
#include <penne/error.hpp>
#include <penne/formats/ejson.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace penne::formats {

namespace detail {
struct avro_codec_pool;  // the codec contexts a factory's encoders borrow (avro.cpp)
}  // namespace detail

enum class avro_layout {
    penne,     // the common tabular schema, record penne.ChangeEvent
    rigatoni,  // Rigatoni's seven fields, record rigatoni.ChangeEvent
};

enum class avro_codec {
    null,       // no compression
    deflate,    // raw deflate, levels 1-9 (default 6)
    snappy,     // no levels
    zstandard,  // levels 1-19 (default 3)
};

// The logicalType of cluster_time and wall_time in the penne layout.
enum class avro_timestamp_unit {
    millis,  // timestamp-millis
    micros,  // timestamp-micros
};

struct avro_options {
    avro_layout layout = avro_layout::penne;
    ejson_mode mode = ejson_mode::relaxed;
    // deflate by default: after null, the only codec every Avro implementation must read.
    avro_codec codec = avro_codec::deflate;
    int level = 0;  // 0 selects the codec's default; must be 0 for null and snappy
    // Uncompressed bytes that complete a block; 1 KiB to 64 MiB.
    std::size_t block_bytes = 64 * 1024;
    avro_timestamp_unit timestamp_unit = avro_timestamp_unit::millis;
};

inline constexpr std::size_t avro_min_block_bytes = 1024;
inline constexpr std::size_t avro_max_block_bytes = std::size_t(64) << 20;
inline constexpr std::size_t avro_sync_size = 16;

using avro_sync_marker = std::array<std::uint8_t, avro_sync_size>;

// The avro.codec spelling: "null", "deflate", "snappy", "zstandard".
std::string_view avro_codec_name(avro_codec c) noexcept;
// Parses a codec name as written in configuration (the avro.codec spelling); on failure
// penne::errc::invalid_config with the allowed values in `diag`.
error_code parse_avro_codec(std::string_view name, avro_codec& out, diagnostics& diag);

// penne::errc::invalid_config, with the offending option named in `diag`, when the options
// cannot produce a valid container (unknown enum values, a level outside the codec's range,
// block_bytes outside [avro_min_block_bytes, avro_max_block_bytes]).
error_code validate(const avro_options& opts, diagnostics& diag);

// The sync marker of the object stored under `object_key`: the first 16 bytes of its
// SHA-256.
avro_sync_marker avro_sync_marker_for(std::string_view object_key) noexcept;

// Appends `v` as an Avro long: zigzag, then base-128 varint, low groups first.
void append_avro_long(std::int64_t v, std::string& out);

class avro_encoder_factory final : public encoder_factory {
public:
    // The default options (penne layout, deflate level 6, 64 KiB blocks, milliseconds).
    avro_encoder_factory();

    // Validates `opts` (see validate()) and makes a factory from them.
    static error_code create(const avro_options& opts, std::unique_ptr<avro_encoder_factory>& out,
                             diagnostics& diag);

    encoder_info info() const noexcept override;
    std::unique_ptr<batch_encoder> open(std::string_view object_key) const override;

    // The options with level 0 replaced by the codec's default.
    const avro_options& options() const noexcept { return opts_; }
    // The avro.schema metadata value written into every object.
    std::string_view schema() const noexcept { return schema_; }

private:
    explicit avro_encoder_factory(const avro_options& opts);

    avro_options opts_;
    std::string schema_;
    std::shared_ptr<detail::avro_codec_pool> pool_;
};

}  // namespace penne::formats
