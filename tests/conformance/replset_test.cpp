// mongosim as a 3-member replica set, judged by real drivers: libmongoc discovers the set
// from one seed, writes through the primary, follows replSetStepDown to the new primary and
// keeps its change stream; hello on every member has a primary's or a secondary's field set;
// secondaries refuse writes (10107) and reads without secondaryOk (13435); awaitable hellos
// wake on a step-down; resume tokens are the same on every member. pymongo 3.11 (replset.py)
// and the npm mongodb 7.x driver (replset.js) run against the executable with --replset 3 and
// --step-down-every.

#include <mongosim/bson.hpp>
#include <mongosim/server.hpp>

#include <process.hpp>
#include <temp_dir.hpp>

#include <mongoc/mongoc.h>

#include <gtest/gtest.h>

#include "mongoc_support.hpp"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using namespace mongosim_test;

[[maybe_unused]] auto* const env = ::testing::AddGlobalTestEnvironment(new mongoc_environment);

std::string str(const bson_t* doc, const char* path) {
    bson_iter_t it, f;
    if (!bson_iter_init(&it, doc) || !bson_iter_find_descendant(&it, path, &f) ||
        !BSON_ITER_HOLDS_UTF8(&f))
        return {};
    return bson_iter_utf8(&f, nullptr);
}

std::int64_t num(const bson_t* doc, const char* path) {
    bson_iter_t it, f;
    if (!bson_iter_init(&it, doc) || !bson_iter_find_descendant(&it, path, &f))
        return -999;
    return bson_iter_as_int64(&f);
}

bool truth(const bson_t* doc, const char* path) {
    bson_iter_t it, f;
    return bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, path, &f) &&
           bson_iter_as_bool(&f);
}

bool has(const bson_t* doc, const char* path) {
    bson_iter_t it, f;
    return bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, path, &f);
}

std::vector<std::string> strings(const bson_t* doc, const char* path) {
    std::vector<std::string> out;
    bson_iter_t it, f, el;
    if (!bson_iter_init(&it, doc) || !bson_iter_find_descendant(&it, path, &f) ||
        !BSON_ITER_HOLDS_ARRAY(&f) || !bson_iter_recurse(&f, &el))
        return out;
    while (bson_iter_next(&el))
        if (BSON_ITER_HOLDS_UTF8(&el))
            out.emplace_back(bson_iter_utf8(&el, nullptr));
    return out;
}

class ReplsetTest : public ::testing::Test {
protected:
    void SetUp() override {
        mongosim::server_options opts;
        opts.members = 3;
        opts.trace = std::getenv("MONGOSIM_TRACE") != nullptr;  // debugging aid
        server_ = std::make_unique<mongosim::background>(std::move(opts));
    }

