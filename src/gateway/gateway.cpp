#include "gateway/gateway.hpp"

#include "core/shared.hpp"
#include "gateway/openai_error.hpp"
#include "gateway/rate_limit.hpp"
#include "gateway/request.hpp"
#include "gateway/usage.hpp"
#include "http/client.hpp"
#include "http/server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <spdlog/spdlog.h>

#include <array>
#include <atomic>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

namespace openstation::gateway {
namespace json = boost::json;
using namespace std::chrono_literals;

namespace {

/// Idle keep-alive connections per upstream (host and port) of one I/O thread: only that thread
/// touches it (its connections belong to that thread's io_context), so it has no lock. Found by
/// port, then host, without building a key string per request.
class UpstreamPool {
 public:
  explicit UpstreamPool(std::size_t max_idle) : max_idle_(max_idle) {}

  std::optional<http::Connection> take(const Upstream& u) {
    auto* idle = find(u, false);
    if (idle == nullptr || idle->empty()) return std::nullopt;
    http::Connection c = std::move(idle->back());
    idle->pop_back();
    return c;
  }

  void give(const Upstream& u, http::Connection c) {
    if (!c.reusable()) return;
    auto* idle = find(u, true);
    if (idle->size() < max_idle_) idle->push_back(std::move(c));
  }

  void clear() { by_port_.clear(); }

 private:
  struct Host {
    std::string host;
    std::vector<http::Connection> idle;
  };

  std::vector<http::Connection>* find(const Upstream& u, bool create) {
    auto it = by_port_.find(u.port);
    if (it == by_port_.end()) {
      if (!create) return nullptr;
      it = by_port_.try_emplace(u.port).first;
    }
    for (auto& h : it->second) {
      if (h.host == u.host) return &h.idle;
    }
    if (!create) return nullptr;
    return &it->second.emplace_back(Host{u.host, {}}).idle;
  }

  std::size_t max_idle_;
  std::unordered_map<std::uint16_t, std::vector<Host>> by_port_;
};

/// One I/O thread's copy of a holder's current value (the route table, the key snapshot):
/// reloaded only when the holder's generation moved, and handed out through a reference count
/// of this thread's own, so requests that hold it never write memory another thread writes.
template <class T>
class ThreadView {
 public:
  template <class Holder>
  const std::shared_ptr<const T>& get(const Holder& holder) {
    const auto generation = holder.generation();
    if (!view_ || generation != generation_) {
      view_ = core::with_own_count(holder.load());
      generation_ = generation;
    }
    return view_;
  }

 private:
  std::shared_ptr<const T> view_;
  std::uint64_t generation_ = 0;
};

/// What one I/O thread keeps for itself, touched by that thread only: its idle upstream
/// connections, the keys its clients authenticated with lately, its copies of the route table
/// and key snapshot, its shard of the metrics, and its way into the call-log sink.
struct PerThread {
  PerThread(std::size_t max_idle, Metrics::Shard& m, std::unique_ptr<CallLogSink::Producer> c)
      : pool(max_idle), metrics(m), calls(std::move(c)) {}
  UpstreamPool pool;
  server::auth::AuthMemo auth;
  ThreadView<RouteTable> routes;
  ThreadView<server::auth::KeySnapshot> keys;
  Metrics::Shard& metrics;
  /// Gives the record to fill field by field for each request, and queues it.
  std::unique_ptr<CallLogSink::Producer> calls;
  /// Answers already sent, for the next requests: their header and body strings keep their
  /// storage, so a usual answer allocates nothing (take_reply, give_reply).
  std::vector<std::unique_ptr<http::Response>> replies;
};

/// A response to fill: one of the thread's earlier ones, or a new one.
std::unique_ptr<http::Response> take_reply(PerThread* local) {
  if (local == nullptr || local->replies.empty()) return std::make_unique<http::Response>();
  auto r = std::move(local->replies.back());
  local->replies.pop_back();
  return r;
}

/// Keeps a sent response for the thread's next requests; a large body's storage, or a response
/// past the number kept, is freed.
void give_reply(PerThread* local, std::unique_ptr<http::Response> r) {
  constexpr std::size_t kKept = 64;
  constexpr std::size_t kLargestBody = 64 << 10;
  if (local == nullptr || local->replies.size() >= kKept || r->body.capacity() > kLargestBody) {
    return;
  }
  local->replies.push_back(std::move(r));
}

/// The client's headers that go on to the engine (never its credentials).
constexpr std::array<std::string_view, 2> kForwarded{"Content-Type", "Accept"};

std::int64_t steady_ms(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::int64_t steady_ms(const core::Clock& c) {
  return steady_ms(c.steady_now());
}

/// What one proxied request becomes in the call log and metrics.
struct Outcome {
  const server::auth::Principal* who = nullptr;
  core::Clock::TimePoint admitted{};  ///< wall-clock time of the authentication
  std::string model;
  std::string_view instance_id;  ///< in the route table, which the request holds
  int status = 0;
  Usage usage{};
  std::optional<std::chrono::steady_clock::time_point> first_token{};
  std::int64_t content_events = 0;
  std::string error;
};

}  // namespace

struct Gateway::Impl {
  Impl(GatewayOptions o, const server::auth::KeySnapshotHolder& k, const RouteTableHolder& r,
       LoadRegistry& l, CallLogSink& s, const core::Clock& c)
      : options(std::move(o)),
        keys(k),
        routes(r),
        loads(l),
        sink(s),
        clock(c),
        limiter(c, {options.config.requests_per_minute, options.config.tokens_per_minute}) {}

