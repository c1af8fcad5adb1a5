// The gateway over real sockets: in-process engines (http::Server) behind it, real clients in
// front. Covers every status of the gateway's contract, event-by-event streaming, usage
// stripping, the retry before the first byte, mid-stream failure, key revocation and drain.
#include "gateway/gateway.hpp"
#include "http/client.hpp"
#include "http/server.hpp"
#include "server/auth/api_key.hpp"
#include "support/wait_until.hpp"

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

namespace openstation::gateway {
namespace {
namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;
using http::Awaitable;

/// Collects call logs in memory. Like a recycling sink, it hands back an earlier record to fill
/// next (the first one, stale values and all), so a field the gateway leaves unset shows.
class MemorySink final : public CallLogSink {
 public:
  void submit(store::CallLog log) override {
    std::lock_guard lock(mutex_);
    logs_.push_back(std::move(log));
  }
  void submit_reusing(store::CallLog& log) override {
    std::lock_guard lock(mutex_);
    logs_.push_back(std::move(log));
    log = logs_.front();
  }
  std::vector<store::CallLog> logs() const {
    std::lock_guard lock(mutex_);
    return logs_;
  }
  std::uint64_t dropped() const override { return 7; }  // what /metrics must show

 private:
  mutable std::mutex mutex_;
  std::vector<store::CallLog> logs_;
};

/// A stand-in engine with switchable behaviour.
class Engine {
 public:
  /// burst: the whole stream (three tokens, usage, [DONE] and the body's end) in one write.
  /// trickle: `trickle_events` events of about 1.5 KB, a millisecond apart, then [DONE].
  /// flood_then_hold: `released` events of about 100 bytes at once, then silence until `let_go`.
  enum class Mode {
    ok,
    unavailable,
    bad_request,
    rate_limited,
    break_mid_stream,
    hold,
    burst,
    trickle,
    flood_then_hold
  };
  static constexpr int trickle_events = 150;
  std::atomic<Mode> mode{Mode::ok};
  std::atomic<int> requests{0};
  std::atomic<int> released{1000};  ///< stream events sent only while index < released
  std::atomic<int> holding{0};      ///< requests parked in Mode::hold
  std::atomic<bool> let_go{false};  ///< ends Mode::hold
  std::mutex mutex;
  std::string last_body;
  std::string last_target;
  http::Headers last_headers;

  /// `idle_timeout`: how long the engine keeps an idle keep-alive connection open.
  explicit Engine(std::chrono::milliseconds idle_timeout = 60s) {
    http::ServerOptions o;
    o.threads = 1;
    o.idle_timeout = idle_timeout;
    server_ = std::make_unique<http::Server>(o);
    server_->stream("POST", "/v1/*",
                    [this](http::Request& r, http::ResponseStream& s) -> Awaitable<void> {
                      co_await handle(r, s);
                    });
    if (!server_->start()) throw std::runtime_error("engine did not start");
  }
  ~Engine() { server_->stop(0ms); }
  std::uint16_t port() const { return server_->port(); }
  std::size_t connections() const { return server_->connections(); }

 private:
  static Awaitable<void> sleep(std::chrono::milliseconds d) {
    asio::steady_timer t(co_await asio::this_coro::executor, d);
    co_await t.async_wait(asio::use_awaitable);
  }

  Awaitable<void> handle(http::Request& r, http::ResponseStream& s) {
    ++requests;
    {
      std::lock_guard lock(mutex);
      last_body = r.body;
      last_target = r.target;
      last_headers = r.headers;
    }
    const auto m = mode.load();
    if (m == Mode::unavailable) {
      co_await s.respond(http::Response::text(503, "engine is loading"));
      co_return;
    }
    if (m == Mode::bad_request) {
      co_await s.respond(http::Response::json(
          400,
          R"({"object":"error","message":"This model's maximum context length is 4096 tokens","type":"BadRequestError","param":null,"code":400})"));
      co_return;
    }
    if (m == Mode::rate_limited) {
      co_await s.respond(http::Response::json(
          429, R"({"object":"error","message":"Too many requests","type":"RateLimitError"})"));
      co_return;
    }
    if (m == Mode::hold) {
      ++holding;
      while (!let_go.load()) co_await sleep(2ms);
      --holding;
    }
    const auto body = json::parse(r.body).as_object();
    const bool stream = body.contains("stream") && body.at("stream").as_bool();
    if (!stream) {
      co_await s.respond(http::Response::json(
          200,
          R"({"id":"cmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}})"));
      co_return;
    }
    bool usage = false;
    if (const auto* so = body.if_contains("stream_options"))
      usage = so->as_object().contains("include_usage") &&
              so->as_object().at("include_usage").as_bool();
    co_await s.start_sse();
    if (m == Mode::burst) {
      std::string all;
      for (int i = 0; i < 3; ++i) {
        all += http::format_sse_data(R"({"choices":[{"index":0,"delta":{"content":"t)" +
                                     std::to_string(i) + R"("}}]})");
      }
      all += http::format_sse_data(
          R"({"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":3,"total_tokens":7}})");
      all += http::format_sse_data("[DONE]");
      co_await s.write_and_finish(all);
      co_return;
    }
    if (m == Mode::flood_then_hold) {
      for (int i = 0; i < released.load(); ++i) {
        co_await s.write(http::format_sse_data(R"({"choices":[{"index":0,"delta":{"content":"t)" +
                                               std::to_string(i) + std::string(60, 'x') +
                                               R"("}}]})"));
      }
      ++holding;
      while (!let_go.load()) co_await sleep(2ms);
      --holding;
      co_await s.write(http::format_sse_data("[DONE]"));
      co_return;
    }
    if (m == Mode::trickle) {
      const std::string pad(1500, 'x');
      for (int i = 0; i < trickle_events; ++i) {
        co_await s.write(http::format_sse_data(R"({"choices":[{"index":0,"delta":{"content":"t)" +
                                               std::to_string(i) + pad + R"("}}]})"));
        co_await sleep(1ms);
      }
      co_await s.write(http::format_sse_data("[DONE]"));
      co_return;
    }
    for (int i = 0; i < 3; ++i) {
      while (released.load() <= i) co_await sleep(1ms);
      co_await s.write(http::format_sse_data(R"({"choices":[{"index":0,"delta":{"content":"t)" +
                                             std::to_string(i) + R"("}}]})"));
      if (m == Mode::break_mid_stream && i == 1) throw std::runtime_error("engine crashed");
    }
    if (usage) {
      co_await s.write(http::format_sse_data(
          R"({"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":3,"total_tokens":7}})"));
    }
    co_await s.write(http::format_sse_data("[DONE]"));
  }

  std::unique_ptr<http::Server> server_;
};

class GatewayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto k = server::auth::generate_api_key();
    key_ = k.text;
    server::auth::KeyRecord rec;
    rec.key_id = "key_1";
    rec.user_id = "usr_1";
    rec.username = "alice";
    rec.name = "test";
    rec.prefix = k.prefix;
    rec.hash = k.hash;
    rec_ = rec;
    set_keys({rec});
    GatewayOptions o;
    o.config.host = "127.0.0.1";
    o.config.port = 0;
    o.config.max_body_bytes = 64 * 1024;
    o.failure_cooldown = 60s;
    options_ = o;
  }
  void TearDown() override {
    if (gw_) gw_->stop(0ms);
  }

  void set_keys(std::vector<server::auth::KeyRecord> recs) {
    keys_.store(std::make_shared<const server::auth::KeySnapshot>(std::move(recs)));
  }

  /// Routes model "m" to the given engines (draining flags optional).
  void route(std::vector<Engine*> engines, std::vector<bool> draining = {}) {
    ServiceRoute s;
    s.model = "m";
    s.service_id = "svc_1";
    s.created = 1700000000;
    for (std::size_t i = 0; i < engines.size(); ++i) {
      const auto id = "inst_" + std::to_string(i);
      s.upstreams.push_back({id, "127.0.0.1", engines[i]->port(),
                             i < draining.size() && draining[i], loads_.load_for(id)});
    }
    ServiceRoute other;
    other.model = "secret-model";
    routes_.store(std::make_shared<const RouteTable>(std::vector<ServiceRoute>{s, other}));
  }

  void start() {
    gw_ = std::make_unique<Gateway>(options_, keys_, routes_, loads_, sink_, clock_);
    auto r = gw_->start();
    ASSERT_TRUE(r) << r.error().message;
  }

  std::string url(std::string_view path) const {
    return "http://127.0.0.1:" + std::to_string(gw_->port()) + std::string(path);
  }

  /// Routes "m" to `e`, which pauses after its first event, starts the gateway, sends a streamed
  /// chat request over a plain socket and returns the socket once that event has arrived
  /// (`first` gets what was read by then).
  /// A raw connection to the gateway that has sent a streamed chat request for model "m";
  /// `receive_buffer`: the client's receive buffer in bytes (0: the system's default).
  asio::ip::tcp::socket raw_stream(asio::io_context& ioc, int receive_buffer = 0) {
    asio::ip::tcp::socket sock(ioc);
    sock.open(asio::ip::tcp::v4());
    if (receive_buffer > 0) sock.set_option(asio::socket_base::receive_buffer_size(receive_buffer));
    sock.connect({asio::ip::make_address("127.0.0.1"), gw_->port()});
    const std::string body = R"({"model":"m","stream":true})";
    const std::string req =
        "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + key_ +
        "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
        "\r\n\r\n" + body;
    asio::write(sock, asio::buffer(req));
    return sock;
  }

  asio::ip::tcp::socket open_paused_stream(Engine& e, asio::io_context& ioc, std::string& first) {
    e.released = 1;
    route({&e});
    start();
    auto sock = raw_stream(ioc);
    char buf[4096];
    while (first.find("data:") == std::string::npos) {
      const std::size_t n = sock.read_some(asio::buffer(buf));
      first.append(buf, n);
    }
    return sock;
  }

  core::Result<http::Response> post(std::string_view path, std::string body, std::string key = "") {
    http::Headers h{{"Authorization", "Bearer " + (key.empty() ? key_ : key)},
                    {"Content-Type", "application/json"}};
    return http::Client{}.request("POST", url(path), h, std::move(body), 10s);
  }

  static json::object error_of(const http::Response& r) {
    return json::parse(r.body).as_object().at("error").as_object();
  }

  std::string key_;
  server::auth::KeyRecord rec_;
  server::auth::KeySnapshotHolder keys_;
  RouteTableHolder routes_;
  LoadRegistry loads_;
  MemorySink sink_;
  core::SystemClock clock_;
  GatewayOptions options_;
  std::unique_ptr<Gateway> gw_;
};