    std::string member(std::size_t i) const {
        return "127.0.0.1:" + std::to_string(server_->ports().at(i));
    }
    // A client of the set from one seed (member `seed`), as an application would connect.
    client_ptr set_client(std::size_t seed, const std::string& extra = "") const {
        const std::string uri =
            "mongodb://" + member(seed) + "/?replicaSet=rs0&serverSelectionTimeoutMS=5000" + extra;
        client_ptr c(mongoc_client_new(uri.c_str()));
        EXPECT_NE(c, nullptr);
        mongoc_client_set_error_api(c.get(), MONGOC_ERROR_API_VERSION_2);
        return c;
    }
    // A client of exactly one member, whatever its role.
    client_ptr direct(std::size_t i) const {
        const std::string uri =
            "mongodb://" + member(i) + "/?directConnection=true&serverSelectionTimeoutMS=3000";
        client_ptr c(mongoc_client_new(uri.c_str()));
        EXPECT_NE(c, nullptr);
        mongoc_client_set_error_api(c.get(), MONGOC_ERROR_API_VERSION_2);
        return c;
    }
    static bson_ptr command(mongoc_client_t* c, const char* db, const std::string& cmd,
                            bson_error_t* err = nullptr) {
        bson_t reply;
        bson_error_t local;
        bool ok = mongoc_client_command_simple(c, db, json(cmd).get(), nullptr, &reply,
                                               err ? err : &local);
        if (!ok && err == nullptr)
            ADD_FAILURE() << cmd << ": " << local.message;
        bson_ptr out(bson_copy(&reply));
        bson_destroy(&reply);
        return out;
    }
    // The primary's index as the members report it (they must all agree).
    std::size_t primary_index() const {
        std::string primary;
        for (std::size_t i = 0; i < 3; ++i) {
            auto c = direct(i);
            auto hello = command(c.get(), "admin", R"({"hello": 1})");
            const std::string p = str(hello.get(), "primary");
            if (i == 0)
                primary = p;
            EXPECT_EQ(p, primary) << "members disagree on the primary";
        }
        for (std::size_t i = 0; i < 3; ++i)
            if (member(i) == primary)
                return i;
        ADD_FAILURE() << "primary " << primary << " is not a member";
        return 0;
    }
    static void insert(mongoc_collection_t* c, const std::string& doc) {
        bson_error_t err;
        ASSERT_TRUE(mongoc_collection_insert_one(c, json(doc).get(), nullptr, nullptr, &err))
            << err.message;
    }
    // Reads exactly n events, failing on a stream error or after the timeout.
    static std::vector<bson_ptr> events(mongoc_change_stream_t* cs, std::size_t n,
                                        std::chrono::milliseconds timeout = 10s) {
        std::vector<bson_ptr> out;
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (out.size() < n && std::chrono::steady_clock::now() < deadline) {
            const bson_t* doc;
            if (mongoc_change_stream_next(cs, &doc)) {
                out.emplace_back(bson_copy(doc));
                continue;
            }
            bson_error_t err;
            const bson_t* reply;
            if (mongoc_change_stream_error_document(cs, &err, &reply)) {
                ADD_FAILURE() << "change stream error " << err.code << ": " << err.message;
                break;
            }
        }
        EXPECT_EQ(out.size(), n);
        return out;
    }

    std::unique_ptr<mongosim::background> server_;
};

TEST_F(ReplsetTest, HelloOnEveryMemberHasTheReplicaSetFieldSet) {
    ASSERT_EQ(server_->ports().size(), 3u);
    std::set<std::string> process_ids;
    for (std::size_t i = 0; i < 3; ++i) {
        auto c = direct(i);
        for (const char* cmd : {R"({"hello": 1})", R"({"isMaster": 1})"}) {
            auto hello = command(c.get(), "admin", cmd);
            const bool primary = i == 0;
            EXPECT_EQ(str(hello.get(), "setName"), "rs0");
            EXPECT_EQ(strings(hello.get(), "hosts"),
                      (std::vector<std::string>{member(0), member(1), member(2)}));
            EXPECT_EQ(str(hello.get(), "primary"), member(0));
            EXPECT_EQ(str(hello.get(), "me"), member(i));
            EXPECT_EQ(truth(hello.get(), "isWritablePrimary"), primary);
            EXPECT_EQ(truth(hello.get(), "ismaster"), primary);
            EXPECT_EQ(truth(hello.get(), "secondary"), !primary);
            EXPECT_EQ(num(hello.get(), "setVersion"), 1);
            // Only the primary names its election.
            EXPECT_EQ(has(hello.get(), "electionId"), primary);
            EXPECT_TRUE(has(hello.get(), "lastWrite.opTime.ts"));
            EXPECT_EQ(num(hello.get(), "lastWrite.opTime.t"), 1);
            EXPECT_EQ(num(hello.get(), "topologyVersion.counter"), 0);
            bson_iter_t it, pid;
            ASSERT_TRUE(bson_iter_init(&it, hello.get()) &&
                        bson_iter_find_descendant(&it, "topologyVersion.processId", &pid) &&
                        BSON_ITER_HOLDS_OID(&pid));
            char hex[25];
            bson_oid_to_string(bson_iter_oid(&pid), hex);
            process_ids.insert(hex);
        }
    }
    EXPECT_EQ(process_ids.size(), 3u) << "each member is its own process";
}

