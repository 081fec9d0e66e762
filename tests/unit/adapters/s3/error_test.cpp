// S3 error replies: every code and status mapping, the retryable/fatal split, replies without
// a body or with a body that is not S3's, what describe() tells the operator (and never
// tells), retry labels for metrics, and the HTTP-date and ISO 8601 parsers used for clock
// skew and credential expiry.
#include <penne/s3/error.hpp>

#include <gtest/gtest.h>

#include <boost/asio/error.hpp>
#include <boost/beast/http/error.hpp>
#include <penne/http/sigv4.hpp>

#include <cerrno>
#include <chrono>
#include <set>
#include <string>
#include <vector>

namespace penne::s3 {
namespace {

using namespace std::chrono;

constexpr int first_errc = static_cast<int>(s3_errc::slow_down);
constexpr int last_errc = static_cast<int>(s3_errc::invalid_key);

std::string error_xml(std::string_view code, std::string_view message = "m",
                      std::string_view extra = {}) {
    std::string s = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>";
    s += code;
    s += "</Code><Message>";
    s += message;
    s += "</Message>";
    s += extra;
    s += "<RequestId>REQ1</RequestId><HostId>HOST1</HostId></Error>";
    return s;
}

bool contains(std::string_view haystack, std::string_view needle) {
    return haystack.find(needle) != std::string_view::npos;
}

// ---------------------------------------------------------------------------------------------
// Category

TEST(S3Error, CategoryNamesEveryCodeDistinctly) {
    EXPECT_STREQ(s3_category().name(), "penne.s3");
    std::set<std::string> messages;
    for (int v = first_errc; v <= last_errc; ++v) {
        const auto ec = make_error_code(static_cast<s3_errc>(v));
        EXPECT_EQ(&ec.category(), &s3_category());
        const auto m = ec.message();
        EXPECT_FALSE(m.empty());
        EXPECT_NE(m, "unknown S3 error") << v;
        messages.insert(m);
    }
    EXPECT_EQ(messages.size(), static_cast<std::size_t>(last_errc - first_errc + 1));
    EXPECT_EQ(make_error_code(static_cast<s3_errc>(999)).message(), "unknown S3 error");
}

TEST(S3Error, RetryableAndFatalSplit) {
    const std::set<s3_errc> retryable = {
        s3_errc::slow_down,       s3_errc::internal_error,          s3_errc::service_unavailable,
        s3_errc::request_timeout, s3_errc::request_time_too_skewed, s3_errc::expired_token,
        s3_errc::conflict,        s3_errc::other_server_error,
    };
    for (int v = first_errc; v <= last_errc; ++v) {
        const auto e = static_cast<s3_errc>(v);
        const error_code ec = e;
        EXPECT_EQ(is_retryable(ec), retryable.count(e) == 1) << ec.message();
        EXPECT_EQ(is_fatal(ec), retryable.count(e) == 0) << ec.message();
    }
    // The ones the design names explicitly.
    EXPECT_TRUE(is_fatal(s3_errc::access_denied));
    EXPECT_TRUE(is_fatal(s3_errc::signature_does_not_match));
    EXPECT_TRUE(is_fatal(s3_errc::no_such_bucket));
    EXPECT_TRUE(is_fatal(s3_errc::malformed_response));
    EXPECT_TRUE(is_fatal(s3_errc::permanent_redirect));
}

// ---------------------------------------------------------------------------------------------
// Codes

struct code_case {
    const char* code;
    unsigned status;
    s3_errc expected;
};

TEST(S3Error, EveryKnownCodeMaps) {
    const code_case cases[] = {
        {"SlowDown", 503, s3_errc::slow_down},
        {"Throttling", 400, s3_errc::slow_down},
        {"ThrottlingException", 400, s3_errc::slow_down},
        {"RequestLimitExceeded", 503, s3_errc::slow_down},
        {"TooManyRequests", 429, s3_errc::slow_down},
        {"TooManyRequestsException", 429, s3_errc::slow_down},
        {"RequestThrottled", 503, s3_errc::slow_down},
        {"RequestThrottledException", 400, s3_errc::slow_down},
        {"KMS.ThrottlingException", 400, s3_errc::slow_down},
        {"InternalError", 500, s3_errc::internal_error},
        {"ServiceUnavailable", 503, s3_errc::service_unavailable},
        {"RequestTimeout", 400, s3_errc::request_timeout},
        {"RequestTimeTooSkewed", 403, s3_errc::request_time_too_skewed},
        {"RequestExpired", 400, s3_errc::request_time_too_skewed},
        {"AccessDenied", 403, s3_errc::access_denied},
        {"AllAccessDisabled", 403, s3_errc::access_denied},
        {"AccountProblem", 403, s3_errc::access_denied},
        {"SignatureDoesNotMatch", 403, s3_errc::signature_does_not_match},
        {"InvalidAccessKeyId", 403, s3_errc::invalid_access_key_id},
        {"InvalidToken", 400, s3_errc::invalid_access_key_id},
        {"ExpiredToken", 400, s3_errc::expired_token},
        {"ExpiredTokenException", 400, s3_errc::expired_token},
        {"TokenRefreshRequired", 400, s3_errc::expired_token},
        {"NoSuchBucket", 404, s3_errc::no_such_bucket},
        {"NoSuchKey", 404, s3_errc::no_such_key},
        {"NoSuchUpload", 404, s3_errc::no_such_upload},
        {"InvalidPart", 400, s3_errc::invalid_part},
        {"InvalidPartOrder", 400, s3_errc::invalid_part_order},
        {"EntityTooSmall", 400, s3_errc::entity_too_small},
        {"EntityTooLarge", 400, s3_errc::entity_too_large},
        {"BadDigest", 400, s3_errc::bad_digest},
        {"XAmzContentSHA256Mismatch", 400, s3_errc::bad_digest},
        {"InvalidDigest", 400, s3_errc::invalid_digest},
        {"InvalidBucketName", 400, s3_errc::invalid_bucket_name},
        {"InvalidRequest", 400, s3_errc::invalid_request},
        {"MalformedXML", 400, s3_errc::invalid_request},
        {"InvalidArgument", 400, s3_errc::invalid_argument},
        {"PermanentRedirect", 301, s3_errc::permanent_redirect},
        {"TemporaryRedirect", 307, s3_errc::permanent_redirect},
        {"PreconditionFailed", 412, s3_errc::precondition_failed},
        {"KMS.NotFoundException", 400, s3_errc::kms_error},
        {"KMS.DisabledException", 400, s3_errc::kms_error},
        {"KMS.KMSInvalidStateException", 400, s3_errc::kms_error},
        {"OperationAborted", 409, s3_errc::conflict},
        {"ConditionalRequestConflict", 409, s3_errc::conflict},
        {"BucketAlreadyExists", 409, s3_errc::bucket_already_exists},
        {"BucketAlreadyOwnedByYou", 409, s3_errc::bucket_already_owned_by_you},
        {"NotImplemented", 501, s3_errc::not_implemented},
        {"InvalidRange", 416, s3_errc::invalid_range},
    };
    for (const auto& c : cases) {
        s3_error_info info;
        const auto ec = parse_error_response(c.status, error_xml(c.code), info);
        EXPECT_EQ(ec, make_error_code(c.expected)) << c.code;
        EXPECT_EQ(info.code, c.code);
        EXPECT_EQ(info.kind, c.expected) << c.code;
        EXPECT_EQ(info.http_status, c.status);
        EXPECT_EQ(classify(c.status, c.code), c.expected) << c.code;
    }
}

TEST(S3Error, UnknownCodesFallBackToTheStatus) {
    EXPECT_EQ(classify(400, "IncompleteBody"), s3_errc::invalid_request);
    EXPECT_EQ(classify(403, "InvalidObjectState"), s3_errc::access_denied);
    EXPECT_EQ(classify(405, "MethodNotAllowed"), s3_errc::other_client_error);
    EXPECT_EQ(classify(411, "MissingContentLength"), s3_errc::other_client_error);
    EXPECT_EQ(classify(418, "Teapot"), s3_errc::other_client_error);
    EXPECT_EQ(classify(500, "WeirdFailure"), s3_errc::internal_error);
    EXPECT_EQ(classify(503, "Overloaded"), s3_errc::service_unavailable);
    EXPECT_EQ(classify(507, "XMinioStorageFull"), s3_errc::other_server_error);
    EXPECT_EQ(classify(404, "NoSuchVersion", false, not_found_means::key), s3_errc::no_such_key);
    // An unknown code in a 200 (CompleteMultipartUpload failing late) is the server's failure.
    EXPECT_EQ(classify(200, "SomethingNew"), s3_errc::other_server_error);
    EXPECT_TRUE(is_retryable(make_error_code(classify(200, "SomethingNew"))));
    // A code that only looks like KMS's is not KMS.
    EXPECT_EQ(classify(400, "KMSNotReally"), s3_errc::invalid_request);
}

TEST(S3Error, StatusAloneWhenTheBodyIsEmpty) {
    struct status_case {
        unsigned status;
        s3_errc expected;
        bool retryable;
    };
    const status_case cases[] = {
        {301, s3_errc::permanent_redirect, false},
        {307, s3_errc::permanent_redirect, false},
        {400, s3_errc::invalid_request, false},
        {401, s3_errc::access_denied, false},
        {403, s3_errc::access_denied, false},
        {404, s3_errc::no_such_key, false},
        {405, s3_errc::other_client_error, false},
        {408, s3_errc::request_timeout, true},
        {409, s3_errc::conflict, true},
        {412, s3_errc::precondition_failed, false},
        {416, s3_errc::invalid_range, false},
        {429, s3_errc::slow_down, true},
        {451, s3_errc::other_client_error, false},
        {500, s3_errc::internal_error, true},
        {501, s3_errc::not_implemented, false},
        {502, s3_errc::other_server_error, true},
        {503, s3_errc::service_unavailable, true},
        {504, s3_errc::other_server_error, true},
        {200, s3_errc::malformed_response, false},
        {304, s3_errc::malformed_response, false},
        {600, s3_errc::malformed_response, false},
    };
    for (const auto& c : cases) {
        s3_error_info info;
        info.code = "stale";  // overwritten
        const auto ec = parse_error_response(c.status, "", info);
        EXPECT_EQ(ec, make_error_code(c.expected)) << c.status;
        EXPECT_EQ(is_retryable(ec), c.retryable) << c.status;
        EXPECT_TRUE(info.code.empty());
        EXPECT_EQ(info.http_status, c.status);
    }
}

TEST(S3Error, NotFoundHintForHeadRequests) {
    s3_error_info info;
    response_hints hints;
    hints.not_found = not_found_means::bucket;
    EXPECT_EQ(parse_error_response(404, "", info, hints), make_error_code(s3_errc::no_such_bucket));
    hints.not_found = not_found_means::upload;
    EXPECT_EQ(parse_error_response(404, "", info, hints), make_error_code(s3_errc::no_such_upload));
    hints.not_found = not_found_means::key;
    EXPECT_EQ(parse_error_response(404, "", info, hints), make_error_code(s3_errc::no_such_key));
    // A body's code beats the hint.
    hints.not_found = not_found_means::key;
    EXPECT_EQ(parse_error_response(404, error_xml("NoSuchBucket"), info, hints),
              make_error_code(s3_errc::no_such_bucket));
}

TEST(S3Error, BodiesThatAreNotS3ErrorsUseTheStatus) {
    s3_error_info info;
    const std::string html = "<html><body><h1>502 Bad Gateway</h1></body></html>";
    auto ec = parse_error_response(502, html, info);
    EXPECT_EQ(ec, make_error_code(s3_errc::other_server_error));
    EXPECT_TRUE(is_retryable(ec)) << "a proxy's 5xx page is retried";
    EXPECT_TRUE(info.code.empty());

    ec = parse_error_response(503, "upstream connect error", info);
    EXPECT_EQ(ec, make_error_code(s3_errc::service_unavailable));
    EXPECT_TRUE(is_retryable(ec));

    ec = parse_error_response(403, "<html>Forbidden</html>", info);
    EXPECT_EQ(ec, make_error_code(s3_errc::access_denied));

    // A 2xx that carries something S3 never sends is malformed, and not retried.
    ec = parse_error_response(200, "<html>welcome</html>", info);
    EXPECT_EQ(ec, make_error_code(s3_errc::malformed_response));
    EXPECT_TRUE(is_fatal(ec));
    ec = parse_error_response(200, "<Error><Code>Unterminated", info);
    EXPECT_EQ(ec, make_error_code(s3_errc::malformed_response));
    ec = parse_error_response(200, "<Error><Message>no code</Message></Error>", info);
    EXPECT_EQ(ec, make_error_code(s3_errc::malformed_response));

    // Truncated XML with a 5xx: still the status.
    ec = parse_error_response(500, "<Error><Code>SlowDown</Co", info);
    EXPECT_EQ(ec, make_error_code(s3_errc::internal_error));
}

TEST(S3Error, FieldsAreCaptured) {
    const std::string body =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<Error>\n  <Code>RequestTimeTooSkewed</Code>\n"
        "  <Message>The difference between the request time and the current time is too "
        "large.</Message>\n"
        "  <RequestTime>20261206T100000Z</RequestTime>\n"
        "  <ServerTime>2026-12-06T10:20:00Z</ServerTime>\n"
        "  <MaxAllowedSkewMilliseconds>900000</MaxAllowedSkewMilliseconds>\n"
        "  <Resource>/logs/a.jsonl</Resource>\n"
        "  <RequestId>7Q1B3C</RequestId>\n  <HostId>aGlkZGVu</HostId>\n</Error>\n";
    s3_error_info info;
    const auto ec = parse_error_response(403, body, info);
    EXPECT_EQ(ec, make_error_code(s3_errc::request_time_too_skewed));
    EXPECT_TRUE(is_retryable(ec));
    EXPECT_EQ(info.http_status, 403u);
    EXPECT_EQ(info.code, "RequestTimeTooSkewed");
    EXPECT_EQ(info.message,
              "The difference between the request time and the current time is too large.");
    EXPECT_EQ(info.server_time, "2026-12-06T10:20:00Z");
    EXPECT_EQ(info.resource, "/logs/a.jsonl");
    EXPECT_EQ(info.request_id, "7Q1B3C");
    EXPECT_EQ(info.host_id, "aGlkZGVu");
    EXPECT_TRUE(info.region.empty());
    system_clock::time_point server;
    ASSERT_TRUE(parse_iso8601(info.server_time, server));
    EXPECT_EQ(duration_cast<seconds>(server.time_since_epoch()).count(), 1796552400);
}

TEST(S3Error, HeadersFillWhatTheBodyLacks) {
    response_hints hints;
    hints.request_id = "HDRREQ";
    hints.host_id = "HDRHOST";
    hints.bucket_region = "ap-south-1";
    s3_error_info info;
    EXPECT_EQ(parse_error_response(301, "", info, hints),
              make_error_code(s3_errc::permanent_redirect));
    EXPECT_EQ(info.request_id, "HDRREQ");
    EXPECT_EQ(info.host_id, "HDRHOST");
    EXPECT_EQ(info.region, "ap-south-1");
    // The body's own fields win.
    parse_error_response(404, error_xml("NoSuchKey"), info, hints);
    EXPECT_EQ(info.request_id, "REQ1");
    EXPECT_EQ(info.host_id, "HOST1");
}

TEST(S3Error, NamespacesAndWrappers) {
    s3_error_info info;
    auto ec = parse_error_response(
        403,
        "<s3:Error xmlns:s3=\"http://s3.amazonaws.com/doc/2006-03-01/\"><s3:Code>AccessDenied"
        "</s3:Code><s3:Message>denied</s3:Message></s3:Error>",
        info);
    EXPECT_EQ(ec, make_error_code(s3_errc::access_denied));
    EXPECT_EQ(info.message, "denied");
    ec = parse_error_response(
        400,
        "<ErrorResponse><Error><Code>ExpiredToken</Code><Message>gone</Message></Error>"
        "<RequestId>R9</RequestId></ErrorResponse>",
        info);
    EXPECT_EQ(ec, make_error_code(s3_errc::expired_token));
    EXPECT_EQ(info.code, "ExpiredToken");
    // Entities are decoded.
    parse_error_response(400, error_xml("InvalidArgument", "a &lt; b &amp; &quot;c&quot;"), info);
    EXPECT_EQ(info.message, "a < b & \"c\"");
}

TEST(S3Error, WrongRegionNamesTheRightOne) {
    s3_error_info info;
    auto ec = parse_error_response(
        400,
        error_xml("AuthorizationHeaderMalformed",
                  "The authorization header is malformed; the region 'us-east-1' is wrong; "
                  "expecting 'eu-west-1'",
                  "<Region>eu-west-1</Region>"),
        info);
    EXPECT_EQ(ec, make_error_code(s3_errc::permanent_redirect));
    EXPECT_TRUE(is_fatal(ec));
    EXPECT_EQ(info.region, "eu-west-1");
    const auto text = describe(info, "PutObject", "logs");
    EXPECT_TRUE(contains(text, "set s3.region = eu-west-1")) << text;

    // Without a region anywhere it is a malformed request, not a redirect.
    ec = parse_error_response(400, error_xml("AuthorizationHeaderMalformed"), info);
    EXPECT_EQ(ec, make_error_code(s3_errc::invalid_request));
    // The region header is as good as the element.
    response_hints hints;
    hints.bucket_region = "eu-central-1";
    ec = parse_error_response(400, error_xml("AuthorizationHeaderMalformed"), info, hints);
    EXPECT_EQ(ec, make_error_code(s3_errc::permanent_redirect));
    EXPECT_TRUE(contains(describe(info, "HeadBucket", "logs"), "set s3.region = eu-central-1"));

    // PermanentRedirect names an endpoint; with no region known, describe points at it.
    ec = parse_error_response(
        301,
        error_xml("PermanentRedirect", "use the specified endpoint",
                  "<Bucket>logs</Bucket><Endpoint>logs.s3.ap-northeast-1.amazonaws.com"
                  "</Endpoint>"),
        info);
    EXPECT_EQ(ec, make_error_code(s3_errc::permanent_redirect));
    EXPECT_EQ(info.endpoint, "logs.s3.ap-northeast-1.amazonaws.com");
    const auto redirect = describe(info, "PutObject", "logs");
    EXPECT_TRUE(contains(redirect, "logs.s3.ap-northeast-1.amazonaws.com")) << redirect;
    EXPECT_TRUE(contains(redirect, "s3.region")) << redirect;
}

// ---------------------------------------------------------------------------------------------
// describe

std::string described(unsigned status, std::string_view code, std::string_view op = "PutObject",
                      std::string_view bucket = "logs") {
    s3_error_info info;
    parse_error_response(status, error_xml(code), info);
    return describe(info, op, bucket);
}

TEST(S3Error, DescribeSaysWhatToCheck) {
    auto t = described(403, "SignatureDoesNotMatch");
    EXPECT_TRUE(contains(t, "check the secret access key and that no proxy rewrites the request"))
        << t;
    t = described(403, "InvalidAccessKeyId");
    EXPECT_TRUE(contains(t, "check the access key id")) << t;
    t = described(400, "InvalidToken");
    EXPECT_TRUE(contains(t, "check the session token")) << t;
    t = described(404, "NoSuchBucket", "HeadBucket", "events-prod");
    EXPECT_TRUE(contains(t, "create bucket \"events-prod\" or fix s3.bucket")) << t;
    t = described(403, "AccessDenied", "PutObject", "events-prod");
    EXPECT_TRUE(contains(t, "the credentials lack s3:PutObject on bucket \"events-prod\"")) << t;
    t = described(403, "AccessDenied", "UploadPart");
    EXPECT_TRUE(contains(t, "s3:PutObject")) << t;
    t = described(403, "AccessDenied", "HeadBucket");
    EXPECT_TRUE(contains(t, "s3:ListBucket")) << t;
    t = described(403, "AccessDenied", "AbortMultipartUpload");
    EXPECT_TRUE(contains(t, "s3:AbortMultipartUpload")) << t;
    t = described(403, "AccessDenied", "ListMultipartUploads");
    EXPECT_TRUE(contains(t, "s3:ListBucketMultipartUploads")) << t;
    t = described(403, "AccessDenied", "Frobnicate");
    EXPECT_TRUE(contains(t, "permission for this operation")) << t;
    t = described(400, "KMS.NotFoundException");
    EXPECT_TRUE(contains(t, "kms:GenerateDataKey")) << t;
    t = described(503, "SlowDown");
    EXPECT_TRUE(contains(t, "throttling")) << t;
    t = described(400, "EntityTooSmall", "CompleteMultipartUpload");
    EXPECT_TRUE(contains(t, "5 MiB")) << t;
    t = described(409, "BucketAlreadyExists", "CreateBucket", "taken");
    EXPECT_TRUE(contains(t, "another account owns bucket \"taken\"")) << t;
    t = described(200, "InternalError", "CompleteMultipartUpload");
    EXPECT_TRUE(contains(t, "retries")) << t;

    s3_error_info skew;
    parse_error_response(403,
                         error_xml("RequestTimeTooSkewed", "skewed",
                                   "<ServerTime>2026-12-06T10:20:00Z</ServerTime>"),
                         skew);
    t = describe(skew, "PutObject", "logs");
    EXPECT_TRUE(contains(t, "clock")) << t;
    EXPECT_TRUE(contains(t, "2026-12-06T10:20:00Z")) << t;
}

TEST(S3Error, DescribeShape) {
    s3_error_info info;
    parse_error_response(403, error_xml("AccessDenied", "Access Denied"), info);
    EXPECT_EQ(describe(info, "PutObject", "logs"),
              "PutObject on bucket \"logs\" failed: HTTP 403 AccessDenied \"Access Denied\": the "
              "credentials lack s3:PutObject on bucket \"logs\"; check the IAM policy, the bucket "
              "policy, and any KMS key or organization policy that applies (request id REQ1, "
              "host id HOST1)");
    // A body-less reply: the status and the hint-classified kind.
    response_hints hints;
    hints.not_found = not_found_means::bucket;
    parse_error_response(404, "", info, hints);
    EXPECT_EQ(
        describe(info, "HeadBucket", "b1"),
        "HeadBucket on bucket \"b1\" failed: HTTP 404: create bucket \"b1\" or fix s3.bucket");
    // An info built by hand (no kind) is classified from its code and status.
    s3_error_info manual;
    manual.http_status = 403;
    manual.code = "SignatureDoesNotMatch";
    EXPECT_TRUE(contains(describe(manual, "", ""), "S3 request failed: HTTP 403"));
    EXPECT_TRUE(contains(describe(manual, "", ""), "check the secret access key"));
}

TEST(S3Error, DescribeNeverQuotesSecretsOrControlBytes) {
    // S3's SignatureDoesNotMatch reply echoes the canonical request, which holds the session
    // token; none of it may reach the description.
    const std::string token = "FQoGZXIvYXdzEXAMPLETOKENSECRET";
    const std::string body =
        "<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated "
        "does not match the signature you provided.</Message>"
        "<AWSAccessKeyId>AKIDEXAMPLE</AWSAccessKeyId>"
        "<StringToSign>AWS4-HMAC-SHA256\n20261206T100000Z</StringToSign>"
        "<SignatureProvided>deadbeef</SignatureProvided>"
        "<CanonicalRequest>PUT\n/logs/a\n\nhost:s3\nx-amz-security-token:" +
        token + "\n</CanonicalRequest><RequestId>R</RequestId></Error>";
    s3_error_info info;
    parse_error_response(403, body, info);
    const auto text = describe(info, "PutObject", "logs");
    EXPECT_FALSE(contains(text, token)) << text;
    EXPECT_FALSE(contains(text, "deadbeef")) << text;
    EXPECT_FALSE(contains(text, "x-amz-security-token")) << text;

    // Control bytes are dropped and a long message is cut.
    s3_error_info noisy;
    noisy.http_status = 400;
    noisy.code = "InvalidArgument";
    noisy.message = "bad\x01\x1b[31m value\r\n\tnext " + std::string(1000, 'x');
    const auto d = describe(noisy, "PutObject", "logs");
    EXPECT_FALSE(contains(d, "\x1b"));
    EXPECT_FALSE(contains(d, "\x01"));
    EXPECT_FALSE(contains(d, "\n"));
    EXPECT_TRUE(contains(d, "bad[31m value next xxx")) << d;
    EXPECT_TRUE(contains(d, "...")) << d;
    EXPECT_LT(d.size(), 700u);
    // Cutting never splits a UTF-8 character.
    noisy.message = std::string(299, 'a') + "\xc3\xa9" + "tail";
    const auto cut = describe(noisy, "PutObject", "logs");
    EXPECT_TRUE(contains(cut, std::string(299, 'a') + "...")) << cut;
}

// ---------------------------------------------------------------------------------------------
// retry_reason

TEST(S3Error, RetryReasonLabels) {
    EXPECT_EQ(retry_reason(s3_errc::slow_down), "throttled");
    EXPECT_EQ(retry_reason(s3_errc::internal_error), "server_error");
    EXPECT_EQ(retry_reason(s3_errc::service_unavailable), "server_error");
    EXPECT_EQ(retry_reason(s3_errc::other_server_error), "server_error");
    EXPECT_EQ(retry_reason(s3_errc::request_timeout), "timeout");
    EXPECT_EQ(retry_reason(s3_errc::request_time_too_skewed), "clock_skew");
    EXPECT_EQ(retry_reason(s3_errc::expired_token), "expired_credentials");
    EXPECT_EQ(retry_reason(s3_errc::access_denied), "other");
    EXPECT_EQ(retry_reason(s3_errc::conflict), "other");

    EXPECT_EQ(retry_reason(boost::asio::error::connection_reset), "network");
    EXPECT_EQ(retry_reason(boost::asio::error::host_not_found), "network");
    EXPECT_EQ(retry_reason(boost::asio::error::eof), "network");
    EXPECT_EQ(retry_reason(error_code(ECONNREFUSED, boost::system::system_category())), "network");
    EXPECT_EQ(retry_reason(make_error_code(boost::system::errc::connection_aborted)), "network");
    EXPECT_EQ(retry_reason(boost::beast::http::error::end_of_stream), "network");
    EXPECT_EQ(retry_reason(penne::errc::timeout), "network");

    EXPECT_EQ(retry_reason(penne::errc::io_error), "other");
    EXPECT_EQ(retry_reason(http::sigv4_errc::missing_host), "other");
    EXPECT_EQ(retry_reason(error_code{}), "other");
}

// ---------------------------------------------------------------------------------------------
// Dates

std::int64_t epoch_seconds(system_clock::time_point t) {
    return duration_cast<seconds>(t.time_since_epoch()).count();
}

TEST(S3Dates, HttpDateForms) {
    system_clock::time_point t;
    ASSERT_TRUE(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT", t));
    EXPECT_EQ(epoch_seconds(t), 784111777);
    t = {};
    ASSERT_TRUE(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT", t));
    EXPECT_EQ(epoch_seconds(t), 784111777);
    t = {};
    ASSERT_TRUE(parse_http_date("Sun Nov  6 08:49:37 1994", t));
    EXPECT_EQ(epoch_seconds(t), 784111777);
    ASSERT_TRUE(parse_http_date("Sun Nov 16 08:49:37 1994", t));
    EXPECT_EQ(epoch_seconds(t), 784111777 + 10 * 86400);
    ASSERT_TRUE(parse_http_date("Sun, 06 Dec 2026 10:00:00 GMT", t));
    EXPECT_EQ(epoch_seconds(t), 1796551200);
    ASSERT_TRUE(parse_http_date("Thu, 29 Feb 2024 23:59:59 GMT", t));
    EXPECT_EQ(epoch_seconds(t), 1709251199);
    ASSERT_TRUE(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT", t));
    EXPECT_EQ(epoch_seconds(t), 0);
    // RFC 850 two-digit years below 70 are this century.
    ASSERT_TRUE(parse_http_date("Sunday, 06-Dec-26 10:00:00 GMT", t));
    EXPECT_EQ(epoch_seconds(t), 1796551200);
}

TEST(S3Dates, HttpDateRejects) {
    const char* bad[] = {
        "",
        "Sun, 06 Nov 1994 08:49:37",      // no zone
        "Sun, 06 Nov 1994 08:49:37 UTC",  // only GMT
        "Sun, 06 Nov 1994 08:49:37 gmt",
        "Sun, 6 Nov 1994 08:49:37 GMT",  // day not two digits
        "Sun, 06 Nov 94 08:49:37 GMT",   // two-digit year in IMF-fixdate
        "Sun,  06 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMT ",
        "Sun, 06 nov 1994 08:49:37 GMT",  // month names are case-sensitive
        "Sun, 06 Foo 1994 08:49:37 GMT",
        "Xyz, 06 Nov 1994 08:49:37 GMT",
        "Sun, 31 Nov 1994 08:49:37 GMT",  // November has 30 days
        "Wed, 29 Feb 2023 00:00:00 GMT",  // not a leap year
        "Sun, 00 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 24:00:00 GMT",
        "Sun, 06 Nov 1994 08:60:00 GMT",
        "Sun, 06 Nov 1994 08:49:61 GMT",
        "Sun, 06 Nov 1994 08-49-37 GMT",
        "Sun, 06 Nov 1994 8:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:3a GMT",
        "Sunday, 06-Nov-1994 08:49:37 GMT",  // RFC 850 has two-digit years
        "Sun, 06-Nov-94 08:49:37 GMT",       // RFC 850 needs the long day name
        "Funday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov 6 08:49:37 1994",  // asctime pads the day
        "Sun Nov  6 08:49:37 94",
        "Sun Nov  6 08:49:37 1994 GMT",
        "1994-11-06T08:49:37Z",
    };
    for (const char* s : bad) {
        system_clock::time_point t{seconds{42}};
        EXPECT_FALSE(parse_http_date(s, t)) << s;
        EXPECT_EQ(epoch_seconds(t), 42) << "unchanged on failure: " << s;
    }
}

TEST(S3Dates, Iso8601) {
    system_clock::time_point t;
    ASSERT_TRUE(parse_iso8601("2026-12-06T10:00:00Z", t));
    EXPECT_EQ(epoch_seconds(t), 1796551200);
    EXPECT_EQ(t.time_since_epoch() % seconds{1}, system_clock::duration::zero());
    ASSERT_TRUE(parse_iso8601("2026-12-06T10:00:00.5Z", t));
    EXPECT_EQ(duration_cast<milliseconds>(t.time_since_epoch()).count(), 1796551200500);
    ASSERT_TRUE(parse_iso8601("2026-12-06T10:00:00.000Z", t));
    EXPECT_EQ(duration_cast<milliseconds>(t.time_since_epoch()).count(), 1796551200000);
    ASSERT_TRUE(parse_iso8601("2026-12-06T10:00:00.123456789Z", t));
    EXPECT_EQ(duration_cast<nanoseconds>(t.time_since_epoch()).count() % 1000000000, 123456789);
    ASSERT_TRUE(parse_iso8601("2026-12-06T10:00:00.1234567899Z", t));
    EXPECT_EQ(duration_cast<nanoseconds>(t.time_since_epoch()).count() % 1000000000, 123456789);
    ASSERT_TRUE(parse_iso8601("2026-12-06t10:00:00z", t));
    EXPECT_EQ(epoch_seconds(t), 1796551200);
    ASSERT_TRUE(parse_iso8601("2026-12-06T12:30:00+02:30", t));
    EXPECT_EQ(epoch_seconds(t), 1796551200);
    ASSERT_TRUE(parse_iso8601("2026-12-06T05:00:00-05:00", t));
    EXPECT_EQ(epoch_seconds(t), 1796551200);
    ASSERT_TRUE(parse_iso8601("2024-02-29T23:59:59Z", t));
    EXPECT_EQ(epoch_seconds(t), 1709251199);
    ASSERT_TRUE(parse_iso8601("1970-01-01T00:00:00Z", t));
    EXPECT_EQ(epoch_seconds(t), 0);
}

TEST(S3Dates, Iso8601Rejects) {
    const char* bad[] = {
        "",
        "2026-12-06T10:00:00",   // no zone
        "2026-12-06 10:00:00Z",  // space separator
        "2026-12-06T10:00Z",     // no seconds
        "2026-13-06T10:00:00Z",
        "2026-00-06T10:00:00Z",
        "2026-02-30T10:00:00Z",
        "2023-02-29T10:00:00Z",
        "2026-12-06T24:00:00Z",
        "2026-12-06T10:60:00Z",
        "2026-12-06T10:00:00.Z",  // empty fraction
        "2026-12-06T10:00:00ZZ",
        "2026-12-06T10:00:00Z ",
        "2026-12-06T10:00:00+0200",  // offset without colon
        "2026-12-06T10:00:00+24:00",
        "26-12-06T10:00:00Z",
        "2026/12/06T10:00:00Z",
        "+2026-12-06T10:00:00Z",
        "9999-12-31T23:59:59Z",  // past what system_clock holds
        "20261206T100000Z",
    };
    for (const char* s : bad) {
        system_clock::time_point t{seconds{42}};
        EXPECT_FALSE(parse_iso8601(s, t)) << s;
        EXPECT_EQ(epoch_seconds(t), 42) << "unchanged on failure: " << s;
    }
}

}  // namespace
}  // namespace penne::s3
