#include <penne/file/syscalls.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

namespace penne::file {

int syscalls::openat(int dirfd, const char* path, int flags, mode_t mode) {
    return ::openat(dirfd, path, flags, mode);
}
ssize_t syscalls::read(int fd, void* buf, std::size_t size) {
    return ::read(fd, buf, size);
}
ssize_t syscalls::write(int fd, const void* buf, std::size_t size) {
    return ::write(fd, buf, size);
}
int syscalls::fsync(int fd) {
    return ::fsync(fd);
}
int syscalls::fdatasync(int fd) {
    return ::fdatasync(fd);
}
int syscalls::ftruncate(int fd, off_t length) {
    return ::ftruncate(fd, length);
}
int syscalls::close(int fd) {
    return ::close(fd);
}
int syscalls::renameat(int old_dirfd, const char* old_path, int new_dirfd, const char* new_path) {
    return ::renameat(old_dirfd, old_path, new_dirfd, new_path);
}
int syscalls::mkdirat(int dirfd, const char* path, mode_t mode) {
    return ::mkdirat(dirfd, path, mode);
}
int syscalls::unlinkat(int dirfd, const char* path, int flags) {
    return ::unlinkat(dirfd, path, flags);
}
int syscalls::drop_cached(int fd) {
    return ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
}

syscalls& posix_syscalls() noexcept {
    static syscalls real;
    return real;
}

}  // namespace penne::file
