// mongosim's SCRAM authentication and OP_COMPRESSED, judged by libmongoc 1.23 (which speaks
// SCRAM-SHA-1, SCRAM-SHA-256, speculative authentication and zstd/zlib/snappy) and by raw
// wire messages for what a driver does not let us observe.

#include <mongosim/server.hpp>
#include <mongosim/wire.hpp>

#include "scram.hpp"

#include <mongoc/mongoc.h>

#include <gtest/gtest.h>

#include "mongoc_support.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

using namespace mongosim_test;

std::int64_t num(const bson_t* doc, const char* path) {
    bson_iter_t it, f;
    if (!bson_iter_init(&it, doc) || !bson_iter_find_descendant(&it, path, &f))
        return -999;
    return bson_iter_as_int64(&f);
}

std::string str(const bson_t* doc, const char* path) {
    bson_iter_t it, f;
    if (!bson_iter_init(&it, doc) || !bson_iter_find_descendant(&it, path, &f) ||
        !BSON_ITER_HOLDS_UTF8(&f))
        return {};
    return bson_iter_utf8(&f, nullptr);
}

client_ptr connect(const std::string& uri) {
    bson_error_t err;
    mongoc_uri_t* u = mongoc_uri_new_with_error(uri.c_str(), &err);
    EXPECT_NE(u, nullptr) << err.message;
    client_ptr c(u ? mongoc_client_new_from_uri(u) : nullptr);
    mongoc_uri_destroy(u);
    EXPECT_NE(c, nullptr);
    if (c)
        mongoc_client_set_error_api(c.get(), MONGOC_ERROR_API_VERSION_2);
    return c;
}

// Runs a command; returns the reply (the server's error document on failure) and fills err.
bson_ptr run(mongoc_client_t* c, const char* db, const std::string& cmd, bson_error_t& err,
             bool& ok) {
    bson_t reply;
    ok = mongoc_client_command_simple(c, db, json(cmd).get(), nullptr, &reply, &err);
    bson_ptr out(bson_copy(&reply));
    bson_destroy(&reply);
    return out;
}

bson_ptr run_ok(mongoc_client_t* c, const char* db, const std::string& cmd) {
    bson_error_t err;
    bool ok = false;
    auto reply = run(c, db, cmd, err, ok);
    EXPECT_TRUE(ok) << cmd << ": " << err.message;
    return reply;
}

mongosim::server_options with_users() {
    mongosim::server_options o;
    // Characters that must be percent-encoded in a URI and that SCRAM escapes (',' '=').
    o.users = {{"alice", "p@ss:w/rd%,="}, {"bob", "hunter2"}};
    return o;
}

constexpr const char* fast = "&serverSelectionTimeoutMS=3000";

