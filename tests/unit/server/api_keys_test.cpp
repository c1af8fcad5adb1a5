// /api/v1/keys*: API keys shown once, stored hashed, per-user visibility, expiry, revocation.

#include "server/api/routes.hpp"
#include "server/auth/api_key.hpp"
#include "support/api_test_server.hpp"

#include <gtest/gtest.h>

#include <atomic>

namespace openstation::server {
namespace {

using testing_support::ApiTestServer;

class ApiKeys : public ::testing::Test {
 protected:
  static ApiTestServer::Options options(std::atomic<int>* key_changes) {
    ApiTestServer::Options o;
    o.routes = [](http::Server& s, ApiContext& ctx) {
      register_key_routes(s, ctx);
      register_event_routes(s, ctx);
    };
    o.on_keys_changed = [key_changes] { ++*key_changes; };
    return o;
  }

  std::atomic<int> key_changes_{0};
  ApiTestServer api_{options(&key_changes_)};

  http::Response create(const std::string& token, boost::json::object body) {
    return api_.request("POST", "/api/v1/keys", token, boost::json::value(std::move(body)));
  }
};

TEST_F(ApiKeys, KeyIsShownOnceAndStoredHashed) {
  auto token = api_.user_token("alice");
  auto r = create(token, {{"name", "laptop"}, {"allowed_models", {"qwen-7b", "llama-8b"}}});
  ASSERT_EQ(r.status, 201) << r.body;
  auto v = ApiTestServer::json(r);
  const std::string key(v.at("key").as_string());
  ASSERT_TRUE(auth::parse_api_key(key)) << key;
  const auto& meta = v.at("api_key").as_object();
  EXPECT_EQ(meta.at("prefix").as_string(), key.substr(6, 8));
  EXPECT_EQ(meta.at("name").as_string(), "laptop");
  EXPECT_TRUE(meta.at("expires_at").is_null());
  EXPECT_TRUE(meta.at("revoked_at").is_null());
  EXPECT_EQ(meta.at("allowed_models").as_array().size(), 2u);
  EXPECT_EQ(key_changes_.load(), 1);

  auto stored = api_.store().api_keys().get(std::string(meta.at("id").as_string()));
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->secret_hash, auth::hash_api_key(key));
  EXPECT_EQ(stored->user_id, std::string(meta.at("user_id").as_string()));

  // Never again: neither the list nor the detail repeats the key or its hash.
  auto list = api_.request("GET", "/api/v1/keys", token);
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(list.body.find(key.substr(15)), std::string::npos);
  EXPECT_EQ(list.body.find(stored->secret_hash), std::string::npos);
  EXPECT_EQ(ApiTestServer::json(list).at("items").as_array().size(), 1u);
  auto detail = api_.request("GET", "/api/v1/keys/" + stored->prefix, token);
  ASSERT_EQ(detail.status, 200) << detail.body;
  EXPECT_EQ(detail.body.find(key.substr(15)), std::string::npos);

