#include "http/server.hpp"

#include "http/detail/beast.hpp"
#include "http/detail/stream.hpp"
#include "http/detail/tls.hpp"

#include <openssl/ssl.h>
#include <boost/asio/ssl/error.hpp>

#include <spdlog/spdlog.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

namespace openstation::http {

namespace {

using detail::DualStream;
using detail::tcp;
using detail::use_tuple;
namespace bhttp = detail::bhttp;
namespace beast = detail::beast;

/// One connection. `busy` is true from the first byte of a request until its response is
/// written; it and the stream are touched only on the session's strand.
struct Session {
  explicit Session(tcp::socket s) : stream(std::move(s)) {}
  Session(tcp::socket s, asio::ssl::context& ctx) : stream(std::move(s), ctx) {}
  DualStream stream;
  bool busy = false;
  /// Closes the TCP connection (pending operations end).
  void close() { stream.tcp_layer().close(); }
};

void set_expiry(beast::tcp_stream& s, std::chrono::milliseconds d) {
  if (d.count() > 0) {
    s.expires_after(d);
  } else {
    s.expires_never();
  }
}

void set_expiry(DualStream& s, std::chrono::milliseconds d) {
  set_expiry(s.tcp_layer(), d);
}

/// A peer that went away: nothing to answer.
bool is_disconnect(const beast::error_code& ec) {
  return ec == beast::error::timeout || ec == bhttp::error::end_of_stream ||
         ec == asio::error::eof || ec == asio::error::operation_aborted ||
         ec == asio::error::connection_reset || ec == asio::ssl::error::stream_truncated;
}

/// A wake-up signal for coroutines on one strand: wait() returns once notify() was called (or
/// immediately if it already was).
class Signal {
 public:
  explicit Signal(const asio::any_io_executor& ex) : timer_(ex) {
    timer_.expires_at(std::chrono::steady_clock::time_point::max());
  }
  void notify() {
    fired_ = true;
    timer_.cancel();
  }
  bool fired() const { return fired_; }
  Awaitable<void> wait() {
    if (!fired_) co_await timer_.async_wait(use_tuple);
  }

 private:
  asio::steady_timer timer_;
  bool fired_ = false;
};

class StreamImpl final : public ResponseStream {
 public:
  StreamImpl(Session& s, beast::flat_buffer& buf, const ServerOptions& opt, unsigned version,
             bool keep_alive)
      : s_(s),
        buf_(buf),
        opt_(opt),
        version_(version),
        keep_alive_(keep_alive),
        gone_(s.stream.get_executor()),
        watch_done_(s.stream.get_executor()) {}

  Awaitable<bool> start(int status, Headers headers) override {
    if (started_ || disconnected_) co_return false;
    started_ = true;
    bhttp::response<bhttp::empty_body> res{static_cast<bhttp::status>(status), version_};
    res.set(bhttp::field::server, opt_.server_header);
    headers.erase("Content-Length");
    headers.erase("Transfer-Encoding");
    if (auto c = headers.get("Connection"); c && iequals(*c, "close")) keep_alive_ = false;
    headers.erase("Connection");
    for (const auto& [k, v] : headers.fields()) res.insert(k, v);
    res.keep_alive(keep_alive_);
    res.chunked(true);
    bhttp::response_serializer<bhttp::empty_body> sr{res};
    set_expiry(s_.stream, opt_.write_timeout);
    auto [ec, n] = co_await bhttp::async_write_header(s_.stream, sr, use_tuple);
    (void)n;
    if (ec) {
      mark_gone();
      co_return false;
    }
    watching_ = true;
    // The watcher's read must not inherit a write deadline (a quiet stream is not a dead one).
    // Over TLS it reads through the TLS layer, whose reads go through the TCP layer's timer.
    if (s_.stream.secure()) s_.stream.tcp_layer().expires_never();
    asio::co_spawn(s_.stream.get_executor(), watch(), asio::detached);
    co_return true;
  }

  Awaitable<bool> respond(Response res) override {
    if (started_ || disconnected_) co_return false;
    started_ = true;
    finished_ = true;
    bhttp::response<bhttp::string_body> out{static_cast<bhttp::status>(res.status), version_};
    out.set(bhttp::field::server, opt_.server_header);
    if (auto c = res.headers.get("Connection"); c && iequals(*c, "close")) keep_alive_ = false;
    res.headers.erase("Connection");
    res.headers.erase("Content-Length");
    res.headers.erase("Transfer-Encoding");
    for (const auto& [k, v] : res.headers.fields()) out.insert(k, v);
    out.keep_alive(keep_alive_);
    out.body() = std::move(res.body);
    out.prepare_payload();
    set_expiry(s_.stream, opt_.write_timeout);
    auto [ec, n] = co_await bhttp::async_write(s_.stream, out, use_tuple);
    (void)n;
    gone_.notify();
    if (ec) {
      disconnected_ = true;
      co_return false;
    }
    co_return true;
  }

