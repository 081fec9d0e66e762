// mongosim's TLS judged by real drivers. The mongosim executable runs with --tls-cert and
// --tls-key (and --tls-ca for mutual TLS) from a PKI made by openssl for the test; libmongoc
// (in this process) and pymongo, Debian's node-mongodb 3.6 and the npm mongodb 7.x driver
// (change_stream.{py,js}) connect with tls=true and tlsCAFile, verify the server's
// certificate and host name, insert and watch. TLS and SCRAM together (--auth): libmongoc,
// pymongo and both Node drivers log in with SCRAM-SHA-256 and SCRAM-SHA-1 over TLS. A client the
// server must refuse (no client certificate under --tls-ca, a CA that did not issue the
// server's certificate) fails, and bad TLS flags stop mongosim with a message naming the file.

#include <process.hpp>
#include <temp_dir.hpp>
#include <tls_certificates.hpp>

#include <gtest/gtest.h>
#include <mongoc/mongoc.h>

#include <csignal>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;

class mongoc_environment : public ::testing::Environment {
public:
    void SetUp() override { mongoc_init(); }
    void TearDown() override { mongoc_cleanup(); }
};
[[maybe_unused]] auto* const env = ::testing::AddGlobalTestEnvironment(new mongoc_environment);

class MongosimTls : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        dir_ = new penne::test::temp_dir("mongosim-tls");
        pki_ = new penne::test::tls_certificates;
        pki_ok_ = penne::test::make_certificates(dir_->path().string(), *pki_, pki_error_);
    }
    static void TearDownTestSuite() {
        delete pki_;
        delete dir_;
        pki_ = nullptr;
        dir_ = nullptr;
    }
    void SetUp() override { ASSERT_TRUE(pki_ok_) << pki_error_; }
    void TearDown() override {
        if (sim_) {
            sim_->signal(SIGTERM);
            EXPECT_EQ(sim_->wait(10s), 0) << sim_->log();
        }
    }

    const penne::test::tls_certificates& pki() const { return *pki_; }

    // Starts the mongosim executable with TLS (mutual when `require_client_certs`), and with
    // SCRAM authentication when `users` ("user:password") is set.
    void start_sim(bool require_client_certs, const std::string& users = "") {
        port_ = penne::test::free_port();
        std::vector<std::string> args = {
            MONGOSIM_EXECUTABLE, "--port",    std::to_string(port_), "--tls-cert",
            pki().server_cert,   "--tls-key", pki().server_key};
        if (require_client_certs) {
            args.push_back("--tls-ca");
            args.push_back(pki().ca);
        }
        if (!users.empty()) {
            args.push_back("--auth");
            args.push_back(users);
        }
        const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
        std::string log = std::string(test->test_suite_name()) + "." + test->name() + ".log";
        for (auto& ch : log)
            if (ch == '/')
                ch = '_';
        sim_ = std::make_unique<penne::test::process>(args, *dir_ / ("mongosim-" + log));
        ASSERT_TRUE(sim_->wait_for_output("mongosim listening on", 10s)) << sim_->log();
        EXPECT_NE(sim_->log().find(require_client_certs ? "(TLS, client certificates required)"
                                                        : "(TLS)"),
                  std::string::npos)
            << sim_->log();
    }

    // A URI for `host` that trusts the test CA (and presents the client certificate), with
    // credentials ("user:password@") when set.
    std::string uri(const std::string& host, bool client_cert,
                    const std::string& credentials = "") const {
        std::string u = "mongodb://" + credentials + host + ":" + std::to_string(port_) +
                        "/?replicaSet=rs0&tls=true&tlsCAFile=" + pki().ca;
        if (client_cert)
            u += "&tlsCertificateKeyFile=" + pki().client;
        return u;
    }

    static inline penne::test::temp_dir* dir_ = nullptr;
    static inline penne::test::tls_certificates* pki_ = nullptr;
    static inline bool pki_ok_ = false;
    static inline std::string pki_error_;
    std::unique_ptr<penne::test::process> sim_;
    int port_ = 0;
};

