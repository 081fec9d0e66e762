#include <penne/mongo/commands.hpp>

#include <gtest/gtest.h>

#include <string>

namespace penne::mongo {
namespace {

document json(const std::string& s) {
    std::string err;
    auto d = document::from_json(s, err);
    EXPECT_TRUE(d) << err << " in " << s;
    return d ? std::move(*d) : document{};
}

std::string canon(const std::string& s) {
    return json(s).to_json();
}

resume_token token_of(const std::string& s) {
    return resume_token(json(s).bytes());
}

TEST(Commands, HelloCarriesClientMetadata) {
    client_metadata m;
    m.driver_version = "1.2.3";
    m.os_type = "Linux";
    m.architecture = "x86_64";
    m.app_name = "app";
    auto h = make_hello(m, hello_form::hello, "admin.bob");
    EXPECT_EQ(h.to_json(),
              canon(R"({"hello": 1, "helloOk": true, "client": {"application": {"name": "app"},
                "driver": {"name": "penne", "version": "1.2.3"},
                "os": {"type": "Linux", "architecture": "x86_64"}},
                "saslSupportedMechs": "admin.bob", "$db": "admin"})"));
    auto legacy = make_hello(m, hello_form::legacy_query);
    bson_iter_t it;
    EXPECT_TRUE(find_field(legacy.bytes(), "isMaster", it));
    EXPECT_FALSE(find_field(legacy.bytes(), "$db", it));  // OP_QUERY must not carry $db
    auto sys = client_metadata::from_system();
    EXPECT_FALSE(sys.os_type.empty());
    EXPECT_FALSE(sys.driver_version.empty());
}

// The change stream's role check: no client metadata (a server refuses a second one), the
// command the handshake showed the server knows.
TEST(Commands, RoleCheckIsABareHello) {
    EXPECT_EQ(make_role_check(false).to_json(), canon(R"({"hello": 1, "$db": "admin"})"));
    EXPECT_EQ(make_role_check(true).to_json(), canon(R"({"isMaster": 1, "$db": "admin"})"));
}

TEST(Commands, CollectionAggregateResumeAfter) {
    change_stream_spec s;
    s.db = "shop";
    s.coll = "orders";
    s.resume_after = token_of(R"({"_data": "8263"})");
    s.start_at_operation_time = cluster_time{5, 1};  // lower precedence: ignored
    s.full_document = full_document_mode::update_lookup;
    s.batch_size = 100;
    s.extra_stages.push_back(json(R"({"$match": {"operationType": "insert"}})"));
    EXPECT_EQ(make_change_stream_aggregate(s).to_json(),
              canon(R"({"aggregate": "orders", "pipeline": [
                {"$changeStream": {"fullDocument": "updateLookup",
                                   "resumeAfter": {"_data": "8263"}}},
                {"$match": {"operationType": "insert"}}],
                "cursor": {"batchSize": 100}, "$db": "shop"})"));
}

TEST(Commands, DatabaseAggregateWithIncludeList) {
    change_stream_spec s;
    s.kind = change_stream_spec::level::database;
    s.db = "shop";
    s.include_collections = {"a", "b"};
    s.start_at_operation_time = cluster_time{7, 2};
    EXPECT_EQ(make_change_stream_aggregate(s).to_json(), canon(R"({"aggregate": 1, "pipeline": [
                {"$changeStream": {"startAtOperationTime": {"$timestamp": {"t": 7, "i": 2}}}},
                {"$match": {"$or": [{"ns.coll": {"$exists": false}},
                                    {"ns.coll": {"$in": ["a", "b"]}}]}}],
                "cursor": {}, "$db": "shop"})"));
    s.include_collections.clear();
    s.exclude_collections = {"tmp"};
    EXPECT_NE(make_change_stream_aggregate(s).to_json().find(R"("$nin" : [ "tmp" ])"),
              std::string::npos);
}

