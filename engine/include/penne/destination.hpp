#pragma once
// Where sealed objects go (DESIGN §3, §7): S3, a local directory, or an embedder's own.
//
// Contract: put() completes without error only once the object is durable (a later crash
// of this process cannot lose it). Keys are deterministic, so put() must be idempotent:
// writing the same key again with the same bytes is a normal replay, not an error.
// Errors are classified by their category (is_retryable); the engine retries transient
// ones with backoff and stops the scope on fatal ones. put() may be called concurrently
// for different keys from different strands.

#include <penne/error.hpp>

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace penne {

struct sealed_object {
    std::string_view key;               // e.g. "penne/db/coll/2026/11/22/05/…jsonl.zst"
    std::string_view body;              // the complete object bytes
    std::string_view content_type;      // "application/x-ndjson"
    std::string_view content_encoding;  // "zstd", "gzip" or empty
    std::uint64_t event_count = 0;
};

class destination {
public:
    virtual ~destination() = default;
    virtual boost::asio::awaitable<error_code> put(const sealed_object& obj, diagnostics& diag) = 0;
    // Verifies the destination is usable (directory writable, bucket reachable).
    virtual boost::asio::awaitable<error_code> check(diagnostics& diag) = 0;
    virtual std::string describe() const = 0;
};

}  // namespace penne
