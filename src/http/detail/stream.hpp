#pragma once
/// Private: the byte stream under one HTTP connection, plain TCP or TLS over TCP, chosen at
/// run time. Beast's HTTP algorithms see one AsyncStream type either way; timeouts live on the
/// TCP layer (tcp_layer()), so the server's and client's deadlines work the same for both. Include
/// only from .cpp files (it pulls in OpenSSL through Asio's ssl headers).

#include "http/detail/beast.hpp"

#include <boost/asio/async_result.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <optional>
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

  /// One read: through TLS, or straight from the socket (bypassing the TCP layer's per-operation
  /// timer machinery; the connection's detail::Deadline guards it). No coroutine frame of its own.
  asio::awaitable<std::tuple<beast::error_code, std::size_t>> read_raw(asio::mutable_buffer b) {
    if (tls_) return tls_->async_read_some(b, use_tuple);
    return plain_->socket().async_read_some(b, use_tuple);
  }

  /// Writes all of `buffers`: one gathered write on a plain socket. Over TLS the sequence goes
  /// out flattened into one buffer: gathered writes through Beast's ssl_stream have lost data.
  template <class Buffers>
  asio::awaitable<beast::error_code> write_raw(const Buffers& buffers) {
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
    } else {
      std::tie(ec, n) = co_await asio::async_write(plain_->socket(), buffers, use_tuple);
    }
    co_return ec;
  }

 private:
  std::optional<beast::tcp_stream> plain_;
  std::optional<TlsStream> tls_;
};

}  // namespace openstation::http::detail
