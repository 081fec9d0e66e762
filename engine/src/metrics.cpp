#include <penne/metrics.hpp>

#include <boost/system/errc.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace penne {
namespace {

constexpr std::string_view collection_label = "collection";

bool valid_metric_name(std::string_view n) {
    if (n.empty())
        return false;
    for (std::size_t i = 0; i < n.size(); ++i) {
        char c = n[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
            return false;
    }
    return true;
}

bool valid_label_name(std::string_view n) {
    if (n.empty() || n.starts_with("__"))
        return false;
    for (std::size_t i = 0; i < n.size(); ++i) {
        char c = n[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
            return false;
    }
    return true;
}

// Length of the valid UTF-8 sequence starting at s[i], or 0 when it is not one (overlong
// forms, surrogates and code points above U+10FFFF included).
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
    auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
    auto cont = [&](std::size_t k) { return i + k < s.size() && (b(k) & 0xC0) == 0x80; };
    unsigned char c = b(0);
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        return cont(1) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (!cont(1) || !cont(2))
            return 0;
        if ((c == 0xE0 && b(1) < 0xA0) || (c == 0xED && b(1) > 0x9F))
            return 0;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (!cont(1) || !cont(2) || !cont(3))
            return 0;
        if ((c == 0xF0 && b(1) < 0x90) || (c == 0xF4 && b(1) > 0x8F))
            return 0;
        return 4;
    }
    return 0;
}

// Label values: backslash, double quote and newline escaped; bytes that are not UTF-8
// (collection names come from the network) become U+FFFD so the exposition stays parseable.
void append_label_value(std::string& out, std::string_view v) {
    for (std::size_t i = 0; i < v.size();) {
        char c = v[i];
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '"') {
            out += "\\\"";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            std::size_t n = utf8_sequence(v, i);
            if (n == 0) {
                out += "\xEF\xBF\xBD";
                n = 1;
            } else {
                out.append(v.substr(i, n));
            }
            i += n;
            continue;
        }
        ++i;
    }
}

void append_help(std::string& out, std::string_view v) {
    for (char c : v) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
}

void append_uint(std::string& out, std::uint64_t v) {
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
}

// Integral values print without a fraction; others in the shortest form that reads back as
// the same double (which Prometheus' parser, Go's ParseFloat, accepts).
void append_double(std::string& out, double v) {
    if (std::isnan(v)) {
        out += "NaN";
        return;
    }
    if (std::isinf(v)) {
        out += v > 0 ? "+Inf" : "-Inf";
        return;
    }
    if (v == std::trunc(v) && std::fabs(v) < 9007199254740992.0) {
        char buf[24];
        auto r = std::to_chars(buf, buf + sizeof buf, static_cast<std::int64_t>(v));
        out.append(buf, r.ptr);
        return;
    }
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
}

const char* kind_name(detail::metric_kind k) {
    switch (k) {
        case detail::metric_kind::counter:
            return "counter";
        case detail::metric_kind::gauge:
        case detail::metric_kind::age_gauge:
            return "gauge";
        case detail::metric_kind::histogram:
            return "histogram";
        case detail::metric_kind::untyped:
            return "untyped";
    }
    return "untyped";
}

const std::vector<std::string> dropped_labels{"metric"};

}  // namespace

// ---- handles ------------------------------------------------------------------------------

double counter::value() const noexcept {
    if (!c_)
        return 0;
    return static_cast<double>(c_->count.load(std::memory_order_relaxed)) +
           c_->value.load(std::memory_order_relaxed);
}

void age_gauge::set(std::chrono::system_clock::time_point since) const noexcept {
    if (c_)
        c_->value.store(std::chrono::duration<double>(since.time_since_epoch()).count(),
                        std::memory_order_relaxed);
}

void age_gauge::clear() const noexcept {
    if (c_)
        c_->value.store(std::numeric_limits<double>::quiet_NaN(), std::memory_order_relaxed);
}

void histogram::observe(double v) const noexcept {
    if (!c_ || std::isnan(v))
        return;
    // Buckets are inclusive upper bounds: v lands in the first bucket whose bound is >= v.
    std::size_t i = static_cast<std::size_t>(std::lower_bound(bounds_, bounds_ + n_, v) - bounds_);
    c_->buckets[i].fetch_add(1, std::memory_order_relaxed);
    c_->value.fetch_add(v, std::memory_order_relaxed);
}

