// penne's MongoDB client over TLS against mongosim with a PKI made by openssl for the test:
// a change stream over verified TLS (by IP address and by host name, with SNI), resuming
// over a fresh TLS connection after the server drops one; the failures a user meets — a CA
// that did not issue the server's certificate, a certificate for another host, a server
// that wants a client certificate — each fatal at once with a message saying what to check;
// the relaxations (tlsAllowInvalidHostnames, tlsAllowInvalidCertificates, tlsInsecure); and
// mutual TLS with a plain and a password-protected client key.
// libmongoc writes and reads serverStatus over TLS as well.

#include <penne/mongo/change_stream.hpp>
#include <penne/mongo/connection.hpp>
#include <penne/mongo/error.hpp>
#include <penne/mongo/tls.hpp>

#include <mongosim/server.hpp>
#include <temp_dir.hpp>
#include <tls_certificates.hpp>

#include <gtest/gtest.h>
#include <mongoc/mongoc.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <openssl/ssl.h>

#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using asio::awaitable;
using penne::mongo::change_stream;
using penne::mongo::client_errc;
using penne::mongo::source_options;
using penne::mongo::stream_config;
using tcp = asio::ip::tcp;

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// The server side of one TLS handshake, recording the server name (SNI) the client sent.
class sni_recorder {
public:
    sni_recorder(asio::io_context& io, const penne::test::tls_certificates& pki)
        : ctx_(asio::ssl::context::tls_server),
          acceptor_(io, {asio::ip::make_address("127.0.0.1"), 0}) {
        ctx_.use_certificate_chain_file(pki.server_cert);
        ctx_.use_private_key_file(pki.server_key, asio::ssl::context::pem);
        asio::co_spawn(io, accept_one(), asio::detached);
    }
    std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
    bool handshaken() const { return handshaken_; }
    const std::optional<std::string>& server_name() const { return server_name_; }

private:
    awaitable<void> accept_one() {
        auto [ec, socket] = co_await acceptor_.async_accept(use_tuple);
        if (ec)
            co_return;
        asio::ssl::stream<tcp::socket> stream(std::move(socket), ctx_);
        auto [hec] = co_await stream.async_handshake(asio::ssl::stream_base::server, use_tuple);
        if (hec)
            co_return;
        handshaken_ = true;
        if (const char* name =
                SSL_get_servername(stream.native_handle(), TLSEXT_NAMETYPE_host_name))
            server_name_ = name;
        boost::system::error_code ignored;
        stream.next_layer().close(ignored);
    }

    asio::ssl::context ctx_;
    tcp::acceptor acceptor_;
    bool handshaken_ = false;
    std::optional<std::string> server_name_;
};