  Awaitable<bool> write(std::string_view data) override {
    if (!started_ && !co_await start(200, {})) co_return false;
    if (finished_ || disconnected_) co_return false;
    if (data.empty()) co_return true;
    set_expiry(s_.stream, opt_.write_timeout);
    auto [ec, n] =
        co_await asio::async_write(s_.stream, bhttp::make_chunk(asio::buffer(data)), use_tuple);
    (void)n;
    if (ec) {
      mark_gone();
      co_return false;
    }
    co_return true;
  }

  Awaitable<bool> finish() override {
    if (!started_ || finished_ || disconnected_) co_return false;
    finished_ = true;
    set_expiry(s_.stream, opt_.write_timeout);
    auto [ec, n] = co_await asio::async_write(s_.stream, bhttp::make_chunk_last(), use_tuple);
    (void)n;
    gone_.notify();  // wakes wait_disconnected(): the stream is over
    if (ec) {
      disconnected_ = true;
      co_return false;
    }
    co_return true;
  }

  bool disconnected() const override { return disconnected_; }
  bool started() const override { return started_; }
  bool finished() const { return finished_; }
  bool keep_alive() const { return keep_alive_ && finished_ && !disconnected_; }

  Awaitable<void> wait_disconnected() override {
    if (disconnected_ || finished_) co_return;
    co_await gone_.wait();
  }

  /// Stops the disconnect watcher and waits for it, so the session may read again.
  Awaitable<void> stop_watching() {
    if (!watching_) co_return;
    if (!watch_done_.fired()) {
      stop_requested_ = true;
      beast::error_code ec;
      s_.stream.tcp_layer().socket().cancel(ec);
      co_await watch_done_.wait();
    }
  }

 private:
  void mark_gone() {
    disconnected_ = true;
    gone_.notify();
  }

  /// Reads from the raw socket while the handler streams: an error or EOF means the client left.
  /// Bytes that arrive (a pipelined next request) are kept in the session's buffer.
  Awaitable<void> watch() {
    beast::error_code ec;
    std::size_t n = 0;
    if (s_.stream.secure()) {
      std::tie(ec, n) = co_await s_.stream.async_read_some(buf_.prepare(4096), use_tuple);
    } else {
      std::tie(ec, n) =
          co_await s_.stream.tcp_layer().socket().async_read_some(buf_.prepare(4096), use_tuple);
    }
    buf_.commit(n);
    // An error is a disconnect unless stop_watching() cancelled the read on purpose (a socket
    // closed by the server's stop also ends the read with operation_aborted).
    if (ec && !(stop_requested_ && ec == asio::error::operation_aborted)) mark_gone();
    watch_done_.notify();
  }

