#pragma once
// AWS Signature Version 4, sans-io: strings in, signatures out. The S3 client (adapters/s3)
// builds a request, asks sigv4_signer for the headers (Authorization variant) or for a
// presigned target (query variant), and sends it with Beast; nothing here touches a socket,
// a clock or the environment. The caller passes the credentials and the time in, so the same
// request signed twice with the same inputs gives the same bytes (and tests can pin them).
//
// Inputs are the request as it goes on the wire: the method, the origin-form target
// (`/path?query`, already percent-encoded the way it will be sent — build S3 keys with
// uri_encode_path), the header fields and either the body or its precomputed hash.
//
// Rules, per the AWS SigV4 test suite and the S3 API reference:
// - Canonical URI: generic services (sigv4_options defaults) normalize the path (remove `.`
//   and `..` segments, collapse repeated slashes) and encode the wire path once more
//   ("double encoding"). S3 (sigv4_options::s3) does neither: each segment is decoded and
//   encoded exactly once, so a correctly encoded path signs as itself.
// - Canonical query: every parameter decoded, then encoded with the RFC 3986 unreserved set
//   (`+` is a literal plus, never a space), sorted by encoded name then value; a parameter
//   without `=` signs as `name=`.
// - Canonical headers: names lowercased, values trimmed with inner runs of spaces and tabs
//   collapsed, repeated fields joined with ',' in their original order. Hop-by-hop headers and
//   headers that proxies rewrite (connection, expect, keep-alive, proxy-*, te, trailer,
//   transfer-encoding, upgrade, user-agent, x-amzn-trace-id) are not signed. The signer owns
//   authorization, x-amz-date and x-amz-security-token: copies already on the request (from
//   an earlier attempt) are ignored and replaced by the returned values.
// - Payload hash: an `x-amz-content-sha256` field on the request wins (S3 signs exactly that
//   value, which is how aws-chunked uploads say STREAMING-…); else request.payload_sha256;
//   else UNSIGNED-PAYLOAD when the options ask for it; else the hex SHA-256 of the payload.
//
// Thread safety: sigv4_signer is safe to use from any number of threads at once (its only
// mutable state is the signing-key cache, guarded by a mutex held for a few comparisons).
// The free functions are pure. Nothing blocks on I/O, so there is nothing to cancel.
//
// Secrets: the secret access key never leaves the signer; to_string/operator<< of credentials
// redact the secret and the session token, and error diagnostics never quote them. The
// canonical request returned for debugging contains header values, including a session token
// when one is signed: do not log it in production.
//
// Lifetimes: sigv4_request holds views; they must stay valid for the duration of the call
// only. Results own their strings.

#include <penne/error.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace penne::http {

// ---------------------------------------------------------------------------------------------
// Errors. All are caller mistakes or bad configuration: none is retryable.

enum class sigv4_errc {
    missing_host = 1,  // the request has no Host field
    invalid_method,    // empty method or a method that is not an HTTP token
    invalid_target,  // the target is not origin-form (`/…`), or holds a fragment or control bytes
    invalid_header,  // a field name that is not a token, or a value with CR, LF or NUL
    missing_credentials,  // empty access key id or secret access key
    invalid_credentials,  // an access key id or session token with characters that cannot be sent
    invalid_scope,        // empty region or service, or one holding '/', spaces or control bytes
    invalid_time,         // a signing time outside the years 1970..9999
    invalid_expiry,       // presign: expiry outside 1 s .. 7 days (604800 s)
    reserved_query_parameter,  // presign: the target already carries an X-Amz-* signing parameter
};

const boost::system::error_category& sigv4_category() noexcept;

inline error_code make_error_code(sigv4_errc e) noexcept {
    return {static_cast<int>(e), sigv4_category()};
}

// ---------------------------------------------------------------------------------------------
// Credentials. A plain value; the credentials chain (adapters/s3) refreshes it and hands the
// current one to each signing call.

struct credentials {
    std::string access_key_id;
    std::string secret_access_key;
    std::string session_token;  // empty for long-term keys
};

// "credentials{access_key_id=AKID…, secret_access_key=<redacted>, session_token=<redacted>}".
// The access key id is not a secret (it appears in every Authorization header).
std::string to_string(const credentials& c);
std::ostream& operator<<(std::ostream& os, const credentials& c);
// GoogleTest prints values through this instead of dumping their bytes (which would show a
// short secret stored inline in std::string).
void PrintTo(const credentials& c, std::ostream* os);

// ---------------------------------------------------------------------------------------------
// Request and results.

struct header_view {
    std::string_view name;
    std::string_view value;
};

struct header_field {
    std::string name;
    std::string value;
    friend bool operator==(const header_field&, const header_field&) = default;
};

struct sigv4_request {
    std::string_view method;               // "GET", "PUT", …
    std::string_view target;               // origin-form, as sent: "/bucket/key%20x?uploads"
    std::span<const header_view> headers;  // must include Host
    std::string_view payload;              // hashed when no hash is given
    std::string_view payload_sha256;       // optional: lowercase hex SHA-256 of the payload
};

struct sigv4_options {
    std::string region;   // "us-east-1"
    std::string service;  // "s3"
    // Remove dot segments and empty segments from the path before signing. AWS's generic
    // services do; S3 does not.
    bool normalize_path = true;
    // Encode the wire path once more for the canonical URI. Every service but S3 does.
    bool double_encode_path = true;
    // Authorization variant: add (and sign) x-amz-content-sha256 when the request lacks it.
    // S3 requires it on every request.
    bool content_sha256_header = false;
    // Authorization variant: sign UNSIGNED-PAYLOAD instead of the body hash. Only for
    // requests that travel over TLS, where the transport already protects the body; the
    // caller decides, never the signer.
    bool unsigned_payload = false;
    // Query variant: sign UNSIGNED-PAYLOAD (S3 presigned URLs do: the body is not known when
    // the URL is made).
    bool presign_unsigned_payload = false;
    // Leave the session token out of the signature and only attach it afterwards (a few
    // services, such as IoT, want this). S3 signs the token.
    bool omit_session_token = false;

