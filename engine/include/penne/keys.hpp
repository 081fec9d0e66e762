#pragma once
// Deterministic object keys (DESIGN §4.1, §10). A key is a pure function of the batch's
// database, collection, first event (its resume token and clusterTime) and the format, so
// a replay after a crash writes the same key and overwrites the same object instead of
// adding a duplicate. Never the wall clock, never a random id.
//
// Placeholders: {prefix} {db} {coll} {yyyy} {mm} {dd} {hh} {first_ts} {first_token_hash}
// {format_ext}. Date parts come from the first event's clusterTime in UTC. {db} and {coll}
// are percent-encoded outside [A-Za-z0-9._-] so any MongoDB name yields a safe key.
//
// Thread safety: immutable after construction; share freely.

#include <penne/error.hpp>
#include <penne/event.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace penne {

struct key_inputs {
    std::string_view db;
    std::string_view coll;
    cluster_time first_time;
    std::string_view first_token_hash;  // resume_token::short_hash() of the first event
    std::string_view format_ext;        // "jsonl.zst", "parquet", …
};

class key_template {
public:
    // The presets reproduce the seed's five layouts with a deterministic file name.
    static constexpr std::string_view presets[] = {"date_hour", "hive", "date", "collection",
                                                   "flat"};

    // `spec` is a preset name or a template containing placeholders. Fails with
    // invalid_config (diagnostics name the unknown placeholder or preset) when the template
    // cannot produce unique keys (it must contain {first_token_hash} or {first_ts}).
    static error_code parse(std::string_view spec, std::string prefix, key_template& out,
                            diagnostics& diag);

    // Appends the key to `out` (cleared first).
    void render(const key_inputs& in, std::string& out) const;
    const std::string& spec() const noexcept { return spec_; }

private:
    struct part {
        enum kind_t { literal, prefix, db, coll, yyyy, mm, dd, hh, first_ts, token_hash, ext };
        kind_t kind;
        std::string text;
    };
    std::string spec_;
    std::string prefix_;
    std::vector<part> parts_;
};

}  // namespace penne
