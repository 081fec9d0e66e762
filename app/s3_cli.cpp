#include "s3_cli.hpp"

#include "config_file.hpp"
#include "detail/s3_setup.hpp"

#include <penne/s3/client.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>

namespace penne::app {
namespace asio = boost::asio;
namespace {

struct s3_cli_args {
    std::string config_path;
    std::string source;
    std::string target;
    long expires = 3600;
};

s3_cli_args& args() {
    static s3_cli_args a;
    return a;
}

struct s3_url {
    std::string bucket;
    std::string key;
};

bool parse_s3_url(const std::string& text, s3_url& out, std::string& error) {
    if (text.rfind("s3://", 0) != 0) {
        error = "'" + text + "' is not an s3://BUCKET/KEY URL";
        return false;
    }
    const auto rest = text.substr(5);
    const auto slash = rest.find('/');
    out.bucket = rest.substr(0, slash);
    out.key = slash == std::string::npos ? "" : rest.substr(slash + 1);
    if (out.bucket.empty()) {
        error = "'" + text + "' names no bucket";
        return false;
    }
    return true;
}

bool read_local(const std::string& path, std::string& out, std::string& error) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        error = "cannot read " + path + ": " + std::strerror(errno);
        return false;
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    out = ss.str();
    return true;
}

// Runs one S3 operation on a private io_context and reports its failure on stderr.
int run_op(const std::function<asio::awaitable<error_code>(s3::client&, diagnostics&)>& op) {
    s3_settings settings;
    std::string error;
    if (!args().config_path.empty() && !load_s3_settings(args().config_path, settings, error)) {
        std::fprintf(stderr, "penne s3: invalid configuration: %s\n", error.c_str());
        return 2;
    }
    asio::io_context ctx;
    detail::s3_setup setup;
    if (!detail::make_s3(settings, ctx.get_executor(), s3::system_environment(), setup, error)) {
        std::fprintf(stderr, "penne s3: %s\n", error.c_str());
        return 2;
    }
    error_code ec;
    diagnostics diag;
    asio::co_spawn(
        ctx, [&]() -> asio::awaitable<void> { ec = co_await op(*setup.client, diag); },
        asio::detached);
    ctx.run();
    if (ec) {
        std::fprintf(stderr, "penne s3: %s\n",
                     diag.message.empty() ? ec.message().c_str() : diag.message.c_str());
        return 1;
    }
    return 0;
}

}  // namespace

void add_s3_commands(CLI::App& cli) {
    auto* s3 = cli.add_subcommand("s3", "Check S3 access with penne's client and credentials");
    s3->require_subcommand(1);
    s3->add_option("-c,--config", args().config_path,
                   "Configuration file whose [s3] table to use (default: AWS_* environment)");
    auto* ls = s3->add_subcommand("ls", "List objects: s3 ls s3://BUCKET[/PREFIX]");
    ls->add_option("url", args().source, "s3://BUCKET[/PREFIX]")->required();
    auto* put = s3->add_subcommand("put", "Upload a file: s3 put LOCAL s3://BUCKET/KEY");
    put->add_option("local", args().source, "Local file")->required();
    put->add_option("url", args().target, "s3://BUCKET/KEY")->required();
    auto* get = s3->add_subcommand("get", "Download: s3 get s3://BUCKET/KEY LOCAL|-");
    get->add_option("url", args().source, "s3://BUCKET/KEY")->required();
    get->add_option("local", args().target, "Local file, or - for stdout")->required();
    auto* rm = s3->add_subcommand("rm", "Delete an object: s3 rm s3://BUCKET/KEY");
    rm->add_option("url", args().source, "s3://BUCKET/KEY")->required();
    auto* presign = s3->add_subcommand("presign", "Print a presigned GET URL");
    presign->add_option("url", args().source, "s3://BUCKET/KEY")->required();
    presign->add_option("--expires", args().expires, "Validity in seconds (1..604800)")
        ->check(CLI::Range(1L, 604800L));
    auto* mb = s3->add_subcommand("mb", "Create a bucket: s3 mb s3://BUCKET");
    mb->add_option("url", args().source, "s3://BUCKET")->required();
}