struct client_deleter {
    void operator()(mongoc_client_t* c) const { mongoc_client_destroy(c); }
};
using client_ptr = std::unique_ptr<mongoc_client_t, client_deleter>;

client_ptr make_client(const std::string& uri) {
    bson_error_t err;
    mongoc_uri_t* u = mongoc_uri_new_with_error(uri.c_str(), &err);
    EXPECT_NE(u, nullptr) << err.message;
    if (!u)
        return nullptr;
    // Fail fast when the server (correctly) refuses: no 30 s server selection.
    mongoc_uri_set_option_as_int32(u, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 3000);
    mongoc_uri_set_option_as_int32(u, MONGOC_URI_CONNECTTIMEOUTMS, 3000);
    client_ptr c(mongoc_client_new_from_uri(u));
    mongoc_uri_destroy(u);
    return c;
}

bool ping(mongoc_client_t* c, std::string& error) {
    bson_t* cmd = BCON_NEW("ping", BCON_INT32(1));
    bson_error_t err;
    bool ok = mongoc_client_command_simple(c, "admin", cmd, nullptr, nullptr, &err);
    bson_destroy(cmd);
    if (!ok)
        error = err.message;
    return ok;
}

// libmongoc over TLS: watch a collection, insert, and read each insert back from the stream.
void libmongoc_insert_and_watch(const std::string& uri, const char* collection) {
    client_ptr client = make_client(uri);
    ASSERT_TRUE(client);
    std::string error;
    ASSERT_TRUE(ping(client.get(), error)) << error;
    mongoc_collection_t* coll = mongoc_client_get_collection(client.get(), "tlsdb", collection);
    bson_t pipeline = BSON_INITIALIZER;
    mongoc_change_stream_t* stream = mongoc_collection_watch(coll, &pipeline, nullptr);
    bson_destroy(&pipeline);
    for (int i = 0; i < 5; ++i) {
        bson_t* doc = BCON_NEW("_id", BCON_INT32(i), "via", BCON_UTF8("tls"));
        bson_error_t err;
        EXPECT_TRUE(mongoc_collection_insert_one(coll, doc, nullptr, nullptr, &err)) << err.message;
        bson_destroy(doc);
    }
    std::vector<int> ids;
    const bson_t* event = nullptr;
    for (int polls = 0; polls < 50 && ids.size() < 5; ++polls) {
        while (ids.size() < 5 && mongoc_change_stream_next(stream, &event)) {
            bson_iter_t it, key;
            if (bson_iter_init(&it, event) &&
                bson_iter_find_descendant(&it, "documentKey._id", &key) &&
                BSON_ITER_HOLDS_INT32(&key))
                ids.push_back(bson_iter_int32(&key));
            bson_iter_t op;
            EXPECT_TRUE(bson_iter_init_find(&op, event, "operationType") &&
                        std::string(bson_iter_utf8(&op, nullptr)) == "insert");
        }
        bson_error_t err;
        const bson_t* reply = nullptr;
        ASSERT_FALSE(mongoc_change_stream_error_document(stream, &err, &reply)) << err.message;
    }
    EXPECT_EQ(ids, (std::vector<int>{0, 1, 2, 3, 4}));
    mongoc_change_stream_destroy(stream);
    mongoc_collection_destroy(coll);
}

