#include <penne/mongo/error.hpp>

#include <string>

namespace penne::mongo {
namespace {

// Codes that a retry (after rediscovering the primary) may cure: network trouble seen by
// the server, elections, shutdown and shard-routing staleness.
bool transient_server_code(int code) noexcept {
    switch (code) {
        case 6:      // HostUnreachable
        case 7:      // HostNotFound
        case 43:     // CursorNotFound: the change stream resumes on a fresh cursor
        case 63:     // StaleShardVersion
        case 89:     // NetworkTimeout
        case 91:     // ShutdownInProgress
        case 133:    // FailedToSatisfyReadPreference
        case 134:    // ReadConcernMajorityNotAvailableYet
        case 150:    // StaleEpoch
        case 189:    // PrimarySteppedDown
        case 234:    // RetryChangeStream
        case 262:    // ExceededTimeLimit
        case 9001:   // SocketException
        case 10107:  // NotWritablePrimary
        case 11600:  // InterruptedAtShutdown
        case 11602:  // InterruptedDueToReplStateChange
        case 13388:  // StaleConfig
        case 13435:  // NotPrimaryNoSecondaryOk
        case 13436:  // NotPrimaryOrSecondary
            return true;
        default:
            return false;
    }
}

class category_impl final : public penne::classified_category {
public:
    const char* name() const noexcept override { return "penne.mongo"; }

    std::string message(int ev) const override {
        if (ev > 0)
            return "MongoDB server error " + std::to_string(ev);
        switch (static_cast<client_errc>(-ev)) {
            case client_errc::message_too_short:
                return "wire message shorter than its header";
            case client_errc::message_too_large:
                return "wire message larger than maxMessageSizeBytes";
            case client_errc::malformed_message:
                return "malformed wire message";
            case client_errc::unexpected_opcode:
                return "unexpected wire opcode in reply";
            case client_errc::response_mismatch:
                return "reply does not answer the request";
            case client_errc::malformed_reply:
                return "malformed command reply";
            case client_errc::command_failed:
                return "command failed without an error code";
            case client_errc::missing_resume_token:
                return "change event has no resume token (_id)";
            case client_errc::invalid_uri:
                return "invalid MongoDB connection string";
            case client_errc::invalid_option:
                return "invalid MongoDB source option";
            case client_errc::no_primary:
                return "no writable primary found";
            case client_errc::auth_failed:
                return "authentication failed";
            case client_errc::unsupported_auth:
                return "unsupported authentication mechanism";
            case client_errc::connection_closed:
                return "connection closed by the server";
            case client_errc::busy:
                return "a command is already in progress";
            case client_errc::not_connected:
                return "not connected";
            case client_errc::server_too_old:
                return "server too old (MongoDB 3.6 or newer is required)";
            case client_errc::cursor_closed:
                return "the server closed the change stream (invalidated)";
            case client_errc::bad_compression:
                return "undecodable OP_COMPRESSED message";
            case client_errc::invalid_password:
                return "password rejected by SASLprep";
            case client_errc::tls_config:
                return "TLS certificate or CA file cannot be used";
            case client_errc::tls_untrusted_certificate:
                return "server certificate not trusted";
            case client_errc::tls_host_name_mismatch:
                return "server certificate does not match the host name";
            case client_errc::tls_failed:
                return "TLS handshake failed";
        }
        return "unknown MongoDB client error";
    }

    bool retryable(int ev) const noexcept override {
        if (ev > 0)
            return transient_server_code(ev);
        switch (static_cast<client_errc>(-ev)) {
            case client_errc::connection_closed:
            case client_errc::not_connected:
            case client_errc::no_primary:
                return true;
            default:
                return false;
        }
    }
};

}  // namespace

const penne::classified_category& error_category() noexcept {
    static const category_impl cat;
    return cat;
}

bool is_legacy_resumable_code(std::int32_t code) noexcept {
    switch (code) {
        case 6:
        case 7:
        case 63:
        case 89:
        case 91:
        case 133:
        case 150:
        case 189:
        case 234:
        case 262:
        case 9001:
        case 10107:
        case 11600:
        case 11602:
        case 13388:
        case 13435:
        case 13436:
            return true;
        default:
            return false;
    }
}

}  // namespace penne::mongo
