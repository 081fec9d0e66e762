#pragma once
// The daemon's side of the configuration: reading the TOML file and the process
// environment (app/ is the only place that reads files and the environment, STYLE.md §8).
// The settings and the pure parser live in the library (include/penne/config.hpp).

#include <penne/config.hpp>

#include <map>
#include <string>

namespace penne::app {

// The library's names, for app code and its tests.
using penne::config;
using penne::destination_settings;
using penne::lease_settings;
using penne::log_settings;
using penne::metrics_settings;
using penne::mongo_settings;
using penne::output_settings;
using penne::parse_config;
using penne::parse_size;
using penne::redact_uri;
using penne::redact_uris_in;
using penne::s3_settings;
using penne::state_settings;
using penne::watch_settings;

// Reads the file and parses it (parse_config). On error returns false and sets `error` to a
// message that names the file, the key, the bad value and what is allowed. `env` supplies
// the environment (PENNE_MONGODB_URI overrides mongodb.uri); tests pass their own.
bool load_config(const std::string& path, const std::map<std::string, std::string>& env,
                 config& out, std::string& error);

// Reads only the [s3] table of a configuration file (for the `penne s3` tools).
bool load_s3_settings(const std::string& path, s3_settings& out, std::string& error);

// The environment as a map (for load_config).
std::map<std::string, std::string> environment();

}  // namespace penne::app
