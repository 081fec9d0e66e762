// penne's Parquet files judged by independent readers: DuckDB (npm @duckdb/node-api, which
// bundles libduckdb) and hyparquet + hyparquet-compressors, both driven by
// node-parquet/read.mjs. Every codec and both layouts; every value and every column type
// is compared with what the input events say, timestamps as UTC instants.
//
// Needs `node` on PATH and the packages of node-parquet/ installed: scripts/install-deps.sh
// does it, or `npm ci` in tests/integration/formats/node-parquet. Without them the tests
// fail (they do not skip), so a missing reader cannot pass for a green run.
#include <penne/formats/ejson.hpp>
#include <penne/formats/parquet.hpp>
#include <penne/formats/tabular.hpp>

#include "../../unit/adapters/formats/bson_corpus.hpp"
#include "../../unit/adapters/formats/event_builder.hpp"
#include "process.hpp"
#include "temp_dir.hpp"

#include <gtest/gtest.h>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace penne::formats {
namespace {

using namespace testing;  // bson_corpus.hpp and event_builder.hpp

class ParquetReadback : public ::testing::Test {
protected:
    void SetUp() override {
        auto node = find_on_path("node");
        ASSERT_TRUE(node) << "node is not on PATH; install Node.js (scripts/install-deps.sh)";
        node_ = *node;
        ASSERT_TRUE(
            std::filesystem::exists(node_parquet_dir() + "/node_modules/@duckdb/node-api") &&
            std::filesystem::exists(node_parquet_dir() + "/node_modules/hyparquet") &&
            std::filesystem::exists(node_parquet_dir() + "/node_modules/hyparquet-compressors"))
            << "the Parquet readers are not installed: run scripts/install-deps.sh, or `npm ci` "
               "in "
            << node_parquet_dir();
    }

    // Writes `file` and has both readers report on it.
    jvalue read_back(const std::string& file_bytes, const std::string& stem) {
        const std::string path = dir_ / (stem + ".parquet");
        const std::string report = dir_ / (stem + ".json");
        std::ofstream(path, std::ios::binary) << file_bytes;
        test::process p({node_, node_parquet_dir() + "/read.mjs", path, report},
                        dir_ / (stem + ".log"));
        const auto code = p.wait(std::chrono::seconds(120));
        if (!code || *code != 0)
            throw std::runtime_error("read.mjs failed on " + stem + ":\n" + p.log());
        return parse_json(slurp(report));
    }

    test::temp_dir dir_{"penne_parquet"};
    std::string node_;
};

// ---------------------------------------------------------------------------------------
// Events.

// Realistic events, hand-made ones with every nullable column null somewhere (negative and
// absent wall times, increments past 1000, transactions, awkward names) and inserts whose
// fullDocument holds every BSON type.
event_list test_events() {
    corpus_generator gen(20261122);
    static const char* colls[] = {"orders", "\xc3\xa9t\xc3\xa9 \xe6\x9d\x8e", "a,b\n\"c\"", ""};
    event_list events;
    for (int i = 0; i < 240; ++i) {
        switch (i % 4) {
            case 0:
            case 1:
                events.push_back(bytes_of(gen.change_event().get()));
                break;
            case 2: {
                event_parts p;
                p.coll = gen.chance(15) ? nullptr : colls[gen.below(4)];
                p.db = gen.chance(10) ? nullptr : "shop";
                p.op = p.db == nullptr ? "invalidate" : (p.coll ? "update" : "dropDatabase");
                p.secs = gen.below(4000000000u);
                p.inc = gen.chance(20) ? 1000 + gen.below(5000) : gen.below(1000);
                if (gen.chance(30)) {
                    p.wall = std::nullopt;
                } else {
                    p.wall = static_cast<std::int64_t>(gen.u64() % 400000000000000ULL) -
                             100000000000000LL;
                }
                if (!p.coll)
                    p.document_key = nullptr;
                if (gen.chance(50))
                    p.update_description = R"({"updatedFields": {"n": 1, "s": "x \" y"}})";
                if (gen.chance(30))
                    p.before_change = R"({"_id": 42, "n": 0})";
                if (gen.chance(40)) {
                    p.lsid = R"({"id": {"$binary": {"base64": "AAAAAAAAAAAAAAAAAAAAAA==", )"
                             R"("subType": "04"}}})";
                    p.txn = static_cast<std::int64_t>(gen.u64());
                }
                p.token = "82" + std::to_string(gen.u64());
                events.push_back(make_event(p));
                break;
            }
            default: {
                if (auto ev = random_insert(gen, "shop", "random"))
                    events.push_back(std::move(*ev));
                break;
            }
        }
    }
    return events;
}

