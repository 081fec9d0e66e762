#pragma once
// TLS for MongoDB connections (tls=true in the URI).
//
// tls_context is the client side of TLS built once from the URI's tls_options: the trusted
// CAs (tlsCAFile, else the system's trust store), the client certificate and key
// (tlsCertificateKeyFile, decrypted with tlsCertificateKeyFilePassword) and TLS 1.2 as the
// oldest version. The files are read and checked when the configuration is prepared, so a
// missing or unreadable file is a configuration error, not a reconnect loop. Every
// connection of a stream (seeds, discovered members, reconnects) starts its TLS session from
// the same context; connection.cpp adds per-host verification (the certificate must name the
// host dialled, asio::ssl::host_name_verification) and SNI for host names.
//
// describe_tls_failure turns what OpenSSL reports about a failed session into one of
// penne::mongo's TLS codes and a message saying what to check. Certificate problems are
// fatal: retrying cannot fix a CA file or a host name.
//
// Thread safety: a tls_context is immutable after create(); connections on any thread may
// start sessions from it concurrently. Lifetimes: connections share it through
// connection_options (a shared_ptr). Secrets: the key password is never part of a message.

#include <penne/error.hpp>
#include <penne/mongo/uri.hpp>

#include <memory>
#include <string_view>

namespace boost::asio::ssl {
class context;
}

namespace penne::mongo {

class tls_context {
public:
    // Loads the files `opts` names. Fails with client_errc::tls_config and diagnostics
    // naming the file and what is wrong with it.
    static error_code create(const tls_options& opts, std::shared_ptr<const tls_context>& out,
                             diagnostics& diag);
    ~tls_context();
    tls_context(const tls_context&) = delete;
    tls_context& operator=(const tls_context&) = delete;

    const tls_options& options() const noexcept;
    // The OpenSSL context to build streams from (asio::ssl::stream takes it by reference;
    // creating streams does not change it).
    boost::asio::ssl::context& native() const noexcept;

private:
    struct impl;
    explicit tls_context(std::unique_ptr<impl> p);
    std::unique_ptr<impl> impl_;
};

// What OpenSSL said about a session with `peer` that failed during the handshake or the
// first exchange after it.
struct tls_failure_info {
    error_code error;            // the stream's error (asio::ssl category, eof, …)
    long verify_result = 0;      // SSL_get_verify_result (X509_V_OK: the chain was not at fault)
    bool host_mismatch = false;  // the chain verified but does not name the host dialled
};

// The penne::mongo error for a failed TLS session, with a message naming `peer` and what to
// check. A peer that closed the connection maps to client_errc::connection_closed
// (retryable, the message asks whether the server has TLS enabled); certificate and
// protocol failures to the fatal tls_untrusted_certificate, tls_host_name_mismatch and
// tls_failed. Other errors (timeouts, cancellation, network) are returned unchanged.
error_code describe_tls_failure(const tls_failure_info& info, std::string_view peer,
                                const tls_options& opts, diagnostics& diag);

}  // namespace penne::mongo
