#pragma once
// Change events put together from parts for the formats tests (unit and read-back), and the
// small helpers those tests share: JSON → BSON through libbson, the change_event view of raw
// bytes, the rigatoni layout's compact JSON, and the JSON report a node reader writes.
//
// Header-only test code; everything is inline in penne::formats::testing, next to
// bson_corpus.hpp (whose bson_ptr and bytes_of it uses). Not thread-safe beyond what libbson
// is; a change_event from event_of() borrows the bytes it was made from.

#include <penne/encoder.hpp>
#include <penne/event.hpp>
#include <penne/formats/ejson.hpp>

#include "bson_corpus.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace penne::formats::testing {

using event_list = std::vector<std::vector<std::uint8_t>>;

// Extended JSON parsed by libbson; a parse failure fails the test (and gives a null pointer).
inline bson_ptr from_json(const char* json) {
    bson_error_t err;
    bson_ptr b(bson_new_from_json(reinterpret_cast<const std::uint8_t*>(json), -1, &err));
    EXPECT_TRUE(b) << err.message << ": " << json;
    return b;
}

// An event put together from parts; a null (or unset) part is left out. The documents are
// Extended JSON. The defaults make an insert into shop.orders with a wall time.
struct event_parts {
    const char* op = "insert";
    const char* db = "shop";  // null: no ns at all
    const char* coll = "orders";
    std::uint32_t secs = 1700000000;  // 2023-11-14T22:13:20Z
    std::uint32_t inc = 7;
    std::optional<std::int64_t> wall = 1700000000123;
    const char* document_key = R"({"_id": 42})";
    const char* full_document = nullptr;
    const bson_t* full_document_bson = nullptr;  // a document already built, instead
    bool full_document_null = false;             // fullDocument: null (a lookup that found nothing)
    const char* update_description = nullptr;
    const char* before_change = nullptr;  // fullDocumentBeforeChange
    const char* lsid = nullptr;
    std::optional<std::int64_t> txn;
    std::string token = "8265";  // the resume token's _data
};

// The BSON bytes of the event, fields in the order MongoDB sends them.
inline std::vector<std::uint8_t> make_event(const event_parts& p) {
    bson_ptr b(bson_new());
    bson_t sub;
    bson_append_document_begin(b.get(), "_id", 3, &sub);
    bson_append_utf8(&sub, "_data", 5, p.token.c_str(), -1);
    bson_append_document_end(b.get(), &sub);
    bson_append_utf8(b.get(), "operationType", -1, p.op, -1);
    bson_append_timestamp(b.get(), "clusterTime", -1, p.secs, p.inc);
    if (p.wall)
        bson_append_date_time(b.get(), "wallTime", -1, *p.wall);
    if (p.db) {
        bson_append_document_begin(b.get(), "ns", 2, &sub);
        bson_append_utf8(&sub, "db", 2, p.db, -1);
        if (p.coll)
            bson_append_utf8(&sub, "coll", 4, p.coll, -1);
        bson_append_document_end(b.get(), &sub);
    }
    auto doc = [&](const char* key, const char* json) {
        if (json) {
            bson_ptr d = from_json(json);
            bson_append_document(b.get(), key, -1, d.get());
        }
    };
    doc("documentKey", p.document_key);
    doc("fullDocument", p.full_document);
    if (p.full_document_bson)
        bson_append_document(b.get(), "fullDocument", -1, p.full_document_bson);
    if (p.full_document_null)
        bson_append_null(b.get(), "fullDocument", -1);
    doc("updateDescription", p.update_description);
    doc("fullDocumentBeforeChange", p.before_change);
    doc("lsid", p.lsid);
    if (p.txn)
        bson_append_int64(b.get(), "txnNumber", -1, *p.txn);
    return bytes_of(b.get());
}

// A change_event over `raw` (which must outlive it), with no routing fields set.
inline change_event event_of(const std::vector<std::uint8_t>& raw) {
    change_event ev;
    ev.raw = byte_view(raw.data(), raw.size());
    return ev;
}

// An insert into db.coll (no ns when db is null) of `gen`'s next random document, which holds
// every BSON type; nothing when the Extended JSON walker refuses that document (it rejects
// some generated documents on purpose).
inline std::optional<std::vector<std::uint8_t>> random_insert(corpus_generator& gen, const char* db,
                                                              const char* coll) {
    bson_ptr doc = gen.random_document();
    std::string probe;
    if (!write_ejson(bson_get_data(doc.get()), doc->len, ejson_mode::relaxed, probe))
        return std::nullopt;
    event_parts p;
    p.token = "82AB";
    p.db = db;
    p.coll = coll;
    p.inc = gen.below(100);
    p.secs = gen.below(4000000000u);
    p.wall = std::nullopt;
    p.document_key = nullptr;
    p.full_document_bson = doc.get();
    return make_event(p);
}