std::string encode(const parquet_options& o, const event_list& events) {
    std::unique_ptr<parquet_encoder_factory> f;
    diagnostics diag;
    if (parquet_encoder_factory::create(o, f, diag))
        throw std::runtime_error(diag.message);
    return encode_events(*f, events, "shop/orders/0.parquet", true);
}

// ---------------------------------------------------------------------------------------
// What the readers must see.

struct expected_column {
    std::string name;
    std::string duckdb_type;
    std::string physical;    // hyparquet's schema type
    std::string repetition;  // REQUIRED / OPTIONAL
    std::string logical;     // STRING, TIMESTAMP or "" (none)
    bool timestamp = false;
    std::vector<std::optional<std::string>> text;  // strings
    std::vector<std::optional<std::int64_t>> num;  // integers; timestamps in the file's unit
};

std::vector<expected_column> expected(const event_list& events, const parquet_options& o) {
    const bool micros = o.timestamp_unit == parquet_timestamp_unit::micros;
    const bool rigatoni = o.layout == parquet_layout::rigatoni;
    auto text = [](std::string name, bool optional) {
        return expected_column{std::move(name), "VARCHAR", "BYTE_ARRAY",
                               optional ? "OPTIONAL" : "REQUIRED", "STRING"};
    };
    auto integer = [](std::string name, bool optional) {
        return expected_column{std::move(name), "BIGINT", "INT64",
                               optional ? "OPTIONAL" : "REQUIRED", ""};
    };
    auto timestamp = [&](std::string name, bool optional, bool utc) {
        expected_column c{std::move(name), utc ? "TIMESTAMP WITH TIME ZONE" : "TIMESTAMP", "INT64",
                          optional ? "OPTIONAL" : "REQUIRED", "TIMESTAMP"};
        c.timestamp = true;
        return c;
    };
    std::vector<expected_column> cols;
    if (rigatoni) {
        cols = {text("operation", false),   text("database", false),
                text("collection", false),  timestamp("cluster_time", false, false),
                text("document_key", true), text("full_document", true),
                text("resume_token", false)};
    } else {
        cols = {text("operation", false),
                text("database", true),
                text("collection", true),
                timestamp("cluster_time", false, true),
                integer("cluster_time_increment", false),
                timestamp("wall_time", true, true),
                text("document_key", true),
                text("full_document", true),
                text("update_description", true),
                text("full_document_before_change", true),
                integer("txn_number", true),
                text("lsid", true),
                text("resume_token", false)};
    }
    auto opt = [](std::optional<std::string_view> v) -> std::optional<std::string> {
        if (v)
            return std::string(*v);
        return std::nullopt;
    };
    auto compact = [](std::optional<std::string_view> v) -> std::optional<std::string> {
        if (v)
            return compact_json(*v);
        return std::nullopt;
    };
    tabular_extractor ex(o.mode);
    for (const auto& e : events) {
        tabular_row r;
        diagnostics diag;
        if (ex.extract(event_of(e), r, diag))
            throw std::runtime_error(diag.message);
        if (rigatoni) {
            const std::int64_t inc = r.cluster_time_increment < 1000 ? r.cluster_time_increment : 0;
            const std::int64_t ms = std::int64_t{r.cluster_time_seconds} * 1000 + inc;
            cols[0].text.push_back(std::string(r.operation));
            cols[1].text.push_back(std::string(r.database.value_or("")));
            cols[2].text.push_back(std::string(r.collection.value_or("")));
            cols[3].num.push_back(micros ? ms * 1000 : ms);
            cols[4].text.push_back(compact(r.document_key));
            cols[5].text.push_back(compact(r.full_document));
            cols[6].text.push_back(compact(r.resume_token));
            continue;
        }
        const std::int64_t unit = micros ? 1000000 : 1000;
        std::optional<std::int64_t> wall = r.wall_time_ms;
        if (wall && micros)
            *wall *= 1000;
        cols[0].text.push_back(std::string(r.operation));
        cols[1].text.push_back(opt(r.database));
        cols[2].text.push_back(opt(r.collection));
        cols[3].num.push_back(std::int64_t{r.cluster_time_seconds} * unit);
        cols[4].num.push_back(std::int64_t{r.cluster_time_increment});
        cols[5].num.push_back(wall);
        cols[6].text.push_back(opt(r.document_key));
        cols[7].text.push_back(opt(r.full_document));
        cols[8].text.push_back(opt(r.update_description));
        cols[9].text.push_back(opt(r.full_document_before_change));
        cols[10].num.push_back(r.txn_number);
        cols[11].text.push_back(opt(r.lsid));
        cols[12].text.push_back(opt(r.resume_token));
    }
    return cols;
}

