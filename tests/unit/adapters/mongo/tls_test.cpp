// TLS options of the connection string (tls/ssl and the tls* options, through libmongoc),
// the redaction of the key password, and the classification of failed TLS sessions.

#include <penne/mongo/change_stream.hpp>
#include <penne/mongo/error.hpp>
#include <penne/mongo/tls.hpp>
#include <penne/mongo/uri.hpp>

#include <gtest/gtest.h>
#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

namespace penne::mongo {
namespace {

TEST(UriTls, PlainUriHasNoTls) {
    uri_info u;
    diagnostics d;
    ASSERT_FALSE(parse_uri("mongodb://h/?tlsCAFile=/ca.pem&tls=false", u, d)) << d.message;
    EXPECT_FALSE(u.tls);
    ASSERT_FALSE(parse_uri("mongodb://h/", u, d)) << d.message;
    EXPECT_FALSE(u.tls);
}

TEST(UriTls, VerifiesByDefault) {
    uri_info u;
    diagnostics d;
    for (const char* uri : {"mongodb://h/?tls=true", "mongodb://h/?ssl=true"}) {
        ASSERT_FALSE(parse_uri(uri, u, d)) << uri << ": " << d.message;
        ASSERT_TRUE(u.tls) << uri;
        EXPECT_TRUE(u.tls->ca_file.empty());
        EXPECT_TRUE(u.tls->certificate_key_file.empty());
        EXPECT_FALSE(u.tls->allow_invalid_certificates);
        EXPECT_FALSE(u.tls->allow_invalid_hostnames);
    }
}

TEST(UriTls, FilesAndRelaxations) {
    uri_info u;
    diagnostics d;
    ASSERT_FALSE(
        parse_uri("mongodb://h/?tls=true&tlsCAFile=%2Fetc%2Fca%20dir%2Fca.pem"
                  "&tlsCertificateKeyFile=/k/client.pem"
                  "&tlsCertificateKeyFilePassword=k3y-Secret"
                  "&tlsAllowInvalidHostnames=true",
                  u, d))
        << d.message;
    ASSERT_TRUE(u.tls);
    EXPECT_EQ(u.tls->ca_file, "/etc/ca dir/ca.pem");
    EXPECT_EQ(u.tls->certificate_key_file, "/k/client.pem");
    EXPECT_EQ(u.tls->certificate_key_password, "k3y-Secret");
    EXPECT_FALSE(u.tls->allow_invalid_certificates);
    EXPECT_TRUE(u.tls->allow_invalid_hostnames);
    EXPECT_EQ(u.redacted.find("k3y-Secret"), std::string::npos) << u.redacted;

    // A tls* option alone turns TLS on, as in libmongoc.
    ASSERT_FALSE(parse_uri("mongodb://h/?tlsAllowInvalidCertificates=true", u, d));
    ASSERT_TRUE(u.tls);
    EXPECT_TRUE(u.tls->allow_invalid_certificates);
    EXPECT_FALSE(u.tls->allow_invalid_hostnames);

    // tlsInsecure relaxes both checks, and may not be combined with them.
    ASSERT_FALSE(parse_uri("mongodb://h/?tls=true&tlsInsecure=true", u, d));
    ASSERT_TRUE(u.tls);
    EXPECT_TRUE(u.tls->allow_invalid_certificates);
    EXPECT_TRUE(u.tls->allow_invalid_hostnames);
    EXPECT_EQ(parse_uri("mongodb://h/?tlsInsecure=true&tlsAllowInvalidHostnames=true", u, d),
              client_errc::invalid_uri);
}

TEST(UriTls, LegacySslSpellings) {
    uri_info u;
    diagnostics d;
    ASSERT_FALSE(
        parse_uri("mongodb://h/?ssl=true&sslCertificateAuthorityFile=/ca.pem"
                  "&sslClientCertificateKeyFile=/c.pem"
                  "&sslClientCertificateKeyPassword=pa55&sslAllowInvalidCertificates=true",
                  u, d))
        << d.message;
    ASSERT_TRUE(u.tls);
    EXPECT_EQ(u.tls->ca_file, "/ca.pem");
    EXPECT_EQ(u.tls->certificate_key_file, "/c.pem");
    EXPECT_EQ(u.tls->certificate_key_password, "pa55");
    EXPECT_TRUE(u.tls->allow_invalid_certificates);
    EXPECT_EQ(u.redacted.find("pa55"), std::string::npos) << u.redacted;
    // ssl and tls must agree.
    EXPECT_EQ(parse_uri("mongodb://h/?tls=true&ssl=false", u, d), client_errc::invalid_uri);
}

TEST(UriTls, KeyPasswordNeedsAKeyFile) {
    uri_info u;
    diagnostics d;
    EXPECT_EQ(parse_uri("mongodb://h/?tls=true&tlsCertificateKeyFilePassword=hunter2", u, d),
              client_errc::invalid_uri);
    EXPECT_NE(d.message.find("tlsCertificateKeyFile"), std::string::npos) << d.message;
    EXPECT_EQ(d.message.find("hunter2"), std::string::npos) << d.message;
}

TEST(UriTls, RedactsEverySecret) {
    EXPECT_EQ(redact_uri("mongodb://u:pw@h/?tls=true&tlsCertificateKeyFilePassword=abc&appName=x"),
              "mongodb://u:***@h/?tls=true&tlsCertificateKeyFilePassword=***&appName=x");
    EXPECT_EQ(redact_uri("mongodb://h/?TLSCERTIFICATEKEYFILEPASSWORD=abc"),
              "mongodb://h/?TLSCERTIFICATEKEYFILEPASSWORD=***");
    EXPECT_EQ(redact_uri("mongodb://h/?a=1;sslClientCertificateKeyPassword=p%26q;b=2"),
              "mongodb://h/?a=1;sslClientCertificateKeyPassword=***;b=2");
    // An '@' in the query must not hide the option from the redaction.
    EXPECT_EQ(redact_uri("mongodb://h/?appName=a@b&tlsCertificateKeyFilePassword=zz"),
              "mongodb://h/?appName=a@b&tlsCertificateKeyFilePassword=***");
    EXPECT_EQ(redact_uri("mongodb://h/?tlsCertificateKeyFile=/k.pem"),
              "mongodb://h/?tlsCertificateKeyFile=/k.pem");

    // Errors quote the URI redacted.
    uri_info u;
    diagnostics d;
    EXPECT_TRUE(
        parse_uri("mongodb://h/?tlsInsecure=true&tlsAllowInvalidHostnames=true"
                  "&tlsCertificateKeyFilePassword=n0-Leak",
                  u, d));
    EXPECT_EQ(d.message.find("n0-Leak"), std::string::npos) << d.message;
    EXPECT_NE(d.message.find("tlsCertificateKeyFilePassword=***"), std::string::npos) << d.message;
}

TEST(UriTls, PrepareRejectsUnreadableFiles) {
    stream_config cfg;
    diagnostics d;
    source_options o;
    o.uri = "mongodb://h/?tls=true&tlsCAFile=/nonexistent/penne-ca.pem";
    EXPECT_EQ(prepare(o, cfg, d), penne::errc::invalid_config);
    EXPECT_NE(d.message.find("/nonexistent/penne-ca.pem"), std::string::npos) << d.message;
    EXPECT_NE(d.message.find("tlsCAFile"), std::string::npos) << d.message;

    o.uri =
        "mongodb://h/?tls=true&tlsCertificateKeyFile=/nonexistent/client.pem"
        "&tlsCertificateKeyFilePassword=s3cr3t-pw";
    EXPECT_EQ(prepare(o, cfg, d), penne::errc::invalid_config);
    EXPECT_NE(d.message.find("/nonexistent/client.pem"), std::string::npos) << d.message;
    EXPECT_EQ(d.message.find("s3cr3t-pw"), std::string::npos) << d.message;

    // The system trust store needs no file; without TLS there is no context at all.
    o.uri = "mongodb://h/?tls=true";
    ASSERT_FALSE(prepare(o, cfg, d)) << d.message;
    ASSERT_TRUE(cfg.connection.tls);
    EXPECT_FALSE(cfg.connection.tls->options().allow_invalid_certificates);
    o.uri = "mongodb://h/";
    ASSERT_FALSE(prepare(o, cfg, d)) << d.message;
    EXPECT_FALSE(cfg.connection.tls);
}

// An error of the asio::ssl category with OpenSSL's reason code `reason`.
error_code ssl_error(int reason) {
    return {static_cast<int>(ERR_PACK(ERR_LIB_SSL, 0, reason)),
            boost::asio::error::get_ssl_category()};
}

TEST(TlsFailure, UntrustedChainIsFatalAndNamesTheCaFile) {
    tls_options opts;
    opts.ca_file = "/etc/penne/ca.pem";
    diagnostics d;
    tls_failure_info info{ssl_error(SSL_R_CERTIFICATE_VERIFY_FAILED),
                          X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, false};
    auto ec = describe_tls_failure(info, "db1:27017", opts, d);
    EXPECT_EQ(ec, client_errc::tls_untrusted_certificate);
    EXPECT_TRUE(is_fatal(ec));
    EXPECT_NE(d.message.find("db1:27017"), std::string::npos) << d.message;
    EXPECT_NE(d.message.find("tlsCAFile /etc/penne/ca.pem"), std::string::npos) << d.message;
    EXPECT_NE(d.message.find("issuer"), std::string::npos) << d.message;

    opts.ca_file.clear();
    info.verify_result = X509_V_ERR_CERT_HAS_EXPIRED;
    ec = describe_tls_failure(info, "db1:27017", opts, d);
    EXPECT_EQ(ec, client_errc::tls_untrusted_certificate);
    EXPECT_NE(d.message.find("expired"), std::string::npos) << d.message;
    EXPECT_NE(d.message.find("trust store"), std::string::npos) << d.message;
}

TEST(TlsFailure, HostNameMismatchIsFatalAndSaysHowToRelax) {
    tls_options opts;
    diagnostics d;
    for (long result : {long(X509_V_ERR_HOSTNAME_MISMATCH), long(X509_V_ERR_IP_ADDRESS_MISMATCH)}) {
        tls_failure_info info{ssl_error(SSL_R_CERTIFICATE_VERIFY_FAILED), result, false};
        auto ec = describe_tls_failure(info, "10.0.0.5:27017", opts, d);
        EXPECT_EQ(ec, client_errc::tls_host_name_mismatch);
        EXPECT_TRUE(is_fatal(ec));
        EXPECT_NE(d.message.find("tlsAllowInvalidHostnames"), std::string::npos) << d.message;
    }
    // The flag set by the verify callback wins even without a verify result.
    tls_failure_info info{ssl_error(SSL_R_CERTIFICATE_VERIFY_FAILED), X509_V_OK, true};
    EXPECT_EQ(describe_tls_failure(info, "h:1", opts, d), client_errc::tls_host_name_mismatch);
}

TEST(TlsFailure, ProtocolErrorsAreFatalAndMentionClientCertificates) {
    tls_options opts;
    diagnostics d;
    tls_failure_info info{ssl_error(SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED), X509_V_OK, false};
    auto ec = describe_tls_failure(info, "h:1", opts, d);
    EXPECT_EQ(ec, client_errc::tls_failed);
    EXPECT_TRUE(is_fatal(ec));
    EXPECT_NE(d.message.find("tlsCertificateKeyFile"), std::string::npos) << d.message;

    info.error = ssl_error(SSL_R_WRONG_VERSION_NUMBER);
    EXPECT_EQ(describe_tls_failure(info, "h:1", opts, d), client_errc::tls_failed);
    EXPECT_NE(d.message.find("speaks TLS"), std::string::npos) << d.message;
}

TEST(TlsFailure, ClosedConnectionsStayRetryable) {
    tls_options opts;
    diagnostics d;
    for (error_code e : {error_code(boost::asio::error::eof),
                         error_code(boost::asio::ssl::error::stream_truncated),
                         error_code(boost::asio::error::connection_reset)}) {
        tls_failure_info info{e, X509_V_OK, false};
        auto ec = describe_tls_failure(info, "h:1", opts, d);
        EXPECT_EQ(ec, client_errc::connection_closed) << e.message();
        EXPECT_TRUE(is_retryable(ec));
        EXPECT_NE(d.message.find("TLS enabled"), std::string::npos) << d.message;
    }
    // Timeouts and cancellation pass through unchanged.
    tls_failure_info info{make_error_code(penne::errc::timeout), X509_V_OK, false};
    EXPECT_EQ(describe_tls_failure(info, "h:1", opts, d), penne::errc::timeout);
}

}  // namespace
}  // namespace penne::mongo
