#pragma once
// A child process for integration tests: started with fork/exec, its stdout and stderr
// captured to a log file (and stdout scanned for a readiness line), killed with SIGKILL if
// the test forgets to stop it. Also: free TCP ports and paths into the build tree.

#include <sys/types.h>
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace penne::test {

// A TCP port on 127.0.0.1 that was free a moment ago.
int free_port();

// PENNE_BUILD_DIR (set by ctest) joined with `rel`.
std::string build_path(const std::string& rel);

class process {
public:
    // Starts `argv[0]` with the arguments and extra environment; output goes to `log_path`.
    process(std::vector<std::string> argv, std::string log_path,
            std::map<std::string, std::string> env = {});
    ~process();
    process(const process&) = delete;
    process& operator=(const process&) = delete;

    pid_t pid() const noexcept { return pid_; }
    bool running();
    // Waits until a line of the log contains `needle`; false on timeout or exit.
    bool wait_for_output(const std::string& needle, std::chrono::milliseconds timeout);
    void signal(int sig);
    // Waits for exit; returns the exit code (128+signal when killed), nullopt on timeout.
    std::optional<int> wait(std::chrono::milliseconds timeout);
    std::string log() const;

private:
    pid_t pid_ = -1;
    std::string log_path_;
    std::optional<int> status_;
};

}  // namespace penne::test
