#pragma once
// Helpers for the file adapter's tests: a scratch directory, a synchronous runner for the
// adapter's coroutines, and a syscalls double that records calls and injects errnos.

#include <penne/error.hpp>
#include <penne/event.hpp>
#include <penne/file/syscalls.hpp>

#include "run_operation.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace penne::file::test {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using penne::test::start_operation;

// A fresh directory under $TMPDIR, removed with everything in it on destruction.
class scratch_dir {
public:
    scratch_dir() {
        std::string tmpl = (fs::temp_directory_path() / "penne-file-test-XXXXXX").string();
        if (!::mkdtemp(tmpl.data()))
            throw std::runtime_error("mkdtemp failed");
        path_ = tmpl;
    }
    ~scratch_dir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    scratch_dir(const scratch_dir&) = delete;
    scratch_dir& operator=(const scratch_dir&) = delete;

    const fs::path& path() const noexcept { return path_; }
    fs::path operator/(const fs::path& p) const { return path_ / p; }

private:
    fs::path path_;
};

inline error_code run(asio::awaitable<error_code> op, bool cancelled = false) {
    return penne::test::run_operation(std::move(op), cancelled);
}

// A resume token: the BSON document {i: <int64 n>}.
inline resume_token token(std::int64_t n) {
    std::vector<std::uint8_t> b = {16, 0, 0, 0, 0x12, 'i', 0};
    for (int i = 0; i < 8; ++i)
        b.push_back(static_cast<std::uint8_t>(n >> (8 * i)));
    b.push_back(0);
    return resume_token(byte_view(b.data(), b.size()));
}

inline std::string read_all(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

inline void write_all(const fs::path& p, const std::string& data) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << data;
}

// Every file name under `root`, recursively, relative to it.
inline std::set<std::string> tree(const fs::path& root) {
    std::set<std::string> out;
    for (auto& e : fs::recursive_directory_iterator(root)) {
        out.insert(fs::relative(e.path(), root).string() + (e.is_directory() ? "/" : ""));
    }
    return out;
}

// The text strerror() gives for `err`, as it appears in diagnostics.
inline std::string errno_name(int err) {
    return std::strerror(err);
}

inline bool has_temp_files(const fs::path& root) {
    for (auto& e : fs::recursive_directory_iterator(root)) {
        auto name = e.path().filename().string();
        if (name.find(".penne-tmp-") != std::string::npos)
            return true;
    }
    return false;
}

// A point where calls of other threads can be made to wait, to show what runs meanwhile.
class gate {
public:
    void hold() {
        std::lock_guard lock(mutex_);
        held_ = true;
    }
    void release() {
        {
            std::lock_guard lock(mutex_);
            held_ = false;
        }
        opened_.notify_all();
    }
    // How many calls wait at the gate now.
    std::size_t waiting() {
        std::lock_guard lock(mutex_);
        return waiting_;
    }
    // Waits while the gate is held, at most 5 s: a test whose release never comes (its
    // io_context thread being the one that waits here) fails instead of hanging.
    void pass() {
        std::unique_lock lock(mutex_);
        if (!held_)
            return;
        ++waiting_;
        opened_.wait_for(lock, std::chrono::seconds(5), [&] { return !held_; });
        --waiting_;
    }

private:
    std::mutex mutex_;
    std::condition_variable opened_;
    bool held_ = false;
    std::size_t waiting_ = 0;
};

// From a coroutine: polls `pred` every millisecond until it holds (true) or about 5 s
// passed (false), letting the coroutine's io_context run other handlers meanwhile.
inline asio::awaitable<bool> eventually(std::function<bool()> pred) {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    for (int i = 0; i < 5000; ++i) {
        if (pred())
            co_return true;
        timer.expires_after(std::chrono::milliseconds(1));
        co_await timer.async_wait(asio::use_awaitable);
    }
    co_return pred();
}

