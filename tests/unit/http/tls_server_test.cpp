// HTTPS on loopback port 0: the server with a self-signed certificate, and the clients trusting it
// by pinned fingerprint or CA file (or not at all); streaming, keep-alive, drain, bad certificate
// files and plain HTTP against the TLS port.
#include "http/client.hpp"
#include "http/server.hpp"
#include "http/tls.hpp"
#include "support/temp_dir.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>

namespace openstation::http {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

template <class F>
void run_client(F&& f) {
  asio::io_context ioc;
  asio::co_spawn(ioc, std::forward<F>(f)(ioc.get_executor()), asio::detached);
  ioc.run();
}

class TlsServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing_support::unique_temp_path("tls-server");
    fs::remove_all(dir_);
    cert_ = dir_ / "server.crt";
    key_ = dir_ / "server.key";
    auto made = ensure_self_signed_certificate(cert_, key_, {"localhost", "127.0.0.1"});
    ASSERT_TRUE(made) << made.error().message;
    fingerprint_ = certificate_fingerprint(cert_).value();
  }
  void TearDown() override {
    if (server_) server_->stop(2s);
    fs::remove_all(dir_);
  }

  void start(ServerOptions o = {}) {
    o.tls = TlsServerOptions{cert_.string(), key_.string()};
    server_ = std::make_unique<Server>(std::move(o));
    server_->route("GET", "/hello", [](Request&) -> Awaitable<Response> {
      co_return Response::text(200, "hello over tls");
    });
    server_->route("POST", "/echo", [](Request& r) -> Awaitable<Response> {
      co_return Response::text(200, r.body);
    });
    for (auto& [m, p, h] : extra_) server_->route(m, p, h);
    for (auto& [m, p, h] : extra_streams_) server_->stream(m, p, h);
    auto ok = server_->start();
    ASSERT_TRUE(ok) << ok.error().message;
  }

  std::string url(std::string_view path, std::string_view host = "127.0.0.1") const {
    return "https://" + std::string(host) + ":" + std::to_string(server_->port()) +
           std::string(path);
  }
  TlsClientOptions pinned() const {
    TlsClientOptions t;
    t.pinned_sha256 = fingerprint_;
    return t;
  }

  fs::path dir_;
  fs::path cert_;
  fs::path key_;
  std::string fingerprint_;
  std::vector<std::tuple<std::string, std::string, Handler>> extra_;
  std::vector<std::tuple<std::string, std::string, StreamHandler>> extra_streams_;
  std::unique_ptr<Server> server_;
};

TEST_F(TlsServerTest, PinnedFingerprintIsTrusted) {
  start();
  Client client(pinned());
  auto r = client.get(url("/hello"));
  ASSERT_TRUE(r) << r.error().code << ": " << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "hello over tls");

  // Any accepted spelling of the same fingerprint.
  TlsClientOptions lower;
  lower.pinned_sha256 = fingerprint_.substr(7);
  for (auto& c : lower.pinned_sha256) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  auto posted = Client(lower).post_json(url("/echo"), std::string(100000, 'x'));
  ASSERT_TRUE(posted) << posted.error().message;
  EXPECT_EQ(posted->body.size(), 100000u);
}

TEST_F(TlsServerTest, WrongPinIsRefusedShowingBothFingerprints) {
  start();
  const auto other_cert = dir_ / "other.crt";
  ASSERT_TRUE(ensure_self_signed_certificate(other_cert, dir_ / "other.key", {"127.0.0.1"}));
  const std::string other = certificate_fingerprint(other_cert).value();
  TlsClientOptions t;
  t.pinned_sha256 = other;
  auto r = Client(t).get(url("/hello"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "http.tls_fingerprint_mismatch");
  EXPECT_NE(r.error().message.find(fingerprint_), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find(other), std::string::npos) << r.error().message;

  t.pinned_sha256 = "not-a-fingerprint";
  auto bad = Client(t).get(url("/hello"));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, "http.bad_fingerprint");
}

