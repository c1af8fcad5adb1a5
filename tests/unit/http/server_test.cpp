// The server and clients on loopback port 0: routing, errors, keep-alive, limits, timeouts,
// streaming one event at a time, disconnect detection and graceful stop.
#include "http/server.hpp"
#include "core/thread_name.hpp"
#include "http/client.hpp"
#include "support/thread_names.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <thread>

namespace openstation::http {
namespace {

using namespace std::chrono_literals;

/// A plain blocking socket for sending exactly the bytes a test wants.
class RawSocket {
 public:
  explicit RawSocket(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~RawSocket() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool connected() const { return connected_; }
  void send(std::string_view s) {
    while (!s.empty()) {
      auto n = ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL);
      if (n <= 0) return;
      s.remove_prefix(static_cast<std::size_t>(n));
    }
  }
  /// Reads until the peer closes or `limit` passes; `closed` says whether it closed.
  std::string read_all(std::chrono::milliseconds limit, bool* closed = nullptr) {
    std::string out;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
      char buf[4096];
      auto n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        if (closed) *closed = true;
        return out;
      }
      out.append(buf, static_cast<std::size_t>(n));
    }
    if (closed) *closed = false;
    return out;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

std::string url(const Server& s, std::string_view path) {
  return "http://127.0.0.1:" + std::to_string(s.port()) + std::string(path);
}

/// A request for Connection::send / request.
Request client_request(std::string method, std::string target, std::string body = {}) {
  Request r;
  r.method = std::move(method);
  r.target = std::move(target);
  r.body = std::move(body);
  return r;
}

/// Runs a client coroutine to completion on its own io_context.
template <class F>
void run_client(F&& f) {
  asio::io_context ioc;
  asio::co_spawn(ioc, std::forward<F>(f)(ioc.get_executor()), asio::detached);
  ioc.run();
}

class ServerTest : public ::testing::Test {
 protected:
  void start(ServerOptions o = {}) {
    server_ = std::make_unique<Server>(std::move(o));
    server_->route("GET", "/hello", [](Request& r) -> Awaitable<Response> {
      co_return Response::text(200, "hello from " + r.remote_address);
    });
    server_->route("GET", "/items/{id}", [](Request& r) -> Awaitable<Response> {
      co_return Response::json(200, "{\"id\":\"" + std::string(r.param("id")) + "\"}");
    });
    server_->route("POST", "/items/{id}", [](Request& r) -> Awaitable<Response> {
      co_return Response::text(201, "got " + std::to_string(r.body.size()));
    });
    server_->route("POST", "/echo", [](Request& r) -> Awaitable<Response> {
      Response res = Response::text(200, r.body);
      res.headers.set("X-Got-Type", std::string(r.headers.get_or("content-type", "")));
      co_return res;
    });
    server_->route("GET", "/throw", [](Request&) -> Awaitable<Response> {
      throw std::runtime_error("boom");
      co_return Response{};
    });
    server_->route("*", "/any/*", [](Request& r) -> Awaitable<Response> {
      co_return Response::text(200, r.method + " " + std::string(r.param("*")));
    });
    for (auto& [m, p, h] : extra_) server_->route(m, p, h);
    for (auto& [m, p, h] : extra_streams_) server_->stream(m, p, h);
    auto ok = server_->start();
    ASSERT_TRUE(ok) << ok.error().message;
    ASSERT_NE(server_->port(), 0);
  }
  void TearDown() override {
    if (server_) server_->stop(2s);
  }

  /// Runs `f` with a client connection to the server (a failed connect fails the test).
  template <class F>
  void on_connection(F&& f) {
    run_client([&](asio::any_io_executor ex) -> Awaitable<void> {
      auto c = co_await Connection::connect(ex, "127.0.0.1", server_->port(), 5s);
      EXPECT_TRUE(c);
      if (c) co_await f(&*c);
    });
  }

  std::vector<std::tuple<std::string, std::string, Handler>> extra_;
  std::vector<std::tuple<std::string, std::string, StreamHandler>> extra_streams_;
  std::unique_ptr<Server> server_;
  Client client_;
};

TEST_F(ServerTest, RoutesParamsAndWildcard) {
  start();
  auto r = client_.get(url(*server_, "/hello"));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "hello from 127.0.0.1");
  EXPECT_EQ(r->headers.get("content-type").value(), "text/plain; charset=utf-8");