class MongoTls : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        mongoc_init();
        dir_ = new penne::test::temp_dir("penne-mongo-tls");
        pki_ = new penne::test::tls_certificates;
        std::string error;
        pki_ok_ = penne::test::make_certificates(dir_->path().string(), *pki_, error);
        pki_error_ = error;
    }
    static void TearDownTestSuite() {
        delete pki_;
        delete dir_;
        pki_ = nullptr;
        dir_ = nullptr;
    }

    void SetUp() override { ASSERT_TRUE(pki_ok_) << pki_error_; }
    void TearDown() override {
        if (client_)
            mongoc_client_destroy(client_);
        client_ = nullptr;
    }

    const penne::test::tls_certificates& pki() const { return *pki_; }

    // mongosim with TLS; `require_client_certs` adds --tls-ca. The libmongoc client used to
    // write connects over verified TLS (with a client certificate when required).
    void start_sim(bool require_client_certs = false, bool wrong_host = false) {
        mongosim::server_options o;
        o.tls_cert_file = wrong_host ? pki().wrong_host_cert : pki().server_cert;
        o.tls_key_file = wrong_host ? pki().wrong_host_key : pki().server_key;
        if (require_client_certs)
            o.tls_ca_file = pki().ca;
        sim_ = std::make_unique<mongosim::background>(o);
        std::string uri = sim_->uri() + "&tls=true&tlsCAFile=" + pki().ca;
        if (wrong_host)
            uri += "&tlsAllowInvalidHostnames=true";
        if (require_client_certs)
            uri += "&tlsCertificateKeyFile=" + pki().client;
        client_ = mongoc_client_new(uri.c_str());
        ASSERT_NE(client_, nullptr) << uri;
    }

    std::string base(const std::string& host = "127.0.0.1") const {
        return "mongodb://" + host + ":" + std::to_string(sim_->port()) + "/?replicaSet=rs0";
    }

    bson_t* command(const std::string& json) {
        bson_error_t err;
        bson_t* cmd = bson_new_from_json(reinterpret_cast<const std::uint8_t*>(json.data()),
                                         static_cast<ssize_t>(json.size()), &err);
        EXPECT_NE(cmd, nullptr) << err.message;
        return cmd;
    }

    void admin(const std::string& json) {
        bson_t* cmd = command(json);
        bson_t reply;
        bson_error_t err;
        EXPECT_TRUE(mongoc_client_command_simple(client_, "admin", cmd, nullptr, &reply, &err))
            << err.message;
        bson_destroy(&reply);
        bson_destroy(cmd);
    }

    // serverStatus connections.totalCreated, read over libmongoc's own TLS connection.
    std::int64_t connections_created() {
        bson_t* cmd = BCON_NEW("serverStatus", BCON_INT32(1));
        bson_t reply;
        bson_error_t err;
        bool ok = mongoc_client_command_simple(client_, "admin", cmd, nullptr, &reply, &err);
        bson_destroy(cmd);
        EXPECT_TRUE(ok) << err.message;
        std::int64_t v = -1;
        bson_iter_t it, found;
        if (ok && bson_iter_init(&it, &reply) &&
            bson_iter_find_descendant(&it, "connections.totalCreated", &found))
            v = bson_iter_as_int64(&found);
        bson_destroy(&reply);
        return v;
    }

    void insert(const char* db, const char* coll, int from, int to) {
        mongoc_collection_t* c = mongoc_client_get_collection(client_, db, coll);
        for (int i = from; i < to; ++i) {
            bson_t* doc = BCON_NEW("_id", BCON_INT32(i), "v", BCON_UTF8("over tls"));
            bson_error_t err;
            EXPECT_TRUE(mongoc_collection_insert_one(c, doc, nullptr, nullptr, &err))
                << err.message;
            bson_destroy(doc);
        }
        mongoc_collection_destroy(c);
    }

    static source_options options(const std::string& uri) {
        source_options o;
        o.uri = uri;
        o.max_await = 200ms;
        o.connect_timeout = 3s;
        o.socket_timeout = 5s;
        o.reconnect_initial = 50ms;
        return o;
    }

    static std::shared_ptr<stream_config> config(const std::string& uri) {
        auto cfg = std::make_shared<stream_config>();
        penne::diagnostics d;
        EXPECT_FALSE(penne::mongo::prepare(options(uri), *cfg, d)) << d.message;
        return cfg;
    }

    // Runs `body` as a coroutine on a fresh io_context; rethrows its exception.
    static void run(std::function<awaitable<void>(asio::io_context&)> body) {
        asio::io_context io;
        std::exception_ptr failure;
        bool finished = false;
        asio::co_spawn(io, body(io), [&](std::exception_ptr e) {
            failure = e;
            finished = true;
        });
        io.run_for(60s);
        EXPECT_TRUE(finished);
        if (failure)
            std::rethrow_exception(failure);
    }

    // Connects one penne connection to the simulator with `uri`'s options and pings.
    awaitable<penne::error_code> connect_and_ping(asio::io_context& io, const std::string& uri,
                                                  const std::string& host, penne::diagnostics& d) {
        auto cfg = config(uri);
        if (!cfg->connection.tls) {
            d.message = "no TLS context";
            co_return make_error_code(penne::errc::invalid_config);
        }
        penne::mongo::connection conn(io.get_executor());
        // A named peer: g++ 12 destroys braced temporaries of a co_await expression twice.
        const penne::mongo::host_port peer{host, sim_->port()};
        auto ec = co_await conn.connect(peer, cfg->connection, d);
        if (ec)
            co_return ec;
        bson_t* cmd = BCON_NEW("ping", BCON_INT32(1), "$db", BCON_UTF8("admin"));
        std::vector<std::uint8_t> frame;
        penne::mongo::command_reply reply;
        ec = co_await conn.run_command({bson_get_data(cmd), cmd->len}, frame, reply, {}, d);
        bson_destroy(cmd);
        co_return ec;
    }

    // Opens a collection change stream with `uri`; expects a fatal error at once and
    // returns the diagnostics.
    awaitable<std::string> open_fails_fatally(asio::io_context& io, const std::string& uri,
                                              penne::error_code expected) {
        auto cfg = config(uri);
        change_stream cs(io.get_executor(), {penne::watch_scope::level::collection, "shop", "tls"},
                         cfg);
        const auto created_before = connections_created();
        penne::diagnostics d;
        const auto started = std::chrono::steady_clock::now();
        auto ec = co_await cs.open({}, d);
        EXPECT_EQ(ec, expected) << ec.message() << ": " << d.message;
        EXPECT_TRUE(penne::is_fatal(ec)) << ec.message();
        EXPECT_LT(std::chrono::steady_clock::now() - started, 2s);
        RecordProperty("diagnostics", d.message);
        // One TLS attempt, no reconnect loop.
        EXPECT_EQ(connections_created(), created_before + 1);
        co_await cs.close();
        co_return d.message;
    }

    // Opens a change stream with `uri`, inserts ids [0, n) and checks they all arrive in
    // order; `mid` (when set) runs after the first batch has arrived.
    void watch_and_check(const std::string& uri, int n, std::function<void()> mid = {},
                         std::uint64_t* resumes = nullptr, const char* coll = "tls") {
        run([&](asio::io_context& io) -> awaitable<void> {
            change_stream cs(io.get_executor(),
                             {penne::watch_scope::level::collection, "shop", coll}, config(uri));
            penne::diagnostics d;
            auto ec = co_await cs.open({}, d);
            EXPECT_FALSE(ec) << ec.message() << ": " << d.message;
            if (ec)
                co_return;
            insert("shop", coll, 0, n / 2);
            std::vector<std::int64_t> ids;
            penne::event_batch batch;
            bool mid_done = false;
            for (int i = 0; i < 100 && ids.size() < static_cast<std::size_t>(n); ++i) {
                penne::diagnostics nd;
                auto nec = co_await cs.next(batch, nd);
                EXPECT_FALSE(nec) << nec.message() << ": " << nd.message;
                if (nec)
                    break;
                for (const auto& e : batch.events) {
                    bson_t doc;
                    bson_iter_t it, key;
                    if (bson_init_static(&doc, e.raw.data(), e.raw.size()) &&
                        bson_iter_init(&it, &doc) &&
                        bson_iter_find_descendant(&it, "documentKey._id", &key))
                        ids.push_back(bson_iter_as_int64(&key));
                }
                if (!mid_done && ids.size() >= static_cast<std::size_t>(n / 2)) {
                    mid_done = true;
                    if (mid)
                        mid();
                    insert("shop", coll, n / 2, n);
                }
            }
            std::vector<std::int64_t> want;
            for (int i = 0; i < n; ++i)
                want.push_back(i);
            EXPECT_EQ(ids, want);
            if (resumes)
                *resumes = cs.resume_count();
            co_await cs.close();
        });
    }

    static inline penne::test::temp_dir* dir_ = nullptr;
    static inline penne::test::tls_certificates* pki_ = nullptr;
    static inline bool pki_ok_ = false;
    static inline std::string pki_error_;
    std::unique_ptr<mongosim::background> sim_;
    mongoc_client_t* client_ = nullptr;
};

