// /api/v1/settings* and /api/v1/events.

#include "server/api/routes.hpp"
#include "support/api_test_server.hpp"

#include <gtest/gtest.h>

namespace openstation::server {
namespace {

using testing_support::ApiTestServer;

ApiTestServer::Options options() {
  ApiTestServer::Options o;
  o.routes = [](http::Server& s, ApiContext& ctx) {
    register_setting_routes(s, ctx);
    register_event_routes(s, ctx);
    register_user_routes(s, ctx);
  };
  return o;
}

TEST(ApiSettings, PutGetListAndDelete) {
  ApiTestServer api(options());
  auto& token = api.admin_token();
  auto put = api.request("PUT", "/api/v1/settings/ui.banner", token,
                         boost::json::value{{"value", "Maintenance at 18:00"}});
  ASSERT_EQ(put.status, 200) << put.body;
  EXPECT_EQ(ApiTestServer::json(put).at("value").as_string(), "Maintenance at 18:00");
  ASSERT_EQ(api.request("PUT", "/api/v1/settings/hub.endpoint", token,
                        boost::json::value{{"value", "https://hf-mirror.com"}})
                .status,
            200);
  auto list = ApiTestServer::json(api.request("GET", "/api/v1/settings", token));
  ASSERT_EQ(list.at("items").as_array().size(), 2u);
  EXPECT_EQ(list.at("items").at(0).at("key").as_string(), "hub.endpoint");

  auto one = api.request("GET", "/api/v1/settings/ui.banner", token);
  EXPECT_EQ(ApiTestServer::json(one).at("value").as_string(), "Maintenance at 18:00");
  EXPECT_EQ(api.request("DELETE", "/api/v1/settings/ui.banner", token).status, 204);
  auto gone = api.request("GET", "/api/v1/settings/ui.banner", token);
  EXPECT_EQ(gone.status, 404);
  EXPECT_EQ(ApiTestServer::error_code(gone), "setting.not_found");

  auto trail = ApiTestServer::json(api.request("GET", "/api/v1/events?target_kind=setting", token));
  ASSERT_EQ(trail.at("items").as_array().size(), 3u);
  EXPECT_EQ(trail.at("items").at(0).at("action").as_string(), "setting.delete");
  // Values may be secrets: the trail keeps their size only.
  EXPECT_EQ(trail.at("items").at(2).at("detail").at("bytes").as_int64(), 20);
}

TEST(ApiSettings, BadKeysValuesAndCallersAreRefused) {
  ApiTestServer api(options());
  auto& token = api.admin_token();
  auto bad_key =
      api.request("PUT", "/api/v1/settings/UI%20Banner", token, boost::json::value{{"value", "x"}});
  EXPECT_EQ(bad_key.status, 400);
  EXPECT_EQ(ApiTestServer::error_code(bad_key), "setting.bad_key");
  auto big = api.request("PUT", "/api/v1/settings/big", token,
                         boost::json::value{{"value", std::string(64 * 1024 + 1, 'x')}});
  EXPECT_EQ(big.status, 400);
  EXPECT_EQ(ApiTestServer::error_code(big), "setting.too_large");
  EXPECT_EQ(api.request("PUT", "/api/v1/settings/max", token,
                        boost::json::value{{"value", std::string(64 * 1024, 'x')}})
                .status,
            200);
  auto type = api.request("PUT", "/api/v1/settings/n", token, boost::json::value{{"value", 3}});
  EXPECT_EQ(ApiTestServer::error_code(type), "json.wrong_type");
  EXPECT_EQ(ApiTestServer::error_field(type), "value");
  auto unknown = api.request("PUT", "/api/v1/settings/n", token,
                             boost::json::value{{"value", "3"}, {"type", "int"}});
  EXPECT_EQ(ApiTestServer::error_code(unknown), "json.unknown_field");
  EXPECT_EQ(api.store().settings().get("n").error().code, "store.not_found");

  auto user = api.user_token("bob");
  auto forbidden = api.request("GET", "/api/v1/settings", user);
  EXPECT_EQ(forbidden.status, 403);
  EXPECT_EQ(api.request("GET", "/api/v1/events", user).status, 403);
}

TEST(ApiEvents, FiltersPagesAndTimeRanges) {
  ApiTestServer api(options());
  auto& token = api.admin_token();
  const auto start = api.clock.now();
  for (const char* name : {"u1", "u2", "u3"}) {
    api.clock.advance(std::chrono::minutes(1));
    ASSERT_EQ(
        api.request("POST", "/api/v1/users", token, boost::json::value{{"username", name}}).status,
        201);
  }
  auto all = ApiTestServer::json(api.request("GET", "/api/v1/events?action=user.create", token));
  const auto& items = all.at("items").as_array();
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(items[0].at("detail").at("username").as_string(), "u3");  // newest first
  EXPECT_EQ(items[2].at("detail").at("username").as_string(), "u1");
  EXPECT_EQ(items[0].at("target_kind").as_string(), "user");

  auto first =
      ApiTestServer::json(api.request("GET", "/api/v1/events?action=user.create&limit=2", token));
  ASSERT_EQ(first.at("items").as_array().size(), 2u);
  const std::string cursor(first.at("next_cursor").as_string());
  ASSERT_FALSE(cursor.empty());
  auto second = ApiTestServer::json(
      api.request("GET", "/api/v1/events?action=user.create&limit=2&cursor=" + cursor, token));
  ASSERT_EQ(second.at("items").as_array().size(), 1u);
  EXPECT_EQ(second.at("items").at(0).at("detail").at("username").as_string(), "u1");

  const auto since = format_time(start + std::chrono::seconds(90));
  const auto until = format_time(start + std::chrono::seconds(150));
  auto window = ApiTestServer::json(api.request(
      "GET", "/api/v1/events?action=user.create&since=" + since + "&until=" + until, token));
  ASSERT_EQ(window.at("items").as_array().size(), 1u);
  EXPECT_EQ(window.at("items").at(0).at("detail").at("username").as_string(), "u2");

  auto by_actor = ApiTestServer::json(api.request("GET", "/api/v1/events?actor=nobody", token));
  EXPECT_TRUE(by_actor.at("items").as_array().empty());

  auto bad = api.request("GET", "/api/v1/events?since=yesterday", token);
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(ApiTestServer::error_code(bad), "api.bad_time");
  EXPECT_EQ(ApiTestServer::error_field(bad), "since");
}

}  // namespace
}  // namespace openstation::server
