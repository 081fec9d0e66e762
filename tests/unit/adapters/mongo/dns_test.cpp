#include <penne/mongo/dns.hpp>
#include <penne/mongo/dns_client.hpp>

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>
#include <vector>

namespace penne::mongo::dns {
namespace {

// Builds DNS messages byte by byte, so tests can write compression pointers and broken
// lengths that no well-behaved encoder produces.
struct writer {
    std::vector<std::uint8_t> b;

    std::size_t size() const { return b.size(); }
    writer& u8(std::uint8_t v) {
        b.push_back(v);
        return *this;
    }
    writer& u16(std::uint16_t v) {
        b.push_back(static_cast<std::uint8_t>(v >> 8));
        b.push_back(static_cast<std::uint8_t>(v & 0xff));
        return *this;
    }
    writer& u32(std::uint32_t v) {
        u16(static_cast<std::uint16_t>(v >> 16));
        return u16(static_cast<std::uint16_t>(v & 0xffff));
    }
    writer& label(std::string_view l) {
        u8(static_cast<std::uint8_t>(l.size()));
        b.insert(b.end(), l.begin(), l.end());
        return *this;
    }
    // Labels, then either the root (pointer < 0) or a compression pointer.
    writer& name(std::initializer_list<std::string_view> labels, int pointer = -1) {
        for (auto l : labels)
            label(l);
        if (pointer < 0)
            return u8(0);
        return u16(static_cast<std::uint16_t>(0xc000 | pointer));
    }
    writer& header(std::uint16_t id, std::uint16_t flags, std::uint16_t qd, std::uint16_t an,
                   std::uint16_t ns = 0, std::uint16_t ar = 0) {
        return u16(id).u16(flags).u16(qd).u16(an).u16(ns).u16(ar);
    }
    // type, class IN, ttl, then RDLENGTH patched by end_rdata().
    std::size_t begin_rdata(rtype t) {
        u16(static_cast<std::uint16_t>(t)).u16(1).u32(300).u16(0);
        return b.size();
    }
    void end_rdata(std::size_t start) {
        const std::size_t len = b.size() - start;
        b[start - 2] = static_cast<std::uint8_t>(len >> 8);
        b[start - 1] = static_cast<std::uint8_t>(len & 0xff);
    }
};

constexpr std::uint16_t reply_flags = 0x8180;  // QR, RD, RA, rcode 0

// A reply to "SRV _mongodb._tcp.rs.example.com" with two SRV answers whose owner names and
// targets are compressed against the question, and a TXT answer.
writer srv_reply(std::uint16_t id = 0x1234, std::uint16_t flags = reply_flags) {
    writer w;
    w.header(id, flags, 1, 3);
    const std::size_t qname = w.size();  // 12
    w.name({"_mongodb", "_tcp", "rs", "example", "com"}).u16(33).u16(1);
    const std::size_t rs = qname + 1 + 8 + 1 + 4;  // "rs.example.com" inside the question
    const std::size_t example = rs + 3;            // "example.com"
    for (int i = 0; i < 2; ++i) {
        w.name({}, static_cast<int>(qname));
        auto start = w.begin_rdata(rtype::srv);
        w.u16(static_cast<std::uint16_t>(10 - i)).u16(5).u16(static_cast<std::uint16_t>(27017 + i));
        w.name({i == 0 ? "db1" : "db2"}, static_cast<int>(example));
        w.end_rdata(start);
    }
    w.name({}, static_cast<int>(rs));
    auto start = w.begin_rdata(rtype::txt);
    w.label("replicaSet=rs0&").label("authSource=admin");
    w.end_rdata(start);
    return w;
}

TEST(Dns, EncodesAStandardRecursiveQuery) {
    std::vector<std::uint8_t> out;
    ASSERT_FALSE(encode_query("_mongodb._tcp.rs.example.com.", rtype::srv, 0xbeef, out));
    writer expect;
    expect.header(0xbeef, 0x0100, 1, 0).name({"_mongodb", "_tcp", "rs", "example", "com"});
    expect.u16(33).u16(1);
    EXPECT_EQ(out, expect.b);

    message m;
    ASSERT_FALSE(decode_message(out, m));
    EXPECT_FALSE(m.header.response);
    EXPECT_TRUE(m.header.recursion_desired);
    ASSERT_EQ(m.questions.size(), 1u);
    EXPECT_EQ(m.questions[0].name, "_mongodb._tcp.rs.example.com");
    EXPECT_EQ(m.questions[0].type, 33);
}

TEST(Dns, RefusesNamesThatCannotBeEncoded) {
    std::vector<std::uint8_t> out{1, 2, 3};
    EXPECT_EQ(encode_query("", rtype::a, 1, out), dns_errc::invalid_name);
    EXPECT_EQ(encode_query("a..b", rtype::a, 1, out), dns_errc::invalid_name);
    EXPECT_EQ(encode_query(".a", rtype::a, 1, out), dns_errc::invalid_name);
    EXPECT_EQ(encode_query(std::string(64, 'x') + ".com", rtype::a, 1, out),
              dns_errc::name_too_long);
    std::string long_name;
    while (long_name.size() < 260)
        long_name += "abcdefghi.";
    EXPECT_EQ(encode_query(long_name, rtype::a, 1, out), dns_errc::name_too_long);
    EXPECT_EQ(out, (std::vector<std::uint8_t>{1, 2, 3}));  // untouched on failure
    ASSERT_FALSE(encode_query(std::string(63, 'x') + ".com", rtype::a, 1, out));
}

TEST(Dns, DecodesCompressedSrvAndTxtAnswers) {
    auto w = srv_reply();
    message m;
    ASSERT_FALSE(decode_message(w.b, m));
    EXPECT_TRUE(m.header.response);
    EXPECT_FALSE(m.header.truncated);
    ASSERT_EQ(m.answers.size(), 3u);
    EXPECT_EQ(m.answers[0].name, "_mongodb._tcp.rs.example.com");
    EXPECT_EQ(m.answers[0].priority, 10);
    EXPECT_EQ(m.answers[0].weight, 5);
    EXPECT_EQ(m.answers[0].port, 27017);
    EXPECT_EQ(m.answers[0].target, "db1.example.com");
    EXPECT_EQ(m.answers[1].target, "db2.example.com");
    EXPECT_EQ(m.answers[1].port, 27018);
    EXPECT_EQ(m.answers[0].ttl, 300u);
    EXPECT_EQ(m.answers[2].name, "rs.example.com");
    EXPECT_EQ(m.answers[2].strings,
              (std::vector<std::string>{"replicaSet=rs0&", "authSource=admin"}));

    EXPECT_FALSE(check_reply(m, 0x1234, "_MONGODB._tcp.RS.example.com.", rtype::srv));
    EXPECT_EQ(answers_for(m, "_mongodb._tcp.rs.example.com", rtype::srv).size(), 2u);
    EXPECT_EQ(answers_for(m, "rs.example.com", rtype::txt).size(), 1u);
    EXPECT_TRUE(answers_for(m, "rs.example.com", rtype::srv).empty());
}

TEST(Dns, EveryCutOfAReplyFailsCleanlyUnlessTruncationIsAnnounced) {
    const auto full = srv_reply().b;
    for (std::size_t n = 0; n < full.size(); ++n) {
        std::vector<std::uint8_t> cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
        message m;
        EXPECT_TRUE(decode_message(cut, m)) << "cut at " << n;
    }
    // With TC set, a cut message keeps the records it holds whole.
    const auto tc = srv_reply(0x1234, reply_flags | 0x0200).b;
    std::size_t last_count = 0;
    for (std::size_t n = 12; n <= tc.size(); ++n) {
        std::vector<std::uint8_t> cut(tc.begin(), tc.begin() + static_cast<std::ptrdiff_t>(n));
        message m;
        ASSERT_FALSE(decode_message(cut, m)) << "cut at " << n;
        EXPECT_TRUE(m.header.truncated);
        EXPECT_GE(m.answers.size(), last_count);
        last_count = m.answers.size();
        for (const auto& r : m.answers)
            EXPECT_FALSE(r.name.empty());
    }
    EXPECT_EQ(last_count, 3u);
}

TEST(Dns, RefusesTrailingBytes) {
    auto w = srv_reply();
    w.u8(0);
    message m;
    EXPECT_EQ(decode_message(w.b, m), dns_errc::malformed);
}

TEST(Dns, RefusesPointersThatLoopOrPointForward) {
    // A name that points at itself.
    {
        writer w;
        w.header(1, reply_flags, 1, 0);
        w.name({}, 12).u16(1).u16(1);
        message m;
        EXPECT_EQ(decode_message(w.b, m), dns_errc::bad_pointer);
    }
    // A forward pointer (to the question's type field and beyond).
    {
        writer w;
        w.header(1, reply_flags, 1, 0);
        w.name({"a"}, 40).u16(1).u16(1);
        message m;
        EXPECT_EQ(decode_message(w.b, m), dns_errc::bad_pointer);
    }
    // Two names pointing at each other: the second jump goes forward again.
    {
        writer w;
        w.header(1, reply_flags, 1, 1);
        w.name({"a"}, 19).u16(1).u16(1);  // 12: "a", then a pointer past itself
        message m;
        EXPECT_EQ(decode_message(w.b, m), dns_errc::bad_pointer);
    }
    {
        // 12: label "a", pointer to 21 (the answer's name, later) - refused; and the
        // answer's name at 21 pointing back to 12 would be fine alone.
        writer w;
        w.header(1, reply_flags, 1, 1);
        w.name({"a"}).u16(1).u16(1);  // 12..18, types 19..22
        const std::size_t owner = w.size();
        w.name({"b"}, static_cast<int>(owner + 2));  // points into itself: loop
        auto s = w.begin_rdata(rtype::a);
        w.u32(0x7f000001);
        w.end_rdata(s);
        message m;
        EXPECT_EQ(decode_message(w.b, m), dns_errc::bad_pointer);
    }
    // A pointer past the end of the message.
    {
        writer w;
        w.header(1, reply_flags, 1, 0);
        w.name({}, 0x3fff).u16(1).u16(1);
        message m;
        EXPECT_EQ(decode_message(w.b, m), dns_errc::bad_pointer);
    }
    // A pointer cut in half.
    {
        writer w;
        w.header(1, reply_flags, 1, 0);
        w.u8(0xc0);
        message m;
        EXPECT_EQ(decode_message(w.b, m), dns_errc::malformed);
    }
}

TEST(Dns, ChainedBackwardPointersDecodeAndTheirLengthIsBounded) {
    // Each name adds one label and points at the previous one: a long but legal chain.
    writer w;
    const int names = 40;
    w.header(1, reply_flags, 0, static_cast<std::uint16_t>(names));
    std::size_t prev = 0;
    for (int i = 0; i < names; ++i) {
        const std::size_t here = w.size();
        if (i == 0)
            w.name({"base"});
        else
            w.name({"l" + std::to_string(i % 10)}, static_cast<int>(prev));
        auto s = w.begin_rdata(rtype::a);
        w.u32(0x0a000001);
        w.end_rdata(s);
        prev = here;
    }
    message m;
    ASSERT_FALSE(decode_message(w.b, m));
    ASSERT_EQ(m.answers.size(), static_cast<std::size_t>(names));
    EXPECT_EQ(m.answers[2].name, "l2.l1.base");

    // 30 links of 10-byte labels make a name longer than 255 bytes.
    writer big;
    const int many = 30;
    big.header(1, reply_flags, 0, static_cast<std::uint16_t>(many));
    prev = 0;
    for (int i = 0; i < many; ++i) {
        const std::size_t here = big.size();
        if (i == 0)
            big.name({"base"});
        else
            big.name({"abcdefghij"}, static_cast<int>(prev));
        auto s = big.begin_rdata(rtype::a);
        big.u32(1);
        big.end_rdata(s);
        prev = here;
    }
    EXPECT_EQ(decode_message(big.b, m), dns_errc::name_too_long);

    // More than max_pointer_jumps links, each short enough to stay under 255 bytes.
    writer deep;
    const int links = max_pointer_jumps + 6;
    deep.header(1, reply_flags, 0, static_cast<std::uint16_t>(links));
    prev = 0;
    for (int i = 0; i < links; ++i) {
        const std::size_t here = deep.size();
        if (i == 0)
            deep.name({"b"});
        else
            deep.name({"a"}, static_cast<int>(prev));
        auto s = deep.begin_rdata(rtype::a);
        deep.u32(1);
        deep.end_rdata(s);
        prev = here;
    }
    EXPECT_EQ(decode_message(deep.b, m), dns_errc::bad_pointer);
}

TEST(Dns, RefusesExtendedLabelTypesAndBadRdata) {
    {
        writer w;
        w.header(1, reply_flags, 1, 0);
        w.u8(0x41).u8('x').u8(0).u16(1).u16(1);
        message m;
        EXPECT_EQ(decode_message(w.b, m), dns_errc::malformed);
    }
    {
        writer w;  // an A record with 5 bytes of data
        w.header(1, reply_flags, 0, 1);
        w.name({"h"});
        auto s = w.begin_rdata(rtype::a);
        w.u32(1).u8(2);
        w.end_rdata(s);
        message m;
        EXPECT_EQ(decode_message(w.b, m), dns_errc::malformed);
    }
    {
        writer w;  // an SRV whose target runs past its RDLENGTH
        w.header(1, reply_flags, 0, 1);
        w.name({"h"});
        auto s = w.begin_rdata(rtype::srv);
        w.u16(1).u16(1).u16(1).name({"target"});
        w.end_rdata(s);
        w.b[s - 1] = static_cast<std::uint8_t>(w.b[s - 1] - 3);
        message m;
        EXPECT_TRUE(decode_message(w.b, m));
    }
    {
        writer w;  // a TXT string longer than its record
        w.header(1, reply_flags, 0, 1);
        w.name({"h"});
        auto s = w.begin_rdata(rtype::txt);
        w.u8(10).u8('a');
        w.end_rdata(s);
        message m;
        EXPECT_EQ(decode_message(w.b, m), dns_errc::malformed);
    }
}

TEST(Dns, DecodesAddressesAndFollowsCnames) {
    writer w;
    w.header(7, reply_flags, 1, 3);
    w.name({"db1", "example", "com"}).u16(1).u16(1);
    w.name({}, 12);
    auto s = w.begin_rdata(rtype::cname);
    w.name({"real"}, 12 + 4);  // real.example.com
    w.end_rdata(s);
    const std::size_t real = s;
    w.name({}, static_cast<int>(real));
    s = w.begin_rdata(rtype::a);
    w.u8(127).u8(0).u8(0).u8(7);
    w.end_rdata(s);
    w.name({}, static_cast<int>(real));
    s = w.begin_rdata(rtype::aaaa);
    for (int i = 0; i < 15; ++i)
        w.u8(0);
    w.u8(1);
    w.end_rdata(s);
    message m;
    ASSERT_FALSE(decode_message(w.b, m));
    ASSERT_FALSE(check_reply(m, 7, "db1.example.com", rtype::a));
    auto a = answers_for(m, "db1.example.com", rtype::a);
    ASSERT_EQ(a.size(), 1u);
    EXPECT_EQ(a[0]->name, "real.example.com");
    EXPECT_EQ(a[0]->address[3], 7);
    auto aaaa = answers_for(m, "DB1.example.com", rtype::aaaa);
    ASSERT_EQ(aaaa.size(), 1u);
    EXPECT_EQ(aaaa[0]->address[15], 1);
}

TEST(Dns, ChecksTheReplyAgainstTheQuery) {
    message m;
    ASSERT_FALSE(decode_message(srv_reply().b, m));
    const std::string name = "_mongodb._tcp.rs.example.com";
    EXPECT_EQ(check_reply(m, 0x1235, name, rtype::srv), dns_errc::id_mismatch);
    EXPECT_EQ(check_reply(m, 0x1234, "_mongodb._tcp.other.example.com", rtype::srv),
              dns_errc::question_mismatch);
    EXPECT_EQ(check_reply(m, 0x1234, name, rtype::txt), dns_errc::question_mismatch);
    ASSERT_FALSE(decode_message(srv_reply(0x1234, 0x0100).b, m));
    EXPECT_EQ(check_reply(m, 0x1234, name, rtype::srv), dns_errc::not_a_response);

    const std::pair<std::uint16_t, dns_errc> rcodes[] = {
        {1, dns_errc::format_error},    {2, dns_errc::server_failure}, {3, dns_errc::name_error},
        {4, dns_errc::not_implemented}, {5, dns_errc::refused},        {9, dns_errc::other_rcode}};
    for (auto [rcode, expected] : rcodes) {
        ASSERT_FALSE(decode_message(srv_reply(0x1234, reply_flags | rcode).b, m));
        EXPECT_EQ(check_reply(m, 0x1234, name, rtype::srv), expected) << rcode;
    }
    EXPECT_TRUE(is_retryable(make_error_code(dns_errc::server_failure)));
    EXPECT_FALSE(is_retryable(make_error_code(dns_errc::name_error)));
    EXPECT_NE(make_error_code(dns_errc::name_error).message().find("NXDOMAIN"), std::string::npos);
}

TEST(DnsServer, ParsesAddressesAndResolvConf) {
    host_port hp;
    diagnostics d;
    ASSERT_FALSE(parse_dns_server("127.0.0.1:5353", hp, d)) << d.message;
    EXPECT_EQ(hp, (host_port{"127.0.0.1", 5353}));
    ASSERT_FALSE(parse_dns_server("10.0.0.2", hp, d));
    EXPECT_EQ(hp, (host_port{"10.0.0.2", 53}));
    ASSERT_FALSE(parse_dns_server("[::1]:5300", hp, d));
    EXPECT_EQ(hp, (host_port{"::1", 5300}));
    ASSERT_FALSE(parse_dns_server("[::1]", hp, d));
    EXPECT_EQ(hp, (host_port{"::1", 53}));
    EXPECT_TRUE(parse_dns_server("dns.example.com:53", hp, d));
    EXPECT_NE(d.message.find("IP address"), std::string::npos);
    EXPECT_TRUE(parse_dns_server("127.0.0.1:99999", hp, d));

    EXPECT_EQ(parse_resolv_conf("# generated\n"
                                "search example.com\n"
                                "nameserver fe80::1%eth0\n"
                                "nameserver   192.0.2.53  # primary\n"
                                "nameserver 192.0.2.54\n"),
              (host_port{"192.0.2.53", 53}));
    EXPECT_EQ(parse_resolv_conf("nameserver ::1\r\n"), (host_port{"::1", 53}));
    EXPECT_FALSE(parse_resolv_conf("nameservers 1.2.3.4\n;nameserver 1.2.3.4\n"));
    EXPECT_FALSE(parse_resolv_conf(""));
}

}  // namespace
}  // namespace penne::mongo::dns
