#include <penne/file/destination.hpp>

#include "detail/offload.hpp"
#include "detail/posix_io.hpp"

#include <boost/asio/cancellation_state.hpp>
#include <boost/asio/this_coro.hpp>

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <string_view>
#include <vector>

namespace penne::file {
namespace {

namespace asio = boost::asio;

// Read the state with `auto cs = co_await asio::this_coro::cancellation_state;` in the
// operation itself: g++ 12 miscompiles `if (co_await ...)` followed by a `co_return` in
// the branch (the coroutine frame is resumed at the wrong address).
bool cancelled(const asio::cancellation_state& cs) noexcept {
    return cs.cancelled() != asio::cancellation_type::none;
}

// Conditions that retrying cannot fix without an operator: permissions, a read-only
// file system, or a key that cannot exist on this file system.
bool permanent_errno(int err) noexcept {
    switch (err) {
        case EACCES:
        case EPERM:
        case EROFS:
        case ENOTDIR:
        case EISDIR:
        case ELOOP:
        case ENAMETOOLONG:
        case EINVAL:
        case EXDEV:
            return true;
        default:
            return false;  // ENOSPC, EIO, EDQUOT, EMFILE, ENOMEM, ...: may pass
    }
}

error_code classify(const detail::io_failure& fail, std::string_view what, diagnostics& diag) {
    diag.message = std::string(what) + ": " + fail.describe();
    if (permanent_errno(fail.err)) {
        if (fail.err == EACCES || fail.err == EPERM || fail.err == EROFS) {
            diag.message +=
                ". Check that the file system is writable and that the penne "
                "user may write there.";
        }
        return errc::permanent_rejection;
    }
    if (fail.err == ENOSPC || fail.err == EDQUOT) {
        diag.message += ". Free disk space; the engine retries.";
    }
    return errc::io_error;
}

// Splits a key into its segments, or explains why it is not acceptable.
bool split_key(std::string_view key, std::vector<std::string_view>& segments, std::string& why) {
    if (key.empty()) {
        why = "the key is empty";
        return false;
    }
    if (key.find('\0') != std::string_view::npos) {
        why = "the key contains a NUL byte";
        return false;
    }
    if (key.front() == '/') {
        why = "the key is an absolute path";
        return false;
    }
    std::size_t start = 0;
    for (;;) {
        std::size_t slash = key.find('/', start);
        std::string_view seg = key.substr(start, slash == key.npos ? key.npos : slash - start);
        if (seg.empty()) {
            why = "the key has an empty path segment";
            return false;
        }
        if (seg == "." || seg == "..") {
            why = "the key has a '" + std::string(seg) + "' segment";
            return false;
        }
        if (detail::is_temp_name(seg)) {
            why = "the key has a segment named like penne's temp files (.*.penne-tmp-*)";
            return false;
        }
        segments.push_back(seg);
        if (slash == key.npos)
            return true;
        start = slash + 1;
    }
}

}  // namespace

destination::destination(std::filesystem::path root, syscalls& sys)
    : destination(std::move(root), destination_options{}, sys) {}

destination::destination(std::filesystem::path root, destination_options opts, syscalls& sys)
    : root_(std::move(root)),
      sys_(sys),
      dirs_(std::make_unique<detail::creating_dirs>()),
      blocking_(std::move(opts.blocking)) {}

destination::~destination() = default;

std::string destination::describe() const {
    return "file:" + root_.string();
}

asio::awaitable<error_code> destination::put(const sealed_object& obj, diagnostics& diag) {
    auto cs = co_await asio::this_coro::cancellation_state;
    if (cancelled(cs)) {
        diag.message = "write of '" + std::string(obj.key) + "' cancelled before it started";
        co_return errc::cancelled;
    }
    // Not cancelled now, and nothing runs on this strand before the write is submitted:
    // from here on it runs to completion and the coroutine waits for it.
    error_code ec;
    auto work = [this, &obj, &ec, &diag] { ec = write(obj, diag); };
    co_await detail::offload(blocking_, work);
    co_return ec;
}

asio::awaitable<error_code> destination::check(diagnostics& diag) {
    auto cs = co_await asio::this_coro::cancellation_state;
    if (cancelled(cs)) {
        diag.message = "check of " + describe() + " cancelled before it started";
        co_return errc::cancelled;
    }
    error_code ec;
    auto work = [this, &ec, &diag] { ec = verify_root(diag); };
    co_await detail::offload(blocking_, work);
    co_return ec;
}

error_code destination::write(const sealed_object& obj, diagnostics& diag) {
    std::vector<std::string_view> segments;
    std::string why;
    if (!split_key(obj.key, segments, why)) {
        diag.message = "refusing object key '" + std::string(obj.key) + "': " + why +
                       "; keys must be relative paths that stay inside " + root_.string();
        return errc::permanent_rejection;
    }
    const std::string what = "cannot write object '" + std::string(obj.key) + "'";
    detail::io_failure fail;
    // The root is the user's configured path (symlinks allowed); everything below it is
    // opened without following links. Serialised: a put that finds the root made by
    // another put must not write into it before its entry was fsynced. Cheap: one open
    // and close when the root exists.
    {
        std::lock_guard lock(root_mutex_);
        if (!detail::make_directories(sys_, root_, fail))
            return classify(fail, what, diag);
    }
    detail::unique_fd dir;
    if (int err = detail::open_directory(sys_, root_, dir)) {
        return classify({err, "open directory", root_.string()}, what, diag);
    }
    std::string display = root_.string();
    for (std::size_t i = 0; i + 1 < segments.size(); ++i) {
        std::string name(segments[i]);
        display += '/';
        display += name;
        detail::unique_fd sub;
        if (!detail::open_or_create_subdir(sys_, dir.get(), name, display, sub, fail,
                                           dirs_.get())) {
            return classify(fail, what, diag);
        }
        dir = std::move(sub);
    }
    // penne never reads an object back: its pages leave the page cache once it is durable.
    if (!detail::write_atomically(sys_, dir.get(), display, segments.back(), obj.body, fail,
                                  /*drop_cached=*/true)) {
        return classify(fail, what, diag);
    }
    return {};
}

error_code destination::verify_root(diagnostics& diag) {
    const std::string what = "destination directory " + root_.string() + " is not usable";
    detail::io_failure fail;
    {
        std::lock_guard lock(root_mutex_);
        if (!detail::make_directories(sys_, root_, fail))
            return classify(fail, what, diag);
    }
    detail::unique_fd dir;
    if (int err = detail::open_directory(sys_, root_, dir)) {
        return classify({err, "open directory", root_.string()}, what, diag);
    }
    // access(W_OK) would consult permission bits only; creating a file also catches
    // read-only mounts, ACLs and exhausted inodes.
    std::string probe = detail::temp_name("check");
    int fd = sys_.openat(dir.get(), probe.c_str(),
                         O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
        return classify({errno, "create probe file", (root_ / probe).string()}, what, diag);
    }
    detail::unique_fd probe_fd(sys_, fd);
    probe_fd.reset();
    if (sys_.unlinkat(dir.get(), probe.c_str(), 0) != 0) {
        return classify({errno, "remove probe file", (root_ / probe).string()}, what, diag);
    }
    return {};
}

}  // namespace penne::file
