// The hot path's pieces between the socket and the object, on 4096 distinct generated change
// events (seed 12345, the corpus of the walker and encoder benches, ~700 bytes of BSON each):
//
//   BM_Compress/<codec>/<level>  whole-object compression of a 10,000-event JSON lines batch
//                                (distinct events, so the ratio is closer to real data than a
//                                batch repeating a few hundred events); zstd 1/3/9, gzip 1/6.
//   BM_OpMsgReplyDecode          a getMore reply of 1,000 events: OP_MSG frame -> reply fields
//                                -> one change_event view per event (penne::mongo).
//   BM_BatcherAppendSeal         batcher::append with the JSON lines encoder, sealing every
//                                10,000 events (batch.max_events' default).
//   BM_WatermarkCycle            one batch's life in the watermark tracker: open, sealed,
//                                durable, take_commit.
//   BM_AllocationsPerEvent       decode + encode + append per event in the steady state, with
//                                allocations counted by a replaced global operator new
//                                (alloc_counter.cpp): the allocs/event counter.
//
// The per-scope router (pipeline_engine's routing of events to collection batchers) is not a
// public type; BM_BatcherAppendSeal covers the work it hands on.
#include <penne/batcher.hpp>
#include <penne/checkpoint.hpp>
#include <penne/formats/compress.hpp>
#include <penne/formats/jsonl.hpp>
#include <penne/mongo/commands.hpp>
#include <penne/mongo/wire.hpp>

#include "alloc_counter.hpp"
#include "bson_corpus.hpp"

#include <benchmark/benchmark.h>

#include <string>
#include <vector>

namespace {

struct corpus {
    std::vector<std::vector<std::uint8_t>> docs;
    std::vector<penne::change_event> events;  // views into docs, parsed by penne::mongo
};

const corpus& events() {
    static const corpus c = [] {
        corpus c;
        penne::formats::testing::corpus_generator gen(12345);
        for (int i = 0; i < 4096; ++i)
            c.docs.push_back(penne::formats::testing::bytes_of(gen.change_event().get()));
        for (const auto& d : c.docs) {
            penne::change_event ev;
            if (penne::mongo::parse_change_event(penne::byte_view(d.data(), d.size()), ev))
                std::abort();  // the generator makes valid events; anything else is a bug
            c.events.push_back(ev);
        }
        return c;
    }();
    return c;
}

// A JSON lines object of `n` events of the corpus.
std::string jsonl_object(std::size_t n) {
    const auto& c = events();
    penne::formats::jsonl_encoder_factory f;
    auto enc = f.open("bench");
    penne::diagnostics d;
    for (std::size_t i = 0; i < n; ++i)
        (void)enc->append(c.events[i % c.events.size()], d);
    std::string out;
    enc->finish(out);
    return out;
}

void BM_Compress(benchmark::State& state) {
    static const std::string body = jsonl_object(10'000);
    penne::formats::compression_options o;
    o.codec = state.range(0) == 0 ? penne::formats::codec::zstd : penne::formats::codec::gzip;
    o.level = static_cast<int>(state.range(1));
    penne::diagnostics d;
    if (penne::formats::validate(o, d)) {
        state.SkipWithError(d.message.c_str());
        return;
    }
    penne::formats::compressor c(o);
    std::string out;
    for (auto _ : state) {
        if (c.compress(body, out)) {
            state.SkipWithError("compress failed");
            return;
        }
        benchmark::DoNotOptimize(out.data());
    }
    state.SetLabel(std::string(penne::formats::codec_name(o.codec)) + " " +
                   std::to_string(o.level));
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * body.size()));
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * 10'000));
    state.counters["ratio"] = static_cast<double>(body.size()) / static_cast<double>(out.size());
}
BENCHMARK(BM_Compress)->Args({0, 1})->Args({0, 3})->Args({0, 9})->Args({1, 1})->Args({1, 6});

// A getMore reply frame: {cursor: {nextBatch: [...], postBatchResumeToken, id, ns}, ok: 1}.
std::vector<std::uint8_t> reply_frame(std::size_t n) {
    const auto& c = events();
    bson_t body, cur, arr;
    bson_init(&body);
    bson_append_document_begin(&body, "cursor", -1, &cur);
    bson_append_array_begin(&cur, "nextBatch", -1, &arr);
    for (std::size_t i = 0; i < n; ++i) {
        const auto& d = c.docs[i % c.docs.size()];
        bson_t ev;
        bson_init_static(&ev, d.data(), d.size());
        std::string key = std::to_string(i);
        bson_append_document(&arr, key.c_str(), -1, &ev);
    }
    bson_append_array_end(&cur, &arr);
    bson_t pbrt;
    bson_append_document_begin(&cur, "postBatchResumeToken", -1, &pbrt);
    BSON_APPEND_UTF8(&pbrt, "_data", "8265A1B2C300000001");
    bson_append_document_end(&cur, &pbrt);
    BSON_APPEND_INT64(&cur, "id", 42);
    BSON_APPEND_UTF8(&cur, "ns", "shop.orders");
    bson_append_document_end(&body, &cur);
    BSON_APPEND_DOUBLE(&body, "ok", 1.0);
    std::vector<std::uint8_t> frame;
    penne::mongo::wire::encode_op_msg(frame, 7, 0,
                                      penne::byte_view(bson_get_data(&body), body.len));
    bson_destroy(&body);
    return frame;
}

