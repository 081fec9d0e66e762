#pragma once
// A real redis-server for integration tests, on a free loopback port, with no persistence
// (`--save '' --appendonly no`) unless asked for, in a fresh temporary directory that is
// removed with the object. It can be killed (SIGKILL) and started again on the same port,
// for reconnect tests: without persistence it comes back empty (a data loss), with
// persistence (append-only file, fsync on every write) with every acknowledged write. It
// can serve TLS only (rediss://) with files from make_tls_files().
//
// Construction never throws for a server that cannot start: ready() is false and failure()
// says why (redis-server missing, the tail of its log). Tests treat that as a failure,
// never a skip.
//
// Thread safety: none; use from the test's thread. Lifetime: the server lives as long as
// the object (or until kill()); the destructor kills it.

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

namespace penne::test {

class process;
class temp_dir;

struct redis_peer_options {
    std::vector<std::string> extra_args;  // appended to the command line
    // When cert and key are set, the port serves TLS only (plain TCP is disabled); with
    // tls_ca_file the server also trusts that CA (clients need no certificate).
    std::string tls_cert_file;
    std::string tls_key_file;
    std::string tls_ca_file;
    // `--appendonly yes --appendfsync always`: a restart (even after kill()) keeps the data.
    bool persistence = false;
};

class redis_peer {
public:
    explicit redis_peer(redis_peer_options opts = {});
    ~redis_peer();
    redis_peer(const redis_peer&) = delete;
    redis_peer& operator=(const redis_peer&) = delete;

    bool ready() const noexcept { return ready_; }
    const std::string& failure() const noexcept { return failure_; }
    int port() const noexcept { return port_; }
    // "redis://127.0.0.1:<port>" or "rediss://127.0.0.1:<port>".
    std::string url() const;

    // The server's process id (to pause it with SIGSTOP: an outage that keeps the data).
    pid_t pid() const noexcept;
    // SIGKILL, and wait for the process to exit (without persistence its data is gone).
    void kill();
    // Starts the server again on the same port (killing it first if it runs); false (and
    // failure()) when it does not come up.
    bool restart();
    std::string log_tail(int lines = 20) const;
    // Runs one command with redis-cli (`args` as a shell fragment, e.g. "GET 'k:{a}'") and
    // returns its raw output without the trailing newline; empty when redis-cli fails.
    std::string cli(const std::string& args) const;

private:
    bool start();

    redis_peer_options opts_;
    std::unique_ptr<temp_dir> dir_;
    std::unique_ptr<process> proc_;
    std::string log_path_;
    int port_ = 0;
    int starts_ = 0;
    bool ready_ = false;
    std::string failure_;
};

// A throw-away CA and a server certificate it signed, for 127.0.0.1 and localhost, made
// with the openssl command line tool in `dir`. Empty paths (and `error`) on failure.
struct tls_files {
    std::string ca_cert;
    std::string server_cert;
    std::string server_key;
    std::string error;
};
tls_files make_tls_files(const std::string& dir, const std::string& name = "test");

}  // namespace penne::test
