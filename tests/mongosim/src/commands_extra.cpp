// More of the command layer (commands.hpp): distinct, findAndModify, what happens around
// every retryable write (the session table answering retries, a failCommand
// writeConcernError attached after the write), fail point modes {skip} and
// {activationProbability}, and the failGetMoreAfterCursorCheckout fail point. Kept apart from
// commands.cpp, whose handlers findAndModify reuses for the write itself so its change events and
// pre-images are the same as those of update and delete.

#include "commands.hpp"

#include <algorithm>
#include <limits>
#include <random>

namespace mongosim {
namespace {

bool first_element(const bson_t& cmd, bson_iter_t& it) {
    return bson_iter_init(&it, &cmd) && bson_iter_next(&it);
}

std::string target_collection(const request& req) {
    bson_iter_t it;
    if (first_element(*req.command, it) && BSON_ITER_HOLDS_UTF8(&it))
        return bson_iter_utf8(&it, nullptr);
    return {};
}

bool valid_collection_name(const std::string& name) {
    return !name.empty() && name.find('$') == std::string::npos && name[0] != '.' &&
           name.find('\0') == std::string::npos;
}

// A document-valued field as a view, when present and a document.
bool get_doc(const bson_t& doc, const char* key, bson_t& view) {
    bson_iter_t it;
    return bson_iter_init_find(&it, &doc, key) && BSON_ITER_HOLDS_DOCUMENT(&it) &&
           view_document(it, view);
}

bool get_bool(const bson_t& doc, const char* key) {
    bson_iter_t it;
    return bson_iter_init_find(&it, &doc, key) && bson_iter_as_bool(&it);
}

// A value inside a stored document (a vector of bson_value_t would drop its alignment).
struct value_ref {
    bson_value_t v;
};

// Collects the values at a dotted path, descending into arrays as MongoDB's distinct does:
// an array at the end of the path contributes its elements, an array on the way is searched
// element by element.
void values_at(const bson_t& doc, std::string_view path, std::vector<value_ref>& out) {
    const auto dot = path.find('.');
    const std::string head(path.substr(0, dot));
    const std::string_view rest = dot == std::string_view::npos ? "" : path.substr(dot + 1);
    bson_iter_t it;
    if (!bson_iter_init_find(&it, &doc, head.c_str()))
        return;
    bson_t sub;
    const bool is_array = BSON_ITER_HOLDS_ARRAY(&it);
    const bool is_doc = BSON_ITER_HOLDS_DOCUMENT(&it);
    if (rest.empty()) {
        if (is_array) {
            bson_iter_t el;
            bson_iter_recurse(&it, &el);
            while (bson_iter_next(&el))
                out.push_back({*bson_iter_value(&el)});
        } else {
            out.push_back({*bson_iter_value(&it)});
        }
        return;
    }
    if (is_doc && view_document(it, sub)) {
        values_at(sub, rest, out);
    } else if (is_array) {
        bson_iter_t el;
        bson_iter_recurse(&it, &el);
        while (bson_iter_next(&el)) {
            bson_t elem;
            if (BSON_ITER_HOLDS_DOCUMENT(&el) && view_document(el, elem))
                values_at(elem, rest, out);
        }
    }
}

// The command fields a write passes on to the write it is made of, so a findAndModify in a
// session or a transaction writes in that session or transaction.
void copy_session_fields(const bson_t& from, bson_t* to) {
    for (const char* key : {"lsid", "txnNumber", "autocommit", "$clusterTime"}) {
        bson_iter_t it;
        if (bson_iter_init_find(&it, &from, key))
            bson_append_iter(to, key, -1, &it);
    }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Around every command: retryable writes and writeConcernError

std::optional<outcome> command_processor::replay_retried_write(const std::string& name,
                                                               const request& req) {
    auto id = retryable_write_table::identify(name, *req.command);
    if (!id)
        return std::nullopt;
    const auto found = retryable_writes_.check(*id);
    switch (found.what) {
        case retryable_write_table::verdict::execute:
            return std::nullopt;
        case retryable_write_table::verdict::too_old:
            return error(225, "Retryable write with txnNumber " + std::to_string(id->txn_number) +
                                  " is prohibited on session because a newer retryable write "
                                  "with txnNumber " +
                                  std::to_string(found.latest) +
                                  " has already started on this session.");
        case retryable_write_table::verdict::replay:
            break;
    }
    return ok(copy_bson(found.reply));
}

void command_processor::finish_command(const std::string& name, const request& req,
                                       exec_context& ctx, outcome& out) {
    if (out.what != outcome::kind::reply || !out.reply)
        return;
    bson_iter_t okv;
    const bool succeeded =
        bson_iter_init_find(&okv, out.reply.get(), "ok") && bson_iter_as_double(&okv) == 1.0;
    if (!succeeded)
        return;
    if (auto id = retryable_write_table::identify(name, *req.command))
        retryable_writes_.remember(*id, *out.reply);
    if (!ctx.write_concern_error)
        return;
    // failCommand's writeConcernError: the write happened; the reply says the write concern
    // failed. mongod labels it RetryableWriteError for a retryable write and a retryable code.
    bson_ptr wce = std::move(ctx.write_concern_error);
    bson_ptr reply = make_bson();
    bson_iter_t it;
    bson_iter_init(&it, out.reply.get());
    bool labelled = false;
    while (bson_iter_next(&it)) {
        if (key_of(it) == "errorLabels")
            labelled = true;
        bson_append_iter(reply.get(), bson_iter_key(&it), -1, &it);
    }
    bson_append_document(reply.get(), "writeConcernError", -1, wce.get());
    if (!labelled && ctx.write_concern_error_labels) {
        bson_t arr;
        bson_append_array_begin(reply.get(), "errorLabels", -1, &arr);
        for (std::uint32_t i = 0; i < ctx.write_concern_error_labels->size(); ++i) {
            char buf[16];
            const char* key;
            const std::size_t len = bson_uint32_to_string(i, &key, buf, sizeof buf);
            const std::string& label = (*ctx.write_concern_error_labels)[i];
            bson_append_utf8(&arr, key, static_cast<int>(len), label.data(),
                             static_cast<int>(label.size()));
        }
        bson_append_array_end(reply.get(), &arr);
    }
    out.reply = std::move(reply);
}

// ---------------------------------------------------------------------------------------------
// distinct

outcome command_processor::cmd_distinct(const request& req, client_info&, exec_context&) {
    const bson_t& cmd = *req.command;
    const std::string name = target_collection(req);
    if (!valid_collection_name(name))
        return error(73, "Invalid collection name: '" + name + "'");
    bson_iter_t key_it;
    if (!bson_iter_init_find(&key_it, &cmd, "key"))
        return error(40414, "BSON field 'distinct.key' is missing but a required field");
    if (!BSON_ITER_HOLDS_UTF8(&key_it))
        return error(14, "BSON field 'distinct.key' is the wrong type, expected type 'string'");
    const std::string key = bson_iter_utf8(&key_it, nullptr);
    if (key.empty() || key.front() == '.' || key.back() == '.' ||
        key.find("..") != std::string::npos)
        return error(2, "distinct key '" + key + "' is not a valid field path");
    bson_t query;
    bson_iter_t qit;
    if (bson_iter_init_find(&qit, &cmd, "query") && !BSON_ITER_HOLDS_NULL(&qit)) {
        if (!BSON_ITER_HOLDS_DOCUMENT(&qit) || !view_document(qit, query))
            return error(14,
                         "BSON field 'distinct.query' is the wrong type, expected type 'object'");
    } else {
        bson_init(&query);
    }
    if (auto f = validate_filter(query))
        return error(*f);

    // The values point into stored documents, which nothing changes before the reply is built.
    std::vector<value_ref> values;
    if (collection* c = store_.find(req.db, name)) {
        for (const auto& [slot, d] : c->docs) {
            if (!matches(*d, query))
                continue;
            std::vector<value_ref> found;
            values_at(*d, key, found);
            for (const auto& v : found) {
                const bool seen = std::any_of(values.begin(), values.end(), [&](const auto& x) {
                    return values_equal(x.v, v.v);
                });
                if (!seen)
                    values.push_back(v);
            }
        }
        std::stable_sort(values.begin(), values.end(),
                         [](const auto& a, const auto& b) { return compare_values(a.v, b.v) < 0; });
    }
    bson_ptr r = make_bson();
    bson_t arr;
    bson_append_array_begin(r.get(), "values", 6, &arr);
    std::uint32_t i = 0;
    for (const auto& v : values) {
        char buf[16];
        const char* k;
        const std::size_t len = bson_uint32_to_string(i++, &k, buf, sizeof buf);
        append_value(&arr, std::string_view(k, len), v.v);
    }
    bson_append_array_end(r.get(), &arr);
    if (r->len > 16 * 1024 * 1024)
        return error(17217, "distinct too big, 16mb cap");
    return ok(std::move(r));
}

// ---------------------------------------------------------------------------------------------
// findAndModify

outcome command_processor::cmd_find_and_modify(const request& req, client_info& client,
                                               exec_context& ctx) {
    const bson_t& cmd = *req.command;
    const std::string name = target_collection(req);
    if (!valid_collection_name(name))
        return error(73, "Invalid collection name: '" + name + "'");
    bson_t query, spec;
    if (!get_doc(cmd, "query", query))
        bson_init(&query);
    if (auto f = validate_filter(query))
        return error(*f);
    std::vector<sort_key> sort;
    if (get_doc(cmd, "sort", spec)) {
        if (auto f = parse_sort(spec, sort))
            return error(*f);
    }
    projection proj;
    if (get_doc(cmd, "fields", spec) || get_doc(cmd, "projection", spec)) {
        if (auto f = parse_projection(spec, proj))
            return error(*f);
    }
    const bool remove = get_bool(cmd, "remove");
    const bool return_new = get_bool(cmd, "new");
    const bool upsert = get_bool(cmd, "upsert");
    bson_iter_t update_it;
    const bool has_update = bson_iter_init_find(&update_it, &cmd, "update");
    if (remove && has_update)
        return error(9, "Cannot specify both an update and remove=true");
    if (!remove && !has_update)
        return error(9, "Either an update or remove=true must be specified");
    if (remove && upsert)
        return error(9, "Cannot specify both upsert=true and remove=true ");
    if (remove && return_new)
        return error(9,
                     "Cannot specify both new=true and remove=true; 'remove' always returns the "
                     "deleted document");
    if (has_update && !BSON_ITER_HOLDS_DOCUMENT(&update_it))
        return error(2,
                     "mongosim supports update documents (operators or a replacement), not "
                     "pipelines");

    // The document the command acts on: the first match in sort order.
    shared_doc target;
    if (collection* c = store_.find(req.db, name)) {
        for (const auto& [slot, d] : c->docs) {
            if (!matches(*d, query))
                continue;
            if (!target || (!sort.empty() && sort_less(*d, *target, sort)))
                target = d;
            if (sort.empty())
                break;
        }
    }
    bson_iter_t target_id;
    if (target)
        bson_iter_init_find(&target_id, target.get(), "_id");

    // The write itself, through the update or delete command.
    request sub;
    sub.db = req.db;
    sub.command = make_bson();
    bson_t stmts, stmt;
    if (remove) {
        if (!target) {
            bson_ptr r = make_bson();
            bson_t leo;
            BSON_APPEND_DOCUMENT_BEGIN(r.get(), "lastErrorObject", &leo);
            BSON_APPEND_INT32(&leo, "n", 0);
            bson_append_document_end(r.get(), &leo);
            BSON_APPEND_NULL(r.get(), "value");
            return ok(std::move(r));
        }
        BSON_APPEND_UTF8(sub.command.get(), "delete", name.c_str());
        BSON_APPEND_ARRAY_BEGIN(sub.command.get(), "deletes", &stmts);
        BSON_APPEND_DOCUMENT_BEGIN(&stmts, "0", &stmt);
    } else {
        BSON_APPEND_UTF8(sub.command.get(), "update", name.c_str());
        BSON_APPEND_ARRAY_BEGIN(sub.command.get(), "updates", &stmts);
        BSON_APPEND_DOCUMENT_BEGIN(&stmts, "0", &stmt);
    }
    bson_t q;
    if (target) {
        BSON_APPEND_DOCUMENT_BEGIN(&stmt, "q", &q);
        append_value(&q, "_id", *bson_iter_value(&target_id));
        bson_append_document_end(&stmt, &q);
    } else {
        BSON_APPEND_DOCUMENT(&stmt, "q", &query);
    }
    if (remove) {
        BSON_APPEND_INT32(&stmt, "limit", 1);
    } else {
        bson_append_iter(&stmt, "u", 1, &update_it);
        BSON_APPEND_BOOL(&stmt, "upsert", upsert && !target);
    }
    bson_append_document_end(&stmts, &stmt);
    bson_append_array_end(sub.command.get(), &stmts);
    copy_session_fields(cmd, sub.command.get());

    outcome written = remove ? cmd_delete(sub, client, ctx) : cmd_update(sub, client, ctx);
    if (written.what != outcome::kind::reply || !written.reply)
        return written;
    const bson_t& wr = *written.reply;
    bson_iter_t it, el;
    if (bson_iter_init_find(&it, &wr, "ok") && bson_iter_as_double(&it) != 1.0)
        return written;
    // A statement error is the command's error for findAndModify.
    if (bson_iter_init_find(&it, &wr, "writeErrors") && BSON_ITER_HOLDS_ARRAY(&it) &&
        bson_iter_recurse(&it, &el) && bson_iter_next(&el) && BSON_ITER_HOLDS_DOCUMENT(&el)) {
        bson_t we;
        view_document(el, we);
        bson_iter_t code, msg;
        const int c = bson_iter_init_find(&code, &we, "code") ? bson_iter_as_int64(&code) : 8;
        std::string m = bson_iter_init_find(&msg, &we, "errmsg") && BSON_ITER_HOLDS_UTF8(&msg)
                            ? bson_iter_utf8(&msg, nullptr)
                            : "findAndModify failed";
        return error(c, m);
    }

    // What the command answers: the document before, or after with new: true.
    bson_ptr upserted_id;
    if (!remove && bson_iter_init_find(&it, &wr, "upserted") && BSON_ITER_HOLDS_ARRAY(&it) &&
        bson_iter_recurse(&it, &el) && bson_iter_next(&el) && BSON_ITER_HOLDS_DOCUMENT(&el)) {
        bson_t item;
        view_document(el, item);
        bson_iter_t idv;
        if (bson_iter_init_find(&idv, &item, "_id")) {
            upserted_id = make_bson();
            append_value(upserted_id.get(), "_id", *bson_iter_value(&idv));
        }
    }
    shared_doc value;
    if (remove || !return_new) {
        value = target;
    } else if (collection* c = store_.find(req.db, name)) {
        if (target) {
            value = c->find_id(*bson_iter_value(&target_id));
        } else if (upserted_id) {
            bson_iter_t idv;
            bson_iter_init_find(&idv, upserted_id.get(), "_id");
            value = c->find_id(*bson_iter_value(&idv));
        }
    }

    bson_ptr r = make_bson();
    bson_t leo;
    BSON_APPEND_DOCUMENT_BEGIN(r.get(), "lastErrorObject", &leo);
    BSON_APPEND_INT32(&leo, "n", target || upserted_id ? 1 : 0);
    if (!remove) {
        BSON_APPEND_BOOL(&leo, "updatedExisting", static_cast<bool>(target));
        if (upserted_id) {
            bson_iter_t idv;
            bson_iter_init_find(&idv, upserted_id.get(), "_id");
            append_value(&leo, "upserted", *bson_iter_value(&idv));
        }
    }
    bson_append_document_end(r.get(), &leo);
    if (value) {
        bson_ptr shown = proj.empty() ? copy_bson(value.get()) : apply_projection(*value, proj);
        BSON_APPEND_DOCUMENT(r.get(), "value", shown.get());
    } else {
        BSON_APPEND_NULL(r.get(), "value");
    }
    return ok(std::move(r));
}

// ---------------------------------------------------------------------------------------------
// Fail point modes and failGetMoreAfterCursorCheckout

std::optional<cmd_error> command_processor::parse_fail_point_mode(const bson_iter_t& mode,
                                                                  fail_point& fp, bool& off) {
    static const char* const usage =
        "'mode' must be one of 'off', 'alwaysOn', {times: n}, {skip: n} or "
        "{activationProbability: p}";
    off = false;
    if (BSON_ITER_HOLDS_UTF8(&mode)) {
        const std::string_view m = bson_iter_utf8(&mode, nullptr);
        if (m == "off")
            off = true;
        else if (m == "alwaysOn")
            fp.times = -1;
        else
            return cmd_error{2, usage};
        return std::nullopt;
    }
    bson_t m;
    bson_iter_t it;
    if (!BSON_ITER_HOLDS_DOCUMENT(&mode) || !view_document(mode, m) || !bson_iter_init(&it, &m) ||
        !bson_iter_next(&it))
        return cmd_error{2, usage};
    const std::string_view key = key_of(it);
    const auto n = as_int64(it);
    const auto p = as_number(it);
    if (key == "times" && n && *n >= 0) {
        fp.times = *n;
        off = *n == 0;
    } else if (key == "skip" && n && *n >= 0) {
        fp.times = -1;
        fp.skip = *n;
    } else if (key == "activationProbability" && p && *p >= 0.0 && *p <= 1.0) {
        fp.times = -1;
        fp.activation_probability = *p;
        off = *p == 0.0;
    } else {
        return cmd_error{2, usage};
    }
    return std::nullopt;
}

bool command_processor::fail_point_fires(fail_point& fp) {
    if (fp.skip > 0) {
        --fp.skip;
        return false;
    }
    if (fp.activation_probability < 1.0)
        return std::uniform_real_distribution<double>(0.0, 1.0)(rng_) < fp.activation_probability;
    return true;
}

outcome command_processor::configure_checkout_fail_point(const request& req,
                                                         const client_info& client) {
    if (checkout_fail_points_.size() < members_.size())
        checkout_fail_points_.resize(members_.size());
    fail_point& current = checkout_fail_points_.at(client.member);
    bson_iter_t mode;
    if (!bson_iter_init_find(&mode, req.command.get(), "mode"))
        return error(9, "configureFailPoint needs 'mode'");
    fail_point fp;
    bool off = false;
    if (auto f = parse_fail_point_mode(mode, fp, off))
        return error(*f);
    if (off) {
        current = fail_point{};
        return ok(make_bson());
    }
    bson_t data;
    fp.error_code = 1;  // InternalError, as mongod without data.errorCode
    bson_iter_t code;
    if (get_doc(*req.command, "data", data) && bson_iter_init_find(&code, &data, "errorCode")) {
        const auto c = as_int64(code);
        if (!c || *c <= 0 || *c > std::numeric_limits<int>::max())
            return error(2, "data.errorCode must be a positive integer");
        fp.error_code = static_cast<int>(*c);
    }
    fp.active = true;
    current = std::move(fp);
    return ok(make_bson());
}

std::optional<int> command_processor::checkout_fail_point_fires(const client_info& client) {
    if (client.member >= checkout_fail_points_.size())
        return std::nullopt;
    fail_point& fp = checkout_fail_points_[client.member];
    if (!fp.active || !fail_point_fires(fp))
        return std::nullopt;
    if (fp.times > 0 && --fp.times == 0)
        fp.active = false;
    return fp.error_code;
}

}  // namespace mongosim