constexpr std::string_view kChat = R"({"model":"m","messages":[{"role":"user","content":"hi"}]})";

TEST_F(GatewayTest, CompletesAndMetersANonStreamedRequest) {
  Engine e;
  route({&e});
  start();
  auto r = post("/v1/chat/completions", std::string(kChat));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(json::parse(r->body).at("usage").at("total_tokens"), 10);
  {
    std::lock_guard lock(e.mutex);
    EXPECT_EQ(e.last_body, kChat);  // passed through byte for byte
  }
  ASSERT_TRUE(testing::wait_until([&] { return sink_.logs().size() == 1; }, 5s));
  const auto log = sink_.logs().front();
  EXPECT_EQ(log.user_id, "usr_1");
  EXPECT_EQ(log.key_id, "key_1");
  EXPECT_EQ(log.service, "m");
  EXPECT_EQ(log.instance_id, "inst_0");
  EXPECT_EQ(log.status, 200);
  EXPECT_EQ(log.prompt_tokens, 7);
  EXPECT_EQ(log.completion_tokens, 3);
  EXPECT_FALSE(log.ttft_ms.has_value());
}

TEST_F(GatewayTest, TheEngineGetsTheTargetBodyAndOnlyTheHeadersItNeeds) {
  Engine e;
  route({&e});
  start();
  // No Content-Type: the engine gets application/json. The key and other headers stay behind.
  auto r = http::Client{}.request("POST", url("/v1/chat/completions?trace=1"),
                                  {{"Authorization", "Bearer " + key_},
                                   {"Accept", "application/json"},
                                   {"X-Private", "not for the engine"},
                                   {"Cookie", "os_session=secret"}},
                                  std::string(kChat), 10s);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 200) << r->body;
  {
    std::lock_guard lock(e.mutex);
    EXPECT_EQ(e.last_target, "/v1/chat/completions?trace=1");
    EXPECT_EQ(e.last_body, kChat);
    EXPECT_EQ(e.last_headers.get_or("Content-Type", ""), "application/json");
    EXPECT_EQ(e.last_headers.get_or("Accept", ""), "application/json");
    EXPECT_FALSE(e.last_headers.has("Authorization"));
    EXPECT_FALSE(e.last_headers.has("X-Private"));
    EXPECT_FALSE(e.last_headers.has("Cookie"));
  }
  // A streamed request the gateway rewrites (usage asked for) keeps the client's Content-Type.
  auto s = http::Client{}.request(
      "POST", url("/v1/chat/completions"),
      {{"Authorization", "Bearer " + key_}, {"Content-Type", "application/json; charset=utf-8"}},
      R"({"model":"m","stream":true,"messages":[]})", 10s);
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->status, 200);
  std::lock_guard lock(e.mutex);
  EXPECT_EQ(e.last_headers.get_or("Content-Type", ""), "application/json; charset=utf-8");
  EXPECT_NE(e.last_body.find("include_usage"), std::string::npos);
  EXPECT_FALSE(e.last_headers.has("Authorization"));
}

TEST_F(GatewayTest, EveryRefusalHasItsStatusAndOpenAiCode) {
  Engine e;
  route({&e});
  start();
  auto no_key =
      http::Client{}.request("POST", url("/v1/chat/completions"), {}, std::string(kChat), 10s);
  ASSERT_TRUE(no_key);
  EXPECT_EQ(no_key->status, 401);
  EXPECT_EQ(error_of(*no_key).at("code"), "invalid_api_key");
  auto wrong =
      post("/v1/chat/completions", std::string(kChat), server::auth::generate_api_key().text);
  EXPECT_EQ(wrong->status, 401);
  auto bad = post("/v1/chat/completions", "{\"model\": ");
  EXPECT_EQ(bad->status, 400);
  EXPECT_EQ(error_of(*bad).at("type"), "invalid_request_error");
  auto missing = post("/v1/chat/completions", "{\"messages\":[]}");
  EXPECT_EQ(missing->status, 400);
  EXPECT_EQ(error_of(*missing).at("param"), "model");
  auto unknown = post("/v1/chat/completions", R"({"model":"nope"})");
  EXPECT_EQ(unknown->status, 404);
  EXPECT_EQ(error_of(*unknown).at("code"), "model_not_found");
  auto big = post("/v1/chat/completions", std::string(100 * 1024, ' '));
  ASSERT_TRUE(big);
  EXPECT_EQ(big->status, 413);
  EXPECT_TRUE(error_of(*big).contains("message"));
  auto none = post("/v1/chat/completions", R"({"model":"secret-model"})");
  EXPECT_EQ(none->status, 503);
  EXPECT_EQ(error_of(*none).at("code"), "no_healthy_instance");
  EXPECT_EQ(e.requests.load(), 0);

  // The allow-list: 403 for a model outside it, and /v1/models lists only allowed ones.
  auto limited = rec_;
  limited.allowed_models = {"secret-model"};
  set_keys({limited});
  auto forbidden = post("/v1/chat/completions", std::string(kChat));
  EXPECT_EQ(forbidden->status, 403);
  EXPECT_EQ(error_of(*forbidden).at("code"), "model_not_allowed");
  auto models = http::Client{}.request("GET", url("/v1/models"),
                                       {{"Authorization", "Bearer " + key_}}, {}, 10s);
  ASSERT_TRUE(models);
  const auto data = json::parse(models->body).at("data").as_array();
  ASSERT_EQ(data.size(), 1u);
  EXPECT_EQ(data[0].at("id"), "secret-model");
}

