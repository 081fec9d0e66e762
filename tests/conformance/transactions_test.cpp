// Multi-document transactions and the byte-bounded oplog of mongosim, judged by real clients
// against the executable. libmongoc 1.23 (mongoc_client_session_start_transaction / commit /
// abort): a committed transaction's change events appear only after the commit, all at one
// clusterTime, with lsid {id, uid} and txnNumber, in operation order and with strictly ordered
// tokens; a stream resumed from a token in the middle of the transaction gets the rest of it;
// reads inside the transaction see its own writes and nobody else does; an aborted one leaves
// no event and the data exactly as before; mongod's transaction errors (NoSuchTransaction 251
// with TransientTransactionError, TransactionCommitted 256, TransactionTooOld 225, an
// idempotent commit retry); endSessions and a step-down abort open transactions; a write
// conflict. --oplog-size-mb N: resuming from a token that fell off gives
// ChangeStreamHistoryLost (286). The npm mongodb 7.x driver runs transactions.js
// (session.withTransaction, abort, the driver's retry of commitTransaction).

#include <mongosim/bson.hpp>

#include <process.hpp>
#include <temp_dir.hpp>

#include <mongoc/mongoc.h>

#include <gtest/gtest.h>

#include "mongoc_support.hpp"

#include <chrono>
#include <csignal>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using namespace mongosim_test;

[[maybe_unused]] auto* const env = ::testing::AddGlobalTestEnvironment(new mongoc_environment);

bool find(const bson_t* doc, const char* path, bson_iter_t& out) {
    bson_iter_t it;
    return bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, path, &out);
}

std::string str(const bson_t* doc, const char* path) {
    bson_iter_t f;
    return find(doc, path, f) && BSON_ITER_HOLDS_UTF8(&f) ? bson_iter_utf8(&f, nullptr) : "";
}

std::int64_t num(const bson_t* doc, const char* path) {
    bson_iter_t f;
    return find(doc, path, f) ? bson_iter_as_int64(&f) : -999;
}

std::string token(const bson_t* event) {
    return str(event, "_id._data");
}

std::pair<std::uint32_t, std::uint32_t> cluster_time(const bson_t* event) {
    bson_iter_t f;
    std::uint32_t t = 0, i = 0;
    if (find(event, "clusterTime", f) && BSON_ITER_HOLDS_TIMESTAMP(&f))
        bson_iter_timestamp(&f, &t, &i);
    return {t, i};
}

// The bytes of a binary field.
std::string binary(const bson_t* doc, const char* path, bson_subtype_t* subtype = nullptr) {
    bson_iter_t f;
    if (!find(doc, path, f) || !BSON_ITER_HOLDS_BINARY(&f))
        return {};
    bson_subtype_t st;
    std::uint32_t len;
    const std::uint8_t* data;
    bson_iter_binary(&f, &st, &len, &data);
    if (subtype)
        *subtype = st;
    return std::string(reinterpret_cast<const char*>(data), len);
}

std::vector<std::string> labels(const bson_t* reply) {
    std::vector<std::string> out;
    bson_iter_t f, el;
    if (!find(reply, "errorLabels", f) || !BSON_ITER_HOLDS_ARRAY(&f) || !bson_iter_recurse(&f, &el))
        return out;
    while (bson_iter_next(&el))
        out.emplace_back(bson_iter_utf8(&el, nullptr));
    return out;
}

