#pragma once
// S3 requests and responses, sans-io: the endpoint (where and how to address a bucket), one
// builder per operation that returns the request as it goes on the wire (method, Host,
// origin-form target, operation headers), the parsers of S3's XML replies, and the MD5
// helpers for Content-MD5 and multipart ETags. The Asio client (client.hpp) signs each
// request with http::sigv4_signer, sends it, and feeds the reply back here; nothing in this
// file touches a socket, a clock or the environment.
//
// Encoding: bucket and key are raw strings. Keys go on the wire through
// http::uri_encode_path (every byte outside A-Z a-z 0-9 - . _ ~ / percent-encoded, so "a b+c"
// is "a%20b%2Bc"), query values through http::uri_encode; the signer (sigv4_options::s3)
// signs that path exactly as sent.
//
// Preconditions: builders do not validate. The caller checks the bucket name
// (validate_bucket_name), each key (validate_key) and the put options (validate) once, and
// part numbers are 1..10000; the signer still refuses header values with CR, LF or NUL, so a
// skipped check can fail a request but cannot inject a header.
//
// Thread safety: every function is pure and safe to call from any thread; results own their
// strings.

#include <penne/error.hpp>
#include <penne/http/sigv4.hpp>
#include <penne/s3/error.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace penne::s3 {

// ---------------------------------------------------------------------------------------------
// Endpoint and addressing.

enum class addressing {
    automatic,       // virtual-hosted, except where it cannot work (see use_path_style)
    path,            // https://host/bucket/key (MinIO, Ceph, s3rver, IP endpoints)
    virtual_hosted,  // https://bucket.host/key (AWS's default)
};

struct endpoint {
    bool tls = true;
    // Lowercase DNS name, IPv4 address, or IPv6 address in brackets ("[::1]"): the form that
    // goes in the Host header. connect_host() strips the brackets for the resolver.
    std::string host;
    std::uint16_t port = 443;
    std::string region;  // the SigV4 signing region
    addressing style = addressing::automatic;
};

// Parses `scheme://host[:port][/]`: scheme http or https (any case), host a DNS name, an
// IPv4 address or a bracketed IPv6 address; default ports 80 and 443. Rejects user info,
// paths, queries and fragments with a diagnostic that says why (never quoting anything after
// the host, where a secret might have been pasted). An empty `region` is taken from an AWS
// host name ("s3.eu-west-1.amazonaws.com" → eu-west-1, "s3.amazonaws.com" → us-east-1), and
// is "us-east-1" for any other host (what MinIO, Ceph and s3rver expect by default).
// virtual_hosted with an IP address host is rejected. Errors: penne::errc::invalid_config.
error_code parse_endpoint(std::string_view url, std::string region, addressing style, endpoint& out,
                          diagnostics& diag);

// "https://s3.<region>.amazonaws.com" ("….amazonaws.com.cn" for cn-* regions); us-east-1 when
// `region` is empty.
std::string default_endpoint(std::string_view region);

// True when requests for `bucket` go path-style. automatic chooses path style for IP
// literals, localhost (and *.localhost), bucket names that are not valid DNS labels
// (uppercase, underscores, …) and, over TLS, bucket names with a '.' (the endpoint's
// wildcard certificate covers one label only).
bool use_path_style(const endpoint& ep, std::string_view bucket);

// The host to resolve and connect to for `ep`, without IPv6 brackets.
std::string_view connect_host(const endpoint& ep) noexcept;

// Checks S3's naming rules for general purpose buckets: 3..63 bytes of a-z 0-9 . -, starting
// and ending with a letter or digit, no "..", not an IPv4 address, none of the reserved
// prefixes (xn--, sthree-, amzn-s3-demo-) or suffixes (-s3alias, --ol-s3, .mrap, --x-s3,
// --table-s3). Error: s3_errc::invalid_bucket_name, with the rule broken in `diag`.
error_code validate_bucket_name(std::string_view name, diagnostics& diag);

// Checks an object key: 1..1024 bytes of valid UTF-8 (no overlong forms, surrogates or code
// points past U+10FFFF), without control characters (U+0000..U+001F, U+007F), which XML 1.0
// list replies cannot carry. Error: s3_errc::invalid_key.
error_code validate_key(std::string_view key, diagnostics& diag);

// ---------------------------------------------------------------------------------------------
// Requests.