    // S3's profile: no normalization, single encoding, x-amz-content-sha256 always present,
    // presigned URLs with UNSIGNED-PAYLOAD.
    static sigv4_options s3(std::string region);
};

// Authorization variant. `headers` are the fields to set on the request, replacing any field
// of the same name: x-amz-date, x-amz-security-token (with a session token),
// x-amz-content-sha256 (when added) and authorization.
struct sigv4_signed_headers {
    std::vector<header_field> headers;
    std::string authorization;
    std::string signature;          // lowercase hex
    std::string canonical_request;  // for debugging a SignatureDoesNotMatch; see "Secrets"
    std::string string_to_sign;
};

// Query (presigned URL) variant. `target` is the request target with the X-Amz-* parameters
// appended after the caller's own query, X-Amz-Signature last; the path and the caller's
// parameters are kept exactly as given.
struct sigv4_presigned {
    std::string target;
    std::string signature;
    std::string canonical_request;
    std::string string_to_sign;
};

inline constexpr std::string_view sigv4_algorithm = "AWS4-HMAC-SHA256";
inline constexpr std::string_view unsigned_payload_hash = "UNSIGNED-PAYLOAD";
inline constexpr std::string_view empty_payload_sha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
inline constexpr std::chrono::seconds max_presign_expiry{604800};

using signing_key = std::array<unsigned char, 32>;

// ---------------------------------------------------------------------------------------------
// Signing-key cache: the key depends on (secret, date, region, service) only, so one
// derivation (four HMACs) serves a whole day of requests. Bounded, least-recently-used
// eviction, safe to share between threads. The secret is kept only to recognise a rotated key
// under the same scope, and is wiped when its entry goes.

class signing_key_cache {
public:
    explicit signing_key_cache(std::size_t capacity = 8);
    ~signing_key_cache();
    signing_key_cache(const signing_key_cache&) = delete;
    signing_key_cache& operator=(const signing_key_cache&) = delete;

    // `date` is YYYYMMDD.
    signing_key get(std::string_view secret, std::string_view date, std::string_view region,
                    std::string_view service);

    std::uint64_t hits() const;
    std::uint64_t misses() const;
    std::size_t size() const;

private:
    struct entry {
        std::string secret;
        std::string date;
        std::string region;
        std::string service;
        signing_key key{};
        std::uint64_t last_used = 0;
    };
    static void wipe(entry& e) noexcept;

    mutable std::mutex mutex_;
    std::vector<entry> entries_;
    std::size_t capacity_;
    std::uint64_t clock_ = 0;
    std::uint64_t hits_ = 0;
    std::uint64_t misses_ = 0;
};

// ---------------------------------------------------------------------------------------------
// The signer.

class sigv4_signer {
public:
    explicit sigv4_signer(sigv4_options options);

    // Authorization-header variant. On error `out` is left unspecified and `diag` says what
    // is wrong (never quoting a secret).
    error_code sign(const sigv4_request& request, const credentials& creds,
                    std::chrono::system_clock::time_point now, sigv4_signed_headers& out,
                    diagnostics& diag) const;

    // Query-string variant: a URL valid for `expires` from `now`.
    error_code presign(const sigv4_request& request, const credentials& creds,
                       std::chrono::system_clock::time_point now, std::chrono::seconds expires,
                       sigv4_presigned& out, diagnostics& diag) const;

    const sigv4_options& options() const noexcept { return options_; }
    const signing_key_cache& cache() const noexcept { return cache_; }

private:
    sigv4_options options_;
    mutable signing_key_cache cache_;
};

// ---------------------------------------------------------------------------------------------
// Building blocks, exposed for the S3 client and for tests. All pure.

// Percent-encodes every byte outside A-Z a-z 0-9 - . _ ~ as %XX (uppercase); '/' is kept
// unless encode_slash.
std::string uri_encode(std::string_view raw, bool encode_slash = true);
// Encodes a raw path (an S3 key with its leading '/') for the wire: uri_encode keeping '/'.
inline std::string uri_encode_path(std::string_view raw_path) {
    return uri_encode(raw_path, false);
}
// Decodes %XX escapes; a '%' not followed by two hex digits stays literal, '+' stays '+'.
std::string uri_decode(std::string_view encoded);

// The canonical URI of a wire path (no query).
std::string canonical_uri(std::string_view path, bool normalize, bool double_encode);
// The canonical query string of a raw (wire) query, without the leading '?'.
std::string canonical_query_string(std::string_view query);

// "20150830T123600Z" for `t` (UTC, seconds truncated); empty when outside 1970..9999.
std::string format_amz_date(std::chrono::system_clock::time_point t);

// An RFC 9110 token (a method or a header field name): one or more of A-Z a-z 0-9 and
// !#$%&'*+-.^_`|~.
bool is_http_token(std::string_view s) noexcept;

std::string sha256_hex(std::string_view data);
std::array<unsigned char, 32> hmac_sha256(std::span<const unsigned char> key,
                                          std::string_view data);
signing_key derive_signing_key(std::string_view secret, std::string_view date,
                               std::string_view region, std::string_view service);
std::string to_hex(std::span<const unsigned char> bytes);

}  // namespace penne::http

template <>
struct boost::system::is_error_code_enum<penne::http::sigv4_errc> : std::true_type {};
