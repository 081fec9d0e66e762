// Independent readers judge penne's Avro container files: avrocat (apt avro-bin, the Avro C
// library) for the null, deflate and snappy codecs, and npm avsc (node-avro/, pinned by its
// lockfile) for null, deflate and snappy (with the snappy checksum verified by the script).
// Every value each reader returns is compared with what libbson reads from the input events.
// No reader here knows the zstandard codec: unit_avro's decoder covers it.
#include <penne/formats/avro.hpp>

#include <process.hpp>
#include <temp_dir.hpp>

#include "../../unit/adapters/formats/bson_corpus.hpp"
#include "../../unit/adapters/formats/event_builder.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace penne::formats {
namespace {

using namespace std::chrono_literals;
using testing::bson_ptr;
using testing::bytes_of;
using testing::corpus_generator;
using testing::encode_events;
using testing::event_of;
using testing::event_parts;
using testing::find_on_path;
using testing::make_event;

// ---------------------------------------------------------------------------------------
// Expected values, from libbson.

struct value {
    enum kind_t { null, text, number } kind = null;
    std::string s;
    std::int64_t n = 0;

    static value of(std::string v) { return {text, std::move(v), 0}; }
    static value of(std::int64_t v) { return {number, {}, v}; }
    friend bool operator==(const value&, const value&) = default;
};

std::ostream& operator<<(std::ostream& os, const value& v) {
    switch (v.kind) {
        case value::null:
            return os << "null";
        case value::text:
            return os << '"' << v.s << '"';
        case value::number:
            return os << v.n;
    }
    return os;
}

using record = std::vector<std::pair<std::string, value>>;

const std::vector<std::string> penne_fields = {
    "operation",
    "database",
    "collection",
    "cluster_time",
    "cluster_time_increment",
    "wall_time",
    "document_key",
    "full_document",
    "update_description",
    "full_document_before_change",
    "txn_number",
    "lsid",
    "resume_token",
};

void set(record& r, const std::string& name, value v) {
    for (auto& [k, old] : r) {
        if (k == name) {
            old = std::move(v);
            return;
        }
    }
    ADD_FAILURE() << "no field " << name;
}

std::string relaxed_json(const bson_iter_t& it) {
    std::uint32_t len = 0;
    const std::uint8_t* data = nullptr;
    bson_iter_document(&it, &len, &data);
    bson_t sub;
    EXPECT_TRUE(bson_init_static(&sub, data, len));
    char* s = bson_as_relaxed_extended_json(&sub, nullptr);
    std::string out(s);
    bson_free(s);
    return out;
}

record expected_record(const std::vector<std::uint8_t>& raw) {
    record r;
    for (const auto& f : penne_fields)
        r.emplace_back(f, value{});
    bson_t doc;
    EXPECT_TRUE(bson_init_static(&doc, raw.data(), raw.size()));
    bson_iter_t it;
    bson_iter_init(&it, &doc);
    auto doc_or_null = [&](const char* field) {
        set(r, field, BSON_ITER_HOLDS_NULL(&it) ? value{} : value::of(relaxed_json(it)));
    };
    while (bson_iter_next(&it)) {
        const std::string_view key = bson_iter_key(&it);
        if (key == "_id") {
            set(r, "resume_token", value::of(relaxed_json(it)));
        } else if (key == "operationType") {
            set(r, "operation", value::of(bson_iter_utf8(&it, nullptr)));
        } else if (key == "clusterTime") {
            std::uint32_t t = 0, i = 0;
            bson_iter_timestamp(&it, &t, &i);
            set(r, "cluster_time", value::of(std::int64_t{t} * 1000));
            set(r, "cluster_time_increment", value::of(std::int64_t{i}));
        } else if (key == "wallTime") {
            set(r, "wall_time", value::of(bson_iter_date_time(&it)));
        } else if (key == "ns") {
            bson_iter_t ns;
            bson_iter_recurse(&it, &ns);
            while (bson_iter_next(&ns)) {
                const std::string_view k = bson_iter_key(&ns);
                if (k == "db" || k == "coll") {
                    set(r, k == "db" ? "database" : "collection",
                        value::of(bson_iter_utf8(&ns, nullptr)));
                }
            }
        } else if (key == "documentKey") {
            doc_or_null("document_key");
        } else if (key == "fullDocument") {
            doc_or_null("full_document");
        } else if (key == "updateDescription") {
            doc_or_null("update_description");
        } else if (key == "fullDocumentBeforeChange") {
            doc_or_null("full_document_before_change");
        } else if (key == "lsid") {
            doc_or_null("lsid");
        } else if (key == "txnNumber") {
            set(r, "txn_number", value::of(bson_iter_as_int64(&it)));
        }
    }
    return r;
}

// ---------------------------------------------------------------------------------------
// Events

std::vector<std::vector<std::uint8_t>> test_events() {
    std::vector<std::vector<std::uint8_t>> events;
    event_parts insert;
    insert.full_document =
        R"({"_id": 42, "name": "Zoë \"Z\" \\ 李 🍝", "tab": "a\tb\nc", "n": 1.5,
            "big": {"$numberLong": "9007199254740993"}})";
    insert.txn = 3;
    insert.lsid = R"({"id": {"$binary": {"base64": "AAECAwQFBgcICQoLDA0ODw==", "subType": "04"}}})";
    events.push_back(make_event(insert));
    event_parts update;
    update.op = "update";
    update.inc = 0;
    update.update_description = R"({"updatedFields": {"x": 1}, "removedFields": ["y"]})";
    update.full_document_null = true;
    update.before_change = R"({"_id": 42, "x": 0, "y": true})";
    update.txn = INT64_MAX;  // beyond a JavaScript number's exact range
    events.push_back(make_event(update));
    event_parts del;
    del.op = "delete";
    del.secs = 4294967295u;
    del.inc = 4294967295u;
    del.wall = std::nullopt;
    events.push_back(make_event(del));
    event_parts drop_db;
    drop_db.op = "dropDatabase";
    drop_db.coll = nullptr;
    drop_db.document_key = nullptr;
    drop_db.wall = -1;
    events.push_back(make_event(drop_db));
    event_parts invalidate;
    invalidate.op = "invalidate";
    invalidate.db = nullptr;
    invalidate.document_key = nullptr;
    invalidate.secs = 0;
    invalidate.inc = 1;
    invalidate.wall = INT64_MIN;
    events.push_back(make_event(invalidate));
    corpus_generator gen(2026);
    for (int i = 0; i < 150; ++i)
        events.push_back(bytes_of(gen.change_event().get()));
    return events;
}

