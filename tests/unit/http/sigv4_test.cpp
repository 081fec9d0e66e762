// The SigV4 signer against the AWS SigV4 test suite (every case, header and query variants,
// read from ../shared/conformance/sigv4 at run time), the worked examples of the Amazon S3 API
// reference, and the edge cases the S3 client depends on.

#include <penne/http/sigv4.hpp>

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace fs = std::filesystem;
using namespace std::chrono;
using penne::http::credentials;
using penne::http::header_field;
using penne::http::header_view;
using penne::http::sigv4_errc;
using penne::http::sigv4_options;
using penne::http::sigv4_presigned;
using penne::http::sigv4_request;
using penne::http::sigv4_signed_headers;
using penne::http::sigv4_signer;

// ---------------------------------------------------------------------------------------------
// Helpers

fs::path suite_dir() {
    if (const char* env = std::getenv("PENNE_SIGV4_SUITE"); env != nullptr && *env != '\0')
        return env;
    return PENNE_SIGV4_SUITE_DIR;
}

std::optional<std::string> read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in)
        return std::nullopt;
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string lower(std::string s) {
    for (char& c : s)
        c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    return s;
}

// A raw HTTP/1.1 request as the suite writes it: the target may hold spaces, a line that
// starts with whitespace continues the previous field (obsolete folding, unfolded to one
// space as RFC 9112 says), and the body follows the first empty line.
struct raw_request {
    std::string method;
    std::string target;
    std::vector<header_field> headers;
    std::string body;
};

raw_request parse_request(const std::string& text) {
    raw_request r;
    std::size_t pos = 0;
    auto next_line = [&](std::string& line) {
        if (pos >= text.size())
            return false;
        auto nl = text.find('\n', pos);
        line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
        pos = nl == std::string::npos ? text.size() : nl + 1;
        if (!line.empty() && line.back() == '\r')
            line.pop_back();
        return true;
    };
    std::string line;
    if (!next_line(line))
        return r;
    auto first_space = line.find(' ');
    auto last_space = line.rfind(' ');
    r.method = line.substr(0, first_space);
    r.target = line.substr(first_space + 1, last_space - first_space - 1);
    while (next_line(line)) {
        if (line.empty()) {
            r.body = text.substr(pos);
            break;
        }
        if ((line.front() == ' ' || line.front() == '\t') && !r.headers.empty()) {
            r.headers.back().value += " " + line;
            continue;
        }
        auto colon = line.find(':');
        r.headers.push_back({line.substr(0, colon), line.substr(colon + 1)});
    }
    return r;
}

std::vector<header_view> views(const std::vector<header_field>& fields) {
    std::vector<header_view> out;
    for (const auto& f : fields)
        out.push_back({f.name, f.value});
    return out;
}

// Field multiset with lowercased names and trimmed values, for comparing signed requests.
std::multiset<std::pair<std::string, std::string>> field_set(
    const std::vector<header_field>& fields) {
    std::multiset<std::pair<std::string, std::string>> out;
    for (const auto& f : fields) {
        auto v = f.value;
        v.erase(0, v.find_first_not_of(' '));
        out.insert({lower(f.name), v});
    }
    return out;
}

system_clock::time_point utc(int y, unsigned mo, unsigned d, int h = 0, int mi = 0, int s = 0) {
    return sys_days{year{y} / month{mo} / day{d}} + hours{h} + minutes{mi} + seconds{s};
}

// "2015-08-30T12:36:00Z"
system_clock::time_point parse_timestamp(const std::string& t) {
    return utc(std::stoi(t.substr(0, 4)), static_cast<unsigned>(std::stoi(t.substr(5, 2))),
               static_cast<unsigned>(std::stoi(t.substr(8, 2))), std::stoi(t.substr(11, 2)),
               std::stoi(t.substr(14, 2)), std::stoi(t.substr(17, 2)));
}

// ---------------------------------------------------------------------------------------------
// The AWS SigV4 suite

// Every case of aws-c-auth's v4 suite as vendored in ../shared/conformance/sigv4. Listed here
// (not discovered) so a missing directory fails by name; SuiteDirectory checks that no case
// on disk is left out.
const std::vector<std::string> suite_cases = {
    "get-header-key-duplicate",
    "get-header-value-multiline",
    "get-header-value-order",
    "get-header-value-trim",
    "get-relative-normalized",
    "get-relative-relative-normalized",
    "get-relative-relative-unnormalized",
    "get-relative-unnormalized",
    "get-slash-dot-slash-normalized",
    "get-slash-dot-slash-unnormalized",
    "get-slash-normalized",
    "get-slash-pointless-dot-normalized",
    "get-slash-pointless-dot-unnormalized",
    "get-slash-unnormalized",
    "get-slashes-normalized",
    "get-slashes-unnormalized",
    "get-space-normalized",
    "get-space-unnormalized",
    "get-unreserved",
    "get-utf8",
    "get-vanilla",
    "get-vanilla-empty-query-key",
    "get-vanilla-query",
    "get-vanilla-query-order-encoded",
    "get-vanilla-query-order-key-case",
    "get-vanilla-query-unreserved",
    "get-vanilla-utf8-query",
    "get-vanilla-with-session-token",
    "post-header-key-case",
    "post-header-key-sort",
    "post-header-value-case",
    "post-sts-header-after",
    "post-sts-header-before",
    "post-vanilla",
    "post-vanilla-empty-query-value",
    "post-vanilla-query",
    "post-x-www-form-urlencoded",
    "post-x-www-form-urlencoded-parameters",
};

