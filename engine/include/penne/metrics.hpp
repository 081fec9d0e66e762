#pragma once
// Metrics (DESIGN §11): a registry of counter, gauge and histogram families rendered in the
// Prometheus text exposition format 0.0.4, and penne::pipeline_metrics, the one place where
// every metric penne exports is declared.
//
// A family has a name, a help text and fixed label names; a series is one tuple of label
// values. Series are looked up once (family.with({...}), which takes the family's lock and
// may allocate) and the returned handle is then used on the hot path: a handle is a pointer
// to a cache-line-aligned cell updated with relaxed atomics, no lock, no map, no allocation.
// A default-constructed handle is detached: updates go nowhere, so code instrumented with
// handles runs unchanged when no registry is configured.
//
// Cardinality is bounded: a family refuses new series beyond metrics_options::max_series
// and hands out a handle to a hidden overflow cell instead; every refusal is counted in
// penne_metrics_series_dropped_total{metric="<family>"}. With per_collection_labels off,
// every family declared with a "collection" label is registered without it, so thousands of
// collections aggregate into their scope's series.
//
// Thread safety: everything here may be used from any number of threads at once. Rendering
// reads the atomics without stopping writers, so a scrape taken during updates sees each
// series at some recent value; a histogram's _count is always the sum of its buckets (so it
// equals the +Inf bucket) because it is derived from them, while _sum may lag by the
// observations in flight.
//
// Lifetimes: families and handles point into the registry; they must not outlive it.
// Series are never removed (a handle stays valid for the registry's lifetime).
//
// Errors: invalid metric or label names, a label-value count that does not match the
// family, or one name registered twice with a different shape are programming errors and
// throw std::invalid_argument at registration or lookup; updates and rendering never fail.

#include <penne/batcher.hpp>
#include <penne/error.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace penne {

namespace detail {

// One series' storage, on its own cache line so that series updated by different threads
// do not slow each other down.
struct alignas(64) metric_cell {
    std::atomic<std::uint64_t> count{0};  // counter: integral part
    std::atomic<double> value{0.0};       // counter: fractional part; gauge value; hist sum
    std::unique_ptr<std::atomic<std::uint64_t>[]> buckets;  // histogram: per-bucket counts
};

class metric_family;

}  // namespace detail

struct metrics_options {
    // New series a family accepts; lookups beyond are refused and counted.
    std::size_t max_series = 10'000;
    // false: families declared with a "collection" label are registered without it.
    bool per_collection_labels = true;
    // Wall clock for age gauges (now minus a recorded time); tests inject a fixed one.
    std::function<std::chrono::system_clock::time_point()> clock;
};

// A monotonically increasing count. Handle: copyable, cheap, lock-free.
class counter {
public:
    counter() = default;
    void inc(std::uint64_t n = 1) const noexcept {
        if (c_)
            c_->count.fetch_add(n, std::memory_order_relaxed);
    }
    // Fractional amounts (seconds spent); negative or NaN amounts are ignored.
    void add(double v) const noexcept {
        if (c_ && v > 0)
            c_->value.fetch_add(v, std::memory_order_relaxed);
    }
    double value() const noexcept;

private:
    friend class detail::metric_family;
    explicit counter(detail::metric_cell* c) : c_(c) {}
    detail::metric_cell* c_ = nullptr;
};

// A value that goes up and down.
class gauge {
public:
    gauge() = default;
    void set(double v) const noexcept {
        if (c_)
            c_->value.store(v, std::memory_order_relaxed);
    }
    void add(double v) const noexcept {
        if (c_)
            c_->value.fetch_add(v, std::memory_order_relaxed);
    }
    void sub(double v) const noexcept { add(-v); }
    double value() const noexcept { return c_ ? c_->value.load(std::memory_order_relaxed) : 0; }

private:
    friend class detail::metric_family;
    explicit gauge(detail::metric_cell* c) : c_(c) {}
    detail::metric_cell* c_ = nullptr;
};

// A gauge whose exposed value is "now minus a recorded instant" in seconds, computed at
// scrape time with the registry's clock (lag, age of the last checkpoint): the hot path
// stores one timestamp instead of a timer updating a gauge. Until set, or after clear(),
// the series is not exposed (an unknown age is absent, not zero).
class age_gauge {
public:
    age_gauge() = default;
    void set(std::chrono::system_clock::time_point since) const noexcept;
    void clear() const noexcept;

private:
    friend class detail::metric_family;
    explicit age_gauge(detail::metric_cell* c) : c_(c) {}
    detail::metric_cell* c_ = nullptr;
};