  auto item = client_.get(url(*server_, "/items/abc"));
  ASSERT_TRUE(item);
  EXPECT_EQ(item->body, R"({"id":"abc"})");
  EXPECT_EQ(item->headers.get("Content-Type").value(), "application/json");

  auto posted = client_.post_json(url(*server_, "/items/7"), "{\"a\":1}");
  ASSERT_TRUE(posted);
  EXPECT_EQ(posted->status, 201);
  EXPECT_EQ(posted->body, "got 7");

  auto any = client_.request("DELETE", url(*server_, "/any/x/y?q=1"));
  ASSERT_TRUE(any);
  EXPECT_EQ(any->body, "DELETE x/y");
}

TEST_F(ServerTest, NotFoundAndMethodNotAllowedAreJsonErrors) {
  start();
  auto nf = client_.get(url(*server_, "/nope"));
  ASSERT_TRUE(nf);
  EXPECT_EQ(nf->status, 404);
  EXPECT_NE(nf->body.find("\"code\":\"http.not_found\""), std::string::npos) << nf->body;

  auto na = client_.request("PUT", url(*server_, "/items/1"));
  ASSERT_TRUE(na);
  EXPECT_EQ(na->status, 405);
  EXPECT_EQ(na->headers.get("allow").value(), "GET, POST");
  EXPECT_NE(na->body.find("http.method_not_allowed"), std::string::npos);
}

TEST_F(ServerTest, CustomErrorFormatter) {
  ServerOptions o;
  o.error_formatter = [](int status, const core::Error& e) {
    return Response::json(status, "{\"error\":{\"message\":\"" + e.code + "\",\"type\":\"x\"}}");
  };
  start(o);
  auto nf = client_.get(url(*server_, "/nope"));
  ASSERT_TRUE(nf);
  EXPECT_EQ(nf->body, R"({"error":{"message":"http.not_found","type":"x"}})");
}

TEST_F(ServerTest, ItsThreadsCarryItsName) {
  extra_.emplace_back("GET", "/thread", [](Request&) -> Awaitable<Response> {
    co_return Response::text(200, core::this_thread_name());
  });
  ServerOptions o;
  o.name = "srvtest";
  o.threads = 2;
  start(o);
  auto r = client_.get(url(*server_, "/thread"));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->body == "srvtest-io-0" || r->body == "srvtest-io-1") << r->body;
  const auto names = testing::thread_names();  // as `top -H` shows them
  EXPECT_TRUE(names.contains("srvtest-accept"));
  EXPECT_TRUE(names.contains("srvtest-io-0"));
  EXPECT_TRUE(names.contains("srvtest-io-1"));
}

TEST_F(ServerTest, HandlerExceptionBecomes500AndConnectionSurvives) {
  start();
  on_connection([&](Connection* c) -> Awaitable<void> {
    Request req = client_request("GET", "/throw");
    auto r = co_await c->request(req, 5s);
    EXPECT_TRUE(r);
    if (!r) co_return;
    EXPECT_EQ(r->status, 500);
    EXPECT_NE(r->body.find("\"code\":\"http.internal\""), std::string::npos);
    EXPECT_NE(r->body.find("boom"), std::string::npos);
    EXPECT_TRUE(c->reusable());
    req.target = "/hello";
    auto again = co_await c->request(req, 5s);
    EXPECT_TRUE(again);
    if (again) {
      EXPECT_EQ(again->status, 200);
    }
  });
}

TEST_F(ServerTest, KeepAliveReusesOneConnection) {
  start();
  on_connection([&](Connection* c) -> Awaitable<void> {
    for (int i = 0; i < 3; ++i) {
      Request req = client_request("POST", "/echo", "body " + std::to_string(i));
      req.headers.set("Content-Type", "text/x-test");
      auto r = co_await c->request(req, 5s);
      EXPECT_TRUE(r);
      if (!r) co_return;
      EXPECT_EQ(r->body, req.body);
      EXPECT_EQ(r->headers.get("x-got-type").value_or(""), "text/x-test");
      EXPECT_TRUE(c->reusable());
    }
    EXPECT_EQ(server_->connections(), 1u);
  });
}

