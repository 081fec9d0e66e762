#pragma once
// The daemon's logging: spdlog to stderr, text or JSON lines. The engine and adapters log
// through the log_function handed to them; nothing here is global to the library.

#include <penne/pipeline.hpp>

#include <memory>
#include <string>

namespace spdlog {
class logger;
}

namespace penne::app {

class logger {
public:
    // level: debug|info|warn|error; format: text|json.
    logger(const std::string& level, const std::string& format);
    void log(log_level lvl, std::string_view msg) const;
    void flush() const;
    log_function function() const {
        return [this](log_level l, std::string_view m) { log(l, m); };
    }

private:
    std::shared_ptr<spdlog::logger> impl_;
    bool json_ = false;
};

}  // namespace penne::app