TEST_F(GatewayTest, EngineErrorsAreNormalised) {
  Engine e;
  e.mode = Engine::Mode::bad_request;
  route({&e});
  start();
  auto r = post("/v1/chat/completions", std::string(kChat));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  const auto err = error_of(*r);
  EXPECT_EQ(err.at("message"), "This model's maximum context length is 4096 tokens");
  EXPECT_EQ(err.at("type"), "BadRequestError");
}

TEST_F(GatewayTest, AnEnginesRateLimitReachesTheClientWithRetryAfter) {
  Engine e;
  e.mode = Engine::Mode::rate_limited;
  route({&e});
  start();
  auto r = post("/v1/chat/completions", std::string(kChat));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 429);
  EXPECT_EQ(error_of(*r).at("message"), "Too many requests");
  EXPECT_EQ(r->headers.get_or("Retry-After", ""), "60");
}

TEST_F(GatewayTest, RateLimitAnswers429WithRetryAfter) {
  options_.config.requests_per_minute = 1;
  Engine e;
  route({&e});
  start();
  EXPECT_EQ(post("/v1/chat/completions", std::string(kChat))->status, 200);
  auto r = post("/v1/chat/completions", std::string(kChat));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 429);
  EXPECT_EQ(error_of(*r).at("code"), "rate_limit_exceeded");
  EXPECT_TRUE(r->headers.has("Retry-After"));
}

TEST_F(GatewayTest, RetriesOnAnotherInstanceBeforeTheFirstByte) {
  Engine down;
  down.mode = Engine::Mode::unavailable;
  Engine up;
  route({&down, &up});
  start();
  for (int i = 0; i < 4; ++i) {
    auto r = post("/v1/chat/completions", std::string(kChat));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << r->body;
  }
  EXPECT_EQ(down.requests.load(), 1);  // marked failed after the first 503, then skipped
  EXPECT_EQ(up.requests.load(), 4);
}

TEST_F(GatewayTest, AnEngineClosingAnIdlePooledConnectionIsNotAFailure) {
  Engine e(50ms);  // closes idle keep-alive connections, as uvicorn does after 5 s
  route({&e});
  start();
  for (int i = 0; i < 3; ++i) {
    auto r = post("/v1/chat/completions", std::string(kChat));
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->status, 200) << r->body;  // not 503 with the only instance marked failed
    // The gateway's pooled connection is now closed by the engine; the next request finds it so.
    ASSERT_TRUE(testing::wait_until([&] { return e.connections() == 0; }, 5s));
  }
  EXPECT_EQ(e.requests.load(), 3);
}

TEST_F(GatewayTest, RevokedKeyIsRefusedAfterOneSnapshotSwap) {
  Engine e;
  route({&e});
  start();
  // Connections go round-robin to the I/O threads: every thread has seen (and kept) the snapshot.
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(post("/v1/chat/completions", std::string(kChat))->status, 200);
  auto revoked = rec_;
  revoked.revoked = true;
  set_keys({revoked});
  for (int i = 0; i < 4; ++i) {
    auto r = post("/v1/chat/completions", std::string(kChat));
    EXPECT_EQ(r->status, 401);
    EXPECT_EQ(error_of(*r).at("code"), "invalid_api_key");
  }
}

TEST_F(GatewayTest, EveryThreadRoutesByTheNewTableAfterASwap) {
  Engine e;
  route({&e});
  start();
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(post("/v1/chat/completions", std::string(kChat))->status, 200);
  routes_.store(std::make_shared<const RouteTable>());  // the service is gone
  for (int i = 0; i < 4; ++i) {
    auto r = post("/v1/chat/completions", std::string(kChat));
    EXPECT_EQ(r->status, 404);
    EXPECT_EQ(error_of(*r).at("code"), "model_not_found");
  }
  route({&e});  // and back
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(post("/v1/chat/completions", std::string(kChat))->status, 200);
  EXPECT_EQ(e.requests.load(), 8);
}

/// Reads a gateway SSE response event by event on its own io_context.
struct StreamResult {
  std::vector<std::string> data;
  int status = 0;
  std::string error;
};

template <class OnEvent>
StreamResult stream(std::uint16_t port, const std::string& key, std::string body,
                    OnEvent on_event) {
  StreamResult out;
  asio::io_context ioc;
  asio::co_spawn(
      ioc,
      [&]() -> Awaitable<void> {
        auto c = co_await http::Connection::connect(co_await asio::this_coro::executor, "127.0.0.1",
                                                    port, 5s);
        if (!c) {
          out.error = c.error().message;
          co_return;
        }
        http::Request req;
        req.method = "POST";
        req.target = "/v1/chat/completions";
        req.headers.set("Authorization", "Bearer " + key);
        req.headers.set("Content-Type", "application/json");
        req.body = std::move(body);
        auto head = co_await c->send(req, 10s);
        if (!head) {
          out.error = head.error().message;
          co_return;
        }
        out.status = head->status;
        for (;;) {
          auto ev = co_await c->read_event(10s);
          if (!ev) {
            out.error = ev.error().message;
            co_return;
          }
          if (!*ev) co_return;
          out.data.push_back((*ev)->data);
          on_event(out.data.size());
        }
      },
      asio::detached);
  ioc.run();
  return out;
}