TEST_F(ServerTest, KeepAliveRequestsSeeNothingOfThePreviousOne) {
  // The server reuses one Request per connection: a later request with fewer headers, no body
  // and no path parameter must not see the earlier request's.
  extra_.emplace_back("*", "/show/*", [](Request& r) -> Awaitable<Response> {
    std::string seen = r.method + " " + std::string(r.param("*")) + " body=" + r.body +
                       " fields=" + std::to_string(r.headers.size());
    for (const auto& [k, v] : r.headers.fields()) seen += " " + k + ":" + v;
    co_return Response::text(200, seen);
  });
  extra_.emplace_back("GET", "/plain", [](Request& r) -> Awaitable<Response> {
    co_return Response::text(
        200, "param=" + std::string(r.param("*")) + " fields=" + std::to_string(r.headers.size()));
  });
  start();
  RawSocket s(server_->port());
  ASSERT_TRUE(s.connected());
  s.send(
      "POST /show/first/part HTTP/1.1\r\nHost: x\r\nX-One: 1111111111111111111111\r\n"
      "X-Two: 2\r\nContent-Length: 5\r\n\r\nhello"
      "GET /show/2 HTTP/1.1\r\nHost: y\r\n\r\n"
      "GET /plain HTTP/1.1\r\nHost: z\r\nConnection: close\r\n\r\n");
  bool closed = false;
  const auto reply = s.read_all(5s, &closed);
  EXPECT_TRUE(closed);
  EXPECT_NE(reply.find("POST first/part body=hello fields=4 Host:x X-One:1111111111111111111111 "
                       "X-Two:2 Content-Length:5"),
            std::string::npos)
      << reply;
  // The body ends where the next response begins.
  EXPECT_NE(reply.find("GET 2 body= fields=1 Host:yHTTP/1.1 200"), std::string::npos) << reply;
  EXPECT_NE(reply.find("param= fields=2"), std::string::npos) << reply;
}

TEST_F(ServerTest, BodyOverLimitIs413) {
  ServerOptions o;
  o.body_limit = 1000;
  start(o);
  auto small = client_.post_json(url(*server_, "/echo"), std::string(1000, 'a'));
  ASSERT_TRUE(small);
  EXPECT_EQ(small->status, 200);
  auto big = client_.post_json(url(*server_, "/echo"), std::string(1001, 'a'));
  ASSERT_TRUE(big) << big.error().message;
  EXPECT_EQ(big->status, 413);
  EXPECT_NE(big->body.find("http.body_too_large"), std::string::npos);

  // A chunked body has no Content-Length: the limit applies while reading.
  RawSocket s(server_->port());
  ASSERT_TRUE(s.connected());
  std::string chunk(600, 'b');
  s.send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n" + chunk +
         "\r\n258\r\n" + chunk + "\r\n0\r\n\r\n");
  bool closed = false;
  auto reply = s.read_all(5s, &closed);
  EXPECT_EQ(reply.rfind("HTTP/1.1 413", 0), 0u) << reply;
  EXPECT_TRUE(closed);
}

TEST_F(ServerTest, LargeBodiesBothWaysAndPipelinedRequests) {
  start();
  // Bodies larger than any read: the server's buffer grows, the client reads many pieces.
  std::string big(300000, 'x');
  for (std::size_t i = 0; i < big.size(); i += 97) big[i] = static_cast<char>('a' + i % 26);
  auto r = client_.post_json(url(*server_, "/echo"), big);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, big);

  // Two requests in one write, the second with a chunked body: two answers, in order.
  RawSocket s(server_->port());
  ASSERT_TRUE(s.connected());
  s.send(
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nonePOST /echo "
      "HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
      "2;ext=1\r\ntw\r\n1\r\no\r\n0\r\nTrailer: t\r\n\r\n");
  bool closed = false;
  auto reply = s.read_all(5s, &closed);
  EXPECT_TRUE(closed);
  const auto first = reply.find("\r\n\r\none");
  const auto second = reply.find("\r\n\r\ntwo");
  EXPECT_NE(first, std::string::npos) << reply;
  EXPECT_NE(second, std::string::npos) << reply;
  EXPECT_LT(first, second);
  EXPECT_NE(reply.find("Connection: close"), std::string::npos) << reply;
}

TEST_F(ServerTest, SmugglingShapedRequestsAre400) {
  start();
  for (const std::string bad :
       {"POST /echo HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST /echo HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
        "POST /echo HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        "POST /echo HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        "GET /hello HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", "GET /hello HTTP/2.0\r\n\r\n",
        "GET /he llo HTTP/1.1\r\n\r\n"}) {
    RawSocket s(server_->port());
    ASSERT_TRUE(s.connected());
    s.send(bad);
    bool closed = false;
    auto reply = s.read_all(5s, &closed);
    EXPECT_EQ(reply.rfind("HTTP/1.1 400", 0), 0u) << bad << "\n→ " << reply;
    EXPECT_TRUE(closed) << bad;
  }
}

