#include "logging.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <mutex>

#include "config_file.hpp"

namespace penne::app {
namespace {

void append_json_escaped(std::string& out, std::string_view s) {
    static constexpr char hex[] = "0123456789abcdef";
    for (unsigned char c : s) {
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                if (c < 0x20) {
                    out += "\\u00";
                    out += hex[c >> 4];
                    out += hex[c & 0xf];
                } else {
                    out.push_back(static_cast<char>(c));
                }
        }
    }
}

spdlog::level::level_enum to_spd(log_level l) {
    switch (l) {
        case log_level::debug:
            return spdlog::level::debug;
        case log_level::info:
            return spdlog::level::info;
        case log_level::warn:
            return spdlog::level::warn;
        case log_level::error:
            return spdlog::level::err;
    }
    return spdlog::level::info;
}

}  // namespace

// ---- repeat_limiter -------------------------------------------------------------------

repeat_limiter::repeat_limiter(repeat_options opts, log_now_function now)
    : opts_(opts), now_(now ? std::move(now) : log_now_function([] { return log_clock::now(); })) {
    opts_.max_keys = std::max<std::size_t>(opts_.max_keys, 1);
}

std::string repeat_limiter::summary_text(std::string_view text, std::uint64_t repeated,
                                         std::chrono::milliseconds window) {
    std::string out(text);
    out += " (repeated ";
    out += std::to_string(repeated);
    out += repeated == 1 ? " time" : " times";
    out += " in the last ";
    if (window.count() % 1000 == 0) {
        out += std::to_string(window.count() / 1000);
        out += "s)";
    } else {
        out += std::to_string(window.count());
        out += "ms)";
    }
    return out;
}

void repeat_limiter::close(map::iterator it, std::vector<line>& out) {
    if (it->second.repeated > 0)
        out.push_back(line{it->second.level, it->first.substr(1), it->second.repeated});
    entries_.erase(it);
}

void repeat_limiter::close_expired(log_clock::time_point now, std::vector<line>& out) {
    // Collect first so the summaries come out oldest window first, whatever the hash order.
    std::vector<map::iterator> closed;
    for (auto it = entries_.begin(); it != entries_.end(); ++it)
        if (now - it->second.opened >= opts_.window)
            closed.push_back(it);
    std::sort(closed.begin(), closed.end(),
              [](auto& a, auto& b) { return a->second.order < b->second.order; });
    for (auto it : closed)
        close(it, out);
}

void repeat_limiter::admit(log_level lvl, std::string_view text, std::vector<line>& out) {
    if (opts_.window.count() <= 0) {
        out.push_back(line{lvl, std::string(text), 0});
        return;
    }
    const auto now = now_();
    close_expired(now, out);
    // The key: the level as one byte, then the text.
    std::string key;
    key.reserve(text.size() + 1);
    key.push_back(static_cast<char>('0' + static_cast<int>(lvl)));
    key.append(text);
    if (auto it = entries_.find(key); it != entries_.end()) {
        ++it->second.repeated;
        return;
    }
    if (entries_.size() >= opts_.max_keys) {
        auto oldest = std::min_element(entries_.begin(), entries_.end(), [](auto& a, auto& b) {
            return a.second.order < b.second.order;
        });
        close(oldest, out);
    }
    entries_.emplace(std::move(key), entry{lvl, now, next_order_++, 0});
    out.push_back(line{lvl, std::string(text), 0});
}

void repeat_limiter::expire(std::vector<line>& out) {
    if (!entries_.empty())
        close_expired(now_(), out);
}

void repeat_limiter::drain(std::vector<line>& out) {
    std::vector<map::iterator> all;
    for (auto it = entries_.begin(); it != entries_.end(); ++it)
        all.push_back(it);
    std::sort(all.begin(), all.end(),
              [](auto& a, auto& b) { return a->second.order < b->second.order; });
    for (auto it : all)
        close(it, out);
}

// ---- logger ---------------------------------------------------------------------------

struct logger::shared {
    std::shared_ptr<spdlog::logger> impl;
    bool json = false;
    std::mutex mutex;
    repeat_limiter limiter;
    std::vector<repeat_limiter::line> pending;  // reused under the mutex

    shared(std::shared_ptr<spdlog::logger> l, bool j, repeat_options o, log_now_function now)
        : impl(std::move(l)), json(j), limiter(o, std::move(now)) {}

    ~shared() {
        pending.clear();
        limiter.drain(pending);
        write_pending();
        impl->flush();
    }

    void write(const repeat_limiter::line& l) {
        const std::string text =
            l.repeated == 0
                ? l.text
                : repeat_limiter::summary_text(l.text, l.repeated, limiter.options().window);
        if (json) {
            std::string out = "\"msg\":\"";
            append_json_escaped(out, text);
            out += '"';
            if (l.repeated > 0) {
                out += ",\"repeated\":";
                out += std::to_string(l.repeated);
            }
            impl->log(to_spd(l.level), "{}", out);
        } else {
            impl->log(to_spd(l.level), "{}", text);
        }
    }

    void write_pending() {
        for (auto& l : pending)
            write(l);
        pending.clear();
    }
};

logger::logger(const std::string& level, const std::string& format, repeat_options repeats,
               log_now_function now) {
    auto impl = std::make_shared<spdlog::logger>("penne",
                                                 std::make_shared<spdlog::sinks::stderr_sink_mt>());
    const bool json = format == "json";
    if (json) {
        impl->set_pattern(R"({"time":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l",%v})",
                          spdlog::pattern_time_type::utc);
    } else {
        impl->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%-5l%$ %v", spdlog::pattern_time_type::utc);
    }
    impl->set_level(level == "debug"   ? spdlog::level::debug
                    : level == "warn"  ? spdlog::level::warn
                    : level == "error" ? spdlog::level::err
                                       : spdlog::level::info);
    impl->flush_on(spdlog::level::warn);
    state_ = std::make_shared<shared>(std::move(impl), json, repeats, std::move(now));
}

logger::~logger() = default;

void logger::log(log_level lvl, std::string_view msg) const {
    auto& s = *state_;
    // Filtered levels never reach the limiter, so they take no key.
    if (!s.impl->should_log(to_spd(lvl)))
        return;
    // Redact before keying: summaries and keys hold only redacted text. Idempotent for
    // callers that redacted already.
    const std::string text = redact_uris_in(msg);
    // Written under the mutex so a summary never overtakes the line it summarises.
    std::lock_guard lock(s.mutex);
    s.limiter.admit(lvl, text, s.pending);
    s.write_pending();
}

void logger::flush() const {
    auto& s = *state_;
    {
        std::lock_guard lock(s.mutex);
        s.limiter.expire(s.pending);
        s.write_pending();
    }
    s.impl->flush();
}

}  // namespace penne::app