TEST_F(GatewayTest, StreamsEventByEventAndStripsTheUsageItAskedFor) {
  Engine e;
  e.released = 1;  // the engine sends event i only after the client has seen event i-1
  route({&e});
  start();
  auto r = stream(gw_->port(), key_, R"({"model":"m","stream":true})",
                  [&](std::size_t seen) { e.released = static_cast<int>(seen) + 1; });
  ASSERT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.status, 200);
  ASSERT_EQ(r.data.size(), 4u);  // three tokens and [DONE]; the usage chunk was stripped
  EXPECT_NE(r.data[0].find("t0"), std::string::npos);
  EXPECT_EQ(r.data.back(), "[DONE]");
  {
    std::lock_guard lock(e.mutex);
    EXPECT_NE(e.last_body.find("\"include_usage\":true"), std::string::npos);
  }
  ASSERT_TRUE(testing::wait_until([&] { return sink_.logs().size() == 1; }, 5s));
  const auto log = sink_.logs().front();
  EXPECT_EQ(log.status, 200);
  EXPECT_EQ(log.prompt_tokens, 4);
  EXPECT_EQ(log.completion_tokens, 3);
  EXPECT_TRUE(log.ttft_ms.has_value());

  // A client that asks for usage gets the chunk.
  auto k = stream(gw_->port(), key_,
                  R"({"model":"m","stream":true,"stream_options":{"include_usage":true}})",
                  [](std::size_t) {});
  ASSERT_EQ(k.data.size(), 5u);
  EXPECT_NE(k.data[3].find("\"usage\""), std::string::npos);
}

TEST_F(GatewayTest, EventsThatArriveTogetherAreRelayedWholeAndInOrder) {
  Engine e;
  e.mode = Engine::Mode::burst;
  route({&e});
  start();
  for (int round = 0; round < 2; ++round) {  // the second reuses the pooled engine connection
    auto r = stream(gw_->port(), key_, R"({"model":"m","stream":true})", [](std::size_t) {});
    ASSERT_TRUE(r.error.empty()) << r.error;
    EXPECT_EQ(r.status, 200);
    ASSERT_EQ(r.data.size(), 4u);  // three tokens and [DONE]; the usage chunk was stripped
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(r.data[static_cast<std::size_t>(i)],
                R"({"choices":[{"index":0,"delta":{"content":"t)" + std::to_string(i) + R"("}}]})");
    }
    EXPECT_EQ(r.data.back(), "[DONE]");
  }
  ASSERT_TRUE(testing::wait_until([&] { return sink_.logs().size() == 2; }, 5s));
  for (const auto& log : sink_.logs()) {
    EXPECT_EQ(log.status, 200);
    EXPECT_EQ(log.completion_tokens, 3);
  }
}

TEST_F(GatewayTest, MidStreamFailureEndsWithAnErrorEventAndNoDone) {
  Engine e;
  e.mode = Engine::Mode::break_mid_stream;
  route({&e});
  start();
  auto r = stream(gw_->port(), key_, R"({"model":"m","stream":true})", [](std::size_t) {});
  ASSERT_GE(r.data.size(), 3u) << r.error;
  EXPECT_NE(r.data.back().find("\"error\""), std::string::npos) << r.data.back();
  for (const auto& d : r.data) EXPECT_NE(d, "[DONE]");
  ASSERT_TRUE(testing::wait_until([&] { return sink_.logs().size() == 1; }, 5s));
  EXPECT_EQ(sink_.logs().front().status, 502);
  EXPECT_FALSE(sink_.logs().front().error.empty());
}

TEST_F(GatewayTest, ACallLogFilledOverAnEarlierOneKeepsNothingOfIt) {
  options_.threads = 1;             // one I/O thread: both requests fill the same record
  options_.failure_cooldown = 0ms;  // the broken stream does not bench the only instance
  Engine e;
  e.mode = Engine::Mode::break_mid_stream;
  route({&e});
  start();
  auto broken = stream(gw_->port(), key_, R"({"model":"m","stream":true})", [](std::size_t) {});
  ASSERT_TRUE(testing::wait_until([&] { return sink_.logs().size() == 1; }, 5s));
  const auto first = sink_.logs().front();
  ASSERT_EQ(first.status, 502);
  ASSERT_FALSE(first.error.empty());
  ASSERT_TRUE(first.ttft_ms.has_value());
  ASSERT_GT(first.tokens_per_second, 0);

  e.mode = Engine::Mode::ok;
  auto r = post("/v1/chat/completions", std::string(kChat));
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->status, 200);
  ASSERT_TRUE(testing::wait_until([&] { return sink_.logs().size() == 2; }, 5s));
  const auto second = sink_.logs().back();
  EXPECT_EQ(second.status, 200);
  EXPECT_EQ(second.error, "");
  EXPECT_FALSE(second.ttft_ms.has_value());
  EXPECT_EQ(second.prompt_tokens, 7);
  EXPECT_EQ(second.completion_tokens, 3);
  EXPECT_EQ(second.service, "m");
  EXPECT_EQ(second.instance_id, "inst_0");
  EXPECT_EQ(second.user_id, "usr_1");
  EXPECT_EQ(second.key_id, "key_1");
  EXPECT_EQ(second.id, 0);
  EXPECT_GE(second.time, first.time);
}

