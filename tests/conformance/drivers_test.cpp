// Three more real MongoDB drivers against the mongosim executable: Debian's pymongo 3.11,
// Debian's node-mongodb 3.6 and the npm mongodb 7.x driver (pinned by node/package-lock.json).
// Each runs change_stream.{py,js}: writes to two collections, watches at collection and
// database level, checks every event, resumes from a saved token and sees exactly the rest.
// Also with SCRAM-SHA-256 + zlib compression and with SCRAM-SHA-1, as a user would connect.
// MongosimNodeConformance runs conformance.js with the npm 7.x driver: a failCommand on getMore
// with and without ResumableChangeStreamError, and startAfter an invalidate token.
// MongosimExtras runs extras.{py,js}: what a reviewer's own script does (tryNext, hasNext,
// for await, start_at_operation_time, batch_size, max_await_time_ms, indexes, distinct,
// findAndModify, listCollections/listDatabases filters, find options, counts) and retryable
// writes answered once from the session table after a retryable writeConcernError; fail
// point modes skip and activationProbability, and failGetMoreAfterCursorCheckout.

#include <process.hpp>
#include <temp_dir.hpp>

#include <gtest/gtest.h>

#include <csignal>
#include <map>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;

struct driver {
    const char* name;
    std::vector<std::string> command;  // the script's URI argument is appended
    std::map<std::string, std::string> env;
};

struct security {
    const char* name;
    bool auth;
    const char* uri_options;
};

driver make_driver(const std::string& which) {
    const std::string dir = MONGOSIM_DRIVER_SCRIPTS;
    if (which == "pymongo")
        return {"pymongo", {"/usr/bin/python3", dir + "/change_stream.py"}, {}};
    if (which == "node_mongodb_3")
        return {"node_mongodb_3",
                {"/usr/bin/env", "node", dir + "/change_stream.js"},
                {{"NODE_PATH", "/usr/share/nodejs"}}};
    return {"node_mongodb_7",
            {"/usr/bin/env", "node", dir + "/change_stream.js"},
            {{"NODE_PATH", dir + "/node/node_modules"}}};
}

const security plain{"plain", false, ""};
const security scram256_zlib{"scram_sha_256_zlib", true,
                             "&authSource=admin&authMechanism=SCRAM-SHA-256&compressors=zlib"};
const security scram1{"scram_sha_1", true, "&authSource=admin&authMechanism=SCRAM-SHA-1"};

class MongosimDrivers : public ::testing::TestWithParam<std::tuple<const char*, const security*>> {
};

TEST_P(MongosimDrivers, WatchAndResume) {
    const auto [which, sec] = GetParam();
    driver d = make_driver(which);
    penne::test::temp_dir tmp("mongosim-drivers");
    const int port = penne::test::free_port();
    std::vector<std::string> args = {MONGOSIM_EXECUTABLE, "--port", std::to_string(port)};
    if (sec->auth) {
        args.push_back("--auth");
        args.push_back("watcher:Str0ng-pass~word");
    }
    penne::test::process sim(args, tmp / "mongosim.log");
    ASSERT_TRUE(sim.wait_for_output("mongosim listening on", 10s)) << sim.log();

    std::string uri = "mongodb://";
    if (sec->auth)
        uri += "watcher:Str0ng-pass~word@";
    uri += "127.0.0.1:" + std::to_string(port) + "/?replicaSet=rs0" + sec->uri_options;
    auto command = d.command;
    command.push_back(uri);
    if (std::string(which) != "pymongo")
        command.push_back(std::string(which) == "node_mongodb_3" ? "3" : "7");
    penne::test::process client(command, tmp / "client.log", d.env);
    auto code = client.wait(120s);
    if (!code) {
        client.signal(SIGKILL);
        client.wait(5s);
    }
    ASSERT_TRUE(code) << d.name << " did not finish:\n" << client.log();
    EXPECT_EQ(*code, 0) << client.log() << "\n--- mongosim:\n" << sim.log();
    EXPECT_NE(client.log().find("OK "), std::string::npos) << client.log();
    // The password never reaches mongosim's output.
    EXPECT_EQ(sim.log().find("Str0ng"), std::string::npos);

    sim.signal(SIGTERM);
    EXPECT_EQ(sim.wait(10s), 0) << sim.log();
}