  http::ServerOptions server_options() const {
    http::ServerOptions so;
    so.host = options.config.host;
    so.port = options.config.port;
    so.threads = options.threads;
    so.body_limit = options.config.max_body_bytes;
    so.header_timeout = options.config.header_timeout;
    so.server_header = "openstation-gateway";
    so.name = "gateway";
    so.error_formatter = [](int status, const core::Error& e) {
      return from_error(status, e).response();
    };
    return so;
  }

  GatewayOptions options;
  const server::auth::KeySnapshotHolder& keys;
  const RouteTableHolder& routes;
  LoadRegistry& loads;
  CallLogSink& sink;
  const core::Clock& clock;
  RateLimiter limiter;
  /// One PerThread per I/O thread, keyed by that thread's io_context; filled before the server
  /// starts, read-only afterwards (each is touched only by its own thread).
  std::vector<std::pair<const boost::asio::execution_context*, std::unique_ptr<PerThread>>> threads;
  Metrics metrics;
  std::atomic<bool> draining{false};
  std::unique_ptr<http::Server> server;

  // --- helpers -------------------------------------------------------------------------------

  /// Meters a finished request and queues its call log.
  void finish(PerThread* local, const Outcome& o, std::chrono::steady_clock::time_point started) {
    const auto end = clock.steady_now();
    const auto duration = std::chrono::duration_cast<std::chrono::microseconds>(end - started);
    RequestSample s;
    s.model = o.model;
    s.status = o.status;
    s.duration_s = static_cast<double>(duration.count()) / 1e6;
    if (o.first_token) s.ttft_s = std::chrono::duration<double>(*o.first_token - started).count();
    s.prompt_tokens = o.usage.prompt_tokens;
    s.completion_tokens = o.usage.completion_tokens;
    if (local != nullptr) {
      metrics.record(local->metrics, s);
    } else {
      metrics.record(s);
    }
    if (o.who == nullptr) return;  // unauthenticated: metrics only
    limiter.add_tokens(o.who->key_id(), o.usage.total_tokens);
    const auto completion =
        o.usage.reported ? o.usage.completion_tokens : o.content_events;  // a fair lower bound
    const auto generating = o.first_token ? end - *o.first_token : end - started;
    const double secs = std::chrono::duration<double>(generating).count();
    CallRecord r;
    // The wall-clock time at the end, from the one read at the start and the steady clock's
    // (one clock read fewer per request).
    r.time = o.admitted + std::chrono::duration_cast<core::Clock::Duration>(end - started);
    r.user_id = o.who->user_id();
    r.key_id = o.who->key_id();
    r.service = o.model;
    r.instance_id = o.instance_id;
    r.status = o.status;
    r.duration_ms = duration.count() / 1000;
    r.prompt_tokens = o.usage.prompt_tokens;
    r.completion_tokens = completion;
    if (o.first_token) {
      r.ttft_ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(*o.first_token - started).count();
    }
    r.tokens_per_second = secs > 0 && completion > 0 ? static_cast<double>(completion) / secs : 0.0;
    r.error = o.error;
    if (local != nullptr) {
      local->calls->publish(r);
    } else {
      store::CallLog log;
      assign(log, r);
      sink.submit(std::move(log));
    }
  }

  /// The state of the I/O thread that runs `ex` (null for an executor that is not one of the
  /// server's: nothing is pooled or remembered then).
  PerThread* thread_of(const boost::asio::any_io_executor& ex) {
    const auto* ctx = &ex.context();
    for (auto& [c, t] : threads) {
      if (c == ctx) return t.get();
    }
    return nullptr;
  }

  /// Returns a connection to the pool of the current I/O thread.
  static void give_back(PerThread* local, const Upstream& u, http::Connection conn) {
    if (local != nullptr) local->pool.give(u, std::move(conn));
  }

  using Sent = std::optional<std::pair<http::Connection, http::ResponseHead>>;

  /// True for a send on a pooled connection that failed because the engine had closed it in the
  /// meantime. Closed shows as a failed write or, as often (the write lands in the kernel before
  /// the engine's FIN or RST is seen), as end of stream or a reset before any byte of the
  /// response: both are retried on a fresh connection; a timeout is not.
  static bool stale(const core::Error& e) { return e.code == "http.send" || e.code == "http.read"; }