// mongosim as an executable, and a libmongoc client of it.
class TransactionsTest : public ::testing::Test {
protected:
    void start(std::vector<std::string> extra = {}) {
        // Port 0: the simulator binds a free port itself and says which. A port picked here
        // and passed in could be taken by a parallel test before the simulator binds it.
        std::vector<std::string> args{MONGOSIM_EXECUTABLE, "--port", "0"};
        args.insert(args.end(), extra.begin(), extra.end());
        // A log per start: waiting for "listening" must not find the previous server's line.
        sim_ = std::make_unique<penne::test::process>(
            args, tmp_ / ("mongosim-" + std::to_string(++starts_) + ".log"));
        ASSERT_TRUE(sim_->wait_for_output("mongosim listening on", 10s)) << sim_->log();
        const std::string log = sim_->log();
        const std::string prefix = "mongosim listening on 127.0.0.1:";
        const auto at = log.find(prefix);
        ASSERT_NE(at, std::string::npos) << log;
        port_ = std::atoi(log.c_str() + at + prefix.size());
        ASSERT_GT(port_, 0) << log;
        client_ = client();
    }
    void SetUp() override { start(); }
    void TearDown() override { stop(); }
    void stop() {
        if (!sim_)
            return;
        client_.reset();
        sim_->signal(SIGTERM);
        EXPECT_EQ(sim_->wait(10s), 0) << sim_->log();
        sim_.reset();
    }

    std::string uri() const {
        return "mongodb://127.0.0.1:" + std::to_string(port_) +
               "/?replicaSet=rs0&serverSelectionTimeoutMS=5000";
    }
    client_ptr client() const {
        client_ptr c(mongoc_client_new(uri().c_str()));
        EXPECT_NE(c, nullptr);
        mongoc_client_set_error_api(c.get(), MONGOC_ERROR_API_VERSION_2);
        return c;
    }
    coll_ptr coll(const char* name, mongoc_client_t* c = nullptr) const {
        return coll_ptr(mongoc_client_get_collection(c ? c : client_.get(), "txn", name));
    }
    session_ptr session() const {
        bson_error_t err;
        session_ptr s(mongoc_client_start_session(client_.get(), nullptr, &err));
        EXPECT_NE(s, nullptr) << err.message;
        return s;
    }
    // {sessionId: ...} options that run an operation in the session.
    static bson_ptr in(mongoc_client_session_t* s) {
        bson_ptr opts = json("{}");
        bson_error_t err;
        EXPECT_TRUE(mongoc_client_session_append(s, opts.get(), &err)) << err.message;
        return opts;
    }
    static void start_transaction(mongoc_client_session_t* s) {
        bson_error_t err;
        ASSERT_TRUE(mongoc_client_session_start_transaction(s, nullptr, &err)) << err.message;
    }
    static void commit(mongoc_client_session_t* s) {
        bson_error_t err;
        bson_t reply;
        const bool ok = mongoc_client_session_commit_transaction(s, &reply, &err);
        EXPECT_TRUE(ok) << err.message << " " << relaxed(&reply);
        bson_destroy(&reply);
    }
    static void insert(mongoc_collection_t* c, const std::string& doc,
                       mongoc_client_session_t* s = nullptr) {
        bson_error_t err;
        bson_ptr opts = s ? in(s) : json("{}");
        ASSERT_TRUE(mongoc_collection_insert_one(c, json(doc).get(), opts.get(), nullptr, &err))
            << err.message;
    }
    static void update(mongoc_collection_t* c, const std::string& filter, const std::string& u,
                       mongoc_client_session_t* s = nullptr) {
        bson_error_t err;
        bson_ptr opts = s ? in(s) : json("{}");
        ASSERT_TRUE(mongoc_collection_update_one(c, json(filter).get(), json(u).get(), opts.get(),
                                                 nullptr, &err))
            << err.message;
    }
    static void remove(mongoc_collection_t* c, const std::string& filter,
                       mongoc_client_session_t* s = nullptr) {
        bson_error_t err;
        bson_ptr opts = s ? in(s) : json("{}");
        ASSERT_TRUE(mongoc_collection_delete_one(c, json(filter).get(), opts.get(), nullptr, &err))
            << err.message;
    }
    // Every document of the collection (by _id order of insertion), as relaxed JSON.
    static std::vector<std::string> all(mongoc_collection_t* c,
                                        mongoc_client_session_t* s = nullptr) {
        bson_ptr opts = s ? in(s) : json("{}");
        cursor_ptr cur(mongoc_collection_find_with_opts(c, json("{}").get(), opts.get(), nullptr));
        std::vector<std::string> out;
        const bson_t* doc;
        while (mongoc_cursor_next(cur.get(), &doc))
            out.push_back(relaxed(doc));
        bson_error_t err;
        EXPECT_FALSE(mongoc_cursor_error(cur.get(), &err)) << err.message;
        return out;
    }
    stream_ptr watch_db(const std::string& opts = "{\"maxAwaitTimeMS\": 300}") const {
        db_ptr db(mongoc_client_get_database(client_.get(), "txn"));
        return stream_ptr(mongoc_database_watch(db.get(), json("[]").get(), json(opts).get()));
    }
    // Reads exactly n events (fails on a stream error or after the timeout).
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
    // Polls the stream for a while and returns whatever arrived.
    static std::vector<bson_ptr> drain(mongoc_change_stream_t* cs, int polls = 3) {
        std::vector<bson_ptr> out;
        for (int k = 0; k < polls; ++k) {
            const bson_t* doc;
            while (mongoc_change_stream_next(cs, &doc))
                out.emplace_back(bson_copy(doc));
        }
        return out;
    }
    // A raw command; the reply (ok or not) is returned and `ok` says which.
    bson_ptr command(const std::string& cmd, bool& ok, const char* db = "txn") const {
        bson_t reply;
        bson_error_t err;
        ok =
            mongoc_client_command_simple(client_.get(), db, json(cmd).get(), nullptr, &reply, &err);
        bson_ptr out(bson_copy(&reply));
        bson_destroy(&reply);
        return out;
    }
    bson_ptr ok_command(const std::string& cmd, const char* db = "txn") const {
        bool ok = false;
        bson_ptr r = command(cmd, ok, db);
        EXPECT_TRUE(ok) << cmd << " -> " << relaxed(r.get());
        return r;
    }
    void expect_error(const std::string& cmd, int code, bool transient) const {
        bool ok = true;
        bson_ptr r = command(cmd, ok);
        EXPECT_FALSE(ok) << cmd;
        EXPECT_EQ(num(r.get(), "code"), code) << cmd << " -> " << relaxed(r.get());
        auto l = labels(r.get());
        const bool has = std::find(l.begin(), l.end(), "TransientTransactionError") != l.end();
        EXPECT_EQ(has, transient) << cmd << " -> " << relaxed(r.get());
    }

