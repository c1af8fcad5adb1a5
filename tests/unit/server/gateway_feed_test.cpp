// The gateway feed: the snapshot document replicas follow (codec, version), its long-poll
// endpoint with its credential rules, and the call-log endpoint.
#include "server/gateway_feed.hpp"

#include "server/api/routes.hpp"
#include "server/assignments.hpp"
#include "server/auth/api_key.hpp"
#include "support/api_test_server.hpp"
#include "support/manual_clock.hpp"
#include "support/temp_store.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

namespace openstation::server {
namespace {

using testing_support::ApiTestServer;
using namespace std::chrono_literals;

GatewaySnapshot sample() {
  GatewaySnapshot s;
  s.requests_per_minute = 60;
  s.tokens_per_minute = 1000;
  auth::KeyRecord k;
  k.key_id = "key_1";
  k.user_id = "usr_1";
  k.username = "alice";
  k.role = auth::Role::admin;
  k.name = "laptop";
  k.prefix = "ab12cd34";
  k.hash = std::string(64, 'a');
  k.revoked = false;
  k.user_disabled = true;
  k.expires_at = core::Clock::TimePoint(std::chrono::milliseconds(1'800'000'000'123));
  k.allowed_models = {"chat", "embed"};
  s.keys.push_back(k);
  GatewayService svc;
  svc.model = "chat";
  svc.service_id = "svc_1";
  svc.created = 1'700'000'000;
  svc.instances = {{"ins_1", "10.0.0.7", 40001, false}, {"ins_2", "10.0.0.8", 40002, true}};
  s.services.push_back(svc);
  s.version = gateway_snapshot_version(s);
  return s;
}

TEST(GatewaySnapshotCodec, RoundTripsEveryField) {
  const auto s = sample();
  auto back = parse_gateway_snapshot(gateway_snapshot_to_json(s));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->version, s.version);
  EXPECT_EQ(back->requests_per_minute, 60u);
  EXPECT_EQ(back->tokens_per_minute, 1000u);
  ASSERT_EQ(back->keys.size(), 1u);
  const auto& k = back->keys.front();
  EXPECT_EQ(k.key_id, "key_1");
  EXPECT_EQ(k.user_id, "usr_1");
  EXPECT_EQ(k.username, "alice");
  EXPECT_EQ(k.role, auth::Role::admin);
  EXPECT_EQ(k.name, "laptop");
  EXPECT_EQ(k.prefix, "ab12cd34");
  EXPECT_EQ(k.hash, std::string(64, 'a'));
  EXPECT_FALSE(k.revoked);
  EXPECT_TRUE(k.user_disabled);
  ASSERT_TRUE(k.expires_at);
  EXPECT_EQ(*k.expires_at, s.keys.front().expires_at);
  EXPECT_EQ(k.allowed_models, (std::vector<std::string>{"chat", "embed"}));
  EXPECT_EQ(back->services, s.services);
  EXPECT_EQ(gateway_snapshot_version(*back), s.version);
}

TEST(GatewaySnapshotCodec, VersionFollowsContent) {
  auto a = sample();
  auto b = sample();
  EXPECT_EQ(gateway_snapshot_version(a), gateway_snapshot_version(b));
  b.keys.front().revoked = true;
  EXPECT_NE(gateway_snapshot_version(a), gateway_snapshot_version(b));
  b = sample();
  b.services.front().instances.front().draining = true;
  EXPECT_NE(gateway_snapshot_version(a), gateway_snapshot_version(b));
  b = sample();
  b.services.front().instances.pop_back();
  EXPECT_NE(gateway_snapshot_version(a), gateway_snapshot_version(b));
  b = sample();
  b.tokens_per_minute = 1001;
  EXPECT_NE(gateway_snapshot_version(a), gateway_snapshot_version(b));
  b = sample();
  b.keys.push_back(b.keys.front());
  EXPECT_NE(gateway_snapshot_version(a), gateway_snapshot_version(b));
}

// --- the shared reading: keys only when they may have changed, one making for every replica ---

class GatewayFeedCache : public ::testing::Test {
 protected:
  store::User user(const std::string& name) {
    store::User u;
    u.username = name;
    u.password_hash = "x";
    auto r = store_->users().create(u);
    EXPECT_TRUE(r) << r.error().message;
    return r ? *r : u;
  }
  /// A key of `u` straight into the store; its text.
  std::string key_of(const store::User& u) {
    const auto k = auth::generate_api_key();
    store::ApiKey a;
    a.user_id = u.id;
    a.prefix = k.prefix;
    a.secret_hash = k.hash;
    EXPECT_TRUE(store_->api_keys().create(a));
    return k.text;
  }
  void revoke(const std::string& key) {
    auto stored = store_->api_keys().get_by_name(auth::parse_api_key(key)->prefix);
    ASSERT_TRUE(stored);
    stored->revoked_at = clock_.now();
    ASSERT_TRUE(store_->api_keys().update(*stored));
  }
  /// A service "chat" with one running instance on a node at 10.0.0.7.
  void running_chat() {
    store::Model m;
    m.name = "model-a";
    m.path = "/models/a";
    auto model = store_->models().create(m);
    ASSERT_TRUE(model);
    store::Node n;
    n.name = "node-1";
    n.address = "10.0.0.7";
    n.token_hash = "h";
    auto node = store_->nodes().create(n);
    ASSERT_TRUE(node);
    store::Service sv;
    sv.name = "chat";
    sv.model_id = model->id;
    auto svc = store_->services().create(sv);
    ASSERT_TRUE(svc);
    store::Instance i;
    i.service_id = svc->id;
    i.state = store::InstanceState::running;
    i.port = 40001;
    i.node_ids = {node->id};
    ASSERT_TRUE(store_->instances().create(i));
  }
  /// Whether `key` authenticates against the keys of `published`.
  bool lets_in(const PublishedGatewaySnapshot& published, const std::string& key) {
    auto s = parse_gateway_snapshot(published.json);
    EXPECT_TRUE(s) << s.error().message;
    return s && auth::KeySnapshot(s->keys).authenticate("Bearer " + key, clock_.now()).has_value();
  }

