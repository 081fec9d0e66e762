#include <penne/pipeline.hpp>

#include <penne/detail/await_on.hpp>

#include <penne/file/destination.hpp>
#include <penne/file/state_store.hpp>
#include <penne/formats/avro.hpp>
#include <penne/formats/csv.hpp>
#include <penne/formats/jsonl.hpp>
#include <penne/formats/object_compressor.hpp>
#include <penne/formats/parquet.hpp>
#include <penne/memory_state_store.hpp>
#include <penne/mongo/change_stream.hpp>
#include <penne/redis/connection.hpp>
#include <penne/redis/lease.hpp>
#include <penne/redis/state_store.hpp>
#include <penne/s3/client.hpp>
#include <penne/s3/destination.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <map>

#include "detail/filter_adapter.hpp"
#include "detail/s3_setup.hpp"

namespace penne {
namespace asio = boost::asio;
namespace {

// Everything the engine needs, built from the configuration and the hooks. Declared in
// dependency order: connections before the stores that use them.
struct services {
    std::unique_ptr<source_factory> sources;
    std::shared_ptr<const encoder_factory> encoder;
    std::unique_ptr<compressor> compression;
    detail::s3_setup s3;  // when the destination is S3
    std::shared_ptr<destination> dest;
    std::unique_ptr<redis::connection> redis;  // when the state store is Redis
    std::shared_ptr<state_store> state;
    // With leases: their own connection, whose timeouts fit within the lease TTL (a lease
    // request must never wait behind a slow state write, nor outlast the lease).
    std::unique_ptr<redis::connection> lease_redis;
    std::unique_ptr<redis::lease_store> leases;
    key_template keys;
};

// Code-built configurations may list `watches` only; the file parser fills the scopes (and
// scope_start_at). A watch's start_at goes to `start_at`, by scope id; false with `error` when
// one is not a start position.
bool scopes_of(const config& cfg, std::vector<watch_scope>& out,
               std::map<std::string, std::optional<cluster_time>>& start_at, std::string& error) {
    out.clear();
    if (!cfg.pipeline.scopes.empty()) {
        out = cfg.pipeline.scopes;
        return true;
    }
    for (std::size_t i = 0; i < cfg.watches.size(); ++i) {
        const auto& ws = cfg.watches[i];
        const std::size_t first = out.size();
        const std::string level = !ws.level.empty()        ? ws.level
                                  : ws.collections.empty() ? "database"
                                                           : "collection";
        if (level == "collection") {
            for (const auto& coll : ws.collections)
                out.push_back({watch_scope::level::collection, ws.database, coll, {}, {}});
        } else if (level == "database") {
            out.push_back({watch_scope::level::database,
                           ws.database,
                           {},
                           ws.include_collections,
                           ws.exclude_collections});
        } else {
            out.push_back({watch_scope::level::deployment,
                           {},
                           {},
                           ws.include_collections,
                           ws.exclude_collections});
        }
        if (ws.start_at.empty())
            continue;
        std::optional<cluster_time> at;
        std::string why;
        if (!parse_start_at(ws.start_at, at, why)) {
            error = "watches[" + std::to_string(i) + "].start_at: " + why;
            return false;
        }
        for (std::size_t k = first; k < out.size(); ++k)
            start_at.try_emplace(out[k].id(), at);  // scope_start_at set in code wins
    }
    return true;
}

// `ex` runs the adapters' I/O; `services` must be destroyed before its execution context.
bool build(const config& cfg, const hooks& h, asio::any_io_executor ex, services& s,
           std::string& error) {
    diagnostics diag;
    // From code, output.compression may be left empty: the format's default, as in the file.
    const std::string compression = !cfg.output.compression.empty() ? cfg.output.compression
                                    : cfg.output.format == "avro"   ? "deflate"
                                                                    : "zstd";
    if (auto ec = key_template::parse(cfg.output.key_layout, cfg.output.prefix, s.keys, diag)) {
        error = "output.key_layout: " + diag.message;
        return false;
    }

    mongo::source_options mo;
    mo.uri = cfg.mongodb.uri;
    mo.max_await = cfg.mongodb.max_await;
    mo.connect_timeout = cfg.mongodb.connect_timeout;
    mo.batch_size = static_cast<std::int32_t>(cfg.mongodb.batch_size);
    mo.prefetch = cfg.mongodb.prefetch;
    mo.full_document = mongo::parse_full_document_mode(cfg.mongodb.full_document)
                           .value_or(mongo::full_document_mode::server_default);
    mo.full_document_before_change =
        mongo::parse_before_change_mode(cfg.mongodb.full_document_before_change)
            .value_or(mongo::before_change_mode::server_default);
    mo.show_expanded_events = cfg.mongodb.show_expanded_events;
    mo.split_large_events = cfg.mongodb.split_large_events;
    mo.pipeline = cfg.mongodb.pipeline;
    mo.dns_server = cfg.mongodb.dns_server;
    if (auto ns = mongo::parse_resolv_conf(cfg.mongodb.resolv_conf))
        mo.system_dns_server = ns->to_string();
    std::unique_ptr<mongo::source_factory> factory;
    if (auto ec = mongo::source_factory::create(mo, factory, diag)) {
        error = diag.message;
        return false;
    }
    s.sources = std::move(factory);

    const std::string& fmt = cfg.output.format;
    if (h.encoder) {
        s.encoder = h.encoder;
    } else if (fmt != "jsonl" && fmt != "csv" && fmt != "parquet" && fmt != "avro") {
        error =
            "output.format: '" + fmt + "' is not allowed; use one of: jsonl, csv, parquet, avro";
        return false;
    } else {
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
                co.line_ending = cfg.output.csv_line_ending == "lf"
                                     ? formats::csv_line_ending::lf
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
            if (auto ec = formats::parse_parquet_codec(compression, po.codec, diag)) {
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
            ao.timestamp_unit = micros ? formats::avro_timestamp_unit::micros
                                       : formats::avro_timestamp_unit::millis;
            const auto& comp = compression;
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
    }
    if (compression != "none" && !s.encoder->info().compresses_itself) {
        formats::compression_options co;
        if (auto ec =
                formats::parse_compression(compression, cfg.output.compression_level, co, diag)) {
            error = "output.compression: " + diag.message;
            return false;
        }
        s.compression = std::make_unique<formats::object_compressor>(co);
    }

    if (h.dest) {
        s.dest = h.dest;
    } else if (cfg.destination.type == "s3") {
        if (!detail::make_s3(cfg.s3, ex, h.environment ? h.environment : s3::system_environment(),
                             s.s3, error))
            return false;
        s3::destination_options dopts;
        dopts.bucket = cfg.s3.bucket;
        dopts.probe_prefix = cfg.output.prefix.empty() ? "" : cfg.output.prefix + "/";
        dopts.put = s.s3.put;
        s.dest = std::make_shared<s3::destination>(s.s3.client, dopts);
    } else if (cfg.destination.type == "local" && !cfg.destination.path.empty()) {
        s.dest = std::make_shared<file::destination>(
            cfg.destination.path, file::destination_options{.blocking = h.blocking});
    } else {
        error = "destination.type: '" + cfg.destination.type +
                "' needs a path, or is not allowed; use local (with a path) or s3";
        return false;
    }
    if (h.state) {
        if (cfg.lease.enabled) {
            error =
                "lease.enabled: leases live in the Redis state store; disable them with a "
                "custom state store";
            return false;
        }
        s.state = h.state;
    } else if (cfg.state.type == "memory") {
        s.state = std::make_shared<memory_state_store>();
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
        so.log = h.log;  // the store's identity check reports a first start
        auto store = std::make_shared<redis::state_store>(*s.redis, so);
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
    } else if (cfg.state.type == "file" && !cfg.state.path.empty()) {
        s.state = std::make_shared<file::state_store>(
            cfg.state.path, file::journal_options{.blocking = h.blocking});
    } else {
        error = "state.type: '" + cfg.state.type +
                "' needs a path, or is not allowed; use file (with a path), memory or redis";
        return false;
    }
    if (cfg.lease.enabled && !s.leases) {
        error = "lease.enabled: leases live in Redis: set state.type = \"redis\"";
        return false;
    }
    return true;
}

}  // namespace

struct pipeline::impl {
    impl(asio::any_io_executor e, config c, hooks h)
        : ex(std::move(e)), strand(asio::make_strand(ex)), cfg(std::move(c)), hk(std::move(h)) {}