TEST_F(MongosimTls, LibmongocVerifiesAndWatches) {
    start_sim(false);
    // By address (certificate IP SAN) and by name (DNS SAN).
    libmongoc_insert_and_watch(uri("127.0.0.1", false), "by_address");
    libmongoc_insert_and_watch(uri("localhost", false), "by_name");

    // The driver refuses a server certificate from a CA it was not given.
    client_ptr untrusting = make_client("mongodb://127.0.0.1:" + std::to_string(port_) +
                                        "/?replicaSet=rs0&tls=true&tlsCAFile=" + pki().other_ca);
    ASSERT_TRUE(untrusting);
    std::string error;
    EXPECT_FALSE(ping(untrusting.get(), error));
    // A plain client gets nowhere either.
    client_ptr plain =
        make_client("mongodb://127.0.0.1:" + std::to_string(port_) + "/?replicaSet=rs0");
    ASSERT_TRUE(plain);
    EXPECT_FALSE(ping(plain.get(), error));
}

TEST_F(MongosimTls, LibmongocMutualTls) {
    start_sim(true);
    libmongoc_insert_and_watch(uri("127.0.0.1", true), "mutual");
    // Without a client certificate, or with one from another CA, the server refuses.
    std::string error;
    client_ptr anonymous = make_client(uri("127.0.0.1", false));
    ASSERT_TRUE(anonymous);
    EXPECT_FALSE(ping(anonymous.get(), error));
    client_ptr stranger =
        make_client(uri("127.0.0.1", false) + "&tlsCertificateKeyFile=" + pki().untrusted_client);
    ASSERT_TRUE(stranger);
    EXPECT_FALSE(ping(stranger.get(), error));
}

TEST_F(MongosimTls, BadFlagsStopMongosim) {
    const std::string port = std::to_string(penne::test::free_port());
    struct bad_case {
        std::vector<std::string> flags;
        std::string says;
    };
    const std::vector<bad_case> cases = {
        {{"--tls-key", pki().server_key}, "--tls-cert"},
        {{"--tls-cert", pki().server_cert}, "--tls-key"},
        {{"--tls-cert", *dir_ / "missing.pem", "--tls-key", pki().server_key}, "missing.pem"},
        {{"--tls-cert", pki().server_cert, "--tls-key", pki().client}, "client-combined.pem"},
        {{"--tls-cert", pki().server_cert, "--tls-key", pki().server_key, "--tls-ca",
          pki().server_key},
         "CA file"},
    };
    for (std::size_t i = 0; i < cases.size(); ++i) {
        const auto& c = cases[i];
        std::vector<std::string> args = {MONGOSIM_EXECUTABLE, "--port", port};
        args.insert(args.end(), c.flags.begin(), c.flags.end());
        penne::test::process p(args, *dir_ / ("bad-flags-" + std::to_string(i) + ".log"));
        auto code = p.wait(10s);
        ASSERT_TRUE(code) << p.log();
        EXPECT_EQ(*code, 1) << p.log();
        EXPECT_NE(p.log().find(c.says), std::string::npos) << p.log();
        EXPECT_EQ(p.log().find("listening"), std::string::npos) << p.log();
    }
}

struct script_driver {
    const char* name;
    std::vector<std::string> command;  // the URI is appended, then the expected major
    std::map<std::string, std::string> env;
    const char* major;
};

script_driver make_driver(const std::string& which) {
    const std::string dir = MONGOSIM_DRIVER_SCRIPTS;
    if (which == "pymongo")
        return {"pymongo", {"/usr/bin/python3", dir + "/change_stream.py"}, {}, nullptr};
    if (which == "node_mongodb_3")
        return {"node_mongodb_3",
                {"/usr/bin/env", "node", dir + "/change_stream.js"},
                {{"NODE_PATH", "/usr/share/nodejs"}},
                "3"};
    return {"node_mongodb_7",
            {"/usr/bin/env", "node", dir + "/change_stream.js"},
            {{"NODE_PATH", dir + "/node/node_modules"}},
            "7"};
}

class MongosimTlsDrivers : public MongosimTls,
                           public ::testing::WithParamInterface<std::tuple<const char*, bool>> {};

