#pragma once
// The rigatoni layouts' shared spellings (issue 7): how Rigatoni, the Rust CDC tool penne
// replaces, wrote an operation type, a clusterTime and a document, so that the JSON lines,
// CSV, Parquet and Avro encoders render a rigatoni-layout value the same way.
//
// Rigatoni turned MongoDB's clusterTime (seconds, increment) into a chrono DateTime with the
// increment taken as milliseconds; it printed that instant through chrono (to_rfc3339() in
// its CSV and Avro writers, serde in its JSON writer), and its documents through serde_json,
// which has no spaces between tokens.
//
// Thread safety: pure functions. Lifetimes: returned views point into static storage or
// into the argument.

#include <cstdint>
#include <string>
#include <string_view>

namespace penne::formats::detail {

// The operation as Rigatoni's CSV and Avro writers spelled it: Rust's Debug formatting of
// its OperationType enum ("Insert", "DropDatabase", …). Operation types Rigatoni did not
// know are returned as MongoDB spells them.
std::string_view rigatoni_debug_operation(std::string_view op) noexcept;

// The operation as Rigatoni's JSON writer spelled it: serde's lowercase variant names
// ("insert", "dropdatabase", …). Unknown operation types are returned as they are.
std::string_view rigatoni_serde_operation(std::string_view op) noexcept;

// The clusterTime instant in milliseconds since the epoch: the second plus the increment
// taken as milliseconds. Rigatoni could not represent increments of 1000 and more (it
// substituted its own wall clock); penne takes the bare second for them.
std::int64_t rigatoni_cluster_time_ms(std::uint32_t seconds, std::uint32_t increment) noexcept;

enum class rigatoni_utc_suffix {
    offset,  // "+00:00", chrono's to_rfc3339() (the CSV and Avro writers)
    z,       // "Z", chrono's serde form (the JSON writer)
};

// Appends the clusterTime instant in RFC 3339 form: "2023-11-14T22:13:20.007+00:00" (or
// "…Z"), milliseconds only when the fraction is not zero, as chrono's AutoSi formatting
// prints an instant with a whole number of milliseconds.
void append_rigatoni_time(std::uint32_t seconds, std::uint32_t increment,
                          rigatoni_utc_suffix suffix, std::string& out);

// Appends Extended JSON from the walker without the spaces libbson puts around ':' ','
// and braces, the closest form to serde_json's compact output. Spaces inside strings are
// kept. `json` must be well-formed JSON text (as the walker writes it).
void append_compact_json(std::string_view json, std::string& out);

// Appends `s` as a JSON string the way serde_json escapes it: '"' and '\\' escaped, the
// control characters \b \t \n \f \r in short form and the others as \u00xx (lowercase hex),
// everything else (UTF-8 included) as it is. `s` must be valid UTF-8.
void append_json_string(std::string_view s, std::string& out);

// Appends the compact JSON object `description` (an updateDescription) with only the members
// of Rigatoni's UpdateDescription, in its order: updatedFields, removedFields and, when
// present, truncatedArrays. Other members (disambiguatedPaths, …) are left out.
void append_rigatoni_update_description(std::string_view description, std::string& out);

}  // namespace penne::formats::detail
