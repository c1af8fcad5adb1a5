#pragma once
/// Private: the byte stream under one HTTP connection, plain TCP or TLS over TCP, chosen at
/// run time. Beast's HTTP algorithms see one AsyncStream type either way; timeouts live on the
/// TCP layer (tcp_layer()), so the server's and client's deadlines work the same for both. Include
/// only from .cpp files (it pulls in OpenSSL through Asio's ssl headers).

#include "http/detail/beast.hpp"
#include "http/detail/drain_read.hpp"
#include "http/detail/raw_syscall.hpp"

#include <boost/asio/async_result.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <utility>

namespace openstation::http::detail {

class DualStream {
 public:
  using executor_type = beast::tcp_stream::executor_type;
  using TlsStream = beast::ssl_stream<beast::tcp_stream>;

  /// An accepted plain connection.
  explicit DualStream(tcp::socket s) { plain_.emplace(std::move(s)); }
  /// An accepted connection that will speak TLS (the handshake is the caller's).
  DualStream(tcp::socket s, asio::ssl::context& ctx) { tls_.emplace(std::move(s), ctx); }
  /// An unconnected client stream, plain or TLS.
  explicit DualStream(const asio::any_io_executor& ex) { plain_.emplace(ex); }
  DualStream(const asio::any_io_executor& ex, asio::ssl::context& ctx) { tls_.emplace(ex, ctx); }

  /// The TCP layer: timeouts, the socket, close().
  beast::tcp_stream& tcp_layer() { return tls_ ? tls_->next_layer() : *plain_; }
  /// The TLS layer, or null for a plain stream.
  TlsStream* tls() { return tls_ ? &*tls_ : nullptr; }
  bool secure() const { return tls_.has_value(); }

  executor_type get_executor() { return tcp_layer().get_executor(); }

  template <class MutableBufferSequence, class Token>
  auto async_read_some(const MutableBufferSequence& buffers, Token&& token) {
    return asio::async_initiate<Token, void(beast::error_code, std::size_t)>(
        [this](auto handler, const MutableBufferSequence& b) {
          if (tls_) {
            tls_->async_read_some(b, std::move(handler));
          } else {
            plain_->async_read_some(b, std::move(handler));
          }
        },
        token, buffers);
  }

  template <class ConstBufferSequence, class Token>
  auto async_write_some(const ConstBufferSequence& buffers, Token&& token) {
    return asio::async_initiate<Token, void(beast::error_code, std::size_t)>(
        [this](auto handler, const ConstBufferSequence& b) {
          if (tls_) {
            tls_->async_write_some(b, std::move(handler));
          } else {
            plain_->async_write_some(b, std::move(handler));
          }
        },
        token, buffers);
  }

  /// read_raw() with any completion token: a plain handler `void(error_code, size_t)` for a
  /// caller that reacts to each read without resuming a coroutine (Connection::receive_more_then).
  template <class Token>
  auto read_raw(asio::mutable_buffer b, Token&& token) {
    if (tls_) return tls_->async_read_some(b, std::forward<Token>(token));
    return plain_->socket().async_read_some(DrainAwareBuffer(b), std::forward<Token>(token));
  }
  /// One read: through TLS, or straight from the socket (bypassing the TCP layer's per-operation
  /// timer machinery; the connection's detail::Deadline guards it). No coroutine frame of its own.
  /// A plain socket's read tells the reactor when it emptied the socket (drain_read.hpp), so the
  /// next read waits for readiness without a recv that would return EAGAIN.
  asio::awaitable<std::tuple<beast::error_code, std::size_t>> read_raw(asio::mutable_buffer b) {
    return read_raw(b, use_tuple);
  }

  /// Call once the TCP connection is established (accepted or connected): TCP_NODELAY, and on a
  /// plain socket the bytes-left report that read_raw relies on. Failures are harmless (Nagle's
  /// delay, or a speculative recv per read, as without them), so they are ignored.
  void tune_connected_socket() {
    auto& socket = tcp_layer().socket();
    beast::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    if (!tls_) enable_drain_tracking(socket);
  }

  /// Writes all of `buffers`: one gathered write on a plain socket. Over TLS the sequence goes
  /// out flattened into one buffer: gathered writes through Beast's ssl_stream have lost data.
  ///
  /// A plain socket is first written directly (one non-blocking sendmsg); only what the kernel
  /// did not take goes through the asynchronous write. Asio's own async_write also tries the
  /// send at once, but then posts the completion, which costs a trip through the scheduler and
  /// a reactor poll (epoll_wait with a zero timeout) per write. Errors are the ones async_write
  /// reports (errno values in the system category).
  template <class Buffers>
  asio::awaitable<beast::error_code> write_raw(const Buffers& buffers) {
    beast::error_code ec;
    if (auto rest = start_write(buffers, ec)) ec = co_await std::move(*rest);
    co_return ec;
  }

