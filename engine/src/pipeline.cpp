#include <penne/checkpoint.hpp>
#include <penne/detail/await_on.hpp>
#include <penne/pipeline_engine.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <array>
#include <climits>
#include <ctime>
#include <deque>
#include <map>
#include <mutex>
#include <span>
#include <unordered_map>

namespace penne {
namespace asio = boost::asio;
using asio::awaitable;
using clock = std::chrono::steady_clock;
using sys_clock = std::chrono::system_clock;
namespace {
constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);
using strand_type = asio::strand<asio::any_io_executor>;

struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
        return std::hash<std::string_view>{}(s);
    }
};

// Equal names, compared inline from the last byte: collection names that share a length
// tend to differ at the end ("orders_2024", "orders_2025"), and a memcmp call per
// candidate cost more than the hash lookup the recent-collections check saves.
bool same_name(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size())
        return false;
    for (std::size_t i = a.size(); i-- > 0;)
        if (a[i] != b[i])
            return false;
    return true;
}

std::string describe(const error_code& ec, const diagnostics& d) {
    std::string s = ec.message();
    if (!d.message.empty()) {
        s += ": ";
        s += d.message;
    }
    return s;
}

// The calling thread's CPU time, in seconds.
double thread_cpu_seconds() noexcept {
    timespec t{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

std::int64_t ticks(clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}
std::int64_t ticks(sys_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}
// "1733490000:3 (2024-12-06T13:00:00Z)": a start_at operation time, for log lines.
std::string describe_operation_time(cluster_time t) {
    const std::time_t secs = static_cast<std::time_t>(t.seconds);
    std::tm utc{};
    gmtime_r(&secs, &utc);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &utc);
    return std::to_string(t.seconds) + ":" + std::to_string(t.increment) + " (" + stamp + ")";
}

sys_clock::time_point sys_from_cluster(cluster_time t) {
    return sys_clock::time_point(std::chrono::seconds(t.seconds));
}
std::uint64_t pack(cluster_time t) {
    return (std::uint64_t(t.seconds) << 32) | t.increment;
}
double seconds_between(std::int64_t from_ns, std::int64_t to_ns) {
    return from_ns >= to_ns ? 0.0 : double(to_ns - from_ns) / 1e9;
}

constexpr std::int64_t never = INT64_MIN;

// How much batch memory a routing scope accumulates before it adds it to the shared
// buffered-bytes gauge (one atomic add per step instead of per event); other scopes' bound
// checks may miss up to this much of it.
constexpr std::int64_t gauge_step = 1 << 20;

// Raises an atomic to `v` if it is lower (the lag's reference only moves forward).
template <class T>
void raise_to(std::atomic<T>& a, T v) {
    T cur = a.load(std::memory_order_relaxed);
    while (cur < v && !a.compare_exchange_weak(cur, v, std::memory_order_relaxed)) {
    }
}

// What a retry loop retries: picks the metrics its attempts feed.
enum class retry_kind { upload, record, checkpoint, load, open };

const char* state_op_name(retry_kind k) {
    switch (k) {
        case retry_kind::record:
            return "record";
        case retry_kind::checkpoint:
            return "checkpoint";
        case retry_kind::load:
            return "load";
        default:
            return "";
    }
}

bool is_cancellation(const error_code& ec) {
    return ec == errc::cancelled || ec == boost::system::errc::operation_canceled;
}
}  // namespace

const char* to_string(scope_activity a) noexcept {
    switch (a) {
        case scope_activity::starting:
            return "starting";
        case scope_activity::streaming:
            return "streaming";
        case scope_activity::idle:
            return "idle";
        case scope_activity::retrying:
            return "retrying";
        case scope_activity::failed:
            return "failed";
        case scope_activity::stopped:
            return "stopped";
        case scope_activity::standby:
            return "standby";
    }
    return "starting";
}

// A scope's status as other threads see it (status(), ready()). Written from the scope's
// strand, read from anywhere: numbers are relaxed atomics, the error text is behind a
// mutex taken only when an error happens or a snapshot is taken. Cells are created with
// the pipeline and never move, so a snapshot never races with run() setting up scopes.
struct scope_cell {
    explicit scope_cell(std::string i) : id(std::move(i)) {}
    const std::string id;
    std::atomic<bool> stream_open{false};
    std::atomic<bool> idle{false};
    std::atomic<bool> failed{false};
    std::atomic<bool> stopping{false};
    std::atomic<bool> finished{false};
    std::atomic<int> retrying{0};                    // retry loops now between attempts
    std::atomic<std::int64_t> retry_since{0};        // steady ns, when retrying became > 0
    std::atomic<std::int64_t> last_reply{0};         // steady ns: last reply (or pause)
    std::atomic<std::int64_t> caught_up_to{never};   // system ns: the lag's reference
    std::atomic<std::uint64_t> durable_time{0};      // packed clusterTime; 0: none yet
    std::atomic<std::int64_t> checkpoint_at{never};  // system ns
    std::atomic<std::uint64_t> events_received{0};
    std::atomic<std::uint64_t> events_written{0};
    std::atomic<std::uint64_t> objects_written{0};
    std::atomic<std::uint64_t> checkpoints{0};
    std::atomic<std::int64_t> buffered{0};
    std::atomic<std::int64_t> open_batches{0};
    std::atomic<bool> lease_held{false};
    std::atomic<std::uint64_t> lease_fence{0};

    mutable std::mutex mu;
    std::string last_error;
    sys_clock::time_point last_error_at{};
    std::string retry_what;  // the operation of the oldest running retry loop

    void set_error(std::string msg) {
        std::lock_guard lock(mu);
        last_error = std::move(msg);
        last_error_at = sys_clock::now();
    }
    // A new lease session starts on this scope: the previous session's end state goes.
    void new_session() {
        stream_open = false;
        idle = false;
        stopping = false;
        finished = false;
    }
};

class scope_runner;

struct pipeline_engine::impl : std::enable_shared_from_this<pipeline_engine::impl> {
    impl(asio::any_io_executor e, pipeline_config c, pipeline_services s)
        : ex(e),
          strand(asio::make_strand(e)),
          cfg(std::move(c)),
          svc(std::move(s)),
          upload_slots(e, std::max<std::uint32_t>(cfg.max_concurrent_uploads, 1)),
          all_done(strand),
          lease_timer(strand) {
        for (const auto& scope : cfg.scopes)
            cells.push_back(std::make_unique<scope_cell>(scope.id()));
    }

    void log(log_level lvl, const std::string& msg) const {
        if (svc.log)
            svc.log(lvl, msg);
    }

    pipeline_status overall() const noexcept {
        if (any_failed.load(std::memory_order_relaxed))
            return pipeline_status::failed;
        if (!running_now.load(std::memory_order_relaxed))
            return pipeline_status::stopped;
        if (retrying_loops.load(std::memory_order_relaxed) > 0)
            return pipeline_status::degraded;
        return pipeline_status::running;
    }
    // Called on every transition (rare); the lock keeps two scopes' updates from landing
    // in the wrong order in the gauge.
    void publish_status() {
        if (!svc.metrics)
            return;
        std::lock_guard lock(status_mu);
        svc.metrics->set_status(overall());
    }
    void add_buffered(std::int64_t delta, scope_cell& cell) {
        stats.buffered_bytes.fetch_add(static_cast<std::uint64_t>(delta),
                                       std::memory_order_relaxed);
        cell.buffered.fetch_add(delta, std::memory_order_relaxed);
        if (svc.metrics)
            svc.metrics->buffered_bytes.add(static_cast<double>(delta));
    }

    awaitable<error_code> run_all(diagnostics& diag);
    void stop_all(bool hard);
    void fail_from_leases(const error_code& ec, const diagnostics& d);
    void on_scope_done(const std::shared_ptr<scope_runner>& s);
    void start_runner(std::size_t index, std::uint64_t fence);

    // Leases (svc.leases set): one slot per scope, driven on `strand`.
    struct lease_slot {
        explicit lease_slot(std::chrono::milliseconds ttl) : state(ttl) {}
        lease_state state;
        std::shared_ptr<scope_runner> runner;  // the session running under the lease
        std::uint64_t session = 0;             // bumped on every acquisition
        clock::time_point next_refresh{};
        bool handing_off = false;  // stopping gracefully to leave the scope to another
        scope_metrics sm;
    };
    awaitable<void> lease_loop();
    awaitable<void> lease_watchdog();
    awaitable<void> release_lease(std::size_t index);
    void lose_lease(std::size_t index, const std::string& why);
    void rebalance(std::size_t share);

    asio::any_io_executor ex;
    strand_type strand;
    pipeline_config cfg;
    pipeline_services svc;
    pipeline_stats stats;
    std::string format_ext;
    // A slot is taken by sending into the channel and given back by receiving from it.
    asio::experimental::concurrent_channel<void(error_code)> upload_slots;

    std::vector<std::shared_ptr<scope_runner>> scopes;
    std::size_t running = 0;
    bool stop_requested = false;
    clock::time_point deadline = clock::time_point::max();
    bool hard_stopped = false;  // stop_all(true) was called; deadline is its grace period
    clock::duration hard_stop_grace() const;
    asio::steady_timer all_done;
    error_code first_error;
    diagnostics first_diag;
    std::vector<lease_slot> slots;
    asio::steady_timer lease_timer;  // wakes lease_loop()
    bool lease_active = false;       // lease_loop() runs
    int releases_pending = 0;
    std::size_t live_instances = 0;  // from the last heartbeat; 0: unknown

    // For status() and ready(), from any thread.
    std::vector<std::unique_ptr<scope_cell>> cells;
    std::atomic<bool> started{false};
    std::atomic<bool> running_now{false};
    std::atomic<bool> stopping{false};
    std::atomic<bool> any_failed{false};
    std::atomic<int> retrying_loops{0};
    std::atomic<std::size_t> collections{0};
    std::mutex status_mu;
    // The lease store as the lease loop last saw it, for ready(): steady ns since its
    // requests have been failing (0: answering) and the last failure (behind the mutex).
    // With every lease lost no scope reports the outage itself, so this one must.
    std::atomic<std::int64_t> lease_store_down_since{0};
    std::atomic<bool> leases_settled{false};  // a first acquisition round reached the store
    mutable std::mutex lease_store_mu;
    std::string lease_store_error;
    void lease_store_result(const error_code& ec, const diagnostics& d) {
        if (ec && ec != errc::lease_lost && !is_cancellation(ec)) {
            std::int64_t none = 0;
            lease_store_down_since.compare_exchange_strong(none, ticks(clock::now()),
                                                           std::memory_order_relaxed);
            std::lock_guard lock(lease_store_mu);
            lease_store_error = describe(ec, d);
        } else if (!ec || ec == errc::lease_lost) {
            lease_store_down_since.store(0, std::memory_order_relaxed);
        }
    }
};