// Observations counted in buckets with fixed upper bounds (`le`, inclusive) plus +Inf.
class histogram {
public:
    histogram() = default;
    void observe(double v) const noexcept;
    template <class Rep, class Period>
    void observe(std::chrono::duration<Rep, Period> d) const noexcept {
        observe(std::chrono::duration<double>(d).count());
    }
    // For tests and /status: observations so far and their sum.
    std::uint64_t count() const noexcept;
    double sum() const noexcept;

private:
    friend class detail::metric_family;
    histogram(detail::metric_cell* c, const double* bounds, std::size_t n)
        : c_(c), bounds_(bounds), n_(n) {}
    detail::metric_cell* c_ = nullptr;
    const double* bounds_ = nullptr;
    std::size_t n_ = 0;
};

using label_values = std::initializer_list<std::string_view>;

namespace detail {

enum class metric_kind { counter, gauge, age_gauge, histogram, untyped };

// Shared implementation of the typed family views below; defined in metrics.cpp.
class metric_family {
public:
    metric_family(metric_kind kind, std::string name, std::string help,
                  std::vector<std::string> labels, std::vector<double> bounds,
                  bool per_collection_labels, std::size_t max_series, metric_family* dropped);
    ~metric_family();

    metric_cell* find_or_create(std::span<const std::string_view> values);
    template <class Handle>
    Handle make(metric_cell* c) const {
        if constexpr (std::is_same_v<Handle, histogram>)
            return histogram(c, bounds_.data(), bounds_.size());
        else
            return Handle(c);
    }

    metric_kind kind() const noexcept { return kind_; }
    const std::string& name() const noexcept { return name_; }
    bool same_shape(metric_kind k, const std::vector<std::string>& labels,
                    const std::vector<double>& bounds) const;
    std::size_t declared_label_count() const noexcept { return declared_labels_.size(); }
    std::size_t exposed_label_count() const noexcept { return labels_.size(); }
    void render(std::string& out, double now_seconds) const;

private:
    std::unique_ptr<metric_cell> new_cell() const;

    metric_kind kind_;
    std::string name_;
    std::string help_;
    std::vector<std::string> declared_labels_;  // as declared (for same_shape)
    std::vector<std::string> labels_;           // as exposed (collection dropped when off)
    std::vector<bool> keep_;                    // per declared label: exposed?
    std::vector<double> bounds_;
    std::size_t max_series_;
    metric_family* dropped_;  // penne_metrics_series_dropped_total; null for itself
    mutable std::mutex mu_;
    std::map<std::vector<std::string>, std::unique_ptr<metric_cell>> series_;
    std::unique_ptr<metric_cell> overflow_;
};

}  // namespace detail

// Typed views of a family. Copyable; valid while the registry lives.
template <class Handle>
class metric_family_ref {
public:
    metric_family_ref() = default;
    explicit metric_family_ref(detail::metric_family* f) : f_(f) {}
    // The series with these label values (in the family's declared label order). Takes the
    // family's lock: look handles up once, not per event. A detached family (default
    // constructed) returns detached handles.
    Handle with(label_values values) const {
        return with_span(std::span<const std::string_view>(values.begin(), values.size()));
    }
    Handle with_span(std::span<const std::string_view> values) const {
        if (!f_)
            return Handle();
        return f_->make<Handle>(f_->find_or_create(values));
    }
    explicit operator bool() const noexcept { return f_ != nullptr; }

private:
    detail::metric_family* f_ = nullptr;
};

using counter_family = metric_family_ref<counter>;
using gauge_family = metric_family_ref<gauge>;
using age_gauge_family = metric_family_ref<age_gauge>;
using histogram_family = metric_family_ref<histogram>;

// Bucket bounds: `count` bounds start, start*factor, … (Prometheus' ExponentialBuckets).
std::vector<double> exponential_buckets(double start, double factor, std::size_t count);

class metrics_registry {
public:
    explicit metrics_registry(metrics_options opts = {});
    ~metrics_registry();
    metrics_registry(const metrics_registry&) = delete;
    metrics_registry& operator=(const metrics_registry&) = delete;

    // Registering an existing name with the same kind, labels and buckets returns the
    // existing family (two pipelines may share a registry); any other reuse throws.
    // Families without labels get their single series at once, so they are exposed as 0.
    counter_family counters(std::string_view name, std::string_view help,
                            std::vector<std::string> labels = {});
    gauge_family gauges(std::string_view name, std::string_view help,
                        std::vector<std::string> labels = {});
    // A gauge exposed with TYPE untyped: only for compatibility names that break the naming
    // rules for gauges (a _total suffix), which promtool rejects on a typed gauge.
    gauge_family untyped(std::string_view name, std::string_view help,
                         std::vector<std::string> labels = {});
    age_gauge_family age_gauges(std::string_view name, std::string_view help,
                                std::vector<std::string> labels = {});
    // `bounds`: strictly increasing finite upper bounds; +Inf is implicit.
    histogram_family histograms(std::string_view name, std::string_view help,
                                std::vector<std::string> labels, std::vector<double> bounds);