TEST_F(ServerTest, HeadersOverLimitAre431) {
  ServerOptions o;
  o.header_limit = 2048;
  start(o);
  auto r = client_.request("GET", url(*server_, "/hello"), {{"X-Big", std::string(4000, 'h')}});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 431);
  EXPECT_NE(r->body.find("http.header_too_large"), std::string::npos);
}

TEST_F(ServerTest, MalformedRequestIs400) {
  start();
  RawSocket s(server_->port());
  s.send("GARBAGE\r\n\r\n");
  bool closed = false;
  auto reply = s.read_all(5s, &closed);
  EXPECT_EQ(reply.rfind("HTTP/1.1 400", 0), 0u) << reply;
  EXPECT_TRUE(closed);
}

TEST_F(ServerTest, SlowHeadersAndIdleConnectionsAreClosed) {
  ServerOptions o;
  o.header_timeout = 200ms;
  o.idle_timeout = 200ms;
  start(o);
  {
    RawSocket slow(server_->port());
    slow.send("GET /hello HTTP/1.1\r\nHost: x\r\n");  // the head never finishes
    bool closed = false;
    auto got = slow.read_all(10s, &closed);
    EXPECT_TRUE(closed);
    EXPECT_EQ(got, "");
  }
  {
    RawSocket idle(server_->port());  // connects and sends nothing
    bool closed = false;
    idle.read_all(10s, &closed);
    EXPECT_TRUE(closed);
  }
  {
    // After one answered request the keep-alive connection is closed when idle.
    RawSocket ka(server_->port());
    ka.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    bool closed = false;
    auto got = ka.read_all(10s, &closed);
    EXPECT_TRUE(closed);
    EXPECT_EQ(got.rfind("HTTP/1.1 200", 0), 0u);
  }
}

TEST_F(ServerTest, ExpectContinueGets100) {
  start();
  RawSocket s(server_->port());
  s.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n");
  // The server answers 100 before the body is sent.
  std::string first;
  while (first.find("\r\n\r\n") == std::string::npos) {
    auto got = s.read_all(200ms);
    if (got.empty()) break;
    first += got;
  }
  EXPECT_EQ(first.rfind("HTTP/1.1 100 Continue", 0), 0u) << first;
  s.send("abc");
  auto rest = s.read_all(300ms);
  EXPECT_NE(rest.find("HTTP/1.1 200"), std::string::npos) << rest;
  EXPECT_NE(rest.find("abc"), std::string::npos);
}

TEST_F(ServerTest, StreamedEventsArriveOneByOne) {
  std::promise<void> client_saw_first;
  auto saw_first = client_saw_first.get_future().share();
  extra_streams_.emplace_back("GET", "/events",
                              [saw_first](Request&, ResponseStream& out) -> Awaitable<void> {
                                co_await out.start_sse();
                                SseEvent one;
                                one.data = "first";
                                co_await out.write_event(one);
                                // Event 2 is written only after the client has read event 1: if the
                                // server buffered event 1, the client would never see it and this
                                // wait would time out.
                                if (saw_first.wait_for(10s) != std::future_status::ready) {
                                  throw std::runtime_error("the client never saw the first event");
                                }
                                SseEvent two;
                                two.event = "second";
                                two.data = "a\nb";
                                co_await out.write_event(two);
                                co_await out.write("data: [DONE]\n\n");
                              });
  ServerOptions o;
  o.threads = 2;
  start(o);
  on_connection([&](Connection* c) -> Awaitable<void> {
    Request req = client_request("GET", "/events");
    auto head = co_await c->send(req, 5s);
    EXPECT_TRUE(head);
    if (!head) co_return;
    EXPECT_EQ(head->status, 200);
    EXPECT_EQ(head->headers.get("content-type").value_or(""), "text/event-stream");
    EXPECT_EQ(head->headers.get("transfer-encoding").value_or(""), "chunked");
    auto e1 = co_await c->read_event(5s);
    EXPECT_TRUE(e1 && *e1);
    if (!e1 || !*e1) co_return;
    EXPECT_EQ((*e1)->data, "first");
    client_saw_first.set_value();
    auto e2 = co_await c->read_event(5s);
    EXPECT_TRUE(e2 && *e2);
    if (!e2 || !*e2) co_return;
    EXPECT_EQ((*e2)->event, "second");
    EXPECT_EQ((*e2)->data, "a\nb");
    auto e3 = co_await c->read_event(5s);
    EXPECT_TRUE(e3 && *e3 && (*e3)->data == "[DONE]");
    auto end = co_await c->read_event(5s);
    EXPECT_TRUE(end && !*end);
    EXPECT_TRUE(c->body_done());
    EXPECT_TRUE(c->reusable());
    // The connection stays usable after a stream.
    req.target = "/hello";
    auto r = co_await c->request(req, 5s);
    EXPECT_TRUE(r && r->status == 200);
  });
}