  /// Sends the request to `u` on a new connection and reads the head; on failure `error` says
  /// why.
  http::Awaitable<Sent> send_fresh(const Upstream& u, const http::Request& upstream_req,
                                   std::string& error) {
    auto ex = co_await boost::asio::this_coro::executor;
    auto conn = co_await http::Connection::connect(ex, u.host, u.port,
                                                   options.config.upstream_connect_timeout);
    if (!conn) {
      error = conn.error().message;
      co_return std::nullopt;
    }
    auto head = co_await conn->send(upstream_req, options.config.upstream_read_timeout, kForwarded);
    if (!head) {
      error = head.error().message;
      co_return std::nullopt;
    }
    co_return std::pair{std::move(*conn), std::move(*head)};
  }

  /// Takes the part of a (non-streamed) body that came with the head into `body`; false, with
  /// `error` set, when it is malformed.
  static bool take_buffered_body(http::Connection& c, std::string& body, std::string& error) {
    if (auto taken = c.buffered_body(body); !taken) {
      error = taken.error().message;
      return false;
    }
    return true;
  }

  /// Reads the rest of a (non-streamed) body onto `body`, the part already taken; false, with
  /// `error` set, when the read fails or the body grows too large.
  http::Awaitable<bool> read_body(http::Connection& c, std::string& body, std::string& error) {
    while (!c.body_done()) {
      auto piece = co_await c.read_some(options.config.upstream_read_timeout);
      if (!piece) {
        error = piece.error().message;
        co_return false;
      }
      if (piece->empty()) break;
      if (body.empty()) {
        body = std::move(*piece);  // usually the whole body, already buffered
      } else {
        body += *piece;
      }
      if (body.size() > (256ull << 20)) {
        error = "the engine's response exceeds 256 MiB";
        co_return false;
      }
    }
    co_return true;
  }

  /// The answer for an error that ends the request before or instead of the engine's; `o`
  /// records it.
  static http::Response error_reply(const OpenAiError& e, Outcome& o) {
    o.status = e.status;
    o.error = e.code.empty() ? e.message : e.code + ": " + e.message;
    auto r = e.response();
    if (e.status == 429) r.headers.set("Retry-After", "60");
    return r;
  }

  // --- routes --------------------------------------------------------------------------------

  http::Awaitable<http::Response> models(http::Request& req) {
    auto who = keys.load()->authenticate(req.headers.get_or("Authorization", ""), clock.now());
    if (!who) co_return from_error(401, who.error()).response();
    const auto table = routes.load();
    const std::string_view one = req.param("model");
    json::array data;
    for (const auto& s : table->services()) {
      if (!server::auth::allows_model(*who, s.model)) continue;
      if (!one.empty() && s.model != one) continue;
      json::object m;
      m["id"] = s.model;
      m["object"] = "model";
      m["created"] = s.created;
      m["owned_by"] = s.owned_by;
      data.push_back(std::move(m));
    }
    if (!one.empty()) {
      if (data.empty()) {
        co_return from_error(404, core::not_found("gateway.model_not_found",
                                                  "The model '" + std::string(one) +
                                                      "' does not exist or this key may not use it",
                                                  "model"))
            .response();
      }
      co_return http::Response::json(200, json::serialize(data.front()));
    }
    json::object body;
    body["object"] = "list";
    body["data"] = std::move(data);
    co_return http::Response::json(200, json::serialize(body));
  }

  /// What the checks before the engine settle: who asks, where the request goes and what is
  /// sent there.
  struct Admitted {
    std::optional<server::auth::Principal> who;
    std::shared_ptr<const RouteTable> table;
    const ServiceRoute* route = nullptr;
    bool keep_usage_chunk = false;
    std::string session;  ///< the affinity key, when session affinity is on
  };

