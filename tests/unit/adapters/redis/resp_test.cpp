#include <penne/redis/resp.hpp>

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace penne::redis {
namespace {

value bulk(std::string s) {
    return {.kind = value_kind::bulk, .text = std::move(s)};
}
value status(std::string s) {
    return {.kind = value_kind::status, .text = std::move(s)};
}
value err(std::string s) {
    return {.kind = value_kind::error, .text = std::move(s)};
}
value integer(std::int64_t n) {
    return {.kind = value_kind::integer, .integer = n};
}
value nil() {
    return {};
}
value array(std::vector<value> v) {
    return {.kind = value_kind::array, .elements = std::move(v)};
}

std::vector<value> parse_all(reply_parser& p, std::string_view bytes, error_code& ec) {
    std::vector<value> out;
    ec = p.feed(bytes);
    value v;
    while (!ec && p.next(v, ec))
        out.push_back(std::move(v));
    return out;
}

TEST(RespEncode, CommandIsAnArrayOfBulkStrings) {
    const std::string_view argv[] = {"SET", "k", "value"};
    EXPECT_EQ(encode_command(argv), "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n");
}

TEST(RespEncode, ArgumentsAreBinarySafe) {
    const std::string binary("a\r\n\0b", 5);
    const std::string_view argv[] = {"SET", "", binary};
    EXPECT_EQ(encode_command(argv),
              std::string("*3\r\n$3\r\nSET\r\n$0\r\n\r\n$5\r\na\r\n\0b\r\n", 30));
}

TEST(RespEncode, RequestConcatenatesCommandsAndCountsThem) {
    request r{"PING"};
    r.push({"GET", "x"});
    const std::vector<std::string> owned = {"DEL", "a", "b"};
    r.push(owned);
    EXPECT_EQ(r.size(), 3u);
    EXPECT_EQ(r.payload(),
              "*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nx\r\n"
              "*3\r\n$3\r\nDEL\r\n$1\r\na\r\n$1\r\nb\r\n");
    EXPECT_FALSE(r.idempotent);
    r.clear();
    EXPECT_TRUE(r.empty());
    EXPECT_TRUE(r.payload().empty());
}

TEST(RespParse, EveryReplyType) {
    reply_parser p;
    error_code ec;
    auto got = parse_all(p,
                         "+OK\r\n-ERR bad thing\r\n:-42\r\n$5\r\nhello\r\n$-1\r\n*-1\r\n*0\r\n"
                         "*3\r\n:1\r\n*2\r\n$1\r\na\r\n$-1\r\n+QUEUED\r\n$0\r\n\r\n",
                         ec);
    ASSERT_FALSE(ec) << p.error_text();
    const std::vector<value> expected = {
        status("OK"), err("ERR bad thing"),
        integer(-42), bulk("hello"),
        nil(),        nil(),
        array({}),    array({integer(1), array({bulk("a"), nil()}), status("QUEUED")}),
        bulk("")};
    EXPECT_EQ(got, expected);
    EXPECT_TRUE(got[0].is_status());
    EXPECT_TRUE(got[1].is_error());
    EXPECT_TRUE(got[4].is_nil());
}

TEST(RespParse, BulkStringsAreBinarySafe) {
    reply_parser p;
    error_code ec;
    auto got = parse_all(p, std::string("$6\r\n\r\n\0\xff\r\n\r\n", 12), ec);
    ASSERT_FALSE(ec);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].text, std::string("\r\n\0\xff\r\n", 6));
}