/// The data of the event buffered_event() found.
std::string_view data_of(SseNext got, const SseEvent& event, const SseWire& wire) {
  return got == SseNext::wire ? wire.data : std::string_view(event.data);
}

TEST_F(ServerTest, EventsWrittenTogetherAreTakenFromTheBufferWithoutAnotherRead) {
  extra_streams_.emplace_back(
      "GET", "/burst", [](Request&, ResponseStream& out) -> Awaitable<void> {
        co_await out.start_sse();
        // Three events and the end of the body in one write.
        co_await out.write_and_finish("data: a\n\ndata: b\n\nevent: c\ndata: x\ndata: y\n\n");
      });
  start();
  on_connection([&](Connection* c) -> Awaitable<void> {
    Request req = client_request("GET", "/burst");
    auto head = co_await c->send(req, 5s);
    EXPECT_TRUE(head && head->status == 200);
    if (!head) co_return;
    auto first = co_await c->read_event(5s);
    EXPECT_TRUE(first && *first && (*first)->data == "a");
    // The rest came with the same write: no I/O needed for it. One event object for all of
    // them, as a relay uses it: each call replaces every field. A plain event is left as it
    // came, the others are parsed.
    SseEvent ev;
    SseWire wire;
    auto second = c->buffered_event(ev, wire);
    EXPECT_TRUE(second && *second == SseNext::wire);
    EXPECT_EQ(wire.data, "b");
    EXPECT_EQ(wire.bytes, "data: b\n\n");
    auto third = c->buffered_event(ev, wire);
    EXPECT_TRUE(third && *third == SseNext::event);
    EXPECT_EQ(ev.event, "c");
    EXPECT_EQ(ev.data, "x\ny");
    auto end = c->buffered_event(ev, wire);
    EXPECT_TRUE(end && *end == SseNext::none);
    EXPECT_EQ(ev.data, "x\ny");  // unchanged when there is no event
    EXPECT_TRUE(c->body_done());
    EXPECT_TRUE(c->reusable());
    req.target = "/hello";
    auto r = co_await c->request(req, 5s);
    EXPECT_TRUE(r && r->status == 200);
  });
}

TEST_F(ServerTest, WritesNowAndTheirRestsKeepEveryEventWholeAndInOrderWhenTheClientLags) {
  // The handler writes with write_now() until the socket is full (the kernel then leaves a rest
  // to await); only then does the client start reading, with buffered_event() and
  // receive_more(), and it must get every event whole and in order.
  constexpr int kEvents = 6000;
  const auto payload = [](int i) {
    return std::to_string(i) + ":" + std::string(1000, 'a' + i % 26);
  };
  std::atomic<int> rests{0};
  std::promise<void> server_blocked;
  auto blocked = server_blocked.get_future();
  extra_streams_.emplace_back("GET", "/many",
                              [&](Request&, ResponseStream& out) -> Awaitable<void> {
                                co_await out.start_sse();
                                for (int i = 0; i < kEvents; ++i) {
                                  const std::string event = "data: " + payload(i) + "\n\n";
                                  bool ok = false;
                                  if (auto rest = out.write_now(event, ok)) {
                                    if (rests.fetch_add(1) == 0) server_blocked.set_value();
                                    ok = co_await std::move(*rest);
                                  }
                                  if (!ok) co_return;
                                }
                                if (rests.load() == 0)
                                  server_blocked.set_value();  // the test then fails below
                                co_await out.finish();
                              });
  start();
  on_connection([&](Connection* c) -> Awaitable<void> {
    Request req = client_request("GET", "/many");
    auto head = co_await c->send(req, 5s);
    EXPECT_TRUE(head && head->status == 200);
    if (!head) co_return;
    EXPECT_EQ(blocked.wait_for(30s), std::future_status::ready);
    int next = 0;
    SseEvent event;
    SseWire wire;
    for (;;) {
      auto ev = c->buffered_event(event, wire);
      EXPECT_TRUE(ev);
      if (!ev) co_return;
      if (*ev != SseNext::none) {
        const std::string_view data = data_of(*ev, event, wire);
        EXPECT_EQ(data, payload(next)) << "event " << next;
        if (data != payload(next)) co_return;
        ++next;
        continue;
      }
      if (c->body_done()) break;
      auto got = co_await c->receive_more(5s);
      EXPECT_TRUE(got) << (got ? "" : got.error().message);
      if (!got) co_return;
    }
    EXPECT_EQ(next, kEvents);
    EXPECT_TRUE(c->reusable());
  });
  EXPECT_GT(rests.load(), 0) << "the socket never filled: the awaited rest was not exercised";
}

