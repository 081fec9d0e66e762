// The CSV encoder: RFC 4180 quoting, exact bytes of both layouts, rejected events, and a round
// trip through an independent reader (Python's csv module) with several delimiters.
#include <penne/formats/csv.hpp>
#include <penne/formats/tabular.hpp>

#include "bson_corpus.hpp"
#include "event_builder.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
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
using testing::random_insert;

std::string field(std::string_view s, char delimiter = ',') {
    std::string out;
    append_csv_field(s, delimiter, out);
    return out;
}

TEST(Csv, Rfc4180Quoting) {
    EXPECT_EQ(field("plain"), "plain");
    EXPECT_EQ(field(""), "");
    EXPECT_EQ(field(" spaces kept "), " spaces kept ");
    EXPECT_EQ(field("a,b"), "\"a,b\"");
    EXPECT_EQ(field("say \"hi\""), "\"say \"\"hi\"\"\"");
    EXPECT_EQ(field("\""), "\"\"\"\"");
    EXPECT_EQ(field("\"\""), "\"\"\"\"\"\"");
    EXPECT_EQ(field("line\nbreak"), "\"line\nbreak\"");
    EXPECT_EQ(field("cr\rhere"), "\"cr\rhere\"");
    EXPECT_EQ(field("crlf\r\n"), "\"crlf\r\n\"");
    EXPECT_EQ(field("Zo\xc3\xab \xe6\x9d\x8e"), "Zo\xc3\xab \xe6\x9d\x8e") << "UTF-8 as it is";
    EXPECT_EQ(field("tab\there"), "tab\there");
    // The quoting follows the configured delimiter.
    EXPECT_EQ(field("a,b", ';'), "a,b");
    EXPECT_EQ(field("a;b", ';'), "\"a;b\"");
    EXPECT_EQ(field("tab\there", '\t'), "\"tab\there\"");
    EXPECT_EQ(field("2026-11-22", '-'), "\"2026-11-22\"");
}

TEST(Csv, InvalidOptionsAreRejected) {
    for (char d : {'"', '\r', '\n', '\xc3', '\xff'}) {
        csv_options o;
        o.delimiter = d;
        diagnostics diag;
        EXPECT_EQ(validate(o, diag), make_error_code(penne::errc::invalid_config));
        EXPECT_NE(diag.message.find("csv.delimiter"), std::string::npos);
        std::unique_ptr<csv_encoder_factory> f;
        EXPECT_TRUE(csv_encoder_factory::create(o, f, diag));
        EXPECT_FALSE(f);
    }
    for (char d : {',', ';', '\t', '|', ' ', '\x01'}) {
        csv_options o;
        o.delimiter = d;
        diagnostics diag;
        std::unique_ptr<csv_encoder_factory> f;
        EXPECT_FALSE(csv_encoder_factory::create(o, f, diag)) << diag.message;
        ASSERT_TRUE(f);
        EXPECT_EQ(f->options().delimiter, d);
    }
}

TEST(Csv, Info) {
    csv_encoder_factory f;
    auto info = f.info();
    EXPECT_EQ(info.extension, "csv");
    EXPECT_EQ(info.content_type, "text/csv");
    EXPECT_FALSE(info.compresses_itself);
    EXPECT_EQ(f.line_ending(), csv_line_ending::crlf) << "RFC 4180 by default";
    EXPECT_EQ(f.columns().size(), tabular_column_count);

    csv_options o;
    o.layout = csv_layout::rigatoni;
    std::unique_ptr<csv_encoder_factory> r;
    diagnostics diag;
    ASSERT_FALSE(csv_encoder_factory::create(o, r, diag));
    EXPECT_EQ(r->line_ending(), csv_line_ending::lf) << "as Rigatoni wrote";
    EXPECT_EQ(r->columns().size(), 7u);
    o.line_ending = csv_line_ending::crlf;
    ASSERT_FALSE(csv_encoder_factory::create(o, r, diag));
    EXPECT_EQ(r->line_ending(), csv_line_ending::crlf);
}

std::string encode(const encoder_factory& f, const std::vector<std::vector<std::uint8_t>>& events,
                   std::string_view key = "shop/orders/0.csv") {
    return encode_events(f, events, key);
}

std::unique_ptr<csv_encoder_factory> factory(csv_options o) {
    std::unique_ptr<csv_encoder_factory> f;
    diagnostics diag;
    EXPECT_FALSE(csv_encoder_factory::create(o, f, diag)) << diag.message;
    return f;
}

