#include "store.hpp"

#include <mongosim/wire.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <random>

namespace mongosim {
namespace {

enum class op_kind { set, unset, inc, mul, min, max, push, current_date };

struct update_op {
    op_kind kind;
    std::vector<std::string> path;
    std::string dotted;
    bson_iter_t arg;  // points into the update document
};

std::vector<std::string> split_path(std::string_view p) {
    std::vector<std::string> out;
    std::size_t start = 0;
    for (;;) {
        auto dot = p.find('.', start);
        out.emplace_back(p.substr(start, dot - start));
        if (dot == std::string_view::npos)
            break;
        start = dot + 1;
    }
    return out;
}

bool is_prefix(const std::vector<std::string>& a, const std::vector<std::string>& b) {
    return a.size() <= b.size() && std::equal(a.begin(), a.end(), b.begin());
}

bson_value_t int64_value(std::int64_t v) {
    bson_value_t r{};
    r.value_type = BSON_TYPE_INT64;
    r.value.v_int64 = v;
    return r;
}

// Arithmetic with MongoDB's type promotion: int32 op int32 stays int32 unless it overflows.
failure arith(const bson_value_t& a, const bson_value_t& b, bool multiply, bson_value_t& out) {
    auto numeric = [](const bson_value_t& v) {
        return v.value_type == BSON_TYPE_INT32 || v.value_type == BSON_TYPE_INT64 ||
               v.value_type == BSON_TYPE_DOUBLE;
    };
    if (!numeric(a) || !numeric(b))
        return cmd_error{14, "Cannot apply $inc/$mul to a value of non-numeric type"};
    out = {};
    if (a.value_type == BSON_TYPE_DOUBLE || b.value_type == BSON_TYPE_DOUBLE) {
        auto d = [](const bson_value_t& v) {
            return v.value_type == BSON_TYPE_DOUBLE  ? v.value.v_double
                   : v.value_type == BSON_TYPE_INT32 ? double(v.value.v_int32)
                                                     : double(v.value.v_int64);
        };
        out.value_type = BSON_TYPE_DOUBLE;
        out.value.v_double = multiply ? d(a) * d(b) : d(a) + d(b);
        return {};
    }
    auto i = [](const bson_value_t& v) {
        return v.value_type == BSON_TYPE_INT32 ? std::int64_t(v.value.v_int32) : v.value.v_int64;
    };
    std::int64_t r;
    bool overflow =
        multiply ? __builtin_mul_overflow(i(a), i(b), &r) : __builtin_add_overflow(i(a), i(b), &r);
    if (overflow)
        return cmd_error{2, "integer overflow in $inc/$mul"};
    if (a.value_type == BSON_TYPE_INT32 && b.value_type == BSON_TYPE_INT32 &&
        r >= std::numeric_limits<std::int32_t>::min() &&
        r <= std::numeric_limits<std::int32_t>::max()) {
        out.value_type = BSON_TYPE_INT32;
        out.value.v_int32 = static_cast<std::int32_t>(r);
    } else {
        out = int64_value(r);
    }
    return {};
}

class rebuilder {
public:
    explicit rebuilder(update_diff& diff) : diff_(diff) {}

