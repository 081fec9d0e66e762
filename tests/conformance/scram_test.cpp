// mongosim's server-side SCRAM, checked against the RFC 5802 (SHA-1) and RFC 7677 (SHA-256)
// example exchanges, and its MongoDB-specific credential derivation and SASLprep.

#include "scram.hpp"

#include <gtest/gtest.h>

#include <string>

namespace {

using namespace mongosim;

std::vector<std::uint8_t> b64(const char* s) {
    auto v = base64_decode(s);
    EXPECT_TRUE(v.has_value()) << s;
    return v.value_or(std::vector<std::uint8_t>{});
}

TEST(MongosimScram, Rfc7677Sha256Exchange) {
    auto cred = derive_credential(scram_mechanism::sha256, "user", "pencil",
                                  b64("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096);
    ASSERT_TRUE(cred);
    scram_conversation conv(scram_mechanism::sha256, "admin");
    auto first = conv.start_with("n,,n=user,r=rOprNGfwEbeRWgbNEkqO", *cred,
                                 "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
    ASSERT_EQ(first.error, scram_conversation::failure::none);
    EXPECT_EQ(first.message,
              "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,"
              "i=4096");
    auto final = conv.finish(
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
    ASSERT_EQ(final.error, scram_conversation::failure::none);
    EXPECT_TRUE(final.done);
    EXPECT_EQ(final.message, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    EXPECT_EQ(conv.user(), "user");
}

TEST(MongosimScram, Rfc5802Sha1Exchange) {
    // The RFC hashes the plain password; MongoDB's md5 digest is checked separately below.
    auto cred = derive_keys(scram_mechanism::sha1, "pencil", b64("QSXCR+Q6sek8bf92"), 4096);
    scram_conversation conv(scram_mechanism::sha1, "admin");
    auto first =
        conv.start_with("n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL", cred, "3rfcNHYJY1ZVvWVs7j");
    ASSERT_EQ(first.error, scram_conversation::failure::none);
    EXPECT_EQ(first.message,
              "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096");
    auto final = conv.finish(
        "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=");
    ASSERT_EQ(final.error, scram_conversation::failure::none);
    EXPECT_EQ(final.message, "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=");
}

TEST(MongosimScram, WrongProofFailsAndConversationIsSpent) {
    auto cred = derive_keys(scram_mechanism::sha1, "pencil", b64("QSXCR+Q6sek8bf92"), 4096);
    scram_conversation conv(scram_mechanism::sha1, "admin");
    ASSERT_EQ(
        conv.start_with("n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL", cred, "3rfcNHYJY1ZVvWVs7j").error,
        scram_conversation::failure::none);
    // One bit flipped in the proof's first byte.
    const char* wrong =
        "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=w0X8v3Bz2T0CJGbJQyF0X+HI4Ts=";
    EXPECT_EQ(conv.finish(wrong).error, scram_conversation::failure::bad_proof);
    const char* right =
        "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=";
    EXPECT_EQ(conv.finish(right).error, scram_conversation::failure::malformed);
}

TEST(MongosimScram, RejectsBadMessages) {
    auto cred = derive_keys(scram_mechanism::sha256, "x", b64("QSXCR+Q6sek8bf92"), 4096);
    auto start = [&](const char* msg) {
        scram_conversation conv(scram_mechanism::sha256, "admin");
        return conv.start_with(msg, cred, "srv").error;
    };
    using f = scram_conversation::failure;
    EXPECT_EQ(start("p=tls-unique,,n=user,r=abc"), f::unsupported);
    EXPECT_EQ(start("n,,m=ext,n=user,r=abc"), f::unsupported);
    EXPECT_EQ(start("n,,n=user"), f::malformed);
    EXPECT_EQ(start("x,,n=user,r=abc"), f::malformed);
    EXPECT_EQ(start("n,,n=us=41er,r=abc"), f::malformed);
    EXPECT_EQ(start("n,,r=abc,n=user"), f::malformed);
    EXPECT_EQ(start("n,,n=user,r=abc,"), f::malformed);

    scram_conversation conv(scram_mechanism::sha256, "admin");
    ASSERT_EQ(conv.start_with("n,,n=a=2Cb=3Dc,r=abc", cred, "srv").error, f::none);
    EXPECT_EQ(conv.user(), "a,b=c");
    // Channel binding must repeat the gs2 header ("biws" is base64 of "n,,").
    EXPECT_EQ(conv.finish("c=eSws,r=abcsrv,p=AAAA").error, f::malformed);

    scram_conversation other(scram_mechanism::sha256, "admin");
    ASSERT_EQ(other.start_with("n,,n=u,r=abc", cred, "srv").error, f::none);
    EXPECT_EQ(other.finish("c=biws,r=abcXXX,p=AAAA").error, f::nonce_mismatch);
}

TEST(MongosimScram, RegistryLooksUpUsersPerDatabase) {
    user_registry users;
    ASSERT_TRUE(users.add("admin", "alice", "secret"));
    EXPECT_NE(users.find("admin", "alice"), nullptr);
    EXPECT_EQ(users.find("test", "alice"), nullptr);
    EXPECT_EQ(users.find("admin", "bob"), nullptr);
    const user_record* rec = users.find("admin", "alice");
    ASSERT_TRUE(rec->sha1 && rec->sha256);
    EXPECT_EQ(rec->sha1->iterations, sha1_iterations);
    EXPECT_EQ(rec->sha256->iterations, sha256_iterations);

    scram_conversation conv(scram_mechanism::sha256, "admin");
    EXPECT_EQ(conv.start("n,,n=bob,r=abc", users, "srv").error,
              scram_conversation::failure::unknown_user);
    scram_conversation found(scram_mechanism::sha1, "admin");
    auto first = found.start("n,,n=alice,r=abc", users, "srv");
    ASSERT_EQ(first.error, scram_conversation::failure::none);
    EXPECT_TRUE(first.message.starts_with("r=abcsrv,s="));
    EXPECT_TRUE(first.message.ends_with(",i=10000"));
}

TEST(MongosimScram, Sha1UsesTheMongoPasswordDigest) {
    // md5("user:mongo:pencil") in hex is the secret SCRAM-SHA-1 hashes for MongoDB.
    auto salt = b64("QSXCR+Q6sek8bf92");
    auto mongo = derive_credential(scram_mechanism::sha1, "user", "pencil", salt, 4096);
    auto digest =
        derive_keys(scram_mechanism::sha1, "1c33006ec1ffd90f9cadcbcc0e118200", salt, 4096);
    auto plain = derive_keys(scram_mechanism::sha1, "pencil", salt, 4096);
    ASSERT_TRUE(mongo);
    EXPECT_EQ(mongo->stored_key, digest.stored_key);
    EXPECT_EQ(mongo->server_key, digest.server_key);
    EXPECT_NE(mongo->stored_key, plain.stored_key);
}

TEST(MongosimScram, SaslPrepMapsSpacesRemovesIgnorablesRejectsControls) {
    EXPECT_EQ(saslprep("pencil"), "pencil");
    EXPECT_EQ(saslprep("I\xC2\xAD"
                       "X"),
              "IX");  // soft hyphen: mapped to nothing
    EXPECT_EQ(saslprep("a\xC2\xA0"
                       "b"),
              "a b");                           // no-break space: a space
    EXPECT_EQ(saslprep("\xE2\x85\xA8"), "IX");  // NFKC: ROMAN NUMERAL NINE
    EXPECT_FALSE(saslprep("a\x07"));            // control character
    EXPECT_FALSE(saslprep("\xEE\x80\x80"));     // private use
    EXPECT_FALSE(saslprep("\xC3"));             // truncated UTF-8
    EXPECT_FALSE(saslprep("\xC0\xAF"));         // overlong UTF-8
    EXPECT_FALSE(derive_credential(scram_mechanism::sha256, "u", "a\x01", {1, 2}, 1));
}

TEST(MongosimScram, Base64RoundTripsAndRejectsGarbage) {
    for (std::string s : {"", "f", "fo", "foo", "foob", "fooba", "foobar"}) {
        auto enc = base64_encode(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
        auto dec = base64_decode(enc);
        ASSERT_TRUE(dec) << enc;
        EXPECT_EQ(std::string(dec->begin(), dec->end()), s);
    }
    EXPECT_EQ(base64_encode(reinterpret_cast<const std::uint8_t*>("foobar"), 6), "Zm9vYmFy");
    EXPECT_FALSE(base64_decode("Zm9"));
    EXPECT_FALSE(base64_decode("Zm=v"));
    EXPECT_FALSE(base64_decode("Zm9v!A=="));
}

}  // namespace