TEST(SigV4Suite, SuiteDirectory) {
    auto dir = suite_dir();
    ASSERT_TRUE(fs::is_directory(dir))
        << "the AWS SigV4 test suite is missing: expected it at " << dir
        << " (../shared/conformance/sigv4 beside the repository, or set PENNE_SIGV4_SUITE)";
    std::set<std::string> on_disk;
    for (const auto& e : fs::directory_iterator(dir)) {
        if (e.is_directory())
            on_disk.insert(e.path().filename().string());
    }
    std::set<std::string> listed(suite_cases.begin(), suite_cases.end());
    EXPECT_EQ(on_disk, listed) << "a suite case on disk is not run by this test, or vice versa";
}

struct suite_case {
    raw_request request;
    credentials creds;
    sigv4_options options;
    system_clock::time_point time;
    seconds expires{0};
};

class SigV4SuiteCase : public ::testing::TestWithParam<std::string> {
protected:
    fs::path dir() const { return suite_dir() / GetParam(); }

    std::string expected(const std::string& file) const {
        auto text = read_file(dir() / file);
        if (!text)
            ADD_FAILURE() << "missing suite file " << (dir() / file);
        return text.value_or("");
    }

    std::optional<suite_case> load() const {
        auto req = read_file(dir() / "request.txt");
        auto ctx = read_file(dir() / "context.json");
        if (!req || !ctx) {
            ADD_FAILURE() << "suite case " << GetParam() << " is missing at " << dir()
                          << " (the suite must sit beside the repository)";
            return std::nullopt;
        }
        suite_case c;
        c.request = parse_request(*req);
        auto json = boost::json::parse(*ctx).as_object();
        const auto& cr = json.at("credentials").as_object();
        c.creds.access_key_id = std::string(cr.at("access_key_id").as_string());
        c.creds.secret_access_key = std::string(cr.at("secret_access_key").as_string());
        if (auto* token = cr.if_contains("token"))
            c.creds.session_token = std::string(token->as_string());
        c.options.region = std::string(json.at("region").as_string());
        c.options.service = std::string(json.at("service").as_string());
        c.options.normalize_path = json.at("normalize").as_bool();
        c.options.double_encode_path = true;  // every case is a generic (non-S3) service
        c.options.content_sha256_header = json.at("sign_body").as_bool();
        if (auto* omit = json.if_contains("omit_session_token"))
            c.options.omit_session_token = omit->as_bool();
        c.time = parse_timestamp(std::string(json.at("timestamp").as_string()));
        c.expires = seconds(json.at("expiration_in_seconds").as_int64());
        return c;
    }
};

TEST_P(SigV4SuiteCase, AuthorizationHeader) {
    auto c = load();
    ASSERT_TRUE(c);
    auto fields = views(c->request.headers);
    sigv4_request req{c->request.method, c->request.target, fields, c->request.body, {}};
    sigv4_signer signer(c->options);
    sigv4_signed_headers out;
    penne::diagnostics diag;
    auto ec = signer.sign(req, c->creds, c->time, out, diag);
    ASSERT_FALSE(ec) << ec.message() << ": " << diag.message;

    EXPECT_EQ(out.canonical_request, expected("header-canonical-request.txt"));
    EXPECT_EQ(out.string_to_sign, expected("header-string-to-sign.txt"));
    EXPECT_EQ(out.signature, expected("header-signature.txt"));

    // The signed request: same request line, the caller's fields plus the returned ones.
    auto signed_req = parse_request(expected("header-signed-request.txt"));
    EXPECT_EQ(signed_req.method, c->request.method);
    EXPECT_EQ(signed_req.target, c->request.target);
    EXPECT_EQ(signed_req.body, c->request.body);
    auto mine = c->request.headers;
    mine.insert(mine.end(), out.headers.begin(), out.headers.end());
    EXPECT_EQ(field_set(mine), field_set(signed_req.headers));
    auto authz = std::find_if(signed_req.headers.begin(), signed_req.headers.end(),
                              [](const auto& f) { return lower(f.name) == "authorization"; });
    ASSERT_NE(authz, signed_req.headers.end());
    EXPECT_EQ(out.authorization, authz->value);
}

TEST_P(SigV4SuiteCase, PresignedQuery) {
    auto c = load();
    ASSERT_TRUE(c);
    auto fields = views(c->request.headers);
    sigv4_request req{c->request.method, c->request.target, fields, c->request.body, {}};
    sigv4_signer signer(c->options);
    sigv4_presigned out;
    penne::diagnostics diag;
    auto ec = signer.presign(req, c->creds, c->time, c->expires, out, diag);
    ASSERT_FALSE(ec) << ec.message() << ": " << diag.message;

    EXPECT_EQ(out.canonical_request, expected("query-canonical-request.txt"));
    EXPECT_EQ(out.string_to_sign, expected("query-string-to-sign.txt"));
    EXPECT_EQ(out.signature, expected("query-signature.txt"));

    auto signed_req = parse_request(expected("query-signed-request.txt"));
    EXPECT_EQ(signed_req.method, c->request.method);
    EXPECT_EQ(out.target, signed_req.target);  // byte for byte, parameter order included
    EXPECT_EQ(field_set(c->request.headers), field_set(signed_req.headers));
    EXPECT_EQ(signed_req.body, c->request.body);
}

INSTANTIATE_TEST_SUITE_P(Aws, SigV4SuiteCase, ::testing::ValuesIn(suite_cases),
                         [](const auto& info) {
                             std::string name = info.param;
                             std::replace(name.begin(), name.end(), '-', '_');
                             return name;
                         });

// ---------------------------------------------------------------------------------------------
// Amazon S3 API reference: "Signature Calculations for the Authorization Header" and
// "Authenticating Requests: Using Query Parameters". Bucket examplebucket, us-east-1,
// 2013-05-24T00:00:00Z.