TEST(Commands, DeploymentAggregateStartAfter) {
    change_stream_spec s;
    s.kind = change_stream_spec::level::deployment;
    s.db = "ignored";
    s.start_after = token_of(R"({"_data": "01"})");
    EXPECT_EQ(make_change_stream_aggregate(s).to_json(), canon(R"({"aggregate": 1, "pipeline": [
                {"$changeStream": {"startAfter": {"_data": "01"}, "allChangesForCluster": true}}],
                "cursor": {}, "$db": "admin"})"));
    // Collection filters apply across every database of the deployment.
    s.include_collections = {"x"};
    EXPECT_EQ(make_change_stream_aggregate(s).to_json(), canon(R"({"aggregate": 1, "pipeline": [
                {"$changeStream": {"startAfter": {"_data": "01"}, "allChangesForCluster": true}},
                {"$match": {"$or": [{"ns.coll": {"$exists": false}},
                                    {"ns.coll": {"$in": ["x"]}}]}}],
                "cursor": {}, "$db": "admin"})"));
}

TEST(Commands, AggregateCarriesTheReadPreference) {
    change_stream_spec s;
    s.db = "shop";
    s.coll = "orders";
    s.read_preference = "secondary";
    EXPECT_EQ(make_change_stream_aggregate(s).to_json(),
              canon(R"({"aggregate": "orders", "pipeline": [{"$changeStream": {}}],
                "cursor": {}, "$readPreference": {"mode": "secondary"}, "$db": "shop"})"));
    // primary is the server's default: not sent.
    s.read_preference = "primary";
    EXPECT_EQ(make_change_stream_aggregate(s).to_json().find("$readPreference"), std::string::npos);
}

TEST(Commands, GetMoreKillCursorsEndSessions) {
    EXPECT_EQ(make_get_more(42, "db.$cmd.aggregate", std::chrono::milliseconds(1000), 10).to_json(),
              canon(R"({"getMore": {"$numberLong": "42"}, "collection": "$cmd.aggregate",
                        "batchSize": 10, "maxTimeMS": {"$numberLong": "1000"}, "$db": "db"})"));
    EXPECT_EQ(make_get_more(1, "d.c", std::chrono::milliseconds(0), 0).to_json(),
              canon(R"({"getMore": {"$numberLong": "1"}, "collection": "c", "$db": "d"})"));
    std::int64_t ids[] = {5, 6};
    EXPECT_EQ(make_kill_cursors("d.c.sub", ids).to_json(),
              canon(R"({"killCursors": "c.sub", "cursors": [{"$numberLong": "5"},
                        {"$numberLong": "6"}], "$db": "d"})"));
    auto lsid = json(R"({"id": {"$binary": {"base64": "AAAAAAAAAAAAAAAAAAAAAA==",
                                            "subType": "04"}}})");
    byte_view sessions[] = {lsid.bytes()};
    auto es = make_end_sessions(sessions);
    EXPECT_EQ(es.to_json(), canon(R"({"endSessions": [{"id": {"$binary": {"base64":
        "AAAAAAAAAAAAAAAAAAAAAA==", "subType": "04"}}}], "$db": "admin"})"));
    auto [db, coll] = split_namespace("a.b.c");
    EXPECT_EQ(db, "a");
    EXPECT_EQ(coll, "b.c");
}

TEST(Commands, FullDocumentModes) {
    for (auto m : {full_document_mode::server_default, full_document_mode::update_lookup,
                   full_document_mode::when_available, full_document_mode::required}) {
        EXPECT_EQ(parse_full_document_mode(to_string(m)), m);
    }
    EXPECT_FALSE(parse_full_document_mode("UpdateLookup"));
}

TEST(Replies, CursorReplyViews) {
    auto body = json(R"({"cursor": {"firstBatch": [], "postBatchResumeToken": {"_data": "AA"},
        "id": {"$numberLong": "123"}, "ns": "db.coll"}, "ok": 1.0,
        "operationTime": {"$timestamp": {"t": 10, "i": 3}}})");
    command_reply r;
    ASSERT_FALSE(parse_reply(body.bytes(), r));
    EXPECT_TRUE(r.ok);
    ASSERT_TRUE(r.cursor);
    EXPECT_EQ(r.cursor->id, 123);
    EXPECT_EQ(r.cursor->ns, "db.coll");
    EXPECT_TRUE(r.cursor->first_batch);
    EXPECT_EQ(to_json(r.cursor->post_batch_resume_token), R"({ "_data" : "AA" })");
    ASSERT_TRUE(r.operation_time);
    EXPECT_EQ(*r.operation_time, (cluster_time{10, 3}));
    // Views, not copies.
    EXPECT_GE(r.cursor->ns.data(), reinterpret_cast<const char*>(body.bytes().data()));
}

