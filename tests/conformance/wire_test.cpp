// The sans-io wire codec of mongosim, fed with hand-built messages.

#include <mongosim/wire.hpp>

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

namespace {

using bytes = std::vector<std::uint8_t>;

void put32(bytes& b, std::uint32_t v) {
    for (int i = 0; i < 4; ++i)
        b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

void put_doc(bytes& b, const bson_t* d) {
    const std::uint8_t* p = bson_get_data(d);
    b.insert(b.end(), p, p + d->len);
}

void patch_length(bytes& b) {
    auto n = static_cast<std::uint32_t>(b.size());
    std::memcpy(b.data(), &n, 4);
}

bytes header(std::int32_t op) {
    bytes b;
    put32(b, 0);
    put32(b, 7);  // requestID
    put32(b, 0);
    put32(b, static_cast<std::uint32_t>(op));
    return b;
}

mongosim::bson_ptr json(const char* text) {
    bson_error_t err;
    bson_t* b = bson_new_from_json(reinterpret_cast<const std::uint8_t*>(text), -1, &err);
    EXPECT_NE(b, nullptr) << err.message;
    return mongosim::bson_ptr(b);
}

std::string as_json(const bson_t* b) {
    char* s = bson_as_canonical_extended_json(b, nullptr);
    std::string out = s;
    bson_free(s);
    return out;
}

bytes insert_with_sequence(std::uint32_t flags) {
    bytes m = header(mongosim::op_msg);
    put32(m, flags);
    m.push_back(0);
    put_doc(m, json(R"({"insert": "c", "$db": "d"})").get());
    m.push_back(1);
    bytes seq;
    const char id[] = "documents";
    seq.insert(seq.end(), id, id + sizeof id);  // includes the NUL
    put_doc(seq, json(R"({"_id": 1})").get());
    put_doc(seq, json(R"({"_id": 2})").get());
    put32(m, static_cast<std::uint32_t>(seq.size() + 4));
    m.insert(m.end(), seq.begin(), seq.end());
    patch_length(m);
    return m;
}

TEST(MongosimWire, Crc32cMatchesTheCastagnoliCheckValue) {
    const char* s = "123456789";
    EXPECT_EQ(mongosim::crc32c({reinterpret_cast<const std::uint8_t*>(s), 9}), 0xE3069283u);
}

TEST(MongosimWire, FoldsDocumentSequencesIntoTheCommand) {
    bytes m = insert_with_sequence(0);
    mongosim::request req;
    ASSERT_FALSE(mongosim::decode_request(m, req));
    EXPECT_FALSE(req.legacy);
    EXPECT_EQ(req.db, "d");
    EXPECT_EQ(req.header.request_id, 7);
    EXPECT_EQ(
        as_json(req.command.get()),
        as_json(
            json(R"({"insert": "c", "$db": "d", "documents": [{"_id": 1}, {"_id": 2}]})").get()));
}

TEST(MongosimWire, ValidatesTheChecksumTrailer) {
    bytes m = insert_with_sequence(mongosim::flag_checksum_present);
    put32(m, 0);
    patch_length(m);
    std::uint32_t crc = mongosim::crc32c({m.data(), m.size() - 4});
    std::memcpy(m.data() + m.size() - 4, &crc, 4);
    mongosim::request req;
    EXPECT_FALSE(mongosim::decode_request(m, req));

    m[m.size() - 1] ^= 0xFF;
    EXPECT_EQ(mongosim::decode_request(m, req), mongosim::wire_errc::bad_checksum);
}

TEST(MongosimWire, RejectsEveryTruncationAndCorruption) {
    const bytes good = insert_with_sequence(0);
    // Every prefix with a patched length is malformed, except the one that ends exactly after
    // the body section (a complete message without the sequence). None may crash.
    const std::size_t body_end =
        mongosim::header_size + 4 + 1 + json(R"({"insert": "c", "$db": "d"})")->len;
    for (std::size_t n = 0; n < good.size(); ++n) {
        bytes m(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n));
        if (m.size() >= 4)
            patch_length(m);
        mongosim::request req;
        EXPECT_EQ(!mongosim::decode_request(m, req), n == body_end) << "prefix of " << n;
    }
    // Flipping any single byte after the header either still decodes or is rejected cleanly.
    for (std::size_t i = mongosim::header_size; i < good.size(); ++i) {
        bytes m = good;
        m[i] ^= 0x5A;
        mongosim::request req;
        (void)mongosim::decode_request(m, req);
    }
}

TEST(MongosimWire, RejectsUnknownRequiredFlagsAndOpcodes) {
    bytes m = insert_with_sequence(1u << 5);
    mongosim::request req;
    EXPECT_EQ(mongosim::decode_request(m, req), mongosim::wire_errc::bad_flags);

    bytes c = insert_with_sequence(0);
    std::uint32_t op = mongosim::op_compressed;
    std::memcpy(c.data() + 12, &op, 4);
    EXPECT_EQ(mongosim::decode_request(c, req), mongosim::wire_errc::unsupported_opcode);

    // exhaustAllowed is an optional bit: accepted.
    bytes e = insert_with_sequence(mongosim::flag_exhaust_allowed);
    EXPECT_FALSE(mongosim::decode_request(e, req));
    EXPECT_TRUE(req.exhaust_allowed());
}

TEST(MongosimWire, HeaderLengthBounds) {
    mongosim::message_header h;
    bytes b = header(mongosim::op_msg);
    std::uint32_t len = 15;
    std::memcpy(b.data(), &len, 4);
    EXPECT_EQ(mongosim::decode_header(b, h), mongosim::wire_errc::bad_length);
    len = mongosim::max_message_size + 1;
    std::memcpy(b.data(), &len, 4);
    EXPECT_EQ(mongosim::decode_header(b, h), mongosim::wire_errc::bad_length);
    len = mongosim::max_message_size;
    std::memcpy(b.data(), &len, 4);
    EXPECT_FALSE(mongosim::decode_header(b, h));
}

TEST(MongosimWire, DecodesLegacyQueryAndUnwrapsDollarQuery) {
    bytes m = header(mongosim::op_query);
    put32(m, 0);
    const char ns[] = "admin.$cmd";
    m.insert(m.end(), ns, ns + sizeof ns);
    put32(m, 0);
    put32(m, static_cast<std::uint32_t>(-1));
    put_doc(m,
            json(R"({"$query": {"isMaster": 1}, "$readPreference": {"mode": "primary"}})").get());
    patch_length(m);
    mongosim::request req;
    ASSERT_FALSE(mongosim::decode_request(m, req));
    EXPECT_TRUE(req.legacy);
    EXPECT_EQ(req.db, "admin");
    EXPECT_EQ(as_json(req.command.get()), as_json(json(R"({"isMaster": 1})").get()));

    bytes bad = header(mongosim::op_query);
    put32(bad, 0);
    const char coll[] = "db.coll";
    bad.insert(bad.end(), coll, coll + sizeof coll);
    put32(bad, 0);
    put32(bad, 1);
    put_doc(bad, json(R"({"a": 1})").get());
    patch_length(bad);
    EXPECT_EQ(mongosim::decode_request(bad, req), mongosim::wire_errc::bad_query);
}

TEST(MongosimWire, EncodesRepliesThatDecodeBack) {
    auto doc = json(R"({"ok": 1.0})");
    auto msg = mongosim::encode_msg_reply(9, 7, *doc);
    mongosim::message_header h;
    ASSERT_FALSE(mongosim::decode_header(msg, h));
    EXPECT_EQ(h.length, static_cast<std::int32_t>(msg.size()));
    EXPECT_EQ(h.request_id, 9);
    EXPECT_EQ(h.response_to, 7);
    EXPECT_EQ(h.op_code, mongosim::op_msg);

    auto legacy = mongosim::encode_legacy_reply(10, 7, *doc);
    ASSERT_FALSE(mongosim::decode_header(legacy, h));
    EXPECT_EQ(h.op_code, mongosim::op_reply);
    EXPECT_EQ(legacy.size(), mongosim::header_size + 20 + doc->len);
    std::int32_t returned;
    std::memcpy(&returned, legacy.data() + 32, 4);
    EXPECT_EQ(returned, 1);
}

}  // namespace
