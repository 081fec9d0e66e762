// mongosim checked by a real driver: libmongoc 1.23 connects as it would to a replica set,
// writes, reads, and watches at collection, database and deployment scope; resumes at each
// scope from mongoc_change_stream_get_resume_token; keeps a pooled client (awaitable-hello
// monitors) busy and healthy for 30 s; and retries writes that mongosim applies once.

#include <mongosim/server.hpp>
#include <mongosim/wire.hpp>

#include "retryable_writes.hpp"

#include <mongoc/mongoc.h>

#include <gtest/gtest.h>

#include "mongoc_support.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
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

bool has(const bson_t* doc, const char* path) {
    bson_iter_t it, f;
    return bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, path, &f);
}

std::string token_of(const bson_t* event) {
    return str(event, "_id._data");
}

class MongosimTest : public ::testing::Test {
protected:
    void start(mongosim::server_options opts = {}) {
        opts.trace = std::getenv("MONGOSIM_TRACE") != nullptr;  // debugging aid
        server_ = std::make_unique<mongosim::background>(std::move(opts));
    }
    void SetUp() override { start(); }

    std::string uri(const std::string& extra = "") const {
        return server_->uri() + "&serverSelectionTimeoutMS=3000" + extra;
    }
    client_ptr client(const std::string& extra = "") const {
        client_ptr c(mongoc_client_new(uri(extra).c_str()));
        EXPECT_NE(c, nullptr);
        mongoc_client_set_error_api(c.get(), MONGOC_ERROR_API_VERSION_2);
        return c;
    }
    static coll_ptr coll(mongoc_client_t* c, const char* db, const char* name) {
        return coll_ptr(mongoc_client_get_collection(c, db, name));
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
    static void insert(mongoc_collection_t* c, const std::string& doc) {
        bson_error_t err;
        ASSERT_TRUE(mongoc_collection_insert_one(c, json(doc).get(), nullptr, nullptr, &err))
            << err.message;
    }
    // Reads exactly n events, failing on a stream error or after the timeout.
    static std::vector<bson_ptr> events(mongoc_change_stream_t* cs, std::size_t n,
                                        std::chrono::milliseconds timeout = 5s) {
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
    static stream_ptr watch(mongoc_collection_t* c, const std::string& opts = "{}",
                            const std::string& pipeline = "{\"pipeline\": []}") {
        return stream_ptr(mongoc_collection_watch(c, json(pipeline).get(), with_await(opts).get()));
    }
    static bson_ptr with_await(const std::string& opts) {
        bson_ptr o = json(opts);
        if (!bson_has_field(o.get(), "maxAwaitTimeMS"))
            BSON_APPEND_INT64(o.get(), "maxAwaitTimeMS", 50);
        return o;
    }
    static void expect_no_error(mongoc_change_stream_t* cs) {
        bson_error_t err;
        const bson_t* reply;
        EXPECT_FALSE(mongoc_change_stream_error_document(cs, &err, &reply)) << err.message;
    }

    std::unique_ptr<mongosim::background> server_;
};

TEST_F(MongosimTest, HandshakeAsReplicaSetPrimaryAndDirectConnection) {
    for (const std::string extra : {"", "&directConnection=false"}) {
        auto c = client(extra);
        auto reply = command(c.get(), "admin", R"({"ping": 1})");
        EXPECT_EQ(num(reply.get(), "ok"), 1);
        auto hello = command(c.get(), "admin", R"({"hello": 1})");
        EXPECT_EQ(str(hello.get(), "setName"), "rs0");
        EXPECT_TRUE(has(hello.get(), "isWritablePrimary"));
        EXPECT_EQ(num(hello.get(), "maxWireVersion"), 17);
        EXPECT_EQ(num(hello.get(), "maxBsonObjectSize"), 16777216);
        EXPECT_EQ(num(hello.get(), "maxMessageSizeBytes"), 48000000);
        EXPECT_TRUE(has(hello.get(), "topologyVersion.processId"));
        EXPECT_TRUE(has(hello.get(), "$clusterTime.clusterTime"));
    }
    // directConnection=true without replicaSet.
    std::string direct = "mongodb://127.0.0.1:" + std::to_string(server_->port()) +
                         "/?directConnection=true&serverSelectionTimeoutMS=3000";
    client_ptr c(mongoc_client_new(direct.c_str()));
    auto info = command(c.get(), "admin", R"({"buildInfo": 1})");
    EXPECT_EQ(str(info.get(), "version"), "7.0.0");
}

TEST_F(MongosimTest, PooledClientWithAwaitableHello) {
    mongoc_uri_t* u = mongoc_uri_new((uri() + "&heartbeatFrequencyMS=500").c_str());
    mongoc_client_pool_t* pool = mongoc_client_pool_new(u);
    mongoc_client_pool_set_error_api(pool, MONGOC_ERROR_API_VERSION_2);
    mongoc_client_t* c = mongoc_client_pool_pop(pool);
    auto col = coll(c, "pooled", "c");
    insert(col.get(), R"({"_id": 1})");
    // Let the monitor run a few awaitable hellos; the client must stay usable.
    std::this_thread::sleep_for(1200ms);
    bson_error_t err;
    EXPECT_EQ(mongoc_collection_count_documents(col.get(), json("{}").get(), nullptr, nullptr,
                                                nullptr, &err),
              1)
        << err.message;
    col.reset();
    mongoc_client_pool_push(pool, c);
    mongoc_client_pool_destroy(pool);
    mongoc_uri_destroy(u);
}

TEST_F(MongosimTest, CrudAcrossCollections) {
    auto c = client();
    bson_error_t err;
    for (const char* name : {"a", "b", "c"}) {
        auto col = coll(c.get(), "crud", name);
        constexpr int n = 500;
        std::vector<bson_ptr> docs;
        const bson_t* ptrs[n];
        for (int i = 0; i < n; ++i) {
            docs.push_back(json("{\"_id\": " + std::to_string(i) + ", \"k\": " +
                                std::to_string(i % 5) + ", \"name\": \"" + name + "\"}"));
            ptrs[i] = docs.back().get();
        }
        ASSERT_TRUE(mongoc_collection_insert_many(col.get(), ptrs, n, nullptr, nullptr, &err))
            << err.message;
    }
    auto a = coll(c.get(), "crud", "a");
    EXPECT_EQ(mongoc_collection_count_documents(a.get(), json(R"({"k": 3})").get(), nullptr,
                                                nullptr, nullptr, &err),
              100);

    // Duplicate _id is a write error, not a crash or a silent overwrite.
    EXPECT_FALSE(
        mongoc_collection_insert_one(a.get(), json(R"({"_id": 1})").get(), nullptr, nullptr, &err));
    EXPECT_EQ(err.code, 11000u);

    bson_t reply;
    ASSERT_TRUE(mongoc_collection_update_one(
        a.get(), json(R"({"_id": 7})").get(),
        json(R"({"$set": {"x.y": 1}, "$inc": {"k": 10}})").get(), nullptr, &reply, &err))
        << err.message;
    EXPECT_EQ(num(&reply, "modifiedCount"), 1);
    bson_destroy(&reply);
    ASSERT_TRUE(mongoc_collection_update_many(a.get(), json(R"({"k": 0})").get(),
                                              json(R"({"$unset": {"name": ""}})").get(), nullptr,
                                              &reply, &err));
    EXPECT_EQ(num(&reply, "matchedCount"), 100);
    EXPECT_EQ(num(&reply, "modifiedCount"), 100);
    bson_destroy(&reply);
    ASSERT_TRUE(mongoc_collection_replace_one(a.get(), json(R"({"_id": 8})").get(),
                                              json(R"({"replaced": true})").get(), nullptr, &reply,
                                              &err));
    bson_destroy(&reply);
    ASSERT_TRUE(mongoc_collection_update_one(a.get(), json(R"({"_id": "new"})").get(),
                                             json(R"({"$set": {"up": 1}})").get(),
                                             json(R"({"upsert": true})").get(), &reply, &err));
    EXPECT_EQ(str(&reply, "upsertedId"), "new");
    bson_destroy(&reply);
    ASSERT_TRUE(
        mongoc_collection_delete_many(a.get(), json(R"({"k": 4})").get(), nullptr, &reply, &err));
    EXPECT_EQ(num(&reply, "deletedCount"), 100);
    bson_destroy(&reply);
    ASSERT_TRUE(
        mongoc_collection_delete_one(a.get(), json(R"({"k": 1})").get(), nullptr, &reply, &err));
    EXPECT_EQ(num(&reply, "deletedCount"), 1);
    bson_destroy(&reply);

    // find with a small batch size walks getMore to the end, sorted.
    cursor_ptr cur(mongoc_collection_find_with_opts(
        a.get(), json(R"({"k": {"$in": [1, 12]}})").get(),
        json(R"({"sort": {"_id": -1}, "batchSize": 7})").get(), nullptr));
    const bson_t* doc;
    std::vector<std::int64_t> ids;
    while (mongoc_cursor_next(cur.get(), &doc))
        ids.push_back(num(doc, "_id"));
    EXPECT_FALSE(mongoc_cursor_error(cur.get(), &err)) << err.message;
    ASSERT_EQ(ids.size(), 100u);  // 99 with k=1 (one was deleted) and _id 7, now k=12
    EXPECT_TRUE(std::is_sorted(ids.rbegin(), ids.rend()));

    cursor_ptr one(
        mongoc_collection_find_with_opts(a.get(), json(R"({"_id": 7})").get(), nullptr, nullptr));
    ASSERT_TRUE(mongoc_cursor_next(one.get(), &doc));
    EXPECT_EQ(relaxed(doc), R"({ "_id" : 7, "k" : 12, "name" : "a", "x" : { "y" : 1 } })");
    cursor_ptr replaced(
        mongoc_collection_find_with_opts(a.get(), json(R"({"_id": 8})").get(), nullptr, nullptr));
    ASSERT_TRUE(mongoc_cursor_next(replaced.get(), &doc));
    EXPECT_EQ(relaxed(doc), R"({ "_id" : 8, "replaced" : true })");

    mongoc_database_t* db = mongoc_client_get_database(c.get(), "crud");
    auto names = mongoc_database_get_collection_names_with_opts(db, nullptr, &err);
    mongoc_database_destroy(db);
    ASSERT_NE(names, nullptr);
    std::vector<std::string> got;
    for (char** n = names; *n; ++n)
        got.emplace_back(*n);
    bson_strfreev(names);
    std::sort(got.begin(), got.end());
    EXPECT_EQ(got, (std::vector<std::string>{"a", "b", "c"}));
}

TEST_F(MongosimTest, CollectionStreamSeesEveryChangeInOrder) {
    auto c = client();
    auto col = coll(c.get(), "db", "orders");
    auto other = coll(c.get(), "db", "other");
    auto cs = watch(col.get());
    insert(col.get(), R"({"_id": 1, "v": 1})");
    insert(other.get(), R"({"_id": 1})");  // another collection: not in this stream
    bson_error_t err;
    ASSERT_TRUE(mongoc_collection_update_one(
        col.get(), json(R"({"_id": 1})").get(),
        json(R"({"$set": {"v": 2, "w.x": 1}, "$unset": {"nope": 1}})").get(), nullptr, nullptr,
        &err));
    ASSERT_TRUE(mongoc_collection_update_one(col.get(), json(R"({"_id": 1})").get(),
                                             json(R"({"$unset": {"v": 1}})").get(), nullptr,
                                             nullptr, &err));
    ASSERT_TRUE(mongoc_collection_replace_one(col.get(), json(R"({"_id": 1})").get(),
                                              json(R"({"r": 1})").get(), nullptr, nullptr, &err));
    ASSERT_TRUE(mongoc_collection_delete_one(col.get(), json(R"({"_id": 1})").get(), nullptr,
                                             nullptr, &err));
    auto ev = events(cs.get(), 5);
    ASSERT_EQ(ev.size(), 5u);
    const char* ops[] = {"insert", "update", "update", "replace", "delete"};
    for (std::size_t i = 0; i < ev.size(); ++i) {
        SCOPED_TRACE(relaxed(ev[i].get()));
        EXPECT_EQ(str(ev[i].get(), "operationType"), ops[i]);
        EXPECT_EQ(str(ev[i].get(), "ns.db"), "db");
        EXPECT_EQ(str(ev[i].get(), "ns.coll"), "orders");
        EXPECT_EQ(num(ev[i].get(), "documentKey._id"), 1);
        EXPECT_TRUE(has(ev[i].get(), "clusterTime"));
        EXPECT_TRUE(has(ev[i].get(), "wallTime"));
        if (i > 0) {
            EXPECT_LT(token_of(ev[i - 1].get()), token_of(ev[i].get()));
        }
    }
    EXPECT_EQ(num(ev[0].get(), "fullDocument.v"), 1);
    bson_t ud;
    bson_iter_t it;
    ASSERT_TRUE(bson_iter_init(&it, ev[1].get()) &&
                bson_iter_find_descendant(&it, "updateDescription", &it));
    EXPECT_EQ(relaxed(ev[1].get()).find("\"fullDocument\""), std::string::npos);
    (void)ud;
    EXPECT_EQ(num(ev[1].get(), "updateDescription.updatedFields.v"), 2);
    EXPECT_EQ(num(ev[1].get(), "updateDescription.updatedFields.w.x"), 1);
    EXPECT_TRUE(has(ev[1].get(), "updateDescription.truncatedArrays"));
    EXPECT_EQ(str(ev[2].get(), "updateDescription.removedFields.0"), "v");
    EXPECT_EQ(num(ev[3].get(), "fullDocument.r"), 1);
    EXPECT_FALSE(has(ev[4].get(), "fullDocument"));
    expect_no_error(cs.get());
}

TEST_F(MongosimTest, UpdateLookupAndUserMatchStages) {
    auto c = client();
    auto col = coll(c.get(), "db", "c");
    auto cs =
        watch(col.get(), R"({"fullDocument": "updateLookup"})",
              R"({"pipeline": [{"$match": {"operationType": {"$in": ["update", "delete"]}}}]})");
    insert(col.get(), R"({"_id": 1, "n": 1})");
    bson_error_t err;
    ASSERT_TRUE(mongoc_collection_update_one(col.get(), json(R"({"_id": 1})").get(),
                                             json(R"({"$inc": {"n": 5}})").get(), nullptr, nullptr,
                                             &err));
    ASSERT_TRUE(mongoc_collection_delete_one(col.get(), json(R"({"_id": 1})").get(), nullptr,
                                             nullptr, &err));
    auto ev = events(cs.get(), 2);
    ASSERT_EQ(ev.size(), 2u);
    EXPECT_EQ(str(ev[0].get(), "operationType"), "update");
    // The lookup happens when the batch is cut: by then the document is gone.
    EXPECT_TRUE(has(ev[0].get(), "fullDocument"));
    EXPECT_EQ(str(ev[1].get(), "operationType"), "delete");
    EXPECT_EQ(num(ev[0].get(), "updateDescription.updatedFields.n"), 6);

    auto live = watch(col.get(), R"({"fullDocument": "updateLookup"})");
    insert(col.get(), R"({"_id": 2, "n": 1})");
    ASSERT_TRUE(mongoc_collection_update_one(col.get(), json(R"({"_id": 2})").get(),
                                             json(R"({"$set": {"m": "x"}})").get(), nullptr,
                                             nullptr, &err));
    auto ev2 = events(live.get(), 2);
    ASSERT_EQ(ev2.size(), 2u);
    EXPECT_EQ(relaxed(ev2[1].get()).find(R"("fullDocument" : { "_id" : 2, "n" : 1, "m" : "x" })") !=
                  std::string::npos,
              true)
        << relaxed(ev2[1].get());
}

TEST_F(MongosimTest, DatabaseAndDeploymentStreams) {
    auto c = client();
    mongoc_database_t* db = mongoc_client_get_database(c.get(), "shop");
    stream_ptr dbs(mongoc_database_watch(db, json("{}").get(), with_await("{}").get()));
    stream_ptr all(mongoc_client_watch(c.get(), json("{}").get(), with_await("{}").get()));
    auto x = coll(c.get(), "shop", "x");
    auto y = coll(c.get(), "shop", "y");
    auto z = coll(c.get(), "elsewhere", "z");
    insert(x.get(), R"({"_id": 1})");
    insert(y.get(), R"({"_id": 2})");
    insert(z.get(), R"({"_id": 3})");
    bson_error_t err;
    ASSERT_TRUE(mongoc_collection_drop(y.get(), &err)) << err.message;
    ASSERT_TRUE(mongoc_database_drop(db, &err)) << err.message;
    insert(x.get(), R"({"_id": 4})");

    // Database stream: x insert, y insert, drop y, drop x, dropDatabase, invalidate.
    auto d = events(dbs.get(), 6);
    ASSERT_EQ(d.size(), 6u);
    std::vector<std::string> ops;
    for (auto& e : d)
        ops.push_back(str(e.get(), "operationType") + ":" + str(e.get(), "ns.coll"));
    EXPECT_EQ(ops, (std::vector<std::string>{"insert:x", "insert:y", "drop:y", "drop:x",
                                             "dropDatabase:", "invalidate:"}));

    // Deployment stream: everything, no invalidate, continues after dropDatabase.
    auto a = events(all.get(), 7);
    ASSERT_EQ(a.size(), 7u);
    ops.clear();
    for (auto& e : a)
        ops.push_back(str(e.get(), "operationType") + ":" + str(e.get(), "ns.db"));
    EXPECT_EQ(ops, (std::vector<std::string>{"insert:shop", "insert:shop", "insert:elsewhere",
                                             "drop:shop", "drop:shop", "dropDatabase:shop",
                                             "insert:shop"}));
    dbs.reset();
    mongoc_database_destroy(db);
}

TEST_F(MongosimTest, ResumeAfterReturnsExactlyTheLaterEvents) {
    auto c = client();
    auto col = coll(c.get(), "db", "r");
    auto cs = watch(col.get());
    for (int i = 0; i < 20; ++i)
        insert(col.get(), "{\"_id\": " + std::to_string(i) + "}");
    auto first = events(cs.get(), 20);
    ASSERT_EQ(first.size(), 20u);
    cs.reset();

    bson_iter_t it;
    ASSERT_TRUE(bson_iter_init_find(&it, first[7].get(), "_id"));
    bson_t token;
    std::uint32_t len;
    const std::uint8_t* data;
    bson_iter_document(&it, &len, &data);
    ASSERT_TRUE(bson_init_static(&token, data, len));
    bson_ptr opts = with_await("{}");
    BSON_APPEND_DOCUMENT(opts.get(), "resumeAfter", &token);
    stream_ptr resumed(mongoc_collection_watch(col.get(), json("{}").get(), opts.get()));
    auto rest = events(resumed.get(), 12);
    ASSERT_EQ(rest.size(), 12u);
    for (std::size_t i = 0; i < rest.size(); ++i) {
        EXPECT_EQ(num(rest[i].get(), "documentKey._id"), static_cast<std::int64_t>(i + 8));
        // Same event, same token, across streams.
        EXPECT_EQ(token_of(rest[i].get()), token_of(first[i + 8].get()));
    }
    // Nothing more: an empty getMore, no error.
    const bson_t* doc;
    EXPECT_FALSE(mongoc_change_stream_next(resumed.get(), &doc));
    expect_no_error(resumed.get());
}

TEST_F(MongosimTest, IdleStreamResumeTokenAdvances) {
    auto c = client();
    auto col = coll(c.get(), "db", "idle");
    auto cs = watch(col.get());
    const bson_t* doc;
    EXPECT_FALSE(mongoc_change_stream_next(cs.get(), &doc));
    const bson_t* t = mongoc_change_stream_get_resume_token(cs.get());
    ASSERT_NE(t, nullptr);
    const std::string t1 = str(t, "_data");
    EXPECT_FALSE(mongoc_change_stream_next(cs.get(), &doc));
    const std::string t2 = str(mongoc_change_stream_get_resume_token(cs.get()), "_data");
    EXPECT_FALSE(t1.empty());
    EXPECT_LT(t1, t2);
    expect_no_error(cs.get());

    // The high-water token is a valid resume point: it yields what came after it, only.
    bson_ptr saved(bson_copy(mongoc_change_stream_get_resume_token(cs.get())));
    insert(col.get(), R"({"_id": "after"})");
    bson_ptr opts = with_await("{}");
    BSON_APPEND_DOCUMENT(opts.get(), "resumeAfter", saved.get());
    stream_ptr resumed(mongoc_collection_watch(col.get(), json("{}").get(), opts.get()));
    auto ev = events(resumed.get(), 1);
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(str(ev[0].get(), "documentKey._id"), "after");
    EXPECT_LT(t2, token_of(ev[0].get()));
}

TEST_F(MongosimTest, DropInvalidatesAndStartAfterContinues) {
    auto c = client();
    auto col = coll(c.get(), "db", "gone");
    insert(col.get(), R"({"_id": 0})");
    auto cs = watch(col.get());
    insert(col.get(), R"({"_id": 1})");
    bson_error_t err;
    ASSERT_TRUE(mongoc_collection_drop(col.get(), &err)) << err.message;
    auto ev = events(cs.get(), 3);
    ASSERT_EQ(ev.size(), 3u);
    EXPECT_EQ(str(ev[1].get(), "operationType"), "drop");
    EXPECT_EQ(str(ev[2].get(), "operationType"), "invalidate");
    const bson_t* doc;
    EXPECT_FALSE(mongoc_change_stream_next(cs.get(), &doc));  // the cursor is closed

    bson_iter_t it;
    ASSERT_TRUE(bson_iter_init_find(&it, ev[2].get(), "_id"));
    bson_t token;
    std::uint32_t len;
    const std::uint8_t* data;
    bson_iter_document(&it, &len, &data);
    bson_init_static(&token, data, len);

    bson_ptr bad = with_await("{}");
    BSON_APPEND_DOCUMENT(bad.get(), "resumeAfter", &token);
    stream_ptr refused(mongoc_collection_watch(col.get(), json("{}").get(), bad.get()));
    EXPECT_FALSE(mongoc_change_stream_next(refused.get(), &doc));
    const bson_t* reply;
    EXPECT_TRUE(mongoc_change_stream_error_document(refused.get(), &err, &reply));
    EXPECT_EQ(err.code, 260u);

    bson_ptr opts = with_await("{}");
    BSON_APPEND_DOCUMENT(opts.get(), "startAfter", &token);
    stream_ptr again(mongoc_collection_watch(col.get(), json("{}").get(), opts.get()));
    insert(col.get(), R"({"_id": 2})");
    auto more = events(again.get(), 1);
    ASSERT_EQ(more.size(), 1u);
    EXPECT_EQ(num(more[0].get(), "documentKey._id"), 2);
}

TEST_F(MongosimTest, HistoryLostIsError286) {
    server_.reset();
    start({.oplog_size = 5});
    auto c = client();
    auto col = coll(c.get(), "db", "h");
    auto cs = watch(col.get());
    insert(col.get(), R"({"_id": 0})");
    auto first = events(cs.get(), 1);
    ASSERT_EQ(first.size(), 1u);
    for (int i = 1; i <= 10; ++i)
        insert(col.get(), "{\"_id\": " + std::to_string(i) + "}");

    bson_iter_t it;
    ASSERT_TRUE(bson_iter_init_find(&it, first[0].get(), "_id"));
    bson_t token;
    std::uint32_t len;
    const std::uint8_t* data;
    bson_iter_document(&it, &len, &data);
    bson_init_static(&token, data, len);
    bson_ptr opts = with_await("{}");
    BSON_APPEND_DOCUMENT(opts.get(), "resumeAfter", &token);
    stream_ptr resumed(mongoc_collection_watch(col.get(), json("{}").get(), opts.get()));
    const bson_t* doc;
    EXPECT_FALSE(mongoc_change_stream_next(resumed.get(), &doc));
    bson_error_t err;
    const bson_t* reply;
    ASSERT_TRUE(mongoc_change_stream_error_document(resumed.get(), &err, &reply));
    EXPECT_EQ(err.code, 286u);
    EXPECT_EQ(str(reply, "codeName"), "ChangeStreamHistoryLost");

    // The open stream fell behind the truncation too: its next getMore fails the same way.
    EXPECT_FALSE(mongoc_change_stream_next(cs.get(), &doc));
    ASSERT_TRUE(mongoc_change_stream_error_document(cs.get(), &err, &reply));
    EXPECT_EQ(err.code, 286u);
}

TEST_F(MongosimTest, AwaitDataGetMoreWakesOnInsert) {
    auto c = client();
    auto col = coll(c.get(), "db", "wake");
    auto cs = watch(col.get(), R"({"maxAwaitTimeMS": 5000})");
    std::thread writer([&] {
        std::this_thread::sleep_for(200ms);
        auto c2 = client();
        auto col2 = coll(c2.get(), "db", "wake");
        insert(col2.get(), R"({"_id": 1})");
    });
    const auto start = std::chrono::steady_clock::now();
    auto ev = events(cs.get(), 1);
    const auto took = std::chrono::steady_clock::now() - start;
    writer.join();
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_LT(took, 2s);
    EXPECT_GE(took, 150ms);
}

TEST_F(MongosimTest, FailCommandMakesTheDriverResume) {
    auto c = client();
    auto col = coll(c.get(), "db", "fp");
    auto cs = watch(col.get());
    insert(col.get(), R"({"_id": 1})");
    command(c.get(), "admin",
            R"({"configureFailPoint": "failCommand", "mode": {"times": 1},
                "data": {"failCommands": ["getMore"], "errorCode": 10107}})");
    insert(col.get(), R"({"_id": 2})");
    // The driver sees a resumable error (NotWritablePrimary, labelled
    // ResumableChangeStreamError), resumes from its cached token and misses nothing.
    auto ev = events(cs.get(), 2);
    ASSERT_EQ(ev.size(), 2u);
    EXPECT_EQ(num(ev[0].get(), "documentKey._id"), 1);
    EXPECT_EQ(num(ev[1].get(), "documentKey._id"), 2);

    command(c.get(), "admin",
            R"({"configureFailPoint": "failCommand", "mode": {"times": 1},
                "data": {"failCommands": ["ping"], "errorCode": 91, "errorLabels": ["X"]}})");
    bson_error_t err;
    auto reply = command(c.get(), "admin", R"({"ping": 1})", &err);
    EXPECT_EQ(err.code, 91u);
    EXPECT_EQ(str(reply.get(), "errorLabels.0"), "X");
    command(c.get(), "admin", R"({"ping": 1})");  // times: 1 is used up

