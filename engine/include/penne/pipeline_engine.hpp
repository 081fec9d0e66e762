#pragma once
// The pipeline (DESIGN §3, §4, §12): for every watch scope, one change stream read by one
// coroutine on the scope's own strand; events routed by namespace into per-collection
// batchers; sealed batches recorded in the write-ahead manifest, compressed, uploaded with
// a process-wide concurrency limit, and checkpointed through a watermark that only covers
// durable events.
//
// Thread safety: the pipeline owns no threads. run() may be awaited from any executor; the
// pipeline's work runs on strands of the executor given at construction, so the
// io_context may be run by one thread or several. stats(), status() and ready() may be
// called from any thread at any time (before, during and after run()).
//
// Metrics (DESIGN §11): with pipeline_services::metrics set, the pipeline feeds the penne_*
// families of penne::pipeline_metrics (and the rigatoni_* ones when enabled). Per event it
// only adds to plain per-collection tallies; the shared atomics are updated once per reply,
// per seal and per upload. Without metrics every instrumentation point is one branch.
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
#include <penne/event_filter.hpp>
#include <penne/keys.hpp>
#include <penne/lease.hpp>
#include <penne/log.hpp>
#include <penne/metrics.hpp>
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
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace penne {

enum class history_lost_policy { fail, restart_from_now };

struct pipeline_config {
    std::vector<watch_scope> scopes;
    batch_limits batch;
    // Memory held in open batches (their buffers' capacity) plus sealed objects not yet
    // durable (encoded while waiting for compression, then compressed), across the process.
    // Streams check it before every event and stop reading at the bound until uploads drain
    // (backpressure). The gauge (penne_buffered_bytes) stays within the bound plus one
    // event and one growth of a batch buffer (at most batch.max_bytes), plus 1 MiB per
    // further thread routing at the same moment. Not counted (fixed, see README
    // "Backpressure"): each scope's two reply buffers and each compression context's room.
    std::uint64_t max_buffered_bytes = 256ull << 20;
    std::uint32_t max_concurrent_uploads = 8;
    // Set when more than one thread runs the executor: sealed batches are then compressed
    // by a handler posted to the executor (any thread) instead of on the scope's strand, so
    // one busy scope uses every thread; their manifest entries are still recorded strictly
    // in seal order. With one thread that handoff would only add cost: leave it false.
    bool compress_off_strand = false;
    std::chrono::milliseconds shutdown_timeout{30'000};
    // How often an idle scope saves its advancing position (postBatchResumeToken).
    std::chrono::milliseconds checkpoint_interval{5'000};
    // The least time between two checkpoints of a scope while objects keep becoming durable:
    // what completes meanwhile goes into the next one. A checkpoint only bounds the work a
    // restart replays (objects are durable and recorded already), so this trades at most that
    // much replay for one state-store write per interval instead of one per object. The
    // starting position and the checkpoints of a stopping scope are saved without waiting.
    std::chrono::milliseconds checkpoint_min_interval{100};
    retry_policy retry;
    // ready() turns false when a scope has been retrying (an upload, a state-store write or
    // read, the opening of its stream) without a break for longer than this, or when its
    // open stream has given no reply for longer than this.
    std::chrono::milliseconds not_ready_after{10'000};
    // With pipeline_services::leases: how long a lease lasts unless refreshed (refreshed
    // every third of it; a crashed instance's scopes move within about this long), and how
    // often unowned scopes are tried.
    std::chrono::milliseconds lease_ttl{10'000};
    std::chrono::milliseconds lease_retry_interval{2'000};
    // When a scope's saved position is no longer in the source's history (errc::history_lost,
    // DESIGN §6): fail stops the scope with an error that says so; restart_from_now opens
    // the stream again at the current time, accepting the gap, and logs it as an error,
    // counts it (penne_history_lost_total) and shows it as the scope's last_error.
    history_lost_policy on_history_lost = history_lost_policy::fail;
    // Where a scope with no saved position starts ([mongodb] start_at): an operation time,
    // or the current time when unset. `scope_start_at`, keyed by watch_scope::id(), overrides
    // it per scope (nullopt there: now). A saved position always wins over both; a time the
    // source no longer has is history lost (on_history_lost applies).
    std::optional<cluster_time> start_at;
    std::map<std::string, std::optional<cluster_time>> scope_start_at;
};

struct pipeline_services {
    source_factory* sources = nullptr;
    const encoder_factory* encoder = nullptr;
    compressor* compression = nullptr;  // null: objects are stored uncompressed
    destination* dest = nullptr;
    state_store* state = nullptr;
    const key_template* keys = nullptr;
    log_function log;  // may be empty
    // Null: no metrics. Must outlive run(); may be shared by several pipelines.
    const pipeline_metrics* metrics = nullptr;
    // Null: this instance runs every scope (single instance). Set: a scope runs only while
    // this instance holds its lease; its manifest and checkpoint writes go through the
    // lease store, fenced; a lost lease cancels the scope at once (its unsealed batches are
    // dropped: the new owner replays them) and the scope goes back to the takeover loop.
    // `state` still serves load().
    lease_store* leases = nullptr;
    // Null: every event is batched. Set: called for each event before it is routed; may
    // drop it or replace its document (event_filter.hpp). Must outlive run().
    const event_filter* filter = nullptr;
};

// Counters, readable from any thread while the pipeline runs.
struct pipeline_stats {
    std::atomic<std::uint64_t> events_received{0};
    std::atomic<std::uint64_t> events_written{0};  // in durable objects
    std::atomic<std::uint64_t> events_replayed_skipped{0};
    std::atomic<std::uint64_t> events_filtered{0};  // dropped by pipeline_services::filter
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

// What a scope is doing (pipeline_engine::status()).
enum class scope_activity : std::uint8_t {
    starting,   // loading its state, opening its stream, saving its first position
    streaming,  // stream open; events arriving or batches not yet durable
    idle,       // stream open; the last reply was empty and everything read is durable
    retrying,   // retrying an upload, a state-store operation or the opening of its stream
    failed,     // stopped (or stopping) on a fatal error; see last_error
    stopped,    // finished
    standby,    // with leases: not held by this instance (another one runs it, or nobody yet)
};
const char* to_string(scope_activity a) noexcept;

// One scope in pipeline_engine::status(). Holds no secrets: errors are the diagnostics' text,
// which never carries credentials or URIs with passwords.
struct scope_status {
    std::string id;  // watch_scope::id()
    scope_activity state = scope_activity::starting;
    bool stream_open = false;
    // clusterTime of the newest event made durable (the time of the last resume token that
    // is safe to resume from); empty until an event is durable.
    std::optional<cluster_time> last_durable_time;
    // Now minus the time up to which this scope is caught up: the clusterTime of the last
    // durable event, or, while every event read is durable, the time of the last reply
    // (so an idle scope shows the age of its last reply, not of its last write). Empty
    // until known. The same value as penne_lag_seconds.
    std::optional<double> lag_seconds;
    std::optional<double> checkpoint_age_seconds;  // since the position was last saved
    std::uint64_t events_received = 0;
    std::uint64_t events_written = 0;  // in durable objects
    std::uint64_t objects_written = 0;
    std::uint64_t checkpoints_saved = 0;
    std::uint64_t buffered_bytes = 0;  // open batches and objects not yet durable
    std::uint64_t open_batches = 0;
    // The most recent error, retried or fatal ("uploading <key> failed: …"); it stays after
    // the scope recovers, with its time, so that a flapping peer is visible.
    std::string last_error;
    std::optional<std::chrono::system_clock::time_point> last_error_time;
    // With leases: whether this instance holds the scope's lease, and its fencing token.
    bool lease_held = false;
    std::uint64_t lease_fence = 0;
};

struct pipeline_snapshot {
    pipeline_status status = pipeline_status::stopped;  // as penne_pipeline_status
    std::uint64_t buffered_bytes = 0;
    std::vector<scope_status> scopes;  // in pipeline_config::scopes order
    std::string lease_owner;           // this instance's lease owner id; empty: no leases
};

class pipeline_engine {
public:
    pipeline_engine(boost::asio::any_io_executor ex, pipeline_config cfg, pipeline_services svc);
    ~pipeline_engine();
    pipeline_engine(const pipeline_engine&) = delete;
    pipeline_engine& operator=(const pipeline_engine&) = delete;

    // Runs every scope until cancelled (then drains gracefully and completes without error)
    // or until a scope fails with a fatal error (then the others drain too, and the error
    // comes back with diagnostics).
    boost::asio::awaitable<error_code> run(diagnostics& diag);

    const pipeline_stats& stats() const noexcept;

    // A copy of every scope's status. Each field is read atomically; fields of one scope
    // may come from instants a few microseconds apart. Status: stopped before run() and
    // after a clean stop, running, degraded while any scope is retrying (an upload, a
    // state-store operation or the opening of its stream), failed once a scope failed.
    pipeline_snapshot status() const;

    // For /ready: true while run() is running and every scope has its stream open (on a
    // fresh start: and its starting position saved), no scope has failed or is stopping,
    // no scope has been retrying for longer than pipeline_config::not_ready_after, and no
    // open stream has been silent (no reply, even an empty one) for that long. Otherwise
    // false, with the first reason found in `reason` (no secrets). With leases, only the
    // scopes this instance holds (and is not handing over) count: an instance in standby
    // is ready, unless its lease requests have been failing for not_ready_after (the
    // state store is unreachable).
    bool ready(std::string& reason) const;

private:
    friend class scope_runner;
    struct impl;
    std::shared_ptr<impl> impl_;
};

}  // namespace penne
