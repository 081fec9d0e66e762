// End to end into a real S3: mongosim (written to by libmongoc) → penne (a real process,
// credentials from the standard AWS_* environment) → Ceph RGW. The bucket's objects are
// fetched by curl's own SigV4 signer into a local mirror and decoded independently: every
// inserted document must be there exactly once, across kill -9 and an S3 outage.

#include <penne/s3/client.hpp>

#include <gtest/gtest.h>
#include <signal.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "bucket_mirror.hpp"
#include "exactly_once.hpp"
#include "mongo_inserter.hpp"
#include "output_reader.hpp"
#include "process.hpp"
#include "rgw_peer.hpp"
#include "temp_dir.hpp"

namespace penne::test {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

const auto* const mongoc = ::testing::AddGlobalTestEnvironment(new mongoc_env);
const auto* const rgw = ::testing::AddGlobalTestEnvironment(new rgw_peer_environment);

class s3_e2e : public ::testing::Test {
protected:
    void SetUp() override {
        peer_ = rgw_peer_environment::peer();
        ASSERT_NE(peer_, nullptr) << rgw_peer_environment::failure();
        bucket_ = "e2e-" + std::to_string(++count_) + "-" + std::to_string(::getpid());
        ASSERT_EQ(run_s3({"mb", "s3://" + bucket_}), 0);

        port_ = free_port();
        mongosim_ = std::make_unique<process>(
            std::vector<std::string>{build_path("tests/mongosim/mongosim"), "--port",
                                     std::to_string(port_)},
            dir_ / "mongosim.log");
        ASSERT_TRUE(mongosim_->wait_for_output("mongosim listening on", 10s)) << mongosim_->log();
    }

    std::map<std::string, std::string> aws_env() const {
        return {{"AWS_ACCESS_KEY_ID", peer_->access_key()},
                {"AWS_SECRET_ACCESS_KEY", peer_->secret_key()},
                {"AWS_REGION", peer_->region()},
                {"AWS_ENDPOINT_URL", peer_->endpoint()},
                {"AWS_EC2_METADATA_DISABLED", "true"},
                {"HOME", dir_.path().string()}};
    }

    // `penne s3 …` with only the AWS environment, as a user would check their setup.
    int run_s3(std::vector<std::string> args, std::string* output = nullptr) {
        args.insert(args.begin(), {build_path("app/penne"), "s3"});
        const auto log = dir_ / ("s3-cli-" + std::to_string(++cli_count_) + ".log");
        process p(args, log, aws_env());
        auto code = p.wait(60s);
        if (output)
            *output = p.log();
        return code.value_or(-1);
    }

    void write_config(const std::string& batch, const std::string& output = "",
                      const std::string& s3_extra = "") {
        std::ofstream f(dir_ / "penne.toml");
        f << "[mongodb]\nuri = \"mongodb://127.0.0.1:" << port_
          << "/?directConnection=true\"\nmax_await_ms = 200\n\n"
          << "[[watch]]\nlevel = \"database\"\ndatabase = \"shop\"\n"
          << "[batch]\n"
          << batch << "\n[output]\nprefix = \"cdc\"\n"
          << output << "[destination]\ntype = \"s3\"\n"
          << "[s3]\nbucket = \"" << bucket_ << "\"\n"
          << s3_extra << "[state]\ntype = \"file\"\npath = \"" << (dir_ / "state") << "\"\n"
          << "[pipeline]\ncheckpoint_interval_ms = 100\n"
          << "[log]\nlevel = \"debug\"\nprogress_interval_ms = 0\n";
    }

    std::unique_ptr<process> start_penne() {
        auto p = std::make_unique<process>(
            std::vector<std::string>{build_path("app/penne"), "run", "-c", dir_ / "penne.toml"},
            dir_ / ("penne-" + std::to_string(++starts_) + ".log"), aws_env());
        EXPECT_TRUE(p->wait_for_output("change stream open", 30s)) << p->log();
        return p;
    }

