#include "rgw_peer.hpp"

#include "process.hpp"
#include "temp_dir.hpp"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <system_error>
#include <vector>

#ifndef PENNE_RGW_SCRIPT
#error "PENNE_RGW_SCRIPT must name tests/support/rgw/rgw.sh"
#endif

namespace penne::test {

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// Start-up takes about 2 s here; the generous bound covers a loaded CI machine, and rgw.sh
// has its own per-stage timeouts that report which daemon hung.
constexpr auto start_timeout = 300s;
constexpr auto stop_timeout = 60s;

std::string read_file(const fs::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Parses the KEY=value lines rgw.sh writes to <dir>/env.
std::map<std::string, std::string> parse_env(const std::string& text) {
    std::map<std::string, std::string> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        const auto eq = line.find('=');
        if (eq == std::string::npos || eq == 0)
            continue;
        out[line.substr(0, eq)] = line.substr(eq + 1);
    }
    return out;
}

std::string tail(const std::string& text, int lines) {
    std::deque<std::string> last;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        last.push_back(std::move(line));
        if (static_cast<int>(last.size()) > lines)
            last.pop_front();
    }
    std::string out;
    for (auto& l : last)
        out += l + "\n";
    return out;
}

std::unique_ptr<rgw_peer>& shared_peer() {
    static std::unique_ptr<rgw_peer> peer;
    return peer;
}

std::string& shared_failure() {
    static std::string failure;
    return failure;
}

}  // namespace

rgw_peer::rgw_peer(std::string access_key, std::string secret_key)
    : script_(PENNE_RGW_SCRIPT),
      access_key_(std::move(access_key)),
      secret_key_(std::move(secret_key)) {
    try {
        dir_ = std::make_unique<temp_dir>("penne-rgw");
        start();
    } catch (const std::exception& e) {
        failure_ = std::string("could not start Ceph RGW: ") + e.what();
        ready_ = false;
    }
}

rgw_peer::~rgw_peer() {
    stop();
}

std::string rgw_peer::directory() const {
    return dir_ ? dir_->path().string() : std::string();
}

std::string rgw_peer::log_tail(int lines) const {
    if (!dir_)
        return {};
    std::vector<fs::path> logs;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir_->path() / "log", ec)) {
        if (entry.is_regular_file())
            logs.push_back(entry.path());
    }
    // rgw.sh's own output of its later commands (stop-gateway, start-gateway): why it failed.
    for (const auto& entry : fs::directory_iterator(dir_->path(), ec)) {
        const auto name = entry.path().filename().string();
        if (entry.is_regular_file() && name.starts_with("rgw.sh-") && name.ends_with(".out"))
            logs.push_back(entry.path());
    }
    std::sort(logs.begin(), logs.end());
    std::string out;
    for (const auto& p : logs) {
        out += "----- " + p.string() + "\n" + tail(read_file(p), lines);
    }
    return out;
}

void rgw_peer::start() {
    if (!fs::exists(script_)) {
        failure_ = "rgw.sh not found at " + script_;
        return;
    }
    const auto dir = dir_->path();
    const auto log = (dir / "rgw.sh.out").string();
    started_ = true;
    process sh({"/bin/bash", script_, "start", dir.string(), access_key_, secret_key_}, log,
               {{"RGW_OWNER_PID", std::to_string(::getpid())}});
    const auto status = sh.wait(start_timeout);
    if (!status) {
        sh.signal(SIGKILL);
        sh.wait(5s);
        failure_ = "rgw.sh start did not finish within " + std::to_string(start_timeout.count()) +
                   " s; its output:\n" + sh.log() + log_tail();
        return;
    }
    if (*status != 0) {
        // rgw.sh prints the tail of every daemon log on failure.
        failure_ =
            "rgw.sh start failed with exit code " + std::to_string(*status) + ":\n" + sh.log();
        return;
    }
    auto env = parse_env(read_file(dir / "env"));
    endpoint_ = env["RGW_ENDPOINT"];
    region_ = env["RGW_REGION"];
    const std::string prefix = "http://";
    const auto colon = endpoint_.rfind(':');
    if (endpoint_.rfind(prefix, 0) != 0 || colon == std::string::npos || colon < prefix.size() ||
        region_.empty() || env["RGW_ACCESS_KEY"] != access_key_) {
        failure_ = "rgw.sh reported ready but " + (dir / "env").string() +
                   " is incomplete; rgw.sh said:\n" + sh.log();
        return;
    }
    host_ = endpoint_.substr(prefix.size(), colon - prefix.size());
    port_ = std::stoi(endpoint_.substr(colon + 1));
    ready_ = true;
}

namespace {

bool run_rgw_script(const std::string& script, const fs::path& dir, const char* command) {
    process sh({"/bin/bash", script, command, dir.string()},
               (dir / ("rgw.sh-" + std::string(command) + ".out")).string());
    const auto code = sh.wait(std::chrono::seconds(90));
    return code && *code == 0;
}

}  // namespace

bool rgw_peer::stop_gateway() const {
    return started_ && dir_ && run_rgw_script(script_, dir_->path(), "stop-gateway");
}

bool rgw_peer::start_gateway() const {
    return started_ && dir_ && run_rgw_script(script_, dir_->path(), "start-gateway");
}

void rgw_peer::stop() noexcept {
    if (!started_ || !dir_)
        return;
    started_ = false;
    ready_ = false;
    try {
        const auto dir = dir_->path();
        process sh({"/bin/bash", script_, "stop", dir.string()}, (dir / "rgw.sh.out").string());
        if (!sh.wait(stop_timeout))
            sh.signal(SIGKILL);
    } catch (...) {
        // The watchdog stops the daemons once this process exits; nothing better to do here.
    }
}

void rgw_peer_environment::SetUp() {
    shared_failure().clear();
    shared_peer() = std::make_unique<rgw_peer>();
    if (!shared_peer()->ready()) {
        shared_failure() = shared_peer()->failure();
        shared_peer().reset();
        ADD_FAILURE() << shared_failure();
    }
}

void rgw_peer_environment::TearDown() {
    shared_peer().reset();
}

const rgw_peer* rgw_peer_environment::peer() noexcept {
    return shared_peer().get();
}

const std::string& rgw_peer_environment::failure() noexcept {
    static const std::string not_set_up =
        "rgw_peer_environment is not registered (AddGlobalTestEnvironment) or not set up";
    if (!shared_peer() && shared_failure().empty())
        return not_set_up;
    return shared_failure();
}

}  // namespace penne::test