  testing::ManualClock clock_;
  testing_support::TempStore store_{"gateway-feed-cache", clock_};
};

TEST_F(GatewayFeedCache, ReaderReadsKeysOnlyWhenToldOrOldAndServicesEveryTime) {
  const auto alice = user("alice");
  const auto k = key_of(alice);
  GatewayFeedReader reader(clock_, 30s);
  auto first = reader.read(*store_);
  ASSERT_TRUE(first) << first.error().message;
  ASSERT_EQ(first->keys->size(), 1u);
  EXPECT_TRUE(first->services.empty());
  EXPECT_EQ(reader.key_reads(), 1u);

  revoke(k);
  running_chat();
  auto second = reader.read(*store_);
  ASSERT_TRUE(second);
  EXPECT_EQ(reader.key_reads(), 1u);
  EXPECT_EQ(second->keys, first->keys);  // not read: the same keys
  ASSERT_EQ(second->services.size(), 1u);
  EXPECT_EQ(second->services.front().instances.size(), 1u);

  reader.keys_changed();
  auto third = reader.read(*store_);
  ASSERT_TRUE(third);
  EXPECT_EQ(reader.key_reads(), 2u);
  EXPECT_NE(third->keys, first->keys);
  EXPECT_TRUE(third->keys->front().revoked);

  // Read again with nothing changed: the same pointer, so followers keep what they built.
  reader.keys_changed();
  auto fourth = reader.read(*store_);
  ASSERT_TRUE(fourth);
  EXPECT_EQ(reader.key_reads(), 3u);
  EXPECT_EQ(fourth->keys, third->keys);

  // Too old: read without a notice.
  key_of(alice);
  clock_.advance(29s);
  ASSERT_TRUE(reader.read(*store_));
  EXPECT_EQ(reader.key_reads(), 3u);
  clock_.advance(1s);
  auto old = reader.read(*store_);
  ASSERT_TRUE(old);
  EXPECT_EQ(reader.key_reads(), 4u);
  EXPECT_EQ(old->keys->size(), 2u);
}

TEST_F(GatewayFeedCache, OneMakingServesEveryWaiterUntilItIsOldOrKeysChange) {
  const auto alice = user("alice");
  const auto k = key_of(alice);
  config::GatewayConfig limits;
  limits.requests_per_minute = 5;
  GatewaySnapshotCache cache(clock_, 500ms, 30s);
  auto a = cache.current(*store_, limits, 0);
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_TRUE(lets_in(**a, k));
  auto parsed = parse_gateway_snapshot((*a)->json);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->version, (*a)->version);
  EXPECT_EQ(gateway_snapshot_version(*parsed), (*a)->version);  // the same digest as a replica's
  EXPECT_EQ(parsed->requests_per_minute, 5u);

