#include "http/client.hpp"

#include "http/detail/beast.hpp"
#include "http/detail/stream.hpp"
#include "http/detail/tls.hpp"

#include <charconv>
#include <limits>

namespace openstation::http {

namespace {

using detail::DualStream;
using detail::tcp;
using detail::use_tuple;
namespace bhttp = detail::bhttp;
namespace beast = detail::beast;

void set_expiry(beast::tcp_stream& s, std::chrono::milliseconds d) {
  if (d.count() > 0) {
    s.expires_after(d);
  } else {
    s.expires_never();
  }
}

core::Error net_error(std::string code, std::string what, const beast::error_code& ec,
                      std::chrono::milliseconds timeout) {
  if (ec == beast::error::timeout) {
    return core::Error(core::Errc::unavailable, "http.timeout",
                       what + ": timed out after " + std::to_string(timeout.count()) + " ms");
  }
  return core::Error(core::Errc::unavailable, std::move(code), what + ": " + ec.message());
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
  explicit Impl(const asio::any_io_executor& ex) : stream(ex) {}
  Impl(const asio::any_io_executor& ex, std::shared_ptr<asio::ssl::context> c)
      : ctx(std::move(c)), stream(ex, *ctx) {}
  std::shared_ptr<asio::ssl::context> ctx;  // outlives the stream that uses it
  DualStream stream;
  std::string peer_fingerprint;
  beast::flat_buffer buf;
  std::optional<bhttp::response_parser<bhttp::buffer_body>> parser;
  std::string host_header;
  bool keep_alive = false;
  bool done = true;
  bool broken = false;
  SseParser sse;
  char chunk[16384];
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
    auto ctx = detail::make_client_context(*tls);
    if (!ctx) co_return ctx.error();
    impl = std::make_unique<Impl>(ex, std::move(*ctx));
  } else {
    impl = std::make_unique<Impl>(ex);
  }
  const std::string where = host + ":" + std::to_string(port);
  tcp::resolver resolver(ex);
  auto [rec, results] = co_await resolver.async_resolve(host, std::to_string(port), use_tuple);
  if (rec) {
    co_return core::Error(core::Errc::unavailable, "http.resolve",
                          "cannot resolve " + host + ": " + rec.message(), "host");
  }
  auto& tcp_layer = impl->stream.tcp_layer();
  // One deadline for connecting and the TLS handshake.
  if (timeout.count() > 0) {
    tcp_layer.expires_at(std::chrono::steady_clock::now() + timeout);
  } else {
    tcp_layer.expires_never();
  }
  auto [ec, ep] = co_await tcp_layer.async_connect(results, use_tuple);
  (void)ep;
  if (ec) co_return net_error("http.connect", "cannot connect to " + where, ec, timeout);
  beast::error_code ignored;
  tcp_layer.socket().set_option(tcp::no_delay(true), ignored);
  if (auto* ts = impl->stream.tls()) {
    detail::prepare_client_ssl(ts->native_handle(), *tls, host);
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
  impl->host_header = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  impl->host_header += ":" + std::to_string(port);
  co_return Connection(std::move(impl));
}

Awaitable<core::Result<ResponseHead>> Connection::send(const Request& req,
                                                       std::chrono::milliseconds timeout) {
  auto& im = *impl_;
  if (im.broken) {
    co_return core::Error(core::Errc::unavailable, "http.send",
                          "the connection failed earlier; open a new one");
  }
  bhttp::request<bhttp::string_body> r;
  r.version(11);
  const auto verb = bhttp::string_to_verb(req.method);
  if (verb == bhttp::verb::unknown) {
    r.method_string(req.method);
  } else {
    r.method(verb);
  }
  r.target(req.target.empty() ? "/" : req.target);
  r.set(bhttp::field::host, im.host_header);
  for (const auto& [k, v] : req.headers.fields()) {
    if (iequals(k, "Host") || iequals(k, "Content-Length") || iequals(k, "Transfer-Encoding")) {
      continue;
    }
    r.insert(k, v);
  }
  r.body() = req.body;
  r.prepare_payload();
  set_expiry(im.stream.tcp_layer(), timeout);
  {
    auto [ec, n] = co_await bhttp::async_write(im.stream, r, use_tuple);
    (void)n;
    if (ec) {
      im.broken = true;
      co_return net_error("http.send", "sending " + req.method + " " + req.target, ec, timeout);
    }
  }
  im.parser.emplace();
  im.parser->header_limit(64 * 1024);
  im.parser->body_limit(std::numeric_limits<std::uint64_t>::max());
  if (req.method == "HEAD") im.parser->skip(true);
  im.sse = SseParser();
  auto [ec, n] = co_await bhttp::async_read_header(im.stream, im.buf, *im.parser, use_tuple);
  (void)n;
  if (ec) {
    im.broken = true;
    co_return net_error("http.read", "reading the response to " + req.method + " " + req.target, ec,
                        timeout);
  }
  const auto& msg = im.parser->get();
  ResponseHead head;
  head.status = static_cast<int>(msg.result_int());
  for (const auto& f : msg) head.headers.add(std::string(f.name_string()), std::string(f.value()));
  im.keep_alive = msg.keep_alive();
  im.done = im.parser->is_done();
  co_return head;
}

Awaitable<core::Result<std::string>> Connection::read_some(std::chrono::milliseconds timeout) {
  auto& im = *impl_;
  if (im.done || !im.parser) co_return std::string();
  for (;;) {
    auto& body = im.parser->get().body();
    body.data = im.chunk;
    body.size = sizeof(im.chunk);
    body.more = true;
    set_expiry(im.stream.tcp_layer(), timeout);
    auto [ec, n] = co_await bhttp::async_read_some(im.stream, im.buf, *im.parser, use_tuple);
    (void)n;
    if (ec == bhttp::error::need_buffer) ec = {};
    if (ec) {
      im.broken = true;
      co_return net_error("http.read", "reading the response body", ec, timeout);
    }
    const std::size_t got = sizeof(im.chunk) - body.size;
    if (im.parser->is_done()) im.done = true;
    if (got > 0) co_return std::string(im.chunk, got);
    if (im.done) co_return std::string();
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
    if (!im.sse.feed(*piece)) {
      im.broken = true;
      co_return core::Error(core::Errc::unavailable, "http.sse_too_large",
                            "an SSE event exceeds the parser's buffer");
    }
  }
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

bool Connection::body_done() const {
  return impl_->done;
}

bool Connection::reusable() const {
  return impl_->keep_alive && impl_->done && !impl_->broken &&
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

core::Result<Response> Client::request(std::string_view method, std::string_view url,
                                       const Headers& headers, std::string body,
                                       std::chrono::milliseconds timeout,
                                       std::uint64_t body_limit) const {
  auto u = parse_url(url);
  if (!u) return u.error();
  std::optional<TlsClientOptions> tls;
  if (u->scheme == "https") tls = tls_;
  Request req;
  req.method = std::string(method);
  req.target = u->target;
  req.headers = headers;
  req.body = std::move(body);
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
  if (!out) {
    return core::Error(core::Errc::internal, "http.internal", "the request did not complete");
  }
  return std::move(*out);
}

core::Result<Response> Client::post_json(std::string_view url, std::string json,
                                         std::chrono::milliseconds timeout,
                                         const Headers& headers) const {
  Headers h = headers;
  h.set("Content-Type", "application/json");
  return request("POST", url, h, std::move(json), timeout);
}

}  // namespace openstation::http