std::uint64_t histogram::count() const noexcept {
    if (!c_)
        return 0;
    std::uint64_t n = 0;
    for (std::size_t i = 0; i <= n_; ++i)
        n += c_->buckets[i].load(std::memory_order_relaxed);
    return n;
}

double histogram::sum() const noexcept {
    return c_ ? c_->value.load(std::memory_order_relaxed) : 0;
}

// ---- families -----------------------------------------------------------------------------

namespace detail {

metric_family::metric_family(metric_kind kind, std::string name, std::string help,
                             std::vector<std::string> labels, std::vector<double> bounds,
                             bool per_collection_labels, std::size_t max_series,
                             metric_family* dropped)
    : kind_(kind),
      name_(std::move(name)),
      help_(std::move(help)),
      declared_labels_(std::move(labels)),
      bounds_(std::move(bounds)),
      max_series_(max_series),
      dropped_(dropped) {
    for (const auto& l : declared_labels_) {
        bool keep = per_collection_labels || l != collection_label;
        keep_.push_back(keep);
        if (keep)
            labels_.push_back(l);
    }
    overflow_ = new_cell();
}

metric_family::~metric_family() = default;

std::unique_ptr<metric_cell> metric_family::new_cell() const {
    auto c = std::make_unique<metric_cell>();
    if (kind_ == metric_kind::histogram) {
        c->buckets = std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1);
        for (std::size_t i = 0; i <= bounds_.size(); ++i)
            c->buckets[i].store(0, std::memory_order_relaxed);
    }
    if (kind_ == metric_kind::age_gauge)
        c->value.store(std::numeric_limits<double>::quiet_NaN(), std::memory_order_relaxed);
    return c;
}

bool metric_family::same_shape(metric_kind k, const std::vector<std::string>& labels,
                               const std::vector<double>& bounds) const {
    return k == kind_ && labels == declared_labels_ && bounds == bounds_;
}

metric_cell* metric_family::find_or_create(std::span<const std::string_view> values) {
    if (values.size() != declared_labels_.size())
        throw std::invalid_argument("metric " + name_ + ": expected " +
                                    std::to_string(declared_labels_.size()) +
                                    " label values, got " + std::to_string(values.size()));
    std::vector<std::string> key;
    key.reserve(labels_.size());
    for (std::size_t i = 0; i < values.size(); ++i)
        if (keep_[i])
            key.emplace_back(values[i]);

    std::lock_guard lock(mu_);
    auto it = series_.find(key);
    if (it != series_.end())
        return it->second.get();
    if (series_.size() >= max_series_) {
        if (dropped_) {
            std::string_view self = name_;
            dropped_->find_or_create(std::span<const std::string_view>(&self, 1))
                ->count.fetch_add(1, std::memory_order_relaxed);
        }
        return overflow_.get();
    }
    auto cell = new_cell();
    auto* p = cell.get();
    series_.emplace(std::move(key), std::move(cell));
    return p;
}