    // The exposition (text format 0.0.4): families sorted by name, series by label values,
    // families without exposed series left out.
    void render(std::string& out) const;
    std::string render() const;

    const metrics_options& options() const noexcept { return opts_; }
    static constexpr std::string_view content_type = "text/plain; version=0.0.4; charset=utf-8";

private:
    detail::metric_family* add(detail::metric_kind kind, std::string_view name,
                               std::string_view help, std::vector<std::string> labels,
                               std::vector<double> bounds);

    metrics_options opts_;
    mutable std::mutex mu_;
    std::map<std::string, std::unique_ptr<detail::metric_family>, std::less<>> families_;
    detail::metric_family* dropped_ = nullptr;
};

// ---------------------------------------------------------------------------------------
// Every metric penne exports (issue 8), declared once. The pipeline, the adapters and the
// daemon update them through the handle bundles below, which also feed the seed's
// rigatoni_* names when compatibility is on.

// operationType values with their own label value; everything else counts as "other".
enum class metric_operation : std::uint8_t { insert, update, replace, delete_, other };
inline constexpr std::size_t metric_operation_count = 5;
metric_operation to_metric_operation(std::string_view operation_type) noexcept;
const char* to_string(metric_operation op) noexcept;
using operation_counts = std::array<std::uint64_t, metric_operation_count>;

// Short, bounded label value for an error (retry reason, error type): "timeout",
// "cancelled" and the other penne::errc names for engine errors, otherwise the error's
// category name ("s3", "redis", "system", …). Never the message, never a secret.
std::string metric_reason(const error_code& ec);

enum class pipeline_status : std::uint8_t { stopped = 0, running = 1, degraded = 2, failed = 3 };

struct pipeline_metrics_options {
    // Also emit the seed's rigatoni_* names and labels (metrics.compat = "rigatoni").
    bool rigatoni_compat = false;
    // destination_type label of the rigatoni destination metrics.
    std::string destination_type = "s3";
};

class pipeline_metrics;

// Per collection within a scope; looked up once when the pipeline first routes an event to
// the collection. Hot-path calls are a few relaxed atomic adds.
struct collection_metrics {
    std::array<counter, metric_operation_count> events_received;
    std::array<counter, metric_operation_count> events_written;
    counter bytes_received;  // BSON bytes of the events as MongoDB sent them
    counter bytes_encoded;   // encoded (format) bytes before compression
    counter bytes_written;   // object bytes made durable (after compression)
    counter objects_written;
    std::array<counter, 5> batches_sealed;  // by penne::seal_reason
    histogram batch_events;                 // events per sealed batch
    histogram batch_bytes;                  // encoded bytes per sealed batch
    // rigatoni compat (detached when off)
    std::array<counter, metric_operation_count> rig_events_processed;
    histogram rig_batch_size;
    histogram rig_batch_duration;
    histogram rig_lag;
    gauge rig_queue;

    // Events were routed to this collection's batcher (one call per event or per reply).
    void received(metric_operation op, std::uint64_t bson_bytes,
                  std::uint64_t encoded_bytes) const noexcept;
    void received(const operation_counts& ops, std::uint64_t bson_bytes,
                  std::uint64_t encoded_bytes) const noexcept;
    void sealed(seal_reason why, std::uint64_t events, std::uint64_t encoded) const noexcept;
    // A sealed batch is durable in the destination. `since_first_event`: from the first
    // event's arrival to durability; `lag`: now minus the clusterTime of its last event.
    void durable(const operation_counts& ops, std::uint64_t object_bytes,
                 std::chrono::duration<double> since_first_event,
                 std::chrono::duration<double> lag) const noexcept;
    // An event could not be written (dead-lettered or unencodable). Rare: looks up a series.
    void failed(const error_code& ec) const;

    const pipeline_metrics* owner = nullptr;
    std::string scope;
    std::string coll;
};

// Per watch scope (label value watch_scope::id()). Used from the scope's strand.
struct scope_metrics {
    histogram upload_duration;          // one object made durable, retries included
    histogram upload_attempt_duration;  // one attempt
    age_gauge lag;                      // now - clusterTime of the last durable event
    age_gauge checkpoint_age;           // now - wall time the resume token was last saved
    counter checkpoints_saved;
    counter events_replay_skipped;
    gauge lease_held;  // 0/1
    counter lease_acquisitions;
    counter lease_losses;
    counter lease_takeovers;
    counter lease_refreshes;
    counter lease_releases;
    counter history_lost;  // the saved position fell off the source's history

