// The common tabular schema: every column of realistic change events of each operation type,
// the JSON columns against libbson's own Extended JSON, and the rejection of malformed events.
#include <penne/formats/tabular.hpp>

#include "bson_corpus.hpp"
#include "event_builder.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <optional>
#include <string>
#include <vector>

namespace penne::formats {
namespace {

using testing::bson_ptr;
using testing::bytes_of;
using testing::corpus_generator;
using testing::event_of;
using testing::from_json;

// libbson's rendering of a document: the reference the JSON columns must equal.
std::string libbson_json(const bson_t* b, ejson_mode mode) {
    char* s = mode == ejson_mode::relaxed ? bson_as_relaxed_extended_json(b, nullptr)
                                          : bson_as_canonical_extended_json(b, nullptr);
    std::string r(s);
    bson_free(s);
    return r;
}

// Builds events field by field, in the order MongoDB sends them.
class event_builder {
public:
    event_builder& id(const char* data = "826557B0E4000000072B022C0100296E5A1004") {
        bson_t sub;
        bson_append_document_begin(b_.get(), "_id", 3, &sub);
        bson_append_utf8(&sub, "_data", 5, data, -1);
        bson_append_document_end(b_.get(), &sub);
        return *this;
    }
    event_builder& op(const char* o) {
        bson_append_utf8(b_.get(), "operationType", -1, o, -1);
        return *this;
    }
    event_builder& cluster_time(std::uint32_t secs, std::uint32_t inc) {
        bson_append_timestamp(b_.get(), "clusterTime", -1, secs, inc);
        return *this;
    }
    event_builder& wall_time(std::int64_t ms) {
        bson_append_date_time(b_.get(), "wallTime", -1, ms);
        return *this;
    }
    event_builder& ns(const char* db, const char* coll) {
        bson_t sub;
        bson_append_document_begin(b_.get(), "ns", 2, &sub);
        bson_append_utf8(&sub, "db", 2, db, -1);
        if (coll)
            bson_append_utf8(&sub, "coll", 4, coll, -1);
        bson_append_document_end(b_.get(), &sub);
        return *this;
    }
    event_builder& doc(const char* key, const char* json) {
        bson_ptr d = from_json(json);
        bson_append_document(b_.get(), key, -1, d.get());
        return *this;
    }
    event_builder& null(const char* key) {
        bson_append_null(b_.get(), key, -1);
        return *this;
    }
    event_builder& int64(const char* key, std::int64_t v) {
        bson_append_int64(b_.get(), key, -1, v);
        return *this;
    }
    event_builder& int32(const char* key, std::int32_t v) {
        bson_append_int32(b_.get(), key, -1, v);
        return *this;
    }
    event_builder& utf8(const char* key, std::string_view v) {
        bson_append_utf8(b_.get(), key, -1, v.data(), static_cast<int>(v.size()));
        return *this;
    }
    event_builder& lsid() {
        bson_t sub;
        bson_append_document_begin(b_.get(), "lsid", 4, &sub);
        std::uint8_t uuid[16];
        for (int i = 0; i < 16; ++i)
            uuid[i] = static_cast<std::uint8_t>(i * 17);
        bson_append_binary(&sub, "id", 2, BSON_SUBTYPE_UUID, uuid, 16);
        std::uint8_t uid[32] = {};
        uid[0] = 0xe3;
        bson_append_binary(&sub, "uid", 3, BSON_SUBTYPE_BINARY, uid, 32);
        bson_append_document_end(b_.get(), &sub);
        return *this;
    }
    std::vector<std::uint8_t> bytes() const { return bytes_of(b_.get()); }

private:
    bson_ptr b_{bson_new()};
};

// A sub-document of `raw` rendered by libbson, or nullopt when the key is absent or null.
std::optional<std::string> expected_json(const std::vector<std::uint8_t>& raw, const char* key,
                                         ejson_mode mode = ejson_mode::relaxed) {
    bson_t b;
    EXPECT_TRUE(bson_init_static(&b, raw.data(), raw.size()));
    bson_iter_t it;
    if (!bson_iter_init_find(&it, &b, key) || !BSON_ITER_HOLDS_DOCUMENT(&it))
        return std::nullopt;
    std::uint32_t len;
    const std::uint8_t* data;
    bson_iter_document(&it, &len, &data);
    bson_t sub;
    EXPECT_TRUE(bson_init_static(&sub, data, len));
    return libbson_json(&sub, mode);
}

struct extracted {
    error_code ec;
    tabular_row row;
    std::string diag;
};

extracted extract(tabular_extractor& x, const std::vector<std::uint8_t>& raw) {
    extracted r;
    diagnostics diag;
    r.ec = x.extract(event_of(raw), r.row, diag);
    r.diag = diag.message;
    return r;
}

std::optional<std::string> str(const std::optional<std::string_view>& v) {
    if (!v)
        return std::nullopt;
    return std::string(*v);
}

// Every JSON column of `row` against libbson's rendering of the event's sub-documents.
void expect_json_columns(const tabular_row& row, const std::vector<std::uint8_t>& raw,
                         ejson_mode mode) {
    EXPECT_EQ(str(row.document_key), expected_json(raw, "documentKey", mode));
    EXPECT_EQ(str(row.full_document), expected_json(raw, "fullDocument", mode));
    EXPECT_EQ(str(row.update_description), expected_json(raw, "updateDescription", mode));
    EXPECT_EQ(str(row.full_document_before_change),
              expected_json(raw, "fullDocumentBeforeChange", mode));
    EXPECT_EQ(str(row.lsid), expected_json(raw, "lsid", mode));
    EXPECT_EQ(std::string(row.resume_token), expected_json(raw, "_id", mode));
}

TEST(Tabular, ColumnNamesInSchemaOrder) {
    ASSERT_EQ(tabular_column_names.size(), tabular_column_count);
    EXPECT_EQ(tabular_column_names[static_cast<int>(tabular_column::operation)], "operation");
    EXPECT_EQ(tabular_column_names[static_cast<int>(tabular_column::cluster_time_increment)],
              "cluster_time_increment");
    EXPECT_EQ(tabular_column_names[static_cast<int>(tabular_column::full_document_before_change)],
              "full_document_before_change");
    EXPECT_EQ(tabular_column_names[static_cast<int>(tabular_column::resume_token)], "resume_token");
}

TEST(Tabular, Insert) {
    const auto raw =
        event_builder()
            .id()
            .op("insert")
            .cluster_time(1700000000, 7)
            .wall_time(1700000000123)
            .doc("fullDocument",
                 R"({"_id": 42, "name": "Zoë", "n": {"$numberLong": "9007199254740993"},
                                  "at": {"$date": "2023-11-14T22:13:20.5Z"}})")
            .ns("shop", "orders")
            .doc("documentKey", R"({"_id": 42})")
            .bytes();
    tabular_extractor x;
    auto r = extract(x, raw);
    ASSERT_FALSE(r.ec) << r.diag;
    EXPECT_EQ(r.row.operation, "insert");
    EXPECT_EQ(str(r.row.database), "shop");
    EXPECT_EQ(str(r.row.collection), "orders");
    EXPECT_EQ(r.row.cluster_time_seconds, 1700000000u);
    EXPECT_EQ(r.row.cluster_time_increment, 7u);
    EXPECT_EQ(r.row.wall_time_ms, 1700000000123);
    EXPECT_EQ(str(r.row.document_key), R"({ "_id" : 42 })");
    EXPECT_EQ(str(r.row.full_document), R"({ "_id" : 42, "name" : "Zoë", "n" : 9007199254740993, )"
                                        R"("at" : { "$date" : "2023-11-14T22:13:20.500Z" } })");
    EXPECT_FALSE(r.row.update_description);
    EXPECT_FALSE(r.row.full_document_before_change);
    EXPECT_FALSE(r.row.txn_number);
    EXPECT_FALSE(r.row.lsid);
    EXPECT_EQ(r.row.resume_token, R"({ "_data" : "826557B0E4000000072B022C0100296E5A1004" })");
    expect_json_columns(r.row, raw, ejson_mode::relaxed);
}

TEST(Tabular, CanonicalModeWrapsNumbersAndDates) {
    const auto raw = event_builder()
                         .id()
                         .op("insert")
                         .cluster_time(1700000000, 1)
                         .ns("shop", "orders")
                         .doc("documentKey", R"({"_id": 42})")
                         .doc("fullDocument", R"({"_id": 42, "x": 1.5, "d": {"$date": 0}})")
                         .bytes();
    tabular_extractor x(ejson_mode::canonical);
    EXPECT_EQ(x.mode(), ejson_mode::canonical);
    auto r = extract(x, raw);
    ASSERT_FALSE(r.ec) << r.diag;
    EXPECT_EQ(str(r.row.document_key), R"({ "_id" : { "$numberInt" : "42" } })");
    expect_json_columns(r.row, raw, ejson_mode::canonical);
}

TEST(Tabular, UpdateInATransactionWithPreImage) {
    const auto raw = event_builder()
                         .id()
                         .op("update")
                         .cluster_time(1763789617, 3)
                         .wall_time(1763789617123)
                         .ns("shop", "orders")
                         .doc("documentKey", R"({"_id": {"$oid": "6557b0e4c0ffee0000000001"}})")
                         .doc("updateDescription",
                              R"({"updatedFields": {"status": "shipped", "items.2.qty": 3},
                                  "removedFields": ["coupon"], "truncatedArrays": []})")
                         .null("fullDocument")
                         .doc("fullDocumentBeforeChange", R"({"status": "paid"})")
                         .int64("txnNumber", 12)
                         .lsid()
                         .bytes();
    tabular_extractor x;
    auto r = extract(x, raw);
    ASSERT_FALSE(r.ec) << r.diag;
    EXPECT_EQ(r.row.operation, "update");
    EXPECT_EQ(r.row.wall_time_ms, 1763789617123);
    EXPECT_EQ(str(r.row.document_key), R"({ "_id" : { "$oid" : "6557b0e4c0ffee0000000001" } })");
    EXPECT_EQ(str(r.row.update_description),
              R"({ "updatedFields" : { "status" : "shipped", "items.2.qty" : 3 }, )"
              R"("removedFields" : [ "coupon" ], "truncatedArrays" : [  ] })");
    EXPECT_FALSE(r.row.full_document) << "a null fullDocument (lookup found nothing) is null";
    EXPECT_EQ(str(r.row.full_document_before_change), R"({ "status" : "paid" })");
    EXPECT_EQ(r.row.txn_number, 12);
    ASSERT_TRUE(r.row.lsid);
    EXPECT_NE(r.row.lsid->find(R"("$binary")"), std::string_view::npos);
    expect_json_columns(r.row, raw, ejson_mode::relaxed);
}