void metric_family::render(std::string& out, double now_seconds) const {
    const std::size_t start = out.size();
    out += "# HELP ";
    out += name_;
    out += ' ';
    append_help(out, help_);
    out += "\n# TYPE ";
    out += name_;
    out += ' ';
    out += kind_name(kind_);
    out += '\n';
    const std::size_t header_end = out.size();

    auto labels = [&](const std::vector<std::string>& values, std::string_view le) {
        if (values.empty() && le.empty())
            return;
        out += '{';
        for (std::size_t i = 0; i < values.size(); ++i) {
            if (i)
                out += ',';
            out += labels_[i];
            out += "=\"";
            append_label_value(out, values[i]);
            out += '"';
        }
        if (!le.empty()) {
            if (!values.empty())
                out += ',';
            out += "le=\"";
            out += le;
            out += '"';
        }
        out += '}';
    };

    std::lock_guard lock(mu_);
    for (const auto& [values, cell] : series_) {
        switch (kind_) {
            case metric_kind::counter: {
                out += name_;
                labels(values, {});
                out += ' ';
                double frac = cell->value.load(std::memory_order_relaxed);
                std::uint64_t whole = cell->count.load(std::memory_order_relaxed);
                if (frac == 0)
                    append_uint(out, whole);
                else
                    append_double(out, static_cast<double>(whole) + frac);
                out += '\n';
                break;
            }
            case metric_kind::gauge:
            case metric_kind::untyped:
                out += name_;
                labels(values, {});
                out += ' ';
                append_double(out, cell->value.load(std::memory_order_relaxed));
                out += '\n';
                break;
            case metric_kind::age_gauge: {
                double since = cell->value.load(std::memory_order_relaxed);
                if (std::isnan(since))
                    break;
                out += name_;
                labels(values, {});
                out += ' ';
                // A clock step backwards must not expose a negative age.
                append_double(out, std::max(0.0, now_seconds - since));
                out += '\n';
                break;
            }
            case metric_kind::histogram: {
                // Snapshot the buckets once: the cumulative counts and _count then agree
                // exactly even while other threads observe.
                std::uint64_t cumulative = 0;
                std::string le;
                for (std::size_t i = 0; i <= bounds_.size(); ++i) {
                    cumulative += cell->buckets[i].load(std::memory_order_relaxed);
                    le.clear();
                    if (i < bounds_.size())
                        append_double(le, bounds_[i]);
                    else
                        le = "+Inf";
                    out += name_;
                    out += "_bucket";
                    labels(values, le);
                    out += ' ';
                    append_uint(out, cumulative);
                    out += '\n';
                }
                out += name_;
                out += "_sum";
                labels(values, {});
                out += ' ';
                append_double(out, cell->value.load(std::memory_order_relaxed));
                out += '\n';
                out += name_;
                out += "_count";
                labels(values, {});
                out += ' ';
                append_uint(out, cumulative);
                out += '\n';
                break;
            }
        }
    }
    if (out.size() == header_end)
        out.resize(start);  // no exposed series: leave the family out
}

}  // namespace detail

// ---- registry -----------------------------------------------------------------------------

std::vector<double> exponential_buckets(double start, double factor, std::size_t count) {
    if (!(start > 0) || !(factor > 1) || count == 0)
        throw std::invalid_argument("exponential_buckets: need start > 0, factor > 1, count > 0");
    std::vector<double> b;
    b.reserve(count);
    for (double v = start; b.size() < count; v *= factor)
        b.push_back(v);
    return b;
}

metrics_registry::metrics_registry(metrics_options opts) : opts_(std::move(opts)) {
    if (!opts_.clock)
        opts_.clock = [] { return std::chrono::system_clock::now(); };
    // The refusal counter itself is never bounded: it has one series per family at most.
    auto f = std::make_unique<detail::metric_family>(
        detail::metric_kind::counter, "penne_metrics_series_dropped_total",
        "Series lookups refused because the family reached its cardinality bound", dropped_labels,
        std::vector<double>{}, true, std::numeric_limits<std::size_t>::max(), nullptr);
    dropped_ = f.get();
    families_.emplace(f->name(), std::move(f));
}

metrics_registry::~metrics_registry() = default;

detail::metric_family* metrics_registry::add(detail::metric_kind kind, std::string_view name,
                                             std::string_view help, std::vector<std::string> labels,
                                             std::vector<double> bounds) {
    if (!valid_metric_name(name))
        throw std::invalid_argument("invalid metric name: " + std::string(name));
    for (std::size_t i = 0; i < labels.size(); ++i) {
        if (!valid_label_name(labels[i]))
            throw std::invalid_argument("metric " + std::string(name) +
                                        ": invalid label name: " + labels[i]);
        if (kind == detail::metric_kind::histogram && labels[i] == "le")
            throw std::invalid_argument("metric " + std::string(name) + ": histogram label le");
        for (std::size_t j = 0; j < i; ++j)
            if (labels[j] == labels[i])
                throw std::invalid_argument("metric " + std::string(name) + ": duplicate label " +
                                            labels[i]);
    }
    if (kind == detail::metric_kind::histogram) {
        for (std::size_t i = 0; i < bounds.size(); ++i)
            if (!std::isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1])))
                throw std::invalid_argument("metric " + std::string(name) +
                                            ": bucket bounds must be finite and increasing");
    }

    std::lock_guard lock(mu_);
    if (auto it = families_.find(name); it != families_.end()) {
        if (!it->second->same_shape(kind, labels, bounds))
            throw std::invalid_argument("metric " + std::string(name) +
                                        " registered twice with different shapes");
        return it->second.get();
    }
    auto f = std::make_unique<detail::metric_family>(
        kind, std::string(name), std::string(help), std::move(labels), std::move(bounds),
        opts_.per_collection_labels, opts_.max_series, dropped_);
    auto* p = f.get();
    families_.emplace(p->name(), std::move(f));
    // A family whose series all collapse (no labels, or only "collection" while per-collection
    // labels are off) still has exactly one series: create it so it is exposed from the start.
    if (p->exposed_label_count() == 0 && kind != detail::metric_kind::age_gauge) {
        std::vector<std::string_view> empty(p->declared_label_count());
        p->find_or_create(empty);
    }
    return p;
}

