#pragma once
// Test helpers for penne's operations endpoints, used by the end-to-end tests that run the
// real daemon: one blocking HTTP GET over loopback, `promtool check metrics` on an
// exposition, and sample lookups in an exposition (parsed by ../http/exposition_check.hpp).
//
// Thread safety: the functions share no state. Every network wait is bounded (5 s).

#include "../http/exposition_check.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "temp_dir.hpp"

namespace penne::test {

struct http_response {
    int status = 0;  // 0: no response
    std::string body;
};

// One GET on 127.0.0.1:port over a fresh connection (Connection: close).
inline http_response http_get(int port, const std::string& path) {
    http_response r;
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return r;
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(fd);
        return r;
    }
    const std::string req =
        "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
        ::close(fd);
        return r;
    }
    std::string raw;
    char buf[65536];
    for (;;) {
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0)
            break;
        raw.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    const auto head_end = raw.find("\r\n\r\n");
    if (raw.rfind("HTTP/1.1 ", 0) != 0 || head_end == std::string::npos)
        return r;
    r.status = std::atoi(raw.c_str() + 9);
    r.body = raw.substr(head_end + 4);
    return r;
}

struct promtool_result {
    int exit_code = -1;
    std::string output;
};

// `promtool check metrics` (path from the PENNE_PROMTOOL definition) on an exposition.
inline promtool_result promtool_check(const std::string& exposition, const std::string& promtool) {
    temp_dir dir("penne-promtool");
    const std::string in = dir / "metrics.prom";
    const std::string out = dir / "promtool.out";
    std::ofstream(in, std::ios::binary) << exposition;
    const std::string cmd = promtool + " check metrics < '" + in + "' > '" + out + "' 2>&1";
    const int status = std::system(cmd.c_str());
    promtool_result r;
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::ifstream f(out);
    r.output.assign(std::istreambuf_iterator<char>(f), {});
    return r;
}

// The sum of the samples named `name` whose labels include every `label="value"` pair
// given in `match` (for example {{"operation", "PutObject"}}); 0 when there is none.
inline double sample_sum(const std::string& exposition, const std::string& name,
                         const std::vector<std::pair<std::string, std::string>>& match = {}) {
    double total = 0;
    std::istringstream in(exposition);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#')
            continue;
        exposition_sample s;
        std::string err;
        if (!parse_sample_line(line, s, err) || s.name != name)
            continue;
        bool all = true;
        for (const auto& m : match) {
            bool found = false;
            for (const auto& l : s.labels)
                found = found || l == m;
            all = all && found;
        }
        if (all)
            total += s.value;
    }
    return total;
}

}  // namespace penne::test
