// The JSON lines encoder: one line per event, decodable back to the events, in the penne
// layout (the event as MongoDB sent it) and the rigatoni layout (Rigatoni's ChangeEvent).
#include <penne/formats/jsonl.hpp>
#include <penne/formats/tabular.hpp>

#include "bson_corpus.hpp"
#include "event_builder.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

namespace penne::formats {
namespace {

using testing::bson_ptr;
using testing::bytes_of;
using testing::corpus_generator;
using testing::encode_events;
using testing::event_of;
using testing::event_parts;
using testing::make_event;

// An event with the routing fields the change stream fills in (the encoder's messages name them).
change_event routed_event(const std::vector<std::uint8_t>& doc) {
    change_event ev = event_of(doc);
    ev.operation = "insert";
    ev.db = "shop";
    ev.coll = "orders";
    return ev;
}

std::vector<std::string> split_lines(const std::string& s) {
    std::vector<std::string> lines;
    std::size_t start = 0;
    while (start < s.size()) {
        std::size_t nl = s.find('\n', start);
        EXPECT_NE(nl, std::string::npos) << "every line ends in a newline";
        if (nl == std::string::npos)
            break;
        lines.push_back(s.substr(start, nl - start));
        start = nl + 1;
    }
    return lines;
}

bson_ptr parse_line(const std::string& line) {
    bson_error_t err;
    bson_ptr b(bson_new_from_json(reinterpret_cast<const std::uint8_t*>(line.data()),
                                  static_cast<ssize_t>(line.size()), &err));
    EXPECT_TRUE(b) << err.message << "\n" << line;
    return b;
}

TEST(Jsonl, Info) {
    jsonl_encoder_factory f;
    auto info = f.info();
    EXPECT_EQ(info.extension, "jsonl");
    EXPECT_EQ(info.content_type, "application/x-ndjson");
    EXPECT_FALSE(info.compresses_itself);
    EXPECT_EQ(f.options().mode, ejson_mode::relaxed);
}

TEST(Jsonl, AReservedBatchHoldsItsRoomAndWritesTheSameBytesWithoutGrowing) {
    corpus_generator gen(7, true);
    std::vector<std::vector<std::uint8_t>> docs;
    for (int i = 0; i < 500; ++i)
        docs.push_back(bytes_of(gen.change_event().get()));
    for (const jsonl_options& opts :
         {jsonl_options{}, jsonl_options{ejson_mode::relaxed, jsonl_layout::rigatoni}}) {
        jsonl_encoder_factory f(opts);
        auto grown = f.open("k");
        auto reserved = f.open("k");
        constexpr std::size_t room = 4 << 20;
        reserved->reserve(room);
        EXPECT_GE(reserved->held_bytes(), room);
        EXPECT_EQ(reserved->buffered_bytes(), 0u);
        diagnostics diag;
        for (const auto& d : docs) {
            ASSERT_FALSE(grown->append(routed_event(d), diag)) << diag.message;
            ASSERT_FALSE(reserved->append(routed_event(d), diag)) << diag.message;
        }
        ASSERT_LT(reserved->buffered_bytes(), room);
        EXPECT_EQ(reserved->held_bytes(), room);  // never grew
        std::string a, b;
        grown->finish(a);
        reserved->finish(b);
        EXPECT_EQ(a, b);
    }
}

TEST(Jsonl, CanonicalLinesDecodeToTheSameBsonBytes) {
    jsonl_encoder_factory f(jsonl_options{ejson_mode::canonical});
    auto enc = f.open("db/coll/key.jsonl");
    corpus_generator gen(5, true);
    std::vector<std::vector<std::uint8_t>> docs;
    for (int i = 0; i < 3000; ++i) {
        docs.push_back(bytes_of((i % 2 ? gen.change_event() : gen.random_document()).get()));
    }
    diagnostics diag;
    std::size_t last = 0;
    for (const auto& d : docs) {
        ASSERT_FALSE(enc->append(routed_event(d), diag)) << diag.message;
        EXPECT_GT(enc->buffered_bytes(), last);
        last = enc->buffered_bytes();
    }
    std::string out;
    enc->finish(out);
    EXPECT_EQ(out.size(), last);
    auto lines = split_lines(out);
    ASSERT_EQ(lines.size(), docs.size());
    for (std::size_t i = 0; i < docs.size(); ++i) {
        bson_ptr back = parse_line(lines[i]);
        ASSERT_TRUE(back);
        const auto again = bytes_of(back.get());
        if (again != docs[i]) {
            std::size_t k = 0;
            while (k < again.size() && k < docs[i].size() && again[k] == docs[i][k])
                ++k;
            ADD_FAILURE() << "differs at byte " << k << " of " << docs[i].size() << ": "
                          << lines[i].substr(0, 2000);
        }
    }
}

TEST(Jsonl, RelaxedLinesDecodeToEquivalentDocuments) {
    // Relaxed JSON drops the int32/int64/double distinction for small numbers, so compare
    // through libbson: decoding a line and printing it again must give the same line, and
    // the decoded change events keep their fields.
    jsonl_encoder_factory f;
    auto enc = f.open("k");
    corpus_generator gen(6, true);
    std::vector<std::vector<std::uint8_t>> docs;
    for (int i = 0; i < 3000; ++i)
        docs.push_back(bytes_of(gen.change_event().get()));
    diagnostics diag;
    for (const auto& d : docs)
        ASSERT_FALSE(enc->append(routed_event(d), diag));
    std::string out;
    enc->finish(out);
    auto lines = split_lines(out);
    ASSERT_EQ(lines.size(), docs.size());
    for (std::size_t i = 0; i < docs.size(); ++i) {
        bson_ptr back = parse_line(lines[i]);
        ASSERT_TRUE(back);
        char* again = bson_as_relaxed_extended_json(back.get(), nullptr);
        EXPECT_EQ(lines[i], again);
        bson_free(again);
        bson_t orig;
        ASSERT_TRUE(bson_init_static(&orig, docs[i].data(), docs[i].size()));
        bson_iter_t a, b;
        ASSERT_TRUE(bson_iter_init_find(&a, &orig, "operationType"));
        ASSERT_TRUE(bson_iter_init_find(&b, back.get(), "operationType"));
        EXPECT_STREQ(bson_iter_utf8(&a, nullptr), bson_iter_utf8(&b, nullptr));
        ASSERT_TRUE(bson_iter_init_find(&a, &orig, "clusterTime"));
        ASSERT_TRUE(bson_iter_init_find(&b, back.get(), "clusterTime"));
        std::uint32_t t1, i1, t2, i2;
        bson_iter_timestamp(&a, &t1, &i1);
        bson_iter_timestamp(&b, &t2, &i2);
        EXPECT_EQ(t1, t2);
        EXPECT_EQ(i1, i2);
    }
}

TEST(Jsonl, InvalidEventIsRefusedAndLeavesTheBatchUnchanged) {
    jsonl_encoder_factory f;
    auto enc = f.open("k");
    corpus_generator gen(8);
    auto good = bytes_of(gen.change_event().get());
    diagnostics diag;
    ASSERT_FALSE(enc->append(routed_event(good), diag));
    const std::size_t before = enc->buffered_bytes();

    auto bad = good;
    bad[bad.size() / 2] = 0xEE;  // breaks structure or UTF-8 somewhere in the middle
    bad[4] = 0x55;               // an unknown type byte for the first element
    change_event ev = routed_event(bad);
    ev.operation = "update";
    ev.coll = "invoices";
    error_code ec = enc->append(ev, diag);
    EXPECT_EQ(ec, penne::errc::unencodable_event);
    EXPECT_FALSE(is_retryable(ec));
    EXPECT_NE(diag.message.find("shop.invoices"), std::string::npos) << diag.message;
    EXPECT_NE(diag.message.find("update"), std::string::npos) << diag.message;
    EXPECT_EQ(enc->buffered_bytes(), before);

    ASSERT_FALSE(enc->append(routed_event(good), diag));
    std::string out;
    enc->finish(out);
    EXPECT_EQ(split_lines(out).size(), 2u);
}

TEST(Jsonl, DatabaseWideEventNamesTheDatabase) {
    jsonl_encoder_factory f;
    auto enc = f.open("k");
    std::vector<std::uint8_t> junk = {1, 2, 3};
    change_event ev = routed_event(junk);
    ev.coll = {};
    diagnostics diag;
    EXPECT_EQ(enc->append(ev, diag), penne::errc::unencodable_event);
    EXPECT_NE(diag.message.find(" shop "), std::string::npos) << diag.message;
}

TEST(Jsonl, OutputIsDeterministic) {
    jsonl_encoder_factory f;
    corpus_generator gen(9);
    std::vector<std::vector<std::uint8_t>> docs;
    for (int i = 0; i < 500; ++i)
        docs.push_back(bytes_of(gen.change_event().get()));
    std::string outs[2];
    for (auto& out : outs) {
        auto enc = f.open("same-key");
        diagnostics diag;
        for (const auto& d : docs)
            ASSERT_FALSE(enc->append(routed_event(d), diag));
        enc->finish(out);
    }
    EXPECT_EQ(outs[0], outs[1]);
    // Each line is exactly what libbson prints for the event.
    auto lines = split_lines(outs[0]);
    for (std::size_t i = 0; i < docs.size(); ++i) {
        bson_t b;
        ASSERT_TRUE(bson_init_static(&b, docs[i].data(), docs[i].size()));
        char* want = bson_as_relaxed_extended_json(&b, nullptr);
        EXPECT_EQ(lines[i], want);
        bson_free(want);
    }
}

// ---------------------------------------------------------------------------------------
// The rigatoni layout.

std::string encode(const jsonl_options& o, const std::vector<std::vector<std::uint8_t>>& events) {
    diagnostics diag;
    EXPECT_FALSE(validate(o, diag)) << diag.message;
    return encode_events(jsonl_encoder_factory(o), events, "shop/orders/k.jsonl");
}

jsonl_options rigatoni(ejson_mode mode = ejson_mode::relaxed) {
    jsonl_options o;
    o.mode = mode;
    o.layout = jsonl_layout::rigatoni;
    return o;
}

TEST(JsonlRigatoni, ExactLines) {
    event_parts insert;
    insert.full_document = R"({"_id": 42, "name": "a b, \"c\"", "n": {"$numberLong": "7"}})";
    // Dropped: Rigatoni's ChangeEvent has no wallTime, txnNumber, lsid or
    // fullDocumentBeforeChange.
    insert.txn = 5;
    insert.lsid = R"({"id": {"$binary": {"base64": "AAAAAAAAAAAAAAAAAAAAAA==", "subType": "04"}}})";
    insert.before_change = R"({"_id": 42, "n": 0})";
    event_parts update;
    update.op = "update";
    update.inc = 0;
    // MongoDB's order and an extra member; Rigatoni's struct order, the extra dropped.
    update.update_description =
        R"({"truncatedArrays": [{"field": "items", "newSize": 2}], "disambiguatedPaths": {},)"
        R"( "removedFields": ["old"], "updatedFields": {"x": 1, "s": "a, b"}})";
    update.full_document_null = true;  // a lookup that found nothing: left out
    event_parts drop_db;
    drop_db.op = "dropDatabase";
    drop_db.coll = nullptr;
    drop_db.document_key = nullptr;
    drop_db.inc = 1000;
    event_parts other;
    other.op = "createIndexes";
    other.inc = 45;
    other.db = nullptr;
    other.document_key = nullptr;
    event_parts awkward;
    awkward.op = "delete";
    awkward.coll = "q\"uote\\ tab\t nl\n \x01 \x7f caf\xc3\xa9";
    awkward.secs = 0;
    awkward.inc = 999;
    event_parts invalidate;
    invalidate.op = "invalidate";
    invalidate.db = nullptr;
    invalidate.document_key = nullptr;
    invalidate.secs = 4294967295u;
    invalidate.inc = 1;

