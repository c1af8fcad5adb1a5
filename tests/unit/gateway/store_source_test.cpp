// The gateway's snapshots built from a real (SQLite) store.
#include "gateway/store_source.hpp"
#include "gateway/call_log_writer.hpp"
#include "server/auth/api_key.hpp"
#include "support/manual_clock.hpp"
#include "support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <filesystem>

namespace openstation::gateway {
namespace {
using namespace std::chrono_literals;

class StoreSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing_support::unique_temp_path("gateway-store");
    std::filesystem::create_directories(dir_);
    auto s = store::open_store((dir_ / "db.sqlite").string());
    ASSERT_TRUE(s) << s.error().message;
    store_ = std::move(*s);
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  store::User user(std::string name, bool disabled = false) {
    store::User u;
    u.username = std::move(name);
    u.password_hash = "x";
    u.disabled = disabled;
    auto r = store_->users().create(u);
    EXPECT_TRUE(r) << r.error().message;
    return *r;
  }

  /// A new key of `u` (allowed `models`: all when empty), stored; its text authenticates.
  server::auth::GeneratedApiKey key_of(const store::User& u, std::vector<std::string> models = {}) {
    const auto k = server::auth::generate_api_key();
    store::ApiKey a;
    a.user_id = u.id;
    a.name = "laptop";
    a.prefix = k.prefix;
    a.secret_hash = k.hash;
    a.allowed_models = std::move(models);
    auto r = store_->api_keys().create(a);
    EXPECT_TRUE(r) << r.error().message;
    return k;
  }
  /// Revokes the stored key with `prefix` at `now`.
  void revoke(const std::string& prefix, core::Clock::TimePoint now) {
    auto stored = store_->api_keys().get_by_name(prefix);
    ASSERT_TRUE(stored);
    stored->revoked_at = now;
    ASSERT_TRUE(store_->api_keys().update(*stored));
  }

  /// Stores `record` through `repo`; its id ("" when the store refused, which fails the test).
  template <class Repo, class Record>
  static std::string created(Repo& repo, const Record& record) {
    auto r = repo.create(record);
    EXPECT_TRUE(r) << r.error().message;
    return r ? r->id : "";
  }
  /// A service "chat" of a model, and a node at 10.0.0.7 for its instances.
  struct Chat {
    std::string service_id;
    std::string node_id;
  };
  Chat chat_service() {
    store::Model m;
    m.name = "model-a";
    m.path = "/models/a";
    store::Node n;
    n.name = "node-1";
    n.address = "10.0.0.7";
    n.token_hash = "h";
    store::Service s;
    s.name = "chat";
    s.model_id = created(store_->models(), m);
    return {created(store_->services(), s), created(store_->nodes(), n)};
  }
  /// An instance of `chat` in state `st` on `port`; its id.
  std::string add_instance(const Chat& chat, store::InstanceState st, int port) {
    store::Instance i;
    i.service_id = chat.service_id;
    i.state = st;
    i.port = port;
    i.node_ids = {chat.node_id};
    return created(store_->instances(), i);
  }

  std::filesystem::path dir_;
  std::unique_ptr<store::Store> store_;
  testing::ManualClock clock_;
};

TEST_F(StoreSourceTest, KeysCarryTheirUsersState) {
  const auto alice = user("alice");
  const auto bob = user("bob", true);
  const auto k1 = key_of(alice, {"m"});
  const auto k2 = key_of(bob);

  server::auth::KeySnapshotHolder keys;
  RouteTableHolder routes;
  LoadRegistry loads;
  StoreSource src(*store_, keys, routes, loads, 1h, clock_);
  ASSERT_TRUE(src.refresh());
  const auto now = core::SystemClock().now();
  auto ok = keys.load()->authenticate("Bearer " + k1.text, now);
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->username(), "alice");
  EXPECT_TRUE(server::auth::allows_model(*ok, "m"));
  EXPECT_FALSE(server::auth::allows_model(*ok, "other"));
  auto disabled = keys.load()->authenticate("Bearer " + k2.text, now);
  ASSERT_FALSE(disabled);
  EXPECT_EQ(disabled.error().code, "auth.user_disabled");

  // Revoking shows after the next refresh once the source is told.
  revoke(k1.prefix, now);
  src.keys_changed();
  ASSERT_TRUE(src.refresh());
  auto revoked = keys.load()->authenticate("Bearer " + k1.text, now);
  ASSERT_FALSE(revoked);
  EXPECT_EQ(revoked.error().code, "auth.key_revoked");
}