  Session& s_;
  beast::flat_buffer& buf_;
  const ServerOptions& opt_;
  unsigned version_;
  bool keep_alive_;
  bool started_ = false;
  bool finished_ = false;
  bool disconnected_ = false;
  bool watching_ = false;
  bool stop_requested_ = false;
  Signal gone_;
  Signal watch_done_;
};

}  // namespace

Awaitable<bool> ResponseStream::start_sse(Headers extra) {
  Headers h;
  h.set("Content-Type", "text/event-stream");
  h.set("Cache-Control", "no-cache");
  h.set("X-Accel-Buffering", "no");
  for (const auto& [k, v] : extra.fields()) h.set(k, v);
  co_return co_await start(200, std::move(h));
}

Awaitable<bool> ResponseStream::write_event(const SseEvent& event) {
  const std::string text = format_sse(event);
  co_return co_await write(text);
}

// ---------------------------------------------------------------------------------------------
// Router

void Router::add(Route route) {
  routes_.push_back(std::move(route));
}

bool Router::match_pattern(std::string_view pattern, std::string_view path,
                           std::vector<std::pair<std::string, std::string>>& params) {
  params.clear();
  std::size_t pi = 0;
  std::size_t si = 0;
  for (;;) {
    const bool p_end = pi >= pattern.size();
    const bool s_end = si >= path.size();
    if (p_end || s_end) return p_end && s_end;
    const auto p_next = pattern.find('/', pi + 1);
    std::string_view pseg =
        pattern.substr(pi, p_next == std::string_view::npos ? pattern.npos : p_next - pi);
    if (pseg == "/*") {
      params.emplace_back("*", std::string(path.substr(si + 1)));
      return true;
    }
    const auto s_next = path.find('/', si + 1);
    std::string_view sseg =
        path.substr(si, s_next == std::string_view::npos ? path.npos : s_next - si);
    if (pseg.size() > 3 && pseg[1] == '{' && pseg.back() == '}') {
      if (sseg.size() < 2 || sseg[0] != '/') return false;
      params.emplace_back(std::string(pseg.substr(2, pseg.size() - 3)),
                          percent_decode(sseg.substr(1), false));
    } else if (pseg != sseg) {
      return false;
    }
    pi += pseg.size();
    si += sseg.size();
  }
}

Router::Match Router::match(std::string_view method, std::string_view path) const {
  Match m;
  std::vector<std::pair<std::string, std::string>> params;
  for (const auto& r : routes_) {
    if (!match_pattern(r.pattern, path, params)) continue;
    if (r.method == "*" || r.method == method || (method == "HEAD" && r.method == "GET")) {
      m.route = &r;
      m.params = std::move(params);
      m.allowed.clear();
      return m;
    }
    if (std::find(m.allowed.begin(), m.allowed.end(), r.method) == m.allowed.end()) {
      m.allowed.push_back(r.method);
    }
  }
  return m;
}

// ---------------------------------------------------------------------------------------------
// Server

struct Server::Impl {
  explicit Impl(ServerOptions o) : opt(std::move(o)) {
    if (opt.threads < 1) opt.threads = 1;
    if (!opt.error_formatter) {
      opt.error_formatter = [](int status, const core::Error& e) {
        return Response::error(status, e);
      };
    }
  }

  ServerOptions opt;
  Router router;
  std::shared_ptr<asio::ssl::context> tls;  ///< set by start() when opt.tls is
  asio::io_context ioc;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  tcp::acceptor acceptor{asio::make_strand(ioc)};
  std::vector<std::thread> threads;
  std::uint16_t port = 0;
  std::atomic<bool> stopping{false};
  std::atomic<bool> running{false};
  std::atomic<std::size_t> in_flight{0};
  mutable std::mutex mu;
  std::condition_variable cv;
  std::set<std::shared_ptr<Session>> sessions;

  Response error(int status, std::string code, std::string message) const {
    core::Errc cat = core::Errc::invalid_argument;
    if (status == 404) cat = core::Errc::not_found;
    if (status >= 500) cat = core::Errc::internal;
    return opt.error_formatter(status, core::Error(cat, std::move(code), std::move(message)));
  }

  Awaitable<void> accept_loop() {
    for (;;) {
      asio::any_io_executor ex = asio::make_strand(ioc);
      auto [ec, sock] = co_await acceptor.async_accept(ex, use_tuple);
      if (stopping || !acceptor.is_open()) co_return;
      if (ec) {
        spdlog::debug("http: accept failed: {}", ec.message());
        if (ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space) {
          asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(50));
          co_await t.async_wait(use_tuple);
        }
        continue;
      }
      beast::error_code ignored;
      sock.set_option(tcp::no_delay(true), ignored);
      auto s = tls ? std::make_shared<Session>(std::move(sock), *tls)
                   : std::make_shared<Session>(std::move(sock));
      {
        std::lock_guard lock(mu);
        sessions.insert(s);
      }
      asio::co_spawn(s->stream.get_executor(), run_connection(s),
                     [this, s](const std::exception_ptr& ep) {
                       if (ep) {
                         try {
                           std::rethrow_exception(ep);
                         } catch (const std::exception& e) {
                           spdlog::warn("http: session ended with an exception: {}", e.what());
                         } catch (...) {
                         }
                       }
                       std::lock_guard lock(mu);
                       sessions.erase(s);
                       cv.notify_all();
                     });
    }
  }

