#pragma once
// Typed S3 errors, sans-io. The S3 client hands each failed reply (status and body) to
// parse_error_response and gets back an s3_errc as an error_code; the engine's retry policy
// asks penne::is_retryable(ec), the metrics ask retry_reason(ec), and the operator reads
// describe(info, …), which says what to check. Nothing here touches a socket, a clock or the
// environment: times are parsed from the strings the caller passes in.
//
// Retry split (s3_category().retryable):
// - retryable: slow_down, internal_error, service_unavailable, request_timeout,
//   request_time_too_skewed (after the client corrects its clock offset from server_time or
//   the Date header), expired_token (after the credentials are refreshed), conflict
//   (OperationAborted, ConditionalRequestConflict), other_server_error.
// - fatal: everything else: authentication and authorization, missing buckets, keys and
//   uploads, invalid parts, digests, names, arguments, wrong region, KMS, not_implemented,
//   other 4xx and malformed_response.
//
// malformed_response is fatal by design: a reply whose status is a 5xx is never
// malformed_response, because parse_error_response classifies a 5xx whose body is not S3's
// error XML (a proxy's HTML page, an empty body) by its status, which makes it retryable
// (internal_error, service_unavailable or other_server_error). malformed_response is left for
// replies that claim success (2xx) or a non-error status but carry a body S3 never sends:
// something that is not S3 answers, and retrying will not change that.
//
// Thread safety: the category is an immutable singleton; the functions are pure.
// Secrets: s3_error_info holds only the fields listed below (never S3's CanonicalRequest or
// StringToSign, which can quote a session token), and describe() never quotes credentials.

#include <penne/error.hpp>

#include <chrono>
#include <string>
#include <string_view>

