#include "agent/readiness.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace openstation::agent {
namespace {

using Clock = std::chrono::steady_clock;

struct Socket {
  int fd = -1;
  ~Socket() {
    if (fd >= 0) ::close(fd);
  }
};

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

/// Waits for `events` on fd until the deadline; false on timeout.
bool wait_for(int fd, short events, Clock::time_point deadline) {
  pollfd p{fd, events, 0};
  for (;;) {
    const int r = ::poll(&p, 1, remaining_ms(deadline));
    if (r > 0) return true;
    if (r == 0) return false;
    if (errno != EINTR) return false;
  }
}

}  // namespace

ProbeResult HttpReadinessProbe::probe(std::uint16_t port, std::string_view path) {
  using S = ProbeResult::Status;
  const auto deadline = Clock::now() + timeout_;
  const std::string timed_out = "timed out after " + std::to_string(timeout_.count()) + " ms";
  Socket s;
  s.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s.fd < 0) return {S::not_yet, std::string("socket: ") + std::strerror(errno)};
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (::connect(s.fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno != EINPROGRESS) return {S::not_yet, std::strerror(errno)};
    if (!wait_for(s.fd, POLLOUT, deadline)) return {S::not_yet, timed_out};
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return {S::not_yet, std::strerror(err)};
  }
  std::string req = "GET " + std::string(path.empty() ? "/" : path) +
                    " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                    "\r\nUser-Agent: openstation-agent\r\nConnection: close\r\n\r\n";
  std::size_t sent = 0;
  while (sent < req.size()) {
    const auto n = ::send(s.fd, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (!wait_for(s.fd, POLLOUT, deadline)) return {S::not_yet, timed_out};
    } else {
      return {S::not_yet, std::string("send: ") + std::strerror(errno)};
    }
  }
  std::string head;
  char buf[512];
  while (head.find("\r\n") == std::string::npos && head.size() < 4096) {
    const auto n = ::recv(s.fd, buf, sizeof buf, 0);
    if (n > 0) {
      head.append(buf, static_cast<std::size_t>(n));
    } else if (n == 0) {
      break;
    } else if (errno == EAGAIN || errno == EINTR) {
      if (!wait_for(s.fd, POLLIN, deadline)) return {S::not_yet, timed_out};
    } else {
      return {S::not_yet, std::string("recv: ") + std::strerror(errno)};
    }
  }
  // "HTTP/1.1 200 OK"
  const auto sp = head.find(' ');
  if (head.rfind("HTTP/", 0) != 0 || sp == std::string::npos || head.size() < sp + 4) {
    return {S::error, head.empty() ? "closed without an answer" : "not an HTTP answer"};
  }
  const std::string code = head.substr(sp + 1, 3);
  if (code[0] == '2') return {S::ready, "HTTP " + code};
  return {S::error, "HTTP " + code};
}

}  // namespace openstation::agent