// The cell a reader reports for row `r` of `c`: text as it is, integers in decimal,
// timestamps in microseconds (DuckDB's epoch_us) or milliseconds (hyparquet's Date).
std::optional<std::string> cell(const expected_column& c, std::size_t r, bool micros_in_file,
                                bool want_micros) {
    if (c.text.size() > r)
        return c.text[r];
    const auto& v = c.num[r];
    if (!v)
        return std::nullopt;
    std::int64_t n = *v;
    if (c.timestamp && micros_in_file != want_micros)
        n = want_micros ? n * 1000 : n / 1000;
    return std::to_string(n);
}

std::string codec_upper(parquet_codec c) {
    switch (c) {
        case parquet_codec::none:
            return "UNCOMPRESSED";
        case parquet_codec::snappy:
            return "SNAPPY";
        case parquet_codec::gzip:
            return "GZIP";
        case parquet_codec::zstd:
            return "ZSTD";
    }
    return "";
}

void check_report(const jvalue& report, const event_list& events, const parquet_options& o) {
    const auto cols = expected(events, o);
    const bool micros = o.timestamp_unit == parquet_timestamp_unit::micros;

    // DuckDB: column names and types, every cell, chunk metadata.
    const jvalue& duck = report["duckdb"];
    ASSERT_EQ(duck["columns"].items.size(), cols.size());
    for (std::size_t c = 0; c < cols.size(); ++c) {
        EXPECT_EQ(duck["columns"].items[c]["name"].s, cols[c].name);
        EXPECT_EQ(duck["columns"].items[c]["type"].s, cols[c].duckdb_type) << cols[c].name;
    }
    const auto& rows = duck["rows"].items;
    ASSERT_EQ(rows.size(), events.size());
    for (std::size_t r = 0; r < rows.size(); ++r) {
        ASSERT_EQ(rows[r].items.size(), cols.size());
        for (std::size_t c = 0; c < cols.size(); ++c) {
            const auto want = cell(cols[c], r, micros, true);
            const jvalue& got = rows[r].items[c];
            ASSERT_EQ(got.null, !want.has_value()) << "DuckDB " << cols[c].name << " row " << r;
            if (want) {
                ASSERT_EQ(got.s, *want) << "DuckDB " << cols[c].name << " row " << r;
            }
        }
    }
    // Chunk metadata as DuckDB sees it: the codec, null counts adding up to the nulls of
    // each column, and string min/max that bound the column's values exactly.
    std::vector<std::int64_t> nulls(cols.size(), 0);
    std::vector<std::optional<std::string>> mins(cols.size()), maxs(cols.size());
    for (const jvalue& chunk : duck["chunks"].items) {
        EXPECT_EQ(chunk["compression"].s, codec_upper(o.codec));
        std::size_t c = 0;
        while (c < cols.size() && cols[c].name != chunk["column"].s)
            ++c;
        ASSERT_LT(c, cols.size()) << chunk["column"].s;
        nulls[c] += std::stoll(chunk["null_count"].s);
        if (cols[c].logical == "STRING" && !chunk["min"].null) {
            if (!mins[c] || chunk["min"].s < *mins[c])
                mins[c] = chunk["min"].s;
            if (!maxs[c] || chunk["max"].s > *maxs[c])
                maxs[c] = chunk["max"].s;
        }
    }
    for (std::size_t c = 0; c < cols.size(); ++c) {
        std::int64_t want_nulls = 0;
        std::optional<std::string> lo, hi;
        for (std::size_t r = 0; r < events.size(); ++r) {
            const auto v = cell(cols[c], r, micros, true);
            if (!v) {
                ++want_nulls;
            } else if (cols[c].logical == "STRING" && v->size() <= 4096) {
                if (!lo || *v < *lo)
                    lo = v;
                if (!hi || *v > *hi)
                    hi = v;
            }
        }
        EXPECT_EQ(nulls[c], want_nulls) << cols[c].name;
        if (cols[c].logical == "STRING" && mins[c]) {
            EXPECT_EQ(mins[c], lo) << cols[c].name;
            EXPECT_EQ(maxs[c], hi) << cols[c].name;
        }
    }

    // hyparquet: the schema it decoded and every cell.
    const jvalue& hy = report["hyparquet"];
    EXPECT_EQ(hy["num_rows"].s, std::to_string(events.size()));
    ASSERT_EQ(hy["columns"].items.size(), cols.size());
    for (std::size_t c = 0; c < cols.size(); ++c) {
        const jvalue& s = hy["columns"].items[c];
        SCOPED_TRACE("hyparquet " + cols[c].name);
        EXPECT_EQ(s["name"].s, cols[c].name);
        EXPECT_EQ(s["type"].s, cols[c].physical);
        EXPECT_EQ(s["repetition"].s, cols[c].repetition);
        if (cols[c].logical.empty()) {
            EXPECT_TRUE(s["logical"].null);
        } else {
            EXPECT_EQ(s["logical"].s, cols[c].logical);
        }
        if (cols[c].timestamp) {
            EXPECT_EQ(s["unit"].s, micros ? "MICROS" : "MILLIS");
            EXPECT_EQ(s["utc"].s, o.layout == parquet_layout::penne ? "true" : "false");
        }
    }
    const auto& hrows = hy["rows"].items;
    ASSERT_EQ(hrows.size(), events.size());
    for (std::size_t r = 0; r < hrows.size(); ++r) {
        for (std::size_t c = 0; c < cols.size(); ++c) {
            const auto want = cell(cols[c], r, micros, false);
            const jvalue& got = hrows[r].items.at(c);
            ASSERT_EQ(got.null, !want.has_value()) << "hyparquet " << cols[c].name << " row " << r;
            if (want) {
                ASSERT_EQ(got.s, *want) << "hyparquet " << cols[c].name << " row " << r;
            }
        }
    }
}