  // Younger than max_age and no key change: the same snapshot, nothing read.
  running_chat();
  auto b = cache.current(*store_, limits, 0);
  ASSERT_TRUE(b);
  EXPECT_EQ(*b, *a);
  EXPECT_EQ(cache.key_reads(), 1u);

  // Older: made again; the routes read, the keys not.
  clock_.advance(500ms);
  auto c = cache.current(*store_, limits, 0);
  ASSERT_TRUE(c);
  EXPECT_NE((*c)->version, (*a)->version);
  EXPECT_EQ(parse_gateway_snapshot((*c)->json)->services.size(), 1u);
  EXPECT_EQ(cache.key_reads(), 1u);

  // Older again with nothing changed: the same snapshot object.
  clock_.advance(500ms);
  auto d = cache.current(*store_, limits, 0);
  ASSERT_TRUE(d);
  EXPECT_EQ(*d, *c);

  // A key change (the notifier's generation moved) is made at once, however young.
  revoke(k);
  auto e = cache.current(*store_, limits, 1);
  ASSERT_TRUE(e);
  EXPECT_EQ(cache.key_reads(), 2u);
  EXPECT_NE((*e)->version, (*d)->version);
  EXPECT_FALSE(lets_in(**e, k));
}

TEST(GatewaySnapshotCodec, KeysLeftOutOnlyWithTheirVersion) {
  // No "keys" but a keys_version: left out for a caller that has them. Neither (a document
  // without keys from an older server): no keys.
  auto lean = parse_gateway_snapshot(R"({"version":"v","keys_version":"k","services":[]})");
  ASSERT_TRUE(lean) << lean.error().message;
  EXPECT_FALSE(lean->keys_included);
  EXPECT_EQ(lean->keys_version, "k");
  auto none = parse_gateway_snapshot(R"({"version":"v","services":[]})");
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->keys_included);
  EXPECT_TRUE(none->keys.empty());
  auto full = parse_gateway_snapshot(gateway_snapshot_to_json(sample()));
  ASSERT_TRUE(full);
  EXPECT_TRUE(full->keys_included);
  EXPECT_FALSE(full->keys_version.empty());
}

TEST(GatewaySnapshotCodec, RejectsMalformedDocuments) {
  for (const char* text : {
           "",
           "[]",
           R"({"keys": []})",  // no version
           R"({"version": "v", "keys": [{"key_id": "k"}]})",
           R"({"version": "v", "keys": [{"key_id": "k", "user_id": "u", "role": "root",
               "prefix": "p", "hash": "h"}]})",
           R"({"version": "v", "services": [{"model": "m", "service_id": "s",
               "instances": [{"instance_id": "i", "host": "h", "port": 70000}]}]})",
           R"({"version": "v", "keys": [{"key_id": "k", "user_id": "u", "role": "user",
               "prefix": "p", "hash": "h", "allowed_models": [1]}]})",
       }) {
    auto r = parse_gateway_snapshot(text);
    ASSERT_FALSE(r) << text;
    EXPECT_EQ(r.error().code, "gateway.bad_snapshot") << text << ": " << r.error().message;
  }
}

