#pragma once
/// The HTTP/1.1 server shared by the REST API, the gateway, the agent API and the stand-in engine.
///
/// Sessions are coroutines, one per connection. Each I/O thread runs its own io_context; an
/// accepted connection is handed round-robin to one of them and stays there, so a session's
/// steps all run on one thread (no strand, no hand-over between threads). A handler that blocks
/// its thread delays the other connections of that thread (use a worker pool for blocking work);
/// accepting runs on a thread of its own. The I/O threads' reactors run without per-socket locks:
/// a connection, and any socket or timer created on an I/O thread's executor, is used only from
/// that thread (from the handler's coroutine; other threads may post to it).
///
///     accept ─► [read header (idle/header deadline)] ─► 431 / 413 / 100-continue?
///                      ▲                                   │
///                      │ keep-alive and not stopping       ▼
///                [write response] ◄── route handler ◄── [read body (body deadline)]
///
/// Handlers are `Awaitable<Response>(Request&)` coroutines; streaming handlers get a
/// `ResponseStream` and write the head, then chunks or SSE events, each flushed as written.
/// Every route runs inside one exception boundary: a throw becomes a 500 with a JSON error body
/// (or, once a stream has started, a closed connection). stop() drains: it stops accepting, closes
/// idle connections, lets in-flight requests finish up to a deadline, then closes the rest.
///
/// With `ServerOptions::tls` set the server speaks HTTPS only: each connection starts with a TLS
/// handshake (TLS 1.2 or newer, within the header timeout); a plain HTTP request on that port is
/// answered with a plain-text 400 ("http.tls_required") and closed. Everything else — routes,
/// streams, limits, timeouts, graceful stop — behaves the same over TLS.

#include "core/error.hpp"
#include "http/asio.hpp"
#include "http/message.hpp"
#include "http/sse.hpp"
#include "http/tls.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace openstation::http {

/// Lets a streaming handler write its response piece by piece. Every write is flushed to the
/// socket before it completes: the stream itself coalesces nothing (a caller may pass several
/// events in one write). All calls must come from the handler's
/// coroutine (the session's I/O thread). Writes return false once the client has gone.
class ResponseStream {
 public:
  virtual ~ResponseStream() = default;
  /// Sends the status line and headers; the body follows chunked. Call once, first.
  virtual Awaitable<bool> start(int status, Headers headers) = 0;
  /// Sends a complete, non-chunked response instead of a stream (an error before streaming, or
  /// a handler that decided not to stream). Only before start(); afterwards returns false.
  /// `response` is only read, and must live until the call completes (a temporary in the
  /// `co_await` expression does): a by-value response would be one more copy of it in the
  /// caller's coroutine frame.
  virtual Awaitable<bool> respond(const Response& response) = 0;
  /// start() with the headers of an SSE stream (text/event-stream, no caching) plus `extra`.
  Awaitable<bool> start_sse(Headers extra = {});
  /// Sends one body chunk (empty data sends nothing).
  virtual Awaitable<bool> write(std::string_view data) = 0;
  /// write() without a coroutine frame when the kernel takes the chunk at once (the usual case
  /// for a stream's events): returns nothing, and `ok` is write()'s result. Otherwise returns
  /// the rest of the write, which the caller awaits at once, with `data` still alive:
  /// `if (auto rest = out.write_now(data, ok)) ok = co_await std::move(*rest);`.
  virtual std::optional<Awaitable<bool>> write_now(std::string_view data, bool& ok) {
    (void)ok;
    return write(data);
  }
  /// Sends one formatted SSE event as one chunk.
  Awaitable<bool> write_event(const SseEvent& event);
  /// Ends the body. Called by the server if the handler did not.
  virtual Awaitable<bool> finish() = 0;
  /// write(data) then finish(), with one write to the socket (the last chunk and the chunked
  /// body's terminator together). Returns false if either fails or the stream is not open.
  virtual Awaitable<bool> write_and_finish(std::string_view data) = 0;
  /// True once the client closed the connection or a write failed.
  virtual bool disconnected() const = 0;
  /// Completes when the client disconnects (or when the stream finishes). Combine with the
  /// work it should cancel: `co_await (relay() || stream.wait_disconnected())`.
  virtual Awaitable<void> wait_disconnected() = 0;
  /// True after start().
  virtual bool started() const = 0;
};