counter_family metrics_registry::counters(std::string_view name, std::string_view help,
                                          std::vector<std::string> labels) {
    return counter_family(add(detail::metric_kind::counter, name, help, std::move(labels), {}));
}

gauge_family metrics_registry::gauges(std::string_view name, std::string_view help,
                                      std::vector<std::string> labels) {
    return gauge_family(add(detail::metric_kind::gauge, name, help, std::move(labels), {}));
}

gauge_family metrics_registry::untyped(std::string_view name, std::string_view help,
                                       std::vector<std::string> labels) {
    return gauge_family(add(detail::metric_kind::untyped, name, help, std::move(labels), {}));
}

age_gauge_family metrics_registry::age_gauges(std::string_view name, std::string_view help,
                                              std::vector<std::string> labels) {
    return age_gauge_family(add(detail::metric_kind::age_gauge, name, help, std::move(labels), {}));
}

histogram_family metrics_registry::histograms(std::string_view name, std::string_view help,
                                              std::vector<std::string> labels,
                                              std::vector<double> bounds) {
    return histogram_family(
        add(detail::metric_kind::histogram, name, help, std::move(labels), std::move(bounds)));
}

void metrics_registry::render(std::string& out) const {
    double now = std::chrono::duration<double>(opts_.clock().time_since_epoch()).count();
    std::lock_guard lock(mu_);
    for (const auto& [name, f] : families_)
        f->render(out, now);
}

std::string metrics_registry::render() const {
    std::string out;
    render(out);
    return out;
}

// ---- pipeline metrics ---------------------------------------------------------------------

metric_operation to_metric_operation(std::string_view op) noexcept {
    if (op == "insert")
        return metric_operation::insert;
    if (op == "update")
        return metric_operation::update;
    if (op == "replace")
        return metric_operation::replace;
    if (op == "delete")
        return metric_operation::delete_;
    return metric_operation::other;
}

const char* to_string(metric_operation op) noexcept {
    switch (op) {
        case metric_operation::insert:
            return "insert";
        case metric_operation::update:
            return "update";
        case metric_operation::replace:
            return "replace";
        case metric_operation::delete_:
            return "delete";
        case metric_operation::other:
            return "other";
    }
    return "other";
}

std::string metric_reason(const error_code& ec) {
    if (!ec)
        return "none";
    if (ec.category() == penne_category()) {
        switch (static_cast<errc>(ec.value())) {
            case errc::timeout:
                return "timeout";
            case errc::cancelled:
                return "cancelled";
            case errc::invalid_config:
                return "invalid_config";
            case errc::protocol_error:
                return "protocol_error";
            case errc::history_lost:
                return "history_lost";
            case errc::permanent_rejection:
                return "permanent_rejection";
            case errc::unencodable_event:
                return "unencodable_event";
            case errc::state_corrupt:
                return "state_corrupt";
            case errc::lease_lost:
                return "lease_lost";
            case errc::io_error:
                return "io_error";
        }
        return "penne";
    }
    if (ec == boost::system::errc::timed_out)
        return "timeout";
    if (ec == boost::system::errc::operation_canceled)
        return "cancelled";
    return ec.category().name();
}