TEST(GatewayCallLogCodec, RoundTripsAndRejectsBadBatches) {
  store::CallLog l;
  l.time = core::Clock::TimePoint(std::chrono::milliseconds(1'800'000'000'000));
  l.user_id = "usr_1";
  l.key_id = "key_1";
  l.service = "chat";
  l.instance_id = "ins_1";
  l.status = 200;
  l.duration_ms = 42;
  l.prompt_tokens = 5;
  l.completion_tokens = 7;
  l.ttft_ms = 3;
  l.tokens_per_second = 12.5;
  store::CallLog failed = l;
  failed.status = 502;
  failed.ttft_ms.reset();
  failed.error = "the engine's stream broke";
  auto back = parse_call_logs(call_logs_to_json(std::vector<store::CallLog>{l, failed}));
  ASSERT_TRUE(back) << back.error().message;
  ASSERT_EQ(back->size(), 2u);
  EXPECT_EQ((*back)[0], l);
  EXPECT_EQ((*back)[1], failed);

  for (const char* text : {"{}", R"({"logs": {}})", R"({"logs": [{"status": 200}]})",
                           R"({"logs": [{"time": 1, "status": 42}]})", "nope"}) {
    auto r = parse_call_logs(text);
    ASSERT_FALSE(r) << text;
    EXPECT_EQ(r.error().code, "gateway.bad_call_logs") << text;
  }
  std::string big = R"({"logs": [)";
  for (int i = 0; i < 10001; ++i)
    big += std::string(i ? "," : "") + R"({"time": 1, "status": 200})";
  big += "]}";
  auto r = parse_call_logs(big);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "gateway.bad_call_logs");
}

class GatewayFeedApi : public ::testing::Test {
 protected:
  ApiTestServer::Options options() {
    ApiTestServer::Options o;
    o.routes = [this](http::Server& s, ApiContext& ctx) { register_gateway_routes(s, ctx, wake_); };
    o.config.gateway.requests_per_minute = 77;
    return o;
  }

  /// An API key of `user`, straight into the store; returns its text.
  std::string key_of(const store::User& user) {
    const auto k = auth::generate_api_key();
    store::ApiKey a;
    a.user_id = user.id;
    a.name = "replica";
    a.prefix = k.prefix;
    a.secret_hash = k.hash;
    auto r = api_.store().api_keys().create(a);
    if (!r) throw std::runtime_error(r.error().message);
    return k.text;
  }

  void revoke(const std::string& key) {
    auto parsed = auth::parse_api_key(key);
    auto stored = api_.store().api_keys().get_by_name(parsed->prefix);
    ASSERT_TRUE(stored);
    stored->revoked_at = api_.clock.now();
    ASSERT_TRUE(api_.store().api_keys().update(*stored));
  }

  testing::ManualClock clock_;
  AssignmentNotifier wake_{clock_};
  ApiTestServer api_{options()};
};

TEST_F(GatewayFeedApi, AdminKeyGetsTheSnapshot) {
  const auto admin = api_.store().users().get_by_name("admin");
  ASSERT_TRUE(admin);
  const auto key = key_of(*admin);
  auto r = api_.request("GET", "/api/v1/gateway/snapshot", key);
  ASSERT_EQ(r.status, 200) << r.body;
  auto s = parse_gateway_snapshot(r.body);
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->requests_per_minute, 77u);
  ASSERT_EQ(s->keys.size(), 1u);
  EXPECT_EQ(s->keys.front().hash, auth::hash_api_key(key));
  EXPECT_EQ(s->keys.front().username, "admin");
  // The secret itself never travels.
  EXPECT_EQ(r.body.find(key), std::string::npos);
  // An admin's session works too.
  auto by_session = api_.request("GET", "/api/v1/gateway/snapshot", api_.admin_token());
  ASSERT_EQ(by_session.status, 200) << by_session.body;
}

