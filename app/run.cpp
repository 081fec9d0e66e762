#include "run.hpp"

#include <penne/file/destination.hpp>
#include <penne/file/state_store.hpp>
#include <penne/formats/avro.hpp>
#include <penne/formats/csv.hpp>
#include <penne/formats/jsonl.hpp>
#include <penne/formats/object_compressor.hpp>
#include <penne/formats/parquet.hpp>
#include <penne/memory_state_store.hpp>
#include <penne/mongo/change_stream.hpp>
#include <penne/pipeline.hpp>
#include <penne/redis/connection.hpp>
#include <penne/redis/lease.hpp>
#include <penne/redis/state_store.hpp>
#include <penne/s3/destination.hpp>
#include <penne/version.hpp>

#include <mongoc/mongoc.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "logging.hpp"
#include "ops.hpp"
#include "s3_setup.hpp"

namespace penne::app {
namespace asio = boost::asio;
namespace {

// Everything the pipeline needs, built from the configuration.
struct services {
    std::unique_ptr<source_factory> sources;
    std::unique_ptr<encoder_factory> encoder;
    std::unique_ptr<compressor> compression;
    s3_setup s3;  // when the destination is S3
    std::unique_ptr<destination> dest;
    std::unique_ptr<redis::connection> redis;  // when the state store is Redis
    std::unique_ptr<state_store> state;
    // With leases: their own connection, whose timeouts fit within the lease TTL (a lease
    // request must never wait behind a slow state write, nor outlast the lease).
    std::unique_ptr<redis::connection> lease_redis;
    std::unique_ptr<redis::lease_store> leases;
    key_template keys;
};

// `ex` runs the adapters' I/O; `services` must be destroyed before its execution context.
bool build(const config& cfg, boost::asio::any_io_executor ex, services& s, std::string& error) {
    diagnostics diag;
    if (auto ec = key_template::parse(cfg.output.key_layout, cfg.output.prefix, s.keys, diag)) {
        error = "output.key_layout: " + diag.message;
        return false;
    }

    mongo::source_options mo;
    mo.uri = cfg.mongodb.uri;
    mo.max_await = cfg.mongodb.max_await;
    mo.connect_timeout = cfg.mongodb.connect_timeout;
    mo.batch_size = static_cast<std::int32_t>(cfg.mongodb.batch_size);
    mo.full_document = mongo::parse_full_document_mode(cfg.mongodb.full_document)
                           .value_or(mongo::full_document_mode::server_default);
    mo.pipeline = cfg.mongodb.pipeline;
    std::unique_ptr<mongo::source_factory> factory;
    if (auto ec = mongo::source_factory::create(mo, factory, diag)) {
        error = diag.message;
        return false;
    }
    s.sources = std::move(factory);

    const auto mode = cfg.output.json_mode == "canonical" ? formats::ejson_mode::canonical
                                                          : formats::ejson_mode::relaxed;
    const bool micros = cfg.output.timestamp_unit == "micros";
    if (cfg.output.format == "csv") {
        formats::csv_options co;
        co.mode = mode;
        co.layout = cfg.output.layout == "rigatoni" ? formats::csv_layout::rigatoni
                                                    : formats::csv_layout::penne;
        co.delimiter = cfg.output.csv_delimiter.at(0);
        if (!cfg.output.csv_line_ending.empty())
            co.line_ending = cfg.output.csv_line_ending == "lf" ? formats::csv_line_ending::lf
                                                                : formats::csv_line_ending::crlf;
        std::unique_ptr<formats::csv_encoder_factory> csv;
        if (auto ec = formats::csv_encoder_factory::create(co, csv, diag)) {
            error = "output: " + diag.message;
            return false;
        }
        s.encoder = std::move(csv);
    } else if (cfg.output.format == "parquet") {
        // Parquet compresses its pages itself; objects get no outer compression.
        formats::parquet_options po;
        po.mode = mode;
        po.layout = cfg.output.layout == "rigatoni" ? formats::parquet_layout::rigatoni
                                                    : formats::parquet_layout::penne;
        po.level = cfg.output.compression_level;
        po.timestamp_unit = micros ? formats::parquet_timestamp_unit::micros
                                   : formats::parquet_timestamp_unit::millis;
        if (auto ec = formats::parse_parquet_codec(cfg.output.compression, po.codec, diag)) {
            error = "output.compression: " + diag.message;
            return false;
        }
        std::unique_ptr<formats::parquet_encoder_factory> parquet;
        if (auto ec = formats::parquet_encoder_factory::create(po, parquet, diag)) {
            error = "output: " + diag.message;
            return false;
        }
        s.encoder = std::move(parquet);
    } else if (cfg.output.format == "avro") {
        formats::avro_options ao;
        ao.mode = mode;
        ao.layout = cfg.output.layout == "rigatoni" ? formats::avro_layout::rigatoni
                                                    : formats::avro_layout::penne;
        ao.level = cfg.output.compression_level;
        ao.timestamp_unit =
            micros ? formats::avro_timestamp_unit::micros : formats::avro_timestamp_unit::millis;
        const auto& comp = cfg.output.compression;
        const std::string codec = comp == "zstd" ? "zstandard" : comp == "none" ? "null" : comp;
        if (auto ec = formats::parse_avro_codec(codec, ao.codec, diag)) {
            error = "output.compression: " + diag.message;
            return false;
        }
        std::unique_ptr<formats::avro_encoder_factory> avro;
        if (auto ec = formats::avro_encoder_factory::create(ao, avro, diag)) {
            error = "output: " + diag.message;
            return false;
        }
        s.encoder = std::move(avro);
    } else {
        formats::jsonl_options jo;
        jo.mode = mode;
        jo.layout = cfg.output.layout == "rigatoni" ? formats::jsonl_layout::rigatoni
                                                    : formats::jsonl_layout::penne;
        if (auto ec = formats::validate(jo, diag)) {
            error = "output: " + diag.message;
            return false;
        }
        s.encoder = std::make_unique<formats::jsonl_encoder_factory>(jo);
    }
    if (cfg.output.compression != "none" && !s.encoder->info().compresses_itself) {
        formats::compression_options co;
        if (auto ec = formats::parse_compression(cfg.output.compression,
                                                 cfg.output.compression_level, co, diag)) {
            error = "output.compression: " + diag.message;
            return false;
        }
        s.compression = std::make_unique<formats::object_compressor>(co);
    }

    if (cfg.destination.type == "s3") {
        if (!make_s3(cfg.s3, ex, s3::system_environment(), s.s3, error))
            return false;
        s3::destination_options dopts;
        dopts.bucket = cfg.s3.bucket;
        dopts.probe_prefix = cfg.output.prefix.empty() ? "" : cfg.output.prefix + "/";
        dopts.put = s.s3.put;
        s.dest = std::make_unique<s3::destination>(s.s3.client, dopts);
    } else {
        s.dest = std::make_unique<file::destination>(cfg.destination.path);
    }
    if (cfg.state.type == "memory") {
        s.state = std::make_unique<memory_state_store>();
    } else if (cfg.state.type == "redis") {
        redis::connection_options ro;
        if (auto ec = redis::parse_url(cfg.state.url, ro.server, diag)) {
            error = "state.url: " + diag.message;
            return false;
        }
        ro.tls_ca_file = cfg.state.tls_ca_file;
        ro.connect_timeout = cfg.state.connect_timeout;
        ro.command_timeout = cfg.state.command_timeout;
        s.redis = std::make_unique<redis::connection>(ex, ro);
        redis::state_store_options so;
        so.key_prefix = cfg.state.key_prefix;
        auto store = std::make_unique<redis::state_store>(*s.redis, so);
        if (cfg.lease.enabled) {
            auto lo = ro;
            const auto third = std::max(cfg.pipeline.lease_ttl / 3, std::chrono::milliseconds(30));
            lo.command_timeout = std::min(ro.command_timeout, third);
            lo.connect_timeout = std::min(ro.connect_timeout, third);
            lo.retry.max_attempts = 1;  // the lease loop retries, on its own schedule
            s.lease_redis = std::make_unique<redis::connection>(ex, lo);
            redis::lease_options lopts;
            lopts.key_prefix = cfg.state.key_prefix;
            lopts.owner = cfg.lease.owner;
            s.leases = std::make_unique<redis::lease_store>(*s.lease_redis, *store, lopts);
        }
        s.state = std::move(store);
    } else {
        s.state = std::make_unique<file::state_store>(cfg.state.path);
    }
    return true;
}

void print_plan(const config& cfg, const services& s) {
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
    std::printf("  keys:        %s (prefix '%s')\n", s.keys.spec().c_str(),
                cfg.output.prefix.c_str());
    std::printf("  destination: %s\n", s.dest->describe().c_str());
    std::printf("  state:       %s\n", s.state->describe().c_str());
    if (s.leases)
        std::printf("  leases:      owner %s, ttl %lld ms, retry every %lld ms\n",
                    s.leases->owner().c_str(),
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
    services s;
    std::string error;
    if (!build(cfg, ctx.get_executor(), s, error)) {
        std::fprintf(stderr, "penne: invalid configuration: %s\n", error.c_str());
        return 2;
    }
    print_plan(cfg, s);
    std::printf("configuration OK\n");
    return 0;
}

int run_pipeline(const config& cfg) {
    logger log(cfg.log.level, cfg.log.format);
    route_mongoc_logs(log);
    asio::io_context ctx(static_cast<int>(cfg.threads));
    services s;  // after ctx: its sockets and timers must go before the context does
    std::string error;
    if (!build(cfg, ctx.get_executor(), s, error)) {
        log.log(log_level::error, "invalid configuration: " + error);
        return 2;
    }
    auto top = asio::make_strand(ctx);

    pipeline_services svc;
    svc.sources = s.sources.get();
    svc.encoder = s.encoder.get();
    svc.compression = s.compression.get();
    svc.dest = s.dest.get();
    svc.state = s.state.get();
    svc.leases = s.leases.get();
    svc.keys = &s.keys;
    svc.log = log.function();
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
        svc.metrics = metrics.get();
    }
    pipeline pipe(ctx.get_executor(), cfg.pipeline, svc);

    log.log(
        log_level::info,
        "penne " PENNE_VERSION_STRING " starting: " + std::to_string(cfg.pipeline.scopes.size()) +
            " scope(s), " + redact_uri(cfg.mongodb.uri) + " -> " + s.dest->describe() + ", state " +
            s.state->describe() + (s.leases ? ", lease owner " + s.leases->owner() : ""));

    // The destination must be usable before anything is read.
    {
        diagnostics diag;
        error_code ec;
        asio::co_spawn(
            ctx, [&]() -> asio::awaitable<void> { ec = co_await s.dest->check(diag); },
            asio::detached);
        ctx.run();
        ctx.restart();
        if (ec) {
            log.log(log_level::error, "destination " + s.dest->describe() +
                                          " is not usable: " + ec.message() + ": " + diag.message);
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

    asio::co_spawn(
        top, pipe.run(result_diag),
        asio::bind_cancellation_slot(stop.slot(), [&](std::exception_ptr e, error_code ec) {
            finished = true;
            result = ec;
            if (e) {
                try {
                    std::rethrow_exception(e);
                } catch (const std::exception& ex) {
                    result = make_error_code(errc::protocol_error);
                    result_diag.message = ex.what();
                }
            }
            signals.cancel();
            progress.cancel();
            if (ops)
                ops->stop();
        }));

    std::vector<std::thread> workers;
    for (unsigned i = 1; i < cfg.threads; ++i)
        workers.emplace_back([&] { ctx.run(); });
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
