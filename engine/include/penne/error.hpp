#pragma once
// Errors are values (STYLE.md §4). Every subsystem has its own error_category; the engine
// decides what to do with an error by asking its category, never by reading its message.
//
// A category that wants to take part in retry decisions derives from
// penne::classified_category and says, per code, whether the failure is transient.
// Human-readable context travels beside the code in penne::diagnostics.

#include <boost/system/error_code.hpp>

#include <string>

namespace penne {

using error_code = boost::system::error_code;

// Engine-level conditions.
enum class errc {
    timeout = 1,          // an operation ran past its deadline (our timer cancelled it)
    cancelled,            // the caller cancelled (shutdown)
    invalid_config,       // the configuration cannot work; the diagnostics say which key
    protocol_error,       // a peer sent bytes that do not follow its protocol
    history_lost,         // the resume point fell off the oplog (ChangeStreamHistoryLost)
    permanent_rejection,  // the destination refuses the object for good (403, no bucket)
    unencodable_event,    // an event cannot be written in the configured format
    state_corrupt,        // the state store holds data this version cannot read
    lease_lost,           // another instance owns the scope now
    io_error,             // a local file operation failed
};

const boost::system::error_category& penne_category() noexcept;

inline error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), penne_category()};
}

// A category whose codes know whether a retry can help.
class classified_category : public boost::system::error_category {
public:
    virtual bool retryable(int code) const noexcept = 0;
};

// Transient: a retry with backoff may succeed (network errors, timeouts, throttling, 5xx).
bool is_retryable(const error_code& ec) noexcept;
// Fatal: retrying cannot help; the scope stops with a clear error.
inline bool is_fatal(const error_code& ec) noexcept {
    return ec && !is_retryable(ec);
}

// Context for a failed operation, for logs and /status. Never holds secrets.
struct diagnostics {
    std::string message;
    void clear() noexcept { message.clear(); }
};

}  // namespace penne

template <>
struct boost::system::is_error_code_enum<penne::errc> : std::true_type {};
