#include "http/client.hpp"

#include "http/detail/beast.hpp"
#include "http/detail/deadline.hpp"
#include "http/detail/in_buffer.hpp"
#include "http/detail/stream.hpp"
#include "http/detail/tls.hpp"
#include "http/http1.hpp"

#include <boost/asio/ssl/error.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <limits>
#include <mutex>
#include <optional>
#include <string_view>
#include <tuple>

namespace openstation::http {

namespace {

using detail::DualStream;
using detail::tcp;
using detail::use_tuple;
namespace beast = detail::beast;

core::Error net_error(std::string code, std::string what, const beast::error_code& ec,
                      std::chrono::milliseconds timeout) {
  if (ec == beast::error::timeout) {
    return core::Error(core::Errc::unavailable, "http.timeout",
                       what + ": timed out after " + std::to_string(timeout.count()) + " ms");
  }
  return core::Error(core::Errc::unavailable, std::move(code), what + ": " + ec.message());
}

/// `host` without the brackets of an "[IPv6]" form.
std::string_view literal_host(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    return host.substr(1, host.size() - 2);
  }
  return host;
}

}  // namespace

core::Result<Url> parse_url(std::string_view url) {
  auto bad = [&](const std::string& why) {
    return core::invalid("http.bad_url", "'" + std::string(url) + "' is not a valid URL: " + why,
                         "url");
  };
  Url u;
  const auto sep = url.find("://");
  if (sep == std::string_view::npos) return bad("it needs a scheme, e.g. http://host:port/");
  u.scheme = std::string(url.substr(0, sep));
  for (auto& c : u.scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (u.scheme == "http") {
    u.port = 80;
  } else if (u.scheme == "https") {
    u.port = 443;
  } else {
    return bad("the scheme must be http or https");
  }
  std::string_view rest = url.substr(sep + 3);
  const auto slash = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, slash);
  u.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (!u.target.empty() && u.target[0] == '?') u.target = "/" + u.target;
  if (auto at = authority.rfind('@'); at != std::string_view::npos) {
    authority.remove_prefix(at + 1);
  }
  std::string_view port_text;
  if (!authority.empty() && authority[0] == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return bad("an IPv6 host needs a closing ']'");
    u.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return bad("unexpected text after the IPv6 host");
      port_text = after.substr(1);
    }
  } else {
    const auto colon = authority.rfind(':');
    u.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
  }
  if (u.host.empty()) return bad("the host is missing");
  if (!port_text.empty()) {
    unsigned p = 0;
    auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), p);
    if (ec != std::errc() || ptr != port_text.data() + port_text.size() || p == 0 || p > 65535) {
      return bad("the port must be a number from 1 to 65535");
    }
    u.port = static_cast<std::uint16_t>(p);
  }
  return u;
}

struct Connection::Impl {
  explicit Impl(const asio::any_io_executor& ex)
      : stream(ex), deadline(ex, [this] { abort_io(); }) {}
  Impl(const asio::any_io_executor& ex, std::shared_ptr<asio::ssl::context> c)
      : ctx(std::move(c)), stream(ex, *ctx), deadline(ex, [this] { abort_io(); }) {}
  std::shared_ptr<asio::ssl::context> ctx;  // outlives the stream that uses it
  DualStream stream;
  detail::Deadline deadline;
  std::string peer_fingerprint;
  detail::InBuffer in;  ///< received and not yet consumed
  std::string out;      ///< the request head being written
  wire::Head head;
  Headers spare_head;  ///< storage of a recycled ResponseHead's fields
  wire::Framing framing;
  wire::ChunkedDecoder chunked;
  std::uint64_t remaining = 0;  ///< body bytes still to come (Framing::sized)
  std::string host_header;
  bool keep_alive = false;
  bool done = true;
  bool broken = false;
  SseParser sse;

  void abort_io() {
    beast::error_code ec;
    stream.tcp_layer().socket().close(ec);
  }

