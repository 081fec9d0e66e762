// configureFailPoint acts on one member of a mongosim replica set, as on mongod (every member
// has its own fail points): pymongo 3.11 sets failCommand on a secondary through a direct
// connection, and only commands that reach that member fail.

#include <process.hpp>
#include <temp_dir.hpp>

#include <gtest/gtest.h>

#include <csignal>
#include <string>

namespace {

using namespace std::chrono_literals;

TEST(MongosimFailPoints, PerMember) {
    penne::test::temp_dir tmp("mongosim-failpoint");
    const int port = penne::test::free_port();
    penne::test::process sim(
        {MONGOSIM_EXECUTABLE, "--port", std::to_string(port), "--replset", "3"},
        tmp / "mongosim.log");
    ASSERT_TRUE(sim.wait_for_output("mongosim listening on", 10s)) << sim.log();
    const std::string script = R"(
import re, sys, pymongo
from pymongo.errors import OperationFailure
log = open(sys.argv[1]).read()
members = re.search(r'mongosim listening on (\S+)', log).group(1).split(',')
assert len(members) == 3, members
def direct(addr):
    return pymongo.MongoClient('mongodb://%s/?directConnection=true&readPreference=secondaryPreferred' % addr,
                               serverSelectionTimeoutMS=5000)
clients = [direct(m) for m in members]
primary = [c for c in clients if c.admin.command('hello')['isWritablePrimary']]
secondaries = [c for c in clients if not c.admin.command('hello')['isWritablePrimary']]
assert len(primary) == 1 and len(secondaries) == 2
primary = primary[0]
primary.fp.c.insert_one({'_id': 1})
target, other = secondaries
target.admin.command('configureFailPoint', 'failCommand', mode='alwaysOn',
                     data={'failCommands': ['find'], 'errorCode': 2})
try:
    target.fp.c.find_one({'_id': 1})
    raise AssertionError('find on the member with the fail point succeeded')
except OperationFailure as e:
    assert e.code == 2, e.details
assert primary.fp.c.find_one({'_id': 1}) == {'_id': 1}
assert other.fp.c.find_one({'_id': 1}) == {'_id': 1}
target.admin.command('configureFailPoint', 'failCommand', mode='off')
assert target.fp.c.find_one({'_id': 1}) == {'_id': 1}
# A fail point on the primary leaves the secondaries alone, and times: 1 fires once.
primary.admin.command('configureFailPoint', 'failCommand', mode={'times': 1},
                      data={'failCommands': ['ping'], 'errorCode': 8})
assert other.admin.command('ping')['ok'] == 1
try:
    primary.admin.command('ping')
    raise AssertionError('ping on the primary succeeded')
except OperationFailure as e:
    assert e.code == 8, e.details
assert primary.admin.command('ping')['ok'] == 1
print('OK per-member fail points')
)";
    penne::test::process client({"/usr/bin/python3", "-c", script, tmp / "mongosim.log"},
                                tmp / "client.log");
    auto code = client.wait(60s);
    ASSERT_TRUE(code) << client.log();
    EXPECT_EQ(*code, 0) << client.log() << "\n--- mongosim:\n" << sim.log();
    EXPECT_NE(client.log().find("OK per-member"), std::string::npos) << client.log();
    sim.signal(SIGTERM);
    EXPECT_EQ(sim.wait(10s), 0) << sim.log();
}

}  // namespace