namespace {

const std::vector<double> duration_buckets{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                           1,     2.5,  5,     10,   30,  60,   120};
const std::vector<double> state_buckets{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                        0.1,    0.25,  0.5,    1,     2.5,  5};
const std::vector<double> lag_buckets{0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900};

using labels = std::vector<std::string>;

}  // namespace

pipeline_metrics::pipeline_metrics(metrics_registry& reg, pipeline_metrics_options opts)
    : opts_(std::move(opts)) {
    const labels sc{"scope", "collection"};
    const labels s{"scope"};
    const auto event_buckets = exponential_buckets(1, 4, 10);    // 1 .. 262144 events
    const auto byte_buckets = exponential_buckets(1024, 4, 10);  // 1 KiB .. 256 MiB

    events_received =
        reg.counters("penne_events_received_total", "Change events received from MongoDB",
                     {"scope", "collection", "operation"});
    events_written = reg.counters("penne_events_written_total",
                                  "Change events in objects that are durable in the destination",
                                  {"scope", "collection", "operation"});
    events_failed = reg.counters("penne_events_failed_total",
                                 "Change events that could not be written (dead-lettered)",
                                 {"scope", "collection", "reason"});
    bytes_received =
        reg.counters("penne_bytes_received_total", "BSON bytes of the change events received", sc);
    bytes_encoded =
        reg.counters("penne_bytes_encoded_total", "Bytes of encoded events before compression", sc);
    bytes_written = reg.counters("penne_bytes_written_total",
                                 "Object bytes made durable in the destination", sc);
    objects_written =
        reg.counters("penne_objects_written_total", "Objects made durable in the destination", sc);
    batches_sealed = reg.counters("penne_batches_sealed_total",
                                  "Batches sealed, by reason (count, bytes, age, shutdown, replay)",
                                  {"scope", "collection", "reason"});
    batch_events =
        reg.histograms("penne_batch_events", "Events per sealed batch", sc, event_buckets);
    batch_bytes =
        reg.histograms("penne_batch_bytes", "Encoded bytes per sealed batch", sc, byte_buckets);
    upload_duration =
        reg.histograms("penne_upload_duration_seconds",
                       "Time to make one object durable, retries included", s, duration_buckets);
    upload_attempt = reg.histograms("penne_upload_attempt_duration_seconds",
                                    "Time of one upload attempt", s, duration_buckets);
    upload_retries =
        reg.counters("penne_upload_retries_total", "Upload attempts retried", {"scope", "reason"});
    upload_errors =
        reg.counters("penne_upload_errors_total", "Failed upload attempts", {"scope", "type"});
    lag = reg.age_gauges("penne_lag_seconds",
                         "Now minus the clusterTime of the last durable event of the scope", s);
    checkpoint_age = reg.age_gauges("penne_checkpoint_age_seconds",
                                    "Seconds since the scope last saved its resume token", s);
    checkpoints_saved = reg.counters("penne_checkpoints_saved_total", "Resume tokens saved", s);
    replay_skipped = reg.counters("penne_replay_skipped_events_total",
                                  "Events skipped on replay because they were already durable", s);
    stream_resumes =
        reg.counters("penne_stream_resumes_total", "Change stream resumes after resumable errors",
                     {"scope", "reason"});
    stream_reconnects =
        reg.counters("penne_stream_reconnects_total", "Change stream reopened on a new connection",
                     {"scope", "reason"});
    history_lost = reg.counters("penne_history_lost_total",
                                "Times the scope's saved position was no longer in the oplog", s);
    lease_held = reg.gauges("penne_lease_held", "1 while this instance owns the scope's lease", s);
    lease_acquisitions = reg.counters("penne_lease_acquisitions_total", "Leases acquired", s);
    lease_acquire_failures =
        reg.counters("penne_lease_acquire_failures_total", "Lease acquisition attempts that failed",
                     {"scope", "reason"});
    lease_losses = reg.counters("penne_lease_losses_total", "Leases lost while held", s);
    lease_takeovers = reg.counters("penne_lease_takeovers_total",
                                   "Leases acquired from another (expired) owner", s);
    lease_refreshes = reg.counters("penne_lease_refreshes_total", "Lease refreshes", s);
    lease_releases = reg.counters("penne_lease_releases_total", "Leases released on shutdown", s);
    state_store_duration =
        reg.histograms("penne_state_store_duration_seconds", "State store operation latency",
                       {"operation"}, state_buckets);
    state_store_errors = reg.counters("penne_state_store_errors_total",
                                      "Failed state store operations", {"operation", "reason"});
    buffered_bytes =
        reg.gauges("penne_buffered_bytes", "Bytes in open batches and objects not yet durable")
            .with({});
    backpressure_waits = reg.counters("penne_backpressure_waits_total",
                                      "Times a stream paused because the buffer bound was reached")
                             .with({});
    backpressure_seconds = reg.counters("penne_backpressure_seconds_total",
                                        "Seconds streams spent paused by backpressure")
                               .with({});
    compress_seconds =
        reg.counters("penne_compress_cpu_seconds_total",
                     "CPU seconds the compressing threads spent compressing sealed batches")
            .with({});
    status = reg.gauges("penne_pipeline_status",
                        "Pipeline status: 0 stopped, 1 running, 2 degraded, 3 failed")
                 .with({});
    active_collections =
        reg.gauges("penne_active_collections", "Collections with a batcher in this process")
            .with({});

    if (!opts_.rigatoni_compat)
        return;
    const labels c{"collection"};
    const labels d{"destination_type"};
    rig.events_processed =
        reg.counters("rigatoni_events_processed_total",
                     "Total number of change stream events processed", {"collection", "operation"});
    rig.events_failed =
        reg.counters("rigatoni_events_failed_total",
                     "Total number of events that failed processing", {"collection", "error_type"});
    rig.retries =
        reg.counters("rigatoni_retries_total", "Total number of retry attempts", {"error_type"});
    rig.batch_size = reg.histograms("rigatoni_batch_size", "Events per batch", c, event_buckets);
    rig.batch_duration =
        reg.histograms("rigatoni_batch_duration_seconds",
                       "Time from a batch's first event to its durable write", c, duration_buckets);
    rig.write_duration =
        reg.histograms("rigatoni_destination_write_duration_seconds",
                       "Destination write time, retries included", d, duration_buckets);
    rig.write_bytes =
        reg.histograms("rigatoni_destination_write_bytes",
                       "Bytes written to the destination per object", d, byte_buckets);
    rig.batches_written =
        reg.counters("rigatoni_batches_written_total", "Batches written to the destination", d);
    rig.write_errors = reg.counters("rigatoni_destination_write_errors_total",
                                    "Destination write errors", {"destination_type", "error_type"});
    rig.change_stream_lag =
        reg.histograms("rigatoni_change_stream_lag_seconds",
                       "Now minus clusterTime of events made durable", c, lag_buckets);
    rig.batch_queue_size =
        reg.gauges("rigatoni_batch_queue_size", "Events buffered awaiting a batch write", c);
    rig.active_collections =
        reg.gauges("rigatoni_active_collections", "Collections currently being monitored").with({});
    rig.pipeline_status =
        reg.gauges("rigatoni_pipeline_status", "Pipeline status: 0 stopped, 1 running, 2 error")
            .with({});
    // The seed's name, kept so its dashboard keeps working; a gauge may not end in _total, so
    // it is exposed untyped (the samples are the same).
    rig.locks_held = reg.untyped("rigatoni_locks_held_total", "Locks currently held").with({});
    rig.lock_acquisitions =
        reg.counters("rigatoni_lock_acquisitions_total", "Locks acquired").with({});
    rig.lock_acquisition_failures = reg.counters("rigatoni_lock_acquisition_failures_total",
                                                 "Failed lock acquisition attempts", {"reason"});
    rig.locks_lost = reg.counters("rigatoni_locks_lost_total", "Locks lost").with({});
    rig.lock_refreshes = reg.counters("rigatoni_lock_refreshes_total", "Lock refreshes").with({});
    rig.locks_released = reg.counters("rigatoni_locks_released_total", "Locks released").with({});
    rig.write_duration_dest = rig.write_duration.with({opts_.destination_type});
    rig.write_bytes_dest = rig.write_bytes.with({opts_.destination_type});
    rig.batches_written_dest = rig.batches_written.with({opts_.destination_type});
}

