#pragma once
// The error category of the Redis adapter. Its codes cover two kinds of failure:
//  - error replies from the server, classified by the reply's first word (the error
//    prefix RESP defines: "LOADING", "WRONGPASS", ...): classify_error_reply() maps a reply
//    text to a code; the text itself goes to diagnostics;
//  - client conditions detected on our side (a bad URL, a reply of an unexpected shape, a
//    connection that closed or failed its TLS handshake).
// Network errors from Asio keep their own (system) codes, which penne::is_retryable already
// classifies; timeouts are penne::errc::timeout and a fence rejection penne::errc::lease_lost.
//
// Retryable: the server is starting or busy or failing over (LOADING, BUSY, TRYAGAIN,
// READONLY, MASTERDOWN, CLUSTERDOWN, OOM, too many clients) and lost connections. Fatal:
// authentication and permission failures, syntax and type errors, bad configuration, and a
// Redis that lost penne's state (store_lost, see state_store.hpp).
//
// Thread safety: the category is an immutable singleton. Messages never contain secrets.

#include <penne/error.hpp>

#include <string_view>
#include <type_traits>

namespace penne::redis {

enum class redis_errc {
    // Server error replies.
    server_error = 1,  // "ERR" and any prefix not listed below (fatal)
    wrong_type,        // WRONGTYPE: a key holds a value of another type (fatal)
    no_script,         // NOSCRIPT: EVALSHA of a script the server does not have (fatal once
                       // the EVAL fallback failed too)
    loading,           // LOADING: the server is loading its dataset (retryable)
    busy,              // BUSY: a script is running too long (retryable)
    try_again,         // TRYAGAIN (retryable)
    read_only,         // READONLY: we talk to a replica after a failover (retryable)
    master_down,       // MASTERDOWN: a replica lost its master (retryable)
    cluster_down,      // CLUSTERDOWN (retryable)
    out_of_memory,     // OOM: maxmemory reached; may clear when memory is freed (retryable)
    max_clients,       // "ERR max number of clients reached" (retryable)
    wrong_password,    // WRONGPASS / "ERR invalid password": bad credentials (fatal)
    no_auth,           // NOAUTH: the server needs a password and none was given (fatal)
    no_permission,     // NOPERM: the ACL user may not run a command or touch a key (fatal)
    // Client conditions.
    invalid_url,        // the redis:// or rediss:// URL cannot be used (fatal)
    unexpected_reply,   // a reply of a type or shape the command cannot produce (fatal)
    connection_closed,  // the server closed the connection (retryable)
    tls_handshake,      // the TLS handshake failed: untrusted certificate, wrong host (fatal)
    tls_setup,          // the TLS context cannot be built (unreadable CA file) (fatal)
    not_connected,      // no connection could be opened (retryable)
    // State store conditions.
    store_lost,  // the Redis no longer holds penne's state: its store identity is gone or
                 // tombstoned (restarted without persistence, flushed). Fatal: resuming
                 // from "now" would skip events; an operator must restore or acknowledge it
};

const penne::classified_category& error_category() noexcept;

inline error_code make_error_code(redis_errc e) noexcept {
    return {static_cast<int>(e), error_category()};
}

// The code of an error reply's text ("WRONGPASS invalid username-password pair").
redis_errc classify_error_reply(std::string_view text) noexcept;

}  // namespace penne::redis

template <>
struct boost::system::is_error_code_enum<penne::redis::redis_errc> : std::true_type {};