// One watch scope: its stream reader, age sealer, committer and uploads, all on one strand.
class scope_runner : public std::enable_shared_from_this<scope_runner> {
    pipeline_engine::impl& p_;

public:
    scope_runner(pipeline_engine::impl& p, watch_scope scope, scope_cell& cell, std::size_t index,
                 std::uint64_t fence)
        : p_(p),
          strand(asio::make_strand(p.ex)),
          scope_(std::move(scope)),
          id_(scope_.id()),
          cell_(cell),
          metrics_(p.svc.metrics),
          age_timer_(strand),
          commit_timer_(strand),
          record_timer_(strand),
          cv_(strand),
          index_(index),
          fence_(fence) {
        if (metrics_)
            sm_ = metrics_->for_scope(id_);
    }

    awaitable<void> run();
    void request_stop(bool hard);
    // The scope's lease is gone (refused write, refused refresh, expiry): stop every
    // coroutine of this session now and drop what is not recorded.
    void lose_lease(const std::string& why);
    bool lease_was_lost() const noexcept { return lease_lost_; }
    std::size_t index() const noexcept { return index_; }

    strand_type strand;
    asio::cancellation_signal reader_sig;
    error_code error;
    diagnostics error_diag;
    const std::string& id() const noexcept { return id_; }
    scope_cell& cell() noexcept { return cell_; }

private:
    struct coll_state {
        std::string db;
        std::string coll;
        batcher b;
        replay_cursor replay;
        cluster_time last_time;    // of the open batch's last event
        clock::time_point opened;  // when the open batch got its first event
        // Room the next batch's encoder reserves up front (batch_encoder::reserve): set when
        // a batch filled up (count or bytes), 0 after one sealed by age or under pressure.
        std::size_t next_reserve = 0;
        // Metrics: tallies kept on the strand and added to the shared handles once per
        // reply (flush_stats), so an event costs no atomic operation.
        collection_metrics m;
        operation_counts batch_ops{};    // events of the open batch, by operation
        operation_counts pending_ops{};  // received since the last flush
        std::uint64_t pending_bson = 0;
        std::uint64_t pending_encoded = 0;
        bool dirty = false;  // listed in dirty_
    };
    struct upload_job {
        manifest_entry entry;
        std::string body;  // the object's bytes (compressed when a compressor is set)
        std::uint64_t batch_id = 0;
        coll_state* coll = nullptr;  // colls_ never drops an entry
        cluster_time last_time;
        clock::time_point opened;
        operation_counts ops{};
        // Off-strand compression (pipeline_config::compress_off_strand): while `compressed`
        // is false a handler on another thread reads `raw` and writes `body` and
        // `compress_error`, and the strand touches neither.
        std::string raw;  // the encoded batch, until compressed
        error_code compress_error;
        // Strand only.
        std::int64_t counted = 0;  // what this job adds to the buffered-bytes gauge
        bool compressed = true;
        bool recorded = false;  // its manifest entry is written (upload once compressed)
        bool dropped = false;   // given up while compressing: released when that ends
    };
    struct age_entry {
        clock::time_point deadline;
        coll_state* coll;
        std::uint64_t batch_id;
    };

    template <class F>
    awaitable<error_code> retrying(std::string what, retry_kind kind, F op,
                                   std::atomic<std::uint64_t>& retries, diagnostics& diag);
    void begin_retry(const std::string& what);
    void end_retry();
    void attempt_done(retry_kind kind, clock::duration took, const error_code& ec);
    void set_stream_open(bool open);
    void caught_up_to(sys_clock::time_point t);
    void reply_received(bool empty);
    coll_state& lookup(std::string_view db, std::string_view coll);
    coll_state& lookup_slow(std::string_view db, std::string_view coll);
    // Routes batch.events from `from` on; returns the index of the first event not routed:
    // the size when done, less when `bounded` and the memory bound was reached (the rest is
    // routed by a later call, after uploads freed memory).
    std::size_t route(const event_batch& batch, std::size_t from, bool bounded);
    // Whether reading must wait for memory to drain (max_buffered_bytes). May cut the
    // largest open batch so that something can drain.
    bool over_budget();
    void open_batch(coll_state& cs, const change_event& ev, std::uint64_t seq, byte_view before,
                    const manifest_entry* replayed);
    bool append(coll_state& cs, const change_event& ev, std::uint64_t seq, std::size_t op);
    void seal(coll_state& cs, seal_reason why);
    // Lets an open batch go unwritten: still pending in the watermark, so the next start
    // reads its events again.
    void drop_open(coll_state& cs);
    // Cuts the largest open batch that may be cut; false when none (`forced_open`: a rebuilt
    // batch, which must reach its recorded end, is open).
    bool seal_largest(bool& forced_open);
    // Compresses a sealed batch's bytes (on whichever thread calls it), counting its CPU time.
    error_code compress(std::string_view in, std::string& out) const;
    void start_compression(std::shared_ptr<upload_job> job);
    void compression_done(const std::shared_ptr<upload_job>& job);
    // Recorded and compressed: upload it (or let it go, when it cannot be uploaded).
    void ready_to_upload(std::shared_ptr<upload_job> job);
    // The job leaves the pipeline without an upload: its memory and in-flight slot go.
    void release(upload_job& job);
    void flush_stats();
    awaitable<void> upload(std::shared_ptr<upload_job> job);
    void start_upload(std::shared_ptr<upload_job> job);
    awaitable<void> recorder();
    awaitable<void> committer();
    awaitable<void> age_sealer();
    // Opens at `from`; without a token, at the scope's configured start (start_at) or now.
    awaitable<error_code> open_source(std::optional<resume_token> from);
    // pipeline_config::start_at for this scope (scope_start_at first); nullopt: now.
    std::optional<cluster_time> configured_start() const;
    // The stream's position is gone from the source's history: apply on_history_lost.
    awaitable<error_code> history_lost(const diagnostics& diag);
    awaitable<void> shutdown();
    awaitable<void> wait_cv();
    void notify() { cv_.cancel(); }
    void fail(const error_code& ec, std::string msg);

    watch_scope scope_;
    std::string id_;
    scope_cell& cell_;
    const pipeline_metrics* metrics_;
    scope_metrics sm_;
    std::vector<coll_state*> dirty_;  // collections with tallies to flush
    sys_clock::time_point last_reply_time_{};
    std::uint64_t resumes_seen_ = 0;
    std::unique_ptr<change_source> source_;
    std::unordered_map<std::string, std::unique_ptr<coll_state>, string_hash, std::equal_to<>>
        colls_;
    // The collections found last, checked before colls_: a stream's events mostly go to a
    // few busy collections, and comparing two short names costs less than building the
    // "db.coll" key and hashing it (~1.9 % of a drain's CPU; ~0.8 % with the check).
    // Replaced round robin.
    std::array<coll_state*, 8> recent_{};
    std::size_t recent_next_ = 0;
    std::string lookup_key_;
    std::string key_buf_;
    watermark_tracker tracker_;
    std::deque<age_entry> ages_;
    asio::steady_timer age_timer_;
    asio::steady_timer commit_timer_;
    asio::steady_timer record_timer_;
    std::deque<std::shared_ptr<upload_job>> record_queue_;
    asio::cancellation_signal recorder_sig_;
    asio::steady_timer cv_;  // wakes the reader in shutdown (uploads done, helpers exited)
    std::map<std::uint64_t, asio::cancellation_signal> upload_sigs_;
    asio::cancellation_signal committer_sig_;
    asio::cancellation_signal sealer_sig_;
    std::uint64_t event_seq_ = 0;
    std::uint64_t unflushed_bytes_ = 0;     // encoded since the last flush_stats()
    std::int64_t unflushed_held_ = 0;       // batch memory grown since then (the gauge's)
    std::uint64_t unflushed_events_ = 0;    // routed since the last flush_stats()
    std::uint64_t unflushed_filtered_ = 0;  // dropped by the filter since then
    filtered_event filtered_;               // the filter's replacement for the current event
    std::uint64_t next_upload_id_ = 0;
    std::uint64_t next_manifest_seq_ = 1;
    std::size_t inflight_ = 0;
    bool reading_ = false;
    bool stopping_ = false;
    bool hard_stop_ = false;
    bool helpers_exit_ = false;
    bool recorder_done_ = false;  // nothing sealed from now on can be recorded
    int helpers_running_ = 0;
    bool needs_first_checkpoint_ = false;
    bool first_checkpoint_saved_ = false;
    std::size_t index_;    // in pipeline_config::scopes
    std::uint64_t fence_;  // with leases: the session's fencing token
    bool lease_lost_ = false;
    bool emitting_ = false;  // request_stop() is emitting the cancellation signals
};

// ---------------------------------------------------------------------------------------------

void scope_runner::lose_lease(const std::string& why) {
    if (lease_lost_ || hard_stop_)
        return;
    lease_lost_ = true;
    p_.log(log_level::warn, "scope " + id_ + ": lease lost (" + why +
                                "); stopping its work now (what is not recorded is dropped; "
                                "the next owner replays it)");
    cell_.set_error("lease lost: " + why);
    request_stop(true);
}

void scope_runner::fail(const error_code& ec, std::string msg) {
    if (ec == errc::lease_lost && p_.svc.leases) {
        // Another instance holds the scope now: not a failure of the pipeline.
        lose_lease(msg);
        return;
    }
    if (!error) {
        error = ec;
        error_diag.message = std::move(msg);
        p_.log(log_level::error, "scope " + id_ + ": " + error_diag.message);
        cell_.set_error(error_diag.message);
        cell_.failed = true;
        p_.any_failed = true;
        p_.publish_status();
    }
    request_stop(false);
}

