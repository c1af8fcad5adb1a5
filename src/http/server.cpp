#include "http/server.hpp"

#include "core/sharded.hpp"
#include "core/thread_name.hpp"

#include "http/detail/beast.hpp"
#include "http/detail/deadline.hpp"
#include "http/detail/in_buffer.hpp"
#include "http/detail/stream.hpp"
#include "http/detail/tls.hpp"
#include "http/http1.hpp"

#include <openssl/ssl.h>
#include <boost/asio/ssl/error.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

namespace openstation::http {

namespace {

using detail::Deadline;
using detail::DualStream;
using detail::InBuffer;
using detail::tcp;
using detail::use_tuple;
namespace beast = detail::beast;

/// One connection. `busy` is true from the first byte of a request until its response is
/// written; it and the stream are touched only by the thread of the session's io_context.
struct Session {
  explicit Session(tcp::socket s)
      : stream(std::move(s)), deadline(stream.get_executor(), [this] { close(); }) {}
  Session(tcp::socket s, asio::ssl::context& ctx)
      : stream(std::move(s), ctx), deadline(stream.get_executor(), [this] { close(); }) {}
  DualStream stream;
  Deadline deadline;
  InBuffer in;
  std::string out;  ///< the head being written
  wire::Head head;  ///< the request head being parsed (its field list is reused)
  std::string why;  ///< what was wrong with a malformed request (kept out of the read's frame)
  bool busy = false;
  /// An error was answered before the request's body was read: close gracefully (see
  /// Impl::linger), or the client may get a reset instead of the answer.
  bool linger = false;

  /// Closes the TCP connection (pending operations end).
  void close() {
    beast::error_code ec;
    stream.tcp_layer().socket().close(ec);
  }