namespace penne::s3 {

enum class s3_errc {
    slow_down = 1,             // SlowDown, Throttling, ThrottlingException, RequestLimitExceeded,
                               // TooManyRequests, KMS.ThrottlingException, HTTP 429
    internal_error,            // InternalError, HTTP 500
    service_unavailable,       // ServiceUnavailable, HTTP 503 without a code
    request_timeout,           // RequestTimeout (400), HTTP 408
    request_time_too_skewed,   // RequestTimeTooSkewed, RequestExpired: the local clock is off
    access_denied,             // AccessDenied, AllAccessDisabled, AccountProblem, HTTP 401/403
    signature_does_not_match,  // SignatureDoesNotMatch
    invalid_access_key_id,     // InvalidAccessKeyId, InvalidToken (a malformed session token)
    expired_token,             // ExpiredToken, ExpiredTokenException, TokenRefreshRequired
    no_such_bucket,            // NoSuchBucket (or 404 with not_found_means::bucket)
    no_such_key,               // NoSuchKey (or 404 with not_found_means::key)
    no_such_upload,            // NoSuchUpload (or 404 with not_found_means::upload)
    invalid_part,              // InvalidPart
    invalid_part_order,        // InvalidPartOrder
    entity_too_small,          // EntityTooSmall
    entity_too_large,          // EntityTooLarge
    bad_digest,                // BadDigest, XAmzContentSHA256Mismatch
    invalid_digest,            // InvalidDigest
    invalid_bucket_name,       // InvalidBucketName, or rejected by validate_bucket_name
    invalid_request,           // InvalidRequest, MalformedXML, HTTP 400 without a known code
    invalid_argument,          // InvalidArgument
    permanent_redirect,        // PermanentRedirect, TemporaryRedirect, 301/307,
                               // AuthorizationHeaderMalformed naming the right <Region>
    precondition_failed,       // PreconditionFailed, HTTP 412
    kms_error,                 // KMS.* (except KMS.ThrottlingException)
    other_client_error,        // any other 4xx
    other_server_error,        // any other 5xx; an unknown code in a 2xx (late failure)
    malformed_response,        // a non-5xx reply that is not what S3 sends (see above)
    // Added beyond the first list:
    conflict,                     // OperationAborted, ConditionalRequestConflict, HTTP 409
    bucket_already_exists,        // BucketAlreadyExists (another account owns the name)
    bucket_already_owned_by_you,  // BucketAlreadyOwnedByYou (CreateBucket on our own bucket)
    not_implemented,              // NotImplemented, HTTP 501: the server lacks the feature
    invalid_range,                // InvalidRange, HTTP 416
    invalid_key,                  // rejected by validate_key (never sent by S3)
};

const boost::system::error_category& s3_category() noexcept;

inline error_code make_error_code(s3_errc e) noexcept {
    return {static_cast<int>(e), s3_category()};
}

// What S3 said about a failed request, for logs, /status and describe(). Every field is
// S3's own text (or empty when the reply did not carry it).
struct s3_error_info {
    unsigned http_status = 0;
    std::string code;         // <Code>, e.g. "NoSuchBucket"; empty for a body-less reply
    std::string message;      // <Message>
    std::string request_id;   // <RequestId>, else the x-amz-request-id hint
    std::string host_id;      // <HostId>, else the x-amz-id-2 hint
    std::string resource;     // <Resource>
    std::string region;       // <Region>, else the x-amz-bucket-region hint
    std::string server_time;  // <ServerTime> (RequestTimeTooSkewed), ISO 8601; parse_iso8601
    // Added beyond the first list:
    std::string endpoint;  // <Endpoint> (PermanentRedirect/TemporaryRedirect)
    s3_errc kind{};        // what parse_error_response returned; describe() reads it
};

// What a 404 without a body (a HEAD reply) means for the request that got it.
enum class not_found_means { key, bucket, upload };

// Facts from the reply's headers that complete a body-less or terse error. The views need to
// stay valid for the call only.
struct response_hints {
    not_found_means not_found = not_found_means::key;
    std::string_view bucket_region;  // x-amz-bucket-region
    std::string_view request_id;     // x-amz-request-id
    std::string_view host_id;        // x-amz-id-2
};

// Classifies a failed reply. `body` is S3's `<Error>` document (parsed with pugixml) or
// anything else: an empty body (HEAD) or a body that is not an S3 error document is
// classified from the status alone. A 200 whose body is an `<Error>` document (how
// CompleteMultipartUpload fails) is classified from its code. `out` is overwritten.
// Returns the s3_errc; never an empty error_code.
error_code parse_error_response(unsigned http_status, std::string_view body, s3_error_info& out);
error_code parse_error_response(unsigned http_status, std::string_view body, s3_error_info& out,
                                const response_hints& hints);

// The s3_errc for an error code string and status, as parse_error_response decides it.
s3_errc classify(unsigned http_status, std::string_view code, bool has_region = false,
                 not_found_means not_found = not_found_means::key) noexcept;

// One line for diagnostics that says what went wrong and what to check, e.g.
// `PutObject on bucket "logs" failed: HTTP 403 AccessDenied "Access Denied": the credentials
// lack s3:PutObject on bucket "logs"; check the IAM policy, the bucket policy … (request id
// 4F2…)`. `operation` is S3's operation name ("PutObject", "UploadPart", "HeadBucket"…). S3's
// message is quoted sanitized (control bytes dropped, at most 300 bytes).
std::string describe(const s3_error_info& info, std::string_view operation,
                     std::string_view bucket);

// A short, stable label for the retries-by-reason metric: "throttled", "server_error",
// "timeout", "clock_skew", "expired_credentials", "network" (errors from other categories:
// system, Asio, SSL, Beast, and penne::errc::timeout, our own deadline on a network
// operation) or "other" (anything else, including an empty error_code).
std::string_view retry_reason(const error_code& ec) noexcept;

// HTTP-date (RFC 7231 §7.1.1.1): IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT", and the
// obsolete RFC 850 ("Sunday, 06-Nov-94 08:49:37 GMT", years 70-99 → 19xx, 00-69 → 20xx) and
// asctime ("Sun Nov  6 08:49:37 1994") forms recipients must accept. The day name must be a
// valid name but is not checked against the date. Returns false (leaving `out` unchanged) on
// anything else, including out-of-range fields.
bool parse_http_date(std::string_view s, std::chrono::system_clock::time_point& out);

// ISO 8601 / RFC 3339 date-time as AWS writes it: "2026-12-06T10:00:00Z", optional fraction
// (".5", ".123456789"; digits past nanoseconds are ignored), "Z" or a "+hh:mm"/"-hh:mm"
// offset; 't' and 'z' accepted in lowercase. Years 1700..2261 (what system_clock holds).
// Returns false (leaving `out` unchanged) otherwise.
bool parse_iso8601(std::string_view s, std::chrono::system_clock::time_point& out);

}  // namespace penne::s3

template <>
struct boost::system::is_error_code_enum<penne::s3::s3_errc> : std::true_type {};
