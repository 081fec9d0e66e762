#pragma once
// The POSIX calls the file adapter makes to change the disk, behind one seam. Production
// code uses posix_syscalls(); tests derive from `syscalls` to count fsyncs or to make a
// call fail with ENOSPC, EIO, EACCES or EROFS — conditions that cannot be produced on
// demand on a real disk (and that root does not even see for permissions).
//
// Every member behaves like the POSIX function of the same name: it returns -1 and sets
// errno on failure. Thread safety: posix_syscalls() is stateless and may be used from any
// thread; a test double must be as thread-safe as the code that shares it. Lifetime: a
// store or destination keeps a reference, so the object must outlive it.

#include <sys/types.h>

#include <cstddef>

namespace penne::file {

class syscalls {
public:
    virtual ~syscalls() = default;

    virtual int openat(int dirfd, const char* path, int flags, mode_t mode);
    virtual ssize_t read(int fd, void* buf, std::size_t size);
    virtual ssize_t write(int fd, const void* buf, std::size_t size);
    virtual int fsync(int fd);
    // The state store's journal appends: data and the size, without the other metadata.
    virtual int fdatasync(int fd);
    virtual int ftruncate(int fd, off_t length);
    virtual int close(int fd);
    virtual int renameat(int old_dirfd, const char* old_path, int new_dirfd, const char* new_path);
    virtual int mkdirat(int dirfd, const char* path, mode_t mode);
    virtual int unlinkat(int dirfd, const char* path, int flags);
    // posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED): the file's clean pages leave the page
    // cache. Advisory; returns 0 or an error number (and leaves errno alone), as
    // posix_fadvise does.
    virtual int drop_cached(int fd);
};

// The real system calls.
syscalls& posix_syscalls() noexcept;

}  // namespace penne::file
