// The HTTP client against real servers: a scriptable Python HTTP/1.1 peer (keep-alive,
// 100-continue, slow and oversized answers, closes) over plain TCP and TLS with a
// certificate made for the test by openssl.
#include <penne/http/client.hpp>

#include "http_peer.hpp"
#include "process.hpp"
#include "temp_dir.hpp"

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>

#include <cstdlib>
#include <memory>
#include <optional>
#include <string>

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using penne::diagnostics;
using penne::error_code;
using penne::http::client;
using penne::http::client_options;
using penne::http::header_field;
using penne::http::http_errc;
using penne::http::request;
using penne::http::response;
using penne::test::http_peer;

struct outcome {
    error_code ec;
    response res;
    diagnostics diag;
};

class client_test : public ::testing::Test {
protected:
    asio::io_context ctx;
    penne::test::temp_dir dir{"http-client"};

    outcome send(client& c, std::uint16_t port, std::string_view method, std::string_view target,
                 std::string_view body = {}, std::string_view host = "127.0.0.1", bool tls = false,
                 std::optional<std::chrono::milliseconds> timeout = {}) {
        outcome out;
        std::string host_value = std::string(host) + ":" + std::to_string(port);
        std::vector<header_field> headers{{"Host", host_value}, {"X-Test", "yes"}};
        request req;
        req.endpoint = {tls, host, port};
        req.method = method;
        req.target = target;
        req.headers = headers;
        req.body = body;
        req.timeout = timeout;
        auto op = [&]() -> asio::awaitable<void> {
            auto ec = co_await c.send(req, out.res, out.diag);
            out.ec = ec;
        };
        asio::co_spawn(ctx, op(), asio::detached);
        ctx.restart();
        ctx.run();
        return out;
    }
};

TEST_F(client_test, get_and_keep_alive_reuse_one_connection) {
    http_peer peer(dir);
    client c(ctx.get_executor(), {});
    auto first = send(c, peer.port(), "GET", "/echo?a=1");
    ASSERT_FALSE(first.ec) << first.diag.message;
    EXPECT_EQ(first.res.status, 200u);
    auto doc = boost::json::parse(first.res.body).as_object();
    EXPECT_EQ(doc.at("method").as_string(), "GET");
    EXPECT_EQ(doc.at("path").as_string(), "/echo?a=1");
    EXPECT_EQ(doc.at("headers").at("x-test").as_string(), "yes");
    EXPECT_EQ(doc.at("headers").at("user-agent").as_string(), "penne");
    EXPECT_EQ(first.res.header("content-type"), "application/json");

    for (int i = 0; i < 5; ++i) {
        auto again = send(c, peer.port(), "GET", "/echo");
        ASSERT_FALSE(again.ec) << again.diag.message;
    }
    EXPECT_EQ(c.connections_opened(), 1u);
    EXPECT_EQ(c.idle_connections(), 1u);
    auto count = send(c, peer.port(), "GET", "/connections");
    EXPECT_EQ(count.res.body, "1");
}

TEST_F(client_test, put_sends_body_and_content_length_even_when_empty) {
    http_peer peer(dir);
    client c(ctx.get_executor(), {});
    auto empty = send(c, peer.port(), "PUT", "/echo", "");
    ASSERT_FALSE(empty.ec) << empty.diag.message;
    auto doc = boost::json::parse(empty.res.body).as_object();
    EXPECT_EQ(doc.at("headers").at("content-length").as_string(), "0");

    const std::string body(1000, 'b');
    auto put = send(c, peer.port(), "PUT", "/echo", body);
    ASSERT_FALSE(put.ec) << put.diag.message;
    doc = boost::json::parse(put.res.body).as_object();
    EXPECT_EQ(doc.at("body_length").as_int64(), 1000);
    EXPECT_FALSE(doc.at("headers").as_object().contains("expect"));
}

TEST_F(client_test, large_body_waits_for_100_continue) {
    http_peer peer(dir);
    client_options opts;
    opts.expect_continue_bytes = 1024 * 1024;
    client c(ctx.get_executor(), opts);
    std::string body(3 * 1024 * 1024, '\0');
    for (std::size_t i = 0; i < body.size(); ++i)
        body[i] = static_cast<char>(i * 131 % 251);
    auto put = send(c, peer.port(), "PUT", "/echo", body);
    ASSERT_FALSE(put.ec) << put.diag.message;
    auto doc = boost::json::parse(put.res.body).as_object();
    EXPECT_EQ(doc.at("headers").at("expect").as_string(), "100-continue");
    EXPECT_EQ(doc.at("body_length").as_int64(), static_cast<std::int64_t>(body.size()));
    // The connection stays usable after the interim response.
    auto after = send(c, peer.port(), "GET", "/echo");
    ASSERT_FALSE(after.ec) << after.diag.message;
    EXPECT_EQ(c.connections_opened(), 1u);
}

