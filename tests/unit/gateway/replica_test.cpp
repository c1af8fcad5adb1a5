// A gateway replica end to end in one process: a management API (ApiTestServer with the gateway
// feed routes) over a SQLite store, a RemoteSource following it, a Gateway serving from what it
// follows, an in-process engine, and a RemoteCallLogSink posting the call logs back.
#include "gateway/gateway.hpp"
#include "gateway/remote_source.hpp"
#include "gateway/store_source.hpp"
#include "http/client.hpp"
#include "http/server.hpp"
#include "server/api/routes.hpp"
#include "server/assignments.hpp"
#include "server/auth/api_key.hpp"
#include "support/api_test_server.hpp"
#include "support/wait_until.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <thread>

namespace openstation::gateway {
namespace {
using namespace std::chrono_literals;
using testing_support::ApiTestServer;

/// An engine answering every chat request with the same completion.
class TinyEngine {
 public:
  TinyEngine() {
    http::ServerOptions o;
    o.host = "127.0.0.1";
    o.threads = 1;
    server_ = std::make_unique<http::Server>(o);
    server_->route(
        "POST", "/v1/chat/completions", [this](http::Request&) -> http::Awaitable<http::Response> {
          ++requests;
          co_return http::Response::json(
              200,
              R"({"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":2,"completion_tokens":1,"total_tokens":3}})");
        });
    if (!server_->start()) throw std::runtime_error("engine did not start");
  }
  ~TinyEngine() { server_->stop(0ms); }
  std::uint16_t port() const { return server_->port(); }
  std::atomic<int> requests{0};

 private:
  std::unique_ptr<http::Server> server_;
};

class ReplicaTest : public ::testing::Test {
 protected:
  ApiTestServer::Options options() {
    ApiTestServer::Options o;
    o.routes = [this](http::Server& s, server::ApiContext& ctx) {
      server::register_gateway_routes(s, ctx, wake_);
    };
    return o;
  }

  std::string key_of(const store::User& user) {
    const auto k = server::auth::generate_api_key();
    store::ApiKey a;
    a.user_id = user.id;
    a.prefix = k.prefix;
    a.secret_hash = k.hash;
    auto r = api_.store().api_keys().create(a);
    if (!r) throw std::runtime_error(r.error().message);
    return k.text;
  }

  /// The test server as a replica sees it, with a new key of its admin as the credential.
  RemoteServer as_admin() {
    const auto admin = api_.store().users().get_by_name("admin");
    if (!admin) throw std::runtime_error(admin.error().message);
    RemoteServer r;
    r.url = api_.url("");
    r.credential = key_of(*admin);
    return r;
  }

  /// Service "chat" with one running instance on `port` of a node on 127.0.0.1.
  void deploy(std::uint16_t port) {
    auto& s = api_.store();
    store::Model m;
    m.name = "model-a";
    m.path = "/models/a";
    auto model = s.models().create(m);
    ASSERT_TRUE(model) << model.error().message;
    store::Node n;
    n.name = "node-1";
    n.address = "127.0.0.1";
    n.token_hash = "h";
    auto node = s.nodes().create(n);
    ASSERT_TRUE(node) << node.error().message;
    store::Service svc;
    svc.name = "chat";
    svc.model_id = model->id;
    auto created = s.services().create(svc);
    ASSERT_TRUE(created) << created.error().message;
    store::Instance i;
    i.service_id = created->id;
    i.state = store::InstanceState::running;
    i.port = port;
    i.node_ids = {node->id};
    ASSERT_TRUE(s.instances().create(i));
  }

  core::Result<http::Response> chat(std::uint16_t port, const std::string& key) {
    return http::Client{}.request(
        "POST", "http://127.0.0.1:" + std::to_string(port) + "/v1/chat/completions",
        {{"Authorization", "Bearer " + key}, {"Content-Type", "application/json"}},
        R"({"model":"chat","messages":[{"role":"user","content":"hi"}]})", 10s);
  }