TEST(Replies, ErrorReplyWithLabels) {
    auto body = json(R"({"ok": 0, "errmsg": "cursor id 5 not found", "code": 43,
        "codeName": "CursorNotFound", "errorLabels": ["ResumableChangeStreamError", "X"]})");
    command_reply r;
    ASSERT_FALSE(parse_reply(body.bytes(), r));
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.code, 43);
    EXPECT_EQ(r.code_name, "CursorNotFound");
    EXPECT_EQ(r.errmsg, "cursor id 5 not found");
    EXPECT_TRUE(r.has_error_label("ResumableChangeStreamError"));
    EXPECT_TRUE(r.has_error_label("X"));
    EXPECT_FALSE(r.has_error_label("Resumable"));
    EXPECT_FALSE(r.cursor);
}

TEST(Replies, MalformedReplies) {
    command_reply r;
    EXPECT_EQ(parse_reply(json(R"({"x": 1})").bytes(), r), client_errc::malformed_reply);
    EXPECT_EQ(parse_reply(json(R"({"ok": "yes"})").bytes(), r), client_errc::malformed_reply);
    EXPECT_EQ(parse_reply(json(R"({"ok": 1, "cursor": {"id": 1}})").bytes(), r),
              client_errc::malformed_reply);
    EXPECT_EQ(parse_reply(json(R"({"ok": 1, "cursor": {"id": 1, "nextBatch": 3}})").bytes(), r),
              client_errc::malformed_reply);
    // Truncated bytes with a patched length prefix: an element cut in half is an error
    // (cuts at element boundaries leave a valid, shorter document).
    auto good = json(R"({"errmsg": "long enough message", "ok": 1})");
    std::vector<std::uint8_t> b(good.bytes().begin(), good.bytes().end());
    for (std::size_t n = 5; n < b.size(); ++n) {
        std::vector<std::uint8_t> t(b.begin(), b.begin() + n);
        t[0] = static_cast<std::uint8_t>(n);
        t.back() = 0;
        EXPECT_TRUE(parse_reply(t, r)) << n;  // `ok` is last: every cut loses it
    }
}

TEST(Replies, Hello) {
    auto body = json(R"({"helloOk": true, "ismaster": false, "secondary": true,
        "setName": "rs0", "hosts": ["a:1", "b:2"], "primary": "b:2", "me": "a:1",
        "maxWireVersion": 17, "minWireVersion": 0, "maxMessageSizeBytes": 48000000,
        "saslSupportedMechs": ["SCRAM-SHA-256"], "ok": 1})");
    hello_reply h;
    ASSERT_FALSE(parse_hello(body.bytes(), h));
    EXPECT_FALSE(h.writable_primary);
    EXPECT_TRUE(h.secondary);
    EXPECT_EQ(h.primary, "b:2");
    EXPECT_EQ(h.hosts, (std::vector<std::string>{"a:1", "b:2"}));
    EXPECT_EQ(h.max_wire_version, 17);
    EXPECT_EQ(h.sasl_supported_mechs.size(), 1u);
    ASSERT_FALSE(
        parse_hello(json(R"({"ismaster": true, "maxWireVersion": 6, "ok": 1})").bytes(), h));
    EXPECT_TRUE(h.writable_primary);
    ASSERT_FALSE(parse_hello(json(R"({"isWritablePrimary": true, "ok": 1})").bytes(), h));
    EXPECT_TRUE(h.writable_primary);
}

