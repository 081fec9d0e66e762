#include <penne/mongo/scram.hpp>

#include <gtest/gtest.h>

namespace penne::mongo {
namespace {

// RFC 7677 section 3 example (user "user", password "pencil").
TEST(Scram, Sha256Rfc7677Vector) {
    scram_client c(scram_mechanism::sha256, "user", "pencil", "rOprNGfwEbeRWgbNEkqO");
    EXPECT_EQ(c.client_first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
    std::string final_msg;
    diagnostics d;
    ASSERT_FALSE(c.on_server_first(
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
        final_msg, d))
        << d.message;
    EXPECT_EQ(final_msg,
              "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
              "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
    EXPECT_FALSE(c.on_server_final("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", d));
    EXPECT_EQ(c.on_server_final("v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", d),
              client_errc::auth_failed);
    EXPECT_EQ(d.message.find("pencil"), std::string::npos);
}

TEST(Scram, RejectsBadServerFirst) {
    diagnostics d;
    std::string f;
    scram_client c(scram_mechanism::sha256, "u", "p", "abc");
    EXPECT_EQ(c.on_server_first("r=xyz123,s=QUJD,i=4096", f, d), client_errc::auth_failed);
    EXPECT_EQ(c.on_server_first("r=abcdef,s=QUJD,i=100", f, d), client_errc::auth_failed);
    EXPECT_EQ(c.on_server_first("r=abcdef,i=4096", f, d), client_errc::auth_failed);
    EXPECT_EQ(c.on_server_final("e=invalid-proof", d), client_errc::auth_failed);
    EXPECT_NE(d.message.find("invalid-proof"), std::string::npos);
}

TEST(Scram, UsernameEscapingAndSha1) {
    scram_client c(scram_mechanism::sha1, "a=b,c", "pw", "n0nce");
    EXPECT_EQ(c.client_first(), "n,,n=a=3Db=2Cc,r=n0nce");
    std::string f;
    diagnostics d;
    ASSERT_FALSE(c.on_server_first("r=n0nceXYZ,s=c2FsdHNhbHQ=,i=4096", f, d));
    EXPECT_EQ(f.rfind("c=biws,r=n0nceXYZ,p=", 0), 0u);
    // SHA-1 proof is 20 bytes: 28 base64 characters.
    EXPECT_EQ(f.size() - f.find("p=") - 2, 28u);
}

TEST(Scram, Base64) {
    std::string raw;
    EXPECT_EQ(base64_encode("pencil"), "cGVuY2ls");
    ASSERT_TRUE(base64_decode("cGVuY2ls", raw));
    EXPECT_EQ(raw, "pencil");
    ASSERT_TRUE(base64_decode("YQ==", raw));
    EXPECT_EQ(raw, "a");
    EXPECT_FALSE(base64_decode("YQ=", raw));
    EXPECT_FALSE(base64_decode("!!!!", raw));
    EXPECT_NE(scram_client::make_nonce(), scram_client::make_nonce());
}

TEST(Scram, SaslCommands) {
    auto s = make_sasl_start(scram_mechanism::sha256, "n,,n=u,r=x", "admin");
    bson_iter_t it;
    ASSERT_TRUE(find_field(s.bytes(), "mechanism", it));
    EXPECT_EQ(as_string(it), "SCRAM-SHA-256");
    ASSERT_TRUE(find_field(s.bytes(), "$db", it));
    EXPECT_EQ(as_string(it), "admin");
    auto c = make_sasl_continue(3, "c=biws", "admin");
    sasl_reply r;
    // A reply shape reuses the payload/conversationId fields.
    ASSERT_FALSE(parse_sasl_reply(c.bytes(), r));
    EXPECT_EQ(r.conversation_id, 3);
    EXPECT_EQ(r.payload, "c=biws");
    EXPECT_FALSE(r.done);
}

}  // namespace
}  // namespace penne::mongo