// One object `key` of `f` holding `events`. Every event must be accepted: a refusal fails
// the test, or with `throw_on_refusal` throws std::runtime_error with the diagnostics (for
// callers under ASSERT_NO_THROW).
inline std::string encode_events(const encoder_factory& f, const event_list& events,
                                 std::string_view key, bool throw_on_refusal = false) {
    auto enc = f.open(key);
    diagnostics diag;
    for (const auto& e : events) {
        const error_code ec = enc->append(event_of(e), diag);
        if (ec && throw_on_refusal)
            throw std::runtime_error(diag.message);
        EXPECT_FALSE(ec) << diag.message;
    }
    std::string out;
    enc->finish(out);
    return out;
}

// What the rigatoni layout writes for a JSON column: libbson's JSON without the spaces
// outside strings.
inline std::string compact_json(std::string_view json) {
    std::string out;
    bool in_string = false, escaped = false;
    for (const char c : json) {
        if (in_string) {
            if (escaped) {
                escaped = false;
            } else if (c == '\\') {
                escaped = true;
            } else if (c == '"') {
                in_string = false;
            }
            out += c;
        } else if (c != ' ') {
            in_string = c == '"';
            out += c;
        }
    }
    return out;
}

// ---------------------------------------------------------------------------------------
// For the read-back tests, which run a node script and read the JSON report it writes.

// The first executable called `name` on PATH, then in `more_dirs` (':'-separated).
inline std::optional<std::string> find_on_path(const std::string& name,
                                               std::string_view more_dirs = {}) {
    const char* path = std::getenv("PATH");
    std::string search = path ? path : "";
    if (!more_dirs.empty())
        search.append(":").append(more_dirs);
    std::stringstream dirs(search);
    std::string dir;
    while (std::getline(dirs, dir, ':')) {
        if (dir.empty())
            continue;
        const std::string candidate = dir + "/" + name;
        if (::access(candidate.c_str(), X_OK) == 0)
            return candidate;
    }
    return std::nullopt;
}

// tests/integration/formats/node-parquet in the source tree ($PENNE_SOURCE_DIR).
inline std::string node_parquet_dir() {
    const char* src = std::getenv("PENNE_SOURCE_DIR");
    return std::string(src ? src : ".") + "/tests/integration/formats/node-parquet";
}

inline std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// A parsed JSON value (a reader's report), via libbson's JSON parser.
struct jvalue {
    bool null = false;
    std::string s;  // strings; numbers and bools spelled out
    std::vector<jvalue> items;
    std::vector<std::pair<std::string, jvalue>> fields;

    const jvalue& operator[](std::string_view key) const {
        for (const auto& [k, v] : fields) {
            if (k == key)
                return v;
        }
        throw std::runtime_error("missing key " + std::string(key));
    }
};

inline jvalue jvalue_of(bson_iter_t* it) {
    jvalue v;
    switch (bson_iter_type(it)) {
        case BSON_TYPE_NULL:
            v.null = true;
            break;
        case BSON_TYPE_UTF8: {
            std::uint32_t len = 0;
            const char* s = bson_iter_utf8(it, &len);
            v.s.assign(s, len);
            break;
        }
        case BSON_TYPE_BOOL:
            v.s = bson_iter_bool(it) ? "true" : "false";
            break;
        case BSON_TYPE_INT32:
        case BSON_TYPE_INT64:
            v.s = std::to_string(bson_iter_as_int64(it));
            break;
        case BSON_TYPE_DOCUMENT:
        case BSON_TYPE_ARRAY: {
            const bool array = bson_iter_type(it) == BSON_TYPE_ARRAY;
            bson_iter_t child;
            bson_iter_recurse(it, &child);
            while (bson_iter_next(&child)) {
                if (array) {
                    v.items.push_back(jvalue_of(&child));
                } else {
                    v.fields.emplace_back(bson_iter_key(&child), jvalue_of(&child));
                }
            }
            break;
        }
        default:
            throw std::runtime_error("unexpected JSON value in the reader's report");
    }
    return v;
}

inline jvalue parse_json(const std::string& text) {
    bson_error_t err;
    bson_ptr b(bson_new_from_json(reinterpret_cast<const std::uint8_t*>(text.data()),
                                  static_cast<ssize_t>(text.size()), &err));
    if (!b)
        throw std::runtime_error(std::string("report is not JSON: ") + err.message);
    jvalue root;
    bson_iter_t it;
    bson_iter_init(&it, b.get());
    while (bson_iter_next(&it))
        root.fields.emplace_back(bson_iter_key(&it), jvalue_of(&it));
    return root;
}

}  // namespace penne::formats::testing