collection_metrics pipeline_metrics::for_collection(std::string_view scope,
                                                    std::string_view coll) const {
    collection_metrics m;
    m.owner = this;
    m.scope = scope;
    m.coll = coll;
    for (std::size_t i = 0; i < metric_operation_count; ++i) {
        std::string_view op = to_string(static_cast<metric_operation>(i));
        m.events_received[i] = events_received.with({scope, coll, op});
        m.events_written[i] = events_written.with({scope, coll, op});
        m.rig_events_processed[i] = rig.events_processed.with({coll, op});
    }
    m.bytes_received = bytes_received.with({scope, coll});
    m.bytes_encoded = bytes_encoded.with({scope, coll});
    m.bytes_written = bytes_written.with({scope, coll});
    m.objects_written = objects_written.with({scope, coll});
    for (std::size_t i = 0; i < m.batches_sealed.size(); ++i)
        m.batches_sealed[i] =
            batches_sealed.with({scope, coll, to_string(static_cast<seal_reason>(i))});
    m.batch_events = batch_events.with({scope, coll});
    m.batch_bytes = batch_bytes.with({scope, coll});
    m.rig_batch_size = rig.batch_size.with({coll});
    m.rig_batch_duration = rig.batch_duration.with({coll});
    m.rig_lag = rig.change_stream_lag.with({coll});
    m.rig_queue = rig.batch_queue_size.with({coll});
    return m;
}

