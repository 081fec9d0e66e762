// penne's CSV judged by an independent reader: DuckDB's read_csv (npm @duckdb/node-api, which
// bundles libduckdb), driven by node-parquet/read_csv.mjs. Both layouts, CRLF and LF, the
// delimiters ',' ';' TAB '|', unicode and names with embedded quotes, delimiters, CR and LF;
// every field of every row is compared with what the input events say, and the column types
// DuckDB's sniffer chooses (with and without a timestamp format) are checked, cluster_time
// as a UTC instant.
//
// Needs `node` on PATH and the packages of node-parquet/ installed: scripts/install-deps.sh
// does it, or `npm ci` in tests/integration/formats/node-parquet. Without them the tests
// fail (they do not skip), so a missing reader cannot pass for a green run.
#include <penne/formats/csv.hpp>
#include <penne/formats/ejson.hpp>
#include <penne/formats/tabular.hpp>

#include <process.hpp>
#include <temp_dir.hpp>

#include "../../unit/adapters/formats/bson_corpus.hpp"
#include "../../unit/adapters/formats/event_builder.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace penne::formats {
namespace {

using namespace testing;  // bson_corpus.hpp and event_builder.hpp

// The timestamp formats the typed reads try, after DuckDB's own detection: the instant with
// its 'Z' as an offset, and with 'Z' as a literal (a naive timestamp holding UTC).
constexpr const char* offset_format = "%Y-%m-%dT%H:%M:%S.%g%z";
constexpr const char* literal_z_format = "%Y-%m-%dT%H:%M:%S.%gZ";

class CsvReadback : public ::testing::Test {
protected:
    void SetUp() override {
        auto node = find_on_path("node");
        ASSERT_TRUE(node) << "node is not on PATH; install Node.js (scripts/install-deps.sh)";
        node_ = *node;
        ASSERT_TRUE(std::filesystem::exists(node_parquet_dir() + "/node_modules/@duckdb/node-api"))
            << "DuckDB is not installed: run scripts/install-deps.sh, or `npm ci` in "
            << node_parquet_dir();
    }

    // Writes `csv` and has DuckDB report on it.
    jvalue read_back(const std::string& csv, char delimiter, const std::string& stem) {
        const std::string path = dir_ / (stem + ".csv");
        const std::string report = dir_ / (stem + ".json");
        std::ofstream(path, std::ios::binary) << csv;
        test::process p({node_, node_parquet_dir() + "/read_csv.mjs", path, report,
                         std::to_string(static_cast<unsigned char>(delimiter)), offset_format,
                         literal_z_format},
                        dir_ / (stem + ".log"));
        const auto code = p.wait(std::chrono::seconds(120));
        if (!code || *code != 0)
            throw std::runtime_error("read_csv.mjs failed on " + stem + ":\n" + p.log());
        return parse_json(slurp(report));
    }

