#pragma once
// The JSON lines format (DESIGN §9, the default): one change event per line, LF-terminated,
// in one of two layouts. Outer compression is applied by the engine when the batch seals
// (encoder_info::compresses_itself is false).
//
// - layout penne (default): the event document exactly as MongoDB sent it, as MongoDB
//   Extended JSON (relaxed by default, canonical optional) in libbson's spelling.
// - layout rigatoni (issue 7): the line Rigatoni's JSON writer produced (serde_json of its
//   ChangeEvent), for users migrating from it, with no spaces between tokens and the members
//   in this order:
//     {"operationType":"insert","ns":{"database":"shop","collection":"orders"},
//      "documentKey":{…},"fullDocument":{…},"updateDescription":{…},
//      "clusterTime":"2023-11-14T22:13:20.007Z","_id":{…}}
//   operationType in Rigatoni's lowercase spelling ("dropdatabase"); ns always present, an
//   absent db or coll as ""; documentKey, fullDocument and updateDescription left out when
//   the event has none (or has BSON null); updateDescription reduced to updatedFields,
//   removedFields and truncatedArrays, in that order; clusterTime the second plus the
//   increment taken as milliseconds, RFC 3339 with "Z" (no fraction for increment 0);
//   _id the resume token. Every other field of the event (wallTime, txnNumber, lsid,
//   fullDocumentBeforeChange, to, operationDescription, …) is dropped, as Rigatoni did.
//   Differences that remain: the documents are compact Extended JSON in the configured mode,
//   where Rigatoni used serde_json's rendering of BSON (shortest round-trip doubles and null
//   for NaN/Infinity, {"$date":{"$numberLong":…}} dates, its own forms for binary, decimal128
//   and the other non-JSON types, serde_json's string escapes); operation types Rigatoni did
//   not know are written as MongoDB spells them (Rigatoni wrote the driver's Debug text);
//   for increments of 1000 and more, where Rigatoni substituted the wall clock of its own
//   process, penne writes the bare second.
//
// The bytes depend only on the events and the options, so a replayed batch is identical.
//
// Thread safety: the factory is immutable and may be shared; each batch encoder belongs to
// one strand. Lifetimes: an encoder copies what it needs from an event during append().
// Allocation: the batch buffer grows geometrically; encoding an event allocates nothing
// once the buffer (and, in the rigatoni layout, the row's JSON buffer) has room.

#include <penne/encoder.hpp>
#include <penne/error.hpp>
#include <penne/formats/ejson.hpp>

#include <cstddef>
#include <memory>
#include <string_view>

namespace penne::formats {

enum class jsonl_layout {
    penne,     // the event as MongoDB sent it
    rigatoni,  // Rigatoni's ChangeEvent line
};

struct jsonl_options {
    ejson_mode mode = ejson_mode::relaxed;
    jsonl_layout layout = jsonl_layout::penne;
    // Bytes reserved when a batch opens (a guess at the batch size avoids early regrowth).
    std::size_t initial_capacity = 64 * 1024;
};

// penne::errc::invalid_config, with the offending option named in `diag`, when an option
// holds a value outside its enumeration.
error_code validate(const jsonl_options& opts, diagnostics& diag);

class jsonl_encoder_factory final : public encoder_factory {
public:
    // `opts` must pass validate() (the engine's configuration checks it).
    explicit jsonl_encoder_factory(jsonl_options opts = {}) noexcept : opts_(opts) {}

    encoder_info info() const noexcept override;
    std::unique_ptr<batch_encoder> open(std::string_view object_key) const override;

    const jsonl_options& options() const noexcept { return opts_; }

private:
    jsonl_options opts_;
};

}  // namespace penne::formats