TEST_F(client_test, refusal_before_the_body_is_returned_and_the_connection_dropped) {
    http_peer peer(dir);
    client_options opts;
    opts.expect_continue_bytes = 1024;
    opts.expect_continue_timeout = 5s;
    client c(ctx.get_executor(), opts);
    const std::string body(512 * 1024, 'z');
    const auto started = std::chrono::steady_clock::now();
    auto put = send(c, peer.port(), "PUT", "/refuse-expect", body);
    ASSERT_FALSE(put.ec) << put.diag.message;
    EXPECT_EQ(put.res.status, 403u);
    EXPECT_EQ(put.res.body, "refused before the body");
    EXPECT_LT(std::chrono::steady_clock::now() - started, 4s);
    EXPECT_EQ(c.idle_connections(), 0u);
}

TEST_F(client_test, silent_server_gets_the_body_after_the_expect_timeout) {
    http_peer peer(dir);
    client_options opts;
    opts.expect_continue_bytes = 1024;
    opts.expect_continue_timeout = 200ms;
    client c(ctx.get_executor(), opts);
    const std::string body(64 * 1024, 'q');
    auto put = send(c, peer.port(), "PUT", "/silent-expect", body);
    ASSERT_FALSE(put.ec) << put.diag.message;
    EXPECT_EQ(put.res.status, 200u);
    auto doc = boost::json::parse(put.res.body).as_object();
    EXPECT_EQ(doc.at("body_length").as_int64(), 64 * 1024);
}

TEST_F(client_test, head_has_no_body_but_keeps_the_length) {
    http_peer peer(dir);
    client c(ctx.get_executor(), {});
    auto head = send(c, peer.port(), "HEAD", "/bytes/100");
    ASSERT_FALSE(head.ec) << head.diag.message;
    EXPECT_EQ(head.res.status, 200u);
    EXPECT_TRUE(head.res.body.empty());
    EXPECT_EQ(head.res.header("Content-Length"), "100");
    auto get = send(c, peer.port(), "GET", "/bytes/100");
    ASSERT_FALSE(get.ec) << get.diag.message;
    EXPECT_EQ(get.res.body, std::string(100, 'x'));
    EXPECT_EQ(c.connections_opened(), 1u);
}

TEST_F(client_test, error_statuses_are_responses_not_errors) {
    http_peer peer(dir);
    client c(ctx.get_executor(), {});
    for (unsigned status : {400u, 403u, 404u, 500u, 503u}) {
        auto r = send(c, peer.port(), "GET", "/status/" + std::to_string(status));
        ASSERT_FALSE(r.ec) << r.diag.message;
        EXPECT_EQ(r.res.status, status);
        EXPECT_EQ(r.res.body, "status body");
    }
}

TEST_F(client_test, oversized_response_is_refused) {
    http_peer peer(dir);
    client_options opts;
    opts.max_body_bytes = 1000;
    client c(ctx.get_executor(), opts);
    auto r = send(c, peer.port(), "GET", "/bytes/5000");
    EXPECT_EQ(r.ec, penne::error_code(http_errc::response_too_large)) << r.ec.message();
    EXPECT_FALSE(penne::is_retryable(r.ec));
    EXPECT_NE(r.diag.message.find("127.0.0.1"), std::string::npos) << r.diag.message;
}

TEST_F(client_test, slow_response_times_out_and_is_retryable) {
    http_peer peer(dir);
    client c(ctx.get_executor(), {});
    auto r = send(c, peer.port(), "GET", "/slow/3000", {}, "127.0.0.1", false, 300ms);
    EXPECT_EQ(r.ec, penne::error_code(penne::errc::timeout)) << r.ec.message();
    EXPECT_TRUE(penne::is_retryable(r.ec));
    EXPECT_EQ(c.idle_connections(), 0u);
}

TEST_F(client_test, connection_close_is_honoured) {
    http_peer peer(dir);
    client c(ctx.get_executor(), {});
    auto closing = send(c, peer.port(), "GET", "/close");
    ASSERT_FALSE(closing.ec) << closing.diag.message;
    EXPECT_EQ(c.idle_connections(), 0u);
    auto next = send(c, peer.port(), "GET", "/echo");
    ASSERT_FALSE(next.ec) << next.diag.message;
    EXPECT_EQ(c.connections_opened(), 2u);
}

TEST_F(client_test, pooled_connection_closed_by_a_restarted_server_is_replaced) {
    auto peer = std::make_unique<http_peer>(dir);
    const auto port = peer->port();
    client c(ctx.get_executor(), {});
    auto first = send(c, port, "GET", "/echo");
    ASSERT_FALSE(first.ec) << first.diag.message;
    ASSERT_EQ(c.idle_connections(), 1u);
    peer->stop();  // the pooled connection is now dead
    auto refused = send(c, port, "GET", "/echo");
    EXPECT_TRUE(refused.ec);
    EXPECT_TRUE(penne::is_retryable(refused.ec)) << refused.ec.message();
    EXPECT_NE(refused.diag.message.find("127.0.0.1"), std::string::npos);

    // A server restarted on the same port: the pooled connection to the old one is stale
    // and the request goes out once more on a fresh connection, invisibly to the caller.
    peer = std::make_unique<http_peer>(dir, false, port);
    auto ok = send(c, port, "GET", "/echo");
    ASSERT_FALSE(ok.ec) << ok.diag.message;
    ASSERT_EQ(c.idle_connections(), 1u);
    peer->stop();
    peer = std::make_unique<http_peer>(dir, false, port);
    const auto opened = c.connections_opened();
    auto retried = send(c, port, "PUT", "/echo", "payload");
    ASSERT_FALSE(retried.ec) << retried.diag.message;
    EXPECT_EQ(retried.res.status, 200u);
    EXPECT_EQ(c.connections_opened(), opened + 1);
}