TEST(Events, ParseChangeEventViews) {
    auto ev = json(R"({"_id": {"_data": "826"}, "operationType": "insert",
        "clusterTime": {"$timestamp": {"t": 1700000000, "i": 4}},
        "wallTime": {"$date": {"$numberLong": "1700000000123"}},
        "ns": {"db": "shop", "coll": "orders"}, "documentKey": {"_id": 1},
        "fullDocument": {"_id": 1, "x": 2}})");
    change_event e;
    ASSERT_FALSE(parse_change_event(ev.bytes(), e));
    EXPECT_EQ(e.operation, "insert");
    EXPECT_EQ(e.db, "shop");
    EXPECT_EQ(e.coll, "orders");
    EXPECT_EQ(e.time, (cluster_time{1700000000, 4}));
    EXPECT_EQ(e.wall_time_ms, 1700000000123);
    EXPECT_EQ(to_json(e.token), R"({ "_data" : "826" })");
    EXPECT_EQ(e.raw.data(), ev.bytes().data());
    EXPECT_TRUE(e.token.data() > e.raw.data() && e.token.data() < e.raw.data() + e.raw.size());
    EXPECT_TRUE(e.token_equals(token_of(R"({"_data": "826"})")));

    auto drop = json(R"({"_id": {"_data": "9"}, "operationType": "dropDatabase",
        "ns": {"db": "shop"}})");
    ASSERT_FALSE(parse_change_event(drop.bytes(), e));
    EXPECT_TRUE(e.coll.empty());
    EXPECT_EQ(e.wall_time_ms, -1);

    EXPECT_EQ(parse_change_event(json(R"({"operationType": "insert"})").bytes(), e),
              client_errc::missing_resume_token);
    EXPECT_EQ(parse_change_event(json(R"({"_id": 5})").bytes(), e),
              client_errc::missing_resume_token);
}

// The event scanner skips every BSON type it does not read and still finds the fields
// after it; its results match libbson's view of the same bytes.
TEST(Events, ScannerSkipsEveryValueType) {
    auto ev = json(R"js({"pre": {"$binary": {"base64": "AAEC", "subType": "04"}},
        "re": {"$regularExpression": {"pattern": "a.*", "options": "i"}},
        "code": {"$code": "f()"}, "sym": {"$symbol": "s"},
        "cws": {"$code": "g()", "$scope": {"x": 1}},
        "dbp": {"$dbPointer": {"$ref": "c", "$id": {"$oid": "5f0c7bd3a6d1f2b2c3d4e5f6"}}},
        "dec": {"$numberDecimal": "1.5"}, "oid": {"$oid": "5f0c7bd3a6d1f2b2c3d4e5f6"},
        "b": true, "n": null, "u": {"$undefined": true}, "mn": {"$minKey": 1},
        "mx": {"$maxKey": 1}, "i": 1, "l": {"$numberLong": "2"}, "d": 2.5, "arr": [1, "x"],
        "_id": {"_data": "A1"}, "operationType": "update",
        "clusterTime": {"$timestamp": {"t": 7, "i": 9}}, "wallTime": {"$date": 12345},
        "ns": {"x": 1, "db": "d1", "coll": "c1"}})js");
    change_event e;
    ASSERT_FALSE(parse_change_event(ev.bytes(), e));
    EXPECT_EQ(e.operation, "update");
    EXPECT_EQ(e.db, "d1");
    EXPECT_EQ(e.coll, "c1");
    EXPECT_EQ(e.time, (cluster_time{7, 9}));
    EXPECT_EQ(e.wall_time_ms, 12345);
    EXPECT_TRUE(e.token_equals(token_of(R"({"_data": "A1"})")));

    // Fields of the wrong type are ignored, as before.
    auto odd = json(R"({"_id": {"_data": "1"}, "operationType": 5, "ns": {"db": 1, "coll": "c"},
        "clusterTime": 3, "wallTime": "x"})");
    ASSERT_FALSE(parse_change_event(odd.bytes(), e));
    EXPECT_TRUE(e.operation.empty());
    EXPECT_TRUE(e.db.empty());
    EXPECT_EQ(e.coll, "c");
    EXPECT_EQ(e.time, cluster_time{});
    EXPECT_EQ(e.wall_time_ms, -1);
}