    command(c.get(), "admin",
            R"({"configureFailPoint": "failCommand", "mode": {"times": 1},
                "data": {"failCommands": ["find"], "closeConnection": true}})");
    auto strict = client("&retryReads=false");  // so the driver reports the network error
    auto strict_col = coll(strict.get(), "db", "fp");
    cursor_ptr cur(
        mongoc_collection_find_with_opts(strict_col.get(), json("{}").get(), nullptr, nullptr));
    const bson_t* doc;
    EXPECT_FALSE(mongoc_cursor_next(cur.get(), &doc));
    EXPECT_TRUE(mongoc_cursor_error(cur.get(), &err));
    EXPECT_EQ(err.domain, static_cast<std::uint32_t>(MONGOC_ERROR_STREAM));
    command(strict.get(), "admin", R"({"ping": 1})");  // the client reconnects
}

TEST_F(MongosimTest, UnknownCommandIsCommandNotFound) {
    auto c = client();
    bson_error_t err;
    auto reply = command(c.get(), "admin", R"({"frobnicate": 1})", &err);
    EXPECT_EQ(err.code, 59u);
    EXPECT_EQ(str(reply.get(), "codeName"), "CommandNotFound");
}

// ---------------------------------------------------------------------------------------------
// Raw wire: bad input closes the connection and nothing else.