const char* const penne_header =
    "operation,database,collection,cluster_time,cluster_time_increment,wall_time,document_key,"
    "full_document,update_description,full_document_before_change,txn_number,lsid,resume_token";

TEST(Csv, ExactBytesOfThePenneLayout) {
    event_parts insert;
    insert.full_document = R"({"_id": 42, "name": "Zoë \"Z\"", "n": 1.5})";
    insert.txn = 3;
    event_parts del;
    del.op = "delete";
    del.secs = 1795325617;
    del.inc = 1;
    del.wall = std::nullopt;
    event_parts drop_db;
    drop_db.op = "dropDatabase";
    drop_db.coll = nullptr;
    drop_db.document_key = nullptr;
    drop_db.wall = -1;

    csv_encoder_factory f;
    const std::string out = encode(f, {make_event(insert), make_event(del), make_event(drop_db)});
    const std::string expected =
        std::string(penne_header) + "\r\n" +
        R"(insert,shop,orders,2023-11-14T22:13:20.000Z,7,2023-11-14T22:13:20.123Z,)"
        R"("{ ""_id"" : 42 }","{ ""_id"" : 42, ""name"" : ""Zoë \""Z\"""", ""n"" : 1.5 }",,,3,,)"
        R"("{ ""_data"" : ""8265"" }")"
        "\r\n"
        R"(delete,shop,orders,2026-11-22T05:33:37.000Z,1,,"{ ""_id"" : 42 }",,,,,,)"
        R"("{ ""_data"" : ""8265"" }")"
        "\r\n"
        R"(dropDatabase,shop,,2023-11-14T22:13:20.000Z,7,1969-12-31T23:59:59.999Z,,,,,,,)"
        R"("{ ""_data"" : ""8265"" }")"
        "\r\n";
    EXPECT_EQ(out, expected);
}

TEST(Csv, HeaderOnlyForAnEmptyBatchAndLfOption) {
    csv_options o;
    o.line_ending = csv_line_ending::lf;
    o.delimiter = ';';
    auto f = factory(o);
    auto enc = f->open("k");
    std::string header(penne_header);
    for (auto& c : header) {
        if (c == ',')
            c = ';';
    }
    EXPECT_EQ(enc->buffered_bytes(), header.size() + 1);
    std::string out = "stale";
    enc->finish(out);
    EXPECT_EQ(out, header + "\n");
}

TEST(Csv, ExactBytesOfTheRigatoniLayout) {
    event_parts insert;
    insert.full_document = R"({"_id": 42, "name": "a b, \"c\""})";
    event_parts update;
    update.op = "update";
    update.inc = 0;
    update.update_description = R"({"updatedFields": {"x": 1}})";
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

    csv_options o;
    o.layout = csv_layout::rigatoni;
    auto f = factory(o);
    const std::string out = encode(
        *f, {make_event(insert), make_event(update), make_event(drop_db), make_event(other)});
    const std::string expected =
        "operation,database,collection,cluster_time,document_key,full_document,resume_token\n"
        R"(Insert,shop,orders,2023-11-14T22:13:20.007+00:00,"{""_id"":42}",)"
        R"("{""_id"":42,""name"":""a b, \""c\""""}","{""_data"":""8265""}")"
        "\n"
        R"(Update,shop,orders,2023-11-14T22:13:20+00:00,"{""_id"":42}",,"{""_data"":""8265""}")"
        "\n"
        R"(DropDatabase,shop,,2023-11-14T22:13:20+00:00,,,"{""_data"":""8265""}")"
        "\n"
        R"(createIndexes,,,2023-11-14T22:13:20.045+00:00,,,"{""_data"":""8265""}")"
        "\n";
    EXPECT_EQ(out, expected);
}