  auto trail = ApiTestServer::json(
      api_.request("GET", "/api/v1/events?action=key.create", api_.admin_token()));
  EXPECT_EQ(trail.at("items").at(0).at("actor").as_string(), "alice");
  EXPECT_EQ(trail.at("items").at(0).at("target_id").as_string(), stored->id);
}

TEST_F(ApiKeys, ExpiryMustBeInTheFutureAndFieldsAreChecked) {
  auto token = api_.user_token("alice");
  auto past = create(token, {{"name", "old"}, {"expires_at", "2024-12-31T00:00:00Z"}});
  EXPECT_EQ(past.status, 400);
  EXPECT_EQ(ApiTestServer::error_code(past), "key.bad_expiry");
  EXPECT_EQ(ApiTestServer::error_field(past), "expires_at");
  auto garbled = create(token, {{"name", "x"}, {"expires_at", "tomorrow"}});
  EXPECT_EQ(ApiTestServer::error_code(garbled), "api.bad_time");
  auto type = create(token, {{"name", "x"}, {"allowed_models", {"a", 3}}});
  EXPECT_EQ(ApiTestServer::error_code(type), "json.wrong_type");
  EXPECT_EQ(ApiTestServer::error_field(type), "allowed_models[1]");
  auto no_name = create(token, {{"name", ""}});
  EXPECT_EQ(ApiTestServer::error_code(no_name), "key.bad_name");
  auto unknown = create(token, {{"name", "x"}, {"user", "bob"}});
  EXPECT_EQ(ApiTestServer::error_code(unknown), "json.unknown_field");
  EXPECT_EQ(api_.store().api_keys().list({})->items.size(), 0u);

  auto future = create(token, {{"name", "ci"}, {"expires_at", "2025-02-01T12:00:00+01:00"}});
  ASSERT_EQ(future.status, 201) << future.body;
  EXPECT_EQ(ApiTestServer::json(future).at("api_key").at("expires_at").as_string(),
            "2025-02-01T11:00:00.000Z");
}

TEST_F(ApiKeys, UsersSeeAndRevokeOnlyTheirOwnKeys) {
  auto alice = api_.user_token("alice");
  auto bob = api_.user_token("bob");
  auto r = create(bob, {{"name", "bob's"}});
  ASSERT_EQ(r.status, 201);
  const std::string id(ApiTestServer::json(r).at("api_key").at("id").as_string());

  auto see = api_.request("GET", "/api/v1/keys/" + id, alice);
  EXPECT_EQ(see.status, 404);
  EXPECT_EQ(ApiTestServer::error_code(see), "key.not_found");
  auto revoke = api_.request("DELETE", "/api/v1/keys/" + id, alice);
  EXPECT_EQ(revoke.status, 404);
  EXPECT_FALSE(api_.store().api_keys().get(id)->revoked_at);
  EXPECT_TRUE(ApiTestServer::json(api_.request("GET", "/api/v1/keys", alice))
                  .at("items")
                  .as_array()
                  .empty());
  auto others = api_.request("GET", "/api/v1/keys?user=bob", alice);
  EXPECT_EQ(others.status, 403);
  EXPECT_EQ(ApiTestServer::error_code(others), "auth.forbidden");
}

TEST_F(ApiKeys, AdminsListAndRevokeAnyonesKeys) {
  auto bob = api_.user_token("bob");
  auto r = create(bob, {{"name", "bob's"}});
  ASSERT_EQ(r.status, 201);
  const std::string id(ApiTestServer::json(r).at("api_key").at("id").as_string());
  const auto changes = key_changes_.load();

  auto list = api_.request("GET", "/api/v1/keys?user=bob", api_.admin_token());
  ASSERT_EQ(list.status, 200) << list.body;
  EXPECT_EQ(ApiTestServer::json(list).at("items").as_array().size(), 1u);
  EXPECT_TRUE(ApiTestServer::json(api_.request("GET", "/api/v1/keys", api_.admin_token()))
                  .at("items")
                  .as_array()
                  .empty());  // without ?user=, one's own keys
  EXPECT_EQ(api_.request("GET", "/api/v1/keys?user=ghost", api_.admin_token()).status, 404);

  EXPECT_EQ(api_.request("DELETE", "/api/v1/keys/" + id, api_.admin_token()).status, 204);
  auto stored = api_.store().api_keys().get(id);
  ASSERT_TRUE(stored->revoked_at);
  EXPECT_EQ(*stored->revoked_at, api_.clock.now());
  EXPECT_EQ(key_changes_.load(), changes + 1);
  // Revoking again changes nothing and is not an error.
  EXPECT_EQ(api_.request("DELETE", "/api/v1/keys/" + id, bob).status, 204);
  EXPECT_EQ(key_changes_.load(), changes + 1);

  auto trail = ApiTestServer::json(
      api_.request("GET", "/api/v1/events?action=key.revoke", api_.admin_token()));
  ASSERT_EQ(trail.at("items").as_array().size(), 1u);
  EXPECT_EQ(trail.at("items").at(0).at("actor").as_string(), "admin");
  auto revoked = ApiTestServer::json(api_.request("GET", "/api/v1/keys?revoked=true", bob));
  EXPECT_EQ(revoked.at("items").as_array().size(), 1u);
}

}  // namespace
}  // namespace openstation::server