INSTANTIATE_TEST_SUITE_P(All, MongosimDrivers,
                         ::testing::Combine(::testing::Values("pymongo", "node_mongodb_3",
                                                              "node_mongodb_7"),
                                            ::testing::Values(&plain, &scram256_zlib, &scram1)),
                         [](const auto& info) {
                             return std::string(std::get<0>(info.param)) + "_" +
                                    std::get<1>(info.param)->name;
                         });

class MongosimNodeConformance : public ::testing::TestWithParam<const char*> {};

TEST_P(MongosimNodeConformance, Scenario) {
    const std::string scenario = GetParam();
    const std::string dir = MONGOSIM_DRIVER_SCRIPTS;
    penne::test::temp_dir tmp("mongosim-conformance");
    const int port = penne::test::free_port();
    penne::test::process sim({MONGOSIM_EXECUTABLE, "--port", std::to_string(port)},
                             tmp / "mongosim.log");
    ASSERT_TRUE(sim.wait_for_output("mongosim listening on", 10s)) << sim.log();

    const std::string uri = "mongodb://127.0.0.1:" + std::to_string(port) + "/?replicaSet=rs0";
    penne::test::process client({"/usr/bin/env", "node", dir + "/conformance.js", uri, scenario},
                                tmp / "client.log", {{"NODE_PATH", dir + "/node/node_modules"}});
    auto code = client.wait(120s);
    if (!code) {
        client.signal(SIGKILL);
        client.wait(5s);
    }
    ASSERT_TRUE(code) << scenario << " did not finish:\n" << client.log();
    EXPECT_EQ(*code, 0) << client.log() << "\n--- mongosim:\n" << sim.log();
    EXPECT_NE(client.log().find("OK node mongodb 7."), std::string::npos) << client.log();

    sim.signal(SIGTERM);
    EXPECT_EQ(sim.wait(10s), 0) << sim.log();
}

INSTANTIATE_TEST_SUITE_P(Node7, MongosimNodeConformance,
                         ::testing::Values("resumable", "start_after"),
                         [](const auto& info) { return std::string(info.param); });

struct extras_case {
    const char* name;
    const char* interpreter;  // "python" or "node"
    const char* script;
    const char* scenario;  // appended after the URI when set
};

class MongosimExtras : public ::testing::TestWithParam<extras_case> {};

TEST_P(MongosimExtras, Scenario) {
    const extras_case& c = GetParam();
    const std::string dir = MONGOSIM_DRIVER_SCRIPTS;
    penne::test::temp_dir tmp("mongosim-extras");
    const int port = penne::test::free_port();
    penne::test::process sim({MONGOSIM_EXECUTABLE, "--port", std::to_string(port)},
                             tmp / "mongosim.log");
    ASSERT_TRUE(sim.wait_for_output("mongosim listening on", 10s)) << sim.log();

    const std::string uri = "mongodb://127.0.0.1:" + std::to_string(port) + "/?replicaSet=rs0";
    const bool python = std::string(c.interpreter) == "python";
    std::vector<std::string> command =
        python ? std::vector<std::string>{"/usr/bin/python3", dir + "/" + c.script, uri}
               : std::vector<std::string>{"/usr/bin/env", "node", dir + "/" + c.script, uri};
    if (c.scenario)
        command.push_back(c.scenario);
    std::map<std::string, std::string> env;
    if (!python)
        env["NODE_PATH"] = dir + "/node/node_modules";
    penne::test::process client(command, tmp / "client.log", env);
    auto code = client.wait(120s);
    if (!code) {
        client.signal(SIGKILL);
        client.wait(5s);
    }
    ASSERT_TRUE(code) << c.name << " did not finish:\n" << client.log();
    EXPECT_EQ(*code, 0) << client.log() << "\n--- mongosim:\n" << sim.log();
    EXPECT_NE(client.log().find(python ? "OK pymongo 3." : "OK node mongodb 7."), std::string::npos)
        << client.log();

    sim.signal(SIGTERM);
    EXPECT_EQ(sim.wait(10s), 0) << sim.log();
}

INSTANTIATE_TEST_SUITE_P(
    Drivers, MongosimExtras,
    ::testing::Values(extras_case{"pymongo", "python", "extras.py", nullptr},
                      extras_case{"node7_cursors", "node", "extras.js", "cursors"},
                      extras_case{"node7_helpers", "node", "extras.js", "helpers"},
                      extras_case{"node7_retry", "node", "extras.js", "retry"},
                      extras_case{"node7_failpoints", "node", "extras.js", "failpoints"}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
