#include "config_file.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>

extern char** environ;

namespace penne::app {
namespace {

bool read_file(const std::string& path, std::string& text, std::string& error) {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) {
        error = path + ": cannot open the configuration file: " + std::strerror(errno);
        return false;
    }
    char buf[65536];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0)
        text.append(buf, n);
    std::fclose(f);
    return true;
}

}  // namespace

std::map<std::string, std::string> environment() {
    std::map<std::string, std::string> env;
    for (char** e = environ; e && *e; ++e) {
        std::string_view kv(*e);
        auto eq = kv.find('=');
        if (eq != std::string_view::npos)
            env.emplace(kv.substr(0, eq), kv.substr(eq + 1));
    }
    return env;
}

bool load_config(const std::string& path, const std::map<std::string, std::string>& env,
                 config& out, std::string& error) {
    std::string text;
    if (!read_file(path, text, error))
        return false;
    if (!parse_config(text, path, env, out, error))
        return false;
    // mongodb+srv:// without dns_server asks the system's DNS server (resolv.conf's first
    // nameserver; PENNE_RESOLV_CONF names another file). A missing file leaves it unknown,
    // which the pipeline reports.
    if (out.mongodb.uri.rfind("mongodb+srv://", 0) == 0 && out.mongodb.dns_server.empty()) {
        auto it = env.find("PENNE_RESOLV_CONF");
        const std::string conf =
            it != env.end() && !it->second.empty() ? it->second : "/etc/resolv.conf";
        std::string ignored;
        if (!read_file(conf, out.mongodb.resolv_conf, ignored))
            out.mongodb.resolv_conf.clear();
    }
    return true;
}

// The whole file is read; only its [s3] table (and destination.type) is looked at.
bool load_s3_settings(const std::string& path, s3_settings& out, std::string& error) {
    std::string text;
    if (!read_file(path, text, error))
        return false;
    return parse_s3_settings(text, path, out, error);
}

}  // namespace penne::app
