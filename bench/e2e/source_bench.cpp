// penne-source-bench: drains a change stream with penne's own MongoDB client as fast as it
// reads, and (with --ceiling) times penne's bare stages on the events it received.
//
//   penne-source-bench --uri mongodb://127.0.0.1:PORT/?directConnection=true --db bench
//                      [--coll coll0] --expect N [--server-pid PID]
//                      [--ceiling [--format jsonl] [--compression zstd] [--level 0]
//                       [--batch-events 10000] [--keep 200000] [--repeat 3]]
//
// Drain: opens the stream (database scope, or collection scope with --coll) from the start
// of the oplog (a high-water token older than any event, which mongosim's load mode accepts:
// mongosim --preload N) and calls next() until N events arrived. It reports events/s, MB/s of
// event BSON, its own CPU time and, given --server-pid, the server's CPU time over the drain
// (utime+stime from /proc/<pid>/stat, 10 ms ticks: drain for seconds, not milliseconds).
//
// Ceiling: keeps a copy of the first --keep events and times, on exactly those bytes, the
// stages every event passes through in penne: the format's encoder (for jsonl the BSON ->
// Extended JSON walker), the whole-object compressor for formats that do not compress
// themselves, and SHA-256 of each finished object (what S3's SigV4 payload hash costs). The
// events are cut into objects of --batch-events, as penne's batcher would. Each stage runs
// once to warm up (the first touch of fresh output pages) and then --repeat times, timed in
// thread CPU. The sum per event of the fastest runs is the ceiling (ceiling_ns_per_event):
// what one core could do with nothing but those stages, least disturbed by other processes.
// The sum of the runs' means (ceiling_mean_ns_per_event) is what one pass of the stages
// costs on the machine as it is: the figure to set against one penne drain, which is one
// pass too (a fastest-of-N is an order statistic; set against a single run it is biased
// low by the machine's noise, ~10 % here).
//
// Output: one JSON object on stdout. Exit status 0 when N events arrived, 1 otherwise.

#include <penne/formats/avro.hpp>
#include <penne/formats/compress.hpp>
#include <penne/formats/csv.hpp>
#include <penne/formats/jsonl.hpp>
#include <penne/formats/parquet.hpp>
#include <penne/mongo/change_stream.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <bson/bson.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <openssl/sha.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <limits>
#include <memory>
#include <string>
#include <vector>

namespace {

namespace asio = boost::asio;
using clock_type = std::chrono::steady_clock;

struct options {
    std::string uri = "mongodb://127.0.0.1:27017/?directConnection=true";
    std::string db = "bench";
    std::string coll;  // empty: database scope
    std::uint64_t expect = 0;
    int server_pid = 0;
    bool ceiling = false;
    std::string format = "jsonl";
    std::string compression = "zstd";
    int level = 0;
    std::size_t batch_events = 10'000;
    std::size_t keep = 200'000;
    int repeat = 3;
    std::int32_t batch_size = 0;  // getMore batchSize; 0: the server's default
};

// utime+stime of a process in seconds, from /proc/<pid>/stat; negative when unreadable.
double process_cpu_seconds(int pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // The command name (field 2) may hold spaces; fields after it start past the last ')'.
    auto close = text.rfind(')');
    if (close == std::string::npos)
        return -1;
    std::vector<std::string> fields;
    std::size_t pos = close + 2;
    while (pos < text.size() && fields.size() < 13) {
        auto end = text.find(' ', pos);
        fields.push_back(text.substr(pos, end - pos));
        if (end == std::string::npos)
            break;
        pos = end + 1;
    }
    if (fields.size() < 13)
        return -1;
    // fields[0] is field 3 (state): utime is field 14, stime field 15.
    const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
    return (std::stod(fields[11]) + std::stod(fields[12])) / ticks;
}

double own_cpu_seconds() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    auto secs = [](const timeval& t) {
        return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
    };
    return secs(u.ru_utime) + secs(u.ru_stime);
}

