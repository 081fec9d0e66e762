#pragma once
// The change-stream resume rules as pure functions, so they can be tested without a
// server: which errors allow a resume, which start option the new aggregate uses, and the
// capped exponential backoff between reconnection attempts.
//
// Thread safety: plain values and pure functions.

#include <penne/error.hpp>
#include <penne/event.hpp>
#include <penne/mongo/commands.hpp>

#include <chrono>
#include <cstdint>
#include <optional>

namespace penne::mongo {

// Wire version of MongoDB 4.4, from which servers label resumable errors themselves.
inline constexpr std::int32_t wire_version_resumable_label = 9;
// Wire version of MongoDB 4.0, from which startAtOperationTime exists.
inline constexpr std::int32_t wire_version_start_at_operation_time = 7;

enum class resume_decision {
    resume,        // reconnect and run a new aggregate from the cached position
    history_lost,  // the position is gone from the oplog: penne::errc::history_lost
    fail,          // hand the error to the caller
};

// Decides what to do after a getMore failed with `ec`. `reply` is the server's error reply
// when there was one (nullptr for network errors and timeouts).
resume_decision decide_resume(const error_code& ec, const command_reply* reply,
                              std::int32_t max_wire_version) noexcept;

// True for errors that mean "the resume point is gone" (ChangeStreamHistoryLost 286 and
// ChangeStreamFatalError 280), whichever command reported them.
bool is_history_lost(std::int32_t server_code) noexcept;

// The clusterTime a MongoDB resume token encodes ({_data: "82" + 8-byte timestamp in hex
// + …}, the server's KeyString form); nullopt for tokens of another shape.
std::optional<cluster_time> token_cluster_time(byte_view token) noexcept;

// Where the stream is, for choosing the next aggregate's start option.
struct resume_position {
    resume_token cached;                         // last event _id or postBatchResumeToken
    std::optional<cluster_time> operation_time;  // the first aggregate's operationTime
    bool started_after = false;                  // the stream was opened with startAfter …
    bool saw_event = false;                      // … and has not yet returned an event
};

// Rewrites the start option of `spec` for a resume from `pos`: resumeAfter the cached
// token (startAfter when the stream began with startAfter and has returned no event yet),
// else startAtOperationTime when known and supported, else no option (now).
void apply_resume_position(change_stream_spec& spec, const resume_position& pos,
                           std::int32_t max_wire_version);

// Capped exponential backoff: initial, 2×initial, … up to max. Deterministic; the caller
// may add jitter.
class backoff {
public:
    backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max) noexcept
        : initial_(initial), max_(max) {}
    std::chrono::milliseconds next() noexcept;
    void reset() noexcept { attempt_ = 0; }
    int attempts() const noexcept { return attempt_; }

private:
    std::chrono::milliseconds initial_, max_;
    int attempt_ = 0;
};

}  // namespace penne::mongo
