// S3 requests and replies: endpoint parsing and addressing (path vs virtual-hosted, Host
// headers with ports), key and query encoding, the headers of each operation, bucket, key and
// option validation, the XML replies (pagination, encoded keys, CompleteMultipartUpload's
// 200-with-Error), and the MD5 helpers against values computed independently (Python's
// hashlib).
#include <penne/s3/requests.hpp>

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

namespace penne::s3 {
namespace {

using http::header_field;

bool contains(std::string_view haystack, std::string_view needle) {
    return haystack.find(needle) != std::string_view::npos;
}

std::optional<std::string> header(const request& r, std::string_view name) {
    std::optional<std::string> found;
    for (const auto& h : r.headers) {
        if (h.name == name) {
            EXPECT_FALSE(found) << "header " << name << " appears twice";
            found = h.value;
        }
    }
    return found;
}

endpoint parsed(std::string_view url, std::string region = {},
                addressing style = addressing::automatic) {
    endpoint ep;
    diagnostics diag;
    const auto ec = parse_endpoint(url, std::move(region), style, ep, diag);
    EXPECT_FALSE(ec) << url << ": " << diag.message;
    return ep;
}

const endpoint& aws() {
    static const endpoint ep = parsed("https://s3.eu-west-1.amazonaws.com");
    return ep;
}
const endpoint& local() {
    static const endpoint ep = parsed("http://127.0.0.1:7480");
    return ep;
}

// ---------------------------------------------------------------------------------------------
// Endpoints

TEST(S3Endpoint, AcceptsTheUsualForms) {
    auto ep = parsed("https://s3.eu-west-1.amazonaws.com");
    EXPECT_TRUE(ep.tls);
    EXPECT_EQ(ep.host, "s3.eu-west-1.amazonaws.com");
    EXPECT_EQ(ep.port, 443);
    EXPECT_EQ(ep.region, "eu-west-1") << "taken from the AWS host name";
    EXPECT_EQ(ep.style, addressing::automatic);

    ep = parsed("https://s3.eu-west-1.amazonaws.com", "eu-west-3", addressing::path);
    EXPECT_EQ(ep.region, "eu-west-3") << "a configured region wins";
    EXPECT_EQ(ep.style, addressing::path);

    ep = parsed("http://127.0.0.1:7480");
    EXPECT_FALSE(ep.tls);
    EXPECT_EQ(ep.host, "127.0.0.1");
    EXPECT_EQ(ep.port, 7480);
    EXPECT_EQ(ep.region, "us-east-1");

    ep = parsed("http://localhost:9000", "garage");
    EXPECT_EQ(ep.host, "localhost");
    EXPECT_EQ(ep.port, 9000);
    EXPECT_EQ(ep.region, "garage");

    ep = parsed("https://[::1]:9000");
    EXPECT_TRUE(ep.tls);
    EXPECT_EQ(ep.host, "[::1]");
    EXPECT_EQ(connect_host(ep), "::1");
    EXPECT_EQ(ep.port, 9000);

    ep = parsed("http://[2001:DB8::7]/");
    EXPECT_EQ(ep.host, "[2001:db8::7]");
    EXPECT_EQ(ep.port, 80);

    ep = parsed("HTTPS://MinIO.Example.COM/");
    EXPECT_TRUE(ep.tls);
    EXPECT_EQ(ep.host, "minio.example.com");
    EXPECT_EQ(connect_host(ep), "minio.example.com");
    EXPECT_EQ(ep.port, 443);
    EXPECT_EQ(ep.region, "us-east-1");

    ep = parsed("http://my_host-1.internal:65535");
    EXPECT_EQ(ep.port, 65535);
}

TEST(S3Endpoint, RegionFromAwsHostNames) {
    EXPECT_EQ(parsed("https://s3.amazonaws.com").region, "us-east-1");
    EXPECT_EQ(parsed("https://s3.us-east-1.amazonaws.com").region, "us-east-1");
    EXPECT_EQ(parsed("https://s3-ap-southeast-2.amazonaws.com").region, "ap-southeast-2");
    EXPECT_EQ(parsed("https://s3.dualstack.ca-central-1.amazonaws.com").region, "ca-central-1");
    EXPECT_EQ(parsed("https://s3-fips.us-gov-west-1.amazonaws.com").region, "us-gov-west-1");
    EXPECT_EQ(parsed("https://s3.cn-north-1.amazonaws.com.cn").region, "cn-north-1");
    EXPECT_EQ(parsed("https://s3.eu-west-1.example.com").region, "us-east-1")
        << "only AWS host names say their region";
}

TEST(S3Endpoint, RejectsWithAClearMessage) {
    struct bad_case {
        const char* url;
        const char* says;
    };
    const bad_case cases[] = {
        {"", "empty"},
        {"s3.amazonaws.com", "http:// or https://"},
        {"ftp://s3.amazonaws.com", "http:// or https://"},
        {"https//s3.amazonaws.com", "http:// or https://"},
        {"https://", "no host"},
        {"https://:9000", "no host"},
        {"https://host/bucket", "path"},
        {"https://host/bucket/", "path"},
        {"https://host//", "path"},
        {"https://host#frag", "fragment"},
        {"https://host:0", "port"},
        {"https://host:65536", "port"},
        {"https://host:", "port"},
        {"https://host:9o00", "port"},
        {"https://host:-1", "port"},
        {"https://[::1", "']'"},
        {"https://[::1]x", ":port"},
        {"https://[fe80::1%25eth0]:9000", "zone"},
        {"https://[]", "IPv6"},
        {"https://[1234]", "IPv6"},
        {"https://ho st", "character"},
        {"https://a..b", "empty label"},
        {"https://.a", "empty label"},
        {"https://host.", "ends with"},
    };
    for (const auto& c : cases) {
        endpoint ep;
        ep.host = "untouched";
        diagnostics diag;
        const auto ec = parse_endpoint(c.url, "", addressing::automatic, ep, diag);
        EXPECT_EQ(ec, make_error_code(penne::errc::invalid_config)) << c.url;
        EXPECT_TRUE(contains(diag.message, c.says)) << c.url << " -> " << diag.message;
        EXPECT_EQ(ep.host, "untouched") << c.url;
    }
}

TEST(S3Endpoint, NeverEchoesWhatFollowsTheHost) {
    endpoint ep;
    diagnostics diag;
    auto ec = parse_endpoint("https://AKIDEXAMPLE:wJalrSECRETKEY@s3.amazonaws.com", "",
                             addressing::automatic, ep, diag);
    EXPECT_EQ(ec, make_error_code(penne::errc::invalid_config));
    EXPECT_TRUE(contains(diag.message, "user information")) << diag.message;
    EXPECT_FALSE(contains(diag.message, "wJalrSECRETKEY")) << diag.message;

    ec = parse_endpoint("https://s3.amazonaws.com/?X-Amz-Security-Token=SESSIONSECRET", "",
                        addressing::automatic, ep, diag);
    EXPECT_EQ(ec, make_error_code(penne::errc::invalid_config));
    EXPECT_TRUE(contains(diag.message, "query")) << diag.message;
    EXPECT_FALSE(contains(diag.message, "SESSIONSECRET")) << diag.message;

    ec = parse_endpoint("https://s3.amazonaws.com/path/SECRETPATH", "", addressing::automatic, ep,
                        diag);
    EXPECT_FALSE(contains(diag.message, "SECRETPATH")) << diag.message;
}

TEST(S3Endpoint, VirtualHostedNeedsAName) {
    endpoint ep;
    diagnostics diag;
    EXPECT_EQ(parse_endpoint("http://127.0.0.1:9000", "", addressing::virtual_hosted, ep, diag),
              make_error_code(penne::errc::invalid_config));
    EXPECT_TRUE(contains(diag.message, "path-style")) << diag.message;
    EXPECT_EQ(parse_endpoint("https://[::1]", "", addressing::virtual_hosted, ep, diag),
              make_error_code(penne::errc::invalid_config));
    EXPECT_FALSE(parse_endpoint("http://127.0.0.1:9000", "", addressing::path, ep, diag));
}

TEST(S3Endpoint, DefaultEndpoint) {
    EXPECT_EQ(default_endpoint("eu-west-1"), "https://s3.eu-west-1.amazonaws.com");
    EXPECT_EQ(default_endpoint(""), "https://s3.us-east-1.amazonaws.com");
    EXPECT_EQ(default_endpoint("cn-northwest-1"), "https://s3.cn-northwest-1.amazonaws.com.cn");
    // What it gives parses back to the same region.
    EXPECT_EQ(parsed(default_endpoint("sa-east-1")).region, "sa-east-1");
}

TEST(S3Endpoint, PathOrVirtualHosted) {
    EXPECT_FALSE(use_path_style(aws(), "events-prod"));
    EXPECT_TRUE(use_path_style(aws(), "events.prod")) << "dotted bucket over TLS";
    EXPECT_FALSE(use_path_style(parsed("http://s3.example.com"), "events.prod"))
        << "dots are fine without TLS";
    EXPECT_TRUE(use_path_style(aws(), "Legacy_Bucket")) << "not DNS-compatible";
    EXPECT_TRUE(use_path_style(aws(), "ab")) << "too short for a DNS-compatible name";
    EXPECT_TRUE(use_path_style(aws(), "a-.b")) << "a label ending with '-'";
    EXPECT_TRUE(use_path_style(aws(), "10.1.2.3")) << "a bucket named like an IP address";
    EXPECT_TRUE(use_path_style(local(), "events-prod")) << "IPv4 endpoint";
    EXPECT_TRUE(use_path_style(parsed("https://[::1]:9000"), "events-prod")) << "IPv6 endpoint";
    EXPECT_TRUE(use_path_style(parsed("http://localhost:9000"), "events-prod"));
    EXPECT_TRUE(use_path_style(parsed("http://s3.localhost:9000"), "events-prod"));
    EXPECT_FALSE(use_path_style(parsed("http://minio.internal:9000"), "events-prod"));
    EXPECT_TRUE(use_path_style(parsed("https://s3.amazonaws.com", "", addressing::path), "b-1"));
    EXPECT_FALSE(use_path_style(parsed("https://s3.amazonaws.com", "", addressing::virtual_hosted),
                                "dotted.bucket"))
        << "an explicit choice is kept";
}

// ---------------------------------------------------------------------------------------------
// Targets and Host headers

TEST(S3Requests, VirtualHostedTargetAndHost) {
    const auto r = put_object(aws(), "events-prod", "db/coll/2026/part-0001.jsonl.gz", {}, "");
    EXPECT_EQ(r.method, "PUT");
    EXPECT_EQ(r.host_header, "events-prod.s3.eu-west-1.amazonaws.com");
    EXPECT_EQ(r.connect_host, "events-prod.s3.eu-west-1.amazonaws.com");
    EXPECT_EQ(r.port, 443);
    EXPECT_TRUE(r.tls);
    EXPECT_EQ(r.target, "/db/coll/2026/part-0001.jsonl.gz");
    EXPECT_TRUE(r.headers.empty());
    EXPECT_TRUE(r.body.empty());
}

TEST(S3Requests, PathStyleTargetAndHostWithPorts) {
    auto r = put_object(local(), "events", "a.jsonl", {}, "");
    EXPECT_EQ(r.host_header, "127.0.0.1:7480");
    EXPECT_EQ(r.connect_host, "127.0.0.1");
    EXPECT_EQ(r.port, 7480);
    EXPECT_FALSE(r.tls);
    EXPECT_EQ(r.target, "/events/a.jsonl");

    r = head_object(parsed("https://[::1]:9000"), "events", "k");
    EXPECT_EQ(r.method, "HEAD");
    EXPECT_EQ(r.host_header, "[::1]:9000");
    EXPECT_EQ(r.connect_host, "::1");
    EXPECT_EQ(r.target, "/events/k");

    // Default ports are left out of Host; others are kept, also for virtual-hosted names.
    EXPECT_EQ(head_bucket(parsed("http://minio.local:80"), "b-1").host_header, "b-1.minio.local");
    EXPECT_EQ(head_bucket(parsed("https://minio.local:443"), "b-1").host_header, "b-1.minio.local");
    EXPECT_EQ(head_bucket(parsed("https://minio.local:8443"), "b-1").host_header,
              "b-1.minio.local:8443");
    EXPECT_EQ(head_bucket(parsed("http://minio.local:443"), "b-1").host_header,
              "b-1.minio.local:443");
    EXPECT_EQ(head_bucket(parsed("https://minio.local:8443"), "b-1").connect_host,
              "b-1.minio.local");
    EXPECT_EQ(head_bucket(parsed("http://localhost:4568"), "b-1").host_header, "localhost:4568");

    // Bucket-level targets.
    EXPECT_EQ(head_bucket(aws(), "events-prod").target, "/");
    EXPECT_EQ(head_bucket(local(), "events-prod").target, "/events-prod");
    EXPECT_EQ(head_bucket(local(), "events-prod").method, "HEAD");
}

TEST(S3Requests, KeysAreEncodedOnce) {
    struct key_case {
        const char* key;
        const char* target;
    };
    const key_case cases[] = {
        {"dir/a b+c%d~e.json", "/dir/a%20b%2Bc%25d~e.json"},
        {"\xc3\xbc/\xe6\x97\xa5\xe6\x9c\xac", "/%C3%BC/%E6%97%A5%E6%9C%AC"},
        {"q?x=1&y#z", "/q%3Fx%3D1%26y%23z"},
        {"/leading", "//leading"},
        {"a//b/../c/./d", "/a//b/../c/./d"},
        {"trailing/", "/trailing/"},
        {"Azaz09-._~", "/Azaz09-._~"},
        {"colon:semi;comma,at@dollar$", "/colon%3Asemi%3Bcomma%2Cat%40dollar%24"},
        {"%2F", "/%252F"},
    };
    for (const auto& c : cases) {
        EXPECT_EQ(get_object(aws(), "b-1", c.key).target, c.target) << c.key;
        EXPECT_EQ(get_object(local(), "b-1", c.key).target, std::string("/b-1") + c.target)
            << c.key;
    }
}

TEST(S3Requests, MultipartTargets) {
    auto r = create_multipart_upload(aws(), "b-1", "x y", {});
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.target, "/x%20y?uploads");