    void uploaded(std::chrono::duration<double> took, std::uint64_t object_bytes) const noexcept;
    void checkpoint_saved(std::chrono::system_clock::time_point now) const noexcept;
    void lease_acquired(bool takeover) const noexcept;
    void lease_lost() const noexcept;
    void lease_refreshed() const noexcept;
    void lease_released() const noexcept;
    // Label-valued events: rare, so they look their series up each time.
    void upload_retry(const error_code& ec) const;
    void upload_error(const error_code& ec) const;
    void stream_resume(std::string_view reason) const;
    void stream_reconnect(std::string_view reason) const;
    void lease_acquire_failed(std::string_view reason) const;  // "already_held" | "error"
    void set_lease_held(bool held) const noexcept;

    const pipeline_metrics* owner = nullptr;
    std::string scope;
};

class pipeline_metrics {
public:
    explicit pipeline_metrics(metrics_registry& reg, pipeline_metrics_options opts = {});

    collection_metrics for_collection(std::string_view scope, std::string_view coll) const;
    scope_metrics for_scope(std::string_view scope) const;

    void set_status(pipeline_status s) const noexcept;
    // A state-store operation ("record", "retire", "checkpoint", "load", "lease") finished.
    void state_store_op(std::string_view op, std::chrono::duration<double> took,
                        const error_code& ec) const;
    void add_backpressure(std::chrono::duration<double> waited) const noexcept;
    void set_active_collections(std::size_t n) const noexcept;

    // Process-wide handles, updated directly.
    gauge buffered_bytes;  // open batches + sealed objects not yet durable
    counter backpressure_waits;
    counter backpressure_seconds;
    counter compress_seconds;  // CPU time of the threads compressing sealed batches
    gauge status;
    gauge active_collections;

    // Families (the full list; label names in comments are the declared order).
    counter_family events_received;         // scope, collection, operation
    counter_family events_written;          // scope, collection, operation
    counter_family bytes_received;          // scope, collection
    counter_family bytes_encoded;           // scope, collection
    counter_family bytes_written;           // scope, collection
    counter_family objects_written;         // scope, collection
    counter_family batches_sealed;          // scope, collection, reason
    histogram_family batch_events;          // scope, collection
    histogram_family batch_bytes;           // scope, collection
    histogram_family upload_duration;       // scope
    histogram_family upload_attempt;        // scope
    counter_family upload_retries;          // scope, reason
    counter_family upload_errors;           // scope, type
    age_gauge_family lag;                   // scope
    age_gauge_family checkpoint_age;        // scope
    counter_family checkpoints_saved;       // scope
    counter_family replay_skipped;          // scope
    counter_family stream_resumes;          // scope, reason
    counter_family stream_reconnects;       // scope, reason
    counter_family history_lost;            // scope
    gauge_family lease_held;                // scope
    counter_family lease_acquisitions;      // scope
    counter_family lease_acquire_failures;  // scope, reason
    counter_family lease_losses;            // scope
    counter_family lease_takeovers;         // scope
    counter_family lease_refreshes;         // scope
    counter_family lease_releases;          // scope
    counter_family events_failed;           // scope, collection, reason
    histogram_family state_store_duration;  // operation
    counter_family state_store_errors;      // operation, reason

    // rigatoni_* (registered only with rigatoni_compat)
    struct rigatoni_families {
        counter_family events_processed;     // collection, operation
        counter_family events_failed;        // collection, error_type
        counter_family retries;              // error_type
        histogram_family batch_size;         // collection
        histogram_family batch_duration;     // collection
        histogram_family write_duration;     // destination_type
        histogram_family write_bytes;        // destination_type
        counter_family batches_written;      // destination_type
        counter_family write_errors;         // destination_type, error_type
        histogram_family change_stream_lag;  // collection
        gauge_family batch_queue_size;       // collection
        gauge active_collections;
        gauge pipeline_status;  // seed's meaning: 0 stopped, 1 running, 2 error
        gauge locks_held;
        counter lock_acquisitions;
        counter_family lock_acquisition_failures;  // reason
        counter locks_lost;
        counter lock_refreshes;
        counter locks_released;
        histogram write_duration_dest;  // series for options.destination_type
        histogram write_bytes_dest;
        counter batches_written_dest;
    } rig;

    const pipeline_metrics_options& options() const noexcept { return opts_; }

private:
    pipeline_metrics_options opts_;
};

}  // namespace penne