TEST_F(StoreSourceTest, SnapshotsAreReplacedOnlyWhenWhatTheyHoldChanged) {
  // A refresh every second that changed nothing must leave the I/O threads' copies (and their
  // memos of the keys they authenticated) alone.
  const auto alice = user("alice");
  const auto k = key_of(alice);
  server::auth::KeySnapshotHolder keys;
  RouteTableHolder routes;
  LoadRegistry loads;
  StoreSource src(*store_, keys, routes, loads, 1h, clock_);
  ASSERT_TRUE(src.refresh());
  const auto key_gen = keys.generation();
  const auto route_gen = routes.generation();
  const auto key_snapshot = keys.load();
  ASSERT_TRUE(src.refresh());
  ASSERT_TRUE(src.refresh());
  EXPECT_EQ(keys.generation(), key_gen);
  EXPECT_EQ(routes.generation(), route_gen);
  EXPECT_EQ(keys.load(), key_snapshot);

  // Told of a change that changed nothing the gateway holds: the same snapshots.
  src.keys_changed();
  ASSERT_TRUE(src.refresh());
  EXPECT_EQ(keys.generation(), key_gen);
  EXPECT_EQ(keys.load(), key_snapshot);

  // A key revoked: a new key snapshot, the same routes.
  const auto now = core::SystemClock().now();
  revoke(k.prefix, now);
  src.keys_changed();
  ASSERT_TRUE(src.refresh());
  EXPECT_EQ(keys.generation(), key_gen + 1);
  EXPECT_EQ(routes.generation(), route_gen);
  auto revoked = keys.load()->authenticate("Bearer " + k.text, now);
  ASSERT_FALSE(revoked);
  EXPECT_EQ(revoked.error().code, "auth.key_revoked");

  // A service with a running instance: new routes, the same key snapshot.
  add_instance(chat_service(), store::InstanceState::running, 40001);
  ASSERT_TRUE(src.refresh());
  EXPECT_EQ(keys.generation(), key_gen + 1);
  EXPECT_EQ(routes.generation(), route_gen + 1);
  ASSERT_NE(routes.load()->find("chat"), nullptr);
  ASSERT_TRUE(src.refresh());
  EXPECT_EQ(routes.generation(), route_gen + 1);
}

TEST_F(StoreSourceTest, KeysAreReadAgainWhenToldOrWhenOldAndRoutesEveryTime) {
  // The keys are the part that grows (thousands of users' keys); the API tells of every change
  // it makes to them, so a refresh reads them only then, or after key_max_age for a change made
  // around the API. Routes change without a notice (heartbeats) and are read every time.
  const auto alice = user("alice");
  const auto k = key_of(alice);
  server::auth::KeySnapshotHolder keys;
  RouteTableHolder routes;
  LoadRegistry loads;
  StoreSource src(*store_, keys, routes, loads, 1h, clock_, 30s);
  ASSERT_TRUE(src.refresh());
  const auto now = core::SystemClock().now();
  ASSERT_TRUE(keys.load()->authenticate("Bearer " + k.text, now));

  revoke(k.prefix, now);
  add_instance(chat_service(), store::InstanceState::running, 40001);
  clock_.advance(29s);
  ASSERT_TRUE(src.refresh());
  EXPECT_NE(routes.load()->find("chat"), nullptr);                  // routes: read
  EXPECT_TRUE(keys.load()->authenticate("Bearer " + k.text, now));  // keys: not yet

  clock_.advance(1s);  // 30 s since the keys were read
  ASSERT_TRUE(src.refresh());
  auto revoked = keys.load()->authenticate("Bearer " + k.text, now);
  ASSERT_FALSE(revoked);
  EXPECT_EQ(revoked.error().code, "auth.key_revoked");

  // A notice is read at the next refresh, whatever the age.
  const auto k2 = key_of(alice);
  ASSERT_TRUE(src.refresh());
  EXPECT_FALSE(keys.load()->authenticate("Bearer " + k2.text, now));
  src.keys_changed();
  ASSERT_TRUE(src.refresh());
  EXPECT_TRUE(keys.load()->authenticate("Bearer " + k2.text, now));
}

