#pragma once
// The S3 client (DESIGN §7): the operations penne and its `penne s3` tools need, signed with
// SigV4 and sent over the Beast client of penne::http. Requests are built by requests.hpp
// (sans-io), errors parsed by error.hpp, credentials come from a credentials_chain.
//
// Every operation retries on its own what a retry can fix: network errors, timeouts,
// throttling (SlowDown, 503) and 5xx with capped exponential backoff and full jitter
// (client_config::retry); RequestTimeTooSkewed by correcting the signing clock from the
// server's Date header; ExpiredToken by refreshing the credentials once. What a retry
// cannot fix (AccessDenied, SignatureDoesNotMatch, InvalidAccessKeyId, NoSuchBucket, a
// wrong region) fails at once with diagnostics that say what to check. When the retries run
// out the last retryable error is returned, so the caller (the engine) can keep trying
// with its own, longer policy.
//
// upload() sends a body as one PutObject below multipart_threshold and as a multipart
// upload above it: parts of part_size bytes (the last one smaller) sent part_concurrency at
// a time, each with its Content-MD5, then CompleteMultipartUpload. A failed or cancelled
// multipart upload is aborted, so no parts are left behind to be billed.
//
// Payloads are always signed (x-amz-content-sha256 = the body's SHA-256) unless
// unsigned_payload is set, which is honoured only over TLS. Bodies are sent from the
// caller's buffer without copies.
//
// Thread safety: all operations may run concurrently from any coroutines and threads.
// Cancellation: an operation honours its coroutine's cancellation slot; a cancelled upload
// aborts its multipart upload before completing with operation_aborted.
// Lifetimes: the client must outlive its operations; views passed in must stay valid
// until the operation completes; the credentials chain must outlive the client.

#include <penne/error.hpp>
#include <penne/http/client.hpp>
#include <penne/metrics.hpp>
#include <penne/retry.hpp>
#include <penne/s3/credentials.hpp>
#include <penne/s3/error.hpp>
#include <penne/s3/requests.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace penne::s3 {

struct client_config {
    endpoint ep;
    http::client_options http;
    retry_policy retry{std::chrono::milliseconds{100}, std::chrono::milliseconds{5'000}, 8};
    // Sign UNSIGNED-PAYLOAD instead of the body hash (TLS endpoints only; ignored otherwise).
    bool unsigned_payload = false;
    std::size_t multipart_threshold = 64 * 1024 * 1024;
    std::size_t part_size = 16 * 1024 * 1024;  // 5 MiB .. 5 GiB
    std::size_t part_concurrency = 4;
    // The clock requests are signed with (before the skew correction); system_clock when
    // empty. Injected so tests can run with a clock that is off.
    clock_function clock;
};

// Checks the multipart sizes against S3's limits (parts of 5 MiB to 5 GiB, at most 10,000
// parts for objects up to threshold * …) and the endpoint; invalid_config with the key.
error_code validate(const client_config& cfg, diagnostics& diag);

struct put_result {
    std::string etag;
    std::uint32_t parts = 0;  // 0 for a single PutObject
};

struct object_head {
    std::uint64_t size = 0;
    std::string etag;
    std::string content_type;
    std::string content_encoding;
    std::vector<http::header_field> metadata;  // x-amz-meta-* without the prefix
};

class client {
public:
    using executor_type = boost::asio::any_io_executor;

    client(executor_type ex, client_config cfg, std::shared_ptr<credentials_chain> creds);
    ~client();
    client(const client&) = delete;
    client& operator=(const client&) = delete;

    boost::asio::awaitable<error_code> upload(std::string_view bucket, std::string_view key,
                                              std::string_view body, const put_options& opts,
                                              put_result& out, diagnostics& diag);
    boost::asio::awaitable<error_code> put_object(std::string_view bucket, std::string_view key,
                                                  std::string_view body, const put_options& opts,
                                                  put_result& out, diagnostics& diag);
    boost::asio::awaitable<error_code> multipart_upload(std::string_view bucket,
                                                        std::string_view key, std::string_view body,
                                                        const put_options& opts, put_result& out,
                                                        diagnostics& diag);

    boost::asio::awaitable<error_code> head_bucket(std::string_view bucket, diagnostics& diag);
    boost::asio::awaitable<error_code> create_bucket(std::string_view bucket, diagnostics& diag);
    boost::asio::awaitable<error_code> head_object(std::string_view bucket, std::string_view key,
                                                   object_head& out, diagnostics& diag);
    boost::asio::awaitable<error_code> get_object(std::string_view bucket, std::string_view key,
                                                  std::string& body, diagnostics& diag);
    boost::asio::awaitable<error_code> delete_object(std::string_view bucket, std::string_view key,
                                                     diagnostics& diag);
    // Every object under `prefix`, following continuation tokens.
    boost::asio::awaitable<error_code> list_objects(std::string_view bucket,
                                                    std::string_view prefix,
                                                    std::vector<object_info>& out,
                                                    diagnostics& diag);
    // Multipart uploads in progress under `prefix` (all pages).
    boost::asio::awaitable<error_code> list_multipart_uploads(std::string_view bucket,
                                                              std::string_view prefix,
                                                              std::vector<upload_info>& out,
                                                              diagnostics& diag);
    boost::asio::awaitable<error_code> abort_multipart_upload(std::string_view bucket,
                                                              std::string_view key,
                                                              std::string_view upload_id,
                                                              diagnostics& diag);
    // A presigned URL for `method` ("GET", "PUT") valid for `expires` (1 s .. 7 days).
    boost::asio::awaitable<error_code> presign(std::string_view method, std::string_view bucket,
                                               std::string_view key, std::chrono::seconds expires,
                                               std::string& url, diagnostics& diag);

    // The correction applied to the local clock when signing (server time − local time),
    // learnt from RequestTimeTooSkewed answers.
    std::chrono::milliseconds clock_offset() const noexcept;
    // Retries performed since construction, by retry_reason (metrics read these).
    struct retry_counts {
        std::uint64_t throttled = 0, server_error = 0, network = 0, timeout = 0, clock_skew = 0,
                      expired_credentials = 0;
    };
    retry_counts retries() const noexcept;
    // Exports every request (one S3 operation, its internal retries included) to `reg`:
    //   penne_s3_requests_total{operation,outcome}: outcome "ok", "cancelled", "rejected"
    //     (an error a retry cannot fix), "retries_exhausted" (retryable, retries ran out);
    //   penne_s3_request_retries_total{operation,reason}: reason as in retry_counts
    //     ("throttled", "server_error", "network", "timeout", "clock_skew",
    //     "expired_credentials").
    // `operation` is the S3 API name (PutObject, UploadPart, …). Call once, before the
    // first operation; the registry must outlive the client.
    void set_metrics(metrics_registry& reg);

    const client_config& config() const noexcept;
    http::client& http() noexcept;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

// An http_fetcher (for the credential providers) over a Beast client.
http_fetcher make_fetcher(http::client& c);

}  // namespace penne::s3