    test::temp_dir dir_{"penne_csv"};
    std::string node_;
};

// ---------------------------------------------------------------------------------------
// Events.

// Names that need quoting or test the reader's UTF-8: the delimiters, quotes, CR, LF, CRLF,
// spaces at the ends, multi-byte characters and an emoji.
const char* const awkward_names[] = {
    "orders",
    "a,b",
    "semi;colon",
    "tab\there",
    "pi|pe",
    "q\"uote\"",
    "\"",
    "line\nbreak",
    "cr\rhere",
    "crlf\r\nend",
    " padded ",
    "\xc3\xa9t\xc3\xa9 \xe6\x9d\x8e",  // été 李
    "\xf0\x9f\x8d\x9d pasta",          // 🍝
    "all: ,;\t|\"\r\n\xe2\x82\xac",    // every special at once, and €
    "NULL",                            // not DuckDB's null string
};

// Realistic change events from the generator, and hand-made ones with awkward names,
// unicode and quotes in documents, every nullable column null somewhere, increments past
// 1000 and transactions. `wall_in_range` keeps wall times within years 1900-9999 (a typed
// read needs every value of a column to parse); otherwise they span ±3000 years around the
// epoch and beyond 9999, in ISO 8601's expanded form.
event_list test_events(std::uint64_t seed, bool wall_in_range) {
    corpus_generator gen(seed, true);
    constexpr auto n_awkward = static_cast<std::uint32_t>(std::size(awkward_names));
    event_list events;
    for (int i = 0; i < 240; ++i) {
        if (i % 3 == 0) {
            events.push_back(bytes_of(gen.change_event().get()));
            continue;
        }
        event_parts p;
        const char* name = awkward_names[gen.below(n_awkward)];
        if (gen.chance(10)) {
            p.op = "invalidate";
            p.db = nullptr;
            p.document_key = nullptr;
        } else if (gen.chance(10)) {
            p.op = "dropDatabase";
            p.coll = nullptr;
            p.document_key = nullptr;
            p.db = name;
        } else {
            static const char* ops[] = {"insert", "update", "replace", "delete", "createIndexes"};
            p.op = ops[gen.below(5)];
            p.coll = name;
            if (gen.chance(20))
                p.db = awkward_names[gen.below(n_awkward)];
        }
        p.secs = gen.below(4000000000u);
        p.inc = gen.chance(20) ? 1000 + gen.below(5000) : gen.below(1000);
        constexpr std::int64_t year_1900_ms = -2208988800000;
        constexpr std::int64_t year_9999_ms = 253402300799999;
        if (gen.chance(20)) {
            p.wall = std::nullopt;
        } else if (wall_in_range) {
            p.wall = year_1900_ms +
                     static_cast<std::int64_t>(
                         gen.u64() % static_cast<std::uint64_t>(year_9999_ms - year_1900_ms));
        } else {
            p.wall = static_cast<std::int64_t>(gen.u64() % 500000000000000ULL) - 100000000000000LL;
        }
        const std::string_view op = p.op;
        std::string full_document;  // outlives make_event(p) below
        if (op == "insert" || op == "replace") {
            full_document = std::string(R"({"_id": 42, "name": ")") + (gen.chance(50) ? "a" : "") +
                            R"(\" quoted \", comma; semi\ttab\nnewline \u00e9\u674e", "n": )" +
                            std::to_string(gen.below(1000)) + "}";
            p.full_document = full_document.c_str();
        }
        if (op == "update")
            p.update_description = R"({"updatedFields": {"n": 1, "s": "x \" y, z"}})";
        if (gen.chance(30))
            p.before_change = R"({"_id": 42, "n": 0})";
        if (gen.chance(40)) {
            p.lsid = R"({"id": {"$binary": {"base64": "AAAAAAAAAAAAAAAAAAAAAA==", )"
                     R"("subType": "04"}}})";
            p.txn = static_cast<std::int64_t>(gen.u64() >> 1);
        }
        p.token = "82" + std::to_string(gen.u64());
        events.push_back(make_event(p));
    }
    return events;
}

std::string encode(const csv_options& o, const event_list& events) {
    std::unique_ptr<csv_encoder_factory> f;
    diagnostics diag;
    if (csv_encoder_factory::create(o, f, diag))
        throw std::runtime_error(diag.message);
    return encode_events(*f, events, "shop/orders/0.csv", true);
}

// ---------------------------------------------------------------------------------------
// What the reader must see, worked out here from libbson-free rules of the two layouts
// (csv.hpp) and the tabular extractor's values.

std::string iso_ms(std::int64_t ms) {
    std::string s;
    append_iso8601_ms(ms, s);
    return s;
}

std::string rigatoni_operation(std::string_view op) {
    if (op == "dropDatabase")
        return "DropDatabase";
    for (const char* known :
         {"insert", "update", "delete", "replace", "invalidate", "drop", "rename"}) {
        if (op == known) {
            std::string s(op);
            s[0] = static_cast<char>(s[0] - 'a' + 'A');
            return s;
        }
    }
    return std::string(op);
}

std::string rigatoni_time(std::uint32_t secs, std::uint32_t inc) {
    std::string s = iso_ms(std::int64_t{secs} * 1000 + (inc < 1000 ? inc : 0));
    s.resize(inc != 0 && inc < 1000 ? 23 : 19);
    return s + "+00:00";
}

struct expected_table {
    std::vector<std::string> names;
    // [row][column]; CSV has no null distinct from "", so an empty value is expected as
    // DuckDB's NULL.
    std::vector<std::vector<std::optional<std::string>>> rows;
    std::vector<std::uint32_t> cluster_seconds;
    std::vector<std::optional<std::int64_t>> wall_ms;
};