  /// Authenticates `req`, inspects its body, checks the key's models and rate limit, and routes
  /// it; fills `a` (and `o`) on the way. Returns the answer when the request goes no further.
  /// Not a coroutine, so none of its temporaries ends up in the proxy's coroutine frame.
  std::optional<http::Response> admit(http::Request& req, PerThread* local, Admitted& a,
                                      Outcome& o) {
    const auto authorization = req.headers.get_or("Authorization", "");
    o.admitted = clock.now();
    auto who = local != nullptr
                   ? local->auth.authenticate(local->keys.get(keys), authorization, o.admitted)
                   : keys.load()->authenticate(authorization, o.admitted);
    if (!who) return error_reply(from_error(401, who.error()), o);
    a.who = std::move(*who);
    o.who = &*a.who;
    auto inspected = inspect_request(endpoint_of(req.path()), req.body);
    if (!inspected) return error_reply(from_error(400, inspected.error()), o);
    o.model = inspected->model;
    if (!server::auth::allows_model(*a.who, o.model)) {
      return error_reply(
          from_error(403, core::Error(core::Errc::forbidden, "gateway.model_not_allowed",
                                      "This API key may not use the model '" + o.model +
                                          "'; ask an administrator to add it to the key's "
                                          "allowed models",
                                      "model")),
          o);
    }
    a.table = local != nullptr ? local->routes.get(routes) : routes.load();
    a.route = a.table->find(o.model);
    if (a.route == nullptr) {
      return error_reply(from_error(404, core::not_found("gateway.model_not_found",
                                                         "The model '" + o.model +
                                                             "' does not exist; GET /v1/models "
                                                             "lists the models you can use",
                                                         "model")),
                         o);
    }
    if (auto refusal = limiter.admit(a.who->key_id())) {
      const auto e =
          from_error(429, core::Error(core::Errc::resource_exhausted, "gateway.rate_limited",
                                      std::string("Rate limit reached for this API key (") +
                                          (refusal->tokens ? "tokens" : "requests") +
                                          " per minute); retry in " +
                                          std::to_string(refusal->retry_after.count()) + " s"));
      auto r = error_reply(e, o);
      o.error = e.message;
      r.headers.set("Retry-After", std::to_string(refusal->retry_after.count()));
      return r;
    }

    a.keep_usage_chunk = inspected->client_wants_usage || !inspected->rewritten;
    if (options.config.session_affinity) {
      const auto session = req.headers.get_or("X-Session-ID", "");
      a.session = session.empty() || session.size() > 256 ? std::move(inspected->user)
                                                          : std::string(session);
    }
    // The client's request becomes the engine's, in place (no copy): the same method, target and
    // body (with usage asked for when `rewritten`); of the headers only kForwarded go out.
    if (inspected->rewritten) req.body = std::move(inspected->upstream_body);
    if (!req.headers.has("Content-Type")) req.headers.set("Content-Type", "application/json");
    return std::nullopt;
  }

  /// The answer to a non-streamed response from the engine, whose body is already in `r`: that
  /// body, or the engine's error in the OpenAI format.
  static void engine_reply(const http::ResponseHead& head, http::Response& r, Outcome& o) {
    if (head.status >= 400) {
      r = error_reply(normalise_engine_error(head.status, r.body), o);
      return;
    }
    o.usage = usage_of_response(r.body);
    o.status = head.status;
    r.status = head.status;
    r.headers.clear();
    r.headers.add("Content-Type", head.headers.get_or("Content-Type", "application/json"));
  }

  /// The 503 when no instance could take the request.
  static http::Response unavailable_reply(const ServiceRoute& route, Outcome& o) {
    const auto message =
        route.upstreams.empty()
            ? "The model '" + o.model + "' has no running instance right now"
            : "No healthy instance of the model '" + o.model + "' could take the request" +
                  (o.error.empty() ? std::string() : " (last error: " + o.error + ")");
    return error_reply(from_error(503, core::Error(core::Errc::unavailable,
                                                   "gateway.no_healthy_instance", message)),
                       o);
  }

