#pragma once
// Mirrors an RGW bucket into a local directory for the tests that read back what penne
// uploaded: the bucket is listed with penne's S3 client (pages included) and every object
// not mirrored yet, or changed since (by ETag), is fetched with curl's own SigV4 signer,
// up to 100 objects per curl process. The directory can then be decoded with
// output_reader.hpp. GoogleTest assertions report listing or download failures.

#include "process.hpp"
#include "rgw_peer.hpp"

#include <penne/http/sigv4.hpp>
#include <penne/s3/client.hpp>

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace penne::test {

class bucket_mirror {
public:
    bucket_mirror(const rgw_peer& peer, std::string bucket, std::string root)
        : peer_(peer), bucket_(std::move(bucket)), root_(std::move(root)) {}

    const std::string& root() const noexcept { return root_; }

    // Brings the objects under `prefix` into root(); returns how many were fetched.
    std::size_t sync(const std::string& prefix) {
        namespace asio = boost::asio;
        asio::io_context ctx;
        s3::client_config cfg;
        diagnostics d;
        EXPECT_FALSE(
            s3::parse_endpoint(peer_.endpoint(), peer_.region(), s3::addressing::path, cfg.ep, d))
            << d.message;
        std::vector<std::unique_ptr<s3::credentials_provider>> providers;
        providers.push_back(s3::make_static_provider({peer_.access_key(), peer_.secret_key(), ""}));
        auto chain =
            std::make_shared<s3::credentials_chain>(ctx.get_executor(), std::move(providers));
        s3::client c(ctx.get_executor(), cfg, chain);
        std::vector<s3::object_info> objects;
        error_code ec;
        asio::co_spawn(
            ctx,
            [&]() -> asio::awaitable<void> {
                ec = co_await c.list_objects(bucket_, prefix, objects, d);
            },
            asio::detached);
        ctx.run();
        EXPECT_FALSE(ec) << d.message;

        std::size_t fetched = 0;
        std::vector<std::string> args;
        std::vector<const s3::object_info*> batch;
        auto fetch = [&] {
            if (batch.empty())
                return;
            std::vector<std::string> argv{
                "/usr/bin/curl",
                "--silent",
                "--show-error",
                "--fail",
                "--max-time",
                "120",
                "--aws-sigv4",
                "aws:amz:" + peer_.region() + ":s3",
                "--user",
                peer_.access_key() + ":" + peer_.secret_key(),
                "-H",
                "x-amz-content-sha256: " + std::string(http::empty_payload_sha256)};
            argv.insert(argv.end(), args.begin(), args.end());
            process curl(argv, root_ + ".curl.log");
            const auto code = curl.wait(std::chrono::seconds(150));
            EXPECT_EQ(code, 0) << curl.log();
            if (code == 0) {
                for (const auto* o : batch)
                    mirrored_[o->key] = o->etag;
                fetched += batch.size();
            }
            args.clear();
            batch.clear();
        };
        for (const auto& o : objects) {
            if (auto it = mirrored_.find(o.key); it != mirrored_.end() && it->second == o.etag)
                continue;
            const std::filesystem::path local = root_ + "/" + o.key;
            std::filesystem::create_directories(local.parent_path());
            args.push_back(peer_.endpoint() + "/" + bucket_ + "/" + http::uri_encode_path(o.key));
            args.push_back("--output");
            args.push_back(local.string());
            batch.push_back(&o);
            if (batch.size() == 100)
                fetch();
        }
        fetch();
        return fetched;
    }

private:
    const rgw_peer& peer_;
    std::string bucket_;
    std::string root_;
    std::map<std::string, std::string> mirrored_;  // key -> ETag
};

}  // namespace penne::test