const credentials s3_creds{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""};
const auto s3_time = utc(2013, 5, 24);
constexpr std::string_view s3_host = "examplebucket.s3.amazonaws.com";
constexpr std::string_view empty_sha = penne::http::empty_payload_sha256;

std::string join_lines(std::initializer_list<std::string_view> lines) {
    std::string out;
    for (auto l : lines) {
        if (!out.empty())
            out.push_back('\n');
        out.append(l);
    }
    return out;
}

std::string s3_sts(std::string_view canonical_hash) {
    return join_lines({"AWS4-HMAC-SHA256", "20130524T000000Z", "20130524/us-east-1/s3/aws4_request",
                       canonical_hash});
}

const header_field* find_field(const std::vector<header_field>& fields, std::string_view name) {
    for (const auto& f : fields) {
        if (lower(f.name) == lower(std::string(name)))
            return &f;
    }
    return nullptr;
}

sigv4_signed_headers sign_ok(const sigv4_signer& signer, const sigv4_request& req,
                             const credentials& creds, system_clock::time_point t) {
    sigv4_signed_headers out;
    penne::diagnostics diag;
    auto ec = signer.sign(req, creds, t, out, diag);
    EXPECT_FALSE(ec) << ec.message() << ": " << diag.message;
    return out;
}

TEST(SigV4S3Examples, SigningKey) {
    auto key =
        penne::http::derive_signing_key(s3_creds.secret_access_key, "20130524", "us-east-1", "s3");
    EXPECT_EQ(penne::http::to_hex(key),
              "dbb893acc010964918f1fd433add87c70e8b0db6be30c1fbeafefa5ec6ba8378");
    // The general reference's example (IAM, 2015-08-30).
    auto iam = penne::http::derive_signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                                               "20150830", "us-east-1", "iam");
    EXPECT_EQ(penne::http::to_hex(iam),
              "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9");
}