expected_table expected(const event_list& events, const csv_options& o) {
    expected_table t;
    const bool rigatoni = o.layout == csv_layout::rigatoni;
    if (rigatoni) {
        t.names = {"operation",    "database",      "collection",  "cluster_time",
                   "document_key", "full_document", "resume_token"};
    } else {
        t.names.assign(tabular_column_names.begin(), tabular_column_names.end());
    }
    auto opt = [](std::optional<std::string_view> v) -> std::optional<std::string> {
        if (v && !v->empty())
            return std::string(*v);
        return std::nullopt;
    };
    auto compact = [](std::optional<std::string_view> v) -> std::optional<std::string> {
        if (v)
            return compact_json(*v);
        return std::nullopt;
    };
    auto number = [](std::optional<std::int64_t> v) -> std::optional<std::string> {
        if (v)
            return std::to_string(*v);
        return std::nullopt;
    };
    tabular_extractor ex(o.mode);
    for (const auto& e : events) {
        tabular_row r;
        diagnostics diag;
        if (ex.extract(event_of(e), r, diag))
            throw std::runtime_error(diag.message);
        t.cluster_seconds.push_back(r.cluster_time_seconds);
        t.wall_ms.push_back(r.wall_time_ms);
        if (rigatoni) {
            t.rows.push_back({rigatoni_operation(r.operation), opt(r.database), opt(r.collection),
                              rigatoni_time(r.cluster_time_seconds, r.cluster_time_increment),
                              compact(r.document_key), compact(r.full_document),
                              compact(r.resume_token)});
            continue;
        }
        std::optional<std::string> wall;
        if (r.wall_time_ms)
            wall = iso_ms(*r.wall_time_ms);
        t.rows.push_back({std::string(r.operation), opt(r.database), opt(r.collection),
                          iso_ms(std::int64_t{r.cluster_time_seconds} * 1000),
                          std::to_string(r.cluster_time_increment), wall, opt(r.document_key),
                          opt(r.full_document), opt(r.update_description),
                          opt(r.full_document_before_change), number(r.txn_number), opt(r.lsid),
                          std::string(r.resume_token)});
    }
    return t;
}

void check_names(const jvalue& read, const expected_table& t) {
    ASSERT_EQ(read["columns"].items.size(), t.names.size());
    for (std::size_t c = 0; c < t.names.size(); ++c)
        EXPECT_EQ(read["columns"].items[c]["name"].s, t.names[c]);
}

// Every field as text, exactly.
void check_text(const jvalue& report, const expected_table& t) {
    const jvalue& text = report["text"];
    check_names(text, t);
    for (const auto& col : text["columns"].items)
        EXPECT_EQ(col["type"].s, "VARCHAR") << col["name"].s;
    const auto& rows = text["rows"].items;
    ASSERT_EQ(rows.size(), t.rows.size());
    for (std::size_t r = 0; r < rows.size(); ++r) {
        ASSERT_EQ(rows[r].items.size(), t.names.size()) << "row " << r;
        for (std::size_t c = 0; c < t.names.size(); ++c) {
            const auto& want = t.rows[r][c];
            const jvalue& got = rows[r].items[c];
            ASSERT_EQ(got.null, !want.has_value()) << t.names[c] << " row " << r;
            if (want) {
                ASSERT_EQ(got.s, *want) << t.names[c] << " row " << r;
            }
        }
    }
}

// The penne layout read with the sniffer's types: timestamps as instants, integers as
// BIGINT, the rest as text with the same values as the text read.
void check_typed(const jvalue& report, const expected_table& t, bool wall_in_range) {
    const auto& reads = report["typed"].items;
    ASSERT_EQ(reads.size(), 3u);
    for (const jvalue& read : reads) {
        const std::string format = read["timestampformat"].null ? "" : read["timestampformat"].s;
        SCOPED_TRACE("timestampformat '" + format + "'");
        check_names(read, t);
        // With 'Z' as a literal the instant is a naive TIMESTAMP (holding UTC); detected, or
        // with 'Z' read as an offset, it is a TIMESTAMP WITH TIME ZONE.
        const std::string ts =
            format == literal_z_format ? "TIMESTAMP" : "TIMESTAMP WITH TIME ZONE";
        for (std::size_t c = 0; c < t.names.size(); ++c) {
            const std::string& name = t.names[c];
            std::string want = "VARCHAR";
            if (name == "cluster_time" || (name == "wall_time" && wall_in_range)) {
                want = ts;
            } else if (name == "cluster_time_increment" || name == "txn_number") {
                want = "BIGINT";
            }
            EXPECT_EQ(read["columns"].items[c]["type"].s, want) << name;
        }
        const auto& rows = read["rows"].items;
        ASSERT_EQ(rows.size(), t.rows.size());
        for (std::size_t r = 0; r < rows.size(); ++r) {
            for (std::size_t c = 0; c < t.names.size(); ++c) {
                const std::string& name = t.names[c];
                std::optional<std::string> want = t.rows[r][c];
                if (name == "cluster_time") {
                    want = std::to_string(std::int64_t{t.cluster_seconds[r]} * 1000);
                } else if (name == "wall_time" && wall_in_range && t.wall_ms[r]) {
                    want = std::to_string(*t.wall_ms[r]);
                }
                const jvalue& got = rows[r].items.at(c);
                ASSERT_EQ(got.null, !want.has_value()) << name << " row " << r;
                if (want) {
                    ASSERT_EQ(got.s, *want) << name << " row " << r;
                }
            }
        }
    }
}