    const std::string out =
        encode(rigatoni(), {make_event(insert), make_event(update), make_event(drop_db),
                            make_event(other), make_event(awkward), make_event(invalidate)});
    const std::string expected =
        R"({"operationType":"insert","ns":{"database":"shop","collection":"orders"},)"
        R"("documentKey":{"_id":42},"fullDocument":{"_id":42,"name":"a b, \"c\"","n":7},)"
        R"("clusterTime":"2023-11-14T22:13:20.007Z","_id":{"_data":"8265"}})"
        "\n"
        R"({"operationType":"update","ns":{"database":"shop","collection":"orders"},)"
        R"("documentKey":{"_id":42},"updateDescription":{"updatedFields":{"x":1,"s":"a, b"},)"
        R"("removedFields":["old"],"truncatedArrays":[{"field":"items","newSize":2}]},)"
        R"("clusterTime":"2023-11-14T22:13:20Z","_id":{"_data":"8265"}})"
        "\n"
        R"({"operationType":"dropdatabase","ns":{"database":"shop","collection":""},)"
        R"("clusterTime":"2023-11-14T22:13:20Z","_id":{"_data":"8265"}})"
        "\n"
        R"({"operationType":"createIndexes","ns":{"database":"","collection":""},)"
        R"("clusterTime":"2023-11-14T22:13:20.045Z","_id":{"_data":"8265"}})"
        "\n"
        R"({"operationType":"delete","ns":{"database":"shop",)"
        "\"collection\":\"q\\\"uote\\\\ tab\\t nl\\n \\u0001 \x7f caf\xc3\xa9\"},"
        R"("documentKey":{"_id":42},"clusterTime":"1970-01-01T00:00:00.999Z",)"
        R"("_id":{"_data":"8265"}})"
        "\n"
        R"({"operationType":"invalidate","ns":{"database":"","collection":""},)"
        R"("clusterTime":"2106-02-07T06:28:15.001Z","_id":{"_data":"8265"}})"
        "\n";
    EXPECT_EQ(out, expected);
}