TEST_P(MongosimTlsDrivers, WatchAndResume) {
    const auto [which, mutual] = GetParam();
    start_sim(mutual);
    script_driver d = make_driver(which);
    auto command = d.command;
    command.push_back(uri(mutual ? "127.0.0.1" : "localhost", mutual));
    if (d.major)
        command.push_back(d.major);
    penne::test::process client(command, *dir_ / (std::string(d.name) + ".log"), d.env);
    auto code = client.wait(120s);
    if (!code) {
        client.signal(SIGKILL);
        client.wait(5s);
    }
    ASSERT_TRUE(code) << d.name << " did not finish:\n" << client.log();
    EXPECT_EQ(*code, 0) << client.log() << "\n--- mongosim:\n" << sim_->log();
    EXPECT_NE(client.log().find("OK "), std::string::npos) << client.log();
}

INSTANTIATE_TEST_SUITE_P(All, MongosimTlsDrivers,
                         ::testing::Combine(::testing::Values("pymongo", "node_mongodb_3",
                                                              "node_mongodb_7"),
                                            ::testing::Bool()),
                         [](const auto& info) {
                             return std::string(std::get<0>(info.param)) +
                                    (std::get<1>(info.param) ? "_mutual_tls" : "_tls");
                         });

// TLS and SCRAM at once: each driver logs in over TLS with the mechanism the URI names, then
// inserts, watches and resumes (change_stream.{py,js}); libmongoc in process with both
// mechanisms. The password never reaches mongosim's output.
constexpr const char* tls_user = "tlsuser";
constexpr const char* tls_password = "Tls-Scr4m~pass";

class MongosimTlsScram
    : public MongosimTls,
      public ::testing::WithParamInterface<std::tuple<const char*, const char*>> {};

TEST_P(MongosimTlsScram, LogInWatchAndResume) {
    const auto [which, mechanism] = GetParam();
    start_sim(false, std::string(tls_user) + ":" + tls_password);
    const std::string credentials = std::string(tls_user) + ":" + tls_password + "@";
    const std::string u =
        uri("localhost", false, credentials) + "&authSource=admin&authMechanism=" + mechanism;
    if (std::string(which) == "libmongoc") {
        libmongoc_insert_and_watch(u, (std::string("scram_") + mechanism).c_str());
        // The wrong password is refused over TLS too.
        client_ptr bad = make_client(uri("localhost", false, std::string(tls_user) + ":nope@") +
                                     "&authSource=admin&authMechanism=" + mechanism);
        ASSERT_TRUE(bad);
        std::string error;
        EXPECT_FALSE(ping(bad.get(), error));
        EXPECT_NE(error.find("uthentication failed"), std::string::npos) << error;
    } else {
        script_driver d = make_driver(which);
        auto command = d.command;
        command.push_back(u);
        if (d.major)
            command.push_back(d.major);
        penne::test::process client(
            command, *dir_ / (std::string(d.name) + "-" + mechanism + ".log"), d.env);
        auto code = client.wait(120s);
        if (!code) {
            client.signal(SIGKILL);
            client.wait(5s);
        }
        ASSERT_TRUE(code) << d.name << " did not finish:\n" << client.log();
        EXPECT_EQ(*code, 0) << client.log() << "\n--- mongosim:\n" << sim_->log();
        EXPECT_NE(client.log().find("OK "), std::string::npos) << client.log();
    }
    EXPECT_EQ(sim_->log().find(tls_password), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(All, MongosimTlsScram,
                         ::testing::Combine(::testing::Values("libmongoc", "pymongo",
                                                              "node_mongodb_3", "node_mongodb_7"),
                                            ::testing::Values("SCRAM-SHA-256", "SCRAM-SHA-1")),
                         [](const auto& info) {
                             std::string name = std::string(std::get<0>(info.param)) + "_" +
                                                std::get<1>(info.param);
                             for (auto& ch : name)
                                 if (ch == '-')
                                     ch = '_';
                             return name;
                         });

}  // namespace
