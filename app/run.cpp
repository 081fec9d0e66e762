#include "run.hpp"

#include <penne/metrics.hpp>
#include <penne/pipeline.hpp>
#include <penne/version.hpp>

#include <mongoc/mongoc.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <pthread.h>
#include <unistd.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "logging.hpp"
#include "ops.hpp"

namespace penne::app {
namespace asio = boost::asio;
namespace {

// Resident memory of this process in MiB (0 when /proc cannot tell).
double resident_mib() {
    std::FILE* f = std::fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    unsigned long size = 0, resident = 0;
    const int n = std::fscanf(f, "%lu %lu", &size, &resident);
    std::fclose(f);
    if (n != 2)
        return 0;
    return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE)) /
           (1024.0 * 1024.0);
}

// Returns the heap's free pages to the kernel (glibc; elsewhere the allocator decides) and
// says what that did, for the log.
std::string release_free_heap() {
    const double before = resident_mib();
    const auto t0 = std::chrono::steady_clock::now();
#if defined(__GLIBC__)
    ::malloc_trim(0);
#endif
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    char line[160];
    std::snprintf(line, sizeof line,
                  "idle: freed heap returned to the kernel (RSS %.1f -> %.1f MiB, %lld ms)", before,
                  resident_mib(), static_cast<long long>(ms));
    return line;
}

// Names the calling thread (at most 15 characters), so `top -H`, `ps -L` and perf tell the
// daemon's threads apart: penne-io (the io_context's further threads) and penne-file.
void name_this_thread(const char* name) {
    ::pthread_setname_np(::pthread_self(), name);
}

// Named threads running an io_context of their own until destroyed: where the daemon does
// blocking file I/O (hooks::blocking). Like asio::thread_pool, whose threads cannot be
// named; destroying it abandons work not yet started and joins the threads.
class named_threads {
public:
    named_threads(unsigned n, const char* name) {
        threads_.reserve(n);
        for (unsigned i = 0; i < n; ++i)
            threads_.emplace_back([this, name] {
                name_this_thread(name);
                ctx_.run();
            });
    }
    ~named_threads() {
        work_.reset();
        ctx_.stop();
        for (auto& t : threads_)
            t.join();
    }
    named_threads(const named_threads&) = delete;
    named_threads& operator=(const named_threads&) = delete;

    asio::io_context::executor_type get_executor() noexcept { return ctx_.get_executor(); }

private:
    asio::io_context ctx_;
    asio::executor_work_guard<asio::io_context::executor_type> work_{ctx_.get_executor()};
    std::vector<std::thread> threads_;
};

void print_plan(const config& cfg, const pipeline& pipe) {
    std::printf("penne %s\n", PENNE_VERSION_STRING);
    std::printf("  mongodb:     %s\n", redact_uri(cfg.mongodb.uri).c_str());
    for (const auto& scope : cfg.pipeline.scopes) {
        const char* kind = scope.kind == watch_scope::level::collection ? "collection"
                           : scope.kind == watch_scope::level::database ? "database"
                                                                        : "deployment";
        std::printf("  watch:       %s %s\n", kind, scope.id().c_str());
    }
    std::printf("  format:      %s (%s), compression %s\n", cfg.output.format.c_str(),
                cfg.output.json_mode.c_str(), cfg.output.compression.c_str());
    std::printf("  keys:        %s (prefix '%s')\n", pipe.describe_keys().c_str(),
                cfg.output.prefix.c_str());
    std::printf("  destination: %s\n", pipe.describe_destination().c_str());
    std::printf("  state:       %s\n", pipe.describe_state().c_str());
    if (!pipe.lease_owner().empty())
        std::printf("  leases:      owner %s, ttl %lld ms, retry every %lld ms\n",
                    pipe.lease_owner().c_str(),
                    static_cast<long long>(cfg.pipeline.lease_ttl.count()),
                    static_cast<long long>(cfg.pipeline.lease_retry_interval.count()));
    std::printf("  batches:     %llu events / %llu bytes / %lld ms\n",
                static_cast<unsigned long long>(cfg.pipeline.batch.max_events),
                static_cast<unsigned long long>(cfg.pipeline.batch.max_bytes),
                static_cast<long long>(cfg.pipeline.batch.max_age.count()));
}

std::string human_bytes(std::uint64_t b) {
    char buf[32];
    if (b >= (1ull << 30))
        std::snprintf(buf, sizeof buf, "%.1f GiB", double(b) / (1ull << 30));
    else if (b >= (1ull << 20))
        std::snprintf(buf, sizeof buf, "%.1f MiB", double(b) / (1ull << 20));
    else if (b >= 1024)
        std::snprintf(buf, sizeof buf, "%.1f KiB", double(b) / 1024);
    else
        std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(b));
    return buf;
}

std::string progress_line(const pipeline_stats& st) {
    return "progress: " + std::to_string(st.events_received.load()) + " events read, " +
           std::to_string(st.events_written.load()) + " written in " +
           std::to_string(st.objects_written.load()) + " objects (" +
           human_bytes(st.bytes_written.load()) + "), " + human_bytes(st.buffered_bytes.load()) +
           " buffered";
}

