#pragma once
/// Private: a socket read that tells Asio's epoll reactor when it left the socket empty, so the
/// next read waits for readiness instead of first trying a recv that returns EAGAIN.
///
/// Why. Asio tries every read at once (a "speculative" recv) unless the previous read returned
/// zero bytes. A proxy mostly reads right after it has sent something (a request upstream, a
/// response to the client), before the answer can have arrived, so about half of its reads were
/// recv calls that returned EAGAIN: 1.8 extra system calls per proxied request, one per SSE event.
///
/// How. The socket gets TCP_INQ (Linux ≥ 4.18): every recvmsg then also reports how many bytes
/// are still queued, and reports 1 when none are but the peer's FIN is (so an end of stream that
/// arrived together with the last bytes is never mistaken for an empty socket). When that count
/// is 0 the read returns Asio's `done_and_exhausted`, which clears the descriptor's
/// "try speculatively" flag: the next read on it goes straight into the reactor's queue and is
/// performed when epoll reports the socket readable. Anything that arrives after the count was
/// taken (data, FIN, RST) raises a new edge, so nothing can be missed.
///
/// The hook is an explicit specialisation of Asio's receive operation for one buffer type
/// (`DrainAwareBuffer`); the rest of the operation (handler, allocation, cancellation,
/// completion) is Asio's own. It depends on Asio's internal operation layout, hence the version
/// check: another Boost version, or a build without the epoll reactor, falls back to plain reads
/// (`kDrainAwareReads` is false and `enable_drain_tracking` does nothing).

#include "http/detail/raw_syscall.hpp"

#include <boost/asio/detail/reactive_socket_recv_op.hpp>
#include <boost/asio/detail/reactor_op.hpp>
#include <boost/asio/detail/socket_ops.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/version.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstddef>

#if BOOST_VERSION == 108100 && defined(BOOST_ASIO_HAS_EPOLL) && \
    !defined(BOOST_ASIO_HAS_IO_URING_AS_DEFAULT) && defined(TCP_INQ)
#define OPENSTATION_DRAIN_AWARE_READS 1
#else
#define OPENSTATION_DRAIN_AWARE_READS 0
#endif

namespace openstation::http::detail {

inline constexpr bool kDrainAwareReads = OPENSTATION_DRAIN_AWARE_READS != 0;

/// One receive buffer whose read reports an emptied socket to the reactor (see above). Asio
/// treats it as an ordinary single-buffer sequence everywhere else.
struct DrainAwareBuffer : boost::asio::mutable_buffer {
  explicit DrainAwareBuffer(boost::asio::mutable_buffer b) : boost::asio::mutable_buffer(b) {}
};

/// Asks the kernel to report the bytes left after each read (TCP_INQ). Without it a
/// DrainAwareBuffer read behaves exactly like a plain one. Returns false if the kernel refused.
inline bool enable_drain_tracking(boost::asio::ip::tcp::socket& socket) {
  if constexpr (!kDrainAwareReads) {
    return false;
  } else {
    const int on = 1;
    return ::setsockopt(socket.native_handle(), IPPROTO_TCP, TCP_INQ, &on, sizeof(on)) == 0;
  }
}

/// Outcome of one non-blocking receive.
enum class RecvResult { would_block, done, drained };

/// One non-blocking recvmsg (raw_syscall.hpp) into `buffer`: bytes read go to `n`, errors (EOF
/// included) to `ec`. `drained`: bytes were read and the kernel reported none left and no FIN
/// queued.
inline RecvResult receive_reporting_drain(int fd, boost::asio::mutable_buffer buffer,
                                          boost::system::error_code& ec, std::size_t& n) {
  iovec iov{buffer.data(), buffer.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  for (;;) {
    const ssize_t r = raw_recvmsg(fd, &msg, MSG_DONTWAIT);
    if (r > 0) {
      ec = {};
      n = static_cast<std::size_t>(r);
#if OPENSTATION_DRAIN_AWARE_READS
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_TCP && c->cmsg_type == TCP_CM_INQ &&
            c->cmsg_len >= CMSG_LEN(sizeof(int))) {
          int inq = 0;
          __builtin_memcpy(&inq, CMSG_DATA(c), sizeof(inq));
          return inq == 0 ? RecvResult::drained : RecvResult::done;
        }
      }
#endif
      return RecvResult::done;  // no count reported (TCP_INQ not set): assume more may follow
    }
    if (r == 0) {
      n = 0;
      ec = buffer.size() == 0 ? boost::system::error_code{} : boost::asio::error::eof;
      return RecvResult::done;
    }
    if (errno == EINTR) continue;
    n = 0;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return RecvResult::would_block;
    ec.assign(errno, boost::asio::error::get_system_category());
    return RecvResult::done;
  }
}

}  // namespace openstation::http::detail

#if OPENSTATION_DRAIN_AWARE_READS
namespace boost::asio::detail {

/// Asio's receive operation for a DrainAwareBuffer: the same constructor as the primary
/// template (reactive_socket_recv_op derives from it unchanged), a different perform step.
template <>
class reactive_socket_recv_op_base<openstation::http::detail::DrainAwareBuffer>
    : public reactor_op {
 public:
  reactive_socket_recv_op_base(const boost::system::error_code& success_ec, socket_type socket,
                               socket_ops::state_type /*state*/,
                               const openstation::http::detail::DrainAwareBuffer& buffer,
                               socket_base::message_flags /*flags*/, func_type complete_func)
      : reactor_op(success_ec, &reactive_socket_recv_op_base::do_perform, complete_func),
        socket_(socket),
        buffer_(buffer) {}

  static status do_perform(reactor_op* base) {
    auto* o = static_cast<reactive_socket_recv_op_base*>(base);
    using openstation::http::detail::RecvResult;
    switch (openstation::http::detail::receive_reporting_drain(o->socket_, o->buffer_, o->ec_,
                                                               o->bytes_transferred_)) {
      case RecvResult::would_block: return not_done;
      case RecvResult::drained: return done_and_exhausted;
      case RecvResult::done: break;
    }
    // As Asio's own operation: nothing read (end of stream or an error) exhausts the socket.
    return o->bytes_transferred_ == 0 ? done_and_exhausted : done;
  }

 private:
  socket_type socket_;
  openstation::http::detail::DrainAwareBuffer buffer_;
};

}  // namespace boost::asio::detail
#endif