TEST(Tabular, ReplaceAndDelete) {
    tabular_extractor x;
    const auto replace = event_builder()
                             .id()
                             .op("replace")
                             .cluster_time(1700000001, 2)
                             .wall_time(1700000001000)
                             .ns("shop", "orders")
                             .doc("documentKey", R"({"_id": 7, "region": "eu"})")
                             .doc("fullDocument", R"({"_id": 7, "region": "eu", "v": 2})")
                             .bytes();
    auto r = extract(x, replace);
    ASSERT_FALSE(r.ec) << r.diag;
    EXPECT_EQ(r.row.operation, "replace");
    EXPECT_EQ(str(r.row.document_key), R"({ "_id" : 7, "region" : "eu" })");
    expect_json_columns(r.row, replace, ejson_mode::relaxed);

    const auto del = event_builder()
                         .id()
                         .op("delete")
                         .cluster_time(1700000002, 1)
                         .wall_time(1700000002000)
                         .ns("shop", "orders")
                         .doc("documentKey", R"({"_id": 7})")
                         .null("fullDocumentBeforeChange")
                         .bytes();
    r = extract(x, del);
    ASSERT_FALSE(r.ec) << r.diag;
    EXPECT_EQ(r.row.operation, "delete");
    EXPECT_EQ(str(r.row.document_key), R"({ "_id" : 7 })");
    EXPECT_FALSE(r.row.full_document);
    EXPECT_FALSE(r.row.full_document_before_change);
    EXPECT_FALSE(r.row.update_description);
    EXPECT_EQ(r.row.wall_time_ms, 1700000002000);
}