  std::string_view unread() const { return in.view(); }
  void consume(std::size_t n) { in.consume(n); }

  /// One read into `in`'s free space; the caller commits the bytes read
  /// (`auto [ec, n] = co_await read_more(); in.commit(n);`). No coroutine frame of its own.
  auto read_more() { return stream.read_raw(in.prepare(16384)); }
  /// read_more() completing to a plain handler `void(error_code, size_t)`.
  template <class Handler>
  void read_more(Handler&& handler) {
    stream.read_raw(in.prepare(16384), std::forward<Handler>(handler));
  }

  /// After a read of body bytes under a deadline (receive_more and receive_more_then): keeps the
  /// bytes, ends the deadline, and says how the read went.
  core::Result<void> body_read_ended(const beast::error_code& ec, std::size_t n,
                                     std::chrono::milliseconds timeout) {
    in.commit(n);
    deadline.clear();
    if (ec) return body_read_failed(ec, timeout);
    return {};
  }

  /// After a read failed while reading a body: the end of a body delimited by the connection's
  /// end (done, nothing to report), or the error.
  core::Result<void> body_read_failed(const beast::error_code& ec,
                                      std::chrono::milliseconds timeout) {
    if (framing.kind == wire::Framing::until_close &&
        (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) &&
        !deadline.expired()) {
      done = true;
      keep_alive = false;
      return {};
    }
    return io_error("http.read", "reading the response body", ec, timeout);
  }

  /// Decodes the body bytes already received into `piece` (appended; possibly nothing when only
  /// framing arrived), setting `done` at the end of the body. No I/O.
  core::Result<void> take_buffered(std::string& piece) {
    const std::string_view avail = unread();
    if (avail.empty()) return {};
    std::string why;
    switch (framing.kind) {
      case wire::Framing::sized: {
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining, avail.size()));
        piece.append(avail.substr(0, n));
        consume(n);
        remaining -= n;
        if (remaining == 0) done = true;
        break;
      }
      case wire::Framing::chunked: {
        auto used = chunked.feed(avail, piece, why);
        if (!used) {
          broken = true;
          return core::Error(core::Errc::unavailable, "http.read",
                             "reading the response body: " + why);
        }
        consume(*used);
        if (chunked.done()) done = true;
        break;
      }
      case wire::Framing::until_close:
        piece.append(avail);
        consume(avail.size());
        break;
      case wire::Framing::none: done = true; break;
    }
    return {};
  }

  /// Hands body bytes to the SSE parser.
  core::Result<void> feed_sse(std::string_view piece) {
    if (!sse.feed(piece)) return sse_too_large();
    return {};
  }

  /// The parser refused bytes: an event larger than its buffer.
  core::Error sse_too_large() {
    broken = true;
    return core::Error(core::Errc::unavailable, "http.sse_too_large",
                       "an SSE event exceeds the parser's buffer");
  }

  /// An I/O error as the caller sees it: a timeout when the deadline closed the socket.
  core::Error io_error(std::string code, std::string what, const beast::error_code& ec,
                       std::chrono::milliseconds timeout) {
    broken = true;
    if (deadline.expired()) return net_error(std::move(code), what, beast::error::timeout, timeout);
    return net_error(std::move(code), std::move(what), ec, timeout);
  }
};