  /// Writes a complete response; false if the write failed.
  Awaitable<bool> write_response(Session& s, Response res, unsigned version, bool keep_alive,
                                 bool head_only) {
    bhttp::response<bhttp::string_body> out{static_cast<bhttp::status>(res.status), version};
    out.set(bhttp::field::server, opt.server_header);
    if (auto c = res.headers.get("Connection"); c && iequals(*c, "close")) keep_alive = false;
    res.headers.erase("Connection");
    res.headers.erase("Content-Length");
    res.headers.erase("Transfer-Encoding");
    for (const auto& [k, v] : res.headers.fields()) out.insert(k, v);
    out.keep_alive(keep_alive);
    const std::size_t size = res.body.size();
    if (!head_only) out.body() = std::move(res.body);
    out.prepare_payload();
    if (head_only) out.content_length(size);
    set_expiry(s.stream, opt.write_timeout);
    bhttp::response_serializer<bhttp::string_body> sr{out};
    if (head_only) {
      auto [ec, n] = co_await bhttp::async_write_header(s.stream, sr, use_tuple);
      (void)n;
      co_return !ec;
    }
    auto [ec, n] = co_await bhttp::async_write(s.stream, sr, use_tuple);
    (void)n;
    co_return !ec;
  }

  Awaitable<void> run_session(std::shared_ptr<Session> sp) {
    Session& s = *sp;
    beast::flat_buffer buf;
    std::string remote;
    {
      beast::error_code ec;
      auto ep = s.stream.tcp_layer().socket().remote_endpoint(ec);
      if (!ec) remote = ep.address().to_string();
    }
    std::size_t served = 0;
    for (;;) {
      s.busy = false;
      if (stopping) break;
      if (buf.size() == 0) {
        // Idle: wait for the first byte of the next request.
        set_expiry(s.stream, served == 0 ? opt.header_timeout : opt.idle_timeout);
        auto [ec, n] = co_await s.stream.async_read_some(buf.prepare(8192), use_tuple);
        if (ec) break;
        buf.commit(n);
      }
      s.busy = true;
      bhttp::request_parser<bhttp::string_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(opt.header_limit));
      parser.body_limit(opt.body_limit);
      set_expiry(s.stream, opt.header_timeout);
      {
        auto [ec, n] = co_await bhttp::async_read_header(s.stream, buf, parser, use_tuple);
        (void)n;
        if (ec == bhttp::error::header_limit) {
          co_await write_response(s,
                                  error(431, "http.header_too_large",
                                        "the request line and headers exceed " +
                                            std::to_string(opt.header_limit) + " bytes"),
                                  11, false, false);
          break;
        }
        if (ec == bhttp::error::body_limit) {  // Content-Length above the limit
          co_await write_response(s, too_large(), 11, false, false);
          break;
        }
        if (is_disconnect(ec)) break;
        if (ec) {
          co_await write_response(
              s, error(400, "http.bad_request", "malformed HTTP request: " + ec.message()), 11,
              false, false);
          break;
        }
      }
      auto& head = parser.get();
      const unsigned version = head.version();
      if (auto len = parser.content_length(); len && *len > opt.body_limit) {
        co_await write_response(s, too_large(), version, false, false);
        break;
      }
      if (!parser.is_done()) {
        if (iequals(head[bhttp::field::expect], "100-continue")) {
          bhttp::response<bhttp::empty_body> cont{bhttp::status::continue_, version};
          set_expiry(s.stream, opt.write_timeout);
          auto [ec, n] = co_await bhttp::async_write(s.stream, cont, use_tuple);
          (void)n;
          if (ec) break;
        }
        set_expiry(s.stream, opt.body_timeout);
        auto [ec, n] = co_await bhttp::async_read(s.stream, buf, parser, use_tuple);
        (void)n;
        if (ec == bhttp::error::body_limit) {
          co_await write_response(s, too_large(), version, false, false);
          break;
        }
        if (ec) break;
      }
      ++served;
      in_flight.fetch_add(1);
      struct InFlight {
        std::atomic<std::size_t>& n;
        ~InFlight() { n.fetch_sub(1); }
      } guard{in_flight};

      Request req;
      req.method = std::string(head.method_string());
      req.target = std::string(head.target());
      for (const auto& f : head)
        req.headers.add(std::string(f.name_string()), std::string(f.value()));
      req.body = std::move(head.body());
      req.remote_address = remote;
      bool keep_alive =
          head.keep_alive() && !stopping &&
          (opt.max_requests_per_connection == 0 || served < opt.max_requests_per_connection);
      const bool head_only = req.method == "HEAD";

      auto m = router.match(req.method, req.path());
      if (m.route != nullptr) {
        for (auto& [k, v] : m.params) req.params.emplace(std::move(k), std::move(v));
      }
      if (m.route != nullptr && m.route->stream_handler) {
        StreamImpl st(s, buf, opt, version, keep_alive);
        std::string failure;
        try {
          co_await m.route->stream_handler(req, st);
        } catch (const std::exception& e) {
          failure = e.what();
        } catch (...) {
          failure = "unknown exception";
        }
        co_await st.stop_watching();
        if (!st.started()) {
          if (failure.empty()) failure = "the handler sent no response";
          spdlog::error("http: {} {}: {}", req.method, req.path(), failure);
          if (!co_await write_response(s, error(500, "http.internal", "internal error: " + failure),
                                       version, keep_alive, head_only)) {
            break;
          }
          continue;
        }
        if (!failure.empty()) {
          spdlog::error("http: {} {} failed mid-stream: {}", req.method, req.path(), failure);
          break;  // the body cannot be completed correctly: close
        }
        if (!st.finished() && !st.disconnected()) co_await st.finish();
        if (!st.keep_alive() || stopping) break;
        continue;
      }

      Response res;
      if (m.route == nullptr) {
        if (m.allowed.empty()) {
          res = error(404, "http.not_found", "no route for " + std::string(req.path()));
        } else {
          res = error(405, "http.method_not_allowed",
                      req.method + " is not allowed on " + std::string(req.path()) +
                          "; allowed: " + core_join(m.allowed));
          res.headers.set("Allow", core_join(m.allowed));
        }
      } else {
        std::string failure;
        try {
          res = co_await m.route->handler(req);
        } catch (const std::exception& e) {
          failure = e.what();
        } catch (...) {
          failure = "unknown exception";
        }
        if (!failure.empty()) {
          spdlog::error("http: {} {}: {}", req.method, req.path(), failure);
          res = error(500, "http.internal", "internal error: " + failure);
        }
      }
      if (stopping) keep_alive = false;
      if (auto c = res.headers.get("Connection"); c && iequals(*c, "close")) keep_alive = false;
      if (!co_await write_response(s, std::move(res), version, keep_alive, head_only)) break;
      if (!keep_alive) break;
    }
  }

  /// One connection: the TLS handshake (when TLS is on), the HTTP session, then the close.
  Awaitable<void> run_connection(std::shared_ptr<Session> sp) {
    Session& s = *sp;
    if (auto* ts = s.stream.tls()) {
      set_expiry(s.stream, opt.header_timeout);
      auto [ec] = co_await ts->async_handshake(asio::ssl::stream_base::server, use_tuple);
      if (ec) {
        if (detail::is_plain_http_on_tls(ec) && !stopping) co_await refuse_plain_http(s);
        spdlog::debug("http: TLS handshake failed: {}", ec.message());
        beast::error_code ignored;
        s.stream.tcp_layer().socket().shutdown(tcp::socket::shutdown_send, ignored);
        s.close();
        co_return;
      }
    }
    co_await run_session(sp);
    if (auto* ts = s.stream.tls(); ts != nullptr && s.stream.tcp_layer().socket().is_open()) {
      // Send close_notify without waiting for the peer's: mark the peer's as received, so
      // the shutdown completes once ours is written.
      SSL* ssl = ts->native_handle();
      SSL_set_shutdown(ssl, SSL_get_shutdown(ssl) | SSL_RECEIVED_SHUTDOWN);
      const auto limit = opt.write_timeout.count() > 0
                             ? std::min(opt.write_timeout, std::chrono::milliseconds(2000))
                             : std::chrono::milliseconds(2000);
      set_expiry(s.stream, limit);
      co_await ts->async_shutdown(use_tuple);
    }
    beast::error_code ec;
    s.stream.tcp_layer().socket().shutdown(tcp::socket::shutdown_send, ec);
    s.close();
  }

  /// A plain HTTP request reached the TLS port: say so in plain HTTP, then close.
  Awaitable<void> refuse_plain_http(Session& s) {
    Response res =
        error(400, "http.tls_required", "this port speaks HTTPS only; use https:// in the URL");
    std::string out =
        "HTTP/1.1 400 Bad Request\r\nServer: " + opt.server_header + "\r\nConnection: close\r\n";
    for (const auto& [k, v] : res.headers.fields()) {
      if (iequals(k, "Content-Length") || iequals(k, "Connection")) continue;
      out += k + ": " + v + "\r\n";
    }
    out += "Content-Length: " + std::to_string(res.body.size()) + "\r\n\r\n" + res.body;
    set_expiry(s.stream, opt.write_timeout);
    co_await asio::async_write(s.stream.tcp_layer(), asio::buffer(out), use_tuple);
  }

  Response too_large() const {
    return error(
        413, "http.body_too_large",
        "the request body exceeds the limit of " + std::to_string(opt.body_limit) + " bytes");
  }

  static std::string core_join(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) {
      if (!out.empty()) out += ", ";
      out += s;
    }
    return out;
  }
};

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Server::~Server() {
  stop(std::chrono::milliseconds(0));
}

