// The reply parsers of the network credential providers (adapters/s3/src/detail/
// credentials_replies.hpp): what they read from ECS/IMDS JSON and STS XML, and that no
// problem text or error summary they produce ever carries a secret access key, a session
// token or the token the caller sent, however the reply is broken.
#include "credentials_replies.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

namespace penne::s3::detail {
namespace {

using namespace std::chrono_literals;
using std::chrono::sys_days;
using std::chrono::system_clock;

constexpr const char* secret = "replySECRETwJalrXUtnFEMIK7MDENGbPxRfiCY";
constexpr const char* session = "replyTOKENIQoJb3JpZ2luX2VjEJr//////////wEaCXVz";
constexpr const char* sent_token = "eyJhbGciOiJSUzI1NiJ9.SENTTOKEN.c2lnbmF0dXJl";

const system_clock::time_point expiry = sys_days{2026y / 12 / 6} + 16h + 27min + 41s;

void expect_no_secret(const std::string& text) {
    for (const char* s : {secret, session, sent_token})
        EXPECT_EQ(text.find(s), std::string::npos) << "leaks " << s << " in: " << text;
}

std::string imds_json(const std::string& secret_field, const std::string& rest = "") {
    return "{\n  \"Code\" : \"Success\",\n  \"LastUpdated\" : \"2026-12-06T10:02:11Z\",\n"
           "  \"Type\" : \"AWS-HMAC\",\n  \"AccessKeyId\" : \"ASIAIMDS\",\n"
           "  \"SecretAccessKey\" : " +
           secret_field + ",\n  \"Token\" : \"" + session + "\"" + rest + "\n}\n";
}

// ---- JSON credentials ---------------------------------------------------------------------

TEST(CredentialsJson, ReadsImdsAndEcsDocuments) {
    json_credentials imds;
    std::string problem;
    ASSERT_TRUE(parse_credentials_json(imds_json("\"" + std::string(secret) + "\"",
                                                 ",\n  \"Expiration\" : \"2026-12-06T16:27:41Z\""),
                                       imds, problem))
        << problem;
    EXPECT_EQ(imds.code, "Success");
    EXPECT_EQ(imds.creds.access_key_id, "ASIAIMDS");
    EXPECT_EQ(imds.creds.secret_access_key, secret);
    EXPECT_EQ(imds.creds.session_token, session);
    ASSERT_TRUE(imds.expiration);
    EXPECT_EQ(*imds.expiration, expiry);

    // ECS: no Code; EKS Pod Identity may send a null Token; escapes are decoded.
    json_credentials ecs;
    ASSERT_TRUE(
        parse_credentials_json("{\"AccessKeyId\":\"ASIAECS\",\"SecretAccessKey\":"
                               "\"a\\u0062c/def+ghi\",\"Token\":null,"
                               "\"Expiration\":\"2026-12-06T17:27:41+01:00\"}",
                               ecs, problem));
    EXPECT_EQ(ecs.code, "");
    EXPECT_EQ(ecs.creds.secret_access_key, "abc/def+ghi");
    EXPECT_EQ(ecs.creds.session_token, "");
    EXPECT_EQ(*ecs.expiration, expiry);
}

TEST(CredentialsJson, ProblemsNameTheFieldButNeverQuoteAValue) {
    const std::string s = std::string("\"") + secret + "\"";
    const std::string t = std::string("\"") + session + "\"";
    struct bad {
        std::string body;
        std::string problem;
    };
    const std::vector<bad> cases = {
        {"{\"AccessKeyId\":\"ASIA\",\"SecretAccessKey\":" + s + ",\"Token\":" + t.substr(0, 20),
         "the reply is not JSON"},
        {"[" + s + "," + t + "]", "the reply is not a JSON object"},
        {"{\"AccessKeyId\":\"ASIA\",\"Token\":" + t + "}", "the reply has no SecretAccessKey"},
        {"{\"SecretAccessKey\":" + s + ",\"Token\":" + t + "}", "the reply has no AccessKeyId"},
        {"{\"AccessKeyId\":\"ASIA\",\"SecretAccessKey\":[" + s + "]}",
         "the reply's SecretAccessKey is not a string"},
        {"{\"AccessKeyId\":\"ASIA\",\"SecretAccessKey\":\"\",\"Token\":" + t + "}",
         "the reply's SecretAccessKey is empty"},
        {"{\"AccessKeyId\":\"ASIA\",\"SecretAccessKey\":" + s + ",\"Token\":{\"v\":" + t + "}}",
         "the reply's Token is not a string"},
        {imds_json(s, ",\n  \"Expiration\" : " + s),
         "the reply's Expiration is not an ISO 8601 time"},
        {imds_json(s, ",\n  \"Expiration\" : 1765038461"),
         "the reply's Expiration is not a string"},
    };
    for (const auto& c : cases) {
        json_credentials out;
        std::string problem;
        EXPECT_FALSE(parse_credentials_json(c.body, out, problem)) << c.body;
        EXPECT_EQ(problem, c.problem) << c.body;
        expect_no_secret(problem);
    }
}

TEST(CredentialsJson, ErrorSummaryScrubsTheSentTokenAndShortens) {
    const std::string tok(sent_token);
    EXPECT_EQ(json_error_summary(
                  "{\"code\":\"InvalidToken\",\"message\":\"token " + tok + " is not valid\"}",
                  sent_token),
              "InvalidToken: token <redacted> is not valid");
    // The token written with JSON escapes is still the token once decoded.
    EXPECT_EQ(json_error_summary("{\"Message\":\"\\u0065" + tok.substr(1) + "\"}", sent_token),
              "<redacted>");
    EXPECT_EQ(json_error_summary("{\"Code\":\"Throttled\"}", sent_token), "Throttled");
    // Only code and message are quoted, never other fields of the body.
    EXPECT_EQ(json_error_summary("{\"Code\":\"Success\",\"SecretAccessKey\":\"" +
                                     std::string(secret) + "\",\"Token\":\"" + session + "\"}",
                                 sent_token),
              "Success");
    EXPECT_EQ(json_error_summary(imds_json("\"" + std::string(secret) + "\""), sent_token),
              "Success");
    // A long message that ends in the token: scrubbed before it is cut.
    const std::string long_message(195, 'x');
    const auto cut = json_error_summary("{\"message\":\"" + long_message + tok + "\"}", sent_token);
    expect_no_secret(cut);
    EXPECT_EQ(cut.substr(0, 195), long_message);
    EXPECT_EQ(cut.find(tok.substr(0, 5)), std::string::npos);
    // Not an error object: nothing to quote.
    EXPECT_EQ(json_error_summary("<html>" + tok + "</html>", sent_token), "");
    EXPECT_EQ(json_error_summary("[\"" + tok + "\"]", sent_token), "");
    EXPECT_EQ(json_error_summary("{\"code\":42,\"message\":[\"" + tok + "\"]}", sent_token), "");
}

// ---- STS ----------------------------------------------------------------------------------

std::string sts_reply(const std::string& secret_xml, const std::string& expiration) {
    return "<AssumeRoleWithWebIdentityResponse "
           "xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
           "  <AssumeRoleWithWebIdentityResult>\n"
           "    <SubjectFromWebIdentityToken>system:serviceaccount:penne:writer"
           "</SubjectFromWebIdentityToken>\n"
           "    <Credentials>\n"
           "      <AccessKeyId>ASIASTS</AccessKeyId>\n"
           "      <SecretAccessKey>" +
           secret_xml + "</SecretAccessKey>\n      <SessionToken>" + session +
           "</SessionToken>\n      <Expiration>" + expiration +
           "</Expiration>\n"
           "    </Credentials>\n"
           "  </AssumeRoleWithWebIdentityResult>\n"
           "</AssumeRoleWithWebIdentityResponse>\n";
}

TEST(StsReply, ReadsTheCredentials) {
    sts_credentials out;
    std::string problem;
    ASSERT_TRUE(parse_sts_credentials(
        sts_reply(std::string("\n  ") + secret + "\n", "2026-12-06T16:27:41.000Z"),
        "https://sts.eu-west-1.amazonaws.com", out, problem))
        << problem;
    EXPECT_EQ(out.creds.access_key_id, "ASIASTS");
    EXPECT_EQ(out.creds.secret_access_key, secret);  // trimmed
    EXPECT_EQ(out.creds.session_token, session);
    EXPECT_EQ(out.expiration, expiry);
}

TEST(StsReply, ProblemsNameTheOriginButNeverQuoteTheBody) {
    const std::string origin = "https://sts.eu-west-1.amazonaws.com";
    const std::string good = sts_reply(secret, "2026-12-06T16:27:41Z");
    auto without = [&](const std::string& element) {
        auto doc = good;
        const auto b = doc.find("<" + element + ">");
        const auto e = doc.find("</" + element + ">") + element.size() + 3;
        return doc.erase(b, e - b);
    };
    struct bad {
        std::string body;
        std::string problem;
    };
    const std::vector<bad> cases = {
        {good.substr(0, good.find("</SessionToken>")), "the reply from " + origin + " is not XML"},
        {"<html><body>" + std::string(secret) + "</body></html>",
         "the reply from " + origin + " has no AssumeRoleWithWebIdentityResult/Credentials"},
        {without("SessionToken"), "the reply from " + origin + " has no Credentials/SessionToken"},
        {without("AccessKeyId"), "the reply from " + origin + " has no Credentials/AccessKeyId"},
        {without("Expiration"), "the reply from " + origin + " has no Credentials/Expiration"},
        // Blank is missing, rather than an empty secret that would only fail at signing.
        {sts_reply("&#32;<![CDATA[ ]]>", "2026-12-06T16:27:41Z"),
         "the reply from " + origin + " has no Credentials/SecretAccessKey"},
        {sts_reply(secret, secret), "the reply's Expiration is not an ISO 8601 time"},
        {sts_reply(secret, "tomorrow at noon"), "the reply's Expiration is not an ISO 8601 time"},
    };
    for (const auto& c : cases) {
        sts_credentials out;
        std::string problem;
        EXPECT_FALSE(parse_sts_credentials(c.body, origin, out, problem)) << c.body;
        EXPECT_EQ(problem, c.problem);
        expect_no_secret(problem);
        EXPECT_EQ(out.creds.secret_access_key, "");
        EXPECT_EQ(out.creds.session_token, "");
    }
}

TEST(StsReply, ErrorDocumentsAreScrubbedOfTheSentToken) {
    const std::string tok(sent_token);
    auto err = parse_sts_error(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
        "<Error><Type>Sender</Type><Code>InvalidIdentityToken</Code>"
        "<Message>Incorrect token audience for " +
            tok + " (" + tok + ")</Message></Error><RequestId>r</RequestId></ErrorResponse>",
        sent_token);
    EXPECT_EQ(err.code, "InvalidIdentityToken");
    EXPECT_EQ(err.message, "Incorrect token audience for <redacted> (<redacted>)");

    // Written with character references, the token is still scrubbed once decoded.
    err = parse_sts_error("<ErrorResponse><Error><Code>&#101;" + tok.substr(1) +
                              "</Code><Message><![CDATA[" + tok +
                              "]]></Message></Error>"
                              "</ErrorResponse>",
                          sent_token);
    EXPECT_EQ(err.code, "<redacted>");
    EXPECT_EQ(err.message, "<redacted>");

    // Not shortened here: the provider cuts after classifying on the code.
    const std::string long_message(500, 'm');
    err = parse_sts_error("<ErrorResponse><Error><Code>Throttling</Code><Message>" + long_message +
                              "</Message></Error></ErrorResponse>",
                          sent_token);
    EXPECT_EQ(err.code, "Throttling");
    EXPECT_EQ(err.message, long_message);

    // A proxy's page, or a success document sent with an error status: nothing is quoted.
    err = parse_sts_error("<html><body>503 " + tok + "</body></html>", sent_token);
    EXPECT_EQ(err.code, "");
    EXPECT_EQ(err.message, "");
    err = parse_sts_error(sts_reply(secret, "2026-12-06T16:27:41Z"), sent_token);
    EXPECT_EQ(err.code, "");
    EXPECT_EQ(err.message, "");
    err = parse_sts_error("{\"Error\":\"" + tok + "\"}", sent_token);
    EXPECT_EQ(err.code, "");
    EXPECT_EQ(err.message, "");
}

}  // namespace
}  // namespace penne::s3::detail