    void stop_penne(std::unique_ptr<process>& p) {
        p->signal(SIGTERM);
        auto code = p->wait(120s);
        ASSERT_TRUE(code) << "penne did not stop";
        EXPECT_EQ(*code, 0) << p->log();
        p.reset();
    }

    // The bucket's objects, fetched with curl into a local mirror and decoded.
    output_scan mirror() {
        if (!mirror_)
            mirror_ = std::make_unique<bucket_mirror>(*peer_, bucket_, dir_ / "mirror");
        mirror_->sync("cdc/");
        return scan_output(mirror_->root());
    }

    output_scan wait_for(std::size_t expected, std::chrono::seconds timeout = 90s) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        output_scan scan;
        while (std::chrono::steady_clock::now() < deadline) {
            scan = mirror();
            if (distinct_inserts(scan) >= expected)
                return scan;
            std::this_thread::sleep_for(500ms);
        }
        return scan;
    }

    // The gateway's pid, to pause it (an S3 outage that keeps its data).
    pid_t gateway_pid() const {
        std::ifstream f(peer_->directory() + "/run/rgw.pid");
        pid_t pid = 0;
        f >> pid;
        return pid;
    }

    static inline int count_ = 0;
    const rgw_peer* peer_ = nullptr;
    temp_dir dir_{"penne-s3-e2e"};
    std::string bucket_;
    int port_ = 0;
    int starts_ = 0, cli_count_ = 0;
    std::unique_ptr<bucket_mirror> mirror_;
    std::unique_ptr<process> mongosim_;
    const std::vector<std::string> colls_{"c0", "c1", "c2"};
};