    r = upload_part(aws(), "b-1", "x y", "VXBsb2FkIElE+/=.-_~", 7, "XrY7u+Ae7tCTyyK7j1rNww==");
    EXPECT_EQ(r.method, "PUT");
    EXPECT_EQ(r.target, "/x%20y?partNumber=7&uploadId=VXBsb2FkIElE%2B%2F%3D.-_~");
    EXPECT_EQ(header(r, "Content-MD5"), "XrY7u+Ae7tCTyyK7j1rNww==");
    EXPECT_EQ(r.headers.size(), 1u);
    r = upload_part(local(), "b-1", "k", "id", 10000, "");
    EXPECT_EQ(r.target, "/b-1/k?partNumber=10000&uploadId=id");
    EXPECT_TRUE(r.headers.empty());

    r = complete_multipart_upload(aws(), "b-1", "k", "id+1");
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.target, "/k?uploadId=id%2B1");
    EXPECT_EQ(header(r, "Content-Type"), "application/xml");
    EXPECT_TRUE(r.body.empty());

    r = abort_multipart_upload(local(), "b-1", "k", "id+1");
    EXPECT_EQ(r.method, "DELETE");
    EXPECT_EQ(r.target, "/b-1/k?uploadId=id%2B1");
    EXPECT_TRUE(r.headers.empty());
}

