// The Avro container writer: varints against known bytes, the sync marker against SHA-256
// test vectors, the schema as JSON, and every object read back by a small container decoder
// written here from the Avro 1.11 spec (header, metadata map, blocks, all four codecs, a
// generic schema-driven record decoder). Expected values come from libbson, not from the
// tabular extractor the writer uses.
#include <penne/formats/avro.hpp>
#include <penne/formats/error.hpp>

#include "bson_corpus.hpp"
#include "event_builder.hpp"

#include <gtest/gtest.h>
#include <snappy.h>
#include <zlib.h>
#include <zstd.h>
#include <boost/json.hpp>

#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

namespace penne::formats {
namespace {

namespace json = boost::json;
using testing::bson_ptr;
using testing::bytes_of;
using testing::corpus_generator;
using testing::encode_events;
using testing::event_of;
using testing::event_parts;
using testing::make_event;

std::string hex(std::string_view bytes) {
    std::string out;
    for (unsigned char c : bytes) {
        out += "0123456789abcdef"[c >> 4];
        out += "0123456789abcdef"[c & 15];
    }
    return out;
}

std::string long_bytes(std::int64_t v) {
    std::string out;
    append_avro_long(v, out);
    return hex(out);
}

TEST(Avro, ZigzagVarintLongs) {
    EXPECT_EQ(long_bytes(0), "00");
    EXPECT_EQ(long_bytes(-1), "01");
    EXPECT_EQ(long_bytes(1), "02");
    EXPECT_EQ(long_bytes(-2), "03");
    EXPECT_EQ(long_bytes(2), "04");
    EXPECT_EQ(long_bytes(63), "7e");
    EXPECT_EQ(long_bytes(-64), "7f");
    EXPECT_EQ(long_bytes(64), "8001");
    EXPECT_EQ(long_bytes(-65), "8101");
    EXPECT_EQ(long_bytes(150), "ac02");
    EXPECT_EQ(long_bytes(8191), "fe7f");
    EXPECT_EQ(long_bytes(8192), "808001");
    EXPECT_EQ(long_bytes(1700000000000), "80a0abfef962");
    EXPECT_EQ(long_bytes(INT64_MAX), "feffffffffffffffff01");
    EXPECT_EQ(long_bytes(INT64_MIN), "ffffffffffffffffff01");
    // Appends, never replaces.
    std::string out = "x";
    append_avro_long(1, out);
    EXPECT_EQ(out, "x\x02");
}

std::string marker_hex(std::string_view key) {
    const auto m = avro_sync_marker_for(key);
    return hex({reinterpret_cast<const char*>(m.data()), m.size()});
}

TEST(Avro, SyncMarkerIsTheStartOfSha256OfTheKey) {
    // FIPS 180-4 examples and inputs at every padding boundary (55/56/63/64/119/120 bytes).
    EXPECT_EQ(marker_hex(""), "e3b0c44298fc1c149afbf4c8996fb924");
    EXPECT_EQ(marker_hex("abc"), "ba7816bf8f01cfea414140de5dae2223");
    EXPECT_EQ(marker_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
              "248d6a61d20638b8e5c026930c3e6039");
    EXPECT_EQ(marker_hex(std::string(55, 'a')), "9f4390f8d30c2dd92ec9f095b65e2b9a");
    EXPECT_EQ(marker_hex(std::string(56, 'a')), "b35439a4ac6f0948b6d6f9e3c6af0f5f");
    EXPECT_EQ(marker_hex(std::string(63, 'a')), "7d3e74a05d7db15bce4ad9ec0658ea98");
    EXPECT_EQ(marker_hex(std::string(64, 'a')), "ffe054fe7ae0cb6dc65c3af9b61d5209");
    EXPECT_EQ(marker_hex(std::string(119, 'a')), "31eba51c313a5c08226adf18d4a359cf");
    EXPECT_EQ(marker_hex(std::string(120, 'a')), "2f3d335432c70b580af0e8e1b3674a7c");
    EXPECT_EQ(marker_hex(std::string(100, 'k')), "e37c7cb78ccb30f0e2036576d681d619");
    EXPECT_EQ(marker_hex("shop/orders/2026/01/01/000001.avro"), "0e2da962f81d1237ca05b88faacee329");
}

// ---------------------------------------------------------------------------------------
// Events

// The penne-layout record libbson says an event should become.
json::object expected_record(const std::vector<std::uint8_t>& raw, ejson_mode mode,
                             avro_timestamp_unit unit) {
    const std::int64_t scale = unit == avro_timestamp_unit::micros ? 1000 : 1;
    json::object r;
    for (const char* k :
         {"database", "collection", "wall_time", "document_key", "full_document",
          "update_description", "full_document_before_change", "txn_number", "lsid"}) {
        r[k] = nullptr;
    }
    bson_t doc;
    EXPECT_TRUE(bson_init_static(&doc, raw.data(), raw.size()));
    auto render = [mode](const bson_iter_t& it) -> json::value {
        if (BSON_ITER_HOLDS_NULL(&it))
            return nullptr;
        std::uint32_t len = 0;
        const std::uint8_t* data = nullptr;
        bson_iter_document(&it, &len, &data);
        bson_t sub;
        EXPECT_TRUE(bson_init_static(&sub, data, len));
        char* s = mode == ejson_mode::canonical ? bson_as_canonical_extended_json(&sub, nullptr)
                                                : bson_as_relaxed_extended_json(&sub, nullptr);
        json::string out(s);
        bson_free(s);
        return out;
    };
    bson_iter_t it;
    bson_iter_init(&it, &doc);
    while (bson_iter_next(&it)) {
        const std::string_view key = bson_iter_key(&it);
        if (key == "_id") {
            r["resume_token"] = render(it);
        } else if (key == "operationType") {
            r["operation"] = bson_iter_utf8(&it, nullptr);
        } else if (key == "clusterTime") {
            std::uint32_t t = 0, i = 0;
            bson_iter_timestamp(&it, &t, &i);
            r["cluster_time"] = std::int64_t{t} * 1000 * scale;
            r["cluster_time_increment"] = std::int64_t{i};
        } else if (key == "wallTime") {
            r["wall_time"] = bson_iter_date_time(&it) * scale;
        } else if (key == "ns") {
            bson_iter_t ns;
            bson_iter_recurse(&it, &ns);
            while (bson_iter_next(&ns)) {
                if (std::string_view(bson_iter_key(&ns)) == "db")
                    r["database"] = bson_iter_utf8(&ns, nullptr);
                if (std::string_view(bson_iter_key(&ns)) == "coll")
                    r["collection"] = bson_iter_utf8(&ns, nullptr);
            }
        } else if (key == "documentKey") {
            r["document_key"] = render(it);
        } else if (key == "fullDocument") {
            r["full_document"] = render(it);
        } else if (key == "updateDescription") {
            r["update_description"] = render(it);
        } else if (key == "fullDocumentBeforeChange") {
            r["full_document_before_change"] = render(it);
        } else if (key == "lsid") {
            r["lsid"] = render(it);
        } else if (key == "txnNumber") {
            r["txn_number"] = bson_iter_as_int64(&it);
        }
    }
    return r;
}

// ---------------------------------------------------------------------------------------
// A container decoder written from the spec.

struct decode_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

class byte_reader {
public:
    explicit byte_reader(std::string_view b) : b_(b) {}