/// Reads a body's SSE events through receive_more_then(): one handler call per read.
class EventReader final : public Connection::ReadDone {
 public:
  struct Outcome {
    std::vector<std::string> data;
    std::optional<core::Result<void>> end;  ///< set by the last call
  };
  EventReader(Connection& c, Outcome& out) : c_(c), out_(out) {}
  void on_received(core::Result<void> got, std::unique_ptr<ReadDone> self) override {
    if (!got) {
      out_.end = std::move(got);
      return;
    }
    SseEvent event;
    SseWire wire;
    for (;;) {
      auto ev = c_.buffered_event(event, wire);
      if (!ev) {
        out_.end = ev.error();
        return;
      }
      if (*ev == SseNext::none) break;
      out_.data.emplace_back(data_of(*ev, event, wire));
    }
    if (c_.body_done()) {
      out_.end = core::Result<void>{};
      return;
    }
    c_.receive_more_then(5s, std::move(self));
  }

 private:
  Connection& c_;
  Outcome& out_;
};

/// Starts reading: first what came with the head (a relay takes the bytes already received before
/// it waits for more), then through receive_more_then().
void start_reading(Connection& c, EventReader::Outcome& out) {
  auto reader = std::make_unique<EventReader>(c, out);
  EventReader* r = reader.get();
  r->on_received(core::Result<void>{}, std::move(reader));
}

/// Waits on the client's own thread until `done()`.
template <class Done>
Awaitable<void> wait_for(Done done) {
  asio::steady_timer t(co_await asio::this_coro::executor);
  for (int i = 0; i < 5000 && !done(); ++i) {
    t.expires_after(1ms);
    co_await t.async_wait(asio::use_awaitable);
  }
}

TEST_F(ServerTest, ReadsInPlainHandlersGetEveryEventThenTheEndOrTheCancellation) {
  // Shared: the handler (held by the server) may run on after the test body returns.
  auto hold = std::make_shared<std::atomic<bool>>(false);
  extra_streams_.emplace_back("GET", "/events",
                              [hold](Request&, ResponseStream& out) -> Awaitable<void> {
                                co_await out.start_sse();
                                asio::steady_timer t(co_await asio::this_coro::executor);
                                for (int i = 0; i < 5; ++i) {
                                  co_await out.write(format_sse_data("e" + std::to_string(i)));
                                  t.expires_after(2ms);  // one read per event, mostly
                                  co_await t.async_wait(asio::use_awaitable);
                                  if (hold->load()) co_await out.wait_disconnected();
                                }
                                co_await out.finish();
                              });
  start();
  on_connection([&](Connection* c) -> Awaitable<void> {
    auto head = co_await c->send(client_request("GET", "/events"), 5s);
    EXPECT_TRUE(head && head->status == 200);
    EventReader::Outcome got;
    start_reading(*c, got);
    co_await wait_for([&] { return got.end.has_value(); });
    EXPECT_TRUE(got.end && *got.end) << (got.end && !*got.end ? got.end->error().message : "");
    if (!got.end || !*got.end) co_return;
    EXPECT_EQ(got.data, (std::vector<std::string>{"e0", "e1", "e2", "e3", "e4"}));
    EXPECT_TRUE(c->body_done());
    EXPECT_TRUE(c->reusable());
    // After the end of the body: called without a read, with nothing.
    EventReader::Outcome after;
    c->receive_more_then(5s, std::make_unique<EventReader>(*c, after));
    EXPECT_FALSE(after.end.has_value());  // posted, not called from inside
    co_await wait_for([&] { return after.end.has_value(); });
    EXPECT_TRUE(after.end && *after.end);
    EXPECT_TRUE(after.data.empty());

    // A read cancelled while the server is silent ends with an error.
    *hold = true;
    head = co_await c->send(client_request("GET", "/events"), 5s);
    EXPECT_TRUE(head && head->status == 200);
    EventReader::Outcome cancelled;
    start_reading(*c, cancelled);
    co_await wait_for([&] { return !cancelled.data.empty(); });
    c->cancel_read();
    co_await wait_for([&] { return cancelled.end.has_value(); });
    EXPECT_TRUE(cancelled.end.has_value());
    if (!cancelled.end) co_return;
    EXPECT_FALSE(*cancelled.end);
    if (!*cancelled.end) {
      EXPECT_EQ(cancelled.end->error().code, "http.read");
    }
    EXPECT_EQ(cancelled.data, std::vector<std::string>{"e0"});
    EXPECT_FALSE(c->reusable());
  });
}

