#pragma once
// Deterministic object keys (DESIGN §4.1, §10). A key is a pure function of the batch's
// database, collection, first event (its resume token and clusterTime) and the format, so
// a replay after a crash writes the same key and overwrites the same object instead of
// adding a duplicate. Never the wall clock, never a random id.
//
// Placeholders: {prefix}, {db} (alias {database}), {coll} (alias {collection}), {yyyy}
// {mm} {dd} {hh}, {first_ts} (alias {first_cluster_time}: "seconds.increment" of the first
// clusterTime, each zero-padded to 10 digits so keys sort in stream order),
// {first_token_hash}, {format_ext} (alias {ext}: "jsonl.zst", "parquet", …). Date parts
// come from the first event's clusterTime in UTC. {db} and {coll} are percent-encoded
// (uppercase hex) outside [A-Za-z0-9._-], a leading '.' included, so any MongoDB name yields
// one safe key segment that is never "." or ".."; an empty name is written "_".
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
    // invalid_config, the diagnostics naming the problem, for an unknown preset or
    // placeholder, an unclosed '{', a template without {first_token_hash} (the part that
    // makes every batch's key unique: {first_ts} alone repeats within a transaction), or a
    // "." or ".." segment in the template or the prefix.
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
