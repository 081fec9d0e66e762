#include "commands.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

#include <openssl/evp.h>
#include <unistd.h>

namespace mongosim {
namespace {

using clock = std::chrono::steady_clock;

constexpr std::size_t max_batch_bytes = 16 * 1024 * 1024;
constexpr std::size_t default_first_batch = 101;
constexpr std::int64_t max_write_batch = 100'000;
constexpr std::int64_t default_await_ms = 1000;

const char* code_name(int code) {
    switch (code) {
        case 1:
            return "InternalError";
        case 2:
            return "BadValue";
        case 6:
            return "HostUnreachable";
        case 7:
            return "HostNotFound";
        case 9:
            return "FailedToParse";
        case 11:
            return "UserNotFound";
        case 13:
            return "Unauthorized";
        case 14:
            return "TypeMismatch";
        case 16:
            return "InvalidLength";
        case 17:
            return "ProtocolError";
        case 18:
            return "AuthenticationFailed";
        case 20:
            return "IllegalOperation";
        case 26:
            return "NamespaceNotFound";
        case 27:
            return "IndexNotFound";
        case 28:
            return "PathNotViable";
        case 40:
            return "ConflictingUpdateOperators";
        case 43:
            return "CursorNotFound";
        case 47:
            return "NoMatchingDocument";
        case 48:
            return "NamespaceExists";
        case 50:
            return "MaxTimeMSExpired";
        case 56:
            return "EmptyFieldName";
        case 59:
            return "CommandNotFound";
        case 63:
            return "StaleShardVersion";
        case 66:
            return "ImmutableField";
        case 72:
            return "InvalidOptions";
        case 73:
            return "InvalidNamespace";
        case 89:
            return "NetworkTimeout";
        case 91:
            return "ShutdownInProgress";
        case 112:
            return "WriteConflict";
        case 117:
            return "ConflictingOperationInProgress";
        case 133:
            return "FailedToSatisfyReadPreference";
        case 150:
            return "StaleEpoch";
        case 189:
            return "PrimarySteppedDown";
        case 234:
            return "RetryChangeStream";
        case 225:
            return "TransactionTooOld";
        case 251:
            return "NoSuchTransaction";
        case 256:
            return "TransactionCommitted";
        case 263:
            return "OperationNotSupportedInTransaction";
        case 260:
            return "InvalidResumeToken";
        case 262:
            return "ExceededTimeLimit";
        case 280:
            return "ChangeStreamFatalError";
        case 286:
            return "ChangeStreamHistoryLost";
        case 334:
            return "MechanismUnavailable";
        case 352:
            return "UnsupportedOpQueryCommand";
        case 9001:
            return "SocketException";
        case 10107:
            return "NotWritablePrimary";
        case 10334:
            return "BSONObjectTooLarge";
        case 11000:
            return "DuplicateKey";
        case 11600:
            return "InterruptedAtShutdown";
        case 11602:
            return "InterruptedDueToReplStateChange";
        case 13388:
            return "StaleConfig";
        case 13435:
            return "NotPrimaryNoSecondaryOk";
        case 13436:
            return "NotPrimaryOrSecondary";
        default: {
            // mongod names an error without a named code after its location.
            static thread_local char location[24];
            std::snprintf(location, sizeof location, "Location%d", code);
            return location;
        }
    }
}

// Codes after which a driver may resume a change stream (mongod labels them itself).
bool resumable_change_stream_code(int code) {
    switch (code) {
        case 6:
        case 7:
        case 43:
        case 63:
        case 89:
        case 91:
        case 133:
        case 150:
        case 189:
        case 234:
        case 262:
        case 9001:
        case 10107:
        case 11600:
        case 11602:
        case 13388:
        case 13435:
        case 13436:
            return true;
        default:
            return false;
    }
}

bool retryable_write_code(int code) {
    switch (code) {
        case 6:
        case 7:
        case 89:
        case 91:
        case 189:
        case 262:
        case 9001:
        case 10107:
        case 11600:
        case 11602:
        case 13435:
        case 13436:
            return true;
        default:
            return false;
    }
}

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

bool first_element(const bson_t& cmd, bson_iter_t& it) {
    return bson_iter_init(&it, &cmd) && bson_iter_next(&it);
}

std::string target_collection(const request& req) {
    bson_iter_t it;
    if (first_element(*req.command, it) && BSON_ITER_HOLDS_UTF8(&it))
        return bson_iter_utf8(&it, nullptr);
    return {};
}

bool find_field(const bson_t& doc, const char* key, bson_iter_t& it) {
    return bson_iter_init_find(&it, &doc, key);
}

// The commands mongod runs inside a multi-document transaction.
bool allowed_in_transaction(const std::string& name) {
    static constexpr std::string_view allowed[] = {
        "find",   "getMore",  "killCursors",       "aggregate",        "insert", "update",
        "delete", "distinct", "commitTransaction", "abortTransaction", "create", "findAndModify"};
    return name == "findandmodify" ||
           std::find(std::begin(allowed), std::end(allowed), name) != std::end(allowed);
}

// lsid.uid as mongod fills it in: the SHA-256 of the authenticated user ("user@db"), or of
// the empty string without authentication.
std::array<std::uint8_t, 32> session_uid(const client_info& client) {
    std::string user;
    if (auto dot = client.authenticated.find('.'); dot != std::string::npos)
        user = client.authenticated.substr(dot + 1) + "@" + client.authenticated.substr(0, dot);
    std::array<std::uint8_t, 32> out{};
    unsigned int len = 0;
    EVP_Digest(user.data(), user.size(), out.data(), &len, EVP_sha256(), nullptr);
    return out;
}

bool get_doc(const bson_t& doc, const char* key, bson_t& view) {
    bson_iter_t it;
    return find_field(doc, key, it) && BSON_ITER_HOLDS_DOCUMENT(&it) && view_document(it, view);
}

std::optional<std::int64_t> get_int(const bson_t& doc, const char* key) {
    bson_iter_t it;
    if (!find_field(doc, key, it))
        return std::nullopt;
    return as_int64(it);
}

bool get_bool(const bson_t& doc, const char* key, bool fallback) {
    bson_iter_t it;
    if (!find_field(doc, key, it))
        return fallback;
    return bson_iter_as_bool(&it);
}

bool valid_collection_name(const std::string& name) {
    return !name.empty() && name.find('$') == std::string::npos && name[0] != '.' &&
           name.find('\0') == std::string::npos;
}

bool valid_db_name(const std::string& name) {
    if (name.empty() || name.size() > 63)
        return false;
    return name.find_first_of("/\\. \"$") == std::string::npos;
}

shared_doc make_key(const bson_t& doc) {
    bson_ptr key = make_bson();
    bson_iter_t it;
    if (bson_iter_init_find(&it, &doc, "_id"))
        append_value(key.get(), "_id", *bson_iter_value(&it));
    return share(std::move(key));
}

void append_array_index(bson_t* arr, std::uint32_t i, const bson_t& doc) {
    char buf[16];
    const char* key;
    std::size_t len = bson_uint32_to_string(i, &key, buf, sizeof buf);
    bson_append_document(arr, key, static_cast<int>(len), &doc);
}

// {v: 2, key: {_id: 1}, name: "_id_"}, the idIndex of every collection.
void append_id_index(bson_t* out, const char* field) {
    bson_t idx, key;
    bson_append_document_begin(out, field, -1, &idx);
    BSON_APPEND_INT32(&idx, "v", 2);
    BSON_APPEND_DOCUMENT_BEGIN(&idx, "key", &key);
    BSON_APPEND_INT32(&key, "_id", 1);
    bson_append_document_end(&idx, &key);
    BSON_APPEND_UTF8(&idx, "name", "_id_");
    bson_append_document_end(out, &idx);
}

// operationDescription {indexes: [spec]} of a createIndexes or dropIndexes event.
bson_ptr index_description(const bson_t& spec) {
    bson_ptr d = make_bson();
    bson_t arr;
    BSON_APPEND_ARRAY_BEGIN(d.get(), "indexes", &arr);
    append_array_index(&arr, 0, spec);
    bson_append_array_end(d.get(), &arr);
    return d;
}

// Checks a changeStreamPreAndPostImages option ({enabled: <bool>}) as create and collMod do.
failure parse_images_option(const bson_iter_t& it, bool& enabled) {
    bson_iter_t sub;
    if (!BSON_ITER_HOLDS_DOCUMENT(&it))
        return cmd_error{14,
                         "BSON field 'changeStreamPreAndPostImages' is the wrong type, expected "
                         "type 'object'"};
    bson_iter_recurse(&it, &sub);
    bool found = false;
    while (bson_iter_next(&sub)) {
        std::string_view k = key_of(sub);
        if (k != "enabled")
            return cmd_error{40415, "BSON field 'changeStreamPreAndPostImages." + std::string(k) +
                                        "' is an unknown field."};
        if (!BSON_ITER_HOLDS_BOOL(&sub))
            return cmd_error{14,
                             "BSON field 'changeStreamPreAndPostImages.enabled' is the wrong "
                             "type, expected type 'bool'"};
        enabled = bson_iter_bool(&sub);
        found = true;
    }
    if (!found)
        return cmd_error{40414,
                         "BSON field 'changeStreamPreAndPostImages.enabled' is missing but a "
                         "required field"};
    return {};
}

// A copy of doc with `key` set to v (replacing it in place, or appended).
bson_ptr with_field(const bson_t& doc, std::string_view key, const bson_value_t& v) {
    bson_ptr out = make_bson();
    bool done = false;
    bson_iter_t it;
    bson_iter_init(&it, &doc);
    while (bson_iter_next(&it)) {
        if (key_of(it) == key) {
            append_value(out.get(), key, v);
            done = true;
        } else {
            append_value(out.get(), key_of(it), *bson_iter_value(&it));
        }
    }
    if (!done)
        append_value(out.get(), key, v);
    return out;
}

// Takes up to max_count documents (and about max_batch_bytes) from a find cursor.
void take(std::vector<shared_doc>& docs, std::size_t& next, const projection& proj,
          std::size_t max_count, std::vector<bson_ptr>& out) {
    std::size_t bytes = 0;
    while (next < docs.size() && out.size() < max_count) {
        bson_ptr d =
            proj.empty() ? copy_bson(docs[next].get()) : apply_projection(*docs[next], proj);
        if (!out.empty() && bytes + d->len > max_batch_bytes)
            break;
        bytes += d->len;
        out.push_back(std::move(d));
        docs[next].reset();  // the cursor no longer needs it; let updates free old versions
        ++next;
    }
}

bool split_namespace(const std::string& ns, std::string& db, std::string& coll) {
    auto dot = ns.find('.');
    if (dot == std::string::npos || dot == 0 || dot + 1 == ns.size())
        return false;
    db = ns.substr(0, dot);
    coll = ns.substr(dot + 1);
    return true;
}

// Commands a client may run before it authenticates: the handshake, liveness and SASL itself.
// A read preference other than primary lets a secondary serve reads (OP_MSG carries it as
// $readPreference; drivers add it for secondaries and for direct connections).
bool secondary_ok(const bson_t& cmd) {
    bson_iter_t it, mode;
    if (!bson_iter_init_find(&it, &cmd, "$readPreference") || !BSON_ITER_HOLDS_DOCUMENT(&it))
        return false;
    if (!bson_iter_recurse(&it, &mode) || !bson_iter_find(&mode, "mode") ||
        !BSON_ITER_HOLDS_UTF8(&mode))
        return false;
    return std::string_view(bson_iter_utf8(&mode, nullptr)) != "primary";
}

bool allowed_unauthenticated(const std::string& name) {
    return name == "hello" || name == "isMaster" || name == "ismaster" || name == "ping" ||
           name == "saslStart" || name == "saslContinue" || name == "endSessions" ||
           name == "buildInfo" || name == "buildinfo";
}

// SASL payloads arrive as binary (all current drivers) or, from old ones, as a string.
std::optional<std::string> sasl_payload(const bson_t& cmd) {
    bson_iter_t it;
    if (!bson_iter_init_find(&it, &cmd, "payload"))
        return std::nullopt;
    if (BSON_ITER_HOLDS_BINARY(&it)) {
        bson_subtype_t sub;
        std::uint32_t len;
        const std::uint8_t* data;
        bson_iter_binary(&it, &sub, &len, &data);
        return std::string(reinterpret_cast<const char*>(data), len);
    }
    if (BSON_ITER_HOLDS_UTF8(&it)) {
        std::uint32_t len;
        const char* data = bson_iter_utf8(&it, &len);
        return std::string(data, len);
    }
    return std::nullopt;
}

void append_payload(bson_t* out, const std::string& payload) {
    bson_append_binary(out, "payload", 7, BSON_SUBTYPE_BINARY,
                       reinterpret_cast<const std::uint8_t*>(payload.data()),
                       static_cast<std::uint32_t>(payload.size()));
}

}  // namespace

bool parse_users(std::string_view spec, std::vector<user_credential>& out) {
    std::vector<user_credential> users;
    while (!spec.empty()) {
        auto comma = spec.find(',');
        std::string_view entry = spec.substr(0, comma);
        auto colon = entry.find(':');
        if (colon == std::string_view::npos || colon == 0 || colon + 1 == entry.size())
            return false;
        users.push_back(
            {std::string(entry.substr(0, colon)), std::string(entry.substr(colon + 1))});
        if (comma == std::string_view::npos)
            break;
        spec.remove_prefix(comma + 1);
        if (spec.empty())
            return false;
    }
    if (users.empty())
        return false;
    out = std::move(users);
    return true;
}

command_processor::command_processor(server_options opts)
    : opts_(std::move(opts)),
      members_(std::max<std::size_t>(opts_.members, 1)),
      oplog_(opts_.oplog_size, opts_.oplog_size_mb * 1024 * 1024),
      rng_(std::random_device{}()) {
    for (const auto& u : opts_.users) {
        // A password SASLprep rejects cannot be used with SCRAM-SHA-256 (mongod refuses such
        // a createUser too); the user is then left out, so logging in fails with code 18.
        users_.add("admin", u.user, u.password);
    }
    for (auto& m : members_)
        bson_oid_init(&m.process_id, nullptr);
    fail_points_.resize(members_.size());
    handlers_ = {
        {"hello", &command_processor::cmd_hello},
        {"isMaster", &command_processor::cmd_hello},
        {"ismaster", &command_processor::cmd_hello},
        {"ping", &command_processor::cmd_ping},
        {"buildInfo", &command_processor::cmd_build_info},
        {"buildinfo", &command_processor::cmd_build_info},
        {"endSessions", &command_processor::cmd_end_sessions},
        {"listDatabases", &command_processor::cmd_list_databases},
        {"listCollections", &command_processor::cmd_list_collections},
        {"create", &command_processor::cmd_create},
        {"collMod", &command_processor::cmd_coll_mod},
        {"drop", &command_processor::cmd_drop},
        {"dropDatabase", &command_processor::cmd_drop_database},
        {"renameCollection", &command_processor::cmd_rename},
        {"insert", &command_processor::cmd_insert},
        {"update", &command_processor::cmd_update},
        {"delete", &command_processor::cmd_delete},
        {"find", &command_processor::cmd_find},
        {"getMore", &command_processor::cmd_get_more},
        {"killCursors", &command_processor::cmd_kill_cursors},
        {"count", &command_processor::cmd_count},
        {"distinct", &command_processor::cmd_distinct},
        {"findAndModify", &command_processor::cmd_find_and_modify},
        {"aggregate", &command_processor::cmd_aggregate},
        {"createIndexes", &command_processor::cmd_create_indexes},
        {"listIndexes", &command_processor::cmd_list_indexes},
        {"dropIndexes", &command_processor::cmd_drop_indexes},
        {"configureFailPoint", &command_processor::cmd_configure_fail_point},
        {"mongosimGenerate", &command_processor::cmd_generate},
        {"saslStart", &command_processor::cmd_sasl_start},
        {"saslContinue", &command_processor::cmd_sasl_continue},
        {"serverStatus", &command_processor::cmd_server_status},
        {"replSetStepDown", &command_processor::cmd_repl_set_step_down},
        {"replSetGetStatus", &command_processor::cmd_repl_set_get_status},
        {"commitTransaction", &command_processor::cmd_commit_transaction},
        {"abortTransaction", &command_processor::cmd_abort_transaction},
    };
}

void command_processor::advertise(std::vector<std::string> addresses) {
    for (std::size_t i = 0; i < members_.size() && i < addresses.size(); ++i)
        members_[i].address = std::move(addresses[i]);
}

std::optional<std::size_t> command_processor::step_down() {
    if (members_.size() < 2)
        return std::nullopt;
    const std::size_t old = primary_;
    primary_ = (primary_ + 1) % members_.size();
    ++term_;
    // A new primary knows nothing of the old one's open transactions.
    sessions_.abort_all();
    // Every member's view of the set changed: awaitable hellos must answer now.
    for (auto& m : members_)
        ++m.counter;
    return old;
}

void command_processor::add_cursor(std::int64_t id, cursor c) {
    c.member = current_member_;
    cursors_.emplace(id, std::move(c));
}

// ---------------------------------------------------------------------------------------------
// Replies

void command_processor::append_cluster_time(bson_t* out) {
    const timestamp now = oplog_.clock().now();
    bson_t ct, sig;
    bson_append_document_begin(out, "$clusterTime", 12, &ct);
    bson_append_timestamp(&ct, "clusterTime", 11, now.t, now.i);
    bson_append_document_begin(&ct, "signature", 9, &sig);
    static const std::uint8_t zeros[20] = {};
    bson_append_binary(&sig, "hash", 4, BSON_SUBTYPE_BINARY, zeros, sizeof zeros);
    bson_append_int64(&sig, "keyId", 5, 0);
    bson_append_document_end(&ct, &sig);
    bson_append_document_end(out, &ct);
    bson_append_timestamp(out, "operationTime", 13, now.t, now.i);
}

outcome command_processor::ok(bson_ptr body) {
    bson_append_double(body.get(), "ok", 2, 1.0);
    append_cluster_time(body.get());
    return {outcome::kind::reply, std::move(body), {}};
}

bson_ptr command_processor::error_doc(int code, const std::string& message,
                                      const std::vector<std::string>& labels) {
    bson_ptr body = make_bson();
    bson_append_double(body.get(), "ok", 2, 0.0);
    bson_append_utf8(body.get(), "errmsg", 6, message.data(), static_cast<int>(message.size()));
    bson_append_int32(body.get(), "code", 4, code);
    BSON_APPEND_UTF8(body.get(), "codeName", code_name(code));
    if (!labels.empty()) {
        bson_t arr;
        bson_append_array_begin(body.get(), "errorLabels", 11, &arr);
        for (std::uint32_t i = 0; i < labels.size(); ++i) {
            char buf[16];
            const char* key;
            std::size_t len = bson_uint32_to_string(i, &key, buf, sizeof buf);
            bson_append_utf8(&arr, key, static_cast<int>(len), labels[i].data(),
                             static_cast<int>(labels[i].size()));
        }
        bson_append_array_end(body.get(), &arr);
    }
    append_cluster_time(body.get());
    return body;
}

outcome command_processor::error(int code, const std::string& message,
                                 const std::vector<std::string>& labels) {
    return {outcome::kind::reply, error_doc(code, message, labels), {}};
}

void command_processor::append_cursor(bson_t* out, const char* batch_key,
                                      const std::vector<bson_ptr>& docs, std::int64_t id,
                                      const std::string& ns,
                                      const std::optional<token_position>& pbrt) {
    bson_t cur, arr;
    bson_append_document_begin(out, "cursor", 6, &cur);
    bson_append_array_begin(&cur, batch_key, -1, &arr);
    for (std::uint32_t i = 0; i < docs.size(); ++i)
        append_array_index(&arr, i, *docs[i]);
    bson_append_array_end(&cur, &arr);
    if (pbrt)
        append_token(&cur, "postBatchResumeToken", *pbrt);
    bson_append_int64(&cur, "id", 2, id);
    bson_append_utf8(&cur, "ns", 2, ns.data(), static_cast<int>(ns.size()));
    bson_append_document_end(out, &cur);
}

// ---------------------------------------------------------------------------------------------
// Shared machinery

timestamp command_processor::record(event_record e) {
    if (!e.uuid && !e.coll.empty()) {
        if (const collection* c = store_.find(e.db, e.coll))
            e.uuid = c->uuid;
    }
    if (current_txn_ != nullptr) {
        e.lsid = current_txn_->lsid;
        e.txn_number = current_txn_->number;
        current_txn_->ops.push_back(std::move(e));
        return oplog_.clock().now();
    }
    return oplog_.append(std::move(e));
}

collection& command_processor::obtain(const std::string& db, const std::string& coll) {
    bool created = false;
    collection& c = store_.obtain(db, coll, created);
    if (created) {
        event_record e;
        e.op = op_type::create;
        e.db = db;
        e.coll = coll;
        e.operation_description = make_bson();
        append_id_index(e.operation_description.get(), "idIndex");
        record(std::move(e));
    }
    return c;
}

std::int64_t command_processor::new_cursor_id() {
    for (;;) {
        auto id = static_cast<std::int64_t>(rng_() & 0x7FFFFFFFFFFFFFFFull);
        if (id != 0 && !cursors_.contains(id))
            return id;
    }
}

void command_processor::reap_cursors(steady_time now) {
    std::erase_if(cursors_,
                  [&](const auto& kv) { return now - kv.second.last_used > opts_.cursor_timeout; });
}

std::optional<outcome> command_processor::check_fail_point(const std::string& name,
                                                           const request& req, client_info& client,
                                                           exec_context& ctx, bool will_run) {
    if (!ctx.failpoint_checked) {
        ctx.failpoint_checked = true;
        fail_point& fp = fail_points_.at(client.member);
        bool listed = std::find(fp.commands.begin(), fp.commands.end(), name) != fp.commands.end();
        const bool only_write_concern_error =
            !fp.error_code && !fp.close_connection && fp.block_ms == 0;
        if (fp.active && listed && (fp.app_name.empty() || fp.app_name == client.app_name) &&
            (will_run || !only_write_concern_error) && fail_point_fires(fp)) {
            if (fp.times > 0 && --fp.times == 0)
                fp.active = false;
            ctx.failpoint_close = fp.close_connection;
            if (fp.error_code) {
                std::vector<std::string> labels;
                if (fp.labels) {
                    labels = *fp.labels;
                } else if (name == "getMore" && resumable_change_stream_code(*fp.error_code)) {
                    labels.push_back("ResumableChangeStreamError");
                } else if ((name == "insert" || name == "update" || name == "delete" ||
                            name == "findAndModify" || name == "commitTransaction" ||
                            name == "abortTransaction") &&
                           retryable_write_code(*fp.error_code) &&
                           bson_has_field(req.command.get(), "txnNumber") &&
                           (!bson_has_field(req.command.get(), "autocommit") ||
                            name == "commitTransaction" || name == "abortTransaction")) {
                    labels.push_back("RetryableWriteError");
                } else if (bson_has_field(req.command.get(), "autocommit") &&
                           name != "commitTransaction" && name != "abortTransaction" &&
                           (*fp.error_code == 112 || *fp.error_code == 24 ||
                            *fp.error_code == 251 || retryable_write_code(*fp.error_code))) {
                    // Inside a transaction these mean "run the whole transaction again".
                    labels.push_back("TransientTransactionError");
                }
                ctx.failpoint_reply = error_doc(
                    *fp.error_code, "Failing command via 'failCommand' failpoint", labels);
            } else if (fp.write_concern_error) {
                ctx.write_concern_error = copy_bson(fp.write_concern_error.get());
                auto code = get_int(*fp.write_concern_error, "code");
                if (fp.labels)
                    ctx.write_concern_error_labels = fp.labels;
                else if (code && retryable_write_code(static_cast<int>(*code)) &&
                         retryable_write_table::identify(name, *req.command))
                    ctx.write_concern_error_labels =
                        std::vector<std::string>{"RetryableWriteError"};
            }
            if (fp.block_ms > 0)
                return outcome{outcome::kind::sleep, nullptr,
                               clock::now() + std::chrono::milliseconds(fp.block_ms)};
        }
    }
    if (ctx.failpoint_close)
        return outcome{outcome::kind::close, nullptr, {}};
    if (ctx.failpoint_reply)
        return outcome{outcome::kind::reply, std::move(*ctx.failpoint_reply), {}};
    return std::nullopt;
}

std::optional<outcome> command_processor::check_role(const std::string& name, const request& req,
                                                     const client_info& client) {
    if (client.member == primary_)
        return std::nullopt;
    static constexpr std::string_view writes[] = {
        "insert",           "update",          "delete",      "findAndModify",
        "create",           "collMod",         "drop",        "dropDatabase",
        "renameCollection", "createIndexes",   "dropIndexes", "commitTransaction",
        "abortTransaction", "mongosimGenerate"};
    static constexpr std::string_view reads[] = {"find",         "aggregate",       "count",
                                                 "distinct",     "listCollections", "listIndexes",
                                                 "listDatabases"};
    if (std::find(std::begin(writes), std::end(writes), name) != std::end(writes)) {
        // A retryable write (it carries a txnNumber) is labelled so the driver retries it on
        // the new primary, as mongod 4.4+ does.
        std::vector<std::string> labels;
        const bool retryable_op =
            name == "insert" || name == "update" || name == "delete" || name == "findAndModify";
        const bool in_txn = bson_has_field(req.command.get(), "autocommit");
        if (name == "commitTransaction" || name == "abortTransaction")
            labels.push_back("RetryableWriteError");  // retried once on the new primary
        else if (in_txn)
            labels.push_back("TransientTransactionError");  // the whole transaction is retried
        else if (retryable_op && bson_has_field(req.command.get(), "txnNumber"))
            labels.push_back("RetryableWriteError");
        return error(10107, "not primary", labels);
    }
    if (std::find(std::begin(reads), std::end(reads), name) != std::end(reads) &&
        !secondary_ok(*req.command))
        return error(13435, "not primary and secondaryOk=false");
    return std::nullopt;
}

outcome command_processor::execute(const request& req, client_info& client, exec_context& ctx) {
    outcome out = dispatch(req, client, ctx);
    if (req.more_to_come() && out.what == outcome::kind::reply)
        out.what = outcome::kind::none;
    return out;
}

outcome command_processor::dispatch(const request& req, client_info& client, exec_context& ctx) {
    const auto now = clock::now();
    if (now - last_reap_ > std::chrono::seconds(1)) {
        reap_cursors(now);
        last_reap_ = now;
    }
    bson_iter_t first;
    if (!first_element(*req.command, first))
        return error(9, "empty command document");
    const std::string name(key_of(first));
    if (req.legacy && name != "hello" && name != "isMaster" && name != "ismaster")
        return error(352, "Unsupported OP_QUERY command: " + name +
                              ". The client driver may require an upgrade.");
    if (!req.legacy && req.db.empty())
        return error(40571, "OP_MSG requests require a $db argument");
    if (!valid_db_name(req.db))
        return error(73, "Invalid database name: '" + req.db + "'");
    if (auth_enabled() && client.authenticated.empty() && !allowed_unauthenticated(name))
        return error(13, "Command " + name + " requires authentication");
    auto refused = check_role(name, req, client);
    if (name != "configureFailPoint") {
        if (auto fp = check_fail_point(name, req, client, ctx, !refused))
            return std::move(*fp);
    }
    if (refused)
        return std::move(*refused);
    current_member_ = client.member;
    auto h = handlers_.find(name);
    if (h == handlers_.end())
        return error(59, "no such command: '" + name + "'");
    txn_fields tf;
    if (auto f = parse_txn_fields(*req.command, tf))
        return error(*f);
    const bool ends_txn = name == "commitTransaction" || name == "abortTransaction";
    if (!tf.autocommit) {
        if (ends_txn)
            return error(50768, name + " must be run within a transaction");
        if (tf.txn_number) {
            if (auto e = sessions_.retryable_write(tf))
                return error(e->error.code, e->error.message, e->labels);
        }
        // A retry answered from the session table still gets a fail point's writeConcernError.
        auto replayed = replay_retried_write(name, req);
        outcome out = replayed ? std::move(*replayed) : (this->*(h->second))(req, client, ctx);
        finish_command(name, req, ctx, out);
        return out;
    }
    if (!allowed_in_transaction(name))
        return error(263, "Cannot run '" + name + "' in a multi-document transaction.");
    transaction* txn = nullptr;
    if (auto e = sessions_.begin_or_continue(tf, name, session_uid(client), txn))
        return error(e->error.code, e->error.message, e->labels);
    outcome out = run_in_transaction(*txn, h->second, name, req, client, ctx);
    finish_command(name, req, ctx, out);
    return out;
}

outcome command_processor::run_in_transaction(transaction& t, handler h, const std::string& name,
                                              const request& req, client_info& client,
                                              exec_context& ctx) {
    current_txn_ = &t;
    if (name == "commitTransaction" || name == "abortTransaction") {
        outcome out = (this->*h)(req, client, ctx);
        current_txn_ = nullptr;
        return out;
    }
    if (name == "aggregate") {
        bson_iter_t it, stage, op;
        if (find_field(*req.command, "pipeline", it) && BSON_ITER_HOLDS_ARRAY(&it) &&
            bson_iter_recurse(&it, &stage) && bson_iter_next(&stage) &&
            BSON_ITER_HOLDS_DOCUMENT(&stage) && bson_iter_recurse(&stage, &op) &&
            bson_iter_next(&op) && key_of(op) == "$changeStream") {
            current_txn_ = nullptr;
            return error(263,
                         "Operation not permitted in transaction :: caused by :: Cannot "
                         "run '$changeStream' in a multi-document transaction.");
        }
    }
    // The transaction reads and writes its own copy of the collection the command names.
    const std::string coll = target_collection(req);
    if (!coll.empty())
        touch_collection(t, store_, req.db, coll);
    const std::size_t before = t.ops.size();
    std::swap(store_, t.data);
    outcome out = (this->*h)(req, client, ctx);
    std::swap(store_, t.data);
    current_txn_ = nullptr;
    if (auto conflict = check_conflicts(t, store_, before)) {
        abort(t);
        return error(conflict->error.code, conflict->error.message, conflict->labels);
    }
    // Any failure inside a transaction aborts it, as on mongod.
    bson_iter_t it;
    if (out.reply &&
        (bson_has_field(out.reply.get(), "writeErrors") ||
         (bson_iter_init_find(&it, out.reply.get(), "ok") && bson_iter_as_double(&it) == 0.0)))
        abort(t);
    return out;
}

void command_processor::abort(transaction& t) {
    t.status = transaction::state::aborted;
    t.data = store{};
    t.base.clear();
    t.ops.clear();
}

outcome command_processor::cmd_commit_transaction(const request&, client_info&, exec_context&) {
    transaction& t = *current_txn_;
    if (t.status == transaction::state::committed)
        return ok(make_bson());  // a retried commit: it happened already
    if (auto conflict = check_conflicts(t, store_, 0)) {
        abort(t);
        return error(conflict->error.code, conflict->error.message, conflict->labels);
    }
    apply_transaction(t, store_);
    oplog_.append_transaction(std::move(t.ops));
    t.status = transaction::state::committed;
    t.data = store{};
    t.base.clear();
    t.ops.clear();
    return ok(make_bson());
}

outcome command_processor::cmd_abort_transaction(const request&, client_info&, exec_context&) {
    abort(*current_txn_);
    return ok(make_bson());
}

// ---------------------------------------------------------------------------------------------
// Handshake and server information

outcome command_processor::cmd_hello(const request& req, client_info& client, exec_context& ctx) {
    const bson_t& cmd = *req.command;
    const member_state& self = members_.at(client.member);
    const bool is_primary = client.member == primary_;
    bson_t tv;
    auto max_await = get_int(cmd, "maxAwaitTimeMS");
    if (get_doc(cmd, "topologyVersion", tv) && max_await) {
        if (*max_await < 0)
            return error(2, "maxAwaitTimeMS must be a non-negative integer");
        bson_iter_t pid;
        bool same = bson_iter_init_find(&pid, &tv, "processId") && BSON_ITER_HOLDS_OID(&pid) &&
                    bson_oid_equal(bson_iter_oid(&pid), &self.process_id) &&
                    get_int(tv, "counter").value_or(-1) == self.counter;
        if (same) {
            // Held until the deadline or a step-down (which bumps the counter and wakes the
            // request, which then answers at once with the new topology).
            if (!ctx.deadline)
                ctx.deadline = clock::now() + std::chrono::milliseconds(*max_await);
            if (clock::now() < *ctx.deadline)
                return {outcome::kind::wait_topology, nullptr, *ctx.deadline};
        }
    }
    if (!client.handshake_done) {
        client.handshake_done = true;
        bson_t meta;
        bson_iter_t name;
        if (get_doc(cmd, "client", meta) && bson_iter_init(&name, &meta) &&
            bson_iter_find_descendant(&name, "application.name", &name) &&
            BSON_ITER_HOLDS_UTF8(&name))
            client.app_name = bson_iter_utf8(&name, nullptr);
    }

    bson_ptr r = make_bson();
    bson_t doc, arr, op;
    const timestamp last = oplog_.clock().now();
    const std::int64_t now = now_ms();
    BSON_APPEND_BOOL(r.get(), "helloOk", true);
    BSON_APPEND_DOCUMENT_BEGIN(r.get(), "topologyVersion", &doc);
    BSON_APPEND_OID(&doc, "processId", &self.process_id);
    BSON_APPEND_INT64(&doc, "counter", self.counter);
    bson_append_document_end(r.get(), &doc);
    BSON_APPEND_ARRAY_BEGIN(r.get(), "hosts", &arr);
    for (std::uint32_t i = 0; i < members_.size(); ++i) {
        char buf[16];
        const char* key;
        std::size_t len = bson_uint32_to_string(i, &key, buf, sizeof buf);
        bson_append_utf8(&arr, key, static_cast<int>(len), members_[i].address.data(),
                         static_cast<int>(members_[i].address.size()));
    }
    bson_append_array_end(r.get(), &arr);
    BSON_APPEND_UTF8(r.get(), "setName", opts_.replset.c_str());
    BSON_APPEND_INT32(r.get(), "setVersion", 1);
    BSON_APPEND_BOOL(r.get(), "ismaster", is_primary);
    BSON_APPEND_BOOL(r.get(), "isWritablePrimary", is_primary);
    BSON_APPEND_BOOL(r.get(), "secondary", !is_primary);
    BSON_APPEND_UTF8(r.get(), "primary", members_[primary_].address.c_str());
    BSON_APPEND_UTF8(r.get(), "me", self.address.c_str());
    if (is_primary) {
        // 0x7fffffff then the term, as mongod builds it: it grows with every election.
        char hex[25];
        std::snprintf(hex, sizeof hex, "7fffffff%016llx", static_cast<unsigned long long>(term_));
        bson_oid_t election;
        bson_oid_init_from_string(&election, hex);
        BSON_APPEND_OID(r.get(), "electionId", &election);
    }
    BSON_APPEND_DOCUMENT_BEGIN(r.get(), "lastWrite", &doc);
    for (const char* key : {"opTime", "majorityOpTime"}) {
        bson_append_document_begin(&doc, key, -1, &op);
        bson_append_timestamp(&op, "ts", 2, last.t, last.i);
        BSON_APPEND_INT64(&op, "t", term_);
        bson_append_document_end(&doc, &op);
    }
    BSON_APPEND_DATE_TIME(&doc, "lastWriteDate", static_cast<std::int64_t>(last.t) * 1000);
    BSON_APPEND_DATE_TIME(&doc, "majorityWriteDate", static_cast<std::int64_t>(last.t) * 1000);
    bson_append_document_end(r.get(), &doc);
    BSON_APPEND_INT32(r.get(), "maxBsonObjectSize", max_bson_size);
    BSON_APPEND_INT32(r.get(), "maxMessageSizeBytes", max_message_size);
    BSON_APPEND_INT32(r.get(), "maxWriteBatchSize", static_cast<std::int32_t>(max_write_batch));
    BSON_APPEND_DATE_TIME(r.get(), "localTime", now);
    BSON_APPEND_INT32(r.get(), "logicalSessionTimeoutMinutes", 30);
    BSON_APPEND_INT64(r.get(), "connectionId", client.connection_id);
    BSON_APPEND_INT32(r.get(), "minWireVersion", 0);
    BSON_APPEND_INT32(r.get(), "maxWireVersion", 17);
    BSON_APPEND_BOOL(r.get(), "readOnly", false);

    bson_iter_t it;
    if (find_field(cmd, "compression", it) && BSON_ITER_HOLDS_ARRAY(&it)) {
        // The client's list in its order, restricted to what we can decode.
        client.compressors.clear();
        bson_iter_t names;
        bson_iter_recurse(&it, &names);
        while (bson_iter_next(&names)) {
            if (!BSON_ITER_HOLDS_UTF8(&names))
                continue;
            auto c = compressor_from_name(bson_iter_utf8(&names, nullptr));
            if (c && *c != compressor::noop &&
                std::find(client.compressors.begin(), client.compressors.end(), *c) ==
                    client.compressors.end())
                client.compressors.push_back(*c);
        }
        bson_t list;
        BSON_APPEND_ARRAY_BEGIN(r.get(), "compression", &list);
        for (std::uint32_t i = 0; i < client.compressors.size(); ++i) {
            char buf[16];
            const char* key;
            std::size_t len = bson_uint32_to_string(i, &key, buf, sizeof buf);
            const auto name = compressor_name(client.compressors[i]);
            bson_append_utf8(&list, key, static_cast<int>(len), name.data(),
                             static_cast<int>(name.size()));
        }
        bson_append_array_end(r.get(), &list);
    }
    if (find_field(cmd, "saslSupportedMechs", it) && BSON_ITER_HOLDS_UTF8(&it)) {
        // "<db>.<user>": name the mechanisms that user can log in with; omitted for an
        // unknown user, as mongod does.
        std::string_view who = bson_iter_utf8(&it, nullptr);
        auto dot = who.find('.');
        if (dot != std::string_view::npos) {
            const user_record* u =
                users_.find(std::string(who.substr(0, dot)), std::string(who.substr(dot + 1)));
            if (u != nullptr) {
                bson_t mechs;
                const char* key = "0";
                BSON_APPEND_ARRAY_BEGIN(r.get(), "saslSupportedMechs", &mechs);
                if (u->sha1) {
                    BSON_APPEND_UTF8(&mechs, key, "SCRAM-SHA-1");
                    key = "1";
                }
                if (u->sha256)
                    BSON_APPEND_UTF8(&mechs, key, "SCRAM-SHA-256");
                bson_append_array_end(r.get(), &mechs);
            }
        }
    }
    bson_t spec;
    if (get_doc(cmd, "speculativeAuthenticate", spec)) {
        // Only SCRAM is spoken here; a failed speculative start is not an error (the reply
        // just lacks the field and the driver runs a normal saslStart, which then fails).
        bson_iter_t db_it;
        std::string db = bson_iter_init_find(&db_it, &spec, "db") && BSON_ITER_HOLDS_UTF8(&db_it)
                             ? bson_iter_utf8(&db_it, nullptr)
                             : req.db;
        int code = 0;
        std::string message;
        bson_ptr body = sasl_start(spec, db, client, code, message);
        if (client.sasl) {
            client.sasl_speculative = true;
            auth_stats_[static_cast<int>(client.sasl->mechanism())].speculative_received += 1;
        }
        if (body)
            BSON_APPEND_DOCUMENT(r.get(), "speculativeAuthenticate", body.get());
    }
    return ok(std::move(r));
}

// ---------------------------------------------------------------------------------------------
// Authentication

bson_ptr command_processor::sasl_start(const bson_t& cmd, const std::string& db,
                                       client_info& client, int& code, std::string& message) {
    client.sasl.reset();
    client.sasl_awaiting_empty = false;
    bson_iter_t it;
    if (!bson_iter_init_find(&it, &cmd, "mechanism") || !BSON_ITER_HOLDS_UTF8(&it)) {
        code = 2;
        message = "saslStart needs a string 'mechanism'";
        return nullptr;
    }
    const std::string mech_name = bson_iter_utf8(&it, nullptr);
    auto mech = parse_mechanism(mech_name);
    if (!mech) {
        code = 334;
        message = "Received authentication for mechanism " + mech_name + " which is not enabled";
        return nullptr;
    }
    auto payload = sasl_payload(cmd);
    if (!payload) {
        code = 9;
        message = "saslStart needs a 'payload'";
        return nullptr;
    }
    scram_conversation conv(*mech, db);
    auto res = conv.start(*payload, users_, make_server_nonce());
    if (res.error != scram_conversation::failure::none) {
        // mongod answers a missing user like a wrong password: no user enumeration.
        code = 18;
        message = "Authentication failed.";
        return nullptr;
    }
    bson_t options;
    client.sasl_skip_empty_exchange =
        get_doc(cmd, "options", options) && get_bool(options, "skipEmptyExchange", false);
    client.sasl = std::move(conv);
    client.sasl_id += 1;
    bson_ptr body = make_bson();
    BSON_APPEND_INT32(body.get(), "conversationId", client.sasl_id);
    BSON_APPEND_BOOL(body.get(), "done", false);
    append_payload(body.get(), res.message);
    return body;
}

outcome command_processor::cmd_sasl_start(const request& req, client_info& client, exec_context&) {
    int code = 0;
    std::string message;
    bson_ptr body = sasl_start(*req.command, req.db, client, code, message);
    if (!body)
        return error(code, message);
    client.sasl_speculative = false;
    auth_stats_[static_cast<int>(client.sasl->mechanism())].received += 1;
    return ok(std::move(body));
}

outcome command_processor::cmd_sasl_continue(const request& req, client_info& client,
                                             exec_context&) {
    const bson_t& cmd = *req.command;
    auto id = get_int(cmd, "conversationId");
    if (!client.sasl || !id || *id != client.sasl_id) {
        client.sasl.reset();
        return error(17, "No SASL session state found");
    }
    auto payload = sasl_payload(cmd);
    if (!payload) {
        client.sasl.reset();
        return error(9, "saslContinue needs a 'payload'");
    }
    bson_ptr body = make_bson();
    BSON_APPEND_INT32(body.get(), "conversationId", client.sasl_id);
    if (client.sasl_awaiting_empty) {
        // The final, empty step of the long form: the proof was already checked.
        client.sasl.reset();
        client.sasl_awaiting_empty = false;
        BSON_APPEND_BOOL(body.get(), "done", true);
        append_payload(body.get(), {});
        return ok(std::move(body));
    }
    auto res = client.sasl->finish(*payload);
    if (res.error != scram_conversation::failure::none || !res.done) {
        client.sasl.reset();
        return error(18, "Authentication failed.");
    }
    client.authenticated = client.sasl->db() + "." + client.sasl->user();
    auto& stats = auth_stats_[static_cast<int>(client.sasl->mechanism())];
    (client.sasl_speculative ? stats.speculative_successful : stats.successful) += 1;
    if (client.sasl_skip_empty_exchange) {
        client.sasl.reset();
        BSON_APPEND_BOOL(body.get(), "done", true);
    } else {
        client.sasl_awaiting_empty = true;
        BSON_APPEND_BOOL(body.get(), "done", false);
    }
    append_payload(body.get(), res.message);
    return ok(std::move(body));
}

outcome command_processor::cmd_server_status(const request&, client_info&, exec_context&) {
    bson_ptr r = make_bson();
    bson_t doc, sub, codec;
    const auto up = std::chrono::steady_clock::now() - started_;
    BSON_APPEND_UTF8(r.get(), "host", members_.at(current_member_).address.c_str());
    BSON_APPEND_UTF8(r.get(), "version", "7.0.0");
    BSON_APPEND_UTF8(r.get(), "process", "mongod");
    BSON_APPEND_INT64(r.get(), "pid", static_cast<std::int64_t>(::getpid()));
    BSON_APPEND_INT64(r.get(), "uptime",
                      std::chrono::duration_cast<std::chrono::seconds>(up).count());
    BSON_APPEND_INT64(r.get(), "uptimeMillis",
                      std::chrono::duration_cast<std::chrono::milliseconds>(up).count());
    BSON_APPEND_DATE_TIME(r.get(), "localTime", now_ms());
    BSON_APPEND_DOCUMENT_BEGIN(r.get(), "connections", &doc);
    BSON_APPEND_INT32(&doc, "current", static_cast<std::int32_t>(network_.connections_current));
    BSON_APPEND_INT32(&doc, "available", 838860);
    BSON_APPEND_INT32(&doc, "totalCreated", static_cast<std::int32_t>(network_.connections_total));
    bson_append_document_end(r.get(), &doc);
    BSON_APPEND_DOCUMENT_BEGIN(r.get(), "network", &doc);
    BSON_APPEND_INT64(&doc, "bytesIn", network_.bytes_in);
    BSON_APPEND_INT64(&doc, "bytesOut", network_.bytes_out);
    BSON_APPEND_INT64(&doc, "numRequests", network_.requests);
    BSON_APPEND_DOCUMENT_BEGIN(&doc, "compression", &sub);
    for (compressor c : supported_compressors()) {
        const auto& n = network_.by_compressor[static_cast<int>(c)];
        bson_t side;
        const auto name = compressor_name(c);
        bson_append_document_begin(&sub, name.data(), static_cast<int>(name.size()), &codec);
        BSON_APPEND_DOCUMENT_BEGIN(&codec, "compressor", &side);
        BSON_APPEND_INT64(&side, "bytesIn", n.compressor_in);
        BSON_APPEND_INT64(&side, "bytesOut", n.compressor_out);
        bson_append_document_end(&codec, &side);
        BSON_APPEND_DOCUMENT_BEGIN(&codec, "decompressor", &side);
        BSON_APPEND_INT64(&side, "bytesIn", n.decompressor_in);
        BSON_APPEND_INT64(&side, "bytesOut", n.decompressor_out);
        bson_append_document_end(&codec, &side);
        bson_append_document_end(&sub, &codec);
    }
    bson_append_document_end(&doc, &sub);
    bson_append_document_end(r.get(), &doc);
    bson_t auth, mechs, mech, part;
    BSON_APPEND_DOCUMENT_BEGIN(r.get(), "security", &doc);
    BSON_APPEND_DOCUMENT_BEGIN(&doc, "authentication", &auth);
    BSON_APPEND_DOCUMENT_BEGIN(&auth, "mechanisms", &mechs);
    for (auto m : {scram_mechanism::sha1, scram_mechanism::sha256}) {
        const auto& st = auth_stats_[static_cast<int>(m)];
        const auto name = mechanism_name(m);
        bson_append_document_begin(&mechs, name.data(), static_cast<int>(name.size()), &mech);
        BSON_APPEND_DOCUMENT_BEGIN(&mech, "speculativeAuthenticate", &part);
        BSON_APPEND_INT64(&part, "received", st.speculative_received);
        BSON_APPEND_INT64(&part, "successful", st.speculative_successful);
        bson_append_document_end(&mech, &part);
        BSON_APPEND_DOCUMENT_BEGIN(&mech, "authenticate", &part);
        BSON_APPEND_INT64(&part, "received", st.received);
        BSON_APPEND_INT64(&part, "successful", st.successful);
        bson_append_document_end(&mech, &part);
        bson_append_document_end(&mechs, &mech);
    }
    bson_append_document_end(&auth, &mechs);
    bson_append_document_end(&doc, &auth);
    bson_append_document_end(r.get(), &doc);
    return ok(std::move(r));
}

outcome command_processor::cmd_repl_set_step_down(const request& req, client_info& client,
                                                  exec_context&) {
    if (req.db != "admin")
        return error(13, "replSetStepDown may only be run against the admin database.");
    if (client.member != primary_)
        return error(10107, "not primary so can't step down");
    bson_iter_t first;
    first_element(*req.command, first);
    if (!BSON_ITER_HOLDS_NUMBER(&first))
        return error(14, "stepdown period must be a number");
    auto old = step_down();
    if (!old)
        return error(262, "No electable secondaries caught up as of " + std::to_string(now_ms()) +
                              ". Please use the replSetStepDown command "
                              "with the argument {force: true} to force node to step down.");
    stepped_down_ = old;
    return ok(make_bson());
}

outcome command_processor::cmd_repl_set_get_status(const request& req, client_info& client,
                                                   exec_context&) {
    if (req.db != "admin")
        return error(13, "replSetGetStatus may only be run against the admin database.");
    bson_ptr r = make_bson();
    BSON_APPEND_UTF8(r.get(), "set", opts_.replset.c_str());
    BSON_APPEND_DATE_TIME(r.get(), "date", now_ms());
    BSON_APPEND_INT32(r.get(), "myState", client.member == primary_ ? 1 : 2);
    BSON_APPEND_INT64(r.get(), "term", term_);
    bson_t arr, m;
    BSON_APPEND_ARRAY_BEGIN(r.get(), "members", &arr);
    for (std::uint32_t i = 0; i < members_.size(); ++i) {
        char buf[16];
        const char* key;
        std::size_t len = bson_uint32_to_string(i, &key, buf, sizeof buf);
        const bool primary = i == primary_;
        bson_append_document_begin(&arr, key, static_cast<int>(len), &m);
        BSON_APPEND_INT32(&m, "_id", static_cast<std::int32_t>(i));
        BSON_APPEND_UTF8(&m, "name", members_[i].address.c_str());
        BSON_APPEND_DOUBLE(&m, "health", 1.0);
        BSON_APPEND_INT32(&m, "state", primary ? 1 : 2);
        BSON_APPEND_UTF8(&m, "stateStr", primary ? "PRIMARY" : "SECONDARY");
        if (i == client.member)
            BSON_APPEND_BOOL(&m, "self", true);
        bson_append_document_end(&arr, &m);
    }
    bson_append_array_end(r.get(), &arr);
    return ok(std::move(r));
}

outcome command_processor::cmd_ping(const request&, client_info&, exec_context&) {
    return ok(make_bson());
}

outcome command_processor::cmd_build_info(const request&, client_info&, exec_context&) {
    bson_ptr r = make_bson();
    bson_t arr;
    BSON_APPEND_UTF8(r.get(), "version", "7.0.0");
    BSON_APPEND_UTF8(r.get(), "gitVersion", "mongosim");
    BSON_APPEND_ARRAY_BEGIN(r.get(), "versionArray", &arr);
    BSON_APPEND_INT32(&arr, "0", 7);
    BSON_APPEND_INT32(&arr, "1", 0);
    BSON_APPEND_INT32(&arr, "2", 0);
    BSON_APPEND_INT32(&arr, "3", 0);
    bson_append_array_end(r.get(), &arr);
    BSON_APPEND_ARRAY_BEGIN(r.get(), "modules", &arr);
    bson_append_array_end(r.get(), &arr);
    BSON_APPEND_ARRAY_BEGIN(r.get(), "storageEngines", &arr);
    BSON_APPEND_UTF8(&arr, "0", "wiredTiger");
    bson_append_array_end(r.get(), &arr);
    BSON_APPEND_INT32(r.get(), "bits", 64);
    BSON_APPEND_BOOL(r.get(), "debug", false);
    BSON_APPEND_INT32(r.get(), "maxBsonObjectSize", max_bson_size);
    return ok(std::move(r));
}

outcome command_processor::cmd_end_sessions(const request& req, client_info&, exec_context&) {
    // Ending a session aborts its open transaction. Unknown sessions are fine, as on mongod.
    bson_iter_t first, el;
    first_element(*req.command, first);
    if (!BSON_ITER_HOLDS_ARRAY(&first) || !bson_iter_recurse(&first, &el))
        return error(14, "endSessions expects an array of session ids");
    while (bson_iter_next(&el)) {
        bson_t one;
        txn_fields f;
        if (!BSON_ITER_HOLDS_DOCUMENT(&el) || !view_document(el, one))
            return error(14, "each session id must be a document {id: UUID}");
        bson_ptr wrapped = make_bson();
        BSON_APPEND_DOCUMENT(wrapped.get(), "lsid", &one);
        if (auto fail = parse_txn_fields(*wrapped, f))
            return error(*fail);
        sessions_.end_session(f.session);
    }
    return ok(make_bson());
}

// ---------------------------------------------------------------------------------------------
// Namespaces

outcome command_processor::cmd_list_databases(const request& req, client_info&, exec_context&) {
    if (req.db != "admin")
        return error(13, "listDatabases may only be run against the admin database.");
    const bson_t& cmd = *req.command;
    bson_t filter_view;
    const bson_t* filter = get_doc(cmd, "filter", filter_view) ? &filter_view : nullptr;
    if (filter) {
        if (auto f = validate_filter(*filter))
            return error(*f);
    }
    const bool name_only = get_bool(cmd, "nameOnly", false);

    std::map<std::string, std::int64_t> sizes = {
        {"admin", 40960}, {"config", 36864}, {"local", 73728}};
    for (const auto& [name, db] : store_.databases()) {
        std::int64_t size = 0;
        for (const auto& [cname, c] : db.collections)
            for (const auto& [slot, d] : c.docs)
                size += d->len;
        sizes[name] = std::max<std::int64_t>(size, 8192);
    }
    bson_ptr r = make_bson();
    bson_t arr;
    BSON_APPEND_ARRAY_BEGIN(r.get(), "databases", &arr);
    std::uint32_t i = 0;
    std::int64_t total = 0;
    for (const auto& [name, size] : sizes) {
        bson_ptr entry = make_bson();
        BSON_APPEND_UTF8(entry.get(), "name", name.c_str());
        if (!name_only) {
            BSON_APPEND_INT64(entry.get(), "sizeOnDisk", size);
            BSON_APPEND_BOOL(entry.get(), "empty", false);
        }
        if (filter && !matches(*entry, *filter))
            continue;
        total += size;
        append_array_index(&arr, i++, *entry);
    }
    bson_append_array_end(r.get(), &arr);
    if (!name_only) {
        BSON_APPEND_INT64(r.get(), "totalSize", total);
        BSON_APPEND_INT64(r.get(), "totalSizeMb", total / (1024 * 1024));
    }
    return ok(std::move(r));
}

outcome command_processor::cmd_list_collections(const request& req, client_info&, exec_context&) {
    const bson_t& cmd = *req.command;
    bson_t filter_view;
    const bson_t* filter = get_doc(cmd, "filter", filter_view) ? &filter_view : nullptr;
    if (filter) {
        if (auto f = validate_filter(*filter))
            return error(*f);
    }
    const bool name_only = get_bool(cmd, "nameOnly", false);
    std::vector<bson_ptr> entries;
    auto db = store_.databases().find(req.db);
    if (db != store_.databases().end()) {
        for (const auto& [name, c] : db->second.collections) {
            bson_ptr e = make_bson();
            bson_t sub, key;
            BSON_APPEND_UTF8(e.get(), "name", name.c_str());
            BSON_APPEND_UTF8(e.get(), "type", "collection");
            if (!name_only) {
                BSON_APPEND_DOCUMENT(e.get(), "options", c.options.get());
                BSON_APPEND_DOCUMENT_BEGIN(e.get(), "info", &sub);
                BSON_APPEND_BOOL(&sub, "readOnly", false);
                bson_append_binary(&sub, "uuid", 4, BSON_SUBTYPE_UUID, c.uuid.data(), 16);
                bson_append_document_end(e.get(), &sub);
                BSON_APPEND_DOCUMENT_BEGIN(e.get(), "idIndex", &sub);
                BSON_APPEND_INT32(&sub, "v", 2);
                BSON_APPEND_DOCUMENT_BEGIN(&sub, "key", &key);
                BSON_APPEND_INT32(&key, "_id", 1);
                bson_append_document_end(&sub, &key);
                BSON_APPEND_UTF8(&sub, "name", "_id_");
                bson_append_document_end(e.get(), &sub);
            }
            if (filter && !matches(*e, *filter))
                continue;
            entries.push_back(std::move(e));
        }
    }
    bson_ptr r = make_bson();
    append_cursor(r.get(), "firstBatch", entries, 0, req.db + ".$cmd.listCollections",
                  std::nullopt);
    return ok(std::move(r));
}

outcome command_processor::cmd_create(const request& req, client_info&, exec_context&) {
    const std::string name = target_collection(req);
    if (!valid_collection_name(name))
        return error(73, "Invalid collection name: '" + name + "'");
    if (store_.find(req.db, name) != nullptr)
        return error(48, "Collection " + req.db + "." + name + " already exists.");
    bson_ptr options = make_bson();
    bool images = false;
    bson_iter_t it;
    bson_iter_init(&it, req.command.get());
    bson_iter_next(&it);  // the command name
    while (bson_iter_next(&it)) {
        std::string_view k = key_of(it);
        if (k[0] == '$' || k == "lsid" || k == "txnNumber" || k == "writeConcern" ||
            k == "autocommit" || k == "comment")
            continue;
        if (k == "changeStreamPreAndPostImages") {
            if (auto f = parse_images_option(it, images))
                return error(*f);
        }
        append_value(options.get(), k, *bson_iter_value(&it));
    }
    bool created = false;
    collection& c = store_.obtain(req.db, name, created);
    c.options = copy_bson(options.get());
    c.pre_and_post_images = images;
    // The create event's operationDescription is the oplog entry's: the options, then idIndex.
    event_record e;
    e.op = op_type::create;
    e.db = req.db;
    e.coll = name;
    e.operation_description = std::move(options);
    append_id_index(e.operation_description.get(), "idIndex");
    record(std::move(e));
    return ok(make_bson());
}

outcome command_processor::cmd_coll_mod(const request& req, client_info&, exec_context&) {
    const std::string name = target_collection(req);
    collection* c = store_.find(req.db, name);
    if (c == nullptr)
        return error(26, "ns does not exist: " + req.db + "." + name);
    bson_ptr options = copy_bson(c->options.get());
    bson_ptr changes = make_bson();
    bool images = c->pre_and_post_images;
    bson_iter_t it;
    bson_iter_init(&it, req.command.get());
    bson_iter_next(&it);  // the command name
    while (bson_iter_next(&it)) {
        std::string_view k = key_of(it);
        if (k[0] == '$' || k == "lsid" || k == "txnNumber" || k == "writeConcern" || k == "comment")
            continue;
        if (k == "changeStreamPreAndPostImages") {
            if (auto f = parse_images_option(it, images))
                return error(*f);
        } else if (k != "validator" && k != "validationLevel" && k != "validationAction" &&
                   k != "expireAfterSeconds" && k != "recordIdsReplicated") {
            return error(40415, "BSON field 'collMod." + std::string(k) +
                                    "' is an unknown field (mongosim's collMod changes "
                                    "collection options, not indexes or views)");
        }
        append_value(changes.get(), k, *bson_iter_value(&it));
        options = with_field(*options, k, *bson_iter_value(&it));
    }
    // stateBeforeChange.collectionOptions: the collection's uuid and options before the change.
    event_record e;
    e.op = op_type::modify;
    e.db = req.db;
    e.coll = name;
    e.uuid = c->uuid;
    e.operation_description = std::move(changes);
    e.state_before_change = make_bson();
    bson_t before;
    BSON_APPEND_DOCUMENT_BEGIN(e.state_before_change.get(), "collectionOptions", &before);
    bson_append_binary(&before, "uuid", 4, BSON_SUBTYPE_UUID, c->uuid.data(), 16);
    bson_concat(&before, c->options.get());
    bson_append_document_end(e.state_before_change.get(), &before);
    c->options = std::move(options);
    c->pre_and_post_images = images;
    record(std::move(e));
    return ok(make_bson());
}

outcome command_processor::cmd_drop(const request& req, client_info&, exec_context&) {
    const std::string name = target_collection(req);
    if (!valid_collection_name(name))
        return error(73, "Invalid collection name: '" + name + "'");
    bson_ptr r = make_bson();
    collection* c = store_.find(req.db, name);
    if (c == nullptr)
        return ok(std::move(r));  // 7.0: dropping a missing collection succeeds
    BSON_APPEND_INT32(r.get(), "nIndexesWas", static_cast<std::int32_t>(1 + c->indexes.size()));
    const std::string ns = req.db + "." + name;
    BSON_APPEND_UTF8(r.get(), "ns", ns.c_str());
    event_record e;
    e.op = op_type::drop;
    e.db = req.db;
    e.coll = name;
    e.uuid = c->uuid;
    store_.drop(req.db, name);
    record(std::move(e));
    return ok(std::move(r));
}

outcome command_processor::cmd_drop_database(const request& req, client_info&, exec_context&) {
    auto db = store_.databases().find(req.db);
    bson_ptr r = make_bson();
    if (db == store_.databases().end())
        return ok(std::move(r));
    std::vector<std::string> names;
    for (const auto& [name, c] : db->second.collections)
        names.push_back(name);
    for (const auto& name : names) {
        event_record e;
        e.op = op_type::drop;
        e.db = req.db;
        e.coll = name;
        e.uuid = store_.find(req.db, name)->uuid;
        store_.drop(req.db, name);
        record(std::move(e));
    }
    event_record e;
    e.op = op_type::drop_database;
    e.db = req.db;
    record(std::move(e));
    BSON_APPEND_UTF8(r.get(), "dropped", req.db.c_str());
    return ok(std::move(r));
}

outcome command_processor::cmd_rename(const request& req, client_info&, exec_context&) {
    if (req.db != "admin")
        return error(13, "renameCollection may only be run against the admin database.");
    const bson_t& cmd = *req.command;
    std::string from_db, from_coll, to_db, to_coll;
    bson_iter_t to;
    if (!split_namespace(target_collection(req), from_db, from_coll) ||
        !find_field(cmd, "to", to) || !BSON_ITER_HOLDS_UTF8(&to) ||
        !split_namespace(bson_iter_utf8(&to, nullptr), to_db, to_coll))
        return error(73, "renameCollection needs full namespaces in 'renameCollection' and 'to'");
    if (!valid_collection_name(to_coll) || !valid_db_name(to_db))
        return error(73, "Invalid target namespace");
    if (from_db == to_db && from_coll == to_coll)
        return error(20, "Can't rename a collection to itself");
    if (store_.find(from_db, from_coll) == nullptr)
        return error(26, "Source collection " + from_db + "." + from_coll + " does not exist");
    std::optional<std::array<std::uint8_t, 16>> dropped_target;
    if (const collection* target = store_.find(to_db, to_coll)) {
        if (!get_bool(cmd, "dropTarget", false))
            return error(48, "target namespace exists");
        dropped_target = target->uuid;
        event_record e;
        e.op = op_type::drop;
        e.db = to_db;
        e.coll = to_coll;
        e.uuid = target->uuid;
        store_.drop(to_db, to_coll);
        record(std::move(e));
    }
    collection c;
    store_.extract(from_db, from_coll, c);
    event_record e;
    e.op = op_type::rename;
    e.db = from_db;
    e.coll = from_coll;
    e.to_db = to_db;
    e.to_coll = to_coll;
    e.uuid = c.uuid;
    // operationDescription (expanded events): {to: {db, coll}[, dropTarget: <uuid>]}.
    e.operation_description = make_bson();
    bson_t to_ns;
    BSON_APPEND_DOCUMENT_BEGIN(e.operation_description.get(), "to", &to_ns);
    BSON_APPEND_UTF8(&to_ns, "db", to_db.c_str());
    BSON_APPEND_UTF8(&to_ns, "coll", to_coll.c_str());
    bson_append_document_end(e.operation_description.get(), &to_ns);
    if (dropped_target)
        bson_append_binary(e.operation_description.get(), "dropTarget", 10, BSON_SUBTYPE_UUID,
                           dropped_target->data(), 16);
    store_.put(to_db, to_coll, std::move(c));
    record(std::move(e));
    return ok(make_bson());
}

// ---------------------------------------------------------------------------------------------
// Writes

namespace {

struct write_errors {
    bson_ptr array = make_bson();
    std::uint32_t count = 0;