    std::int64_t read_long() {
        std::uint64_t z = 0;
        for (int shift = 0; shift < 70; shift += 7) {
            if (pos_ >= b_.size())
                throw decode_error("truncated long");
            const auto c = static_cast<unsigned char>(b_[pos_++]);
            if (shift == 63 && (c & 0x7E) != 0)
                throw decode_error("long overflows 64 bits");
            z |= std::uint64_t{c & 0x7Fu} << shift;
            if (!(c & 0x80))
                return static_cast<std::int64_t>(z >> 1) ^ -static_cast<std::int64_t>(z & 1);
        }
        throw decode_error("long longer than 10 bytes");
    }

    std::string_view read_fixed(std::size_t n) {
        if (b_.size() - pos_ < n)
            throw decode_error("truncated data");
        auto s = b_.substr(pos_, n);
        pos_ += n;
        return s;
    }

    std::string_view read_bytes() {
        const std::int64_t n = read_long();
        if (n < 0)
            throw decode_error("negative length");
        return read_fixed(static_cast<std::size_t>(n));
    }

    bool at_end() const noexcept { return pos_ == b_.size(); }

private:
    std::string_view b_;
    std::size_t pos_ = 0;
};

// Decodes one value of `schema` (the subset penne writes: records, unions, null, long,
// string, and logical types over long).
json::value decode_value(const json::value& schema, byte_reader& r) {
    if (schema.is_string()) {
        const std::string_view t = schema.as_string();
        if (t == "null")
            return nullptr;
        if (t == "long")
            return r.read_long();
        if (t == "string") {
            const auto s = r.read_bytes();
            return json::string(s);
        }
        throw decode_error("unexpected type " + std::string(t));
    }
    if (schema.is_array()) {
        const auto& branches = schema.as_array();
        const std::int64_t i = r.read_long();
        if (i < 0 || static_cast<std::size_t>(i) >= branches.size())
            throw decode_error("union branch out of range");
        return decode_value(branches[static_cast<std::size_t>(i)], r);
    }
    const auto& o = schema.as_object();
    const auto& type = o.at("type");
    if (type.is_string() && type.as_string() == "record") {
        json::object rec;
        for (const auto& f : o.at("fields").as_array())
            rec[f.as_object().at("name").as_string()] = decode_value(f.as_object().at("type"), r);
        return rec;
    }
    return decode_value(type, r);
}

struct block_info {
    std::int64_t count = 0;
    std::size_t stored = 0;        // bytes as the codec left them
    std::size_t uncompressed = 0;  // bytes of the records
};

struct avro_file {
    std::string schema;
    std::string codec;
    std::size_t metadata_entries = 0;
    std::string sync;
    std::vector<block_info> blocks;
    std::vector<json::object> records;
};

std::string inflate_raw(std::string_view in) {
    z_stream z{};
    if (inflateInit2(&z, -15) != Z_OK)
        throw decode_error("inflateInit2");
    std::string out;
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z.avail_in = static_cast<uInt>(in.size());
    int rc = Z_OK;
    while (rc != Z_STREAM_END) {
        const std::size_t have = out.size();
        out.resize(have + 64 * 1024);
        z.next_out = reinterpret_cast<Bytef*>(out.data() + have);
        z.avail_out = 64 * 1024;
        rc = inflate(&z, Z_NO_FLUSH);
        out.resize(out.size() - z.avail_out);
        if (rc != Z_OK && rc != Z_STREAM_END) {
            inflateEnd(&z);
            throw decode_error("corrupt deflate block");
        }
        if (rc == Z_OK && z.avail_in == 0 && z.avail_out != 0) {
            inflateEnd(&z);
            throw decode_error("truncated deflate block");
        }
    }
    const bool trailing = z.avail_in != 0;
    inflateEnd(&z);
    if (trailing)
        throw decode_error("bytes after the deflate stream");
    return out;
}

std::string unsnappy(std::string_view in) {
    if (in.size() < 4)
        throw decode_error("snappy block without checksum");
    std::string out;
    if (!snappy::Uncompress(in.data(), in.size() - 4, &out))
        throw decode_error("corrupt snappy block");
    const auto* c = reinterpret_cast<const unsigned char*>(in.data() + in.size() - 4);
    const std::uint32_t stored = std::uint32_t{c[0]} << 24 | std::uint32_t{c[1]} << 16 |
                                 std::uint32_t{c[2]} << 8 | std::uint32_t{c[3]};
    const auto actual = static_cast<std::uint32_t>(
        crc32(0, reinterpret_cast<const Bytef*>(out.data()), static_cast<uInt>(out.size())));
    if (stored != actual)
        throw decode_error("snappy block checksum mismatch");
    return out;
}

std::string unzstd(std::string_view in) {
    if (ZSTD_findFrameCompressedSize(in.data(), in.size()) != in.size())
        throw decode_error("zstandard block is not exactly one frame");
    const auto n = ZSTD_getFrameContentSize(in.data(), in.size());
    if (n == ZSTD_CONTENTSIZE_ERROR || n == ZSTD_CONTENTSIZE_UNKNOWN)
        throw decode_error("zstandard frame without content size");
    std::string out(n, '\0');
    const auto got = ZSTD_decompress(out.data(), out.size(), in.data(), in.size());
    if (ZSTD_isError(got) || got != n)
        throw decode_error("corrupt zstandard frame");
    return out;
}

avro_file decode_container(std::string_view bytes) {
    avro_file f;
    byte_reader r(bytes);
    if (r.read_fixed(4) != std::string_view("Obj\x01", 4))
        throw decode_error("bad magic");
    for (;;) {
        std::int64_t n = r.read_long();
        if (n == 0)
            break;
        if (n < 0) {
            n = -n;
            r.read_long();  // the block's byte size
        }
        for (std::int64_t i = 0; i < n; ++i) {
            const std::string key(r.read_bytes());
            const std::string value(r.read_bytes());
            ++f.metadata_entries;
            if (key == "avro.schema")
                f.schema = value;
            if (key == "avro.codec")
                f.codec = value;
        }
    }
    f.sync = r.read_fixed(16);
    const json::value schema = json::parse(f.schema);
    while (!r.at_end()) {
        block_info b;
        b.count = r.read_long();
        const std::int64_t size = r.read_long();
        if (b.count <= 0 || size < 0)
            throw decode_error("bad block header");
        const std::string_view stored = r.read_fixed(static_cast<std::size_t>(size));
        if (r.read_fixed(16) != f.sync)
            throw decode_error("sync marker mismatch after a block");
        std::string data;
        if (f.codec == "null" || f.codec.empty()) {
            data = stored;
        } else if (f.codec == "deflate") {
            data = inflate_raw(stored);
        } else if (f.codec == "snappy") {
            data = unsnappy(stored);
        } else if (f.codec == "zstandard") {
            data = unzstd(stored);
        } else {
            throw decode_error("unknown codec " + f.codec);
        }
        b.stored = stored.size();
        b.uncompressed = data.size();
        byte_reader records(data);
        for (std::int64_t i = 0; i < b.count; ++i)
            f.records.push_back(decode_value(schema, records).as_object());
        if (!records.at_end())
            throw decode_error("bytes left after the block's records");
        f.blocks.push_back(b);
    }
    return f;
}

avro_file decode_or_fail(const std::string& bytes) {
    try {
        return decode_container(bytes);
    } catch (const std::exception& e) {
        ADD_FAILURE() << "cannot decode the container: " << e.what();
        return {};
    }
}

// ---------------------------------------------------------------------------------------
// Encoding helpers

std::unique_ptr<avro_encoder_factory> factory(const avro_options& o) {
    std::unique_ptr<avro_encoder_factory> f;
    diagnostics diag;
    EXPECT_FALSE(avro_encoder_factory::create(o, f, diag)) << diag.message;
    return f;
}

std::string encode(const encoder_factory& f, const std::vector<std::vector<std::uint8_t>>& events,
                   std::string_view key = "shop/orders/0.avro") {
    return encode_events(f, events, key);
}

std::vector<std::vector<std::uint8_t>> hand_events() {
    std::vector<std::vector<std::uint8_t>> events;
    event_parts insert;
    insert.full_document =
        R"({"_id": 42, "name": "Zoë \"Z\"", "n": 1.5, "big": {"$numberLong": "9007199254740993"}})";
    insert.txn = 3;
    insert.lsid = R"({"id": {"$binary": {"base64": "AAECAwQFBgcICQoLDA0ODw==", "subType": "04"}}})";
    events.push_back(make_event(insert));
    event_parts update;
    update.op = "update";
    update.inc = 0;
    update.update_description = R"({"updatedFields": {"x": 1}, "removedFields": ["y"]})";
    update.full_document_null = true;
    update.before_change = R"({"_id": 42, "x": 0, "y": true})";
    update.txn = INT64_MAX;
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
    invalidate.wall = -62135596800000;  // 0001-01-01
    events.push_back(make_event(invalidate));
    return events;
}