TEST_F(ReplsetTest, DriverDiscoversTheSetFromASecondarySeedAndWrites) {
    auto c = set_client(2);  // member 2 is a secondary: the driver must find member 0
    coll_ptr col(mongoc_client_get_collection(c.get(), "app", "orders"));
    for (int i = 0; i < 5; ++i)
        insert(col.get(), "{\"_id\": " + std::to_string(i) + "}");
    bson_error_t err;
    EXPECT_EQ(mongoc_collection_count_documents(col.get(), json("{}").get(), nullptr, nullptr,
                                                nullptr, &err),
              5)
        << err.message;
    // The driver's view: a replica set with a primary and two secondaries.
    mongoc_server_description_t* sd = mongoc_client_select_server(c.get(), true, nullptr, &err);
    ASSERT_NE(sd, nullptr) << err.message;
    EXPECT_STREQ(mongoc_server_description_type(sd), "RSPrimary");
    EXPECT_EQ(mongoc_server_description_host(sd)->port, server_->ports()[0]);
    mongoc_server_description_destroy(sd);
    size_t n = 0;
    mongoc_server_description_t** all = mongoc_client_get_server_descriptions(c.get(), &n);
    EXPECT_EQ(n, 3u);
    int secondaries = 0;
    for (size_t i = 0; i < n; ++i)
        secondaries += std::string(mongoc_server_description_type(all[i])) == "RSSecondary";
    EXPECT_EQ(secondaries, 2);
    mongoc_server_descriptions_destroy_all(all, n);
}

TEST_F(ReplsetTest, SecondariesRefuseWritesAndUnflaggedReads) {
    {
        auto p = direct(0);
        command(p.get(), "app", R"({"insert": "c", "documents": [{"_id": 1}]})");
    }
    auto s = direct(1);
    bson_error_t err;
    command(s.get(), "app", R"({"insert": "c", "documents": [{"_id": 2}]})", &err);
    EXPECT_EQ(err.code, 10107u) << err.message;
    // A retryable write is labelled so drivers retry it on the new primary.
    bson_t reply;
    bool ok = mongoc_client_command_simple(
        s.get(), "app",
        json(R"({"insert": "c", "documents": [{"_id": 3}], "txnNumber": {"$numberLong": "1"}})")
            .get(),
        nullptr, &reply, &err);
    EXPECT_FALSE(ok);
    char* text = bson_as_relaxed_extended_json(&reply, nullptr);
    EXPECT_NE(std::string(text).find("RetryableWriteError"), std::string::npos) << text;
    bson_free(text);
    bson_destroy(&reply);
    // Without a read preference the secondary refuses reads ...
    command(s.get(), "app",
            R"({"find": "c", "filter": {}, "$readPreference": {"mode": "primary"}})", &err);
    EXPECT_EQ(err.code, 13435u) << err.message;
    command(s.get(), "app", R"({"aggregate": "c", "pipeline": [], "cursor": {},
                                "$readPreference": {"mode": "primary"}})",
            &err);
    EXPECT_EQ(err.code, 13435u) << err.message;
    // ... and serves them with secondaryOk (the shared data: the primary's insert is there).
    auto found = command(
        s.get(), "app", R"({"find": "c", "filter": {}, "$readPreference": {"mode": "secondary"}})");
    EXPECT_EQ(num(found.get(), "cursor.firstBatch.0._id"), 1);
    // replSetStepDown only on the primary.
    command(s.get(), "admin", R"({"replSetStepDown": 10})", &err);
    EXPECT_EQ(err.code, 10107u) << err.message;
}