  /// One read (TLS or plain), guarded by `deadline`.
  Awaitable<std::tuple<beast::error_code, std::size_t>> read_some(asio::mutable_buffer b) {
    return stream.read_raw(b);
  }
  /// Writes all of `buffers` (one gathered write on a plain socket), guarded by `deadline`.
  template <class Buffers>
  Awaitable<beast::error_code> write(const Buffers& buffers) {
    return stream.write_raw(buffers);
  }
  /// One write under `timeout`; the deadline is lifted afterwards (a stream's disconnect watcher
  /// must not inherit it: a quiet stream is not a dead one). No coroutine frame when the kernel
  /// takes everything at once (DualStream::start_write): `ok` is then the result and nothing is
  /// returned; otherwise the caller awaits the returned rest
  /// (`if (auto rest = timed_write(b, t, ok)) ok = co_await std::move(*rest);`).
  template <class Buffers>
  std::optional<Awaitable<bool>> timed_write(const Buffers& buffers,
                                             std::chrono::milliseconds timeout, bool& ok) {
    deadline.set(timeout);
    beast::error_code ec;
    auto rest = stream.start_write(buffers, ec);
    if (rest) return finish_timed_write(std::move(*rest));
    deadline.clear();
    ok = !ec;
    return std::nullopt;
  }
  Awaitable<bool> finish_timed_write(Awaitable<beast::error_code> rest) {
    const auto ec = co_await std::move(rest);
    deadline.clear();
    co_return !ec;
  }
};

/// Appends a status line and the fields every response shares; `framing`: "Content-Length: n",
/// chunked, or nothing (a body delimited by closing the connection, or none).
void format_head(std::string& out, int status, unsigned minor, std::string_view server,
                 const Headers& headers, bool keep_alive, bool chunked,
                 std::optional<std::size_t> content_length) {
  out.clear();
  if (status == 200 && minor != 0) {
    out.append("HTTP/1.1 200 OK\r\n", 17);  // nearly every response
  } else {
    out.append(minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ", 9);
    char digits[8];
    auto [p, ec] = std::to_chars(digits, digits + sizeof(digits), status);
    (void)ec;
    out.append(digits, p);
    out.push_back(' ');
    out.append(reason_phrase(status));
    out.append("\r\n", 2);
  }
  wire::append_field(out, "Server", server);
  for (const auto& [k, v] : headers.fields()) {
    if (iequals(k, "Connection") || iequals(k, "Content-Length") ||
        iequals(k, "Transfer-Encoding") || iequals(k, "Server")) {
      continue;
    }
    wire::append_field(out, k, v);
  }
  const bool bodiless = (status >= 100 && status < 200) || status == 204 || status == 304;
  if (chunked) {
    out.append("Transfer-Encoding: chunked\r\n");
  } else if (content_length && !bodiless) {
    char len[24];
    auto [q, ec2] = std::to_chars(len, len + sizeof(len), *content_length);
    (void)ec2;
    out.append("Content-Length: ", 16).append(len, q).append("\r\n", 2);
  }
  if (minor == 0 && keep_alive) out.append("Connection: keep-alive\r\n");
  if (minor != 0 && !keep_alive) out.append("Connection: close\r\n");
  out.append("\r\n", 2);
}

/// A wake-up signal for coroutines on one io_context (one thread): wait() returns once notify() was
/// called (or immediately if it already was). Its timer is made by the first wait(): a response
/// that is not streamed never waits, and making a timer takes the io_context's service lock.
class Signal {
 public:
  explicit Signal(const asio::any_io_executor& ex) : ex_(ex) {}
  void notify() {
    fired_ = true;
    if (timer_) timer_->cancel();
  }
  bool fired() const { return fired_; }
  Awaitable<void> wait() {
    if (fired_) co_return;
    if (!timer_) timer_.emplace(ex_, std::chrono::steady_clock::time_point::max());
    co_await timer_->async_wait(use_tuple);
  }

 private:
  asio::any_io_executor ex_;
  std::optional<asio::steady_timer> timer_;
  bool fired_ = false;
};

class StreamImpl final : public ResponseStream {
 public:
  StreamImpl(Session& s, const ServerOptions& opt, unsigned minor, bool keep_alive)
      : s_(s),
        opt_(opt),
        minor_(minor),
        keep_alive_(keep_alive),
        gone_(s.stream.get_executor()),
        watch_done_(s.stream.get_executor()) {}

  Awaitable<bool> start(int status, Headers headers) override {
    if (started_ || disconnected_) co_return false;
    started_ = true;
    if (auto c = headers.get("Connection"); c && iequals(*c, "close")) keep_alive_ = false;
    // HTTP/1.0 has no chunked coding: the body ends when the connection closes.
    chunked_ = minor_ != 0;
    if (!chunked_) keep_alive_ = false;
    format_head(s_.out, status, minor_, opt_.server_header, headers, keep_alive_, chunked_,
                std::nullopt);
    bool ok = false;
    if (auto rest = timed_write(asio::buffer(s_.out), ok)) ok = co_await std::move(*rest);
    if (!ok) {
      mark_gone();
      co_return false;
    }
    watching_ = true;
    watch();
    co_return true;
  }

  Awaitable<bool> respond(const Response& res) override {
    if (started_ || disconnected_) co_return false;
    started_ = true;
    finished_ = true;
    if (auto c = res.headers.get("Connection"); c && iequals(*c, "close")) keep_alive_ = false;
    format_head(s_.out, res.status, minor_, opt_.server_header, res.headers, keep_alive_, false,
                res.body.size());
    const std::array<asio::const_buffer, 2> bufs{asio::buffer(s_.out), asio::buffer(res.body)};
    bool ok = false;
    if (auto rest = timed_write(bufs, ok)) ok = co_await std::move(*rest);
    co_return ended(ok);
  }

  Awaitable<bool> write(std::string_view data) override {
    if (!started_ && !co_await start(200, {})) co_return false;
    if (finished_ || disconnected_) co_return false;
    if (data.empty()) co_return true;
    bool ok = false;
    if (auto rest = write_now(data, ok)) ok = co_await std::move(*rest);
    co_return ok;
  }

  std::optional<Awaitable<bool>> write_now(std::string_view data, bool& ok) override {
    if (!started_ || finished_ || disconnected_ || data.empty()) return write(data);
    std::optional<Awaitable<bool>> rest;
    if (chunked_) {
      chunk_head_.clear();
      wire::append_chunk_size(chunk_head_, data.size());
      // The pieces are copied into the rest's frame; what they point to (this stream, the
      // caller's data, a literal) outlives it.
      const std::array<asio::const_buffer, 3> bufs{asio::buffer(chunk_head_), asio::buffer(data),
                                                   asio::buffer("\r\n", 2)};
      rest = timed_write(bufs, ok);
    } else {
      rest = timed_write(asio::buffer(data), ok);
    }
    if (rest) return finish_write(std::move(*rest));
    if (!ok) mark_gone();
    return std::nullopt;
  }

  Awaitable<bool> finish() override {
    if (!started_ || finished_ || disconnected_) co_return false;
    finished_ = true;
    bool ok = true;
    if (chunked_) {
      if (auto rest = timed_write(asio::buffer("0\r\n\r\n", 5), ok)) ok = co_await std::move(*rest);
    }
    co_return ended(ok);
  }

  Awaitable<bool> write_and_finish(std::string_view data) override {
    if (!started_ && !co_await start(200, {})) co_return false;
    if (data.empty() || !chunked_) {
      if (!co_await write(data)) co_return false;
      co_return co_await finish();
    }
    if (finished_ || disconnected_) co_return false;
    finished_ = true;
    chunk_head_.clear();
    wire::append_chunk_size(chunk_head_, data.size());
    const std::array<asio::const_buffer, 3> bufs{asio::buffer(chunk_head_), asio::buffer(data),
                                                 asio::buffer("\r\n0\r\n\r\n", 7)};
    bool ok = false;
    if (auto rest = timed_write(bufs, ok)) ok = co_await std::move(*rest);
    co_return ended(ok);
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
  /// Session::timed_write under the write timeout.
  template <class Buffers>
  std::optional<Awaitable<bool>> timed_write(const Buffers& b, bool& ok) {
    return s_.timed_write(b, opt_.write_timeout, ok);
  }

  void mark_gone() {
    disconnected_ = true;
    gone_.notify();
  }

  /// The rest of a write_now() that the kernel did not take at once.
  Awaitable<bool> finish_write(Awaitable<bool> rest) {
    const bool ok = co_await std::move(rest);
    if (!ok) mark_gone();
    co_return ok;
  }

  /// After the stream's last write (`ok`: it went out): wakes wait_disconnected(), since the
  /// stream is over either way, and marks the client gone when the write failed.
  bool ended(bool ok) {
    if (!ok) disconnected_ = true;
    gone_.notify();
    return ok;
  }

  /// Reads from the connection while the handler streams: an error or EOF means the client left.
  /// Bytes that arrive (a pipelined next request) are kept in the session's buffer. A plain read
  /// handler, not a coroutine of its own (one per stream); stop_watching() waits for it, so the
  /// stream outlives it, and an I/O context that goes away destroys it unrun.
  void watch() {
    s_.stream.read_raw(s_.in.prepare(4096), [this](const beast::error_code& ec, std::size_t n) {
      s_.in.commit(n);
      // An error is a disconnect unless stop_watching() cancelled the read on purpose (a socket
      // closed by the server's stop also ends the read with operation_aborted).
      if (ec && !(stop_requested_ && ec == asio::error::operation_aborted)) mark_gone();
      watch_done_.notify();
    });
  }

  Session& s_;
  const ServerOptions& opt_;
  unsigned minor_;
  bool keep_alive_;
  bool chunked_ = true;
  bool started_ = false;
  bool finished_ = false;
  bool disconnected_ = false;
  bool watching_ = false;
  bool stop_requested_ = false;
  std::string chunk_head_;
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

bool Router::match_pattern(std::string_view pattern, std::string_view path, PathParams& params) {
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
      params.add("*").assign(path.substr(si + 1));
      return true;
    }
    const auto s_next = path.find('/', si + 1);
    std::string_view sseg =
        path.substr(si, s_next == std::string_view::npos ? path.npos : s_next - si);
    if (pseg.size() > 3 && pseg[1] == '{' && pseg.back() == '}') {
      if (sseg.size() < 2 || sseg[0] != '/') return false;
      params.add(pseg.substr(2, pseg.size() - 3)) = percent_decode(sseg.substr(1), false);
    } else if (pseg != sseg) {
      return false;
    }
    pi += pseg.size();
    si += sseg.size();
  }
}

Router::Match Router::match(std::string_view method, std::string_view path,
                            PathParams& params) const {
  Match m;
  const auto serves = [&](const Route& r) {
    return r.method == "*" || r.method == method || (method == "HEAD" && r.method == "GET");
  };
  // The first route for this method whose pattern matches; only the routes that can serve the
  // method are matched against the path (a POST skips every GET route's pattern).
  for (const auto& r : routes_) {
    if (!serves(r) || !match_pattern(r.pattern, path, params)) continue;
    m.route = &r;
    return m;
  }
  params.clear();
  // None: the methods of the routes whose pattern matches, for a 405.
  PathParams scratch;
  for (const auto& r : routes_) {
    if (!match_pattern(r.pattern, path, scratch)) continue;
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
  /// One io_context per I/O thread, each run by exactly that thread: a connection lives on one
  /// context for its whole life, so its completions never move between threads and need no
  /// strand. Accepted sockets go round-robin to them.
  std::vector<std::unique_ptr<asio::io_context>> iocs = make_contexts(opt.threads);
  /// The acceptor's own context and thread: accepting (rare with keep-alive) never waits behind
  /// a handler that keeps an I/O thread busy.
  asio::io_context accept_ioc{1};
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> work;
  tcp::acceptor acceptor{accept_ioc};
  std::size_t next_ioc = 0;  ///< touched only by the accept loop
  std::vector<std::thread> threads;
  std::uint16_t port = 0;
  std::atomic<bool> stopping{false};
  std::atomic<bool> running{false};
  core::ShardedCounter<> in_flight;  ///< per-thread slots: every request moves it
  mutable std::mutex mu;
  std::condition_variable cv;
  std::set<std::shared_ptr<Session>> sessions;

  /// Each context's sockets and timers are only ever touched by its own thread (sessions, their
  /// upstream connections and deadlines all live there; other threads only post to it, and the
  /// acceptor's registration of a new socket keeps its lock), so the reactor's per-socket locks
  /// are switched off (UNSAFE_IO); the scheduler's queue stays locked for those posts.
  static std::vector<std::unique_ptr<asio::io_context>> make_contexts(int n) {
    std::vector<std::unique_ptr<asio::io_context>> out;
    for (int i = 0; i < std::max(n, 1); ++i) {
      out.push_back(std::make_unique<asio::io_context>(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO));
    }
    return out;
  }

  Response error(int status, std::string code, std::string message) const {
    core::Errc cat = core::Errc::invalid_argument;
    if (status == 404) cat = core::Errc::not_found;
    if (status >= 500) cat = core::Errc::internal;
    return opt.error_formatter(status, core::Error(cat, std::move(code), std::move(message)));
  }

  Awaitable<void> accept_loop() {
    for (;;) {
      asio::any_io_executor ex = iocs[next_ioc]->get_executor();
      next_ioc = (next_ioc + 1) % iocs.size();
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
      auto s = tls ? std::make_shared<Session>(std::move(sock), *tls)
                   : std::make_shared<Session>(std::move(sock));
      s->stream.tune_connected_socket();
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
                       s->deadline.clear();
                       std::lock_guard lock(mu);
                       sessions.erase(s);
                       cv.notify_all();
                     });
    }
  }

  /// Writes a complete response; false if the write failed.
  Awaitable<bool> write_response(Session& s, Response res, unsigned minor, bool keep_alive,
                                 bool head_only) {
    if (auto c = res.headers.get("Connection"); c && iequals(*c, "close")) keep_alive = false;
    format_head(s.out, res.status, minor, opt.server_header, res.headers, keep_alive, false,
                res.body.size());
    // An empty piece (no body, or a HEAD answer) is skipped by the write.
    const std::array<asio::const_buffer, 2> bufs{
        asio::buffer(s.out), head_only ? asio::const_buffer() : asio::buffer(res.body)};
    bool ok = false;
    if (auto rest = s.timed_write(bufs, opt.write_timeout, ok)) ok = co_await std::move(*rest);
    co_return ok;
  }

  /// Reads until `in` holds `want` bytes (the deadline already set); false when the connection
  /// ends first.
  static Awaitable<bool> fill(Session& s, std::size_t want) {
    while (s.in.size() < want) {
      const std::size_t room = std::clamp<std::size_t>(want - s.in.size(), 4096, 1 << 20);
      auto [ec, n] = co_await s.read_some(s.in.prepare(room));
      if (ec) co_return false;
      s.in.commit(n);
    }
    co_return true;
  }

  /// What reading one request gave.
  enum class Got { request, closed, answered };

  /// Answers a request that cannot be served with an error and closes (Got::answered). A
  /// coroutine of its own, so the error response is not part of read_request's frame (which then
  /// stays small enough for Asio's recycling allocator).
  Awaitable<Got> refuse(Session& s, int status, std::string_view code, std::string message,
                        unsigned minor) {
    co_await write_response(s, error(status, std::string(code), std::move(message)), minor, false,
                            false);
    co_return Got::answered;
  }
  Awaitable<Got> refuse_too_large(Session& s, unsigned minor) {
    return refuse(
        s, 413, "http.body_too_large",
        "the request body exceeds the limit of " + std::to_string(opt.body_limit) + " bytes",
        minor);
  }

  /// What the handler sees of the head just parsed into `s.head`: copied before reading the
  /// body moves the buffer.
  static void take_head(Session& s, Request& req, unsigned& minor, bool& keep_alive) {
    minor = static_cast<unsigned>(s.head.minor);
    keep_alive = wire::keep_alive(s.head);
    req.method.assign(s.head.method);
    req.target.assign(s.head.target);
    req.headers.assign(s.head.fields);
  }

  /// The request at the front of `s.in` when all of it has arrived (head, and a body of known
  /// length or none; the usual small request comes in one read), taken into `req` without I/O
  /// and without a coroutine frame. False when more bytes are needed or something is wrong
  /// with it: read_request then reads on, or answers the error.
  bool take_whole_request(Session& s, Request& req, unsigned& minor, bool& keep_alive) const {
    if (wire::parse_request_head(s.in.view(), s.head, s.why) != wire::Parse::complete) {
      return false;
    }
    const auto& head = s.head;
    wire::Framing framing;
    if (head.size == 0 || head.size > opt.header_limit ||
        !wire::request_framing(head, framing, s.why) || framing.kind == wire::Framing::chunked) {
      return false;
    }
    const std::size_t length =
        framing.kind == wire::Framing::sized ? static_cast<std::size_t>(framing.length) : 0;
    if (framing.kind == wire::Framing::sized &&
        (framing.length > opt.body_limit || s.in.size() < head.size + length)) {
      return false;
    }
    take_head(s, req, minor, keep_alive);
    if (length > 0) req.body.assign(s.in.view().substr(head.size, length));
    s.in.consume(head.size + length);
    return true;
  }

  /// Reads one request (head and body) into `req`, its first bytes already in `s.in`. On a
  /// protocol error it writes the error response itself (Got::answered; the connection then
  /// closes).
  Awaitable<Got> read_request(Session& s, Request& req, unsigned& minor, bool& keep_alive) {
    s.deadline.set(opt.header_timeout);
    std::string& why = s.why;
    for (;;) {
      const auto parsed = wire::parse_request_head(s.in.view(), s.head, why);
      if (parsed == wire::Parse::complete) break;
      if (parsed == wire::Parse::error) {
        co_return co_await refuse(s, 400, "http.bad_request", "malformed HTTP request: " + why, 1);
      }
      if (s.in.size() >= opt.header_limit) break;
      const std::size_t room = std::min<std::size_t>(opt.header_limit - s.in.size() + 1, 8192);
      auto [ec, n] = co_await s.read_some(s.in.prepare(room));
      if (ec) co_return Got::closed;
      s.in.commit(n);
    }
    const auto& head = s.head;
    if (head.size == 0 || head.size > opt.header_limit) {
      co_return co_await refuse(
          s, 431, "http.header_too_large",
          "the request line and headers exceed " + std::to_string(opt.header_limit) + " bytes", 1);
    }
    minor = static_cast<unsigned>(head.minor);
    wire::Framing framing;
    if (!wire::request_framing(head, framing, why)) {
      co_return co_await refuse(s, 400, "http.bad_request", "malformed HTTP request: " + why,
                                minor);
    }
    if (framing.kind == wire::Framing::sized && framing.length > opt.body_limit) {
      co_return co_await refuse_too_large(s, minor);
    }
    take_head(s, req, minor, keep_alive);
    const bool expect_continue = [&] {
      auto e = head.get("Expect");
      return e && iequals(*e, "100-continue");
    }();
    const std::size_t head_size = head.size;
    if (framing.kind == wire::Framing::none) {
      s.in.consume(head_size);
      co_return Got::request;
    }
    const bool complete_already =
        framing.kind == wire::Framing::sized && s.in.size() >= head_size + framing.length;
    if (expect_continue && !complete_already) {
      s.out.assign(minor == 0 ? "HTTP/1.0 100 Continue\r\n\r\n" : "HTTP/1.1 100 Continue\r\n\r\n");
      s.deadline.set(opt.write_timeout);
      if (co_await s.write(asio::buffer(s.out))) co_return Got::closed;
    }
    s.deadline.set(opt.body_timeout);
    if (framing.kind == wire::Framing::sized) {
      const auto total = head_size + static_cast<std::size_t>(framing.length);
      if (!co_await fill(s, total)) co_return Got::closed;
      req.body.assign(s.in.view().substr(head_size, static_cast<std::size_t>(framing.length)));
      s.in.consume(total);
      co_return Got::request;
    }
    // Chunked: decode what has arrived, read more until the last chunk.
    s.in.consume(head_size);
    wire::ChunkedDecoder dec;
    for (;;) {
      auto used = dec.feed(s.in.view(), req.body, why);
      if (!used) {
        co_return co_await refuse(s, 400, "http.bad_request",
                                  "malformed chunked request body: " + why, minor);
      }
      s.in.consume(*used);
      if (dec.decoded() > opt.body_limit) co_return co_await refuse_too_large(s, minor);
      if (dec.done()) co_return Got::request;
      auto [ec, n] = co_await s.read_some(s.in.prepare(16384));
      if (ec) co_return Got::closed;
      s.in.commit(n);
    }
  }

  Awaitable<void> run_session(std::shared_ptr<Session> sp) {
    Session& s = *sp;
    std::string remote;
    {
      beast::error_code ec;
      auto ep = s.stream.tcp_layer().socket().remote_endpoint(ec);
      if (!ec) remote = ep.address().to_string();
    }
    std::size_t served = 0;
    // One Request per connection, emptied for each new request: its strings and header fields
    // keep their storage, so a keep-alive client's requests reuse it.
    Request req;
    for (;;) {
      s.busy = false;
      if (stopping) break;
      req.method.clear();
      req.target.clear();
      req.body.clear();
      req.params.clear();
      req.headers.assign({});
      unsigned minor = 1;
      bool keep_alive = true;
      if (s.in.empty()) {
        // Idle: wait for the first byte of the next request (here, not in read_request: a
        // request that then arrives whole needs no coroutine frame to be read).
        s.deadline.set(served == 0 ? opt.header_timeout : opt.idle_timeout);
        auto [ec, n] = co_await s.read_some(s.in.prepare(8192));
        if (ec) break;
        s.in.commit(n);
      }
      s.busy = true;
      if (!take_whole_request(s, req, minor, keep_alive)) {
        const Got got = co_await read_request(s, req, minor, keep_alive);
        if (got == Got::answered) s.linger = true;
        if (got != Got::request) break;
      }
      s.deadline.clear();  // a handler may take as long as it needs (long polls, streams)
      ++served;
      const core::ShardedCounter<>::Hold counting{in_flight};

      req.remote_address = remote;
      keep_alive =
          keep_alive && !stopping &&
          (opt.max_requests_per_connection == 0 || served < opt.max_requests_per_connection);
      const bool head_only = req.method == "HEAD";

      const auto m = router.match(req.method, req.path(), req.params);
      if (m.route != nullptr && m.route->stream_handler) {
        StreamImpl st(s, opt, minor, keep_alive);
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
                                       minor, keep_alive, head_only)) {
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
      if (!co_await write_response(s, std::move(res), minor, keep_alive, head_only)) break;
      if (!keep_alive) break;
    }
  }

  /// One connection: the TLS handshake (when TLS is on), the HTTP session, then the close.
  Awaitable<void> run_connection(std::shared_ptr<Session> sp) {
    Session& s = *sp;
    if (auto* ts = s.stream.tls()) {
      s.deadline.set(opt.header_timeout);
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
      s.deadline.set(limit);
      co_await ts->async_shutdown(use_tuple);
    }
    s.deadline.clear();
    beast::error_code ec;
    s.stream.tcp_layer().socket().shutdown(tcp::socket::shutdown_send, ec);
    if (s.linger && !s.stream.secure()) co_await linger(s);
    s.close();
  }

  /// After an error answered while the client was still sending (413 for a body over the limit,
  /// 400): closing at once with unread bytes makes the kernel send a reset, which can destroy
  /// the answer before the client reads it. So read and drop what still comes, for up to a
  /// second or 1 MiB, until the client closes its side.
  Awaitable<void> linger(Session& s) {
    s.deadline.set(std::chrono::milliseconds(1000));
    s.in.consume(s.in.size());
    std::size_t dropped = 0;
    while (dropped < (1u << 20)) {
      auto [ec, n] = co_await s.read_some(s.in.prepare(16384));
      if (ec) break;
      dropped += n;  // not committed: the same room is read into again
    }
    s.deadline.clear();
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
    s.deadline.set(opt.write_timeout);
    co_await asio::async_write(s.stream.tcp_layer().socket(), asio::buffer(out), use_tuple);
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
    tcp::resolver resolver(*im.iocs.front());
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
  im.work.clear();
  std::vector<asio::io_context*> all{&im.accept_ioc};
  for (auto& ioc : im.iocs) all.push_back(ioc.get());
  for (auto* ioc : all) {
    ioc->restart();
    im.work.push_back(asio::make_work_guard(*ioc));
  }
  asio::co_spawn(im.acceptor.get_executor(), im.accept_loop(), asio::detached);
  for (std::size_t i = 0; i < all.size(); ++i) {
    std::string name =
        i == 0 ? im.opt.name + "-accept" : im.opt.name + "-io-" + std::to_string(i - 1);
    im.threads.push_back(core::named_thread(std::move(name), [ctx = all[i]] {
      for (;;) {
        try {
          ctx->run();
          return;
        } catch (const std::exception& e) {
          spdlog::error("http: I/O thread caught: {}", e.what());
        }
      }
    }));
  }
  return {};
}

std::uint16_t Server::port() const {
  return impl_->port;
}

asio::any_io_executor Server::executor() const {
  return impl_->iocs.front()->get_executor();
}

std::size_t Server::io_threads() const {
  return impl_->iocs.size();
}

asio::any_io_executor Server::executor(std::size_t i) const {
  return impl_->iocs.at(i)->get_executor();
}

std::size_t Server::in_flight() const {
  return static_cast<std::size_t>(impl_->in_flight.sum());
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
  im.work.clear();
  im.accept_ioc.stop();
  for (auto& ioc : im.iocs) ioc->stop();
  for (auto& t : im.threads) {
    if (t.joinable()) t.join();
  }
  im.threads.clear();
  // The close posted above may not have run: a busy machine may not have scheduled the accept
  // thread before its io_context stopped. No thread runs now; the port must be free on return.
  beast::error_code ec;
  im.acceptor.close(ec);
}

}  // namespace openstation::http
