// The walker against libbson 1.23.1, the reference it must match byte for byte.
#include <penne/formats/ejson.hpp>

#include "bson_corpus.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <optional>
#include <string>
#include <vector>

namespace penne::formats {
namespace {

using testing::bson_ptr;
using testing::bytes_of;
using testing::corpus_generator;

std::optional<std::string> reference(const std::vector<std::uint8_t>& doc, ejson_mode mode) {
    bson_t b;
    if (!bson_init_static(&b, doc.data(), doc.size()))
        return std::nullopt;
    char* s = mode == ejson_mode::relaxed ? bson_as_relaxed_extended_json(&b, nullptr)
                                          : bson_as_canonical_extended_json(&b, nullptr);
    if (!s)
        return std::nullopt;
    std::string r(s);
    bson_free(s);
    return r;
}

std::optional<std::string> ours(const std::vector<std::uint8_t>& doc, ejson_mode mode) {
    std::string out;
    if (!write_ejson(doc.data(), doc.size(), mode, out)) {
        EXPECT_TRUE(out.empty()) << "a failed write must leave the buffer as it was";
        return std::nullopt;
    }
    return out;
}

std::string hex(const std::vector<std::uint8_t>& v) {
    std::string s;
    for (auto b : v) {
        s += "0123456789abcdef"[b >> 4];
        s += "0123456789abcdef"[b & 15];
    }
    return s;
}

// Little builder for hand-made (and deliberately broken) BSON.
struct raw_doc {
    std::vector<std::uint8_t> b{0, 0, 0, 0};
    raw_doc& bytes(std::initializer_list<int> v) {
        for (int x : v)
            b.push_back(static_cast<std::uint8_t>(x));
        return *this;
    }
    raw_doc& str(std::string_view s) {
        b.insert(b.end(), s.begin(), s.end());
        return *this;
    }
    raw_doc& cstr(std::string_view s) {
        str(s);
        b.push_back(0);
        return *this;
    }
    raw_doc& i32(std::uint32_t v) {
        for (int i = 0; i < 4; ++i)
            b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
        return *this;
    }
    std::vector<std::uint8_t> done() {
        b.push_back(0);
        std::uint32_t n = static_cast<std::uint32_t>(b.size());
        std::memcpy(b.data(), &n, 4);
        return b;
    }
};

void expect_both(const std::vector<std::uint8_t>& doc, const std::string& relaxed,
                 const std::string& canonical) {
    EXPECT_EQ(reference(doc, ejson_mode::relaxed), relaxed) << "test expectation vs libbson";
    EXPECT_EQ(reference(doc, ejson_mode::canonical), canonical) << "test expectation vs libbson";
    EXPECT_EQ(ours(doc, ejson_mode::relaxed), relaxed);
    EXPECT_EQ(ours(doc, ejson_mode::canonical), canonical);
}

void expect_rejected(const std::vector<std::uint8_t>& doc) {
    EXPECT_EQ(ours(doc, ejson_mode::relaxed), std::nullopt) << hex(doc);
    EXPECT_EQ(ours(doc, ejson_mode::canonical), std::nullopt) << hex(doc);
}

// ---- hand-written cases, one per type and quirk ---------------------------------------

TEST(Ejson, EmptyDocuments) {
    expect_both(raw_doc{}.done(), "{ }", "{ }");
    // libbson prints nested empty containers with two spaces.
    expect_both(
        raw_doc{}.bytes({3}).cstr("a").i32(5).bytes({0, 4}).cstr("b").i32(5).bytes({0}).done(),
        R"({ "a" : {  }, "b" : [  ] })", R"({ "a" : {  }, "b" : [  ] })");
}

TEST(Ejson, Doubles) {
    struct c {
        double v;
        const char* relaxed;
        const char* text;
    };
    const c cases[] = {
        {0.0, "0.0", "0.0"},
        {-0.0, "-0.0", "-0.0"},
        {1.0, "1.0", "1.0"},
        {0.1, "0.10000000000000000555", "0.10000000000000000555"},
        {1e20, "1e+20", "1e+20"},
        {1e17, "100000000000000000.0", "100000000000000000.0"},
        {1e-5, "1.0000000000000000818e-05", "1.0000000000000000818e-05"},
        {5e-324, "4.9406564584124654418e-324", "4.9406564584124654418e-324"},
        {std::numeric_limits<double>::quiet_NaN(), R"({ "$numberDouble" : "NaN" })", "NaN"},
        {-std::numeric_limits<double>::quiet_NaN(), R"({ "$numberDouble" : "NaN" })", "NaN"},
        {std::numeric_limits<double>::infinity(), R"({ "$numberDouble" : "Infinity" })",
         "Infinity"},
        {-std::numeric_limits<double>::infinity(), R"({ "$numberDouble" : "-Infinity" })",
         "-Infinity"},
    };
    for (const auto& k : cases) {
        bson_ptr b(bson_new());
        bson_append_double(b.get(), "d", 1, k.v);
        expect_both(bytes_of(b.get()), std::string(R"({ "d" : )") + k.relaxed + " }",
                    std::string(R"({ "d" : { "$numberDouble" : ")") + k.text + "\" } }");
    }
}

TEST(Ejson, Integers) {
    bson_ptr b(bson_new());
    bson_append_int32(b.get(), "i", 1, INT32_MIN);
    bson_append_int64(b.get(), "l", 1, INT64_MAX);
    expect_both(
        bytes_of(b.get()), R"({ "i" : -2147483648, "l" : 9223372036854775807 })",
        R"({ "i" : { "$numberInt" : "-2147483648" }, "l" : { "$numberLong" : "9223372036854775807" } })");
}

TEST(Ejson, Dates) {
    struct c {
        std::int64_t ms;
        const char* relaxed;
    };
    const c cases[] = {
        {0, R"({ "$date" : "1970-01-01T00:00:00Z" })"},
        {1, R"({ "$date" : "1970-01-01T00:00:00.001Z" })"},
        {951782400000LL, R"({ "$date" : "2000-02-29T00:00:00Z" })"},
        {253402300799999LL, R"({ "$date" : "9999-12-31T23:59:59.999Z" })"},
        // libbson keeps the ISO form past year 9999 and switches only for negative dates.
        {253402300800000LL, R"({ "$date" : "10000-01-01T00:00:00Z" })"},
        {INT64_MAX, R"({ "$date" : "292278994-08-17T07:12:55.807Z" })"},
        {-1, R"({ "$date" : { "$numberLong" : "-1" } })"},
        {INT64_MIN, R"({ "$date" : { "$numberLong" : "-9223372036854775808" } })"},
    };
    for (const auto& k : cases) {
        bson_ptr b(bson_new());
        bson_append_date_time(b.get(), "t", 1, k.ms);
        expect_both(bytes_of(b.get()), std::string(R"({ "t" : )") + k.relaxed + " }",
                    std::string(R"({ "t" : { "$date" : { "$numberLong" : ")") +
                        std::to_string(k.ms) + "\" } } }");
    }
}

TEST(Ejson, Binary) {
    const std::uint8_t data[] = {1, 2, 3, 4, 5};
    for (int st : {0, 2, 3, 4, 0x80, 0xff}) {
        bson_ptr b(bson_new());
        bson_append_binary(b.get(), "b", 1, static_cast<bson_subtype_t>(st), data, 5);
        char sub[3];
        std::snprintf(sub, sizeof sub, "%02x", st);
        const std::string want =
            std::string(R"({ "b" : { "$binary" : { "base64" : "AQIDBAU=", "subType" : ")") + sub +
            "\" } } }";
        expect_both(bytes_of(b.get()), want, want);
    }
    // Old binary subtype 2: the inner length must agree with the outer one.
    expect_rejected(raw_doc{}.bytes({5}).cstr("a").i32(5).bytes({2}).i32(2).bytes({9}).done());
    expect_rejected(raw_doc{}.bytes({5}).cstr("a").i32(3).bytes({2, 1, 2, 3}).done());
}

TEST(Ejson, RegexOptionsAreSortedAndFiltered) {
    // Written by hand: bson_append_regex would sort the flags itself.
    auto doc = raw_doc{}.bytes({0x0B}).cstr("r").cstr("a\"b\\").cstr("zxsmlii").done();
    const std::string want =
        R"({ "r" : { "$regularExpression" : { "pattern" : "a\"b\\", "options" : "ilmsx" } } })";
    expect_both(doc, want, want);
    // The options are not checked for UTF-8; the pattern is.
    auto bad_opts = raw_doc{}.bytes({0x0B}).cstr("r").cstr("p").bytes({0xff, 'i', 0}).done();
    EXPECT_EQ(ours(bad_opts, ejson_mode::relaxed), reference(bad_opts, ejson_mode::relaxed));
    expect_rejected(raw_doc{}.bytes({0x0B}).cstr("r").bytes({0xff, 0}).cstr("i").done());
}