void scope_runner::request_stop(bool hard) {
    cell_.stopping = true;
    if (hard && !hard_stop_) {
        hard_stop_ = true;
        stopping_ = true;
        emitting_ = true;
        reader_sig.emit(asio::cancellation_type::terminal);
        for (auto& [id, sig] : upload_sigs_)
            sig.emit(asio::cancellation_type::terminal);
        committer_sig_.emit(asio::cancellation_type::terminal);
        recorder_sig_.emit(asio::cancellation_type::terminal);
        sealer_sig_.emit(asio::cancellation_type::terminal);
        emitting_ = false;
        notify();
        return;
    }
    if (!stopping_) {
        stopping_ = true;
        if (reading_)
            reader_sig.emit(asio::cancellation_type::terminal);
    }
}

void scope_runner::begin_retry(const std::string& what) {
    if (cell_.retrying.fetch_add(1, std::memory_order_relaxed) == 0) {
        cell_.retry_since.store(ticks(clock::now()), std::memory_order_relaxed);
        std::lock_guard lock(cell_.mu);
        cell_.retry_what = what;
    }
    p_.retrying_loops.fetch_add(1, std::memory_order_relaxed);
    p_.publish_status();
}

void scope_runner::end_retry() {
    cell_.retrying.fetch_sub(1, std::memory_order_relaxed);
    p_.retrying_loops.fetch_sub(1, std::memory_order_relaxed);
    p_.publish_status();
}

// One attempt of a retried operation finished: its latency and failure feed the metrics.
void scope_runner::attempt_done(retry_kind kind, clock::duration took, const error_code& ec) {
    if (!metrics_)
        return;
    const bool counted = !hard_stop_ && !is_cancellation(ec);
    if (kind == retry_kind::upload) {
        sm_.upload_attempt_duration.observe(took);
        if (ec && counted)
            sm_.upload_error(ec);
    } else if (kind != retry_kind::open && (counted || !ec)) {
        metrics_->state_store_op(state_op_name(kind), took, ec);
    }
}

template <class F>
awaitable<error_code> scope_runner::retrying(std::string what, retry_kind kind, F op,
                                             std::atomic<std::uint64_t>& retries,
                                             diagnostics& diag) {
    backoff bo(p_.cfg.retry);
    asio::steady_timer timer(strand);
    bool in_retry = false;
    error_code result;
    for (;;) {
        diag.clear();
        const auto t0 = clock::now();
        error_code ec = co_await op(diag);
        attempt_done(kind, clock::now() - t0, ec);
        if (!ec)
            break;
        if (hard_stop_ || (cell_.stopping && is_cancellation(ec))) {
            // Stopping (shutdown, or a lease handed over or lost): the operation was cancelled
            // on purpose, which is not a failure of the scope.
            result = make_error_code(errc::cancelled);
            break;
        }
        if (!is_cancellation(ec))
            cell_.set_error(what + " failed: " + describe(ec, diag));
        if (!bo.should_retry(ec)) {
            result = ec;
            break;
        }
        ++retries;
        if (kind == retry_kind::upload)
            sm_.upload_retry(ec);
        if (!in_retry) {
            in_retry = true;
            // /ready's reason names the system to look at (S3, Redis, …), not only the step.
            std::string target;
            if (kind == retry_kind::upload)
                target = " to " + p_.svc.dest->describe();
            else if (kind != retry_kind::open)
                target = " (state store " + p_.svc.state->describe() + ")";
            begin_retry(what + target);
        }
        auto delay = bo.next_delay();
        p_.log(log_level::warn, "scope " + id_ + ": " + what + " failed (" + describe(ec, diag) +
                                    "); retrying in " + std::to_string(delay.count()) + " ms");
        timer.expires_after(delay);
        auto [wec] = co_await timer.async_wait(nothrow);
        if (wec) {
            result = make_error_code(errc::cancelled);
            break;
        }
    }
    if (in_retry)
        end_retry();
    co_return result;
}

void scope_runner::set_stream_open(bool open) {
    cell_.stream_open.store(open, std::memory_order_relaxed);
    if (open)
        cell_.last_reply.store(ticks(clock::now()), std::memory_order_relaxed);
}

// Everything up to `t` is durable: the lag's reference moves forward to it.
void scope_runner::caught_up_to(sys_clock::time_point t) {
    const auto ns = ticks(t);
    if (ns <= cell_.caught_up_to.load(std::memory_order_relaxed))
        return;
    cell_.caught_up_to.store(ns, std::memory_order_relaxed);
    sm_.lag.set(t);
}

void scope_runner::reply_received(bool empty) {
    last_reply_time_ = sys_clock::now();
    cell_.last_reply.store(ticks(clock::now()), std::memory_order_relaxed);
    const bool nothing_pending = tracker_.pending() == 0;
    cell_.idle.store(empty && nothing_pending, std::memory_order_relaxed);
    // Every event read so far is durable: caught up to this reply.
    if (nothing_pending)
        caught_up_to(last_reply_time_);
    if (metrics_) {
        // Resumes the source performed inside next() (network errors, resumable server
        // errors) since the last reply.
        const auto resumes = source_->resume_count();
        for (; resumes_seen_ < resumes; ++resumes_seen_)
            sm_.stream_resume("resumable_error");
    }
}

scope_runner::coll_state& scope_runner::lookup(std::string_view db, std::string_view coll) {
    for (coll_state* c : recent_) {
        if (c == nullptr)
            break;
        if (same_name(c->coll, coll) && same_name(c->db, db))
            return *c;
    }
    coll_state& found = lookup_slow(db, coll);
    recent_[recent_next_] = &found;
    recent_next_ = (recent_next_ + 1) % recent_.size();
    return found;
}

scope_runner::coll_state& scope_runner::lookup_slow(std::string_view db, std::string_view coll) {
    lookup_key_.assign(db);
    lookup_key_.push_back('.');
    lookup_key_.append(coll);
    auto it = colls_.find(std::string_view(lookup_key_));
    if (it == colls_.end()) {
        auto cs = std::make_unique<coll_state>();
        cs->db.assign(db);
        cs->coll.assign(coll);
        if (metrics_) {
            // The collection label: the collection's name, or "db.coll" in a deployment
            // scope, where names repeat across databases.
            cs->m = metrics_->for_collection(id_, scope_.kind == watch_scope::level::deployment
                                                      ? std::string_view(lookup_key_)
                                                      : coll);
            metrics_->set_active_collections(p_.collections.fetch_add(1) + 1);
        }
        it = colls_.emplace(lookup_key_, std::move(cs)).first;
    }
    return *it->second;
}

void scope_runner::open_batch(coll_state& cs, const change_event& ev, std::uint64_t seq,
                              byte_view before, const manifest_entry* replayed) {
    auto id = tracker_.open(seq, resume_token(before));
    std::string key;
    if (replayed) {
        key = replayed->key;  // the recorded key, whatever the key template says today
    } else {
        const std::string hash = resume_token(ev.token).short_hash();
        p_.svc.keys->render({ev.db, ev.coll, ev.time, hash, p_.format_ext}, key);
    }
    auto enc = p_.svc.encoder->open(key);
    if (cs.next_reserve)
        enc->reserve(cs.next_reserve);
    cs.b.open(std::move(enc), std::move(key), ev, id, seq, replayed ? replayed->seq : 0);
    unflushed_held_ += static_cast<std::int64_t>(cs.b.held_bytes());  // room reserved up front
    cs.opened = clock::now();
    cs.batch_ops = {};
    cell_.open_batches.fetch_add(1, std::memory_order_relaxed);
    if (!replayed) {
        const bool was_empty = ages_.empty();
        ages_.push_back({cs.opened + p_.cfg.batch.max_age, &cs, id});
        if (was_empty)
            age_timer_.cancel();
    }
}

bool scope_runner::append(coll_state& cs, const change_event& ev, std::uint64_t seq,
                          std::size_t op) {
    const auto before = cs.b.buffered_bytes();
    const auto held_before = static_cast<std::int64_t>(cs.b.held_bytes());
    diagnostics d;
    if (auto ec = cs.b.append(ev, seq, d)) {
        cs.m.failed(ec);
        // A failed append may still have grown the buffer (it keeps its capacity).
        unflushed_held_ += static_cast<std::int64_t>(cs.b.held_bytes()) - held_before;
        fail(ec, "cannot encode an event of " + cs.db + "." + cs.coll + ": " + describe(ec, d));
        return false;
    }
    const auto added = cs.b.buffered_bytes() - before;
    unflushed_bytes_ += added;
    unflushed_held_ += static_cast<std::int64_t>(cs.b.held_bytes()) - held_before;
    cs.last_time = ev.time;
    if (metrics_) {
        ++cs.batch_ops[op];
        cs.pending_encoded += added;
    }
    return true;
}

// The process-wide counters are shared between threads; adding to them once per reply
// (and before a seal moves bytes around) instead of once per event keeps lock-prefixed
// instructions off the per-event path.
void scope_runner::flush_stats() {
    if (unflushed_held_) {
        p_.add_buffered(unflushed_held_, cell_);
        unflushed_held_ = 0;
    }
    if (unflushed_bytes_) {
        p_.stats.bytes_encoded.fetch_add(unflushed_bytes_, std::memory_order_relaxed);
        unflushed_bytes_ = 0;
    }
    if (unflushed_filtered_) {
        p_.stats.events_filtered.fetch_add(unflushed_filtered_, std::memory_order_relaxed);
        unflushed_filtered_ = 0;
    }
    if (unflushed_events_) {
        p_.stats.events_received.fetch_add(unflushed_events_, std::memory_order_relaxed);
        cell_.events_received.fetch_add(unflushed_events_, std::memory_order_relaxed);
        unflushed_events_ = 0;
    }
    for (coll_state* cs : dirty_) {
        cs->m.received(cs->pending_ops, cs->pending_bson, cs->pending_encoded);
        cs->pending_ops = {};
        cs->pending_bson = 0;
        cs->pending_encoded = 0;
        cs->dirty = false;
    }
    dirty_.clear();
}

