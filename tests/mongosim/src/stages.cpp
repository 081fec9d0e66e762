#include "stages.hpp"

#include <cstring>
#include <optional>
#include <vector>

namespace mongosim {
namespace {

void append_index(bson_t* arr, std::uint32_t i, const bson_value_t& v) {
    char buf[16];
    const char* key;
    const std::size_t len = bson_uint32_to_string(i, &key, buf, sizeof buf);
    append_value(arr, std::string_view(key, len), v);
}

// Checks an expression: literals, "$path", "$$ROOT"/"$$CURRENT", {$literal: v}, documents and
// arrays of expressions.
failure validate_expression(const bson_iter_t& it) {
    if (BSON_ITER_HOLDS_UTF8(&it)) {
        const std::string_view s = bson_iter_utf8(&it, nullptr);
        if (s.starts_with("$$") && s != "$$ROOT" && s != "$$CURRENT" && !s.starts_with("$$ROOT.") &&
            !s.starts_with("$$CURRENT."))
            return cmd_error{17276, "Use of undefined variable: " + std::string(s.substr(2))};
        if (s == "$")
            return cmd_error{16872, "'$' by itself is not a valid FieldPath"};
        return std::nullopt;
    }
    if (BSON_ITER_HOLDS_ARRAY(&it) || BSON_ITER_HOLDS_DOCUMENT(&it)) {
        bson_iter_t child;
        bson_iter_recurse(&it, &child);
        bool first = true;
        while (bson_iter_next(&child)) {
            const std::string_view k = key_of(child);
            if (BSON_ITER_HOLDS_DOCUMENT(&it) && first && k.starts_with("$")) {
                if (k != "$literal")
                    return cmd_error{168, "Unrecognized expression '" + std::string(k) +
                                              "' (mongosim evaluates literals, field paths and "
                                              "$literal in change stream stages)"};
                return std::nullopt;
            }
            first = false;
            if (auto f = validate_expression(child))
                return f;
        }
    }
    return std::nullopt;
}

// A value inside a document (an optional<bson_value_t> would drop the type's alignment).
struct value_ref {
    bson_value_t v;
};

// The value at a dotted path of doc; nothing when absent. A path through an array of
// documents gives the array of the values found in its elements, as MongoDB does. Values
// built that way live in `keep`.
std::optional<value_ref> path_value(const bson_t& doc, std::string_view path, bson_ptr& keep) {
    const auto dot = path.find('.');
    const std::string head(path.substr(0, dot));
    bson_iter_t it;
    if (!bson_iter_init_find(&it, &doc, head.c_str()))
        return std::nullopt;
    if (dot == std::string_view::npos)
        return value_ref{*bson_iter_value(&it)};
    const std::string_view rest = path.substr(dot + 1);
    bson_t sub;
    if (BSON_ITER_HOLDS_DOCUMENT(&it) && view_document(it, sub))
        return path_value(sub, rest, keep);
    if (!BSON_ITER_HOLDS_ARRAY(&it))
        return std::nullopt;
    bson_ptr arr = make_bson();
    bson_iter_t el;
    bson_iter_recurse(&it, &el);
    std::uint32_t i = 0;
    while (bson_iter_next(&el)) {
        bson_t elem;
        if (!BSON_ITER_HOLDS_DOCUMENT(&el) || !view_document(el, elem))
            continue;
        bson_ptr inner;
        if (auto v = path_value(elem, rest, inner))
            append_index(arr.get(), i++, v->v);
    }
    keep = make_bson();
    bson_append_array(keep.get(), "v", 1, arr.get());
    bson_iter_t v;
    bson_iter_init_find(&v, keep.get(), "v");
    return value_ref{*bson_iter_value(&v)};
}

// Evaluates an expression against the event and appends its value under `key`; appends
// nothing for a missing field path (MongoDB leaves such a field out).
void append_evaluated(bson_t* out, std::string_view key, const bson_iter_t& expr,
                      const bson_t& root) {
    if (BSON_ITER_HOLDS_UTF8(&expr)) {
        std::string_view s = bson_iter_utf8(&expr, nullptr);
        if (s.starts_with("$")) {
            if (s == "$$ROOT" || s == "$$CURRENT") {
                bson_append_document(out, key.data(), static_cast<int>(key.size()), &root);
                return;
            }
            if (s.starts_with("$$ROOT."))
                s.remove_prefix(7);
            else if (s.starts_with("$$CURRENT."))
                s.remove_prefix(10);
            else
                s.remove_prefix(1);
            bson_ptr keep;
            if (auto v = path_value(root, s, keep))
                append_value(out, key, v->v);
            return;
        }
    }
    if (BSON_ITER_HOLDS_DOCUMENT(&expr)) {
        bson_iter_t child;
        bson_iter_recurse(&expr, &child);
        if (bson_iter_next(&child) && key_of(child) == "$literal") {
            append_value(out, key, *bson_iter_value(&child));
            return;
        }
        bson_t sub;
        bson_append_document_begin(out, key.data(), static_cast<int>(key.size()), &sub);
        bson_iter_recurse(&expr, &child);
        while (bson_iter_next(&child))
            append_evaluated(&sub, key_of(child), child, root);
        bson_append_document_end(out, &sub);
        return;
    }
    if (BSON_ITER_HOLDS_ARRAY(&expr)) {
        bson_t arr;
        bson_append_array_begin(out, key.data(), static_cast<int>(key.size()), &arr);
        bson_iter_t child;
        bson_iter_recurse(&expr, &child);
        std::uint32_t i = 0;
        while (bson_iter_next(&child)) {
            bson_ptr one = make_bson();
            append_evaluated(one.get(), "v", child, root);
            bson_iter_t v;
            if (bson_iter_init_find(&v, one.get(), "v"))
                append_index(&arr, i, *bson_iter_value(&v));
            else {
                bson_value_t null_value{};
                null_value.value_type = BSON_TYPE_NULL;
                append_index(&arr, i, null_value);  // a missing path in an array is null
            }
            ++i;
        }
        bson_append_array_end(out, &arr);
        return;
    }
    append_value(out, key, *bson_iter_value(const_cast<bson_iter_t*>(&expr)));
}

// doc with the value of `expr` at a dotted path (set: replacing or adding; unset when expr
// is null), keeping the other fields in order.
bson_ptr with_path(const bson_t& doc, std::string_view path, const bson_iter_t* expr,
                   const bson_t& root) {
    const auto dot = path.find('.');
    const std::string_view head = path.substr(0, dot);
    bson_ptr out = make_bson();
    bool done = false;
    bson_iter_t it;
    bson_iter_init(&it, &doc);
    while (bson_iter_next(&it)) {
        if (key_of(it) != head) {
            bson_append_iter(out.get(), bson_iter_key(&it), -1, &it);
            continue;
        }
        done = true;
        if (dot == std::string_view::npos) {
            if (expr)
                append_evaluated(out.get(), head, *expr, root);
            continue;
        }
        bson_t sub;
        if (BSON_ITER_HOLDS_DOCUMENT(&it) && view_document(it, sub)) {
            bson_ptr inner = with_path(sub, path.substr(dot + 1), expr, root);
            bson_append_document(out.get(), head.data(), static_cast<int>(head.size()),
                                 inner.get());
        } else if (expr) {
            bson_t empty = BSON_INITIALIZER;
            bson_ptr inner = with_path(empty, path.substr(dot + 1), expr, root);
            bson_append_document(out.get(), head.data(), static_cast<int>(head.size()),
                                 inner.get());
        } else {
            bson_append_iter(out.get(), bson_iter_key(&it), -1, &it);
        }
    }
    if (!done && expr) {
        if (dot == std::string_view::npos) {
            append_evaluated(out.get(), head, *expr, root);
        } else {
            bson_t empty = BSON_INITIALIZER;
            bson_ptr inner = with_path(empty, path.substr(dot + 1), expr, root);
            bson_append_document(out.get(), head.data(), static_cast<int>(head.size()),
                                 inner.get());
        }
    }
    return out;
}

bool same_id(const bson_t& a, const bson_t& b) {
    bson_iter_t ia, ib;
    const bool has_a = bson_iter_init_find(&ia, &a, "_id");
    const bool has_b = bson_iter_init_find(&ib, &b, "_id");
    if (!has_a || !has_b)
        return has_a == has_b;
    return bson_iter_type(&ia) == bson_iter_type(&ib) &&
           values_equal(*bson_iter_value(&ia), *bson_iter_value(&ib));
}

}  // namespace

cmd_error resume_token_modified() {
    return {280,
            "Encountered an event whose _id field, which contains the resume token, was modified "
            "by the pipeline. Modifying the _id field of an event makes it impossible to resume "
            "the stream from that point. Only transformations that retain the unmodified _id "
            "field are allowed."};
}

bool is_reshape_stage(std::string_view name) {
    return name == "$addFields" || name == "$set" || name == "$unset" || name == "$replaceRoot" ||
           name == "$replaceWith";
}

failure parse_reshape_stage(const bson_iter_t& stage, reshape_stage& out) {
    const std::string name(key_of(stage));
    if (name == "$addFields" || name == "$set") {
        bson_t spec;
        if (!BSON_ITER_HOLDS_DOCUMENT(&stage) || !view_document(stage, spec))
            return cmd_error{
                40272, name + " specification stage must be an object, got " +
                           std::string(bson_iter_type(&stage) == BSON_TYPE_UTF8 ? "string"
                                                                                : "another type")};
        bson_iter_t f;
        bson_iter_init(&f, &spec);
        while (bson_iter_next(&f)) {
            const std::string_view k = key_of(f);
            if (k.empty() || k.starts_with("$") || k.front() == '.' || k.back() == '.')
                return cmd_error{16410,
                                 "FieldPath field names may not start with '$': " + std::string(k)};
            if (auto e = validate_expression(f))
                return e;
        }
        out.what = reshape_stage::kind::add_fields;
        out.spec = copy_bson(&spec);
        return std::nullopt;
    }
    if (name == "$unset") {
        out.what = reshape_stage::kind::unset;
        if (BSON_ITER_HOLDS_UTF8(&stage)) {
            out.fields.emplace_back(bson_iter_utf8(&stage, nullptr));
        } else if (BSON_ITER_HOLDS_ARRAY(&stage)) {
            bson_iter_t el;
            bson_iter_recurse(&stage, &el);
            while (bson_iter_next(&el)) {
                if (!BSON_ITER_HOLDS_UTF8(&el))
                    return cmd_error{31120,
                                     "$unset specification must be a string or an array "
                                     "containing only string values"};
                out.fields.emplace_back(bson_iter_utf8(&el, nullptr));
            }
        }
        if (out.fields.empty())
            return cmd_error{31119,
                             "$unset specification must be a string or an array with at least "
                             "one field"};
        return std::nullopt;
    }
    if (name == "$replaceRoot" || name == "$replaceWith") {
        out.what = reshape_stage::kind::replace_root;
        out.spec = make_bson();
        if (name == "$replaceRoot") {
            bson_t spec;
            bson_iter_t root;
            if (!BSON_ITER_HOLDS_DOCUMENT(&stage) || !view_document(stage, spec))
                return cmd_error{40229,
                                 "expected an object as specification for $replaceRoot "
                                 "stage"};
            if (!bson_iter_init_find(&root, &spec, "newRoot"))
                return cmd_error{40231, "no newRoot specified for the $replaceRoot stage"};
            if (auto e = validate_expression(root))
                return e;
            bson_append_iter(out.spec.get(), "", 0, &root);
        } else {
            if (auto e = validate_expression(stage))
                return e;
            bson_append_iter(out.spec.get(), "", 0, &stage);
        }
        return std::nullopt;
    }
    return cmd_error{40324, "Unrecognized pipeline stage name: '" + name + "'"};
}

failure apply_reshape_stage(const reshape_stage& stage, bson_ptr& event, bool keep_id) {
    bson_ptr next;
    switch (stage.what) {
        case reshape_stage::kind::add_fields: {
            next = copy_bson(event.get());
            bson_iter_t f;
            bson_iter_init(&f, stage.spec.get());
            while (bson_iter_next(&f))
                next = with_path(*next, key_of(f), &f, *event);
            break;
        }
        case reshape_stage::kind::unset:
            next = copy_bson(event.get());
            for (const auto& path : stage.fields)
                next = with_path(*next, path, nullptr, *event);
            break;
        case reshape_stage::kind::replace_root: {
            bson_iter_t expr;
            bson_iter_init(&expr, stage.spec.get());
            bson_iter_next(&expr);
            bson_ptr holder = make_bson();
            append_evaluated(holder.get(), "v", expr, *event);
            bson_iter_t v;
            bson_t root;
            if (!bson_iter_init_find(&v, holder.get(), "v") || !BSON_ITER_HOLDS_DOCUMENT(&v) ||
                !view_document(v, root))
                return cmd_error{40228,
                                 "'replacement document' must evaluate to an object, but "
                                 "resulting value was not an object"};
            next = copy_bson(&root);
            break;
        }
    }
    if (keep_id && !same_id(*event, *next))
        return resume_token_modified();
    event = std::move(next);
    return std::nullopt;
}

failure parse_unwind_stage(const bson_iter_t& stage, unwind_stage& out) {
    bson_iter_t path;
    if (BSON_ITER_HOLDS_UTF8(&stage)) {
        path = stage;
    } else if (BSON_ITER_HOLDS_DOCUMENT(&stage)) {
        bson_t spec;
        view_document(stage, spec);
        bson_iter_t f;
        bson_iter_init(&f, &spec);
        bool have_path = false;
        while (bson_iter_next(&f)) {
            const std::string_view k = key_of(f);
            if (k == "path") {
                path = f;
                have_path = true;
            } else if (k == "includeArrayIndex") {
                if (!BSON_ITER_HOLDS_UTF8(&f) || bson_iter_utf8(&f, nullptr)[0] == '$' ||
                    bson_iter_utf8(&f, nullptr)[0] == '\0')
                    return cmd_error{28822,
                                     "includeArrayIndex must be a non-empty string "
                                     "not starting with '$'"};
                out.index_field = bson_iter_utf8(&f, nullptr);
            } else if (k == "preserveNullAndEmptyArrays") {
                if (!BSON_ITER_HOLDS_BOOL(&f))
                    return cmd_error{28809,
                                     "expected a boolean for the "
                                     "preserveNullAndEmptyArrays option"};
                out.preserve = bson_iter_bool(&f);
            } else {
                return cmd_error{28811, "unrecognized option to $unwind stage: " + std::string(k)};
            }
        }
        if (!have_path)
            return cmd_error{28812, "no path specified to $unwind stage"};
    } else {
        return cmd_error{15981,
                         "expected either a string or an object as specification for "
                         "$unwind stage"};
    }
    if (!BSON_ITER_HOLDS_UTF8(&path))
        return cmd_error{28808, "expected a string as the path for $unwind stage"};
    const std::string_view p = bson_iter_utf8(&path, nullptr);
    if (p.size() < 2 || p[0] != '$' || p[1] == '$')
        return cmd_error{
            28818, "path option to $unwind stage should be prefixed with a '$': " + std::string(p)};
    out.path = std::string(p.substr(1));
    return std::nullopt;
}

void apply_unwind_stage(const unwind_stage& stage, const bson_t& doc, std::vector<bson_ptr>& out) {
    // Sets the unwound path (and the index field) to literal values.
    auto emit = [&](const bson_value_t* element, std::optional<std::int64_t> index) {
        bson_ptr next = copy_bson(&doc);
        if (element) {
            bson_ptr holder = make_bson();
            bson_t lit;
            BSON_APPEND_DOCUMENT_BEGIN(holder.get(), "e", &lit);
            append_value(&lit, "$literal", *element);
            bson_append_document_end(holder.get(), &lit);
            bson_iter_t e;
            bson_iter_init_find(&e, holder.get(), "e");
            next = with_path(*next, stage.path, &e, doc);
        }
        if (!stage.index_field.empty()) {
            bson_ptr holder = make_bson();
            bson_t lit;
            BSON_APPEND_DOCUMENT_BEGIN(holder.get(), "e", &lit);
            if (index)
                BSON_APPEND_INT64(&lit, "$literal", *index);
            else
                BSON_APPEND_NULL(&lit, "$literal");
            bson_append_document_end(holder.get(), &lit);
            bson_iter_t e;
            bson_iter_init_find(&e, holder.get(), "e");
            next = with_path(*next, stage.index_field, &e, doc);
        }
        out.push_back(std::move(next));
    };
    bson_ptr keep;
    const auto v = path_value(doc, stage.path, keep);
    if (!v || v->v.value_type == BSON_TYPE_NULL || v->v.value_type == BSON_TYPE_UNDEFINED) {
        if (stage.preserve)
            emit(nullptr, std::nullopt);
        return;
    }
    if (v->v.value_type != BSON_TYPE_ARRAY) {
        emit(nullptr, std::nullopt);  // a non-array value unwinds to itself
        return;
    }
    bson_t arr;
    if (!bson_init_static(&arr, v->v.value.v_doc.data, v->v.value.v_doc.data_len))
        return;
    bson_iter_t el;
    bson_iter_init(&el, &arr);
    std::int64_t i = 0;
    bool any = false;
    while (bson_iter_next(&el)) {
        any = true;
        emit(bson_iter_value(&el), i++);
    }
    if (!any && stage.preserve) {
        // An empty array is preserved without the field, as mongod does.
        emit(nullptr, std::nullopt);
        out.back() = with_path(*out.back(), stage.path, nullptr, doc);
    }
}

}  // namespace mongosim