TEST(S3Requests, CompleteMultipartBody) {
    const std::vector<completed_part> parts = {
        {1, "\"e09c80c42fda55f9d992e59ca6b3307d\""},
        {2, "\"e1faffe9c3c801f2f8c3fbe7cb032cb2\""},
        {3, "odd<&>'"},
    };
    const std::string expected =
        "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<Part><PartNumber>1</PartNumber><ETag>&quot;e09c80c42fda55f9d992e59ca6b3307d&quot;"
        "</ETag></Part>"
        "<Part><PartNumber>2</PartNumber><ETag>&quot;e1faffe9c3c801f2f8c3fbe7cb032cb2&quot;"
        "</ETag></Part>"
        "<Part><PartNumber>3</PartNumber><ETag>odd&lt;&amp;&gt;&apos;</ETag></Part>"
        "</CompleteMultipartUpload>";
    EXPECT_EQ(complete_multipart_body(parts), expected);
    const auto r = complete_multipart_upload(aws(), "b-1", "k", "id", parts);
    EXPECT_EQ(r.body, expected);
    EXPECT_EQ(r.target, "/k?uploadId=id");
    EXPECT_EQ(header(r, "Content-Type"), "application/xml");
    EXPECT_EQ(complete_multipart_body({}),
              "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
              "</CompleteMultipartUpload>");
}

TEST(S3Requests, GetDeleteAndRanges) {
    auto r = get_object(aws(), "b-1", "k");
    EXPECT_EQ(r.method, "GET");
    EXPECT_FALSE(header(r, "Range"));
    r = get_object(aws(), "b-1", "k", byte_range{0, 99});
    EXPECT_EQ(header(r, "Range"), "bytes=0-99");
    r = get_object(aws(), "b-1", "k", byte_range{1048576, std::nullopt});
    EXPECT_EQ(header(r, "Range"), "bytes=1048576-");
    r = delete_object(local(), "b-1", "a b");
    EXPECT_EQ(r.method, "DELETE");
    EXPECT_EQ(r.target, "/b-1/a%20b");
    EXPECT_TRUE(r.headers.empty());
}

TEST(S3Requests, ListTargets) {
    auto r = list_objects_v2(aws(), "b-1", "");
    EXPECT_EQ(r.method, "GET");
    EXPECT_EQ(r.target, "/?list-type=2&encoding-type=url");
    r = list_objects_v2(local(), "b-1", "db/coll 1/", "1/2+3=", 500, "/");
    EXPECT_EQ(r.target,
              "/b-1?list-type=2&continuation-token=1%2F2%2B3%3D&delimiter=%2F&encoding-type=url"
              "&max-keys=500&prefix=db%2Fcoll%201%2F");
    r = list_objects_v2(aws(), "b-1", "p", "", 0);
    EXPECT_EQ(r.target, "/?list-type=2&encoding-type=url&prefix=p");
    EXPECT_TRUE(r.headers.empty());

    r = list_multipart_uploads(aws(), "b-1", "");
    EXPECT_EQ(r.method, "GET");
    EXPECT_EQ(r.target, "/?uploads&encoding-type=url");
    r = list_multipart_uploads(local(), "b-1", "db/", "db/k 1", "id+2");
    EXPECT_EQ(r.target,
              "/b-1?uploads&encoding-type=url&key-marker=db%2Fk%201&prefix=db%2F"
              "&upload-id-marker=id%2B2");
}

