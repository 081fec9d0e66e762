#include "logging.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

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

logger::logger(const std::string& level, const std::string& format)
    : impl_(std::make_shared<spdlog::logger>("penne",
                                             std::make_shared<spdlog::sinks::stderr_sink_mt>())),
      json_(format == "json") {
    if (json_) {
        impl_->set_pattern(R"({"time":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l",%v})",
                           spdlog::pattern_time_type::utc);
    } else {
        impl_->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%-5l%$ %v", spdlog::pattern_time_type::utc);
    }
    impl_->set_level(level == "debug"   ? spdlog::level::debug
                     : level == "warn"  ? spdlog::level::warn
                     : level == "error" ? spdlog::level::err
                                        : spdlog::level::info);
    impl_->flush_on(spdlog::level::warn);
}

void logger::log(log_level lvl, std::string_view msg) const {
    if (!impl_->should_log(to_spd(lvl)))
        return;
    if (json_) {
        std::string line = "\"msg\":\"";
        append_json_escaped(line, msg);
        line += '"';
        impl_->log(to_spd(lvl), "{}", line);
    } else {
        impl_->log(to_spd(lvl), "{}", msg);
    }
}

void logger::flush() const {
    impl_->flush();
}

}  // namespace penne::app