TEST_F(GatewayTest, DrainingInstanceFinishesInFlightAndGetsNoNewRequests) {
  Engine a;
  Engine b;
  a.mode = Engine::Mode::hold;
  route({&a});
  start();
  std::optional<core::Result<http::Response>> held;
  std::thread t([&] { held = post("/v1/chat/completions", std::string(kChat)); });
  ASSERT_TRUE(testing::wait_until([&] { return a.holding.load() == 1; }, 5s));
  EXPECT_EQ(gw_->in_flight("inst_0"), 1);
  // inst_0 drains; inst_1 (engine b) takes new requests.
  ServiceRoute s;
  s.model = "m";
  s.upstreams.push_back({"inst_0", "127.0.0.1", a.port(), true, loads_.load_for("inst_0")});
  s.upstreams.push_back({"inst_1", "127.0.0.1", b.port(), false, loads_.load_for("inst_1")});
  routes_.store(std::make_shared<const RouteTable>(std::vector<ServiceRoute>{s}));
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(post("/v1/chat/completions", std::string(kChat))->status, 200);
  EXPECT_EQ(b.requests.load(), 3);
  EXPECT_EQ(a.requests.load(), 1);
  a.let_go = true;
  t.join();
  ASSERT_TRUE(held.has_value() && *held);
  EXPECT_EQ((*held)->status, 200);
  // The count drops when the handler returns, just after the response went out.
  EXPECT_TRUE(testing::wait_until([&] { return gw_->in_flight("inst_0") == 0; }, 5s));
}

TEST_F(GatewayTest, HealthAndMetrics) {
  Engine e;
  route({&e});
  start();
  EXPECT_EQ(post("/v1/chat/completions", std::string(kChat))->status, 200);
  auto h = http::Client{}.get(url("/health"));
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  auto m = http::Client{}.get(url("/metrics"));
  ASSERT_TRUE(m);
  EXPECT_NE(m->body.find("openstation_gateway_requests_total{model=\"m\",code=\"200\"} 1"),
            std::string::npos)
      << m->body;
  EXPECT_NE(m->body.find("\nopenstation_gateway_call_logs_dropped_total 7\n"), std::string::npos)
      << m->body;
  auto one = http::Client{}.request("GET", url("/v1/models/m"),
                                    {{"Authorization", "Bearer " + key_}}, {}, 10s);
  ASSERT_TRUE(one);
  EXPECT_EQ(json::parse(one->body).at("id"), "m");
}

/// One streamed request read raw: the order of data events ("d") and comments ("c").
struct RawStream {
  std::string order;
  std::vector<std::string> data;
  std::string error;
};

template <class OnItem>
RawStream stream_raw(std::uint16_t port, const std::string& key, std::string body, OnItem on_item) {
  RawStream out;
  asio::io_context ioc;
  auto run = [&]() -> Awaitable<void> {
    auto c = co_await http::Connection::connect(co_await asio::this_coro::executor, "127.0.0.1",
                                                port, 5s);
    if (!c) {
      out.error = c.error().message;
      co_return;
    }
    http::Request req;
    req.method = "POST";
    req.target = "/v1/chat/completions";
    req.headers.set("Authorization", "Bearer " + key);
    req.headers.set("Content-Type", "application/json");
    req.body = std::move(body);
    auto head = co_await c->send(req, 10s);
    if (!head) {
      out.error = head.error().message;
      co_return;
    }
    for (;;) {
      auto ev = co_await c->read_event(10s);
      if (!ev) {
        out.error = ev.error().message;
        co_return;
      }
      if (!*ev) co_return;
      if ((*ev)->is_comment()) {
        out.order += 'c';
      } else {
        out.order += 'd';
        out.data.push_back((*ev)->data);
      }
      on_item(out);
    }
  };
  asio::co_spawn(ioc, std::move(run), asio::detached);
  ioc.run();
  return out;
}

TEST_F(GatewayTest, IdleStreamGetsKeepAliveCommentsBetweenEventsAndIsNotCutOff) {
  options_.config.sse_keepalive_interval = 20ms;
  // Shorter than the pause below: it must not apply inside a stream.
  options_.config.upstream_read_timeout = 10ms;
  options_.config.stream_read_timeout = 0ms;
  Engine e;
  e.released = 1;  // the engine pauses after its first event
  route({&e});
  start();
  auto r = stream_raw(gw_->port(), key_, R"({"model":"m","stream":true})", [&](const RawStream& s) {
    // Three comments while the engine is silent, then the rest of the events.
    if (std::count(s.order.begin(), s.order.end(), 'c') >= 3) e.released = 1000;
  });
  ASSERT_TRUE(r.error.empty()) << r.error;
  ASSERT_EQ(r.data.size(), 4u) << r.order;  // t0, t1, t2, [DONE]: nothing lost or merged
  EXPECT_NE(r.data[0].find("t0"), std::string::npos);
  EXPECT_NE(r.data[1].find("t1"), std::string::npos);
  EXPECT_NE(r.data[2].find("t2"), std::string::npos);
  EXPECT_EQ(r.data[3], "[DONE]");
  // The comments came between the first and the second event, never inside one.
  EXPECT_EQ(r.order.substr(0, 4), "dccc") << r.order;
  EXPECT_EQ(r.order.find('c', r.order.find('d', 1)), std::string::npos) << r.order;
  ASSERT_TRUE(testing::wait_until([&] { return sink_.logs().size() == 1; }, 5s));
  EXPECT_EQ(sink_.logs().front().status, 200);
}