  testing::ManualClock clock_;
  server::AssignmentNotifier wake_{clock_};
  ApiTestServer api_{options()};
};

TEST_F(ReplicaTest, ServesFromTheServersSnapshotAndSeesARevocationInOneUpdate) {
  TinyEngine engine;
  deploy(engine.port());
  const auto bob = api_.create_user("bob", "Bob-pass1!");
  const auto user_key = key_of(bob);

  const RemoteServer remote = as_admin();
  server::auth::KeySnapshotHolder keys;
  RouteTableHolder routes;
  LoadRegistry loads;
  RemoteSource source(remote, keys, routes, loads, 2s);
  auto first = source.refresh();
  ASSERT_TRUE(first) << first.error().message;
  ASSERT_NE(routes.load()->find("chat"), nullptr);
  EXPECT_EQ(routes.load()->find("chat")->upstreams.size(), 1u);

  RemoteCallLogSink logs(remote, {});
  GatewayOptions o;
  o.config.host = "127.0.0.1";
  o.config.port = 0;
  core::SystemClock clock;
  Gateway gw(o, keys, routes, loads, logs, clock);
  ASSERT_TRUE(gw.start());
  source.start();

  auto ok = chat(gw.port(), user_key);
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->status, 200) << ok->body;
  EXPECT_EQ(engine.requests.load(), 1);

  // The call log reaches the server's store.
  // (The gateway hands the log over just after the response went out.)
  ASSERT_TRUE(testing::wait_until(
      [&] {
        if (!logs.flush()) return false;
        auto s = api_.store().call_logs().list({});
        return s && s->items.size() == 1;
      },
      10s));
  auto stored = api_.store().call_logs().list({});
  ASSERT_TRUE(stored);
  ASSERT_EQ(stored->items.size(), 1u);
  EXPECT_EQ(stored->items.front().service, "chat");
  EXPECT_EQ(stored->items.front().user_id, bob.id);
  EXPECT_EQ(stored->items.front().status, 200);

  // Revoked on the server: the replica refuses the key after the next snapshot.
  const auto before = source.version();
  auto k = api_.store().api_keys().get_by_name(server::auth::parse_api_key(user_key)->prefix);
  ASSERT_TRUE(k);
  k->revoked_at = api_.clock.now();
  ASSERT_TRUE(api_.store().api_keys().update(*k));
  server::notify_gateway_feed(wake_);
  ASSERT_TRUE(testing::wait_until([&] { return source.version() != before; }, 10s));
  auto refused = chat(gw.port(), user_key);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 401);
  EXPECT_EQ(engine.requests.load(), 1);

  gw.stop(0ms);
  source.stop();
  logs.stop();
}

TEST_F(ReplicaTest, AnswersLeaveOutTheKeysTheReplicaHas) {
  // Thousands of keys make the document large; an instance coming or going must not send them
  // all to every replica again.
  TinyEngine engine;
  deploy(engine.port());
  const auto user_key = key_of(api_.create_user("bob", "Bob-pass1!"));
  const RemoteServer remote = as_admin();
  server::auth::KeySnapshotHolder keys;
  RouteTableHolder routes;
  LoadRegistry loads;
  RemoteSource source(remote, keys, routes, loads, 30s);
  auto first = source.refresh();
  ASSERT_TRUE(first) << first.error().message;
  ASSERT_TRUE(first->keys_included);
  EXPECT_EQ(first->keys.size(), 2u);
  EXPECT_FALSE(first->keys_version.empty());

  auto again = source.fetch("-", 0s);  // names the keys it has
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_FALSE(again->keys_included);
  EXPECT_TRUE(again->keys.empty());
  EXPECT_EQ(again->keys_version, first->keys_version);
  EXPECT_EQ(again->version, first->version);

  // A second instance: the replica applies the keyless answer, keeps its keys, routes to both.
  const auto key_gen = keys.generation();
  auto svc = api_.store().services().get_by_name("chat");
  ASSERT_TRUE(svc);
  auto node = api_.store().nodes().get_by_name("node-1");
  ASSERT_TRUE(node);
  store::Instance i;
  i.service_id = svc->id;
  i.state = store::InstanceState::running;
  i.port = engine.port();
  i.node_ids = {node->id};
  ASSERT_TRUE(api_.store().instances().create(i));
  api_.clock.advance(1s);  // the server's snapshot is made again after half a second
  source.start();
  ASSERT_TRUE(
      testing::wait_until([&] { return routes.load()->find("chat")->upstreams.size() == 2; }, 10s));
  EXPECT_EQ(keys.generation(), key_gen);
  EXPECT_TRUE(keys.load()->authenticate("Bearer " + user_key, api_.clock.now()));
  source.stop();
}