TEST(Events, ScannerRejectsMalformedElements) {
    auto good = json(R"({"_id": {"_data": "1"}, "operationType": "insert", "s": "abc"})");
    const auto bytes = good.bytes();
    change_event e;
    ASSERT_FALSE(parse_change_event(bytes, e));
    // Find the string "abc": its length prefix is 4 (with the NUL).
    std::vector<std::uint8_t> bad(bytes.begin(), bytes.end());
    const std::size_t at = bad.size() - 1 - 4 - 4;  // before "abc\0" and the terminator
    ASSERT_EQ(bad[at], 4);
    bad[at] = 40;  // runs past the document
    EXPECT_EQ(parse_change_event(bad, e), client_errc::malformed_reply);
    bad[at] = 0;  // a string needs at least its NUL
    EXPECT_EQ(parse_change_event(bad, e), client_errc::malformed_reply);
    bad[at] = 4;
    bad[at + 4 + 3] = 'x';  // the string's NUL overwritten
    EXPECT_EQ(parse_change_event(bad, e), client_errc::malformed_reply);
    bad[at + 4 + 3] = 0;
    bad[at - 3] = 0x42;  // an unknown type byte (the element's type is before "s\0")
    EXPECT_EQ(parse_change_event(bad, e), client_errc::malformed_reply);
    bad[at - 3] = 0x02;
    ASSERT_FALSE(parse_change_event(bad, e));
    // A length that disagrees with the bytes, and a missing terminator.
    std::vector<std::uint8_t> cut(bytes.begin(), bytes.end() - 1);
    EXPECT_EQ(parse_change_event(cut, e), client_errc::malformed_reply);
    std::vector<std::uint8_t> unterminated(bytes.begin(), bytes.end());
    unterminated.back() = 1;
    EXPECT_EQ(parse_change_event(unterminated, e), client_errc::malformed_reply);
}

TEST(Events, BatchCountsSplitFragments) {
    auto arr = json(R"({"0": {"_id": {"_data": "1"}, "operationType": "insert"},
        "1": {"_id": {"_data": "2"}, "splitEvent": {"fragment": 1, "of": 2}},
        "2": {"_id": {"_data": "3"}, "splitEvent": {"fragment": 2, "of": 2}}})");
    std::vector<change_event> out;
    std::size_t split = 99;
    ASSERT_FALSE(parse_change_events(arr.bytes(), out, &split));
    EXPECT_EQ(out.size(), 3u);
    EXPECT_EQ(split, 2u);
    out.clear();
    auto plain = json(R"({"0": {"_id": {"_data": "1"}, "operationType": "insert"}})");
    ASSERT_FALSE(parse_change_events(plain.bytes(), out, &split));
    EXPECT_EQ(split, 0u);
    // An event without _id fails the batch with missing_resume_token, nothing half-added.
    out.clear();
    auto no_id = json(R"({"0": {"_id": {"_data": "1"}}, "1": {"operationType": "insert"}})");
    EXPECT_EQ(parse_change_events(no_id.bytes(), out), client_errc::missing_resume_token);
    EXPECT_EQ(out.size(), 1u);
}

TEST(Events, ParseBatchArray) {
    auto reply = json(R"({"cursor": {"id": 0, "ns": "d.c", "nextBatch": [
        {"_id": {"_data": "1"}, "operationType": "insert", "ns": {"db": "d", "coll": "c"}},
        {"_id": {"_data": "2"}, "operationType": "delete", "ns": {"db": "d", "coll": "c"}}]},
        "ok": 1})");
    command_reply r;
    ASSERT_FALSE(parse_reply(reply.bytes(), r));
    std::vector<change_event> out;
    ASSERT_FALSE(parse_change_events(r.cursor->batch, out));
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[1].operation, "delete");
    out.clear();
    auto bad = json(R"({"0": {"_id": {"_data": "1"}}, "1": 7})");
    EXPECT_EQ(parse_change_events(bad.bytes(), out), client_errc::malformed_reply);
}

}  // namespace
}  // namespace penne::mongo
