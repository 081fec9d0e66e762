#include <penne/mongo/change_stream.hpp>
#include <penne/mongo/error.hpp>
#include <penne/mongo/srv.hpp>

#include <gtest/gtest.h>

#include <set>

namespace penne::mongo {
namespace {

uri_info srv_uri(const std::string& uri) {
    uri_info u;
    diagnostics d;
    EXPECT_FALSE(parse_uri(uri, u, d)) << d.message;
    return u;
}

dns::record srv(std::string target, std::uint16_t port, std::uint16_t priority = 0,
                std::uint16_t weight = 0) {
    dns::record r;
    r.type = static_cast<std::uint16_t>(dns::rtype::srv);
    r.target = std::move(target);
    r.port = port;
    r.priority = priority;
    r.weight = weight;
    return r;
}

TEST(SrvUri, ParsesTheSrvHostAndItsDefaults) {
    auto u = srv_uri("mongodb+srv://user:pw@cluster0.example.com/?appName=a");
    EXPECT_EQ(u.srv_host, "cluster0.example.com");
    EXPECT_TRUE(u.hosts.empty());
    EXPECT_TRUE(u.tls);  // tls=true by default for +srv
    EXPECT_EQ(u.srv_service_name, "mongodb");
    EXPECT_EQ(u.srv_max_hosts, 0);
    EXPECT_FALSE(u.auth_source_in_uri);
    EXPECT_EQ(srv_query_name(u), "_mongodb._tcp.cluster0.example.com");
    EXPECT_EQ(u.redacted.find("pw"), std::string::npos);

    u = srv_uri("mongodb+srv://c.example.com/?tls=false&srvServiceName=db&srvMaxHosts=2");
    EXPECT_FALSE(u.tls);
    EXPECT_EQ(srv_query_name(u), "_db._tcp.c.example.com");
    EXPECT_EQ(u.srv_max_hosts, 2);
    EXPECT_TRUE(srv_uri("mongodb+srv://u:p@c.example.com/?authSource=x").auth_source_in_uri);
}

TEST(SrvUri, RefusesWhatTheSpecForbids) {
    uri_info u;
    diagnostics d;
    EXPECT_TRUE(parse_uri("mongodb+srv://c.example.com:27017", u, d));
    EXPECT_NE(d.message.find("Port"), std::string::npos) << d.message;
    EXPECT_TRUE(parse_uri("mongodb+srv://a.example.com,b.example.com", u, d));
    EXPECT_TRUE(parse_uri("mongodb+srv://c.example.com/?directConnection=true", u, d));
    EXPECT_TRUE(parse_uri("mongodb+srv://c.example.com/?srvMaxHosts=1&replicaSet=rs", u, d));
    EXPECT_TRUE(parse_uri("mongodb://h/?srvMaxHosts=1", u, d));
    EXPECT_EQ(parse_uri("mongodb+srv://c.example.com/?loadBalanced=true", u, d),
              client_errc::invalid_uri);
    EXPECT_NE(d.message.find("loadBalanced"), std::string::npos);
}

TEST(Srv, TargetsMustShareTheParentDomain) {
    diagnostics d;
    EXPECT_FALSE(check_srv_target("cluster0.example.com", "db1.example.com", d));
    EXPECT_FALSE(check_srv_target("cluster0.example.com", "a.b.EXAMPLE.com.", d));
    EXPECT_TRUE(check_srv_target("cluster0.example.com", "db1.evil.com", d));
    EXPECT_NE(d.message.find("'db1.evil.com'"), std::string::npos) << d.message;
    EXPECT_NE(d.message.find("'example.com'"), std::string::npos) << d.message;
    // A suffix match that is not on a label boundary does not count.
    EXPECT_TRUE(check_srv_target("cluster0.example.com", "db1.badexample.com", d));
    EXPECT_TRUE(check_srv_target("cluster0.example.com", "example.com", d));
}

TEST(Srv, TxtRecordMaySetOnlyThreeOptions) {
    auto u = srv_uri("mongodb+srv://user:pw@c.example.com/");
    diagnostics d;
    ASSERT_FALSE(apply_srv_txt({"replicaSet=rs0&authSource=users&loadBalanced=false"}, u, d))
        << d.message;
    EXPECT_EQ(u.replica_set, "rs0");
    EXPECT_EQ(u.auth->source, "users");

    // The URI's own options win.
    u = srv_uri("mongodb+srv://user:pw@c.example.com/?replicaSet=mine&authSource=own");
    ASSERT_FALSE(apply_srv_txt({"replicaSet=rs0&authSource=users"}, u, d));
    EXPECT_EQ(u.replica_set, "mine");
    EXPECT_EQ(u.auth->source, "own");

    u = srv_uri("mongodb+srv://c.example.com/");
    EXPECT_EQ(apply_srv_txt({"ssl=false"}, u, d), client_errc::invalid_uri);
    EXPECT_NE(d.message.find("only authSource, replicaSet and loadBalanced"), std::string::npos);
    EXPECT_EQ(apply_srv_txt({"replicaSet=a", "authSource=b"}, u, d), client_errc::invalid_uri);
    EXPECT_NE(d.message.find("2 TXT records"), std::string::npos);
    EXPECT_EQ(apply_srv_txt({"loadBalanced=true"}, u, d), client_errc::invalid_uri);
    EXPECT_EQ(apply_srv_txt({"replicaSet"}, u, d), client_errc::invalid_uri);
    EXPECT_FALSE(apply_srv_txt({}, u, d));

    u = srv_uri("mongodb+srv://c.example.com/?srvMaxHosts=1");
    EXPECT_EQ(apply_srv_txt({"replicaSet=rs0"}, u, d), client_errc::invalid_uri);
    EXPECT_NE(d.message.find("srvMaxHosts"), std::string::npos);
}

TEST(Srv, SeedsComeFromTheRecordsInPriorityOrder) {
    auto u = srv_uri("mongodb+srv://c.example.com/");
    diagnostics d;
    ASSERT_FALSE(srv_seeds({srv("db3.example.com", 27019, 20), srv("DB1.example.com.", 27017, 0, 5),
                            srv("db2.example.com", 27018, 0, 10)},
                           u, 1, d))
        << d.message;
    ASSERT_EQ(u.hosts.size(), 3u);
    EXPECT_EQ(u.hosts[0], (host_port{"db2.example.com", 27018}));
    EXPECT_EQ(u.hosts[1], (host_port{"db1.example.com", 27017}));
    EXPECT_EQ(u.hosts[2], (host_port{"db3.example.com", 27019}));

    EXPECT_EQ(srv_seeds({srv("db1.other.com", 1)}, u, 1, d), client_errc::invalid_uri);
    EXPECT_EQ(srv_seeds({}, u, 1, d), dns::dns_errc::no_answer);
    EXPECT_NE(d.message.find("_mongodb._tcp.c.example.com"), std::string::npos);
}

TEST(Srv, SrvMaxHostsPicksThatManyAtRandom) {
    auto u = srv_uri("mongodb+srv://c.example.com/?srvMaxHosts=2");
    std::vector<dns::record> records;
    for (int i = 0; i < 6; ++i)
        records.push_back(srv("db" + std::to_string(i) + ".example.com", 27017));
    std::set<std::string> seen;
    diagnostics d;
    for (std::uint32_t seed = 0; seed < 20; ++seed) {
        ASSERT_FALSE(srv_seeds(records, u, seed, d));
        ASSERT_EQ(u.hosts.size(), 2u);
        EXPECT_NE(u.hosts[0], u.hosts[1]);
        for (const auto& h : u.hosts)
            seen.insert(h.host);
    }
    EXPECT_GT(seen.size(), 2u);  // not always the first two
}

TEST(Srv, PrepareNeedsADnsServerForSrvUris) {
    stream_config cfg;
    diagnostics d;
    source_options o;
    o.uri = "mongodb+srv://c.example.com/?tls=false";
    EXPECT_EQ(prepare(o, cfg, d), penne::errc::invalid_config);
    EXPECT_NE(d.message.find("dns_server"), std::string::npos) << d.message;

    o.system_dns_server = "192.0.2.1";
    ASSERT_FALSE(prepare(o, cfg, d)) << d.message;
    EXPECT_EQ(cfg.dns.server, (host_port{"192.0.2.1", 53}));
    EXPECT_FALSE(cfg.connection.dns);  // hosts resolve through the system resolver

    o.dns_server = "127.0.0.1:5353";
    ASSERT_FALSE(prepare(o, cfg, d)) << d.message;
    EXPECT_EQ(cfg.dns.server, (host_port{"127.0.0.1", 5353}));
    ASSERT_TRUE(cfg.connection.dns);
    EXPECT_EQ(cfg.connection.dns->server, cfg.dns.server);

    o.dns_server = "localhost";
    EXPECT_EQ(prepare(o, cfg, d), penne::errc::invalid_config);
    EXPECT_NE(d.message.find("mongodb.dns_server"), std::string::npos);
}

}  // namespace
}  // namespace penne::mongo
