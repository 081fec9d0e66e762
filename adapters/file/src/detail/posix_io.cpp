#include "detail/posix_io.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <vector>

namespace penne::file::detail {
namespace {

constexpr std::string_view temp_marker = ".penne-tmp-";
// Leaves room for the dot, the marker and the unique suffix within NAME_MAX (255).
constexpr std::size_t max_temp_stem = 200;

std::string hex(std::uint64_t v) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    do {
        out.insert(out.begin(), digits[v & 0xf]);
        v >>= 4;
    } while (v != 0);
    return out;
}

std::string join(const std::string& dir, std::string_view name) {
    std::string out = dir;
    if (out.empty() || out.back() != '/')
        out += '/';
    out += name;
    return out;
}

bool fail_with(io_failure& fail, int err, std::string op, std::string path) {
    fail.err = err;
    fail.op = std::move(op);
    fail.path = std::move(path);
    return false;
}

int fsync_directory(syscalls& sys, const std::filesystem::path& dir) {
    unique_fd fd;
    if (int err = open_directory(sys, dir, fd))
        return err;
    if (sys.fsync(fd.get()) != 0)
        return errno;
    return 0;
}

}  // namespace

std::string errno_text(int err) {
    char buf[256];
    // GNU strerror_r returns the message, possibly not in buf.
    return ::strerror_r(err, buf, sizeof buf);
}

std::string io_failure::describe() const {
    return op + " of " + path + " failed: " + errno_text(err);
}

unique_fd& unique_fd::operator=(unique_fd&& o) noexcept {
    if (this != &o) {
        reset();
        sys_ = o.sys_;
        fd_ = o.fd_;
        o.fd_ = -1;
    }
    return *this;
}

void unique_fd::reset() noexcept {
    if (fd_ >= 0)
        sys_->close(fd_);
    fd_ = -1;
}

int unique_fd::close_checked() noexcept {
    int fd = fd_;
    fd_ = -1;
    // Linux releases the descriptor even when close() fails, so it is never retried.
    return sys_->close(fd) == 0 ? 0 : errno;
}

int open_directory(syscalls& sys, const std::filesystem::path& dir, unique_fd& out) {
    for (;;) {
        int fd = sys.openat(AT_FDCWD, dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
        if (fd >= 0) {
            out = unique_fd(sys, fd);
            return 0;
        }
        if (errno != EINTR)
            return errno;
    }
}

bool make_directories(syscalls& sys, const std::filesystem::path& dir, io_failure& fail) {
    // Find the deepest ancestor that exists, then create downwards from it: mkdir on an
    // existing directory the user may not write to can fail with EACCES or EROFS rather
    // than EEXIST, so existing levels are never touched.
    std::vector<std::filesystem::path> missing;
    std::filesystem::path p = dir.lexically_normal();
    if (!p.empty() && !p.has_filename())
        p = p.parent_path();  // drop a trailing slash
    for (;;) {
        unique_fd probe;
        int err = open_directory(sys, p.empty() ? std::filesystem::path(".") : p, probe);
        if (err == 0)
            break;
        if (err != ENOENT)
            return fail_with(fail, err, "open directory", p.string());
        missing.push_back(p);
        auto parent = p.parent_path();
        if (parent == p || p.empty())
            break;
        p = std::move(parent);
    }
    for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
        if (sys.mkdirat(AT_FDCWD, it->c_str(), 0755) != 0 && errno != EEXIST) {
            int err = errno;
            return fail_with(fail, err, "create directory", it->string());
        }
        auto parent = it->parent_path();
        if (parent.empty())
            parent = ".";
        if (int err = fsync_directory(sys, parent)) {
            return fail_with(fail, err, "fsync directory", parent.string());
        }
    }
    return true;
}

void creating_dirs::begin(const std::string& path) {
    std::lock_guard lock(mutex_);
    paths_.insert(path);
}

void creating_dirs::cancel(const std::string& path) {
    std::lock_guard lock(mutex_);
    if (auto it = paths_.find(path); it != paths_.end())
        paths_.erase(it);
}

void creating_dirs::synced(const std::string& path) {
    std::lock_guard lock(mutex_);
    paths_.erase(path);
}

bool creating_dirs::contains(const std::string& path) {
    std::lock_guard lock(mutex_);
    return paths_.contains(path);
}

