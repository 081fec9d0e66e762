// Document pre- and post-images, showExpandedEvents and $changeStreamSplitLargeEvent in mongosim,
// judged by real drivers against the executable: the npm mongodb 7.x driver (images.js:
// fullDocumentBeforeChange, expanded events, split events and resuming from a fragment) and
// Debian's pymongo 3.11 (images.py: post-images, required images, split events).

#include <process.hpp>
#include <temp_dir.hpp>

#include <gtest/gtest.h>

#include <csignal>
#include <map>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;

void run_driver(const std::vector<std::string>& command,
                const std::map<std::string, std::string>& env) {
    penne::test::temp_dir tmp("mongosim-images");
    const int port = penne::test::free_port();
    penne::test::process sim({MONGOSIM_EXECUTABLE, "--port", std::to_string(port)},
                             tmp / "mongosim.log");
    ASSERT_TRUE(sim.wait_for_output("mongosim listening on", 10s)) << sim.log();
    auto args = command;
    args.push_back("mongodb://127.0.0.1:" + std::to_string(port) + "/?replicaSet=rs0");
    penne::test::process client(args, tmp / "client.log", env);
    auto code = client.wait(180s);
    if (!code) {
        client.signal(SIGKILL);
        client.wait(5s);
    }
    ASSERT_TRUE(code) << "the driver did not finish:\n" << client.log();
    EXPECT_EQ(*code, 0) << client.log() << "\n--- mongosim:\n" << sim.log();
    EXPECT_NE(client.log().find("OK "), std::string::npos) << client.log();
    sim.signal(SIGTERM);
    EXPECT_EQ(sim.wait(10s), 0) << sim.log();
}

TEST(MongosimImages, NodeDriver7) {
    const std::string dir = MONGOSIM_DRIVER_SCRIPTS;
    run_driver({"/usr/bin/env", "node", dir + "/images.js"},
               {{"NODE_PATH", dir + "/node/node_modules"}});
}

TEST(MongosimImages, Pymongo) {
    const std::string dir = MONGOSIM_DRIVER_SCRIPTS;
    run_driver({"/usr/bin/python3", dir + "/images.py"}, {});
}

}  // namespace