class raw_socket {
public:
    explicit raw_socket(std::uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        EXPECT_EQ(::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
        timeval tv{5, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    ~raw_socket() { ::close(fd_); }
    raw_socket(const raw_socket&) = delete;
    raw_socket& operator=(const raw_socket&) = delete;

    void send(const std::vector<std::uint8_t>& b) {
        ASSERT_EQ(::send(fd_, b.data(), b.size(), MSG_NOSIGNAL), static_cast<ssize_t>(b.size()));
    }
    std::vector<std::uint8_t> receive() {
        std::vector<std::uint8_t> out(16);
        if (!read_exact(out.data(), 16))
            return {};
        std::int32_t len;
        std::memcpy(&len, out.data(), 4);
        out.resize(static_cast<std::size_t>(len));
        if (!read_exact(out.data() + 16, out.size() - 16))
            return {};
        return out;
    }

private:
    bool read_exact(std::uint8_t* p, std::size_t n) {
        while (n > 0) {
            ssize_t r = ::recv(fd_, p, n, 0);
            if (r <= 0)
                return false;
            p += r;
            n -= static_cast<std::size_t>(r);
        }
        return true;
    }
    int fd_;
};

std::vector<std::uint8_t> op_msg(std::int32_t request_id, const std::string& cmd) {
    bson_ptr doc = json(cmd);
    std::vector<std::uint8_t> m(16 + 4 + 1);
    std::int32_t op = mongosim::op_msg;
    std::memcpy(m.data() + 4, &request_id, 4);
    std::memcpy(m.data() + 12, &op, 4);
    m.insert(m.end(), bson_get_data(doc.get()), bson_get_data(doc.get()) + doc->len);
    auto len = static_cast<std::int32_t>(m.size());
    std::memcpy(m.data(), &len, 4);
    return m;
}

std::int32_t opcode_of(const std::vector<std::uint8_t>& m) {
    std::int32_t op = 0;
    if (m.size() >= 16)
        std::memcpy(&op, m.data() + 12, 4);
    return op;
}

// Decodes a reply (compressed or not) with the server's own request decoder: an OP_MSG reply
// has the same framing as a request.
bson_ptr reply_body(const std::vector<std::uint8_t>& m, mongosim::request& req) {
    EXPECT_FALSE(mongosim::decode_request(m, req));
    return req.command ? std::move(req.command) : bson_ptr(bson_new());
}

// Inserts, reads back and watches: everything an authenticated client should be allowed.
void exercise(mongoc_client_t* c) {
    run_ok(c, "app", R"({"insert": "items", "documents": [{"_id": 1, "v": "one"}]})");
    auto found = run_ok(c, "app", R"({"find": "items", "filter": {"_id": 1}})");
    EXPECT_EQ(str(found.get(), "cursor.firstBatch.0.v"), "one") << relaxed(found.get());
}

TEST(MongosimAuth, ScramSha256WithRightPasswordIsSpeculative) {
    mongosim::background srv(with_users());
    auto c = connect(srv.uri("alice", "p@ss:w/rd%,=") + "&authMechanism=SCRAM-SHA-256" + fast);
    exercise(c.get());
    auto st = run_ok(c.get(), "admin", R"({"serverStatus": 1})");
    const char* base = "security.authentication.mechanisms.SCRAM-SHA-256.";
    // libmongoc starts SCRAM-SHA-256 inside its hello; a pooled monitor does not authenticate.
    EXPECT_EQ(num(st.get(), (std::string(base) + "speculativeAuthenticate.successful").c_str()) +
                  num(st.get(), (std::string(base) + "authenticate.successful").c_str()),
              1)
        << relaxed(st.get());
    EXPECT_GE(num(st.get(), (std::string(base) + "speculativeAuthenticate.received").c_str()), 1);
}

TEST(MongosimAuth, ScramSha1WithRightPassword) {
    mongosim::background srv(with_users());
    auto c = connect(srv.uri("bob", "hunter2") + "&authMechanism=SCRAM-SHA-1" + fast);
    exercise(c.get());
    auto st = run_ok(c.get(), "admin", R"({"serverStatus": 1})");
    const char* base = "security.authentication.mechanisms.SCRAM-SHA-1.";
    EXPECT_EQ(num(st.get(), (std::string(base) + "speculativeAuthenticate.successful").c_str()) +
                  num(st.get(), (std::string(base) + "authenticate.successful").c_str()),
              1)
        << relaxed(st.get());
}

TEST(MongosimAuth, DefaultMechanismIsNegotiatedThroughSaslSupportedMechs) {
    mongosim::background srv(with_users());
    auto c = connect(srv.uri("alice", "p@ss:w/rd%,=") + fast);
    exercise(c.get());
    auto st = run_ok(c.get(), "admin", R"({"serverStatus": 1})");
    EXPECT_EQ(
        num(st.get(), "security.authentication.mechanisms.SCRAM-SHA-1.authenticate.received") +
            num(st.get(),
                "security.authentication.mechanisms.SCRAM-SHA-1."
                "speculativeAuthenticate.received"),
        0);
}

TEST(MongosimAuth, WrongPasswordAndUnknownUserFailTheDriversHandshake) {
    mongosim::background srv(with_users());
    for (const char* mech : {"SCRAM-SHA-256", "SCRAM-SHA-1"}) {
        for (auto [user, pw] : {std::pair{"alice", "p@ss:w/rd%,"}, std::pair{"carol", "x"},
                                std::pair{"bob", "Hunter2"}}) {
            auto c = connect(srv.uri(user, pw) + "&authMechanism=" + mech + fast);
            bson_error_t err;
            bool ok = true;
            auto reply = run(c.get(), "admin", R"({"ping": 1})", err, ok);
            EXPECT_FALSE(ok) << mech << " " << user;
            // libmongoc reports the server's code 18 as its own client-side auth error.
            EXPECT_EQ(err.domain, static_cast<std::uint32_t>(MONGOC_ERROR_CLIENT));
            EXPECT_EQ(err.code, static_cast<std::uint32_t>(MONGOC_ERROR_CLIENT_AUTHENTICATE))
                << mech << " " << user << ": " << err.message;
            EXPECT_NE(std::string(err.message).find("Authentication failed"), std::string::npos)
                << err.message;
            // Secrets stay out of errors.
            EXPECT_EQ(std::string(err.message).find(pw), std::string::npos);
        }
    }
}

TEST(MongosimAuth, WrongProofIsCode18OnTheWire) {
    mongosim::background srv(with_users());
    raw_socket s(srv.port());
    for (const char* mech : {"SCRAM-SHA-256", "SCRAM-SHA-1"}) {
        // client-first "n,,n=bob,r=clientnonce" (base64).
        s.send(op_msg(1, std::string(R"({"saslStart": 1, "$db": "admin", "mechanism": ")") + mech +
                             R"(", "options": {"skipEmptyExchange": true},
                   "payload": {"$binary": {"base64": "biwsbj1ib2Iscj1jbGllbnRub25jZQ==",
                                           "subType": "00"}}})"));
        mongosim::request r1;
        auto first = reply_body(s.receive(), r1);
        ASSERT_EQ(num(first.get(), "ok"), 1) << relaxed(first.get());
        EXPECT_EQ(num(first.get(), "done"), 0);
        const auto id = num(first.get(), "conversationId");
        bson_iter_t it;
        ASSERT_TRUE(bson_iter_init_find(&it, first.get(), "payload"));
        std::uint32_t len;
        const std::uint8_t* data;
        bson_iter_binary(&it, nullptr, &len, &data);
        const std::string server_first(reinterpret_cast<const char*>(data), len);
        ASSERT_TRUE(server_first.starts_with("r=clientnonce"));
        const std::string nonce = server_first.substr(2, server_first.find(',') - 2);
        const std::size_t proof_len = std::string(mech) == "SCRAM-SHA-1" ? 20 : 32;
        const std::vector<std::uint8_t> zeros(proof_len, 0);
        const std::string final =
            "c=biws,r=" + nonce + ",p=" + mongosim::base64_encode(zeros.data(), zeros.size());
        const std::string b64 = mongosim::base64_encode(
            reinterpret_cast<const std::uint8_t*>(final.data()), final.size());
        s.send(op_msg(2, R"({"saslContinue": 1, "$db": "admin", "conversationId": )" +
                             std::to_string(id) + R"(, "payload": {"$binary": {"base64": ")" + b64 +
                             R"(", "subType": "00"}}})"));
        mongosim::request r2;
        auto failed = reply_body(s.receive(), r2);
        EXPECT_EQ(num(failed.get(), "ok"), 0);
        EXPECT_EQ(num(failed.get(), "code"), 18) << relaxed(failed.get());
        EXPECT_EQ(str(failed.get(), "codeName"), "AuthenticationFailed");
        // Still unauthenticated.
        s.send(op_msg(3, R"({"find": "items", "$db": "app"})"));
        mongosim::request r3;
        auto denied = reply_body(s.receive(), r3);
        EXPECT_EQ(num(denied.get(), "code"), 13) << relaxed(denied.get());
    }
}

