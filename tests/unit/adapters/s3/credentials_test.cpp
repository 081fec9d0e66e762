// The credentials chain: shared files, environment, chain order and skipping, refresh with an
// injected clock, single flight, keep-old-on-failure, and the STS/ECS/IMDS flows against a
// scripted fetcher that checks every request byte for byte. Every diagnostic and source()
// text is checked for leaked secrets.
#include <penne/s3/credentials.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <gtest/gtest.h>

#include <stdlib.h>

#include <chrono>
#include <deque>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace penne::s3 {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using std::chrono::system_clock;

// ---------------------------------------------------------------------------------------------
// Test data. Every secret below must never show up in a message.

constexpr const char* file_secret = "fileSECRETwJalrXUtnFEMIK7MDENGbPxRfiCY";
constexpr const char* file_token = "fileTOKENIQoJb3JpZ2luX2VjEJr//////////wEaCXVz";
constexpr const char* env_secret = "envSECRETwJalrXUtnFEMIK7MDENGbPxRfiCY";
constexpr const char* env_token = "envTOKENIQoJb3JpZ2luX2VjEJr//////";
constexpr const char* sts_secret = "stsSECRET9drTJvcXLB89EXAMPLELB8923FWjlcb";
constexpr const char* sts_token = "stsTOKENAQoDYXdzEE0a8ANXXXXXXXXNO1ewxE5TijQyp";
constexpr const char* web_token = "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEyMyJ9.WEBTOKEN.c2lnbmF0dXJl";
constexpr const char* web_token2 = "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEyMyJ9.ROTATED.c2lnbmF0dXJl";
constexpr const char* ecs_secret = "ecsSECRETs3cr3tK3yF0rTh3C0nta1n3r";
constexpr const char* ecs_token = "ecsTOKENIQoJb3JpZ2luX2VjEC0aCXVzLWVhc3Qt";
constexpr const char* ecs_auth = "ecsAUTHORIZATIONtokenZm9vYmFyYmF6";
constexpr const char* imds_secret = "imdsSECRETs3cr3tK3yF0rTh3Inst4nc3";
constexpr const char* imds_token = "imdsSESSIONtokenIQoJb3JpZ2luX2VjEC0a";
constexpr const char* imds_api_token = "AQAEAImdsApiTokenForTheSessionXYZ==";

void expect_clean(const std::string& text) {
    for (const char* s :
         {file_secret, file_token, env_secret, env_token, sts_secret, sts_token, web_token,
          web_token2, ecs_secret, ecs_token, ecs_auth, imds_secret, imds_token, imds_api_token}) {
        EXPECT_EQ(text.find(s), std::string::npos)
            << "a secret leaked into: " << text.size() << " bytes of text";
    }
}

const system_clock::time_point t0 =
    std::chrono::sys_days{std::chrono::year{2026} / std::chrono::December / 6} + 10h;

// ---------------------------------------------------------------------------------------------
// Running coroutines.

error_code run(asio::awaitable<error_code> op) {
    asio::io_context ctx;
    std::optional<error_code> result;
    asio::co_spawn(ctx, std::move(op), [&](std::exception_ptr e, error_code ec) {
        if (e)
            std::rethrow_exception(e);
        result = ec;
    });
    ctx.run();
    if (!result)
        throw std::runtime_error("operation did not complete");
    return *result;
}

struct fetched {
    error_code ec;
    timed_credentials creds;
    diagnostics diag;
};

fetched fetch(credentials_provider& p) {
    fetched f;
    f.ec = run(p.fetch(f.creds, f.diag));
    expect_clean(f.diag.message);
    expect_clean(f.creds.source);
    return f;
}

struct got {
    error_code ec;
    http::credentials creds;
    diagnostics diag;
};

asio::awaitable<error_code> get_into(credentials_chain& chain, got& g) {
    co_await asio::this_coro::throw_if_cancelled(false);
    auto ec = co_await chain.get(g.creds, g.diag);
    g.ec = ec;
    co_return ec;
}

// get() on a chain whose strand lives on `ctx`.
got get(asio::io_context& ctx, credentials_chain& chain) {
    got g;
    std::optional<error_code> done;
    asio::co_spawn(ctx, get_into(chain, g), [&](std::exception_ptr e, error_code ec) {
        if (e)
            std::rethrow_exception(e);
        done = ec;
    });
    ctx.restart();
    ctx.run();
    if (!done)
        throw std::runtime_error("get did not complete");
    expect_clean(g.diag.message);
    expect_clean(chain.source());
    return g;
}

// ---------------------------------------------------------------------------------------------
// Files and environment.

class scratch_dir {
public:
    scratch_dir() {
        std::string tmpl = (fs::temp_directory_path() / "penne-creds-test-XXXXXX").string();
        if (!::mkdtemp(tmpl.data()))
            throw std::runtime_error("mkdtemp failed");
        path_ = tmpl;
    }
    ~scratch_dir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    scratch_dir(const scratch_dir&) = delete;
    scratch_dir& operator=(const scratch_dir&) = delete;

    std::string write(const std::string& rel, const std::string& text) const {
        const auto p = path_ / rel;
        fs::create_directories(p.parent_path());
        std::ofstream(p, std::ios::binary) << text;
        return p.string();
    }
    std::string path() const { return path_.string(); }

private:
    fs::path path_;
};

using vars = std::map<std::string, std::string, std::less<>>;

// ---------------------------------------------------------------------------------------------
// The scripted fetcher: each expected exchange asserts the exact request and answers.

struct exchange {
    std::string method;
    std::string url;
    std::vector<http::header_field> headers;
    std::string body;
    std::chrono::milliseconds timeout{0};  // 0: not checked
    unsigned status = 200;
    std::string response;
    error_code transport_error;
};

struct script {
    std::deque<exchange> expected;
    std::vector<http_fetch_request> seen;
    void expect(exchange e) { expected.push_back(std::move(e)); }
};

http_fetcher scripted(std::shared_ptr<script> s) {
    return [s](const http_fetch_request& req, http_fetch_response& resp,
               diagnostics& diag) -> asio::awaitable<error_code> {
        s->seen.push_back(req);
        if (s->expected.empty()) {
            ADD_FAILURE() << "unexpected request " << req.method << " " << req.url;
            co_return make_error_code(asio::error::connection_refused);
        }
        exchange e = std::move(s->expected.front());
        s->expected.pop_front();
        EXPECT_EQ(req.method, e.method);
        EXPECT_EQ(req.url, e.url);
        EXPECT_EQ(req.headers.size(), e.headers.size()) << req.url;
        for (std::size_t i = 0; i < std::min(req.headers.size(), e.headers.size()); ++i) {
            EXPECT_EQ(req.headers[i].name, e.headers[i].name);
            EXPECT_EQ(req.headers[i].value, e.headers[i].value);
        }
        EXPECT_EQ(req.body, e.body);
        if (e.timeout.count() != 0) {
            EXPECT_EQ(req.timeout, e.timeout);
        }
        if (e.transport_error) {
            diag.message = "scripted transport failure";
            co_return e.transport_error;
        }
        resp.status = e.status;
        resp.body = e.response;
        co_return error_code{};
    };
}

// ---------------------------------------------------------------------------------------------
// Errors.

TEST(CredentialsErrors, CategoryClassifiesRetries) {
    EXPECT_STREQ(credentials_category().name(), "penne.s3.credentials");
    EXPECT_TRUE(is_retryable(make_error_code(credentials_errc::service_unavailable)));
    EXPECT_TRUE(is_retryable(make_error_code(credentials_errc::expired)));
    for (auto e : {credentials_errc::not_configured, credentials_errc::no_credentials,
                   credentials_errc::invalid_configuration, credentials_errc::profile_not_found,
                   credentials_errc::file_unreadable, credentials_errc::file_malformed,
                   credentials_errc::service_rejected, credentials_errc::malformed_response}) {
        EXPECT_TRUE(is_fatal(make_error_code(e))) << static_cast<int>(e);
        EXPECT_FALSE(make_error_code(e).message().empty());
    }
    error_code ec = credentials_errc::no_credentials;
    EXPECT_EQ(ec, credentials_errc::no_credentials);
}

// ---------------------------------------------------------------------------------------------
// Static and environment providers.

TEST(StaticProvider, ReturnsConfiguredKeysAndRejectsHalfAPair) {
    auto p = make_static_provider({"AKIASTATIC", env_secret, env_token});
    auto f = fetch(*p);
    ASSERT_FALSE(f.ec) << f.diag.message;
    EXPECT_EQ(f.creds.creds.access_key_id, "AKIASTATIC");
    EXPECT_EQ(f.creds.creds.secret_access_key, env_secret);
    EXPECT_EQ(f.creds.creds.session_token, env_token);
    EXPECT_FALSE(f.creds.expiration);
    EXPECT_EQ(f.creds.source, "static config");
    EXPECT_EQ(p->name(), "static config");

    EXPECT_EQ(fetch(*make_static_provider({})).ec, credentials_errc::not_configured);
    auto half = fetch(*make_static_provider({"AKIASTATIC", "", ""}));
    EXPECT_EQ(half.ec, credentials_errc::invalid_configuration);
    EXPECT_NE(half.diag.message.find("no secret access key"), std::string::npos);
    auto other = fetch(*make_static_provider({"", env_secret, ""}));
    EXPECT_EQ(other.ec, credentials_errc::invalid_configuration);
    EXPECT_NE(other.diag.message.find("no access key id"), std::string::npos);
}