// One S3 request before signing. The HTTP layer adds Content-Length; the signer adds
// x-amz-date, x-amz-content-sha256, x-amz-security-token and Authorization.
struct request {
    std::string method;
    std::string host_header;  // host[:port] as sent; the port only when not the default
    std::string target;       // origin-form, percent-encoded: "/bucket/a%20key?uploadId=…"
    std::vector<http::header_field> headers;  // without Host and the signing headers
    // Added beyond the first list:
    std::string connect_host;  // what to resolve and connect to; also the TLS SNI and
                               // certificate name. No brackets, no port.
    std::uint16_t port = 0;
    bool tls = true;
    // The payload when the builder defines it (CreateBucket's location, the parts overload of
    // complete_multipart_upload); empty when the caller supplies it or there is none.
    std::string body;
};

enum class sse_mode {
    none,  // no header: the bucket's default encryption applies
    s3,    // SSE-S3: x-amz-server-side-encryption: AES256
    kms,   // SSE-KMS: aws:kms, with kms_key_id when given (else the account's aws/s3 key)
};

struct put_options {
    std::string content_type;      // Content-Type; omitted when empty
    std::string content_encoding;  // Content-Encoding ("gzip", "zstd"); omitted when empty
    std::string storage_class;     // x-amz-storage-class ("STANDARD_IA"); omitted when empty
    sse_mode sse = sse_mode::none;
    std::string kms_key_id;  // x-amz-server-side-encryption-aws-kms-key-id (sse == kms)
    std::vector<std::pair<std::string, std::string>> tags;      // x-amz-tagging, URL-encoded
    std::vector<std::pair<std::string, std::string>> metadata;  // x-amz-meta-<lowercased name>
    bool content_md5 = true;  // send Content-MD5 when the builder is given one
};

// Checks put options against S3's limits: header values in printable ASCII; storage class
// of A-Z 0-9 _; kms_key_id only with sse_mode::kms; at most 10 tags, keys 1..128 and values
// 0..256 characters of UTF-8 without control characters, no repeated key; metadata names
// HTTP tokens, unique ignoring case, values printable ASCII, names and values together at
// most 2 KiB. Error: penne::errc::invalid_config.
error_code validate(const put_options& opts, diagnostics& diag);

std::string_view to_string(sse_mode m) noexcept;  // "none", "s3" (AES256), "kms"

// PUT /key. Content-MD5 is sent when opts.content_md5 and body_md5_base64 is not empty.
request put_object(const endpoint& ep, std::string_view bucket, std::string_view key,
                   const put_options& opts, std::string_view body_md5_base64);

// POST /key?uploads, with the same object headers as put_object (never Content-MD5).
request create_multipart_upload(const endpoint& ep, std::string_view bucket, std::string_view key,
                                const put_options& opts);

// PUT /key?partNumber=N&uploadId=…; Content-MD5 when md5_base64 is not empty.
request upload_part(const endpoint& ep, std::string_view bucket, std::string_view key,
                    std::string_view upload_id, int part_number, std::string_view md5_base64);

struct completed_part {
    int number = 0;
    std::string etag;  // as UploadPart returned it, quotes included
};

// POST /key?uploadId=… with Content-Type application/xml; the caller sends
// complete_multipart_body(parts). The second overload puts that body in request::body.
request complete_multipart_upload(const endpoint& ep, std::string_view bucket, std::string_view key,
                                  std::string_view upload_id);
request complete_multipart_upload(const endpoint& ep, std::string_view bucket, std::string_view key,
                                  std::string_view upload_id,
                                  std::span<const completed_part> parts);

// <CompleteMultipartUpload> with one <Part> per entry, in the given order (S3 wants
// ascending part numbers), ETags XML-escaped ('"' → &quot;).
std::string complete_multipart_body(std::span<const completed_part> parts);

// DELETE /key?uploadId=…
request abort_multipart_upload(const endpoint& ep, std::string_view bucket, std::string_view key,
                               std::string_view upload_id);

// HEAD on the bucket.
request head_bucket(const endpoint& ep, std::string_view bucket);
// HEAD /key.
request head_object(const endpoint& ep, std::string_view bucket, std::string_view key);

// Inclusive byte range; `last` empty means to the end of the object.
struct byte_range {
    std::uint64_t first = 0;
    std::optional<std::uint64_t> last;
};
// GET /key, with "Range: bytes=first-[last]" when a range is given.
request get_object(const endpoint& ep, std::string_view bucket, std::string_view key,
                   std::optional<byte_range> range = std::nullopt);