// ---------------------------------------------------------------------------------------
// Tests

TEST(Avro, Info) {
    avro_encoder_factory f;
    const auto info = f.info();
    EXPECT_EQ(info.extension, "avro");
    EXPECT_EQ(info.content_type, "application/avro");
    EXPECT_TRUE(info.compresses_itself);
    EXPECT_EQ(f.options().codec, avro_codec::deflate);
    EXPECT_EQ(f.options().level, 6) << "level 0 becomes the codec's default";
    EXPECT_EQ(f.options().block_bytes, 64u * 1024);

    avro_options o;
    o.codec = avro_codec::zstandard;
    EXPECT_EQ(factory(o)->options().level, 3);
    o.level = 19;
    EXPECT_EQ(factory(o)->options().level, 19);
}

TEST(Avro, CodecNames) {
    for (avro_codec c :
         {avro_codec::null, avro_codec::deflate, avro_codec::snappy, avro_codec::zstandard}) {
        avro_codec parsed = avro_codec::null;
        diagnostics diag;
        EXPECT_FALSE(parse_avro_codec(avro_codec_name(c), parsed, diag));
        EXPECT_EQ(parsed, c);
    }
    EXPECT_EQ(avro_codec_name(avro_codec::zstandard), "zstandard");
    for (const char* bad : {"zstd", "gzip", "Deflate", "", "none"}) {
        avro_codec parsed = avro_codec::snappy;
        diagnostics diag;
        EXPECT_EQ(parse_avro_codec(bad, parsed, diag),
                  make_error_code(penne::errc::invalid_config));
        EXPECT_EQ(parsed, avro_codec::snappy) << "unchanged on failure";
        EXPECT_NE(diag.message.find("zstandard"), std::string::npos) << diag.message;
    }
}

