#pragma once
// Crash-safe file primitives shared by the file state store and the file destination.
// Everything here is synchronous (the callers run it on their I/O threads) and reports failures as
// an io_failure (errno, the step and the path) so the callers can classify them and write
// diagnostics.
//
// The durability recipe for replacing a file: write a uniquely named temp file in the
// same directory, fsync it, rename it over the final name, fsync the directory. A crash
// at any point leaves either the old file or the new one under the final name, plus at
// worst a stale temp file, which is_temp_name() recognises.

#include <penne/file/syscalls.hpp>

#include <filesystem>
#include <mutex>
#include <set>
#include <string>
#include <string_view>

namespace penne::file::detail {

struct io_failure {
    int err = 0;
    std::string op;    // the step that failed: "fsync", "rename", "create directory", ...
    std::string path;  // the path it failed on, for diagnostics
    // "fsync of /var/lib/penne/x.json failed: No space left on device"
    std::string describe() const;
};

std::string errno_text(int err);

// An owned file descriptor, closed through the syscalls seam.
class unique_fd {
public:
    unique_fd() = default;
    unique_fd(syscalls& sys, int fd) noexcept : sys_(&sys), fd_(fd) {}
    unique_fd(unique_fd&& o) noexcept : sys_(o.sys_), fd_(o.fd_) { o.fd_ = -1; }
    unique_fd& operator=(unique_fd&& o) noexcept;
    ~unique_fd() { reset(); }

    int get() const noexcept { return fd_; }
    explicit operator bool() const noexcept { return fd_ >= 0; }
    void reset() noexcept;
    // Gives up ownership without closing.
    int release() noexcept {
        int fd = fd_;
        fd_ = -1;
        return fd;
    }
    // Closes and reports the result: close() can be where a deferred write error appears.
    int close_checked() noexcept;

private:
    syscalls* sys_ = nullptr;
    int fd_ = -1;
};

// Opens a directory the user configured (symlinks followed). Returns 0 or an errno.
int open_directory(syscalls& sys, const std::filesystem::path& dir, unique_fd& out);

// mkdir -p for a configured directory. fsyncs the parent of every directory it creates so
// that the new entry survives a crash.
bool make_directories(syscalls& sys, const std::filesystem::path& dir, io_failure& fail);

// The directories this process created whose entry in the parent is not yet known to be
// durable: listed from just before the mkdir until an fsync of the parent succeeded. A
// thread that opens a listed directory (made by another thread, or by one whose fsync
// failed) fsyncs the parent itself before using it, so an object it reports durable never
// sits in a directory whose entry a crash could still lose.
// Thread safety: every member may be called from any thread.
class creating_dirs {
public:
    void begin(const std::string& path);   // before mkdir
    void cancel(const std::string& path);  // the mkdir failed: undoes one begin()
    void synced(const std::string& path);  // an fsync of the parent succeeded
    bool contains(const std::string& path);

private:
    std::mutex mutex_;
    std::multiset<std::string> paths_;
};

// Opens the subdirectory `name` of `dirfd`, creating it when missing; never follows a
// symlink, so a link planted inside the root cannot redirect writes outside it.
// `display` is the subdirectory's path for diagnostics and the key in `track`, which the
// writers that share directories pass (null: no other thread of this process creates
// directories there).
bool open_or_create_subdir(syscalls& sys, int dirfd, const std::string& name,
                           const std::string& display, unique_fd& out, io_failure& fail,
                           creating_dirs* track = nullptr);

// Replaces `name` in `dirfd` with `data` using the durability recipe above. `dir_display`
// is the directory's path for diagnostics. On failure no temp file is left behind
// (best effort: the cleanup itself can fail on a broken disk). With `drop_cached`, the file's
// pages leave the page cache once they are on disk (for files nobody here reads again).
bool write_atomically(syscalls& sys, int dirfd, const std::string& dir_display,
                      std::string_view name, std::string_view data, io_failure& fail,
                      bool drop_cached = false);

// Reads the whole file `name` in `dirfd`. A missing file sets `missing` and succeeds.
bool read_file(syscalls& sys, int dirfd, const std::string& display, std::string_view name,
               std::string& out, bool& missing, io_failure& fail);

// Temp files are hidden (leading dot, so globbing readers such as Spark skip them) and
// carry a marker that no final name produced by this adapter contains.
std::string temp_name(std::string_view final_name);
bool is_temp_name(std::string_view name) noexcept;

}  // namespace penne::file::detail