TEST_F(ReplicaTest, AWrongCredentialStopsTheStart) {
  RemoteServer remote;
  remote.url = api_.url("");
  remote.credential = server::auth::generate_api_key().text;
  server::auth::KeySnapshotHolder keys;
  RouteTableHolder routes;
  LoadRegistry loads;
  RemoteSource source(remote, keys, routes, loads, 1s);
  auto r = source.refresh();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "gateway.server_refused");
  EXPECT_NE(r.error().message.find("auth.invalid_api_key"), std::string::npos) << r.error().message;
}

/// A server that answers the snapshot long poll at once, unchanged (one that does not hold
/// long polls), is asked again after a pause, not in a loop.
TEST_F(ReplicaTest, AServerThatAnswersLongPollsAtOnceIsNotAskedInALoop) {
  const auto admin = api_.store().users().get_by_name("admin");
  ASSERT_TRUE(admin);
  http::Client client;
  auto real = client.request("GET", api_.url(server::kGatewaySnapshotPath),
                             {{"Authorization", "Bearer " + key_of(*admin)}}, {}, 10s);
  ASSERT_TRUE(real) << real.error().message;
  ASSERT_EQ(real->status, 200) << real->body;

  std::atomic<int> asked{0};
  http::ServerOptions o;
  o.host = "127.0.0.1";
  o.threads = 1;
  http::Server impatient(o);
  impatient.route("GET", std::string(server::kGatewaySnapshotPath),
                  [&](http::Request&) -> http::Awaitable<http::Response> {
                    ++asked;
                    co_return http::Response::json(200, real->body);
                  });
  ASSERT_TRUE(impatient.start());
  RemoteServer remote;
  remote.url = "http://127.0.0.1:" + std::to_string(impatient.port());
  remote.credential = key_of(*admin);
  server::auth::KeySnapshotHolder keys;
  RouteTableHolder routes;
  LoadRegistry loads;
  RemoteSource source(remote, keys, routes, loads, 30s);
  ASSERT_TRUE(source.refresh());
  asked = 0;
  source.start();
  std::this_thread::sleep_for(2500ms);
  source.stop();
  impatient.stop(0ms);
  // At once, then once a second: three in 2.5 s (the loop asked thousands of times before).
  EXPECT_GE(asked.load(), 2);
  EXPECT_LE(asked.load(), 4);
}

/// The in-process gateway (StoreSource) sees a revoked key with its next rebuild, which
/// StoreSource::keys_changed() (the API's notice) asks for at once.
TEST_F(ReplicaTest, InProcessGatewaySeesARevocationWhenToldKeysChanged) {
  TinyEngine engine;
  deploy(engine.port());
  const auto bob = api_.create_user("bob", "Bob-pass1!");
  const auto user_key = key_of(bob);
  server::auth::KeySnapshotHolder keys;
  RouteTableHolder routes;
  LoadRegistry loads;
  core::SystemClock clock;
  StoreSource source(api_.store(), keys, routes, loads, 1h, clock);  // only notices rebuild
  source.start();
  CallLogWriter writer(api_.store(), {});
  GatewayOptions o;
  o.config.host = "127.0.0.1";
  o.config.port = 0;
  Gateway gw(o, keys, routes, loads, writer, clock);
  ASSERT_TRUE(gw.start());
  auto ok = chat(gw.port(), user_key);
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;

  auto k = api_.store().api_keys().get_by_name(server::auth::parse_api_key(user_key)->prefix);
  ASSERT_TRUE(k);
  k->revoked_at = api_.clock.now();
  ASSERT_TRUE(api_.store().api_keys().update(*k));
  const auto snapshot = keys.load();
  source.keys_changed();
  ASSERT_TRUE(testing::wait_until([&] { return keys.load() != snapshot; }, 10s));
  auto refused = chat(gw.port(), user_key);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 401);
  gw.stop(0ms);
  source.stop();
  writer.stop();
}

}  // namespace
}  // namespace openstation::gateway