TEST_F(client_test, refused_connection_is_a_retryable_error_naming_the_endpoint) {
    client c(ctx.get_executor(), {});
    const auto port = static_cast<std::uint16_t>(penne::test::free_port());
    auto r = send(c, port, "GET", "/");
    EXPECT_EQ(r.ec, asio::error::connection_refused) << r.ec.message();
    EXPECT_TRUE(penne::is_retryable(r.ec));
    EXPECT_NE(r.diag.message.find(std::to_string(port)), std::string::npos) << r.diag.message;
}

TEST_F(client_test, tls_verifies_the_server_against_the_ca_file) {
    http_peer peer(dir, true);
    client_options opts;
    opts.ca_file = peer.cert();
    client c(ctx.get_executor(), opts);
    auto r = send(c, peer.port(), "GET", "/echo", {}, "localhost", true);
    ASSERT_FALSE(r.ec) << r.diag.message;
    EXPECT_EQ(r.res.status, 200u);
    auto again =
        send(c, peer.port(), "PUT", "/echo", std::string(2 * 1024 * 1024, 'k'), "localhost", true);
    ASSERT_FALSE(again.ec) << again.diag.message;
    EXPECT_EQ(boost::json::parse(again.res.body).at("body_length").as_int64(), 2 * 1024 * 1024);
    EXPECT_EQ(c.connections_opened(), 1u);
}

TEST_F(client_test, tls_refuses_an_untrusted_certificate) {
    http_peer peer(dir, true);
    client c(ctx.get_executor(), {});  // system store: the test certificate is unknown
    auto r = send(c, peer.port(), "GET", "/echo", {}, "localhost", true);
    EXPECT_EQ(r.ec, penne::error_code(http_errc::tls_error)) << r.ec.message();
    EXPECT_FALSE(penne::is_retryable(r.ec));
    EXPECT_NE(r.diag.message.find("certificate"), std::string::npos) << r.diag.message;
}

TEST_F(client_test, tls_refuses_a_certificate_for_another_host) {
    http_peer peer(dir, true);
    client_options opts;
    opts.ca_file = peer.cert();
    client c(ctx.get_executor(), opts);
    // The certificate names "localhost" only; 127.0.0.1 does not match it.
    auto r = send(c, peer.port(), "GET", "/echo", {}, "127.0.0.1", true);
    EXPECT_EQ(r.ec, penne::error_code(http_errc::tls_error)) << r.ec.message();
}

TEST_F(client_test, tls_without_verification_when_asked) {
    http_peer peer(dir, true);
    client_options opts;
    opts.verify_peer = false;
    client c(ctx.get_executor(), opts);
    auto r = send(c, peer.port(), "GET", "/echo", {}, "127.0.0.1", true);
    ASSERT_FALSE(r.ec) << r.diag.message;
    EXPECT_EQ(r.res.status, 200u);
}

TEST(parse_url, splits_scheme_host_port_and_target) {
    penne::http::parsed_url u;
    ASSERT_TRUE(penne::http::parse_url("http://127.0.0.1:7480/bucket/key?x=1", u));
    EXPECT_FALSE(u.tls);
    EXPECT_EQ(u.host, "127.0.0.1");
    EXPECT_EQ(u.port, 7480);
    EXPECT_EQ(u.target, "/bucket/key?x=1");
    EXPECT_EQ(u.host_header, "127.0.0.1:7480");
    ASSERT_TRUE(penne::http::parse_url("https://sts.eu-west-1.amazonaws.com", u));
    EXPECT_TRUE(u.tls);
    EXPECT_EQ(u.port, 443);
    EXPECT_EQ(u.target, "/");
    EXPECT_EQ(u.host_header, "sts.eu-west-1.amazonaws.com");
    ASSERT_TRUE(penne::http::parse_url("http://[::1]:9000?q", u));
    EXPECT_EQ(u.host, "::1");
    EXPECT_EQ(u.host_header, "[::1]:9000");
    EXPECT_EQ(u.target, "/?q");
    ASSERT_TRUE(penne::http::parse_url("http://169.254.169.254/latest/api/token#frag", u));
    EXPECT_EQ(u.target, "/latest/api/token");
    for (auto bad : {"ftp://x", "http://", "http://user@host/", "http://host:0/",
                     "http://host:70000/", "http://[::1/", "http://host:12ab/", "https://:443/"})
        EXPECT_FALSE(penne::http::parse_url(bad, u)) << bad;
}

}  // namespace
