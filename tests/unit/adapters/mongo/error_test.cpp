#include <penne/mongo/error.hpp>

#include <gtest/gtest.h>
#include <boost/asio/error.hpp>

namespace penne::mongo {
namespace {

TEST(Error, ServerCodesClassified) {
    for (int code : {6, 7, 43, 63, 89, 91, 133, 150, 189, 234, 262, 9001, 10107, 11600, 11602,
                     13388, 13435, 13436}) {
        EXPECT_TRUE(penne::is_retryable(make_server_error(code))) << code;
    }
    for (int code : {2, 11000, 13, 18, 26, 40573, 286, 280}) {
        EXPECT_TRUE(penne::is_fatal(make_server_error(code))) << code;
    }
    EXPECT_TRUE(is_server_error(make_server_error(43)));
    EXPECT_EQ(make_server_error(43).value(), 43);
    EXPECT_EQ(make_server_error(0), client_errc::command_failed);
}

TEST(Error, ClientConditionsClassified) {
    EXPECT_TRUE(penne::is_retryable(make_error_code(client_errc::connection_closed)));
    EXPECT_TRUE(penne::is_retryable(make_error_code(client_errc::no_primary)));
    EXPECT_TRUE(penne::is_fatal(make_error_code(client_errc::malformed_message)));
    EXPECT_TRUE(penne::is_fatal(make_error_code(client_errc::invalid_uri)));
    EXPECT_TRUE(penne::is_fatal(make_error_code(client_errc::missing_resume_token)));
    EXPECT_FALSE(is_server_error(make_error_code(client_errc::busy)));
    EXPECT_EQ(std::string(error_category().name()), "penne.mongo");
    EXPECT_NE(make_error_code(client_errc::message_too_large).message().find("maxMessageSize"),
              std::string::npos);
}

TEST(Error, LegacyResumableList) {
    for (int code : {6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436, 63, 150,
                     13388, 234, 133}) {
        EXPECT_TRUE(is_legacy_resumable_code(code)) << code;
    }
    EXPECT_FALSE(is_legacy_resumable_code(43));  // handled on its own, on every version
    EXPECT_FALSE(is_legacy_resumable_code(286));
    EXPECT_FALSE(is_legacy_resumable_code(11000));
}

}  // namespace
}  // namespace penne::mongo
