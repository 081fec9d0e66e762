#pragma once
// penne::hooks: what an embedder plugs into penne::pipeline besides its configuration —
// where log lines and metrics go, and its own implementations of the extension points.
// Everything is optional; a default-constructed hooks{} gives a pipeline built entirely
// from penne::config that logs nowhere and records no metrics.
//
// Extension points (each replaces the part of the configuration that names it):
// - dest:    any penne::destination (destination.hpp), e.g. a callback_destination or an
//            upload to the embedder's own store; replaces [destination] and [s3].
// - state:   any penne::state_store (state_store.hpp); replaces [state]. Leases
//            ([lease] enabled) need the Redis store and cannot be combined with it.
// - encoder: any penne::encoder_factory (encoder.hpp); replaces output.format. Objects are
//            still compressed as output.compression says unless the encoder reports
//            compresses_itself; keys end in its extension.
// - filter:  a filter_function (filter.hpp) called for each event before it is batched.
//
// Thread safety: the pipeline calls the log function, the extension objects and the filter
// from the strands of its scopes — concurrently when the io_context runs on several
// threads. Lifetimes: shared_ptr members are kept alive by the pipeline; `metrics` must
// outlive the pipeline. The pipeline never installs a global logger, registry or handler.

#include <penne/destination.hpp>
#include <penne/encoder.hpp>
#include <penne/filter.hpp>
#include <penne/pipeline_engine.hpp>
#include <penne/state_store.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace penne {

// Looks a variable up in an environment; nullopt when unset.
using environment_function = std::function<std::optional<std::string>(std::string_view)>;

struct hooks {
    // Log lines (already free of secrets), with their level. Empty: nothing is logged.
    log_function log;
    // Empty: the pipeline records no metrics. Set: it feeds the penne_* families of this
    // penne::pipeline_metrics (metrics.hpp), which the embedder creates on its own
    // metrics_registry and renders where it wants (e.g. its own /metrics endpoint).
    const pipeline_metrics* metrics = nullptr;
    // Null: none. Set: the adapters' own counters are registered here too — the S3
    // client's requests and retries (penne_s3_requests_total,
    // penne_s3_request_retries_total) and Redis connections
    // (penne_redis_connects_total{connection="state"|"lease"}). Must outlive the pipeline.
    metrics_registry* registry = nullptr;
    std::shared_ptr<destination> dest;
    std::shared_ptr<state_store> state;
    std::shared_ptr<const encoder_factory> encoder;
    filter_function filter;
    // Where the S3 destination looks up AWS_REGION, AWS_ENDPOINT_URL, AWS_PROFILE and the
    // credentials chain's variables. Empty: the process environment, as the AWS SDKs do.
    environment_function environment;
    // Where the file destination and the file state store make their blocking calls
    // (write, fsync, rename, mkdir): e.g. the executor of a boost::asio::thread_pool that
    // outlives the pipeline. Empty: on the pipeline's own threads, where each fsync holds
    // one of them (fine on fast disks and tmpfs; on a disk with millisecond syncs, many
    // collections then wait on each other). The daemon passes a pool of 4 threads.
    boost::asio::any_io_executor blocking;
};

}  // namespace penne