// The kept events: one arena of raw BSON and, per event, the views rebased onto it.
struct kept_events {
    std::vector<std::uint8_t> arena;
    struct entry {
        std::size_t raw_at = 0, raw_len = 0;
        std::ptrdiff_t token_at = -1, op_at = -1, db_at = -1, coll_at = -1;
        std::size_t token_len = 0, op_len = 0, db_len = 0, coll_len = 0;
        penne::cluster_time time;
        std::int64_t wall = -1;
    };
    std::vector<entry> entries;

    // Offset of `p` inside the event, or -1 when the view points elsewhere (or is empty).
    static std::ptrdiff_t offset(const void* p, std::size_t len, const penne::change_event& e) {
        auto* b = reinterpret_cast<const std::uint8_t*>(p);
        if (len == 0 || b < e.raw.data() || b + len > e.raw.data() + e.raw.size())
            return -1;
        return b - e.raw.data();
    }

    void add(const penne::change_event& e) {
        entry x;
        x.raw_at = arena.size();
        x.raw_len = e.raw.size();
        arena.insert(arena.end(), e.raw.begin(), e.raw.end());
        x.token_at = offset(e.token.data(), e.token.size(), e);
        x.token_len = e.token.size();
        x.op_at = offset(e.operation.data(), e.operation.size(), e);
        x.op_len = e.operation.size();
        x.db_at = offset(e.db.data(), e.db.size(), e);
        x.db_len = e.db.size();
        x.coll_at = offset(e.coll.data(), e.coll.size(), e);
        x.coll_len = e.coll.size();
        x.time = e.time;
        x.wall = e.wall_time_ms;
        entries.push_back(x);
    }

    // Views into the arena; valid while the arena is not modified.
    std::vector<penne::change_event> views() const {
        std::vector<penne::change_event> out;
        out.reserve(entries.size());
        for (const auto& x : entries) {
            const std::uint8_t* raw = arena.data() + x.raw_at;
            penne::change_event e;
            e.raw = penne::byte_view(raw, x.raw_len);
            auto sv = [&](std::ptrdiff_t at, std::size_t len) {
                return at < 0 ? std::string_view()
                              : std::string_view(reinterpret_cast<const char*>(raw + at), len);
            };
            if (x.token_at >= 0)
                e.token = penne::byte_view(raw + x.token_at, x.token_len);
            e.operation = sv(x.op_at, x.op_len);
            e.db = sv(x.db_at, x.db_len);
            e.coll = sv(x.coll_at, x.coll_len);
            e.time = x.time;
            e.wall_time_ms = x.wall;
            out.push_back(e);
        }
        return out;
    }
};

struct drain_result {
    std::uint64_t events = 0, bytes = 0, batches = 0;
    double seconds = 0, client_cpu = 0, server_cpu = -1;
    std::string error;
};

// A high-water resume token older than every event: {_data: "82" <ts 1.0> "03"}.
penne::resume_token oldest_token() {
    bson_t t;
    bson_init(&t);
    BSON_APPEND_UTF8(&t, "_data", "82000000010000000003");
    penne::resume_token tok(penne::byte_view(bson_get_data(&t), t.len));
    bson_destroy(&t);
    return tok;
}