std::size_t scope_runner::route(const event_batch& batch, std::size_t from, bool bounded) {
    const std::size_t n = batch.events.size();
    // The stream position before events[from]; mid-reply, the last routed event's token.
    byte_view before = from == 0 ? tracker_.position().bytes() : batch.events[from - 1].token;
    for (std::size_t i = from; i < n; ++i) {
        if (bounded) {
            // The bound is checked per event, not per reply: a 16 MiB reply encodes to more
            // than that, which is what a check before reading let through. The shared gauge
            // learns this scope's growth every gauge_step bytes, for the other scopes' checks.
            if (unflushed_held_ >= gauge_step)
                flush_stats();
            if (over_budget()) {
                flush_stats();
                if (i > 0)
                    tracker_.set_position(batch.events[i - 1].token);
                return i;
            }
        }
        const change_event& in = batch.events[i];
        const std::uint64_t seq = ++event_seq_;
        ++unflushed_events_;
        const change_event* evp = &in;
        if (p_.svc.filter) {
            diagnostics fd;
            const auto verdict = p_.svc.filter->apply(in, filtered_, fd);
            if (verdict == filter_verdict::drop) {
                // Filtered: the watermark passes it like an event in a durable object.
                ++unflushed_filtered_;
                before = in.token;
                continue;
            }
            if (verdict == filter_verdict::fail) {
                fail(make_error_code(errc::unencodable_event),
                     "the event filter rejected an event of " + std::string(in.db) + "." +
                         std::string(in.coll) + ": " + fd.message);
                flush_stats();
                return n;
            }
            if (verdict == filter_verdict::replace) {
                if (!std::equal(in.token.begin(), in.token.end(), filtered_.event.token.begin(),
                                filtered_.event.token.end())) {
                    fail(make_error_code(errc::unencodable_event),
                         "the event filter changed the _id (resume token) of an event of " +
                             std::string(in.db) + "." + std::string(in.coll));
                    flush_stats();
                    return n;
                }
                evp = &filtered_.event;
            }
        }
        // A replacement's views are only valid until the next event: `before` keeps
        // pointing into the reply (the token is the same bytes).
        const change_event& ev = *evp;
        coll_state& cs = lookup(ev.db, ev.coll);
        std::size_t op = 0;
        if (metrics_) {
            op = static_cast<std::size_t>(to_metric_operation(ev.operation));
            ++cs.pending_ops[op];
            cs.pending_bson += ev.raw.size();
            if (!cs.dirty) {
                cs.dirty = true;
                dirty_.push_back(&cs);
            }
        }
        if (cs.replay.active()) {
            auto d = cs.replay.on_event(ev);
            if (d.mismatch) {
                p_.log(log_level::warn, "scope " + id_ + ": a recorded batch of " + cs.db + "." +
                                            cs.coll +
                                            " starts before the resume point and is not "
                                            "durable; writing its events as a new batch");
            }
            if (d.what == replay_cursor::step::skip) {
                ++p_.stats.events_replayed_skipped;
                sm_.events_replay_skipped.inc();
                if (d.last)
                    tracker_.replayed_durable(d.entry.key, seq);
                before = in.token;
                continue;
            }
            if (d.what == replay_cursor::step::force) {
                if (d.first) {
                    // A normal batch can only be open here if the manifest lost an entry
                    // (it never does): cut it so the recorded boundary holds.
                    if (cs.b.is_open())
                        seal(cs, seal_reason::replay);
                    open_batch(cs, ev, seq, before, &d.entry);
                }
                if (!append(cs, ev, seq, op)) {
                    flush_stats();
                    return n;
                }
                if (d.last)
                    seal(cs, seal_reason::replay);
                before = in.token;
                continue;
            }
        }
        if (!cs.b.is_open())
            open_batch(cs, ev, seq, before, nullptr);
        if (!append(cs, ev, seq, op)) {
            flush_stats();
            return n;
        }
        if (auto why = cs.b.should_seal(p_.cfg.batch))
            seal(cs, *why);
        before = in.token;
    }
    flush_stats();
    if (!batch.post_batch_token.empty())
        tracker_.set_position(batch.post_batch_token);
    return n;
}

bool scope_runner::over_budget() {
    const auto held =
        static_cast<std::int64_t>(p_.stats.buffered_bytes.load(std::memory_order_relaxed));
    if (held + unflushed_held_ < static_cast<std::int64_t>(p_.cfg.max_buffered_bytes))
        return false;
    if (inflight_ > 0)
        return true;  // our uploads will free memory
    // Open batches alone can fill the budget; with nothing of ours in flight, no upload
    // would ever free it. Cut the largest batch so memory drains.
    flush_stats();
    bool forced_open = false;
    if (seal_largest(forced_open))
        return true;
    // Nothing to cut. A rebuilt batch must reach its recorded end before anything can be
    // freed, so read on (it was within the limits when it was recorded). With nothing open
    // here the memory is other scopes', and their uploads free it: wait.
    return !forced_open;
}

void scope_runner::drop_open(coll_state& cs) {
    p_.add_buffered(-static_cast<std::int64_t>(cs.b.held_bytes()), cell_);
    cs.b.drop();
    cell_.open_batches.fetch_sub(1, std::memory_order_relaxed);
}

void scope_runner::seal(coll_state& cs, seal_reason why) {
    flush_stats();
    if (hard_stop_ || recorder_done_) {
        // No recorder will take this batch (a hard stop, or the recorder failed): queued,
        // it would hold inflight_ forever and the scope would never finish stopping.
        drop_open(cs);
        return;
    }
    const auto encoded = cs.b.buffered_bytes();
    const auto held = static_cast<std::int64_t>(cs.b.held_bytes());  // what the gauge has
    // A collection that filled a batch will probably fill the next one as well: reserve
    // its size (an eighth more for variation, at most batch.max_bytes) when it opens. A
    // batch sealed by age says the collection is not that busy: let the next one grow.
    const bool filled = why == seal_reason::count || why == seal_reason::bytes;
    cs.next_reserve = filled ? static_cast<std::size_t>(std::min<std::uint64_t>(
                                   encoded + encoded / 8, p_.cfg.batch.max_bytes))
                             : 0;
    sealed_batch sb = cs.b.seal(why);
    ++p_.stats.batches_sealed[static_cast<std::size_t>(sb.reason)];
    cell_.open_batches.fetch_sub(1, std::memory_order_relaxed);
    cs.m.sealed(sb.reason, sb.count, encoded);

    auto job = std::make_shared<upload_job>();
    const bool compressed = p_.svc.compression && !p_.svc.encoder->info().compresses_itself;
    if (compressed && p_.cfg.compress_off_strand) {
        // Compressed on another thread (start_compression below); the encoded bytes stay
        // counted until then.
        job->raw = std::move(sb.body);
        job->compressed = false;
        job->counted = static_cast<std::int64_t>(job->raw.capacity());
    } else if (compressed) {
        if (auto ec = compress(sb.body, job->body)) {
            // The batch stays pending, so the watermark never passes it.
            p_.add_buffered(-held, cell_);
            fail(ec, "compressing " + sb.key + " failed: " + ec.message());
            return;
        }
        job->counted = static_cast<std::int64_t>(job->body.capacity());
    } else {
        job->body = std::move(sb.body);
        job->counted = static_cast<std::int64_t>(job->body.capacity());
    }
    // The encoded buffer (when compressed inline) is freed when `sb` goes, below.
    p_.add_buffered(job->counted - held, cell_);

    tracker_.sealed(sb.batch_id, sb.last_seq, sb.key);
    job->coll = &cs;
    job->last_time = cs.last_time;
    job->opened = cs.opened;
    job->ops = cs.batch_ops;
    job->batch_id = sb.batch_id;
    job->entry.seq = sb.manifest_seq ? sb.manifest_seq : next_manifest_seq_++;
    job->entry.key = std::move(sb.key);
    job->entry.db = cs.db;
    job->entry.coll = cs.coll;
    job->entry.first = std::move(sb.first);
    job->entry.last = std::move(sb.last);
    job->entry.count = sb.count;

    // Recorded strictly in seal order (see recorder()); uploaded once recorded and
    // compressed, whichever comes last.
    ++inflight_;
    record_queue_.push_back(job);
    record_timer_.cancel();
    if (!job->compressed)
        start_compression(std::move(job));
}

error_code scope_runner::compress(std::string_view in, std::string& out) const {
    // Counted in CPU time, not wall time: the compressing thread may share its core.
    const double t0 = metrics_ ? thread_cpu_seconds() : 0.0;
    const error_code ec = p_.svc.compression->compress(in, out);
    if (metrics_)
        metrics_->compress_seconds.add(std::max(0.0, thread_cpu_seconds() - t0));
    return ec;
}

void scope_runner::start_compression(std::shared_ptr<upload_job> job) {
    // On the executor, not on this strand: another thread compresses while the strand goes
    // on reading and encoding. The handler touches only raw, body and compress_error; the
    // strand leaves them alone until compression_done. The job holds the scope (and through
    // inflight_, run()) until then, so the compressor outlives the call.
    asio::post(p_.ex, [self = shared_from_this(), job = std::move(job)]() mutable {
        job->compress_error = self->compress(job->raw, job->body);
        auto& strand = self->strand;
        asio::post(strand,
                   [self = std::move(self), job = std::move(job)] { self->compression_done(job); });
    });
}

void scope_runner::compression_done(const std::shared_ptr<upload_job>& job) {
    job->compressed = true;
    job->raw = std::string();  // the encoded bytes go now, not with the job
    if (job->compress_error) {
        // The batch stays pending, so the watermark never passes it.
        if (!job->dropped && !hard_stop_)
            fail(job->compress_error,
                 "compressing " + job->entry.key + " failed: " + job->compress_error.message());
        job->body = std::string();
    }
    p_.add_buffered(static_cast<std::int64_t>(job->body.capacity()) - job->counted, cell_);
    job->counted = static_cast<std::int64_t>(job->body.capacity());
    if (job->dropped)
        release(*job);
    else if (job->recorded)
        ready_to_upload(job);
}

void scope_runner::ready_to_upload(std::shared_ptr<upload_job> job) {
    if (job->compress_error || hard_stop_) {
        // Not uploaded: still pending in the watermark, so the next start writes it.
        release(*job);
        return;
    }
    start_upload(std::move(job));
}

