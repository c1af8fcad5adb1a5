#pragma once
/// Private: send, sendmsg and recvmsg as plain system calls, for the proxy's hot path.
///
/// glibc's sendmsg and recvmsg are POSIX cancellation points: each call switches the thread to
/// asynchronous cancellation and back around the system call (two atomic read-modify-writes on
/// the thread's cancellation word, plus the wrapper). The server never cancels threads, so that
/// work buys nothing; syscall(2) is not a cancellation point. Same arguments, result and errno
/// as the libc functions.

#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace openstation::http::detail {

inline ssize_t raw_send(int fd, const void* data, size_t size, int flags) {
  return static_cast<ssize_t>(::syscall(SYS_sendto, fd, data, size, flags, nullptr, 0));
}

inline ssize_t raw_sendmsg(int fd, const msghdr* msg, int flags) {
  return static_cast<ssize_t>(::syscall(SYS_sendmsg, fd, msg, flags));
}

inline ssize_t raw_recvmsg(int fd, msghdr* msg, int flags) {
  return static_cast<ssize_t>(::syscall(SYS_recvmsg, fd, msg, flags));
}

}  // namespace openstation::http::detail