// libmongoc (used for URI parsing) logs through a process-wide handler; send it through
// ours so its lines are formatted, levelled and redacted like the rest.
void route_mongoc_logs(const logger& log) {
    mongoc_log_set_handler(
        [](mongoc_log_level_t level, const char* domain, const char* message, void* user) {
            if (level > MONGOC_LOG_LEVEL_WARNING)
                return;
            static_cast<const logger*>(user)->log(
                level <= MONGOC_LOG_LEVEL_CRITICAL ? log_level::error : log_level::warn,
                std::string(domain) + ": " + redact_uris_in(message));
        },
        const_cast<logger*>(&log));
}

}  // namespace

int check_config(const config& cfg) {
    logger log("warn", "text");
    route_mongoc_logs(log);
    asio::io_context ctx;
    pipeline pipe(ctx.get_executor(), cfg);
    diagnostics diag;
    if (pipe.check_config(diag)) {
        std::fprintf(stderr, "penne: invalid configuration: %s\n", diag.message.c_str());
        return 2;
    }
    print_plan(cfg, pipe);
    std::printf("configuration OK\n");
    return 0;
}

int run_pipeline(const config& cfg) {
    logger log(cfg.log.level, cfg.log.format);
    route_mongoc_logs(log);
    asio::io_context ctx(static_cast<int>(cfg.threads));
    // Metrics: the registry and the handles live until the pipeline and the ops server stop.
    std::unique_ptr<metrics_registry> registry;
    std::unique_ptr<pipeline_metrics> metrics;
    if (cfg.metrics.enabled) {
        metrics_options mo;
        mo.max_series = cfg.metrics.max_series;
        mo.per_collection_labels = cfg.metrics.per_collection_labels;
        registry = std::make_unique<metrics_registry>(std::move(mo));
        pipeline_metrics_options po;
        po.rigatoni_compat = cfg.metrics.compat == "rigatoni";
        po.destination_type = cfg.destination.type;
        metrics = std::make_unique<pipeline_metrics>(*registry, std::move(po));
    }
    // Blocking file I/O (the local destination's and the file state store's writes and
    // fsyncs) runs here, off the io_context's threads; only started when something writes
    // files. Declared before the pipeline, so it is destroyed (joined) after it.
    std::optional<named_threads> blocking;
    if (cfg.destination.type == "local" || cfg.state.type == "file")
        blocking.emplace(4, "penne-file");
    hooks h;
    h.log = log.function();
    if (blocking)
        h.blocking = blocking->get_executor();
    h.metrics = metrics.get();
    h.registry = registry.get();  // the S3 client's and the Redis connections' counters
    // After ctx: its sockets and timers must go before the context does.
    pipeline pipe(ctx.get_executor(), cfg, std::move(h));
    {
        diagnostics diag;
        if (pipe.check_config(diag)) {
            log.log(log_level::error, "invalid configuration: " + diag.message);
            return 2;
        }
    }
    auto top = asio::make_strand(ctx);

    const auto owner = pipe.lease_owner();
    log.log(
        log_level::info,
        "penne " PENNE_VERSION_STRING " starting: " + std::to_string(cfg.pipeline.scopes.size()) +
            " scope(s), " + redact_uri(cfg.mongodb.uri) + " -> " + pipe.describe_destination() +
            ", state " + pipe.describe_state() + (owner.empty() ? "" : ", lease owner " + owner));

    // The destination must be usable before anything is read.
    {
        diagnostics diag;
        error_code ec;
        pipe.async_check(diag, [&](error_code e) { ec = e; });
        ctx.run();
        ctx.restart();
        if (ec) {
            log.log(log_level::error, diag.message);
            return 1;
        }
    }

    asio::cancellation_signal stop;
    bool finished = false;
    error_code result;
    diagnostics result_diag;
    const auto started = std::chrono::steady_clock::now();

    // The ops server runs on the same io_context, from before the pipeline starts until
    // after it stopped. A port that cannot be bound does not stop the daemon (moving data
    // matters more than watching it): the error is logged and the endpoints are missing.
    std::unique_ptr<ops_server> ops;
    if (cfg.metrics.enabled) {
        ops =
            std::make_unique<ops_server>(ctx.get_executor(), cfg.metrics, *registry, pipe, started);
        diagnostics diag;
        if (auto ec = ops->listen(diag)) {
            if (ec == errc::invalid_config) {
                log.log(log_level::error, "invalid configuration: metrics: " + diag.message);
                return 2;
            }
            log.log(log_level::error, "ops server not started: " + diag.message +
                                          "; /metrics, /health, /ready and /status are "
                                          "unavailable (change [metrics] port or address)");
            ops.reset();
        } else {
            log.log(log_level::info, "ops server listening on " + ops->endpoint());
            ops->start([&log](const std::string& what) {
                log.log(log_level::error, "ops server stopped: " + what);
            });
        }
    }

    asio::signal_set signals(ctx, SIGINT, SIGTERM);
    int signal_count = 0;
    std::function<void(const boost::system::error_code&, int)> on_signal =
        [&](const boost::system::error_code& ec, int signo) {
            if (ec || finished)
                return;
            if (++signal_count == 1) {
                log.log(log_level::info, std::string("received ") +
                                             (signo == SIGINT ? "SIGINT" : "SIGTERM") +
                                             ": stopping gracefully (send again to stop now)");
                stop.emit(asio::cancellation_type::terminal);
                signals.async_wait(asio::bind_executor(top, on_signal));
            } else {
                // Every write penne makes is atomic (write-ahead manifest, atomic state and
                // object writes), so stopping here loses nothing; the next start replays.
                log.log(log_level::warn,
                        "second signal: exiting now; the next start resumes "
                        "from the last checkpoint");
                log.flush();
                std::_Exit(130);
            }
        };
    signals.async_wait(asio::bind_executor(top, on_signal));

    asio::steady_timer progress(top);
    std::function<void(const boost::system::error_code&)> on_progress =
        [&](const boost::system::error_code& ec) {
            if (ec || finished)
                return;
            log.log(log_level::info, progress_line(pipe.stats()));
            log.flush();  // also writes the summaries of repeats whose window has closed
            progress.expires_after(cfg.log.progress_interval);
            progress.async_wait(asio::bind_executor(top, on_progress));
        };
    if (cfg.log.progress_interval.count() > 0) {
        progress.expires_after(cfg.log.progress_interval);
        progress.async_wait(asio::bind_executor(top, on_progress));
    }

    // The daemon keeps freed heap for the next batch (main.cpp: M_TRIM_THRESHOLD), so RSS
    // stays at the high-water mark of the busiest moment. Once the pipeline goes quiet (no
    // event and no change in buffered memory for two seconds), give that back to the kernel:
    // one malloc_trim per quiet period, a few milliseconds on this thread. 10,000
    // collections idle after a trickle: 42-47 MiB instead of 54-66 (bench/RESULTS.md).
    asio::steady_timer trim(top);
    std::uint64_t trim_events = 0, trim_buffered = 0;
    int quiet_ticks = 0;
    bool trimmed = true;  // nothing to give back before the first event
    std::function<void(const boost::system::error_code&)> on_trim =
        [&](const boost::system::error_code& ec) {
            if (ec || finished)
                return;
            const auto& st = pipe.stats();
            const auto events = st.events_received.load(std::memory_order_relaxed);
            const auto buffered = st.buffered_bytes.load(std::memory_order_relaxed);
            if (events != trim_events || buffered != trim_buffered) {
                trim_events = events;
                trim_buffered = buffered;
                quiet_ticks = 0;
                trimmed = false;
            } else if (!trimmed && ++quiet_ticks >= 2) {
                trimmed = true;
                log.log(log_level::debug, release_free_heap());
            }
            trim.expires_after(std::chrono::seconds(1));
            trim.async_wait(asio::bind_executor(top, on_trim));
        };
    trim.expires_after(std::chrono::seconds(1));
    trim.async_wait(asio::bind_executor(top, on_trim));

    pipe.async_run(result_diag, asio::bind_cancellation_slot(
                                    stop.slot(), asio::bind_executor(top, [&](error_code ec) {
                                        finished = true;
                                        result = ec;
                                        signals.cancel();
                                        progress.cancel();
                                        trim.cancel();
                                        if (ops)
                                            ops->stop();
                                        // A failed run has finished all it could; what is
                                        // still queued belongs to a scope it gave up on
                                        // (one that ignored a hard stop): exit anyway.
                                        if (ec)
                                            ctx.stop();
                                    })));

    std::vector<std::thread> workers;
    for (unsigned i = 1; i < cfg.threads; ++i)
        workers.emplace_back([&] {
            name_this_thread("penne-io");
            ctx.run();
        });
    ctx.run();
    for (auto& t : workers)
        t.join();

    const auto& st = pipe.stats();
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    char summary[512];
    std::snprintf(summary, sizeof summary,
                  "summary: %llu events read, %llu written in %llu objects (%s), "
                  "%llu replayed events skipped, %llu checkpoints, %llu upload retries, "
                  "%.1f s",
                  static_cast<unsigned long long>(st.events_received.load()),
                  static_cast<unsigned long long>(st.events_written.load()),
                  static_cast<unsigned long long>(st.objects_written.load()),
                  human_bytes(st.bytes_written.load()).c_str(),
                  static_cast<unsigned long long>(st.events_replayed_skipped.load()),
                  static_cast<unsigned long long>(st.checkpoints_saved.load()),
                  static_cast<unsigned long long>(st.upload_retries.load()), secs);
    log.log(log_level::info, summary);
    if (result) {
        log.log(log_level::error,
                "stopped on error: " + result.message() +
                    (result_diag.message.empty() ? "" : ": " + result_diag.message));
        log.flush();
        return 1;
    }
    log.log(log_level::info, "stopped cleanly");
    log.flush();
    return 0;
}

}  // namespace penne::app