// As mongod since 4.2, a step-down closes no connection: the old primary's clients keep their
// sockets and get a secondary's answers on them (a write: NotWritablePrimary, labelled so a
// driver retries it). A closed socket would make a driver that already marked the member
// Unknown (say, after a getMore's NotPrimaryNoSecondaryOk) fail the write without a retry.
TEST_F(ReplsetTest, StepDownKeepsTheOldPrimarysConnectionsOpen) {
    auto c = direct(0);  // one connection, also used for monitoring (single-threaded client)
    auto before = command(c.get(), "admin", R"({"serverStatus": 1})");
    command(c.get(), "admin", R"({"replSetStepDown": 10})");
    bson_error_t err;
    bson_ptr reply = command(c.get(), "app",
                             R"({"insert": "c", "documents": [{"_id": 1}],
                                 "lsid": {"id": {"$binary": {"base64": "AAAAAAAAAAAAAAAAAAAAAA==",
                                                             "subType": "04"}}},
                                 "txnNumber": {"$numberLong": "1"}})",
                             &err);
    EXPECT_EQ(err.code, 10107u) << err.message;
    EXPECT_EQ(strings(reply.get(), "errorLabels"), std::vector<std::string>{"RetryableWriteError"});
    auto hello = command(c.get(), "admin", R"({"hello": 1})");
    EXPECT_FALSE(truth(hello.get(), "isWritablePrimary"));
    EXPECT_TRUE(truth(hello.get(), "secondary"));
    EXPECT_EQ(str(hello.get(), "primary"), member(1));
    auto after = command(c.get(), "admin", R"({"serverStatus": 1})");
    // The same socket all along: no connection was opened since.
    EXPECT_EQ(num(after.get(), "connections.totalCreated"),
              num(before.get(), "connections.totalCreated"));
}

// mongod adds a failCommand writeConcernError after the command ran: a write the member
// refuses as a secondary leaves the fail point armed for the next write it runs as primary.
TEST_F(ReplsetTest, WriteConcernErrorFailPointWaitsForAWriteThatRuns) {
    auto m0 = direct(0);
    command(m0.get(), "admin", R"({"configureFailPoint": "failCommand", "mode": {"times": 1},
        "data": {"failCommands": ["update"],
                 "writeConcernError": {"code": 189, "errmsg": "primary stepped down"}}})");
    command(m0.get(), "admin", R"({"replSetStepDown": 10})");  // member 1 is primary
    const std::string update =
        R"({"update": "c", "updates": [{"q": {"_id": 1}, "u": {"$inc": {"n": 1}}, "upsert": true}]})";
    bson_error_t err;
    bson_ptr refused = command(m0.get(), "app", update, &err);
    EXPECT_EQ(err.code, 10107u) << err.message;
    EXPECT_FALSE(has(refused.get(), "writeConcernError"));
    for (std::size_t p = 1; p < 3; ++p) {  // 1 -> 2 -> 0
        auto c = direct(p);
        command(c.get(), "admin", R"({"replSetStepDown": 10})");
    }
    ASSERT_EQ(primary_index(), 0u);
    bson_ptr ran = command(m0.get(), "app", update, &err);
    EXPECT_EQ(num(ran.get(), "n"), 1);
    EXPECT_EQ(num(ran.get(), "writeConcernError.code"), 189);
    // Fired once: the next write has none.
    bson_ptr next = command(m0.get(), "app", update, &err);
    EXPECT_EQ(num(next.get(), "n"), 1);
    EXPECT_FALSE(has(next.get(), "writeConcernError"));
}

