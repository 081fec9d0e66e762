#include <penne/mongo/bson.hpp>
#include <penne/mongo/wire.hpp>

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace penne::mongo::wire {
namespace {

document json(const char* s) {
    std::string err;
    auto d = document::from_json(s, err);
    EXPECT_TRUE(d) << err;
    return d ? std::move(*d) : document{};
}

std::vector<std::uint8_t> sample_msg(std::int32_t id, std::uint32_t flags = 0) {
    auto body = json(R"({"insert": "c", "$db": "d"})");
    auto a = json(R"({"_id": 1})");
    auto b = json(R"({"_id": 2, "x": "y"})");
    byte_view docs[] = {a.bytes(), b.bytes()};
    sequence_ref seq[] = {{"documents", docs}};
    std::vector<std::uint8_t> out;
    encode_op_msg(out, id, flags, body.bytes(), seq);
    return out;
}

TEST(Wire, OpMsgRoundTripWithSequence) {
    auto frame = sample_msg(7);
    op_msg_view v;
    ASSERT_FALSE(decode_op_msg(frame, v));
    EXPECT_EQ(v.header.message_length, static_cast<std::int32_t>(frame.size()));
    EXPECT_EQ(v.header.request_id, 7);
    EXPECT_EQ(v.header.op_code, 2013);
    EXPECT_EQ(to_json(v.body), R"({ "insert" : "c", "$db" : "d" })");
    ASSERT_EQ(v.sequences.size(), 1u);
    EXPECT_EQ(v.sequences[0].identifier, "documents");
    std::vector<std::string> docs;
    v.sequences[0].for_each([&](byte_view d) { docs.push_back(to_json(d)); });
    ASSERT_EQ(docs.size(), 2u);
    EXPECT_EQ(docs[1], R"({ "_id" : 2, "x" : "y" })");
    // The views point into the frame: no copy.
    EXPECT_GE(v.body.data(), frame.data());
    EXPECT_LT(v.body.data(), frame.data() + frame.size());
}

TEST(Wire, OpMsgChecksumTrailerIsSkipped) {
    auto body = json(R"({"ok": 1})");
    std::vector<std::uint8_t> frame;
    encode_op_msg(frame, 1, msg_flag::checksum_present | msg_flag::more_to_come, body.bytes());
    frame.insert(frame.end(), {0xde, 0xad, 0xbe, 0xef});
    frame[0] = static_cast<std::uint8_t>(frame.size());
    op_msg_view v;
    ASSERT_FALSE(decode_op_msg(frame, v));
    EXPECT_TRUE(v.more_to_come());
    EXPECT_EQ(v.body.size(), body.bytes().size());
}

TEST(Wire, OpMsgRejectsMalformed) {
    auto good = sample_msg(1);
    op_msg_view v;
    // Unknown required flag bit.
    auto f = good;
    f[16] = 0x04;
    EXPECT_EQ(decode_op_msg(f, v), client_errc::malformed_message);
    // Unknown section kind.
    f = good;
    f[20] = 2;
    EXPECT_EQ(decode_op_msg(f, v), client_errc::malformed_message);
    // Wrong opcode.
    f = good;
    f[12] = 1;
    f[13] = 0;
    EXPECT_EQ(decode_op_msg(f, v), client_errc::unexpected_opcode);
    // Every truncation (with a consistent header length) is an error, never a crash.
    // (Cutting exactly after the body section leaves a valid, shorter message.)
    const std::size_t body_end = 21 + static_cast<std::size_t>(good[21]);
    for (std::size_t n = 0; n < good.size(); ++n) {
        if (n == body_end)
            continue;
        std::vector<std::uint8_t> t(good.begin(), good.begin() + n);
        if (n >= 4)
            t[0] = static_cast<std::uint8_t>(n), t[1] = t[2] = t[3] = 0;
        EXPECT_TRUE(decode_op_msg(t, v)) << n;
    }
    // Two kind-0 sections.
    auto body = json(R"({"a": 1})");
    std::vector<std::uint8_t> two;
    encode_op_msg(two, 1, 0, body.bytes());
    two.push_back(0);
    two.insert(two.end(), body.bytes().begin(), body.bytes().end());
    two[0] = static_cast<std::uint8_t>(two.size());
    EXPECT_EQ(decode_op_msg(two, v), client_errc::malformed_message);
}

TEST(Wire, OpQueryAndOpReply) {
    auto q = json(R"({"isMaster": 1})");
    std::vector<std::uint8_t> frame;
    encode_op_query(frame, 9, 0, "admin.$cmd", 0, -1, q.bytes());
    auto h = read_header(frame);
    EXPECT_EQ(h.op_code, 2004);
    EXPECT_EQ(h.message_length, static_cast<std::int32_t>(frame.size()));
    std::string ns(reinterpret_cast<const char*>(frame.data() + 20));
    EXPECT_EQ(ns, "admin.$cmd");

    // Build an OP_REPLY by hand.
    auto doc = json(R"({"ismaster": true, "ok": 1})");
    std::vector<std::uint8_t> r(36, 0);
    r[12] = 1;  // opcode reply
    r[8] = 9;   // responseTo
    r[32] = 1;  // numberReturned
    r.insert(r.end(), doc.bytes().begin(), doc.bytes().end());
    r[0] = static_cast<std::uint8_t>(r.size());
    op_reply_view v;
    ASSERT_FALSE(decode_op_reply(r, v));
    EXPECT_EQ(v.header.response_to, 9);
    EXPECT_EQ(v.number_returned, 1);
    EXPECT_EQ(to_json(v.first_document), R"({ "ismaster" : true, "ok" : 1 })");
    r[32] = 0;
    EXPECT_TRUE(decode_op_reply(r, v));
}

TEST(FrameReader, AcceptsBytesSplitAtEveryPosition) {
    auto a = sample_msg(1);
    auto b = sample_msg(2);
    std::vector<std::uint8_t> stream(a);
    stream.insert(stream.end(), b.begin(), b.end());
    for (std::size_t split = 0; split <= stream.size(); ++split) {
        frame_reader r;
        std::vector<std::vector<std::uint8_t>> frames;
        auto push = [&](byte_view chunk) {
            while (!chunk.empty()) {
                error_code ec;
                std::size_t n = r.feed(chunk, ec);
                ASSERT_FALSE(ec);
                chunk = chunk.subspan(n);
                if (r.ready()) {
                    frames.emplace_back();
                    r.take(frames.back());
                }
            }
        };
        push(byte_view(stream).first(split));
        push(byte_view(stream).subspan(split));
        ASSERT_EQ(frames.size(), 2u) << split;
        EXPECT_EQ(frames[0], a);
        EXPECT_EQ(frames[1], b);
    }
}

TEST(FrameReader, ByteAtATimeThroughPrepareCommit) {
    auto a = sample_msg(3);
    frame_reader r;
    for (std::size_t i = 0; i < a.size(); ++i) {
        auto span = r.prepare();
        ASSERT_FALSE(span.empty());
        // prepare never asks beyond the current frame.
        EXPECT_LE(span.size(), a.size() - i);
        span[0] = a[i];
        ASSERT_FALSE(r.commit(1));
    }
    ASSERT_TRUE(r.ready());
    EXPECT_TRUE(r.prepare().empty());
    std::vector<std::uint8_t> out;
    r.take(out);
    EXPECT_EQ(out, a);
    EXPECT_FALSE(r.ready());
}

TEST(FrameReader, RejectsShortAndOversizedFrames) {
    {
        frame_reader r;
        std::vector<std::uint8_t> h(16, 0);
        h[0] = 15;
        error_code ec;
        r.feed(h, ec);
        EXPECT_EQ(ec, client_errc::message_too_short);
        // Sticky until reset.
        r.feed(h, ec);
        EXPECT_EQ(ec, client_errc::message_too_short);
        r.reset();
        h[0] = 16;
        r.feed(h, ec);
        EXPECT_FALSE(ec);
        EXPECT_TRUE(r.ready());
    }
    {
        frame_reader r(1000);
        std::vector<std::uint8_t> h(16, 0);
        h[0] = 0xe9;  // 1001
        h[1] = 0x03;
        error_code ec;
        r.feed(h, ec);
        EXPECT_EQ(ec, client_errc::message_too_large);
    }
    {
        frame_reader r;
        std::vector<std::uint8_t> h(16, 0xff);  // negative length
        error_code ec;
        r.feed(h, ec);
        EXPECT_EQ(ec, client_errc::message_too_short);
    }
}

TEST(FrameReader, TakeRecyclesTheCallersBuffer) {
    auto a = sample_msg(1);
    frame_reader r;
    std::vector<std::uint8_t> out;
    out.reserve(4096);
    const auto* old = out.data();
    error_code ec;
    r.feed(a, ec);
    r.take(out);
    EXPECT_EQ(out, a);
    // The reader now owns the old buffer and fills it with the next frame.
    auto span = r.prepare();
    EXPECT_EQ(span.data(), old);
}

TEST(FrameReader, ReusedBufferHoldingAnOlderFrameYieldsOnlyTheNewFrame) {
    // The recycled buffer keeps its old bytes (it is not cleared or zero-filled); frames
    // larger and smaller than it must both come out exactly, at their own size.
    auto small = sample_msg(1);
    std::vector<std::uint8_t> big = sample_msg(2);
    big.insert(big.end(), 300, 0xAB);
    big[0] = static_cast<std::uint8_t>(big.size());
    big[1] = static_cast<std::uint8_t>(big.size() >> 8);
    frame_reader r;
    std::vector<std::uint8_t> held(1000, 0xCD);  // the caller's stale buffer
    error_code ec;
    for (const auto* f : {&big, &small, &big, &small}) {
        r.feed(*f, ec);
        ASSERT_FALSE(ec);
        ASSERT_TRUE(r.ready());
        r.take(held);
        EXPECT_EQ(held, *f);
    }
    r.reset();  // as a new exchange does: the next frame starts from scratch
    r.feed(small, ec);
    r.take(held);
    EXPECT_EQ(held, small);
}

}  // namespace
}  // namespace penne::mongo::wire
