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

// One value type at a time: 32 elements of it per document, so a change to one writer
// shows up undiluted (ns per element = time / 32).
void BM_EjsonWalkerValues(benchmark::State& state) {
    static const char* kinds[] = {"double", "int32", "ascii string", "utf-8 string",
                                  "date",   "oid",   "decimal128"};
    const auto kind = state.range(0);
    const std::vector<std::uint8_t> doc = [kind] {
        testing::corpus_generator gen(7);
        testing::bson_ptr b(bson_new());
        for (int i = 0; i < 32; ++i) {
            const std::string key = "field" + std::to_string(i);
            switch (kind) {
                case 0:
                    bson_append_double(b.get(), key.c_str(), -1, gen.below(100000) / 100.0);
                    break;
                case 1:
                    bson_append_int32(b.get(), key.c_str(), -1,
                                      static_cast<std::int32_t>(gen.below(100000)));
                    break;
                case 2:
                    bson_append_utf8(b.get(), key.c_str(), -1, "someone@example.com", -1);
                    break;
                case 3:
                    bson_append_utf8(b.get(), key.c_str(), -1, "J\xc3\xbcrgen M\xc3\xbcller", -1);
                    break;
                case 4:
                    bson_append_date_time(b.get(), key.c_str(), -1,
                                          1700000000000LL + gen.below(1000000000));
                    break;
                case 5: {
                    bson_oid_t oid;
                    for (auto& byte : oid.bytes)
                        byte = static_cast<std::uint8_t>(gen.u64());
                    bson_append_oid(b.get(), key.c_str(), -1, &oid);
                    break;
                }
                default: {
                    bson_decimal128_t dec;
                    const std::string text = std::to_string(gen.below(100000)) + ".25";
                    bson_decimal128_from_string(text.c_str(), &dec);
                    bson_append_decimal128(b.get(), key.c_str(), -1, &dec);
                    break;
                }
            }
        }
        return testing::bytes_of(b.get());
    }();
    std::string out;
    for (auto _ : state) {
        out.clear();
        benchmark::DoNotOptimize(write_ejson(doc.data(), doc.size(), ejson_mode::relaxed, out));
        benchmark::DoNotOptimize(out.data());
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * 32);
    state.SetLabel(kinds[kind]);
}
BENCHMARK(BM_EjsonWalkerValues)->DenseRange(0, 6);

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