    // Writes `in` (may be null: a document being created) with ops applied at depth d into out.
    failure build(bson_t* out, const bson_t* in, bool in_is_array,
                  const std::vector<const update_op*>& ops, std::size_t d, bool record) {
        std::vector<bool> done(ops.size(), false);
        if (in != nullptr) {
            bson_iter_t it;
            bson_iter_init(&it, in);
            while (bson_iter_next(&it)) {
                std::string_view key = key_of(it);
                std::vector<const update_op*> mine;
                for (std::size_t i = 0; i < ops.size(); ++i) {
                    if (ops[i]->path[d] == key) {
                        mine.push_back(ops[i]);
                        done[i] = true;
                    }
                }
                if (mine.empty()) {
                    append_value(out, key, *bson_iter_value(&it));
                } else if (mine.size() == 1 && mine[0]->path.size() == d + 1) {
                    if (auto f = leaf(out, key, bson_iter_value(&it), *mine[0], record))
                        return f;
                } else {
                    if (!BSON_ITER_HOLDS_DOCUMENT(&it) && !BSON_ITER_HOLDS_ARRAY(&it))
                        return cmd_error{28, "Cannot create field '" + mine[0]->path[d + 1] +
                                                 "' in element {" + std::string(key) +
                                                 ": non-object}"};
                    bson_t child_in;
                    view_document(it, child_in);
                    bool arr = BSON_ITER_HOLDS_ARRAY(&it);
                    bson_t child;
                    int klen = static_cast<int>(key.size());
                    arr ? bson_append_array_begin(out, key.data(), klen, &child)
                        : bson_append_document_begin(out, key.data(), klen, &child);
                    auto f = build(&child, &child_in, arr, mine, d + 1, record);
                    arr ? bson_append_array_end(out, &child)
                        : bson_append_document_end(out, &child);
                    if (f)
                        return f;
                }
            }
        }
        // Paths that do not exist yet, grouped by their component at this depth.
        std::uint32_t next_index = in != nullptr && in_is_array ? bson_count_keys(in) : 0;
        for (std::size_t i = 0; i < ops.size(); ++i) {
            if (done[i])
                continue;
            const std::string& key = ops[i]->path[d];
            std::vector<const update_op*> mine;
            for (std::size_t j = i; j < ops.size(); ++j) {
                if (!done[j] && ops[j]->path[d] == key) {
                    mine.push_back(ops[j]);
                    done[j] = true;
                }
            }
            if (in_is_array) {
                if (key != std::to_string(next_index))
                    return cmd_error{2, "mongosim can only append to an array at its end"};
                ++next_index;
            }
            if (mine.size() == 1 && mine[0]->path.size() == d + 1) {
                if (auto f = leaf(out, key, nullptr, *mine[0], record))
                    return f;
                continue;
            }
            bson_t child;
            bson_append_document_begin(out, key.data(), static_cast<int>(key.size()), &child);
            // A created parent is reported as one updated field, as mongod's diff does.
            auto f = build(&child, nullptr, false, mine, d + 1, false);
            bson_append_document_end(out, &child);
            if (f)
                return f;
            if (record) {
                bson_iter_t last;
                if (bson_iter_init_find(&last, out, key.c_str())) {
                    std::string path = prefix(*mine[0], d);
                    append_value(diff_.updated_fields.get(), path, *bson_iter_value(&last));
                }
            }
        }
        return {};
    }

private:
    static std::string prefix(const update_op& op, std::size_t d) {
        std::string p;
        for (std::size_t i = 0; i <= d; ++i) {
            if (i)
                p += '.';
            p += op.path[i];
        }
        return p;
    }

    failure leaf(bson_t* out, std::string_view key, const bson_value_t* old, const update_op& op,
                 bool record) {
        const bson_value_t* arg = bson_iter_value(const_cast<bson_iter_t*>(&op.arg));
        bson_value_t computed{};
        const bson_value_t* result = nullptr;
        bson_ptr scratch;
        bson_iter_t scratch_it;
        switch (op.kind) {
            case op_kind::set:
                result = arg;
                break;
            case op_kind::unset:
                if (old != nullptr && record)
                    diff_.removed_fields.push_back(op.dotted);
                return {};
            case op_kind::inc:
            case op_kind::mul: {
                bson_value_t zero{};
                zero.value_type = BSON_TYPE_INT32;
                if (old == nullptr && op.kind == op_kind::inc) {
                    if (auto f = arith(zero, *arg, false, computed))
                        return f;
                } else if (old == nullptr) {
                    if (auto f = arith(zero, *arg, true, computed))
                        return f;
                } else if (auto f = arith(*old, *arg, op.kind == op_kind::mul, computed)) {
                    return f;
                }
                result = &computed;
                break;
            }
            case op_kind::min:
            case op_kind::max: {
                int c = old == nullptr ? 0 : compare_values(*arg, *old);
                bool take = old == nullptr || (op.kind == op_kind::min ? c < 0 : c > 0);
                result = take ? arg : old;
                break;
            }
            case op_kind::push: {
                if (old != nullptr && old->value_type != BSON_TYPE_ARRAY)
                    return cmd_error{2, "The field '" + op.dotted + "' must be an array"};
                scratch = make_bson();
                bson_t arr;
                bson_append_array_begin(scratch.get(), "a", 1, &arr);
                std::uint32_t n = 0;
                char buf[16];
                auto add = [&](const bson_value_t& v) {
                    const char* k;
                    std::size_t kl = bson_uint32_to_string(n++, &k, buf, sizeof buf);
                    bson_append_value(&arr, k, static_cast<int>(kl), &v);
                };
                if (old != nullptr) {
                    bson_iter_t e;
                    if (bson_iter_init_from_data(&e, old->value.v_doc.data,
                                                 old->value.v_doc.data_len))
                        while (bson_iter_next(&e))
                            add(*bson_iter_value(&e));
                }
                bson_iter_t each;
                if (arg->value_type == BSON_TYPE_DOCUMENT && bson_iter_recurse(&op.arg, &each) &&
                    bson_iter_find(&each, "$each") && BSON_ITER_HOLDS_ARRAY(&each)) {
                    bson_iter_t e;
                    bson_iter_recurse(&each, &e);
                    while (bson_iter_next(&e))
                        add(*bson_iter_value(&e));
                } else {
                    add(*arg);
                }
                bson_append_array_end(scratch.get(), &arr);
                bson_iter_init_find(&scratch_it, scratch.get(), "a");
                result = bson_iter_value(&scratch_it);
                break;
            }
            case op_kind::current_date: {
                auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch());
                computed.value_type = BSON_TYPE_DATE_TIME;
                computed.value.v_datetime = now.count();
                result = &computed;
                break;
            }
        }
        append_value(out, key, *result);
        if (record && (old == nullptr || !values_equal(*old, *result) ||
                       old->value_type != result->value_type))
            append_value(diff_.updated_fields.get(), op.dotted, *result);
        return {};
    }