TEST(Tabular, DropDropDatabaseAndInvalidate) {
    tabular_extractor x;
    const auto drop = event_builder()
                          .id()
                          .op("drop")
                          .cluster_time(1700000003, 1)
                          .wall_time(1700000003000)
                          .ns("shop", "orders")
                          .bytes();
    auto r = extract(x, drop);
    ASSERT_FALSE(r.ec) << r.diag;
    EXPECT_EQ(r.row.operation, "drop");
    EXPECT_EQ(str(r.row.database), "shop");
    EXPECT_EQ(str(r.row.collection), "orders");
    EXPECT_FALSE(r.row.document_key);

    const auto drop_db = event_builder()
                             .id()
                             .op("dropDatabase")
                             .cluster_time(1700000004, 9)
                             .wall_time(1700000004000)
                             .ns("shop", nullptr)
                             .bytes();
    r = extract(x, drop_db);
    ASSERT_FALSE(r.ec) << r.diag;
    EXPECT_EQ(r.row.operation, "dropDatabase") << "spelled as MongoDB spells it";
    EXPECT_EQ(str(r.row.database), "shop");
    EXPECT_FALSE(r.row.collection);
    EXPECT_EQ(r.row.cluster_time_increment, 9u);

    // An invalidate event has no namespace and no wall time on older servers.
    const auto invalidate =
        event_builder().id().op("invalidate").cluster_time(1700000005, 1).bytes();
    r = extract(x, invalidate);
    ASSERT_FALSE(r.ec) << r.diag;
    EXPECT_EQ(r.row.operation, "invalidate");
    EXPECT_FALSE(r.row.database);
    EXPECT_FALSE(r.row.collection);
    EXPECT_FALSE(r.row.wall_time_ms);
    EXPECT_EQ(r.row.cluster_time_seconds, 1700000005u);
    expect_json_columns(r.row, invalidate, ejson_mode::relaxed);
}