TEST(S3Requests, CreateBucket) {
    auto r = create_bucket(aws(), "b-1", "eu-west-1");
    EXPECT_EQ(r.method, "PUT");
    EXPECT_EQ(r.target, "/");
    EXPECT_EQ(r.host_header, "b-1.s3.eu-west-1.amazonaws.com");
    EXPECT_EQ(r.body,
              "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
              "<LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>");
    EXPECT_EQ(header(r, "Content-Type"), "application/xml");
    for (const char* region : {"us-east-1", ""}) {
        r = create_bucket(local(), "b-1", region);
        EXPECT_EQ(r.target, "/b-1");
        EXPECT_TRUE(r.body.empty()) << region;
        EXPECT_TRUE(r.headers.empty()) << region;
    }
}

// ---------------------------------------------------------------------------------------------
// Object headers

put_options full_options() {
    put_options o;
    o.content_type = "application/x-ndjson";
    o.content_encoding = "gzip";
    o.storage_class = "STANDARD_IA";
    o.sse = sse_mode::kms;
    o.kms_key_id = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    o.tags = {{"env", "prod"}, {"team name", "data+ops"}, {"path", "a/b=c&d"}};
    o.metadata = {{"Penne-Scope", "db.coll"}, {"first-ts", "7234019283746"}};
    return o;
}

TEST(S3Requests, PutObjectHeaders) {
    const auto opts = full_options();
    diagnostics diag;
    ASSERT_FALSE(validate(opts, diag)) << diag.message;
    const auto r = put_object(aws(), "b-1", "k", opts, "XrY7u+Ae7tCTyyK7j1rNww==");
    const std::vector<header_field> expected = {
        {"Content-Type", "application/x-ndjson"},
        {"Content-Encoding", "gzip"},
        {"x-amz-storage-class", "STANDARD_IA"},
        {"x-amz-server-side-encryption", "aws:kms"},
        {"x-amz-server-side-encryption-aws-kms-key-id",
         "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"},
        {"x-amz-tagging", "env=prod&team%20name=data%2Bops&path=a%2Fb%3Dc%26d"},
        {"x-amz-meta-penne-scope", "db.coll"},
        {"x-amz-meta-first-ts", "7234019283746"},
        {"Content-MD5", "XrY7u+Ae7tCTyyK7j1rNww=="},
    };
    EXPECT_EQ(r.headers, expected);
    for (const auto& h : r.headers) {
        EXPECT_NE(h.name, "Host");
        EXPECT_NE(h.name, "Content-Length");
        EXPECT_NE(h.name, "x-amz-content-sha256");
    }
}

TEST(S3Requests, PutObjectOptionalHeaders) {
    put_options o;
    o.content_md5 = false;
    auto r = put_object(aws(), "b-1", "k", o, "XrY7u+Ae7tCTyyK7j1rNww==");
    EXPECT_FALSE(header(r, "Content-MD5")) << "turned off";
    o.content_md5 = true;
    r = put_object(aws(), "b-1", "k", o, "");
    EXPECT_FALSE(header(r, "Content-MD5")) << "no digest given";
    EXPECT_TRUE(r.headers.empty());

    o.sse = sse_mode::s3;
    r = put_object(aws(), "b-1", "k", o, "");
    EXPECT_EQ(header(r, "x-amz-server-side-encryption"), "AES256");
    EXPECT_FALSE(header(r, "x-amz-server-side-encryption-aws-kms-key-id"));
    o.sse = sse_mode::kms;
    r = put_object(aws(), "b-1", "k", o, "");
    EXPECT_EQ(header(r, "x-amz-server-side-encryption"), "aws:kms");
    EXPECT_FALSE(header(r, "x-amz-server-side-encryption-aws-kms-key-id"))
        << "the account's default key";

    EXPECT_EQ(to_string(sse_mode::none), "none");
    EXPECT_EQ(to_string(sse_mode::s3), "s3");
    EXPECT_EQ(to_string(sse_mode::kms), "kms");
}

TEST(S3Requests, CreateMultipartUploadCarriesObjectHeadersButNoDigest) {
    const auto r = create_multipart_upload(local(), "b-1", "k", full_options());
    EXPECT_EQ(r.target, "/b-1/k?uploads");
    EXPECT_EQ(header(r, "Content-Type"), "application/x-ndjson");
    EXPECT_EQ(header(r, "x-amz-storage-class"), "STANDARD_IA");
    EXPECT_EQ(header(r, "x-amz-tagging"), "env=prod&team%20name=data%2Bops&path=a%2Fb%3Dc%26d");
    EXPECT_EQ(header(r, "x-amz-meta-penne-scope"), "db.coll");
    EXPECT_FALSE(header(r, "Content-MD5"));
    EXPECT_EQ(r.headers.size(), 8u);
}

// ---------------------------------------------------------------------------------------------
// Validation

TEST(S3Validation, BucketNames) {
    for (const std::string& good :
         {std::string("abc"), std::string("my-bucket.logs"), std::string(63, 'a'),
          std::string("a1b"), std::string("1.2.3"), std::string("0bucket9"), std::string("a-b-c"),
          std::string("xn-abc")}) {
        diagnostics diag;
        EXPECT_FALSE(validate_bucket_name(good, diag)) << good << ": " << diag.message;
    }
    struct bad_case {
        std::string name;
        const char* says;
    };
    const bad_case bad[] = {
        {"", "3 to 63"},
        {"ab", "3 to 63"},
        {std::string(64, 'a'), "3 to 63"},
        {"My-bucket", "lowercase"},
        {"my_bucket", "lowercase"},
        {"my bucket", "lowercase"},
        {"bucket\xc3\xa9", "lowercase"},
        {"-abc", "start and end"},
        {"abc-", "start and end"},
        {".abc", "start and end"},
        {"abc.", "start and end"},
        {"a..b", "adjacent periods"},
        {"192.168.5.4", "IP address"},
        {"xn--abc", "xn--"},
        {"sthree-bucket", "sthree-"},
        {"amzn-s3-demo-bucket", "amzn-s3-demo-"},
        {"abc-s3alias", "-s3alias"},
        {"abc--ol-s3", "--ol-s3"},
        {"abc.mrap", ".mrap"},
        {"abc--x-s3", "--x-s3"},
        {"abc--table-s3", "--table-s3"},
    };
    for (const auto& c : bad) {
        diagnostics diag;
        EXPECT_EQ(validate_bucket_name(c.name, diag), make_error_code(s3_errc::invalid_bucket_name))
            << c.name;
        EXPECT_TRUE(contains(diag.message, c.says)) << c.name << " -> " << diag.message;
    }
    diagnostics diag;
    validate_bucket_name("bad\nname", diag);
    EXPECT_TRUE(contains(diag.message, "\"bad\\x0Aname\"")) << diag.message;
}

