#pragma once
// The daemon's logging: spdlog to stderr, text or JSON lines. The engine and adapters log
// through the log_function handed to them; nothing here is global to the library.
//
// Repeats are rate-limited: a message identical to one already logged (same level, same
// text after redaction) within the repeat window (10 s by default) is counted instead of
// written, and when the window has closed one summary line follows:
//   "<text> (repeated N times in the last 10s)".
// The first occurrence of every message is written at once, errors included; nothing is
// ever held back except exact repeats, and a repeat is never dropped without being counted
// in a summary (when a key is evicted, on flush() and on destruction the pending counts
// are written). There is no timer: closed windows are noticed on the next log() or flush()
// call, so the daemon calls flush() now and then (e.g. with its progress reports) to get
// the summaries of a message that stopped repeating while everything else was quiet.
//
// Secrets: every message goes through redact_uris_in() before it is keyed, counted or
// written, so summaries repeat only redacted text.

#include <penne/pipeline_engine.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace penne::app {

// The injectable clock of the repeat limiter (steady time; tests pass a hand-driven one).
using log_clock = std::chrono::steady_clock;
using log_now_function = std::function<log_clock::time_point()>;

struct repeat_options {
    // Repeats of a message within this long after its first occurrence are counted, not
    // written. Zero turns the limiter off (every message is written).
    std::chrono::milliseconds window{std::chrono::seconds(10)};
    // Distinct messages tracked at once; the oldest window is closed (and summarised) to
    // make room for a new one. At least 1.
    std::size_t max_keys = 256;
};

// The pure decision logic of rate-limited repeats, no I/O: feed it messages, it says which
// lines to write. Thread safety: none; logger wraps it in a mutex. The clock is called
// only from admit() and expire().
class repeat_limiter {
public:
    struct line {
        log_level level;
        std::string text;
        std::uint64_t repeated = 0;  // 0 for the message itself; N for a summary line
    };

    explicit repeat_limiter(repeat_options opts = {}, log_now_function now = {});

    // One message. Appends to `out`, in order: the summaries of windows that have closed
    // (oldest first), then the message itself unless it repeats one whose window is open.
    void admit(log_level lvl, std::string_view text, std::vector<line>& out);
    // Appends the summaries of windows that have closed and forgets those keys.
    void expire(std::vector<line>& out);
    // Appends the summaries of every window with repeats, open or not, and forgets all
    // keys (shutdown).
    void drain(std::vector<line>& out);

    std::size_t tracked() const noexcept { return entries_.size(); }
    const repeat_options& options() const noexcept { return opts_; }

    // "<text> (repeated N times in the last 10s)"; the window as whole seconds when it is
    // one, milliseconds otherwise.
    static std::string summary_text(std::string_view text, std::uint64_t repeated,
                                    std::chrono::milliseconds window);

private:
    struct entry {
        log_level level;
        log_clock::time_point opened;
        std::uint64_t order;  // admission order: ties in `opened` close oldest first
        std::uint64_t repeated = 0;
    };
    using map = std::unordered_map<std::string, entry>;

    void close(map::iterator it, std::vector<line>& out);
    void close_expired(log_clock::time_point now, std::vector<line>& out);

    repeat_options opts_;
    log_now_function now_;
    map entries_;
    std::uint64_t next_order_ = 0;
};

class logger {
public:
    // level: debug|info|warn|error; format: text|json. `now` defaults to the steady clock.
    // Thread safety: log() and flush() may be called from any thread; copies share state.
    logger(const std::string& level, const std::string& format, repeat_options repeats = {},
           log_now_function now = {});
    ~logger();
    logger(const logger&) = default;
    logger& operator=(const logger&) = default;

    void log(log_level lvl, std::string_view msg) const;
    // Writes the summaries of closed windows, then flushes the sink.
    void flush() const;
    log_function function() const {
        return [this](log_level l, std::string_view m) { log(l, m); };
    }

private:
    // The sink, the format and the limiter behind one mutex; the last copy to go writes
    // the pending summaries.
    struct shared;
    std::shared_ptr<shared> state_;
};

}  // namespace penne::app