TEST(EnvironmentProvider, ReadsTheThreeVariables) {
    auto p = make_environment_provider(fixed_environment({{"AWS_ACCESS_KEY_ID", "AKIAENV"},
                                                          {"AWS_SECRET_ACCESS_KEY", env_secret},
                                                          {"AWS_SESSION_TOKEN", env_token}}));
    auto f = fetch(*p);
    ASSERT_FALSE(f.ec) << f.diag.message;
    EXPECT_EQ(f.creds.creds.access_key_id, "AKIAENV");
    EXPECT_EQ(f.creds.creds.secret_access_key, env_secret);
    EXPECT_EQ(f.creds.creds.session_token, env_token);
    EXPECT_EQ(f.creds.source, "environment");

    auto no_token = fetch(*make_environment_provider(fixed_environment(
        {{"AWS_ACCESS_KEY_ID", "AKIAENV"}, {"AWS_SECRET_ACCESS_KEY", env_secret}})));
    ASSERT_FALSE(no_token.ec);
    EXPECT_TRUE(no_token.creds.creds.session_token.empty());
}

TEST(EnvironmentProvider, PartialVariablesAreAClearError) {
    auto none = fetch(*make_environment_provider(fixed_environment({})));
    EXPECT_EQ(none.ec, credentials_errc::not_configured);
    // Empty values count as unset.
    auto empty = fetch(*make_environment_provider(
        fixed_environment({{"AWS_ACCESS_KEY_ID", ""}, {"AWS_SECRET_ACCESS_KEY", ""}})));
    EXPECT_EQ(empty.ec, credentials_errc::not_configured);

    auto id_only = fetch(*make_environment_provider(
        fixed_environment({{"AWS_ACCESS_KEY_ID", "AKIAENV"}, {"AWS_SESSION_TOKEN", env_token}})));
    EXPECT_EQ(id_only.ec, credentials_errc::invalid_configuration);
    EXPECT_NE(id_only.diag.message.find("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is "
                                        "not"),
              std::string::npos)
        << id_only.diag.message;

    auto secret_only = fetch(
        *make_environment_provider(fixed_environment({{"AWS_SECRET_ACCESS_KEY", env_secret}})));
    EXPECT_EQ(secret_only.ec, credentials_errc::invalid_configuration);
    EXPECT_NE(secret_only.diag.message.find("AWS_ACCESS_KEY_ID is not"), std::string::npos);

    auto token_only =
        fetch(*make_environment_provider(fixed_environment({{"AWS_SESSION_TOKEN", env_token}})));
    EXPECT_EQ(token_only.ec, credentials_errc::invalid_configuration);
    EXPECT_NE(token_only.diag.message.find("AWS_SESSION_TOKEN is set"), std::string::npos);
}

TEST(Environment, SystemEnvironmentReadsGetenv) {
    ::setenv("PENNE_CREDS_TEST_VAR", "value-1", 1);
    auto env = system_environment();
    EXPECT_EQ(env("PENNE_CREDS_TEST_VAR"), std::optional<std::string>("value-1"));
    ::unsetenv("PENNE_CREDS_TEST_VAR");
    EXPECT_FALSE(env("PENNE_CREDS_TEST_VAR"));
}

// ---------------------------------------------------------------------------------------------
// Shared files.

class SharedFiles : public ::testing::Test {
protected:
    scratch_dir home;
    vars env{{"HOME", home.path()}};

    void credentials_file(const std::string& text) { home.write(".aws/credentials", text); }
    void config_file(const std::string& text) { home.write(".aws/config", text); }
    fetched fetch_profile(std::string profile = {}) {
        auto p = make_profile_provider(fixed_environment(env), std::move(profile));
        return fetch(*p);
    }
};

TEST_F(SharedFiles, DefaultProfileWithCommentsWhitespaceAndCase) {
    credentials_file(std::string("\xEF\xBB\xBF") +
                     "# leading comment\r\n"
                     "; another comment\r\n"
                     "\r\n"
                     "[other]\r\n"
                     "aws_access_key_id = AKIAOTHER\r\n"
                     "aws_secret_access_key = other-secret-value\r\n"
                     "  [default]   # the default profile\r\n"
                     "   AWS_Access_Key_ID   =   AKIADEFAULT   \r\n"
                     "aws_secret_access_key=" +
                     file_secret +
                     " ; inline comment\r\n"
                     "aws_session_token =\t" +
                     file_token + "\t# comment\r\n");
    auto f = fetch_profile();
    ASSERT_FALSE(f.ec) << f.diag.message;
    EXPECT_EQ(f.creds.creds.access_key_id, "AKIADEFAULT");
    EXPECT_EQ(f.creds.creds.secret_access_key, file_secret);
    EXPECT_EQ(f.creds.creds.session_token, file_token);
    EXPECT_FALSE(f.creds.expiration);
    EXPECT_EQ(f.creds.source, "profile default (~/.aws/credentials)");
}

TEST_F(SharedFiles, NamedProfileFromAwsProfileInTheConfigFile) {
    config_file(
        "[default]\n"
        "region = us-east-1\n"
        "[profile dev]\n"
        "region = eu-west-1\n"
        "s3 =\n"
        "  addressing_style = path\n"
        "  max_concurrent_requests = 4\n"
        "aws_access_key_id = AKIADEV\n"
        "aws_secret_access_key = " +
        std::string(file_secret) +
        "\n"
        "[sso-session corp]\n"
        "sso_region = us-east-1\n"
        "  nested = ignored\n"
        "[dev]\n"
        "aws_access_key_id = AKIA-NOT-A-PROFILE-IN-CONFIG\n");
    env["AWS_PROFILE"] = "dev";
    auto f = fetch_profile();
    ASSERT_FALSE(f.ec) << f.diag.message;
    EXPECT_EQ(f.creds.creds.access_key_id, "AKIADEV");
    EXPECT_EQ(f.creds.creds.secret_access_key, file_secret);
    EXPECT_TRUE(f.creds.creds.session_token.empty());
    EXPECT_EQ(f.creds.source, "profile dev (~/.aws/config)");
    EXPECT_EQ(resolve_region(fixed_environment(env)), "eu-west-1");
}

TEST_F(SharedFiles, CredentialsFileWinsOverConfigAndProfileArgumentWinsOverAwsProfile) {
    config_file(
        "[profile dev]\naws_access_key_id = AKIACONFIG\naws_secret_access_key = x1234567\n"
        "[profile default]\naws_access_key_id = AKIAPROFILEDEFAULT\n"
        "aws_secret_access_key = y1234567\n");
    credentials_file("[dev]\naws_access_key_id = AKIACREDS\naws_secret_access_key = " +
                     std::string(file_secret) + "\n[profile dev]\naws_access_key_id = AKIAWRONG\n");
    env["AWS_PROFILE"] = "nonexistent";
    auto f = fetch_profile("dev");
    ASSERT_FALSE(f.ec) << f.diag.message;
    EXPECT_EQ(f.creds.creds.access_key_id, "AKIACREDS");
    EXPECT_EQ(f.creds.creds.secret_access_key, file_secret);
    EXPECT_EQ(f.creds.source, "profile dev (~/.aws/credentials)");

    env.erase("AWS_PROFILE");
    auto d = fetch_profile();  // [profile default] in the config file is the default profile
    ASSERT_FALSE(d.ec) << d.diag.message;
    EXPECT_EQ(d.creds.creds.access_key_id, "AKIAPROFILEDEFAULT");
}

TEST_F(SharedFiles, MissingFieldNamesTheFileAndTheProfile) {
    credentials_file("[dev]\naws_access_key_id = AKIADEV\n");
    config_file("[profile ops]\naws_secret_access_key = " + std::string(file_secret) + "\n");
    auto f = fetch_profile("dev");
    EXPECT_EQ(f.ec, credentials_errc::invalid_configuration);
    EXPECT_EQ(f.diag.message,
              "profile dev in ~/.aws/credentials has aws_access_key_id but no "
              "aws_secret_access_key");
    auto o = fetch_profile("ops");
    EXPECT_EQ(o.ec, credentials_errc::invalid_configuration);
    EXPECT_EQ(o.diag.message,
              "profile ops in ~/.aws/config has aws_secret_access_key but no aws_access_key_id");
}

TEST_F(SharedFiles, ProfileNotFoundAndDefaultNotConfigured) {
    // No files at all: the default profile is simply not configured.
    auto none = fetch_profile();
    EXPECT_EQ(none.ec, credentials_errc::not_configured);
    EXPECT_EQ(none.diag.message, "neither ~/.aws/credentials nor ~/.aws/config exists");

    credentials_file("[prod]\naws_access_key_id = AKIAPROD\naws_secret_access_key = s1234567\n");
    auto no_default = fetch_profile();
    EXPECT_EQ(no_default.ec, credentials_errc::not_configured);
    EXPECT_NE(no_default.diag.message.find("no [default] profile"), std::string::npos);

    env["AWS_PROFILE"] = "staging";
    auto named = fetch_profile();
    EXPECT_EQ(named.ec, credentials_errc::profile_not_found);
    EXPECT_EQ(named.diag.message,
              "profile staging (selected by AWS_PROFILE) is in neither ~/.aws/credentials nor "
              "~/.aws/config");
}

TEST_F(SharedFiles, ProfileWithoutCredentials) {
    config_file("[default]\nregion = eu-central-1\n[profile tools]\noutput = json\n");
    auto d = fetch_profile();
    EXPECT_EQ(d.ec, credentials_errc::not_configured);  // so the chain goes on to ECS/IMDS
    auto t = fetch_profile("tools");
    EXPECT_EQ(t.ec, credentials_errc::invalid_configuration);
    EXPECT_NE(t.diag.message.find("profile tools in ~/.aws/config has no credentials"),
              std::string::npos)
        << t.diag.message;
}