    update_diff& diff_;
};

failure parse_ops(const bson_t& update, bool inserting, std::vector<update_op>& ops) {
    bson_iter_t it;
    bson_iter_init(&it, &update);
    while (bson_iter_next(&it)) {
        std::string_view name = key_of(it);
        op_kind kind;
        if (name == "$set")
            kind = op_kind::set;
        else if (name == "$setOnInsert")
            kind = op_kind::set;
        else if (name == "$unset")
            kind = op_kind::unset;
        else if (name == "$inc")
            kind = op_kind::inc;
        else if (name == "$mul")
            kind = op_kind::mul;
        else if (name == "$min")
            kind = op_kind::min;
        else if (name == "$max")
            kind = op_kind::max;
        else if (name == "$push")
            kind = op_kind::push;
        else if (name == "$currentDate")
            kind = op_kind::current_date;
        else
            return cmd_error{9, "Unknown modifier: " + std::string(name)};
        if (!BSON_ITER_HOLDS_DOCUMENT(&it))
            return cmd_error{9, "Modifiers operate on fields but we found another type instead"};
        if (name == "$setOnInsert" && !inserting)
            continue;
        bson_iter_t field;
        bson_iter_recurse(&it, &field);
        while (bson_iter_next(&field)) {
            std::string_view path = key_of(field);
            update_op op{kind, split_path(path), std::string(path), field};
            for (const auto& c : op.path) {
                if (c.empty())
                    return cmd_error{56, "empty field name in update path"};
            }
            if ((kind == op_kind::inc || kind == op_kind::mul) && !as_number(field))
                return cmd_error{
                    14, "Cannot " + std::string(name.substr(1)) + " with non-numeric argument"};
            ops.push_back(std::move(op));
        }
    }
    for (std::size_t i = 0; i < ops.size(); ++i) {
        for (std::size_t j = 0; j < ops.size(); ++j) {
            if (i != j && is_prefix(ops[i].path, ops[j].path))
                return cmd_error{40, "Updating the path '" + ops[j].dotted +
                                         "' would create a conflict at '" + ops[i].dotted + "'"};
        }
    }
    return {};
}

void random_uuid(std::array<std::uint8_t, 16>& out) {
    static std::mt19937_64 rng{std::random_device{}()};
    for (auto& b : out)
        b = static_cast<std::uint8_t>(rng());
    out[6] = static_cast<std::uint8_t>((out[6] & 0x0F) | 0x40);
    out[8] = static_cast<std::uint8_t>((out[8] & 0x3F) | 0x80);
}

}  // namespace

failure collection::insert(shared_doc doc) {
    bson_iter_t it;
    if (!bson_iter_init_find(&it, doc.get(), "_id"))
        return cmd_error{2, "document has no _id"};
    std::string key = id_key(*bson_iter_value(&it));
    if (by_id.contains(key))
        return cmd_error{11000, "E11000 duplicate key error index: _id_"};
    std::uint64_t slot = next_slot++;
    by_id.emplace(std::move(key), slot);
    docs.emplace(slot, std::move(doc));
    return {};
}

shared_doc collection::find_id(const bson_value_t& id) const {
    auto it = by_id.find(id_key(id));
    if (it == by_id.end())
        return nullptr;
    return docs.at(it->second);
}

collection* store::find(const std::string& db, const std::string& coll) {
    auto d = dbs_.find(db);
    if (d == dbs_.end())
        return nullptr;
    auto c = d->second.collections.find(coll);
    return c == d->second.collections.end() ? nullptr : &c->second;
}

collection& store::obtain(const std::string& db, const std::string& coll, bool& created) {
    auto& colls = dbs_[db].collections;
    auto [it, inserted] = colls.try_emplace(coll);
    created = inserted;
    if (inserted)
        random_uuid(it->second.uuid);
    return it->second;
}

bool store::drop(const std::string& db, const std::string& coll) {
    auto d = dbs_.find(db);
    if (d == dbs_.end())
        return false;
    auto c = d->second.collections.find(coll);
    if (c == d->second.collections.end())
        return false;
    dropped_.insert(c->second.uuid);
    d->second.collections.erase(c);
    if (d->second.collections.empty())
        dbs_.erase(d);
    return true;
}