TEST_F(GatewayTest, NoKeepAliveWhenTurnedOff) {
  options_.config.sse_keepalive_interval = 0ms;
  Engine e;
  e.released = 1;
  route({&e});
  start();
  std::thread release([&] {
    std::this_thread::sleep_for(100ms);
    e.released = 1000;
  });
  auto r = stream_raw(gw_->port(), key_, R"({"model":"m","stream":true})", [](const RawStream&) {});
  release.join();
  ASSERT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.order, "dddd");
}

TEST_F(GatewayTest, AClientThatLeavesASilentStreamEndsItAndItsEngineConnection) {
  options_.config.sse_keepalive_interval = 20ms;  // the comments find the client gone
  options_.config.stream_read_timeout = 0ms;      // the relay would wait for the engine forever
  Engine e;
  asio::io_context ioc;
  std::string first;
  auto sock = open_paused_stream(e, ioc, first);
  EXPECT_NE(first.find("t0"), std::string::npos) << first;
  sock.close();
  // The relay's wait for the silent engine is cancelled: the call is logged now, not when the
  // engine speaks again.
  ASSERT_TRUE(testing::wait_until([&] { return sink_.logs().size() == 1; }, 5s));
  EXPECT_EQ(sink_.logs().front().status, 499);
  // The engine connection was closed, not pooled: once the engine writes again, it is gone.
  e.released = 1000;
  EXPECT_TRUE(testing::wait_until([&] { return e.connections() == 0; }, 5s)) << e.connections();
  // A client's leaving is not the engine's failure: its only instance still takes requests.
  auto r = post("/v1/chat/completions", std::string(kChat));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 200) << r->body;
}

// A client that reads slowly through a small receive buffer, with a keep-alive due every
// millisecond: the relay's writes and the comments often find the client's socket full, and wait
// for the rest of a write. Every event still arrives whole and in order, and comments only
// between events.
TEST_F(GatewayTest, ASlowReaderGetsWholeEventsWithCommentsOnlyBetweenThem) {
  options_.config.sse_keepalive_interval = 1ms;
  Engine e;
  e.mode = Engine::Mode::trickle;
  route({&e});
  start();
  asio::io_context ioc;
  auto sock = raw_stream(ioc, 2048);
  std::string raw;
  char buf[256];
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!raw.ends_with("\r\n0\r\n\r\n") && std::chrono::steady_clock::now() < deadline) {
    boost::system::error_code ec;
    const std::size_t n = sock.read_some(asio::buffer(buf), ec);
    ASSERT_FALSE(ec) << ec.message();
    raw.append(buf, n);
    std::this_thread::sleep_for(1ms);
  }
  const std::size_t head_end = raw.find("\r\n\r\n");
  ASSERT_NE(head_end, std::string::npos);
  ASSERT_TRUE(raw.starts_with("HTTP/1.1 200")) << raw.substr(0, head_end);
  // The chunked body, decoded.
  std::string sse;
  for (std::size_t at = head_end + 4;;) {
    const std::size_t eol = raw.find("\r\n", at);
    ASSERT_NE(eol, std::string::npos);
    const std::size_t size = std::stoul(raw.substr(at, eol - at), nullptr, 16);
    if (size == 0) break;
    ASSERT_LE(eol + 2 + size + 2, raw.size());
    sse.append(raw, eol + 2, size);
    ASSERT_EQ(raw.compare(eol + 2 + size, 2, "\r\n"), 0);
    at = eol + 2 + size + 2;
  }
  // Block by block: a comment, or the next event whole.
  int next = 0;
  int comments = 0;
  for (std::size_t at = 0; at < sse.size();) {
    const std::size_t end = sse.find("\n\n", at);
    ASSERT_NE(end, std::string::npos) << sse.substr(at, 200);
    const std::string_view block(sse.data() + at, end - at);
    at = end + 2;
    if (block == ": keep-alive") {
      ++comments;
      continue;
    }
    if (next == Engine::trickle_events) {
      EXPECT_EQ(block, "data: [DONE]");
      ++next;
      continue;
    }
    ASSERT_TRUE(block.starts_with(R"(data: {"choices":[{"index":0,"delta":{"content":"t)" +
                                  std::to_string(next) + "x"))
        << next << ": " << block.substr(0, 80);
    ASSERT_TRUE(block.ends_with(R"(xx"}}]})")) << next;
    ++next;
  }
  EXPECT_EQ(next, Engine::trickle_events + 1);
  EXPECT_GT(comments, 0);
  ASSERT_TRUE(testing::wait_until([&] { return sink_.logs().size() == 1; }, 5s));
  EXPECT_EQ(sink_.logs().front().status, 200);
}

// A client that stops reading and then leaves, while its engine is silent: the keep-alive's
// comments find the client's socket full and wait for it; the client's leaving ends that wait,
// the relay and the engine's connection.
TEST_F(GatewayTest, AClientThatStopsReadingAndLeavesASilentStreamEndsIt) {
  options_.config.sse_keepalive_interval = 1ms;
  options_.config.stream_read_timeout = 0ms;
  Engine e;
  e.mode = Engine::Mode::flood_then_hold;
  e.released = 4000;  // more than the sockets between the gateway and the client hold
  route({&e});
  start();
  asio::io_context ioc;
  auto sock = raw_stream(ioc, 2048);
  ASSERT_TRUE(testing::wait_until([&] { return e.holding.load() == 1; }, 10s));
  std::this_thread::sleep_for(50ms);  // comments fall due on a full socket
  sock.close();
  ASSERT_TRUE(testing::wait_until([&] { return sink_.logs().size() == 1; }, 5s));
  EXPECT_EQ(sink_.logs().front().status, 499);
  // The engine connection was closed, not pooled: once the engine writes again, it is gone.
  e.let_go = true;
  EXPECT_TRUE(testing::wait_until([&] { return e.connections() == 0; }, 5s)) << e.connections();
}

