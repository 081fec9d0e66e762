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
// I/O is synchronous inside the coroutine, so a put blocks its thread for the write and
// two fsyncs. Crash leftovers (hidden temp files) are not swept, since that would mean
// walking the whole tree; they match ".*.penne-tmp-*" and can be removed at any time
// when no penne is writing.
//
// Thread safety: put() may run concurrently for different keys on different threads; the
// object holds no mutable state. Cancellation: a cancelled coroutine does not start the
// write (errc::cancelled); a started write runs to completion. Lifetime: the destination
// (and the syscalls object given to it) must outlive the coroutines using it.

#include <penne/destination.hpp>
#include <penne/file/syscalls.hpp>

#include <filesystem>
#include <string>

namespace penne::file {

class destination final : public penne::destination {
public:
    explicit destination(std::filesystem::path root, syscalls& sys = posix_syscalls());

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
};

}  // namespace penne::file