class MongoTlsHost : public MongoTls, public ::testing::WithParamInterface<const char*> {};

TEST_P(MongoTlsHost, ChangeStreamOverVerifiedTls) {
    start_sim();
    const std::string host = GetParam();
    watch_and_check(base(host) + "&tls=true&tlsCAFile=" + pki().ca, 40);
}

TEST_P(MongoTlsHost, ResumesOverANewTlsConnection) {
    start_sim();
    const std::string host = GetParam();
    std::uint64_t resumes = 0;
    const auto created_before = connections_created();
    watch_and_check(
        base(host) + "&tls=true&tlsCAFile=" + pki().ca, 40,
        [&] {
            // The server drops the stream's connection at its next getMore.
            admin(R"({"configureFailPoint": "failCommand", "mode": {"times": 1},
                      "data": {"failCommands": ["getMore"], "closeConnection": true}})");
        },
        &resumes);
    EXPECT_EQ(resumes, 1u);
    // The first connection, the one after the drop, and libmongoc's serverStatus ones.
    EXPECT_GE(connections_created(), created_before + 2);
}

INSTANTIATE_TEST_SUITE_P(Hosts, MongoTlsHost, ::testing::Values("127.0.0.1", "localhost"),
                         [](const auto& info) {
                             return std::string(info.param) == "localhost" ? "HostName"
                                                                           : "IpAddress";
                         });