TEST(JsonlRigatoni, UpdateDescriptionMembersSurviveAwkwardText) {
    // Keys and strings holding the characters the member splitter looks for: braces,
    // brackets, commas, colons, quotes and backslashes.
    event_parts p;
    p.op = "update";
    p.update_description =
        R"({"disambiguatedPaths": {"a.0": ["a", "0"]},)"
        R"( "updatedFields": {"k,}": "v\"]}", "arr": [1, {"x": "}, {"}], "b\\": "\\"},)"
        R"( "removedFields": ["r\"", "}{", "[,]"], "truncatedArrays": []})";
    const std::string line = encode(rigatoni(), {make_event(p)});
    const std::string want =
        R"("updateDescription":{"updatedFields":{"k,}":"v\"]}","arr":[1,{"x":"}, {"}],)"
        R"("b\\":"\\"},"removedFields":["r\"","}{","[,]"],"truncatedArrays":[]},)";
    EXPECT_NE(line.find(want), std::string::npos) << line;
    EXPECT_EQ(line.find("disambiguatedPaths"), std::string::npos) << line;
    bson_ptr back = parse_line(line.substr(0, line.size() - 1));
    ASSERT_TRUE(back);

    // Only the members that are there, still in Rigatoni's order.
    p.update_description = R"({"removedFields": [], "updatedFields": {}})";
    const std::string short_line = encode(rigatoni(), {make_event(p)});
    EXPECT_NE(short_line.find(R"("updateDescription":{"updatedFields":{},"removedFields":[]},)"),
              std::string::npos)
        << short_line;
    p.update_description = R"({"disambiguatedPaths": {}})";
    const std::string empty_line = encode(rigatoni(), {make_event(p)});
    EXPECT_NE(empty_line.find(R"("updateDescription":{},)"), std::string::npos) << empty_line;
}