TEST(SigV4S3Examples, GetObjectWithRange) {
    sigv4_signer signer(sigv4_options::s3("us-east-1"));
    std::vector<header_view> fields{{"Host", s3_host}, {"Range", "bytes=0-9"}};
    auto out = sign_ok(signer, {"GET", "/test.txt", fields, "", {}}, s3_creds, s3_time);
    EXPECT_EQ(
        out.canonical_request,
        join_lines({"GET", "/test.txt", "", "host:examplebucket.s3.amazonaws.com",
                    "range:bytes=0-9", std::string("x-amz-content-sha256:") + empty_sha.data(),
                    "x-amz-date:20130524T000000Z", "", "host;range;x-amz-content-sha256;x-amz-date",
                    empty_sha}));
    EXPECT_EQ(out.string_to_sign,
              s3_sts("7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"));
    EXPECT_EQ(out.signature, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    EXPECT_EQ(out.authorization,
              "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
              "aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
              "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    // S3 needs the payload hash on the wire too.
    auto* sha = find_field(out.headers, "x-amz-content-sha256");
    ASSERT_NE(sha, nullptr);
    EXPECT_EQ(sha->value, empty_sha);
    auto* date = find_field(out.headers, "x-amz-date");
    ASSERT_NE(date, nullptr);
    EXPECT_EQ(date->value, "20130524T000000Z");
}

TEST(SigV4S3Examples, PutObjectWithStorageClass) {
    sigv4_signer signer(sigv4_options::s3("us-east-1"));
    std::string target = penne::http::uri_encode_path("/test$file.text");
    EXPECT_EQ(target, "/test%24file.text");
    std::vector<header_view> fields{{"Host", s3_host},
                                    {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
                                    {"x-amz-storage-class", "REDUCED_REDUNDANCY"}};
    constexpr std::string_view body = "Welcome to Amazon S3.";
    constexpr std::string_view body_sha =
        "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072";
    EXPECT_EQ(penne::http::sha256_hex(body), body_sha);
    auto out = sign_ok(signer, {"PUT", target, fields, body, {}}, s3_creds, s3_time);
    EXPECT_EQ(
        out.canonical_request,
        join_lines({"PUT", "/test%24file.text", "", "date:Fri, 24 May 2013 00:00:00 GMT",
                    "host:examplebucket.s3.amazonaws.com",
                    std::string("x-amz-content-sha256:") + body_sha.data(),
                    "x-amz-date:20130524T000000Z", "x-amz-storage-class:REDUCED_REDUNDANCY", "",
                    "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class", body_sha}));
    EXPECT_EQ(out.string_to_sign,
              s3_sts("9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d"));
    EXPECT_EQ(out.signature, "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");

    // The same request with the hash precomputed (the uploader hashes while sealing), and
    // with the caller setting x-amz-content-sha256 itself: the same signature, and the signer
    // does not add a second field.
    auto precomputed = sign_ok(signer, {"PUT", target, fields, "", body_sha}, s3_creds, s3_time);
    EXPECT_EQ(precomputed.signature, out.signature);
    auto with_field = fields;
    with_field.push_back({"X-Amz-Content-Sha256", body_sha});
    auto explicit_hash = sign_ok(signer, {"PUT", target, with_field, "", {}}, s3_creds, s3_time);
    EXPECT_EQ(explicit_hash.signature, out.signature);
    EXPECT_EQ(find_field(explicit_hash.headers, "x-amz-content-sha256"), nullptr);
}

TEST(SigV4S3Examples, GetBucketLifecycle) {
    sigv4_signer signer(sigv4_options::s3("us-east-1"));
    std::vector<header_view> fields{{"Host", s3_host}};
    auto out = sign_ok(signer, {"GET", "/?lifecycle", fields, "", {}}, s3_creds, s3_time);
    EXPECT_EQ(out.canonical_request,
              join_lines({"GET", "/", "lifecycle=", "host:examplebucket.s3.amazonaws.com",
                          std::string("x-amz-content-sha256:") + empty_sha.data(),
                          "x-amz-date:20130524T000000Z", "", "host;x-amz-content-sha256;x-amz-date",
                          empty_sha}));
    EXPECT_EQ(out.string_to_sign,
              s3_sts("9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca"));
    EXPECT_EQ(out.signature, "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

TEST(SigV4S3Examples, ListObjectsWithMaxKeysAndPrefix) {
    sigv4_signer signer(sigv4_options::s3("us-east-1"));
    std::vector<header_view> fields{{"Host", s3_host}};
    auto out = sign_ok(signer, {"GET", "/?max-keys=2&prefix=J", fields, "", {}}, s3_creds, s3_time);
    EXPECT_EQ(out.canonical_request,
              join_lines({"GET", "/", "max-keys=2&prefix=J", "host:examplebucket.s3.amazonaws.com",
                          std::string("x-amz-content-sha256:") + empty_sha.data(),
                          "x-amz-date:20130524T000000Z", "", "host;x-amz-content-sha256;x-amz-date",
                          empty_sha}));
    EXPECT_EQ(out.string_to_sign,
              s3_sts("df57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7"));
    EXPECT_EQ(out.signature, "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
    // Order and redundant escaping on the wire do not change what is signed.
    auto reordered =
        sign_ok(signer, {"GET", "/?prefix=%4A&max-keys=2", fields, "", {}}, s3_creds, s3_time);
    EXPECT_EQ(reordered.signature, out.signature);
}

TEST(SigV4S3Examples, PresignedGetObject) {
    sigv4_signer signer(sigv4_options::s3("us-east-1"));
    std::vector<header_view> fields{{"Host", s3_host}};
    sigv4_presigned out;
    penne::diagnostics diag;
    auto ec = signer.presign({"GET", "/test.txt", fields, "", {}}, s3_creds, s3_time,
                             seconds(86400), out, diag);
    ASSERT_FALSE(ec) << diag.message;
    EXPECT_EQ(out.canonical_request,
              join_lines({"GET", "/test.txt",
                          "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%"
                          "2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&"
                          "X-Amz-Expires=86400&X-Amz-SignedHeaders=host",
                          "host:examplebucket.s3.amazonaws.com", "", "host", "UNSIGNED-PAYLOAD"}));
    EXPECT_EQ(out.string_to_sign,
              s3_sts("3bfa292879f6447bbcda7001decf97f4a54dc650c8942174ae0a9121cf58ad04"));
    EXPECT_EQ(out.signature, "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
    EXPECT_EQ(out.target,
              "/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%"
              "2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&"
              "X-Amz-SignedHeaders=host&X-Amz-Expires=86400&X-Amz-Signature="
              "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
}

// ---------------------------------------------------------------------------------------------
// S3 rules beyond the worked examples

TEST(SigV4S3, UnsignedPayloadOnlyWhenAsked) {
    std::vector<header_view> fields{{"Host", s3_host}};
    sigv4_request req{"PUT", "/k", fields, "data", {}};
    auto hashed = sign_ok(sigv4_signer(sigv4_options::s3("us-east-1")), req, s3_creds, s3_time);
    EXPECT_TRUE(hashed.canonical_request.ends_with(penne::http::sha256_hex("data")));
    EXPECT_EQ(find_field(hashed.headers, "x-amz-content-sha256")->value,
              penne::http::sha256_hex("data"));

    auto opts = sigv4_options::s3("us-east-1");
    opts.unsigned_payload = true;
    auto unsigned_ = sign_ok(sigv4_signer(opts), req, s3_creds, s3_time);
    EXPECT_TRUE(unsigned_.canonical_request.ends_with("\nUNSIGNED-PAYLOAD"));
    EXPECT_EQ(find_field(unsigned_.headers, "x-amz-content-sha256")->value, "UNSIGNED-PAYLOAD");
    EXPECT_NE(unsigned_.signature, hashed.signature);
}

TEST(SigV4S3, PathIsEncodedOnceAndNotNormalized) {
    using penne::http::canonical_uri;
    EXPECT_EQ(canonical_uri("/a/./b/../c//d/", false, false), "/a/./b/../c//d/");
    EXPECT_EQ(canonical_uri("/bucket/a%20b/c%2Fd", false, false), "/bucket/a%20b/c%2Fd");
    EXPECT_EQ(canonical_uri("/test$file.text", false, false), "/test%24file.text");
    EXPECT_EQ(canonical_uri("/a%7eb%2a", false, false), "/a~b%2A");
    EXPECT_EQ(canonical_uri("/100%", false, false), "/100%25");
    // A key built with uri_encode_path signs as itself.
    for (std::string key : {"/dir/file name+1.json", "/ключ/é", "/a:b/c=d&e", "/x!'()*"}) {
        auto wire = penne::http::uri_encode_path(key);
        EXPECT_EQ(canonical_uri(wire, false, false), wire) << key;
    }
    // Generic services encode the wire path again.
    EXPECT_EQ(canonical_uri("/a%20b", false, true), "/a%2520b");
}

TEST(SigV4S3, SessionTokenIsSigned) {
    credentials temp = s3_creds;
    temp.session_token = "FQoGZXIvYXdzE//token+with/slashes==";
    sigv4_signer signer(sigv4_options::s3("us-east-1"));
    std::vector<header_view> fields{{"Host", s3_host}};
    auto out = sign_ok(signer, {"GET", "/test.txt", fields, "", {}}, temp, s3_time);
    EXPECT_NE(out.canonical_request.find("\nx-amz-security-token:" + temp.session_token + "\n"),
              std::string::npos);
    EXPECT_NE(out.authorization.find("x-amz-date;x-amz-security-token,"), std::string::npos);
    ASSERT_NE(find_field(out.headers, "x-amz-security-token"), nullptr);
    EXPECT_EQ(find_field(out.headers, "x-amz-security-token")->value, temp.session_token);

    sigv4_presigned pre;
    penne::diagnostics diag;
    ASSERT_FALSE(signer.presign({"GET", "/test.txt", fields, "", {}}, temp, s3_time, seconds(60),
                                pre, diag));
    EXPECT_NE(pre.canonical_request.find("X-Amz-Security-Token=FQoGZXIvYXdzE%2F%2Ftoken%2Bwith%"
                                         "2Fslashes%3D%3D&"),
              std::string::npos);
    EXPECT_NE(pre.target.find("&X-Amz-Security-Token=FQoGZXIvYXdzE%2F%2F"), std::string::npos);
}

TEST(SigV4S3, PresignKeepsTheCallersQuery) {
    sigv4_signer signer(sigv4_options::s3("us-east-1"));
    std::vector<header_view> fields{{"Host", s3_host}};
    sigv4_presigned out;
    penne::diagnostics diag;
    ASSERT_FALSE(signer.presign({"PUT", "/k?partNumber=1&uploadId=a%2Fb", fields, "", {}}, s3_creds,
                                s3_time, seconds(60), out, diag));
    EXPECT_TRUE(out.target.starts_with("/k?partNumber=1&uploadId=a%2Fb&X-Amz-Algorithm="));
    EXPECT_NE(out.canonical_request.find("\nX-Amz-Algorithm=AWS4-HMAC-SHA256&"), std::string::npos);
    EXPECT_NE(out.canonical_request.find("&X-Amz-SignedHeaders=host&partNumber=1&uploadId=a%2Fb\n"),
              std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Encoding and canonical forms

TEST(SigV4Encoding, UriEncode) {
    using penne::http::uri_encode;
    EXPECT_EQ(uri_encode("AZaz09-._~"), "AZaz09-._~");
    EXPECT_EQ(uri_encode("a b"), "a%20b");
    EXPECT_EQ(uri_encode("a+b"), "a%2Bb");
    EXPECT_EQ(uri_encode("100%"), "100%25");
    EXPECT_EQ(uri_encode("a/b"), "a%2Fb");
    EXPECT_EQ(uri_encode("a/b", false), "a/b");
    EXPECT_EQ(uri_encode("!'()*=&?#:@$,;"), "%21%27%28%29%2A%3D%26%3F%23%3A%40%24%2C%3B");
    EXPECT_EQ(uri_encode("\xe1\x88\xb4"), "%E1%88%B4");
    EXPECT_EQ(uri_encode(std::string_view("\0\x7f", 2)), "%00%7F");
}

TEST(SigV4Encoding, UriDecode) {
    using penne::http::uri_decode;
    EXPECT_EQ(uri_decode("%41%2f%2F"), "A//");
    EXPECT_EQ(uri_decode("a+b"), "a+b");  // a plus is a plus, not a space
    EXPECT_EQ(uri_decode("%zz%4"), "%zz%4");
    EXPECT_EQ(uri_decode("%"), "%");
    EXPECT_EQ(uri_decode("%e1%88%B4"), "\xe1\x88\xb4");
}

TEST(SigV4Encoding, CanonicalQuery) {
    using penne::http::canonical_query_string;
    EXPECT_EQ(canonical_query_string(""), "");
    EXPECT_EQ(canonical_query_string("b=2&a=1"), "a=1&b=2");
    // Repeated names sort by value, compared as encoded bytes.
    EXPECT_EQ(canonical_query_string("a=2&a=1&a=10"), "a=1&a=10&a=2");
    // Names without '=' and empty values both sign as "name=".
    EXPECT_EQ(canonical_query_string("uploads"), "uploads=");
    EXPECT_EQ(canonical_query_string("b=&a"), "a=&b=");
    EXPECT_EQ(canonical_query_string("=x"), "=x");
    EXPECT_EQ(canonical_query_string("a=1&&b=2&"), "a=1&b=2");
    // Reserved characters are encoded; the value keeps everything after the first '='.
    EXPECT_EQ(canonical_query_string("k=a/b+c=d"), "k=a%2Fb%2Bc%3Dd");
    EXPECT_EQ(canonical_query_string("prefix=a b"), "prefix=a%20b");
    // Already-encoded input signs the same as raw input, in canonical (uppercase) form.
    EXPECT_EQ(canonical_query_string("prefix=a%2fb"), "prefix=a%2Fb");
    EXPECT_EQ(canonical_query_string("%4a=%4A"), "J=J");
    // UTF-8 names, and sorting on the encoded form ('%' sorts before letters and '-').
    EXPECT_EQ(canonical_query_string("\xd0\xba=1&a-b=2&a b=3"), "%D0%BA=1&a%20b=3&a-b=2");
    EXPECT_EQ(canonical_query_string("B=1&a=2&_=3&~=4"), "B=1&_=3&a=2&~=4");
}

TEST(SigV4Encoding, NormalizedPaths) {
    using penne::http::canonical_uri;
    EXPECT_EQ(canonical_uri("/", true, true), "/");
    EXPECT_EQ(canonical_uri("", true, true), "/");
    EXPECT_EQ(canonical_uri("//", true, true), "/");
    EXPECT_EQ(canonical_uri("/a/b/..", true, true), "/a/");
    EXPECT_EQ(canonical_uri("/a/b/../c", true, true), "/a/c");
    EXPECT_EQ(canonical_uri("/../a", true, true), "/a");
    EXPECT_EQ(canonical_uri("/a//b///", true, true), "/a/b/");
    EXPECT_EQ(canonical_uri("/a/.", true, true), "/a/");
    EXPECT_EQ(canonical_uri("/a b/", true, true), "/a%20b/");
}

TEST(SigV4Encoding, HmacSha256Rfc4231) {
    auto bytes = [](std::string_view s) {
        return std::span<const unsigned char>(reinterpret_cast<const unsigned char*>(s.data()),
                                              s.size());
    };
    EXPECT_EQ(penne::http::to_hex(
                  penne::http::hmac_sha256(bytes("Jefe"), "what do ya want for nothing?")),
              "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    // A key longer than the block is hashed first (a secret longer than 60 characters).
    std::string long_key(131, '\xaa');
    EXPECT_EQ(penne::http::to_hex(penne::http::hmac_sha256(
                  bytes(long_key), "Test Using Larger Than Block-Size Key - Hash Key First")),
              "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    EXPECT_EQ(penne::http::sha256_hex(""), penne::http::empty_payload_sha256);
}

TEST(SigV4Encoding, AmzDate) {
    using penne::http::format_amz_date;
    EXPECT_EQ(format_amz_date(system_clock::time_point{}), "19700101T000000Z");
    EXPECT_EQ(format_amz_date(utc(2000, 2, 29, 23, 59, 59) + milliseconds(999)),
              "20000229T235959Z");
    // system_clock counts nanoseconds in 64 bits here, so its range ends in 2262.
    EXPECT_EQ(format_amz_date(utc(2200, 12, 31, 23, 59, 59)), "22001231T235959Z");
    EXPECT_EQ(format_amz_date(utc(1969, 12, 31, 23, 59, 59)), "");
}

// ---------------------------------------------------------------------------------------------
// Headers

const credentials suite_creds{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};
const auto suite_time = utc(2015, 8, 30, 12, 36, 0);

sigv4_options generic() {
    sigv4_options o;
    o.region = "us-east-1";
    o.service = "service";
    return o;
}

TEST(SigV4Headers, ValuesAreTrimmedAndCollapsed) {
    sigv4_signer signer(generic());
    std::vector<header_view> fields{
        {"Host", "example.amazonaws.com"}, {"X-Tabs", "\t a \t\t b  c \t"}, {"X-Empty", "   "}};
    auto out = sign_ok(signer, {"GET", "/", fields, "", {}}, suite_creds, suite_time);
    EXPECT_NE(out.canonical_request.find("\nx-empty:\n"), std::string::npos);
    EXPECT_NE(out.canonical_request.find("\nx-tabs:a b c\n"), std::string::npos);
    EXPECT_NE(out.authorization.find("SignedHeaders=host;x-amz-date;x-empty;x-tabs,"),
              std::string::npos);
}

TEST(SigV4Headers, TransportHeadersAreNotSigned) {
    sigv4_signer signer(generic());
    std::vector<header_view> base{{"Host", "example.amazonaws.com"}};
    auto plain = sign_ok(signer, {"PUT", "/", base, "", {}}, suite_creds, suite_time);
    std::vector<header_view> noisy{
        {"Host", "example.amazonaws.com"}, {"User-Agent", "penne/0.1"},
        {"Expect", "100-continue"},        {"Connection", "keep-alive"},
        {"Transfer-Encoding", "chunked"},  {"Proxy-Authorization", "Basic x"},
        {"X-Amzn-Trace-Id", "Root=1-abc"}};
    auto out = sign_ok(signer, {"PUT", "/", noisy, "", {}}, suite_creds, suite_time);
    EXPECT_EQ(out.signature, plain.signature);
}

TEST(SigV4Headers, ResigningARetriedRequestIgnoresTheOldSignature) {
    credentials temp = suite_creds;
    temp.session_token = "token";
    sigv4_signer signer(generic());
    std::vector<header_view> base{{"Host", "example.amazonaws.com"}};
    auto first = sign_ok(signer, {"GET", "/", base, "", {}}, temp, suite_time);
    // The retry carries the first attempt's fields; the new signature depends only on the
    // new time.
    std::vector<header_field> carried = first.headers;
    std::vector<header_view> retry = base;
    for (const auto& f : carried)
        retry.push_back({f.name, f.value});
    auto later = suite_time + seconds(5);
    auto second = sign_ok(signer, {"GET", "/", retry, "", {}}, temp, later);
    auto fresh = sign_ok(signer, {"GET", "/", base, "", {}}, temp, later);
    EXPECT_EQ(second.signature, fresh.signature);
    EXPECT_EQ(second.canonical_request, fresh.canonical_request);
}

TEST(SigV4Headers, RejectsWhatCannotBeSent) {
    sigv4_signer signer(generic());
    sigv4_signed_headers out;
    penne::diagnostics diag;
    auto check = [&](sigv4_request req, sigv4_errc want) {
        diag.clear();
        auto ec = signer.sign(req, suite_creds, suite_time, out, diag);
        EXPECT_EQ(ec, make_error_code(want)) << req.target << " " << diag.message;
        EXPECT_FALSE(diag.message.empty());
        EXPECT_TRUE(penne::is_fatal(ec));
        EXPECT_FALSE(penne::is_retryable(ec));
    };
    std::vector<header_view> ok{{"Host", "example.amazonaws.com"}};
    std::vector<header_view> crlf{{"Host", "example.amazonaws.com"}, {"X-A", "a\r\nX-B: b"}};
    std::vector<header_view> nul{{"Host", "h"}, {"X-A", std::string_view("a\0b", 3)}};
    std::vector<header_view> bad_name{{"Host", "h"}, {"Bad Name", "v"}};
    std::vector<header_view> empty_name{{"Host", "h"}, {"", "v"}};
    std::vector<header_view> no_host{{"X-A", "v"}};
    std::vector<header_view> two_sha{
        {"Host", "h"}, {"x-amz-content-sha256", "a"}, {"x-amz-content-sha256", "b"}};
    check({"GET", "/", crlf, "", {}}, sigv4_errc::invalid_header);
    check({"GET", "/", nul, "", {}}, sigv4_errc::invalid_header);
    check({"GET", "/", bad_name, "", {}}, sigv4_errc::invalid_header);
    check({"GET", "/", empty_name, "", {}}, sigv4_errc::invalid_header);
    check({"GET", "/", two_sha, "", {}}, sigv4_errc::invalid_header);
    check({"GET", "/", no_host, "", {}}, sigv4_errc::missing_host);
    check({"", "/", ok, "", {}}, sigv4_errc::invalid_method);
    check({"G T", "/", ok, "", {}}, sigv4_errc::invalid_method);
    check({"GET", "", ok, "", {}}, sigv4_errc::invalid_target);
    check({"GET", "http://h/", ok, "", {}}, sigv4_errc::invalid_target);
    check({"GET", "/a#frag", ok, "", {}}, sigv4_errc::invalid_target);
    check({"GET", "/a\nb", ok, "", {}}, sigv4_errc::invalid_target);
}

TEST(SigV4Errors, ConfigurationAndTime) {
    std::vector<header_view> ok{{"Host", "example.amazonaws.com"}};
    sigv4_request req{"GET", "/", ok, "", {}};
    sigv4_signed_headers out;
    penne::diagnostics diag;
    auto opts = generic();
    opts.region = "";
    EXPECT_EQ(sigv4_signer(opts).sign(req, suite_creds, suite_time, out, diag),
              make_error_code(sigv4_errc::invalid_scope));
    opts = generic();
    opts.service = "s3/x";
    EXPECT_EQ(sigv4_signer(opts).sign(req, suite_creds, suite_time, out, diag),
              make_error_code(sigv4_errc::invalid_scope));
    sigv4_signer signer(generic());
    EXPECT_EQ(signer.sign(req, {"", "secret", ""}, suite_time, out, diag),
              make_error_code(sigv4_errc::missing_credentials));
    EXPECT_EQ(signer.sign(req, {"AKID", "", ""}, suite_time, out, diag),
              make_error_code(sigv4_errc::missing_credentials));
    EXPECT_EQ(signer.sign(req, {"AK/ID", "secret", ""}, suite_time, out, diag),
              make_error_code(sigv4_errc::invalid_credentials));
    EXPECT_EQ(signer.sign(req, {"AKID", "secret", "tok\nen"}, suite_time, out, diag),
              make_error_code(sigv4_errc::invalid_credentials));
    EXPECT_EQ(signer.sign(req, suite_creds, utc(1969, 1, 1), out, diag),
              make_error_code(sigv4_errc::invalid_time));
    EXPECT_STREQ(penne::http::sigv4_category().name(), "penne.sigv4");
}

TEST(SigV4Errors, PresignLimits) {
    sigv4_signer signer(sigv4_options::s3("us-east-1"));
    std::vector<header_view> fields{{"Host", s3_host}};
    sigv4_presigned out;
    penne::diagnostics diag;
    sigv4_request req{"GET", "/k", fields, "", {}};
    EXPECT_EQ(signer.presign(req, s3_creds, s3_time, seconds(0), out, diag),
              make_error_code(sigv4_errc::invalid_expiry));
    EXPECT_EQ(signer.presign(req, s3_creds, s3_time, seconds(604801), out, diag),
              make_error_code(sigv4_errc::invalid_expiry));
    EXPECT_FALSE(signer.presign(req, s3_creds, s3_time, seconds(604800), out, diag));
    EXPECT_TRUE(out.target.find("X-Amz-Expires=604800&") != std::string::npos);
    // Presigning an already presigned target would sign the old signature into the new one.
    sigv4_request twice{"GET", out.target, fields, "", {}};
    sigv4_presigned again;
    EXPECT_EQ(signer.presign(twice, s3_creds, s3_time, seconds(60), again, diag),
              make_error_code(sigv4_errc::reserved_query_parameter));
    sigv4_request lower_case{"GET", "/k?x-amz-credential=x", fields, "", {}};
    EXPECT_EQ(signer.presign(lower_case, s3_creds, s3_time, seconds(60), again, diag),
              make_error_code(sigv4_errc::reserved_query_parameter));
}

// ---------------------------------------------------------------------------------------------
// Secrets

TEST(SigV4Secrets, CredentialsPrintRedacted) {
    credentials c{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "SESSIONTOKEN123"};
    auto text = penne::http::to_string(c);
    EXPECT_NE(text.find("AKIDEXAMPLE"), std::string::npos);
    EXPECT_EQ(text.find("wJalrXUtnFEMI"), std::string::npos);
    EXPECT_EQ(text.find("SESSIONTOKEN123"), std::string::npos);
    EXPECT_NE(text.find("<redacted>"), std::string::npos);
    std::ostringstream os;
    os << c;
    EXPECT_EQ(os.str(), text);
    // GoogleTest's printer (used in failure messages) goes through PrintTo.
    auto printed = ::testing::PrintToString(c);
    EXPECT_EQ(printed.find("wJalrXUtnFEMI"), std::string::npos);
    EXPECT_EQ(printed.find("SESSIONTOKEN123"), std::string::npos);
    credentials shorty{"AK", "s3cr3t", ""};  // short enough to live inside std::string
    EXPECT_EQ(::testing::PrintToString(shorty).find("s3cr3t"), std::string::npos);
    EXPECT_NE(penne::http::to_string(shorty).find("session_token=<none>"), std::string::npos);
}

TEST(SigV4Secrets, NeitherOutputsNorDiagnosticsQuoteTheSecret) {
    credentials c{"AKIDEXAMPLE", "SuperSecretValue/1234567890abcdefghijklmn", "tok"};
    sigv4_signer signer(generic());
    std::vector<header_view> ok{{"Host", "example.amazonaws.com"}};
    auto out = sign_ok(signer, {"GET", "/", ok, "", {}}, c, suite_time);
    auto contains_secret = [&](const std::string& s) {
        return s.find(c.secret_access_key) != std::string::npos ||
               s.find("SuperSecret") != std::string::npos;
    };
    EXPECT_FALSE(contains_secret(out.canonical_request));
    EXPECT_FALSE(contains_secret(out.string_to_sign));
    EXPECT_FALSE(contains_secret(out.authorization));
    for (const auto& f : out.headers)
        EXPECT_FALSE(contains_secret(f.value));

    // Every failure path's diagnostics.
    std::vector<header_view> bad{{"Host", "h"}, {"X", "a\nb"}};
    std::vector<sigv4_request> failing = {
        {"GET", "/", bad, "", {}}, {"GET", "x", ok, "", {}}, {"", "/", ok, "", {}}};
    for (const auto& req : failing) {
        sigv4_signed_headers o;
        penne::diagnostics diag;
        EXPECT_TRUE(signer.sign(req, c, suite_time, o, diag));
        EXPECT_FALSE(contains_secret(diag.message)) << diag.message;
    }
    credentials bad_token{"AKIDEXAMPLE", c.secret_access_key, "SuperSecret\ntoken"};
    sigv4_signed_headers o;
    penne::diagnostics diag;
    EXPECT_TRUE(signer.sign({"GET", "/", ok, "", {}}, bad_token, suite_time, o, diag));
    EXPECT_FALSE(contains_secret(diag.message)) << diag.message;
}

// ---------------------------------------------------------------------------------------------
// Signing-key cache

TEST(SigV4Cache, OneDerivationPerDayRegionServiceAndSecret) {
    sigv4_signer signer(generic());
    std::vector<header_view> ok{{"Host", "example.amazonaws.com"}};
    sigv4_request req{"GET", "/", ok, "", {}};
    auto a = sign_ok(signer, req, suite_creds, suite_time);
    auto b = sign_ok(signer, req, suite_creds, suite_time + minutes(10));
    EXPECT_EQ(signer.cache().misses(), 1u);
    EXPECT_EQ(signer.cache().hits(), 1u);
    // The next UTC day needs a new key.
    auto c = sign_ok(signer, req, suite_creds, utc(2015, 8, 31, 0, 0, 1));
    EXPECT_EQ(signer.cache().misses(), 2u);
    // A rotated secret under the same access key id is not served the old key.
    credentials rotated = suite_creds;
    rotated.secret_access_key = "another-secret";
    auto d = sign_ok(signer, req, rotated, suite_time);
    EXPECT_EQ(signer.cache().misses(), 3u);
    EXPECT_NE(d.signature, a.signature);
    // And every cached result equals a fresh derivation.
    sigv4_signer fresh(generic());
    EXPECT_EQ(sign_ok(fresh, req, suite_creds, suite_time + minutes(10)).signature, b.signature);
    EXPECT_EQ(sign_ok(fresh, req, suite_creds, utc(2015, 8, 31, 0, 0, 1)).signature, c.signature);
    EXPECT_EQ(sign_ok(fresh, req, rotated, suite_time).signature, d.signature);
}

TEST(SigV4Cache, BoundedWithLeastRecentlyUsedEviction) {
    penne::http::signing_key_cache cache(2);
    auto k1 = cache.get("s", "20150830", "us-east-1", "s3");
    cache.get("s", "20150830", "eu-west-1", "s3");
    cache.get("s", "20150830", "us-east-1", "s3");   // refresh k1
    cache.get("s", "20150830", "ap-south-1", "s3");  // evicts eu-west-1
    EXPECT_EQ(cache.size(), 2u);
    EXPECT_EQ(cache.misses(), 3u);
    EXPECT_EQ(cache.get("s", "20150830", "us-east-1", "s3"), k1);
    EXPECT_EQ(cache.misses(), 3u);
    cache.get("s", "20150830", "eu-west-1", "s3");
    EXPECT_EQ(cache.misses(), 4u);
    EXPECT_EQ(k1, penne::http::derive_signing_key("s", "20150830", "us-east-1", "s3"));
}

TEST(SigV4Cache, SharedBetweenThreads) {
    sigv4_signer signer(sigv4_options::s3("us-east-1"));
    std::vector<header_view> fields{{"Host", s3_host}, {"Range", "bytes=0-9"}};
    sigv4_request req{"GET", "/test.txt", fields, "", {}};
    constexpr int threads = 4;
    constexpr int rounds = 200;
    std::vector<int> wrong(threads, 0);
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
            for (int i = 0; i < rounds; ++i) {
                // Alternate days so lookups and insertions race.
                auto when = s3_time + days(i % 3);
                sigv4_signed_headers out;
                penne::diagnostics diag;
                if (signer.sign(req, s3_creds, when, out, diag) ||
                    (i % 3 == 0 &&
                     out.signature !=
                         "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"))
                    ++wrong[static_cast<std::size_t>(t)];
            }
        });
    }
    for (auto& th : pool)
        th.join();
    for (int w : wrong)
        EXPECT_EQ(w, 0);
    EXPECT_EQ(signer.cache().hits() + signer.cache().misses(),
              static_cast<std::uint64_t>(threads * rounds));
    EXPECT_LE(signer.cache().size(), 3u);
}

}  // namespace