    penne::test::temp_dir tmp_{"mongosim-txn"};
    int port_ = 0;
    int starts_ = 0;
    std::unique_ptr<penne::test::process> sim_;
    client_ptr client_;
};

// A raw transaction command on session `lsid` (a UUID in hex).
std::string txn_cmd(const std::string& body, const std::string& lsid, int number,
                    bool start = false) {
    return "{" + body + ", \"lsid\": {\"id\": {\"$binary\": {\"base64\": \"" + lsid +
           "\", \"subType\": \"04\"}}}, \"txnNumber\": {\"$numberLong\": \"" +
           std::to_string(number) + "\"}, \"autocommit\": false" +
           (start ? ", \"startTransaction\": true" : "") + "}";
}

const std::string session_a = "AAAAAAAAAAAAAAAAAAAAAA==";
const std::string session_b = "EREREREREREREREREREREQ==";

TEST_F(TransactionsTest, CommittedEventsAppearOnlyAfterCommitAtOneClusterTime) {
    auto a = coll("a"), b = coll("b");
    auto cs = watch_db();
    insert(a.get(), R"({"_id": 0, "v": "before"})");
    ASSERT_EQ(events(cs.get(), 1).size(), 1u);  // the plain insert

    auto s = session();
    start_transaction(s.get());
    insert(a.get(), R"({"_id": 1, "v": 1})", s.get());
    insert(b.get(), R"({"_id": 2, "v": 2})", s.get());
    update(a.get(), R"({"_id": 0})", R"({"$set": {"v": "changed"}})", s.get());
    remove(b.get(), R"({"_id": 2})", s.get());

    // Nobody sees the transaction before the commit: not the stream, not another reader.
    EXPECT_TRUE(drain(cs.get()).empty());
    EXPECT_EQ(all(a.get()), std::vector<std::string>{R"({ "_id" : 0, "v" : "before" })"});
    // The transaction sees its own writes.
    EXPECT_EQ(all(a.get(), s.get()), (std::vector<std::string>{R"({ "_id" : 0, "v" : "changed" })",
                                                               R"({ "_id" : 1, "v" : 1 })"}));
    EXPECT_TRUE(all(b.get(), s.get()).empty());

    commit(s.get());
    auto evs = events(cs.get(), 4);
    ASSERT_EQ(evs.size(), 4u);
    const std::vector<std::string> types{"insert", "insert", "update", "delete"};
    const std::vector<std::string> colls{"a", "b", "a", "b"};
    const std::string lsid_id = binary(mongoc_client_session_get_lsid(s.get()), "id");
    ASSERT_EQ(lsid_id.size(), 16u);
    for (std::size_t k = 0; k < 4; ++k) {
        const bson_t* e = evs[k].get();
        EXPECT_EQ(str(e, "operationType"), types[k]) << relaxed(e);
        EXPECT_EQ(str(e, "ns.coll"), colls[k]) << relaxed(e);
        EXPECT_EQ(cluster_time(e), cluster_time(evs[0].get())) << relaxed(e);
        bson_subtype_t st;
        EXPECT_EQ(binary(e, "lsid.id", &st), lsid_id);
        EXPECT_EQ(st, BSON_SUBTYPE_UUID);
        EXPECT_EQ(binary(e, "lsid.uid").size(), 32u) << relaxed(e);
        bson_iter_t n;
        ASSERT_TRUE(find(e, "txnNumber", n)) << relaxed(e);
        EXPECT_TRUE(BSON_ITER_HOLDS_INT64(&n));
        EXPECT_EQ(bson_iter_int64(&n), num(evs[0].get(), "txnNumber"));
        if (k > 0) {
            EXPECT_LT(token(evs[k - 1].get()), token(e)) << "tokens must be strictly ordered";
        }
    }
    EXPECT_EQ(str(evs[2].get(), "updateDescription.updatedFields.v"), "changed");
    // Everybody sees the committed data now.
    EXPECT_EQ(all(a.get()), (std::vector<std::string>{R"({ "_id" : 0, "v" : "changed" })",
                                                      R"({ "_id" : 1, "v" : 1 })"}));
    EXPECT_TRUE(all(b.get()).empty());

    // The next transaction on the session has the next txnNumber.
    start_transaction(s.get());
    insert(a.get(), R"({"_id": 3})", s.get());
    commit(s.get());
    auto next = events(cs.get(), 1);
    ASSERT_EQ(next.size(), 1u);
    EXPECT_GT(num(next[0].get(), "txnNumber"), num(evs[0].get(), "txnNumber"));
    EXPECT_GT(cluster_time(next[0].get()), cluster_time(evs[0].get()));
}