TEST(MongosimAuth, UnauthenticatedCommandsAreRejectedWithCode13) {
    mongosim::background srv(with_users());
    auto c = connect(srv.uri() + fast);
    run_ok(c.get(), "admin", R"({"ping": 1})");
    run_ok(c.get(), "admin", R"({"buildInfo": 1})");
    for (const char* cmd : {R"({"insert": "items", "documents": [{"_id": 1}]})",
                            R"({"find": "items"})", R"({"listDatabases": 1})",
                            R"({"aggregate": 1, "pipeline": [{"$changeStream": {}}],
                                "cursor": {}})"}) {
        bson_error_t err;
        bool ok = true;
        auto reply = run(c.get(), "admin", cmd, err, ok);
        EXPECT_FALSE(ok) << cmd;
        EXPECT_EQ(err.code, 13u) << cmd;
        EXPECT_EQ(str(reply.get(), "codeName"), "Unauthorized") << relaxed(reply.get());
    }
}

TEST(MongosimAuth, AuthOffAcceptsEveryone) {
    mongosim::background srv;
    auto c = connect(srv.uri() + fast);
    exercise(c.get());
}

// ---------------------------------------------------------------------------------------------
// Compression

TEST(MongosimCompression, HelloNegotiatesAndRepliesUseTheRequestsCompressor) {
    mongosim::background srv;
    raw_socket s(srv.port());
    s.send(op_msg(1, R"({"hello": 1, "$db": "admin", "compression": ["lz4", "zlib", "zstd"]})"));
    mongosim::request hello;
    auto body = reply_body(s.receive(), hello);
    EXPECT_EQ(str(body.get(), "compression.0"), "zlib") << relaxed(body.get());
    EXPECT_EQ(str(body.get(), "compression.1"), "zstd");
    bson_iter_t it;
    EXPECT_FALSE(bson_iter_init_find(&it, body.get(), "compression") &&
                 bson_iter_init(&it, body.get()) &&
                 bson_iter_find_descendant(&it, "compression.2", &it));

    for (auto c :
         {mongosim::compressor::zlib, mongosim::compressor::zstd, mongosim::compressor::snappy}) {
        s.send(mongosim::encode_compressed(op_msg(2, R"({"ping": 1, "$db": "admin"})"), c));
        auto reply = s.receive();
        EXPECT_EQ(opcode_of(reply), mongosim::op_compressed);
        mongosim::request r;
        auto pong = reply_body(reply, r);
        ASSERT_TRUE(r.compressed_with);
        EXPECT_EQ(*r.compressed_with, c);
        EXPECT_EQ(num(pong.get(), "ok"), 1);
        EXPECT_EQ(r.header.response_to, 2);

        // hello and SASL replies are never compressed.
        s.send(mongosim::encode_compressed(op_msg(3, R"({"hello": 1, "$db": "admin"})"), c));
        auto plain = s.receive();
        EXPECT_EQ(opcode_of(plain), mongosim::op_msg);
        s.send(mongosim::encode_compressed(
            op_msg(4, R"({"saslStart": 1, "mechanism": "SCRAM-SHA-256", "$db": "admin",
                          "payload": {"$binary": {"base64": "biwsbj11LHI9YWJj",
                                                  "subType": "00"}}})"),
            c));
        auto sasl = s.receive();
        EXPECT_EQ(opcode_of(sasl), mongosim::op_msg);
        mongosim::request sr;
        auto failed = reply_body(sasl, sr);
        EXPECT_EQ(num(failed.get(), "code"), 18) << relaxed(failed.get());
    }
}