  /// write_raw without a coroutine frame when the kernel takes everything at once (the usual
  /// case): the direct send happens here, and only when something is left is there an awaitable
  /// for the rest, which the caller awaits at once (`if (auto rest = start_write(b, ec)) ec =
  /// co_await std::move(*rest);`). Without one, the write is over and `ec` says how it went.
  template <class Buffers>
  std::optional<asio::awaitable<beast::error_code>> start_write(const Buffers& buffers,
                                                                beast::error_code& ec) {
    ec = {};
    if (tls_) return write_rest(buffers, 0);
    std::array<asio::const_buffer, kMaxDirectBuffers> parts;
    std::size_t count = 0;
    std::size_t total = 0;
    for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers);
         ++it) {
      const asio::const_buffer one(*it);
      if (one.size() == 0) continue;
      if (count == parts.size()) return write_rest(buffers, 0);  // too many pieces: all async
      parts[count++] = one;
      total += one.size();
    }
    if (total == 0 || !plain_->socket().is_open()) return write_rest(buffers, 0);
    std::size_t sent = 0;
    if (!send_direct(parts.data(), count, total, sent, ec)) return std::nullopt;
    if (sent == total) return std::nullopt;
    // The kernel took part (or none) of it: the rest waits for the socket to be writable.
    return write_rest(buffers, sent);
  }

 private:
  static constexpr std::size_t kMaxDirectBuffers = 8;
  /// Pieces of a direct write that add up to no more are gathered into one send (send_direct).
  static constexpr std::size_t kGatherUpTo = 2048;

  /// The asynchronous part of a write: everything after the first `sent` bytes of `buffers`
  /// (taken by value: the caller's temporaries may be gone when this runs).
  template <class Buffers>
  asio::awaitable<beast::error_code> write_rest(Buffers buffers, std::size_t sent) {
    beast::error_code ec;
    std::size_t n = 0;
    if (tls_) {
      std::string flat;
      for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers);
           ++it) {
        const asio::const_buffer one(*it);
        flat.append(static_cast<const char*>(one.data()), one.size());
      }
      std::tie(ec, n) = co_await asio::async_write(*tls_, asio::buffer(flat), use_tuple);
      co_return ec;
    }
    auto& socket = plain_->socket();
    if (sent == 0) {
      std::tie(ec, n) = co_await asio::async_write(socket, buffers, use_tuple);
      co_return ec;
    }
    std::array<asio::const_buffer, kMaxDirectBuffers> parts;
    std::size_t count = 0;
    for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers);
         ++it) {
      const asio::const_buffer one(*it);
      if (one.size() == 0) continue;
      if (sent >= one.size()) {
        sent -= one.size();
        continue;
      }
      parts[count++] = one + sent;
      sent = 0;
    }
    std::tie(ec, n) = co_await asio::async_write(
        socket, std::span<const asio::const_buffer>(parts.data(), count), use_tuple);
    co_return ec;
  }

  /// One non-blocking gathered send on the plain socket (raw_syscall.hpp). Returns false with `ec`
  /// set on a hard error; true otherwise, with `sent` bytes taken (0 when the socket buffer is
  /// full).
  bool send_direct(const asio::const_buffer* parts, std::size_t count, std::size_t total,
                   std::size_t& sent, beast::error_code& ec) {
    // One buffer goes out with send(2), which takes it as it is; sendmsg also copies in a
    // message header and an I/O vector and walks them. A few pieces that add up to little (a
    // head and a small body) are gathered here for that: copying a few hundred bytes costs less.
    std::array<char, kGatherUpTo> flat;
    const void* one = nullptr;
    if (count == 1) {
      one = parts[0].data();
    } else if (total <= flat.size()) {
      std::size_t at = 0;
      for (std::size_t i = 0; i < count; ++i) {
        std::memcpy(flat.data() + at, parts[i].data(), parts[i].size());
        at += parts[i].size();
      }
      one = flat.data();
    }
    std::array<iovec, kMaxDirectBuffers> iov;
    msghdr msg{};
    if (one == nullptr) {
      for (std::size_t i = 0; i < count; ++i) {
        iov[i].iov_base = const_cast<void*>(parts[i].data());
        iov[i].iov_len = parts[i].size();
      }
      msg.msg_iov = iov.data();
      msg.msg_iovlen = count;
    }
    const int fd = plain_->socket().native_handle();
    for (;;) {
      const ssize_t r = one != nullptr ? raw_send(fd, one, total, MSG_NOSIGNAL | MSG_DONTWAIT)
                                       : raw_sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (r >= 0) {
        sent = static_cast<std::size_t>(r);
        return true;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        sent = 0;
        return true;
      }
      ec.assign(errno, asio::error::get_system_category());
      return false;
    }
  }

  std::optional<beast::tcp_stream> plain_;
  std::optional<TlsStream> tls_;
};

}  // namespace openstation::http::detail