TEST_F(TransactionsTest, AbortLeavesNoEventAndTheDataAsBefore) {
    auto a = coll("a");
    insert(a.get(), R"({"_id": 1, "v": 1})");
    insert(a.get(), R"({"_id": 2, "v": 2})");
    const auto before = all(a.get());
    auto cs = watch_db();
    auto s = session();
    start_transaction(s.get());
    update(a.get(), R"({"_id": 1})", R"({"$inc": {"v": 10}})", s.get());
    remove(a.get(), R"({"_id": 2})", s.get());
    insert(a.get(), R"({"_id": 3})", s.get());
    insert(coll("fresh").get(), R"({"_id": 4})", s.get());
    EXPECT_EQ(all(a.get(), s.get()),
              (std::vector<std::string>{R"({ "_id" : 1, "v" : 11 })", R"({ "_id" : 3 })"}));
    bson_error_t err;
    ASSERT_TRUE(mongoc_client_session_abort_transaction(s.get(), &err)) << err.message;

    EXPECT_EQ(all(a.get()), before);
    EXPECT_TRUE(all(coll("fresh").get()).empty());
    bool ok = false;
    auto listed = command(R"({"listCollections": 1, "filter": {"name": "fresh"}})", ok);
    EXPECT_TRUE(ok);
    EXPECT_EQ(str(listed.get(), "cursor.firstBatch.0.name"), "") << relaxed(listed.get());
    insert(a.get(), R"({"_id": "marker"})");
    auto evs = events(cs.get(), 1);
    ASSERT_EQ(evs.size(), 1u);
    EXPECT_EQ(str(evs[0].get(), "documentKey._id"), "marker") << relaxed(evs[0].get());
}