  /// A proxied request. Its coroutine frame is allocated per request, so it keeps only what
  /// lives across a suspension: the checks and the answers are built by plain functions.
  // GCC 12 takes the coroutine frame's own sized operator delete (Asio's, paired with its
  // operator new) for a mismatched one here: a false -Wmismatched-new-delete.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
  http::Awaitable<void> proxy(http::Request& req, http::ResponseStream& out) {
    const auto started = clock.steady_now();
    Outcome o;
    PerThread* local = thread_of(co_await boost::asio::this_coro::executor);
    Admitted a;
    auto reply = take_reply(local);
    bool ready = false;  // `reply` holds the answer
    if (auto refused = admit(req, local, a, o)) {
      *reply = std::move(*refused);
      ready = true;
    }
    std::string_view tried;           // the instance that failed (in the route table)
    std::string& body = reply->body;  // the engine's answer, when not a stream
    for (int attempt = 0; !ready && attempt < 2; ++attempt) {
      body.clear();
      const Upstream* u = nullptr;
      // Picked, then sent at once. The first attempt takes the request's start: admission
      // (microseconds) is nothing next to an engine's latency, and it saves a clock read.
      const auto sent_at = attempt == 0 ? started : clock.steady_now();
      const auto now_ms = steady_ms(sent_at);
      if (!a.session.empty()) u = pick_affine(*a.route, a.session, now_ms, tried);
      if (u == nullptr) u = pick_upstream(*a.route, now_ms, tried);
      if (u == nullptr) break;
      tried = u->instance_id;
      o.instance_id = u->instance_id;
      InFlight counting(u->load.get());
      // An idle pooled connection first, awaited here (no coroutine of its own); a new one when
      // there is none or the engine had closed it.
      Sent sent;
      bool try_fresh = true;
      if (auto pooled = local != nullptr ? local->pool.take(*u) : std::nullopt) {
        auto head = co_await pooled->send(req, options.config.upstream_read_timeout, kForwarded);
        if (head) {
          sent.emplace(std::move(*pooled), std::move(*head));
        } else if (!stale(head.error())) {
          o.error = head.error().message;
          try_fresh = false;
        }
      }
      if (!sent && try_fresh) sent = co_await send_fresh(*u, req, o.error);
      if (!sent) {
        mark_failed(*u, steady_ms(clock), options.failure_cooldown);
        spdlog::warn("gateway: instance {} of {} failed: {}", u->instance_id, o.model, o.error);
        continue;  // nothing reached the client: try another instance
      }
      auto& [conn, head] = *sent;
      if (head.status == 502 || head.status == 503) {
        mark_failed(*u, steady_ms(clock), options.failure_cooldown);
        (void)co_await read_body(conn, body, o.error);
        o.error = "the engine answered " + std::to_string(head.status);
        continue;
      }
      const bool sse = head.headers.get_or("Content-Type", "").starts_with("text/event-stream") &&
                       head.status < 400;
      if (sse) {
        conn.recycle(std::move(head));  // its storage serves the connection's next response
        co_await relay_stream(conn, *u, a.keep_usage_chunk, out, o, sent_at);
        finish(local, o, started);
        give_reply(local, std::move(reply));
        co_return;
      }
      // A small body usually came with the head: taken without a coroutine of its own.
      bool whole = take_buffered_body(conn, body, o.error);
      if (whole && !conn.body_done()) whole = co_await read_body(conn, body, o.error);
      if (!whole) {
        mark_failed(*u, steady_ms(clock), options.failure_cooldown);
        continue;
      }
      record_latency(
          *u, std::chrono::duration_cast<std::chrono::microseconds>(clock.steady_now() - sent_at));
      engine_reply(head, *reply, o);
      ready = true;
      conn.recycle(std::move(head));
      give_back(local, *u, std::move(conn));
    }
    if (!ready) *reply = unavailable_reply(*a.route, o);
    co_await out.respond(*reply);
    finish(local, o, started);
    give_reply(local, std::move(reply));
  }
#pragma GCC diagnostic pop

  /// How a relayed stream ended.
  enum class StreamEnd { done, broke, client_gone };

  struct Pacer;

  /// A relayed stream, kept in relay_events()' frame: what its steps share.
  struct Relay {
    Relay(http::Connection& c, const Upstream& up, StreamMeter& m, http::ResponseStream& os,
          Outcome& oc, std::chrono::steady_clock::time_point sent, Pacer* p)
        : conn(c), u(up), meter(m), out(os), o(oc), sent_at(sent), pacer(p) {}
    http::Connection& conn;
    const Upstream& u;
    StreamMeter& meter;
    http::ResponseStream& out;
    Outcome& o;
    std::chrono::steady_clock::time_point sent_at;
    Pacer* pacer;
    std::string batch;     ///< the events of one read, in their wire form
    http::SseEvent event;  ///< every event that is not plain is parsed into it, reusing its storage
    http::SseWire wire;    ///< a plain event, forwarded as it came
    std::optional<http::Awaitable<bool>> rest;  ///< Step::wrote_part
    std::optional<core::Error> read_error;      ///< Step::read_failed
    /// Set by the keep-alive when a comment finds the client gone: the read in progress (which
    /// it cancels) and any after it end as the client's leaving, not as the engine's failure
    /// (which would keep the instance from new requests for the failure cooldown).
    bool cancelled = false;
  };

  /// A relayed stream's writes to the client, one at a time, and its keep-alive: an SSE comment
  /// whenever the client got nothing for `every` (only between events: events are written whole by
  /// write_paced). The keep-alive is a timer's handler, not a coroutine beside the relay: it writes
  /// the comment from the handler when the kernel takes it at once, and only a comment the
  /// client's socket did not take at once gets a coroutine. A comment that finds the client gone
  /// cancels the relay's read, which ends the relay and so the upstream request. All of it runs
  /// on the session's I/O thread.
  struct Pacer {
    Pacer(http::ResponseStream& o, std::chrono::milliseconds e,
          const boost::asio::any_io_executor& ex)
        : out(o), every(e), timer(ex), written(ex) {}
    http::ResponseStream& out;
    const std::chrono::milliseconds every;
    std::chrono::steady_clock::time_point last_write = std::chrono::steady_clock::now();
    bool writing = false;    ///< a write to the client is in flight (the relay's or a comment's)
    bool busy = false;       ///< the timer's wait or a comment's write is outstanding
    bool stopping = false;   ///< stop() was called: no more comments
    Relay* relay = nullptr;  ///< the relay to cancel when a comment finds the client gone
    boost::asio::steady_timer timer;    ///< the keep-alive's idle deadline
    boost::asio::steady_timer written;  ///< cancelled when a comment's write or the last wait ends

    /// Waits for the first idle deadline.
    void start() { wait_until(last_write + every); }

    /// No more comments; the caller awaits stopped() before the pacer goes away.
    void stop() {
      stopping = true;
      timer.cancel();
    }

