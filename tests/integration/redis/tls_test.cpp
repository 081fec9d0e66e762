// rediss:// against redis-server serving TLS only, with a CA and certificate made by openssl
// for the test: verified when the client trusts the CA, refused when it does not.
#include "redis_test.hpp"

#include "temp_dir.hpp"

namespace penne::redis::test {
namespace {

class RedisTls : public ::testing::Test {
protected:
    runner io;
    penne::test::temp_dir dir{"penne-redis-tls"};
    penne::test::tls_files files;
    std::unique_ptr<redis_peer> peer;

    void SetUp() override {
        files = penne::test::make_tls_files(dir.path().string(), "server");
        ASSERT_TRUE(files.error.empty()) << files.error;
        peer = std::make_unique<redis_peer>(redis_peer_options{.tls_cert_file = files.server_cert,
                                                               .tls_key_file = files.server_key,
                                                               .tls_ca_file = files.ca_cert});
        ASSERT_TRUE(peer->ready()) << peer->failure();
    }
};

TEST_F(RedisTls, VerifiedConnectionWorks) {
    auto opts = options_for(peer->url());
    ASSERT_TRUE(opts.server.tls);
    opts.tls_ca_file = files.ca_cert;
    connection conn(io.ctx.get_executor(), opts);
    diagnostics diag;
    auto ec = io.run(conn.ping(diag));
    ASSERT_FALSE(ec) << ec.message() << ": " << diag.message;
    must_call(io, conn, request{"SET", "over", "tls"});
    EXPECT_EQ(must_call(io, conn, request{"GET", "over"}).text, "tls");
    // The host name is checked too: "localhost" is in the certificate's names.
    auto by_name = options_for("rediss://localhost:" + std::to_string(peer->port()));
    by_name.tls_ca_file = files.ca_cert;
    connection named(io.ctx.get_executor(), by_name);
    ec = io.run(named.ping(diag));
    EXPECT_FALSE(ec) << ec.message() << ": " << diag.message;
}

TEST_F(RedisTls, UntrustedCertificateIsRefused) {
    auto other = penne::test::make_tls_files(dir.path().string(), "other");
    ASSERT_TRUE(other.error.empty()) << other.error;
    auto opts = options_for(peer->url());
    opts.tls_ca_file = other.ca_cert;  // a CA that did not sign the server's certificate
    connection conn(io.ctx.get_executor(), opts);
    diagnostics diag;
    auto ec = io.run(conn.ping(diag));
    EXPECT_EQ(ec, redis_errc::tls_handshake) << ec.message() << ": " << diag.message;
    EXPECT_TRUE(is_fatal(ec));
    EXPECT_NE(diag.message.find("certificate"), std::string::npos) << diag.message;
    EXPECT_EQ(conn.connects(), 0u);
}

TEST_F(RedisTls, MissingCaFileIsASetupError) {
    auto opts = options_for(peer->url());
    opts.tls_ca_file = dir / "no-such-ca.pem";
    connection conn(io.ctx.get_executor(), opts);
    diagnostics diag;
    auto ec = io.run(conn.ping(diag));
    EXPECT_EQ(ec, redis_errc::tls_setup);
    EXPECT_NE(diag.message.find("no-such-ca.pem"), std::string::npos) << diag.message;
}

TEST_F(RedisTls, PlainClientOnTheTlsPortFails) {
    auto opts = options_for("redis://127.0.0.1:" + std::to_string(peer->port()));
    opts.command_timeout = std::chrono::milliseconds(1000);
    opts.retry.max_attempts = 1;
    connection conn(io.ctx.get_executor(), opts);
    diagnostics diag;
    auto ec = io.run(conn.ping(diag));
    EXPECT_TRUE(ec);
}

}  // namespace
}  // namespace penne::redis::test
