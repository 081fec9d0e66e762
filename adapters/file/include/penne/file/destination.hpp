#pragma once
// A destination that writes each sealed object to `<root>/<key>` on local disk: for
// development, tests, and pipelines whose next stage reads a directory (a mounted
// volume, a sync agent). Objects appear atomically: the bytes go to a hidden temp file
// (".<name>.penne-tmp-…") in the target directory, which is fsynced and renamed over the
// final name before the directory is fsynced. A reader never sees a partial object, a
// crash never leaves one under the final name, and put() of an existing key replaces it,
// which is what a replay needs. Only the object is written, no metadata sidecar.
//
// Keys are paths relative to the root, '/'-separated. Keys that are empty or absolute,
// or that contain empty, "." or ".." segments, NUL bytes, or a segment shaped like this
// adapter's temp files, are rejected with errc::permanent_rejection; directories are
// opened without following symlinks, so no key can write outside the root.
//
// Errors: ENOSPC, EIO and other transient conditions are errc::io_error (retryable);
// EACCES, EPERM, EROFS and path conflicts (a file where a directory is needed, a name
// too long) are errc::permanent_rejection. Diagnostics name the path and the errno text.
//
// Blocking I/O (mkdir, write, two or more fsyncs, rename) runs where
// destination_options::blocking says: given an executor (a thread pool the caller owns),
// put() and check() hand those calls to it and resume the caller on its own executor once
// they are done, so one io_context thread keeps serving other scopes while a disk spends
// milliseconds per fsync, and puts of different keys run in parallel (as many as the pool
// has threads). Without one they run inline, on the calling thread. Two puts of the same key at
// once are allowed and end with one of the two objects, whole. A directory created by one put is
// fsynced into its parent before any other put of this process that uses it completes,
// so a completed put is durable even when another put created its directory. Crash
// leftovers (hidden temp files) are not swept, since that would mean walking the whole
// tree; they match ".*.penne-tmp-*" and can be removed at any time when no penne is
// writing.
//
// Thread safety: put() and check() may be called concurrently, from any threads and
// strands. Cancellation: a cancelled coroutine does not start the write (errc::cancelled);
// a started write runs to completion and the coroutine waits for it. Lifetime: the
// destination (and the syscalls object given to it) must outlive the coroutines using it,
// and the blocking executor's context must outlive their calls.

#include <penne/destination.hpp>
#include <penne/file/syscalls.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <filesystem>
#include <memory>
#include <mutex>
#include <string>

namespace penne::file {
namespace detail {
class creating_dirs;
}

struct destination_options {
    // Where the blocking calls run: e.g. a boost::asio::thread_pool's executor. A put
    // spends most of its time waiting for 2-7 fsyncs; a few threads let the engine's
    // concurrent uploads overlap those waits (file systems commit concurrent fsyncs
    // together). Empty: inline, on the calling thread (the library starts no threads).
    boost::asio::any_io_executor blocking;
};

class destination final : public penne::destination {
public:
    explicit destination(std::filesystem::path root, syscalls& sys = posix_syscalls());
    destination(std::filesystem::path root, destination_options opts,
                syscalls& sys = posix_syscalls());
    ~destination() override;
    destination(const destination&) = delete;
    destination& operator=(const destination&) = delete;

    boost::asio::awaitable<error_code> put(const sealed_object& obj, diagnostics& diag) override;
    // Creates the root when missing and proves it writable by creating and removing a
    // probe file.
    boost::asio::awaitable<error_code> check(diagnostics& diag) override;
    std::string describe() const override;

    const std::filesystem::path& root() const noexcept { return root_; }

private:
    error_code write(const sealed_object& obj, diagnostics& diag);
    error_code verify_root(diagnostics& diag);

    std::filesystem::path root_;
    syscalls& sys_;
    // Used by the blocking executor's threads: root creation is serialised (so no put writes into a
    // root whose entry is not yet fsynced), and subdirectories being created are tracked.
    std::mutex root_mutex_;
    std::unique_ptr<detail::creating_dirs> dirs_;
    boost::asio::any_io_executor blocking_;
};

}  // namespace penne::file