TEST(SnapshotPublisher, KeepsWhatDidNotChangeByPointerOrByContent) {
  // A replica gets the whole snapshot again when only an instance changed: its keys, equal in
  // content but a new vector, must not replace the I/O threads' key snapshot (and memos).
  server::auth::KeySnapshotHolder keys;
  RouteTableHolder routes;
  LoadRegistry loads;
  SnapshotPublisher publisher(keys, routes, loads);
  server::auth::KeyRecord k;
  k.key_id = "key_1";
  k.prefix = "ab12cd34";
  k.hash = std::string(64, 'a');
  using Keys = std::vector<server::auth::KeyRecord>;
  server::GatewayService chat{"chat", "svc_1", 0, {{"ins_1", "10.0.0.7", 40001, false}}};
  publisher.publish(std::make_shared<const Keys>(Keys{k}), {chat});
  const auto key_gen = keys.generation();
  const auto route_gen = routes.generation();

  auto draining = chat;
  draining.instances.front().draining = true;
  publisher.publish(std::make_shared<const Keys>(Keys{k}), {draining});  // equal keys, new vector
  EXPECT_EQ(keys.generation(), key_gen);
  EXPECT_EQ(routes.generation(), route_gen + 1);
  EXPECT_TRUE(routes.load()->find("chat")->upstreams.front().draining);

  auto revoked = k;
  revoked.revoked = true;
  publisher.publish(std::make_shared<const Keys>(Keys{revoked}), {draining});
  EXPECT_EQ(keys.generation(), key_gen + 1);
  EXPECT_EQ(routes.generation(), route_gen + 1);
}

TEST_F(StoreSourceTest, RoutesListRunningAndDrainingInstancesOnly) {
  const auto chat = chat_service();
  auto add = [&](store::InstanceState st, int port) { return add_instance(chat, st, port); };
  const auto running = add(store::InstanceState::running, 40001);
  const auto draining = add(store::InstanceState::draining, 40002);
  add(store::InstanceState::starting, 40003);
  add(store::InstanceState::unhealthy, 40004);
  add(store::InstanceState::running, 0);  // no port yet

  LoadRegistry loads;
  auto routes = load_routes(*store_, loads);
  ASSERT_TRUE(routes) << routes.error().message;
  ASSERT_EQ(routes->size(), 1u);
  const auto& r = routes->front();
  EXPECT_EQ(r.model, "chat");
  ASSERT_EQ(r.upstreams.size(), 2u);
  EXPECT_EQ(r.upstreams[0].instance_id, running);
  EXPECT_EQ(r.upstreams[0].host, "10.0.0.7");
  EXPECT_EQ(r.upstreams[0].port, 40001);
  EXPECT_FALSE(r.upstreams[0].draining);
  EXPECT_EQ(r.upstreams[1].instance_id, draining);
  EXPECT_TRUE(r.upstreams[1].draining);
  EXPECT_EQ(loads.all().size(), 2u);
}

}  // namespace
}  // namespace openstation::gateway

namespace openstation::gateway {
namespace {

TEST_F(StoreSourceTest, CallLogsAreWrittenAndMarkTheirKeysUsed) {
  const auto alice = user("alice");
  const auto k = server::auth::generate_api_key();
  store::ApiKey a;
  a.user_id = alice.id;
  a.prefix = k.prefix;
  a.secret_hash = k.hash;
  auto key = store_->api_keys().create(a);
  ASSERT_TRUE(key) << key.error().message;
  EXPECT_FALSE(key->last_used_at.has_value());

  CallLogWriter writer(*store_, {std::chrono::hours(1), 512, 100000});
  // The store keeps milliseconds.
  const auto t0 = std::chrono::floor<std::chrono::milliseconds>(core::SystemClock().now());
  for (int i = 0; i < 3; ++i) {
    store::CallLog log;
    log.time = t0 + std::chrono::seconds(i);
    log.user_id = alice.id;
    log.key_id = key->id;
    log.service = "chat";
    log.status = 200;
    writer.submit(log);
  }
  ASSERT_TRUE(writer.flush());
  EXPECT_EQ(writer.written(), 3u);
  auto logs = store_->call_logs().list({});
  ASSERT_TRUE(logs);
  EXPECT_EQ(logs->items.size(), 3u);
  auto used = store_->api_keys().get(key->id);
  ASSERT_TRUE(used);
  ASSERT_TRUE(used->last_used_at.has_value());
  EXPECT_EQ(*used->last_used_at, t0 + std::chrono::seconds(2));
}

}  // namespace
}  // namespace openstation::gateway