TEST_F(TransactionsTest, ResumeFromTheMiddleOfATransactionYieldsTheRest) {
    auto a = coll("a");
    bool ok = false;
    auto ping = command(R"({"ping": 1})", ok);
    bson_iter_t op;
    ASSERT_TRUE(find(ping.get(), "operationTime", op));
    std::uint32_t t, i;
    bson_iter_timestamp(&op, &t, &i);

    auto s = session();
    start_transaction(s.get());
    for (int k = 1; k <= 3; ++k)
        insert(a.get(), "{\"_id\": " + std::to_string(k) + "}", s.get());
    commit(s.get());
    insert(a.get(), R"({"_id": 4})");

    const std::string start =
        "{\"startAtOperationTime\": {\"$timestamp\": {\"t\": " + std::to_string(t) +
        ", \"i\": " + std::to_string(i) + "}}}";
    auto cs = watch_db(start);
    auto evs = events(cs.get(), 4);
    ASSERT_EQ(evs.size(), 4u);
    for (std::size_t k = 0; k < 4; ++k)
        EXPECT_EQ(num(evs[k].get(), "documentKey._id"), static_cast<std::int64_t>(k + 1));
    EXPECT_FALSE(find(evs[3].get(), "lsid", op)) << "a plain write has no lsid";
    // A plain event's token has the classic 20 hex digits; a transaction's are longer.
    EXPECT_EQ(token(evs[3].get()).size(), 20u);
    EXPECT_GT(token(evs[0].get()).size(), 20u);

    for (std::size_t from = 0; from < 3; ++from) {
        SCOPED_TRACE("resume after event " + std::to_string(from));
        bson_ptr opts = json("{\"maxAwaitTimeMS\": 300}");
        bson_t resume;
        BSON_APPEND_DOCUMENT_BEGIN(opts.get(), "resumeAfter", &resume);
        BSON_APPEND_UTF8(&resume, "_data", token(evs[from].get()).c_str());
        bson_append_document_end(opts.get(), &resume);
        auto again = watch_db(relaxed(opts.get()));
        auto rest = events(again.get(), 3 - from);
        ASSERT_EQ(rest.size(), 3 - from);
        for (std::size_t k = 0; k < rest.size(); ++k) {
            EXPECT_EQ(num(rest[k].get(), "documentKey._id"),
                      static_cast<std::int64_t>(from + k + 2));
            EXPECT_EQ(token(rest[k].get()), token(evs[from + k + 1].get()));
        }
    }
    // A stream that sees one event per batch crosses the transaction with the same tokens.
    auto small = watch_db(start.substr(0, start.size() - 1) + ", \"batchSize\": 1}");
    auto one_by_one = events(small.get(), 4);
    ASSERT_EQ(one_by_one.size(), 4u);
    for (std::size_t k = 0; k < 4; ++k)
        EXPECT_EQ(token(one_by_one[k].get()), token(evs[k].get()));
}

