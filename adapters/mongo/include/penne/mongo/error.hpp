#pragma once
// The error category of the MongoDB adapter. One category carries two kinds of codes:
//  - server codes: the positive `code` of a MongoDB error reply (43 CursorNotFound, …),
//    so a caller can compare against the server's own numbering;
//  - client conditions (client_errc): negative values, for failures detected on our side
//    (a malformed frame, a bad URI, no primary found).
// Retry classification follows the MongoDB retryable-reads and change-streams rules:
// network-like and "not primary" conditions are transient, everything else is fatal —
// including TLS configuration, certificate and handshake failures (retrying cannot fix a CA
// file or a host name).
// History loss (286, 280) is not in this category: callers map it to
// penne::errc::history_lost so the engine can apply its policy.
//
// Thread safety: the category is an immutable singleton. Messages never contain secrets.

#include <penne/error.hpp>

#include <cstdint>
#include <span>
#include <string_view>

namespace penne::mongo {

enum class client_errc {
    message_too_short = 1,      // a frame announces fewer bytes than a message header
    message_too_large,          // a frame announces more than maxMessageSizeBytes
    malformed_message,          // the frame does not follow the wire protocol
    unexpected_opcode,          // a reply used an opcode we did not ask for
    response_mismatch,          // responseTo does not match the outstanding request
    malformed_reply,            // the reply document lacks a field or has a wrong type
    command_failed,             // ok: 0 without a numeric code
    missing_resume_token,       // a change event has no _id (removed by a user stage)
    invalid_uri,                // the connection string cannot be used
    invalid_option,             // a source option is out of range or unparsable
    no_primary,                 // no reachable seed is (or names) a writable primary
    auth_failed,                // the SCRAM conversation failed on the client side
    unsupported_auth,           // the URI asks for a mechanism we do not implement
    connection_closed,          // the peer closed the connection mid-conversation
    busy,                       // a second command was started on a connection
    not_connected,              // a command on a closed connection / a stream never opened
    server_too_old,             // the server's wire version predates OP_MSG and change streams
    cursor_closed,              // the server closed the change stream (after an invalidate)
    bad_compression,            // OP_COMPRESSED with an unknown codec or bytes that do not inflate
                                // to exactly the announced size
    invalid_password,           // SASLprep rejects the password (prohibited characters)
    tls_config,                 // tlsCAFile / tlsCertificateKeyFile cannot be loaded
    tls_untrusted_certificate,  // the server's certificate does not verify against the CAs
    tls_host_name_mismatch,     // the server's certificate is not for the host we dialled
    tls_failed,  // the TLS handshake failed otherwise (protocol, the server refused our
                 // client certificate, the server does not speak TLS)
};

const penne::classified_category& error_category() noexcept;

inline error_code make_error_code(client_errc e) noexcept {
    return {-static_cast<int>(e), error_category()};
}

// The error_code of a server error reply.
inline error_code make_server_error(std::int32_t code) noexcept {
    return {code > 0 ? code : -static_cast<int>(client_errc::command_failed), error_category()};
}

// Server codes with a name we use in decisions.
namespace server_code {
inline constexpr std::int32_t cursor_not_found = 43;
inline constexpr std::int32_t command_not_found = 59;
inline constexpr std::int32_t change_stream_fatal = 280;
inline constexpr std::int32_t change_stream_history_lost = 286;
inline constexpr std::int32_t authentication_failed = 18;
}  // namespace server_code

// The codes that made a change stream resumable before servers sent the
// ResumableChangeStreamError label (wire version < 9).
bool is_legacy_resumable_code(std::int32_t code) noexcept;

// True when `ec` is a server error code of this category (not a client condition).
inline bool is_server_error(const error_code& ec) noexcept {
    return ec.category() == error_category() && ec.value() > 0;
}

}  // namespace penne::mongo

template <>
struct boost::system::is_error_code_enum<penne::mongo::client_errc> : std::true_type {};