void Server::route(std::string method, std::string pattern, Handler handler) {
  impl_->router.add({std::move(method), std::move(pattern), std::move(handler), {}});
}

void Server::stream(std::string method, std::string pattern, StreamHandler handler) {
  impl_->router.add({std::move(method), std::move(pattern), {}, std::move(handler)});
}

const Router& Server::router() const {
  return impl_->router;
}

core::Result<void> Server::start() {
  auto& im = *impl_;
  if (im.running)
    return core::Error(core::Errc::conflict, "http.running", "server already started");
  const std::string where = im.opt.host + ":" + std::to_string(im.opt.port);
  if (im.opt.tls) {
    auto ctx = detail::make_server_context(*im.opt.tls);
    if (!ctx) return ctx.error();
    im.tls = std::move(*ctx);
  } else {
    im.tls.reset();
  }
  beast::error_code ec;
  tcp::endpoint ep;
  auto addr = asio::ip::make_address(im.opt.host, ec);
  if (ec) {
    tcp::resolver resolver(im.ioc);
    auto results = resolver.resolve(im.opt.host, std::to_string(im.opt.port), ec);
    if (ec || results.empty()) {
      return core::Error(core::Errc::invalid_argument, "http.resolve",
                         "cannot resolve listen host '" + im.opt.host + "': " + ec.message() +
                             "; use an IP address such as 0.0.0.0 or 127.0.0.1",
                         "host");
    }
    ep = results.begin()->endpoint();
  } else {
    ep = tcp::endpoint(addr, im.opt.port);
  }
  im.acceptor.open(ep.protocol(), ec);
  if (!ec) im.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) im.acceptor.bind(ep, ec);
  if (!ec) im.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    beast::error_code ignored;
    im.acceptor.close(ignored);
    std::string hint;
    if (ec == asio::error::address_in_use) {
      hint = "; another process listens on this port (find it with `ss -ltnp 'sport = :" +
             std::to_string(im.opt.port) + "'`) or choose another port";
    } else if (ec == asio::error::access_denied) {
      hint = "; ports below 1024 need root or CAP_NET_BIND_SERVICE";
    }
    return core::Error(core::Errc::unavailable, "http.bind",
                       "cannot listen on " + where + ": " + ec.message() + hint, "port");
  }
  im.port = im.acceptor.local_endpoint(ec).port();
  im.stopping = false;
  im.running = true;
  im.work.emplace(im.ioc.get_executor());
  asio::co_spawn(im.acceptor.get_executor(), im.accept_loop(), asio::detached);
  for (int i = 0; i < im.opt.threads; ++i) {
    im.threads.emplace_back([&im] {
      for (;;) {
        try {
          im.ioc.run();
          return;
        } catch (const std::exception& e) {
          spdlog::error("http: I/O thread caught: {}", e.what());
        }
      }
    });
  }
  return {};
}

