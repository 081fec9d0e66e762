// event_assembler: $changeStreamSplitLargeEvent fragments become one whole event, whatever the
// reply boundaries; the safe position while a sequence is incomplete; sequence errors. Also the
// aggregate options that go with it (fullDocumentBeforeChange, showExpandedEvents, the stage).

#include <penne/mongo/commands.hpp>
#include <penne/mongo/split_event.hpp>

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace penne::mongo {
namespace {

document json(const std::string& s) {
    std::string err;
    auto d = document::from_json(s, err);
    EXPECT_TRUE(d) << err << " in " << s;
    return d ? std::move(*d) : document{};
}

resume_token token(const std::string& data) {
    return resume_token(json(R"({"_data": ")" + data + R"("})").bytes());
}

// One getMore reply's events, parsed from owned documents (as the source parses a reply).
struct reply {
    std::vector<document> docs;
    std::vector<change_event> events;

    explicit reply(std::vector<std::string> jsons) {
        for (auto& j : jsons)
            docs.push_back(json(j));
        for (auto& d : docs) {
            change_event ev;
            EXPECT_FALSE(parse_change_event(d.bytes(), ev));
            events.push_back(ev);
        }
    }
};

const std::string whole1 =
    R"({"_id": {"_data": "01"}, "operationType": "insert", "clusterTime": {"$timestamp": {"t": 5, "i": 1}},
        "ns": {"db": "d", "coll": "c"}, "documentKey": {"_id": 1}, "fullDocument": {"_id": 1}})";
// An update split in three, its fields packed by size as the server does.
const std::string frag1 =
    R"({"_id": {"_data": "02F1"}, "splitEvent": {"fragment": 1, "of": 3}, "operationType": "update",
        "clusterTime": {"$timestamp": {"t": 5, "i": 2}}, "ns": {"db": "d", "coll": "c"},
        "documentKey": {"_id": 2}, "updateDescription": {"updatedFields": {"a": 2}}})";
const std::string frag2 =
    R"({"_id": {"_data": "02F2"}, "splitEvent": {"fragment": 2, "of": 3},
        "fullDocumentBeforeChange": {"_id": 2, "a": 1}})";
const std::string frag3 =
    R"({"_id": {"_data": "02F3"}, "splitEvent": {"fragment": 3, "of": 3},
        "fullDocument": {"_id": 2, "a": 2}})";
const std::string whole3 =
    R"({"_id": {"_data": "03"}, "operationType": "delete", "clusterTime": {"$timestamp": {"t": 5, "i": 3}},
        "ns": {"db": "d", "coll": "c"}, "documentKey": {"_id": 1}})";

const std::string expected_update =
    R"({"_id": {"_data": "02F3"}, "operationType": "update",
        "clusterTime": {"$timestamp": {"t": 5, "i": 2}}, "fullDocument": {"_id": 2, "a": 2},
        "ns": {"db": "d", "coll": "c"}, "documentKey": {"_id": 2},
        "updateDescription": {"updatedFields": {"a": 2}},
        "fullDocumentBeforeChange": {"_id": 2, "a": 1}})";

std::string as_json(const change_event& ev) {
    return to_json(ev.raw);
}

TEST(SplitEvent, FindsSplitInfo) {
    auto f = json(frag2);
    auto info = find_split_info(f.bytes());
    ASSERT_TRUE(info);
    EXPECT_EQ(info->fragment, 2);
    EXPECT_EQ(info->of, 3);
    EXPECT_FALSE(find_split_info(json(whole1).bytes()));
}

TEST(SplitEvent, OneReplyHoldsTheWholeSequence) {
    event_assembler a;
    diagnostics diag;
    reply r({whole1, frag1, frag2, frag3, whole3});
    ASSERT_FALSE(a.process(r.events, token("00"), diag)) << diag.message;
    ASSERT_EQ(r.events.size(), 3u);
    EXPECT_EQ(r.events[0].operation, "insert");
    EXPECT_EQ(as_json(r.events[1]), json(expected_update).to_json());
    EXPECT_EQ(r.events[1].operation, "update");
    EXPECT_EQ(r.events[1].db, "d");
    EXPECT_EQ(r.events[1].time, (cluster_time{5, 2}));
    // The whole event's token is the last fragment's: a resume from it starts after the event.
    EXPECT_TRUE(r.events[1].token_equals(token("02F3")));
    EXPECT_EQ(r.events[2].operation, "delete");
    EXPECT_FALSE(a.assembling());
}

TEST(SplitEvent, FragmentsAcrossRepliesHoldThePositionBeforeTheEvent) {
    event_assembler a;
    diagnostics diag;
    reply first({whole1, frag1});
    ASSERT_FALSE(a.process(first.events, token("00"), diag)) << diag.message;
    ASSERT_EQ(first.events.size(), 1u);  // the fragment is held back
    EXPECT_TRUE(a.assembling());
    EXPECT_EQ(a.safe_token(), token("01"));  // the last whole event before the sequence
    EXPECT_GT(a.buffered_bytes(), 0u);

    reply second({frag2});
    ASSERT_FALSE(a.process(second.events, token("01"), diag));
    EXPECT_TRUE(second.events.empty());
    EXPECT_EQ(a.safe_token(), token("01"));

    reply third({frag3, whole3});
    ASSERT_FALSE(a.process(third.events, token("01"), diag));
    ASSERT_EQ(third.events.size(), 2u);
    EXPECT_EQ(as_json(third.events[0]), json(expected_update).to_json());
    EXPECT_FALSE(a.assembling());
    EXPECT_EQ(a.buffered_bytes(), 0u);
}