Connection::Connection(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Connection::Connection(Connection&&) noexcept = default;
Connection& Connection::operator=(Connection&&) noexcept = default;
Connection::~Connection() = default;

Awaitable<core::Result<Connection>> Connection::connect(asio::any_io_executor ex, std::string host,
                                                        std::uint16_t port,
                                                        std::chrono::milliseconds timeout,
                                                        std::optional<TlsClientOptions> tls) {
  std::unique_ptr<Impl> impl;
  if (tls) {
    auto ctx = detail::shared_client_context(*tls);
    if (!ctx) co_return ctx.error();
    impl = std::make_unique<Impl>(ex, std::move(*ctx));
  } else {
    impl = std::make_unique<Impl>(ex);
  }
  const std::string where = host + ":" + std::to_string(port);
  // An address literal needs no resolver: async_resolve runs getaddrinfo on Asio's private
  // resolver thread and hops back, on every new upstream connection.
  const std::string_view bare = literal_host(host);
  beast::error_code aec;
  const auto address = asio::ip::make_address(bare, aec);
  tcp::resolver::results_type results;
  if (aec) {
    tcp::resolver resolver(ex);
    auto [rec, found] = co_await resolver.async_resolve(host, std::to_string(port), use_tuple);
    if (rec) {
      co_return core::Error(core::Errc::unavailable, "http.resolve",
                            "cannot resolve " + host + ": " + rec.message(), "host");
    }
    results = std::move(found);
  }
  auto& tcp_layer = impl->stream.tcp_layer();
  // One deadline for connecting and the TLS handshake.
  if (timeout.count() > 0) {
    tcp_layer.expires_at(std::chrono::steady_clock::now() + timeout);
  } else {
    tcp_layer.expires_never();
  }
  beast::error_code ec;
  if (aec) {
    std::tie(ec, std::ignore) = co_await tcp_layer.async_connect(results, use_tuple);
  } else {
    std::tie(ec) = co_await tcp_layer.async_connect(tcp::endpoint(address, port), use_tuple);
  }
  if (ec) co_return net_error("http.connect", "cannot connect to " + where, ec, timeout);
  impl->stream.tune_connected_socket();
  if (auto* ts = impl->stream.tls()) {
    detail::prepare_client_ssl(ts->native_handle(), *tls, std::string(bare));
    auto [hs] = co_await ts->async_handshake(asio::ssl::stream_base::client, use_tuple);
    if (hs == beast::error::timeout) {
      co_return net_error("http.timeout", "TLS handshake with " + where, hs, timeout);
    }
    auto fp = detail::check_client_handshake(ts->native_handle(), *tls, hs, where);
    if (!fp) {
      tcp_layer.close();
      co_return fp.error();
    }
    impl->peer_fingerprint = std::move(*fp);
  }
  // From here on the connection's own deadline applies (Beast's would arm a timer per operation).
  tcp_layer.expires_never();
  impl->host_header =
      bare.find(':') != std::string_view::npos ? "[" + std::string(bare) + "]" : std::string(bare);
  impl->host_header += ":" + std::to_string(port);
  co_return Connection(std::move(impl));
}

Awaitable<core::Result<ResponseHead>> Connection::send(const Request& req,
                                                       std::chrono::milliseconds timeout,
                                                       std::span<const std::string_view> only) {
  auto& im = *impl_;
  if (im.broken) {
    co_return core::Error(core::Errc::unavailable, "http.send",
                          "the connection failed earlier; open a new one");
  }
  const std::string_view method = req.method.empty() ? std::string_view("GET") : req.method;
  auto& out = im.out;
  out.clear();
  out.append(method);
  out.push_back(' ');
  out.append(req.target.empty() ? std::string_view("/") : std::string_view(req.target));
  out.append(" HTTP/1.1\r\n", 11);
  wire::append_field(out, "Host", im.host_header);
  for (const auto& [k, v] : req.headers.fields()) {
    if (iequals(k, "Host") || iequals(k, "Content-Length") || iequals(k, "Transfer-Encoding")) {
      continue;
    }
    if (!only.empty() &&
        std::none_of(only.begin(), only.end(), [&](std::string_view n) { return iequals(k, n); })) {
      continue;
    }
    wire::append_field(out, k, v);
  }
  if (!req.body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
    char len[24];
    auto [p, ec] = std::to_chars(len, len + sizeof(len), req.body.size());
    (void)ec;
    out.append("Content-Length: ", 16).append(len, p).append("\r\n", 2);
  }
  out.append("\r\n", 2);
  im.deadline.set(timeout);
  {
    const std::array<asio::const_buffer, 2> bufs{asio::buffer(out), asio::buffer(req.body)};
    beast::error_code ec;
    if (auto rest = im.stream.start_write(bufs, ec)) ec = co_await std::move(*rest);
    if (ec) {
      im.deadline.clear();
      co_return im.io_error("http.send", "sending " + req.method + " " + req.target, ec, timeout);
    }
  }
  im.sse.reset();
  im.done = false;
  std::string why;
  for (;;) {
    const auto parsed = wire::parse_response_head(im.unread(), im.head, why);
    if (parsed == wire::Parse::complete) {
      // 1xx interim responses (100 Continue) are skipped; the final response follows.
      if (im.head.status >= 100 && im.head.status < 200 && im.head.status != 101) {
        im.consume(im.head.size);
        continue;
      }
      break;
    }
    if (parsed == wire::Parse::error || im.unread().size() > 64 * 1024) {
      im.deadline.clear();
      im.broken = true;
      co_return core::Error(
          core::Errc::unavailable, "http.read",
          "reading the response to " + req.method + " " + req.target + ": " +
              (parsed == wire::Parse::error ? why
                                            : std::string("the response head exceeds 64 KiB")));
    }
    auto [ec, n] = co_await im.read_more();
    im.in.commit(n);
    if (ec) {
      im.deadline.clear();
      co_return im.io_error("http.read", "reading the response to " + req.method + " " + req.target,
                            ec, timeout);
    }
  }
  im.deadline.clear();
  const auto& h = im.head;
  if (!wire::response_framing(h, method, im.framing, why)) {
    im.broken = true;
    co_return core::Error(core::Errc::unavailable, "http.read",
                          "reading the response to " + req.method + " " + req.target + ": " + why);
  }
  ResponseHead head;
  head.status = h.status;
  head.headers = std::move(im.spare_head);  // storage from a recycled head, if any
  head.headers.assign(h.fields);
  im.keep_alive = wire::keep_alive(h) && im.framing.kind != wire::Framing::until_close;
  im.consume(h.size);
  im.remaining = im.framing.length;
  im.chunked = wire::ChunkedDecoder();
  im.done = im.framing.kind == wire::Framing::none;
  co_return head;
}

Awaitable<core::Result<std::string>> Connection::read_some(std::chrono::milliseconds timeout) {
  auto& im = *impl_;
  if (im.done) co_return std::string();
  std::string piece;
  for (;;) {
    if (auto r = im.take_buffered(piece); !r) co_return r.error();
    if (!piece.empty() || im.done) co_return piece;
    if (auto got = co_await receive_more(timeout); !got) co_return got.error();
  }
}

Awaitable<core::Result<std::optional<SseEvent>>> Connection::read_event(
    std::chrono::milliseconds timeout) {
  auto& im = *impl_;
  for (;;) {
    if (auto e = im.sse.next()) co_return std::optional<SseEvent>(std::move(*e));
    if (im.done) co_return std::optional<SseEvent>();
    auto piece = co_await read_some(timeout);
    if (!piece) co_return piece.error();
    if (auto fed = im.feed_sse(*piece); !fed) co_return fed.error();
  }
}

core::Result<SseNext> Connection::buffered_event(SseEvent& event, SseWire& wire) {
  auto& im = *impl_;
  for (;;) {
    if (const SseNext got = im.sse.next(event, wire); got != SseNext::none) return got;
    if (im.done) return SseNext::none;
    std::string& in = im.sse.input();
    const std::size_t before = in.size();
    if (auto r = im.take_buffered(in); !r) return r.error();
    if (in.size() == before && !im.done) return SseNext::none;  // needs the network
    if (!im.sse.accepted()) return im.sse_too_large();
  }
}

Awaitable<core::Result<void>> Connection::receive_more(std::chrono::milliseconds timeout) {
  auto& im = *impl_;
  if (im.done) co_return core::Result<void>{};
  im.deadline.set(timeout);
  auto [ec, n] = co_await im.read_more();
  co_return im.body_read_ended(ec, n, timeout);
}

void Connection::receive_more_then(std::chrono::milliseconds timeout,
                                   std::unique_ptr<ReadDone> done) {
  auto& im = *impl_;
  if (im.done) {
    asio::post(im.stream.get_executor(), [done = std::move(done)]() mutable {
      ReadDone* d = done.get();
      d->on_received(core::Result<void>{}, std::move(done));
    });
    return;
  }
  im.deadline.set(timeout);
  // `done` owns, through its caller's coroutine, the connection: `im` outlives the read.
  im.read_more(
      [&im, timeout, done = std::move(done)](const beast::error_code& ec, std::size_t n) mutable {
        ReadDone* d = done.get();
        d->on_received(im.body_read_ended(ec, n, timeout), std::move(done));
      });
}

void Connection::cancel_read() {
  beast::error_code ignored;
  impl_->stream.tcp_layer().socket().cancel(ignored);
}

core::Result<void> Connection::buffered_body(std::string& body) {
  return impl_->take_buffered(body);
}

Awaitable<core::Result<Response>> Connection::request(const Request& req,
                                                      std::chrono::milliseconds timeout,
                                                      std::uint64_t body_limit) {
  auto head = co_await send(req, timeout);
  if (!head) co_return head.error();
  Response res;
  res.status = head->status;
  res.headers = std::move(head->headers);
  while (!body_done()) {
    auto piece = co_await read_some(timeout);
    if (!piece) co_return piece.error();
    if (res.body.size() + piece->size() > body_limit) {
      impl_->broken = true;
      co_return core::Error(core::Errc::unavailable, "http.body_too_large",
                            "the response body exceeds " + std::to_string(body_limit) + " bytes");
    }
    res.body += *piece;
  }
  co_return res;
}

void Connection::recycle(ResponseHead&& head) {
  impl_->spare_head = std::move(head.headers);
}

bool Connection::body_done() const {
  return impl_->done;
}

bool Connection::reusable() const {
  return impl_->keep_alive && impl_->done && !impl_->broken && impl_->unread().empty() &&
         impl_->stream.tcp_layer().socket().is_open();
}

bool Connection::secure() const {
  return impl_->stream.secure();
}

const std::string& Connection::peer_fingerprint() const {
  return impl_->peer_fingerprint;
}

void Connection::close() {
  beast::error_code ec;
  impl_->stream.tcp_layer().socket().shutdown(tcp::socket::shutdown_both, ec);
  impl_->stream.tcp_layer().close();
  impl_->broken = true;
}

namespace {

/// What a blocking client sends for `method` to `u`: its target, `headers` and `body`.
Request request_to(const Url& u, std::string_view method, const Headers& headers,
                   std::string body) {
  Request req;
  req.method = std::string(method);
  req.target = u.target;
  req.headers = headers;
  req.body = std::move(body);
  return req;
}

/// The TLS settings for `u`: `tls` for an https:// URL, none for http://.
std::optional<TlsClientOptions> tls_for(const Url& u, const TlsClientOptions& tls) {
  if (u.scheme == "https") return tls;
  return std::nullopt;
}

/// `headers` with the JSON content type (post_json).
Headers with_json_type(Headers headers) {
  headers.set("Content-Type", "application/json");
  return headers;
}

/// The answer a blocking call's coroutine left in `out`.
core::Result<Response> outcome(std::optional<core::Result<Response>>& out) {
  if (!out) {
    return core::Error(core::Errc::internal, "http.internal", "the request did not complete");
  }
  return std::move(*out);
}

}  // namespace

core::Result<Response> Client::request(std::string_view method, std::string_view url,
                                       const Headers& headers, std::string body,
                                       std::chrono::milliseconds timeout,
                                       std::uint64_t body_limit) const {
  auto u = parse_url(url);
  if (!u) return u.error();
  const auto tls = tls_for(*u, tls_);
  Request req = request_to(*u, method, headers, std::move(body));
  if (!req.headers.has("Connection")) req.headers.set("Connection", "close");
  asio::io_context ioc;
  std::optional<core::Result<Response>> out;
  asio::co_spawn(
      ioc,
      [&]() -> Awaitable<void> {
        auto conn =
            co_await Connection::connect(ioc.get_executor(), u->host, u->port, timeout, tls);
        if (!conn) {
          out.emplace(conn.error());
          co_return;
        }
        out.emplace(co_await conn->request(req, timeout, body_limit));
      },
      asio::detached);
  ioc.run();
  return outcome(out);
}

core::Result<Response> Client::post_json(std::string_view url, std::string json,
                                         std::chrono::milliseconds timeout,
                                         const Headers& headers) const {
  return request("POST", url, with_json_type(headers), std::move(json), timeout);
}

struct KeptClient::State {
  explicit State(TlsClientOptions t) : tls(std::move(t)) {}
  TlsClientOptions tls;
  std::mutex mutex;
  asio::io_context ioc{1};
  std::string server;              ///< scheme://host:port of `conn`
  std::optional<Connection> conn;  ///< destroyed before `ioc`
  std::uint64_t connections = 0;
};

KeptClient::KeptClient(TlsClientOptions tls) : state_(std::make_unique<State>(std::move(tls))) {}

KeptClient::~KeptClient() {
  if (state_) state_->conn.reset();
}

core::Result<Response> KeptClient::request(std::string_view method, std::string_view url,
                                           const Headers& headers, std::string body,
                                           std::chrono::milliseconds timeout,
                                           std::uint64_t body_limit) {
  auto u = parse_url(url);
  if (!u) return u.error();
  auto& st = *state_;
  std::lock_guard lock(st.mutex);
  const std::string server = u->scheme + "://" + u->host + ":" + std::to_string(u->port);
  if (server != st.server) {
    st.conn.reset();
    st.server = server;
  }
  const auto tls = tls_for(*u, st.tls);
  const Request req = request_to(*u, method, headers, std::move(body));
  std::optional<core::Result<Response>> out;
  asio::co_spawn(
      st.ioc,
      [&]() -> Awaitable<void> {
        if (st.conn && st.conn->reusable()) {
          auto r = co_await st.conn->request(req, timeout, body_limit);
          // Sent again on a new connection only when the kept one failed before an answer.
          if (r || (r.error().code != "http.send" && r.error().code != "http.read")) {
            out.emplace(std::move(r));
            co_return;
          }
        }
        st.conn.reset();
        auto c =
            co_await Connection::connect(st.ioc.get_executor(), u->host, u->port, timeout, tls);
        if (!c) {
          out.emplace(c.error());
          co_return;
        }
        ++st.connections;
        st.conn.emplace(std::move(*c));
        out.emplace(co_await st.conn->request(req, timeout, body_limit));
      },
      asio::detached);
  // Until this call's coroutine is done: a kept connection's idle deadline timer may still be
  // pending, and must not hold the call up.
  st.ioc.restart();
  while (!out && st.ioc.run_one() > 0) {
  }
  if (st.conn && (!out || !*out || !st.conn->reusable())) st.conn.reset();
  return outcome(out);
}

core::Result<Response> KeptClient::post_json(std::string_view url, std::string json,
                                             std::chrono::milliseconds timeout,
                                             const Headers& headers) {
  return request("POST", url, with_json_type(headers), std::move(json), timeout);
}

std::uint64_t KeptClient::connections() const {
  std::lock_guard lock(state_->mutex);
  return state_->connections;
}

}  // namespace openstation::http
