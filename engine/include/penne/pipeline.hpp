#pragma once
// The pipeline (DESIGN §3, §4, §12): for every watch scope, one change stream read by one
// coroutine on the scope's own strand; events routed by namespace into per-collection
// batchers; sealed batches recorded in the write-ahead manifest, compressed, uploaded with
// a process-wide concurrency limit, and checkpointed through a watermark that only covers
// durable events.
//
// Thread safety: the pipeline owns no threads. run() may be awaited from any executor; the
// pipeline's work runs on strands of the executor given at construction, so the
// io_context may be run by one thread or several. stats() may be called from any thread.
//
// Cancellation: cancelling the coroutine that awaits run() starts a graceful stop: stop
// reading, seal open batches, upload them, checkpoint — within shutdown_timeout, after
// which outstanding work is abandoned (the manifest makes the next start replay it).
//
// Lifetimes: the services passed in must outlive run().

#include <penne/batcher.hpp>
#include <penne/compressor.hpp>
#include <penne/destination.hpp>
#include <penne/encoder.hpp>
#include <penne/error.hpp>
#include <penne/keys.hpp>
#include <penne/retry.hpp>
#include <penne/source.hpp>
#include <penne/state_store.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

namespace penne {

enum class log_level { debug, info, warn, error };
using log_function = std::function<void(log_level, std::string_view)>;

struct pipeline_config {
    std::vector<watch_scope> scopes;
    batch_limits batch;
    // Bytes held in open batches plus sealed objects not yet durable, across the process.
    // When reached, streams stop reading until uploads drain (backpressure).
    std::uint64_t max_buffered_bytes = 256ull << 20;
    std::uint32_t max_concurrent_uploads = 8;
    std::chrono::milliseconds shutdown_timeout{30'000};
    // How often an idle scope saves its advancing position (postBatchResumeToken).
    std::chrono::milliseconds checkpoint_interval{5'000};
    retry_policy retry;
};

struct pipeline_services {
    source_factory* sources = nullptr;
    const encoder_factory* encoder = nullptr;
    compressor* compression = nullptr;  // null: objects are stored uncompressed
    destination* dest = nullptr;
    state_store* state = nullptr;
    const key_template* keys = nullptr;
    log_function log;  // may be empty
};

// Counters, readable from any thread while the pipeline runs.
struct pipeline_stats {
    std::atomic<std::uint64_t> events_received{0};
    std::atomic<std::uint64_t> events_written{0};  // in durable objects
    std::atomic<std::uint64_t> events_replayed_skipped{0};
    std::atomic<std::uint64_t> objects_written{0};
    std::atomic<std::uint64_t> bytes_encoded{0};
    std::atomic<std::uint64_t> bytes_written{0};
    std::array<std::atomic<std::uint64_t>, 5> batches_sealed{};  // by seal_reason
    std::atomic<std::uint64_t> upload_retries{0};
    std::atomic<std::uint64_t> state_retries{0};
    std::atomic<std::uint64_t> source_reopens{0};
    std::atomic<std::uint64_t> checkpoints_saved{0};
    std::atomic<std::uint64_t> buffered_bytes{0};
    std::atomic<std::uint64_t> backpressure_waits{0};
};

class pipeline {
public:
    pipeline(boost::asio::any_io_executor ex, pipeline_config cfg, pipeline_services svc);
    ~pipeline();
    pipeline(const pipeline&) = delete;
    pipeline& operator=(const pipeline&) = delete;

    // Runs every scope until cancelled (then drains gracefully and completes without error)
    // or until a scope fails with a fatal error (then the others drain too, and the error
    // comes back with diagnostics).
    boost::asio::awaitable<error_code> run(diagnostics& diag);

    const pipeline_stats& stats() const noexcept;

private:
    friend class scope_runner;
    struct impl;
    std::shared_ptr<impl> impl_;
};

}  // namespace penne