TEST_F(SharedFiles, UnsupportedRoleSourcesAreNamed) {
    config_file(
        "[profile chained]\nrole_arn = arn:aws:iam::123456789012:role/r\nsource_profile = base\n"
        "[profile proc]\ncredential_process = /usr/bin/get-creds\n"
        "[profile sso]\nsso_session = corp\n"
        "[profile half]\nweb_identity_token_file = /tmp/token\n");
    auto c = fetch_profile("chained");
    EXPECT_EQ(c.ec, credentials_errc::invalid_configuration);
    EXPECT_NE(c.diag.message.find("source_profile"), std::string::npos);
    EXPECT_NE(fetch_profile("proc").diag.message.find("credential_process"), std::string::npos);
    EXPECT_NE(fetch_profile("sso").diag.message.find("SSO"), std::string::npos);
    auto h = fetch_profile("half");
    EXPECT_EQ(h.ec, credentials_errc::invalid_configuration);
    EXPECT_NE(h.diag.message.find("no role_arn"), std::string::npos);
}

TEST_F(SharedFiles, MalformedLinesNameTheLineButNeverQuoteIt) {
    credentials_file("[default]\naws_access_key_id = AKIA\n" + std::string(file_secret) + "\n");
    auto f = fetch_profile();
    EXPECT_EQ(f.ec, credentials_errc::file_malformed);
    EXPECT_EQ(f.diag.message,
              "~/.aws/credentials line 3: expected `name = value`, a [section] header or a "
              "comment");

    credentials_file("aws_secret_access_key = " + std::string(file_secret) + "\n[default]\n");
    auto before = fetch_profile();
    EXPECT_EQ(before.ec, credentials_errc::file_malformed);
    EXPECT_NE(before.diag.message.find("line 1: a property before any [section]"),
              std::string::npos);

    credentials_file("[default\n");
    EXPECT_EQ(fetch_profile().ec, credentials_errc::file_malformed);
    credentials_file("[]\n");
    EXPECT_EQ(fetch_profile().ec, credentials_errc::file_malformed);
    credentials_file("[default] trailing\n");
    EXPECT_EQ(fetch_profile().ec, credentials_errc::file_malformed);
    credentials_file("[default]\n = value\n");
    EXPECT_EQ(fetch_profile().ec, credentials_errc::file_malformed);
}

TEST_F(SharedFiles, EnvironmentOverridesThePaths) {
    const auto creds = home.write("elsewhere/creds.ini",
                                  "[ci]\naws_access_key_id = AKIACI\naws_secret_access_key = " +
                                      std::string(file_secret) + "\n");
    home.write("elsewhere/config.ini", "[profile ci]\nregion = ap-south-1\n");
    // Files at the default location are not read once the variables are set.
    credentials_file("[ci]\naws_access_key_id = AKIAWRONG\naws_secret_access_key = wrong123\n");
    env["AWS_SHARED_CREDENTIALS_FILE"] = creds;
    env["AWS_CONFIG_FILE"] = "~/elsewhere/config.ini";  // ~ expands to HOME
    env["AWS_PROFILE"] = "ci";
    auto f = fetch_profile();
    ASSERT_FALSE(f.ec) << f.diag.message;
    EXPECT_EQ(f.creds.creds.access_key_id, "AKIACI");
    EXPECT_EQ(f.creds.source, "profile ci (" + creds + ")");
    EXPECT_EQ(resolve_region(fixed_environment(env)), "ap-south-1");

    // A file named by a variable must exist.
    env["AWS_CONFIG_FILE"] = home.path() + "/missing.ini";
    auto m = fetch_profile();
    EXPECT_EQ(m.ec, credentials_errc::file_unreadable);
    EXPECT_EQ(m.diag.message,
              "AWS_CONFIG_FILE names " + home.path() + "/missing.ini, which does not exist");

    // A directory is not a file.
    env["AWS_CONFIG_FILE"] = home.path();
    auto dir = fetch_profile();
    EXPECT_EQ(dir.ec, credentials_errc::file_unreadable);
    EXPECT_NE(dir.diag.message.find("cannot read AWS config file"), std::string::npos);
}

TEST_F(SharedFiles, RegionAndEndpointResolutionOrder) {
    config_file(
        "[default]\nregion = us-west-2\nendpoint_url = http://127.0.0.1:9000\n"
        "[profile b]\nregion = eu-north-1\n");
    EXPECT_EQ(resolve_region(fixed_environment(env)), "us-west-2");
    EXPECT_EQ(resolve_region(fixed_environment(env), "b"), "eu-north-1");
    EXPECT_FALSE(resolve_region(fixed_environment(env), "missing"));
    env["AWS_DEFAULT_REGION"] = "ca-central-1";
    EXPECT_EQ(resolve_region(fixed_environment(env)), "ca-central-1");
    env["AWS_REGION"] = "sa-east-1";
    EXPECT_EQ(resolve_region(fixed_environment(env)), "sa-east-1");

    EXPECT_EQ(resolve_endpoint_url(fixed_environment(env)), "http://127.0.0.1:9000");
    EXPECT_FALSE(resolve_endpoint_url(fixed_environment(env), "b"));
    env["AWS_ENDPOINT_URL"] = "http://all.example";
    EXPECT_EQ(resolve_endpoint_url(fixed_environment(env)), "http://all.example");
    env["AWS_ENDPOINT_URL_S3"] = "http://s3.example";
    EXPECT_EQ(resolve_endpoint_url(fixed_environment(env)), "http://s3.example");
    env["AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"] = "TRUE";
    EXPECT_FALSE(resolve_endpoint_url(fixed_environment(env)));

    // Nothing at all: no HOME, no variables.
    EXPECT_FALSE(resolve_region(fixed_environment({})));
    EXPECT_FALSE(resolve_endpoint_url(fixed_environment({})));
}

// ---------------------------------------------------------------------------------------------
// The chain, with providers scripted in the test.

struct provider_script {
    struct step {
        error_code ec;
        std::string message;
        timed_credentials creds;
    };
    std::deque<step> steps;
    int calls = 0;
    std::chrono::milliseconds delay{0};  // suspend on a timer before answering
};

class scripted_provider final : public credentials_provider {
public:
    scripted_provider(std::string name, std::shared_ptr<provider_script> s)
        : name_(std::move(name)), s_(std::move(s)) {}
    asio::awaitable<error_code> fetch(timed_credentials& out, diagnostics& diag) override {
        ++s_->calls;
        if (s_->delay.count() > 0) {
            asio::steady_timer t(co_await asio::this_coro::executor);
            t.expires_after(s_->delay);
            co_await t.async_wait(asio::use_awaitable);
        }
        if (s_->steps.empty()) {
            diag.message = "script exhausted";
            co_return make_error_code(credentials_errc::service_rejected);
        }
        auto st = std::move(s_->steps.front());
        s_->steps.pop_front();
        diag.message = st.message;
        if (!st.ec)
            out = st.creds;
        co_return st.ec;
    }
    std::string_view name() const noexcept override { return name_; }

private:
    std::string name_;
    std::shared_ptr<provider_script> s_;
};

timed_credentials creds_of(std::string id, std::optional<system_clock::time_point> exp,
                           std::string source) {
    timed_credentials t;
    t.creds = {std::move(id), sts_secret, sts_token};
    t.expiration = exp;
    t.source = std::move(source);
    return t;
}

provider_script::step ok(std::string id, std::optional<system_clock::time_point> exp = {},
                         std::string source = "scripted") {
    return {{}, {}, creds_of(std::move(id), exp, std::move(source))};
}

provider_script::step err(credentials_errc e, std::string message) {
    return {make_error_code(e), std::move(message), {}};
}

struct chain_fixture {
    asio::io_context ctx;
    std::shared_ptr<system_clock::time_point> now = std::make_shared<system_clock::time_point>(t0);
    clock_function clock() const {
        return [n = now] { return *n; };
    }
};

TEST(CredentialsChain, SkipsUnconfiguredProvidersInOrder) {
    chain_fixture fx;
    auto a = std::make_shared<provider_script>();
    auto b = std::make_shared<provider_script>();
    auto c = std::make_shared<provider_script>();
    a->steps = {err(credentials_errc::not_configured, "A is not set")};
    b->steps = {ok("AKIAB", {}, "b-source")};
    c->steps = {ok("AKIAC")};
    std::vector<std::unique_ptr<credentials_provider>> ps;
    ps.push_back(std::make_unique<scripted_provider>("a", a));
    ps.push_back(std::make_unique<scripted_provider>("b", b));
    ps.push_back(std::make_unique<scripted_provider>("c", c));
    credentials_chain chain(fx.ctx.get_executor(), std::move(ps), fx.clock());
    EXPECT_EQ(chain.source(), "");

    auto g = get(fx.ctx, chain);
    ASSERT_FALSE(g.ec) << g.diag.message;
    EXPECT_EQ(g.creds.access_key_id, "AKIAB");
    EXPECT_TRUE(g.diag.message.empty());
    EXPECT_EQ(chain.source(), "b-source");
    EXPECT_EQ(a->calls, 1);
    EXPECT_EQ(b->calls, 1);
    EXPECT_EQ(c->calls, 0);

    // Long-term keys are not fetched again.
    *fx.now += 48h;
    auto again = get(fx.ctx, chain);
    ASSERT_FALSE(again.ec);
    EXPECT_EQ(again.creds.access_key_id, "AKIAB");
    EXPECT_EQ(b->calls, 1);
}

