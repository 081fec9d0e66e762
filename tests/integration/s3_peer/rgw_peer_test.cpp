// The S3 peer itself, checked with an independent signer (curl --aws-sigv4): a correctly
// signed request round-trips bytes, and the mistakes penne's S3 client could make (wrong
// key, wrong Content-MD5, wrong payload hash, skewed clock) are refused the way AWS refuses
// them. If this binary fails, the peer cannot judge the S3 client.

#include <process.hpp>
#include <rgw_peer.hpp>
#include <temp_dir.hpp>

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <signal.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using penne::test::rgw_peer;
using penne::test::rgw_peer_environment;

[[maybe_unused]] auto* const rgw_env =
    ::testing::AddGlobalTestEnvironment(new rgw_peer_environment);

constexpr const char* curl_path = "/usr/bin/curl";

std::string digest(const EVP_MD* md, const std::string& data) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
    unsigned int len = 0;
    EVP_Digest(data.data(), data.size(), out.data(), &len, md, nullptr);
    return std::string(reinterpret_cast<const char*>(out.data()), len);
}

std::string hex(const std::string& bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (unsigned char c : bytes) {
        out += digits[c >> 4];
        out += digits[c & 15];
    }
    return out;
}

std::string base64(const std::string& bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(bytes.data()),
                                  static_cast<int>(bytes.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

std::string sha256_hex(const std::string& data) {
    return hex(digest(EVP_sha256(), data));
}

std::string read_file(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void write_file(const std::filesystem::path& p, const std::string& data) {
    std::ofstream out(p, std::ios::binary);
    out << data;
}

struct response {
    int status = 0;  // of the final response (after any 100 Continue)
    std::string headers;
    std::string body;
    std::string curl_log;
};

struct request {
    std::string method = "GET";
    std::string path;                  // "/bucket" or "/bucket/key"
    std::string body;                  // sent with -T when method is PUT and non-empty
    std::string payload_hash;          // x-amz-content-sha256; sha256 of body when empty
    std::vector<std::string> headers;  // extra "Name: value" headers
    std::string secret_key;            // the peer's when empty
};

// One S3 request signed by curl. curl does not add x-amz-content-sha256, which RGW requires
// for SigV4, so the test supplies it (and can supply a wrong one on purpose).
class s3_curl {
public:
    explicit s3_curl(const rgw_peer& peer) : peer_(peer), dir_("penne-s3-curl") {}

    response send(const request& r) {
        const auto id = std::to_string(++count_);
        const auto headers_file = dir_.path() / ("headers-" + id);
        const auto body_file = dir_.path() / ("body-" + id);
        const auto upload_file = dir_.path() / ("upload-" + id);
        const auto log_file = dir_.path() / ("curl-" + id + ".log");

        std::vector<std::string> argv{
            curl_path,
            "--silent",
            "--show-error",
            "--max-time",
            "30",
            "--aws-sigv4",
            "aws:amz:" + peer_.region() + ":s3",
            "--user",
            peer_.access_key() + ":" + (r.secret_key.empty() ? peer_.secret_key() : r.secret_key),
            "--dump-header",
            headers_file.string(),
            "--output",
            body_file.string(),
            "-H",
            "x-amz-content-sha256: " +
                (r.payload_hash.empty() ? sha256_hex(r.body) : r.payload_hash)};
        for (const auto& h : r.headers) {
            argv.push_back("-H");
            argv.push_back(h);
        }
        if (r.method == "PUT" && !r.body.empty()) {
            write_file(upload_file, r.body);
            argv.push_back("--upload-file");
            argv.push_back(upload_file.string());
        } else {
            argv.push_back("--request");
            argv.push_back(r.method);
        }
        argv.push_back(peer_.endpoint() + r.path);

        penne::test::process curl(argv, log_file.string());
        response out;
        const auto code = curl.wait(60s);
        out.curl_log = curl.log();
        if (code != 0) {
            ADD_FAILURE() << "curl failed (" << (code ? std::to_string(*code) : "timeout")
                          << "): " << out.curl_log;
            if (!code)
                curl.signal(SIGKILL);
            return out;
        }
        out.headers = read_file(headers_file);
        out.body = read_file(body_file);
        // The last status line wins: a PUT first sees "HTTP/1.1 100 Continue".
        std::istringstream in(out.headers);
        std::string line;
        while (std::getline(in, line)) {
            if (line.rfind("HTTP/", 0) == 0) {
                const auto sp = line.find(' ');
                if (sp != std::string::npos)
                    out.status = std::stoi(line.substr(sp + 1, 3));
            }
        }
        return out;
    }

private:
    const rgw_peer& peer_;
    penne::test::temp_dir dir_;
    int count_ = 0;
};

// A bucket name unique to this process and test (RGW wants 3-63 lowercase characters).
std::string bucket_name(const std::string& tag) {
    return "penne-" + tag + "-" + std::to_string(::getpid());
}

// Every byte value, then pseudo-random filler: an upload that mangles binary data shows.
std::string binary_payload(std::size_t size) {
    std::string out;
    out.reserve(size);
    for (int b = 0; b < 256 && out.size() < size; ++b)
        out += static_cast<char>(b);
    std::mt19937 rng(42);
    while (out.size() < size)
        out += static_cast<char>(rng() & 0xff);
    return out;
}

std::string error_code_of(const response& r) {
    const auto open = r.body.find("<Code>");
    const auto close = r.body.find("</Code>");
    if (open == std::string::npos || close == std::string::npos || close < open)
        return {};
    return r.body.substr(open + 6, close - open - 6);
}

class S3Peer : public ::testing::Test {
protected:
    void SetUp() override {
        peer_ = rgw_peer_environment::peer();
        ASSERT_NE(peer_, nullptr) << rgw_peer_environment::failure();
        ASSERT_EQ(::access(curl_path, X_OK), 0) << curl_path << " is needed to sign requests";
        curl_ = std::make_unique<s3_curl>(*peer_);
    }

    // Creates a bucket and fails the test if that does not work.
    void make_bucket(const std::string& bucket) {
        auto r = curl_->send({.method = "PUT", .path = "/" + bucket});
        ASSERT_EQ(r.status, 200) << r.headers << r.body << r.curl_log;
    }

    const rgw_peer* peer_ = nullptr;
    std::unique_ptr<s3_curl> curl_;
};

TEST_F(S3Peer, ReportsWhereAndHowToConnect) {
    EXPECT_EQ(peer_->endpoint(), "http://" + peer_->host() + ":" + std::to_string(peer_->port()));
    EXPECT_EQ(peer_->host(), "127.0.0.1");
    EXPECT_GT(peer_->port(), 0);
    EXPECT_EQ(peer_->region(), "us-east-1");
    EXPECT_FALSE(peer_->access_key().empty());
    EXPECT_FALSE(peer_->secret_key().empty());
    EXPECT_TRUE(peer_->failure().empty());
    // The environment file other tools (scripts, the demo) read.
    const auto env = read_file(std::filesystem::path(peer_->directory()) / "env");
    EXPECT_NE(env.find("RGW_ENDPOINT=" + peer_->endpoint() + "\n"), std::string::npos) << env;
}

TEST_F(S3Peer, SignedPutThenGetReturnsTheSameBytes) {
    const auto bucket = bucket_name("roundtrip");
    ASSERT_NO_FATAL_FAILURE(make_bucket(bucket));
    const auto payload = binary_payload(256 * 1024 + 17);

    auto put =
        curl_->send({.method = "PUT", .path = "/" + bucket + "/dir/object.bin", .body = payload});
    ASSERT_EQ(put.status, 200) << put.headers << put.body;
    // A single-part upload's ETag is the MD5 of the content.
    EXPECT_NE(put.headers.find("\"" + hex(digest(EVP_md5(), payload)) + "\""), std::string::npos)
        << put.headers;

    auto get = curl_->send({.path = "/" + bucket + "/dir/object.bin"});
    ASSERT_EQ(get.status, 200) << get.headers;
    ASSERT_EQ(get.body.size(), payload.size());
    EXPECT_TRUE(get.body == payload) << "GET returned different bytes than were PUT";

    auto list = curl_->send({.path = "/" + bucket + "?list-type=2"});
    ASSERT_EQ(list.status, 200) << list.body;
    EXPECT_NE(list.body.find("<Key>dir/object.bin</Key>"), std::string::npos) << list.body;
    EXPECT_NE(list.body.find("<Size>" + std::to_string(payload.size()) + "</Size>"),
              std::string::npos)
        << list.body;
}

TEST_F(S3Peer, WrongSecretKeyIsRejected) {
    const auto bucket = bucket_name("badkey");
    ASSERT_NO_FATAL_FAILURE(make_bucket(bucket));

    auto put = curl_->send({.method = "PUT",
                            .path = "/" + bucket + "/k",
                            .body = "forged",
                            .secret_key = peer_->secret_key() + "x"});
    EXPECT_EQ(put.status, 403) << put.headers << put.body;
    EXPECT_EQ(error_code_of(put), "SignatureDoesNotMatch") << put.body;

    auto get = curl_->send({.path = "/" + bucket + "/k", .secret_key = "not-the-secret"});
    EXPECT_EQ(get.status, 403);
    EXPECT_EQ(error_code_of(get), "SignatureDoesNotMatch") << get.body;

    // Nothing was stored by the rejected PUT.
    auto check = curl_->send({.path = "/" + bucket + "/k"});
    EXPECT_EQ(check.status, 404) << check.body;
    EXPECT_EQ(error_code_of(check), "NoSuchKey") << check.body;
}

TEST_F(S3Peer, WrongContentMd5IsRejectedWithBadDigest) {
    const auto bucket = bucket_name("baddigest");
    ASSERT_NO_FATAL_FAILURE(make_bucket(bucket));
    const std::string payload = "the payload whose digest is checked";

    auto bad =
        curl_->send({.method = "PUT",
                     .path = "/" + bucket + "/k",
                     .body = payload,
                     .headers = {"Content-MD5: " + base64(digest(EVP_md5(), payload + "!"))}});
    EXPECT_EQ(bad.status, 400) << bad.headers << bad.body;
    EXPECT_EQ(error_code_of(bad), "BadDigest") << bad.body;
    auto check = curl_->send({.path = "/" + bucket + "/k"});
    EXPECT_EQ(check.status, 404) << check.body;

    // The same request with the right digest is accepted, so the digest alone was the fault.
    auto good = curl_->send({.method = "PUT",
                             .path = "/" + bucket + "/k",
                             .body = payload,
                             .headers = {"Content-MD5: " + base64(digest(EVP_md5(), payload))}});
    EXPECT_EQ(good.status, 200) << good.headers << good.body;
}

TEST_F(S3Peer, WrongPayloadHashIsRejected) {
    const auto bucket = bucket_name("badsha");
    ASSERT_NO_FATAL_FAILURE(make_bucket(bucket));

    // Signed correctly, but the declared x-amz-content-sha256 is not the body's.
    auto put = curl_->send({.method = "PUT",
                            .path = "/" + bucket + "/k",
                            .body = "actual body",
                            .payload_hash = sha256_hex("another body")});
    EXPECT_EQ(put.status, 400) << put.headers << put.body;
    EXPECT_EQ(error_code_of(put), "XAmzContentSHA256Mismatch") << put.body;
    auto check = curl_->send({.path = "/" + bucket + "/k"});
    EXPECT_EQ(check.status, 404) << check.body;
}

TEST_F(S3Peer, SkewedRequestTimeIsRejected) {
    // curl signs with the x-amz-date it is given; one far in the past must be refused.
    auto r = curl_->send({.path = "/", .headers = {"x-amz-date: 20200101T000000Z"}});
    EXPECT_EQ(r.status, 403) << r.body;
    EXPECT_EQ(error_code_of(r), "RequestTimeTooSkewed") << r.body;
}

}  // namespace