/// A normal route handler.
using Handler = std::function<Awaitable<Response>(Request&)>;
/// A streaming route handler.
using StreamHandler = std::function<Awaitable<void>(Request&, ResponseStream&)>;
/// Formats the server's own error responses (404, 405, 408, 413, 431, 500); the default writes
/// the project's {"error": {"code", "message", "field"}} body. The gateway sets an OpenAI one.
using ErrorFormatter = std::function<Response(int status, const core::Error&)>;

/// Routes by method and path. Patterns: exact ("/health"), parameters ("/api/v1/nodes/{id}",
/// one segment each) and a trailing wildcard ("/v1/*": the rest of the path, in param "*").
/// The first registered route that matches wins.
class Router {
 public:
  struct Route {
    std::string method;  ///< "GET"; "*" for any method
    std::string pattern;
    Handler handler;               ///< set for normal routes
    StreamHandler stream_handler;  ///< set for streaming routes
  };
  struct Match {
    const Route* route = nullptr;      ///< null: nothing matched
    std::vector<std::string> allowed;  ///< the methods of routes whose pattern matched (405)
  };

  void add(Route route);
  /// Matches a path (no query) for a method; the matched route's parameters go to `params`.
  Match match(std::string_view method, std::string_view path, PathParams& params) const;
  /// The registered routes, in registration order (the OpenAPI coverage test lists them).
  const std::vector<Route>& routes() const { return routes_; }
  /// True if `pattern` matches `path`, filling `params`. Exposed for tests.
  static bool match_pattern(std::string_view pattern, std::string_view path, PathParams& params);

 private:
  std::vector<Route> routes_;
};

/// Server settings. Zero durations disable the corresponding timeout.
struct ServerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;                         ///< 0: an ephemeral port, see Server::port()
  int threads = 1;                                ///< I/O threads, each with its own io_context
  std::size_t header_limit = 16 * 1024;           ///< bytes of request line + headers (431 beyond)
  std::uint64_t body_limit = 8ull * 1024 * 1024;  ///< bytes of request body (413 beyond)
  std::chrono::milliseconds header_timeout{10000};  ///< a started request's head must arrive
  std::chrono::milliseconds idle_timeout{60000};    ///< keep-alive wait for the next request
  std::chrono::milliseconds body_timeout{60000};    ///< reading the body
  std::chrono::milliseconds write_timeout{30000};   ///< each write (slow readers are dropped)
  std::size_t max_requests_per_connection = 0;      ///< 0: unlimited
  std::string server_header = "openstation";
  /// Names the server's threads: NAME-io-0, NAME-io-1, ... and NAME-accept (core::thread_name).
  std::string name = "http";
  ErrorFormatter error_formatter;  ///< empty: the project's error body
  /// Set: HTTPS only, with this certificate and key (loaded by start()). Unset: plain HTTP.
  std::optional<TlsServerOptions> tls;
};

/// The HTTP/1.1 server. Register routes before start(). Thread-safe: start/stop from any thread
/// except the server's own I/O threads (stop() blocks until drained).
class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();  ///< stop() with a zero grace period if still running
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// Adds a route ("GET", "/api/v1/nodes/{id}", handler).
  void route(std::string method, std::string pattern, Handler handler);
  /// Adds a streaming route.
  void stream(std::string method, std::string pattern, StreamHandler handler);
  /// The routes registered so far (method and pattern of each, in registration order).
  const Router& router() const;

  /// Binds, listens and starts the I/O threads. Errors: "http.bind" naming host:port and the
  /// reason (address in use, permission), "http.resolve" for a host that is not an address,
  /// "http.tls_cert" naming the certificate or key file and the reason (missing, unreadable, not
  /// PEM, the key does not match the certificate) when `tls` is set.
  core::Result<void> start();
  /// The port listened on (after start()).
  std::uint16_t port() const;
  /// The executor of the first I/O thread's io_context, for clients and timers that should
  /// share the server's threads. A handler should use its own (`co_await this_coro::executor`).
  asio::any_io_executor executor() const;
  /// The number of I/O threads (= io_contexts); fixed at construction.
  std::size_t io_threads() const;
  /// The executor of I/O thread `i`'s io_context (i < io_threads()), e.g. to keep per-thread
  /// state keyed by `executor(i).context()`.
  asio::any_io_executor executor(std::size_t i) const;
  /// Graceful stop: no new connections, idle connections closed, in-flight requests (streams
  /// included) given up to `grace` to finish, then closed; joins the I/O threads.
  void stop(std::chrono::milliseconds grace = std::chrono::milliseconds(5000));
  /// Requests currently being handled.
  std::size_t in_flight() const;
  /// Open connections.
  std::size_t connections() const;

  /// The Impl is public so the session code in server.cpp can name it.
  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace openstation::http
