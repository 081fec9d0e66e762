#pragma once
// The scriptable HTTP/1.1 peer of the HTTP client's tests (tests/integration/http/
// http_peer.py, run by python3): keep-alive, 100-continue, slow and oversized answers,
// closes, TLS with a certificate made by openssl for the test, and fake AWS credential
// endpoints (EC2 IMDSv2, ECS, STS). See the script for its routes.

#include "process.hpp"
#include "temp_dir.hpp"

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace penne::test {

inline std::string http_peer_script() {
    const char* src = std::getenv("PENNE_SOURCE_DIR");
    return std::string(src ? src : PENNE_TEST_SOURCE_DIR) + "/tests/integration/http/http_peer.py";
}

class http_peer {
public:
    explicit http_peer(const temp_dir& dir, bool tls = false, int port = 0)
        : port_(port ? port : free_port()) {
        std::vector<std::string> argv{"/usr/bin/python3", http_peer_script(),
                                      std::to_string(port_)};
        if (tls) {
            cert_ = dir / "cert.pem";
            key_ = dir / "key.pem";
            const std::string cmd =
                "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost "
                "-addext subjectAltName=DNS:localhost -keyout '" +
                key_ + "' -out '" + cert_ + "' >/dev/null 2>&1";
            if (std::system(cmd.c_str()) != 0)
                throw std::runtime_error("openssl could not make a test certificate");
            argv.insert(argv.end(), {"--tls", cert_, key_});
        }
        proc_ = std::make_unique<process>(argv, dir / ("peer-" + std::to_string(port_) + "-" +
                                                       std::to_string(++starts_) + ".log"));
        if (!proc_->wait_for_output("ready", std::chrono::seconds(10)))
            throw std::runtime_error("http_peer.py did not start: " + proc_->log());
    }
    std::uint16_t port() const { return static_cast<std::uint16_t>(port_); }
    const std::string& cert() const { return cert_; }
    void stop() { proc_.reset(); }

private:
    int port_;
    std::string cert_, key_;
    static inline int starts_ = 0;
    std::unique_ptr<process> proc_;
};

}  // namespace penne::test
