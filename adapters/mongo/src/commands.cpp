#include <penne/mongo/commands.hpp>

#include <penne/detail/bson_layout.hpp>

#include <penne/version.hpp>

#include <sys/utsname.h>

#include <algorithm>
#include <cstring>
#include <string>

namespace penne::mongo {
namespace {

int klen(std::string_view s) noexcept {
    return static_cast<int>(s.size());
}

void append_utf8(bson_t* b, std::string_view key, std::string_view value) {
    bson_append_utf8(b, key.data(), klen(key), value.data(), klen(value));
}

void append_db(bson_t* b, std::string_view db) {
    append_utf8(b, "$db", db);
}

void append_string_array(bson_t* parent, std::string_view key,
                         std::span<const std::string> values) {
    bson_t arr;
    bson_append_array_begin(parent, key.data(), klen(key), &arr);
    for (std::size_t i = 0; i < values.size(); ++i) {
        std::string idx = std::to_string(i);
        append_utf8(&arr, idx, values[i]);
    }
    bson_append_array_end(parent, &arr);
}

std::optional<cluster_time> as_timestamp(const bson_iter_t& it) noexcept {
    if (!BSON_ITER_HOLDS_TIMESTAMP(&it))
        return std::nullopt;
    cluster_time t;
    bson_iter_timestamp(&it, &t.seconds, &t.increment);
    return t;
}

error_code malformed_reply() noexcept {
    return make_error_code(client_errc::malformed_reply);
}

}  // namespace

client_metadata client_metadata::from_system(std::string app_name) {
    client_metadata m;
    m.driver_version = PENNE_VERSION_STRING;
    m.app_name = std::move(app_name);
    m.platform = "C++20 Boost.Asio";
    struct utsname u {};
    if (uname(&u) == 0) {
        m.os_type = u.sysname;
        m.os_name = u.sysname;
        m.architecture = u.machine;
    } else {
        m.os_type = "unknown";
    }
    return m;
}

document make_hello(const client_metadata& meta, hello_form form,
                    std::string_view sasl_supported_user, std::span<const std::string> compression,
                    byte_view speculative_auth) {
    document d;
    bson_t* b = d.get();
    if (form == hello_form::hello) {
        BSON_APPEND_INT32(b, "hello", 1);
    } else {
        BSON_APPEND_INT32(b, "isMaster", 1);
    }
    BSON_APPEND_BOOL(b, "helloOk", true);
    bson_t client, driver, os;
    BSON_APPEND_DOCUMENT_BEGIN(b, "client", &client);
    if (!meta.app_name.empty()) {
        bson_t app;
        BSON_APPEND_DOCUMENT_BEGIN(&client, "application", &app);
        append_utf8(&app, "name", meta.app_name);
        bson_append_document_end(&client, &app);
    }
    BSON_APPEND_DOCUMENT_BEGIN(&client, "driver", &driver);
    append_utf8(&driver, "name", meta.driver_name);
    append_utf8(&driver, "version", meta.driver_version);
    bson_append_document_end(&client, &driver);
    BSON_APPEND_DOCUMENT_BEGIN(&client, "os", &os);
    append_utf8(&os, "type", meta.os_type.empty() ? std::string_view("unknown") : meta.os_type);
    if (!meta.os_name.empty())
        append_utf8(&os, "name", meta.os_name);
    if (!meta.architecture.empty())
        append_utf8(&os, "architecture", meta.architecture);
    bson_append_document_end(&client, &os);
    if (!meta.platform.empty())
        append_utf8(&client, "platform", meta.platform);
    bson_append_document_end(b, &client);
    if (!sasl_supported_user.empty())
        append_utf8(b, "saslSupportedMechs", sasl_supported_user);
    if (!compression.empty())
        append_string_array(b, "compression", compression);
    if (!speculative_auth.empty())
        append_document(b, "speculativeAuthenticate", speculative_auth);
    if (form != hello_form::legacy_query)
        append_db(b, "admin");
    return d;
}

document make_role_check(bool is_master) {
    document d;
    bson_t* b = d.get();
    BSON_APPEND_INT32(b, is_master ? "isMaster" : "hello", 1);
    append_db(b, "admin");
    return d;
}

std::string_view to_string(full_document_mode m) noexcept {
    switch (m) {
        case full_document_mode::server_default:
            return "default";
        case full_document_mode::update_lookup:
            return "updateLookup";
        case full_document_mode::when_available:
            return "whenAvailable";
        case full_document_mode::required:
            return "required";
    }
    return "default";
}

std::optional<full_document_mode> parse_full_document_mode(std::string_view s) noexcept {
    for (auto m : {full_document_mode::server_default, full_document_mode::update_lookup,
                   full_document_mode::when_available, full_document_mode::required}) {
        if (s == to_string(m))
            return m;
    }
    return std::nullopt;
}

std::string_view to_string(before_change_mode m) noexcept {
    switch (m) {
        case before_change_mode::server_default:
            return "default";
        case before_change_mode::off:
            return "off";
        case before_change_mode::when_available:
            return "whenAvailable";
        case before_change_mode::required:
            return "required";
    }
    return "default";
}

std::optional<before_change_mode> parse_before_change_mode(std::string_view s) noexcept {
    for (auto m : {before_change_mode::server_default, before_change_mode::off,
                   before_change_mode::when_available, before_change_mode::required}) {
        if (s == to_string(m))
            return m;
    }
    return std::nullopt;
}

document make_change_stream_aggregate(const change_stream_spec& spec) {
    using level = change_stream_spec::level;
    document d;
    bson_t* b = d.get();
    if (spec.kind == level::collection) {
        append_utf8(b, "aggregate", spec.coll);
    } else {
        BSON_APPEND_INT32(b, "aggregate", 1);
    }

    bson_t pipeline, stage, cs;
    BSON_APPEND_ARRAY_BEGIN(b, "pipeline", &pipeline);
    int index = 0;
    auto next_key = [&index] { return std::to_string(index++); };

    std::string key = next_key();
    bson_append_document_begin(&pipeline, key.c_str(), klen(key), &stage);
    BSON_APPEND_DOCUMENT_BEGIN(&stage, "$changeStream", &cs);
    if (spec.full_document != full_document_mode::server_default)
        append_utf8(&cs, "fullDocument", to_string(spec.full_document));
    if (spec.full_document_before_change != before_change_mode::server_default)
        append_utf8(&cs, "fullDocumentBeforeChange", to_string(spec.full_document_before_change));
    if (spec.show_expanded_events)
        BSON_APPEND_BOOL(&cs, "showExpandedEvents", true);
    if (spec.resume_after && !spec.resume_after->empty()) {
        append_document(&cs, "resumeAfter", spec.resume_after->bytes());
    } else if (spec.start_after && !spec.start_after->empty()) {
        append_document(&cs, "startAfter", spec.start_after->bytes());
    } else if (spec.start_at_operation_time) {
        BSON_APPEND_TIMESTAMP(&cs, "startAtOperationTime", spec.start_at_operation_time->seconds,
                              spec.start_at_operation_time->increment);
    }
    if (spec.kind == level::deployment)
        BSON_APPEND_BOOL(&cs, "allChangesForCluster", true);
    bson_append_document_end(&stage, &cs);
    bson_append_array_end(&pipeline, &stage);

    if (spec.kind != level::collection &&
        (!spec.include_collections.empty() || !spec.exclude_collections.empty())) {
        // {$match: {$or: [{"ns.coll": {$exists: false}}, {"ns.coll": {$in|$nin: [...]}}]}}
        bson_t match_stage, match, ors, alt0, alt1, exists, cond;
        key = next_key();
        bson_append_document_begin(&pipeline, key.c_str(), klen(key), &match_stage);
        BSON_APPEND_DOCUMENT_BEGIN(&match_stage, "$match", &match);
        BSON_APPEND_ARRAY_BEGIN(&match, "$or", &ors);
        BSON_APPEND_DOCUMENT_BEGIN(&ors, "0", &alt0);
        BSON_APPEND_DOCUMENT_BEGIN(&alt0, "ns.coll", &exists);
        BSON_APPEND_BOOL(&exists, "$exists", false);
        bson_append_document_end(&alt0, &exists);
        bson_append_document_end(&ors, &alt0);
        BSON_APPEND_DOCUMENT_BEGIN(&ors, "1", &alt1);
        BSON_APPEND_DOCUMENT_BEGIN(&alt1, "ns.coll", &cond);
        if (!spec.include_collections.empty())
            append_string_array(&cond, "$in", spec.include_collections);
        if (!spec.exclude_collections.empty())
            append_string_array(&cond, "$nin", spec.exclude_collections);
        bson_append_document_end(&alt1, &cond);
        bson_append_document_end(&ors, &alt1);
        bson_append_array_end(&match, &ors);
        bson_append_document_end(&match_stage, &match);
        bson_append_array_end(&pipeline, &match_stage);
    }
    for (const auto& extra : spec.extra_stages) {
        key = next_key();
        append_document(&pipeline, key, extra.bytes());
    }
    if (spec.split_large_events) {
        // Must be the last stage of the pipeline.
        bson_t split, empty;
        key = next_key();
        bson_append_document_begin(&pipeline, key.c_str(), klen(key), &split);
        BSON_APPEND_DOCUMENT_BEGIN(&split, "$changeStreamSplitLargeEvent", &empty);
        bson_append_document_end(&split, &empty);
        bson_append_document_end(&pipeline, &split);
    }
    bson_append_array_end(b, &pipeline);

    bson_t cursor;
    BSON_APPEND_DOCUMENT_BEGIN(b, "cursor", &cursor);
    if (spec.batch_size > 0)
        BSON_APPEND_INT32(&cursor, "batchSize", spec.batch_size);
    bson_append_document_end(b, &cursor);
    if (!spec.read_preference.empty() && spec.read_preference != "primary") {
        bson_t rp;
        BSON_APPEND_DOCUMENT_BEGIN(b, "$readPreference", &rp);
        append_utf8(&rp, "mode", spec.read_preference);
        bson_append_document_end(b, &rp);
    }
    append_db(b, spec.kind == level::deployment ? std::string_view("admin") : spec.db);
    return d;
}

std::pair<std::string_view, std::string_view> split_namespace(std::string_view ns) noexcept {
    auto dot = ns.find('.');
    if (dot == std::string_view::npos)
        return {ns, {}};
    return {ns.substr(0, dot), ns.substr(dot + 1)};
}

document make_get_more(std::int64_t cursor_id, std::string_view ns,
                       std::chrono::milliseconds max_time, std::int32_t batch_size) {
    auto [db, coll] = split_namespace(ns);
    document d;
    bson_t* b = d.get();
    BSON_APPEND_INT64(b, "getMore", cursor_id);
    append_utf8(b, "collection", coll);
    if (batch_size > 0)
        BSON_APPEND_INT32(b, "batchSize", batch_size);
    if (max_time.count() > 0)
        BSON_APPEND_INT64(b, "maxTimeMS", max_time.count());
    append_db(b, db);
    return d;
}

document make_kill_cursors(std::string_view ns, std::span<const std::int64_t> cursor_ids) {
    auto [db, coll] = split_namespace(ns);
    document d;
    bson_t* b = d.get();
    append_utf8(b, "killCursors", coll);
    bson_t arr;
    BSON_APPEND_ARRAY_BEGIN(b, "cursors", &arr);
    for (std::size_t i = 0; i < cursor_ids.size(); ++i) {
        std::string k = std::to_string(i);
        bson_append_int64(&arr, k.c_str(), klen(k), cursor_ids[i]);
    }
    bson_append_array_end(b, &arr);
    append_db(b, db);
    return d;
}

document make_end_sessions(std::span<const byte_view> session_ids) {
    document d;
    bson_t* b = d.get();
    bson_t arr;
    BSON_APPEND_ARRAY_BEGIN(b, "endSessions", &arr);
    for (std::size_t i = 0; i < session_ids.size(); ++i) {
        append_document(&arr, std::to_string(i), session_ids[i]);
    }
    bson_append_array_end(b, &arr);
    append_db(b, "admin");
    return d;
}

bool command_reply::has_error_label(std::string_view label) const noexcept {
    if (error_labels.empty())
        return false;
    bson_iter_t it;
    if (!bson_iter_init_from_data(&it, error_labels.data(), error_labels.size()))
        return false;
    while (bson_iter_next(&it)) {
        if (auto s = as_string(it); s && *s == label)
            return true;
    }
    return false;
}

error_code parse_reply(byte_view body, command_reply& out) {
    out = command_reply{};
    out.body = body;
    bson_iter_t it;
    if (!is_document(body) || !bson_iter_init_from_data(&it, body.data(), body.size()))
        return malformed_reply();
    bool have_ok = false;
    while (bson_iter_next(&it)) {
        std::string_view key(bson_iter_key(&it), bson_iter_key_len(&it));
        if (key == "ok") {
            auto v = as_truthy(it);
            if (!v)
                return malformed_reply();
            out.ok = *v;
            have_ok = true;
        } else if (key == "errmsg") {
            if (auto s = as_string(it))
                out.errmsg = *s;
        } else if (key == "code") {
            if (auto v = as_integer(it))
                out.code = static_cast<std::int32_t>(*v);
        } else if (key == "codeName") {
            if (auto s = as_string(it))
                out.code_name = *s;
        } else if (key == "errorLabels") {
            if (auto d = as_document(it))
                out.error_labels = *d;
        } else if (key == "operationTime") {
            out.operation_time = as_timestamp(it);
        } else if (key == "cursor") {
            auto cdoc = as_document(it);
            if (!cdoc)
                return malformed_reply();
            bson_iter_t c;
            if (!bson_iter_init_from_data(&c, cdoc->data(), cdoc->size()))
                return malformed_reply();
            cursor_view cur;
            bool have_id = false, have_batch = false;
            while (bson_iter_next(&c)) {
                std::string_view ck(bson_iter_key(&c), bson_iter_key_len(&c));
                if (ck == "id") {
                    auto v = as_integer(c);
                    if (!v)
                        return malformed_reply();
                    cur.id = *v;
                    have_id = true;
                } else if (ck == "ns") {
                    if (auto s = as_string(c))
                        cur.ns = *s;
                } else if (ck == "firstBatch" || ck == "nextBatch") {
                    if (!BSON_ITER_HOLDS_ARRAY(&c))
                        return malformed_reply();
                    cur.batch = *as_document(c);
                    cur.first_batch = ck == "firstBatch";
                    have_batch = true;
                } else if (ck == "postBatchResumeToken") {
                    if (auto d = as_document(c))
                        cur.post_batch_resume_token = *d;
                }
            }
            if (!have_id || !have_batch)
                return malformed_reply();
            out.cursor = cur;
        }
    }
    // A truncated element list stops the iterator early; treat it as corruption.
    if (it.err_off != 0)
        return malformed_reply();
    if (!have_ok)
        return malformed_reply();
    return {};
}

error_code parse_hello(byte_view body, hello_reply& out) {
    out = hello_reply{};
    bson_iter_t it;
    if (!is_document(body) || !bson_iter_init_from_data(&it, body.data(), body.size()))
        return malformed_reply();
    auto strings = [](const bson_iter_t& arr_it, std::vector<std::string>& dst) {
        if (auto arr = as_document(arr_it)) {
            bson_iter_t a;
            if (bson_iter_init_from_data(&a, arr->data(), arr->size())) {
                while (bson_iter_next(&a)) {
                    if (auto s = as_string(a))
                        dst.emplace_back(*s);
                }
            }
        }
    };
    bool legacy_master = false;
    while (bson_iter_next(&it)) {
        std::string_view key(bson_iter_key(&it), bson_iter_key_len(&it));
        if (key == "isWritablePrimary") {
            out.writable_primary = as_truthy(it).value_or(false);
        } else if (key == "ismaster") {
            legacy_master = as_truthy(it).value_or(false);
        } else if (key == "secondary") {
            out.secondary = as_truthy(it).value_or(false);
        } else if (key == "helloOk") {
            out.hello_ok = as_truthy(it).value_or(false);
        } else if (key == "setName") {
            out.set_name = as_string(it).value_or("");
        } else if (key == "primary") {
            out.primary = as_string(it).value_or("");
        } else if (key == "me") {
            out.me = as_string(it).value_or("");
        } else if (key == "hosts") {
            strings(it, out.hosts);
        } else if (key == "saslSupportedMechs") {
            strings(it, out.sasl_supported_mechs);
        } else if (key == "compression") {
            strings(it, out.compression);
        } else if (key == "speculativeAuthenticate") {
            if (auto doc = as_document(it); doc && BSON_ITER_HOLDS_DOCUMENT(&it))
                out.speculative_authenticate.assign(doc->begin(), doc->end());
        } else if (key == "minWireVersion") {
            out.min_wire_version = static_cast<std::int32_t>(as_integer(it).value_or(0));
        } else if (key == "maxWireVersion") {
            out.max_wire_version = static_cast<std::int32_t>(as_integer(it).value_or(0));
        } else if (key == "maxMessageSizeBytes") {
            out.max_message_size =
                static_cast<std::int32_t>(as_integer(it).value_or(out.max_message_size));
        } else if (key == "maxBsonObjectSize") {
            out.max_bson_object_size =
                static_cast<std::int32_t>(as_integer(it).value_or(out.max_bson_object_size));
        }
    }
    // Servers before 4.4.2 (and isMaster replies) only say `ismaster`.
    out.writable_primary = out.writable_primary || legacy_master;
    if (out.max_message_size < static_cast<std::int32_t>(1024))
        return malformed_reply();
    return {};
}

// ---- change events ----------------------------------------------------------------------
// A getMore reply carries thousands of events and the engine needs six fields of each, so
// the top level of an event is scanned here directly instead of through libbson's iterator
// (a generic per-element state machine: about a fifth of a microsecond per event, a few
// percent of penne's whole cost per event). The checks are the structural ones
// bson_iter_next makes: every element lies inside its document, and strings and nested
// documents carry lengths that fit and their terminators. Values the engine does not read
// are only skipped; the encoder checks the whole event again when it writes it.
namespace {

using penne::detail::bson_cstring_size;
using penne::detail::bson_document_size;
using penne::detail::bson_le32;
using penne::detail::bson_le64;
using penne::detail::bson_string_size;
using penne::detail::bson_value_size;
constexpr std::size_t bad_size = penne::detail::bson_npos;

// Calls on_element(type, key, value, value_size) for each element of the document `doc`
// (whose own length and terminator the caller checked); false when an element is malformed
// or on_element returns false.
template <class F>
bool for_each_element(byte_view doc, F&& on_element) {
    const std::uint8_t* p = doc.data();
    const std::size_t end = doc.size() - 1;  // the terminating NUL
    std::size_t pos = 4;
    while (pos < end) {
        const std::uint8_t type = p[pos++];
        // Keys are short: a plain loop beats a call to memchr.
        std::size_t key_end = pos;
        while (key_end < end && p[key_end] != 0)
            ++key_end;
        if (key_end == end)
            return false;
        const std::string_view key(reinterpret_cast<const char*>(p + pos), key_end - pos);
        pos = key_end + 1;
        const std::size_t n = bson_value_size(type, p + pos, end - pos);
        if (n == bad_size)
            return false;
        if (!on_element(type, key, p + pos, n))
            return false;
        pos += n;
    }
    return true;
}

std::string_view string_value(const std::uint8_t* v, std::size_t n) noexcept {
    return {reinterpret_cast<const char*>(v + 4), n - 5};  // without the length and the NUL
}

// `out` must be a value-initialized change_event (the scan only sets what it finds).
error_code scan_change_event(byte_view doc, change_event& out, bool& split) {
    split = false;
    out.raw = doc;
    bool no_token = false;
    const bool ok = for_each_element(doc, [&](std::uint8_t type, std::string_view key,
                                              const std::uint8_t* v, std::size_t n) {
        switch (key.size()) {
            case 3:
                if (key == "_id") {
                    if (type != 0x03) {
                        no_token = true;
                        return false;
                    }
                    out.token = byte_view(v, n);
                }
                break;
            case 2:
                if (key == "ns" && type == 0x03) {
                    // A malformed ns leaves db/coll empty, as libbson's iterator would.
                    for_each_element(byte_view(v, n), [&](std::uint8_t t, std::string_view k,
                                                          const std::uint8_t* nv, std::size_t nn) {
                        if (k == "db")
                            out.db = t == 0x02 ? string_value(nv, nn) : std::string_view();
                        else if (k == "coll")
                            out.coll = t == 0x02 ? string_value(nv, nn) : std::string_view();
                        return true;
                    });
                }
                break;
            case 8:
                if (type == 0x09 && key == "wallTime")
                    out.wall_time_ms = static_cast<std::int64_t>(bson_le64(v));
                break;
            case 10:
                if (key == "splitEvent")
                    split = true;
                break;
            case 11:
                if (type == 0x11 && key == "clusterTime") {
                    out.time.increment = bson_le32(v);
                    out.time.seconds = bson_le32(v + 4);
                }
                break;
            case 13:
                if (type == 0x02 && key == "operationType")
                    out.operation = string_value(v, n);
                break;
            default:
                break;
        }
        return true;
    });
    if (no_token)
        return make_error_code(client_errc::missing_resume_token);
    if (!ok)
        return malformed_reply();
    if (out.token.empty())
        return make_error_code(client_errc::missing_resume_token);
    return {};
}

}  // namespace

error_code parse_change_event(byte_view doc, change_event& out) {
    out = change_event{};
    if (!is_document(doc)) {
        out.raw = doc;
        return malformed_reply();
    }
    bool split = false;
    return scan_change_event(doc, out, split);
}

error_code parse_change_events(byte_view batch_array, std::vector<change_event>& out,
                               std::size_t* split_events) {
    if (!is_document(batch_array))
        return malformed_reply();
    error_code ec;
    std::size_t splits = 0;
    // A 16 MiB reply has left the core's caches by the time the kernel finished copying it
    // in, and the scan reads only a few lines of each event, at distances the hardware
    // prefetcher cannot follow: without help it waits on memory two or three times per
    // event. Ask for every line a few events ahead of the scan instead.
    constexpr std::size_t prefetch_ahead = 4096;
    const std::uint8_t* prefetched = batch_array.data();
    const std::uint8_t* const array_end = batch_array.data() + batch_array.size();
    const bool ok = for_each_element(batch_array, [&](std::uint8_t type, std::string_view,
                                                      const std::uint8_t* v, std::size_t n) {
        if (type != 0x03)
            return false;
        const std::uint8_t* const want =
            v + n +
            std::min<std::size_t>(prefetch_ahead, static_cast<std::size_t>(array_end - (v + n)));
        for (; prefetched < want; prefetched += 64)
            __builtin_prefetch(prefetched);
        change_event& ev = out.emplace_back();  // value-initialized, as the scan expects
        bool split = false;
        ec = scan_change_event(byte_view(v, n), ev, split);
        if (ec)
            out.pop_back();
        splits += split ? 1 : 0;
        return !ec;
    });
    if (ec)
        return ec;
    if (!ok)
        return malformed_reply();
    if (split_events)
        *split_events = splits;
    return {};
}

}  // namespace penne::mongo