bool store::extract(const std::string& db, const std::string& coll, collection& out) {
    auto d = dbs_.find(db);
    if (d == dbs_.end())
        return false;
    auto c = d->second.collections.find(coll);
    if (c == d->second.collections.end())
        return false;
    out = std::move(c->second);
    d->second.collections.erase(c);
    if (d->second.collections.empty())
        dbs_.erase(d);
    return true;
}

void store::put(const std::string& db, const std::string& coll, collection&& c) {
    dbs_[db].collections.insert_or_assign(coll, std::move(c));
}

bool is_operator_update(const bson_t& update) {
    bson_iter_t it;
    return bson_iter_init(&it, &update) && bson_iter_next(&it) && bson_iter_key(&it)[0] == '$';
}

failure apply_update(const bson_t* doc, const bson_t& update, bool inserting, bson_ptr& out,
                     update_diff& diff) {
    std::vector<update_op> ops;
    if (auto f = parse_ops(update, inserting, ops))
        return f;
    std::vector<const update_op*> refs;
    for (const auto& op : ops)
        refs.push_back(&op);
    out = make_bson();
    rebuilder r(diff);
    if (refs.empty()) {
        if (doc != nullptr)
            bson_concat(out.get(), doc);
        return {};
    }
    if (auto f = r.build(out.get(), doc, false, refs, 0, !inserting))
        return f;
    if (doc != nullptr) {
        bson_iter_t a, b;
        bool had = bson_iter_init_find(&a, doc, "_id");
        bool has = bson_iter_init_find(&b, out.get(), "_id");
        if (had && (!has || !values_equal(*bson_iter_value(&a), *bson_iter_value(&b)) ||
                    bson_iter_type(&a) != bson_iter_type(&b)))
            return cmd_error{66,
                             "Performing an update on the path '_id' would modify the immutable "
                             "field '_id'"};
    }
    if (out->len > static_cast<std::uint32_t>(max_bson_size))
        return cmd_error{17419, "Resulting document after update is larger than 16777216"};
    return {};
}

failure upsert_seed(const bson_t& filter, bson_ptr& out) {
    bson_ptr set = make_bson();
    bson_t fields;
    bson_append_document_begin(set.get(), "$set", 4, &fields);
    bson_iter_t it;
    bson_iter_init(&it, &filter);
    while (bson_iter_next(&it)) {
        std::string_view k = key_of(it);
        if (k.empty() || k[0] == '$')
            continue;
        bson_iter_t op;
        if (BSON_ITER_HOLDS_DOCUMENT(&it) && bson_iter_recurse(&it, &op) && bson_iter_next(&op) &&
            bson_iter_key(&op)[0] == '$') {
            if (key_of(op) == "$eq")
                append_value(&fields, k, *bson_iter_value(&op));
            continue;
        }
        append_value(&fields, k, *bson_iter_value(&it));
    }
    bson_append_document_end(set.get(), &fields);
    update_diff ignored;
    return apply_update(nullptr, *set, true, out, ignored);
}

bson_ptr with_leading_id(const bson_t& doc) {
    bson_iter_t it;
    if (bson_iter_init(&it, &doc) && bson_iter_next(&it) && key_of(it) == "_id")
        return copy_bson(&doc);
    bson_ptr out = make_bson();
    bson_iter_t id;
    if (bson_iter_init_find(&id, &doc, "_id")) {
        append_value(out.get(), "_id", *bson_iter_value(&id));
    } else {
        bson_oid_t oid;
        bson_oid_init(&oid, nullptr);
        BSON_APPEND_OID(out.get(), "_id", &oid);
    }
    bson_iter_init(&it, &doc);
    while (bson_iter_next(&it)) {
        if (key_of(it) != "_id")
            append_value(out.get(), key_of(it), *bson_iter_value(&it));
    }
    return out;
}

failure validate_for_storage(const bson_t& doc) {
    if (doc.len > static_cast<std::uint32_t>(max_bson_size))
        return cmd_error{10334, "object to insert exceeds maxBsonObjectSize (16777216)"};
    bson_iter_t it;
    bson_iter_init(&it, &doc);
    while (bson_iter_next(&it)) {
        if (bson_iter_key(&it)[0] == '$')
            return cmd_error{2, "field names may not start with '$': " + std::string(key_of(it))};
        if (key_of(it) == "_id" && (BSON_ITER_HOLDS_ARRAY(&it) || BSON_ITER_HOLDS_REGEX(&it)))
            return cmd_error{2, "_id cannot be an array or a regex"};
    }
    return {};
}

}  // namespace mongosim