TEST_F(TransactionsTest, MongodErrorsAndCommitRetry) {
    auto a = coll("a");
    insert(a.get(), R"({"_id": 0})");
    // Continuing a transaction that never started.
    expect_error(txn_cmd(R"("insert": "a", "documents": [{"_id": 1}])", session_a, 1), 251, true);
    // Start, write, commit, and commit again: the retry answers ok and writes nothing twice.
    ok_command(txn_cmd(R"("insert": "a", "documents": [{"_id": 1}])", session_a, 1, true));
    ok_command(txn_cmd(R"("find": "a", "filter": {"_id": 1})", session_a, 1));
    ok_command(txn_cmd(R"("commitTransaction": 1)", session_a, 1), "admin");
    ok_command(txn_cmd(R"("commitTransaction": 1)", session_a, 1), "admin");
    EXPECT_EQ(all(a.get()).size(), 2u);
    // After the commit: more work or an abort is TransactionCommitted.
    expect_error(txn_cmd(R"("insert": "a", "documents": [{"_id": 2}])", session_a, 1), 256, false);
    bool ok = true;
    auto r = command(txn_cmd(R"("abortTransaction": 1)", session_a, 1), ok, "admin");
    EXPECT_FALSE(ok);
    EXPECT_EQ(num(r.get(), "code"), 256) << relaxed(r.get());
    // An older txnNumber is TransactionTooOld; the same number cannot start again.
    expect_error(txn_cmd(R"("insert": "a", "documents": [{"_id": 2}])", session_a, 0, true), 225,
                 false);
    expect_error(txn_cmd(R"("insert": "a", "documents": [{"_id": 2}])", session_a, 1, true), 117,
                 false);

    // A new txnNumber aborts the open transaction of the session.
    ok_command(txn_cmd(R"("insert": "a", "documents": [{"_id": 5}])", session_a, 2, true));
    ok_command(txn_cmd(R"("insert": "a", "documents": [{"_id": 6}])", session_a, 3, true));
    expect_error(txn_cmd(R"("commitTransaction": 1)", session_a, 2), 225, false);
    ok_command(txn_cmd(R"("commitTransaction": 1)", session_a, 3), "admin");
    auto docs = all(a.get());
    EXPECT_EQ(docs.size(), 3u);
    EXPECT_EQ(docs.back(), R"({ "_id" : 6 })");

    // Abort, then commit: NoSuchTransaction with TransientTransactionError.
    ok_command(txn_cmd(R"("insert": "a", "documents": [{"_id": 7}])", session_a, 4, true));
    ok_command(txn_cmd(R"("abortTransaction": 1)", session_a, 4), "admin");
    expect_error(txn_cmd(R"("commitTransaction": 1)", session_a, 4), 251, true);
    // A write error aborts the transaction (duplicate key), as on mongod.
    ok_command(txn_cmd(R"("insert": "a", "documents": [{"_id": 8}])", session_a, 5, true));
    ok_command(txn_cmd(R"("insert": "a", "documents": [{"_id": 0}])", session_a, 5));
    expect_error(txn_cmd(R"("commitTransaction": 1)", session_a, 5), 251, true);
    EXPECT_EQ(all(a.get()).size(), 3u);
    // Commands a transaction may not run, and autocommit: true.
    expect_error(txn_cmd(R"("count": "a")", session_a, 6, true), 263, false);
    expect_error(R"({"insert": "a", "documents": [{}], "lsid": {"id": {"$binary": {"base64": ")" +
                     session_a + R"(", "subType": "04"}}}, "txnNumber": 7, "autocommit": true})",
                 72, false);
}