TEST(JsonlRigatoni, OperationSpellings) {
    const std::pair<const char*, const char*> ops[] = {
        {"insert", "insert"},
        {"update", "update"},
        {"delete", "delete"},
        {"replace", "replace"},
        {"invalidate", "invalidate"},
        {"drop", "drop"},
        {"dropDatabase", "dropdatabase"},
        {"rename", "rename"},
        {"modify", "modify"},
        {"shardCollection", "shardCollection"},
    };
    for (const auto& [mongo, written] : ops) {
        event_parts p;
        p.op = mongo;
        const std::string line = encode(rigatoni(), {make_event(p)});
        EXPECT_EQ(line.rfind(std::string(R"({"operationType":")") + written + "\",", 0), 0u)
            << line;
    }
}

TEST(JsonlRigatoni, CanonicalModeTypesTheDocuments) {
    event_parts p;
    p.full_document = R"({"_id": 42, "d": 1.5})";
    const std::string line = encode(rigatoni(ejson_mode::canonical), {make_event(p)});
    EXPECT_NE(line.find(R"("documentKey":{"_id":{"$numberInt":"42"}})"), std::string::npos) << line;
    EXPECT_NE(
        line.find(R"("fullDocument":{"_id":{"$numberInt":"42"},"d":{"$numberDouble":"1.5"}})"),
        std::string::npos)
        << line;
}

