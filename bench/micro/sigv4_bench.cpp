// SigV4 signing cost for the requests the S3 destination sends: a PutObject signed with the
// Authorization header (payload hash precomputed by the uploader, signing key cached — the
// steady state), the same with the body hashed by the signer, a presigned GET, and the daily
// signing-key derivation the cache saves. Read requests/s from the items_per_second counter.
#include <penne/http/sigv4.hpp>

#include <benchmark/benchmark.h>

#include <chrono>
#include <string>
#include <vector>

namespace {

using namespace penne::http;

const credentials bench_creds{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                              "FwoGZXIvYXdzEBAaDExampleSessionTokenValueForBenchmarks=="};

std::chrono::system_clock::time_point bench_time() {
    using namespace std::chrono;
    return sys_days{year{2025} / 6 / 1} + hours{12};
}

// A PutObject as the destination builds it: virtual-hosted bucket, a date-partitioned key,
// Content-MD5, content type/encoding of the format, storage class.
struct put_object {
    std::string target = uri_encode_path(
        "/prefix/shop/orders/2025/06/01/12/0000000065f1a2b3-9c4d5e6f7a8b9c0d.jsonl.zst");
    std::string body_sha = sha256_hex("body");
    std::vector<header_view> fields{
        {"Host", "penne-bench.s3.eu-central-1.amazonaws.com"},
        {"Content-Length", "8388608"},
        {"Content-Type", "application/x-ndjson"},
        {"Content-Encoding", "zstd"},
        {"Content-MD5", "1B2M2Y8AsgTpgAmY7PhCfg=="},
        {"x-amz-storage-class", "STANDARD_IA"},
        {"User-Agent", "penne/1.0.0"},
    };
};

void BM_SigV4_PutObject_Headers(benchmark::State& state) {
    sigv4_signer signer(sigv4_options::s3("eu-central-1"));
    put_object req;
    sigv4_signed_headers out;
    penne::diagnostics diag;
    for (auto _ : state) {
        auto ec = signer.sign({"PUT", req.target, req.fields, {}, req.body_sha}, bench_creds,
                              bench_time(), out, diag);
        benchmark::DoNotOptimize(ec);
        benchmark::DoNotOptimize(out.authorization.data());
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SigV4_PutObject_Headers);

// The signer hashing the body itself: SHA-256 throughput dominates.
void BM_SigV4_PutObject_HashBody(benchmark::State& state) {
    sigv4_signer signer(sigv4_options::s3("eu-central-1"));
    put_object req;
    std::string body(static_cast<std::size_t>(state.range(0)), 'x');
    sigv4_signed_headers out;
    penne::diagnostics diag;
    for (auto _ : state) {
        auto ec = signer.sign({"PUT", req.target, req.fields, body, {}}, bench_creds, bench_time(),
                              out, diag);
        benchmark::DoNotOptimize(ec);
    }
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_SigV4_PutObject_HashBody)->Arg(64 << 10)->Arg(8 << 20);

void BM_SigV4_PresignGet(benchmark::State& state) {
    sigv4_signer signer(sigv4_options::s3("eu-central-1"));
    put_object req;
    std::vector<header_view> host{req.fields.front()};
    sigv4_presigned out;
    penne::diagnostics diag;
    for (auto _ : state) {
        auto ec = signer.presign({"GET", req.target, host, {}, {}}, bench_creds, bench_time(),
                                 std::chrono::seconds(3600), out, diag);
        benchmark::DoNotOptimize(ec);
        benchmark::DoNotOptimize(out.target.data());
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SigV4_PresignGet);

// What each request would cost without the signing-key cache.
void BM_SigV4_DeriveSigningKey(benchmark::State& state) {
    for (auto _ : state) {
        auto key =
            derive_signing_key(bench_creds.secret_access_key, "20250601", "eu-central-1", "s3");
        benchmark::DoNotOptimize(key.data());
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SigV4_DeriveSigningKey);

}  // namespace