TEST(Avro, InvalidOptionsAreRejected) {
    struct bad_case {
        avro_options opts;
        const char* names;
    };
    std::vector<bad_case> cases;
    auto add = [&cases](auto mutate, const char* names) {
        avro_options o;
        mutate(o);
        cases.push_back({o, names});
    };
    add([](avro_options& o) { o.level = 10; }, "avro.level");
    add([](avro_options& o) { o.level = -1; }, "avro.level");
    add(
        [](avro_options& o) {
            o.codec = avro_codec::zstandard;
            o.level = 20;
        },
        "avro.level");
    add(
        [](avro_options& o) {
            o.codec = avro_codec::snappy;
            o.level = 1;
        },
        "avro.level");
    add(
        [](avro_options& o) {
            o.codec = avro_codec::null;
            o.level = 3;
        },
        "avro.level");
    add([](avro_options& o) { o.block_bytes = 1023; }, "avro.block_bytes");
    add([](avro_options& o) { o.block_bytes = (std::size_t(64) << 20) + 1; }, "avro.block_bytes");
    add([](avro_options& o) { o.codec = static_cast<avro_codec>(9); }, "avro.codec");
    add([](avro_options& o) { o.layout = static_cast<avro_layout>(9); }, "avro.layout");
    add([](avro_options& o) { o.mode = static_cast<ejson_mode>(9); }, "avro.json_mode");
    add([](avro_options& o) { o.timestamp_unit = static_cast<avro_timestamp_unit>(9); },
        "avro.timestamp_unit");
    for (const auto& c : cases) {
        diagnostics diag;
        EXPECT_EQ(validate(c.opts, diag), make_error_code(penne::errc::invalid_config));
        EXPECT_NE(diag.message.find(c.names), std::string::npos) << diag.message;
        std::unique_ptr<avro_encoder_factory> f;
        EXPECT_TRUE(avro_encoder_factory::create(c.opts, f, diag));
        EXPECT_FALSE(f);
    }
    avro_options edge;
    edge.block_bytes = 1024;
    edge.codec = avro_codec::deflate;
    edge.level = 9;
    EXPECT_TRUE(factory(edge));
    edge.block_bytes = std::size_t(64) << 20;
    edge.codec = avro_codec::zstandard;
    edge.level = 1;
    EXPECT_TRUE(factory(edge));
}