TEST_F(GatewayFeedApi, RefusesOtherCredentials) {
  auto none = api_.request("GET", "/api/v1/gateway/snapshot", "");
  EXPECT_EQ(none.status, 401);
  auto wrong = api_.request("GET", "/api/v1/gateway/snapshot", auth::generate_api_key().text);
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(ApiTestServer::error_code(wrong), "auth.invalid_api_key");
  const auto bob = api_.create_user("bob", "Bob-pass1!");
  const auto user_key = key_of(bob);
  auto user = api_.request("GET", "/api/v1/gateway/snapshot", user_key);
  EXPECT_EQ(user.status, 403);
  EXPECT_EQ(ApiTestServer::error_code(user), "gateway.replica_forbidden");
  auto user_session = api_.request("GET", "/api/v1/gateway/snapshot", api_.user_token("carol"));
  EXPECT_EQ(user_session.status, 403);
  const auto admin = api_.store().users().get_by_name("admin");
  const auto key = key_of(*admin);
  revoke(key);
  auto revoked = api_.request("GET", "/api/v1/gateway/snapshot", key);
  EXPECT_EQ(revoked.status, 401);
  EXPECT_EQ(ApiTestServer::error_code(revoked), "auth.key_revoked");
  auto bad_wait =
      api_.request("GET", "/api/v1/gateway/snapshot?wait_after=x&wait=soon", api_.admin_token());
  EXPECT_EQ(bad_wait.status, 400);
  EXPECT_EQ(ApiTestServer::error_code(bad_wait), "api.bad_query");
}

TEST_F(GatewayFeedApi, LongPollAnswersWhenAKeyIsRevoked) {
  const auto admin = api_.store().users().get_by_name("admin");
  const auto replica = key_of(*admin);
  const auto bob = api_.create_user("bob", "Bob-pass1!");
  const auto victim = key_of(bob);
  auto first = api_.request("GET", "/api/v1/gateway/snapshot", replica);
  ASSERT_EQ(first.status, 200);
  const auto v1 = parse_gateway_snapshot(first.body)->version;

  // Nothing changes: the wait runs out and the same version comes back.
  auto same = api_.request("GET", "/api/v1/gateway/snapshot?wait_after=" + v1 + "&wait=1", replica);
  ASSERT_EQ(same.status, 200);
  EXPECT_EQ(parse_gateway_snapshot(same.body)->version, v1);

  auto waiting = std::async(std::launch::async, [&] {
    return api_.request("GET", "/api/v1/gateway/snapshot?wait_after=" + v1 + "&wait=60", replica);
  });
  EXPECT_EQ(waiting.wait_for(300ms), std::future_status::timeout);  // it waits
  revoke(victim);
  notify_gateway_feed(wake_);
  ASSERT_EQ(waiting.wait_for(20s), std::future_status::ready);
  auto changed = waiting.get();
  ASSERT_EQ(changed.status, 200);
  auto s = parse_gateway_snapshot(changed.body);
  ASSERT_TRUE(s);
  EXPECT_NE(s->version, v1);
  auth::KeySnapshot keys(s->keys);
  auto who = keys.authenticate("Bearer " + victim, api_.clock.now());
  ASSERT_FALSE(who);
  EXPECT_EQ(who.error().code, "auth.key_revoked");
}

