#pragma once
// mongosim: a MongoDB 7.0 replica set, in process, for tests. It speaks the wire
// protocol (OP_MSG, legacy OP_QUERY handshake), stores documents in memory and keeps an oplog
// that change streams read, so real drivers (libmongoc, Node, PyMongo) and penne's own client
// can insert, watch and resume against it. With users configured it requires SCRAM-SHA-256 or
// SCRAM-SHA-1 authentication (saslStart/saslContinue, speculativeAuthenticate in hello);
// OP_COMPRESSED (zstd, zlib, snappy) is negotiated in hello and always accepted. With a
// certificate and key configured every connection is TLS (TLS 1.2+), and with a CA file
// too, clients must present a certificate that CA issued (mutual TLS).
//
// A replica set of N members (server_options::members) runs in the one process: each member
// listens on its own port and answers hello as a primary or a secondary of the same set; data
// and oplog are shared, so change streams and resume tokens are identical on every member.
// Writes on a secondary fail with NotWritablePrimary (10107), reads there without a secondaryOk
// read preference with NotPrimaryNoSecondaryOk (13435). A step-down (replSetStepDown, step_down()
// or the step_down_every chaos timer) moves the primary to the next member and wakes
// awaitable hellos and the requests parked on the old primary (which then answer as a
// secondary); connections and cursors live on, as mongod's do since 4.2.
//
// Usage:
//     mongosim::server srv(io.get_executor(), {.port = 0});
//     if (auto ec = srv.listen()) ...;          // port() is valid from here on
//     srv.async_run(asio::detached);            // accepts until stop()
//     ... mongodb://127.0.0.1:<port>/?replicaSet=rs0 ...
//     srv.stop();
//
// Thread safety: the server runs on its executor, which must be single-threaded (one
// io_context thread, or a strand). stop() may be called from any thread; everything else from
// the executor's thread (or before it starts running). Cancellation: stop() closes the
// acceptor and every connection and wakes waiting getMores; async_run then completes.
// Lifetimes: connections keep the shared state alive, so destroying the server after stop()
// is safe even while connection coroutines are still unwinding on the executor.
//
// mongosim::background runs a server on its own thread for tests that drive a blocking client.

#include <mongosim/error.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace mongosim {

namespace asio = boost::asio;

// A user created at startup in the admin database (like mongod's createUser there), usable
// with SCRAM-SHA-1 and SCRAM-SHA-256.
struct user_credential {
    std::string user;
    std::string password;
};

// Parses "user:password[,user2:pw2]" (the --auth syntax): the user ends at the first ':', the
// password at the next ','. False, with out untouched, for an empty user or password.
bool parse_users(std::string_view spec, std::vector<user_credential>& out);

// Load mode (--preload N; tests/mongosim/src/preload.hpp): N generated change events put in
// the oplog when the server is constructed, before any client connects.
struct preload_options {
    std::uint64_t events = 0;       // 0: no preload
    std::size_t databases = 1;      // <db>, <db>_1, <db>_2, ...
    std::size_t collections = 1;    // coll0 .. coll<C-1> in every database
    std::string db = "bench";       // the first database's name
    std::uint32_t doc_bytes = 800;  // BSON size of an inserted document
    std::uint64_t seed = 1;         // the same seed generates the same events
};

struct server_options {
    std::string host = "127.0.0.1";
    std::uint16_t port = 0;  // 0: the kernel picks a free port
    std::string replset = "rs0";
    // Members of the replica set, each on its own port: port, port+1, … (with port 0 each
    // member gets a free port from the kernel). Member 0 starts as the primary.
    std::size_t members = 1;
    // Non-zero: the primary steps down this often (failover chaos for tests).
    std::chrono::milliseconds step_down_every{0};
    std::size_t oplog_size = 0;  // most change events kept; 0: unbounded
    // Most bytes of oplog entries kept (BSON size, MiB); 0: unbounded. Resuming from an event
    // that was dropped fails with ChangeStreamHistoryLost (286), as with oplog_size.
    std::size_t oplog_size_mb = 0;
    std::chrono::milliseconds cursor_timeout = std::chrono::minutes(10);  // idle cursors die
    bool trace = false;  // print every request and reply (relaxed extended JSON) to stderr
    // Non-empty: authentication is on; every command but the handshake, ping, buildInfo,
    // endSessions and SASL needs an authenticated connection (else code 13, Unauthorized).
    std::vector<user_credential> users;
    // TLS: with tls_cert_file set, every connection starts with a TLS handshake.
    std::string tls_cert_file;  // PEM certificate (chain) presented to clients
    std::string tls_key_file;   // its private key, PEM, unencrypted
    std::string tls_ca_file;    // non-empty: require client certificates issued by these CAs
    preload_options preload;    // load mode for benchmarks
};

struct shared_state;

class server {
public:
    server(asio::any_io_executor ex, server_options opts);
    ~server();
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    // Loads the TLS files (when configured), binds and listens (every member). After
    // success, port() is member 0's bound port. On failure `detail`, when given, says which
    // step failed and why.
    error_code listen(std::string* detail = nullptr);
    std::uint16_t port(std::size_t member = 0) const noexcept;
    // "host:port" of a member as advertised in hello (hosts, me, primary).
    std::string address(std::size_t member = 0) const;
    std::size_t members() const noexcept;

    // Steps the primary down (a no-op for a set of one). Thread-safe: posted to the executor.
    void step_down();

    // Accepts connections until stop(). Requires a successful listen().
    asio::awaitable<void> run();
    template <class Token>
    auto async_run(Token&& token) {
        return asio::co_spawn(executor_, run(), std::forward<Token>(token));
    }
    void stop();

private:
    asio::any_io_executor executor_;
    std::shared_ptr<shared_state> state_;
};

// A server on its own io_context thread, started by the constructor (which throws
// boost::system::system_error when it cannot listen) and stopped by the destructor, which
// joins the thread. For tests with blocking clients.
class background {
public:
    explicit background(server_options opts = {});
    ~background();
    background(const background&) = delete;
    background& operator=(const background&) = delete;

    // Member 0's port, and every member's.
    std::uint16_t port() const noexcept { return ports_.front(); }
    const std::vector<std::uint16_t>& ports() const noexcept { return ports_; }
    // mongodb://host:port[,host:port2…]/?replicaSet=<set> (add tls=true&tlsCAFile=… for a
    // TLS server); every member is a seed.
    std::string uri() const;
    // mongodb://user:password@host:port/?replicaSet=<set>&authSource=admin (percent-encoded)
    std::string uri(const std::string& user, const std::string& password) const;
    // Steps the primary down and returns once it is done.
    void step_down();

private:
    std::string seeds() const;

    struct impl;
    std::unique_ptr<impl> impl_;
    std::vector<std::uint16_t> ports_;
    std::string host_, replset_;
};

}  // namespace mongosim