TEST_F(TransactionsTest, WriteConflictAbortsTheTransaction) {
    auto a = coll("a");
    insert(a.get(), R"({"_id": 1, "v": 0})");
    ok_command(txn_cmd(R"("find": "a")", session_b, 1, true));  // the snapshot
    update(a.get(), R"({"_id": 1})", R"({"$set": {"v": "outside"}})");
    expect_error(
        txn_cmd(R"("update": "a", "updates": [{"q": {"_id": 1}, "u": {"$set": {"v": 1}}}])",
                session_b, 1),
        112, true);
    expect_error(txn_cmd(R"("commitTransaction": 1)", session_b, 1), 251, true);
    EXPECT_EQ(all(a.get()), std::vector<std::string>{R"({ "_id" : 1, "v" : "outside" })"});

    // Two transactions write the same document: the second to commit loses.
    const std::string set_a =
        R"("update": "a", "updates": [{"q": {"_id": 1}, "u": {"$set": {"v": "A"}}}])";
    const std::string set_b =
        R"("update": "a", "updates": [{"q": {"_id": 1}, "u": {"$set": {"v": "B"}}}])";
    ok_command(txn_cmd(set_a, session_a, 1, true));
    ok_command(txn_cmd(set_b, session_b, 2, true));
    ok_command(txn_cmd(R"("commitTransaction": 1)", session_a, 1), "admin");
    expect_error(txn_cmd(R"("commitTransaction": 1)", session_b, 2), 112, true);
    EXPECT_EQ(all(a.get()), std::vector<std::string>{R"({ "_id" : 1, "v" : "A" })"});

    // The collection a transaction wrote to was dropped before the commit.
    insert(coll("d").get(), R"({"_id": 1})");
    ok_command(txn_cmd(R"("insert": "d", "documents": [{"_id": 2}])", session_b, 3, true));
    ok_command(R"({"drop": "d"})");
    expect_error(txn_cmd(R"("commitTransaction": 1)", session_b, 3), 112, true);
    EXPECT_TRUE(all(coll("d").get()).empty());
}

TEST_F(TransactionsTest, EndSessionsAbortsTheOpenTransaction) {
    auto a = coll("a");
    ok_command(txn_cmd(R"("insert": "a", "documents": [{"_id": 1}])", session_a, 1, true));
    ok_command(R"({"endSessions": [{"id": {"$binary": {"base64": ")" + session_a +
                   R"(", "subType": "04"}}}]})",
               "admin");
    expect_error(txn_cmd(R"("commitTransaction": 1)", session_a, 1), 251, true);
    EXPECT_TRUE(all(a.get()).empty());
}

TEST_F(TransactionsTest, StepDownAbortsOpenTransactions) {
    stop();
    ASSERT_NO_FATAL_FAILURE(start({"--replset", "2"}));
    auto a = coll("a");
    auto s = session();
    ASSERT_NE(s, nullptr);
    start_transaction(s.get());
    insert(a.get(), R"({"_id": 1})", s.get());
    bool ok = false;
    command(R"({"replSetStepDown": 10, "force": true})", ok, "admin");
    // The driver retries the commit on the new primary, which knows no such transaction.
    bson_error_t err;
    bson_t reply;
    EXPECT_FALSE(mongoc_client_session_commit_transaction(s.get(), &reply, &err));
    EXPECT_EQ(err.code, 251u) << err.message << " " << relaxed(&reply);
    auto l = labels(&reply);
    EXPECT_NE(std::find(l.begin(), l.end(), "TransientTransactionError"), l.end())
        << relaxed(&reply);
    bson_destroy(&reply);
    EXPECT_TRUE(all(a.get()).empty());
}