scope_metrics pipeline_metrics::for_scope(std::string_view scope) const {
    scope_metrics m;
    m.owner = this;
    m.scope = scope;
    m.upload_duration = upload_duration.with({scope});
    m.upload_attempt_duration = upload_attempt.with({scope});
    m.lag = lag.with({scope});
    m.checkpoint_age = checkpoint_age.with({scope});
    m.checkpoints_saved = checkpoints_saved.with({scope});
    m.events_replay_skipped = replay_skipped.with({scope});
    m.lease_held = lease_held.with({scope});
    m.lease_acquisitions = lease_acquisitions.with({scope});
    m.lease_losses = lease_losses.with({scope});
    m.lease_takeovers = lease_takeovers.with({scope});
    m.lease_refreshes = lease_refreshes.with({scope});
    m.lease_releases = lease_releases.with({scope});
    m.history_lost = history_lost.with({scope});
    return m;
}

void pipeline_metrics::set_status(pipeline_status s) const noexcept {
    status.set(static_cast<double>(s));
    // The seed knows no "degraded": a degraded pipeline still runs.
    double seed = 0;
    switch (s) {
        case pipeline_status::stopped:
            seed = 0;
            break;
        case pipeline_status::running:
        case pipeline_status::degraded:
            seed = 1;
            break;
        case pipeline_status::failed:
            seed = 2;
            break;
    }
    rig.pipeline_status.set(seed);
}

void pipeline_metrics::state_store_op(std::string_view op, std::chrono::duration<double> took,
                                      const error_code& ec) const {
    state_store_duration.with({op}).observe(took.count());
    if (ec)
        state_store_errors.with({op, metric_reason(ec)}).inc();
}

void pipeline_metrics::add_backpressure(std::chrono::duration<double> waited) const noexcept {
    backpressure_waits.inc();
    backpressure_seconds.add(waited.count());
}

void pipeline_metrics::set_active_collections(std::size_t n) const noexcept {
    active_collections.set(static_cast<double>(n));
    rig.active_collections.set(static_cast<double>(n));
}

// ---- bundles ------------------------------------------------------------------------------

void collection_metrics::received(metric_operation op, std::uint64_t bson,
                                  std::uint64_t encoded) const noexcept {
    events_received[static_cast<std::size_t>(op)].inc();
    bytes_received.inc(bson);
    bytes_encoded.inc(encoded);
    rig_queue.add(1);
}

void collection_metrics::received(const operation_counts& ops, std::uint64_t bson,
                                  std::uint64_t encoded) const noexcept {
    std::uint64_t total = 0;
    for (std::size_t i = 0; i < ops.size(); ++i) {
        if (ops[i])
            events_received[i].inc(ops[i]);
        total += ops[i];
    }
    bytes_received.inc(bson);
    bytes_encoded.inc(encoded);
    rig_queue.add(static_cast<double>(total));
}