// A stream of several replies of every shape, fed in two pieces split at every position
// and byte by byte: the result never depends on how the bytes arrive.
TEST(RespParse, SplitAtEveryPosition) {
    const std::string stream =
        "+PONG\r\n*3\r\n$3\r\nfoo\r\n*2\r\n:7\r\n-NOSCRIPT No matching script\r\n$-1\r\n"
        ":123456789012\r\n$10\r\n0123456789\r\n*-1\r\n*1\r\n*1\r\n*0\r\n";
    const std::vector<value> expected = {
        status("PONG"),
        array({bulk("foo"), array({integer(7), err("NOSCRIPT No matching script")}), nil()}),
        integer(123456789012),
        bulk("0123456789"),
        nil(),
        array({array({array({})})})};
    for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
        reply_parser p;
        error_code ec;
        auto got = parse_all(p, std::string_view(stream).substr(0, cut), ec);
        ASSERT_FALSE(ec) << cut;
        auto rest = parse_all(p, std::string_view(stream).substr(cut), ec);
        ASSERT_FALSE(ec) << cut;
        got.insert(got.end(), rest.begin(), rest.end());
        EXPECT_EQ(got, expected) << "split at " << cut;
    }
    reply_parser p;
    std::vector<value> got;
    for (char c : stream) {
        error_code ec;
        auto some = parse_all(p, std::string_view(&c, 1), ec);
        ASSERT_FALSE(ec);
        got.insert(got.end(), some.begin(), some.end());
    }
    EXPECT_EQ(got, expected);
}

TEST(RespParse, IncompleteReplyIsNotReturned) {
    reply_parser p;
    error_code ec;
    EXPECT_TRUE(parse_all(p, "*2\r\n$3\r\nfoo\r\n$3\r\nba", ec).empty());
    EXPECT_FALSE(ec);
    auto got = parse_all(p, "r\r\n", ec);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0], array({bulk("foo"), bulk("bar")}));
}

TEST(RespParse, HugeAnnouncedArrayDoesNotAllocateUpFront) {
    reply_parser p;
    error_code ec;
    EXPECT_TRUE(parse_all(p, "*2147483647\r\n:1\r\n:2\r\n", ec).empty());
    EXPECT_FALSE(ec);
}

TEST(RespParse, ProtocolErrorPoisonsUntilReset) {
    reply_parser p;
    error_code ec;
    auto got = parse_all(p, "+OK\r\n?what\r\n", ec);
    EXPECT_EQ(got.size(), 1u);  // the reply before the garbage is still delivered
    EXPECT_EQ(ec, errc::protocol_error);
    EXPECT_FALSE(p.error_text().empty());
    EXPECT_EQ(p.feed("+OK\r\n"), errc::protocol_error);
    value v;
    EXPECT_FALSE(p.next(v, ec));
    EXPECT_EQ(ec, errc::protocol_error);
    p.reset();
    EXPECT_TRUE(p.error_text().empty());
    got = parse_all(p, "+OK\r\n", ec);
    EXPECT_FALSE(ec);
    EXPECT_EQ(got, std::vector<value>{status("OK")});
}

TEST(RespParse, NestingDeeperThanHiredisSupportsIsAProtocolError) {
    reply_parser p;
    error_code ec;
    std::string deep;
    for (int i = 0; i < 12; ++i)
        deep += "*1\r\n";
    deep += ":1\r\n";
    parse_all(p, deep, ec);
    EXPECT_EQ(ec, errc::protocol_error);
}

TEST(RespParse, ManyRepliesInOneFeed) {
    std::string stream;
    for (int i = 0; i < 1000; ++i)
        stream += ":" + std::to_string(i) + "\r\n";
    reply_parser p;
    error_code ec;
    auto got = parse_all(p, stream, ec);
    ASSERT_FALSE(ec);
    ASSERT_EQ(got.size(), 1000u);
    for (int i = 0; i < 1000; ++i)
        EXPECT_EQ(got[static_cast<std::size_t>(i)].integer, i);
}

TEST(RespValue, ToStringIsReadableAndEscapes) {
    EXPECT_EQ(to_string(array({integer(1), bulk("a\"\n"), nil(), status("OK"), err("ERR x")})),
              R"([1, "a\"\x0a", nil, OK, (error) ERR x])");
}

}  // namespace
}  // namespace penne::redis