TEST_F(TransactionsTest, ByteBoundedOplogLosesTheOldestHistory) {
    stop();
    ASSERT_NO_FATAL_FAILURE(start({"--oplog-size-mb", "1"}));
    auto a = coll("a");
    auto cs = watch_db();
    const std::string filler(10'000, 'x');
    insert(a.get(), "{\"_id\": 0, \"pad\": \"" + filler + "\"}");
    auto first = events(cs.get(), 1);
    ASSERT_EQ(first.size(), 1u);
    // Fill well past 1 MiB (about 2.5 MiB of documents), reading along so that this stream
    // keeps up with the oplog.
    std::vector<bson_ptr> recent;
    for (int k = 1; k <= 250; ++k) {
        insert(a.get(), "{\"_id\": " + std::to_string(k) + ", \"pad\": \"" + filler + "\"}");
        auto one = events(cs.get(), 1);
        ASSERT_EQ(one.size(), 1u);
        recent.push_back(std::move(one[0]));
    }

    auto resume = [&](const bson_t* event) {
        bson_ptr opts = json("{\"maxAwaitTimeMS\": 300}");
        bson_t r;
        BSON_APPEND_DOCUMENT_BEGIN(opts.get(), "resumeAfter", &r);
        BSON_APPEND_UTF8(&r, "_data", token(event).c_str());
        bson_append_document_end(opts.get(), &r);
        return watch_db(relaxed(opts.get()));
    };
    auto lost = resume(first[0].get());
    const bson_t* doc;
    EXPECT_FALSE(mongoc_change_stream_next(lost.get(), &doc));
    bson_error_t err;
    const bson_t* reply;
    ASSERT_TRUE(mongoc_change_stream_error_document(lost.get(), &err, &reply));
    EXPECT_EQ(err.code, 286u) << err.message;
    EXPECT_EQ(str(reply, "codeName"), "ChangeStreamHistoryLost") << relaxed(reply);

    // The newest entries are kept, within the bound (about 100 of these 10 kB documents).
    auto kept = resume(recent[200].get());
    auto rest = events(kept.get(), 49);
    ASSERT_EQ(rest.size(), 49u);
    EXPECT_EQ(num(rest[0].get(), "documentKey._id"), 202);
    auto old = resume(recent[100].get());
    EXPECT_FALSE(mongoc_change_stream_next(old.get(), &doc));
    ASSERT_TRUE(mongoc_change_stream_error_document(old.get(), &err, &reply));
    EXPECT_EQ(err.code, 286u) << "about 100 entries of 10 kB fit in 1 MiB: " << err.message;
}

TEST_F(TransactionsTest, EventCountBoundStillWorks) {
    stop();
    ASSERT_NO_FATAL_FAILURE(start({"--oplog-size", "5"}));
    auto a = coll("a");
    auto cs = watch_db();
    std::vector<bson_ptr> evs;
    for (int k = 0; k < 10; ++k) {
        insert(a.get(), "{\"_id\": " + std::to_string(k) + "}");
        auto one = events(cs.get(), 1);
        ASSERT_EQ(one.size(), 1u);
        evs.push_back(std::move(one[0]));
    }
    // A stream that falls behind the bound fails too.
    bson_ptr from_start = json("{}");
    bson_t r0;
    BSON_APPEND_DOCUMENT_BEGIN(from_start.get(), "resumeAfter", &r0);
    BSON_APPEND_UTF8(&r0, "_data", token(evs[8].get()).c_str());
    bson_append_document_end(from_start.get(), &r0);
    auto recent = watch_db(relaxed(from_start.get()));
    auto last = events(recent.get(), 1);
    ASSERT_EQ(last.size(), 1u);
    EXPECT_EQ(num(last[0].get(), "documentKey._id"), 9);
    bson_ptr opts = json("{}");
    bson_t r;
    BSON_APPEND_DOCUMENT_BEGIN(opts.get(), "resumeAfter", &r);
    BSON_APPEND_UTF8(&r, "_data", token(evs[1].get()).c_str());
    bson_append_document_end(opts.get(), &r);
    auto lost = watch_db(relaxed(opts.get()));
    const bson_t* doc;
    EXPECT_FALSE(mongoc_change_stream_next(lost.get(), &doc));
    bson_error_t err;
    EXPECT_TRUE(mongoc_change_stream_error_document(lost.get(), &err, nullptr));
    EXPECT_EQ(err.code, 286u) << err.message;
}

TEST(MongosimTransactionsDriver, NodeDriver7) {
    penne::test::temp_dir tmp("mongosim-txn-node");
    const int port = penne::test::free_port();
    penne::test::process sim({MONGOSIM_EXECUTABLE, "--port", std::to_string(port)},
                             tmp / "mongosim.log");
    ASSERT_TRUE(sim.wait_for_output("mongosim listening on", 10s)) << sim.log();
    const std::string dir = MONGOSIM_DRIVER_SCRIPTS;
    penne::test::process client(
        {"/usr/bin/env", "node", dir + "/transactions.js",
         "mongodb://127.0.0.1:" + std::to_string(port) + "/?replicaSet=rs0"},
        tmp / "client.log", {{"NODE_PATH", dir + "/node/node_modules"}});
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

}  // namespace