TEST_F(ReplsetTest, StepDownMovesThePrimaryAndTheDriverFollows) {
    auto c = set_client(0, "&retryWrites=true");
    coll_ptr col(mongoc_client_get_collection(c.get(), "app", "orders"));
    insert(col.get(), R"({"_id": 0})");
    bson_ptr opts = json(R"({"maxAwaitTimeMS": 100})");
    stream_ptr cs(
        mongoc_collection_watch(col.get(), json(R"({"pipeline": []})").get(), opts.get()));
    insert(col.get(), R"({"_id": 1})");
    auto first = events(cs.get(), 1);

    std::set<std::size_t> primaries{0};
    for (int round = 0; round < 3; ++round) {
        // The command is answered; the old primary answers as a secondary from now on.
        bson_error_t err;
        bson_t reply;
        mongoc_client_command_simple(c.get(), "admin", json(R"({"replSetStepDown": 10})").get(),
                                     nullptr, &reply, &err);
        bson_destroy(&reply);
        const std::size_t p = primary_index();
        primaries.insert(p);
        EXPECT_EQ(p, static_cast<std::size_t>(round + 1) % 3);
        // Writes reach the new primary (after a rescan or a retry), and the change stream
        // resumes there with every event once.
        for (int k = 0; k < 3; ++k)
            insert(col.get(), "{\"_id\": " + std::to_string(10 * (round + 1) + k) + "}");
        auto got = events(cs.get(), 3);
        ASSERT_EQ(got.size(), 3u);
        for (int k = 0; k < 3; ++k)
            EXPECT_EQ(num(got[static_cast<std::size_t>(k)].get(), "documentKey._id"),
                      10 * (round + 1) + k);
    }
    EXPECT_EQ(primaries.size(), 3u);
    // A new term each time.
    auto hello = command(direct(primary_index()).get(), "admin", R"({"hello": 1})");
    EXPECT_EQ(num(hello.get(), "lastWrite.opTime.t"), 4);
}

TEST_F(ReplsetTest, PooledClientFollowsStepDownsThroughAwaitableHello) {
    // A pooled client monitors every member in the background with awaitable hellos, which
    // the step-down answers at once.
    const std::string uri =
        "mongodb://" + member(0) + "/?replicaSet=rs0&serverSelectionTimeoutMS=5000";
    mongoc_uri_t* u = mongoc_uri_new(uri.c_str());
    mongoc_client_pool_t* pool = mongoc_client_pool_new(u);
    mongoc_client_pool_set_error_api(pool, MONGOC_ERROR_API_VERSION_2);
    mongoc_client_t* c = mongoc_client_pool_pop(pool);
    coll_ptr col(mongoc_client_get_collection(c, "pooled", "c"));
    insert(col.get(), R"({"_id": 0})");
    for (int round = 1; round <= 3; ++round) {
        server_->step_down();
        insert(col.get(), "{\"_id\": " + std::to_string(round) + "}");
        bson_error_t err;
        mongoc_server_description_t* sd = mongoc_client_select_server(c, true, nullptr, &err);
        ASSERT_NE(sd, nullptr) << err.message;
        EXPECT_EQ(mongoc_server_description_host(sd)->port,
                  server_->ports()[static_cast<std::size_t>(round) % 3]);
        mongoc_server_description_destroy(sd);
    }
    bson_error_t err;
    EXPECT_EQ(mongoc_collection_count_documents(col.get(), json("{}").get(), nullptr, nullptr,
                                                nullptr, &err),
              4)
        << err.message;
    col.reset();
    mongoc_client_pool_push(pool, c);
    mongoc_client_pool_destroy(pool);
    mongoc_uri_destroy(u);
}

TEST_F(ReplsetTest, SetOfOneCannotStepDown) {
    server_.reset();
    server_ = std::make_unique<mongosim::background>();
    client_ptr c(mongoc_client_new((server_->uri() + "&serverSelectionTimeoutMS=3000").c_str()));
    mongoc_client_set_error_api(c.get(), MONGOC_ERROR_API_VERSION_2);
    bson_error_t err;
    command(c.get(), "admin", R"({"replSetStepDown": 10})", &err);
    EXPECT_EQ(err.code, 262u) << err.message;
    auto hello = command(c.get(), "admin", R"({"hello": 1})");
    EXPECT_TRUE(truth(hello.get(), "isWritablePrimary"));
}