struct variant {
    const char* name;
    parquet_layout layout;
    parquet_codec codec;
    parquet_timestamp_unit unit;
    ejson_mode mode;
};

const variant variants[] = {
    {"penne_none", parquet_layout::penne, parquet_codec::none, parquet_timestamp_unit::millis,
     ejson_mode::relaxed},
    {"penne_snappy", parquet_layout::penne, parquet_codec::snappy, parquet_timestamp_unit::millis,
     ejson_mode::relaxed},
    {"penne_gzip", parquet_layout::penne, parquet_codec::gzip, parquet_timestamp_unit::micros,
     ejson_mode::relaxed},
    {"penne_zstd", parquet_layout::penne, parquet_codec::zstd, parquet_timestamp_unit::millis,
     ejson_mode::canonical},
    {"penne_zstd_micros", parquet_layout::penne, parquet_codec::zstd,
     parquet_timestamp_unit::micros, ejson_mode::relaxed},
    {"rigatoni_snappy", parquet_layout::rigatoni, parquet_codec::snappy,
     parquet_timestamp_unit::micros, ejson_mode::relaxed},
    {"rigatoni_zstd_millis", parquet_layout::rigatoni, parquet_codec::zstd,
     parquet_timestamp_unit::millis, ejson_mode::relaxed},
};

TEST_F(ParquetReadback, EveryCodecAndLayoutReadsBackExactly) {
    const event_list events = test_events();
    for (const auto& v : variants) {
        SCOPED_TRACE(v.name);
        parquet_options o;
        o.layout = v.layout;
        o.codec = v.codec;
        o.timestamp_unit = v.unit;
        o.mode = v.mode;
        // Small sizes so that every file has several row groups, many pages, dictionary
        // pages and columns that fall back from dictionary to PLAIN.
        o.row_group_bytes = 48 * 1024;
        o.page_bytes = 2048;
        o.dictionary_max_bytes = 8 * 1024;
        jvalue report;
        ASSERT_NO_THROW(report = read_back(encode(o, events), v.name));
        check_report(report, events, o);
    }
}

TEST_F(ParquetReadback, DefaultOptions) {
    const event_list events = test_events();
    const parquet_options o;
    jvalue report;
    ASSERT_NO_THROW(report = read_back(encode(o, events), "defaults"));
    check_report(report, events, o);
}

TEST_F(ParquetReadback, AnEmptyBatchIsAnEmptyTable) {
    for (const auto layout : {parquet_layout::penne, parquet_layout::rigatoni}) {
        parquet_options o;
        o.layout = layout;
        jvalue report;
        ASSERT_NO_THROW(report = read_back(encode(o, {}), layout == parquet_layout::penne
                                                              ? "empty_penne"
                                                              : "empty_rigatoni"));
        check_report(report, {}, o);
    }
}

}  // namespace
}  // namespace penne::formats
