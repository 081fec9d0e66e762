#pragma once
// wait_until(pred, timeout): polls `pred` every 50 ms until it holds (true) or `timeout`
// passes (false). For tests that watch real processes and peers change state.

#include <chrono>
#include <functional>
#include <thread>

namespace penne::test {

inline bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > deadline)
            return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return true;
}

}  // namespace penne::test
