#pragma once
// The daemon's configuration: the TOML file (toml++), environment overrides for URIs and
// secrets, and validation whose errors name the key, the value and what is allowed.
// app/ is the only place that reads files and the environment (STYLE.md §8).

#include <penne/pipeline.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace penne::app {

struct mongo_settings {
    std::string uri = "mongodb://127.0.0.1:27017";
    std::chrono::milliseconds max_await{1000};
    std::chrono::milliseconds connect_timeout{10'000};
    std::uint32_t batch_size = 0;  // 0: the server's default
    std::string full_document = "default";
    std::vector<std::string> pipeline;  // extra stages, Extended JSON
};

struct watch_settings {
    std::string level;  // collection | database | deployment
    std::string database;
    std::vector<std::string> collections;          // collection level: the collections
    std::vector<std::string> include_collections;  // database/deployment level filters
    std::vector<std::string> exclude_collections;
};

struct output_settings {
    std::string format = "jsonl";
    std::string json_mode = "relaxed";
    std::string layout = "penne";  // penne | rigatoni (the seed's CSV columns)
    std::string csv_delimiter = ",";
    std::string csv_line_ending;  // crlf | lf; empty: the layout's default
    std::string compression = "zstd";
    int compression_level = 0;  // 0: the codec's default
    std::string key_layout = "date_hour";
    std::string prefix = "penne";
};

struct destination_settings {
    std::string type = "local";
    std::string path = "./penne-out";
};

struct state_settings {
    std::string type = "file";
    std::string path = "./penne-state";
};

struct log_settings {
    std::string level = "info";
    std::string format = "text";
    // How often `penne run` logs a progress line (0: never).
    std::chrono::milliseconds progress_interval{10'000};
};

struct config {
    mongo_settings mongodb;
    std::vector<watch_settings> watches;
    output_settings output;
    destination_settings destination;
    state_settings state;
    log_settings log;
    pipeline_config pipeline;  // batch limits, buffers, uploads, timeouts, retry (scopes filled)
    unsigned threads = 1;
};

// Parses and validates. On error returns false and sets `error` to a message that names
// the file, the key, the bad value and what is allowed. `env` supplies the environment
// (PENNE_MONGODB_URI overrides mongodb.uri); tests pass their own.
bool load_config(const std::string& path, const std::map<std::string, std::string>& env,
                 config& out, std::string& error);
bool parse_config(std::string_view toml_text, std::string_view source_name,
                  const std::map<std::string, std::string>& env, config& out, std::string& error);

// Parses "64MiB", "512 KiB", "10MB", "1048576" into bytes.
std::optional<std::uint64_t> parse_size(std::string_view text);

// Replaces the password of a URI (scheme://user:password@host) with "****".
std::string redact_uri(std::string_view uri);

// Redacts the password of every URI embedded anywhere in `text` (for third-party log lines).
std::string redact_uris_in(std::string_view text);

// The environment as a map (for load_config).
std::map<std::string, std::string> environment();

}  // namespace penne::app