TEST_F(ServerTest, StreamLearnsClientDisconnect) {
  std::promise<bool> gone;
  auto gone_future = gone.get_future();
  extra_streams_.emplace_back("GET", "/forever",
                              [&gone](Request&, ResponseStream& out) -> Awaitable<void> {
                                co_await out.start_sse();
                                co_await out.write(format_sse_data("x"));
                                co_await out.wait_disconnected();
                                const bool write_fails = !co_await out.write("data: late\n\n");
                                gone.set_value(out.disconnected() && write_fails);
                              });
  start();
  on_connection([&](Connection* c) -> Awaitable<void> {
    Request req = client_request("GET", "/forever");
    auto head = co_await c->send(req, 5s);
    EXPECT_TRUE(head);
    auto e = co_await c->read_event(5s);
    EXPECT_TRUE(e && *e);
    c->close();
  });
  ASSERT_EQ(gone_future.wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(gone_future.get());
}

TEST_F(ServerTest, StreamRouteMayAnswerWithAPlainResponse) {
  extra_streams_.emplace_back(
      std::string("POST"), std::string("/maybe"),
      [](Request& r, ResponseStream& out) -> Awaitable<void> {
        if (r.body == "no") {
          co_await out.respond(Response::json(400, "{\"error\":\"no\"}"));
          co_return;
        }
        Headers h;  // (GCC cannot take a braced initializer list inside co_await)
        h.set("Content-Type", "text/plain");
        co_await out.start(200, std::move(h));
        co_await out.write("a");
        co_await out.write("b");
      });
  start();
  on_connection([&](Connection* c) -> Awaitable<void> {
    Request req = client_request("POST", "/maybe", "no");
    auto r = co_await c->request(req, 5s);
    EXPECT_TRUE(r && r->status == 400 && r->body == "{\"error\":\"no\"}");
    EXPECT_EQ(r->headers.get("content-length").value_or(""), "14");
    req.body = "yes";
    auto r2 = co_await c->request(req, 5s);
    EXPECT_TRUE(r2 && r2->status == 200 && r2->body == "ab");
    EXPECT_TRUE(c->reusable());
  });
}

TEST_F(ServerTest, StreamHandlerThrowingBeforeStartGives500) {
  extra_streams_.emplace_back("GET", "/bad-stream",
                              [](Request&, ResponseStream&) -> Awaitable<void> {
                                throw std::runtime_error("no stream today");
                                co_return;
                              });
  start();
  auto r = client_.get(url(*server_, "/bad-stream"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 500);
  EXPECT_NE(r->body.find("no stream today"), std::string::npos);
}

TEST_F(ServerTest, GracefulStopFinishesInFlightAndRefusesNew) {
  std::promise<void> entered;
  std::promise<void> release;
  auto release_future = release.get_future().share();
  extra_.emplace_back("GET", "/slow", [&entered, release_future](Request&) -> Awaitable<Response> {
    entered.set_value();
    release_future.wait_for(10s);
    co_return Response::text(200, "finished");
  });
  ServerOptions o;
  o.threads = 2;
  start(o);
  const auto port = server_->port();
  auto in_flight =
      std::async(std::launch::async, [&] { return client_.get(url(*server_, "/slow")); });
  entered.get_future().wait();
  EXPECT_EQ(server_->in_flight(), 1u);
  RawSocket idle(port);  // an idle keep-alive connection is closed by stop()
  ASSERT_TRUE(idle.connected());
  std::thread stopper([&] { server_->stop(10s); });
  bool idle_closed = false;
  idle.read_all(10s, &idle_closed);
  EXPECT_TRUE(idle_closed);
  release.set_value();
  auto r = in_flight.get();
  stopper.join();
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "finished");
  EXPECT_EQ(r->headers.get("connection").value_or(""), "close");
  auto after = client_.get("http://127.0.0.1:" + std::to_string(port) + "/hello", 2s);
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error().code, "http.connect");
}

