#include "config_file.hpp"

#include <gtest/gtest.h>

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
    EXPECT_EQ(c.log.format, "json");
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
    e = parse_error("[[watch]]\ndatabase = \"a\"\n[output]\nlayout = \"rigatoni\"\n");
    EXPECT_NE(e.find("output.layout"), std::string::npos) << e;
    e = parse_error("[[watch]]\ndatabase = \"a\"\n[output]\nformat = \"parquet\"\n");
    EXPECT_NE(e.find("jsonl, csv"), std::string::npos) << e;
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
    EXPECT_NE(e.find("zstd, gzip, none"), std::string::npos) << e;

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

}  // namespace
}  // namespace penne::app