    /// Completes at the next `written.cancel()`: a comment's write or the last wait ended. The
    /// timer's own operation, with no coroutine frame of its own.
    auto next_written() {
      written.expires_at(std::chrono::steady_clock::time_point::max());
      return written.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
    }

    /// Returns once neither the timer's wait nor a comment's write refers to the pacer.
    http::Awaitable<void> stopped() {
      while (busy) (void)co_await next_written();
    }

   private:
    static constexpr std::string_view comment = ": keep-alive\n\n";

    void wait_until(std::chrono::steady_clock::time_point deadline) {
      busy = true;
      timer.expires_at(deadline);
      timer.async_wait([this](const boost::system::error_code& ec) { on_deadline(ec); });
    }

    void on_deadline(const boost::system::error_code& ec) {
      busy = false;
      if (ec || stopping) {
        written.cancel();
        return;
      }
      const auto now = std::chrono::steady_clock::now();
      // A write still in flight (a client that lags) counts as the client getting bytes: look
      // again one interval on, not at once, which would spin until it ends.
      if (writing) return wait_until(now + every);
      if (now - last_write < every) return wait_until(last_write + every);
      bool ok = false;
      if (auto rest = out.write_now(comment, ok)) {
        writing = true;
        busy = true;
        boost::asio::co_spawn(timer.get_executor(), comment_rest(std::move(*rest)),
                              boost::asio::detached);
        return;
      }
      last_write = now;
      if (ok) {
        start();
      } else {
        client_left();
      }
    }

    /// The rest of a comment the client's socket did not take at once.
    http::Awaitable<void> comment_rest(http::Awaitable<bool> rest) {
      const bool ok = co_await std::move(rest);
      writing = false;
      busy = false;
      last_write = std::chrono::steady_clock::now();
      written.cancel();  // wakes a relay write waiting in idle_writer(), or stopped()
      if (!ok) {
        client_left();
      } else if (!stopping) {
        start();
      }
    }

    void client_left() {
      if (relay == nullptr) return;
      relay->cancelled = true;
      relay->conn.cancel_read();
    }
  };

  /// Waits until no keep-alive comment is being written.
  static http::Awaitable<void> idle_writer(Pacer* p) {
    while (p != nullptr && p->writing) (void)co_await p->next_written();
  }

  /// One write to the client, never overlapping a keep-alive comment.
  static http::Awaitable<bool> write_paced(http::ResponseStream& out, Pacer* p,
                                           std::string_view data) {
    if (p != nullptr && p->writing) co_await idle_writer(p);
    bool ok = false;
    if (auto rest = write_paced_now(out, p, data, ok)) ok = co_await std::move(*rest);
    co_return ok;
  }

  /// write_paced() without a coroutine frame when no keep-alive comment is being written and the
  /// kernel takes `data` at once (an event, usually): returns nothing and `ok` says how it went.
  /// Otherwise returns the rest, which the caller awaits at once, with `data` still alive.
  static std::optional<http::Awaitable<bool>> write_paced_now(http::ResponseStream& out, Pacer* p,
                                                              std::string_view data, bool& ok) {
    if (p == nullptr) return out.write_now(data, ok);
    if (p->writing) return write_paced(out, p, data);
    auto rest = out.write_now(data, ok);
    if (!rest) {
      p->last_write = std::chrono::steady_clock::now();
      return std::nullopt;
    }
    p->writing = true;  // until the rest is written: the caller awaits it before anything else
    return paced_rest(p, std::move(*rest));
  }
  static http::Awaitable<bool> paced_rest(Pacer* p, http::Awaitable<bool> rest) {
    const bool ok = co_await std::move(rest);
    p->writing = false;
    p->last_write = std::chrono::steady_clock::now();
    co_return ok;
  }

  /// Records a broken engine stream; returns the error event the client gets.
  std::string stream_broke(const Upstream& u, Outcome& o, const core::Error& error) {
    mark_failed(u, steady_ms(clock), options.failure_cooldown);
    o.status = 502;
    o.error = "the engine's stream broke: " + error.message;
    OpenAiError e{
        502, "The model's engine stopped in the middle of the response (" + error.message + ")",
        "server_error", "upstream_error", ""};
    return e.sse_event();
  }

  /// True when the event with `data` goes to the client (the meter may drop it); notes the first
  /// token.
  bool take_event(std::string_view data, const Upstream& u, StreamMeter& meter, Outcome& o,
                  std::chrono::steady_clock::time_point sent_at) {
    if (meter.on_data(data) == StreamMeter::Verdict::drop) return false;
    if (!o.first_token && data != "[DONE]") {
      o.first_token = clock.steady_now();
      record_latency(
          u, std::chrono::duration_cast<std::chrono::microseconds>(*o.first_token - sent_at));
    }
    return true;
  }

