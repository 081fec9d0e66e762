#include <penne/mongo/saslprep.hpp>
#include <penne/mongo/scram.hpp>

#include <gtest/gtest.h>

#include <string>

namespace penne::mongo {
namespace {

std::string prep(std::string_view in) {
    std::string out;
    EXPECT_FALSE(saslprep(in, out)) << in;
    return out;
}

bool rejected(std::string_view in) {
    std::string out = "unchanged";
    error_code ec = saslprep(in, out);
    EXPECT_TRUE(out.empty());
    return ec == client_errc::invalid_password;
}

// RFC 4013 section 3's examples that do not need NFKC or the bidi rule.
TEST(SaslPrep, Rfc4013Examples) {
    EXPECT_EQ(prep("I\xC2\xAD"
                   "X"),
              "IX");  // SOFT HYPHEN mapped to nothing
    EXPECT_EQ(prep("user"), "user");
    EXPECT_EQ(prep("USER"), "USER");  // case preserved
    EXPECT_TRUE(rejected("\x07"));    // prohibited control character
}

TEST(SaslPrep, MapsSpacesAndRemovesInvisibles) {
    EXPECT_EQ(prep("a\xC2\xA0"
                   "b"),
              "a b");                          // NO-BREAK SPACE
    EXPECT_EQ(prep("a\xE3\x80\x80z"), "a z");  // IDEOGRAPHIC SPACE
    EXPECT_EQ(prep("a\xE2\x80\x8B"
                   "b"),
              "ab");                          // ZERO WIDTH SPACE: mapped to nothing
    EXPECT_EQ(prep("\xEF\xBB\xBFpw"), "pw");  // BOM
    EXPECT_EQ(prep("p\xEF\xB8\x8Fw"), "pw");  // VARIATION SELECTOR-16
    EXPECT_EQ(prep("caf\xC3\xA9 \xF0\x9F\x8D\x9D"), "caf\xC3\xA9 \xF0\x9F\x8D\x9D");
    EXPECT_EQ(prep(""), "");
    EXPECT_EQ(prep(" ~!@#$%^&*()"), " ~!@#$%^&*()");
}

TEST(SaslPrep, RejectsProhibitedCharacters) {
    EXPECT_TRUE(rejected("pw\x7F"));            // DEL
    EXPECT_TRUE(rejected("pw\xC2\x85"));        // NEXT LINE (C.2.2)
    EXPECT_TRUE(rejected("\xEE\x80\x80"));      // U+E000 private use
    EXPECT_TRUE(rejected("\xF3\xB0\x80\x80"));  // U+F0000 private use plane
    EXPECT_TRUE(rejected("\xEF\xB7\x90"));      // U+FDD0 non-character
    EXPECT_TRUE(rejected("\xF0\x9F\xBF\xBF"));  // U+1FFFF non-character
    EXPECT_TRUE(rejected("\xEF\xBF\xBD"));      // U+FFFD REPLACEMENT CHARACTER (C.6)
    EXPECT_TRUE(rejected("\xE2\xBF\xB0"));      // U+2FF0 ideographic description (C.7)
    EXPECT_TRUE(rejected("a\xE2\x80\x8E"));     // LEFT-TO-RIGHT MARK (C.8)
    EXPECT_TRUE(rejected("\xF3\xA0\x80\x81"));  // U+E0001 LANGUAGE TAG (C.9)
    EXPECT_TRUE(rejected("a\xE2\x80\xA8"));     // LINE SEPARATOR
}

TEST(SaslPrep, RejectsInvalidUtf8) {
    EXPECT_TRUE(rejected("\xC0\xAF"));          // overlong '/'
    EXPECT_TRUE(rejected("\xE0\x80\xAF"));      // overlong, 3 bytes
    EXPECT_TRUE(rejected("\xED\xA0\x80"));      // encoded surrogate
    EXPECT_TRUE(rejected("\xF4\x90\x80\x80"));  // beyond U+10FFFF
    EXPECT_TRUE(rejected("ab\xC3"));            // truncated
    EXPECT_TRUE(rejected("\x80"));              // lone continuation byte
    EXPECT_TRUE(rejected("\xFF"));
}

// SCRAM-SHA-256 derives its keys from the prepared password; SCRAM-SHA-1 from the raw one.
TEST(SaslPrep, ScramSha256UsesThePreparedPassword) {
    const char* server_first = "r=fixednonceSERVER,s=c2FsdHNhbHQ=,i=4096";
    auto final_for = [&](scram_mechanism m, const char* pw) {
        scram_client c(m, "user", pw, "fixednonce");
        std::string out;
        diagnostics d;
        EXPECT_FALSE(c.on_server_first(server_first, out, d)) << d.message;
        return out;
    };
    EXPECT_EQ(final_for(scram_mechanism::sha256,
                        "I\xC2\xAD"
                        "X"),
              final_for(scram_mechanism::sha256, "IX"));
    EXPECT_EQ(final_for(scram_mechanism::sha256,
                        "a\xC2\xA0"
                        "b"),
              final_for(scram_mechanism::sha256, "a b"));
    EXPECT_NE(final_for(scram_mechanism::sha1,
                        "I\xC2\xAD"
                        "X"),
              final_for(scram_mechanism::sha1, "IX"));

    scram_client bad(scram_mechanism::sha256, "user", "secret\x07", "fixednonce");
    std::string out;
    diagnostics d;
    EXPECT_EQ(bad.on_server_first(server_first, out, d), client_errc::invalid_password);
    EXPECT_EQ(d.message.find("secret"), std::string::npos) << d.message;
    EXPECT_FALSE(is_retryable(make_error_code(client_errc::invalid_password)));
}

}  // namespace
}  // namespace penne::mongo