asio::awaitable<void> drain(const options& o, drain_result& r, kept_events* keep) {
    namespace mongo = penne::mongo;
    mongo::source_options so;
    so.uri = o.uri;
    so.max_await = std::chrono::milliseconds(500);
    so.batch_size = o.batch_size;
    auto cfg = std::make_shared<mongo::stream_config>();
    penne::diagnostics d;
    if (auto ec = mongo::prepare(so, *cfg, d)) {
        r.error = "bad options: " + d.message;
        co_return;
    }
    penne::watch_scope scope;
    scope.kind = o.coll.empty() ? penne::watch_scope::level::database
                                : penne::watch_scope::level::collection;
    scope.db = o.db;
    scope.coll = o.coll;
    mongo::change_stream cs(co_await asio::this_coro::executor, scope, cfg);
    penne::start_position from;
    from.resume_after = oldest_token();
    const double server0 = o.server_pid > 0 ? process_cpu_seconds(o.server_pid) : -1;
    const double client0 = own_cpu_seconds();
    const auto t0 = clock_type::now();
    auto ec = co_await cs.open(from, d);
    if (ec) {
        r.error = "open: " + d.message;
        co_return;
    }
    penne::event_batch batch;
    int idle = 0;
    while (r.events < o.expect) {
        penne::diagnostics nd;
        auto nec = co_await cs.next(batch, nd);
        if (nec) {
            r.error = "next: " + nd.message;
            break;
        }
        ++r.batches;
        if (batch.events.empty()) {
            // The oplog holds fewer events than expected: give up after a few idle polls.
            if (++idle == 6)
                break;
            continue;
        }
        idle = 0;
        for (const auto& e : batch.events) {
            r.bytes += e.raw.size();
            if (keep && keep->entries.size() < o.keep)
                keep->add(e);
        }
        r.events += batch.events.size();
    }
    r.seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
    r.client_cpu = own_cpu_seconds() - client0;
    if (o.server_pid > 0)
        r.server_cpu = process_cpu_seconds(o.server_pid) - server0;
    co_await cs.close();
}