void scope_runner::release(upload_job& job) {
    job.body = std::string();
    p_.add_buffered(-job.counted, cell_);
    job.counted = 0;
    --inflight_;
    notify();
}

void scope_runner::start_upload(std::shared_ptr<upload_job> job) {
    const auto uid = ++next_upload_id_;
    asio::co_spawn(
        strand, [self = shared_from_this(), job] { return self->upload(job); },
        asio::bind_cancellation_slot(
            upload_sigs_[uid].slot(), [self = shared_from_this(), uid](auto&&...) {
                // The coroutine is gone: its cancellation handler must leave the slot now,
                // or a hard stop before the erase below runs would emit into freed memory
                // (seen as a SIGSEGV after a lease theft in the chaos run). Not while the
                // signal is being emitted (its handler is running); the erase is posted for
                // the same reason.
                if (!self->emitting_)
                    self->upload_sigs_[uid].slot().clear();
                asio::post(self->strand, [self, uid] { self->upload_sigs_.erase(uid); });
            }));
}

// Writes manifest entries one at a time in seal order, so that a recorded entry implies
// every batch sealed before it is recorded too. Replay relies on that: after a restart, the
// first event of a collection seen again belongs to that collection's first recorded entry.
awaitable<void> scope_runner::recorder() {
    co_await asio::this_coro::throw_if_cancelled(false);
    diagnostics diag;
    // At most this many entries per record_many() call (a bounded frame / script call).
    constexpr std::size_t max_record_group = 256;
    std::vector<manifest_entry> record_group;
    for (;;) {
        if (hard_stop_)
            break;
        if (record_queue_.empty()) {
            if (helpers_exit_)
                break;
            record_timer_.expires_at(clock::time_point::max());
            co_await record_timer_.async_wait(nothrow);
            continue;
        }
        // Every entry queued meanwhile goes in one call: a store writes them together (one
        // journal frame and fsync, one round trip), and since what is durable after a failure
        // is a prefix, "recorded implies every earlier batch recorded" still holds. A retry
        // records the whole group again (replacing an entry by key is idempotent).
        const std::size_t n = std::min(record_queue_.size(), max_record_group);
        std::span<const manifest_entry> entries(&record_queue_.front()->entry, 1);
        if (n > 1) {
            record_group.clear();
            for (std::size_t i = 0; i < n; ++i)
                record_group.push_back(record_queue_[i]->entry);
            entries = record_group;
        }
        const std::string what =
            n == 1 ? "recording manifest entry " + entries[0].key
                   : "recording " + std::to_string(n) + " manifest entries from " + entries[0].key;
        error_code ec = co_await retrying(
            what, retry_kind::record,
            [&](diagnostics& d) {
                return p_.svc.leases ? p_.svc.leases->record_many(id_, fence_, entries, d)
                                     : p_.svc.state->record_many(id_, entries, d);
            },
            p_.stats.state_retries, diag);
        if (ec) {
            if (!hard_stop_ && ec != errc::cancelled)
                fail(ec, what + " failed: " + describe(ec, diag));
            break;
        }
        for (std::size_t i = 0; i < n; ++i) {
            auto job = std::move(record_queue_.front());
            record_queue_.pop_front();
            job->recorded = true;
            if (job->compressed)
                ready_to_upload(std::move(job));
        }
    }
    // Whatever was not recorded is dropped: it is still pending in the watermark, so the
    // next start reads those events again.
    for (auto& job : record_queue_) {
        if (job->compressed)
            release(*job);
        else
            job->dropped = true;  // released when its compression ends
    }
    record_queue_.clear();
    recorder_done_ = true;
    --helpers_running_;
    notify();
}

awaitable<void> scope_runner::upload(std::shared_ptr<upload_job> job) {
    co_await asio::this_coro::throw_if_cancelled(false);
    diagnostics diag;
    error_code ec;
    {
        auto [sec] = co_await p_.upload_slots.async_send(error_code{}, nothrow);
        if (sec) {
            ec = make_error_code(errc::cancelled);
        } else {
            sealed_object obj{job->entry.key, job->body, p_.svc.encoder->info().content_type,
                              p_.svc.compression && !p_.svc.encoder->info().compresses_itself
                                  ? p_.svc.compression->content_encoding()
                                  : std::string_view{},
                              job->entry.count};
            const auto t0 = clock::now();
            ec = co_await retrying(
                "uploading " + job->entry.key, retry_kind::upload,
                [&](diagnostics& d) { return p_.svc.dest->put(obj, d); }, p_.stats.upload_retries,
                diag);
            if (!ec)
                sm_.uploaded(clock::now() - t0, job->body.size());
            p_.upload_slots.try_receive([](error_code) {});
        }
    }
    const auto object_bytes = job->body.size();
    job->body = std::string();  // freed now, as the gauge says
    p_.add_buffered(-job->counted, cell_);
    job->counted = 0;
    if (!ec) {
        ++p_.stats.objects_written;
        p_.stats.events_written += job->entry.count;
        p_.stats.bytes_written += object_bytes;
        cell_.objects_written.fetch_add(1, std::memory_order_relaxed);
        cell_.events_written.fetch_add(job->entry.count, std::memory_order_relaxed);
        p_.log(log_level::debug, "scope " + id_ + ": wrote " + job->entry.key + " (" +
                                     std::to_string(job->entry.count) + " events)");
        tracker_.durable(job->batch_id);
        const auto now = sys_clock::now();
        if (metrics_) {
            job->coll->m.durable(job->ops, object_bytes, clock::now() - job->opened,
                                 now - sys_from_cluster(job->last_time));
        }
        raise_to(cell_.durable_time, pack(job->last_time));
        caught_up_to(sys_from_cluster(job->last_time));
        if (tracker_.pending() == 0 && last_reply_time_ != sys_clock::time_point{})
            caught_up_to(last_reply_time_);  // and so is everything read since
        commit_timer_.cancel();
    } else if (!hard_stop_ && ec != errc::cancelled) {
        fail(ec, "writing " + job->entry.key + " failed: " + describe(ec, diag));
    }
    --inflight_;
    notify();
}

bool scope_runner::seal_largest(bool& forced_open) {
    coll_state* largest = nullptr;
    for (auto& [name, cs] : colls_) {
        if (!cs->b.is_open())
            continue;
        if (cs->b.is_forced()) {
            forced_open = true;
            continue;
        }
        if (!largest || cs->b.held_bytes() > largest->b.held_bytes())
            largest = cs.get();
    }
    if (!largest)
        return false;
    seal(*largest, seal_reason::bytes);
    largest->next_reserve = 0;  // cut short to free memory: no reason to reserve its size
    return true;
}

awaitable<void> scope_runner::committer() {
    co_await asio::this_coro::throw_if_cancelled(false);
    commit_request req;
    diagnostics diag;
    clock::time_point last_commit{};
    for (;;) {
        if (hard_stop_)
            break;
        // Coalesce: while objects keep becoming durable, at most one checkpoint per
        // checkpoint_min_interval (not for the starting position, nor when stopping).
        const auto due = last_commit + p_.cfg.checkpoint_min_interval;
        if (first_checkpoint_saved_ && !helpers_exit_ && !stopping_ && clock::now() < due) {
            commit_timer_.expires_at(due);
            co_await commit_timer_.async_wait(nothrow);
            continue;
        }
        if (tracker_.take_commit(req)) {
            auto ec = co_await retrying(
                "saving checkpoint", retry_kind::checkpoint,
                [&](diagnostics& d) {
                    return p_.svc.leases ? p_.svc.leases->commit(id_, fence_, req, d)
                                         : p_.svc.state->commit(id_, req, d);
                },
                p_.stats.state_retries, diag);
            if (ec) {
                if (!hard_stop_)
                    fail(ec, "saving checkpoint failed: " + describe(ec, diag));
                break;
            }
            ++p_.stats.checkpoints_saved;
            {
                const auto now = sys_clock::now();
                sm_.checkpoint_saved(now);
                cell_.checkpoint_at.store(ticks(now), std::memory_order_relaxed);
                cell_.checkpoints.fetch_add(1, std::memory_order_relaxed);
            }
            first_checkpoint_saved_ = true;
            last_commit = clock::now();
            notify();
            continue;  // more may have become durable meanwhile
        }
        if (helpers_exit_)
            break;
        commit_timer_.expires_after(p_.cfg.checkpoint_interval);
        co_await commit_timer_.async_wait(nothrow);
    }
    --helpers_running_;
    notify();
}

awaitable<void> scope_runner::age_sealer() {
    co_await asio::this_coro::throw_if_cancelled(false);
    for (;;) {
        if (helpers_exit_ || hard_stop_)
            break;
        if (ages_.empty()) {
            age_timer_.expires_at(clock::time_point::max());
        } else {
            age_timer_.expires_at(ages_.front().deadline);
        }
        co_await age_timer_.async_wait(nothrow);
        if (helpers_exit_ || hard_stop_)
            break;
        const auto now = clock::now();
        while (!ages_.empty() && ages_.front().deadline <= now) {
            age_entry e = ages_.front();
            ages_.pop_front();
            coll_state& cs = *e.coll;
            if (cs.b.is_open() && cs.b.batch_id() == e.batch_id && !cs.b.is_forced()) {
                seal(cs, seal_reason::age);
            }
        }
    }
    --helpers_running_;
    notify();
}

awaitable<void> scope_runner::wait_cv() {
    cv_.expires_at(clock::time_point::max());
    co_await cv_.async_wait(nothrow);
}

std::optional<cluster_time> scope_runner::configured_start() const {
    if (auto it = p_.cfg.scope_start_at.find(id_); it != p_.cfg.scope_start_at.end())
        return it->second;
    return p_.cfg.start_at;
}

awaitable<error_code> scope_runner::open_source(std::optional<resume_token> from) {
    diagnostics diag;
    // Lives in this frame: open() is a coroutine and keeps the reference.
    start_position start;
    start.resume_after = std::move(from);
    if (!start.resume_after)
        start.start_at = configured_start();
    auto ec = co_await retrying(
        "opening change stream", retry_kind::open,
        [&](diagnostics& d) { return source_->open(start, d); }, p_.stats.source_reopens, diag);
    if (ec == errc::history_lost) {
        ec = co_await history_lost(diag);
        co_return ec;
    }
    if (ec && !is_cancellation(ec))
        fail(ec, "opening the change stream failed: " + describe(ec, diag));
    co_return ec;
}

