#pragma once
// The S3 destination (DESIGN §3, §7, §10): each sealed object is written to
// s3://<bucket>/<key> with the deterministic key the engine chose, through the S3 client
// (PutObject below the multipart threshold, a multipart upload above it). put() completes
// only after S3 confirmed the object (200 to PutObject or CompleteMultipartUpload), so an
// acknowledged upload is durable. Replays write the same key with the same bytes, which S3
// treats as an ordinary overwrite.
//
// Objects carry Content-Type and Content-Encoding matching the format and compression,
// the configured storage class, SSE and tags, and user metadata x-amz-meta-penne-events
// (event count) next to any configured metadata.
//
// check() proves the bucket reachable and writable before the pipeline starts: HeadBucket,
// then a PutObject of a small probe object "<prefix>.penne-write-check" and its deletion
// (a missing delete permission is tolerated; the probe is overwritten at each start). Each
// failure says what to fix: the endpoint, the credentials, the bucket name, the region or
// the bucket policy.
//
// Thread safety: put() may run concurrently from any strands (the S3 client is
// thread-safe). Cancellation: as the S3 client's (multipart uploads are aborted).
// Lifetime: the client must outlive the destination.

#include <penne/destination.hpp>
#include <penne/s3/client.hpp>
#include <penne/s3/requests.hpp>

#include <memory>
#include <string>

namespace penne::s3 {

struct destination_options {
    std::string bucket;
    // Prefix of the write-check probe (the engine's keys carry the output prefix already).
    std::string probe_prefix;
    put_options put;  // storage class, SSE, tags, metadata (content type/encoding per object)
};

class destination final : public penne::destination {
public:
    destination(std::shared_ptr<client> c, destination_options opts);

    boost::asio::awaitable<error_code> put(const sealed_object& obj, diagnostics& diag) override;
    boost::asio::awaitable<error_code> check(diagnostics& diag) override;
    std::string describe() const override;

    client& s3() noexcept { return *client_; }

private:
    std::shared_ptr<client> client_;
    destination_options opts_;
};

}  // namespace penne::s3