  /// How one pass over the events already received ended (step()).
  enum class Step {
    need_read,    ///< all of them went out: wait for more from the engine
    wrote_part,   ///< the client's socket took part of them: `rest` writes the rest
    client_gone,  ///< a write to the client failed, or the relay was cancelled
    broke,        ///< the engine's stream broke: `batch` ends with the client's error event
    body_done,    ///< the engine ended the body: `batch` holds the last events, not yet sent
    read_failed,  ///< a read from the engine failed: `read_error` says how
  };

  /// Forwards the events already received: gathers them into one write (whole events only, so a
  /// keep-alive comment never lands inside one) and writes it, if the kernel takes it at once,
  /// with no coroutine. When the body ends with them they stay in `batch`, for the caller to send
  /// together with the end of the stream.
  Step step(Relay& r) {
    r.batch.clear();
    for (;;) {
      auto more = r.conn.buffered_event(r.event, r.wire);
      if (!more) {
        r.batch += stream_broke(r.u, r.o, more.error());
        return Step::broke;
      }
      if (*more == http::SseNext::none) break;
      if (*more == http::SseNext::wire) {
        if (take_event(r.wire.data, r.u, r.meter, r.o, r.sent_at)) r.batch += r.wire.bytes;
      } else if (!r.event.is_comment() && take_event(r.event.data, r.u, r.meter, r.o, r.sent_at)) {
        http::append_sse(r.batch, r.event);
      }
    }
    if (r.conn.body_done()) return Step::body_done;
    if (r.batch.empty()) return Step::need_read;
    bool ok = false;
    r.rest = write_paced_now(r.out, r.pacer, r.batch, ok);
    if (r.rest) return Step::wrote_part;
    return ok ? Step::need_read : Step::client_gone;
  }

  /// The reads of a relay between two steps that need its coroutine: each read's handler takes
  /// the next step itself and starts the next read, so the coroutine resumes only when a step
  /// needs it (the end, an error, a write the client's socket did not take at once), not per
  /// event. It owns the coroutine's completion handler, so an I/O context that goes away destroys
  /// the coroutine with it.
  template <class Handler>
  struct Reads final : http::Connection::ReadDone {
    Reads(Impl& owner, Relay& relay, Handler h) : gw(owner), r(relay), handler(std::move(h)) {}
    Impl& gw;
    Relay& r;
    Handler handler;

    void on_received(core::Result<void> got, std::unique_ptr<ReadDone> self) override {
      Step s = Step::client_gone;  // cancelled: the engine did nothing wrong
      if (!r.cancelled) {
        if (got) {
          s = gw.step(r);
        } else {
          r.read_error = std::move(got.error());
          s = Step::read_failed;
        }
      }
      if (s == Step::need_read) {
        r.conn.receive_more_then(gw.options.config.stream_read_timeout, std::move(self));
        return;
      }
      Handler h = std::move(handler);
      self.reset();
      std::move(h)(s);
    }
  };

  /// Reads from the engine and takes steps until one needs the coroutine; returns that step.
  http::Awaitable<Step> read_steps(Relay& r) {
    return boost::asio::async_initiate<const boost::asio::use_awaitable_t<>&, void(Step)>(
        [this, &r](auto handler) {
          r.conn.receive_more_then(
              options.config.stream_read_timeout,
              std::make_unique<Reads<decltype(handler)>>(*this, r, std::move(handler)));
        },
        boost::asio::use_awaitable);
  }

  /// Relays the engine's events to the client until the engine ends the body, the engine's
  /// stream breaks (an error event is sent), or the client goes away. The events that one read
  /// from the engine brought go to the client in one write; when the body ends in that same read
  /// they are left in `tail` instead, for the caller to send together with the end of the stream.
  /// The reads and the writes the kernel takes at once happen in read_steps()' handlers.
  http::Awaitable<StreamEnd> relay_events(http::Connection& conn, const Upstream& u,
                                          StreamMeter& meter, http::ResponseStream& out, Outcome& o,
                                          std::chrono::steady_clock::time_point sent_at,
                                          Pacer* pacer, std::string& tail) {
    Relay r(conn, u, meter, out, o, sent_at, pacer);
    // The keep-alive cancels this relay's reads when it finds the client gone.
    struct Attach {
      Pacer* p;
      ~Attach() {
        if (p != nullptr) p->relay = nullptr;
      }
    } attach{pacer};
    if (pacer != nullptr) pacer->relay = &r;
    Step s = step(r);
    for (;;) {
      switch (s) {
        case Step::need_read: break;
        case Step::wrote_part: {
          const bool ok = co_await std::move(*r.rest);
          r.rest.reset();
          if (!ok) co_return StreamEnd::client_gone;
          break;
        }
        case Step::client_gone: co_return StreamEnd::client_gone;
        case Step::broke:
          (void)co_await write_paced(out, pacer, r.batch);
          co_return StreamEnd::broke;
        case Step::read_failed:
          (void)co_await write_paced(out, pacer, stream_broke(u, o, *r.read_error));
          co_return StreamEnd::broke;
        case Step::body_done:
          tail = std::move(r.batch);
          co_await idle_writer(pacer);
          co_return StreamEnd::done;
      }
      if (r.cancelled) co_return StreamEnd::client_gone;
      s = co_await read_steps(r);
    }
  }