// ---------------------------------------------------------------------------------------
// Files and readers

std::string write_avro(const avro_options& o, const std::vector<std::vector<std::uint8_t>>& events,
                       const std::string& path) {
    std::unique_ptr<avro_encoder_factory> f;
    diagnostics diag;
    EXPECT_FALSE(avro_encoder_factory::create(o, f, diag)) << diag.message;
    const std::string out = encode_events(*f, events, path);
    std::ofstream(path, std::ios::binary) << out;
    return out;
}

// The first executable called `name` on PATH (and /usr/bin), or empty.
std::string find_program(const std::string& name) {
    return find_on_path(name, "/usr/bin:/usr/local/bin").value_or("");
}

struct run_result {
    int code = -1;
    std::string output;
};

run_result run(const std::vector<std::string>& argv, const std::string& log) {
    penne::test::process p(argv, log);
    auto code = p.wait(120s);
    if (!code) {
        p.signal(SIGKILL);
        p.wait(5s);
        return {-1, "timed out:\n" + p.log()};
    }
    return {*code, p.log()};
}

std::string json_string(std::string_view s) {
    std::string out = "\"";
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (u < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", u);
            out += buf;
        } else {
            out += c;
        }
    }
    return out + '"';
}

// What the node script checks: longs as decimal strings (they exceed 2^53).
std::string expected_json(std::string_view codec, std::string_view schema_name,
                          const std::vector<record>& records) {
    std::string out = "{\"codec\":" + json_string(codec) +
                      ",\"schemaName\":" + json_string(schema_name) + ",\"records\":[";
    for (std::size_t i = 0; i < records.size(); ++i) {
        out += i ? ",{" : "{";
        bool first = true;
        for (const auto& [k, v] : records[i]) {
            out += first ? "" : ",";
            first = false;
            out += json_string(k) + ":";
            switch (v.kind) {
                case value::null:
                    out += "null";
                    break;
                case value::text:
                    out += json_string(v.s);
                    break;
                case value::number:
                    out += json_string(std::to_string(v.n));
                    break;
            }
        }
        out += "}";
    }
    return out + "]}\n";
}