TEST(Csv, ARejectedEventLeavesTheBatchUnchanged) {
    csv_encoder_factory f;
    auto enc = f.open("k");
    diagnostics diag;
    const auto good = make_event(event_parts{});
    ASSERT_FALSE(enc->append(event_of(good), diag));
    const std::size_t before = enc->buffered_bytes();

    auto broken = good;
    broken.back() = 1;  // no terminator
    EXPECT_EQ(enc->append(event_of(broken), diag), make_error_code(penne::errc::unencodable_event));
    EXPECT_FALSE(diag.message.empty());
    EXPECT_EQ(enc->buffered_bytes(), before);

    event_parts bad_doc;
    bad_doc.full_document = R"({"a": 1})";
    auto inner = make_event(bad_doc);
    // Break the fullDocument's first element type byte (after its key and length).
    const std::string key = "fullDocument";
    auto it = std::search(inner.begin(), inner.end(), key.begin(), key.end());
    ASSERT_NE(it, inner.end());
    *(it + static_cast<std::ptrdiff_t>(key.size()) + 1 + 4) = 0x55;
    EXPECT_TRUE(enc->append(event_of(inner), diag));
    EXPECT_EQ(enc->buffered_bytes(), before);

    ASSERT_FALSE(enc->append(event_of(good), diag));
    std::string out;
    enc->finish(out);
    EXPECT_EQ(out, encode(f, {good, good}));
}

std::vector<std::vector<std::uint8_t>> mixed_events(std::uint64_t seed, int n) {
    corpus_generator gen(seed);
    std::vector<std::vector<std::uint8_t>> events;
    static const char* awkward[] = {"a,b",
                                    "q\"uote\"",
                                    "line\nbreak",
                                    "cr\rlf\r\n",
                                    "tab\there",
                                    "semi;colon",
                                    " padded ",
                                    "pipe|d",
                                    "\xe6\x9d\x8e\xe5\xb0\x8f\xe9\xbe\x8d",
                                    ""};
    for (int i = 0; i < n; ++i) {
        switch (i % 4) {
            case 0:
            case 1:
                events.push_back(bytes_of(gen.change_event().get()));
                break;
            case 2: {
                event_parts p;
                p.coll = awkward[gen.below(10)];
                p.db = awkward[gen.below(10)];
                p.inc = gen.below(5000);
                p.wall =
                    static_cast<std::int64_t>(gen.u64() % 400000000000000ULL) - 100000000000000LL;
                if (gen.chance(50))
                    p.txn = static_cast<std::int64_t>(gen.u64());
                events.push_back(make_event(p));
                break;
            }
            default: {
                // A random fullDocument of every BSON type inside an insert event.
                if (auto ev = random_insert(gen, nullptr, nullptr))
                    events.push_back(std::move(*ev));
                break;
            }
        }
    }
    return events;
}

// What an independent reader must see: the tabular row with nulls as empty strings.
std::vector<std::string> expected_fields(const tabular_row& row) {
    auto opt = [](const std::optional<std::string_view>& v) {
        return v ? std::string(*v) : std::string();
    };
    auto time = [](std::int64_t ms) {
        std::string s;
        append_iso8601_ms(ms, s);
        return s;
    };
    return {std::string(row.operation),
            opt(row.database),
            opt(row.collection),
            time(std::int64_t{row.cluster_time_seconds} * 1000),
            std::to_string(row.cluster_time_increment),
            row.wall_time_ms ? time(*row.wall_time_ms) : std::string(),
            opt(row.document_key),
            opt(row.full_document),
            opt(row.update_description),
            opt(row.full_document_before_change),
            row.txn_number ? std::to_string(*row.txn_number) : std::string(),
            opt(row.lsid),
            std::string(row.resume_token)};
}

const char* const python = "/usr/bin/python3";

