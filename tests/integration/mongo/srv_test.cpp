// mongodb+srv:// against a real DNS server: dnsmasq (from apt) on a free loopback port serves
// the SRV, TXT and A records of a 3-member mongosim replica set whose members are known only
// by names that exist nowhere but in that dnsmasq. penne's change stream resolves the seed
// list through its own DNS client (UDP, and TCP when a reply is truncated), discovers the set,
// reads events, and follows a step-down of the primary; and the error cases say what to fix
// (NXDOMAIN, a host outside the domain, two TXT records, a forbidden TXT option, a silent DNS
// server).
//
// dnsmasq runs in the foreground with --user set to the current user (it refuses to drop to
// "nobody" when that user does not exist, and running as root in CI needs no switch at all).

#include <penne/mongo/change_stream.hpp>
#include <penne/mongo/dns_client.hpp>
#include <penne/mongo/error.hpp>
#include <penne/mongo/srv.hpp>

#include <mongosim/server.hpp>

#include <process.hpp>
#include <temp_dir.hpp>

#include <gtest/gtest.h>
#include <mongoc/mongoc.h>
#include <pwd.h>
#include <unistd.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <exception>
#include <filesystem>
#include <functional>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using asio::awaitable;
using penne::mongo::change_stream;
using penne::mongo::source_options;
using penne::mongo::stream_config;

std::string dnsmasq_binary() {
    for (const char* p : {"/usr/sbin/dnsmasq", "/sbin/dnsmasq", "/usr/bin/dnsmasq"}) {
        if (std::filesystem::exists(p))
            return p;
    }
    return {};
}

std::string current_user() {
    const passwd* pw = ::getpwuid(::geteuid());
    return pw ? pw->pw_name : "root";
}

std::int64_t document_key(const penne::change_event& e) {
    bson_t doc;
    bson_iter_t it, key;
    if (bson_init_static(&doc, e.raw.data(), e.raw.size()) && bson_iter_init(&it, &doc) &&
        bson_iter_find_descendant(&it, "documentKey._id", &key) && BSON_ITER_HOLDS_INT(&key))
        return bson_iter_as_int64(&key);
    return -1;
}

class MongoSrv : public ::testing::Test {
protected:
    static void SetUpTestSuite() { mongoc_init(); }

    void SetUp() override {
        if (dnsmasq_binary().empty())
            GTEST_SKIP() << "dnsmasq is not installed (apt-get install dnsmasq-base)";
        mongosim::server_options opts;
        opts.members = 3;
        sim_ = std::make_unique<mongosim::background>(opts);
        const auto& ports = sim_->ports();
        std::vector<std::string> args = {
            // The set: three members, known only to this DNS server; TXT names the set.
            "--srv-host=_mongodb._tcp.rs.penne.test,m0.penne.test," + std::to_string(ports[0]) +
                ",0,10",
            "--srv-host=_mongodb._tcp.rs.penne.test,m1.penne.test," + std::to_string(ports[1]) +
                ",0,5",
            "--srv-host=_mongodb._tcp.rs.penne.test,m2.penne.test," + std::to_string(ports[2]) +
                ",1,5",
            "--txt-record=rs.penne.test,replicaSet=rs0",
            "--host-record=m0.penne.test,127.0.0.1",
            "--host-record=m1.penne.test,127.0.0.1",
            "--host-record=m2.penne.test,127.0.0.1",
            // A custom service name, pointing at one secondary only.
            "--srv-host=_custom._tcp.one.penne.test,m2.penne.test," + std::to_string(ports[2]),
            // Broken setups.
            "--srv-host=_mongodb._tcp.foreign.penne.test,m0.elsewhere.test,27017",
            "--srv-host=_mongodb._tcp.twotxt.penne.test,m0.penne.test," + std::to_string(ports[0]),
            "--txt-record=twotxt.penne.test,replicaSet=rs0",
            "--txt-record=twotxt.penne.test,authSource=admin",
            "--srv-host=_mongodb._tcp.badtxt.penne.test,m0.penne.test," + std::to_string(ports[0]),
            "--txt-record=badtxt.penne.test,ssl=false",
        };
        // Enough records that the reply does not fit a 512-byte datagram: TCP fallback.
        for (int i = 0; i < 24; ++i) {
            args.push_back("--srv-host=_mongodb._tcp.big.penne.test,member-with-a-long-name-" +
                           std::to_string(i) + ".penne.test,27017");
        }
        start_dns(args);
    }