// DELETE /key.
request delete_object(const endpoint& ep, std::string_view bucket, std::string_view key);

// GET on the bucket with list-type=2 and encoding-type=url (so any key survives XML);
// continuation-token, delimiter and prefix only when not empty, max-keys only when > 0.
request list_objects_v2(const endpoint& ep, std::string_view bucket, std::string_view prefix,
                        std::string_view continuation_token = {}, int max_keys = 0,
                        std::string_view delimiter = {});

// GET on the bucket with ?uploads and encoding-type=url; prefix, key-marker and
// upload-id-marker only when not empty (the markers page through a truncated listing).
request list_multipart_uploads(const endpoint& ep, std::string_view bucket, std::string_view prefix,
                               std::string_view key_marker = {},
                               std::string_view upload_id_marker = {});

// PUT on the bucket. For any region but us-east-1 (and an empty one) request::body holds a
// <CreateBucketConfiguration> naming it as LocationConstraint, with Content-Type
// application/xml.
request create_bucket(const endpoint& ep, std::string_view bucket, std::string_view region);

// ---------------------------------------------------------------------------------------------
// Responses. Each parser returns s3_errc::malformed_response, with `diag` saying what is
// wrong, for a body that is not XML or not the document the operation answers with.

struct object_info {
    std::string key;  // decoded when the reply says EncodingType url
    std::string etag;
    std::uint64_t size = 0;
    std::string last_modified;  // ISO 8601 as S3 wrote it; parse_iso8601
    std::string storage_class;
};

struct list_result {
    std::vector<object_info> contents;
    std::vector<std::string> common_prefixes;  // decoded like keys
    bool is_truncated = false;
    std::string next_continuation_token;  // set whenever is_truncated
};

// ListBucketResult. A truncated listing without a NextContinuationToken is malformed (paging
// could not go on).
error_code parse_list_objects_v2(std::string_view xml, list_result& out, diagnostics& diag);

// InitiateMultipartUploadResult's non-empty UploadId.
error_code parse_initiate_multipart(std::string_view xml, std::string& upload_id,
                                    diagnostics& diag);

struct complete_result {
    std::string location;
    std::string bucket;
    std::string key;
    std::string etag;  // "\"<hex>-<parts>\"" from S3
};

// A 200 reply to CompleteMultipartUpload. S3 may send 200 and then fail: when the body is an
// <Error> document, `err` is filled as by parse_error_response(200, …) and its code is
// returned (InternalError and SlowDown are retryable; InvalidPart is not). A
// CompleteMultipartUploadResult without an ETag is malformed. Leading whitespace (S3's
// keep-alive while it assembles the parts) is accepted.
error_code parse_complete_multipart(std::string_view xml, complete_result& out, s3_error_info& err,
                                    diagnostics& diag);

struct upload_info {
    std::string key;  // decoded when the reply says EncodingType url
    std::string upload_id;
    std::string initiated;  // ISO 8601; parse_iso8601
};

struct list_uploads_result {
    std::vector<upload_info> uploads;
    std::vector<std::string> common_prefixes;
    bool is_truncated = false;
    std::string next_key_marker;  // decoded like keys
    std::string next_upload_id_marker;
};

// ListMultipartUploadsResult. The vector overload keeps only the uploads (one page).
error_code parse_list_multipart_uploads(std::string_view xml, list_uploads_result& out,
                                        diagnostics& diag);
error_code parse_list_multipart_uploads(std::string_view xml, std::vector<upload_info>& out,
                                        diagnostics& diag);

// ---------------------------------------------------------------------------------------------
// Hashes.

using md5_digest = std::array<unsigned char, 16>;

md5_digest md5(std::string_view data);
std::string to_base64(std::span<const unsigned char> bytes);  // standard alphabet, padded
std::string md5_base64(std::string_view body);                // the Content-MD5 value
std::string md5_hex(std::string_view body);                   // lowercase

// The ETag S3 gives a multipart object: "\"" + hex MD5 of the concatenated binary part
// digests + "-" + part count + "\"". Empty when there is no part or an entry is not 32 hex
// digits.
std::string multipart_etag(std::span<const std::string> part_md5_hex);

}  // namespace penne::s3