TEST_F(MongoTls, SendsServerNameForHostNamesOnly) {
    for (const std::string host : {"localhost", "127.0.0.1"}) {
        SCOPED_TRACE(host);
        run([&](asio::io_context& io) -> awaitable<void> {
            sni_recorder server(io, pki());
            auto cfg = config("mongodb://" + host + "/?tls=true&tlsCAFile=" + pki().ca);
            penne::mongo::connection conn(io.get_executor());
            const penne::mongo::host_port peer{host, server.port()};
            penne::diagnostics d;
            // The recorder closes after the handshake, so hello fails; SNI is what counts.
            auto ec = co_await conn.connect(peer, cfg->connection, d);
            EXPECT_TRUE(ec);
            EXPECT_TRUE(server.handshaken()) << d.message;
            if (host == "localhost")
                EXPECT_EQ(server.server_name(), std::optional<std::string>("localhost"));
            else
                EXPECT_EQ(server.server_name(), std::nullopt);
        });
    }
}

TEST_F(MongoTls, WrongCaIsFatalAndSaysToCheckTheCaFile) {
    start_sim();
    run([&](asio::io_context& io) -> awaitable<void> {
        const std::string uri = base() + "&tls=true&tlsCAFile=" + pki().other_ca;
        penne::diagnostics d;
        auto ec = co_await connect_and_ping(io, uri, "127.0.0.1", d);
        EXPECT_EQ(ec, client_errc::tls_untrusted_certificate) << ec.message() << ": " << d.message;
        EXPECT_TRUE(penne::is_fatal(ec));
        EXPECT_NE(d.message.find("tlsCAFile " + pki().other_ca), std::string::npos) << d.message;
        EXPECT_NE(d.message.find("not trusted"), std::string::npos) << d.message;

        auto msg = co_await open_fails_fatally(
            io, uri, make_error_code(client_errc::tls_untrusted_certificate));
        EXPECT_NE(msg.find("tlsCAFile"), std::string::npos) << msg;

        // Without verification the same server is accepted.
        ec = co_await connect_and_ping(
            io,
            base() + "&tls=true&tlsCAFile=" + pki().other_ca + "&tlsAllowInvalidCertificates=true",
            "127.0.0.1", d);
        EXPECT_FALSE(ec) << d.message;
    });
}