    void start_dns(const std::vector<std::string>& records) {
        for (int attempt = 0; attempt < 5; ++attempt) {
            dns_port_ = penne::test::free_port();
            std::vector<std::string> argv = {
                dnsmasq_binary(), "--keep-in-foreground", "--conf-file=/dev/null",
                "--port=" + std::to_string(dns_port_), "--listen-address=127.0.0.1",
                "--bind-interfaces", "--no-resolv", "--no-hosts", "--no-poll",
                "--pid-file=", "--user=" + current_user(), "--log-facility=-",
                // Names under penne.test that it lacks: NXDOMAIN.
                "--local=/penne.test/"};
            argv.insert(argv.end(), records.begin(), records.end());
            dns_ = std::make_unique<penne::test::process>(
                argv, dir_ / ("dnsmasq-" + std::to_string(attempt) + ".log"));
            if (dns_->wait_for_output("started, version", 5s))
                return;
            dns_.reset();  // the port was taken meanwhile: another one
        }
        FAIL() << "dnsmasq did not start";
    }

    std::string dns_server() const { return "127.0.0.1:" + std::to_string(dns_port_); }

    std::shared_ptr<const stream_config> config(const std::string& uri, penne::diagnostics& d,
                                                penne::error_code* prepare_ec = nullptr) {
        source_options o;
        o.uri = uri;
        o.max_await = 100ms;
        o.connect_timeout = 2s;
        o.socket_timeout = 5s;
        o.reconnect_initial = 20ms;
        o.reconnect_max = 500ms;
        o.dns_server = dns_server();
        o.dns_timeout = 500ms;
        auto cfg = std::make_shared<stream_config>();
        auto ec = penne::mongo::prepare(o, *cfg, d);
        if (prepare_ec)
            *prepare_ec = ec;
        else
            EXPECT_FALSE(ec) << d.message;
        return cfg;
    }

    void insert(int from, int to) {
        mongoc_client_t* client = mongoc_client_new(
            (sim_->uri() + "&serverSelectionTimeoutMS=10000&serverSelectionTryOnce=false").c_str());
        ASSERT_NE(client, nullptr);
        mongoc_collection_t* c = mongoc_client_get_collection(client, "shop", "orders");
        for (int i = from; i < to; ++i) {
            bool done = false;
            for (int attempt = 0; attempt < 50 && !done; ++attempt) {
                bson_t* doc = BCON_NEW("_id", BCON_INT32(i));
                bson_error_t err;
                done = mongoc_collection_insert_one(c, doc, nullptr, nullptr, &err) ||
                       err.code == 11000;
                bson_destroy(doc);
                if (!done)
                    std::this_thread::sleep_for(50ms);
            }
            ASSERT_TRUE(done) << "insert " << i;
        }
        mongoc_collection_destroy(c);
        mongoc_client_destroy(client);
    }

    void run(std::function<awaitable<void>(asio::io_context&)> body,
             std::chrono::seconds limit = 60s) {
        asio::io_context io;
        std::exception_ptr failure;
        bool finished = false;
        asio::co_spawn(io, body(io), [&](std::exception_ptr e) {
            failure = e;
            finished = true;
        });
        io.run_for(limit);
        EXPECT_TRUE(finished) << "the test coroutine did not finish in time";
        if (failure)
            std::rethrow_exception(failure);
    }

    // Opens a stream on `uri` and returns open()'s error and diagnostics.
    std::pair<penne::error_code, std::string> open_error(const std::string& uri) {
        penne::diagnostics pd;
        auto cfg = config(uri, pd);
        penne::error_code result;
        std::string message;
        run([&](asio::io_context& io) -> awaitable<void> {
            change_stream cs(io.get_executor(),
                             {penne::watch_scope::level::collection, "shop", "orders"}, cfg);
            penne::diagnostics d;
            result = co_await cs.open({}, d);
            message = d.message;
            co_await cs.close();
        });
        return {result, message};
    }

    penne::test::temp_dir dir_;
    std::unique_ptr<mongosim::background> sim_;
    std::unique_ptr<penne::test::process> dns_;
    int dns_port_ = 0;
};