// One avrocat output line (JSON; unions as {"branch": value}) as a record, through libbson's
// JSON parser.
std::optional<record> parse_avrocat_line(const std::string& line, const record& shape,
                                         std::string& error) {
    bson_error_t err;
    bson_ptr b(bson_new_from_json(reinterpret_cast<const std::uint8_t*>(line.data()),
                                  static_cast<ssize_t>(line.size()), &err));
    if (!b) {
        error = std::string("not JSON: ") + err.message;
        return std::nullopt;
    }
    record r = shape;  // the field names; every value is replaced from the line
    for (auto& [name, v] : r) {
        v = value{};
        bson_iter_t it;
        if (!bson_iter_init_find(&it, b.get(), name.c_str())) {
            error = "no field " + name;
            return std::nullopt;
        }
        bson_iter_t inner = it;
        if (BSON_ITER_HOLDS_DOCUMENT(&it)) {  // a union branch: {"string": …} or {"long": …}
            bson_iter_recurse(&it, &inner);
            if (!bson_iter_next(&inner)) {
                error = "empty union object in " + name;
                return std::nullopt;
            }
        }
        if (BSON_ITER_HOLDS_NULL(&inner)) {
            v = value{};
        } else if (BSON_ITER_HOLDS_UTF8(&inner)) {
            std::uint32_t len = 0;
            const char* s = bson_iter_utf8(&inner, &len);
            v = value::of(std::string(s, len));
        } else if (BSON_ITER_HOLDS_INT32(&inner) || BSON_ITER_HOLDS_INT64(&inner)) {
            v = value::of(bson_iter_as_int64(&inner));
        } else {
            error = "unexpected JSON type in " + name;
            return std::nullopt;
        }
    }
    return r;
}

// tests/integration/formats/node-avro: from PENNE_SOURCE_DIR when ctest passes it, else next to
// this file (CMake compiles it by its absolute path).
std::string node_dir() {
    if (const char* s = std::getenv("PENNE_SOURCE_DIR"))
        return std::string(s) + "/tests/integration/formats/node-avro";
    return (std::filesystem::path(__FILE__).parent_path() / "node-avro").string();
}

class AvroReaders : public ::testing::TestWithParam<avro_codec> {};

TEST_P(AvroReaders, AvrocatReadsEveryValue) {
    const std::string avrocat = find_program("avrocat");
    ASSERT_FALSE(avrocat.empty())
        << "avrocat is missing: install the Avro C tools with `apt-get install avro-bin` (or run "
           "scripts/install-deps.sh)";
    penne::test::temp_dir tmp("avro-avrocat");
    const auto events = test_events();
    avro_options o;
    o.codec = GetParam();
    o.block_bytes = 4096;  // many blocks
    const std::string file = tmp / "events.avro";
    write_avro(o, events, file);

    const run_result r = run({avrocat, file}, tmp / "avrocat.log");
    ASSERT_EQ(r.code, 0) << r.output;
    std::vector<std::string> lines;
    std::stringstream ss(r.output);
    for (std::string line; std::getline(ss, line);) {
        if (!line.empty())
            lines.push_back(line);
    }
    ASSERT_EQ(lines.size(), events.size()) << r.output.substr(0, 2000);
    for (std::size_t i = 0; i < events.size(); ++i) {
        const record expected = expected_record(events[i]);
        std::string error;
        const auto got = parse_avrocat_line(lines[i], expected, error);
        ASSERT_TRUE(got) << "line " << i << ": " << error << "\n" << lines[i];
        for (std::size_t f = 0; f < expected.size(); ++f) {
            EXPECT_EQ((*got)[f].second, expected[f].second)
                << "record " << i << " field " << expected[f].first;
        }
    }
}