std::vector<std::string> field_names(const json::value& schema) {
    std::vector<std::string> names;
    for (const auto& f : schema.at("fields").as_array())
        names.emplace_back(f.at("name").as_string());
    return names;
}

TEST(Avro, PenneSchemaParsesAndNamesEveryField) {
    for (auto unit : {avro_timestamp_unit::millis, avro_timestamp_unit::micros}) {
        avro_options o;
        o.timestamp_unit = unit;
        auto f = factory(o);
        const json::value s = json::parse(f->schema());
        EXPECT_EQ(s.at("name").as_string(), "penne.ChangeEvent");
        EXPECT_EQ(s.at("type").as_string(), "record");
        // Parsing Canonical Form order of the attributes.
        auto it = s.as_object().begin();
        EXPECT_EQ(it++->key(), "name");
        EXPECT_EQ(it++->key(), "type");
        EXPECT_EQ(it++->key(), "fields");
        const std::vector<std::string> expected = {
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
        EXPECT_EQ(field_names(s), expected);
        const json::value ts = {
            {"type", "long"},
            {"logicalType",
             unit == avro_timestamp_unit::micros ? "timestamp-micros" : "timestamp-millis"}};
        const auto& fields = s.at("fields").as_array();
        auto type_of = [&](std::size_t i) { return fields[i].at("type"); };
        EXPECT_EQ(type_of(0), json::value("string"));
        EXPECT_EQ(type_of(1), json::parse(R"(["null","string"])"));
        EXPECT_EQ(type_of(3), ts);
        EXPECT_EQ(type_of(4), json::value("long"));
        EXPECT_EQ(type_of(5), (json::array{"null", ts}));
        EXPECT_EQ(type_of(10), json::parse(R"(["null","long"])"));
        EXPECT_EQ(type_of(12), json::value("string"));
        for (const auto& fv : fields) {
            const auto& field = fv.as_object();
            const bool nullable = field.at("type").is_array();
            EXPECT_EQ(field.contains("default"), nullable) << field.at("name");
            if (nullable) {
                EXPECT_TRUE(field.at("default").is_null());
                EXPECT_EQ(field.at("type").as_array()[0], json::value("null"));
            }
        }
    }
}

TEST(Avro, RigatoniSchemaMatchesRigatonisWriter) {
    avro_options o;
    o.layout = avro_layout::rigatoni;
    auto f = factory(o);
    const json::value s = json::parse(f->schema());
    EXPECT_EQ(s.at("name").as_string(), "rigatoni.ChangeEvent");
    EXPECT_EQ(field_names(s),
              (std::vector<std::string>{"operation", "database", "collection", "cluster_time",
                                        "document_key", "full_document", "resume_token"}));
    const auto& fields = s.at("fields").as_array();
    for (std::size_t i : {0, 1, 2, 3, 6})
        EXPECT_EQ(fields[i].at("type"), json::value("string"));
    for (std::size_t i : {4, 5}) {
        EXPECT_EQ(fields[i].at("type"), json::parse(R"(["null","string"])"));
        EXPECT_TRUE(fields[i].at("default").is_null());
    }
}

TEST(Avro, HeaderOfAnEmptyBatch) {
    for (avro_codec c :
         {avro_codec::null, avro_codec::deflate, avro_codec::snappy, avro_codec::zstandard}) {
        avro_options o;
        o.codec = c;
        auto f = factory(o);
        auto enc = f->open("shop/orders/0.avro");
        const std::size_t held = enc->buffered_bytes();
        std::string out = "stale";
        enc->finish(out);
        EXPECT_EQ(held, out.size()) << "an empty batch is its header";
        // Magic, then a map of two entries; spelled out for the first ones.
        std::string prefix = std::string("Obj\x01", 4) + "\x04" + "\x16" + "avro.schema";
        EXPECT_EQ(out.substr(0, prefix.size()), prefix);
        const avro_file file = decode_or_fail(out);
        EXPECT_EQ(file.metadata_entries, 2u);
        EXPECT_EQ(file.codec, avro_codec_name(c));
        EXPECT_EQ(file.schema, f->schema());
        EXPECT_TRUE(file.blocks.empty());
        const auto m = avro_sync_marker_for("shop/orders/0.avro");
        EXPECT_EQ(out.substr(out.size() - 16),
                  std::string_view(reinterpret_cast<const char*>(m.data()), 16));
    }
}

struct round_trip_case {
    avro_codec codec;
    avro_timestamp_unit unit;
    ejson_mode mode;
};

class AvroRoundTrip : public ::testing::TestWithParam<round_trip_case> {};

TEST_P(AvroRoundTrip, EveryValueReadsBack) {
    const auto p = GetParam();
    avro_options o;
    o.codec = p.codec;
    o.timestamp_unit = p.unit;
    o.mode = p.mode;
    o.block_bytes = 2048;  // several blocks for the corpus events
    auto f = factory(o);

    auto events = hand_events();
    corpus_generator gen(77);
    for (int i = 0; i < 40; ++i)
        events.push_back(bytes_of(gen.change_event().get()));

    const std::string out = encode(*f, events);
    const avro_file file = decode_or_fail(out);
    EXPECT_EQ(file.codec, avro_codec_name(p.codec));
    ASSERT_EQ(file.records.size(), events.size());
    for (std::size_t i = 0; i < events.size(); ++i)
        EXPECT_EQ(file.records[i], expected_record(events[i], p.mode, p.unit)) << "record " << i;
    EXPECT_GT(file.blocks.size(), 3u);
    for (std::size_t b = 0; b + 1 < file.blocks.size(); ++b) {
        EXPECT_GE(file.blocks[b].uncompressed, o.block_bytes) << "block " << b;
        EXPECT_LT(file.blocks[b].uncompressed, o.block_bytes + 4096) << "block " << b;
    }
    if (p.codec != avro_codec::null) {
        std::size_t stored = 0, raw = 0;
        for (const auto& b : file.blocks) {
            stored += b.stored;
            raw += b.uncompressed;
        }
        EXPECT_LT(stored, raw) << "the codec compressed the blocks";
    }
}

INSTANTIATE_TEST_SUITE_P(
    Codecs, AvroRoundTrip,
    ::testing::Values(
        round_trip_case{avro_codec::null, avro_timestamp_unit::millis, ejson_mode::relaxed},
        round_trip_case{avro_codec::deflate, avro_timestamp_unit::millis, ejson_mode::relaxed},
        round_trip_case{avro_codec::snappy, avro_timestamp_unit::millis, ejson_mode::relaxed},
        round_trip_case{avro_codec::zstandard, avro_timestamp_unit::millis, ejson_mode::relaxed},
        round_trip_case{avro_codec::null, avro_timestamp_unit::micros, ejson_mode::canonical},
        round_trip_case{avro_codec::deflate, avro_timestamp_unit::micros, ejson_mode::canonical},
        round_trip_case{avro_codec::snappy, avro_timestamp_unit::micros, ejson_mode::canonical},
        round_trip_case{avro_codec::zstandard, avro_timestamp_unit::micros, ejson_mode::canonical}),
    [](const auto& info) {
        return std::string(avro_codec_name(info.param.codec)) + "_" +
               (info.param.unit == avro_timestamp_unit::micros ? "micros_canonical"
                                                               : "millis_relaxed");
    });

TEST(Avro, ExactValuesOfThePenneLayout) {
    avro_options o;
    o.codec = avro_codec::null;
    auto f = factory(o);
    const avro_file file = decode_or_fail(encode(*f, hand_events()));
    ASSERT_EQ(file.records.size(), 5u);
    EXPECT_EQ(file.blocks.size(), 1u);
    const json::value first = json::parse(R"({
        "operation": "insert", "database": "shop", "collection": "orders",
        "cluster_time": 1700000000000, "cluster_time_increment": 7,
        "wall_time": 1700000000123,
        "document_key": "{ \"_id\" : 42 }",
        "full_document": "{ \"_id\" : 42, \"name\" : \"Zoë \\\"Z\\\"\", \"n\" : 1.5, \"big\" : 9007199254740993 }",
        "update_description": null, "full_document_before_change": null,
        "txn_number": 3,
        "lsid": "{ \"id\" : { \"$binary\" : { \"base64\" : \"AAECAwQFBgcICQoLDA0ODw==\", \"subType\" : \"04\" } } }",
        "resume_token": "{ \"_data\" : \"8265\" }"})");
    EXPECT_EQ(json::value(file.records[0]), first);
    EXPECT_TRUE(file.records[1].at("full_document").is_null()) << "BSON null is Avro null";
    EXPECT_EQ(file.records[1].at("txn_number"), json::value(INT64_MAX));
    EXPECT_EQ(file.records[2].at("cluster_time"), json::value(std::int64_t{4294967295} * 1000));
    EXPECT_EQ(file.records[2].at("cluster_time_increment"), json::value(4294967295));
    EXPECT_TRUE(file.records[2].at("wall_time").is_null());
    EXPECT_TRUE(file.records[3].at("collection").is_null());
    EXPECT_TRUE(file.records[3].at("document_key").is_null());
    EXPECT_EQ(file.records[3].at("wall_time"), json::value(-1));
    EXPECT_TRUE(file.records[4].at("database").is_null());
    EXPECT_EQ(file.records[4].at("wall_time"), json::value(-62135596800000));
}