TEST_F(ReplsetTest, AwaitableHelloWakesOnStepDown) {
    auto c = direct(1);
    auto hello = command(c.get(), "admin", R"({"hello": 1})");
    bson_iter_t it;
    ASSERT_TRUE(bson_iter_init_find(&it, hello.get(), "topologyVersion"));
    bson_ptr cmd = json(R"({"hello": 1, "maxAwaitTimeMS": 10000})");
    bson_append_value(cmd.get(), "topologyVersion", -1, bson_iter_value(&it));
    std::thread stepper([this] {
        std::this_thread::sleep_for(300ms);
        server_->step_down();
    });
    const auto start = std::chrono::steady_clock::now();
    bson_t reply;
    bson_error_t err;
    ASSERT_TRUE(mongoc_client_command_simple(c.get(), "admin", cmd.get(), nullptr, &reply, &err))
        << err.message;
    const auto took = std::chrono::steady_clock::now() - start;
    stepper.join();
    EXPECT_GE(took, 250ms);
    EXPECT_LT(took, 5s) << "the hello was not woken by the step-down";
    EXPECT_EQ(num(&reply, "topologyVersion.counter"), 1);
    EXPECT_TRUE(truth(&reply, "isWritablePrimary"));  // member 1 is the new primary
    EXPECT_EQ(str(&reply, "primary"), member(1));
    bson_destroy(&reply);
}

TEST_F(ReplsetTest, ResumeTokensAreTheSameOnEveryMember) {
    {
        auto p = direct(0);
        for (int i = 0; i < 3; ++i)
            command(p.get(), "app",
                    "{\"insert\": \"c\", \"documents\": [{\"_id\": " + std::to_string(i) + "}]}");
    }
    // Each member serves the stream from the start of the oplog (secondaryOk).
    std::vector<std::vector<std::string>> tokens(3);
    for (std::size_t i = 0; i < 3; ++i) {
        auto c = direct(i);
        auto r = command(c.get(), "app", R"({"aggregate": "c",
            "pipeline": [{"$changeStream": {"startAtOperationTime": {"$timestamp": {"t": 1, "i": 0}}}}],
            "cursor": {}, "$readPreference": {"mode": "secondaryPreferred"}})");
        bson_iter_t it, batch, ev;
        ASSERT_TRUE(bson_iter_init(&it, r.get()) &&
                    bson_iter_find_descendant(&it, "cursor.firstBatch", &batch) &&
                    bson_iter_recurse(&batch, &ev));
        while (bson_iter_next(&ev)) {
            bson_t doc;
            std::uint32_t len;
            const std::uint8_t* data;
            bson_iter_document(&ev, &len, &data);
            ASSERT_TRUE(bson_init_static(&doc, data, len));
            if (str(&doc, "operationType") == "insert")
                tokens[i].push_back(str(&doc, "_id._data"));
        }
    }
    EXPECT_EQ(tokens[0].size(), 3u);
    EXPECT_EQ(tokens[0], tokens[1]);
    EXPECT_EQ(tokens[0], tokens[2]);
}

TEST_F(ReplsetTest, CursorsBelongToTheirMember) {
    auto p = direct(0);
    for (int i = 0; i < 5; ++i)
        command(p.get(), "app",
                "{\"insert\": \"c\", \"documents\": [{\"_id\": " + std::to_string(i) + "}]}");
    auto r = command(p.get(), "app", R"({"find": "c", "filter": {}, "batchSize": 2})");
    const std::int64_t id = num(r.get(), "cursor.id");
    ASSERT_GT(id, 0);
    auto s = direct(1);
    bson_error_t err;
    command(s.get(), "app",
            "{\"getMore\": {\"$numberLong\": \"" + std::to_string(id) +
                "\"}, \"collection\": \"c\", \"$readPreference\": {\"mode\": \"secondary\"}}",
            &err);
    EXPECT_EQ(err.code, 43u) << err.message;
    auto more = command(
        p.get(), "app",
        "{\"getMore\": {\"$numberLong\": \"" + std::to_string(id) + "\"}, \"collection\": \"c\"}");
    EXPECT_EQ(num(more.get(), "cursor.nextBatch.0._id"), 2);
}