TEST_F(MongoSrv, StreamFindsTheSetThroughDnsAndFollowsAStepDown) {
    penne::diagnostics pd;
    // The cursor outlives the election; the stream checks its member every 500 ms.
    auto cfg = config("mongodb+srv://rs.penne.test/?tls=false&heartbeatFrequencyMS=500", pd);
    run([&](asio::io_context& io) -> awaitable<void> {
        change_stream cs(io.get_executor(),
                         {penne::watch_scope::level::collection, "shop", "orders"}, cfg);
        penne::diagnostics d;
        auto ec = co_await cs.open({}, d);
        EXPECT_FALSE(ec) << d.message;
        if (ec)
            co_return;
        // The primary is the first seed (priority 0, the heaviest weight), dialled by name.
        EXPECT_EQ(cs.server_address(), "m0.penne.test:" + std::to_string(sim_->ports()[0]));
        std::thread first([&] { insert(0, 10); });
        std::vector<std::int64_t> ids;
        penne::event_batch batch;
        for (int polls = 0; polls < 200 && ids.size() < 10; ++polls) {
            auto nec = co_await cs.next(batch, d);
            EXPECT_FALSE(nec) << d.message;
            if (nec)
                break;
            for (const auto& e : batch.events)
                ids.push_back(document_key(e));
        }
        first.join();
        sim_->step_down();
        std::thread second([&] { insert(10, 20); });
        // Until every event is in and the stream has moved to the new primary.
        for (int polls = 0; polls < 300 && (ids.size() < 20 || cs.resume_count() == 0); ++polls) {
            auto nec = co_await cs.next(batch, d);
            EXPECT_FALSE(nec) << d.message;
            if (nec)
                break;
            for (const auto& e : batch.events)
                ids.push_back(document_key(e));
        }
        second.join();
        EXPECT_EQ(ids.size(), 20u);
        for (std::size_t i = 0; i < ids.size(); ++i)
            EXPECT_EQ(ids[i], static_cast<std::int64_t>(i));
        EXPECT_GE(cs.resume_count(), 1u);
        // The new primary (member 1), by its seed name or by the address hello gives.
        const std::string now_on = cs.server_address();
        EXPECT_TRUE(now_on == "m1.penne.test:" + std::to_string(sim_->ports()[1]) ||
                    now_on == "127.0.0.1:" + std::to_string(sim_->ports()[1]))
            << now_on;
        co_await cs.close();
    });
}

TEST_F(MongoSrv, CustomServiceNameAndASecondarySeed) {
    penne::diagnostics pd;
    // The TXT record of one.penne.test does not exist: the set's name comes from the URI.
    auto cfg = config(
        "mongodb+srv://one.penne.test/?tls=false&srvServiceName=custom&"
        "replicaSet=rs0",
        pd);
    run([&](asio::io_context& io) -> awaitable<void> {
        change_stream cs(io.get_executor(),
                         {penne::watch_scope::level::collection, "shop", "orders"}, cfg);
        penne::diagnostics d;
        auto ec = co_await cs.open({}, d);
        EXPECT_FALSE(ec) << d.message;
        EXPECT_EQ(cs.server_address(), "127.0.0.1:" + std::to_string(sim_->ports()[0]));
        co_await cs.close();
    });
}

TEST_F(MongoSrv, TruncatedRepliesAreFetchedOverTcp) {
    run([&](asio::io_context& io) -> awaitable<void> {
        penne::mongo::uri_info uri;
        penne::diagnostics d;
        EXPECT_FALSE(penne::mongo::parse_uri("mongodb+srv://big.penne.test/?tls=false", uri, d));
        penne::mongo::dns_server_options dns;
        EXPECT_FALSE(penne::mongo::parse_dns_server(dns_server(), dns.server, d));
        // Over UDP alone the reply is cut: the client sees TC and asks again over TCP.
        penne::mongo::dns::message m;
        auto qec =
            co_await penne::mongo::dns_query(io.get_executor(), dns, "_mongodb._tcp.big.penne.test",
                                             penne::mongo::dns::rtype::srv, m, d);
        EXPECT_FALSE(qec) << d.message;
        EXPECT_EQ(m.answers.size(), 24u);
        auto ec = co_await penne::mongo::resolve_seedlist(io.get_executor(), dns, uri, d);
        EXPECT_FALSE(ec) << d.message;
        EXPECT_EQ(uri.hosts.size(), 24u);
        std::set<std::string> names;
        for (const auto& h : uri.hosts)
            names.insert(h.host);
        EXPECT_EQ(names.size(), 24u);
        EXPECT_TRUE(names.count("member-with-a-long-name-17.penne.test"));
    });
}