void BM_OpMsgReplyDecode(benchmark::State& state) {
    const std::size_t n = 1000;
    const auto frame = reply_frame(n);
    std::vector<penne::change_event> out;
    for (auto _ : state) {
        penne::mongo::wire::op_msg_view msg;
        penne::mongo::command_reply reply;
        out.clear();
        if (penne::mongo::wire::decode_op_msg(frame, msg) ||
            penne::mongo::parse_reply(msg.body, reply) || !reply.cursor ||
            penne::mongo::parse_change_events(reply.cursor->batch, out)) {
            state.SkipWithError("decode failed");
            return;
        }
        benchmark::DoNotOptimize(out.data());
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * frame.size()));
}
BENCHMARK(BM_OpMsgReplyDecode);

void BM_BatcherAppendSeal(benchmark::State& state) {
    const auto& c = events();
    penne::formats::jsonl_encoder_factory f;
    penne::batcher b;
    penne::batch_limits limits;
    penne::diagnostics d;
    std::uint64_t seq = 0, batch = 0, sealed = 0;
    for (auto _ : state) {
        const auto& ev = c.events[seq % c.events.size()];
        if (!b.is_open())
            b.open(f.open("bench"), "bench/key", ev, ++batch, seq);
        if (b.append(ev, seq++, d)) {
            state.SkipWithError(d.message.c_str());
            return;
        }
        if (auto why = b.should_seal(limits)) {
            auto s = b.seal(*why);
            benchmark::DoNotOptimize(s.body.data());
            ++sealed;
        }
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(seq));
    state.counters["batches"] = static_cast<double>(sealed);
}
BENCHMARK(BM_BatcherAppendSeal);

void BM_WatermarkCycle(benchmark::State& state) {
    const auto& c = events();
    penne::watermark_tracker w;
    penne::resume_token before(c.events[0].token);
    w.set_position(before);
    penne::commit_request req;
    std::uint64_t seq = 0;
    const std::string key =
        "penne/shop/orders/2026/12/06/13/0001700000000.0000000001-0123456789abcdef";
    for (auto _ : state) {
        auto id = w.open(seq, before);
        seq += 100;
        w.sealed(id, seq - 1, key);
        w.set_position(c.events[seq % c.events.size()].token);
        w.durable(id);
        req = {};
        benchmark::DoNotOptimize(w.take_commit(req));
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_WatermarkCycle);

// Steady state of the hot path per event: the reply is decoded into views (reusing the
// events vector), each event is appended to the open batch. Allocations are counted after a
// warm-up batch, so growth of reused buffers does not count; sealing (one body per 10,000
// events) does.
void BM_AllocationsPerEvent(benchmark::State& state) {
    const std::size_t n = 1000;
    const auto frame = reply_frame(n);
    penne::formats::jsonl_encoder_factory f;
    penne::batcher b;
    penne::batch_limits limits;
    penne::diagnostics d;
    std::vector<penne::change_event> evs;
    std::uint64_t seq = 0, allocs = 0, counted = 0;
    bool warm = false;
    for (auto _ : state) {
        const std::uint64_t a0 = penne::bench::allocations();
        penne::mongo::wire::op_msg_view msg;
        penne::mongo::command_reply reply;
        evs.clear();
        if (penne::mongo::wire::decode_op_msg(frame, msg) ||
            penne::mongo::parse_reply(msg.body, reply) || !reply.cursor ||
            penne::mongo::parse_change_events(reply.cursor->batch, evs)) {
            state.SkipWithError("decode failed");
            return;
        }
        for (const auto& ev : evs) {
            if (!b.is_open())
                b.open(f.open("bench"), "bench/key", ev, seq, seq);
            (void)b.append(ev, seq++, d);
            if (auto why = b.should_seal(limits))
                benchmark::DoNotOptimize(b.seal(*why).body.data());
        }
        if (warm) {
            allocs += penne::bench::allocations() - a0;
            counted += evs.size();
        }
        warm = warm || seq >= limits.max_events;
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(seq));
    state.counters["allocs/event"] =
        counted ? static_cast<double>(allocs) / static_cast<double>(counted) : 0.0;
}
BENCHMARK(BM_AllocationsPerEvent)->MinTime(0.5);

}  // namespace