TEST(Avro, ExactValuesOfTheRigatoniLayout) {
    event_parts insert;
    insert.full_document = R"({"_id": 42, "name": "a b, \"c\""})";
    event_parts update;
    update.op = "update";
    update.inc = 0;
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

    for (avro_codec c : {avro_codec::null, avro_codec::snappy, avro_codec::zstandard}) {
        avro_options o;
        o.layout = avro_layout::rigatoni;
        o.codec = c;
        // The timestamp unit only concerns the penne layout.
        o.timestamp_unit = avro_timestamp_unit::micros;
        auto f = factory(o);
        const avro_file file = decode_or_fail(encode(
            *f, {make_event(insert), make_event(update), make_event(drop_db), make_event(other)}));
        const json::value expected = json::parse(R"([
          {"operation": "Insert", "database": "shop", "collection": "orders",
           "cluster_time": "2023-11-14T22:13:20.007+00:00", "document_key": "{\"_id\":42}",
           "full_document": "{\"_id\":42,\"name\":\"a b, \\\"c\\\"\"}",
           "resume_token": "{\"_data\":\"8265\"}"},
          {"operation": "Update", "database": "shop", "collection": "orders",
           "cluster_time": "2023-11-14T22:13:20+00:00", "document_key": "{\"_id\":42}",
           "full_document": null, "resume_token": "{\"_data\":\"8265\"}"},
          {"operation": "DropDatabase", "database": "shop", "collection": "",
           "cluster_time": "2023-11-14T22:13:20+00:00", "document_key": null,
           "full_document": null, "resume_token": "{\"_data\":\"8265\"}"},
          {"operation": "createIndexes", "database": "", "collection": "",
           "cluster_time": "2023-11-14T22:13:20.045+00:00", "document_key": null,
           "full_document": null, "resume_token": "{\"_data\":\"8265\"}"}])");
        ASSERT_EQ(file.records.size(), 4u);
        for (std::size_t i = 0; i < 4; ++i)
            EXPECT_EQ(json::value(file.records[i]), expected.as_array()[i]) << i;
    }
}