TEST_F(ServerTest, StopClosesStreamsAfterTheGracePeriod) {
  std::promise<void> started;
  extra_streams_.emplace_back("GET", "/forever",
                              [&started](Request&, ResponseStream& out) -> Awaitable<void> {
                                co_await out.start_sse();
                                co_await out.write(": hi\n\n");
                                started.set_value();
                                co_await out.wait_disconnected();
                              });
  start();
  RawSocket s(server_->port());
  s.send("GET /forever HTTP/1.1\r\nHost: x\r\n\r\n");
  started.get_future().wait();
  const auto t0 = std::chrono::steady_clock::now();
  server_->stop(100ms);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  bool closed = false;
  auto got = s.read_all(5s, &closed);
  EXPECT_TRUE(closed);
}

TEST_F(ServerTest, BindConflictNamesThePort) {
  start();
  ServerOptions o;
  o.port = server_->port();
  Server second(o);
  auto r = second.start();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "http.bind");
  EXPECT_NE(r.error().message.find(std::to_string(server_->port())), std::string::npos);
}

TEST(Client, ConnectionRefusedAndBadUrl) {
  Client c;
  std::uint16_t port = 0;
  {
    Server s(ServerOptions{});
    ASSERT_TRUE(s.start());
    port = s.port();
    s.stop(0ms);
  }
  auto r = c.get("http://127.0.0.1:" + std::to_string(port) + "/", 2s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "http.connect");
  EXPECT_EQ(c.get("nonsense").error().code, "http.bad_url");
  auto tls = c.get("https://127.0.0.1:" + std::to_string(port) + "/", 2s);
  ASSERT_FALSE(tls);
  EXPECT_EQ(tls.error().code, "http.connect");
}

TEST(Client, AddressLiteralsConnectAndAnUnknownNameIsAResolveError) {
  ServerOptions o;
  o.host = "::1";
  Server v6(o);
  if (!v6.start()) GTEST_SKIP() << "no IPv6 loopback here";
  run_client([&](asio::any_io_executor ex) -> Awaitable<void> {
    for (const char* host : {"::1", "[::1]"}) {
      auto c = co_await Connection::connect(ex, host, v6.port(), 5s);
      EXPECT_TRUE(c) << host << ": " << (c ? "" : c.error().message);
    }
    auto bad = co_await Connection::connect(ex, "no-such-host.invalid", v6.port(), 5s);
    EXPECT_FALSE(bad);
    if (!bad) {
      EXPECT_EQ(bad.error().code, "http.resolve");
    }
  });
  v6.stop(0ms);
}

TEST_F(ServerTest, ClientTimeoutOnSlowServer) {
  std::promise<void> release;
  auto rf = release.get_future().share();
  extra_.emplace_back("GET", "/stall", [rf](Request&) -> Awaitable<Response> {
    rf.wait_for(10s);
    co_return Response::text(200, "late");
  });
  ServerOptions o;
  o.threads = 2;
  start(o);
  auto r = client_.get(url(*server_, "/stall"), 200ms);
  release.set_value();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "http.timeout");
}

}  // namespace
}  // namespace openstation::http

namespace openstation::http {
namespace {

TEST_F(ServerTest, AKeptClientUsesOneConnectionAndReplacesOneTheServerClosed) {
  ServerOptions o;
  o.idle_timeout = 200ms;
  start(o);
  KeptClient kept;
  for (int i = 0; i < 3; ++i) {
    const std::string body = "{\"n\":" + std::to_string(i) + "}";
    auto r = kept.post_json(url(*server_, "/echo"), body, 5s);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->body, body);
  }
  EXPECT_EQ(kept.connections(), 1u);
  EXPECT_EQ(server_->connections(), 1u);
  // Idle past the server's keep-alive wait: the server closed it, and the next call is sent on a
  // new connection.
  std::this_thread::sleep_for(600ms);
  const auto before = std::chrono::steady_clock::now();
  auto r = kept.request("GET", url(*server_, "/hello"), {}, {}, 30s);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(kept.connections(), 2u);
  // Not held up by the deadline of the connection it kept (30 s here).
  EXPECT_LT(std::chrono::steady_clock::now() - before, 10s);
  // Another server: another connection.
  auto other = kept.request("GET", "http://127.0.0.1:1/hello", {}, {}, 2s);
  EXPECT_FALSE(other);
  auto again = kept.request("GET", url(*server_, "/hello"), {}, {}, 5s);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(kept.connections(), 3u);
}

}  // namespace
}  // namespace openstation::http
