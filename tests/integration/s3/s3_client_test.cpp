// penne's S3 client against a real S3 (Ceph RGW), which refuses wrong signatures, payload
// hashes, Content-MD5 values and multipart details the way AWS does. What the client wrote
// is read back by an independent signer (curl --aws-sigv4) and compared byte for byte.
#include <penne/s3/client.hpp>
#include <penne/s3/destination.hpp>

#include <process.hpp>
#include <rgw_peer.hpp>
#include <temp_dir.hpp>

#include <gtest/gtest.h>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using penne::diagnostics;
using penne::error_code;
using penne::test::rgw_peer;
using penne::test::rgw_peer_environment;

[[maybe_unused]] auto* const rgw_env =
    ::testing::AddGlobalTestEnvironment(new rgw_peer_environment);

std::string random_bytes(std::size_t n, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::string out(n, '\0');
    for (auto& c : out)
        c = static_cast<char>(rng());
    return out;
}

// Compares without printing megabytes of binary on failure.
::testing::AssertionResult same_bytes(const std::string& got, const std::string& want) {
    if (got == want)
        return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "got " << got.size() << " bytes (" << got.substr(0, 200)
                                         << "...), want " << want.size() << " bytes";
}

std::string read_file(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

class s3_client_test : public ::testing::Test {
protected:
    void SetUp() override {
        peer = rgw_peer_environment::peer();
        ASSERT_NE(peer, nullptr) << rgw_peer_environment::failure();
        bucket = "penne-" + std::to_string(++bucket_counter) + "-" + std::to_string(::getpid());
        s3 = make_client(peer->secret_key());
        auto ec = run([&](diagnostics& d) { return s3->create_bucket(bucket, d); });
        ASSERT_FALSE(ec) << last.message;
    }

    std::shared_ptr<penne::s3::client> make_client(
        const std::string& secret, std::function<void(penne::s3::client_config&)> tweak = {}) {
        penne::s3::client_config cfg;
        diagnostics d;
        auto ec = penne::s3::parse_endpoint(peer->endpoint(), peer->region(),
                                            penne::s3::addressing::automatic, cfg.ep, d);
        EXPECT_FALSE(ec) << d.message;
        cfg.part_size = 5 * 1024 * 1024;
        cfg.multipart_threshold = 8 * 1024 * 1024;
        cfg.part_concurrency = 3;
        if (tweak)
            tweak(cfg);
        std::vector<std::unique_ptr<penne::s3::credentials_provider>> providers;
        providers.push_back(penne::s3::make_static_provider({peer->access_key(), secret, ""}));
        auto chain = std::make_shared<penne::s3::credentials_chain>(ctx.get_executor(),
                                                                    std::move(providers));
        return std::make_shared<penne::s3::client>(ctx.get_executor(), cfg, chain);
    }

    // Runs one client operation to completion.
    error_code run(std::function<asio::awaitable<error_code>(diagnostics&)> op) {
        error_code result;
        last.clear();
        asio::co_spawn(
            ctx, [&]() -> asio::awaitable<void> { result = co_await op(last); }, asio::detached);
        ctx.restart();
        ctx.run();
        return result;
    }

    // GET through curl's own SigV4 signer.
    std::string curl_get(const std::string& key, int* status = nullptr) {
        const auto out = dir / ("get-" + std::to_string(++curl_count));
        const auto codes = dir / ("code-" + std::to_string(curl_count));
        penne::test::process curl(
            {"/usr/bin/curl", "--silent", "--show-error", "--max-time", "60", "--aws-sigv4",
             "aws:amz:" + peer->region() + ":s3", "--user",
             peer->access_key() + ":" + peer->secret_key(), "-H",
             "x-amz-content-sha256: "
             "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
             "--output", out, "--write-out", "%{http_code}",
             peer->endpoint() + "/" + bucket + "/" + key},
            codes);
        EXPECT_EQ(curl.wait(90s), 0);
        if (status)
            *status = std::stoi(read_file(codes));
        return read_file(out);
    }

    static inline int bucket_counter = 0;
    const rgw_peer* peer = nullptr;
    asio::io_context ctx;
    penne::test::temp_dir dir{"s3-client"};
    int curl_count = 0;
    std::string bucket;
    std::shared_ptr<penne::s3::client> s3;
    diagnostics last;
    // Operations are lazy coroutines that keep references: arguments must outlive them, so
    // tests pass named objects, never temporaries.
    const penne::s3::put_options no_options;
};

TEST_F(s3_client_test, put_object_with_md5_reads_back_identically) {
    const auto body = random_bytes(300 * 1024, 1);
    penne::s3::put_options opts;
    opts.content_type = "application/x-ndjson";
    opts.content_encoding = "zstd";
    opts.metadata = {{"penne-events", "42"}};
    penne::s3::put_result result;
    auto ec = run([&](diagnostics& d) {
        return s3->put_object(bucket, "db/coll/2026/12/06/a b+c~%.jsonl.zst", body, opts, result,
                              d);
    });
    ASSERT_FALSE(ec) << last.message;
    EXPECT_EQ(result.etag, "\"" + penne::s3::md5_hex(body) + "\"");
    EXPECT_TRUE(same_bytes(curl_get("db/coll/2026/12/06/a%20b%2Bc~%25.jsonl.zst"), body));

    penne::s3::object_head head;
    ec = run([&](diagnostics& d) {
        return s3->head_object(bucket, "db/coll/2026/12/06/a b+c~%.jsonl.zst", head, d);
    });
    ASSERT_FALSE(ec) << last.message;
    EXPECT_EQ(head.size, body.size());
    EXPECT_EQ(head.content_type, "application/x-ndjson");
    EXPECT_EQ(head.content_encoding, "zstd");
    ASSERT_EQ(head.metadata.size(), 1u);
    EXPECT_EQ(head.metadata[0].name, "penne-events");
    EXPECT_EQ(head.metadata[0].value, "42");

    std::string got;
    ec = run([&](diagnostics& d) {
        return s3->get_object(bucket, "db/coll/2026/12/06/a b+c~%.jsonl.zst", got, d);
    });
    ASSERT_FALSE(ec) << last.message;
    EXPECT_TRUE(same_bytes(got, body));
}

TEST_F(s3_client_test, tags_metadata_and_storage_class_are_stored) {
    penne::s3::put_options opts;
    opts.storage_class = "STANDARD";
    opts.tags = {{"team", "data eng"}, {"env", "test&ci"}};
    opts.metadata = {{"Source", "orders"}};
    penne::s3::put_result result;
    const std::string body = "tagged";
    auto ec = run([&](diagnostics& d) {
        return s3->put_object(bucket, "tagged/object", body, opts, result, d);
    });
    ASSERT_FALSE(ec) << last.message;
    penne::s3::object_head head;
    ec = run([&](diagnostics& d) { return s3->head_object(bucket, "tagged/object", head, d); });
    ASSERT_FALSE(ec) << last.message;
    ASSERT_EQ(head.metadata.size(), 1u);
    EXPECT_EQ(head.metadata[0].name, "source");
    EXPECT_EQ(head.metadata[0].value, "orders");
    // The tag set as S3 returns it (GetObjectTagging through curl's own signer).
    const auto tagging = curl_get("tagged/object?tagging=");
    EXPECT_NE(tagging.find("<Key>team</Key><Value>data eng</Value>"), std::string::npos) << tagging;
    EXPECT_NE(tagging.find("<Key>env</Key><Value>test&amp;ci</Value>"), std::string::npos)
        << tagging;
}

TEST_F(s3_client_test, unicode_and_reserved_characters_in_keys) {
    const std::vector<std::string> keys{"plain",   "spaces in name",   "ünïcødé/日本語",
                                        "q?x=1&y", "semi;colon,comma", "star*paren(1)",
                                        "eq=sign", "tab\tkey"};
    for (const auto& key : keys) {
        penne::s3::put_result result;
        const std::string full = "k/" + key, body = "body of " + key;
        auto ec = run([&](diagnostics& d) {
            return s3->put_object(bucket, full, body, no_options, result, d);
        });
        ASSERT_FALSE(ec) << key << ": " << last.message;
    }
    std::vector<penne::s3::object_info> listed;
    auto ec = run([&](diagnostics& d) { return s3->list_objects(bucket, "k/", listed, d); });
    ASSERT_FALSE(ec) << last.message;
    ASSERT_EQ(listed.size(), keys.size());
    for (const auto& key : keys) {
        std::string got;
        const std::string full = "k/" + key;
        ec = run([&](diagnostics& d) { return s3->get_object(bucket, full, got, d); });
        ASSERT_FALSE(ec) << key << ": " << last.message;
        EXPECT_EQ(got, "body of " + key);
        EXPECT_TRUE(std::any_of(listed.begin(), listed.end(), [&](const auto& o) {
            return o.key == "k/" + key;
        })) << key;
    }
}

TEST_F(s3_client_test, multipart_upload_in_parallel_parts_has_the_multipart_etag) {
    // 3 parts of 5 MiB and a small last part, three at a time.
    const auto body = random_bytes(15 * 1024 * 1024 + 12345, 2);
    penne::s3::put_result result;
    auto ec = run([&](diagnostics& d) {
        return s3->upload(bucket, "big/object.bin", body, no_options, result, d);
    });
    ASSERT_FALSE(ec) << ec.category().name() << "/" << ec.value() << " " << ec.message() << ": "
                     << last.message;
    EXPECT_EQ(result.parts, 4u);
    std::vector<std::string> part_md5;
    for (std::size_t off = 0; off < body.size(); off += 5 * 1024 * 1024)
        part_md5.push_back(penne::s3::md5_hex(body.substr(off, 5 * 1024 * 1024)));
    EXPECT_EQ(result.etag, penne::s3::multipart_etag(part_md5));
    EXPECT_NE(result.etag.find("-4"), std::string::npos) << result.etag;
    EXPECT_TRUE(same_bytes(curl_get("big/object.bin"), body));

    std::vector<penne::s3::upload_info> uploads;
    ec = run([&](diagnostics& d) { return s3->list_multipart_uploads(bucket, "", uploads, d); });
    ASSERT_FALSE(ec) << last.message;
    EXPECT_TRUE(uploads.empty());
}

TEST_F(s3_client_test, cancelled_multipart_upload_is_aborted_and_leaves_nothing) {
    auto slow = make_client(peer->secret_key(),
                            [](penne::s3::client_config& c) { c.part_concurrency = 1; });
    const auto body = random_bytes(80 * 1024 * 1024, 3);
    penne::s3::put_result result;
    asio::cancellation_signal cancel;
    error_code ec;
    diagnostics d;
    bool done = false;
    asio::co_spawn(
        ctx,
        [&]() -> asio::awaitable<void> {
            ec = co_await slow->upload(bucket, "cancelled.bin", body, no_options, result, d);
            done = true;
        },
        asio::bind_cancellation_slot(cancel.slot(), asio::detached));
    // Cancel as soon as the multipart upload exists on the server (whatever the machine's
    // speed): then parts are in flight and the client must abort the upload.
    asio::co_spawn(
        ctx,
        [&]() -> asio::awaitable<void> {
            asio::steady_timer poll(ctx);
            for (;;) {
                std::vector<penne::s3::upload_info> uploads;
                diagnostics pd;
                const std::string prefix;
                auto pec = co_await s3->list_multipart_uploads(bucket, prefix, uploads, pd);
                if (done || (!pec && !uploads.empty()))
                    break;
                poll.expires_after(5ms);
                co_await poll.async_wait(asio::use_awaitable);
            }
            cancel.emit(asio::cancellation_type::terminal);
        },
        asio::detached);
    ctx.restart();
    ctx.run();
    EXPECT_EQ(ec, asio::error::operation_aborted) << ec.message() << " " << d.message;

    std::vector<penne::s3::upload_info> uploads;
    auto lec =
        run([&](diagnostics& dd) { return s3->list_multipart_uploads(bucket, "", uploads, dd); });
    ASSERT_FALSE(lec) << last.message;
    EXPECT_TRUE(uploads.empty()) << uploads.size() << " uploads left behind";
    int status = 0;
    curl_get("cancelled.bin", &status);
    EXPECT_EQ(status, 404);
}

TEST_F(s3_client_test, wrong_secret_is_fatal_at_once_with_a_hint) {
    auto wrong = make_client("not-the-secret-key-at-all");
    penne::s3::put_result result;
    const auto started = std::chrono::steady_clock::now();
    auto ec = run(
        [&](diagnostics& d) { return wrong->put_object(bucket, "x", "x", no_options, result, d); });
    EXPECT_EQ(ec, penne::s3::s3_errc::signature_does_not_match) << ec.message();
    EXPECT_TRUE(penne::is_fatal(ec));
    EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
    EXPECT_NE(last.message.find("secret"), std::string::npos) << last.message;
    EXPECT_EQ(last.message.find("not-the-secret-key-at-all"), std::string::npos) << last.message;
    const auto counts = wrong->retries();
    EXPECT_EQ(counts.throttled + counts.server_error + counts.network + counts.timeout, 0u);
}

TEST_F(s3_client_test, missing_bucket_is_fatal_and_named) {
    diagnostics d;
    auto ec = run([&](diagnostics& dd) { return s3->head_bucket("penne-no-such-bucket", dd); });
    EXPECT_EQ(ec, penne::s3::s3_errc::no_such_bucket) << ec.message();
    EXPECT_TRUE(penne::is_fatal(ec));
    EXPECT_NE(last.message.find("penne-no-such-bucket"), std::string::npos) << last.message;
}

TEST_F(s3_client_test, skewed_clock_is_corrected_from_the_server_date) {
    // A local clock 30 minutes behind: RGW refuses with RequestTimeTooSkewed, the client
    // learns the offset from the Date header and the retry succeeds.
    auto late = make_client(peer->secret_key(), [](penne::s3::client_config& c) {
        c.clock = [] { return std::chrono::system_clock::now() - 30min; };
    });
    penne::s3::put_result result;
    auto ec = run([&](diagnostics& d) {
        return late->put_object(bucket, "skew", "on time", no_options, result, d);
    });
    ASSERT_FALSE(ec) << last.message;
    EXPECT_GT(late->clock_offset(), 29min);
    EXPECT_LT(late->clock_offset(), 31min);
    EXPECT_EQ(late->retries().clock_skew, 1u);
    // Later requests are signed with the corrected clock at once.
    ec = run([&](diagnostics& d) {
        return late->put_object(bucket, "skew2", "x", no_options, result, d);
    });
    ASSERT_FALSE(ec) << last.message;
    EXPECT_EQ(late->retries().clock_skew, 1u);
}

TEST_F(s3_client_test, presigned_get_works_and_a_tampered_one_is_refused) {
    penne::s3::put_result result;
    auto ec = run([&](diagnostics& d) {
        return s3->put_object(bucket, "shared/report.json", "{\"ok\":true}", no_options, result, d);
    });
    ASSERT_FALSE(ec) << last.message;
    std::string url;
    ec = run([&](diagnostics& d) {
        return s3->presign("GET", bucket, "shared/report.json", 300s, url, d);
    });
    ASSERT_FALSE(ec) << last.message;
    EXPECT_NE(url.find("X-Amz-Signature="), std::string::npos);

    auto fetch = [&](const std::string& u, std::string& body) {
        const auto out = dir / ("presigned-" + std::to_string(++curl_count));
        const auto code = dir / ("presigned-code-" + std::to_string(curl_count));
        penne::test::process curl(
            {"/usr/bin/curl", "--silent", "--output", out, "--write-out", "%{http_code}", u}, code);
        EXPECT_EQ(curl.wait(60s), 0);
        body = read_file(out);
        return std::stoi(read_file(code));
    };
    std::string body;
    EXPECT_EQ(fetch(url, body), 200);
    EXPECT_EQ(body, "{\"ok\":true}");
    auto tampered = url;
    tampered.replace(tampered.find("report.json"), 11, "report.jsom");
    EXPECT_EQ(fetch(tampered, body), 403);
}

TEST_F(s3_client_test, delete_and_list_pages) {
    for (int i = 0; i < 25; ++i) {
        penne::s3::put_result result;
        const std::string key = "many/" + std::to_string(100 + i);
        auto ec = run([&](diagnostics& d) {
            return s3->put_object(bucket, key, "v", no_options, result, d);
        });
        ASSERT_FALSE(ec) << last.message;
    }
    std::vector<penne::s3::object_info> listed;
    auto ec = run([&](diagnostics& d) { return s3->list_objects(bucket, "many/", listed, d); });
    ASSERT_FALSE(ec) << last.message;
    EXPECT_EQ(listed.size(), 25u);
    ec = run([&](diagnostics& d) { return s3->delete_object(bucket, "many/100", d); });
    ASSERT_FALSE(ec) << last.message;
    ec = run([&](diagnostics& d) { return s3->list_objects(bucket, "many/", listed, d); });
    ASSERT_FALSE(ec) << last.message;
    EXPECT_EQ(listed.size(), 24u);
    std::string got;
    ec = run([&](diagnostics& d) { return s3->get_object(bucket, "many/100", got, d); });
    EXPECT_EQ(ec, penne::s3::s3_errc::no_such_key);
}

TEST_F(s3_client_test, destination_checks_the_bucket_and_writes_objects) {
    penne::s3::destination_options opts;
    opts.bucket = bucket;
    opts.probe_prefix = "out/";
    penne::s3::destination dest(s3, opts);
    auto ec = run([&](diagnostics& d) { return dest.check(d); });
    ASSERT_FALSE(ec) << last.message;
    const std::string body = "{\"a\":1}\n{\"a\":2}\n";
    penne::sealed_object obj;
    obj.key = "out/db/coll/000001.jsonl";
    obj.body = body;
    obj.content_type = "application/x-ndjson";
    obj.event_count = 2;
    ec = run([&](diagnostics& d) { return dest.put(obj, d); });
    ASSERT_FALSE(ec) << last.message;
    EXPECT_TRUE(same_bytes(curl_get("out/db/coll/000001.jsonl"), body));
    // A replay writes the same key with the same bytes: an ordinary overwrite.
    ec = run([&](diagnostics& d) { return dest.put(obj, d); });
    ASSERT_FALSE(ec) << last.message;
    std::vector<penne::s3::object_info> listed;
    ec = run([&](diagnostics& d) { return s3->list_objects(bucket, "", listed, d); });
    ASSERT_FALSE(ec) << last.message;
    ASSERT_EQ(listed.size(), 1u) << "the write-check probe must be gone";

    penne::s3::destination_options missing = opts;
    missing.bucket = "penne-missing-bucket";
    penne::s3::destination bad(s3, missing);
    ec = run([&](diagnostics& d) { return bad.check(d); });
    EXPECT_EQ(ec, penne::s3::s3_errc::no_such_bucket);
    EXPECT_NE(last.message.find("penne-missing-bucket"), std::string::npos) << last.message;
}

TEST_F(s3_client_test, requests_and_internal_retries_are_counted_in_the_metrics) {
    penne::metrics_registry reg;
    auto late = make_client(peer->secret_key(), [](penne::s3::client_config& c) {
        c.clock = [] { return std::chrono::system_clock::now() - 30min; };
    });
    late->set_metrics(reg);
    auto wrong = make_client("not-the-secret-key-at-all");
    wrong->set_metrics(reg);  // one registry, two clients: the series add up
    penne::s3::put_result result;
    auto ec = run([&](diagnostics& d) {
        return late->put_object(bucket, "counted", "x", no_options, result, d);
    });
    ASSERT_FALSE(ec) << last.message;
    ec = run([&](diagnostics& d) {
        return late->put_object(bucket, "counted2", "x", no_options, result, d);
    });
    ASSERT_FALSE(ec) << last.message;
    ec = run([&](diagnostics& d) {
        return wrong->put_object(bucket, "never", "x", no_options, result, d);
    });
    EXPECT_TRUE(penne::is_fatal(ec)) << ec.message();
    const std::string text = reg.render();
    EXPECT_NE(text.find("penne_s3_requests_total{operation=\"PutObject\",outcome=\"ok\"} 2\n"),
              std::string::npos)
        << text;
    // The skewed clock cost one retry, inside the first request only.
    EXPECT_NE(text.find("penne_s3_request_retries_total{operation=\"PutObject\","
                        "reason=\"clock_skew\"} 1\n"),
              std::string::npos)
        << text;
    EXPECT_NE(
        text.find("penne_s3_requests_total{operation=\"PutObject\",outcome=\"rejected\"} 1\n"),
        std::string::npos)
        << text;
    // A wrong secret is never retried.
    EXPECT_EQ(text.find("reason=\"network\""), std::string::npos) << text;
    EXPECT_EQ(text.find("reason=\"expired_credentials\""), std::string::npos) << text;
}

}  // namespace