TEST(Avro, SameKeySameBytesOtherKeyOtherMarker) {
    corpus_generator gen(5);
    std::vector<std::vector<std::uint8_t>> events;
    for (int i = 0; i < 30; ++i)
        events.push_back(bytes_of(gen.change_event().get()));
    for (avro_codec c :
         {avro_codec::null, avro_codec::deflate, avro_codec::snappy, avro_codec::zstandard}) {
        avro_options o;
        o.codec = c;
        o.block_bytes = 4096;
        auto f = factory(o);
        auto g = factory(o);  // a second factory: nothing is shared between them
        const std::string a = encode(*f, events, "shop/orders/1.avro");
        const std::string b = encode(*g, events, "shop/orders/1.avro");
        const std::string other = encode(*f, events, "shop/orders/2.avro");
        EXPECT_EQ(a, b) << "a replayed batch is byte-identical";
        ASSERT_EQ(a.size(), other.size());
        EXPECT_NE(a, other);
        const avro_file fa = decode_or_fail(a);
        const avro_file fo = decode_or_fail(other);
        EXPECT_GT(fa.blocks.size(), 1u);
        const auto ma = avro_sync_marker_for("shop/orders/1.avro");
        const auto mo = avro_sync_marker_for("shop/orders/2.avro");
        EXPECT_NE(ma, mo);
        EXPECT_EQ(fa.sync, std::string(reinterpret_cast<const char*>(ma.data()), 16));
        EXPECT_EQ(fo.sync, std::string(reinterpret_cast<const char*>(mo.data()), 16));
        // The two objects differ exactly in their sync markers.
        std::size_t differing = 0;
        for (std::size_t i = 0; i < a.size(); ++i)
            differing += a[i] != other[i];
        std::size_t marker_bytes_differing = 0;
        for (std::size_t i = 0; i < 16; ++i)
            marker_bytes_differing += ma[i] != mo[i];
        EXPECT_EQ(differing, marker_bytes_differing * (1 + fa.blocks.size()));
        EXPECT_EQ(fa.records, fo.records);
    }
}

