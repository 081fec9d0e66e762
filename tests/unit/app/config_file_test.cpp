#include "config_file.hpp"

#include <gtest/gtest.h>

#include <optional>

namespace penne::app {
namespace {

const std::map<std::string, std::string> no_env;

std::string parse_error(std::string_view text,
                        const std::map<std::string, std::string>& env = no_env) {
    config c;
    std::string err;
    EXPECT_FALSE(parse_config(text, "penne.toml", env, c, err));
    return err;
}

config parse_ok(std::string_view text, const std::map<std::string, std::string>& env = no_env) {
    config c;
    std::string err;
    EXPECT_TRUE(parse_config(text, "penne.toml", env, c, err)) << err;
    return c;
}

TEST(config, minimal_file_gets_documented_defaults) {
    auto c = parse_ok("[[watch]]\ndatabase = \"shop\"\n");
    ASSERT_EQ(c.pipeline.scopes.size(), 1u);
    EXPECT_EQ(c.pipeline.scopes[0].kind, watch_scope::level::database);
    EXPECT_EQ(c.pipeline.scopes[0].id(), "shop");
    EXPECT_EQ(c.mongodb.uri, "mongodb://127.0.0.1:27017");
    EXPECT_EQ(c.output.format, "jsonl");
    EXPECT_EQ(c.output.compression, "zstd");
    EXPECT_EQ(c.output.key_layout, "date_hour");
    EXPECT_EQ(c.pipeline.batch.max_events, 10'000u);
    EXPECT_EQ(c.pipeline.batch.max_bytes, 32u << 20);
    EXPECT_EQ(c.pipeline.batch.max_age, std::chrono::seconds(10));
    EXPECT_EQ(c.state.type, "file");
    EXPECT_EQ(c.threads, 1u);
}

TEST(config, full_file) {
    auto c = parse_ok(R"(
[mongodb]
uri = "mongodb://u:secret@db1:27017/?replicaSet=rs0"
max_await_ms = 500
full_document = "updateLookup"
[[watch]]
level = "collection"
database = "shop"
collections = ["orders", "users"]
[[watch]]
level = "deployment"
exclude_collections = ["audit"]
[batch]
max_events = 500
max_bytes = "4MiB"
max_age_ms = 2000
[output]
compression = "gzip"
compression_level = 9
key_layout = "hive"
prefix = "cdc"
[destination]
type = "local"
path = "/tmp/out"
[state]
type = "memory"
[pipeline]
max_buffered_bytes = "64MiB"
max_concurrent_uploads = 4
threads = 2
checkpoint_min_interval_ms = 0
[log]
level = "debug"
format = "json"
)");
    ASSERT_EQ(c.pipeline.scopes.size(), 3u);
    EXPECT_EQ(c.pipeline.scopes[0].id(), "shop.orders");
    EXPECT_EQ(c.pipeline.scopes[1].id(), "shop.users");
    EXPECT_EQ(c.pipeline.scopes[2].id(), "*");
    EXPECT_EQ(c.pipeline.scopes[2].exclude_collections, std::vector<std::string>{"audit"});
    EXPECT_EQ(c.pipeline.batch.max_bytes, 4u << 20);
    EXPECT_EQ(c.pipeline.max_buffered_bytes, 64u << 20);
    EXPECT_EQ(c.mongodb.max_await, std::chrono::milliseconds(500));
    EXPECT_EQ(c.threads, 2u);
    EXPECT_EQ(c.pipeline.checkpoint_min_interval, std::chrono::milliseconds(0));
    EXPECT_EQ(parse_ok("[[watch]]\ndatabase = \"a\"\n").pipeline.checkpoint_min_interval,
              std::chrono::milliseconds(100));
    const auto e = parse_error(
        "[pipeline]\ncheckpoint_min_interval_ms = 600000\n[[watch]]\ndatabase = \"a\"\n");
    EXPECT_NE(e.find("pipeline.checkpoint_min_interval_ms"), std::string::npos) << e;
    EXPECT_EQ(c.log.format, "json");
}

TEST(config, document_images_expanded_events_and_split_events) {
    auto c = parse_ok("[[watch]]\ndatabase = \"a\"\n");
    EXPECT_EQ(c.mongodb.full_document_before_change, "default");
    EXPECT_FALSE(c.mongodb.show_expanded_events);
    EXPECT_TRUE(c.mongodb.split_large_events);
    EXPECT_TRUE(c.mongodb.prefetch);
    c = parse_ok(
        "[mongodb]\nfull_document_before_change = \"whenAvailable\"\n"
        "show_expanded_events = true\nsplit_large_events = false\nprefetch = false\n"
        "[[watch]]\ndatabase = \"a\"\n");
    EXPECT_FALSE(c.mongodb.prefetch);
    EXPECT_EQ(c.mongodb.full_document_before_change, "whenAvailable");
    EXPECT_TRUE(c.mongodb.show_expanded_events);
    EXPECT_FALSE(c.mongodb.split_large_events);
    auto e = parse_error(
        "[mongodb]\nfull_document_before_change = \"updateLookup\"\n[[watch]]\ndatabase = "
        "\"a\"\n");
    EXPECT_NE(e.find("mongodb.full_document_before_change"), std::string::npos) << e;
    e = parse_error("[mongodb]\nsplit_large_events = \"yes\"\n[[watch]]\ndatabase = \"a\"\n");
    EXPECT_NE(e.find("mongodb.split_large_events"), std::string::npos) << e;
    e = parse_error("[mongodb]\nprefetch = 1\n[[watch]]\ndatabase = \"a\"\n");
    EXPECT_NE(e.find("mongodb.prefetch"), std::string::npos) << e;
}

TEST(config, csv_output_options) {
    auto c = parse_ok(
        "[[watch]]\ndatabase = \"a\"\n[output]\nformat = \"csv\"\n"
        "layout = \"rigatoni\"\ncsv_delimiter = \";\"\ncsv_line_ending = \"lf\"\n");
    EXPECT_EQ(c.output.format, "csv");
    EXPECT_EQ(c.output.layout, "rigatoni");
    EXPECT_EQ(c.output.csv_delimiter, ";");
    auto e = parse_error(
        "[[watch]]\ndatabase = \"a\"\n[output]\nformat = \"csv\"\n"
        "csv_delimiter = \";;\"\n");
    EXPECT_NE(e.find("output.csv_delimiter"), std::string::npos) << e;
    e = parse_error("[[watch]]\ndatabase = \"a\"\n[output]\nlayout = \"seed\"\n");
    EXPECT_NE(e.find("output.layout"), std::string::npos) << e;
    e = parse_error("[[watch]]\ndatabase = \"a\"\n[output]\nformat = \"orc\"\n");
    EXPECT_NE(e.find("jsonl, csv, parquet, avro"), std::string::npos) << e;
}

TEST(config, columnar_formats_compress_inside_with_their_own_codecs) {
    auto c = parse_ok(
        "[[watch]]\ndatabase = \"a\"\n[output]\nformat = \"parquet\"\n"
        "compression = \"snappy\"\ntimestamp_unit = \"micros\"\n");
    EXPECT_EQ(c.output.format, "parquet");
    EXPECT_EQ(c.output.compression, "snappy");
    EXPECT_EQ(c.output.timestamp_unit, "micros");
    // Unset compression: zstd, except avro, whose universally readable codec is deflate.
    EXPECT_EQ(
        parse_ok("[[watch]]\ndatabase = \"a\"\n[output]\nformat = \"avro\"\n").output.compression,
        "deflate");
    EXPECT_EQ(parse_ok("[[watch]]\ndatabase = \"a\"\n[output]\nformat = \"parquet\"\n")
                  .output.compression,
              "zstd");
    auto e = parse_error("[[watch]]\ndatabase = \"a\"\n[output]\ncompression = \"snappy\"\n");
    EXPECT_NE(e.find("jsonl objects take zstd, gzip or none"), std::string::npos) << e;
    e = parse_error(
        "[[watch]]\ndatabase = \"a\"\n[output]\nformat = \"avro\"\n"
        "compression = \"gzip\"\n");
    EXPECT_NE(e.find("avro blocks take"), std::string::npos) << e;
    e = parse_error(
        "[[watch]]\ndatabase = \"a\"\n[output]\nformat = \"parquet\"\n"
        "compression = \"snappy\"\ncompression_level = 3\n");
    EXPECT_NE(e.find("output.compression_level"), std::string::npos) << e;
    EXPECT_EQ(parse_ok("[[watch]]\ndatabase = \"a\"\n[output]\nformat = \"jsonl\"\n"
                       "layout = \"rigatoni\"\n")
                  .output.layout,
              "rigatoni");
}

TEST(config, s3_destination) {
    auto c = parse_ok(
        "[[watch]]\ndatabase = \"a\"\n[destination]\ntype = \"s3\"\n"
        "[s3]\nbucket = \"lake\"\nregion = \"eu-west-1\"\nendpoint = \"http://127.0.0.1:7480\"\n"
        "addressing = \"path\"\nstorage_class = \"STANDARD_IA\"\nsse = \"aws:kms\"\n"
        "kms_key_id = \"alias/cdc\"\ntags = { team = \"data\", env = \"prod\" }\n"
        "metadata = { source = \"penne\" }\ncontent_md5 = false\n"
        "multipart_threshold = \"32MiB\"\npart_size = \"8MiB\"\npart_concurrency = 8\n"
        "request_timeout_ms = 30000\nmax_retries = 3\n");
    EXPECT_EQ(c.destination.type, "s3");
    EXPECT_EQ(c.s3.bucket, "lake");
    EXPECT_EQ(c.s3.region, "eu-west-1");
    EXPECT_EQ(c.s3.addressing, "path");
    EXPECT_EQ(c.s3.sse, "aws:kms");
    ASSERT_EQ(c.s3.tags.size(), 2u);
    EXPECT_EQ(c.s3.metadata.at(0), (std::pair<std::string, std::string>{"source", "penne"}));
    EXPECT_FALSE(c.s3.content_md5);
    EXPECT_EQ(c.s3.multipart_threshold, 32ull << 20);
    EXPECT_EQ(c.s3.part_size, 8ull << 20);
    EXPECT_EQ(c.s3.part_concurrency, 8u);
    EXPECT_EQ(c.s3.request_timeout, std::chrono::milliseconds(30000));

    auto e = parse_error("[[watch]]\ndatabase = \"a\"\n[destination]\ntype = \"s3\"\n");
    EXPECT_NE(e.find("s3.bucket"), std::string::npos) << e;
    e = parse_error("[[watch]]\ndatabase = \"a\"\n[s3]\npart_size = \"1MiB\"\n");
    EXPECT_NE(e.find("s3.part_size"), std::string::npos) << e;
    e = parse_error("[[watch]]\ndatabase = \"a\"\n[s3]\naccess_key_id = \"AKID\"\n");
    EXPECT_NE(e.find("secret_access_key"), std::string::npos) << e;
    e = parse_error("[[watch]]\ndatabase = \"a\"\n[s3]\nkms_key_id = \"k\"\n");
    EXPECT_NE(e.find("s3.kms_key_id"), std::string::npos) << e;
    e = parse_error("[[watch]]\ndatabase = \"a\"\n[s3]\ntags = { n = 1 }\n");
    EXPECT_NE(e.find("s3.tags"), std::string::npos) << e;
    e = parse_error("[[watch]]\ndatabase = \"a\"\n[s3]\nverify_tls = \"no\"\n");
    EXPECT_NE(e.find("true or false"), std::string::npos) << e;
    // A secret in an error message would end up in logs.
    e = parse_error("[[watch]]\ndatabase = \"a\"\n[s3]\nsecret_access_key = \"hunter2secret\"\n");
    EXPECT_EQ(e.find("hunter2secret"), std::string::npos) << e;
}

TEST(config, environment_overrides_the_uri) {
    auto c =
        parse_ok("[[watch]]\ndatabase = \"a\"\n", {{"PENNE_MONGODB_URI", "mongodb://other:27018"}});
    EXPECT_EQ(c.mongodb.uri, "mongodb://other:27018");
}

TEST(config, errors_name_the_key_the_value_and_what_is_allowed) {
    auto e = parse_error("[[watch]]\ndatabase = \"a\"\n[output]\ncompression = \"lz4\"\n");
    EXPECT_NE(e.find("output.compression"), std::string::npos) << e;
    EXPECT_NE(e.find("'lz4'"), std::string::npos) << e;
    EXPECT_NE(e.find("zstd, gzip, snappy, deflate, none"), std::string::npos) << e;

    e = parse_error("[[watch]]\ndatabase = \"a\"\n[batch]\nmax_event = 5\n");
    EXPECT_NE(e.find("batch.max_event"), std::string::npos) << e;
    EXPECT_NE(e.find("unknown key"), std::string::npos) << e;

    e = parse_error("[[watch]]\ndatabase = \"a\"\n[batch]\nmax_events = 0\n");
    EXPECT_NE(e.find("batch.max_events: 0 is out of range"), std::string::npos) << e;

    e = parse_error("[[watch]]\ndatabase = \"a\"\n[batch]\nmax_bytes = \"lots\"\n");
    EXPECT_NE(e.find("batch.max_bytes"), std::string::npos) << e;

    e = parse_error("[mongodb]\nuri = \"a\"\n");
    EXPECT_NE(e.find("[[watch]]"), std::string::npos) << e;

    e = parse_error("[[watch]]\nlevel = \"collection\"\ndatabase = \"a\"\n");
    EXPECT_NE(e.find("watch[0].collections"), std::string::npos) << e;

    e = parse_error("[[watch]]\ndatabase = \"a\"\n[[watch]]\ndatabase = \"a\"\n");
    EXPECT_NE(e.find("listed twice"), std::string::npos) << e;

    e = parse_error("[[watch]]\ndatabase = \"a\"\nbatch = [\n");
    EXPECT_NE(e.find("penne.toml:"), std::string::npos) << e;
}

TEST(config, bad_uri_error_never_shows_the_password) {
    auto e =
        parse_error("[mongodb]\nuri = \"postgres://u:hunter2@h\"\n[[watch]]\ndatabase = \"a\"\n");
    EXPECT_NE(e.find("mongodb.uri"), std::string::npos) << e;
    EXPECT_EQ(e.find("hunter2"), std::string::npos) << e;
}

TEST(config, sizes) {
    EXPECT_EQ(parse_size("1048576"), 1048576u);
    EXPECT_EQ(parse_size("64MiB"), 64u << 20);
    EXPECT_EQ(parse_size("512 KiB"), 512u << 10);
    EXPECT_EQ(parse_size("10MB"), 10'000'000u);
    EXPECT_EQ(parse_size("1g"), 1u << 30);
    EXPECT_FALSE(parse_size("MiB"));
    EXPECT_FALSE(parse_size("12 parsecs"));
    EXPECT_FALSE(parse_size("99999999999999999999999"));
}

TEST(config, redacts_passwords) {
    EXPECT_EQ(redact_uri("mongodb://user:pw@h1,h2/db?x=1"), "mongodb://user:****@h1,h2/db?x=1");
    EXPECT_EQ(redact_uri("mongodb://user@h1"), "mongodb://user@h1");
    EXPECT_EQ(redact_uri("mongodb://h1:27017"), "mongodb://h1:27017");
    EXPECT_EQ(redact_uri("redis://:p%40ss@r:6379/0"), "redis://:****@r:6379/0");
    EXPECT_EQ(redact_uris_in("bad uri 'mongodb://a:b@h/x' and mongodb+srv://c:d@e ok"),
              "bad uri 'mongodb://a:****@h/x' and mongodb+srv://c:****@e ok");
    EXPECT_EQ(redact_uris_in("nothing here"), "nothing here");
}

TEST(config, metrics_defaults) {
    auto c = parse_ok("[[watch]]\ndatabase = \"shop\"\n");
    EXPECT_TRUE(c.metrics.enabled);
    EXPECT_EQ(c.metrics.address, "127.0.0.1");
    EXPECT_EQ(c.metrics.port, 9464);
    EXPECT_EQ(c.metrics.compat, "none");
    EXPECT_TRUE(c.metrics.per_collection_labels);
    EXPECT_EQ(c.metrics.max_series, 10'000u);
    EXPECT_EQ(c.pipeline.not_ready_after, std::chrono::seconds(10));
}

TEST(config, metrics_table) {
    auto c = parse_ok(R"(
[[watch]]
database = "shop"
[metrics]
enabled = true
address = "::"
port = 0
compat = "rigatoni"
per_collection_labels = false
max_series = 500
not_ready_after_ms = 2500
)");
    EXPECT_EQ(c.metrics.address, "::");
    EXPECT_EQ(c.metrics.port, 0);
    EXPECT_EQ(c.metrics.compat, "rigatoni");
    EXPECT_FALSE(c.metrics.per_collection_labels);
    EXPECT_EQ(c.metrics.max_series, 500u);
    EXPECT_EQ(c.pipeline.not_ready_after, std::chrono::milliseconds(2500));

    c = parse_ok("[[watch]]\ndatabase = \"shop\"\n[metrics]\nenabled = false\n");
    EXPECT_FALSE(c.metrics.enabled);
    c = parse_ok("[[watch]]\ndatabase = \"shop\"\n[metrics]\naddress = \"0.0.0.0\"\n");
    EXPECT_EQ(c.metrics.address, "0.0.0.0");
}

TEST(config, metrics_errors_name_the_key) {
    const std::string w = "[[watch]]\ndatabase = \"a\"\n[metrics]\n";
    auto e = parse_error(w + "port = 70000\n");
    EXPECT_NE(e.find("metrics.port: 70000 is out of range; allowed 0..65535"), std::string::npos)
        << e;
    e = parse_error(w + "compat = \"prometheus\"\n");
    EXPECT_NE(e.find("metrics.compat: 'prometheus' is not allowed; use one of: none, rigatoni"),
              std::string::npos)
        << e;
    e = parse_error(w + "address = \"localhost\"\n");
    EXPECT_NE(e.find("metrics.address: 'localhost' is not an IP address"), std::string::npos) << e;
    e = parse_error(w + "max_series = 0\n");
    EXPECT_NE(e.find("metrics.max_series"), std::string::npos) << e;
    e = parse_error(w + "enabled = \"yes\"\n");
    EXPECT_NE(e.find("metrics.enabled: expected true or false"), std::string::npos) << e;
    e = parse_error(w + "prot = 1\n");
    EXPECT_NE(e.find("metrics.prot: unknown key"), std::string::npos) << e;
    e = parse_error(w + "not_ready_after_ms = 5\n");
    EXPECT_NE(e.find("metrics.not_ready_after_ms"), std::string::npos) << e;
}

TEST(config, redis_state_store) {
    auto c = parse_ok(
        "[[watch]]\ndatabase = \"a\"\n[state]\ntype = \"redis\"\n"
        "url = \"rediss://cache:6380/2\"\nkey_prefix = \"cdc\"\n"
        "tls_ca_file = \"/etc/ca.pem\"\ncommand_timeout_ms = 250\n");
    EXPECT_EQ(c.state.type, "redis");
    EXPECT_EQ(c.state.url, "rediss://cache:6380/2");
    EXPECT_EQ(c.state.key_prefix, "cdc");
    EXPECT_EQ(c.state.command_timeout, std::chrono::milliseconds(250));
    // The URL with its password can come from the environment instead of the file.
    c = parse_ok("[[watch]]\ndatabase = \"a\"\n[state]\ntype = \"redis\"\n",
                 {{"PENNE_REDIS_URL", "redis://u:secret@r:6379/0"}});
    EXPECT_EQ(c.state.url, "redis://u:secret@r:6379/0");
    auto e = parse_error("[[watch]]\ndatabase = \"a\"\n[state]\nkey_prefix = \"\"\n");
    EXPECT_NE(e.find("state.key_prefix"), std::string::npos) << e;
    e = parse_error("[[watch]]\ndatabase = \"a\"\n[state]\ntype = \"etcd\"\n");
    EXPECT_NE(e.find("file, memory, redis"), std::string::npos) << e;
}

TEST(config, leases_follow_the_redis_state_store) {
    auto c = parse_ok("[[watch]]\ndatabase = \"a\"\n[state]\ntype = \"redis\"\n");
    EXPECT_TRUE(c.lease.enabled);  // several instances can share the scopes by default
    c = parse_ok(
        "[[watch]]\ndatabase = \"a\"\n[state]\ntype = \"redis\"\n"
        "[lease]\nttl_ms = 1500\nretry_interval_ms = 300\nowner = \"node-1\"\n");
    EXPECT_EQ(c.pipeline.lease_ttl, std::chrono::milliseconds(1500));
    EXPECT_EQ(c.pipeline.lease_retry_interval, std::chrono::milliseconds(300));
    EXPECT_EQ(c.lease.owner, "node-1");
    EXPECT_FALSE(parse_ok("[[watch]]\ndatabase = \"a\"\n").lease.enabled);
    auto e = parse_error("[[watch]]\ndatabase = \"a\"\n[lease]\nenabled = true\n");
    EXPECT_NE(e.find("state.type = \"redis\""), std::string::npos) << e;
    e = parse_error(
        "[[watch]]\ndatabase = \"a\"\n[state]\ntype = \"redis\"\n"
        "[lease]\nowner = \"a:b\"\n");
    EXPECT_NE(e.find("lease.owner"), std::string::npos) << e;
    e = parse_error(
        "[[watch]]\ndatabase = \"a\"\n[state]\ntype = \"redis\"\n"
        "[lease]\nttl_ms = 5\n");
    EXPECT_NE(e.find("lease.ttl_ms"), std::string::npos) << e;
}

std::optional<cluster_time> start_at_of(std::string_view value) {
    std::optional<cluster_time> out;
    std::string err;
    EXPECT_TRUE(parse_start_at(value, out, err)) << value << ": " << err;
    return out;
}

TEST(config, start_at_defaults_to_now) {
    auto c = parse_ok("[[watch]]\ndatabase = \"shop\"\n");
    EXPECT_FALSE(c.pipeline.start_at);
    EXPECT_TRUE(c.pipeline.scope_start_at.empty());
    c = parse_ok("[mongodb]\nstart_at = \"now\"\n[[watch]]\ndatabase = \"shop\"\n");
    EXPECT_FALSE(c.pipeline.start_at);
}

TEST(config, start_at_accepts_timestamps_and_rfc3339_times) {
    EXPECT_EQ(start_at_of("1796551200:7"), (cluster_time{1796551200, 7}));
    EXPECT_EQ(start_at_of("1796551200"), (cluster_time{1796551200, 0}));
    EXPECT_EQ(start_at_of("4294967295:4294967295"), (cluster_time{4294967295u, 4294967295u}));
    EXPECT_EQ(start_at_of("2026-12-06T10:00:00Z"), (cluster_time{1796551200, 0}));
    EXPECT_EQ(start_at_of("2026-12-06t10:00:00z"), (cluster_time{1796551200, 0}));
    // Fractions are dropped (operation times count whole seconds); offsets are applied.
    EXPECT_EQ(start_at_of("2026-12-06T10:00:00.999Z"), (cluster_time{1796551200, 0}));
    EXPECT_EQ(start_at_of("2026-12-06T12:00:00+02:00"), (cluster_time{1796551200, 0}));
    EXPECT_EQ(start_at_of("2026-12-06T08:00:00-02:00"), (cluster_time{1796551200, 0}));
    EXPECT_EQ(start_at_of("2024-02-29T23:59:59Z"), (cluster_time{1709251199, 0}));
    EXPECT_EQ(start_at_of("now"), std::nullopt);
}

TEST(config, start_at_from_the_file_in_every_toml_form) {
    const std::string watch = "[[watch]]\ndatabase = \"shop\"\n";
    auto c = parse_ok("[mongodb]\nstart_at = \"1796551200:3\"\n" + watch);
    EXPECT_EQ(c.pipeline.start_at, (cluster_time{1796551200, 3}));
    c = parse_ok("[mongodb]\nstart_at = \"2026-12-06T10:00:00Z\"\n" + watch);
    EXPECT_EQ(c.pipeline.start_at, (cluster_time{1796551200, 0}));
    // TOML's own offset date-time and integer literals.
    c = parse_ok("[mongodb]\nstart_at = 2026-12-06T10:00:05Z\n" + watch);
    EXPECT_EQ(c.pipeline.start_at, (cluster_time{1796551205, 0}));
    c = parse_ok("[mongodb]\nstart_at = 1796551200\n" + watch);
    EXPECT_EQ(c.pipeline.start_at, (cluster_time{1796551200, 0}));
}

TEST(config, watch_start_at_overrides_the_mongodb_one_for_its_scopes) {
    auto c = parse_ok(R"(
[mongodb]
start_at = "1796551200:1"
[[watch]]
level = "collection"
database = "shop"
collections = ["orders", "users"]
start_at = "now"
[[watch]]
database = "crm"
start_at = "2026-12-06T10:00:10Z"
[[watch]]
database = "billing"
)");
    EXPECT_EQ(c.pipeline.start_at, (cluster_time{1796551200, 1}));
    const auto& by_scope = c.pipeline.scope_start_at;
    ASSERT_EQ(by_scope.size(), 3u);
    EXPECT_EQ(by_scope.at("shop.orders"), std::nullopt);
    EXPECT_EQ(by_scope.at("shop.users"), std::nullopt);
    EXPECT_EQ(by_scope.at("crm"), (cluster_time{1796551210, 0}));
    EXPECT_EQ(by_scope.count("billing"), 0u);  // [mongodb] start_at
    EXPECT_EQ(c.watches[0].start_at, "now");
    EXPECT_EQ(c.watches[2].start_at, "");
}

TEST(config, start_at_errors_name_key_value_and_accepted_forms) {
    const std::string watch = "[[watch]]\ndatabase = \"shop\"\n";
    auto bad = [&](const std::string& value) {
        return parse_error("[mongodb]\nstart_at = " + value + "\n" + watch);
    };
    for (const std::string value :
         {"\"yesterday\"", "\"\"", "\"2026-02-30T00:00:00Z\"", "\"2026-12-06T10:00:00\"",
          "\"2026-12-06 10:00:00Z\"", "\"2026-12-06T24:00:00Z\"", "\"2026-12-06\"",
          "\"1796551200:\"", "\"1796551200:x\"", "\"-5\"", "\" now\""}) {
        auto e = bad(value);
        EXPECT_NE(e.find("penne.toml: mongodb.start_at: "), std::string::npos) << e;
        EXPECT_NE(e.find("'" + value.substr(1, value.size() - 2) + "'"), std::string::npos) << e;
        EXPECT_NE(e.find("\"now\""), std::string::npos) << e;
        EXPECT_NE(e.find("\"<seconds>:<increment>\""), std::string::npos) << e;
        EXPECT_NE(e.find("RFC 3339"), std::string::npos) << e;
    }
    auto e = bad("\"4294967296\"");
    EXPECT_NE(e.find("'4294967296' is not a MongoDB timestamp"), std::string::npos) << e;
    e = bad("\"1:4294967296\"");
    EXPECT_NE(e.find("'1:4294967296' is not a MongoDB timestamp"), std::string::npos) << e;
    e = bad("\"0:5\"");
    EXPECT_NE(e.find("null timestamp"), std::string::npos) << e;
    e = bad("\"2106-02-08T00:00:00Z\"");
    EXPECT_NE(e.find("outside the range of MongoDB timestamps"), std::string::npos) << e;
    e = bad("\"1969-12-31T23:59:59Z\"");
    EXPECT_NE(e.find("outside the range of MongoDB timestamps"), std::string::npos) << e;
    e = bad("true");
    EXPECT_NE(e.find("mongodb.start_at: expected \"now\" or an operation time"), std::string::npos)
        << e;
    // A TOML local date-time names no instant.
    e = bad("2026-12-06T10:00:00");
    EXPECT_NE(e.find("mongodb.start_at: '2026-12-06T10:00:00'"), std::string::npos) << e;
    e = parse_error(
        "[[watch]]\ndatabase = \"a\"\n[[watch]]\ndatabase = \"b\"\nstart_at = \"soon\"\n");
    EXPECT_NE(e.find("watch[1].start_at: 'soon' is not a start position"), std::string::npos) << e;
}

}  // namespace
}  // namespace penne::app