struct variant {
    const char* name;
    csv_layout layout;
    char delimiter;
    std::optional<csv_line_ending> ending;
    ejson_mode mode;
};

const variant variants[] = {
    {"penne_comma_crlf", csv_layout::penne, ',', std::nullopt, ejson_mode::relaxed},
    {"penne_comma_lf", csv_layout::penne, ',', csv_line_ending::lf, ejson_mode::relaxed},
    {"penne_semicolon_crlf", csv_layout::penne, ';', csv_line_ending::crlf, ejson_mode::relaxed},
    {"penne_tab_lf", csv_layout::penne, '\t', csv_line_ending::lf, ejson_mode::canonical},
    {"penne_pipe_crlf", csv_layout::penne, '|', csv_line_ending::crlf, ejson_mode::canonical},
    {"rigatoni_comma_lf", csv_layout::rigatoni, ',', std::nullopt, ejson_mode::relaxed},
    {"rigatoni_semicolon_crlf", csv_layout::rigatoni, ';', csv_line_ending::crlf,
     ejson_mode::relaxed},
};

csv_options options_of(const variant& v) {
    csv_options o;
    o.layout = v.layout;
    o.delimiter = v.delimiter;
    o.line_ending = v.ending;
    o.mode = v.mode;
    return o;
}

TEST_F(CsvReadback, EveryLayoutDelimiterAndLineEndingReadsBackExactly) {
    const event_list events = test_events(20261122, false);
    for (const auto& v : variants) {
        SCOPED_TRACE(v.name);
        const csv_options o = options_of(v);
        const std::string csv = encode(o, events);
        // The file really has the line ending under test (and no other between records).
        const bool crlf =
            v.ending ? *v.ending == csv_line_ending::crlf : v.layout == csv_layout::penne;
        const std::size_t header_end = csv.find('\n');
        ASSERT_NE(header_end, std::string::npos);
        EXPECT_EQ(header_end > 0 && csv[header_end - 1] == '\r', crlf);
        jvalue report;
        ASSERT_NO_THROW(report = read_back(csv, v.delimiter, v.name));
        check_text(report, expected(events, o));
    }
}

TEST_F(CsvReadback, DuckDbTypesClusterTimeAsAUtcInstant) {
    const event_list events = test_events(7, true);
    for (const auto& v : variants) {
        if (v.layout != csv_layout::penne)
            continue;
        SCOPED_TRACE(v.name);
        const csv_options o = options_of(v);
        jvalue report;
        ASSERT_NO_THROW(
            report = read_back(encode(o, events), v.delimiter, std::string("typed_") + v.name));
        const expected_table t = expected(events, o);
        check_text(report, t);
        check_typed(report, t, true);
    }
}

TEST_F(CsvReadback, WallTimesBeyondYear9999StayText) {
    // ISO 8601's expanded years ("+10000-…") are not DuckDB timestamps: the sniffer keeps
    // wall_time as text with the exact values, and cluster_time is still an instant.
    const event_list events = test_events(11, false);
    const csv_options o;
    jvalue report;
    ASSERT_NO_THROW(report = read_back(encode(o, events), ',', "expanded_years"));
    const expected_table t = expected(events, o);
    bool beyond = false;
    for (const auto& w : t.wall_ms)
        beyond = beyond || (w && *w > 253402300799999);
    ASSERT_TRUE(beyond) << "the events should hold a wall time past year 9999";
    check_text(report, t);
    check_typed(report, t, false);
}

TEST_F(CsvReadback, AnEmptyBatchIsAHeaderOnlyTable) {
    for (const auto layout : {csv_layout::penne, csv_layout::rigatoni}) {
        csv_options o;
        o.layout = layout;
        jvalue report;
        ASSERT_NO_THROW(
            report = read_back(encode(o, {}), ',',
                               layout == csv_layout::penne ? "empty_penne" : "empty_rigatoni"));
        const expected_table t = expected({}, o);
        check_names(report["text"], t);
        EXPECT_TRUE(report["text"]["rows"].items.empty());
    }
}

}  // namespace
}  // namespace penne::formats
