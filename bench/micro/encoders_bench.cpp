// Every batch encoder on the same change-event corpus as the JSON walker bench (512 mixed
// insert/update/replace/delete events, seed 12345, ~700 bytes of BSON each): JSON lines,
// CSV, Parquet and Avro with their codecs. Each iteration appends one event; every 4096
// events the batch is finished (the Parquet footer, the last Avro block) and a new one is
// opened, as the batcher would, so the per-event cost includes the page and block
// compression. Counters: events/s (items), BSON bytes in per second (bytes_per_second),
// out_MB/s (object bytes written per second) and out/in (object size over BSON size).
#include <penne/formats/avro.hpp>
#include <penne/formats/csv.hpp>
#include <penne/formats/jsonl.hpp>
#include <penne/formats/parquet.hpp>

#include "bson_corpus.hpp"

#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

namespace {

using namespace penne::formats;

struct corpus {
    std::vector<std::vector<std::uint8_t>> docs;
    std::vector<penne::change_event> events;
};

const corpus& mixed_events() {
    static const corpus c = [] {
        corpus c;
        testing::corpus_generator gen(12345);
        for (int i = 0; i < 512; ++i)
            c.docs.push_back(testing::bytes_of(gen.change_event().get()));
        for (const auto& d : c.docs) {
            penne::change_event ev;
            ev.raw = penne::byte_view(d.data(), d.size());
            c.events.push_back(ev);
        }
        return c;
    }();
    return c;
}

void encode_batches(benchmark::State& state, const penne::encoder_factory& f) {
    const auto& c = mixed_events();
    constexpr std::size_t batch_events = 4096;
    std::string object;
    penne::diagnostics diag;
    std::size_t n = 0, in = 0, out = 0;
    auto enc = f.open("shop/orders/bench");
    for (auto _ : state) {
        const auto& ev = c.events[n++ % c.events.size()];
        if (enc->append(ev, diag)) {
            state.SkipWithError(diag.message.c_str());
            return;
        }
        in += ev.raw.size();
        if (n % batch_events == 0) {
            enc->finish(object);
            out += object.size();
            benchmark::DoNotOptimize(object.data());
            enc = f.open("shop/orders/bench");
        }
    }
    // The partial last batch is finished after the timed loop, so out/in stays exact.
    enc->finish(object);
    out += object.size();
    state.SetItemsProcessed(static_cast<std::int64_t>(n));
    state.SetBytesProcessed(static_cast<std::int64_t>(in));
    state.counters["events/s"] =
        benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsRate);
    state.counters["out_MB/s"] =
        benchmark::Counter(static_cast<double>(out) / 1e6, benchmark::Counter::kIsRate);
    state.counters["out/in"] = in ? static_cast<double>(out) / static_cast<double>(in) : 0;
}

// Runs the bench with the factory `Factory::create` makes from `opts`, or skips it with the
// factory's diagnostics.
template <typename Factory, typename Options>
void run(benchmark::State& state, const Options& opts) {
    std::unique_ptr<Factory> f;
    penne::diagnostics diag;
    if (Factory::create(opts, f, diag)) {
        state.SkipWithError(diag.message.c_str());
        return;
    }
    encode_batches(state, *f);
}

void BM_EncodeJsonl(benchmark::State& state) {
    jsonl_options o;
    if (state.range(0) == 1)
        o.mode = ejson_mode::canonical;
    if (state.range(0) == 2)
        o.layout = jsonl_layout::rigatoni;
    state.SetLabel(state.range(0) == 0   ? "relaxed"
                   : state.range(0) == 1 ? "canonical"
                                         : "rigatoni");
    penne::diagnostics diag;
    if (validate(o, diag)) {
        state.SkipWithError(diag.message.c_str());
        return;
    }
    jsonl_encoder_factory f(o);
    encode_batches(state, f);
}
BENCHMARK(BM_EncodeJsonl)->DenseRange(0, 2);

void BM_EncodeCsv(benchmark::State& state) {
    csv_options o;
    if (state.range(0) == 1)
        o.layout = csv_layout::rigatoni;
    state.SetLabel(state.range(0) == 0 ? "penne" : "rigatoni");
    run<csv_encoder_factory>(state, o);
}
BENCHMARK(BM_EncodeCsv)->DenseRange(0, 1);

void BM_EncodeParquet(benchmark::State& state) {
    static constexpr parquet_codec codecs[] = {parquet_codec::zstd, parquet_codec::snappy,
                                               parquet_codec::none, parquet_codec::gzip};
    parquet_options o;
    o.codec = codecs[state.range(0)];
    state.SetLabel(std::string(parquet_codec_name(o.codec)));
    run<parquet_encoder_factory>(state, o);
}
BENCHMARK(BM_EncodeParquet)->DenseRange(0, 3);

void BM_EncodeAvro(benchmark::State& state) {
    static constexpr avro_codec codecs[] = {avro_codec::deflate, avro_codec::snappy,
                                            avro_codec::zstandard, avro_codec::null};
    avro_options o;
    o.codec = codecs[state.range(0)];
    state.SetLabel(std::string(avro_codec_name(o.codec)));
    run<avro_encoder_factory>(state, o);
}
BENCHMARK(BM_EncodeAvro)->DenseRange(0, 3);

}  // namespace
