// SASLprep (RFC 4013) of SCRAM-SHA-256 passwords in mongosim, with NFKC normalisation: the
// RFC's examples against mongosim's function, then a real driver (pymongo 3.11, whose SASLprep
// normalises with Python's unicodedata) logging in with a password that only NFKC makes equal
// to the one mongosim was started with.

#include "scram.hpp"

#include <process.hpp>
#include <temp_dir.hpp>

#include <gtest/gtest.h>

#include <csignal>
#include <string>

namespace {

using namespace std::chrono_literals;

TEST(MongosimSaslprep, RfcExamples) {
    EXPECT_EQ(mongosim::saslprep("I\u00ADX"), "IX");  // soft hyphen: mapped to nothing
    EXPECT_EQ(mongosim::saslprep("user"), "user");
    EXPECT_EQ(mongosim::saslprep("USER"), "USER");                      // no case folding
    EXPECT_EQ(mongosim::saslprep("\u00AA"), "a");                       // NFKC
    EXPECT_EQ(mongosim::saslprep("\u2168"), "IX");                      // NFKC: ROMAN NUMERAL NINE
    EXPECT_FALSE(mongosim::saslprep("\x07"));                           // prohibited (control)
    EXPECT_EQ(mongosim::saslprep("a\u00A0b"), "a b");                   // non-ASCII space
    EXPECT_EQ(mongosim::saslprep("\uFF50\uFF41\uFF53\uFF53"), "pass");  // full-width
    EXPECT_EQ(mongosim::saslprep("e\u0301"), "\u00E9");                 // composed
    EXPECT_FALSE(mongosim::saslprep("\xC3"));                           // not UTF-8
}

TEST(MongosimSaslprep, PymongoLogsInWithAnNfkcEquivalentPassword) {
    penne::test::temp_dir tmp("mongosim-saslprep");
    const int port = penne::test::free_port();
    // Started with full-width "ｐａｓｓ１"; the driver sends "pass1".
    penne::test::process sim({MONGOSIM_EXECUTABLE, "--port", std::to_string(port), "--auth",
                              "fw:\uFF50\uFF41\uFF53\uFF53\uFF11"},
                             tmp / "mongosim.log");
    ASSERT_TRUE(sim.wait_for_output("mongosim listening on", 10s)) << sim.log();
    const std::string script =
        "import sys, pymongo\n"
        "def login(pw):\n"
        "    c = pymongo.MongoClient('127.0.0.1', " +
        std::to_string(port) +
        ", username='fw', password=pw, authSource='admin',\n"
        "        authMechanism='SCRAM-SHA-256', directConnection=True,\n"
        "        serverSelectionTimeoutMS=5000)\n"
        "    try:\n"
        "        c.admin.command('ping'); return True\n"
        "    except pymongo.errors.OperationFailure as e:\n"
        "        assert e.code == 18, e.details; return False\n"
        "    finally:\n"
        "        c.close()\n"
        "assert login('pass1'), 'NFKC-equal password refused'\n"
        "assert login('\\uff50\\uff41\\uff53\\uff53\\uff11'), 'the same password refused'\n"
        "assert not login('pass2'), 'a wrong password accepted'\n"
        "print('OK saslprep')\n";
    penne::test::process client({"/usr/bin/python3", "-c", script}, tmp / "client.log");
    auto code = client.wait(60s);
    ASSERT_TRUE(code) << client.log();
    EXPECT_EQ(*code, 0) << client.log() << "\n--- mongosim:\n" << sim.log();
    EXPECT_NE(client.log().find("OK saslprep"), std::string::npos) << client.log();
    sim.signal(SIGTERM);
    EXPECT_EQ(sim.wait(10s), 0) << sim.log();
}

}  // namespace
