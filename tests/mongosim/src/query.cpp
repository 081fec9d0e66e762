#include "query.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <regex>
#include <string_view>
#include <utility>
#include <vector>

namespace mongosim {
namespace {

int type_rank(bson_type_t t) {
    switch (t) {
        case BSON_TYPE_MINKEY:
            return 0;
        case BSON_TYPE_UNDEFINED:
        case BSON_TYPE_NULL:
            return 1;
        case BSON_TYPE_INT32:
        case BSON_TYPE_INT64:
        case BSON_TYPE_DOUBLE:
        case BSON_TYPE_DECIMAL128:
            return 2;
        case BSON_TYPE_UTF8:
        case BSON_TYPE_SYMBOL:
            return 3;
        case BSON_TYPE_DOCUMENT:
            return 4;
        case BSON_TYPE_ARRAY:
            return 5;
        case BSON_TYPE_BINARY:
            return 6;
        case BSON_TYPE_OID:
            return 7;
        case BSON_TYPE_BOOL:
            return 8;
        case BSON_TYPE_DATE_TIME:
            return 9;
        case BSON_TYPE_TIMESTAMP:
            return 10;
        case BSON_TYPE_REGEX:
            return 11;
        case BSON_TYPE_DBPOINTER:
            return 12;
        case BSON_TYPE_CODE:
            return 13;
        case BSON_TYPE_CODEWSCOPE:
            return 14;
        case BSON_TYPE_MAXKEY:
            return 15;
        default:
            return 16;
    }
}

bool is_integral(bson_type_t t) {
    return t == BSON_TYPE_INT32 || t == BSON_TYPE_INT64;
}

std::int64_t int_of(const bson_value_t& v) {
    return v.value_type == BSON_TYPE_INT32 ? v.value.v_int32 : v.value.v_int64;
}

double double_of(const bson_value_t& v) {
    switch (v.value_type) {
        case BSON_TYPE_INT32:
            return v.value.v_int32;
        case BSON_TYPE_INT64:
            return static_cast<double>(v.value.v_int64);
        case BSON_TYPE_DOUBLE:
            return v.value.v_double;
        case BSON_TYPE_DECIMAL128: {
            char buf[BSON_DECIMAL128_STRING];
            bson_decimal128_to_string(&v.value.v_decimal128, buf);
            return std::strtod(buf, nullptr);
        }
        default:
            return 0;
    }
}

template <class T>
int three_way(const T& a, const T& b) {
    return a < b ? -1 : (b < a ? 1 : 0);
}

int compare_bytes(const void* a, std::size_t alen, const void* b, std::size_t blen) {
    int c = std::memcmp(a, b, std::min(alen, blen));
    if (c != 0)
        return c < 0 ? -1 : 1;
    return three_way(alen, blen);
}

int compare_docs(const std::uint8_t* a, std::uint32_t alen, const std::uint8_t* b,
                 std::uint32_t blen) {
    bson_iter_t ia, ib;
    if (!bson_iter_init_from_data(&ia, a, alen) || !bson_iter_init_from_data(&ib, b, blen))
        return compare_bytes(a, alen, b, blen);
    for (;;) {
        bool na = bson_iter_next(&ia), nb = bson_iter_next(&ib);
        if (!na || !nb)
            return three_way(na, nb);
        const bson_value_t* va = bson_iter_value(&ia);
        const bson_value_t* vb = bson_iter_value(&ib);
        if (int c = three_way(type_rank(va->value_type), type_rank(vb->value_type)))
            return c;
        if (int c = std::strcmp(bson_iter_key(&ia), bson_iter_key(&ib)))
            return c < 0 ? -1 : 1;
        if (int c = compare_values(*va, *vb))
            return c;
    }
}

// Values of a path, with MongoDB's implicit array traversal for the last field: {a: [1, 2]}
// matches {a: 1}. Returns false when the path is absent.
bool lookup(const bson_t& doc, std::string_view path, bson_iter_t& out) {
    bson_iter_t it;
    if (!bson_iter_init(&it, &doc))
        return false;
    std::string p(path);
    return bson_iter_find_descendant(&it, p.c_str(), &out);
}

template <class Pred>
bool any_value(const bson_iter_t& field, Pred&& pred) {
    const bson_value_t* v = bson_iter_value(const_cast<bson_iter_t*>(&field));
    if (pred(*v))
        return true;
    if (v->value_type == BSON_TYPE_ARRAY) {
        bson_iter_t child;
        if (bson_iter_recurse(&field, &child)) {
            while (bson_iter_next(&child)) {
                if (pred(*bson_iter_value(&child)))
                    return true;
            }
        }
    }
    return false;
}

bool is_operator_doc(const bson_iter_t& it) {
    if (!BSON_ITER_HOLDS_DOCUMENT(&it))
        return false;
    bson_iter_t child;
    if (!bson_iter_recurse(&it, &child) || !bson_iter_next(&child))
        return false;
    return bson_iter_key(&child)[0] == '$';
}

bool eq_match(const bson_t& doc, std::string_view path, const bson_value_t& want) {
    bson_iter_t field;
    if (!lookup(doc, path, field))
        return want.value_type == BSON_TYPE_NULL;
    return any_value(field, [&](const bson_value_t& v) { return values_equal(v, want); });
}

bool in_match(const bson_t& doc, std::string_view path, const bson_iter_t& list) {
    bson_iter_t el;
    if (!bson_iter_recurse(&list, &el))
        return false;
    while (bson_iter_next(&el)) {
        if (eq_match(doc, path, *bson_iter_value(&el)))
            return true;
    }
    return false;
}

bool cmp_match(const bson_t& doc, std::string_view path, const bson_value_t& want,
               std::string_view op) {
    bson_iter_t field;
    if (!lookup(doc, path, field))
        return false;
    return any_value(field, [&](const bson_value_t& v) {
        if (type_rank(v.value_type) != type_rank(want.value_type))
            return false;
        int c = compare_values(v, want);
        if (op == "$gt")
            return c > 0;
        if (op == "$gte")
            return c >= 0;
        if (op == "$lt")
            return c < 0;
        return c <= 0;
    });
}

// $regex: MongoDB's PCRE patterns as ECMAScript (the common subset), options i, m, x, s, u.
// Returns nothing for a pattern or option std::regex cannot take.
std::optional<std::regex> compile_regex(std::string_view pattern, std::string_view options) {
    auto flags = std::regex::ECMAScript;
    std::string p(pattern);
    for (char o : options) {
        if (o == 'i') {
            flags |= std::regex::icase;
        } else if (o == 'm') {
            flags |= std::regex::multiline;
        } else if (o == 'x') {
            // Extended: whitespace and #-comments outside classes are not part of the pattern.
            std::string out;
            bool in_class = false, escaped = false, comment = false;
            for (char ch : p) {
                if (comment) {
                    comment = ch != '\n';
                    continue;
                }
                if (!escaped && !in_class && (ch == ' ' || ch == '\t' || ch == '\n'))
                    continue;
                if (!escaped && !in_class && ch == '#') {
                    comment = true;
                    continue;
                }
                if (!escaped && ch == '[')
                    in_class = true;
                else if (!escaped && ch == ']')
                    in_class = false;
                escaped = !escaped && ch == '\\';
                out += ch;
            }
            p = std::move(out);
        } else if (o == 's') {
            // Dot matches newlines too: '.' outside classes becomes [\s\S].
            std::string out;
            bool in_class = false, escaped = false;
            for (char ch : p) {
                if (!escaped && !in_class && ch == '.') {
                    out += "[\\s\\S]";
                    continue;
                }
                if (!escaped && ch == '[')
                    in_class = true;
                else if (!escaped && ch == ']')
                    in_class = false;
                escaped = !escaped && ch == '\\';
                out += ch;
            }
            p = std::move(out);
        } else if (o != 'u') {  // u (Unicode) is how Python drivers send their default
            return std::nullopt;
        }
    }
    try {
        return std::regex(p, flags);
    } catch (const std::regex_error&) {
        return std::nullopt;
    }
}

// The pattern and options of a $regex operator (with its sibling $options) or a regex value.
bool regex_source(const bson_value_t& v, const bson_iter_t* options, std::string& pattern,
                  std::string& opts) {
    if (v.value_type == BSON_TYPE_REGEX) {
        pattern = v.value.v_regex.regex;
        opts = v.value.v_regex.options ? v.value.v_regex.options : "";
    } else if (v.value_type == BSON_TYPE_UTF8) {
        pattern.assign(v.value.v_utf8.str, v.value.v_utf8.len);
        opts.clear();
    } else {
        return false;
    }
    if (options && BSON_ITER_HOLDS_UTF8(options))
        opts = bson_iter_utf8(options, nullptr);
    return true;
}

bool regex_match(const bson_t& doc, std::string_view path, const std::string& pattern,
                 const std::string& opts) {
    auto re = compile_regex(pattern, opts);
    bson_iter_t field;
    if (!re || !lookup(doc, path, field))
        return false;
    return any_value(field, [&](const bson_value_t& v) {
        if (v.value_type == BSON_TYPE_UTF8)
            return std::regex_search(v.value.v_utf8.str, v.value.v_utf8.str + v.value.v_utf8.len,
                                     *re);
        if (v.value_type == BSON_TYPE_SYMBOL)
            return std::regex_search(v.value.v_symbol.symbol,
                                     v.value.v_symbol.symbol + v.value.v_symbol.len, *re);
        // A stored regex equal to the pattern matches too, as on mongod.
        return v.value_type == BSON_TYPE_REGEX && pattern == v.value.v_regex.regex &&
               opts == (v.value.v_regex.options ? v.value.v_regex.options : "");
    });
}

bool operator_match(const bson_t& doc, std::string_view path, const bson_iter_t& ops);

// $type's argument: a BSON type number or alias ("number" is every numeric type).
std::optional<int> type_code(const bson_iter_t& it) {
    if (auto n = as_int64(it))
        return static_cast<int>(*n);
    if (!BSON_ITER_HOLDS_UTF8(&it))
        return std::nullopt;
    static const std::pair<std::string_view, int> aliases[] = {
        {"double", 1},     {"string", 2},     {"object", 3},      {"array", 4},   {"binData", 5},
        {"undefined", 6},  {"objectId", 7},   {"bool", 8},        {"date", 9},    {"null", 10},
        {"regex", 11},     {"dbPointer", 12}, {"javascript", 13}, {"symbol", 14}, {"int", 16},
        {"timestamp", 17}, {"long", 18},      {"decimal", 19},    {"minKey", -1}, {"maxKey", 127},
        {"number", 1000}};
    const std::string_view s = bson_iter_utf8(&it, nullptr);
    for (const auto& [name, code] : aliases)
        if (name == s)
            return code;
    return std::nullopt;
}

bool type_is(const bson_value_t& v, int code) {
    if (code == 1000)
        return type_rank(v.value_type) == 2;
    const int t = v.value_type == BSON_TYPE_MINKEY   ? -1
                  : v.value_type == BSON_TYPE_MAXKEY ? 127
                                                     : static_cast<int>(v.value_type);
    return t == code;
}

bool type_match(const bson_t& doc, std::string_view path, const bson_iter_t& arg) {
    std::vector<int> codes;
    if (BSON_ITER_HOLDS_ARRAY(&arg)) {
        bson_iter_t el;
        bson_iter_recurse(&arg, &el);
        while (bson_iter_next(&el))
            if (auto c = type_code(el))
                codes.push_back(*c);
    } else if (auto c = type_code(arg)) {
        codes.push_back(*c);
    }
    bson_iter_t field;
    if (!lookup(doc, path, field))
        return false;
    return any_value(field, [&](const bson_value_t& v) {
        return std::any_of(codes.begin(), codes.end(), [&](int c) { return type_is(v, c); });
    });
}

bool elem_match(const bson_t& doc, std::string_view path, const bson_iter_t& spec_it) {
    bson_iter_t field, el;
    bson_t spec;
    if (!lookup(doc, path, field) || !BSON_ITER_HOLDS_ARRAY(&field) ||
        !view_document(spec_it, spec) || !bson_iter_recurse(&field, &el))
        return false;
    const bool on_values = is_operator_doc(spec_it);
    while (bson_iter_next(&el)) {
        if (on_values) {
            // {$elemMatch: {$gte: 80, $lt: 85}}: the operators apply to the element itself.
            bson_ptr wrapped = make_bson();
            append_value(wrapped.get(), "v", *bson_iter_value(&el));
            if (operator_match(*wrapped, "v", spec_it))
                return true;
        } else {
            bson_t sub;
            if (BSON_ITER_HOLDS_DOCUMENT(&el) && view_document(el, sub) && matches(sub, spec))
                return true;
        }
    }
    return false;
}

bool operator_match(const bson_t& doc, std::string_view path, const bson_iter_t& ops) {
    bson_iter_t op;
    bson_iter_recurse(&ops, &op);
    while (bson_iter_next(&op)) {
        std::string_view name = key_of(op);
        const bson_value_t& v = *bson_iter_value(&op);
        bool ok;
        if (name == "$regex") {
            bson_iter_t options;
            const bool has_options =
                bson_iter_recurse(&ops, &options) && bson_iter_find(&options, "$options");
            std::string pattern, opts;
            ok = regex_source(v, has_options ? &options : nullptr, pattern, opts) &&
                 regex_match(doc, path, pattern, opts);
        } else if (name == "$options") {
            ok = true;  // read with $regex
        } else if (name == "$size") {
            bson_iter_t field, el;
            std::int64_t count = 0;
            if (lookup(doc, path, field) && BSON_ITER_HOLDS_ARRAY(&field) &&
                bson_iter_recurse(&field, &el))
                while (bson_iter_next(&el))
                    ++count;
            ok = BSON_ITER_HOLDS_ARRAY(&field) && as_int64(op) == count;
        } else if (name == "$all") {
            bson_iter_t el;
            bson_iter_recurse(&op, &el);
            ok = false;
            bool all = true;
            while (bson_iter_next(&el)) {
                ok = true;
                all = all && eq_match(doc, path, *bson_iter_value(&el));
            }
            ok = ok && all;  // an empty $all matches nothing
        } else if (name == "$not") {
            if (BSON_ITER_HOLDS_REGEX(&op)) {
                std::string pattern, opts;
                regex_source(v, nullptr, pattern, opts);
                ok = !regex_match(doc, path, pattern, opts);
            } else {
                ok = !operator_match(doc, path, op);
            }
        } else if (name == "$type") {
            ok = type_match(doc, path, op);
        } else if (name == "$elemMatch") {
            ok = elem_match(doc, path, op);
        } else if (name == "$eq") {
            ok = eq_match(doc, path, v);
        } else if (name == "$ne") {
            ok = !eq_match(doc, path, v);
        } else if (name == "$in") {
            ok = in_match(doc, path, op);
        } else if (name == "$nin") {
            ok = !in_match(doc, path, op);
        } else if (name == "$exists") {
            bson_iter_t field;
            ok = lookup(doc, path, field) == bson_iter_as_bool(&op);
        } else {
            ok = cmp_match(doc, path, v, name);
        }
        if (!ok)
            return false;
    }
    return true;
}

failure validate_operators(const bson_iter_t& ops) {
    bson_iter_t op;
    bson_iter_recurse(&ops, &op);
    while (bson_iter_next(&op)) {
        std::string_view name = key_of(op);
        if (name == "$in" || name == "$nin") {
            if (!BSON_ITER_HOLDS_ARRAY(&op))
                return cmd_error{2, std::string(name) + " needs an array"};
        } else if (name == "$regex" || name == "$options") {
            bson_iter_t regex, options;
            const bool has_regex =
                bson_iter_recurse(&ops, &regex) && bson_iter_find(&regex, "$regex");
            const bool has_options =
                bson_iter_recurse(&ops, &options) && bson_iter_find(&options, "$options");
            if (!has_regex)
                return cmd_error{2, "$options needs a $regex"};
            if (has_options && !BSON_ITER_HOLDS_UTF8(&options))
                return cmd_error{2, "$options has to be a string"};
            std::string pattern, opts;
            if (!regex_source(*bson_iter_value(&regex), has_options ? &options : nullptr, pattern,
                              opts))
                return cmd_error{2, "$regex has to be a string"};
            if (!compile_regex(pattern, opts))
                return cmd_error{51091, "Regular expression is invalid: " + pattern};
        } else if (name == "$size") {
            const auto n = as_int64(op);
            if (!n || *n < 0 || (BSON_ITER_HOLDS_DOUBLE(&op) && bson_iter_double(&op) != *n))
                return cmd_error{2, "$size needs a non-negative whole number"};
        } else if (name == "$all") {
            if (!BSON_ITER_HOLDS_ARRAY(&op))
                return cmd_error{2, "$all needs an array"};
        } else if (name == "$not") {
            if (BSON_ITER_HOLDS_REGEX(&op))
                continue;
            if (!is_operator_doc(op))
                return cmd_error{2, "$not needs a regex or a document of operators"};
            if (auto f = validate_operators(op))
                return f;
        } else if (name == "$type") {
            bool any = false, bad = false;
            if (BSON_ITER_HOLDS_ARRAY(&op)) {
                bson_iter_t el;
                bson_iter_recurse(&op, &el);
                while (bson_iter_next(&el)) {
                    any = true;
                    bad = bad || !type_code(el);
                }
            } else {
                any = true;
                bad = !type_code(op);
            }
            if (!any || bad)
                return cmd_error{2, "$type needs a BSON type number or alias"};
        } else if (name == "$elemMatch") {
            bson_t spec;
            if (!BSON_ITER_HOLDS_DOCUMENT(&op) || !view_document(op, spec))
                return cmd_error{2, "$elemMatch needs an Object"};
            if (auto f = is_operator_doc(op) ? validate_operators(op) : validate_filter(spec))
                return f;
        } else if (name != "$eq" && name != "$ne" && name != "$exists" && name != "$gt" &&
                   name != "$gte" && name != "$lt" && name != "$lte") {
            return cmd_error{2, "unknown operator: " + std::string(name)};
        }
    }
    return {};
}

}  // namespace

int compare_values(const bson_value_t& a, const bson_value_t& b) {
    if (int c = three_way(type_rank(a.value_type), type_rank(b.value_type)))
        return c;
    switch (a.value_type) {
        case BSON_TYPE_MINKEY:
        case BSON_TYPE_MAXKEY:
        case BSON_TYPE_NULL:
        case BSON_TYPE_UNDEFINED:
            return 0;
        case BSON_TYPE_INT32:
        case BSON_TYPE_INT64:
        case BSON_TYPE_DOUBLE:
        case BSON_TYPE_DECIMAL128: {
            if (is_integral(a.value_type) && is_integral(b.value_type))
                return three_way(int_of(a), int_of(b));
            double x = double_of(a), y = double_of(b);
            if (std::isnan(x) || std::isnan(y))
                return three_way(!std::isnan(x), !std::isnan(y));
            return three_way(x, y);
        }
        case BSON_TYPE_UTF8:
        case BSON_TYPE_SYMBOL: {
            auto sa = a.value_type == BSON_TYPE_UTF8 ? a.value.v_utf8.str : a.value.v_symbol.symbol;
            auto la = a.value_type == BSON_TYPE_UTF8 ? a.value.v_utf8.len : a.value.v_symbol.len;
            auto sb = b.value_type == BSON_TYPE_UTF8 ? b.value.v_utf8.str : b.value.v_symbol.symbol;
            auto lb = b.value_type == BSON_TYPE_UTF8 ? b.value.v_utf8.len : b.value.v_symbol.len;
            return compare_bytes(sa, la, sb, lb);
        }
        case BSON_TYPE_DOCUMENT:
        case BSON_TYPE_ARRAY:
            return compare_docs(a.value.v_doc.data, a.value.v_doc.data_len, b.value.v_doc.data,
                                b.value.v_doc.data_len);
        case BSON_TYPE_BINARY:
            if (int c = three_way(a.value.v_binary.data_len, b.value.v_binary.data_len))
                return c;
            if (int c = three_way(a.value.v_binary.subtype, b.value.v_binary.subtype))
                return c;
            return compare_bytes(a.value.v_binary.data, a.value.v_binary.data_len,
                                 b.value.v_binary.data, b.value.v_binary.data_len);
        case BSON_TYPE_OID:
            return bson_oid_compare(&a.value.v_oid, &b.value.v_oid) < 0   ? -1
                   : bson_oid_compare(&a.value.v_oid, &b.value.v_oid) > 0 ? 1
                                                                          : 0;
        case BSON_TYPE_BOOL:
            return three_way(a.value.v_bool, b.value.v_bool);
        case BSON_TYPE_DATE_TIME:
            return three_way(a.value.v_datetime, b.value.v_datetime);
        case BSON_TYPE_TIMESTAMP:
            if (int c = three_way(a.value.v_timestamp.timestamp, b.value.v_timestamp.timestamp))
                return c;
            return three_way(a.value.v_timestamp.increment, b.value.v_timestamp.increment);
        case BSON_TYPE_REGEX: {
            int c = std::strcmp(a.value.v_regex.regex, b.value.v_regex.regex);
            if (c == 0)
                c = std::strcmp(a.value.v_regex.options, b.value.v_regex.options);
            return c < 0 ? -1 : (c > 0 ? 1 : 0);
        }
        case BSON_TYPE_CODE:
            return compare_bytes(a.value.v_code.code, a.value.v_code.code_len, b.value.v_code.code,
                                 b.value.v_code.code_len);
        default: {
            // Remaining rare types: order by their encoded form so the order stays total.
            bson_t ta = BSON_INITIALIZER, tb = BSON_INITIALIZER;
            bson_append_value(&ta, "", 0, &a);
            bson_append_value(&tb, "", 0, &b);
            int c = compare_bytes(bson_get_data(&ta), ta.len, bson_get_data(&tb), tb.len);
            bson_destroy(&ta);
            bson_destroy(&tb);
            return c;
        }
    }
}

failure validate_filter(const bson_t& filter) {
    bson_iter_t it;
    if (!bson_iter_init(&it, &filter))
        return cmd_error{2, "malformed filter"};
    while (bson_iter_next(&it)) {
        std::string_view k = key_of(it);
        if (k == "$and" || k == "$or" || k == "$nor") {
            if (!BSON_ITER_HOLDS_ARRAY(&it))
                return cmd_error{2, std::string(k) + " needs an array"};
            bson_iter_t el;
            bson_iter_recurse(&it, &el);
            bool any = false;
            while (bson_iter_next(&el)) {
                bson_t sub;
                if (!view_document(el, sub))
                    return cmd_error{2, std::string(k) + " entries must be objects"};
                if (auto f = validate_filter(sub))
                    return f;
                any = true;
            }
            if (!any)
                return cmd_error{2, std::string(k) + " must be a nonempty array"};
        } else if (!k.empty() && k[0] == '$') {
            return cmd_error{2, "unknown top level operator: " + std::string(k)};
        } else if (is_operator_doc(it)) {
            if (auto f = validate_operators(it))
                return f;
        } else if (BSON_ITER_HOLDS_REGEX(&it)) {
            std::string pattern, opts;
            regex_source(*bson_iter_value(&it), nullptr, pattern, opts);
            if (!compile_regex(pattern, opts))
                return cmd_error{51091, "Regular expression is invalid: " + pattern};
        }
    }
    return {};
}

bool matches(const bson_t& doc, const bson_t& filter) {
    bson_iter_t it;
    if (!bson_iter_init(&it, &filter))
        return false;
    while (bson_iter_next(&it)) {
        std::string_view k = key_of(it);
        bool ok;
        if (k == "$and" || k == "$or" || k == "$nor") {
            bson_iter_t el;
            bson_iter_recurse(&it, &el);
            bool all = true, any = false;
            while (bson_iter_next(&el)) {
                bson_t sub;
                view_document(el, sub);
                bool m = matches(doc, sub);
                all = all && m;
                any = any || m;
            }
            ok = k == "$and" ? all : (k == "$or" ? any : !any);
        } else if (is_operator_doc(it)) {
            ok = operator_match(doc, k, it);
        } else if (BSON_ITER_HOLDS_REGEX(&it)) {
            // {field: /pattern/}: a regex match on strings (or an equal stored regex).
            std::string pattern, opts;
            regex_source(*bson_iter_value(&it), nullptr, pattern, opts);
            ok = regex_match(doc, k, pattern, opts);
        } else {
            ok = eq_match(doc, k, *bson_iter_value(&it));
        }
        if (!ok)
            return false;
    }
    return true;
}

std::string id_key(const bson_value_t& id) {
    std::string key;
    if (type_rank(id.value_type) == 2) {
        // Numbers: equal values share a key whatever their BSON type.
        if (is_integral(id.value_type) || (id.value_type == BSON_TYPE_DOUBLE &&
                                           std::trunc(id.value.v_double) == id.value.v_double &&
                                           std::fabs(id.value.v_double) < 9.0e15)) {
            std::int64_t n = is_integral(id.value_type)
                                 ? int_of(id)
                                 : static_cast<std::int64_t>(id.value.v_double);
            key = "i";
            key.append(reinterpret_cast<const char*>(&n), sizeof n);
            return key;
        }
        double d = double_of(id);
        key = "d";
        key.append(reinterpret_cast<const char*>(&d), sizeof d);
        return key;
    }
    bson_t tmp = BSON_INITIALIZER;
    bson_append_value(&tmp, "", 0, &id);
    key.assign(reinterpret_cast<const char*>(bson_get_data(&tmp)), tmp.len);
    bson_destroy(&tmp);
    return key;
}

failure parse_sort(const bson_t& spec, std::vector<sort_key>& out) {
    bson_iter_t it;
    bson_iter_init(&it, &spec);
    while (bson_iter_next(&it)) {
        auto n = as_number(it);
        if (!n || (*n != 1 && *n != -1))
            return cmd_error{15974, "sort direction must be 1 or -1"};
        out.push_back({std::string(key_of(it)), *n > 0 ? 1 : -1});
    }
    return {};
}

bool sort_less(const bson_t& a, const bson_t& b, const std::vector<sort_key>& keys) {
    static const bson_value_t null_value = [] {
        bson_value_t v{};
        v.value_type = BSON_TYPE_NULL;
        return v;
    }();
    for (const auto& k : keys) {
        bson_iter_t ia, ib;
        const bson_value_t* va = lookup(a, k.path, ia) ? bson_iter_value(&ia) : &null_value;
        const bson_value_t* vb = lookup(b, k.path, ib) ? bson_iter_value(&ib) : &null_value;
        int c = compare_values(*va, *vb) * k.direction;
        if (c != 0)
            return c < 0;
    }
    return false;
}

failure parse_projection(const bson_t& spec, projection& out) {
    bson_iter_t it;
    bson_iter_init(&it, &spec);
    bool have_mode = false;
    while (bson_iter_next(&it)) {
        std::string_view k = key_of(it);
        if (k.find('.') != std::string_view::npos || (!k.empty() && k[0] == '$'))
            return cmd_error{2, "mongosim supports only top-level projection fields"};
        bool include = bson_iter_as_bool(&it);
        if (!BSON_ITER_HOLDS_BOOL(&it) && !as_number(it))
            return cmd_error{2, "projection values must be 0, 1, true or false"};
        if (k == "_id") {
            out.exclude_id = !include;
            continue;
        }
        if (have_mode && include != out.inclusion)
            return cmd_error{31254, "cannot mix inclusion and exclusion in a projection"};
        have_mode = true;
        out.inclusion = include;
        out.fields.emplace_back(k);
    }
    bson_iter_t id;
    if (!have_mode && bson_iter_init_find(&id, &spec, "_id") && bson_iter_as_bool(&id))
        out.inclusion = true;  // {_id: 1}: only the _id
    return {};
}

bson_ptr apply_projection(const bson_t& doc, const projection& p) {
    bson_ptr out = make_bson();
    bson_iter_t it;
    bson_iter_init(&it, &doc);
    while (bson_iter_next(&it)) {
        std::string_view k = key_of(it);
        bool listed = false;
        for (const auto& f : p.fields)
            listed = listed || f == k;
        bool keep = k == "_id" ? !p.exclude_id : (p.inclusion ? listed : !listed);
        if (keep)
            append_value(out.get(), k, *bson_iter_value(&it));
    }
    return out;
}

void append_value(bson_t* out, std::string_view key, const bson_value_t& v) {
    bson_append_value(out, key.data(), static_cast<int>(key.size()), &v);
}

bool view_document(const bson_iter_t& it, bson_t& view) {
    if (!BSON_ITER_HOLDS_DOCUMENT(&it) && !BSON_ITER_HOLDS_ARRAY(&it))
        return false;
    std::uint32_t len;
    const std::uint8_t* data;
    if (BSON_ITER_HOLDS_DOCUMENT(&it))
        bson_iter_document(&it, &len, &data);
    else
        bson_iter_array(&it, &len, &data);
    return bson_init_static(&view, data, len);
}

std::optional<double> as_number(const bson_iter_t& it) {
    switch (bson_iter_type(&it)) {
        case BSON_TYPE_INT32:
            return bson_iter_int32(&it);
        case BSON_TYPE_INT64:
            return static_cast<double>(bson_iter_int64(&it));
        case BSON_TYPE_DOUBLE:
            return bson_iter_double(&it);
        default:
            return std::nullopt;
    }
}

std::optional<std::int64_t> as_int64(const bson_iter_t& it) {
    switch (bson_iter_type(&it)) {
        case BSON_TYPE_INT32:
            return bson_iter_int32(&it);
        case BSON_TYPE_INT64:
            return bson_iter_int64(&it);
        case BSON_TYPE_DOUBLE: {
            double d = bson_iter_double(&it);
            if (std::isfinite(d) && std::fabs(d) < 9.2e18)
                return static_cast<std::int64_t>(d);
            return std::nullopt;
        }
        default:
            return std::nullopt;
    }
}

}  // namespace mongosim