double thread_cpu_seconds() {
    timespec t{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

// `repeat` timed runs of f() after one untimed warm-up run, in seconds of this thread's CPU
// time (on a shared machine wall time also counts the time other processes held the core,
// and penne's side of the ratio is CPU time too). The warm-up takes the first touch of the
// output buffers' fresh pages, which penne pays once per process, not per batch. Both the
// fastest run (the least disturbed: the physical limit) and the mean (what one pass costs on
// this machine as it is, comparable with one drain's CPU) are reported.
struct stage_time {
    double fastest = 0, mean = 0;
};

template <class F>
stage_time timed(int repeat, F&& f) {
    f();
    stage_time t;
    t.fastest = std::numeric_limits<double>::infinity();
    const int n = std::max(1, repeat);
    for (int i = 0; i < n; ++i) {
        const double t0 = thread_cpu_seconds();
        f();
        const double dt = thread_cpu_seconds() - t0;
        t.fastest = std::min(t.fastest, dt);
        t.mean += dt / n;
    }
    return t;
}

struct ceiling_result {
    std::size_t events = 0;
    double encode_ns = 0, compress_ns = 0, sha256_ns = 0;                 // fastest runs
    double encode_mean_ns = 0, compress_mean_ns = 0, sha256_mean_ns = 0;  // mean of the runs
    std::uint64_t encoded_bytes = 0, object_bytes = 0;
    std::string error;
};

penne::error_code make_factory(const options& o, std::unique_ptr<penne::encoder_factory>& out,
                               penne::diagnostics& d) {
    using namespace penne::formats;
    if (o.format == "jsonl") {
        jsonl_options jo;
        if (auto ec = validate(jo, d))
            return ec;
        out = std::make_unique<jsonl_encoder_factory>(jo);
        return {};
    }
    if (o.format == "csv") {
        std::unique_ptr<csv_encoder_factory> f;
        auto ec = csv_encoder_factory::create(csv_options{}, f, d);
        out = std::move(f);
        return ec;
    }
    if (o.format == "parquet") {
        parquet_options po;
        if (o.compression == "none" || o.compression == "snappy" || o.compression == "gzip")
            po.codec = o.compression == "none"     ? parquet_codec::none
                       : o.compression == "snappy" ? parquet_codec::snappy
                                                   : parquet_codec::gzip;
        std::unique_ptr<parquet_encoder_factory> f;
        auto ec = parquet_encoder_factory::create(po, f, d);
        out = std::move(f);
        return ec;
    }
    if (o.format == "avro") {
        avro_options ao;
        if (o.compression == "none" || o.compression == "snappy" || o.compression == "zstd")
            ao.codec = o.compression == "none"     ? avro_codec::null
                       : o.compression == "snappy" ? avro_codec::snappy
                                                   : avro_codec::zstandard;
        std::unique_ptr<avro_encoder_factory> f;
        auto ec = avro_encoder_factory::create(ao, f, d);
        out = std::move(f);
        return ec;
    }
    d.message = "unknown --format " + o.format + " (jsonl, csv, parquet, avro)";
    return penne::make_error_code(penne::errc::invalid_config);
}

ceiling_result time_stages(const options& o, const kept_events& kept) {
    ceiling_result r;
    const auto events = kept.views();
    r.events = events.size();
    if (events.empty()) {
        r.error = "no events kept";
        return r;
    }
    penne::diagnostics d;
    std::unique_ptr<penne::encoder_factory> factory;
    if (make_factory(o, factory, d)) {
        r.error = d.message;
        return r;
    }
    const bool outer = !factory->info().compresses_itself;
    penne::formats::compression_options co;
    if (outer && penne::formats::parse_compression(o.compression, o.level, co, d)) {
        r.error = d.message;
        return r;
    }
    const std::size_t per = std::max<std::size_t>(1, o.batch_events);
    std::vector<std::string> objects((events.size() + per - 1) / per);
    const stage_time enc = timed(o.repeat, [&] {
        // As penne's engine does: a batch after a full one reserves that one's size and an
        // eighth (batch_encoder::reserve), so its buffer does not grow by doubling.
        std::size_t next_reserve = 0;
        for (std::size_t b = 0; b < objects.size(); ++b) {
            auto enc = factory->open("bench/ceiling/" + std::to_string(b));
            if (next_reserve)
                enc->reserve(next_reserve);
            const std::size_t end = std::min(events.size(), (b + 1) * per);
            for (std::size_t i = b * per; i < end; ++i)
                if (enc->append(events[i], d))
                    r.error = d.message;
            enc->finish(objects[b]);
            next_reserve = end - b * per == per ? objects[b].size() + objects[b].size() / 8 : 0;
        }
    });
    for (const auto& obj : objects)
        r.encoded_bytes += obj.size();
    std::vector<std::string> compressed(objects.size());
    stage_time comp;
    if (outer) {
        penne::formats::compressor c(co);
        comp = timed(o.repeat, [&] {
            for (std::size_t b = 0; b < objects.size(); ++b)
                if (c.compress(objects[b], compressed[b]))
                    r.error = "compression failed";
        });
    } else {
        compressed = objects;
    }
    for (const auto& obj : compressed)
        r.object_bytes += obj.size();
    unsigned char digest[SHA256_DIGEST_LENGTH];
    const stage_time sha = timed(o.repeat, [&] {
        for (const auto& obj : compressed)
            SHA256(reinterpret_cast<const unsigned char*>(obj.data()), obj.size(), digest);
    });
    const double n = static_cast<double>(events.size());
    r.encode_ns = enc.fastest * 1e9 / n;
    r.compress_ns = comp.fastest * 1e9 / n;
    r.sha256_ns = sha.fastest * 1e9 / n;
    r.encode_mean_ns = enc.mean * 1e9 / n;
    r.compress_mean_ns = comp.mean * 1e9 / n;
    r.sha256_mean_ns = sha.mean * 1e9 / n;
    return r;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"penne-source-bench: drain a change stream with penne's client, time stages"};
    options o;
    app.add_option("--uri", o.uri, "MongoDB URI");
    app.add_option("--db", o.db, "Database to watch");
    app.add_option("--coll", o.coll, "Collection to watch (default: the whole database)");
    app.add_option("--expect", o.expect, "Events to drain")->required();
    app.add_option("--server-pid", o.server_pid, "Report this process's CPU time (mongosim)");
    app.add_option("--batch-size", o.batch_size, "getMore batchSize (0: server default)");
    app.add_flag("--ceiling", o.ceiling, "Time the bare stages on the drained events");
    app.add_option("--format", o.format, "jsonl, csv, parquet or avro");
    app.add_option("--compression", o.compression, "Codec (as output.compression)");
    app.add_option("--level", o.level, "Compression level (0: the codec's default)");
    app.add_option("--batch-events", o.batch_events, "Events per object")
        ->check(CLI::Range(1, 10'000'000));
    app.add_option("--keep", o.keep, "Events kept for the stage timings");
    app.add_option("--repeat", o.repeat, "Runs of each stage (the fastest counts)")
        ->check(CLI::Range(1, 100));
    CLI11_PARSE(app, argc, argv);
#if defined(__GLIBC__)
    // The allocator settings of the penne daemon (app/main.cpp): freed batch buffers stay in
    // the heap for reuse. Without them every batch of the stage timings would fault in fresh
    // pages that penne itself does not pay for, inflating (and adding noise to) the ceiling.
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 128 << 20);
#endif

    drain_result r;
    kept_events kept;
    asio::io_context io;
    asio::co_spawn(io, drain(o, r, o.ceiling ? &kept : nullptr), [&](std::exception_ptr e) {
        if (e)
            r.error = "exception in the drain";
    });
    io.run();

    const double n = static_cast<double>(r.events);
    std::printf("{\"events\": %llu, \"batches\": %llu, \"seconds\": %.3f",
                static_cast<unsigned long long>(r.events),
                static_cast<unsigned long long>(r.batches), r.seconds);
    std::printf(", \"events_per_s\": %.0f, \"mb_per_s\": %.1f, \"mean_event_bytes\": %.0f",
                r.seconds > 0 ? n / r.seconds : 0.0,
                r.seconds > 0 ? static_cast<double>(r.bytes) / r.seconds / 1e6 : 0.0,
                n > 0 ? static_cast<double>(r.bytes) / n : 0.0);
    std::printf(", \"client_cpu_s\": %.3f, \"client_cpu_ns_per_event\": %.0f", r.client_cpu,
                n > 0 ? r.client_cpu * 1e9 / n : 0.0);
    if (r.server_cpu >= 0)
        std::printf(
            ", \"server_cpu_s\": %.3f, \"server_cpu_ns_per_event\": %.0f, "
            "\"server_events_per_cpu_s\": %.0f",
            r.server_cpu, n > 0 ? r.server_cpu * 1e9 / n : 0.0,
            r.server_cpu > 0 ? n / r.server_cpu : 0.0);
    if (o.ceiling && r.error.empty()) {
        auto c = time_stages(o, kept);
        if (!c.error.empty())
            r.error = "ceiling: " + c.error;
        std::printf(
            ", \"ceiling\": {\"format\": \"%s\", \"compression\": \"%s\", \"events\": %zu, "
            "\"encode_ns_per_event\": %.1f, \"compress_ns_per_event\": %.1f, "
            "\"sha256_ns_per_event\": %.1f, \"ceiling_ns_per_event\": %.1f, "
            "\"encode_mean_ns_per_event\": %.1f, \"compress_mean_ns_per_event\": %.1f, "
            "\"sha256_mean_ns_per_event\": %.1f, \"ceiling_mean_ns_per_event\": %.1f, "
            "\"encoded_bytes\": %llu, \"object_bytes\": %llu}",
            o.format.c_str(), o.compression.c_str(), c.events, c.encode_ns, c.compress_ns,
            c.sha256_ns, c.encode_ns + c.compress_ns + c.sha256_ns, c.encode_mean_ns,
            c.compress_mean_ns, c.sha256_mean_ns,
            c.encode_mean_ns + c.compress_mean_ns + c.sha256_mean_ns,
            static_cast<unsigned long long>(c.encoded_bytes),
            static_cast<unsigned long long>(c.object_bytes));
    }
    if (!r.error.empty()) {
        std::string esc;
        for (char ch : r.error)
            esc += (ch == '"' || ch == '\\') ? std::string("\\") + ch : std::string(1, ch);
        std::printf(", \"error\": \"%s\"", esc.c_str());
    }
    std::printf("}\n");
    return r.error.empty() && r.events >= o.expect ? 0 : 1;
}