TEST(Ejson, LegacyTypes) {
    bson_oid_t oid;
    bson_oid_init_from_string(&oid, "0123456789abcdefABCDEF01");
    bson_ptr b(bson_new());
    bson_append_dbpointer(b.get(), "p", 1, "db.c\"x", &oid);
    bson_append_code(b.get(), "c", 1, "function(){}");
    bson_append_symbol(b.get(), "s", 1, "sym", 3);
    bson_append_undefined(b.get(), "u", 1);
    bson_append_minkey(b.get(), "mi", 2);
    bson_append_maxkey(b.get(), "ma", 2);
    bson_append_timestamp(b.get(), "ts", 2, 4294967295u, 7);
    bson_append_oid(b.get(), "o", 1, &oid);
    bson_append_null(b.get(), "n", 1);
    bson_append_bool(b.get(), "t", 1, true);
    bson_append_bool(b.get(), "f", 1, false);
    const std::string want =
        R"({ "p" : { "$dbPointer" : { "$ref" : "db.c\"x", "$id" : { "$oid" : "0123456789abcdefabcdef01" } } }, )"
        R"("c" : { "$code" : "function(){}" }, "s" : { "$symbol" : "sym" }, "u" : { "$undefined" : true }, )"
        R"("mi" : { "$minKey" : 1 }, "ma" : { "$maxKey" : 1 }, "ts" : { "$timestamp" : { "t" : 4294967295, "i" : 7 } }, )"
        R"("o" : { "$oid" : "0123456789abcdefabcdef01" }, "n" : null, "t" : true, "f" : false })";
    expect_both(bytes_of(b.get()), want, want);
}