bool open_or_create_subdir(syscalls& sys, int dirfd, const std::string& name,
                           const std::string& display, unique_fd& out, io_failure& fail,
                           creating_dirs* track) {
    constexpr int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    bool created = false;
    for (;;) {
        int fd = sys.openat(dirfd, name.c_str(), flags, 0);
        if (fd >= 0) {
            out = unique_fd(sys, fd);
            break;
        }
        int err = errno;
        if (err == EINTR)
            continue;
        if (err != ENOENT || created)
            return fail_with(fail, err, "open directory", display);
        if (track)
            track->begin(display);
        if (sys.mkdirat(dirfd, name.c_str(), 0755) != 0) {
            int e = errno;
            if (track)
                track->cancel(display);
            // Another writer creating the same prefix concurrently is fine.
            if (e != EEXIST)
                return fail_with(fail, e, "create directory", display);
        } else {
            // On failure the directory stays listed: whoever uses it next fsyncs again.
            if (sys.fsync(dirfd) != 0) {
                int e = errno;
                return fail_with(fail, e, "fsync parent directory", display);
            }
            if (track)
                track->synced(display);
        }
        created = true;
    }
    // Made by another thread of this process whose fsync of the parent has not succeeded
    // yet (its mkdir comes after its begin(), so it is listed): do it here rather than
    // rely on that thread.
    if (track && track->contains(display)) {
        if (sys.fsync(dirfd) != 0) {
            int e = errno;
            return fail_with(fail, e, "fsync parent directory", display);
        }
        track->synced(display);
    }
    return true;
}

std::string temp_name(std::string_view final_name) {
    static std::atomic<std::uint64_t> counter{0};
    std::string out = ".";
    out += final_name.substr(0, max_temp_stem);
    out += temp_marker;
    out += hex(static_cast<std::uint64_t>(::getpid()));
    out += '-';
    out += hex(counter.fetch_add(1, std::memory_order_relaxed));
    return out;
}

bool is_temp_name(std::string_view name) noexcept {
    return name.starts_with('.') && name.find(temp_marker) != std::string_view::npos;
}

bool write_atomically(syscalls& sys, int dirfd, const std::string& dir_display,
                      std::string_view name, std::string_view data, io_failure& fail,
                      bool drop_cached) {
    std::string tmp;
    unique_fd fd;
    // A stale temp file of a crashed process with a recycled pid can hold the name.
    for (int attempt = 0; !fd; ++attempt) {
        tmp = temp_name(name);
        int raw = sys.openat(dirfd, tmp.c_str(),
                             O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (raw >= 0) {
            fd = unique_fd(sys, raw);
        } else if (int e = errno; e != EINTR && (e != EEXIST || attempt >= 16)) {
            return fail_with(fail, e, "create temp file", join(dir_display, tmp));
        }
    }
    auto discard = [&](int err, const char* op) {
        fd.reset();
        sys.unlinkat(dirfd, tmp.c_str(), 0);
        return fail_with(fail, err, op, join(dir_display, tmp));
    };
    const char* p = data.data();
    std::size_t left = data.size();
    while (left > 0) {
        ssize_t n = sys.write(fd.get(), p, left);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return discard(errno, "write");
        }
        p += n;
        left -= static_cast<std::size_t>(n);
    }
    if (sys.fsync(fd.get()) != 0)
        return discard(errno, "fsync");
    // Clean now, so the kernel can free them at once. Kept, they would push out pages the
    // machine uses for as long as nothing else needs the memory, and every new file would
    // be written into pages the allocator had to find elsewhere: in a VM whose free memory
    // goes back to the host, first-touched ones, a fault on the host each. Advisory: a
    // failure changes nothing.
    if (drop_cached)
        sys.drop_cached(fd.get());
    if (int err = fd.close_checked())
        return discard(err, "close");
    const std::string final_name(name);
    if (sys.renameat(dirfd, tmp.c_str(), dirfd, final_name.c_str()) != 0) {
        return discard(errno, "rename");
    }
    // Without this the rename itself may be lost in a crash, resurrecting the old file.
    if (sys.fsync(dirfd) != 0) {
        int e = errno;
        return fail_with(fail, e, "fsync directory", dir_display);
    }
    return true;
}

bool read_file(syscalls& sys, int dirfd, const std::string& display, std::string_view name,
               std::string& out, bool& missing, io_failure& fail) {
    missing = false;
    out.clear();
    std::string n(name);
    unique_fd fd;
    for (;;) {
        int raw = sys.openat(dirfd, n.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC, 0);
        if (raw >= 0) {
            fd = unique_fd(sys, raw);
            break;
        }
        if (errno == EINTR)
            continue;
        if (errno == ENOENT) {
            missing = true;
            return true;
        }
        int e = errno;
        return fail_with(fail, e, "open", display);
    }
    std::vector<char> buf(64 * 1024);
    for (;;) {
        ssize_t got = sys.read(fd.get(), buf.data(), buf.size());
        if (got < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            return fail_with(fail, e, "read", display);
        }
        if (got == 0)
            break;
        out.append(buf.data(), static_cast<std::size_t>(got));
    }
    return true;
}

}  // namespace penne::file::detail