// Python's csv module reads `csv_bytes`; each record comes back as its fields.
std::vector<std::vector<std::string>> read_with_python(const std::string& csv_bytes,
                                                       char delimiter) {
    static int counter = 0;
    const auto dir = std::filesystem::temp_directory_path();
    const std::string stem =
        "penne_csv_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
    const auto data_path = dir / (stem + ".csv");
    const auto script_path = dir / (stem + ".py");
    {
        std::ofstream(data_path, std::ios::binary) << csv_bytes;
        std::ofstream(script_path) << R"(import csv, sys
out = sys.stdout.buffer
with open(sys.argv[1], newline='', encoding='utf-8', errors='strict') as f:
    for row in csv.reader(f, delimiter=chr(int(sys.argv[2])), strict=True):
        out.write(b'%d\n' % len(row))
        for field in row:
            b = field.encode('utf-8')
            out.write(b'%d:' % len(b) + b + b'\n')
)";
    }
    const std::string cmd = std::string(python) + " " + script_path.string() + " " +
                            data_path.string() + " " +
                            std::to_string(static_cast<unsigned char>(delimiter));
    std::string text;
    FILE* p = ::popen(cmd.c_str(), "r");
    EXPECT_NE(p, nullptr);
    if (p) {
        char buf[65536];
        std::size_t n;
        while ((n = std::fread(buf, 1, sizeof buf, p)) > 0)
            text.append(buf, n);
        EXPECT_EQ(::pclose(p), 0) << "python's csv reader failed";
    }
    std::filesystem::remove(data_path);
    std::filesystem::remove(script_path);

    std::vector<std::vector<std::string>> rows;
    std::size_t pos = 0;
    auto number = [&](char end) {
        const std::size_t stop = text.find(end, pos);
        if (stop == std::string::npos)
            return std::size_t{0};
        const std::size_t v = std::stoul(text.substr(pos, stop - pos));
        pos = stop + 1;
        return v;
    };
    while (pos < text.size()) {
        std::vector<std::string> row(number('\n'));
        for (auto& f : row) {
            const std::size_t len = number(':');
            f = text.substr(pos, len);
            pos += len + 1;
        }
        rows.push_back(std::move(row));
    }
    return rows;
}

TEST(Csv, PythonsCsvModuleReadsBackEveryValue) {
    if (::access(python, X_OK) != 0)
        GTEST_SKIP() << python << " is not installed";
    const auto events = mixed_events(2026, 400);
    for (const char delimiter : {',', ';', '\t', '|'}) {
        for (const auto ending : {csv_line_ending::crlf, csv_line_ending::lf}) {
            for (const auto mode : {ejson_mode::relaxed, ejson_mode::canonical}) {
                SCOPED_TRACE(::testing::Message() << "delimiter " << int(delimiter) << " ending "
                                                  << int(ending) << " mode " << int(mode));
                csv_options o;
                o.delimiter = delimiter;
                o.line_ending = ending;
                o.mode = mode;
                auto f = factory(o);
                const std::string out = encode(*f, events);
                const auto rows = read_with_python(out, delimiter);
                ASSERT_EQ(rows.size(), events.size() + 1);
                EXPECT_EQ(rows[0], std::vector<std::string>(tabular_column_names.begin(),
                                                            tabular_column_names.end()));
                tabular_extractor x(mode);
                for (std::size_t i = 0; i < events.size(); ++i) {
                    tabular_row row;
                    diagnostics diag;
                    ASSERT_FALSE(x.extract(event_of(events[i]), row, diag)) << diag.message;
                    ASSERT_EQ(rows[i + 1], expected_fields(row)) << "event " << i;
                }
            }
        }
    }
}

TEST(Csv, PythonReadsTheRigatoniLayout) {
    if (::access(python, X_OK) != 0)
        GTEST_SKIP() << python << " is not installed";
    const auto events = mixed_events(7, 200);
    csv_options o;
    o.layout = csv_layout::rigatoni;
    const std::string out = encode(*factory(o), events);
    const auto rows = read_with_python(out, ',');
    ASSERT_EQ(rows.size(), events.size() + 1);
    for (std::size_t i = 1; i < rows.size(); ++i) {
        ASSERT_EQ(rows[i].size(), 7u);
        EXPECT_EQ(rows[i][6].front(), '{');
        EXPECT_EQ(rows[i][6].find(' '), std::string::npos) << rows[i][6];
    }
}

TEST(Csv, Deterministic) {
    const auto events = mixed_events(99, 300);
    csv_encoder_factory f;
    const std::string a = encode(f, events, "shop/orders/a.csv");
    const std::string b = encode(f, events, "other/key/b.csv");
    EXPECT_EQ(a, b) << "the bytes depend on the events only, not on the key";
    csv_encoder_factory g;
    EXPECT_EQ(encode(g, events), a);
}

TEST(Csv, BufferedBytesTrackTheObject) {
    const auto events = mixed_events(5, 200);
    csv_encoder_factory f;
    auto enc = f.open("k");
    diagnostics diag;
    std::size_t last = enc->buffered_bytes();
    for (const auto& e : events) {
        ASSERT_FALSE(enc->append(event_of(e), diag)) << diag.message;
        EXPECT_GT(enc->buffered_bytes(), last);
        last = enc->buffered_bytes();
    }
    std::string out;
    enc->finish(out);
    EXPECT_EQ(out.size(), last);
}

}  // namespace
}  // namespace penne::formats