awaitable<error_code> scope_runner::history_lost(const diagnostics& diag) {
    const std::string what =
        diag.message.empty() ? std::string("the source reported history lost") : diag.message;
    // Nothing read yet and a start_at: that operation time is what the source no longer has.
    const bool from_start_at = tracker_.position().empty() && configured_start();
    if (p_.cfg.on_history_lost == history_lost_policy::fail) {
        fail(make_error_code(errc::history_lost),
             std::string(from_start_at ? "the start_at operation time" : "the saved position") +
                 " is no longer in the change stream history, so the events since then cannot "
                 "be read (" +
                 what +
                 "). To continue from the current time and accept the gap, set "
                 "[mongodb] on_history_lost = \"restart_from_now\"; to avoid it, give the oplog "
                 "more room than the longest time penne may be down");
        co_return make_error_code(errc::history_lost);
    }
    const std::time_t now = sys_clock::to_time_t(sys_clock::now());
    std::tm utc{};
    gmtime_r(&now, &utc);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &utc);
    const std::string msg =
        "history lost, restarting from now: the events between the saved position and now (" +
        std::string(stamp) + ") were not captured (" + what + ")";
    p_.log(log_level::error, "scope " + id_ + ": " + msg);
    cell_.set_error(msg);
    if (metrics_)
        sm_.history_lost.inc();
    co_await source_->close();
    diagnostics d;
    const start_position now_position{};
    auto ec = co_await retrying(
        "opening change stream", retry_kind::open,
        [&](diagnostics& dd) { return source_->open(now_position, dd); }, p_.stats.source_reopens,
        d);
    if (ec && !is_cancellation(ec))
        fail(ec,
             "opening the change stream (from now, after history lost) failed: " + describe(ec, d));
    co_return ec;
}

awaitable<void> scope_runner::run() {
    co_await asio::this_coro::throw_if_cancelled(false);
    auto self = shared_from_this();
    reading_ = true;

    // 1. Where did we stop, and which batches were cut but not yet covered by the watermark?
    scope_state saved;
    diagnostics diag;
    auto ec = co_await retrying(
        "loading state", retry_kind::load,
        [&](diagnostics& d) { return p_.svc.state->load(id_, saved, d); }, p_.stats.state_retries,
        diag);
    if (ec) {
        if (ec != errc::cancelled)
            fail(ec, "loading state failed: " + describe(ec, diag));
        reading_ = false;
        cell_.finished = true;
        co_return;
    }
    std::size_t replayed = 0;
    for (auto& e : saved.entries) {
        next_manifest_seq_ = std::max(next_manifest_seq_, e.seq + 1);
        lookup(e.db, e.coll).replay.push(std::move(e));
        ++replayed;
    }
    if (saved.watermark)
        tracker_.set_position(*saved.watermark);
    needs_first_checkpoint_ = !saved.watermark;
    const auto start_at = configured_start();
    std::string where;
    if (saved.watermark)
        where = start_at ? "from saved checkpoint (start_at is not used: a saved token always wins)"
                         : "from saved checkpoint";
    else if (start_at)
        where = "at operation time " + describe_operation_time(*start_at) +
                " (start_at, as the scope has no saved token; a saved token always wins)";
    else
        where = "at now";
    p_.log(log_level::info,
           "scope " + id_ + ": starting " + where +
               (replayed ? ", replaying " + std::to_string(replayed) + " recorded batches" : ""));

    // 2. The stream, and the helpers that run beside the reader on this strand.
    source_ = p_.svc.sources->make(strand, scope_);
    if (!stopping_)
        ec = co_await open_source(saved.watermark);
    // On a fresh start the stream counts as open once its starting position is saved:
    // from then on nothing it reports can be lost (see the first-checkpoint wait below).
    if (!ec && !stopping_ && !needs_first_checkpoint_) {
        p_.log(log_level::info, "scope " + id_ + ": change stream open");
        set_stream_open(true);
    }
    helpers_running_ = 3;
    // Each helper's completion clears its slot: a later emit (request_stop after a lease
    // loss, when the helpers of this session are long gone) must not reach a cancellation
    // handler that belonged to a finished coroutine.
    asio::co_spawn(
        strand, [self] { return self->recorder(); },
        asio::bind_cancellation_slot(recorder_sig_.slot(), [self](std::exception_ptr) {
            self->recorder_sig_.slot().clear();
        }));
    asio::co_spawn(
        strand, [self] { return self->committer(); },
        asio::bind_cancellation_slot(committer_sig_.slot(), [self](std::exception_ptr) {
            self->committer_sig_.slot().clear();
        }));
    asio::co_spawn(
        strand, [self] { return self->age_sealer(); },
        asio::bind_cancellation_slot(
            sealer_sig_.slot(), [self](std::exception_ptr) { self->sealer_sig_.slot().clear(); }));

    // 3. Read, route, seal. At the memory bound the loop stops between two events, even in
    // the middle of a reply, and issues no getMore until uploads have freed memory.
    event_batch batch;
    std::size_t next_event = 0;  // the first event of `batch` not routed yet
    bool reply_pending = false;  // `batch` was only partly routed (the bound was reached)
    asio::steady_timer pause(strand);
    backoff reopen(p_.cfg.retry);
    bool paused = false;
    while (!stopping_ && !ec) {
        if (over_budget()) {
            ++p_.stats.backpressure_waits;
            if (!paused && metrics_)
                metrics_->backpressure_waits.inc();
            paused = true;
            const auto t0 = clock::now();
            pause.expires_after(std::chrono::milliseconds(5));
            co_await pause.async_wait(nothrow);
            const auto now = clock::now();
            if (metrics_)
                metrics_->backpressure_seconds.add(std::chrono::duration<double>(now - t0).count());
            // Paused on purpose, not silent: ready() must not count this as a dead stream.
            cell_.last_reply.store(ticks(now), std::memory_order_relaxed);
            continue;
        }
        paused = false;
        if (!reply_pending) {
            diag.clear();
            auto rec = co_await source_->next(batch, diag);
            if (stopping_) {
                if (!rec && !hard_stop_)
                    route(batch, 0, false);  // already read: keep it
                break;
            }
            if (rec == errc::history_lost) {
                set_stream_open(false);
                ec = co_await history_lost(diag);
                if (!ec && !needs_first_checkpoint_)
                    set_stream_open(true);
                continue;
            }
            if (rec) {
                if (!reopen.should_retry(rec)) {
                    fail(rec, "change stream failed: " + describe(rec, diag));
                    break;
                }
                ++p_.stats.source_reopens;
                set_stream_open(false);
                cell_.set_error("change stream interrupted: " + describe(rec, diag));
                sm_.stream_reconnect(metric_reason(rec));
                begin_retry("reopening change stream");
                auto delay = reopen.next_delay();
                p_.log(log_level::warn, "scope " + id_ + ": change stream interrupted (" +
                                            describe(rec, diag) + "); reopening in " +
                                            std::to_string(delay.count()) + " ms");
                pause.expires_after(delay);
                co_await pause.async_wait(nothrow);
                co_await source_->close();
                std::optional<resume_token> from;
                if (!tracker_.position().empty())
                    from = tracker_.position();
                ec = co_await open_source(from);
                end_retry();
                if (!ec) {
                    p_.log(log_level::info, "scope " + id_ + ": change stream reopened");
                    if (!needs_first_checkpoint_)
                        set_stream_open(true);
                }
                continue;
            }
            reopen.reset();
            next_event = 0;
        }
        next_event = route(batch, next_event, true);
        reply_pending = next_event < batch.events.size();
        if (reply_pending)
            continue;
        reply_received(batch.events.empty());
        if (needs_first_checkpoint_ && tracker_.watermark()) {
            // A fresh start has no saved position: save the first one before reading on,
            // or a crash now would restart at "now" and skip what happened meanwhile.
            commit_timer_.cancel();
            while (!first_checkpoint_saved_ && !stopping_)
                co_await wait_cv();
            needs_first_checkpoint_ = false;
            if (first_checkpoint_saved_) {
                p_.log(log_level::info,
                       "scope " + id_ + ": change stream open (starting position saved)");
                set_stream_open(true);
            }
        }
    }
    if (reply_pending && !hard_stop_)
        route(batch, next_event, false);  // already read: keep it
    reading_ = false;
    co_await shutdown();
}

awaitable<void> scope_runner::shutdown() {
    co_await asio::this_coro::reset_cancellation_state();
    co_await asio::this_coro::throw_if_cancelled(false);
    // Seal what was read so it is written and checkpointed. Rebuilt batches that did not
    // reach their recorded end are dropped: the next start rebuilds them whole.
    flush_stats();
    for (auto& [name, cs] : colls_) {
        if (!cs->b.is_open())
            continue;
        if (hard_stop_ || cs->b.is_forced() || error == errc::lease_lost)
            drop_open(*cs);
        else
            seal(*cs, seal_reason::shutdown);
    }
    while (inflight_ > 0)
        co_await wait_cv();
    helpers_exit_ = true;
    age_timer_.cancel();
    record_timer_.cancel();
    commit_timer_.cancel();
    while (helpers_running_ > 0)
        co_await wait_cv();
    if (source_ && !hard_stop_)
        co_await source_->close();
    set_stream_open(false);
    cell_.idle = false;
    cell_.finished = true;
    p_.log(log_level::info, "scope " + id_ + ": stopped");
}

// ---------------------------------------------------------------------------------------------

void pipeline_engine::impl::stop_all(bool hard) {
    for (auto& s : scopes) {
        asio::post(s->strand, [s, hard] { s->request_stop(hard); });
    }
    lease_timer.cancel();
}

