#include <penne/mongo/bson.hpp>
#include <penne/mongo/commands.hpp>
#include <penne/mongo/compression.hpp>
#include <penne/mongo/wire.hpp>

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace penne::mongo {
namespace {

constexpr compressor_id all_codecs[] = {compressor_id::noop, compressor_id::snappy,
                                        compressor_id::zlib, compressor_id::zstd};

document json(const char* s) {
    std::string err;
    auto d = document::from_json(s, err);
    EXPECT_TRUE(d) << err;
    return d ? std::move(*d) : document{};
}

// A getMore-like reply, large and repetitive enough that every codec shrinks it.
std::vector<std::uint8_t> sample_reply(std::int32_t request_id, std::int32_t response_to) {
    std::string batch;
    for (int i = 0; i < 40; ++i) {
        if (i)
            batch += ",";
        batch += R"({"_id": {"_data": "82)" + std::to_string(1000 + i) +
                 R"("}, "operationType": "insert", "ns": {"db": "d", "coll": "c"}})";
    }
    auto body =
        json((R"({"cursor": {"id": 0, "ns": "d.c", "nextBatch": [)" + batch + R"(]}, "ok": 1})")
                 .c_str());
    std::vector<std::uint8_t> out;
    wire::encode_op_msg(out, request_id, 0, body.bytes());
    // Make it a reply: patch responseTo.
    auto u = static_cast<std::uint32_t>(response_to);
    for (int i = 0; i < 4; ++i)
        out[8 + i] = static_cast<std::uint8_t>(u >> (8 * i));
    return out;
}

void put_i32(std::vector<std::uint8_t>& b, std::size_t at, std::int32_t v) {
    auto u = static_cast<std::uint32_t>(v);
    for (int i = 0; i < 4; ++i)
        b[at + i] = static_cast<std::uint8_t>(u >> (8 * i));
}

TEST(Compression, Names) {
    EXPECT_EQ(compressor_from_name("zstd"), compressor_id::zstd);
    EXPECT_EQ(compressor_from_name("zlib"), compressor_id::zlib);
    EXPECT_EQ(compressor_from_name("snappy"), compressor_id::snappy);
    EXPECT_EQ(compressor_from_name("noop"), compressor_id::noop);
    EXPECT_FALSE(compressor_from_name("lz4"));
    for (auto c : all_codecs)
        EXPECT_EQ(compressor_from_name(to_string(c)), c);
}

TEST(Compression, HandshakeAndAuthAreNeverCompressed) {
    for (const char* name :
         {"hello", "isMaster", "ismaster", "saslStart", "saslContinue", "getnonce", "authenticate",
          "createUser", "updateUser", "copydbSaslStart", "copydbgetnonce", "copydb"})
        EXPECT_FALSE(may_compress(name)) << name;
    for (const char* name : {"aggregate", "getMore", "killCursors", "endSessions", "ping"})
        EXPECT_TRUE(may_compress(name)) << name;
}