TEST(CredentialsChain, ConfiguredButFailingProviderStopsTheChain) {
    chain_fixture fx;
    auto a = std::make_shared<provider_script>();
    auto b = std::make_shared<provider_script>();
    a->steps = {err(credentials_errc::file_unreadable, "cannot read token file /t: denied")};
    b->steps = {ok("AKIAB")};
    std::vector<std::unique_ptr<credentials_provider>> ps;
    ps.push_back(std::make_unique<scripted_provider>("web identity", a));
    ps.push_back(std::make_unique<scripted_provider>("imds", b));
    credentials_chain chain(fx.ctx.get_executor(), std::move(ps), fx.clock());
    auto g = get(fx.ctx, chain);
    EXPECT_EQ(g.ec, credentials_errc::file_unreadable);
    EXPECT_EQ(g.diag.message,
              "AWS credentials from web identity: cannot read token file /t: denied");
    EXPECT_EQ(b->calls, 0);
    EXPECT_EQ(chain.source(), "");
}

TEST(CredentialsChain, NothingConfiguredListsWhatWasTried) {
    chain_fixture fx;
    auto a = std::make_shared<provider_script>();
    auto b = std::make_shared<provider_script>();
    a->steps = {err(credentials_errc::not_configured, "X is not set")};
    b->steps = {err(credentials_errc::not_configured, "Y is not set")};
    std::vector<std::unique_ptr<credentials_provider>> ps;
    ps.push_back(std::make_unique<scripted_provider>("first", a));
    ps.push_back(std::make_unique<scripted_provider>("second", b));
    credentials_chain chain(fx.ctx.get_executor(), std::move(ps), fx.clock());
    auto g = get(fx.ctx, chain);
    EXPECT_EQ(g.ec, credentials_errc::no_credentials);
    EXPECT_NE(g.diag.message.find("tried first (X is not set); second (Y is not set)"),
              std::string::npos)
        << g.diag.message;
    EXPECT_NE(g.diag.message.find("AWS_ACCESS_KEY_ID"), std::string::npos);
}

TEST(CredentialsChain, RefreshesBeforeExpiryWithTheInjectedClock) {
    chain_fixture fx;
    auto a = std::make_shared<provider_script>();
    a->steps = {ok("AKIA1", t0 + 1h), ok("AKIA2", t0 + 2h), ok("AKIA3", t0 + 2h + 4min)};
    std::vector<std::unique_ptr<credentials_provider>> ps;
    ps.push_back(std::make_unique<scripted_provider>("a", a));
    credentials_chain chain(fx.ctx.get_executor(), std::move(ps), fx.clock(), 5min);

    EXPECT_EQ(get(fx.ctx, chain).creds.access_key_id, "AKIA1");
    *fx.now = t0 + 54min;
    EXPECT_EQ(get(fx.ctx, chain).creds.access_key_id, "AKIA1");
    *fx.now = t0 + 55min - 1s;
    EXPECT_EQ(get(fx.ctx, chain).creds.access_key_id, "AKIA1");
    EXPECT_EQ(a->calls, 1);
    *fx.now = t0 + 55min;  // exactly refresh_before ahead of expiry
    EXPECT_EQ(get(fx.ctx, chain).creds.access_key_id, "AKIA2");
    EXPECT_EQ(a->calls, 2);

    // Credentials that live shorter than the window are refreshed at half their lifetime.
    *fx.now = t0 + 2h - 5min;
    EXPECT_EQ(get(fx.ctx, chain).creds.access_key_id, "AKIA3");  // expires in 9 min
    *fx.now = t0 + 2h - 5min + 4min;
    EXPECT_EQ(get(fx.ctx, chain).creds.access_key_id, "AKIA3");
    EXPECT_EQ(a->calls, 3);
    *fx.now = t0 + 2h - 5min + 4min + 31s;
    get(fx.ctx, chain);
    EXPECT_EQ(a->calls, 4);
}

TEST(CredentialsChain, KeepsOldCredentialsWhenARefreshFails) {
    chain_fixture fx;
    auto a = std::make_shared<provider_script>();
    a->steps = {ok("AKIAOLD", t0 + 1h, "imds (role app)"),
                err(credentials_errc::service_unavailable, "imds answered HTTP 503"),
                err(credentials_errc::service_unavailable, "imds answered HTTP 503"),
                err(credentials_errc::service_unavailable, "imds answered HTTP 503")};
    std::vector<std::unique_ptr<credentials_provider>> ps;
    ps.push_back(std::make_unique<scripted_provider>("imds", a));
    credentials_chain chain(fx.ctx.get_executor(), std::move(ps), fx.clock(), 5min, 30s);
    ASSERT_FALSE(get(fx.ctx, chain).ec);

    *fx.now = t0 + 56min;
    auto g = get(fx.ctx, chain);
    ASSERT_FALSE(g.ec) << g.diag.message;
    EXPECT_EQ(g.creds.access_key_id, "AKIAOLD");
    EXPECT_EQ(g.creds.secret_access_key, sts_secret);
    EXPECT_EQ(g.diag.message,
              "refreshing AWS credentials failed; still using those from imds (role app) until "
              "they expire at 2026-12-06T11:00:00Z: AWS credentials from imds: imds answered "
              "HTTP 503");
    EXPECT_EQ(chain.source(), "imds (role app)");
    EXPECT_EQ(a->calls, 2);

    // No new attempt (and no repeated warning) until retry_after_failure has passed.
    *fx.now += 29s;
    auto quiet = get(fx.ctx, chain);
    ASSERT_FALSE(quiet.ec);
    EXPECT_TRUE(quiet.diag.message.empty());
    EXPECT_EQ(a->calls, 2);
    *fx.now += 1s;
    auto retried = get(fx.ctx, chain);
    ASSERT_FALSE(retried.ec);
    EXPECT_FALSE(retried.diag.message.empty());
    EXPECT_EQ(a->calls, 3);

    // Once they have expired, the failure is the caller's.
    *fx.now = t0 + 1h;
    auto expired = get(fx.ctx, chain);
    EXPECT_EQ(expired.ec, credentials_errc::service_unavailable);
    EXPECT_EQ(expired.diag.message, "AWS credentials from imds: imds answered HTTP 503");
    EXPECT_EQ(chain.source(), "");
}

TEST(CredentialsChain, InvalidateRefetchesAndNeverFallsBackOnRejectedKeys) {
    chain_fixture fx;
    auto a = std::make_shared<provider_script>();
    a->steps = {ok("AKIA1"), ok("AKIA2"),
                err(credentials_errc::service_rejected, "the source refused")};
    std::vector<std::unique_ptr<credentials_provider>> ps;
    ps.push_back(std::make_unique<scripted_provider>("a", a));
    credentials_chain chain(fx.ctx.get_executor(), std::move(ps), fx.clock());
    EXPECT_EQ(get(fx.ctx, chain).creds.access_key_id, "AKIA1");
    chain.invalidate();
    chain.invalidate();  // several requests saw the rejection: still one refetch
    EXPECT_EQ(get(fx.ctx, chain).creds.access_key_id, "AKIA2");
    EXPECT_EQ(get(fx.ctx, chain).creds.access_key_id, "AKIA2");
    EXPECT_EQ(a->calls, 2);
    chain.invalidate();
    auto g = get(fx.ctx, chain);
    EXPECT_EQ(g.ec, credentials_errc::service_rejected);
    EXPECT_TRUE(g.creds.access_key_id.empty());
    EXPECT_EQ(chain.source(), "");
}

TEST(CredentialsChain, ExpiredOrEmptyCredentialsFromAProviderAreErrors) {
    chain_fixture fx;
    auto a = std::make_shared<provider_script>();
    a->steps = {ok("AKIA1", t0 - 1s, "ecs"), ok("")};
    std::vector<std::unique_ptr<credentials_provider>> ps;
    ps.push_back(std::make_unique<scripted_provider>("ecs", a));
    credentials_chain chain(fx.ctx.get_executor(), std::move(ps), fx.clock());
    auto g = get(fx.ctx, chain);
    EXPECT_EQ(g.ec, credentials_errc::expired);
    EXPECT_TRUE(is_retryable(g.ec));
    EXPECT_EQ(g.diag.message,
              "AWS credentials from ecs expired at 2026-12-06T09:59:59Z before they were used "
              "(now 2026-12-06T10:00:00Z); check the system clock");
    auto e = get(fx.ctx, chain);
    EXPECT_EQ(e.ec, credentials_errc::malformed_response);
}

TEST(CredentialsChain, ConcurrentGetsShareOneRefresh) {
    chain_fixture fx;
    auto a = std::make_shared<provider_script>();
    a->delay = 20ms;
    a->steps = {ok("AKIASHARED", t0 + 1h)};
    std::vector<std::unique_ptr<credentials_provider>> ps;
    ps.push_back(std::make_unique<scripted_provider>("a", a));
    credentials_chain chain(fx.ctx.get_executor(), std::move(ps), fx.clock());
    std::vector<got> results(20);
    for (auto& r : results)
        asio::co_spawn(fx.ctx, get_into(chain, r), asio::detached);
    fx.ctx.run();
    EXPECT_EQ(a->calls, 1);
    for (const auto& r : results) {
        EXPECT_FALSE(r.ec) << r.diag.message;
        EXPECT_EQ(r.creds.access_key_id, "AKIASHARED");
    }
}