TEST(Tabular, FieldsOutsideTheSchemaAreSkipped) {
    const auto raw = event_builder()
                         .id()
                         .op("rename")
                         .cluster_time(1700000006, 1)
                         .ns("shop", "orders")
                         .doc("to", R"({"db": "shop", "coll": "orders2"})")
                         .doc("operationDescription", R"({"dropTarget": {"$binary":
                              {"base64": "AAAAAAAAAAAAAAAAAAAAAA==", "subType": "04"}}})")
                         .int32("txnNumber", 5)
                         .utf8("extra", "ignored")
                         .bytes();
    tabular_extractor x;
    auto r = extract(x, raw);
    ASSERT_FALSE(r.ec) << r.diag;
    EXPECT_EQ(r.row.operation, "rename");
    EXPECT_EQ(str(r.row.collection), "orders");
    EXPECT_EQ(r.row.txn_number, 5) << "an int32 txnNumber widens";
}

TEST(Tabular, TheBufferIsReusedAcrossEvents) {
    corpus_generator gen(77);
    tabular_extractor x;
    for (int i = 0; i < 500; ++i) {
        const auto raw = bytes_of(gen.change_event().get());
        auto r = extract(x, raw);
        ASSERT_FALSE(r.ec) << r.diag;
        EXPECT_FALSE(r.row.operation.empty());
        EXPECT_EQ(str(r.row.database), "shop");
        expect_json_columns(r.row, raw, ejson_mode::relaxed);
    }
}