void pipeline_engine::impl::start_runner(std::size_t index, std::uint64_t fence) {
    auto self = shared_from_this();
    auto s = std::make_shared<scope_runner>(*this, cfg.scopes[index], *cells[index], index, fence);
    scopes.push_back(s);
    ++running;
    if (svc.leases)
        slots[index].runner = s;
    asio::co_spawn(
        s->strand, [s] { return s->run(); },
        asio::bind_cancellation_slot(s->reader_sig.slot(), [self, s](std::exception_ptr e) {
            s->reader_sig.slot().clear();  // see the helpers' completions
            if (e) {
                try {
                    std::rethrow_exception(e);
                } catch (const std::exception& ex) {
                    s->error = make_error_code(errc::protocol_error);
                    s->error_diag.message = ex.what();
                }
            }
            asio::post(self->strand, [self, s] { self->on_scope_done(s); });
        }));
}

// ---------------------------------------------------------------------------------------------
// Leases: acquisition, refresh, fair spreading, hand-off and release, on the pipeline's
// strand. A scope's session (a scope_runner) exists only while its lease is held.

// A fatal lease-store error (not a refusal): retrying cannot help (a Redis that lost the
// state, refused credentials), so the pipeline stops with it, as when a scope fails.
void pipeline_engine::impl::fail_from_leases(const error_code& ec, const diagnostics& d) {
    if (first_error == ec)
        return;  // reported already (every refresh of a lost store fails alike)
    log(log_level::error, "lease store: " + describe(ec, d));
    any_failed = true;
    if (!first_error) {
        first_error = ec;
        first_diag = d;
        if (!stop_requested) {
            stop_requested = true;
            deadline = clock::now() + cfg.shutdown_timeout;
            stop_all(false);
        }
    }
    publish_status();
}

void pipeline_engine::impl::lose_lease(std::size_t i, const std::string& why) {
    auto& sl = slots[i];
    if (!sl.state.held())
        return;
    sl.state.lost();
    sl.sm.lease_lost();
    cells[i]->lease_held = false;
    log(log_level::warn, "scope " + cfg.scopes[i].id() + ": lease lost: " + why);
    if (auto r = sl.runner)
        asio::post(r->strand, [r, why] { r->lose_lease(why); });
    lease_timer.cancel();
}

awaitable<void> pipeline_engine::impl::release_lease(std::size_t i) {
    co_await asio::this_coro::throw_if_cancelled(false);
    auto self = shared_from_this();
    auto& sl = slots[i];
    const auto fence = sl.state.fence();
    const std::string id = cfg.scopes[i].id();
    diagnostics d;
    const auto t0 = clock::now();
    error_code ec = co_await svc.leases->release(id, fence, d);
    if (svc.metrics)
        svc.metrics->state_store_op("lease", clock::now() - t0, ec);
    if (sl.state.held() && sl.state.fence() == fence) {
        sl.state.released();
        sl.sm.lease_released();
        cells[i]->lease_held = false;
    }
    if (ec)
        log(log_level::warn, "scope " + id + ": releasing its lease failed (" + describe(ec, d) +
                                 "); it expires on its own");
    else
        log(log_level::info, "scope " + id + ": lease released");
    --releases_pending;
    lease_timer.cancel();
    all_done.cancel();
}

// Holding more than the fair share while others are alive: stop the surplus sessions
// gracefully (seal, upload, checkpoint), then release their leases for the others.
void pipeline_engine::impl::rebalance(std::size_t share) {
    std::size_t active = 0;
    for (auto& sl : slots)
        if (sl.state.held() && sl.runner && !sl.handing_off)
            ++active;
    for (std::size_t k = slots.size(); k-- > 0 && active > share;) {
        auto& sl = slots[k];
        if (!sl.state.held() || !sl.runner || sl.handing_off)
            continue;
        sl.handing_off = true;
        --active;
        log(log_level::info, "scope " + cfg.scopes[k].id() +
                                 ": handing its lease over (holding more than the fair share of " +
                                 std::to_string(share) + " with " + std::to_string(live_instances) +
                                 " live instances)");
        auto r = sl.runner;
        asio::post(r->strand, [r] { r->request_stop(false); });
    }
}

awaitable<void> pipeline_engine::impl::lease_loop() {
    co_await asio::this_coro::throw_if_cancelled(false);
    auto self = shared_from_this();
    auto& store = *svc.leases;
    const auto ttl = cfg.lease_ttl;
    const clock::duration third = std::max<clock::duration>(ttl / 3, std::chrono::milliseconds(1));
    const clock::duration retry_refresh =
        std::max<clock::duration>(ttl / 10, std::chrono::milliseconds(5));
    // Instances start their acquisition rounds at different scopes, so that simultaneous
    // starts do not all contend for the same first ones.
    const std::size_t start =
        std::hash<std::string>{}(store.owner()) % std::max<std::size_t>(slots.size(), 1);
    auto next_heartbeat = clock::now();
    auto next_acquire = clock::now();
    diagnostics diag;
    for (;;) {
        const bool draining = stop_requested;
        if (draining && running == 0 && releases_pending == 0)
            break;
        auto now = clock::now();
        if (now >= next_heartbeat) {
            next_heartbeat = now + third;
            std::size_t live = 0;
            diag.clear();
            error_code ec = co_await store.heartbeat(ttl, live, diag);
            lease_store_result(ec, diag);
            if (!ec)
                live_instances = live;
            else
                log(log_level::warn, "lease heartbeat failed: " + describe(ec, diag));
        }
        for (std::size_t i = 0; i < slots.size(); ++i) {
            auto& sl = slots[i];
            now = clock::now();
            if (!sl.state.held() || !sl.runner || now < sl.next_refresh)
                continue;
            const auto session = sl.session;
            diag.clear();
            error_code ec = co_await store.refresh(cfg.scopes[i].id(), sl.state.fence(), ttl, diag);
            lease_store_result(ec, diag);
            if (svc.metrics)
                svc.metrics->state_store_op("lease", clock::now() - now, ec);
            if (sl.session != session || !sl.state.held())
                continue;  // lost meanwhile
            if (!ec) {
                sl.state.refreshed(now);
                sl.next_refresh = now + third;
                sl.sm.lease_refreshed();
            } else if (ec == errc::lease_lost) {
                lose_lease(i, "its refresh was refused: " + diag.message);
            } else if (is_fatal(ec) && !is_cancellation(ec)) {
                fail_from_leases(ec, diag);
            } else {
                sl.next_refresh = clock::now() + retry_refresh;
                log(log_level::warn, "scope " + cfg.scopes[i].id() + ": lease refresh failed (" +
                                         describe(ec, diag) + "); retrying until it expires");
            }
        }
        now = clock::now();
        if (!stop_requested && now >= next_acquire) {
            next_acquire = now + cfg.lease_retry_interval;
            const auto share = fair_share(slots.size(), live_instances);
            std::size_t held = 0;
            for (auto& sl : slots)
                if (sl.state.held())
                    ++held;
            for (std::size_t k = 0; k < slots.size() && held < share && !stop_requested; ++k) {
                const std::size_t i = (start + k) % slots.size();
                auto& sl = slots[i];
                if (sl.state.held() || sl.runner)
                    continue;  // ours, or a lost session still winding down
                const std::string id = cfg.scopes[i].id();
                lease_grant grant;
                diag.clear();
                const auto sent = clock::now();
                error_code ec = co_await store.acquire(id, ttl, grant, diag);
                lease_store_result(ec, diag);
                if (svc.metrics)
                    svc.metrics->state_store_op("lease", clock::now() - sent, ec);
                if (ec == errc::lease_lost) {
                    sl.sm.lease_acquire_failed("already_held");
                    continue;
                }
                if (ec) {
                    sl.sm.lease_acquire_failed("error");
                    if (is_fatal(ec) && !is_cancellation(ec)) {
                        fail_from_leases(ec, diag);
                        break;
                    }
                    log(log_level::warn,
                        "scope " + id + ": acquiring its lease failed: " + describe(ec, diag));
                    break;  // the store is unwell: try again next round
                }
                sl.state.acquired(sent, grant.fence);
                sl.next_refresh = sent + third;
                ++sl.session;
                sl.handing_off = false;
                sl.sm.lease_acquired(grant.takeover);
                cells[i]->lease_fence = grant.fence;
                cells[i]->lease_held = true;
                ++held;
                log(log_level::info,
                    "scope " + id + ": lease acquired (fence " + std::to_string(grant.fence) +
                        (grant.takeover ? ", taking over from an expired owner)" : ")"));
                if (stop_requested) {
                    ++releases_pending;
                    asio::co_spawn(strand, release_lease(i), asio::detached);
                    break;
                }
                cells[i]->new_session();
                start_runner(i, grant.fence);
            }
            // Until one round reached the store, holding nothing is not yet standby.
            if (lease_store_down_since.load(std::memory_order_relaxed) == 0)
                leases_settled.store(true, std::memory_order_relaxed);
            if (!stop_requested)
                rebalance(share);
        }
        if (stop_requested && running == 0 && releases_pending == 0)
            continue;
        auto wake = next_heartbeat;
        if (!stop_requested)
            wake = std::min(wake, next_acquire);
        for (auto& sl : slots)
            if (sl.state.held() && sl.runner)
                wake = std::min(wake, sl.next_refresh);
        lease_timer.expires_at(wake);
        co_await lease_timer.async_wait(nothrow);
    }
    diag.clear();
    if (error_code ec = co_await store.withdraw(diag))
        log(log_level::warn, "lease withdraw failed: " + describe(ec, diag));
    lease_active = false;
    all_done.cancel();
}

// Declares a lease lost as soon as its TTL has passed without a confirmed refresh, even
// while a request to the store hangs: after that instant another instance may own it.
awaitable<void> pipeline_engine::impl::lease_watchdog() {
    co_await asio::this_coro::throw_if_cancelled(false);
    auto self = shared_from_this();
    asio::steady_timer t(strand);
    const auto step = std::max<clock::duration>(cfg.lease_ttl / 20, std::chrono::milliseconds(5));
    while (lease_active) {
        t.expires_after(step);
        co_await t.async_wait(nothrow);
        const auto now = clock::now();
        for (std::size_t i = 0; i < slots.size(); ++i) {
            if (slots[i].runner && slots[i].state.expired(now))
                lose_lease(i, "no refresh confirmed within its TTL of " +
                                  std::to_string(cfg.lease_ttl.count()) + " ms");
        }
    }
}