std::uint16_t Server::port() const {
  return impl_->port;
}

asio::any_io_executor Server::executor() const {
  return impl_->ioc.get_executor();
}

std::size_t Server::in_flight() const {
  return impl_->in_flight.load();
}

std::size_t Server::connections() const {
  std::lock_guard lock(impl_->mu);
  return impl_->sessions.size();
}

void Server::stop(std::chrono::milliseconds grace) {
  auto& im = *impl_;
  if (!im.running.exchange(false)) return;
  im.stopping = true;
  asio::post(im.acceptor.get_executor(), [&im] {
    beast::error_code ec;
    im.acceptor.close(ec);
  });
  {
    std::unique_lock lock(im.mu);
    for (const auto& s : im.sessions) {
      asio::post(s->stream.get_executor(), [s] {
        if (!s->busy) s->close();
      });
    }
    im.cv.wait_for(lock, grace, [&] { return im.sessions.empty(); });
    for (const auto& s : im.sessions) {
      asio::post(s->stream.get_executor(), [s] { s->close(); });
    }
    im.cv.wait_for(lock, std::chrono::seconds(5), [&] { return im.sessions.empty(); });
  }
  im.work.reset();
  im.ioc.stop();
  for (auto& t : im.threads) {
    if (t.joinable()) t.join();
  }
  im.threads.clear();
}

}  // namespace openstation::http