// --- malformed events ---

void expect_rejected(const std::vector<std::uint8_t>& raw, std::string_view reason) {
    tabular_extractor x;
    auto r = extract(x, raw);
    EXPECT_EQ(r.ec, make_error_code(penne::errc::unencodable_event)) << reason;
    EXPECT_NE(r.diag.find(reason), std::string::npos) << r.diag;
}

TEST(Tabular, RequiredFieldsAndTypes) {
    expect_rejected(event_builder().op("insert").cluster_time(1, 1).bytes(), "no '_id'");
    expect_rejected(event_builder().id().cluster_time(1, 1).bytes(), "no 'operationType'");
    expect_rejected(event_builder().id().op("insert").bytes(), "no 'clusterTime'");
    expect_rejected(event_builder().id().op("").cluster_time(1, 1).bytes(), "operationType");
    expect_rejected(event_builder().id().int32("operationType", 1).cluster_time(1, 1).bytes(),
                    "'operationType' is a BSON int32, expected string");
    expect_rejected(event_builder().id().op("insert").wall_time(5).bytes(), "no 'clusterTime'");
    {
        event_builder b;
        b.id().op("insert");
        expect_rejected(b.wall_time(1).int64("clusterTime", 1).bytes(),
                        "'clusterTime' is a BSON int64, expected timestamp");
    }
    expect_rejected(
        event_builder().id().op("insert").cluster_time(1, 1).utf8("fullDocument", "x").bytes(),
        "'fullDocument' is a BSON string, expected document or null");
    expect_rejected(
        event_builder().id().op("insert").cluster_time(1, 1).utf8("txnNumber", "x").bytes(),
        "'txnNumber' is a BSON string");
    expect_rejected(event_builder().id().op("insert").cluster_time(1, 1).op("update").bytes(),
                    "'operationType' appears twice");
    expect_rejected(event_builder().utf8("_id", "x").op("insert").cluster_time(1, 1).bytes(),
                    "'_id' is a BSON string, expected document");
}

TEST(Tabular, NamespaceStringsMustBeValidUtf8) {
    expect_rejected(
        event_builder().id().op("insert").cluster_time(1, 1).ns("sh\xc3", "orders").bytes(),
        "ns.db is not valid UTF-8");
    expect_rejected(
        event_builder().id().op("insert").cluster_time(1, 1).ns("shop", "\xed\xa0\x80").bytes(),
        "ns.coll is not valid UTF-8");
    // Non-ASCII names are fine. (The row views the event's bytes: keep them alive.)
    const auto raw = event_builder()
                         .id()
                         .op("insert")
                         .cluster_time(1, 1)
                         .ns("d\xc3\xa9p\xc3\xb4t", "\xe6\x9d\x8e\xf0\x9f\x98\x80")
                         .bytes();
    tabular_extractor x;
    auto r = extract(x, raw);
    ASSERT_FALSE(r.ec) << r.diag;
    EXPECT_EQ(str(r.row.collection), "\xe6\x9d\x8e\xf0\x9f\x98\x80");
}