  http::Awaitable<void> relay_stream(http::Connection& conn, const Upstream& u,
                                     bool keep_usage_chunk, http::ResponseStream& out, Outcome& o,
                                     std::chrono::steady_clock::time_point sent_at) {
    o.status = 200;
    StreamMeter meter(keep_usage_chunk);
    if (!co_await out.start_sse()) {
      o.status = 499;
      o.error = "the client went away";
      conn.close();
      co_return;
    }
    std::string tail;  // the last events, sent with the end of the stream
    const auto every = options.config.sse_keepalive_interval;
    std::optional<Pacer> pacer;
    if (every.count() > 0) {
      pacer.emplace(out, every, co_await boost::asio::this_coro::executor);
      pacer->start();
    }
    const StreamEnd end =
        co_await relay_events(conn, u, meter, out, o, sent_at, pacer ? &*pacer : nullptr, tail);
    if (pacer) pacer->stop();  // no comment after the relay's last write
    o.usage = meter.usage();
    o.content_events = meter.content_events();
    bool reusable = false;
    if (end == StreamEnd::broke) {
      conn.close();
      co_await out.finish();
    } else if (end == StreamEnd::client_gone) {
      o.status = 499;
      o.error = "the client went away";
      conn.close();  // cancels the generation upstream
    } else {
      if (meter.saw_error()) {
        o.status = 502;
        o.error = "the engine sent an error event";
      } else if (!meter.done()) {
        o.status = 502;
        o.error = "the engine ended the stream without [DONE]";
      }
      if (!co_await out.write_and_finish(tail) && !tail.empty()) {
        o.status = 499;  // the client left before the last events reached it
        o.error = "the client went away";
      }
      reusable = true;
    }
    const auto ex = co_await boost::asio::this_coro::executor;
    if (reusable) give_back(thread_of(ex), u, std::move(conn));
    if (pacer) co_await pacer->stopped();  // its timer's handler refers to it
  }
};

Gateway::Gateway(GatewayOptions options, const server::auth::KeySnapshotHolder& keys,
                 const RouteTableHolder& routes, LoadRegistry& loads, CallLogSink& logs,
                 const core::Clock& clock)
    : impl_(std::make_unique<Impl>(std::move(options), keys, routes, loads, logs, clock)) {}

Gateway::~Gateway() {
  stop(0ms);
}

core::Result<void> Gateway::start() {
  auto& im = *impl_;
  im.server = std::make_unique<http::Server>(im.server_options());
  im.threads.clear();
  for (std::size_t i = 0; i < im.server->io_threads(); ++i) {
    im.threads.emplace_back(
        &im.server->executor(i).context(),
        std::make_unique<PerThread>(im.options.max_idle_per_upstream, im.metrics.add_shard(),
                                    im.sink.producer()));
  }
  im.server->route("GET", "/health", [&im](http::Request&) -> http::Awaitable<http::Response> {
    if (im.draining.load()) {
      co_return http::Response::json(503, R"({"status":"draining"})");
    }
    co_return http::Response::json(200, R"({"status":"ok"})");
  });
  im.server->route("GET", "/metrics", [&im](http::Request&) -> http::Awaitable<http::Response> {
    co_return http::Response::text(200, im.metrics.render(im.loads, im.sink.dropped()),
                                   "text/plain; version=0.0.4; charset=utf-8");
  });
  im.server->route("GET", "/v1/models", [&im](http::Request& r) -> http::Awaitable<http::Response> {
    co_return co_await im.models(r);
  });
  im.server->route("GET", "/v1/models/{model}",
                   [&im](http::Request& r) -> http::Awaitable<http::Response> {
                     co_return co_await im.models(r);
                   });
  // The proxy's own coroutine is the handler: a wrapper that awaited it would add a frame and a
  // resumption to every request.
  im.server->stream("POST", "/v1/*",
                    [&im](http::Request& r, http::ResponseStream& s) { return im.proxy(r, s); });
  return im.server->start();
}

std::uint16_t Gateway::port() const {
  return impl_->server ? impl_->server->port() : 0;
}

void Gateway::stop(std::chrono::milliseconds grace) {
  auto& im = *impl_;
  im.draining.store(true);
  if (im.server) {
    im.server->stop(grace);
    im.threads.clear();  // the pooled sockets belong to the server's io_contexts
    im.server.reset();
  }
}

std::int64_t Gateway::in_flight(std::string_view instance_id) const {
  return impl_->loads.in_flight(instance_id);
}

const Metrics& Gateway::metrics() const {
  return impl_->metrics;
}

}  // namespace openstation::gateway