TEST_P(AvroReaders, AvscReadsEveryValue) {
    const std::string node = find_program("node");
    ASSERT_FALSE(node.empty()) << "node is missing: run scripts/install-deps.sh (Debian nodejs)";
    const std::string dir = node_dir();
    ASSERT_EQ(::access((dir + "/node_modules/avsc/package.json").c_str(), R_OK), 0)
        << "npm avsc is missing: run `npm ci` in " << dir << " (scripts/install-deps.sh does)";
    penne::test::temp_dir tmp("avro-avsc");
    const auto events = test_events();
    avro_options o;
    o.codec = GetParam();
    o.block_bytes = 4096;
    const std::string file = tmp / "events.avro";
    write_avro(o, events, file);
    std::vector<record> expected;
    for (const auto& e : events)
        expected.push_back(expected_record(e));
    const std::string expected_path = tmp / "expected.json";
    std::ofstream(expected_path) << expected_json(avro_codec_name(o.codec), "penne.ChangeEvent",
                                                  expected);

    const run_result r = run({node, dir + "/read.js", file, expected_path}, tmp / "node.log");
    EXPECT_EQ(r.code, 0) << r.output;
    EXPECT_NE(r.output.find("OK " + std::to_string(events.size()) + " records"), std::string::npos)
        << r.output;
}

INSTANTIATE_TEST_SUITE_P(Codecs, AvroReaders,
                         ::testing::Values(avro_codec::null, avro_codec::deflate,
                                           avro_codec::snappy),
                         [](const auto& info) { return std::string(avro_codec_name(info.param)); });

// The rigatoni layout, hand-checked values, through both readers.
TEST(AvroReadersRigatoni, BothReadersSeeRigatonisSchema) {
    const std::string avrocat = find_program("avrocat");
    const std::string node = find_program("node");
    ASSERT_FALSE(avrocat.empty()) << "avrocat is missing: `apt-get install avro-bin`";
    ASSERT_FALSE(node.empty()) << "node is missing: run scripts/install-deps.sh";
    const std::string dir = node_dir();
    ASSERT_EQ(::access((dir + "/node_modules/avsc/package.json").c_str(), R_OK), 0)
        << "npm avsc is missing: run `npm ci` in " << dir;

    event_parts insert;
    insert.full_document = R"({"_id": 42, "name": "a b, \"c\""})";
    event_parts drop_db;
    drop_db.op = "dropDatabase";
    drop_db.coll = nullptr;
    drop_db.document_key = nullptr;
    drop_db.inc = 45;
    const std::vector<std::vector<std::uint8_t>> events = {make_event(insert), make_event(drop_db)};
    auto rec = [](const char* op, const char* coll, const char* time, std::optional<value> key,
                  std::optional<value> full) {
        return record{{"operation", value::of(op)},
                      {"database", value::of("shop")},
                      {"collection", value::of(coll)},
                      {"cluster_time", value::of(time)},
                      {"document_key", key.value_or(value{})},
                      {"full_document", full.value_or(value{})},
                      {"resume_token", value::of(R"({"_data":"8265"})")}};
    };
    const std::vector<record> expected = {
        rec("Insert", "orders", "2023-11-14T22:13:20.007+00:00", value::of(R"({"_id":42})"),
            value::of(R"({"_id":42,"name":"a b, \"c\""})")),
        rec("DropDatabase", "", "2023-11-14T22:13:20.045+00:00", std::nullopt, std::nullopt),
    };

    penne::test::temp_dir tmp("avro-rigatoni");
    avro_options o;
    o.layout = avro_layout::rigatoni;
    o.codec = avro_codec::deflate;
    const std::string file = tmp / "events.avro";
    write_avro(o, events, file);

    const run_result cat = run({avrocat, file}, tmp / "avrocat.log");
    ASSERT_EQ(cat.code, 0) << cat.output;
    std::stringstream ss(cat.output);
    std::size_t i = 0;
    for (std::string line; std::getline(ss, line);) {
        if (line.empty())
            continue;
        ASSERT_LT(i, expected.size()) << cat.output;
        std::string error;
        const auto got = parse_avrocat_line(line, expected[i], error);
        ASSERT_TRUE(got) << error << "\n" << line;
        EXPECT_EQ(*got, expected[i]) << line;
        ++i;
    }
    EXPECT_EQ(i, expected.size());

    const std::string expected_path = tmp / "expected.json";
    std::ofstream(expected_path) << expected_json("deflate", "rigatoni.ChangeEvent", expected);
    const run_result js = run({node, dir + "/read.js", file, expected_path}, tmp / "node.log");
    EXPECT_EQ(js.code, 0) << js.output;
    EXPECT_NE(js.output.find("OK 2 records"), std::string::npos) << js.output;
}

}  // namespace
}  // namespace penne::formats