TEST(Tabular, BrokenFramingIsRejected) {
    const auto good = event_builder()
                          .id()
                          .op("insert")
                          .cluster_time(1700000000, 1)
                          .ns("shop", "orders")
                          .doc("fullDocument", R"({"a": "b"})")
                          .bytes();
    auto trailing = good;
    trailing.push_back(0);
    expect_rejected(trailing, "not a valid BSON document");

    auto short_len = good;
    short_len[0] = static_cast<std::uint8_t>(short_len[0] - 1);
    expect_rejected(short_len, "not a valid BSON document");

    // The fullDocument's own length claims more than the event holds.
    auto inner = good;
    const std::size_t at = [&] {
        const char key[] = "fullDocument";
        auto it = std::search(inner.begin(), inner.end(), key, key + sizeof key);
        return static_cast<std::size_t>(it - inner.begin()) + sizeof key;
    }();
    inner[at] = 0x7f;
    expect_rejected(inner, "not a valid BSON document");

    // A nested document whose length fits but whose inside is broken: the walker notices.
    auto inside = good;
    inside[at + 4] = 0x42;  // unknown element type inside fullDocument
    expect_rejected(inside, "'fullDocument' is not a valid BSON document");
}

TEST(Tabular, TruncationsAndMutationsNeverReadOutOfRange) {
    corpus_generator gen(3);
    tabular_extractor x;
    for (int n = 0; n < 40; ++n) {
        const auto good = bytes_of(gen.change_event().get());
        for (std::size_t len = 0; len < good.size(); ++len) {
            // A copy of exactly `len` bytes, so a read past it is caught by ASan builds.
            std::vector<std::uint8_t> cut(good.begin(), good.begin() + len);
            auto r = extract(x, cut);
            EXPECT_TRUE(r.ec) << "truncated to " << len;
        }
        for (int m = 0; m < 200; ++m) {
            auto bad = good;
            bad[gen.below(static_cast<std::uint32_t>(bad.size()))] =
                static_cast<std::uint8_t>(gen.u64());
            auto r = extract(x, bad);
            if (!r.ec) {
                EXPECT_FALSE(r.row.operation.empty());
                EXPECT_FALSE(r.row.resume_token.empty());
            }
        }
    }
}

// --- ISO-8601 ---

std::string iso(std::int64_t ms) {
    std::string s;
    append_iso8601_ms(ms, s);
    return s;
}

// The same instant through the C library's calendar (years 0-9999 only).
std::string reference_iso(std::int64_t ms) {
    std::int64_t secs = ms / 1000, frac = ms % 1000;
    if (frac < 0) {
        frac += 1000;
        --secs;
    }
    const std::time_t t = static_cast<std::time_t>(secs);
    std::tm tm{};
    EXPECT_NE(gmtime_r(&t, &tm), nullptr);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<int>(frac));
    return buf;
}

TEST(Tabular, Iso8601Milliseconds) {
    EXPECT_EQ(iso(0), "1970-01-01T00:00:00.000Z");
    EXPECT_EQ(iso(-1), "1969-12-31T23:59:59.999Z");
    EXPECT_EQ(iso(1795325617123), "2026-11-22T05:33:37.123Z");
    EXPECT_EQ(iso(951782400000), "2000-02-29T00:00:00.000Z");
    EXPECT_EQ(iso(4107542400000), "2100-03-01T00:00:00.000Z");
    EXPECT_EQ(iso(253402300799999), "9999-12-31T23:59:59.999Z");
    EXPECT_EQ(iso(253402300800000), "+10000-01-01T00:00:00.000Z");
    EXPECT_EQ(iso(-62167219200000), "0000-01-01T00:00:00.000Z");
    EXPECT_EQ(iso(-62167219200001), "-00001-12-31T23:59:59.999Z");
    EXPECT_EQ(iso(INT64_MAX), "+292278994-08-17T07:12:55.807Z");
    EXPECT_EQ(iso(INT64_MIN), "-292275055-05-16T16:47:04.192Z");
    corpus_generator gen(11);
    for (int i = 0; i < 100000; ++i) {
        const std::int64_t ms =
            static_cast<std::int64_t>(gen.u64() % 315537897600000ULL) - 62167219200000LL;
        ASSERT_EQ(iso(ms), reference_iso(ms)) << ms;
    }
}

}  // namespace
}  // namespace penne::formats