int run_s3_command(CLI::App& cli) {
    auto* s3cmd = cli.get_subcommand("s3");
    std::string error;
    s3_url url;
    const auto& a = args();
    auto need_url = [&](const std::string& text, bool key_required) {
        if (!parse_s3_url(text, url, error)) {
            std::fprintf(stderr, "penne s3: %s\n", error.c_str());
            return false;
        }
        if (key_required && url.key.empty()) {
            std::fprintf(stderr, "penne s3: '%s' names no key\n", text.c_str());
            return false;
        }
        return true;
    };

    if (s3cmd->got_subcommand("ls")) {
        if (!need_url(a.source, false))
            return 2;
        std::vector<s3::object_info> objects;
        const int rc = run_op([&](s3::client& c, diagnostics& d) {
            return c.list_objects(url.bucket, url.key, objects, d);
        });
        for (const auto& o : objects)
            std::printf("%s %12llu %s\n", o.last_modified.c_str(),
                        static_cast<unsigned long long>(o.size), o.key.c_str());
        return rc;
    }
    if (s3cmd->got_subcommand("put")) {
        if (!need_url(a.target, true))
            return 2;
        std::string body;
        if (!read_local(a.source, body, error)) {
            std::fprintf(stderr, "penne s3: %s\n", error.c_str());
            return 1;
        }
        s3::put_result result;
        const s3::put_options opts;
        const int rc = run_op([&](s3::client& c, diagnostics& d) {
            return c.upload(url.bucket, url.key, body, opts, result, d);
        });
        if (rc == 0)
            std::printf("upload: %s to s3://%s/%s (%zu bytes, ETag %s)\n", a.source.c_str(),
                        url.bucket.c_str(), url.key.c_str(), body.size(), result.etag.c_str());
        return rc;
    }
    if (s3cmd->got_subcommand("get")) {
        if (!need_url(a.source, true))
            return 2;
        std::string body;
        const int rc = run_op([&](s3::client& c, diagnostics& d) {
            return c.get_object(url.bucket, url.key, body, d);
        });
        if (rc != 0)
            return rc;
        if (a.target == "-") {
            std::fwrite(body.data(), 1, body.size(), stdout);
            return 0;
        }
        std::ofstream out(a.target, std::ios::binary | std::ios::trunc);
        out.write(body.data(), static_cast<std::streamsize>(body.size()));
        if (!out.flush()) {
            std::fprintf(stderr, "penne s3: cannot write %s: %s\n", a.target.c_str(),
                         std::strerror(errno));
            return 1;
        }
        std::printf("download: s3://%s/%s to %s (%zu bytes)\n", url.bucket.c_str(), url.key.c_str(),
                    a.target.c_str(), body.size());
        return 0;
    }
    if (s3cmd->got_subcommand("rm")) {
        if (!need_url(a.source, true))
            return 2;
        const int rc = run_op(
            [&](s3::client& c, diagnostics& d) { return c.delete_object(url.bucket, url.key, d); });
        if (rc == 0)
            std::printf("delete: s3://%s/%s\n", url.bucket.c_str(), url.key.c_str());
        return rc;
    }
    if (s3cmd->got_subcommand("presign")) {
        if (!need_url(a.source, true))
            return 2;
        std::string presigned;
        const int rc = run_op([&](s3::client& c, diagnostics& d) {
            return c.presign("GET", url.bucket, url.key, std::chrono::seconds(a.expires), presigned,
                             d);
        });
        if (rc == 0)
            std::printf("%s\n", presigned.c_str());
        return rc;
    }
    if (s3cmd->got_subcommand("mb")) {
        if (!need_url(a.source, false))
            return 2;
        const int rc =
            run_op([&](s3::client& c, diagnostics& d) { return c.create_bucket(url.bucket, d); });
        if (rc == 0)
            std::printf("make_bucket: %s\n", url.bucket.c_str());
        return rc;
    }
    return 2;
}

}  // namespace penne::app