void pipeline_engine::impl::on_scope_done(const std::shared_ptr<scope_runner>& s) {
    --running;
    if (svc.leases) {
        scopes.erase(std::remove(scopes.begin(), scopes.end(), s), scopes.end());
        const auto i = s->index();
        auto& sl = slots[i];
        if (sl.runner == s)
            sl.runner.reset();
        sl.handing_off = false;
        if (s->lease_was_lost()) {
            lose_lease(i, "its session stopped");
        } else if (sl.state.held()) {
            // After the session's final checkpoint (graceful stop, hand-off) or its failure.
            ++releases_pending;
            asio::co_spawn(strand, release_lease(i), asio::detached);
        }
        lease_timer.cancel();
    }
    if (s->error) {
        // Also covers an exception that escaped the scope (fail() was not called).
        auto& cell = s->cell();
        if (!cell.failed.exchange(true))
            cell.set_error(s->error_diag.message);
        cell.finished = true;
        any_failed = true;
        publish_status();
    }
    if (s->error && !first_error) {
        first_error = s->error;
        first_diag.message = "scope " + s->id() + ": " + s->error_diag.message;
        if (!stop_requested) {
            stop_requested = true;
            deadline = clock::now() + cfg.shutdown_timeout;
            stop_all(false);
        }
    }
    all_done.cancel();
}

// How long a hard stop may take before run() gives up on the scopes still running: the
// graceful budget again, but at least a second (shutdown_timeout may be 0: "do not drain").
clock::duration pipeline_engine::impl::hard_stop_grace() const {
    return std::max<clock::duration>(cfg.shutdown_timeout, std::chrono::seconds(1));
}

awaitable<error_code> pipeline_engine::impl::run_all(diagnostics& diag) {
    co_await asio::this_coro::throw_if_cancelled(false);
    auto self = shared_from_this();
    format_ext = std::string(svc.encoder->info().extension);
    if (svc.compression && !svc.encoder->info().compresses_itself &&
        !svc.compression->extension().empty()) {
        format_ext += '.';
        format_ext += svc.compression->extension();
    }
    started = true;
    running_now = true;
    publish_status();
    if (svc.leases) {
        for (std::size_t i = 0; i < cfg.scopes.size(); ++i) {
            slots.emplace_back(cfg.lease_ttl);
            if (svc.metrics)
                slots.back().sm = svc.metrics->for_scope(cfg.scopes[i].id());
        }
        lease_active = true;
        asio::co_spawn(strand, lease_loop(), asio::detached);
        asio::co_spawn(strand, lease_watchdog(), asio::detached);
    } else {
        for (std::size_t i = 0; i < cfg.scopes.size(); ++i)
            start_runner(i, 0);
    }
    while (running > 0 || lease_active) {
        all_done.expires_at(deadline);
        co_await all_done.async_wait(nothrow);
        if (running == 0 && !lease_active)
            break;
        auto cs = co_await asio::this_coro::cancellation_state;
        if (cs.cancelled() != asio::cancellation_type::none) {
            co_await asio::this_coro::reset_cancellation_state();
            if (!stop_requested) {
                log(log_level::info, "stopping: draining open batches");
                stopping = true;
                stop_requested = true;
                deadline = clock::now() + cfg.shutdown_timeout;
                stop_all(false);
            } else if (!hard_stopped) {
                log(log_level::warn, "stopping now: abandoning work in flight");
                stop_all(true);
                hard_stopped = true;
                deadline = clock::now() + hard_stop_grace();
            }
            continue;
        }
        if (clock::now() >= deadline) {
            if (!hard_stopped) {
                log(log_level::warn,
                    "shutdown timeout reached: abandoning work in flight (the "
                    "manifest replays it on the next start)");
                stop_all(true);
                hard_stopped = true;
                deadline = clock::now() + hard_stop_grace();
                continue;
            }
            // A hard stop only waits for operations that honour cancellation, so this is a
            // bug; returning lets the process exit (nothing acknowledged is lost: the next
            // start replays from the manifest) instead of hanging forever.
            std::string stuck;
            for (auto& s : scopes) {
                if (!s->cell().finished.load(std::memory_order_relaxed))
                    stuck += (stuck.empty() ? "" : ", ") + s->id();
            }
            log(log_level::error,
                "scope(s) " + stuck + " did not stop within " +
                    std::to_string(
                        std::chrono::duration_cast<std::chrono::milliseconds>(hard_stop_grace())
                            .count()) +
                    " ms of a hard stop; giving up on them (an operation "
                    "ignores cancellation: a bug in penne or in a custom "
                    "source or destination); the next start replays their "
                    "work");
            if (!first_error) {
                first_error = make_error_code(errc::timeout);
                first_diag.message = "scope(s) " + stuck + " did not stop";
            }
            break;
        }
    }
    running_now = false;
    publish_status();
    diag = first_diag;
    co_return first_error;
}

pipeline_engine::pipeline_engine(asio::any_io_executor ex, pipeline_config cfg,
                                 pipeline_services svc)
    : impl_(std::make_shared<impl>(std::move(ex), std::move(cfg), std::move(svc))) {}

pipeline_engine::~pipeline_engine() = default;

const pipeline_stats& pipeline_engine::stats() const noexcept {
    return impl_->stats;
}

pipeline_snapshot pipeline_engine::status() const {
    const auto& p = *impl_;
    pipeline_snapshot snap;
    snap.status = p.overall();
    snap.buffered_bytes = p.stats.buffered_bytes.load(std::memory_order_relaxed);
    if (p.svc.leases)
        snap.lease_owner = p.svc.leases->owner();
    const auto now = ticks(sys_clock::now());
    constexpr auto r = std::memory_order_relaxed;
    for (const auto& c : p.cells) {
        scope_status s;
        s.id = c->id;
        s.stream_open = c->stream_open.load(r);
        s.lease_held = c->lease_held.load(r);
        s.lease_fence = s.lease_held ? c->lease_fence.load(r) : 0;
        if (c->failed.load(r))
            s.state = scope_activity::failed;
        else if (p.svc.leases && !s.lease_held && p.running_now.load(r))
            s.state = scope_activity::standby;
        else if (c->finished.load(r))
            s.state = scope_activity::stopped;
        else if (c->retrying.load(r) > 0)
            s.state = scope_activity::retrying;
        else if (!s.stream_open)
            s.state = scope_activity::starting;
        else if (c->idle.load(r))
            s.state = scope_activity::idle;
        else
            s.state = scope_activity::streaming;
        if (auto t = c->durable_time.load(r))
            s.last_durable_time =
                cluster_time{static_cast<std::uint32_t>(t >> 32), static_cast<std::uint32_t>(t)};
        if (auto base = c->caught_up_to.load(r); base != never)
            s.lag_seconds = seconds_between(base, now);
        if (auto at = c->checkpoint_at.load(r); at != never)
            s.checkpoint_age_seconds = seconds_between(at, now);
        s.events_received = c->events_received.load(r);
        s.events_written = c->events_written.load(r);
        s.objects_written = c->objects_written.load(r);
        s.checkpoints_saved = c->checkpoints.load(r);
        s.buffered_bytes =
            static_cast<std::uint64_t>(std::max<std::int64_t>(c->buffered.load(r), 0));
        s.open_batches =
            static_cast<std::uint64_t>(std::max<std::int64_t>(c->open_batches.load(r), 0));
        {
            std::lock_guard lock(c->mu);
            s.last_error = c->last_error;
            if (!c->last_error.empty())
                s.last_error_time = c->last_error_at;
        }
        snap.scopes.push_back(std::move(s));
    }
    return snap;
}

bool pipeline_engine::ready(std::string& reason) const {
    const auto& p = *impl_;
    constexpr auto r = std::memory_order_relaxed;
    if (!p.started.load(r)) {
        reason = "the pipeline has not started";
        return false;
    }
    const auto now = ticks(clock::now());
    const auto limit =
        std::chrono::duration_cast<std::chrono::nanoseconds>(p.cfg.not_ready_after).count();
    auto secs = [](std::int64_t ns) { return std::to_string(ns / 1'000'000'000) + " s"; };
    for (const auto& c : p.cells) {
        if (c->failed.load(r)) {
            std::lock_guard lock(c->mu);
            reason = "scope " + c->id + ": failed: " + c->last_error;
            return false;
        }
    }
    if (!p.running_now.load(r)) {
        reason = "the pipeline has stopped";
        return false;
    }
    if (p.stopping.load(r)) {
        reason = "stopping";
        return false;
    }
    if (p.svc.leases && !p.leases_settled.load(r)) {
        reason = "acquiring leases";
        return false;
    }
    if (const auto down = p.lease_store_down_since.load(r); down != 0 && now - down > limit) {
        std::lock_guard lock(p.lease_store_mu);
        reason = "state store " + (p.svc.state ? p.svc.state->describe() : std::string()) +
                 ": lease requests failing for " + secs(now - down) +
                 "; last error: " + p.lease_store_error;
        return false;
    }
    for (const auto& c : p.cells) {
        const std::string scope = "scope " + c->id + ": ";
        if (p.svc.leases && (!c->lease_held.load(r) || c->stopping.load(r)))
            continue;  // another instance's, or being handed over or given up: not this
                       // one's to report (the pipeline itself stopping is caught above)
        if (c->finished.load(r) || c->stopping.load(r)) {
            reason = scope + "stopping";
            return false;
        }
        const bool open = c->stream_open.load(r);
        if (c->retrying.load(r) > 0) {
            const auto since = c->retry_since.load(r);
            if (!open || now - since > limit) {
                std::lock_guard lock(c->mu);
                reason = scope + c->retry_what + ": retrying for " + secs(now - since) +
                         (c->last_error.empty() ? "" : "; last error: " + c->last_error);
                return false;
            }
        }
        if (!open) {
            reason = scope + "change stream not open yet";
            return false;
        }
        if (const auto quiet = now - c->last_reply.load(r); quiet > limit) {
            reason = scope + "no reply from the change stream for " + secs(quiet);
            return false;
        }
    }
    reason.clear();
    return true;
}

awaitable<error_code> pipeline_engine::run(diagnostics& diag) {
    auto p = impl_;
    auto ec = co_await penne::detail::await_on(p->strand, p->run_all(diag));
    co_return ec;
}

}  // namespace penne