TEST(Compression, RoundTripEveryCodecThroughFrameReaderAtEverySplit) {
    const auto plain = sample_reply(41, 7);
    codec_set codecs;
    for (auto c : all_codecs) {
        std::vector<std::uint8_t> packed;
        ASSERT_FALSE(codecs.compress(c, plain, packed)) << to_string(c);
        wire::op_compressed_view v;
        ASSERT_FALSE(wire::decode_op_compressed(packed, v));
        EXPECT_EQ(v.header.message_length, static_cast<std::int32_t>(packed.size()));
        EXPECT_EQ(v.header.op_code, 2012);
        EXPECT_EQ(v.header.request_id, 41);
        EXPECT_EQ(v.header.response_to, 7);
        EXPECT_EQ(v.original_opcode, 2013);
        EXPECT_EQ(v.uncompressed_size, static_cast<std::int32_t>(plain.size() - 16));
        EXPECT_EQ(v.compressor, static_cast<std::uint8_t>(c));
        if (c != compressor_id::noop) {
            EXPECT_LT(packed.size(), plain.size()) << to_string(c);
        }
        // Two frames back to back, split at every position, each inflated on arrival.
        std::vector<std::uint8_t> stream(packed);
        stream.insert(stream.end(), packed.begin(), packed.end());
        for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
            wire::frame_reader reader(1 << 20);
            std::vector<std::vector<std::uint8_t>> got;
            for (auto part : {byte_view(stream).first(cut), byte_view(stream).subspan(cut)}) {
                while (!part.empty()) {
                    error_code ec;
                    std::size_t n = reader.feed(part, ec);
                    ASSERT_FALSE(ec) << ec.message();
                    part = part.subspan(n);
                    if (reader.ready()) {
                        std::vector<std::uint8_t> frame, inflated;
                        reader.take(frame);
                        ASSERT_FALSE(codecs.decompress(frame, reader.max_message_size(), inflated));
                        got.push_back(std::move(inflated));
                    }
                }
            }
            ASSERT_EQ(got.size(), 2u) << to_string(c) << " cut " << cut;
            EXPECT_EQ(got[0], plain);
            EXPECT_EQ(got[1], plain);
        }
        std::vector<std::uint8_t> inflated;
        ASSERT_FALSE(codecs.decompress(packed, 1 << 20, inflated));
        wire::op_msg_view msg;
        ASSERT_FALSE(wire::decode_op_msg(inflated, msg));
        command_reply reply;
        ASSERT_FALSE(parse_reply(msg.body, reply));
        ASSERT_TRUE(reply.cursor);
        std::vector<change_event> events;
        ASSERT_FALSE(parse_change_events(reply.cursor->batch, events));
        EXPECT_EQ(events.size(), 40u);
    }
}

TEST(Compression, EmptyBodyRoundTrips) {
    // A header-only message: zero bytes to compress, zero to inflate.
    std::vector<std::uint8_t> plain(16, 0);
    put_i32(plain, 0, 16);
    put_i32(plain, 12, 2013);
    codec_set codecs;
    for (auto c : all_codecs) {
        std::vector<std::uint8_t> packed, back;
        ASSERT_FALSE(codecs.compress(c, plain, packed)) << to_string(c);
        ASSERT_FALSE(codecs.decompress(packed, 1 << 20, back)) << to_string(c);
        EXPECT_EQ(back, plain);
    }
}

TEST(Compression, ZlibLevelIsHonoured) {
    const auto plain = sample_reply(1, 0);
    codec_set fast(0), small(9);
    std::vector<std::uint8_t> stored, packed;
    ASSERT_FALSE(fast.compress(compressor_id::zlib, plain, stored));
    ASSERT_FALSE(small.compress(compressor_id::zlib, plain, packed));
    // Level 0 stores the bytes; level 9 compresses them.
    EXPECT_GT(stored.size(), plain.size());
    EXPECT_LT(packed.size(), plain.size() / 2);
}

TEST(Compression, AnnouncedSizeIsBoundedByMaxMessageSize) {
    const auto plain = sample_reply(1, 0);
    codec_set codecs;
    std::vector<std::uint8_t> packed, out;
    ASSERT_FALSE(codecs.compress(compressor_id::zstd, plain, packed));
    EXPECT_EQ(codecs.decompress(packed, static_cast<std::uint32_t>(plain.size() - 1), out),
              client_errc::message_too_large);
    EXPECT_FALSE(codecs.decompress(packed, static_cast<std::uint32_t>(plain.size()), out));
    // A tiny frame that claims 2 GiB must not allocate it.
    auto huge = packed;
    put_i32(huge, 20, 0x7fffffff);
    EXPECT_EQ(codecs.decompress(huge, 48'000'000, out), client_errc::message_too_large);
}

