// BSON → relaxed Extended JSON on realistic change events: our walker against libbson's
// bson_as_relaxed_extended_json, plus whole-batch compression at the default levels.
// Read the ratio from the events/s counters of the two walker benchmarks.
#include <penne/formats/compress.hpp>
#include <penne/formats/ejson.hpp>

#include "bson_corpus.hpp"

#include <benchmark/benchmark.h>

#include <map>
#include <string>
#include <vector>

namespace {

using namespace penne::formats;

struct event_set {
    std::vector<std::vector<std::uint8_t>> docs;
    double mean_bytes = 0;
};

const event_set& events(const char* op) {
    static std::map<std::string, event_set> cache;
    auto& set = cache[op ? op : "mixed"];
    if (set.docs.empty()) {
        testing::corpus_generator gen(12345);
        std::size_t total = 0;
        for (int i = 0; i < 512; ++i) {
            set.docs.push_back(testing::bytes_of(gen.change_event(op).get()));
            total += set.docs.back().size();
        }
        set.mean_bytes = static_cast<double>(total) / static_cast<double>(set.docs.size());
    }
    return set;
}

const char* op_of(const benchmark::State& state) {
    static const char* ops[] = {"insert", "update", "delete", nullptr};
    return ops[state.range(0)];
}

void label(benchmark::State& state, const event_set& set, std::size_t n) {
    state.SetItemsProcessed(static_cast<std::int64_t>(n));
    state.counters["events/s"] =
        benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsRate);
    state.counters["event_bytes"] = set.mean_bytes;
    state.SetLabel(op_of(state) ? op_of(state) : "mixed");
}

void BM_EjsonWalker(benchmark::State& state) {
    const auto& set = events(op_of(state));
    std::string out;
    std::size_t n = 0;
    for (auto _ : state) {
        const auto& d = set.docs[n++ % set.docs.size()];
        out.clear();
        benchmark::DoNotOptimize(write_ejson(d.data(), d.size(), ejson_mode::relaxed, out));
        benchmark::DoNotOptimize(out.data());
    }
    label(state, set, n);
}
BENCHMARK(BM_EjsonWalker)->DenseRange(0, 3);

void BM_EjsonLibbson(benchmark::State& state) {
    const auto& set = events(op_of(state));
    std::size_t n = 0;
    for (auto _ : state) {
        const auto& d = set.docs[n++ % set.docs.size()];
        bson_t b;
        bson_init_static(&b, d.data(), d.size());
        char* s = bson_as_relaxed_extended_json(&b, nullptr);
        benchmark::DoNotOptimize(s);
        bson_free(s);
    }
    label(state, set, n);
}
BENCHMARK(BM_EjsonLibbson)->DenseRange(0, 3);

void BM_EjsonWalkerCanonical(benchmark::State& state) {
    const auto& set = events(nullptr);
    std::string out;
    std::size_t n = 0;
    for (auto _ : state) {
        const auto& d = set.docs[n++ % set.docs.size()];
        out.clear();
        benchmark::DoNotOptimize(write_ejson(d.data(), d.size(), ejson_mode::canonical, out));
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(n));
}
BENCHMARK(BM_EjsonWalkerCanonical);

// A batch of ~4 MiB of JSON lines, compressed as a sealed batch would be.
const std::string& batch() {
    static const std::string lines = [] {
        std::string s;
        const auto& set = events(nullptr);
        std::size_t i = 0;
        while (s.size() < 4u << 20) {
            const auto& d = set.docs[i++ % set.docs.size()];
            write_ejson(d.data(), d.size(), ejson_mode::relaxed, s);
            s.push_back('\n');
        }
        return s;
    }();
    return lines;
}

void BM_CompressBatch(benchmark::State& state) {
    const codec c = state.range(0) == 0 ? codec::zstd : codec::gzip;
    compressor_pool pool(compression_options{c, 0});
    const std::string& in = batch();
    std::string out;
    for (auto _ : state) {
        if (pool.compress(in, out))
            state.SkipWithError("compression failed");
        benchmark::DoNotOptimize(out.data());
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * in.size()));
    state.counters["ratio"] = static_cast<double>(in.size()) / static_cast<double>(out.size());
    state.SetLabel(std::string(codec_name(c)) + " level " + std::to_string(default_level(c)));
}
BENCHMARK(BM_CompressBatch)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

}  // namespace