void collection_metrics::sealed(seal_reason why, std::uint64_t events,
                                std::uint64_t encoded) const noexcept {
    auto i = static_cast<std::size_t>(why);
    if (i < batches_sealed.size())
        batches_sealed[i].inc();
    batch_events.observe(static_cast<double>(events));
    batch_bytes.observe(static_cast<double>(encoded));
    rig_batch_size.observe(static_cast<double>(events));
    rig_queue.sub(static_cast<double>(events));
}

void collection_metrics::durable(const operation_counts& ops, std::uint64_t object_bytes,
                                 std::chrono::duration<double> since_first_event,
                                 std::chrono::duration<double> lag) const noexcept {
    for (std::size_t i = 0; i < ops.size(); ++i) {
        if (ops[i]) {
            events_written[i].inc(ops[i]);
            rig_events_processed[i].inc(ops[i]);
        }
    }
    bytes_written.inc(object_bytes);
    objects_written.inc();
    rig_batch_duration.observe(since_first_event.count());
    rig_lag.observe(lag.count());
}

void collection_metrics::failed(const error_code& ec) const {
    if (!owner)
        return;
    std::string reason = metric_reason(ec);
    owner->events_failed.with({scope, coll, reason}).inc();
    owner->rig.events_failed.with({coll, reason}).inc();
}

void scope_metrics::uploaded(std::chrono::duration<double> took,
                             std::uint64_t object_bytes) const noexcept {
    upload_duration.observe(took.count());
    if (owner) {
        owner->rig.write_duration_dest.observe(took.count());
        owner->rig.write_bytes_dest.observe(static_cast<double>(object_bytes));
        owner->rig.batches_written_dest.inc();
    }
}

void scope_metrics::checkpoint_saved(std::chrono::system_clock::time_point now) const noexcept {
    checkpoints_saved.inc();
    checkpoint_age.set(now);
}

void scope_metrics::set_lease_held(bool held) const noexcept {
    // Each scope runs on its own strand, so the read-modify-write of its own gauge does not
    // race; the process-wide seed gauge only ever receives +1/-1.
    bool was = lease_held.value() != 0;
    lease_held.set(held ? 1 : 0);
    if (owner && was != held)
        owner->rig.locks_held.add(held ? 1 : -1);
}

void scope_metrics::lease_acquired(bool takeover) const noexcept {
    set_lease_held(true);
    lease_acquisitions.inc();
    if (takeover)
        lease_takeovers.inc();
    if (owner)
        owner->rig.lock_acquisitions.inc();
}

void scope_metrics::lease_lost() const noexcept {
    set_lease_held(false);
    lease_losses.inc();
    if (owner)
        owner->rig.locks_lost.inc();
}

void scope_metrics::lease_refreshed() const noexcept {
    lease_refreshes.inc();
    if (owner)
        owner->rig.lock_refreshes.inc();
}

void scope_metrics::lease_released() const noexcept {
    set_lease_held(false);
    lease_releases.inc();
    if (owner)
        owner->rig.locks_released.inc();
}

void scope_metrics::upload_retry(const error_code& ec) const {
    if (!owner)
        return;
    std::string reason = metric_reason(ec);
    owner->upload_retries.with({scope, reason}).inc();
    owner->rig.retries.with({reason}).inc();
}

void scope_metrics::upload_error(const error_code& ec) const {
    if (!owner)
        return;
    std::string reason = metric_reason(ec);
    owner->upload_errors.with({scope, reason}).inc();
    owner->rig.write_errors.with({owner->options().destination_type, reason}).inc();
}

void scope_metrics::stream_resume(std::string_view reason) const {
    if (owner)
        owner->stream_resumes.with({scope, reason}).inc();
}

void scope_metrics::stream_reconnect(std::string_view reason) const {
    if (owner)
        owner->stream_reconnects.with({scope, reason}).inc();
}

void scope_metrics::lease_acquire_failed(std::string_view reason) const {
    if (!owner)
        return;
    owner->lease_acquire_failures.with({scope, reason}).inc();
    owner->rig.lock_acquisition_failures.with({reason}).inc();
}

}  // namespace penne
