// CSV encoding of realistic change events (the ~800-byte corpus of the JSON walker bench):
// the tabular extraction alone, then whole rows in both layouts, and JSON lines beside them
// for scale. Batches of 4096 events are sealed and reopened, as the batcher would.
#include <penne/formats/csv.hpp>
#include <penne/formats/jsonl.hpp>
#include <penne/formats/tabular.hpp>

#include "bson_corpus.hpp"

#include <benchmark/benchmark.h>

#include <string>
#include <vector>

namespace {

using namespace penne::formats;

struct corpus {
    std::vector<std::vector<std::uint8_t>> docs;
    std::vector<penne::change_event> events;
    double mean_bytes = 0;
};

const corpus& mixed_events() {
    static const corpus c = [] {
        corpus c;
        testing::corpus_generator gen(12345);
        std::size_t total = 0;
        for (int i = 0; i < 512; ++i) {
            c.docs.push_back(testing::bytes_of(gen.change_event().get()));
            total += c.docs.back().size();
        }
        for (const auto& d : c.docs) {
            penne::change_event ev;
            ev.raw = penne::byte_view(d.data(), d.size());
            c.events.push_back(ev);
        }
        c.mean_bytes = static_cast<double>(total) / static_cast<double>(c.docs.size());
        return c;
    }();
    return c;
}

void report(benchmark::State& state, const corpus& c, std::size_t events, std::size_t in_bytes,
            std::size_t out_bytes) {
    state.SetItemsProcessed(static_cast<std::int64_t>(events));
    state.SetBytesProcessed(static_cast<std::int64_t>(in_bytes));
    state.counters["events/s"] =
        benchmark::Counter(static_cast<double>(events), benchmark::Counter::kIsRate);
    state.counters["out_MB/s"] =
        benchmark::Counter(static_cast<double>(out_bytes) / 1e6, benchmark::Counter::kIsRate);
    state.counters["event_bytes"] = c.mean_bytes;
}

void BM_TabularExtract(benchmark::State& state) {
    const auto& c = mixed_events();
    tabular_extractor x;
    tabular_row row;
    penne::diagnostics diag;
    std::size_t n = 0, in = 0;
    for (auto _ : state) {
        const auto& ev = c.events[n++ % c.events.size()];
        if (x.extract(ev, row, diag))
            state.SkipWithError("extraction failed");
        benchmark::DoNotOptimize(row.resume_token.data());
        in += ev.raw.size();
    }
    report(state, c, n, in, 0);
}
BENCHMARK(BM_TabularExtract);

void encode_batches(benchmark::State& state, const penne::encoder_factory& f) {
    const auto& c = mixed_events();
    constexpr std::size_t batch_events = 4096;
    std::string object;
    penne::diagnostics diag;
    std::size_t n = 0, in = 0, out = 0;
    auto enc = f.open("shop/orders/bench");
    for (auto _ : state) {
        const auto& ev = c.events[n++ % c.events.size()];
        if (enc->append(ev, diag))
            state.SkipWithError("encoding failed");
        in += ev.raw.size();
        if (n % batch_events == 0) {
            enc->finish(object);
            out += object.size();
            benchmark::DoNotOptimize(object.data());
            enc = f.open("shop/orders/bench");
        }
    }
    out += enc->buffered_bytes();
    report(state, c, n, in, out);
}

void BM_CsvEncode(benchmark::State& state) {
    csv_encoder_factory f;
    encode_batches(state, f);
}
BENCHMARK(BM_CsvEncode);

void BM_CsvEncodeCanonical(benchmark::State& state) {
    csv_options o;
    o.mode = ejson_mode::canonical;
    std::unique_ptr<csv_encoder_factory> f;
    penne::diagnostics diag;
    if (csv_encoder_factory::create(o, f, diag)) {
        state.SkipWithError(diag.message.c_str());
        return;
    }
    encode_batches(state, *f);
}
BENCHMARK(BM_CsvEncodeCanonical);

void BM_CsvEncodeRigatoni(benchmark::State& state) {
    csv_options o;
    o.layout = csv_layout::rigatoni;
    std::unique_ptr<csv_encoder_factory> f;
    penne::diagnostics diag;
    if (csv_encoder_factory::create(o, f, diag)) {
        state.SkipWithError(diag.message.c_str());
        return;
    }
    encode_batches(state, *f);
}
BENCHMARK(BM_CsvEncodeRigatoni);

void BM_JsonlEncode(benchmark::State& state) {
    jsonl_encoder_factory f;
    encode_batches(state, f);
}
BENCHMARK(BM_JsonlEncode);

}  // namespace