// As mongod's: a cursor opened on the primary lives on when its member steps down, and a
// getMore there (now a secondary) goes on reading.
TEST_F(ReplsetTest, CursorsOutliveAnElectionOnTheirMember) {
    // A replica-set client reads with the primary read preference (no secondaryOk); both
    // commands go to member 0, whatever the client thinks it is by then.
    auto c = set_client(0);
    bson_error_t err;
    mongoc_server_description_t* sd = mongoc_client_select_server(c.get(), true, nullptr, &err);
    ASSERT_NE(sd, nullptr) << err.message;
    const std::uint32_t id0 = mongoc_server_description_id(sd);
    mongoc_server_description_destroy(sd);
    auto run = [&](const char* db, const std::string& cmd) {
        bson_t reply;
        bson_error_t e;
        const bool ok = mongoc_client_command_simple_with_server_id(c.get(), db, json(cmd).get(),
                                                                    nullptr, id0, &reply, &e);
        EXPECT_TRUE(ok) << cmd << ": " << e.message;
        bson_ptr out(bson_copy(&reply));
        bson_destroy(&reply);
        return out;
    };
    for (int i = 0; i < 5; ++i)
        run("app", "{\"insert\": \"c\", \"documents\": [{\"_id\": " + std::to_string(i) + "}]}");
    auto r = run("app", R"({"find": "c", "filter": {}, "batchSize": 2})");
    const std::int64_t id = num(r.get(), "cursor.id");
    ASSERT_GT(id, 0);
    run("admin", R"({"replSetStepDown": 10})");
    ASSERT_EQ(primary_index(), 1u);
    auto more = run("app", "{\"getMore\": {\"$numberLong\": \"" + std::to_string(id) +
                               "\"}, \"collection\": \"c\"}");
    EXPECT_EQ(num(more.get(), "cursor.nextBatch.0._id"), 2);
}

// The executable: `--replset 3` prints every member, `--step-down-every` rotates the primary,
// and a real driver discovers the set from one seed, inserts with retryable writes and
// resumes its change stream across the step-downs (replset.{py,js} assert every event once,
// in order): pymongo 3.11 and the npm mongodb 7.x driver (streaming hello over exhaust).
class ReplsetExecutable : public ::testing::TestWithParam<const char*> {};

TEST_P(ReplsetExecutable, DriverSurvivesStepDowns) {
    const std::string which = GetParam();
    penne::test::temp_dir tmp("mongosim-replset");
    penne::test::process sim(
        {MONGOSIM_EXECUTABLE, "--port", "0", "--replset", "3", "--step-down-every", "700"},
        tmp / "mongosim.log");
    ASSERT_TRUE(sim.wait_for_output("mongosim listening on", 10s)) << sim.log();
    const std::string log = sim.log();
    const std::string prefix = "mongosim listening on ";
    const auto at = log.find(prefix);
    ASSERT_NE(at, std::string::npos);
    const auto begin = at + prefix.size();
    const std::string seeds = log.substr(begin, log.find(' ', begin) - begin);
    ASSERT_EQ(std::count(seeds.begin(), seeds.end(), ','), 2) << log;
    EXPECT_NE(log.find("(replica set rs0 of 3 members)"), std::string::npos) << log;
    // One seed only: the last member.
    const std::string uri = "mongodb://" + seeds.substr(seeds.rfind(',') + 1) + "/?replicaSet=rs0";
    const std::string dir = MONGOSIM_DRIVER_SCRIPTS;
    std::vector<std::string> command;
    std::map<std::string, std::string> env;
    if (which == "pymongo") {
        command = {"/usr/bin/python3", dir + "/replset.py", uri};
    } else {
        command = {"/usr/bin/env", "node", dir + "/replset.js", uri};
        env["NODE_PATH"] = dir + "/node/node_modules";
    }
    penne::test::process client(command, tmp / "client.log", env);
    auto code = client.wait(120s);
    if (!code) {
        client.signal(SIGKILL);
        client.wait(5s);
    }
    ASSERT_TRUE(code) << which << " did not finish:\n" << client.log();
    EXPECT_EQ(*code, 0) << client.log();
    EXPECT_NE(client.log().find("replset ok"), std::string::npos) << client.log();
}

INSTANTIATE_TEST_SUITE_P(Drivers, ReplsetExecutable,
                         ::testing::Values("pymongo", "node_mongodb_7"));

}  // namespace