TEST(CredentialsChain, ConcurrentGetsFromManyThreadsShareOneRefresh) {
    asio::thread_pool pool(4);
    auto a = std::make_shared<provider_script>();
    a->delay = 20ms;
    a->steps = {ok("AKIATHREADS", t0 + 1h)};
    std::vector<std::unique_ptr<credentials_provider>> ps;
    ps.push_back(std::make_unique<scripted_provider>("a", a));
    credentials_chain chain(pool.get_executor(), std::move(ps), [] { return t0; });
    std::mutex m;
    int ok_count = 0;
    for (int i = 0; i < 64; ++i) {
        asio::co_spawn(
            asio::make_strand(pool),
            [](credentials_chain& c, std::mutex& m, int& n) -> asio::awaitable<void> {
                http::credentials out;
                diagnostics d;
                auto ec = co_await c.get(out, d);
                std::lock_guard lock(m);
                if (!ec && out.access_key_id == "AKIATHREADS")
                    ++n;
            }(chain, m, ok_count),
            asio::detached);
    }
    pool.join();
    EXPECT_EQ(ok_count, 64);
    EXPECT_EQ(a->calls, 1);
    EXPECT_EQ(chain.source(), "scripted");
}

TEST(CredentialsChain, CancellingAWaiterLeavesTheRefreshToTheOthers) {
    chain_fixture fx;
    auto a = std::make_shared<provider_script>();
    a->delay = 50ms;
    a->steps = {ok("AKIALATE", t0 + 1h)};
    std::vector<std::unique_ptr<credentials_provider>> ps;
    ps.push_back(std::make_unique<scripted_provider>("a", a));
    credentials_chain chain(fx.ctx.get_executor(), std::move(ps), fx.clock());
    got cancelled, patient;
    asio::cancellation_signal signal;
    asio::co_spawn(fx.ctx, get_into(chain, cancelled),
                   asio::bind_cancellation_slot(signal.slot(), asio::detached));
    asio::co_spawn(fx.ctx, get_into(chain, patient), asio::detached);
    asio::steady_timer t(fx.ctx, 5ms);
    t.async_wait([&](error_code) { signal.emit(asio::cancellation_type::terminal); });
    fx.ctx.run();
    EXPECT_EQ(cancelled.ec, asio::error::operation_aborted);
    ASSERT_FALSE(patient.ec) << patient.diag.message;
    EXPECT_EQ(patient.creds.access_key_id, "AKIALATE");
    EXPECT_EQ(a->calls, 1);
    // The refresh completed for everyone: no second fetch.
    EXPECT_EQ(get(fx.ctx, chain).creds.access_key_id, "AKIALATE");
    EXPECT_EQ(a->calls, 1);
}

TEST(CredentialsChain, MayBeDestroyedWhileARefreshIsInFlight) {
    asio::io_context ctx;
    auto a = std::make_shared<provider_script>();
    a->delay = 10ms;
    a->steps = {ok("AKIA1")};
    got g;
    {
        std::vector<std::unique_ptr<credentials_provider>> ps;
        ps.push_back(std::make_unique<scripted_provider>("a", a));
        auto chain = std::make_unique<credentials_chain>(ctx.get_executor(), std::move(ps));
        asio::co_spawn(ctx, get_into(*chain, g), asio::detached);
        ctx.run_one();  // the get() has started the refresh and waits
        ctx.run_one();
    }
    ctx.run();
    EXPECT_EQ(a->calls, 1);
}

// ---------------------------------------------------------------------------------------------
// STS web identity.

std::string sts_reply(const std::string& id, const std::string& expiration) {
    return "<AssumeRoleWithWebIdentityResponse "
           "xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
           "  <AssumeRoleWithWebIdentityResult>\n"
           "    <Audience>sts.amazonaws.com</Audience>\n"
           "    <Credentials>\n"
           "      <AccessKeyId>" +
           id +
           "</AccessKeyId>\n"
           "      <SecretAccessKey>" +
           sts_secret +
           "</SecretAccessKey>\n"
           "      <SessionToken>" +
           sts_token +
           "</SessionToken>\n"
           "      <Expiration>" +
           expiration +
           "</Expiration>\n"
           "    </Credentials>\n"
           "  </AssumeRoleWithWebIdentityResult>\n"
           "  <ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata>\n"
           "</AssumeRoleWithWebIdentityResponse>\n";
}

std::string sts_error(const std::string& type, const std::string& code,
                      const std::string& message) {
    return "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
           "<Error><Type>" +
           type + "</Type><Code>" + code + "</Code><Message>" + message +
           "</Message></Error><RequestId>req-2</RequestId></ErrorResponse>";
}