TEST_F(s3_e2e, every_document_lands_in_the_bucket_exactly_once_across_kill_9) {
    write_config("max_events = 300\nmax_age_ms = 300\n");
    inserter ins(port_);
    auto penne = start_penne();
    ins.insert("shop", colls_, 0, 3'000);
    // Killed in the middle of its work, then restarted: the write-ahead manifest replays.
    std::this_thread::sleep_for(300ms);
    penne->signal(SIGKILL);
    penne->wait(10s);
    ins.insert("shop", colls_, 3'000, 5'000);
    penne = start_penne();
    auto scan = wait_for(5'000);
    stop_penne(penne);
    scan = mirror();
    expect_exactly_once(scan, 5'000);
    for (const auto& e : scan.events)
        EXPECT_NE(e.object.find(".jsonl.zst"), std::string::npos) << e.object;
}

TEST_F(s3_e2e, an_s3_outage_during_uploads_loses_nothing) {
    write_config("max_events = 200\nmax_age_ms = 200\n", "",
                 "request_timeout_ms = 1000\nconnect_timeout_ms = 1000\nmax_retries = 2\n");
    inserter ins(port_);
    auto penne = start_penne();
    ins.insert("shop", colls_, 0, 1'000);
    wait_for(1'000);
    const auto gw = gateway_pid();
    ASSERT_GT(gw, 0);
    // The gateway stops answering (requests time out) while events keep coming.
    ASSERT_EQ(::kill(gw, SIGSTOP), 0);
    ins.insert("shop", colls_, 1'000, 3'000);
    std::this_thread::sleep_for(4s);
    ASSERT_EQ(::kill(gw, SIGCONT), 0);
    wait_for(3'000);
    stop_penne(penne);
    expect_exactly_once(mirror(), 3'000);
}

TEST_F(s3_e2e, a_gateway_stopped_and_restarted_during_uploads_loses_nothing) {
    write_config("max_events = 100\nmax_age_ms = 200\n", "",
                 "request_timeout_ms = 1000\nconnect_timeout_ms = 500\nmax_retries = 2\n");
    inserter ins(port_);
    auto penne = start_penne();
    ins.insert("shop", colls_, 0, 500);
    wait_for(500);
    // The gateway dies (connections refused) while events keep coming, and comes back.
    ASSERT_TRUE(peer_->stop_gateway()) << peer_->log_tail();
    ins.insert("shop", colls_, 500, 2'000);
    std::this_thread::sleep_for(3s);
    ASSERT_TRUE(peer_->start_gateway()) << peer_->log_tail();
    wait_for(2'000);
    stop_penne(penne);
    expect_exactly_once(mirror(), 2'000);
}

TEST_F(s3_e2e, parquet_objects_carry_their_content_type) {
    write_config("max_events = 500\nmax_age_ms = 300\n", "format = \"parquet\"\n");
    auto penne = start_penne();
    inserter(port_).insert("shop", colls_, 0, 600);
    // Parquet is read back by the formats' own integration tests; here the object names and
    // headers are what matters.
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    std::string listing;
    while (std::chrono::steady_clock::now() < deadline) {
        run_s3({"ls", "s3://" + bucket_ + "/cdc/"}, &listing);
        if (listing.find(".parquet") != std::string::npos)
            break;
        std::this_thread::sleep_for(300ms);
    }
    stop_penne(penne);
    ASSERT_NE(listing.find(".parquet"), std::string::npos) << listing;
    EXPECT_EQ(listing.find(".parquet.zst"), std::string::npos) << listing;
}

TEST_F(s3_e2e, s3_tools_put_get_rm_and_presign_with_the_aws_environment) {
    {
        std::ofstream f(dir_ / "hello.txt");
        f << "hello from penne\n";
    }
    std::string out;
    ASSERT_EQ(run_s3({"put", dir_ / "hello.txt", "s3://" + bucket_ + "/tools/hello.txt"}, &out), 0)
        << out;
    ASSERT_EQ(run_s3({"ls", "s3://" + bucket_ + "/tools/"}, &out), 0) << out;
    EXPECT_NE(out.find("tools/hello.txt"), std::string::npos) << out;
    ASSERT_EQ(run_s3({"get", "s3://" + bucket_ + "/tools/hello.txt", dir_ / "back.txt"}, &out), 0)
        << out;
    std::ifstream back(dir_ / "back.txt");
    std::string line;
    std::getline(back, line);
    EXPECT_EQ(line, "hello from penne");
    ASSERT_EQ(run_s3({"presign", "s3://" + bucket_ + "/tools/hello.txt", "--expires", "60"}, &out),
              0)
        << out;
    EXPECT_NE(out.find("X-Amz-Signature="), std::string::npos) << out;
    EXPECT_EQ(out.find(peer_->secret_key()), std::string::npos);
    ASSERT_EQ(run_s3({"rm", "s3://" + bucket_ + "/tools/hello.txt"}, &out), 0) << out;
    EXPECT_EQ(run_s3({"get", "s3://" + bucket_ + "/tools/hello.txt", "-"}, &out), 1);
    EXPECT_NE(out.find("NoSuchKey"), std::string::npos) << out;
    // A wrong secret: a clear, fatal answer that never shows the secret.
    process bad({build_path("app/penne"), "s3", "ls", "s3://" + bucket_}, dir_ / "bad.log",
                {{"AWS_ACCESS_KEY_ID", peer_->access_key()},
                 {"AWS_SECRET_ACCESS_KEY", "wrong-secret-value-123"},
                 {"AWS_ENDPOINT_URL", peer_->endpoint()},
                 {"AWS_EC2_METADATA_DISABLED", "true"},
                 {"HOME", dir_.path().string()}});
    EXPECT_EQ(bad.wait(30s), 1);
    EXPECT_NE(bad.log().find("SignatureDoesNotMatch"), std::string::npos) << bad.log();
    EXPECT_EQ(bad.log().find("wrong-secret-value-123"), std::string::npos) << bad.log();
}

}  // namespace
}  // namespace penne::test