TEST(S3Validation, Keys) {
    for (const std::string& good :
         {std::string("a"), std::string(1024, 'k'),
          std::string("\xe6\x97\xa5\xe6\x9c\xac/\xc3\xbc.json"),
          std::string("emoji-\xf0\x9f\x8d\x9d"), std::string("\xf4\x8f\xbf\xbf"),
          std::string("spaces and +%~ are fine"), std::string("/"), std::string(".")}) {
        diagnostics diag;
        EXPECT_FALSE(validate_key(good, diag)) << good << ": " << diag.message;
    }
    struct bad_case {
        std::string key;
        const char* says;
    };
    const bad_case bad[] = {
        {"", "empty"},
        {std::string(1025, 'k'), "1025 bytes"},
        {std::string(1023, 'k') + "\xc3\xa9", "1025 bytes"},
        {"trunc\xc3", "UTF-8 at byte 5"},
        {"\xc0\xaf", "UTF-8 at byte 0"},          // overlong '/'
        {"x\xe0\x80\xaf", "UTF-8 at byte 1"},     // overlong, 3 bytes
        {"\xf0\x80\x80\xaf", "UTF-8 at byte 0"},  // overlong, 4 bytes
        {"\xed\xa0\x80", "UTF-8 at byte 0"},      // surrogate U+D800
        {"\xf4\x90\x80\x80", "UTF-8 at byte 0"},  // past U+10FFFF
        {"\xff", "UTF-8 at byte 0"},
        {"ab\x80", "UTF-8 at byte 2"},  // lone continuation
        {"a\nb", "control character at byte 1"},
        {std::string("a\0b", 3), "control character at byte 1"},
        {"a\x7f", "control character at byte 1"},
    };
    for (const auto& c : bad) {
        diagnostics diag;
        EXPECT_EQ(validate_key(c.key, diag), make_error_code(s3_errc::invalid_key)) << c.says;
        EXPECT_TRUE(contains(diag.message, c.says)) << diag.message;
        EXPECT_TRUE(is_fatal(validate_key(c.key, diag)));
    }
}

TEST(S3Validation, PutOptions) {
    diagnostics diag;
    EXPECT_FALSE(validate(put_options{}, diag));
    EXPECT_FALSE(validate(full_options(), diag)) << diag.message;

    struct bad_case {
        const char* says;
        void (*change)(put_options&);
    };
    const bad_case bad[] = {
        {"content type", [](put_options& o) { o.content_type = "text/plain\r\nX-Evil: 1"; }},
        {"content encoding", [](put_options& o) { o.content_encoding = "gz\xc3\xa9"; }},
        {"storage class", [](put_options& o) { o.storage_class = "standard"; }},
        {"storage class", [](put_options& o) { o.storage_class = "STANDARD IA"; }},
        {"KMS key id", [](put_options& o) { o.sse = sse_mode::s3; }},
        {"KMS key id", [](put_options& o) { o.kms_key_id = "alias/my key"; }},
        {"at most 10 tags",
         [](put_options& o) {
             o.tags.clear();
             for (int i = 0; i < 11; ++i)
                 o.tags.emplace_back("k" + std::to_string(i), "v");
         }},
        {"tag key",
         [](put_options& o) {
             o.tags = {{"", "v"}};
         }},
        {"tag key",
         [](put_options& o) {
             o.tags = {{std::string(129, 'k'), "v"}};
         }},
        {"tag key",
         [](put_options& o) {
             o.tags = {{"bad\xff", "v"}};
         }},
        {"value of tag",
         [](put_options& o) {
             o.tags = {{"k", std::string(257, 'v')}};
         }},
        {"value of tag",
         [](put_options& o) {
             o.tags = {{"k", "line\nbreak"}};
         }},
        {"set twice",
         [](put_options& o) {
             o.tags = {{"k", "1"}, {"k", "2"}};
         }},
        {"metadata name is empty",
         [](put_options& o) {
             o.metadata = {{"", "v"}};
         }},
        {"metadata name",
         [](put_options& o) {
             o.metadata = {{"has space", "v"}};
         }},
        {"metadata name",
         [](put_options& o) {
             o.metadata = {{"colon:", "v"}};
         }},
        {"value of metadata",
         [](put_options& o) {
             o.metadata = {{"k", "caf\xc3\xa9"}};
         }},
        {"value of metadata",
         [](put_options& o) {
             o.metadata = {{"k", "a\r\nb"}};
         }},
        {"ignore case",
         [](put_options& o) {
             o.metadata = {{"Scope", "1"}, {"sCOPE", "2"}};
         }},
        {"2048",
         [](put_options& o) {
             o.metadata = {{"big", std::string(2046, 'v')}};
         }},
    };
    for (const auto& c : bad) {
        auto o = full_options();
        c.change(o);
        diagnostics d;
        EXPECT_EQ(validate(o, d), make_error_code(penne::errc::invalid_config)) << c.says;
        EXPECT_TRUE(contains(d.message, c.says)) << c.says << " -> " << d.message;
    }
    // Limits are inclusive: 10 tags, 128/256 characters (not bytes), 2048 metadata bytes.
    auto o = full_options();
    o.tags.clear();
    for (int i = 0; i < 10; ++i)
        o.tags.emplace_back("k" + std::to_string(i), "");
    std::string key128;
    for (int i = 0; i < 128; ++i)
        key128 += "\xc3\xa9";
    o.tags[0] = {key128, std::string(256, 'v')};
    o.metadata = {{"big", std::string(2045, 'v')}};
    EXPECT_FALSE(validate(o, diag)) << diag.message;
}