TEST_F(TlsServerTest, CaFileVerifiesChainAndHostName) {
  start();
  TlsClientOptions t;
  t.ca_file = cert_.string();
  auto r = Client(t).get(url("/hello"));
  ASSERT_TRUE(r) << r.error().code << ": " << r.error().message;
  EXPECT_EQ(r->body, "hello over tls");
  auto by_name = Client(t).get(url("/hello", "localhost"));
  ASSERT_TRUE(by_name) << by_name.error().code << ": " << by_name.error().message;

  // The certificate does not name this host.
  t.server_name = "elsewhere.example";
  auto wrong_host = Client(t).get(url("/hello"));
  ASSERT_FALSE(wrong_host);
  EXPECT_EQ(wrong_host.error().code, "http.tls_verify");
  EXPECT_NE(wrong_host.error().message.find("mismatch"), std::string::npos)
      << wrong_host.error().message;

  // A CA that did not issue it.
  const auto other_cert = dir_ / "other.crt";
  ASSERT_TRUE(ensure_self_signed_certificate(other_cert, dir_ / "other.key", {"127.0.0.1"}));
  TlsClientOptions other;
  other.ca_file = other_cert.string();
  auto untrusted = Client(other).get(url("/hello"));
  ASSERT_FALSE(untrusted);
  EXPECT_EQ(untrusted.error().code, "http.tls_verify");

  TlsClientOptions missing;
  missing.ca_file = (dir_ / "nope.pem").string();
  auto no_file = Client(missing).get(url("/hello"));
  ASSERT_FALSE(no_file);
  EXPECT_EQ(no_file.error().code, "http.tls_ca");
}

TEST_F(TlsServerTest, NoTrustIsRefusedWithTheReasonAndTheFingerprint) {
  start();
  auto r = Client().get(url("/hello"));  // the system store does not know this certificate
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "http.tls_verify");
  EXPECT_NE(r.error().message.find("self-signed"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find(fingerprint_), std::string::npos) << r.error().message;
}

TEST_F(TlsServerTest, FetchPeerFingerprintReadsTheServersCertificate) {
  start();
  auto fp = fetch_peer_fingerprint("127.0.0.1", server_->port(), 5s);
  ASSERT_TRUE(fp) << fp.error().message;
  EXPECT_EQ(*fp, fingerprint_);
}

TEST_F(TlsServerTest, SseStreamsEventByEventAndKeepAliveWorks) {
  std::promise<void> client_saw_first;
  auto saw_first = client_saw_first.get_future().share();
  extra_streams_.emplace_back("GET", "/events",
                              [saw_first](Request&, ResponseStream& out) -> Awaitable<void> {
                                co_await out.start_sse();
                                co_await out.write(format_sse_data("first"));
                                // The second event is written only after the client has read
                                // the first: nothing may be held back in a TLS buffer.
                                if (saw_first.wait_for(10s) != std::future_status::ready) {
                                  throw std::runtime_error("the client never saw the first event");
                                }
                                SseEvent two;
                                two.event = "second";
                                two.data = "a\nb";
                                co_await out.write_event(two);
                              });
  ServerOptions o;
  o.threads = 2;
  start(o);
  run_client([&](asio::any_io_executor ex) -> Awaitable<void> {
    auto c = co_await Connection::connect(ex, "127.0.0.1", server_->port(), 5s, pinned());
    EXPECT_TRUE(c) << (c ? "" : c.error().message);
    if (!c) co_return;
    EXPECT_TRUE(c->secure());
    EXPECT_EQ(c->peer_fingerprint(), fingerprint_);
    for (int i = 0; i < 3; ++i) {  // keep-alive: several requests, one connection
      Request req;
      req.method = "POST";
      req.target = "/echo";
      req.body = "body " + std::to_string(i);
      auto r = co_await c->request(req, 5s);
      EXPECT_TRUE(r && r->body == req.body);
      EXPECT_TRUE(c->reusable());
    }
    Request req;
    req.method = "GET";
    req.target = "/events";
    auto head = co_await c->send(req, 5s);
    EXPECT_TRUE(head && head->status == 200);
    if (!head) co_return;
    EXPECT_EQ(head->headers.get("content-type").value_or(""), "text/event-stream");
    auto e1 = co_await c->read_event(5s);
    EXPECT_TRUE(e1 && *e1 && (*e1)->data == "first");
    client_saw_first.set_value();
    auto e2 = co_await c->read_event(5s);
    EXPECT_TRUE(e2 && *e2 && (*e2)->event == "second" && (*e2)->data == "a\nb");
    auto end = co_await c->read_event(5s);
    EXPECT_TRUE(end && !*end);
    EXPECT_TRUE(c->reusable());
    req.target = "/hello";
    auto r = co_await c->request(req, 5s);
    EXPECT_TRUE(r && r->status == 200 && r->body == "hello over tls");
  });
  EXPECT_EQ(server_->connections() <= 1u, true);
}