const std::vector<http::header_field> form_headers = {
    {"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}};

const std::string role_arn = "arn:aws:iam::123456789012:role/penne-writer";
const std::string role_arn_form = "arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fpenne-writer";

std::string sts_body(const std::string& session, const std::string& token) {
    return "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=" + role_arn_form +
           "&RoleSessionName=" + session + "&WebIdentityToken=" + token;
}

// The token's '.' is unreserved; '=' and '+' would be encoded.
std::string form(const std::string& token) {
    return http::uri_encode(token);
}

class WebIdentity : public ::testing::Test {
protected:
    scratch_dir dir;
    std::string token_file = dir.write("token", std::string(web_token) + "\n");
    std::shared_ptr<script> s = std::make_shared<script>();
    vars env{{"AWS_WEB_IDENTITY_TOKEN_FILE", token_file},
             {"AWS_ROLE_ARN", role_arn},
             {"AWS_ROLE_SESSION_NAME", "pod-1"},
             {"AWS_REGION", "eu-west-1"}};
    std::unique_ptr<credentials_provider> provider() {
        return make_web_identity_provider(fixed_environment(env), scripted(s), [] { return t0; });
    }
};

TEST_F(WebIdentity, PostsTheFormAndParsesTheReply) {
    s->expect({"POST", "https://sts.eu-west-1.amazonaws.com/", form_headers,
               sts_body("pod-1", form(web_token)), 5000ms, 200,
               sts_reply("ASIASTS1", "2026-12-06T11:00:00Z")});
    auto p = provider();
    EXPECT_EQ(p->name(), "web identity");
    auto f = fetch(*p);
    ASSERT_FALSE(f.ec) << f.diag.message;
    EXPECT_EQ(f.creds.creds.access_key_id, "ASIASTS1");
    EXPECT_EQ(f.creds.creds.secret_access_key, sts_secret);
    EXPECT_EQ(f.creds.creds.session_token, sts_token);
    ASSERT_TRUE(f.creds.expiration);
    EXPECT_EQ(*f.creds.expiration, t0 + 1h);
    EXPECT_EQ(f.creds.source, "web identity");
    EXPECT_TRUE(s->expected.empty());
}

TEST_F(WebIdentity, RereadsTheTokenFileAtEveryFetchAndNamesTheSession) {
    env.erase("AWS_ROLE_SESSION_NAME");
    env.erase("AWS_REGION");
    env["AWS_ENDPOINT_URL_STS"] = "http://127.0.0.1:4566";
    const std::string session =
        "penne-" +
        std::to_string(
            std::chrono::duration_cast<std::chrono::milliseconds>(t0.time_since_epoch()).count());
    s->expect({"POST", "http://127.0.0.1:4566/", form_headers, sts_body(session, form(web_token)),
               5000ms, 200, sts_reply("ASIASTS1", "2026-12-06T11:00:00Z")});
    s->expect({"POST", "http://127.0.0.1:4566/", form_headers, sts_body(session, form(web_token2)),
               5000ms, 200, sts_reply("ASIASTS2", "2026-12-06T12:00:00.000Z")});
    auto p = provider();
    EXPECT_EQ(fetch(*p).creds.creds.access_key_id, "ASIASTS1");
    dir.write("token", web_token2);
    auto second = fetch(*p);
    EXPECT_EQ(second.creds.creds.access_key_id, "ASIASTS2");
    EXPECT_EQ(second.creds.expiration, t0 + 2h);
    EXPECT_TRUE(s->expected.empty());
}

TEST_F(WebIdentity, GlobalAndChinaEndpoints) {
    env.erase("AWS_REGION");
    s->expect({"POST", "https://sts.amazonaws.com/", form_headers,
               sts_body("pod-1", form(web_token)), 5000ms, 200,
               sts_reply("ASIAGLOBAL", "2026-12-06T11:00:00Z")});
    EXPECT_EQ(fetch(*provider()).creds.creds.access_key_id, "ASIAGLOBAL");
    s->expect({"POST", "https://sts.cn-north-1.amazonaws.com.cn/", form_headers,
               sts_body("pod-1", form(web_token)), 5000ms, 200,
               sts_reply("ASIACHINA", "2026-12-06T11:00:00Z")});
    auto china = make_web_identity_provider(
        fixed_environment(env), scripted(s), [] { return t0; }, "cn-north-1");
    EXPECT_EQ(fetch(*china).creds.creds.access_key_id, "ASIACHINA");
}

TEST_F(WebIdentity, ErrorRepliesAreClassifiedAndNeverQuoteTheToken) {
    const std::string url = "https://sts.eu-west-1.amazonaws.com/";
    const std::string body = sts_body("pod-1", form(web_token));
    s->expect({"POST", url, form_headers, body, 5000ms, 400,
               sts_error("Sender", "InvalidIdentityToken",
                         std::string("Incorrect token audience for ") + web_token)});
    s->expect({"POST", url, form_headers, body, 5000ms, 400,
               sts_error("Sender", "Throttling", "Rate exceeded")});
    s->expect({"POST", url, form_headers, body, 5000ms, 400,
               sts_error("Sender", "ExpiredTokenException", "Token expired")});
    s->expect({"POST", url, form_headers, body, 5000ms, 503, "<html>busy</html>"});
    s->expect({"POST", url, form_headers, body, 5000ms, 403,
               sts_error("Sender", "AccessDenied", "Not authorized")});
    auto p = provider();

    auto invalid = fetch(*p);
    EXPECT_EQ(invalid.ec, credentials_errc::service_rejected);
    EXPECT_TRUE(is_fatal(invalid.ec));
    EXPECT_NE(invalid.diag.message.find("STS AssumeRoleWithWebIdentity for role " + role_arn +
                                        " at https://sts.eu-west-1.amazonaws.com failed (HTTP "
                                        "400 InvalidIdentityToken: Incorrect token audience"),
              std::string::npos)
        << invalid.diag.message;
    EXPECT_NE(invalid.diag.message.find("<redacted>"), std::string::npos);

    auto throttled = fetch(*p);
    EXPECT_EQ(throttled.ec, credentials_errc::service_unavailable);
    EXPECT_TRUE(is_retryable(throttled.ec));

    auto expired = fetch(*p);
    EXPECT_EQ(expired.ec, credentials_errc::expired);
    EXPECT_NE(expired.diag.message.find("should be rotated"), std::string::npos);

    auto busy = fetch(*p);
    EXPECT_EQ(busy.ec, credentials_errc::service_unavailable);
    EXPECT_NE(busy.diag.message.find("HTTP 503"), std::string::npos);

    auto denied = fetch(*p);
    EXPECT_EQ(denied.ec, credentials_errc::service_rejected);
    EXPECT_NE(denied.diag.message.find("trust policy"), std::string::npos);
}

TEST_F(WebIdentity, MalformedRepliesNeverQuoteTheBody) {
    const std::string url = "https://sts.eu-west-1.amazonaws.com/";
    const std::string body = sts_body("pod-1", form(web_token));
    auto truncated = sts_reply("ASIA1", "2026-12-06T11:00:00Z");
    truncated.resize(truncated.find("</SessionToken>"));
    s->expect({"POST", url, form_headers, body, 5000ms, 200, truncated});
    auto no_token = sts_reply("ASIA1", "2026-12-06T11:00:00Z");
    no_token.replace(no_token.find("<SessionToken>"),
                     no_token.find("</SessionToken>") + 15 - no_token.find("<SessionToken>"), "");
    s->expect({"POST", url, form_headers, body, 5000ms, 200, no_token});
    s->expect(
        {"POST", url, form_headers, body, 5000ms, 200, sts_reply("ASIA1", "tomorrow at noon")});
    s->expect({"POST", url, form_headers, body, 5000ms, 200, "<Other/>"});
    auto p = provider();

    auto a = fetch(*p);
    EXPECT_EQ(a.ec, credentials_errc::malformed_response);
    EXPECT_NE(a.diag.message.find("is not XML"), std::string::npos) << a.diag.message;
    auto b = fetch(*p);
    EXPECT_EQ(b.ec, credentials_errc::malformed_response);
    EXPECT_NE(b.diag.message.find("has no Credentials/SessionToken"), std::string::npos);
    auto c = fetch(*p);
    EXPECT_EQ(c.ec, credentials_errc::malformed_response);
    EXPECT_NE(c.diag.message.find("Expiration"), std::string::npos);
    auto d = fetch(*p);
    EXPECT_EQ(d.ec, credentials_errc::malformed_response);
}

TEST_F(WebIdentity, ConfigurationErrorsAndTransportFailures) {
    auto p = make_web_identity_provider(fixed_environment({}), scripted(s));
    EXPECT_EQ(fetch(*p).ec, credentials_errc::not_configured);

    auto role_only =
        make_web_identity_provider(fixed_environment({{"AWS_ROLE_ARN", role_arn}}), scripted(s));
    auto r = fetch(*role_only);
    EXPECT_EQ(r.ec, credentials_errc::invalid_configuration);
    EXPECT_NE(r.diag.message.find("AWS_WEB_IDENTITY_TOKEN_FILE is not"), std::string::npos);

    env["AWS_ROLE_SESSION_NAME"] = "has spaces";
    EXPECT_EQ(fetch(*provider()).ec, credentials_errc::invalid_configuration);
    env["AWS_ROLE_SESSION_NAME"] = "pod-1";
    env["AWS_ROLE_ARN"] = "penne-writer";
    EXPECT_EQ(fetch(*provider()).ec, credentials_errc::invalid_configuration);
    env["AWS_ROLE_ARN"] = role_arn;

    env["AWS_WEB_IDENTITY_TOKEN_FILE"] = dir.path() + "/absent";
    auto missing = fetch(*provider());
    EXPECT_EQ(missing.ec, credentials_errc::file_unreadable);
    EXPECT_EQ(missing.diag.message, "cannot read web identity token file " + dir.path() +
                                        "/absent: No such file or directory");
    env["AWS_WEB_IDENTITY_TOKEN_FILE"] = dir.write("empty", " \n");
    EXPECT_EQ(fetch(*provider()).ec, credentials_errc::invalid_configuration);
    env["AWS_WEB_IDENTITY_TOKEN_FILE"] = token_file;

    exchange refused{"POST", "https://sts.eu-west-1.amazonaws.com/", form_headers,
                     sts_body("pod-1", form(web_token)), 5000ms};
    refused.transport_error = make_error_code(asio::error::connection_refused);
    s->expect(refused);
    auto t = fetch(*provider());
    EXPECT_EQ(t.ec, asio::error::connection_refused);
    EXPECT_TRUE(is_retryable(t.ec));
    EXPECT_NE(t.diag.message.find("scripted transport failure"), std::string::npos);
    EXPECT_TRUE(s->expected.empty());
}

TEST_F(WebIdentity, FromAProfileInTheConfigFile) {
    scratch_dir home;
    home.write(".aws/config", "[profile eks]\nrole_arn = " + role_arn +
                                  "\nweb_identity_token_file = " + token_file +
                                  "\nrole_session_name = from-profile\nregion = us-east-2\n");
    s->expect({"POST", "https://sts.us-east-2.amazonaws.com/", form_headers,
               sts_body("from-profile", form(web_token)), 5000ms, 200,
               sts_reply("ASIAPROFILE", "2026-12-06T11:00:00Z")});
    auto p = make_profile_provider(fixed_environment({{"HOME", home.path()}}), "eks", scripted(s),
                                   [] { return t0; });
    auto f = fetch(*p);
    ASSERT_FALSE(f.ec) << f.diag.message;
    EXPECT_EQ(f.creds.creds.access_key_id, "ASIAPROFILE");
    EXPECT_EQ(f.creds.expiration, t0 + 1h);
    EXPECT_EQ(f.creds.source, "profile eks (web identity, ~/.aws/config)");

    auto no_http = make_profile_provider(fixed_environment({{"HOME", home.path()}}), "eks");
    EXPECT_EQ(fetch(*no_http).ec, credentials_errc::invalid_configuration);
}

// ---------------------------------------------------------------------------------------------
// ECS container credentials.

std::string container_json(const std::string& id, const std::string& expiration) {
    return "{\"RoleArn\":\"arn:aws:iam::123456789012:role/task\",\"AccessKeyId\":\"" + id +
           "\",\"SecretAccessKey\":\"" + ecs_secret + "\",\"Token\":\"" + ecs_token +
           "\",\"Expiration\":\"" + expiration + "\"}";
}

TEST(EcsProvider, RelativeUriWithAuthorizationToken) {
    auto s = std::make_shared<script>();
    s->expect({"GET",
               "http://169.254.170.2/v2/credentials/2f5c9a8e-1111",
               {{"Authorization", ecs_auth}, {"Accept", "application/json"}},
               "",
               2000ms,
               200,
               container_json("ASIAECS", "2026-12-06T12:00:00.5+01:00")});
    auto p = make_ecs_provider(
        fixed_environment(
            {{"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/2f5c9a8e-1111"},
             {"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://example.com/ignored"},
             {"AWS_CONTAINER_AUTHORIZATION_TOKEN", ecs_auth}}),
        scripted(s));
    EXPECT_EQ(p->name(), "ecs");
    auto f = fetch(*p);
    ASSERT_FALSE(f.ec) << f.diag.message;
    EXPECT_EQ(f.creds.creds.access_key_id, "ASIAECS");
    EXPECT_EQ(f.creds.creds.secret_access_key, ecs_secret);
    EXPECT_EQ(f.creds.creds.session_token, ecs_token);
    EXPECT_EQ(f.creds.expiration, t0 + 1h + 500ms);  // 12:00:00.5 at +01:00
    EXPECT_EQ(f.creds.source, "ecs");
    EXPECT_TRUE(s->expected.empty());
}

TEST(EcsProvider, FullUriWithTokenFileReadAtEveryFetch) {
    scratch_dir dir;
    const auto file = dir.write("eks-token", std::string(ecs_auth) + "\n");
    auto s = std::make_shared<script>();
    const std::string url = "http://169.254.170.23/v1/credentials";
    s->expect({"GET",
               url,
               {{"Authorization", ecs_auth}, {"Accept", "application/json"}},
               "",
               2000ms,
               200,
               container_json("ASIAPOD1", "2026-12-06T11:00:00Z")});
    s->expect({"GET",
               url,
               {{"Authorization", "rotated-auth"}, {"Accept", "application/json"}},
               "",
               2000ms,
               200,
               container_json("ASIAPOD2", "2026-12-06T11:00:00Z")});
    auto p = make_ecs_provider(fixed_environment({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", url},
                                                  {"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", file},
                                                  {"AWS_CONTAINER_AUTHORIZATION_TOKEN", "loser"}}),
                               scripted(s));
    EXPECT_EQ(fetch(*p).creds.creds.access_key_id, "ASIAPOD1");
    dir.write("eks-token", "rotated-auth");
    EXPECT_EQ(fetch(*p).creds.creds.access_key_id, "ASIAPOD2");
    EXPECT_TRUE(s->expected.empty());
}

TEST(EcsProvider, FullUriHostsAllowedOverPlainHttp) {
    for (const std::string url :
         {"http://127.0.0.1:51679/creds", "http://127.1.2.3/creds", "http://localhost:8080/x",
          "http://[::1]:80/creds", "http://169.254.170.2/creds", "http://[fd00:ec2::23]/creds",
          "https://creds.example.com/v1", "HTTP://LOCALHOST/x"}) {
        auto s = std::make_shared<script>();
        s->expect({"GET",
                   url,
                   {{"Accept", "application/json"}},
                   "",
                   2000ms,
                   200,
                   container_json("ASIAOK", "2026-12-06T11:00:00Z")});
        auto p = make_ecs_provider(fixed_environment({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", url}}),
                                   scripted(s));
        auto f = fetch(*p);
        EXPECT_FALSE(f.ec) << url << ": " << f.diag.message;
    }
    for (const std::string url :
         {"http://example.com/creds", "http://169.254.169.254/latest", "http://128.0.0.1/x",
          "http://user@127.0.0.1/x", "ftp://127.0.0.1/x", "127.0.0.1/creds",
          "http://127.0.0.1.evil.com/x", "http://[fd00:ec2::254]/x"}) {
        auto s = std::make_shared<script>();
        auto p = make_ecs_provider(fixed_environment({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", url}}),
                                   scripted(s));
        auto f = fetch(*p);
        EXPECT_EQ(f.ec, credentials_errc::invalid_configuration) << url;
        EXPECT_TRUE(s->seen.empty()) << url;
    }
    auto s = std::make_shared<script>();
    auto rel = make_ecs_provider(
        fixed_environment({{"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "v2/creds"}}), scripted(s));
    EXPECT_EQ(fetch(*rel).ec, credentials_errc::invalid_configuration);
    EXPECT_EQ(fetch(*make_ecs_provider(fixed_environment({}), scripted(s))).ec,
              credentials_errc::not_configured);
    EXPECT_TRUE(s->seen.empty());
}

TEST(EcsProvider, ErrorsAndMalformedReplies) {
    auto s = std::make_shared<script>();
    const std::string url = "http://169.254.170.2/v2/c";
    const std::vector<http::header_field> h = {{"Authorization", ecs_auth},
                                               {"Accept", "application/json"}};
    s->expect(
        {"GET", url, h, "", 2000ms, 401,
         std::string("{\"code\":\"AccessDenied\",\"message\":\"bad token ") + ecs_auth + "\"}"});
    s->expect({"GET", url, h, "", 2000ms, 500, "oops"});
    s->expect({"GET", url, h, "", 2000ms, 200,
               std::string("{\"AccessKeyId\":\"ASIA\",\"SecretAccessKey\":\"") + ecs_secret});
    s->expect({"GET", url, h, "", 2000ms, 200,
               std::string("{\"AccessKeyId\":\"ASIA\",\"Token\":\"") + ecs_token + "\"}"});
    s->expect({"GET", url, h, "", 2000ms, 200, "[1,2]"});
    s->expect({"GET", url, h, "", 2000ms, 200,
               std::string("{\"AccessKeyId\":\"ASIA\",\"SecretAccessKey\":\"") + ecs_secret +
                   "\",\"Expiration\":\"soon\"}"});
    exchange down{"GET", url, h, "", 2000ms};
    down.transport_error = make_error_code(errc::timeout);
    s->expect(down);
    auto p =
        make_ecs_provider(fixed_environment({{"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/c"},
                                             {"AWS_CONTAINER_AUTHORIZATION_TOKEN", ecs_auth}}),
                          scripted(s));

    auto denied = fetch(*p);
    EXPECT_EQ(denied.ec, credentials_errc::service_rejected);
    EXPECT_NE(denied.diag.message.find("answered HTTP 401 (AccessDenied: bad token <redacted>)"),
              std::string::npos)
        << denied.diag.message;
    EXPECT_NE(denied.diag.message.find("AWS_CONTAINER_AUTHORIZATION_TOKEN"), std::string::npos);
    EXPECT_EQ(denied.diag.message.find("/v2/c"), std::string::npos);  // the path is a capability
    auto busy = fetch(*p);
    EXPECT_EQ(busy.ec, credentials_errc::service_unavailable);
    auto truncated = fetch(*p);
    EXPECT_EQ(truncated.ec, credentials_errc::malformed_response);
    EXPECT_NE(truncated.diag.message.find("not JSON"), std::string::npos);
    auto no_secret = fetch(*p);
    EXPECT_EQ(no_secret.ec, credentials_errc::malformed_response);
    EXPECT_NE(no_secret.diag.message.find("has no SecretAccessKey"), std::string::npos);
    EXPECT_EQ(fetch(*p).ec, credentials_errc::malformed_response);
    auto bad_time = fetch(*p);
    EXPECT_EQ(bad_time.ec, credentials_errc::malformed_response);
    EXPECT_NE(bad_time.diag.message.find("Expiration"), std::string::npos);
    auto timeout = fetch(*p);
    EXPECT_EQ(timeout.ec, errc::timeout);
    EXPECT_TRUE(s->expected.empty());
}

// ---------------------------------------------------------------------------------------------
// EC2 IMDSv2.

std::string imds_json(const std::string& code) {
    return "{\n  \"Code\" : \"" + code +
           "\",\n  \"LastUpdated\" : \"2026-12-06T09:50:00Z\",\n  \"Type\" : \"AWS-HMAC\",\n"
           "  \"AccessKeyId\" : \"ASIAIMDS\",\n  \"SecretAccessKey\" : \"" +
           imds_secret + "\",\n  \"Token\" : \"" + imds_token +
           "\",\n  \"Expiration\" : \"2026-12-06T16:00:00Z\"\n}";
}

void expect_imds_flow(script& s, const std::string& ep, const std::string& role,
                      const std::string& final_body, unsigned final_status = 200) {
    s.expect({"PUT",
              ep + "/latest/api/token",
              {{"X-aws-ec2-metadata-token-ttl-seconds", "21600"}},
              "",
              1000ms,
              200,
              imds_api_token});
    s.expect({"GET",
              ep + "/latest/meta-data/iam/security-credentials/",
              {{"X-aws-ec2-metadata-token", imds_api_token}},
              "",
              1000ms,
              200,
              role + "\n"});
    s.expect({"GET",
              ep + "/latest/meta-data/iam/security-credentials/" + role,
              {{"X-aws-ec2-metadata-token", imds_api_token}},
              "",
              1000ms,
              final_status,
              final_body});
}

TEST(ImdsProvider, TokenThenRoleThenCredentials) {
    auto s = std::make_shared<script>();
    expect_imds_flow(*s, "http://169.254.169.254", "app-role", imds_json("Success"));
    auto p = make_imds_provider(fixed_environment({}), scripted(s));
    EXPECT_EQ(p->name(), "imds");
    auto f = fetch(*p);
    ASSERT_FALSE(f.ec) << f.diag.message;
    EXPECT_EQ(f.creds.creds.access_key_id, "ASIAIMDS");
    EXPECT_EQ(f.creds.creds.secret_access_key, imds_secret);
    EXPECT_EQ(f.creds.creds.session_token, imds_token);
    EXPECT_EQ(f.creds.expiration, t0 + 6h);
    EXPECT_EQ(f.creds.source, "imds (role app-role)");
    EXPECT_TRUE(s->expected.empty());
}

TEST(ImdsProvider, EndpointOverrideIpv6ModeAndDisable) {
    auto s = std::make_shared<script>();
    expect_imds_flow(*s, "http://127.0.0.1:1338", "r", imds_json("Success"));
    auto custom = make_imds_provider(
        fixed_environment({{"AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:1338/"}}),
        scripted(s));
    EXPECT_FALSE(fetch(*custom).ec);
    expect_imds_flow(*s, "http://[fd00:ec2::254]", "r", imds_json("Success"));
    auto v6 = make_imds_provider(
        fixed_environment({{"AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "IPv6"}}), scripted(s));
    EXPECT_FALSE(fetch(*v6).ec);
    EXPECT_TRUE(s->expected.empty());

    const auto before = s->seen.size();
    auto off =
        make_imds_provider(fixed_environment({{"AWS_EC2_METADATA_DISABLED", "True"}}), scripted(s));
    auto f = fetch(*off);
    EXPECT_EQ(f.ec, credentials_errc::not_configured);
    EXPECT_EQ(f.diag.message, "disabled by AWS_EC2_METADATA_DISABLED");
    EXPECT_EQ(s->seen.size(), before);
}

TEST(ImdsProvider, TokenRequestFailures) {
    auto s = std::make_shared<script>();
    const std::vector<http::header_field> ttl = {{"X-aws-ec2-metadata-token-ttl-seconds", "21600"}};
    const std::string url = "http://169.254.169.254/latest/api/token";
    exchange unreachable{"PUT", url, ttl, "", 250ms};
    unreachable.transport_error = make_error_code(errc::timeout);
    s->expect(unreachable);
    s->expect({"PUT", url, ttl, "", 250ms, 403, "Forbidden"});
    s->expect({"PUT", url, ttl, "", 250ms, 405, ""});
    s->expect({"PUT", url, ttl, "", 250ms, 500, ""});
    s->expect({"PUT", url, ttl, "", 250ms, 200, ""});
    auto p = make_imds_provider(fixed_environment({}), scripted(s), 250ms);

    auto none = fetch(*p);
    EXPECT_EQ(none.ec, credentials_errc::not_configured);
    EXPECT_EQ(none.diag.message,
              "no instance metadata service at http://169.254.169.254 (scripted transport "
              "failure)");
    auto forbidden = fetch(*p);
    EXPECT_EQ(forbidden.ec, credentials_errc::service_rejected);
    EXPECT_NE(forbidden.diag.message.find("turned off"), std::string::npos);
    auto v1_only = fetch(*p);
    EXPECT_EQ(v1_only.ec, credentials_errc::service_rejected);
    EXPECT_NE(v1_only.diag.message.find("IMDSv2"), std::string::npos);
    EXPECT_EQ(fetch(*p).ec, credentials_errc::service_unavailable);
    EXPECT_EQ(fetch(*p).ec, credentials_errc::malformed_response);
    EXPECT_TRUE(s->expected.empty());
}

TEST(ImdsProvider, RoleAndCredentialFailures) {
    const std::string ep = "http://169.254.169.254";
    const std::vector<http::header_field> tok = {{"X-aws-ec2-metadata-token", imds_api_token}};
    auto s = std::make_shared<script>();
    auto p = make_imds_provider(fixed_environment({}), scripted(s));

    // No role attached.
    s->expect({"PUT",
               ep + "/latest/api/token",
               {{"X-aws-ec2-metadata-token-ttl-seconds", "21600"}},
               "",
               1000ms,
               200,
               imds_api_token});
    s->expect({"GET", ep + "/latest/meta-data/iam/security-credentials/", tok, "", 1000ms, 404,
               "Not Found"});
    auto norole = fetch(*p);
    EXPECT_EQ(norole.ec, credentials_errc::not_configured);
    EXPECT_NE(norole.diag.message.find("no IAM role is attached"), std::string::npos);

    expect_imds_flow(*s, ep, "app-role", imds_json("AssumeRoleUnauthorizedAccess"));
    auto code = fetch(*p);
    EXPECT_EQ(code.ec, credentials_errc::service_rejected);
    EXPECT_NE(code.diag.message.find("Code is \"AssumeRoleUnauthorizedAccess\""), std::string::npos)
        << code.diag.message;

    expect_imds_flow(*s, ep, "app-role", imds_json("Success").substr(0, 150));
    auto truncated = fetch(*p);
    EXPECT_EQ(truncated.ec, credentials_errc::malformed_response);

    expect_imds_flow(*s, ep, "app-role", "", 500);
    EXPECT_EQ(fetch(*p).ec, credentials_errc::service_unavailable);

    // A role name that needs encoding in the path.
    expect_imds_flow(*s, ep, "role%20with%20space", imds_json("Success"));
    s->expected[1].response = "role with space\nsecond-role\n";
    auto spaced = fetch(*p);
    ASSERT_FALSE(spaced.ec) << spaced.diag.message;
    EXPECT_EQ(spaced.creds.source, "imds (role role with space)");
    EXPECT_TRUE(s->expected.empty());
}

// ---------------------------------------------------------------------------------------------
// The default chain end to end (providers real, HTTP scripted).

TEST(DefaultChain, NothingConfiguredExplainsEveryProvider) {
    asio::io_context ctx;
    scratch_dir home;
    auto s = std::make_shared<script>();
    exchange unreachable{"PUT",
                         "http://169.254.169.254/latest/api/token",
                         {{"X-aws-ec2-metadata-token-ttl-seconds", "21600"}},
                         "",
                         1000ms};
    unreachable.transport_error = make_error_code(errc::timeout);
    s->expect(unreachable);
    auto chain = credentials_chain::default_chain(ctx.get_executor(), chain_options{},
                                                  fixed_environment({{"HOME", home.path()}}),
                                                  scripted(s), [] { return t0; });
    auto g = get(ctx, chain);
    EXPECT_EQ(g.ec, credentials_errc::no_credentials);
    EXPECT_TRUE(is_fatal(g.ec));
    EXPECT_EQ(g.diag.message,
              "no AWS credentials found; tried static config (no access key id in the "
              "configuration); environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not "
              "set); shared profile (neither ~/.aws/credentials nor ~/.aws/config exists); web "
              "identity (AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN are not set); ecs "
              "(AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and AWS_CONTAINER_CREDENTIALS_FULL_URI "
              "are not set); imds (no instance metadata service at http://169.254.169.254 "
              "(scripted transport failure)). Configure one: access_key_id and "
              "secret_access_key in the configuration, AWS_ACCESS_KEY_ID and "
              "AWS_SECRET_ACCESS_KEY in the environment, a profile in ~/.aws/credentials "
              "(selected with AWS_PROFILE), or an IAM role (EKS web identity, ECS task role, "
              "EC2 instance profile)");
    EXPECT_TRUE(s->expected.empty());
}

TEST(DefaultChain, OrderStaticThenEnvironmentThenProfile) {
    asio::io_context ctx;
    scratch_dir home;
    home.write(".aws/credentials",
               "[default]\naws_access_key_id = AKIAFILE\n"
               "aws_secret_access_key = " +
                   std::string(file_secret) + "\n");
    auto s = std::make_shared<script>();
    vars env{{"HOME", home.path()},
             {"AWS_ACCESS_KEY_ID", "AKIAENV"},
             {"AWS_SECRET_ACCESS_KEY", env_secret}};
    chain_options with_static;
    with_static.static_credentials = {"AKIACONFIG", env_secret, ""};
    auto a = credentials_chain::default_chain(ctx.get_executor(), with_static,
                                              fixed_environment(env), scripted(s));
    EXPECT_EQ(get(ctx, a).creds.access_key_id, "AKIACONFIG");
    EXPECT_EQ(a.source(), "static config");

    auto b = credentials_chain::default_chain(ctx.get_executor(), chain_options{},
                                              fixed_environment(env), scripted(s));
    EXPECT_EQ(get(ctx, b).creds.access_key_id, "AKIAENV");
    EXPECT_EQ(b.source(), "environment");

    env.erase("AWS_ACCESS_KEY_ID");
    env.erase("AWS_SECRET_ACCESS_KEY");
    auto c = credentials_chain::default_chain(ctx.get_executor(), chain_options{},
                                              fixed_environment(env), scripted(s));
    auto gc = get(ctx, c);
    EXPECT_EQ(gc.creds.access_key_id, "AKIAFILE");
    EXPECT_EQ(gc.creds.secret_access_key, file_secret);
    EXPECT_EQ(c.source(), "profile default (~/.aws/credentials)");

    // A partial environment stops the chain before the (valid) profile.
    env["AWS_ACCESS_KEY_ID"] = "AKIAENV";
    auto d = credentials_chain::default_chain(ctx.get_executor(), chain_options{},
                                              fixed_environment(env), scripted(s));
    auto gd = get(ctx, d);
    EXPECT_EQ(gd.ec, credentials_errc::invalid_configuration);
    EXPECT_NE(gd.diag.message.find("AWS credentials from environment: AWS_ACCESS_KEY_ID is set"),
              std::string::npos)
        << gd.diag.message;
    EXPECT_TRUE(s->seen.empty());
}

TEST(DefaultChain, BrokenWebIdentityNeverFallsThroughToImds) {
    asio::io_context ctx;
    scratch_dir home;
    auto s = std::make_shared<script>();
    auto chain = credentials_chain::default_chain(
        ctx.get_executor(), chain_options{},
        fixed_environment({{"HOME", home.path()},
                           {"AWS_ROLE_ARN", role_arn},
                           {"AWS_WEB_IDENTITY_TOKEN_FILE", home.path() + "/no-token"}}),
        scripted(s));
    auto g = get(ctx, chain);
    EXPECT_EQ(g.ec, credentials_errc::file_unreadable);
    EXPECT_NE(g.diag.message.find("AWS credentials from web identity: cannot read web identity "
                                  "token file"),
              std::string::npos)
        << g.diag.message;
    EXPECT_TRUE(s->seen.empty());
}

TEST(DefaultChain, ImdsCredentialsAreRefreshedThroughTheChain) {
    asio::io_context ctx;
    scratch_dir home;
    auto s = std::make_shared<script>();
    auto now = std::make_shared<system_clock::time_point>(t0);
    expect_imds_flow(*s, "http://169.254.169.254", "app-role", imds_json("Success"));
    auto chain = credentials_chain::default_chain(ctx.get_executor(), chain_options{},
                                                  fixed_environment({{"HOME", home.path()}}),
                                                  scripted(s), [now] { return *now; });
    auto g = get(ctx, chain);
    ASSERT_FALSE(g.ec) << g.diag.message;
    EXPECT_EQ(g.creds.session_token, imds_token);
    EXPECT_EQ(chain.source(), "imds (role app-role)");
    EXPECT_TRUE(s->expected.empty());

    // Within five minutes of 16:00 the chain walks again and IMDS answers anew.
    *now = t0 + 6h - 4min;
    expect_imds_flow(*s, "http://169.254.169.254", "app-role", imds_json("Success"));
    ASSERT_FALSE(get(ctx, chain).ec);
    EXPECT_TRUE(s->expected.empty());
    EXPECT_EQ(s->seen.size(), 6u);
}

}  // namespace
}  // namespace penne::s3
