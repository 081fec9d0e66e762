// The credentials chain's network providers over the real Beast client (make_fetcher),
// against the scriptable HTTP peer's fake EC2 IMDSv2, ECS and STS endpoints: the requests
// penne sends (token PUT with its TTL header, the token on the role lookups, the ECS
// Authorization header, the STS form) are checked by the peer, which answers only when they
// are right.
#include <penne/http/client.hpp>
#include <penne/s3/client.hpp>
#include <penne/s3/credentials.hpp>

#include "http_peer.hpp"
#include "temp_dir.hpp"

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <fstream>
#include <map>

namespace {

namespace asio = boost::asio;
using penne::diagnostics;
using penne::error_code;
using penne::test::http_peer;

class credentials_http : public ::testing::Test {
protected:
    struct result {
        error_code ec;
        penne::http::credentials creds;
        std::string source;
        diagnostics diag;
    };

    result fetch(std::map<std::string, std::string, std::less<>> vars) {
        vars.emplace("HOME", dir.path().string());  // no shared files of the machine's user
        asio::io_context ctx;
        penne::http::client http(ctx.get_executor(), {});
        penne::s3::chain_options opts;
        opts.sts_region = "us-east-1";
        auto chain = penne::s3::credentials_chain::default_chain(
            ctx.get_executor(), opts, penne::s3::fixed_environment(std::move(vars)),
            penne::s3::make_fetcher(http));
        result r;
        asio::co_spawn(
            ctx, [&]() -> asio::awaitable<void> { r.ec = co_await chain.get(r.creds, r.diag); },
            asio::detached);
        ctx.run();
        r.source = chain.source();
        return r;
    }

    std::string base() const { return "http://127.0.0.1:" + std::to_string(peer.port()); }

    penne::test::temp_dir dir{"credentials-http"};
    http_peer peer{dir};
};

TEST_F(credentials_http, ec2_instance_metadata_v2) {
    auto r = fetch({{"AWS_EC2_METADATA_SERVICE_ENDPOINT", base()}});
    ASSERT_FALSE(r.ec) << r.ec.message() << ": " << r.diag.message;
    EXPECT_EQ(r.creds.access_key_id, "ASIAIMDSEXAMPLE");
    EXPECT_EQ(r.creds.secret_access_key, "imds-secret-key");
    EXPECT_EQ(r.creds.session_token, "imds-session-token");
    EXPECT_NE(r.source.find("imds"), std::string::npos) << r.source;
}

TEST_F(credentials_http, ecs_container_credentials_with_the_authorization_token) {
    auto r = fetch({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", base() + "/ecs/credentials"},
                    {"AWS_CONTAINER_AUTHORIZATION_TOKEN", "ecs-auth-token"},
                    {"AWS_EC2_METADATA_DISABLED", "true"}});
    ASSERT_FALSE(r.ec) << r.ec.message() << ": " << r.diag.message;
    EXPECT_EQ(r.creds.access_key_id, "ASIAECSEXAMPLE");
    EXPECT_EQ(r.creds.session_token, "ecs-session-token");

    // The token from a file (EKS Pod Identity) works the same; a wrong one is refused with
    // a message that names the variable to check and not the token.
    {
        std::ofstream f(dir / "ecs-token");
        f << "ecs-auth-token";
    }
    r = fetch({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", base() + "/ecs/credentials"},
               {"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", dir / "ecs-token"},
               {"AWS_EC2_METADATA_DISABLED", "true"}});
    ASSERT_FALSE(r.ec) << r.ec.message() << ": " << r.diag.message;
    r = fetch({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", base() + "/ecs/credentials"},
               {"AWS_CONTAINER_AUTHORIZATION_TOKEN", "wrong-token-value"},
               {"AWS_EC2_METADATA_DISABLED", "true"}});
    EXPECT_TRUE(r.ec);
    EXPECT_NE(r.diag.message.find("AWS_CONTAINER_AUTHORIZATION_TOKEN"), std::string::npos)
        << r.diag.message;
    EXPECT_EQ(r.diag.message.find("wrong-token-value"), std::string::npos) << r.diag.message;
}

TEST_F(credentials_http, web_identity_through_sts) {
    {
        std::ofstream f(dir / "web-token");
        f << "web-identity-token";
    }
    auto r = fetch({{"AWS_WEB_IDENTITY_TOKEN_FILE", dir / "web-token"},
                    {"AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/penne"},
                    {"AWS_ENDPOINT_URL_STS", base() + "/sts"},
                    {"AWS_EC2_METADATA_DISABLED", "true"}});
    ASSERT_FALSE(r.ec) << r.ec.message() << ": " << r.diag.message;
    EXPECT_EQ(r.creds.access_key_id, "ASIASTSEXAMPLE");
    EXPECT_EQ(r.creds.secret_access_key, "sts-secret-key");
    EXPECT_EQ(r.creds.session_token, "sts-session-token");

    {
        std::ofstream f(dir / "web-token");
        f << "a-token-sts-refuses";
    }
    r = fetch({{"AWS_WEB_IDENTITY_TOKEN_FILE", dir / "web-token"},
               {"AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/penne"},
               {"AWS_ENDPOINT_URL_STS", base() + "/sts"},
               {"AWS_EC2_METADATA_DISABLED", "true"}});
    EXPECT_TRUE(r.ec);
    EXPECT_NE(r.diag.message.find("InvalidIdentityToken"), std::string::npos) << r.diag.message;
    EXPECT_EQ(r.diag.message.find("a-token-sts-refuses"), std::string::npos) << r.diag.message;
}

TEST_F(credentials_http, nothing_configured_says_how_to_configure) {
    auto r = fetch({{"AWS_EC2_METADATA_DISABLED", "true"}});
    EXPECT_TRUE(r.ec);
    EXPECT_NE(r.diag.message.find("AWS_ACCESS_KEY_ID"), std::string::npos) << r.diag.message;
}

}  // namespace