// Records the calls that change the disk, in order, and fails chosen ones with an errno.
class recording_syscalls final : public syscalls {
public:
    // File syncs (fsync of a file, fdatasync) wait at sync_gate before syncing; mkdirat
    // waits at mkdir_gate after the directory was made, before returning.
    gate sync_gate;
    gate mkdir_gate;

    // errno to inject per operation, 0 for none.
    int fail_create = 0;    // openat with O_CREAT (temp files, probe, lock)
    int fail_open_dir = 0;  // openat with O_DIRECTORY
    int fail_write = 0;
    int fail_file_fsync = 0;  // fsync and fdatasync of files
    int fail_dir_fsync = 0;
    int fail_rename = 0;
    int fail_mkdir = 0;
    int fail_truncate = 0;

    std::vector<std::string> calls() {
        std::lock_guard lock(mutex_);
        return log_;
    }
    void clear() {
        std::lock_guard lock(mutex_);
        log_.clear();
    }
    std::size_t count(const std::string& call) {
        std::lock_guard lock(mutex_);
        return static_cast<std::size_t>(std::count(log_.begin(), log_.end(), call));
    }

    int openat(int dirfd, const char* path, int flags, mode_t mode) override {
        bool dir = flags & O_DIRECTORY;
        bool create = flags & O_CREAT;
        if (dir && fail_open_dir)
            return fail(fail_open_dir);
        if (create && fail_create)
            return fail(fail_create);
        int fd = syscalls::openat(dirfd, path, flags, mode);
        if (fd >= 0) {
            std::lock_guard lock(mutex_);
            if (dir)
                dir_fds_.insert(fd);
            if (create)
                log_.push_back("create " + fs::path(path).filename().string());
        }
        return fd;
    }
    ssize_t write(int fd, const void* buf, std::size_t size) override {
        if (fail_write)
            return fail(fail_write);
        add("write");
        return syscalls::write(fd, buf, size);
    }
    int fsync(int fd) override {
        bool dir;
        {
            std::lock_guard lock(mutex_);
            dir = dir_fds_.contains(fd);
        }
        if (dir && fail_dir_fsync)
            return fail(fail_dir_fsync);
        if (!dir && fail_file_fsync)
            return fail(fail_file_fsync);
        if (!dir)
            sync_gate.pass();
        add(dir ? "fsync dir" : "fsync file");
        return syscalls::fsync(fd);
    }
    int fdatasync(int fd) override {
        if (fail_file_fsync)
            return fail(fail_file_fsync);
        sync_gate.pass();
        add("fdatasync");
        return syscalls::fdatasync(fd);
    }
    int ftruncate(int fd, off_t length) override {
        if (fail_truncate)
            return fail(fail_truncate);
        add("ftruncate " + std::to_string(length));
        return syscalls::ftruncate(fd, length);
    }
    int close(int fd) override {
        {
            std::lock_guard lock(mutex_);
            dir_fds_.erase(fd);
        }
        return syscalls::close(fd);
    }
    int renameat(int od, const char* op, int nd, const char* np) override {
        if (fail_rename)
            return fail(fail_rename);
        add("rename -> " + std::string(np));
        return syscalls::renameat(od, op, nd, np);
    }
    int mkdirat(int dirfd, const char* path, mode_t mode) override {
        if (fail_mkdir)
            return fail(fail_mkdir);
        int rc = syscalls::mkdirat(dirfd, path, mode);
        if (rc == 0) {
            add("mkdir " + fs::path(path).filename().string());
            mkdir_gate.pass();
        }
        return rc;
    }
    int unlinkat(int dirfd, const char* path, int flags) override {
        add("unlink");
        return syscalls::unlinkat(dirfd, path, flags);
    }
    int drop_cached(int fd) override {
        add("drop cached");
        return syscalls::drop_cached(fd);
    }

private:
    static int fail(int err) {
        errno = err;
        return -1;
    }
    void add(std::string call) {
        std::lock_guard lock(mutex_);
        log_.push_back(std::move(call));
    }

    std::mutex mutex_;
    std::vector<std::string> log_;
    std::set<int> dir_fds_;
};

}  // namespace penne::file::test