// ---------------------------------------------------------------------------------------------
// Replies

constexpr const char* list_page =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\n"
    "  <Name>events</Name><Prefix>db%2F</Prefix><KeyCount>3</KeyCount>"
    "<MaxKeys>3</MaxKeys><Delimiter>%2F</Delimiter>\n"
    "  <EncodingType>url</EncodingType>\n"
    "  <IsTruncated>true</IsTruncated>\n"
    "  "
    "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>\n"
    "  <Contents><Key>db%2Fa+b%2Bc%25%C3%BC~.jsonl</Key>"
    "<LastModified>2026-12-06T10:00:00.000Z</LastModified>"
    "<ETag>&quot;5eb63bbbe01eeed093cb22bb8f5acdc3&quot;</ETag><Size>11</Size>"
    "<StorageClass>STANDARD</StorageClass></Contents>\n"
    "  <Contents><Key>db%2Fbig.parquet</Key><LastModified>2026-12-06T10:01:00.000Z"
    "</LastModified><ETag>\"8ee05f6ade6cd294ac522f259dd99dfc-3\"</ETag>"
    "<Size>18446744073709551615</Size><StorageClass>STANDARD_IA</StorageClass></Contents>\n"
    "  <CommonPrefixes><Prefix>db%2Fsub+dir%2F</Prefix></CommonPrefixes>\n"
    "  <CommonPrefixes><Prefix>db%2Fother%2F</Prefix></CommonPrefixes>\n"
    "</ListBucketResult>\n";