TEST_F(TlsServerTest, StreamLearnsClientDisconnect) {
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
  ServerOptions o;
  o.write_timeout = 200ms;  // the watcher's read must not inherit this deadline
  start(o);
  run_client([&](asio::any_io_executor ex) -> Awaitable<void> {
    auto c = co_await Connection::connect(ex, "127.0.0.1", server_->port(), 5s, pinned());
    EXPECT_TRUE(c);
    if (!c) co_return;
    Request req;
    req.method = "GET";
    req.target = "/forever";
    auto head = co_await c->send(req, 5s);
    EXPECT_TRUE(head);
    auto e = co_await c->read_event(5s);
    EXPECT_TRUE(e && *e);
    // Quiet for longer than the write timeout: the stream must still be open.
    asio::steady_timer t(ex, 600ms);
    co_await t.async_wait(asio::use_awaitable);
    EXPECT_EQ(server_->connections(), 1u);
    c->close();
  });
  ASSERT_EQ(gone_future.wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(gone_future.get());
}

TEST_F(TlsServerTest, GracefulStopFinishesInFlightRequest) {
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
  auto in_flight =
      std::async(std::launch::async, [&] { return Client(pinned()).get(url("/slow")); });
  entered.get_future().wait();
  auto stopped = std::async(std::launch::async, [&] { server_->stop(5s); });
  release.set_value();
  stopped.get();
  auto r = in_flight.get();
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->body, "finished");
  EXPECT_EQ(server_->connections(), 0u);
}

TEST_F(TlsServerTest, PlainHttpOnTheTlsPortIsAnsweredAndClosed) {
  start();
  const std::string plain = "http://127.0.0.1:" + std::to_string(server_->port()) + "/hello";
  auto r = Client().get(plain, 5s);
  ASSERT_TRUE(r) << r.error().code << ": " << r.error().message;
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("http.tls_required"), std::string::npos) << r->body;
  // The server carries on.
  auto ok = Client(pinned()).get(url("/hello"));
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->status, 200);
}

TEST_F(TlsServerTest, HttpsClientAgainstPlainServerFailsCleanly) {
  Server plain(ServerOptions{});
  plain.route("GET", "/hello",
              [](Request&) -> Awaitable<Response> { co_return Response::text(200, "plain"); });
  ASSERT_TRUE(plain.start());
  auto r = Client(pinned()).get("https://127.0.0.1:" + std::to_string(plain.port()) + "/hello", 5s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "http.tls_handshake");
  plain.stop(1s);
}

TEST_F(TlsServerTest, BadCertificateFilesAreNamedAtStart) {
  auto try_start = [](TlsServerOptions t) {
    ServerOptions o;
    o.tls = std::move(t);
    Server s(std::move(o));
    return s.start();
  };
  auto missing = try_start({(dir_ / "nope.crt").string(), key_.string()});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, "http.tls_cert");
  EXPECT_NE(missing.error().message.find("nope.crt"), std::string::npos);
  EXPECT_NE(missing.error().message.find("does not exist"), std::string::npos);

  { std::ofstream(dir_ / "junk.crt") << "-----BEGIN CERTIFICATE-----\nnope\n"; }
  auto junk = try_start({(dir_ / "junk.crt").string(), key_.string()});
  ASSERT_FALSE(junk);
  EXPECT_EQ(junk.error().code, "http.tls_cert");
  EXPECT_NE(junk.error().message.find("junk.crt"), std::string::npos);

  const auto other_cert = dir_ / "other.crt";
  const auto other_key = dir_ / "other.key";
  ASSERT_TRUE(ensure_self_signed_certificate(other_cert, other_key, {"localhost"}));
  auto mismatch = try_start({cert_.string(), other_key.string()});
  ASSERT_FALSE(mismatch);
  EXPECT_EQ(mismatch.error().code, "http.tls_cert");
  EXPECT_NE(mismatch.error().message.find("does not match"), std::string::npos)
      << mismatch.error().message;
  EXPECT_NE(mismatch.error().message.find(other_key.string()), std::string::npos);

  auto ok = try_start({other_cert.string(), other_key.string()});
  EXPECT_TRUE(ok) << ok.error().message;
}

}  // namespace
}  // namespace openstation::http