    asio::any_io_executor ex;
    asio::strand<asio::any_io_executor> strand;  // runs async_run's and async_check's bodies
    config cfg;
    hooks hk;
    services svc;
    std::unique_ptr<detail::filter_adapter> filter;
    std::unique_ptr<pipeline_engine> engine;
    error_code build_error;
    diagnostics build_diag;
    diagnostics run_diag;     // for async_run(token)
    pipeline_stats no_stats;  // stats() of a pipeline whose configuration is invalid
    std::atomic<bool> checked{false};
    bool run_started = false;

    asio::awaitable<error_code> check(diagnostics& diag) {
        co_await asio::this_coro::throw_if_cancelled(false);
        if (build_error) {
            diag = build_diag;
            co_return build_error;
        }
        diagnostics d;
        auto ec = co_await svc.dest->check(d);
        if (ec) {
            diag.message = "destination " + svc.dest->describe() +
                           " is not usable: " + ec.message() + ": " + d.message;
            co_return ec;
        }
        checked = true;
        co_return error_code{};
    }

    asio::awaitable<error_code> run(diagnostics& diag) {
        // Any cancellation type the caller emits becomes the engine's terminal one: the
        // first starts a graceful stop, a second stops at once.
        co_await asio::this_coro::throw_if_cancelled(false);
        co_await asio::this_coro::reset_cancellation_state(
            [](asio::cancellation_type t) { return t; },
            [](asio::cancellation_type) { return asio::cancellation_type::terminal; });
        if (run_started) {
            diag.message = "async_run may be called once per pipeline";
            co_return make_error_code(errc::invalid_config);
        }
        run_started = true;
        if (!checked) {
            auto ec = co_await check(diag);
            if (ec)
                co_return ec;
        }
        auto ec = co_await engine->run(diag);
        co_return ec;
    }
};

pipeline::pipeline(executor_type ex, config cfg, hooks h)
    : impl_(std::make_shared<impl>(std::move(ex), std::move(cfg), std::move(h))) {
    auto& p = *impl_;
    std::string error;
    if (!build(p.cfg, p.hk, p.ex, p.svc, error)) {
        p.build_error = make_error_code(errc::invalid_config);
        p.build_diag.message = redact_uris_in(error);
        return;
    }
    if (p.hk.registry) {
        if (p.svc.s3.client)
            p.svc.s3.client->set_metrics(*p.hk.registry);
        if (p.svc.redis || p.svc.lease_redis) {
            auto connects = p.hk.registry->counters(
                "penne_redis_connects_total",
                "Connections established to Redis, reconnects included", {"connection"});
            if (p.svc.redis)
                p.svc.redis->set_connect_counter(connects.with({"state"}));
            if (p.svc.lease_redis)
                p.svc.lease_redis->set_connect_counter(connects.with({"lease"}));
        }
    }
    pipeline_config pc = p.cfg.pipeline;
    // More than one thread runs the executor: compress sealed batches off the scopes' strands.
    pc.compress_off_strand = pc.compress_off_strand || p.cfg.threads > 1;
    if (!scopes_of(p.cfg, pc.scopes, pc.scope_start_at, error)) {
        p.build_error = make_error_code(errc::invalid_config);
        p.build_diag.message = error;
        return;
    }
    if (pc.scopes.empty()) {
        p.build_error = make_error_code(errc::invalid_config);
        p.build_diag.message = "watches: nothing to watch; add at least one watch";
        return;
    }
    pipeline_services svc;
    svc.sources = p.svc.sources.get();
    svc.encoder = p.svc.encoder.get();
    svc.compression = p.svc.compression.get();
    svc.dest = p.svc.dest.get();
    svc.state = p.svc.state.get();
    svc.leases = p.svc.leases.get();
    svc.keys = &p.svc.keys;
    svc.log = p.hk.log;
    svc.metrics = p.hk.metrics;
    if (p.hk.filter) {
        p.filter = std::make_unique<detail::filter_adapter>(p.hk.filter);
        svc.filter = p.filter.get();
    }
    p.engine = std::make_unique<pipeline_engine>(p.ex, std::move(pc), std::move(svc));
}

// The engine's coroutines hold the impl (shared) only through the engine; destroying the
// pipeline while async_run is outstanding is a caller error (see the header).
pipeline::~pipeline() = default;

pipeline::executor_type pipeline::get_executor() const noexcept {
    return impl_->ex;
}

error_code pipeline::check_config(diagnostics& diag) const {
    if (impl_->build_error)
        diag = impl_->build_diag;
    return impl_->build_error;
}

namespace {

// Completes `h` with the result of `body` run on `strand`, honouring the handler's
// associated executor and cancellation slot.
template <class Body>
void launch(asio::strand<asio::any_io_executor>& strand, Body body, diagnostics& diag,
            asio::any_completion_handler<void(error_code)> h) {
    // Not co_spawn with `h` itself: with an executor of its own, Boost 1.81 forwards a
    // cancellation through memory the completion may have freed (detail/await_on.hpp).
    auto slot = asio::get_associated_cancellation_slot(h);
    auto hex = asio::get_associated_executor(h, strand);
    // `body` moves into the frame of a capture-free coroutine, so its captures live as long
    // as the coroutine it starts.
    auto op = [](Body b) -> asio::awaitable<error_code> {
        auto ec = co_await b();
        co_return ec;
    }(std::move(body));
    penne::detail::co_spawn_forwarding(
        strand, std::move(op),
        asio::bind_cancellation_slot(
            slot, asio::bind_executor(
                      hex, [h = std::move(h), &diag](std::exception_ptr e, error_code ec) mutable {
                          // Only a bug (or a throwing user callback) gets here.
                          if (e) {
                              ec = make_error_code(errc::protocol_error);
                              try {
                                  std::rethrow_exception(e);
                              } catch (const std::exception& ex) {
                                  diag.message = ex.what();
                              } catch (...) {
                                  diag.message = "unknown exception";
                              }
                          }
                          std::move(h)(ec);
                      })));
}

}  // namespace

void pipeline::start_check(asio::any_completion_handler<void(error_code)> h, diagnostics& diag) {
    auto p = impl_;
    launch(
        p->strand,
        [p, &diag]() -> asio::awaitable<error_code> { co_return co_await p->check(diag); }, diag,
        std::move(h));
}

void pipeline::start_run(asio::any_completion_handler<void(error_code)> h, diagnostics* diag) {
    auto p = impl_;
    diagnostics* d = diag ? diag : &p->run_diag;
    if (p->build_error) {
        // Completes through the handler's executor, never inline.
        *d = p->build_diag;
        auto ec = p->build_error;
        auto hex = asio::get_associated_executor(h, p->strand);
        asio::post(p->strand, asio::bind_executor(
                                  hex, [h = std::move(h), ec]() mutable { std::move(h)(ec); }));
        return;
    }
    launch(
        p->strand, [p, d]() -> asio::awaitable<error_code> { co_return co_await p->run(*d); }, *d,
        std::move(h));
}

const diagnostics& pipeline::last_diagnostics() const noexcept {
    return impl_->run_diag;
}

const pipeline_stats& pipeline::stats() const noexcept {
    return impl_->engine ? impl_->engine->stats() : impl_->no_stats;
}

pipeline_snapshot pipeline::status() const {
    if (!impl_->engine)
        return {};
    return impl_->engine->status();
}

bool pipeline::ready(std::string& reason) const {
    if (!impl_->engine) {
        reason = "invalid configuration";
        return false;
    }
    return impl_->engine->ready(reason);
}

std::string pipeline::describe_destination() const {
    return impl_->svc.dest ? impl_->svc.dest->describe() : std::string();
}

std::string pipeline::describe_state() const {
    return impl_->svc.state ? impl_->svc.state->describe() : std::string();
}

std::string pipeline::describe_keys() const {
    return impl_->build_error ? std::string() : impl_->svc.keys.spec();
}

std::string pipeline::lease_owner() const {
    return impl_->svc.leases ? impl_->svc.leases->owner() : std::string();
}

}  // namespace penne
