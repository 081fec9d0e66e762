#include "redis_peer.hpp"

#include "process.hpp"
#include "temp_dir.hpp"

#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace penne::test {
namespace {

constexpr const char* redis_server_path = "/usr/bin/redis-server";

std::string tail(const std::string& text, int lines) {
    std::size_t pos = text.size();
    for (int i = 0; i <= lines && pos != std::string::npos && pos > 0; ++i)
        pos = text.rfind('\n', pos - 1);
    return pos == std::string::npos ? text : text.substr(pos + 1);
}

}  // namespace

redis_peer::redis_peer(redis_peer_options opts)
    : opts_(std::move(opts)), dir_(std::make_unique<temp_dir>("penne-redis")) {
    if (!std::filesystem::exists(redis_server_path)) {
        failure_ = std::string(redis_server_path) +
                   " is missing: install Debian's redis-server (scripts/install-deps.sh)";
        return;
    }
    port_ = free_port();
    ready_ = start();
}

redis_peer::~redis_peer() {
    kill();
}

std::string redis_peer::url() const {
    const bool tls = !opts_.tls_cert_file.empty();
    return std::string(tls ? "rediss://" : "redis://") + "127.0.0.1:" + std::to_string(port_);
}

bool redis_peer::start() {
    ++starts_;
    log_path_ = (*dir_) / ("redis-" + std::to_string(starts_) + ".log");
    std::vector<std::string> argv = {redis_server_path,
                                     "--bind",
                                     "127.0.0.1",
                                     "--save",
                                     "",
                                     "--appendonly",
                                     opts_.persistence ? "yes" : "no",
                                     "--appendfsync",
                                     "always",
                                     "--dir",
                                     dir_->path().string(),
                                     "--logfile",
                                     ""};
    const std::string port = std::to_string(port_);
    if (opts_.tls_cert_file.empty()) {
        argv.insert(argv.end(), {"--port", port});
    } else {
        argv.insert(argv.end(),
                    {"--port", "0", "--tls-port", port, "--tls-cert-file", opts_.tls_cert_file,
                     "--tls-key-file", opts_.tls_key_file, "--tls-auth-clients", "no"});
        if (!opts_.tls_ca_file.empty())
            argv.insert(argv.end(), {"--tls-ca-cert-file", opts_.tls_ca_file});
    }
    argv.insert(argv.end(), opts_.extra_args.begin(), opts_.extra_args.end());
    proc_ = std::make_unique<process>(argv, log_path_);
    if (!proc_->wait_for_output("Ready to accept connections", std::chrono::seconds(15))) {
        failure_ = "redis-server did not become ready on port " + port + ":\n" + log_tail();
        return false;
    }
    failure_.clear();
    return true;
}

pid_t redis_peer::pid() const noexcept {
    return proc_ ? proc_->pid() : -1;
}

void redis_peer::kill() {
    if (proc_) {
        proc_->signal(SIGKILL);
        proc_->wait(std::chrono::seconds(10));
    }
    ready_ = false;
}

bool redis_peer::restart() {
    kill();
    ready_ = start();
    return ready_;
}

std::string redis_peer::log_tail(int lines) const {
    std::ifstream in(log_path_);
    std::stringstream ss;
    ss << in.rdbuf();
    return tail(ss.str(), lines);
}

tls_files make_tls_files(const std::string& dir, const std::string& name) {
    tls_files f;
    const std::string base = dir + "/" + name;
    const std::string ca_key = base + "-ca.key", ca_cert = base + "-ca.crt";
    const std::string key = base + "-server.key", csr = base + "-server.csr",
                      cert = base + "-server.crt", ext = base + "-server.ext";
    {
        std::ofstream out(ext);
        out << "subjectAltName=IP:127.0.0.1,DNS:localhost\n";
    }
    const std::string quiet = " >>" + base + "-openssl.log 2>&1";
    const std::string cmds[] = {
        "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=penne-test-ca-" + name +
            " -keyout " + ca_key + " -out " + ca_cert + quiet,
        "openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout " + key + " -out " + csr +
            quiet,
        "openssl x509 -req -in " + csr + " -CA " + ca_cert + " -CAkey " + ca_key +
            " -CAcreateserial -days 2 -extfile " + ext + " -out " + cert + quiet,
    };
    for (const auto& cmd : cmds) {
        if (std::system(cmd.c_str()) != 0) {
            f.error = "openssl failed: " + cmd;
            return f;
        }
    }
    f.ca_cert = ca_cert;
    f.server_cert = cert;
    f.server_key = key;
    return f;
}

std::string redis_peer::cli(const std::string& args) const {
    const std::string cmd =
        "redis-cli -p " + std::to_string(port_) + " --raw " + args + " 2>/dev/null";
    std::string out;
    if (FILE* f = ::popen(cmd.c_str(), "r")) {
        char buf[512];
        while (std::fgets(buf, sizeof buf, f))
            out += buf;
        ::pclose(f);
    }
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r'))
        out.pop_back();
    return out;
}

}  // namespace penne::test