TEST(Avro, UnencodableEventsLeaveTheBatchUnchanged) {
    avro_options o;
    o.codec = avro_codec::null;
    o.timestamp_unit = avro_timestamp_unit::micros;
    auto f = factory(o);
    const auto good = hand_events();
    const std::string clean = encode(*f, good);

    auto enc = f->open("shop/orders/0.avro");
    diagnostics diag;
    const std::vector<std::uint8_t> garbage = {1, 2, 3};
    event_parts no_op;
    no_op.op = "";
    event_parts huge_wall;
    huge_wall.wall = INT64_MAX / 100;  // fits milliseconds, not microseconds
    const std::vector<std::vector<std::uint8_t>> bad = {garbage, make_event(no_op),
                                                        make_event(huge_wall)};
    for (std::size_t i = 0; i < good.size(); ++i) {
        ASSERT_FALSE(enc->append(event_of(good[i]), diag)) << diag.message;
        const std::size_t held = enc->buffered_bytes();
        const auto& b = bad[i % bad.size()];
        diag.clear();
        EXPECT_EQ(enc->append(event_of(b), diag), make_error_code(penne::errc::unencodable_event));
        EXPECT_FALSE(diag.message.empty());
        if (i % bad.size() == 2) {
            EXPECT_EQ(diag.message,
                      "change event (insert) in shop.orders cannot be written as an Avro record: "
                      "wallTime is outside the range of timestamp-micros");
        }
        EXPECT_EQ(enc->buffered_bytes(), held);
    }
    std::string out;
    enc->finish(out);
    EXPECT_EQ(out, clean);

    // In milliseconds the same wall time is fine.
    avro_options millis;
    millis.codec = avro_codec::null;
    const avro_file file = decode_or_fail(encode(*factory(millis), {make_event(huge_wall)}));
    ASSERT_EQ(file.records.size(), 1u);
    EXPECT_EQ(file.records[0].at("wall_time"), json::value(INT64_MAX / 100));
}

TEST(Avro, CompressionLevelIsHonoured) {
    corpus_generator gen(11);
    std::vector<std::vector<std::uint8_t>> events;
    for (int i = 0; i < 200; ++i)
        events.push_back(bytes_of(gen.change_event().get()));
    for (auto [codec, low, high] :
         {std::tuple{avro_codec::deflate, 1, 9}, std::tuple{avro_codec::zstandard, 1, 19}}) {
        avro_options o;
        o.codec = codec;
        o.level = low;
        const std::string fast = encode(*factory(o), events);
        o.level = high;
        const std::string small = encode(*factory(o), events);
        EXPECT_LT(small.size(), fast.size()) << avro_codec_name(codec);
        EXPECT_EQ(decode_or_fail(fast).records, decode_or_fail(small).records);
    }
}

TEST(Avro, CompletedBlocksAreCompressedAsTheyFill) {
    corpus_generator gen(3);
    std::vector<std::vector<std::uint8_t>> events;
    for (int i = 0; i < 300; ++i)
        events.push_back(bytes_of(gen.change_event().get()));
    constexpr std::size_t block = 8192;
    constexpr std::size_t largest_record = 4096;  // corpus events stay well below
    std::size_t held_null = 0;
    for (avro_codec c : {avro_codec::null, avro_codec::zstandard}) {
        avro_options o;
        o.codec = c;
        o.block_bytes = block;
        auto f = factory(o);
        const std::size_t total = encode(*f, events).size();
        auto enc = f->open("shop/orders/0.avro");
        diagnostics diag;
        for (const auto& e : events) {
            ASSERT_FALSE(enc->append(event_of(e), diag));
            // What the batch holds: finished blocks (compressed) and at most one open block.
            EXPECT_LE(enc->buffered_bytes(), total + block + largest_record);
        }
        const std::size_t held = enc->buffered_bytes();
        std::string out;
        enc->finish(out);
        EXPECT_EQ(out.size(), total);
        // finish() adds the last block's header and sync marker, and compresses it.
        if (c == avro_codec::null) {
            held_null = held;
            EXPECT_LE(held, out.size());
            EXPECT_LE(out.size(), held + 16 + 20);
        } else {
            EXPECT_LT(held * 2, held_null) << "compressed blocks are what the batch holds";
            EXPECT_LE(out.size(), held + 16 + 20 + block);
        }
        const avro_file file = decode_or_fail(out);
        EXPECT_EQ(file.records.size(), events.size());
        EXPECT_GT(file.blocks.size(), 10u);
    }
}

TEST(Avro, EncodersOutliveTheirFactoryAndShareNothing) {
    corpus_generator gen(9);
    std::vector<std::vector<std::uint8_t>> events;
    for (int i = 0; i < 20; ++i)
        events.push_back(bytes_of(gen.change_event().get()));
    avro_options o;
    o.codec = avro_codec::deflate;
    o.block_bytes = 1024;
    auto f = factory(o);
    const std::string expected = encode(*f, events, "a");
    // Interleaved batches borrow codec contexts from the same pool block by block.
    auto a = f->open("a");
    auto b = f->open("a");
    f.reset();
    diagnostics diag;
    for (const auto& e : events) {
        ASSERT_FALSE(a->append(event_of(e), diag));
        ASSERT_FALSE(b->append(event_of(e), diag));
    }
    std::string out_a, out_b;
    a->finish(out_a);
    b->finish(out_b);
    EXPECT_EQ(out_a, expected);
    EXPECT_EQ(out_b, expected);
}

}  // namespace
}  // namespace penne::formats