    void add(std::uint32_t index, const cmd_error& e) {
        bson_ptr item = make_bson();
        BSON_APPEND_INT32(item.get(), "index", static_cast<std::int32_t>(index));
        BSON_APPEND_INT32(item.get(), "code", e.code);
        BSON_APPEND_UTF8(item.get(), "errmsg", e.message.c_str());
        append_array_index(array.get(), count++, *item);
    }
    void append_to(bson_t* out) const {
        if (count > 0)
            bson_append_array(out, "writeErrors", 11, array.get());
    }
};

// Iterates the documents of a write command's array field (documents, updates, deletes).
failure statements(const bson_t& cmd, const char* key, std::vector<doc_view>& out) {
    bson_iter_t it, el;
    if (!find_field(cmd, key, it) || !BSON_ITER_HOLDS_ARRAY(&it))
        return cmd_error{9, std::string("BSON field '") + key + "' is missing or not an array"};
    bson_iter_recurse(&it, &el);
    while (bson_iter_next(&el)) {
        bson_t view;
        if (!BSON_ITER_HOLDS_DOCUMENT(&el) || !view_document(el, view))
            return cmd_error{14, std::string("each entry of '") + key + "' must be a document"};
        out.push_back({bson_get_data(&view), view.len});
    }
    if (static_cast<std::int64_t>(out.size()) > max_write_batch)
        return cmd_error{16, "Write batch sizes must be between 1 and 100000"};
    return {};
}

}  // namespace

outcome command_processor::cmd_insert(const request& req, client_info&, exec_context&) {
    const std::string name = target_collection(req);
    if (!valid_collection_name(name))
        return error(73, "Invalid collection name: '" + name + "'");
    std::vector<doc_view> docs;
    if (auto f = statements(*req.command, "documents", docs))
        return error(*f);
    const bool ordered = get_bool(*req.command, "ordered", true);
    write_errors errs;
    std::int32_t n = 0;
    for (std::uint32_t i = 0; i < docs.size(); ++i) {
        bson_t in;
        bson_init_static(&in, docs[i].data, docs[i].len);
        failure f = validate_for_storage(in);
        if (!f) {
            shared_doc doc = share(with_leading_id(in));
            collection& c = obtain(req.db, name);
            f = c.insert(doc);
            if (!f) {
                ++n;
                event_record e;
                e.op = op_type::insert;
                e.db = req.db;
                e.coll = name;
                e.document_key = make_key(*doc);
                e.full_document = std::move(doc);
                record(std::move(e));
            }
        }
        if (f) {
            errs.add(i, *f);
            if (ordered)
                break;
        }
    }
    bson_ptr r = make_bson();
    BSON_APPEND_INT32(r.get(), "n", n);
    errs.append_to(r.get());
    return ok(std::move(r));
}

outcome command_processor::cmd_update(const request& req, client_info&, exec_context&) {
    const std::string name = target_collection(req);
    if (!valid_collection_name(name))
        return error(73, "Invalid collection name: '" + name + "'");
    std::vector<doc_view> stmts;
    if (auto f = statements(*req.command, "updates", stmts))
        return error(*f);
    const bool ordered = get_bool(*req.command, "ordered", true);
    write_errors errs;
    std::int32_t n = 0, modified = 0;
    bson_ptr upserted = make_bson();
    std::uint32_t n_upserted = 0;

    for (std::uint32_t i = 0; i < stmts.size(); ++i) {
        bson_t st;
        bson_init_static(&st, stmts[i].data, stmts[i].len);
        auto fail = [&](const cmd_error& e) {
            errs.add(i, e);
            return ordered;
        };
        bson_t q, u;
        bson_iter_t uit;
        if (!get_doc(st, "q", q)) {
            if (fail({9, "update statement needs a 'q' document"}))
                break;
            continue;
        }
        if (!find_field(st, "u", uit) || !BSON_ITER_HOLDS_DOCUMENT(&uit) ||
            !view_document(uit, u)) {
            if (fail({2,
                      "mongosim supports update documents (operators or a replacement), not "
                      "pipelines"}))
                break;
            continue;
        }
        const bool upsert = get_bool(st, "upsert", false);
        const bool multi = get_bool(st, "multi", false);
        const bool operators = is_operator_update(u);
        if (auto f = validate_filter(q)) {
            if (fail(*f))
                break;
            continue;
        }
        if (!operators && multi) {
            if (fail({9, "multi update is not supported for replacement-style update"}))
                break;
            continue;
        }
        if (!operators) {
            if (auto f = validate_for_storage(u)) {
                if (fail(*f))
                    break;
                continue;
            }
        }
        std::vector<std::uint64_t> slots;
        collection* c = store_.find(req.db, name);
        if (c != nullptr) {
            for (const auto& [slot, d] : c->docs) {
                if (matches(*d, q)) {
                    slots.push_back(slot);
                    if (!multi)
                        break;
                }
            }
        }
        failure err;
        for (std::uint64_t slot : slots) {
            shared_doc old = c->docs.at(slot);
            bson_ptr next;
            update_diff diff;
            if (operators) {
                err = apply_update(old.get(), u, false, next, diff);
            } else {
                bson_iter_t a, b;
                bson_iter_init_find(&a, old.get(), "_id");
                if (bson_iter_init_find(&b, &u, "_id") &&
                    (!values_equal(*bson_iter_value(&a), *bson_iter_value(&b)) ||
                     bson_iter_type(&a) != bson_iter_type(&b))) {
                    err = cmd_error{66,
                                    "After applying the update, the (immutable) field '_id' was "
                                    "found to have been altered"};
                } else {
                    bson_ptr with_id = make_bson();
                    append_value(with_id.get(), "_id", *bson_iter_value(&a));
                    bson_iter_t f;
                    bson_iter_init(&f, &u);
                    while (bson_iter_next(&f))
                        if (key_of(f) != "_id")
                            append_value(with_id.get(), key_of(f), *bson_iter_value(&f));
                    next = std::move(with_id);
                }
            }
            if (err)
                break;
            ++n;
            if (next->len == old->len &&
                std::memcmp(bson_get_data(next.get()), bson_get_data(old.get()), old->len) == 0)
                continue;  // nothing changed: no write, no event
            ++modified;
            shared_doc stored = share(std::move(next));
            c->docs[slot] = stored;
            event_record e;
            e.db = req.db;
            e.coll = name;
            e.document_key = make_key(*stored);
            if (c->pre_and_post_images) {
                e.pre_image = old;
                e.post_image = stored;
            }
            if (operators) {
                e.op = op_type::update;
                e.update_description = make_bson();
                bson_t arr;
                BSON_APPEND_DOCUMENT(e.update_description.get(), "updatedFields",
                                     diff.updated_fields.get());
                BSON_APPEND_ARRAY_BEGIN(e.update_description.get(), "removedFields", &arr);
                for (std::uint32_t k = 0; k < diff.removed_fields.size(); ++k) {
                    char buf[16];
                    const char* key;
                    std::size_t len = bson_uint32_to_string(k, &key, buf, sizeof buf);
                    bson_append_utf8(&arr, key, static_cast<int>(len),
                                     diff.removed_fields[k].data(),
                                     static_cast<int>(diff.removed_fields[k].size()));
                }
                bson_append_array_end(e.update_description.get(), &arr);
                BSON_APPEND_ARRAY_BEGIN(e.update_description.get(), "truncatedArrays", &arr);
                bson_append_array_end(e.update_description.get(), &arr);
            } else {
                e.op = op_type::replace;
                e.full_document = stored;
            }
            record(std::move(e));
        }
        if (!err && slots.empty() && upsert) {
            bson_ptr seed, doc;
            if (operators) {
                update_diff diff;
                err = upsert_seed(q, seed);
                if (!err)
                    err = apply_update(seed.get(), u, true, doc, diff);
            } else {
                doc = copy_bson(&u);
                bson_iter_t qid;
                if (!bson_has_field(&u, "_id") && bson_iter_init_find(&qid, &q, "_id") &&
                    !BSON_ITER_HOLDS_DOCUMENT(&qid)) {
                    doc = make_bson();
                    append_value(doc.get(), "_id", *bson_iter_value(&qid));
                    bson_concat(doc.get(), &u);
                }
            }
            if (!err)
                err = validate_for_storage(*doc);
            if (!err) {
                shared_doc stored = share(with_leading_id(*doc));
                err = obtain(req.db, name).insert(stored);
                if (!err) {
                    ++n;
                    bson_iter_t id;
                    bson_iter_init_find(&id, stored.get(), "_id");
                    bson_ptr item = make_bson();
                    BSON_APPEND_INT32(item.get(), "index", static_cast<std::int32_t>(i));
                    append_value(item.get(), "_id", *bson_iter_value(&id));
                    append_array_index(upserted.get(), n_upserted++, *item);
                    event_record e;
                    e.op = op_type::insert;
                    e.db = req.db;
                    e.coll = name;
                    e.document_key = make_key(*stored);
                    e.full_document = stored;
                    record(std::move(e));
                }
            }
        }
        if (err && fail(*err))
            break;
    }
    bson_ptr r = make_bson();
    BSON_APPEND_INT32(r.get(), "n", n);
    BSON_APPEND_INT32(r.get(), "nModified", modified);
    if (n_upserted > 0)
        bson_append_array(r.get(), "upserted", 8, upserted.get());
    errs.append_to(r.get());
    return ok(std::move(r));
}

outcome command_processor::cmd_delete(const request& req, client_info&, exec_context&) {
    const std::string name = target_collection(req);
    if (!valid_collection_name(name))
        return error(73, "Invalid collection name: '" + name + "'");
    std::vector<doc_view> stmts;
    if (auto f = statements(*req.command, "deletes", stmts))
        return error(*f);
    const bool ordered = get_bool(*req.command, "ordered", true);
    write_errors errs;
    std::int32_t n = 0;
    for (std::uint32_t i = 0; i < stmts.size(); ++i) {
        bson_t q;
        bson_t st;
        bson_init_static(&st, stmts[i].data, stmts[i].len);
        auto limit = get_int(st, "limit");
        failure f;
        if (!get_doc(st, "q", q))
            f = cmd_error{9, "delete statement needs a 'q' document"};
        else if (!limit || (*limit != 0 && *limit != 1))
            f = cmd_error{9, "delete statement needs 'limit' 0 or 1"};
        else
            f = validate_filter(q);
        if (f) {
            errs.add(i, *f);
            if (ordered)
                break;
            continue;
        }
        collection* c = store_.find(req.db, name);
        if (c == nullptr)
            continue;
        std::vector<std::uint64_t> slots;
        for (const auto& [slot, d] : c->docs) {
            if (matches(*d, q)) {
                slots.push_back(slot);
                if (*limit == 1)
                    break;
            }
        }
        for (std::uint64_t slot : slots) {
            shared_doc old = c->docs.at(slot);
            bson_iter_t id;
            bson_iter_init_find(&id, old.get(), "_id");
            c->by_id.erase(id_key(*bson_iter_value(&id)));
            c->docs.erase(slot);
            ++n;
            event_record e;
            e.op = op_type::remove;
            e.db = req.db;
            e.coll = name;
            e.document_key = make_key(*old);
            if (c->pre_and_post_images)
                e.pre_image = old;
            record(std::move(e));
        }
    }
    bson_ptr r = make_bson();
    BSON_APPEND_INT32(r.get(), "n", n);
    errs.append_to(r.get());
    return ok(std::move(r));
}

// ---------------------------------------------------------------------------------------------
// Reads and cursors

outcome command_processor::cmd_find(const request& req, client_info&, exec_context&) {
    const bson_t& cmd = *req.command;
    const std::string name = target_collection(req);
    if (!valid_collection_name(name))
        return error(73, "Invalid collection name: '" + name + "'");
    bson_t filter, spec;
    if (!get_doc(cmd, "filter", filter))
        bson_init(&filter);
    if (auto f = validate_filter(filter))
        return error(*f);
    std::vector<sort_key> sort;
    if (get_doc(cmd, "sort", spec)) {
        if (auto f = parse_sort(spec, sort))
            return error(*f);
    }
    find_cursor fc;
    if (get_doc(cmd, "projection", spec)) {
        if (auto f = parse_projection(spec, fc.proj))
            return error(*f);
    }
    std::int64_t skip = get_int(cmd, "skip").value_or(0);
    std::int64_t limit = get_int(cmd, "limit").value_or(0);
    std::int64_t batch_size = get_int(cmd, "batchSize").value_or(default_first_batch);
    bool single = get_bool(cmd, "singleBatch", false);
    if (skip < 0 || batch_size < 0)
        return error(51024, "skip and batchSize must be non-negative");
    if (limit < 0) {
        limit = -limit;
        single = true;
    }
    if (collection* c = store_.find(req.db, name)) {
        for (const auto& [slot, d] : c->docs)
            if (matches(*d, filter))
                fc.docs.push_back(d);
    }
    if (!sort.empty())
        std::stable_sort(
            fc.docs.begin(), fc.docs.end(),
            [&](const shared_doc& a, const shared_doc& b) { return sort_less(*a, *b, sort); });
    fc.docs.erase(fc.docs.begin(), fc.docs.begin() + std::min<std::size_t>(fc.docs.size(), skip));
    if (limit > 0 && fc.docs.size() > static_cast<std::size_t>(limit))
        fc.docs.resize(limit);

    std::vector<bson_ptr> batch;
    std::size_t first = limit > 0 && single ? static_cast<std::size_t>(limit)
                                            : static_cast<std::size_t>(batch_size);
    take(fc.docs, fc.next, fc.proj, first, batch);
    std::int64_t id = 0;
    const std::string ns = req.db + "." + name;
    if (fc.next < fc.docs.size() && !single) {
        id = new_cursor_id();
        add_cursor(id, cursor{ns, std::move(fc), clock::now()});
    }
    bson_ptr r = make_bson();
    append_cursor(r.get(), "firstBatch", batch, id, ns, std::nullopt);
    return ok(std::move(r));
}

outcome command_processor::cmd_get_more(const request& req, client_info& client,
                                        exec_context& ctx) {
    const bson_t& cmd = *req.command;
    bson_iter_t first;
    first_element(cmd, first);
    auto id = as_int64(first);
    if (!id || bson_iter_type(&first) == BSON_TYPE_DOUBLE)
        return error(14, "getMore's cursor id must be a 64-bit integer");
    bson_iter_t coll;
    if (!find_field(cmd, "collection", coll) || !BSON_ITER_HOLDS_UTF8(&coll))
        return error(9, "getMore needs 'collection'");
    auto it = cursors_.find(*id);
    // Every member has its own cursors: another member's cursor id is unknown here.
    if (it == cursors_.end() || it->second.member != client.member)
        return error(43, "cursor id " + std::to_string(*id) + " not found");
    // A cursor outlives an election on its member, as mongod's do: a getMore on a member that
    // stepped down under a cursor opened for the primary goes on (a client that wants the
    // primary moves by itself).
    const std::string ns = req.db + "." + bson_iter_utf8(&coll, nullptr);
    if (it->second.ns != ns)
        return error(13, "Requested getMore on namespace '" + ns +
                             "', but cursor belongs to a different namespace " + it->second.ns);
    if (auto code = checkout_fail_point_fires(client)) {
        std::vector<std::string> labels;
        if (std::holds_alternative<change_stream>(it->second.state) &&
            resumable_change_stream_code(*code))
            labels.push_back("ResumableChangeStreamError");
        cursors_.erase(it);  // a getMore that fails with its cursor checked out kills it
        return error(*code, "Hit the 'failGetMoreAfterCursorCheckout' failpoint", labels);
    }
    std::int64_t batch_size = get_int(cmd, "batchSize").value_or(0);
    if (batch_size < 0)
        return error(2, "batchSize must be non-negative");
    const std::size_t max_count = batch_size > 0 ? static_cast<std::size_t>(batch_size)
                                                 : std::numeric_limits<std::size_t>::max();
    it->second.last_used = clock::now();

    std::vector<bson_ptr> docs;
    std::optional<token_position> pbrt;
    bool done;
    if (auto* fc = std::get_if<find_cursor>(&it->second.state)) {
        take(fc->docs, fc->next, fc->proj, max_count, docs);
        done = fc->next >= fc->docs.size();
    } else {
        auto& cs = std::get<change_stream>(it->second.state);
        batch b;
        if (auto f = next_batch(cs, oplog_, store_, max_count, max_batch_bytes, b)) {
            cursors_.erase(it);
            // Errors raised while producing events carry the executor's prefix, as on mongod.
            if (f->code == 47 || f->code == 10334)
                f->message = "Executor error during getMore :: caused by :: " + f->message;
            return error(*f);
        }
        if (b.events.empty() && b.caught_up && !cs.finished) {
            // awaitData: hold the request until an event arrives or maxTimeMS runs out.
            if (!ctx.deadline) {
                std::int64_t wait = get_int(cmd, "maxTimeMS").value_or(default_await_ms);
                ctx.deadline =
                    clock::now() + std::chrono::milliseconds(std::max<std::int64_t>(wait, 0));
            }
            if (clock::now() < *ctx.deadline)
                return {outcome::kind::wait_oplog, nullptr, *ctx.deadline};
        }
        if (!b.events.empty() || !b.caught_up) {
            pbrt = b.last;
        }
        if (!pbrt)
            pbrt = token_position{oplog_.clock().tick(), token_kind::high_water};
        docs = std::move(b.events);
        done = cs.finished;
    }
    const std::string cursor_ns = it->second.ns;
    if (done)
        cursors_.erase(it);
    bson_ptr r = make_bson();
    append_cursor(r.get(), "nextBatch", docs, done ? 0 : *id, cursor_ns, pbrt);
    return ok(std::move(r));
}

outcome command_processor::cmd_kill_cursors(const request& req, client_info& client,
                                            exec_context&) {
    bson_iter_t it, el;
    if (!find_field(*req.command, "cursors", it) || !BSON_ITER_HOLDS_ARRAY(&it))
        return error(9, "killCursors needs a 'cursors' array");
    bson_ptr killed = make_bson(), missing = make_bson();
    std::uint32_t nk = 0, nm = 0;
    bson_iter_recurse(&it, &el);
    while (bson_iter_next(&el)) {
        auto id = as_int64(el);
        if (!id)
            return error(14, "cursor ids must be 64-bit integers");
        char buf[16];
        const char* key;
        auto c = cursors_.find(*id);
        const bool found = c != cursors_.end() && c->second.member == client.member;
        if (found)
            cursors_.erase(c);
        std::size_t len = bson_uint32_to_string(found ? nk++ : nm++, &key, buf, sizeof buf);
        bson_append_int64(found ? killed.get() : missing.get(), key, static_cast<int>(len), *id);
    }
    bson_ptr r = make_bson();
    bson_append_array(r.get(), "cursorsKilled", -1, killed.get());
    bson_append_array(r.get(), "cursorsNotFound", -1, missing.get());
    bson_t empty = BSON_INITIALIZER;
    bson_append_array(r.get(), "cursorsAlive", -1, &empty);
    bson_append_array(r.get(), "cursorsUnknown", -1, &empty);
    return ok(std::move(r));
}

outcome command_processor::cmd_count(const request& req, client_info&, exec_context&) {
    const bson_t& cmd = *req.command;
    const std::string name = target_collection(req);
    bson_t query;
    if (!get_doc(cmd, "query", query))
        bson_init(&query);
    if (auto f = validate_filter(query))
        return error(*f);
    std::int64_t skip = get_int(cmd, "skip").value_or(0);
    std::int64_t limit = get_int(cmd, "limit").value_or(0);
    std::int64_t n = 0;
    if (collection* c = store_.find(req.db, name)) {
        for (const auto& [slot, d] : c->docs)
            if (matches(*d, query))
                ++n;
    }
    n = std::max<std::int64_t>(0, n - std::max<std::int64_t>(0, skip));
    if (limit != 0)
        n = std::min(n, std::abs(limit));
    bson_ptr r = make_bson();
    if (n <= INT32_MAX)
        BSON_APPEND_INT32(r.get(), "n", static_cast<std::int32_t>(n));
    else
        BSON_APPEND_INT64(r.get(), "n", n);
    return ok(std::move(r));
}

outcome command_processor::cmd_aggregate(const request& req, client_info&, exec_context& ctx) {
    const bson_t& cmd = *req.command;
    bson_iter_t it;
    bson_t pipeline;
    if (!find_field(cmd, "pipeline", it) || !BSON_ITER_HOLDS_ARRAY(&it) ||
        !view_document(it, pipeline))
        return error(14, "'pipeline' must be an array");
    bson_iter_t st, stage;
    if (bson_iter_init(&st, &pipeline) && bson_iter_next(&st) && BSON_ITER_HOLDS_DOCUMENT(&st) &&
        bson_iter_recurse(&st, &stage) && bson_iter_next(&stage) &&
        key_of(stage) == "$changeStream")
        return open_stream(req, pipeline, ctx);
    if (!bson_has_field(&cmd, "cursor"))
        return error(9,
                     "The 'cursor' option is required, except for aggregate with the explain "
                     "argument");
    const std::string name = target_collection(req);
    if (name.empty())
        return error(73, "mongosim runs collection-less aggregate only with $changeStream");
    return run_pipeline(req, store_.find(req.db, name), pipeline);
}

outcome command_processor::open_stream(const request& req, const bson_t& pipeline, exec_context&) {
    const bson_t& cmd = *req.command;
    bson_iter_t first;
    first_element(cmd, first);
    scope_kind scope;
    std::string coll, ns;
    if (BSON_ITER_HOLDS_UTF8(&first)) {
        scope = scope_kind::collection;
        coll = bson_iter_utf8(&first, nullptr);
        if (!valid_collection_name(coll))
            return error(73, "Invalid collection name: '" + coll + "'");
        ns = req.db + "." + coll;
    } else if (as_int64(first) == 1) {
        scope = req.db == "admin" ? scope_kind::deployment : scope_kind::database;
        ns = req.db + ".$cmd.aggregate";
    } else {
        return error(14, "aggregate must name a collection or be 1");
    }
    if (scope == scope_kind::collection &&
        (req.db == "admin" || req.db == "config" || req.db == "local"))
        return error(73, "$changeStream may not be opened on the internal " + req.db + " database");
    bson_t cursor_opts;
    std::int64_t batch_size = default_first_batch;
    if (get_doc(cmd, "cursor", cursor_opts))
        batch_size = get_int(cursor_opts, "batchSize").value_or(default_first_batch);
    if (batch_size < 0)
        return error(2, "batchSize must be non-negative");

    change_stream cs;
    if (auto f = open_change_stream(pipeline, scope, req.db, coll, oplog_, cs))
        return error(*f);
    batch b;
    if (auto f = next_batch(cs, oplog_, store_, static_cast<std::size_t>(batch_size),
                            max_batch_bytes, b)) {
        if (f->code == 47 || f->code == 10334)
            f->message = "PlanExecutor error during aggregation :: caused by :: " + f->message;
        return error(*f);
    }
    std::optional<token_position> pbrt;
    if (!b.events.empty() || !b.caught_up)
        pbrt = b.last;
    if (!pbrt && !b.caught_up && cs.next_seq > oplog_.begin_seq())
        pbrt = position_after(oplog_.at(cs.next_seq - 1));
    if (!pbrt && !b.caught_up && cs.next_seq < oplog_.end_seq()) {
        timestamp ts = oplog_.at(cs.next_seq).ts;  // just before the next event
        ts = ts.i > 0 ? timestamp{ts.t, ts.i - 1} : timestamp{ts.t - 1, UINT32_MAX};
        pbrt = token_position{ts, token_kind::high_water};
    }
    if (!pbrt)
        pbrt = token_position{oplog_.clock().tick(), token_kind::high_water};
    std::int64_t id = 0;
    if (!cs.finished) {
        id = new_cursor_id();
        add_cursor(id, cursor{ns, std::move(cs), clock::now()});
    }
    bson_ptr r = make_bson();
    append_cursor(r.get(), "firstBatch", b.events, id, ns, pbrt);
    return ok(std::move(r));
}

outcome command_processor::run_pipeline(const request& req, collection* c, const bson_t& pipeline) {
    std::vector<shared_doc> docs;
    if (c != nullptr)
        for (const auto& [slot, d] : c->docs)
            docs.push_back(d);
    bson_iter_t st;
    bson_iter_init(&st, &pipeline);
    while (bson_iter_next(&st)) {
        bson_iter_t stage;
        bson_t spec;
        if (!BSON_ITER_HOLDS_DOCUMENT(&st) || !bson_iter_recurse(&st, &stage) ||
            !bson_iter_next(&stage))
            return error(40323,
                         "A pipeline stage specification object must contain exactly one field.");
        const std::string name(key_of(stage));
        const bool doc_arg = BSON_ITER_HOLDS_DOCUMENT(&stage) && view_document(stage, spec);
        if (name == "$match") {
            if (!doc_arg)
                return error(15959, "the match filter must be an expression in an object");
            if (auto f = validate_filter(spec))
                return error(*f);
            std::erase_if(docs, [&](const shared_doc& d) { return !matches(*d, spec); });
        } else if (name == "$sort") {
            std::vector<sort_key> keys;
            if (!doc_arg)
                return error(15973, "the $sort key specification must be an object");
            if (auto f = parse_sort(spec, keys))
                return error(*f);
            std::stable_sort(
                docs.begin(), docs.end(),
                [&](const shared_doc& a, const shared_doc& b) { return sort_less(*a, *b, keys); });
        } else if (name == "$skip" || name == "$limit") {
            auto n = as_int64(stage);
            if (!n || *n < 0 || (name == "$limit" && *n == 0))
                return error(15956, name + " needs a positive integer");
            if (name == "$skip")
                docs.erase(docs.begin(), docs.begin() + std::min<std::size_t>(docs.size(), *n));
            else if (docs.size() > static_cast<std::size_t>(*n))
                docs.resize(*n);
        } else if (name == "$project") {
            projection p;
            if (!doc_arg)
                return error(15969, "$project specification must be an object");
            if (auto f = parse_projection(spec, p))
                return error(*f);
            for (auto& d : docs)
                d = share(apply_projection(*d, p));
        } else if (name == "$count") {
            if (!BSON_ITER_HOLDS_UTF8(&stage))
                return error(40156, "the count field must be a string");
            const std::size_t n = docs.size();
            docs.clear();
            if (n > 0) {
                bson_ptr d = make_bson();
                BSON_APPEND_INT32(d.get(), bson_iter_utf8(&stage, nullptr),
                                  static_cast<std::int32_t>(n));
                docs.push_back(share(std::move(d)));
            }
        } else if (name == "$group") {
            if (!doc_arg)
                return error(15947, "a group's fields must be specified in an object");
            struct group {
                bson_ptr id = make_bson();  // {_id: value}
                std::vector<std::int64_t> isum;
                std::vector<double> dsum;
                std::vector<bool> is_double;
            };
            struct accumulator {
                std::string field;
                std::optional<double> constant;
                std::string path;  // "$x" operand
            };
            std::vector<accumulator> accs;
            std::optional<std::string> id_path;
            bson_iter_t g;
            bson_iter_init(&g, &spec);
            bool have_id = false;
            while (bson_iter_next(&g)) {
                std::string_view k = key_of(g);
                if (k == "_id") {
                    have_id = true;
                    if (BSON_ITER_HOLDS_UTF8(&g) && bson_iter_utf8(&g, nullptr)[0] == '$')
                        id_path = std::string(bson_iter_utf8(&g, nullptr) + 1);
                    continue;
                }
                bson_iter_t op;
                if (!BSON_ITER_HOLDS_DOCUMENT(&g) || !bson_iter_recurse(&g, &op) ||
                    !bson_iter_next(&op) || (key_of(op) != "$sum" && key_of(op) != "$count"))
                    return error(15952, "mongosim supports $group accumulators $sum and $count");
                accumulator a{std::string(k), std::nullopt, {}};
                if (key_of(op) == "$count")
                    a.constant = 1;
                else if (auto num = as_number(op))
                    a.constant = *num;
                else if (BSON_ITER_HOLDS_UTF8(&op) && bson_iter_utf8(&op, nullptr)[0] == '$')
                    a.path = bson_iter_utf8(&op, nullptr) + 1;
                else
                    return error(15952, "$sum takes a number or a \"$field\" path");
                accs.push_back(std::move(a));
            }
            if (!have_id)
                return error(15955, "a group specification must include an _id");
            std::map<std::string, group> groups;
            std::vector<std::string> order;
            bson_iter_t idv;
            bson_iter_init_find(&idv, &spec, "_id");
            for (const auto& d : docs) {
                bson_ptr key_doc = make_bson();
                bson_iter_t v;
                if (id_path) {
                    bson_iter_t root;
                    if (bson_iter_init(&root, d.get()) &&
                        bson_iter_find_descendant(&root, id_path->c_str(), &v))
                        append_value(key_doc.get(), "_id", *bson_iter_value(&v));
                    else
                        BSON_APPEND_NULL(key_doc.get(), "_id");
                } else {
                    append_value(key_doc.get(), "_id", *bson_iter_value(&idv));
                }
                bson_iter_t kid;
                bson_iter_init_find(&kid, key_doc.get(), "_id");
                std::string key = id_key(*bson_iter_value(&kid));
                auto [git, inserted] = groups.try_emplace(key);
                if (inserted) {
                    git->second.id = std::move(key_doc);
                    git->second.isum.assign(accs.size(), 0);
                    git->second.dsum.assign(accs.size(), 0);
                    git->second.is_double.assign(accs.size(), false);
                    order.push_back(key);
                }
                for (std::size_t k = 0; k < accs.size(); ++k) {
                    std::optional<double> dv;
                    std::optional<std::int64_t> iv;
                    if (accs[k].constant) {
                        if (*accs[k].constant == std::floor(*accs[k].constant))
                            iv = static_cast<std::int64_t>(*accs[k].constant);
                        else
                            dv = *accs[k].constant;
                    } else {
                        bson_iter_t root, fv;
                        if (bson_iter_init(&root, d.get()) &&
                            bson_iter_find_descendant(&root, accs[k].path.c_str(), &fv)) {
                            if (BSON_ITER_HOLDS_DOUBLE(&fv))
                                dv = bson_iter_double(&fv);
                            else if (auto i64 = as_int64(fv); i64 && (BSON_ITER_HOLDS_INT32(&fv) ||
                                                                      BSON_ITER_HOLDS_INT64(&fv)))
                                iv = *i64;
                        }
                    }
                    auto& gr = git->second;
                    if (dv) {
                        gr.is_double[k] = true;
                        gr.dsum[k] += *dv;
                    } else if (iv) {
                        gr.isum[k] += *iv;
                    }
                }
            }
            docs.clear();
            for (const auto& key : order) {
                auto& gr = groups.at(key);
                bson_ptr out = copy_bson(gr.id.get());
                for (std::size_t k = 0; k < accs.size(); ++k) {
                    const char* f = accs[k].field.c_str();
                    if (gr.is_double[k])
                        BSON_APPEND_DOUBLE(out.get(), f,
                                           gr.dsum[k] + static_cast<double>(gr.isum[k]));
                    else if (gr.isum[k] >= INT32_MIN && gr.isum[k] <= INT32_MAX)
                        BSON_APPEND_INT32(out.get(), f, static_cast<std::int32_t>(gr.isum[k]));
                    else
                        BSON_APPEND_INT64(out.get(), f, gr.isum[k]);
                }
                docs.push_back(share(std::move(out)));
            }
        } else if (is_reshape_stage(name)) {
            // $addFields/$set/$unset/$replaceRoot/$replaceWith (stages.hpp).
            reshape_stage rs;
            if (auto f = parse_reshape_stage(stage, rs))
                return error(*f);
            for (auto& d : docs) {
                bson_ptr shaped = copy_bson(d.get());
                if (auto f = apply_reshape_stage(rs, shaped, false))
                    return error(*f);
                d = share(std::move(shaped));
            }
        } else if (name == "$unwind") {
            unwind_stage us;
            if (auto f = parse_unwind_stage(stage, us))
                return error(*f);
            std::vector<shared_doc> unwound;
            for (const auto& d : docs) {
                std::vector<bson_ptr> out;
                apply_unwind_stage(us, *d, out);
                for (auto& o : out)
                    unwound.push_back(share(std::move(o)));
            }
            docs = std::move(unwound);
        } else {
            return error(40324, "Unrecognized pipeline stage name: '" + name + "'");
        }
    }
    find_cursor fc;
    fc.docs = std::move(docs);
    bson_t cursor_opts;
    std::int64_t batch_size = default_first_batch;
    if (get_doc(*req.command, "cursor", cursor_opts))
        batch_size = get_int(cursor_opts, "batchSize").value_or(default_first_batch);
    std::vector<bson_ptr> batch;
    take(fc.docs, fc.next, fc.proj, static_cast<std::size_t>(std::max<std::int64_t>(batch_size, 0)),
         batch);
    const std::string ns = req.db + "." + target_collection(req);
    std::int64_t id = 0;
    if (fc.next < fc.docs.size()) {
        id = new_cursor_id();
        add_cursor(id, cursor{ns, std::move(fc), clock::now()});
    }
    bson_ptr r = make_bson();
    append_cursor(r.get(), "firstBatch", batch, id, ns, std::nullopt);
    return ok(std::move(r));
}

// ---------------------------------------------------------------------------------------------
// Indexes (recorded and listed; only _id is enforced)

outcome command_processor::cmd_create_indexes(const request& req, client_info&, exec_context&) {
    const std::string name = target_collection(req);
    if (!valid_collection_name(name))
        return error(73, "Invalid collection name: '" + name + "'");
    std::vector<doc_view> specs;
    if (auto f = statements(*req.command, "indexes", specs))
        return error(*f);
    const bool created = store_.find(req.db, name) == nullptr;
    collection& c = obtain(req.db, name);
    const auto before = static_cast<std::int32_t>(1 + c.indexes.size());
    for (const auto& view : specs) {
        bson_t s;
        bson_init_static(&s, view.data, view.len);
        bson_iter_t nm;
        bson_t key;
        if (!get_doc(s, "key", key) || !bson_iter_init_find(&nm, &s, "name") ||
            !BSON_ITER_HOLDS_UTF8(&nm))
            return error(9, "index specifications need 'key' and 'name'");
        const std::string iname = bson_iter_utf8(&nm, nullptr);
        bool exists = iname == "_id_";
        for (const auto& existing : c.indexes) {
            bson_iter_t en;
            bson_iter_init_find(&en, existing.get(), "name");
            exists = exists || iname == bson_iter_utf8(&en, nullptr);
        }
        if (exists)
            continue;
        bson_ptr spec = make_bson();
        BSON_APPEND_INT32(spec.get(), "v", 2);
        bson_iter_t f;
        bson_iter_init(&f, &s);
        while (bson_iter_next(&f))
            if (key_of(f) != "v")
                append_value(spec.get(), key_of(f), *bson_iter_value(&f));
        // One oplog entry, and so one createIndexes event, per index built.
        event_record e;
        e.op = op_type::create_indexes;
        e.db = req.db;
        e.coll = name;
        e.operation_description = index_description(*spec);
        c.indexes.push_back(std::move(spec));
        record(std::move(e));
    }
    bson_ptr r = make_bson();
    BSON_APPEND_INT32(r.get(), "numIndexesBefore", before);
    BSON_APPEND_INT32(r.get(), "numIndexesAfter", static_cast<std::int32_t>(1 + c.indexes.size()));
    BSON_APPEND_BOOL(r.get(), "createdCollectionAutomatically", created);
    return ok(std::move(r));
}

outcome command_processor::cmd_list_indexes(const request& req, client_info&, exec_context&) {
    const std::string name = target_collection(req);
    collection* c = store_.find(req.db, name);
    if (c == nullptr)
        return error(26, "ns does not exist: " + req.db + "." + name);
    std::vector<bson_ptr> out;
    bson_ptr id = make_bson();
    bson_t key;
    BSON_APPEND_INT32(id.get(), "v", 2);
    BSON_APPEND_DOCUMENT_BEGIN(id.get(), "key", &key);
    BSON_APPEND_INT32(&key, "_id", 1);
    bson_append_document_end(id.get(), &key);
    BSON_APPEND_UTF8(id.get(), "name", "_id_");
    out.push_back(std::move(id));
    for (const auto& spec : c->indexes)
        out.push_back(copy_bson(spec.get()));
    bson_ptr r = make_bson();
    append_cursor(r.get(), "firstBatch", out, 0, req.db + "." + name, std::nullopt);
    return ok(std::move(r));
}

outcome command_processor::cmd_drop_indexes(const request& req, client_info&, exec_context&) {
    const std::string name = target_collection(req);
    collection* c = store_.find(req.db, name);
    if (c == nullptr)
        return error(26, "ns not found " + req.db + "." + name);
    bson_iter_t idx;
    if (!find_field(*req.command, "index", idx))
        return error(9, "dropIndexes needs 'index'");
    const auto before = static_cast<std::int32_t>(1 + c->indexes.size());
    auto dropped = [&](const bson_ptr& spec) {
        event_record e;
        e.op = op_type::drop_indexes;
        e.db = req.db;
        e.coll = name;
        e.operation_description = index_description(*spec);
        record(std::move(e));
    };
    if (BSON_ITER_HOLDS_UTF8(&idx) && std::string_view(bson_iter_utf8(&idx, nullptr)) == "*") {
        for (const auto& spec : c->indexes)
            dropped(spec);
        c->indexes.clear();
    } else {
        auto it = std::find_if(c->indexes.begin(), c->indexes.end(), [&](const bson_ptr& spec) {
            bson_iter_t f;
            if (BSON_ITER_HOLDS_UTF8(&idx))
                return bson_iter_init_find(&f, spec.get(), "name") &&
                       std::string_view(bson_iter_utf8(&f, nullptr)) ==
                           bson_iter_utf8(&idx, nullptr);
            return bson_iter_init_find(&f, spec.get(), "key") &&
                   values_equal(*bson_iter_value(&f), *bson_iter_value(&idx));
        });
        if (it == c->indexes.end())
            return error(27, "index not found");
        dropped(*it);
        c->indexes.erase(it);
    }
    bson_ptr r = make_bson();
    BSON_APPEND_INT32(r.get(), "nIndexesWas", before);
    return ok(std::move(r));
}

// ---------------------------------------------------------------------------------------------
// Test hooks

outcome command_processor::cmd_configure_fail_point(const request& req, client_info& client,
                                                    exec_context&) {
    fail_point& current = fail_points_.at(client.member);
    if (req.db != "admin")
        return error(13, "configureFailPoint may only be run against the admin database.");
    const bson_t& cmd = *req.command;
    if (target_collection(req) == "failGetMoreAfterCursorCheckout")
        return configure_checkout_fail_point(req, client);
    if (target_collection(req) != "failCommand")
        return error(2,
                     "mongosim supports the failCommand and failGetMoreAfterCursorCheckout fail "
                     "points");
    fail_point fp;
    bson_iter_t mode;
    if (!find_field(cmd, "mode", mode))
        return error(9, "configureFailPoint needs 'mode'");
    bool off = false;
    if (auto f = parse_fail_point_mode(mode, fp, off))
        return error(*f);
    if (off) {
        current = fail_point{};
        return ok(make_bson());
    }
    bson_t data;
    bson_iter_t it, el;
    if (!get_doc(cmd, "data", data) || !find_field(data, "failCommands", it) ||
        !BSON_ITER_HOLDS_ARRAY(&it))
        return error(9, "failCommand needs data.failCommands");
    bson_iter_recurse(&it, &el);
    while (bson_iter_next(&el))
        if (BSON_ITER_HOLDS_UTF8(&el))
            fp.commands.emplace_back(bson_iter_utf8(&el, nullptr));
    if (auto code = get_int(data, "errorCode"))
        fp.error_code = static_cast<int>(*code);
    if (find_field(data, "errorLabels", it) && BSON_ITER_HOLDS_ARRAY(&it)) {
        fp.labels.emplace();
        bson_iter_recurse(&it, &el);
        while (bson_iter_next(&el))
            if (BSON_ITER_HOLDS_UTF8(&el))
                fp.labels->emplace_back(bson_iter_utf8(&el, nullptr));
    }
    fp.close_connection = get_bool(data, "closeConnection", false);
    if (get_bool(data, "blockConnection", false))
        fp.block_ms = static_cast<int>(
            std::clamp<std::int64_t>(get_int(data, "blockTimeMS").value_or(0), 0, 3'600'000));
    if (find_field(data, "appName", it) && BSON_ITER_HOLDS_UTF8(&it))
        fp.app_name = bson_iter_utf8(&it, nullptr);
    bson_t wce;
    if (get_doc(data, "writeConcernError", wce))
        fp.write_concern_error = copy_bson(&wce);
    if (!fp.error_code && !fp.close_connection && fp.block_ms == 0 && !fp.write_concern_error)
        return error(2,
                     "failCommand needs errorCode, closeConnection, blockConnection or "
                     "writeConcernError");
    fp.active = true;
    current = std::move(fp);
    return ok(make_bson());
}

outcome command_processor::cmd_generate(const request& req, client_info&, exec_context&) {
    // {mongosimGenerate: <coll>, count: N, size: bytes}: N inserts of {_id, seq, payload}, each a
    // real document and a real insert event, without N round trips.
    const std::string name = target_collection(req);
    if (!valid_collection_name(name))
        return error(73, "Invalid collection name: '" + name + "'");
    const std::int64_t count = get_int(*req.command, "count").value_or(0);
    const std::int64_t size = get_int(*req.command, "size").value_or(64);
    if (count < 0 || count > 10'000'000 || size < 0 || size > 1'000'000)
        return error(2, "count must be in [0, 1e7] and size in [0, 1e6]");
    collection& c = obtain(req.db, name);
    const std::string payload(static_cast<std::size_t>(size), 'x');
    for (std::int64_t i = 0; i < count; ++i) {
        bson_ptr d = make_bson();
        bson_oid_t oid;
        bson_oid_init(&oid, nullptr);
        BSON_APPEND_OID(d.get(), "_id", &oid);
        BSON_APPEND_INT64(d.get(), "seq", i);
        bson_append_utf8(d.get(), "payload", 7, payload.data(), static_cast<int>(payload.size()));
        shared_doc doc = share(std::move(d));
        if (auto f = c.insert(doc))
            return error(*f);
        event_record e;
        e.op = op_type::insert;
        e.db = req.db;
        e.coll = name;
        e.document_key = make_key(*doc);
        e.full_document = std::move(doc);
        record(std::move(e));
    }
    bson_ptr r = make_bson();
    BSON_APPEND_INT64(r.get(), "n", count);
    return ok(std::move(r));
}

}  // namespace mongosim
