#include <penne/mongo/change_stream.hpp>
#include <penne/mongo/uri.hpp>

#include <gtest/gtest.h>

namespace penne::mongo {
namespace {

TEST(Uri, ParsesSeedsAndOptions) {
    uri_info u;
    diagnostics d;
    ASSERT_FALSE(parse_uri("mongodb://h1:27018,h2/?replicaSet=rs0&appName=penne-test", u, d))
        << d.message;
    ASSERT_EQ(u.hosts.size(), 2u);
    EXPECT_EQ(u.hosts[0], (host_port{"h1", 27018}));
    EXPECT_EQ(u.hosts[1], (host_port{"h2", 27017}));
    EXPECT_EQ(u.replica_set, "rs0");
    EXPECT_EQ(u.app_name, "penne-test");
    EXPECT_FALSE(u.direct_connection);
    EXPECT_FALSE(u.auth);
    ASSERT_FALSE(parse_uri("mongodb://127.0.0.1:5/?directConnection=true", u, d));
    EXPECT_TRUE(u.direct_connection);
}

TEST(Uri, ReadPreference) {
    uri_info u;
    diagnostics d;
    ASSERT_FALSE(parse_uri("mongodb://h/?replicaSet=rs0", u, d)) << d.message;
    EXPECT_EQ(u.read_preference, read_mode::primary);
    const std::pair<const char*, read_mode> modes[] = {
        {"primary", read_mode::primary},     {"primaryPreferred", read_mode::primary_preferred},
        {"secondary", read_mode::secondary}, {"secondaryPreferred", read_mode::secondary_preferred},
        {"nearest", read_mode::nearest},
    };
    for (const auto& [name, mode] : modes) {
        ASSERT_FALSE(parse_uri(std::string("mongodb://h/?readPreference=") + name, u, d))
            << d.message;
        EXPECT_EQ(u.read_preference, mode) << name;
        EXPECT_EQ(to_string(mode), name);
    }
    // Mode names are case-insensitive, as in every driver.
    ASSERT_FALSE(parse_uri("mongodb://h/?readPreference=SECONDARY", u, d)) << d.message;
    EXPECT_EQ(u.read_preference, read_mode::secondary);
    EXPECT_TRUE(parse_uri("mongodb://h/?readPreference=fastest", u, d));
    // Tag sets and staleness bounds are refused rather than ignored.
    EXPECT_EQ(parse_uri("mongodb://h/?readPreference=secondary&readPreferenceTags=dc:ny", u, d),
              client_errc::invalid_uri);
    EXPECT_NE(d.message.find("readPreferenceTags"), std::string::npos) << d.message;
    EXPECT_EQ(parse_uri("mongodb://h/?readPreference=secondary&maxStalenessSeconds=120", u, d),
              client_errc::invalid_uri);
    EXPECT_NE(d.message.find("maxStalenessSeconds"), std::string::npos) << d.message;
}

// How often a change stream asks its member whether it still satisfies the read preference.
TEST(Uri, HeartbeatFrequency) {
    uri_info u;
    diagnostics d;
    ASSERT_FALSE(parse_uri("mongodb://h/?replicaSet=rs0", u, d)) << d.message;
    EXPECT_EQ(u.heartbeat_frequency, std::chrono::milliseconds(10'000));
    ASSERT_FALSE(parse_uri("mongodb://h/?replicaSet=rs0&heartbeatFrequencyMS=500", u, d))
        << d.message;
    EXPECT_EQ(u.heartbeat_frequency, std::chrono::milliseconds(500));
    // Under the drivers' minimum (500 ms): refused, not clamped.
    EXPECT_EQ(parse_uri("mongodb://h/?heartbeatFrequencyMS=100", u, d), client_errc::invalid_uri);
}

TEST(Uri, CredentialsAreParsedAndRedacted) {
    uri_info u;
    diagnostics d;
    ASSERT_FALSE(parse_uri("mongodb://bob:s%40cret@db.example:1/?authSource=users", u, d));
    ASSERT_TRUE(u.auth);
    EXPECT_EQ(u.auth->username, "bob");
    EXPECT_EQ(u.auth->password, "s@cret");
    EXPECT_EQ(u.auth->source, "users");
    EXPECT_EQ(u.redacted, "mongodb://bob:***@db.example:1/?authSource=users");
    EXPECT_EQ(redact_uri("mongodb://h/?appName=x"), "mongodb://h/?appName=x");
    EXPECT_EQ(redact_uri("mongodb://u:p@w:rd@h"), "mongodb://u:***@h");
}

TEST(Uri, ErrorsNeverShowThePassword) {
    uri_info u;
    diagnostics d;
    EXPECT_TRUE(parse_uri("mongodb://bob:hunter2@h:99999/", u, d));
    EXPECT_EQ(d.message.find("hunter2"), std::string::npos) << d.message;
    EXPECT_NE(d.message.find("***"), std::string::npos) << d.message;

    EXPECT_TRUE(parse_uri("http://bob:hunter2@h/", u, d));
    EXPECT_EQ(d.message.find("hunter2"), std::string::npos) << d.message;

    EXPECT_EQ(parse_uri("mongodb://bob:hunter2@h/?authMechanism=PLAIN", u, d),
              client_errc::unsupported_auth);
    EXPECT_EQ(d.message.find("hunter2"), std::string::npos) << d.message;

    EXPECT_EQ(parse_uri("mongodb://a,b/?directConnection=true", u, d), client_errc::invalid_uri);
}

TEST(Uri, HostPortParse) {
    EXPECT_EQ(host_port::parse("a:1"), (host_port{"a", 1}));
    EXPECT_EQ(host_port::parse("a"), (host_port{"a", 27017}));
    EXPECT_EQ(host_port::parse("[::1]:5"), (host_port{"::1", 5}));
    EXPECT_FALSE(host_port::parse("a:0"));
    EXPECT_FALSE(host_port::parse("a:x"));
    EXPECT_FALSE(host_port::parse(""));
    EXPECT_FALSE(host_port::parse("::1"));
    EXPECT_EQ((host_port{"::1", 5}).to_string(), "[::1]:5");
}

TEST(SourceOptions, Validation) {
    stream_config cfg;
    diagnostics d;
    source_options o;
    o.uri = "mongodb://u:topsecret@localhost:27017/?replicaSet=rs0";
    o.pipeline = {R"({"$match": {"operationType": "insert"}})"};
    ASSERT_FALSE(prepare(o, cfg, d)) << d.message;
    EXPECT_EQ(cfg.stages.size(), 1u);
    EXPECT_TRUE(cfg.connection.auth);
    EXPECT_EQ(cfg.uri.redacted.find("topsecret"), std::string::npos);

    auto bad = o;
    bad.uri = "mongodb://u:topsecret@";
    EXPECT_EQ(prepare(bad, cfg, d), penne::errc::invalid_config);
    EXPECT_NE(d.message.find("mongodb.uri"), std::string::npos);
    EXPECT_EQ(d.message.find("topsecret"), std::string::npos) << d.message;

    bad = o;
    bad.pipeline = {"{not json"};
    EXPECT_EQ(prepare(bad, cfg, d), penne::errc::invalid_config);
    EXPECT_NE(d.message.find("pipeline[0]"), std::string::npos);
    bad.pipeline = {R"({"$match": {}, "$project": {}})"};
    EXPECT_EQ(prepare(bad, cfg, d), penne::errc::invalid_config);
    bad.pipeline = {R"({"match": {}})"};
    EXPECT_EQ(prepare(bad, cfg, d), penne::errc::invalid_config);

    bad = o;
    bad.max_await = std::chrono::milliseconds(0);
    EXPECT_EQ(prepare(bad, cfg, d), penne::errc::invalid_config);
    EXPECT_NE(d.message.find("max_await"), std::string::npos);

    bad = o;
    bad.include_collections = {"a"};
    bad.exclude_collections = {"b"};
    EXPECT_EQ(prepare(bad, cfg, d), penne::errc::invalid_config);

    std::unique_ptr<source_factory> f;
    EXPECT_FALSE(source_factory::create(o, f, d));
    ASSERT_TRUE(f);
}

}  // namespace
}  // namespace penne::mongo

namespace penne::mongo {
namespace {

TEST(Uri, CompressorsKeepTheirOrderAndLevel) {
    uri_info u;
    diagnostics d;
    ASSERT_FALSE(
        parse_uri("mongodb://h/?compressors=snappy,zstd,zlib&zlibCompressionLevel=7", u, d))
        << d.message;
    EXPECT_EQ(u.compressors, (std::vector<std::string>{"snappy", "zstd", "zlib"}));
    EXPECT_EQ(u.zlib_level, 7);
    ASSERT_FALSE(parse_uri("mongodb://h/", u, d));
    EXPECT_TRUE(u.compressors.empty());
    EXPECT_EQ(u.zlib_level, -1);
    // Unknown names are dropped (libmongoc warns), the rest kept.
    ASSERT_FALSE(parse_uri("mongodb://h/?compressors=lz4,zlib", u, d));
    EXPECT_EQ(u.compressors, (std::vector<std::string>{"zlib"}));
    EXPECT_EQ(parse_uri("mongodb://h/?zlibCompressionLevel=10", u, d), client_errc::invalid_uri);

    stream_config cfg;
    source_options o;
    o.uri = "mongodb://h/?compressors=zstd&zlibCompressionLevel=2";
    ASSERT_FALSE(prepare(o, cfg, d)) << d.message;
    EXPECT_EQ(cfg.connection.compressors, (std::vector<std::string>{"zstd"}));
    EXPECT_EQ(cfg.connection.zlib_level, 2);
}

TEST(Uri, AuthSourceDefaultsToTheUriDatabaseThenAdmin) {
    uri_info u;
    diagnostics d;
    ASSERT_FALSE(parse_uri("mongodb://bob:pw@h/", u, d));
    ASSERT_TRUE(u.auth);
    EXPECT_EQ(u.auth->source, "admin");
    EXPECT_TRUE(u.auth->mechanism.empty());
    ASSERT_FALSE(parse_uri("mongodb://bob:pw@h/sales", u, d));
    EXPECT_EQ(u.auth->source, "sales");
    ASSERT_FALSE(parse_uri("mongodb://bob:pw@h/sales?authSource=admin", u, d));
    EXPECT_EQ(u.auth->source, "admin");
    ASSERT_FALSE(parse_uri("mongodb://bob:pw@h/?authMechanism=SCRAM-SHA-1", u, d));
    EXPECT_EQ(u.auth->mechanism, "SCRAM-SHA-1");
}

}  // namespace
}  // namespace penne::mongo
