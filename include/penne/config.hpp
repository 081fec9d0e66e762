#pragma once
// penne::config: every option of the TOML configuration file (README "Configuration"),
// settable from code. The daemon fills it from its file and environment; an embedder fills
// it by hand or with parse_config() and hands it to penne::pipeline (pipeline.hpp).
//
// Defaults are those of the file. Strings take the values the file takes ("jsonl", "s3",
// "redis", …). parse_config() checks every key, range and combination the file can get
// wrong; a configuration built in code is checked by penne::pipeline only as far as it
// needs to build its parts (names of formats, destinations, stores, codecs, key templates,
// URIs), reported by pipeline::check_config() with the key that is wrong.
//
// Thread safety: plain values; parse_config() and the helpers are pure functions (they read
// no files and no environment: the caller passes the environment in), safe to call from any
// thread. Secrets (passwords in URIs, S3 keys) are held as given and never appear in
// errors, logs or describe() strings.

#include <penne/pipeline_engine.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace penne {

struct mongo_settings {
    std::string uri = "mongodb://127.0.0.1:27017";
    std::chrono::milliseconds max_await{1000};
    std::chrono::milliseconds connect_timeout{10'000};
    std::uint32_t batch_size = 0;  // 0: the server's default
    bool prefetch = true;          // send the next getMore while a reply is processed
    std::string full_document = "default";
    std::string full_document_before_change =
        "default";  // default | off | whenAvailable | required
    bool show_expanded_events = false;
    bool split_large_events = true;  // $changeStreamSplitLargeEvent + reassembly, where supported
    std::vector<std::string> pipeline;  // extra stages, Extended JSON
    // mongodb+srv://: the DNS server ("ip[:port]") for the SRV/TXT lookups and the hosts they
    // name; empty: the first nameserver of `resolv_conf` (hosts then resolve as usual).
    std::string dns_server;
    // The text of /etc/resolv.conf, which the daemon reads (not a file option).
    std::string resolv_conf;
    // on_history_lost sets pipeline_config::on_history_lost ("fail" | "restart_from_now").
    // start_at sets pipeline_config::start_at ("now" | an operation time, parse_start_at).
};

struct watch_settings {
    std::string level;  // collection | database | deployment
    std::string database;
    std::vector<std::string> collections;          // collection level: the collections
    std::vector<std::string> include_collections;  // database/deployment level filters
    std::vector<std::string> exclude_collections;
    // Where this watch's scopes start when they have no saved token: "now" or an operation
    // time (parse_start_at); empty: [mongodb] start_at. Goes to pipeline_config::scope_start_at.
    std::string start_at;
};

struct output_settings {
    std::string format = "jsonl";
    std::string json_mode = "relaxed";
    std::string layout = "penne";  // penne | rigatoni (the seed's CSV columns)
    std::string csv_delimiter = ",";
    std::string csv_line_ending;  // crlf | lf; empty: the layout's default
    // jsonl/csv: the whole object (zstd | gzip | none); parquet: its pages (zstd | gzip |
    // snappy | none); avro: its blocks (zstd | deflate | snappy | none). Unset: zstd, and
    // deflate for avro (the codec every Avro reader has).
    std::string compression;
    int compression_level = 0;              // 0: the codec's default
    std::string timestamp_unit = "millis";  // parquet/avro timestamps: millis | micros
    std::string key_layout = "date_hour";
    std::string prefix = "penne";
};

struct destination_settings {
    std::string type = "local";  // local | s3
    std::string path = "./penne-out";
};

// [s3]: the bucket and how to reach it. Unset values come from the standard AWS
// environment (AWS_REGION, AWS_ENDPOINT_URL, AWS_PROFILE, credentials chain) at startup.
struct s3_settings {
    std::string bucket;
    std::string region;    // empty: AWS_REGION / AWS_DEFAULT_REGION / profile / us-east-1
    std::string endpoint;  // empty: AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL / profile / AWS
    std::string addressing = "auto";  // auto | path | virtual
    std::string profile;              // empty: AWS_PROFILE / "default"
    // Static credentials (prefer the environment or a profile; never logged).
    std::string access_key_id;
    std::string secret_access_key;
    std::string session_token;
    std::string storage_class;
    std::string sse = "none";  // none | AES256 | aws:kms
    std::string kms_key_id;
    std::vector<std::pair<std::string, std::string>> tags;
    std::vector<std::pair<std::string, std::string>> metadata;
    bool content_md5 = true;
    bool unsigned_payload = false;  // TLS endpoints only
    std::uint64_t multipart_threshold = 64ull << 20;
    std::uint64_t part_size = 16ull << 20;
    std::uint32_t part_concurrency = 4;
    std::string ca_file;
    bool verify_tls = true;
    std::chrono::milliseconds connect_timeout{10'000};
    std::chrono::milliseconds request_timeout{60'000};
    std::uint32_t max_retries = 8;
};

struct state_settings {
    std::string type = "file";  // file | memory | redis
    std::string path = "./penne-state";
    // redis: redis://[user:password@]host:port/db or rediss:// (TLS); env PENNE_REDIS_URL
    // overrides (keeps the password out of the file).
    std::string url = "redis://127.0.0.1:6379/0";
    std::string key_prefix = "penne";
    std::string tls_ca_file;  // rediss://: CA bundle; empty: the system store
    std::chrono::milliseconds connect_timeout{5'000};
    std::chrono::milliseconds command_timeout{5'000};
};

// [lease]: several instances sharing the scopes through Redis (DESIGN §5). The TTL and
// the retry interval are stored in pipeline_config (lease_ttl, lease_retry_interval).
struct lease_settings {
    // Resolved by parse_config: unset means true with state.type = "redis"; true with
    // another state store is refused (leases live in Redis).
    bool enabled = false;
    std::string owner;  // empty: "<hostname>-<pid>-<random>"
};

// [log]: read by the daemon only. An embedder receives log lines through penne::hooks::log.
struct log_settings {
    std::string level = "info";
    std::string format = "text";
    // How often `penne run` logs a progress line (0: never).
    std::chrono::milliseconds progress_interval{10'000};
};

// [metrics]: the operations server (/metrics, /health, /ready, /status) of `penne run`.
// The library serves no endpoints and creates no registry: an embedder passes its own
// penne::pipeline_metrics through penne::hooks::metrics (and may reuse these values).
struct metrics_settings {
    bool enabled = true;
    std::string address = "127.0.0.1";  // loopback; "0.0.0.0" or "::" to expose it
    std::uint16_t port = 9464;          // 0: any free port (logged at startup)
    std::string compat = "none";        // none | rigatoni (also the seed's rigatoni_* names)
    bool per_collection_labels = true;  // false: collections aggregate into their scope
    std::uint64_t max_series = 10'000;  // new series per metric beyond this are dropped
    // (not_ready_after_ms, how long a scope may retry or stay silent before /ready turns
    // 503, is stored in pipeline_config::not_ready_after.)
};

struct config {
    mongo_settings mongodb;
    std::vector<watch_settings> watches;
    output_settings output;
    destination_settings destination;
    s3_settings s3;
    state_settings state;
    lease_settings lease;
    log_settings log;
    metrics_settings metrics;
    // Batch limits, buffers, uploads, timeouts, retry, leases' timing, and the watch scopes:
    // parse_config fills pipeline.scopes from `watches`; from code, fill either (when
    // pipeline.scopes is empty, penne::pipeline derives it from `watches`).
    pipeline_config pipeline;
    // The daemon's worker threads (`penne run`); the library never creates threads (the
    // embedder decides how many run its io_context) and only reads it to turn on
    // pipeline.compress_off_strand when it is more than 1.
    unsigned threads = 1;
};

// Parses and validates a TOML document into `out`. On error returns false and sets `error`
// to a message that names `source_name`, the key, the bad value and what is allowed. `env`
// supplies environment overrides (PENNE_MONGODB_URI for mongodb.uri, PENNE_REDIS_URL for
// state.url, …); pass an empty map to use the document alone.
bool parse_config(std::string_view toml_text, std::string_view source_name,
                  const std::map<std::string, std::string>& env, config& out, std::string& error);

// Parses only the [s3] table (and destination.type) of a TOML document (the `penne s3` tools).
bool parse_s3_settings(std::string_view toml_text, std::string_view source_name, s3_settings& out,
                       std::string& error);

// Parses a start_at value: "now" (`out` = nullopt), a MongoDB timestamp "<seconds>:<increment>"
// or "<seconds>" (increment 0), or an RFC 3339 time such as "2026-12-06T10:00:00Z" (an offset
// like "+02:00" is applied; fractions of a second are dropped, as operation times count whole
// seconds). On error returns false and sets `error` to a message naming the value and the
// accepted forms (without the key: the caller adds it).
bool parse_start_at(std::string_view text, std::optional<cluster_time>& out, std::string& error);

// Parses "64MiB", "512 KiB", "10MB", "1048576" into bytes.
std::optional<std::uint64_t> parse_size(std::string_view text);

// Replaces the password of a URI (scheme://user:password@host) with "****".
std::string redact_uri(std::string_view uri);

// Redacts the password of every URI embedded anywhere in `text` (for third-party log lines).
std::string redact_uris_in(std::string_view text);

}  // namespace penne
