#include <penne/mongo/resume.hpp>

#include <gtest/gtest.h>
#include <boost/asio/error.hpp>

namespace penne::mongo {
namespace {

document json(const std::string& s) {
    std::string err;
    auto d = document::from_json(s, err);
    EXPECT_TRUE(d) << err;
    return d ? std::move(*d) : document{};
}

struct server_error {
    document body;
    command_reply reply;
    error_code ec;
    explicit server_error(const std::string& s) : body(json(s)) {
        EXPECT_FALSE(parse_reply(body.bytes(), reply));
        ec = make_server_error(reply.code);
    }
};

TEST(Resume, NetworkErrorsResume) {
    namespace ae = boost::asio::error;
    EXPECT_EQ(decide_resume(ae::connection_reset, nullptr, 17), resume_decision::resume);
    EXPECT_EQ(decide_resume(ae::connection_refused, nullptr, 17), resume_decision::resume);
    EXPECT_EQ(decide_resume(make_error_code(client_errc::connection_closed), nullptr, 17),
              resume_decision::resume);
    EXPECT_EQ(decide_resume(make_error_code(penne::errc::timeout), nullptr, 17),
              resume_decision::resume);
    // Cancellation and protocol garbage are not resumable.
    EXPECT_EQ(decide_resume(ae::operation_aborted, nullptr, 17), resume_decision::fail);
    EXPECT_EQ(decide_resume(make_error_code(penne::errc::cancelled), nullptr, 17),
              resume_decision::fail);
    EXPECT_EQ(decide_resume(make_error_code(client_errc::malformed_message), nullptr, 17),
              resume_decision::fail);
}

TEST(Resume, ModernServersUseTheLabel) {
    server_error labelled(
        R"({"ok": 0, "code": 10107, "errorLabels": ["ResumableChangeStreamError"]})");
    EXPECT_EQ(decide_resume(labelled.ec, &labelled.reply, 17), resume_decision::resume);
    // A code from the legacy list without the label is not resumable on 4.4+.
    server_error unlabelled(R"({"ok": 0, "code": 10107})");
    EXPECT_EQ(decide_resume(unlabelled.ec, &unlabelled.reply, 9), resume_decision::fail);
    // Any code with the label resumes.
    server_error odd(R"({"ok": 0, "code": 12345, "errorLabels": ["ResumableChangeStreamError"]})");
    EXPECT_EQ(decide_resume(odd.ec, &odd.reply, 13), resume_decision::resume);
}

TEST(Resume, OldServersUseTheCodeList) {
    server_error stepped(R"({"ok": 0, "code": 189})");
    EXPECT_EQ(decide_resume(stepped.ec, &stepped.reply, 8), resume_decision::resume);
    server_error dup(R"({"ok": 0, "code": 11000})");
    EXPECT_EQ(decide_resume(dup.ec, &dup.reply, 8), resume_decision::fail);
    server_error nonres(
        R"({"ok": 0, "code": 189, "errorLabels": ["NonResumableChangeStreamError"]})");
    EXPECT_EQ(decide_resume(nonres.ec, &nonres.reply, 8), resume_decision::fail);
}

TEST(Resume, CursorNotFoundAlwaysResumes) {
    server_error cnf(R"({"ok": 0, "code": 43})");
    EXPECT_EQ(decide_resume(cnf.ec, &cnf.reply, 6), resume_decision::resume);
    EXPECT_EQ(decide_resume(cnf.ec, &cnf.reply, 21), resume_decision::resume);
}

TEST(Resume, HistoryLostIsItsOwnOutcome) {
    server_error lost(
        R"({"ok": 0, "code": 286, "errorLabels": ["NonResumableChangeStreamError"]})");
    EXPECT_EQ(decide_resume(lost.ec, &lost.reply, 17), resume_decision::history_lost);
    server_error fatal(R"({"ok": 0, "code": 280})");
    EXPECT_EQ(decide_resume(fatal.ec, &fatal.reply, 17), resume_decision::history_lost);
}

TEST(Resume, StartOptionChoice) {
    resume_token tok(json(R"({"_data": "AB"})").bytes());
    change_stream_spec spec;
    spec.start_at_operation_time = cluster_time{1, 1};

    resume_position pos;
    pos.cached = tok;
    apply_resume_position(spec, pos, 17);
    ASSERT_TRUE(spec.resume_after);
    EXPECT_EQ(*spec.resume_after, tok);
    EXPECT_FALSE(spec.start_after);
    EXPECT_FALSE(spec.start_at_operation_time);

    pos.started_after = true;  // startAfter and no event yet: keep startAfter
    apply_resume_position(spec, pos, 17);
    EXPECT_TRUE(spec.start_after);
    EXPECT_FALSE(spec.resume_after);
    pos.saw_event = true;
    apply_resume_position(spec, pos, 17);
    EXPECT_TRUE(spec.resume_after);

    resume_position no_token;
    no_token.operation_time = cluster_time{50, 2};
    apply_resume_position(spec, no_token, 17);
    EXPECT_FALSE(spec.resume_after);
    ASSERT_TRUE(spec.start_at_operation_time);
    EXPECT_EQ(*spec.start_at_operation_time, (cluster_time{50, 2}));
    apply_resume_position(spec, no_token, 6);  // 3.6 has no startAtOperationTime
    EXPECT_FALSE(spec.start_at_operation_time);

    apply_resume_position(spec, resume_position{}, 17);
    EXPECT_FALSE(spec.resume_after || spec.start_after || spec.start_at_operation_time);
}

TEST(Resume, BackoffIsCappedExponential) {
    backoff b(std::chrono::milliseconds(100), std::chrono::milliseconds(1000));
    std::vector<long> seen;
    for (int i = 0; i < 7; ++i)
        seen.push_back(static_cast<long>(b.next().count()));
    EXPECT_EQ(seen, (std::vector<long>{100, 200, 400, 800, 1000, 1000, 1000}));
    EXPECT_EQ(b.attempts(), 7);
    b.reset();
    EXPECT_EQ(b.next().count(), 100);
}

}  // namespace
}  // namespace penne::mongo