TEST(Compression, BadFramesAreErrorsNeverUB) {
    const auto plain = sample_reply(1, 0);
    codec_set codecs;
    for (auto c : all_codecs) {
        std::vector<std::uint8_t> packed, out;
        ASSERT_FALSE(codecs.compress(c, plain, packed));
        SCOPED_TRACE(std::string(to_string(c)));
        // Announced size one too large and one too small.
        for (int delta : {1, -1}) {
            auto t = packed;
            put_i32(t, 20, static_cast<std::int32_t>(plain.size() - 16) + delta);
            EXPECT_EQ(codecs.decompress(t, 1 << 20, out), client_errc::bad_compression) << delta;
        }
        // Truncated payload (header length fixed up).
        auto t = packed;
        t.resize(t.size() - 3);
        put_i32(t, 0, static_cast<std::int32_t>(t.size()));
        EXPECT_TRUE(codecs.decompress(t, 1 << 20, out));
        // Unknown codec id.
        t = packed;
        t[24] = 9;
        EXPECT_EQ(codecs.decompress(t, 1 << 20, out), client_errc::bad_compression);
        // A compressed message inside a compressed message.
        t = packed;
        put_i32(t, 16, 2012);
        EXPECT_EQ(codecs.decompress(t, 1 << 20, out), client_errc::malformed_message);
        t = packed;
        put_i32(t, 20, -5);
        EXPECT_EQ(codecs.decompress(t, 1 << 20, out), client_errc::malformed_message);
        // Header length disagreeing with the frame.
        t = packed;
        put_i32(t, 0, static_cast<std::int32_t>(t.size() + 1));
        EXPECT_EQ(codecs.decompress(t, 1 << 20, out), client_errc::malformed_message);
        // Every prefix of the frame shorter than the fixed part.
        for (std::size_t n = 0; n < wire::compressed_prefix_size; ++n) {
            std::vector<std::uint8_t> p(packed.begin(), packed.begin() + n);
            if (n >= 4)
                put_i32(p, 0, static_cast<std::int32_t>(n));
            EXPECT_TRUE(codecs.decompress(p, 1 << 20, out)) << n;
        }
        // Flipped payload bytes: an error or (noop, or a codec without checksums) bytes
        // of exactly the announced size; never a crash.
        for (std::size_t i = wire::compressed_prefix_size; i < packed.size(); i += 7) {
            t = packed;
            t[i] ^= 0x5a;
            if (!codecs.decompress(t, 1 << 20, out)) {
                EXPECT_EQ(out.size(), plain.size());
            }
        }
    }
}

TEST(Compression, WrongOpcodeIsRejected) {
    const auto plain = sample_reply(1, 0);
    wire::op_compressed_view v;
    EXPECT_EQ(wire::decode_op_compressed(plain, v), client_errc::unexpected_opcode);
    codec_set codecs;
    std::vector<std::uint8_t> packed, again;
    ASSERT_FALSE(codecs.compress(compressor_id::zlib, plain, packed));
    EXPECT_EQ(codecs.compress(compressor_id::zlib, packed, again), client_errc::malformed_message);
}

TEST(Compression, HelloOffersCompressorsAndSpeculativeAuth) {
    client_metadata meta;
    std::vector<std::string> names{"zstd", "snappy"};
    auto spec = json(R"({"saslStart": 1, "mechanism": "SCRAM-SHA-256", "db": "admin"})");
    auto h = make_hello(meta, hello_form::hello, "admin.bob", names, spec.bytes());
    bson_iter_t it;
    ASSERT_TRUE(find_field(h.bytes(), "compression", it));
    auto arr = as_document(it);
    ASSERT_TRUE(arr);
    EXPECT_EQ(to_json(*arr), R"({ "0" : "zstd", "1" : "snappy" })");
    ASSERT_TRUE(find_field(h.bytes(), "speculativeAuthenticate", it));
    EXPECT_EQ(to_json(*as_document(it)), spec.to_json());
    auto plain = make_hello(meta, hello_form::hello);
    EXPECT_FALSE(find_field(plain.bytes(), "compression", it));
    EXPECT_FALSE(find_field(plain.bytes(), "speculativeAuthenticate", it));

    hello_reply r;
    ASSERT_FALSE(parse_hello(json(R"({"isWritablePrimary": true, "maxWireVersion": 17,
        "compression": ["snappy"], "speculativeAuthenticate": {"conversationId": 1,
        "done": false, "payload": {"$binary": {"base64": "eHl6", "subType": "00"}}},
        "ok": 1})")
                                 .bytes(),
                             r));
    EXPECT_EQ(r.compression, (std::vector<std::string>{"snappy"}));
    ASSERT_FALSE(r.speculative_authenticate.empty());
    EXPECT_TRUE(is_document(r.speculative_authenticate));
    ASSERT_FALSE(parse_hello(json(R"({"ok": 1, "speculativeAuthenticate": 5})").bytes(), r));
    EXPECT_TRUE(r.speculative_authenticate.empty());
    EXPECT_TRUE(r.compression.empty());
}

}  // namespace
}  // namespace penne::mongo
