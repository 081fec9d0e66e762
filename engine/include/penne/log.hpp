#pragma once
// The logging hook every room takes: a level and a message, nothing heavier. The daemon
// routes it to spdlog; an embedding application routes it wherever it logs. Messages never
// contain secrets (credentials, passwords, tokens are redacted before they get here).
//
// Thread safety: a log_function may be called from any thread the io_context runs on; an
// implementation shared by several threads must be safe for concurrent calls.

#include <functional>
#include <string_view>

namespace penne {

enum class log_level { debug, info, warn, error };
using log_function = std::function<void(log_level, std::string_view)>;

}  // namespace penne
