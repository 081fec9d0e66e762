#pragma once
// The reshaping stages a change stream pipeline may hold besides $match and $project:
// $addFields (and its alias $set), $unset, $replaceRoot and $replaceWith (aggregates over a
// collection use them too, with $unwind). Their expressions are
// the subset users write in change stream pipelines: literals, field paths ("$fullDocument.x",
// "$$ROOT"), {$literal: v}, and documents or arrays of those; any other operator is refused when
// the stream opens (InvalidPipelineOperator, 168), never silently misread. A stage that changes
// the event's _id (the resume token) fails the stream when the event is produced, with
// ChangeStreamFatalError (280), as on MongoDB.
//
// Thread safety: pure functions.

#include "query.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace mongosim {

struct reshape_stage {
    enum class kind { add_fields, unset, replace_root };
    kind what = kind::add_fields;
    bson_ptr spec;                    // add_fields: {field: expr, ...}; replace_root: {"": expr}
    std::vector<std::string> fields;  // unset: the paths to remove
};

// ChangeStreamFatalError (280): a stage changed or removed an event's _id (its resume token).
cmd_error resume_token_modified();

// True for the stage names reshape_stage handles.
bool is_reshape_stage(std::string_view name);

// Parses `stage` (the iterator on the stage's single field, e.g. {$addFields: {...}}).
failure parse_reshape_stage(const bson_iter_t& stage, reshape_stage& out);

// Applies the stage to an event. Fails with 40228 when $replaceRoot's expression is not a
// document, and, when `keep_id` (change streams), with 280 when the stage changed or removed
// the event's _id. Aggregates over a collection use the same stages with keep_id false.
failure apply_reshape_stage(const reshape_stage& stage, bson_ptr& event, bool keep_id = true);

// $unwind for aggregates over a collection: {$unwind: "$path"} or {path,
// includeArrayIndex, preserveNullAndEmptyArrays}.
struct unwind_stage {
    std::string path;         // without the leading '$'
    std::string index_field;  // includeArrayIndex, empty when absent
    bool preserve = false;    // preserveNullAndEmptyArrays
};
failure parse_unwind_stage(const bson_iter_t& stage, unwind_stage& out);
// Appends the documents one input document unwinds to.
void apply_unwind_stage(const unwind_stage& stage, const bson_t& doc, std::vector<bson_ptr>& out);

}  // namespace mongosim
