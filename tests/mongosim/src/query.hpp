#pragma once
// Query semantics shared by find, update, delete, count, aggregate and change-stream $match:
// BSON value ordering (MongoDB's cross-type order), filter matching, sort and projection.
// This is the subset that drivers and penne's tests use; anything outside it is reported as
// an error to the client instead of being silently misread.
//
// Thread safety: pure functions.

#include <mongosim/bson.hpp>

#include <optional>
#include <string>
#include <vector>

namespace mongosim {

// A MongoDB command error: {ok: 0, code, codeName, errmsg}.
struct cmd_error {
    int code = 0;
    std::string message;
};
using failure = std::optional<cmd_error>;

// Total order of BSON values: type bracket first (numbers together), then value.
int compare_values(const bson_value_t& a, const bson_value_t& b);
inline bool values_equal(const bson_value_t& a, const bson_value_t& b) {
    return compare_values(a, b) == 0;
}

// Checks a filter for operators this implementation does not know, without a document.
failure validate_filter(const bson_t& filter);
// True when doc satisfies filter. validate_filter must have accepted the filter.
bool matches(const bson_t& doc, const bson_t& filter);

// A key that identifies an _id value for lookups: equal values (1, 1.0, 1LL) give equal keys.
std::string id_key(const bson_value_t& id);

struct sort_key {
    std::string path;
    int direction = 1;
};
failure parse_sort(const bson_t& spec, std::vector<sort_key>& out);
bool sort_less(const bson_t& a, const bson_t& b, const std::vector<sort_key>& keys);

// Top-level inclusion or exclusion projection ({a: 1, b: 1} or {a: 0}); _id included unless
// excluded explicitly.
struct projection {
    bool inclusion = false;
    bool exclude_id = false;
    std::vector<std::string> fields;
    bool empty() const noexcept { return fields.empty() && !exclude_id && !inclusion; }
};
failure parse_projection(const bson_t& spec, projection& out);
bson_ptr apply_projection(const bson_t& doc, const projection& p);

// Appends an iterator's value under a new key.
void append_value(bson_t* out, std::string_view key, const bson_value_t& v);

// Reads a BSON document value from an iterator into a non-owning view.
bool view_document(const bson_iter_t& it, bson_t& view);

// Numeric value of an int32/int64/double iterator.
std::optional<double> as_number(const bson_iter_t& it);
std::optional<std::int64_t> as_int64(const bson_iter_t& it);

}  // namespace mongosim