class raw_socket {
public:
    explicit raw_socket(std::uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        EXPECT_EQ(::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
        timeval tv{5, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    ~raw_socket() { ::close(fd_); }
    void send(const std::vector<std::uint8_t>& b) {
        ASSERT_EQ(::send(fd_, b.data(), b.size(), MSG_NOSIGNAL), static_cast<ssize_t>(b.size()));
    }
    // Reads one reply message; empty when the server closed the connection.
    std::vector<std::uint8_t> receive() {
        std::vector<std::uint8_t> out(16);
        if (!read_exact(out.data(), 16))
            return {};
        std::int32_t len;
        std::memcpy(&len, out.data(), 4);
        out.resize(static_cast<std::size_t>(len));
        if (!read_exact(out.data() + 16, out.size() - 16))
            return {};
        return out;
    }

private:
    bool read_exact(std::uint8_t* p, std::size_t n) {
        while (n > 0) {
            ssize_t r = ::recv(fd_, p, n, 0);
            if (r <= 0)
                return false;
            p += r;
            n -= static_cast<std::size_t>(r);
        }
        return true;
    }
    int fd_;
};

std::vector<std::uint8_t> op_msg(std::int32_t request_id, const std::string& cmd,
                                 std::uint32_t flags = 0) {
    bson_ptr doc = json(cmd);
    std::vector<std::uint8_t> m(16 + 4 + 1);
    std::int32_t op = mongosim::op_msg;
    std::memcpy(m.data() + 4, &request_id, 4);
    std::memcpy(m.data() + 12, &op, 4);
    std::memcpy(m.data() + 16, &flags, 4);
    m.insert(m.end(), bson_get_data(doc.get()), bson_get_data(doc.get()) + doc->len);
    if (flags & mongosim::flag_checksum_present)
        m.resize(m.size() + 4);
    auto len = static_cast<std::int32_t>(m.size());
    std::memcpy(m.data(), &len, 4);
    if (flags & mongosim::flag_checksum_present) {
        std::uint32_t crc = mongosim::crc32c({m.data(), m.size() - 4});
        std::memcpy(m.data() + m.size() - 4, &crc, 4);
    }
    return m;
}

bson_ptr reply_body(const std::vector<std::uint8_t>& msg) {
    bson_t view;
    EXPECT_GT(msg.size(), 21u);
    EXPECT_TRUE(bson_init_static(&view, msg.data() + 21, msg.size() - 21));
    return bson_ptr(bson_copy(&view));
}

TEST_F(MongosimTest, MalformedMessagesCloseOnlyThatConnection) {
    {
        raw_socket s(server_->port());
        s.send({5, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});  // length 5 < header
        EXPECT_TRUE(s.receive().empty());
    }
    {
        raw_socket s(server_->port());
        auto m = op_msg(1, R"({"ping": 1, "$db": "admin"})");
        m[21] = 0x7F;  // corrupt the BSON length
        s.send(m);
        EXPECT_TRUE(s.receive().empty());
    }
    {
        raw_socket s(server_->port());
        auto m = op_msg(1, R"({"ping": 1, "$db": "admin"})", mongosim::flag_checksum_present);
        m.back() ^= 1;
        s.send(m);
        EXPECT_TRUE(s.receive().empty());
    }
    // The server is fine, and a checksummed message is accepted.
    raw_socket s(server_->port());
    s.send(op_msg(41, R"({"ping": 1, "$db": "admin"})", mongosim::flag_checksum_present));
    auto r = s.receive();
    ASSERT_FALSE(r.empty());
    std::int32_t response_to;
    std::memcpy(&response_to, r.data() + 8, 4);
    EXPECT_EQ(response_to, 41);
    EXPECT_EQ(num(reply_body(r).get(), "ok"), 1);

    // moreToCome: no reply at all; the next request's reply is the next thing on the wire.
    s.send(op_msg(42, R"({"endSessions": [], "$db": "admin"})", mongosim::flag_more_to_come));
    s.send(op_msg(43, R"({"ping": 1, "$db": "admin"})"));
    r = s.receive();
    ASSERT_FALSE(r.empty());
    std::memcpy(&response_to, r.data() + 8, 4);
    EXPECT_EQ(response_to, 43);

    // A command without $db is an error reply, not a crash.
    s.send(op_msg(44, R"({"ping": 1})"));
    r = s.receive();
    ASSERT_FALSE(r.empty());
    EXPECT_EQ(num(reply_body(r).get(), "code"), 40571);
}

TEST_F(MongosimTest, AwaitableHelloWaitsOutMaxAwaitTime) {
    raw_socket s(server_->port());
    s.send(op_msg(1, R"({"hello": 1, "$db": "admin"})"));
    auto first = reply_body(s.receive());
    bson_iter_t it;
    ASSERT_TRUE(bson_iter_init_find(&it, first.get(), "topologyVersion"));
    bson_ptr cmd = json(R"({"hello": 1, "maxAwaitTimeMS": 300, "$db": "admin"})");
    bson_append_value(cmd.get(), "topologyVersion", -1, bson_iter_value(&it));
    std::vector<std::uint8_t> m(21);
    std::int32_t id = 2, op = mongosim::op_msg;
    std::uint32_t flags = mongosim::flag_exhaust_allowed;
    std::memcpy(m.data() + 4, &id, 4);
    std::memcpy(m.data() + 12, &op, 4);
    std::memcpy(m.data() + 16, &flags, 4);
    m.insert(m.end(), bson_get_data(cmd.get()), bson_get_data(cmd.get()) + cmd->len);
    auto len = static_cast<std::int32_t>(m.size());
    std::memcpy(m.data(), &len, 4);
    const auto start = std::chrono::steady_clock::now();
    s.send(m);
    auto second = reply_body(s.receive());
    const auto took = std::chrono::steady_clock::now() - start;
    EXPECT_GE(took, 280ms);
    EXPECT_LT(took, 2s);
    EXPECT_EQ(num(second.get(), "ok"), 1);
}

// ---------------------------------------------------------------------------------------------
// Issue #3's libmongoc list: every event field at every level, resume through
// mongoc_change_stream_get_resume_token, a pooled client busy and healthy for 30 s, the error
// document of a refused pipeline, and the helpers drivers build on (distinct, findAndModify,
// retryable writes answered once).

// Checks the fields of one event as MongoDB 7.0 gives them.
void expect_event_shape(const bson_t* e, const std::string& op, const char* db,
                        const std::string& coll, std::int64_t id) {
    SCOPED_TRACE(relaxed(e));
    const std::string token = token_of(e);
    EXPECT_FALSE(token.empty());
    EXPECT_EQ(token.find_first_not_of("0123456789ABCDEFabcdef"), std::string::npos);
    EXPECT_EQ(str(e, "operationType"), op);
    bson_iter_t it;
    EXPECT_TRUE(bson_iter_init_find(&it, e, "clusterTime") && BSON_ITER_HOLDS_TIMESTAMP(&it));
    EXPECT_TRUE(bson_iter_init_find(&it, e, "wallTime") && BSON_ITER_HOLDS_DATE_TIME(&it));
    EXPECT_EQ(str(e, "ns.db"), db);
    EXPECT_EQ(str(e, "ns.coll"), coll);
    EXPECT_EQ(num(e, "documentKey._id"), id);
    EXPECT_EQ(has(e, "fullDocument"), op == "insert");
    EXPECT_EQ(has(e, "updateDescription"), op == "update");
}

std::string token_of_token(const bson_t* token) {
    return str(token, "_data");
}

bson_ptr resume_token(mongoc_change_stream_t* cs) {
    const bson_t* t = mongoc_change_stream_get_resume_token(cs);
    EXPECT_NE(t, nullptr);
    return bson_ptr(t ? bson_copy(t) : bson_new());
}

TEST_F(MongosimTest, EveryLevelResumesFromGetResumeToken) {
    auto c = client();
    mongoc_database_t* db = mongoc_client_get_database(c.get(), "levels");
    auto a = coll(c.get(), "levels", "a");
    auto b = coll(c.get(), "levels", "b");
    for (const std::string level : {"collection", "database", "cluster"}) {
        SCOPED_TRACE(level);
        auto open = [&](const bson_t* extra) {
            const bson_ptr pipeline = json("{}");
            bson_ptr o = with_await("{}");
            if (extra)
                bson_concat(o.get(), extra);
            if (level == "collection")
                return stream_ptr(mongoc_collection_watch(a.get(), pipeline.get(), o.get()));
            if (level == "database")
                return stream_ptr(mongoc_database_watch(db, pipeline.get(), o.get()));
            return stream_ptr(mongoc_client_watch(c.get(), pipeline.get(), o.get()));
        };
        const std::int64_t base = level == "collection" ? 100 : level == "database" ? 200 : 300;
        auto id = [&](int k) { return "{\"_id\": " + std::to_string(base + k) + "}"; };
        struct want {
            std::string op, coll;
            int k;
        };
        std::vector<want> expected = {{"insert", "a", 1}, {"insert", "b", 1}, {"update", "a", 1},
                                      {"delete", "a", 1}, {"insert", "a", 2}, {"insert", "a", 3}};
        if (level == "collection")
            std::erase_if(expected, [](const want& w) { return w.coll == "b"; });

        auto cs = open(nullptr);
        bson_error_t err;
        insert(a.get(), id(1));
        insert(b.get(), id(1));
        ASSERT_TRUE(mongoc_collection_update_one(a.get(), json(id(1)).get(),
                                                 json(R"({"$set": {"v": 1}})").get(), nullptr,
                                                 nullptr, &err))
            << err.message;
        ASSERT_TRUE(
            mongoc_collection_delete_one(a.get(), json(id(1)).get(), nullptr, nullptr, &err))
            << err.message;
        insert(a.get(), id(2));
        // Read all but the last write, keep the driver's resume token, close the stream.
        const std::size_t cut = expected.size() - 2;
        auto head = events(cs.get(), cut);
        ASSERT_EQ(head.size(), cut);
        for (std::size_t i = 0; i < cut; ++i)
            expect_event_shape(head[i].get(), expected[i].op, "levels", expected[i].coll,
                               base + expected[i].k);
        const std::size_t upd = level == "collection" ? 1 : 2;
        EXPECT_EQ(num(head[upd].get(), "updateDescription.updatedFields.v"), 1);
        EXPECT_EQ(str(head[upd].get(), "updateDescription.removedFields.0"), "");
        bson_ptr token = resume_token(cs.get());
        EXPECT_EQ(relaxed(token.get()),
                  relaxed(json("{\"_data\": \"" + token_of(head.back().get()) + "\"}").get()));
        cs.reset();
        insert(a.get(), id(3));  // while no stream is open

        bson_ptr opts = mongosim::make_bson();
        BSON_APPEND_DOCUMENT(opts.get(), "resumeAfter", token.get());
        auto resumed = open(opts.get());
        auto rest = events(resumed.get(), 2);
        ASSERT_EQ(rest.size(), 2u);
        std::string previous = token_of(head.back().get());
        for (std::size_t i = 0; i < rest.size(); ++i) {
            const want& w = expected[cut + i];
            expect_event_shape(rest[i].get(), w.op, "levels", w.coll, base + w.k);
            EXPECT_LT(previous, token_of(rest[i].get()));
            previous = token_of(rest[i].get());
        }
        // Past the last event the token is the batch's postBatchResumeToken: resuming from it
        // gives nothing old, then the next write.
        const bson_t* doc;
        EXPECT_FALSE(mongoc_change_stream_next(resumed.get(), &doc));
        expect_no_error(resumed.get());
        bson_ptr idle = resume_token(resumed.get());
        EXPECT_TRUE(bson_has_field(idle.get(), "_data"));
        EXPECT_GE(token_of_token(idle.get()), previous);
        resumed.reset();
        bson_ptr idle_opts = mongosim::make_bson();
        BSON_APPEND_DOCUMENT(idle_opts.get(), "resumeAfter", idle.get());
        auto quiet = open(idle_opts.get());
        insert(a.get(), id(4));
        auto last = events(quiet.get(), 1);
        ASSERT_EQ(last.size(), 1u);
        expect_event_shape(last[0].get(), "insert", "levels", "a", base + 4);
    }
    mongoc_database_destroy(db);
}

// A pooled client whose monitors use awaitable hellos, worked by two threads for 30 s: every
// operation succeeds (server selection never fails), no heartbeat fails, the server stays an
// RSPrimary, and each awaited heartbeat is answered within maxAwaitTimeMS (the heartbeat
// frequency) plus scheduling slack.
struct pool_health {
    std::atomic<int> heartbeats_ok{0}, heartbeats_awaited{0}, heartbeats_failed{0};
    std::atomic<std::int64_t> longest_awaited_us{0};
    std::atomic<int> not_primary{0};
    // Set once the work is done: destroying the pool cancels the monitors' in-flight hellos,
    // which libmongoc reports as failed heartbeats.
    std::atomic<bool> closing{false};
    std::mutex m;
    std::vector<std::string> failures;
};

TEST_F(MongosimTest, PooledClientStaysHealthyForThirtySeconds) {
    constexpr int heartbeat_ms = 500;
    mongoc_uri_t* u =
        mongoc_uri_new((uri() + "&heartbeatFrequencyMS=" + std::to_string(heartbeat_ms)).c_str());
    mongoc_client_pool_t* pool = mongoc_client_pool_new(u);
    mongoc_client_pool_set_error_api(pool, MONGOC_ERROR_API_VERSION_2);
    pool_health health;
    mongoc_apm_callbacks_t* cbs = mongoc_apm_callbacks_new();
    mongoc_apm_set_server_heartbeat_succeeded_cb(
        cbs, [](const mongoc_apm_server_heartbeat_succeeded_t* e) {
            auto* h =
                static_cast<pool_health*>(mongoc_apm_server_heartbeat_succeeded_get_context(e));
            ++h->heartbeats_ok;
            if (mongoc_apm_server_heartbeat_succeeded_get_awaited(e)) {
                ++h->heartbeats_awaited;
                const std::int64_t us = mongoc_apm_server_heartbeat_succeeded_get_duration(e);
                std::int64_t prev = h->longest_awaited_us.load();
                while (us > prev && !h->longest_awaited_us.compare_exchange_weak(prev, us)) {
                }
            }
        });
    mongoc_apm_set_server_heartbeat_failed_cb(
        cbs, [](const mongoc_apm_server_heartbeat_failed_t* e) {
            auto* h = static_cast<pool_health*>(mongoc_apm_server_heartbeat_failed_get_context(e));
            if (h->closing)
                return;
            ++h->heartbeats_failed;
            bson_error_t err;
            mongoc_apm_server_heartbeat_failed_get_error(e, &err);
            std::lock_guard lock(h->m);
            h->failures.push_back(
                "heartbeat failed after " +
                std::to_string(mongoc_apm_server_heartbeat_failed_get_duration(e)) +
                " us (awaited: " +
                std::to_string(mongoc_apm_server_heartbeat_failed_get_awaited(e)) +
                "): " + err.message);
        });
    mongoc_apm_set_server_changed_cb(cbs, [](const mongoc_apm_server_changed_t* e) {
        auto* h = static_cast<pool_health*>(mongoc_apm_server_changed_get_context(e));
        const mongoc_server_description_t* sd = mongoc_apm_server_changed_get_new_description(e);
        if (std::string(mongoc_server_description_type(sd)) != "RSPrimary")
            ++h->not_primary;
    });
    ASSERT_TRUE(mongoc_client_pool_set_apm_callbacks(pool, cbs, &health));

    const auto until = std::chrono::steady_clock::now() + 30s;
    std::atomic<int> ops{0};
    auto fail = [&](const std::string& what) {
        std::lock_guard lock(health.m);
        health.failures.push_back(what);
    };
    // The change stream opens before the first write.
    mongoc_client_t* watching = mongoc_client_pool_pop(pool);
    auto watched_col = coll(watching, "pool", "work");
    auto cs = watch(watched_col.get(), R"({"maxAwaitTimeMS": 200})");
    // Writer: inserts and reads back, selecting the primary each time.
    std::thread writer([&] {
        mongoc_client_t* c = mongoc_client_pool_pop(pool);
        auto col = coll(c, "pool", "work");
        for (int i = 0; std::chrono::steady_clock::now() < until; ++i) {
            bson_error_t err;
            mongoc_server_description_t* sd = mongoc_client_select_server(c, true, nullptr, &err);
            if (!sd) {
                fail(std::string("server selection: ") + err.message);
                break;
            }
            mongoc_server_description_destroy(sd);
            bson_ptr doc = json("{\"_id\": " + std::to_string(i) + "}");
            if (!mongoc_collection_insert_one(col.get(), doc.get(), nullptr, nullptr, &err)) {
                fail(std::string("insert: ") + err.message);
                break;
            }
            if (mongoc_collection_count_documents(col.get(), doc.get(), nullptr, nullptr, nullptr,
                                                  &err) != 1) {
                fail(std::string("count: ") + err.message);
                break;
            }
            ++ops;
            std::this_thread::sleep_for(20ms);
        }
        col.reset();
        mongoc_client_pool_push(pool, c);
    });
    // Watcher: a change stream on the same collection sees every insert, in order.
    int watched = 0;
    std::thread watcher([&] {
        const auto stop = until + 5s;
        while (std::chrono::steady_clock::now() < stop) {
            const bson_t* e;
            if (mongoc_change_stream_next(cs.get(), &e)) {
                if (num(e, "documentKey._id") != watched) {
                    fail("event out of order: " + relaxed(e));
                    break;
                }
                ++watched;
                continue;
            }
            bson_error_t err;
            const bson_t* reply;
            if (mongoc_change_stream_error_document(cs.get(), &err, &reply)) {
                fail(std::string("change stream: ") + err.message);
                break;
            }
            if (std::chrono::steady_clock::now() > until && watched == ops.load())
                break;
        }
        cs.reset();
        watched_col.reset();
        mongoc_client_pool_push(pool, watching);
    });
    writer.join();
    watcher.join();
    health.closing = true;
    mongoc_client_pool_destroy(pool);
    mongoc_apm_callbacks_destroy(cbs);
    mongoc_uri_destroy(u);

    for (const auto& f : health.failures)
        ADD_FAILURE() << f;
    EXPECT_GT(ops.load(), 300);  // ~30 s of 20 ms pauses, minus the work itself
    EXPECT_EQ(watched, ops.load());
    EXPECT_EQ(health.heartbeats_failed.load(), 0);
    EXPECT_EQ(health.not_primary.load(), 0);
    // 30 s of awaitable hellos held for 500 ms each.
    EXPECT_GE(health.heartbeats_awaited.load(), 30);
    EXPECT_LT(health.longest_awaited_us.load(), (heartbeat_ms + 1000) * 1000);
}

TEST_F(MongosimTest, RefusedPipelineFillsTheErrorDocument) {
    auto c = client();
    auto col = coll(c.get(), "db", "bad");
    auto unknown = watch(col.get(), "{}", R"({"pipeline": [{"$bogus": 1}]})");
    const bson_t* doc;
    EXPECT_FALSE(mongoc_change_stream_next(unknown.get(), &doc));
    bson_error_t err;
    const bson_t* reply = nullptr;
    ASSERT_TRUE(mongoc_change_stream_error_document(unknown.get(), &err, &reply));
    EXPECT_EQ(err.code, 40324u);  // Unrecognized pipeline stage name
    ASSERT_NE(reply, nullptr);
    EXPECT_EQ(num(reply, "ok"), 0);
    EXPECT_EQ(num(reply, "code"), 40324);
    EXPECT_NE(str(reply, "errmsg").find("$bogus"), std::string::npos) << relaxed(reply);

    // Removing the resume token is refused when the first event is produced.
    auto no_id = watch(col.get(), "{}", R"({"pipeline": [{"$project": {"_id": 0}}]})");
    insert(col.get(), R"({"_id": 1})");
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    bool failed = false;
    while (!failed && std::chrono::steady_clock::now() < deadline) {
        ASSERT_FALSE(mongoc_change_stream_next(no_id.get(), &doc)) << relaxed(doc);
        failed = mongoc_change_stream_error_document(no_id.get(), &err, &reply);
    }
    ASSERT_TRUE(failed);
    EXPECT_EQ(err.code, 280u);  // ChangeStreamFatalError
    EXPECT_EQ(str(reply, "codeName"), "ChangeStreamFatalError");
}

TEST_F(MongosimTest, DistinctAndFindAndModify) {
    auto c = client();
    auto col = coll(c.get(), "db", "helpers");
    for (int i = 0; i < 6; ++i)
        insert(col.get(), "{\"_id\": " + std::to_string(i) + ", \"n\": " + std::to_string(i % 3) +
                              ", \"tags\": [\"t" + std::to_string(i % 2) +
                              "\", \"all\"], \"sub\": {\"k\": " + std::to_string(i % 2) + "}}");
    auto distinct = [&](const std::string& cmd) {
        bson_t reply;
        bson_error_t err;
        EXPECT_TRUE(mongoc_collection_read_command_with_opts(col.get(), json(cmd).get(), nullptr,
                                                             nullptr, &reply, &err))
            << err.message;
        bson_ptr out(bson_copy(&reply));
        bson_destroy(&reply);
        return relaxed(out.get());
    };
    // Sorted, unique, arrays unwound, dotted paths, filtered.
    EXPECT_NE(distinct(R"({"distinct": "helpers", "key": "n"})").find(R"("values" : [ 0, 1, 2 ])"),
              std::string::npos);
    EXPECT_NE(distinct(R"({"distinct": "helpers", "key": "tags"})")
                  .find(R"("values" : [ "all", "t0", "t1" ])"),
              std::string::npos);
    EXPECT_NE(distinct(R"({"distinct": "helpers", "key": "_id", "query": {"sub.k": 1}})")
                  .find(R"("values" : [ 1, 3, 5 ])"),
              std::string::npos);
    bson_error_t err;
    auto missing = command(c.get(), "db", R"({"distinct": "helpers"})", &err);
    EXPECT_EQ(err.code, 40414u);

    mongoc_find_and_modify_opts_t* fam = mongoc_find_and_modify_opts_new();
    mongoc_find_and_modify_opts_set_update(fam, json(R"({"$inc": {"n": 10}})").get());
    mongoc_find_and_modify_opts_set_sort(fam, json(R"({"_id": -1})").get());
    mongoc_find_and_modify_opts_set_flags(fam, MONGOC_FIND_AND_MODIFY_RETURN_NEW);
    bson_t reply;
    ASSERT_TRUE(mongoc_collection_find_and_modify_with_opts(col.get(), json(R"({"n": 1})").get(),
                                                            fam, &reply, &err))
        << err.message;
    EXPECT_EQ(num(&reply, "value._id"), 4);
    EXPECT_EQ(num(&reply, "value.n"), 11);
    EXPECT_EQ(num(&reply, "lastErrorObject.n"), 1);
    bson_destroy(&reply);
    mongoc_find_and_modify_opts_destroy(fam);

    fam = mongoc_find_and_modify_opts_new();
    mongoc_find_and_modify_opts_set_flags(fam, MONGOC_FIND_AND_MODIFY_REMOVE);
    ASSERT_TRUE(mongoc_collection_find_and_modify_with_opts(col.get(), json(R"({"_id": 0})").get(),
                                                            fam, &reply, &err))
        << err.message;
    EXPECT_EQ(num(&reply, "value._id"), 0);
    bson_destroy(&reply);
    mongoc_find_and_modify_opts_destroy(fam);
    EXPECT_EQ(mongoc_collection_count_documents(col.get(), json("{}").get(), nullptr, nullptr,
                                                nullptr, &err),
              5);
}

// A retried write (same lsid and txnNumber) is answered from the session table without being
// applied again; an older txnNumber is TransactionTooOld. On the wire, as a driver retries.
TEST_F(MongosimTest, RetriedWriteIsAppliedOnce) {
    raw_socket s(server_->port());
    const std::string lsid =
        R"("lsid": {"id": {"$binary": {"base64": "AAECAwQFBgcICQoLDA0ODw==", "subType": "04"}}})";
    auto send = [&](std::int32_t rid, const std::string& body) {
        s.send(op_msg(rid, body));
        return reply_body(s.receive());
    };
    const std::string inc =
        R"({"update": "c", "updates": [{"q": {"_id": 1}, "u": {"$inc": {"n": 1}}, "upsert": true}], )" +
        lsid;
    auto first = send(1, inc + R"(, "txnNumber": {"$numberLong": "5"}, "$db": "retry"})");
    EXPECT_EQ(num(first.get(), "ok"), 1);
    EXPECT_EQ(num(first.get(), "n"), 1);
    EXPECT_TRUE(has(first.get(), "upserted"));
    auto again = send(2, inc + R"(, "txnNumber": {"$numberLong": "5"}, "$db": "retry"})");
    EXPECT_EQ(num(again.get(), "ok"), 1);
    EXPECT_EQ(num(again.get(), "n"), 1);
    EXPECT_TRUE(has(again.get(), "upserted")) << "the first execution's reply";
    EXPECT_TRUE(has(again.get(), "operationTime"));
    auto next = send(3, inc + R"(, "txnNumber": {"$numberLong": "6"}, "$db": "retry"})");
    EXPECT_EQ(num(next.get(), "nModified"), 1);
    auto old = send(4, inc + R"(, "txnNumber": {"$numberLong": "5"}, "$db": "retry"})");
    EXPECT_EQ(num(old.get(), "ok"), 0);
    EXPECT_EQ(num(old.get(), "code"), 225);
    EXPECT_EQ(str(old.get(), "codeName"), "TransactionTooOld");
    // Without txnNumber nothing is remembered: the same command applies again.
    auto plain = send(5, inc + R"(, "$db": "retry"})");
    EXPECT_EQ(num(plain.get(), "nModified"), 1);
    auto found = send(6, R"({"find": "c", "filter": {"_id": 1}, "$db": "retry"})");
    EXPECT_EQ(num(found.get(), "cursor.firstBatch.0.n"), 3) << relaxed(found.get());

    // A driver's own retry after a retryable writeConcernError (libmongoc retries writes).
    auto c = client("&retryWrites=true");
    command(c.get(), "admin",
            R"({"configureFailPoint": "failCommand", "mode": {"times": 1},
                "data": {"failCommands": ["insert"],
                         "writeConcernError": {"code": 91, "errmsg": "Replication is being shut down"}}})");
    auto col = coll(c.get(), "retry", "d");
    bson_error_t err;
    bson_t reply;
    EXPECT_TRUE(
        mongoc_collection_insert_one(col.get(), json(R"({"_id": 1})").get(), nullptr, &reply, &err))
        << err.message << " " << relaxed(&reply);
    bson_destroy(&reply);
    EXPECT_EQ(mongoc_collection_count_documents(col.get(), json("{}").get(), nullptr, nullptr,
                                                nullptr, &err),
              1);
}

// The session table on its own: which commands take part, what a replay returns, eviction.
TEST(RetryableWriteTable, IdentifiesRemembersAndEvicts) {
    using mongosim::retryable_write_table;
    const std::string lsid =
        R"("lsid": {"id": {"$binary": {"base64": "AAECAwQFBgcICQoLDA0ODw==", "subType": "04"}}})";
    auto cmd = [&](const std::string& name, int txn, const std::string& extra = "") {
        return json("{\"" + name + "\": \"c\", " + lsid +
                    ", \"txnNumber\": " + std::to_string(txn) + extra + "}");
    };
    EXPECT_TRUE(retryable_write_table::identify("insert", *cmd("insert", 1)));
    EXPECT_TRUE(retryable_write_table::identify("findAndModify", *cmd("findAndModify", 1)));
    EXPECT_FALSE(retryable_write_table::identify("find", *cmd("find", 1)));
    // Inside a transaction, or without a txnNumber, a write is not a retryable write.
    EXPECT_FALSE(
        retryable_write_table::identify("insert", *cmd("insert", 1, R"(, "autocommit": false)")));
    EXPECT_FALSE(
        retryable_write_table::identify("insert", *json("{\"insert\": \"c\", " + lsid + "}")));

    retryable_write_table table(10);
    const auto id = *retryable_write_table::identify("insert", *cmd("insert", 7));
    EXPECT_EQ(table.check(id).what, retryable_write_table::verdict::execute);
    table.remember(id,
                   *json(R"({"n": 1, "ok": 1.0, "operationTime": {"$timestamp": {"t": 1, "i": 1}},
                                 "errorLabels": ["X"], "writeConcernError": {"code": 91}})"));
    const auto again = table.check(id);
    ASSERT_EQ(again.what, retryable_write_table::verdict::replay);
    EXPECT_EQ(relaxed(again.reply), R"({ "n" : 1 })");  // only the command's own fields
    auto older = id;
    older.txn_number = 6;
    EXPECT_EQ(table.check(older).what, retryable_write_table::verdict::too_old);
    EXPECT_EQ(table.check(older).latest, 7);
    auto newer = id;
    newer.txn_number = 8;
    EXPECT_EQ(table.check(newer).what, retryable_write_table::verdict::execute);

    // Over capacity, the least recently used sessions go first.
    for (int i = 0; i < 10; ++i) {
        auto other = id;
        other.session += static_cast<char>('a' + i);
        table.remember(other, *json(R"({"n": 1})"));
        if (i == 0)
            table.check(id);  // used again: kept
    }
    EXPECT_EQ(table.size(), 10u);
    EXPECT_EQ(table.check(id).what, retryable_write_table::verdict::replay);
    auto first_other = id;
    first_other.session += 'a';
    EXPECT_EQ(table.check(first_other).what, retryable_write_table::verdict::execute);
}

// ---------------------------------------------------------------------------------------------
// The executable

TEST(MongosimExecutable, PrintsItsPortServesAndExitsOnSigterm) {
    int out[2];
    ASSERT_EQ(::pipe(out), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        ::dup2(out[1], 1);
        ::close(out[0]);
        ::close(out[1]);
        ::execl(MONGOSIM_EXECUTABLE, "mongosim", "--port", "0", static_cast<char*>(nullptr));
        ::_exit(127);
    }
    ::close(out[1]);
    std::string line;
    char ch;
    while (::read(out[0], &ch, 1) == 1 && ch != '\n')
        line += ch;
    ::close(out[0]);
    const std::string prefix = "mongosim listening on 127.0.0.1:";
    ASSERT_EQ(line.rfind(prefix, 0), 0u) << line;
    const std::string port = line.substr(prefix.size());
    {
        client_ptr c(mongoc_client_new(
            ("mongodb://127.0.0.1:" + port + "/?replicaSet=rs0&serverSelectionTimeoutMS=3000")
                .c_str()));
        bson_t reply;
        bson_error_t err;
        EXPECT_TRUE(mongoc_client_command_simple(c.get(), "admin", json(R"({"ping": 1})").get(),
                                                 nullptr, &reply, &err))
            << err.message;
        bson_destroy(&reply);
    }
    ASSERT_EQ(::kill(pid, SIGTERM), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