TEST(S3Replies, ListObjectsV2Page) {
    list_result page;
    diagnostics diag;
    ASSERT_FALSE(parse_list_objects_v2(list_page, page, diag)) << diag.message;
    ASSERT_EQ(page.contents.size(), 2u);
    EXPECT_EQ(page.contents[0].key, "db/a b+c%\xc3\xbc~.jsonl");
    EXPECT_EQ(page.contents[0].etag, "\"5eb63bbbe01eeed093cb22bb8f5acdc3\"");
    EXPECT_EQ(page.contents[0].size, 11u);
    EXPECT_EQ(page.contents[0].last_modified, "2026-12-06T10:00:00.000Z");
    EXPECT_EQ(page.contents[0].storage_class, "STANDARD");
    EXPECT_EQ(page.contents[1].key, "db/big.parquet");
    EXPECT_EQ(page.contents[1].size, 18446744073709551615u);
    EXPECT_EQ(page.contents[1].etag, "\"8ee05f6ade6cd294ac522f259dd99dfc-3\"");
    EXPECT_EQ(page.common_prefixes, (std::vector<std::string>{"db/sub dir/", "db/other/"}));
    EXPECT_TRUE(page.is_truncated);
    EXPECT_EQ(page.next_continuation_token, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=")
        << "tokens are not URL-encoded";
    // The token goes back in the next request encoded once.
    EXPECT_TRUE(contains(list_objects_v2(aws(), "b-1", "db/", page.next_continuation_token).target,
                         "continuation-token=1ueGcxLPRx1Tr%2FXYExHnhbYLgveDs2J%2Fwm36Hy4vbOwM%3D"));
}

TEST(S3Replies, ListObjectsV2LastPageAndRawKeys) {
    // A server that ignores encoding-type: keys are taken as they are, '+' included.
    const char* xml =
        "<ListBucketResult><Name>b</Name><IsTruncated>false</IsTruncated>"
        "<Contents><Key>a+b%20c</Key><Size>0</Size></Contents>"
        "<Contents><Key> </Key><Size>1</Size></Contents>"
        "<Contents><Key>x &amp; &lt;y&gt;</Key><Size>2</Size></Contents>"
        "</ListBucketResult>";
    list_result page;
    page.next_continuation_token = "stale";
    diagnostics diag;
    ASSERT_FALSE(parse_list_objects_v2(xml, page, diag)) << diag.message;
    ASSERT_EQ(page.contents.size(), 3u);
    EXPECT_EQ(page.contents[0].key, "a+b%20c");
    EXPECT_EQ(page.contents[1].key, " ") << "a key of one space survives";
    EXPECT_EQ(page.contents[2].key, "x & <y>");
    EXPECT_TRUE(page.contents[0].etag.empty());
    EXPECT_FALSE(page.is_truncated);
    EXPECT_TRUE(page.next_continuation_token.empty());
    EXPECT_TRUE(page.common_prefixes.empty());

    // An empty bucket.
    ASSERT_FALSE(parse_list_objects_v2(
        "<ListBucketResult><Name>b</Name><KeyCount>0</KeyCount><IsTruncated>false"
        "</IsTruncated></ListBucketResult>",
        page, diag));
    EXPECT_TRUE(page.contents.empty());
}

TEST(S3Replies, ListObjectsV2Malformed) {
    struct bad_case {
        const char* xml;
        const char* says;
    };
    const bad_case bad[] = {
        {"", "empty"},
        {"not xml at all", "not XML"},
        {"<ListBucketResult><Contents>", "not XML"},
        {"<html><body>hi</body></html>", "\"html\" document"},
        {"<Error><Code>AccessDenied</Code></Error>", "\"AccessDenied\""},
        {"<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>",
         "NextContinuationToken"},
        {"<ListBucketResult><IsTruncated>yes</IsTruncated></ListBucketResult>", "IsTruncated"},
        {"<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>", "<Key>"},
        {"<ListBucketResult><Contents><Key>k</Key></Contents></ListBucketResult>", "<Size>"},
        {"<ListBucketResult><Contents><Key>k</Key><Size>-1</Size></Contents></ListBucketResult>",
         "<Size>"},
        {"<ListBucketResult><Contents><Key>k</Key><Size>12x</Size></Contents>"
         "</ListBucketResult>",
         "<Size>"},
        {"<ListBucketResult><Contents><Key>k</Key><Size>18446744073709551616</Size></Contents>"
         "</ListBucketResult>",
         "<Size>"},
    };
    for (const auto& c : bad) {
        list_result page;
        page.next_continuation_token = "kept";
        diagnostics diag;
        const auto ec = parse_list_objects_v2(c.xml, page, diag);
        EXPECT_EQ(ec, make_error_code(s3_errc::malformed_response)) << c.xml;
        EXPECT_TRUE(contains(diag.message, c.says)) << c.xml << " -> " << diag.message;
        EXPECT_EQ(page.next_continuation_token, "kept") << "out untouched on error";
    }
}

TEST(S3Replies, InitiateMultipart) {
    std::string id;
    diagnostics diag;
    ASSERT_FALSE(parse_initiate_multipart(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<InitiateMultipartUploadResult "
        "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>b</Bucket><Key>k</Key>"
        "<UploadId>2~iCw_lDY8VoTGmg0tQq0Vx1b5OqcrO3r</UploadId>"
        "</InitiateMultipartUploadResult>",
        id, diag))
        << diag.message;
    EXPECT_EQ(id, "2~iCw_lDY8VoTGmg0tQq0Vx1b5OqcrO3r");

    id = "kept";
    EXPECT_EQ(parse_initiate_multipart("<InitiateMultipartUploadResult><UploadId></UploadId>"
                                       "</InitiateMultipartUploadResult>",
                                       id, diag),
              make_error_code(s3_errc::malformed_response));
    EXPECT_TRUE(contains(diag.message, "UploadId"));
    EXPECT_EQ(id, "kept");
    EXPECT_EQ(parse_initiate_multipart("<ListBucketResult/>", id, diag),
              make_error_code(s3_errc::malformed_response));
}

TEST(S3Replies, CompleteMultipartSuccess) {
    // S3 keeps the connection alive with whitespace before the document while it assembles
    // the parts.
    const std::string xml = std::string(40, ' ') + "\n" + std::string(8, ' ') +
                            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                            "<CompleteMultipartUploadResult "
                            "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                            "<Location>https://b-1.s3.eu-west-1.amazonaws.com/k%201</Location>"
                            "<Bucket>b-1</Bucket><Key>k 1</Key>"
                            "<ETag>\"8ee05f6ade6cd294ac522f259dd99dfc-3\"</ETag>"
                            "</CompleteMultipartUploadResult>";
    complete_result res;
    s3_error_info err;
    diagnostics diag;
    ASSERT_FALSE(parse_complete_multipart(xml, res, err, diag)) << diag.message;
    EXPECT_EQ(res.location, "https://b-1.s3.eu-west-1.amazonaws.com/k%201");
    EXPECT_EQ(res.bucket, "b-1");
    EXPECT_EQ(res.key, "k 1");
    EXPECT_EQ(res.etag, "\"8ee05f6ade6cd294ac522f259dd99dfc-3\"");
    EXPECT_TRUE(err.code.empty());
}

TEST(S3Replies, CompleteMultipartTwoHundredWithError) {
    const std::string xml =
        "   \n<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InternalError</Code>"
        "<Message>We encountered an internal error. Please try again.</Message>"
        "<RequestId>656c76696e6727732072657175657374</RequestId>"
        "<HostId>Uuag1LuByRx9e6j5Onimru9pO4ZVKnJ2Qz7/C1NPcfTWAtRPfTaOFg==</HostId></Error>";
    complete_result res;
    res.etag = "kept";
    s3_error_info err;
    diagnostics diag;
    const auto ec = parse_complete_multipart(xml, res, err, diag);
    EXPECT_EQ(ec, make_error_code(s3_errc::internal_error));
    EXPECT_TRUE(is_retryable(ec));
    EXPECT_EQ(err.http_status, 200u);
    EXPECT_EQ(err.code, "InternalError");
    EXPECT_EQ(err.request_id, "656c76696e6727732072657175657374");
    EXPECT_EQ(res.etag, "kept");
    EXPECT_TRUE(contains(diag.message, "CompleteMultipartUpload failed: HTTP 200 InternalError"))
        << diag.message;

    const auto fatal = parse_complete_multipart(
        "<Error><Code>InvalidPart</Code><Message>One or more of the specified parts could "
        "not be found.</Message><UploadId>u1</UploadId><PartNumber>2</PartNumber>"
        "<ETag>\"abc\"</ETag></Error>",
        res, err, diag);
    EXPECT_EQ(fatal, make_error_code(s3_errc::invalid_part));
    EXPECT_TRUE(is_fatal(fatal));

    const auto slow =
        parse_complete_multipart("<Error><Code>SlowDown</Code></Error>", res, err, diag);
    EXPECT_EQ(slow, make_error_code(s3_errc::slow_down));
}

TEST(S3Replies, CompleteMultipartMalformed) {
    complete_result res;
    s3_error_info err;
    diagnostics diag;
    EXPECT_EQ(parse_complete_multipart("", res, err, diag),
              make_error_code(s3_errc::malformed_response));
    EXPECT_EQ(parse_complete_multipart("     ", res, err, diag),
              make_error_code(s3_errc::malformed_response));
    EXPECT_EQ(parse_complete_multipart(
                  "<CompleteMultipartUploadResult><Key>k</Key></CompleteMultipartUploadResult>",
                  res, err, diag),
              make_error_code(s3_errc::malformed_response));
    EXPECT_TRUE(contains(diag.message, "ETag")) << diag.message;
    EXPECT_EQ(parse_complete_multipart("<CompleteMultipartUploadResult><ETag>\"x\"</ETag>", res,
                                       err, diag),
              make_error_code(s3_errc::malformed_response));
    EXPECT_TRUE(contains(diag.message, "not XML")) << diag.message;
}

TEST(S3Replies, CompleteMultipartWithAnEmptyETagAsCephSendsIt) {
    complete_result res;
    s3_error_info err;
    diagnostics diag;
    EXPECT_FALSE(parse_complete_multipart(
        "<CompleteMultipartUploadResult><Location>h/b/k</Location><Bucket>b</Bucket>"
        "<Key>k</Key><ETag></ETag></CompleteMultipartUploadResult>",
        res, err, diag))
        << diag.message;
    EXPECT_EQ(res.key, "k");
    EXPECT_TRUE(res.etag.empty());
}

TEST(S3Replies, ListMultipartUploads) {
    const char* xml =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<ListMultipartUploadsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<Bucket>b-1</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>"
        "<NextKeyMarker>db%2Fk+2</NextKeyMarker><NextUploadIdMarker>id-2</NextUploadIdMarker>"
        "<EncodingType>url</EncodingType><MaxUploads>2</MaxUploads>"
        "<IsTruncated>true</IsTruncated>"
        "<Upload><Key>db%2Fk+1</Key><UploadId>id-1</UploadId>"
        "<Initiated>2026-12-06T09:00:00.000Z</Initiated><StorageClass>STANDARD</StorageClass>"
        "</Upload>"
        "<Upload><Key>db%2Fk+2</Key><UploadId>id-2</UploadId>"
        "<Initiated>2026-12-06T09:30:00.000Z</Initiated></Upload>"
        "<CommonPrefixes><Prefix>db%2Fx%2F</Prefix></CommonPrefixes>"
        "</ListMultipartUploadsResult>";
    list_uploads_result res;
    diagnostics diag;
    ASSERT_FALSE(parse_list_multipart_uploads(xml, res, diag)) << diag.message;
    ASSERT_EQ(res.uploads.size(), 2u);
    EXPECT_EQ(res.uploads[0].key, "db/k 1");
    EXPECT_EQ(res.uploads[0].upload_id, "id-1");
    EXPECT_EQ(res.uploads[0].initiated, "2026-12-06T09:00:00.000Z");
    EXPECT_EQ(res.uploads[1].key, "db/k 2");
    EXPECT_TRUE(res.is_truncated);
    EXPECT_EQ(res.next_key_marker, "db/k 2");
    EXPECT_EQ(res.next_upload_id_marker, "id-2");
    EXPECT_EQ(res.common_prefixes, std::vector<std::string>{"db/x/"});
    // The markers feed the next request.
    EXPECT_TRUE(contains(
        list_multipart_uploads(aws(), "b-1", "db/", res.next_key_marker, res.next_upload_id_marker)
            .target,
        "key-marker=db%2Fk%202&prefix=db%2F&upload-id-marker=id-2"));

    std::vector<upload_info> uploads;
    ASSERT_FALSE(parse_list_multipart_uploads(xml, uploads, diag));
    ASSERT_EQ(uploads.size(), 2u);
    EXPECT_EQ(uploads[1].upload_id, "id-2");

    ASSERT_FALSE(
        parse_list_multipart_uploads("<ListMultipartUploadsResult><IsTruncated>false</IsTruncated>"
                                     "</ListMultipartUploadsResult>",
                                     uploads, diag));
    EXPECT_TRUE(uploads.empty());

    EXPECT_EQ(
        parse_list_multipart_uploads("<ListMultipartUploadsResult><Upload><Key>k</Key></Upload>"
                                     "</ListMultipartUploadsResult>",
                                     res, diag),
        make_error_code(s3_errc::malformed_response));
    EXPECT_TRUE(contains(diag.message, "UploadId"));
    EXPECT_EQ(
        parse_list_multipart_uploads("<ListMultipartUploadsResult><IsTruncated>true</IsTruncated>"
                                     "</ListMultipartUploadsResult>",
                                     res, diag),
        make_error_code(s3_errc::malformed_response));
    EXPECT_EQ(parse_list_multipart_uploads("<ListBucketResult/>", res, diag),
              make_error_code(s3_errc::malformed_response));
}

// ---------------------------------------------------------------------------------------------
// Hashes (expected values from Python's hashlib and base64)

TEST(S3Hashes, Md5) {
    EXPECT_EQ(md5_hex(""), "d41d8cd98f00b204e9800998ecf8427e");
    EXPECT_EQ(md5_base64(""), "1B2M2Y8AsgTpgAmY7PhCfg==");
    EXPECT_EQ(md5_hex("hello world"), "5eb63bbbe01eeed093cb22bb8f5acdc3");
    EXPECT_EQ(md5_base64("hello world"), "XrY7u+Ae7tCTyyK7j1rNww==");
    EXPECT_EQ(md5_hex("penne"), "5ecaa80473d2202edb3b0a4674093de3");
    EXPECT_EQ(md5_base64("penne"), "XsqoBHPSIC7bOwpGdAk94w==");
    const auto d = md5("hello world");
    EXPECT_EQ(d[0], 0x5e);
    EXPECT_EQ(d[15], 0xc3);
}

TEST(S3Hashes, Base64) {
    const unsigned char three[] = {0x00, 0xff, 0x10};
    EXPECT_EQ(to_base64(three), "AP8Q");
    const unsigned char two[] = {'a', 'b'};
    EXPECT_EQ(to_base64(two), "YWI=");
    const unsigned char four[] = {'a', 'b', 'c', 'd'};
    EXPECT_EQ(to_base64(four), "YWJjZA==");
    EXPECT_EQ(to_base64(std::span<const unsigned char>{}), "");
}

TEST(S3Hashes, MultipartEtag) {
    // Parts "a"*10, "b"*7, "c".
    const std::vector<std::string> parts = {md5_hex(std::string(10, 'a')),
                                            md5_hex(std::string(7, 'b')), md5_hex("c")};
    EXPECT_EQ(parts[0], "e09c80c42fda55f9d992e59ca6b3307d");
    EXPECT_EQ(parts[1], "e1faffe9c3c801f2f8c3fbe7cb032cb2");
    EXPECT_EQ(parts[2], "4a8a08f09d37b73795649038408b5f33");
    EXPECT_EQ(multipart_etag(parts), "\"8ee05f6ade6cd294ac522f259dd99dfc-3\"");
    const std::vector<std::string> one = {"5EB63BBBE01EEED093CB22BB8F5ACDC3"};
    EXPECT_EQ(multipart_etag(one), "\"241d8a27c836427bd7f04461b60e7359-1\"") << "any hex case";

    EXPECT_EQ(multipart_etag({}), "");
    const std::vector<std::string> short_hex = {"5eb63bbbe01eeed093cb22bb8f5acdc"};
    EXPECT_EQ(multipart_etag(short_hex), "");
    const std::vector<std::string> quoted = {"\"5eb63bbbe01eeed093cb22bb8f5acdc3\""};
    EXPECT_EQ(multipart_etag(quoted), "");
    const std::vector<std::string> not_hex = {"5eb63bbbe01eeed093cb22bb8f5acdcg"};
    EXPECT_EQ(multipart_etag(not_hex), "");
}

}  // namespace
}  // namespace penne::s3