// Every line is JSON that an independent parser (libbson's) reads back: the members in
// Rigatoni's order and the documents equal to the event's.
TEST(JsonlRigatoni, LinesParseBackToTheEvents) {
    corpus_generator gen(31, true);
    std::vector<std::vector<std::uint8_t>> docs;
    for (int i = 0; i < 2000; ++i)
        docs.push_back(bytes_of(gen.change_event().get()));
    const std::string out = encode(rigatoni(), docs);
    const auto lines = split_lines(out);
    ASSERT_EQ(lines.size(), docs.size());
    auto relaxed = [](const bson_t* b) {
        char* s = bson_as_relaxed_extended_json(b, nullptr);
        std::string r(s);
        bson_free(s);
        return r;
    };
    auto sub = [](const bson_t* parent, const char* key, bson_t* out) {
        bson_iter_t it;
        if (!bson_iter_init_find(&it, parent, key) || !BSON_ITER_HOLDS_DOCUMENT(&it))
            return false;
        std::uint32_t len = 0;
        const std::uint8_t* data = nullptr;
        bson_iter_document(&it, &len, &data);
        return bson_init_static(out, data, len);
    };
    for (std::size_t i = 0; i < docs.size(); ++i) {
        SCOPED_TRACE(lines[i].substr(0, 300));
        EXPECT_EQ(lines[i].find("\" : "), std::string::npos) << "no libbson spacing";
        bson_ptr back = parse_line(lines[i]);
        ASSERT_TRUE(back);
        bson_t orig;
        ASSERT_TRUE(bson_init_static(&orig, docs[i].data(), docs[i].size()));

        std::vector<std::string> keys;
        bson_iter_t it;
        bson_iter_init(&it, back.get());
        while (bson_iter_next(&it))
            keys.emplace_back(bson_iter_key(&it));
        bson_iter_t op;
        ASSERT_TRUE(bson_iter_init_find(&op, &orig, "operationType"));
        const std::string operation = bson_iter_utf8(&op, nullptr);
        std::vector<std::string> want = {"operationType", "ns", "documentKey"};
        if (operation != "delete")
            want.push_back("fullDocument");
        if (operation == "update")
            want.push_back("updateDescription");
        want.push_back("clusterTime");
        want.push_back("_id");
        EXPECT_EQ(keys, want);

        ASSERT_TRUE(bson_iter_init_find(&it, back.get(), "operationType"));
        EXPECT_EQ(std::string(bson_iter_utf8(&it, nullptr)), operation);
        bson_t ns_back, ns_orig;
        ASSERT_TRUE(sub(back.get(), "ns", &ns_back));
        ASSERT_TRUE(sub(&orig, "ns", &ns_orig));
        bson_iter_t a, b;
        ASSERT_TRUE(bson_iter_init_find(&a, &ns_back, "database"));
        ASSERT_TRUE(bson_iter_init_find(&b, &ns_orig, "db"));
        EXPECT_STREQ(bson_iter_utf8(&a, nullptr), bson_iter_utf8(&b, nullptr));
        ASSERT_TRUE(bson_iter_init_find(&a, &ns_back, "collection"));
        ASSERT_TRUE(bson_iter_init_find(&b, &ns_orig, "coll"));
        EXPECT_STREQ(bson_iter_utf8(&a, nullptr), bson_iter_utf8(&b, nullptr));

        // clusterTime: the second and the increment as milliseconds (all below 1000 here).
        ASSERT_TRUE(bson_iter_init_find(&b, &orig, "clusterTime"));
        std::uint32_t t = 0, inc = 0;
        bson_iter_timestamp(&b, &t, &inc);
        std::string iso;
        append_iso8601_ms(std::int64_t{t} * 1000 + inc, iso);
        ASSERT_TRUE(bson_iter_init_find(&a, back.get(), "clusterTime"));
        EXPECT_EQ(std::string(bson_iter_utf8(&a, nullptr)), iso);

        for (const char* key : {"documentKey", "fullDocument", "_id"}) {
            bson_t x, y;
            if (!sub(&orig, key, &y))
                continue;
            ASSERT_TRUE(sub(back.get(), key, &x)) << key;
            EXPECT_EQ(relaxed(&x), relaxed(&y)) << key;
        }
        if (operation == "update") {
            bson_t ud_back, ud_orig, x, y;
            ASSERT_TRUE(sub(back.get(), "updateDescription", &ud_back));
            ASSERT_TRUE(sub(&orig, "updateDescription", &ud_orig));
            ASSERT_TRUE(sub(&ud_back, "updatedFields", &x));
            ASSERT_TRUE(sub(&ud_orig, "updatedFields", &y));
            EXPECT_EQ(relaxed(&x), relaxed(&y));
        }
    }
}

