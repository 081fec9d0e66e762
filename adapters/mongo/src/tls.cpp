#include <penne/mongo/error.hpp>
#include <penne/mongo/tls.hpp>

#include <boost/asio/error.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>

#include <openssl/x509_vfy.h>

#include <string>

namespace penne::mongo {

namespace ssl = boost::asio::ssl;

struct tls_context::impl {
    impl() : ctx(ssl::context::tls_client) {}
    ssl::context ctx;
    tls_options opts;
};

namespace {

error_code config_error(diagnostics& diag, std::string message) {
    diag.message = std::move(message);
    return make_error_code(client_errc::tls_config);
}

}  // namespace

tls_context::tls_context(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
tls_context::~tls_context() = default;

error_code tls_context::create(const tls_options& opts, std::shared_ptr<const tls_context>& out,
                               diagnostics& diag) {
    auto p = std::make_unique<impl>();
    p->opts = opts;
    ssl::context& ctx = p->ctx;
    error_code ec;
    // MongoDB 4.0+ speaks TLS 1.2 and 1.3; nothing older is worth accepting.
    ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                        ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1,
                    ec);
    if (ec)
        return config_error(diag, "cannot set up TLS: " + ec.message());
    if (opts.ca_file.empty()) {
        ctx.set_default_verify_paths(ec);
        if (ec)
            return config_error(
                diag, "cannot load the system's trusted CAs (set tlsCAFile): " + ec.message());
    } else {
        ctx.load_verify_file(opts.ca_file, ec);
        if (ec)
            return config_error(diag, "tlsCAFile " + opts.ca_file +
                                          " cannot be loaded (it must be a readable PEM file of "
                                          "CA certificates): " +
                                          ec.message());
    }
    if (!opts.certificate_key_file.empty()) {
        const std::string& file = opts.certificate_key_file;
        // OpenSSL asks for the passphrase while reading an encrypted key (without a callback
        // it would prompt on the terminal); the password lives in p->opts, beside the context.
        ctx.set_password_callback([pw = &p->opts.certificate_key_password](
                                      std::size_t, ssl::context::password_purpose) { return *pw; },
                                  ec);
        if (ec)
            return config_error(diag, "cannot set up TLS: " + ec.message());
        ctx.use_certificate_chain_file(file, ec);
        if (ec)
            return config_error(diag, "tlsCertificateKeyFile " + file +
                                          ": no usable certificate (it must be a readable PEM "
                                          "file with the client certificate and its key): " +
                                          ec.message());
        ctx.use_private_key_file(file, ssl::context::pem, ec);
        if (ec)
            return config_error(
                diag, "tlsCertificateKeyFile " + file + ": cannot load the private key (" +
                          (opts.certificate_key_password.empty()
                               ? std::string("missing, or encrypted and no "
                                             "tlsCertificateKeyFilePassword given")
                               : std::string("missing, or wrong tlsCertificateKeyFilePassword")) +
                          "): " + ec.message());
        if (SSL_CTX_check_private_key(ctx.native_handle()) != 1)
            return config_error(diag, "tlsCertificateKeyFile " + file +
                                          ": the private key does not match the certificate");
    }
    ctx.set_verify_mode(opts.allow_invalid_certificates ? ssl::verify_none : ssl::verify_peer, ec);
    if (ec)
        return config_error(diag, "cannot set up TLS: " + ec.message());
    out.reset(new tls_context(std::move(p)));
    return {};
}

const tls_options& tls_context::options() const noexcept {
    return impl_->opts;
}

ssl::context& tls_context::native() const noexcept {
    return impl_->ctx;
}

error_code describe_tls_failure(const tls_failure_info& info, std::string_view peer,
                                const tls_options& opts, diagnostics& diag) {
    const error_code& ec = info.error;
    const std::string where(peer);
    namespace ae = boost::asio::error;
    if (ec == ae::eof || ec == ae::connection_reset || ec == ssl::error::stream_truncated) {
        diag.message = "TLS session with " + where +
                       ": the server closed the connection (does it have TLS enabled?)";
        return make_error_code(client_errc::connection_closed);
    }
    if (info.host_mismatch || info.verify_result == X509_V_ERR_HOSTNAME_MISMATCH ||
        info.verify_result == X509_V_ERR_IP_ADDRESS_MISMATCH) {
        diag.message = "the TLS certificate of " + where +
                       " is not issued for that host name: connect with a name the certificate "
                       "lists (check the host in the URI and the certificate's subject "
                       "alternative names), or set tlsAllowInvalidHostnames=true (insecure)";
        return make_error_code(client_errc::tls_host_name_mismatch);
    }
    if (info.verify_result != X509_V_OK) {
        const char* why = X509_verify_cert_error_string(info.verify_result);
        diag.message = "the TLS certificate of " + where + " is not trusted (" +
                       (why ? why : "verification failed") + "): check that " +
                       (opts.ca_file.empty() ? std::string("the system's trust store (or a "
                                                           "tlsCAFile)")
                                             : "tlsCAFile " + opts.ca_file) +
                       " holds the CA that issued the server's certificate";
        return make_error_code(client_errc::tls_untrusted_certificate);
    }
    if (ec.category() == ae::get_ssl_category() ||
        ec.category() == ssl::error::get_stream_category()) {
        diag.message = "TLS session with " + where + " failed: " + ec.message() +
                       " (check that the server speaks TLS" +
                       (opts.certificate_key_file.empty()
                            ? std::string(", and set tlsCertificateKeyFile if it requires client "
                                          "certificates)")
                            : ", and that it trusts the CA of tlsCertificateKeyFile " +
                                  opts.certificate_key_file + ")");
        return make_error_code(client_errc::tls_failed);
    }
    diag.message = "TLS session with " + where + ": " + ec.message();
    return ec;
}

}  // namespace penne::mongo