TEST(Ejson, DbPointerPrintsUpToEmbeddedNul) {
    auto doc = raw_doc{}
                   .bytes({0x0C})
                   .cstr("a")
                   .i32(4)
                   .bytes({'a', 0, 'b', 0})
                   .bytes({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
                   .done();
    const std::string want =
        R"({ "a" : { "$dbPointer" : { "$ref" : "a", "$id" : { "$oid" : "0102030405060708090a0b0c" } } } })";
    expect_both(doc, want, want);
}

TEST(Ejson, CodeWithScope) {
    bson_ptr scope(bson_new());
    bson_append_int32(scope.get(), "x", 1, 1);
    bson_ptr empty(bson_new());
    bson_ptr b(bson_new());
    bson_append_code_with_scope(b.get(), "cs", 2, "f()", scope.get());
    bson_append_code_with_scope(b.get(), "e", 1, "g()", empty.get());
    // An empty scope is printed like a top-level document: "{ }", one space.
    expect_both(
        bytes_of(b.get()),
        R"j({ "cs" : { "$code" : "f()", "$scope" : { "x" : 1 } }, "e" : { "$code" : "g()", "$scope" : { } } })j",
        R"j({ "cs" : { "$code" : "f()", "$scope" : { "x" : { "$numberInt" : "1" } } }, "e" : { "$code" : "g()", "$scope" : { } } })j");
    // The code string's own terminator is not checked by libbson, nor here.
    auto no_nul =
        raw_doc{}.bytes({0x0F}).cstr("a").i32(15).i32(2).bytes({'x', 'y'}).i32(5).bytes({0}).done();
    expect_both(no_nul, R"({ "a" : { "$code" : "x", "$scope" : { } } })",
                R"({ "a" : { "$code" : "x", "$scope" : { } } })");
}

TEST(Ejson, StringsAndKeysEscaping) {
    const char s[] =
        "a\0b\x01\x1f\x7f\b\f\n\r\t\"\\/\xe2\x80\xa8\xe2\x80\xa9\xc3\xa9\xf0\x9f\x98\x80";
    bson_ptr b(bson_new());
    bson_append_utf8(b.get(), "k\"\\\n\x01", -1, s, sizeof s - 1);
    bson_append_utf8(b.get(), "", 0, "x", 1);
    // U+2028/2029 and DEL are not escaped; control characters use lower-case \u00xx.
    const std::string want =
        "{ \"k\\\"\\\\\\n\\u0001\" : \"a\\u0000b\\u0001\\u001f\x7f\\b\\f\\n\\r\\t\\\"\\\\/"
        "\xe2\x80\xa8\xe2\x80\xa9\xc3\xa9\xf0\x9f\x98\x80\", \"\" : \"x\" }";
    expect_both(bytes_of(b.get()), want, want);
}

TEST(Ejson, InvalidUtf8IsRejectedLikeLibbson) {
    const std::vector<std::string> bad = {"\xff",
                                          "\x80",
                                          "\xc3",
                                          "\xc0\x80",
                                          "\xc1\xbf",
                                          "\xe0\x80\x80",
                                          "\xed\xa0\x80",
                                          "\xf0\x80\x80\x80",
                                          "\xf4\x90\x80\x80",
                                          "\xf5\x80\x80\x80",
                                          "a\xe2\x82",
                                          "\xf8\x88\x80\x80\x80"};
    for (const auto& s : bad) {
        auto as_value = raw_doc{}
                            .bytes({2})
                            .cstr("k")
                            .i32(static_cast<std::uint32_t>(s.size() + 1))
                            .cstr(s)
                            .done();
        EXPECT_EQ(reference(as_value, ejson_mode::relaxed), std::nullopt);
        expect_rejected(as_value);
        auto as_key = raw_doc{}.bytes({0x0A}).cstr(s).done();
        if (s.find('\0') == std::string::npos && s != "\xc0\x80") {
            EXPECT_EQ(reference(as_key, ejson_mode::relaxed), std::nullopt);
            expect_rejected(as_key);
        }
    }
}

TEST(Ejson, Decimal128MatchesLibbson) {
    corpus_generator gen(7);
    char ref[BSON_DECIMAL128_STRING];
    char mine[64];
    for (int i = 0; i < 200000; ++i) {
        bson_decimal128_t d;
        d.low = gen.u64();
        d.high = gen.u64();
        if (i % 3 == 1) {  // keep the combination field in the finite range more often
            d.high &= ~(std::uint64_t(3) << 61);
        } else if (i % 3 == 2) {
            d.high = (d.high & 0x8001FFFFFFFFFFFFULL) | (std::uint64_t(gen.below(12288)) << 49);
            d.high &= ~(std::uint64_t(3) << 61);
            if (gen.chance(50))
                d.high &= 0xFFFE0000FFFFFFFFULL;
        }
        bson_decimal128_to_string(&d, ref);
        std::uint8_t bytes[16];
        std::memcpy(bytes, &d.low, 8);
        std::memcpy(bytes + 8, &d.high, 8);
        std::size_t n = decimal128_to_chars(bytes, mine);
        ASSERT_EQ(std::string(mine, n), std::string(ref)) << std::hex << d.high << " " << d.low;
    }
}

TEST(Ejson, RandomDoublesMatchLibbson) {
    corpus_generator gen(11);
    for (int i = 0; i < 100000; ++i) {
        bson_ptr b(bson_new());
        bson_append_double(b.get(), "d", 1, std::bit_cast<double>(gen.u64()));
        auto doc = bytes_of(b.get());
        ASSERT_EQ(ours(doc, ejson_mode::relaxed), reference(doc, ejson_mode::relaxed));
        ASSERT_EQ(ours(doc, ejson_mode::canonical), reference(doc, ejson_mode::canonical));
    }
}

// The walker prints doubles between 2^-26 and 2^64 with its own exact 128-bit digit
// generation; random bit patterns rarely land there, so cover that range on purpose: every
// binary exponent, random and sparse mantissas, and values with few significant digits.
TEST(Ejson, DoublesInTheFastPathMatchLibbson) {
    corpus_generator gen(29);
    for (int i = 0; i < 200000; ++i) {
        const std::uint64_t exponent = 1023 - 26 + gen.u64() % 90;  // 2^-26 .. 2^64
        std::uint64_t mantissa = gen.u64() & ((1ull << 52) - 1);
        if (i % 4 == 1)
            mantissa &= 0xfff0000000000000ull >> 12;  // sparse: few low bits
        double v = std::bit_cast<double>(exponent << 52 | mantissa);
        if (i % 4 == 2)
            v = static_cast<double>(gen.u64() % 100000000) / 1000.0;  // decimal-looking
        if (i % 8 == 3)
            v = -v;
        bson_ptr b(bson_new());
        bson_append_double(b.get(), "d", 1, v);
        auto doc = bytes_of(b.get());
        ASSERT_EQ(ours(doc, ejson_mode::relaxed), reference(doc, ejson_mode::relaxed)) << v;
        ASSERT_EQ(ours(doc, ejson_mode::canonical), reference(doc, ejson_mode::canonical)) << v;
    }
}

// ---- the generated corpus ---------------------------------------------------------------

TEST(Ejson, GeneratedCorpusMatchesLibbsonByteForByte) {
    constexpr int documents = 100000;
    corpus_generator gen(20240601);
    std::string reused = "prefix:";  // the walker appends; earlier content stays
    int compared = 0;
    for (int i = 0; i < documents; ++i) {
        bson_ptr b = (i % 4 == 0) ? gen.change_event() : gen.random_document();
        const auto doc = bytes_of(b.get());
        for (ejson_mode mode : {ejson_mode::relaxed, ejson_mode::canonical}) {
            const auto want = reference(doc, mode);
            ASSERT_TRUE(want.has_value())
                << "generator produced BSON libbson rejects: " << hex(doc);
            reused.resize(7);
            ASSERT_TRUE(write_ejson(doc.data(), doc.size(), mode, reused)) << hex(doc);
            ASSERT_EQ(std::string_view(reused).substr(7), *want)
                << "document " << i << ": " << hex(doc);
            ASSERT_EQ(std::string_view(reused).substr(0, 7), "prefix:");
            ++compared;
        }
    }
    EXPECT_EQ(compared, 2 * documents);
}

TEST(Ejson, NestingBeyondLibbsonLimitIsElided) {
    for (int depth : {199, 200, 201, 260}) {
        bson_ptr inner(bson_new());
        bson_append_int32(inner.get(), "x", 1, 1);
        for (int d = 0; d < depth; ++d) {
            bson_ptr outer(bson_new());
            if (d % 2) {
                bson_append_document(outer.get(), "a", 1, inner.get());
            } else {
                bson_t arr;
                bson_append_array_begin(outer.get(), "a", 1, &arr);
                bson_concat(&arr, inner.get());
                bson_append_array_end(outer.get(), &arr);
            }
            inner = std::move(outer);
        }
        auto doc = bytes_of(inner.get());
        auto want = reference(doc, ejson_mode::relaxed);
        ASSERT_TRUE(want);
        EXPECT_EQ(ours(doc, ejson_mode::relaxed), want) << depth;
        EXPECT_EQ(ours(doc, ejson_mode::canonical), reference(doc, ejson_mode::canonical));
    }
}

TEST(Ejson, ScopeChainsDeeperThanTheFrameLimitAreRejected) {
    // Every scope restarts libbson's depth count; we bound the recursion instead.
    bson_ptr inner(bson_new());
    for (unsigned i = 0; i <= ejson_max_frames; ++i) {
        bson_ptr outer(bson_new());
        bson_append_code_with_scope(outer.get(), "c", 1, "", inner.get());
        inner = std::move(outer);
    }
    expect_rejected(bytes_of(inner.get()));
}

// ---- malformed input --------------------------------------------------------------------

TEST(Ejson, MalformedDocumentsAreRejected) {
    std::string out = "keep";
    const std::uint8_t tiny[] = {5, 0, 0, 0};
    EXPECT_FALSE(write_ejson(tiny, 4, ejson_mode::relaxed, out));
    EXPECT_FALSE(write_ejson(nullptr, 0, ejson_mode::relaxed, out));
    const std::uint8_t wrong_len[] = {6, 0, 0, 0, 0};
    EXPECT_FALSE(write_ejson(wrong_len, 5, ejson_mode::relaxed, out));
    const std::uint8_t no_terminator[] = {5, 0, 0, 0, 1};
    EXPECT_FALSE(write_ejson(no_terminator, 5, ejson_mode::relaxed, out));
    EXPECT_EQ(out, "keep");

    expect_rejected(raw_doc{}.bytes({0x20}).cstr("a").done());                       // unknown type
    expect_rejected(raw_doc{}.bytes({0x80}).cstr("a").done());                       // unknown type
    expect_rejected(raw_doc{}.bytes({0x08}).cstr("a").bytes({2}).done());            // bool 2
    expect_rejected(raw_doc{}.bytes({0x10}).cstr("a").i32(1).bytes({0, 0}).done());  // trailing
    expect_rejected(raw_doc{}.bytes({0x10}).cstr("a").bytes({1, 0}).done());     // truncated int
    expect_rejected(raw_doc{}.bytes({0x02}).cstr("a").i32(2).str("xy").done());  // no NUL
    expect_rejected(raw_doc{}.bytes({0x02}).cstr("a").i32(0).done());            // length 0
    expect_rejected(raw_doc{}.bytes({0x02}).cstr("a").i32(0xFFFFFFFF).cstr("x").done());
    expect_rejected(raw_doc{}.bytes({0x03}).cstr("a").i32(200).bytes({0}).done());   // overlong
    expect_rejected(raw_doc{}.bytes({0x03}).cstr("a").i32(6).bytes({0, 0}).done());  // EOD mid
    expect_rejected(raw_doc{}
                        .bytes({0x0F})
                        .cstr("a")
                        .i32(16)
                        .i32(2)
                        .cstr("x")
                        .i32(5)
                        .bytes({0, 0})
                        .done());  // code-with-scope length mismatch
    // libbson prints `{ "a" :  }` for these; we refuse to emit broken JSON.
    expect_rejected(raw_doc{}.bytes({0x03}).cstr("a").i32(4).done());
    expect_rejected(raw_doc{}.bytes({0x03}).cstr("a").i32(5).bytes({1}).done());
    expect_rejected(
        raw_doc{}.bytes({0x0F}).cstr("a").i32(15).i32(2).cstr("x").i32(5).bytes({1}).done());
    // A key that runs into the terminator.
    std::vector<std::uint8_t> key_to_end = {7, 0, 0, 0, 0x0A, 'a', 0};
    EXPECT_FALSE(write_ejson(key_to_end.data(), key_to_end.size(), ejson_mode::relaxed, out));
}

TEST(Ejson, TruncationsAtEveryOffsetAreRejected) {
    corpus_generator gen(99);
    for (int i = 0; i < 200; ++i) {
        auto doc = bytes_of(gen.change_event().get());
        for (std::size_t cut = 5; cut < doc.size(); ++cut) {
            // Claim the shorter length and end in NUL: only the structure can tell.
            std::vector<std::uint8_t> t(doc.begin(), doc.begin() + static_cast<long>(cut));
            std::uint32_t n = static_cast<std::uint32_t>(cut);
            std::memcpy(t.data(), &n, 4);
            t.back() = 0;
            std::string out;
            const bool ok = write_ejson(t.data(), t.size(), ejson_mode::relaxed, out);
            const auto want = reference(t, ejson_mode::relaxed);
            if (ok) {
                ASSERT_EQ(out, want) << hex(t);
            } else {
                ASSERT_TRUE(out.empty());
            }
        }
    }
}

// True when libbson would skip a value without printing it: a nested document or scope
// whose bytes bson_init_static refuses (libbson then emits `"key" :  ` and carries on).
bool libbson_skips_a_value(const bson_t* b, int depth) {
    bson_iter_t it;
    if (!bson_iter_init(&it, b))
        return false;
    while (bson_iter_next(&it)) {
        const std::uint8_t* data = nullptr;
        std::uint32_t len = 0;
        bson_t sub;
        if (BSON_ITER_HOLDS_DOCUMENT(&it) || BSON_ITER_HOLDS_ARRAY(&it)) {
            if (BSON_ITER_HOLDS_DOCUMENT(&it)) {
                bson_iter_document(&it, &len, &data);
            } else {
                bson_iter_array(&it, &len, &data);
            }
            if (!bson_init_static(&sub, data, len))
                return true;
            if (depth < 200 && libbson_skips_a_value(&sub, depth + 1))
                return true;
        } else if (BSON_ITER_HOLDS_CODEWSCOPE(&it)) {
            std::uint32_t code_len = 0;
            bson_iter_codewscope(&it, &code_len, &len, &data);
            if (!bson_init_static(&sub, data, len))
                return true;
            if (libbson_skips_a_value(&sub, 0))
                return true;
        }
    }
    return false;
}

TEST(Ejson, RandomMutationsAgreeWithLibbson) {
    corpus_generator gen(4242, corpus_generator::options{false, 3});
    int accepted = 0, rejected = 0, quirks = 0;
    for (int i = 0; i < 150000; ++i) {
        auto doc = bytes_of(gen.random_document().get());
        const int mutations = 1 + static_cast<int>(gen.below(3));
        for (int m = 0; m < mutations; ++m) {
            const std::size_t pos = gen.below(static_cast<std::uint32_t>(doc.size()));
            switch (gen.below(5)) {
                case 0:
                    doc[pos] = static_cast<std::uint8_t>(gen.u64());
                    break;
                case 1:
                    doc[pos] ^= static_cast<std::uint8_t>(1u << gen.below(8));
                    break;
                case 2:
                    doc[pos] = static_cast<std::uint8_t>(gen.below(3));
                    break;
                case 3:
                    if (doc.size() > 6)
                        doc.resize(5 + gen.below(static_cast<std::uint32_t>(doc.size() - 5)));
                    break;
                default:
                    doc.insert(doc.begin() + static_cast<long>(pos),
                               static_cast<std::uint8_t>(gen.u64()));
                    break;
            }
        }
        if (gen.below(10) != 0 && doc.size() >= 5) {  // usually keep the outer frame valid
            std::uint32_t n = static_cast<std::uint32_t>(doc.size());
            std::memcpy(doc.data(), &n, 4);
            doc.back() = 0;
        }
        for (ejson_mode mode : {ejson_mode::relaxed, ejson_mode::canonical}) {
            const auto want = reference(doc, mode);
            const auto got = ours(doc, mode);
            if (got) {
                ASSERT_EQ(got, want) << hex(doc);
                ++accepted;
            } else if (want) {
                // Only libbson's broken-JSON case may be accepted by libbson and not by us.
                bson_t b;
                ASSERT_TRUE(bson_init_static(&b, doc.data(), doc.size()));
                ASSERT_TRUE(libbson_skips_a_value(&b, 0)) << *want << "\n" << hex(doc);
                ++quirks;
            } else {
                ++rejected;
            }
        }
    }
    EXPECT_GT(accepted, 10000);
    EXPECT_GT(rejected, 10000);
    std::printf("mutations: %d accepted (identical), %d rejected by both, %d libbson-garbage\n",
                accepted, rejected, quirks);
}

}  // namespace
}  // namespace penne::formats