TEST(JsonlRigatoni, ARejectedEventLeavesTheBatchUnchanged) {
    jsonl_encoder_factory f(rigatoni());
    auto enc = f.open("k");
    const auto good = make_event(event_parts{});
    diagnostics diag;
    change_event ev;
    ev.raw = byte_view(good.data(), good.size());
    ASSERT_FALSE(enc->append(ev, diag));
    const std::size_t before = enc->buffered_bytes();

    event_parts no_time;
    auto broken = make_event(no_time);
    // Turn clusterTime into an int64: the event is no longer a change event.
    const std::string key = "clusterTime";
    auto it = std::search(broken.begin(), broken.end(), key.begin(), key.end());
    ASSERT_NE(it, broken.end());
    *(it - 1) = 0x12;
    ev.raw = byte_view(broken.data(), broken.size());
    const auto ec = enc->append(ev, diag);
    EXPECT_EQ(ec, penne::errc::unencodable_event);
    EXPECT_NE(diag.message.find("clusterTime"), std::string::npos) << diag.message;
    EXPECT_EQ(enc->buffered_bytes(), before);

    ev.raw = byte_view(good.data(), good.size());
    ASSERT_FALSE(enc->append(ev, diag));
    std::string out;
    enc->finish(out);
    EXPECT_EQ(out, encode(rigatoni(), {good, good}));
}

TEST(JsonlRigatoni, DeterministicAndBufferedBytesTrackTheObject) {
    corpus_generator gen(47);
    std::vector<std::vector<std::uint8_t>> docs;
    for (int i = 0; i < 300; ++i)
        docs.push_back(bytes_of(gen.change_event().get()));
    jsonl_encoder_factory f(rigatoni());
    auto enc = f.open("a");
    diagnostics diag;
    std::size_t last = enc->buffered_bytes();
    EXPECT_EQ(last, 0u);
    for (const auto& d : docs) {
        ASSERT_FALSE(enc->append(routed_event(d), diag)) << diag.message;
        EXPECT_GT(enc->buffered_bytes(), last);
        last = enc->buffered_bytes();
    }
    std::string out;
    enc->finish(out);
    EXPECT_EQ(out.size(), last);
    EXPECT_EQ(out, encode(rigatoni(), docs));
}

TEST(Jsonl, InvalidOptionsAreRejected) {
    diagnostics diag;
    EXPECT_FALSE(validate(jsonl_options{}, diag));
    EXPECT_FALSE(validate(rigatoni(ejson_mode::canonical), diag));
    jsonl_options o;
    o.layout = static_cast<jsonl_layout>(7);
    EXPECT_EQ(validate(o, diag), penne::errc::invalid_config);
    EXPECT_NE(diag.message.find("jsonl.layout"), std::string::npos);
    o = {};
    o.mode = static_cast<ejson_mode>(9);
    EXPECT_EQ(validate(o, diag), penne::errc::invalid_config);
    EXPECT_NE(diag.message.find("jsonl.json_mode"), std::string::npos);
}

}  // namespace
}  // namespace penne::formats
