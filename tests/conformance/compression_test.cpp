// OP_COMPRESSED in mongosim's sans-io codec: each compressor round-trips, a compressed OP_MSG
// decodes to the same command as the plain one, and bad frames are rejected.

#include <mongosim/compression.hpp>
#include <mongosim/wire.hpp>

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

namespace {

using namespace mongosim;
using bytes = std::vector<std::uint8_t>;

bytes sample(std::size_t n) {
    bytes b(n);
    for (std::size_t i = 0; i < n; ++i)
        b[i] = static_cast<std::uint8_t>("change stream "[i % 14] + (i / 1000) % 3);
    return b;
}

// An OP_MSG {insert: "c", $db: "test", documents: [{_id: 1, s: <long string>}]}.
bytes op_msg_insert() {
    bson_t* cmd = BCON_NEW("insert", "c", "$db", "test", "documents", "[", "{", "_id",
                           BCON_INT32(1), "s", std::string(5000, 'x').c_str(), "}", "]");
    bytes m = encode_msg_reply(42, 0, *cmd);  // same framing as a request: flags, kind 0 body
    bson_destroy(cmd);
    return m;
}

class MongosimCompression : public ::testing::TestWithParam<compressor> {};

TEST_P(MongosimCompression, RoundTrips) {
    for (std::size_t n : {0u, 1u, 100u, 70000u}) {
        bytes in = sample(n), packed, out;
        ASSERT_FALSE(compress(GetParam(), in, packed));
        ASSERT_FALSE(decompress(GetParam(), packed, in.size(), out));
        EXPECT_EQ(out, in);
        if (n >= 70000 && GetParam() != compressor::noop) {
            EXPECT_LT(packed.size(), in.size() / 4);
        }
        // A wrong announced size is an error, not a short or padded message.
        bytes wrong;
        EXPECT_EQ(decompress(GetParam(), packed, in.size() + 1, wrong), wire_errc::bad_compression);
    }
}

TEST_P(MongosimCompression, CompressedOpMsgDecodesLikeThePlainOne) {
    bytes plain = op_msg_insert();
    bytes packed = encode_compressed(plain, GetParam());
    std::int32_t op;
    std::memcpy(&op, packed.data() + 12, 4);
    EXPECT_EQ(op, op_compressed);
    std::int32_t len;
    std::memcpy(&len, packed.data(), 4);
    EXPECT_EQ(static_cast<std::size_t>(len), packed.size());

    request a, b;
    ASSERT_FALSE(decode_request(plain, a));
    ASSERT_FALSE(decode_request(packed, b));
    EXPECT_FALSE(a.compressed_with);
    ASSERT_TRUE(b.compressed_with);
    EXPECT_EQ(*b.compressed_with, GetParam());
    EXPECT_EQ(b.header.request_id, 42);
    EXPECT_EQ(b.header.op_code, op_msg);
    EXPECT_EQ(b.db, "test");
    ASSERT_EQ(a.command->len, b.command->len);
    EXPECT_EQ(
        std::memcmp(bson_get_data(a.command.get()), bson_get_data(b.command.get()), a.command->len),
        0);

    // Any truncation of the compressed frame is rejected (never read past the end).
    for (std::size_t cut = header_size; cut < packed.size(); cut += 97) {
        bytes t(packed.begin(), packed.begin() + static_cast<std::ptrdiff_t>(cut));
        std::uint32_t n = static_cast<std::uint32_t>(t.size());
        std::memcpy(t.data(), &n, 4);
        request r;
        EXPECT_TRUE(decode_request(t, r)) << "cut at " << cut;
    }
}

INSTANTIATE_TEST_SUITE_P(All, MongosimCompression,
                         ::testing::Values(compressor::noop, compressor::snappy, compressor::zlib,
                                           compressor::zstd),
                         [](const auto& info) { return std::string(compressor_name(info.param)); });

TEST(MongosimCompressionFrame, RejectsBadFrames) {
    bytes packed = encode_compressed(op_msg_insert(), compressor::zstd);
    request r;
    bytes bad_id = packed;
    bad_id[24] = 9;
    EXPECT_EQ(decode_request(bad_id, r), wire_errc::bad_compression);
    bytes nested = packed;
    std::int32_t op = op_compressed;
    std::memcpy(nested.data() + 16, &op, 4);
    EXPECT_EQ(decode_request(nested, r), wire_errc::unsupported_opcode);
    bytes huge = packed;
    std::int32_t size = max_message_size;
    std::memcpy(huge.data() + 20, &size, 4);
    EXPECT_EQ(decode_request(huge, r), wire_errc::bad_length);
    bytes garbage = packed;
    for (std::size_t i = 25; i < garbage.size(); ++i)
        garbage[i] = static_cast<std::uint8_t>(i * 31);
    EXPECT_EQ(decode_request(garbage, r), wire_errc::bad_compression);
}

TEST(MongosimCompressionFrame, NamesAndIds) {
    EXPECT_EQ(compressor_from_name("snappy"), compressor::snappy);
    EXPECT_EQ(compressor_from_name("zlib"), compressor::zlib);
    EXPECT_EQ(compressor_from_name("zstd"), compressor::zstd);
    EXPECT_FALSE(compressor_from_name("lz4"));
    EXPECT_EQ(static_cast<int>(compressor::snappy), 1);
    EXPECT_EQ(static_cast<int>(compressor::zlib), 2);
    EXPECT_EQ(static_cast<int>(compressor::zstd), 3);
}

}  // namespace