TEST_F(MongoTls, TheSystemTrustStoreDoesNotKnowTheTestCa) {
    start_sim();
    run([&](asio::io_context& io) -> awaitable<void> {
        penne::diagnostics d;
        auto ec = co_await connect_and_ping(io, base() + "&tls=true", "127.0.0.1", d);
        EXPECT_EQ(ec, client_errc::tls_untrusted_certificate) << ec.message() << ": " << d.message;
        EXPECT_NE(d.message.find("trust store"), std::string::npos) << d.message;
    });
}

TEST_F(MongoTls, HostNameMismatchIsFatalUnlessAllowed) {
    start_sim(false, true);  // the certificate names db.example.net only
    run([&](asio::io_context& io) -> awaitable<void> {
        for (const std::string host : {"127.0.0.1", "localhost"}) {
            SCOPED_TRACE(host);
            const std::string uri = base(host) + "&tls=true&tlsCAFile=" + pki().ca;
            penne::diagnostics d;
            auto ec = co_await connect_and_ping(io, uri, host, d);
            EXPECT_EQ(ec, client_errc::tls_host_name_mismatch) << ec.message() << ": " << d.message;
            EXPECT_TRUE(penne::is_fatal(ec));
            EXPECT_NE(d.message.find("tlsAllowInvalidHostnames"), std::string::npos) << d.message;
            EXPECT_NE(d.message.find(host), std::string::npos) << d.message;

            auto msg = co_await open_fails_fatally(
                io, uri, make_error_code(client_errc::tls_host_name_mismatch));
            EXPECT_NE(msg.find("tlsAllowInvalidHostnames"), std::string::npos) << msg;

            // The chain is still verified: the right CA with the name check off works...
            ec = co_await connect_and_ping(io, uri + "&tlsAllowInvalidHostnames=true", host, d);
            EXPECT_FALSE(ec) << d.message;
            // ...the wrong CA does not.
            ec = co_await connect_and_ping(
                io,
                base(host) + "&tls=true&tlsAllowInvalidHostnames=true&tlsCAFile=" + pki().other_ca,
                host, d);
            EXPECT_EQ(ec, client_errc::tls_untrusted_certificate) << d.message;
            // tlsInsecure drops both checks.
            ec = co_await connect_and_ping(
                io, base(host) + "&tls=true&tlsInsecure=true&tlsCAFile=" + pki().other_ca, host, d);
            EXPECT_FALSE(ec) << d.message;
        }
    });
    // A whole change stream with the relaxation.
    watch_and_check(base() + "&tls=true&tlsCAFile=" + pki().ca + "&tlsAllowInvalidHostnames=true",
                    10);
}

TEST_F(MongoTls, MutualTlsWithClientCertificates) {
    start_sim(true);
    // A plain key and an encrypted one with its password.
    watch_and_check(
        base() + "&tls=true&tlsCAFile=" + pki().ca + "&tlsCertificateKeyFile=" + pki().client, 20);
    const std::string pw = penne::test::tls_certificates::client_key_password;
    watch_and_check(base() + "&tls=true&tlsCAFile=" + pki().ca + "&tlsCertificateKeyFile=" +
                        pki().client_encrypted + "&tlsCertificateKeyFilePassword=" + pw,
                    20, {}, nullptr, "tls_encrypted_key");
}

TEST_F(MongoTls, MutualTlsRefusalsAreFatal) {
    start_sim(true);
    run([&](asio::io_context& io) -> awaitable<void> {
        // No client certificate: the server's alert fails the session.
        const std::string uri = base() + "&tls=true&tlsCAFile=" + pki().ca;
        penne::diagnostics d;
        auto ec = co_await connect_and_ping(io, uri, "127.0.0.1", d);
        EXPECT_EQ(ec, client_errc::tls_failed) << ec.message() << ": " << d.message;
        EXPECT_TRUE(penne::is_fatal(ec));
        EXPECT_NE(d.message.find("tlsCertificateKeyFile"), std::string::npos) << d.message;
        auto msg = co_await open_fails_fatally(io, uri, make_error_code(client_errc::tls_failed));
        EXPECT_NE(msg.find("certificate"), std::string::npos) << msg;

        // A client certificate from a CA the server does not trust.
        ec = co_await connect_and_ping(io, uri + "&tlsCertificateKeyFile=" + pki().untrusted_client,
                                       "127.0.0.1", d);
        EXPECT_EQ(ec, client_errc::tls_failed) << ec.message() << ": " << d.message;
        EXPECT_NE(d.message.find(pki().untrusted_client), std::string::npos) << d.message;
    });
}