TEST_F(GatewayFeedApi, KeysAreLeftOutForACallerThatHasThem) {
  const auto admin = api_.store().users().get_by_name("admin");
  const auto replica = key_of(*admin);
  auto full = api_.request("GET", "/api/v1/gateway/snapshot", replica);
  ASSERT_EQ(full.status, 200);
  const auto s1 = parse_gateway_snapshot(full.body);
  ASSERT_TRUE(s1);
  ASSERT_TRUE(s1->keys_included);
  ASSERT_EQ(s1->keys.size(), 1u);
  ASSERT_FALSE(s1->keys_version.empty());

  auto ask = [&](const std::string& keys_after) {
    // wait_after differs from the version: answered at once.
    return api_.request("GET", "/api/v1/gateway/snapshot?wait_after=other&keys_after=" + keys_after,
                        replica);
  };
  auto lean = ask(s1->keys_version);
  ASSERT_EQ(lean.status, 200);
  EXPECT_EQ(lean.body.find("\"keys\":"), std::string::npos) << lean.body;
  auto s2 = parse_gateway_snapshot(lean.body);
  ASSERT_TRUE(s2) << s2.error().message;
  EXPECT_FALSE(s2->keys_included);
  EXPECT_EQ(s2->keys_version, s1->keys_version);
  EXPECT_EQ(s2->version, s1->version);  // the same content, whichever way it travels

  auto stale = parse_gateway_snapshot(ask("0123456789abcdef").body);
  ASSERT_TRUE(stale);
  EXPECT_TRUE(stale->keys_included);
  EXPECT_EQ(stale->keys.size(), 1u);

  // Keys changed: sent again, with their new version.
  key_of(*admin);
  notify_gateway_feed(wake_);
  auto changed = parse_gateway_snapshot(ask(s1->keys_version).body);
  ASSERT_TRUE(changed);
  EXPECT_TRUE(changed->keys_included);
  EXPECT_EQ(changed->keys.size(), 2u);
  EXPECT_NE(changed->keys_version, s1->keys_version);
}

TEST_F(GatewayFeedApi, CallLogsLandInTheStoreAndListPerService) {
  const auto admin = api_.store().users().get_by_name("admin");
  const auto key = key_of(*admin);
  store::Model m;
  m.name = "model-a";
  m.path = "/models/a";
  auto model = api_.store().models().create(m);
  ASSERT_TRUE(model) << model.error().message;
  store::Service svc;
  svc.name = "chat";
  svc.model_id = model->id;
  ASSERT_TRUE(api_.store().services().create(svc));

  const auto key_id = api_.store().api_keys().get_by_name(auth::parse_api_key(key)->prefix)->id;
  std::vector<store::CallLog> logs;
  for (int i = 0; i < 3; ++i) {
    store::CallLog l;
    l.time = api_.clock.now() + std::chrono::seconds(i);
    l.user_id = admin->id;
    l.key_id = key_id;
    l.service = i == 2 ? "other" : "chat";
    l.status = 200;
    l.completion_tokens = i;
    logs.push_back(l);
  }
  auto posted = api_.request("POST", "/api/v1/gateway/call-logs", key, call_logs_to_json(logs));
  ASSERT_EQ(posted.status, 200) << posted.body;
  EXPECT_EQ(ApiTestServer::json(posted).at("written").as_int64(), 3);
  auto touched = api_.store().api_keys().get(key_id);
  ASSERT_TRUE(touched && touched->last_used_at);
  EXPECT_EQ(*touched->last_used_at, logs[2].time);

  auto list = api_.request("GET", "/api/v1/services/chat/call-logs?limit=10", api_.admin_token());
  ASSERT_EQ(list.status, 200) << list.body;
  const auto listed = ApiTestServer::json(list);
  const auto& items = listed.at("items").as_array();
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0].at("completion_tokens").as_int64(), 1);  // newest first
  auto missing = api_.request("GET", "/api/v1/services/nope/call-logs", api_.admin_token());
  EXPECT_EQ(missing.status, 404);

  auto bad = api_.request("POST", "/api/v1/gateway/call-logs", key,
                          std::string(R"({"logs": [{"time": 1}]})"));
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(ApiTestServer::error_code(bad), "gateway.bad_call_logs");
  const auto bob = api_.create_user("bob", "Bob-pass1!");
  auto forbidden =
      api_.request("POST", "/api/v1/gateway/call-logs", key_of(bob), call_logs_to_json(logs));
  EXPECT_EQ(forbidden.status, 403);
}

}  // namespace
}  // namespace openstation::server