class MongosimDriverCompression : public ::testing::TestWithParam<const char*> {};

TEST_P(MongosimDriverCompression, LibmongocTalksCompressed) {
    const std::string name = GetParam();
    mongosim::background srv;
    mongoc_uri_t* u = mongoc_uri_new((srv.uri() + fast).c_str());
    ASSERT_NE(u, nullptr);
    // False when this libmongoc was built without that compressor.
    const bool supported = mongoc_uri_set_compressors(u, name.c_str());
    mongoc_uri_destroy(u);
    ASSERT_TRUE(supported) << "Debian's libmongoc lacks " << name;

    auto c = connect(srv.uri() + "&compressors=" + name + fast);
    std::string docs;
    for (int i = 0; i < 200; ++i)
        docs += (i ? "," : "") + std::string(R"({"_id": )") + std::to_string(i) +
                R"(, "text": "the quick brown fox jumps over the lazy dog again and again"})";
    run_ok(c.get(), "app", R"({"insert": "items", "documents": [)" + docs + "]}");
    auto found = run_ok(c.get(), "app", R"({"find": "items", "filter": {"_id": 199}})");
    EXPECT_EQ(num(found.get(), "cursor.firstBatch.0._id"), 199);
    auto st = run_ok(c.get(), "admin", R"({"serverStatus": 1})");
    const std::string base = "network.compression." + name + ".";
    EXPECT_GT(num(st.get(), (base + "decompressor.bytesIn").c_str()), 0) << relaxed(st.get());
    EXPECT_GT(num(st.get(), (base + "compressor.bytesIn").c_str()), 0);
    // The 200-document insert compressed well on the wire.
    EXPECT_LT(num(st.get(), (base + "decompressor.bytesIn").c_str()),
              num(st.get(), (base + "decompressor.bytesOut").c_str()) / 2);
    for (const char* other : {"zstd", "zlib", "snappy"}) {
        if (name == other)
            continue;
        const std::string o = std::string("network.compression.") + other + ".";
        EXPECT_EQ(num(st.get(), (o + "decompressor.bytesIn").c_str()), 0) << other;
    }
}

INSTANTIATE_TEST_SUITE_P(All, MongosimDriverCompression,
                         ::testing::Values("zstd", "zlib", "snappy"),
                         [](const auto& info) { return std::string(info.param); });

TEST(MongosimCompression, AuthenticatedAndCompressedTogether) {
    mongosim::background srv(with_users());
    auto c =
        connect(srv.uri("bob", "hunter2") + "&authMechanism=SCRAM-SHA-256&compressors=zlib" + fast);
    exercise(c.get());
    auto st = run_ok(c.get(), "admin", R"({"serverStatus": 1})");
    EXPECT_GT(num(st.get(), "network.compression.zlib.decompressor.bytesIn"), 0);
}

}  // namespace