TEST_F(MongoTls, KeyFileProblemsAreConfigurationErrors) {
    const std::string pw = penne::test::tls_certificates::client_key_password;
    stream_config cfg;
    penne::diagnostics d;
    // Encrypted key without or with a wrong password: never echoed back.
    auto o = options("mongodb://h/?tls=true&tlsCAFile=" + pki().ca + "&tlsCertificateKeyFile=" +
                     pki().client_encrypted + "&tlsCertificateKeyFilePassword=Wr0ng-Pa55");
    EXPECT_EQ(penne::mongo::prepare(o, cfg, d), penne::errc::invalid_config);
    EXPECT_NE(d.message.find("tlsCertificateKeyFilePassword"), std::string::npos) << d.message;
    EXPECT_NE(d.message.find(pki().client_encrypted), std::string::npos) << d.message;
    EXPECT_EQ(d.message.find("Wr0ng-Pa55"), std::string::npos) << d.message;
    EXPECT_EQ(d.message.find(pw), std::string::npos) << d.message;

    // A CA file that holds no certificate (a key).
    o = options("mongodb://h/?tls=true&tlsCAFile=" + pki().server_key);
    EXPECT_EQ(penne::mongo::prepare(o, cfg, d), penne::errc::invalid_config);
    EXPECT_NE(d.message.find("tlsCAFile " + pki().server_key), std::string::npos) << d.message;

    // A certificate file without a key.
    o = options("mongodb://h/?tls=true&tlsCAFile=" + pki().ca +
                "&tlsCertificateKeyFile=" + pki().ca);
    EXPECT_EQ(penne::mongo::prepare(o, cfg, d), penne::errc::invalid_config);
    EXPECT_NE(d.message.find("private key"), std::string::npos) << d.message;
}

TEST_F(MongoTls, PlainAndTlsDoNotMix) {
    start_sim();
    run([&](asio::io_context& io) -> awaitable<void> {
        // A plain client to the TLS server: the server's TLS layer cannot read it (it may
        // wait for more bytes of what looks like a record), so connect fails within the
        // connect timeout (3 s).
        auto cfg = std::make_shared<stream_config>();
        penne::diagnostics d;
        EXPECT_FALSE(penne::mongo::prepare(options(base()), *cfg, d)) << d.message;
        penne::mongo::connection conn(io.get_executor());
        const penne::mongo::host_port peer{"127.0.0.1", sim_->port()};
        const auto started = std::chrono::steady_clock::now();
        auto ec = co_await conn.connect(peer, cfg->connection, d);
        EXPECT_TRUE(penne::is_retryable(ec)) << ec.message() << ": " << d.message;
        EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
    });
    // A TLS client to a plain server: the server takes the ClientHello for the start of a
    // long message and waits, or hangs up; either way connect fails within the connect
    // timeout and says TLS.
    mongosim::background plain{mongosim::server_options{}};
    run([&](asio::io_context& io) -> awaitable<void> {
        auto cfg = config("mongodb://127.0.0.1/?tls=true&tlsCAFile=" + pki().ca);
        penne::mongo::connection conn(io.get_executor());
        const penne::mongo::host_port peer{"127.0.0.1", plain.port()};
        penne::diagnostics d;
        const auto started = std::chrono::steady_clock::now();
        auto ec = co_await conn.connect(peer, cfg->connection, d);
        EXPECT_TRUE(ec);
        EXPECT_NE(d.message.find("TLS"), std::string::npos) << ec.message() << ": " << d.message;
        EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
    });
}

}  // namespace