TEST(SplitEvent, SequenceStartingARepliesUsesThePreviousPosition) {
    event_assembler a;
    diagnostics diag;
    reply r({frag1});
    ASSERT_FALSE(a.process(r.events, token("00AA"), diag));
    EXPECT_TRUE(r.events.empty());
    EXPECT_EQ(a.safe_token(), token("00AA"));
}

TEST(SplitEvent, ResentFirstFragmentRestartsTheSequence) {
    // After a resume from the safe position the server sends the event from fragment 1 again.
    event_assembler a;
    diagnostics diag;
    reply first({frag1, frag2});
    ASSERT_FALSE(a.process(first.events, token("01"), diag));
    a.reset();
    reply again({frag1, frag2, frag3});
    ASSERT_FALSE(a.process(again.events, token("01"), diag)) << diag.message;
    ASSERT_EQ(again.events.size(), 1u);
    EXPECT_EQ(as_json(again.events[0]), json(expected_update).to_json());
}

TEST(SplitEvent, OutOfSequenceFragmentsAreErrors) {
    diagnostics diag;
    {
        event_assembler a;
        reply r({frag2});  // the stream started in the middle of an event
        EXPECT_EQ(a.process(r.events, token("01"), diag), client_errc::malformed_reply);
        EXPECT_NE(diag.message.find("fragment 2 of 3"), std::string::npos) << diag.message;
    }
    {
        event_assembler a;
        reply r({frag1, frag3});
        EXPECT_EQ(a.process(r.events, token("01"), diag), client_errc::malformed_reply);
        EXPECT_FALSE(a.assembling());
    }
    {
        event_assembler a;
        reply r({frag1, whole3});
        EXPECT_EQ(a.process(r.events, token("01"), diag), client_errc::malformed_reply);
        EXPECT_NE(diag.message.find("whole event"), std::string::npos) << diag.message;
    }
    {
        event_assembler a;
        reply r({R"({"_id": {"_data": "09"}, "splitEvent": {"fragment": 3, "of": 2}})"});
        EXPECT_EQ(a.process(r.events, token("01"), diag), client_errc::malformed_reply);
    }
}

TEST(SplitEvent, DuplicateFieldAcrossFragmentsIsAnError) {
    event_assembler a;
    diagnostics diag;
    reply r({R"({"_id": {"_data": "0A"}, "splitEvent": {"fragment": 1, "of": 2}, "x": 1})",
             R"({"_id": {"_data": "0B"}, "splitEvent": {"fragment": 2, "of": 2}, "x": 2})"});
    EXPECT_EQ(a.process(r.events, token("01"), diag), client_errc::malformed_reply);
    EXPECT_NE(diag.message.find("'x'"), std::string::npos) << diag.message;
}

TEST(SplitEvent, FindsTheUsersSplitStage) {
    std::vector<document> stages;
    stages.push_back(json(R"({"$match": {"operationType": "insert"}})"));
    EXPECT_FALSE(has_split_stage(stages));
    stages.push_back(json(R"({"$changeStreamSplitLargeEvent": {}})"));
    EXPECT_TRUE(has_split_stage(stages));
}

TEST(SplitEvent, AggregateCarriesImagesExpandedEventsAndTheSplitStageLast) {
    change_stream_spec s;
    s.db = "shop";
    s.coll = "orders";
    s.full_document = full_document_mode::when_available;
    s.full_document_before_change = before_change_mode::required;
    s.show_expanded_events = true;
    s.split_large_events = true;
    s.extra_stages.push_back(json(R"({"$match": {"operationType": "update"}})"));
    EXPECT_EQ(make_change_stream_aggregate(s).to_json(),
              json(R"({"aggregate": "orders", "pipeline": [
                {"$changeStream": {"fullDocument": "whenAvailable",
                                   "fullDocumentBeforeChange": "required",
                                   "showExpandedEvents": true}},
                {"$match": {"operationType": "update"}},
                {"$changeStreamSplitLargeEvent": {}}],
                "cursor": {}, "$db": "shop"})")
                  .to_json());
    // Defaults send none of them.
    change_stream_spec plain;
    plain.db = "shop";
    plain.coll = "orders";
    const std::string cmd = make_change_stream_aggregate(plain).to_json();
    EXPECT_EQ(cmd.find("fullDocumentBeforeChange"), std::string::npos);
    EXPECT_EQ(cmd.find("showExpandedEvents"), std::string::npos);
    EXPECT_EQ(cmd.find("$changeStreamSplitLargeEvent"), std::string::npos);
}

TEST(SplitEvent, BeforeChangeModeNames) {
    for (auto m : {before_change_mode::server_default, before_change_mode::off,
                   before_change_mode::when_available, before_change_mode::required})
        EXPECT_EQ(parse_before_change_mode(to_string(m)), m);
    EXPECT_FALSE(parse_before_change_mode("updateLookup"));
}

}  // namespace
}  // namespace penne::mongo