TEST_F(MongoSrv, AddressesResolveThroughTheSameServer) {
    run([&](asio::io_context& io) -> awaitable<void> {
        penne::mongo::dns_server_options dns;
        penne::diagnostics d;
        EXPECT_FALSE(penne::mongo::parse_dns_server(dns_server(), dns.server, d));
        std::vector<std::string> addresses;
        auto ec = co_await penne::mongo::dns_resolve_host(io.get_executor(), dns, "M1.penne.test",
                                                          addresses, d);
        EXPECT_FALSE(ec) << d.message;
        EXPECT_EQ(addresses, std::vector<std::string>{"127.0.0.1"});
        ec = co_await penne::mongo::dns_resolve_host(io.get_executor(), dns, "nope.penne.test",
                                                     addresses, d);
        EXPECT_EQ(ec, penne::mongo::dns::dns_errc::name_error) << d.message;
    });
}

TEST_F(MongoSrv, UnknownNameIsNxdomainNamingTheSrvName) {
    auto [ec, message] = open_error("mongodb+srv://missing.penne.test/?tls=false");
    EXPECT_EQ(ec, penne::mongo::dns::dns_errc::name_error) << message;
    EXPECT_FALSE(penne::is_retryable(ec));
    EXPECT_NE(message.find("_mongodb._tcp.missing.penne.test"), std::string::npos) << message;
    EXPECT_NE(message.find("NXDOMAIN"), std::string::npos) << message;
}

TEST_F(MongoSrv, HostOutsideTheDomainIsRefused) {
    auto [ec, message] = open_error("mongodb+srv://foreign.penne.test/?tls=false");
    EXPECT_EQ(ec, penne::mongo::client_errc::invalid_uri) << message;
    EXPECT_NE(message.find("m0.elsewhere.test"), std::string::npos) << message;
    EXPECT_NE(message.find("'penne.test'"), std::string::npos) << message;
}

TEST_F(MongoSrv, TxtRecordErrorsSayWhatIsWrong) {
    auto [two, two_message] = open_error("mongodb+srv://twotxt.penne.test/?tls=false");
    EXPECT_EQ(two, penne::mongo::client_errc::invalid_uri) << two_message;
    EXPECT_NE(two_message.find("2 TXT records"), std::string::npos) << two_message;
    auto [bad, bad_message] = open_error("mongodb+srv://badtxt.penne.test/?tls=false");
    EXPECT_EQ(bad, penne::mongo::client_errc::invalid_uri) << bad_message;
    EXPECT_NE(bad_message.find("'ssl'"), std::string::npos) << bad_message;
}

TEST_F(MongoSrv, SilentDnsServerTimesOutNamingTheServer) {
    // A UDP socket that never answers.
    asio::io_context sink_io;
    asio::ip::udp::socket sink(sink_io, {asio::ip::make_address("127.0.0.1"), 0});
    const std::string silent = "127.0.0.1:" + std::to_string(sink.local_endpoint().port());
    source_options o;
    o.uri = "mongodb+srv://rs.penne.test/?tls=false";
    o.dns_server = silent;
    o.dns_timeout = 100ms;
    auto cfg = std::make_shared<stream_config>();
    penne::diagnostics pd;
    ASSERT_FALSE(penne::mongo::prepare(o, *cfg, pd)) << pd.message;
    penne::error_code ec;
    std::string message;
    const auto t0 = std::chrono::steady_clock::now();
    run([&](asio::io_context& io) -> awaitable<void> {
        change_stream cs(io.get_executor(),
                         {penne::watch_scope::level::collection, "shop", "orders"}, cfg);
        penne::diagnostics d;
        ec = co_await cs.open({}, d);
        message = d.message;
    });
    const auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_EQ(ec, penne::errc::timeout) << message;
    EXPECT_TRUE(penne::is_retryable(ec));
    EXPECT_NE(message.find(silent), std::string::npos) << message;
    EXPECT_NE(message.find("timed out"), std::string::npos) << message;
    EXPECT_GE(took, 300ms);  // three attempts of 100 ms
    EXPECT_LT(took, 5s);
}

}  // namespace