// The relay waits for the engine in a read handler that owns its coroutine: a gateway stopped
// in the middle of a stream ends it and destroys the relay with its I/O context (AddressSanitizer
// builds check that nothing is leaked or touched after). The server waits 5 s for its busy
// sessions before it stops its I/O contexts, so this test takes that long.
TEST_F(GatewayTest, StoppingTheGatewayInTheMiddleOfAStreamEndsIt) {
  options_.config.stream_read_timeout = 0ms;
  Engine e;
  asio::io_context ioc;
  std::string got;
  auto sock = open_paused_stream(e, ioc, got);
  gw_->stop(0ms);
  char buf[4096];
  boost::system::error_code ec;
  while (!ec) got.append(buf, sock.read_some(asio::buffer(buf), ec));
  EXPECT_EQ(got.find("[DONE]"), std::string::npos) << got;
  e.released = 1000;
}

TEST_F(GatewayTest, SessionAffinitySticksToOneInstance) {
  options_.config.session_affinity = true;
  Engine a;
  Engine b;
  Engine c;
  route({&a, &b, &c});
  start();
  const auto table = routes_.load();
  const ServiceRoute& svc = *table->find("m");
  std::map<std::string, int> expected;
  for (int i = 0; i < 12; ++i) {
    const std::string session = "session-" + std::to_string(i);
    const Upstream* u = pick_affine(svc, session, 0);
    ASSERT_NE(u, nullptr);
    // Half by header, half by the body's "user".
    for (int n = 0; n < 2; ++n) {
      core::Result<http::Response> r = core::Error(core::Errc::internal, "x", "x");
      if (i % 2 == 0) {
        r = http::Client{}.request("POST", url("/v1/chat/completions"),
                                   {{"Authorization", "Bearer " + key_},
                                    {"Content-Type", "application/json"},
                                    {"X-Session-ID", session}},
                                   std::string(kChat), 10s);
      } else {
        r = post("/v1/chat/completions",
                 R"({"model":"m","user":")" + session + R"(","messages":[]})");
      }
      ASSERT_TRUE(r);
      EXPECT_EQ(r->status, 200);
      ++expected[u->instance_id];
    }
  }
  EXPECT_EQ(a.requests.load(), expected["inst_0"]);
  EXPECT_EQ(b.requests.load(), expected["inst_1"]);
  EXPECT_EQ(c.requests.load(), expected["inst_2"]);
  EXPECT_GE(expected.size(), 2u);  // the sessions spread over the instances
}

TEST_F(GatewayTest, RemovingAnInstanceUnderLoadFailsNoInFlightRequest) {
  Engine a;
  Engine b;
  a.mode = Engine::Mode::hold;
  route({&a});
  start();
  std::vector<std::optional<core::Result<http::Response>>> plain(3);
  std::vector<StreamResult> streams(2);
  std::vector<std::thread> clients;
  for (std::size_t i = 0; i < plain.size(); ++i) {
    clients.emplace_back([&, i] { plain[i] = post("/v1/chat/completions", std::string(kChat)); });
  }
  const auto port = gw_->port();
  for (std::size_t i = 0; i < streams.size(); ++i) {
    clients.emplace_back([&, i, port] {
      streams[i] = stream(port, key_, R"({"model":"m","stream":true})", [](std::size_t) {});
    });
  }
  ASSERT_TRUE(testing::wait_until([&] { return a.holding.load() == 5; }, 10s));
  EXPECT_EQ(gw_->in_flight("inst_0"), 5);
  // inst_0 leaves the table altogether (removed); inst_1 takes the new requests.
  ServiceRoute s;
  s.model = "m";
  s.upstreams.push_back({"inst_1", "127.0.0.1", b.port(), false, loads_.load_for("inst_1")});
  loads_.retain({"inst_1"});
  routes_.store(std::make_shared<const RouteTable>(std::vector<ServiceRoute>{s}));
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(post("/v1/chat/completions", std::string(kChat))->status, 200);
  EXPECT_EQ(b.requests.load(), 3);
  a.let_go = true;
  for (auto& t : clients) t.join();
  for (const auto& p : plain) {
    ASSERT_TRUE(p.has_value() && *p);
    EXPECT_EQ((*p)->status, 200) << (*p)->body;
  }
  for (const auto& r : streams) {
    EXPECT_TRUE(r.error.empty()) << r.error;
    EXPECT_EQ(r.status, 200);
    ASSERT_EQ(r.data.size(), 4u);
    EXPECT_EQ(r.data.back(), "[DONE]");
  }
  ASSERT_TRUE(testing::wait_until([&] { return sink_.logs().size() == 8; }, 5s));
  for (const auto& log : sink_.logs()) EXPECT_EQ(log.status, 200) << log.error;
}

}  // namespace
}  // namespace openstation::gateway
