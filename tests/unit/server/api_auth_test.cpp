// /api/v1/auth/*: login, sessions (bearer and cookie + CSRF), rate limits, password change.

#include "server/api/routes.hpp"
#include "support/api_test_server.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <atomic>
#include <thread>

namespace openstation::server {
namespace {

using testing_support::ApiTestServer;

ApiTestServer::Options with_keys() {
  ApiTestServer::Options o;
  o.routes = [](http::Server& s, ApiContext& ctx) {
    register_user_routes(s, ctx);
    register_key_routes(s, ctx);
    register_event_routes(s, ctx);
  };
  return o;
}

std::vector<std::string> set_cookies(const http::Response& r) {
  std::vector<std::string> out;
  for (const auto& [name, value] : r.headers.fields()) {
    if (http::iequals(name, "Set-Cookie")) out.push_back(value);
  }
  return out;
}

boost::json::array events(ApiTestServer& api, std::string_view query) {
  auto r = api.request("GET", "/api/v1/events?" + std::string(query), api.admin_token());
  EXPECT_EQ(r.status, 200) << r.body;
  return ApiTestServer::json(r).at("items").as_array();
}

TEST(ApiAuth, LoginReturnsTokenUserAndCookies) {
  ApiTestServer api(with_keys());
  auto login = api.login("admin", ApiTestServer::kAdminPassword);
  ASSERT_EQ(login.status, 200) << login.response.body;
  auto body = ApiTestServer::json(login.response).as_object();
  EXPECT_EQ(std::string_view(body.at("token").as_string()).substr(0, 4), "oss_");
  EXPECT_EQ(std::string_view(body.at("csrf_token").as_string()).substr(0, 4), "osc_");
  EXPECT_EQ(body.at("must_change_password").as_bool(), false);
  EXPECT_EQ(body.at("expires_at").as_string(), "2025-01-08T00:00:00.000Z");  // 7 days absolute
  const auto& user = body.at("user").as_object();
  EXPECT_EQ(user.at("username").as_string(), "admin");
  EXPECT_EQ(user.at("role").as_string(), "admin");
  EXPECT_FALSE(user.contains("password_hash"));
  EXPECT_EQ(login.response.body.find("argon2"), std::string::npos);

  auto cookies = set_cookies(login.response);
  ASSERT_EQ(cookies.size(), 2u);
  EXPECT_EQ(cookies[0].rfind("os_session=" + login.token, 0), 0u) << cookies[0];
  EXPECT_NE(cookies[0].find("HttpOnly"), std::string::npos);
  EXPECT_NE(cookies[0].find("SameSite=Strict"), std::string::npos);
  EXPECT_EQ(cookies[0].find("Secure"), std::string::npos);  // plain HTTP in this fixture
  EXPECT_EQ(cookies[1].rfind("os_csrf=" + login.csrf_token, 0), 0u);

  auto me = api.request("GET", "/api/v1/auth/me", login.token);
  ASSERT_EQ(me.status, 200) << me.body;
  EXPECT_EQ(ApiTestServer::json(me).at("username").as_string(), "admin");

  auto trail = events(api, "action=auth.login");
  ASSERT_FALSE(trail.empty());
  EXPECT_EQ(trail[0].at("actor").as_string(), "admin");
}

TEST(ApiAuth, SecureCookiesWhenTheServerSpeaksTls) {
  ApiTestServer::Options o;
  o.secure_cookies = true;
  ApiTestServer api(o);
  auto login = api.login("admin", ApiTestServer::kAdminPassword);
  ASSERT_EQ(login.status, 200);
  for (const auto& c : set_cookies(login.response)) {
    EXPECT_NE(c.find("; Secure"), std::string::npos) << c;
  }
}

TEST(ApiAuth, WrongPasswordAndUnknownUserLookTheSame) {
  ApiTestServer api(with_keys());
  auto wrong = api.login("admin", "Wrong-pass1!");
  auto unknown = api.login("nobody", "Wrong-pass1!");
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(unknown.status, 401);
  EXPECT_EQ(ApiTestServer::error_code(wrong.response), "auth.bad_credentials");
  EXPECT_EQ(wrong.response.body, unknown.response.body);

  auto failed = events(api, "action=auth.login_failed");
  ASSERT_EQ(failed.size(), 2u);
  EXPECT_EQ(failed[0].at("actor").as_string(), "nobody");  // newest first
  EXPECT_EQ(failed[1].at("actor").as_string(), "admin");
}

TEST(ApiAuth, DisabledUserCannotLogIn) {
  ApiTestServer api;
  auto u = api.create_user("carol", "Carol-pass1!");
  u.disabled = true;
  ASSERT_TRUE(api.store().users().update(u));
  auto login = api.login("carol", "Carol-pass1!");
  EXPECT_EQ(login.status, 403);
  EXPECT_EQ(ApiTestServer::error_code(login.response), "auth.user_disabled");
}

TEST(ApiAuth, RateLimitAnswers429WithRetryAfterUntilTheWindowPasses) {
  ApiTestServer::Options o;
  o.config.server.login_attempts_per_minute = 3;
  ApiTestServer api(o);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(api.login("admin", "Wrong-pass1!").status, 401);
  auto limited = api.login("admin", ApiTestServer::kAdminPassword);  // even the right password
  EXPECT_EQ(limited.status, 429) << limited.response.body;
  EXPECT_EQ(ApiTestServer::error_code(limited.response), "auth.rate_limited");
  auto retry = limited.response.headers.get("Retry-After");
  ASSERT_TRUE(retry.has_value());
  EXPECT_GE(std::stoi(std::string(*retry)), 1);
  EXPECT_LE(std::stoi(std::string(*retry)), 60);

  api.clock.advance(std::chrono::seconds(61));
  EXPECT_EQ(api.login("admin", ApiTestServer::kAdminPassword).status, 200);
}

TEST(ApiAuth, RequestsWithoutAValidCredentialAre401) {
  ApiTestServer api;
  auto none = api.request("GET", "/api/v1/auth/me", "");
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(ApiTestServer::error_code(none), "auth.unauthenticated");
  auto bogus = api.request("GET", "/api/v1/auth/me", "oss_not-a-real-token");
  EXPECT_EQ(bogus.status, 401);
  EXPECT_EQ(ApiTestServer::error_code(bogus), "auth.unauthenticated");
}

TEST(ApiAuth, SessionsExpireWhenIdleAndStayAliveWhileUsed) {
  ApiTestServer::Options o;
  o.config.server.session_ttl = std::chrono::hours(1);
  ApiTestServer api(o);
  auto token = api.admin_token();
  for (int i = 0; i < 3; ++i) {
    api.clock.advance(std::chrono::minutes(40));
    EXPECT_EQ(api.request("GET", "/api/v1/auth/me", token).status, 200);
  }
  api.clock.advance(std::chrono::minutes(61));
  auto expired = api.request("GET", "/api/v1/auth/me", token);
  EXPECT_EQ(expired.status, 401);
  EXPECT_EQ(ApiTestServer::error_code(expired), "auth.session_expired");
  // The expired session is gone: the next try is simply unauthenticated.
  EXPECT_EQ(ApiTestServer::error_code(api.request("GET", "/api/v1/auth/me", token)),
            "auth.unauthenticated");
}

TEST(ApiAuth, SessionsEndAfterTheAbsoluteLifetimeEvenWhenUsed) {
  ApiTestServer api;
  auto token = api.admin_token();
  for (int i = 0; i < 7 * 24 / 6; ++i) {
    api.clock.advance(std::chrono::hours(6));
    auto r = api.request("GET", "/api/v1/auth/me", token);
    if (i + 1 < 7 * 24 / 6) {
      ASSERT_EQ(r.status, 200) << "hour " << (i + 1) * 6;
    } else {
      EXPECT_EQ(ApiTestServer::error_code(r), "auth.session_expired");
    }
  }
}

TEST(ApiAuth, CookieSessionsNeedTheCsrfTokenForUnsafeMethods) {
  ApiTestServer api;
  auto login = api.login("admin", ApiTestServer::kAdminPassword);
  ASSERT_EQ(login.status, 200);
  const std::string cookie = "os_session=" + login.token + "; os_csrf=" + login.csrf_token;

  auto me = api.request("GET", "/api/v1/auth/me", "", "", {{"Cookie", cookie}});
  EXPECT_EQ(me.status, 200) << me.body;

  auto missing = api.request("POST", "/api/v1/auth/logout", "", "", {{"Cookie", cookie}});
  EXPECT_EQ(missing.status, 403);
  EXPECT_EQ(ApiTestServer::error_code(missing), "auth.csrf_failed");
  auto wrong = api.request("POST", "/api/v1/auth/logout", "", "",
                           {{"Cookie", cookie}, {"X-CSRF-Token", "osc_forged"}});
  EXPECT_EQ(wrong.status, 403);
  EXPECT_EQ(ApiTestServer::error_code(wrong), "auth.csrf_failed");

  auto ok = api.request("POST", "/api/v1/auth/logout", "", "",
                        {{"Cookie", cookie}, {"X-CSRF-Token", login.csrf_token}});
  EXPECT_EQ(ok.status, 204) << ok.body;
  for (const auto& c : set_cookies(ok)) EXPECT_NE(c.find("Max-Age=0"), std::string::npos) << c;
  EXPECT_EQ(api.request("GET", "/api/v1/auth/me", "", "", {{"Cookie", cookie}}).status, 401);
}

TEST(ApiAuth, BearerRequestsNeedNoCsrfToken) {
  ApiTestServer api;
  auto token = api.admin_token();
  EXPECT_EQ(api.request("POST", "/api/v1/auth/logout", token).status, 204);
  EXPECT_EQ(api.request("GET", "/api/v1/auth/me", token).status, 401);
}

TEST(ApiAuth, MustChangePasswordBlocksEverythingButMeAndThePasswordChange) {
  ApiTestServer api(with_keys());
  api.create_user("dave", "Dave-pass1!", store::Role::user, /*must_change=*/true);
  auto login = api.login("dave", "Dave-pass1!");
  ASSERT_EQ(login.status, 200);
  EXPECT_TRUE(ApiTestServer::json(login.response).at("must_change_password").as_bool());

  EXPECT_EQ(api.request("GET", "/api/v1/auth/me", login.token).status, 200);
  auto keys = api.request("GET", "/api/v1/keys", login.token);
  EXPECT_EQ(keys.status, 403);
  EXPECT_EQ(ApiTestServer::error_code(keys), "auth.password_change_required");

  auto changed = api.request(
      "POST", "/api/v1/auth/password", login.token,
      boost::json::value{{"current_password", "Dave-pass1!"}, {"new_password", "Fresh-pass2?"}});
  ASSERT_EQ(changed.status, 204) << changed.body;
  EXPECT_EQ(api.request("GET", "/api/v1/keys", login.token).status, 200);
  auto me = ApiTestServer::json(api.request("GET", "/api/v1/auth/me", login.token));
  EXPECT_FALSE(me.at("must_change_password").as_bool());
}

TEST(ApiAuth, PasswordChangeChecksTheCurrentPasswordAndTheRules) {
  ApiTestServer api;
  auto token = api.admin_token();
  auto change = [&](std::string_view current, std::string_view next) {
    return api.request("POST", "/api/v1/auth/password", token,
                       boost::json::value{{"current_password", current}, {"new_password", next}});
  };
  auto wrong = change("Nope-pass1!", "Fresh-pass2?");
  EXPECT_EQ(wrong.status, 403);
  EXPECT_EQ(ApiTestServer::error_code(wrong), "auth.wrong_password");
  EXPECT_EQ(ApiTestServer::error_field(wrong), "current_password");

  auto weak = change(ApiTestServer::kAdminPassword, "short");
  EXPECT_EQ(weak.status, 400);
  EXPECT_EQ(ApiTestServer::error_code(weak), "auth.weak_password");
  EXPECT_EQ(ApiTestServer::error_field(weak), "new_password");
  for (const char* rule : {"too_short", "no_digit", "no_special"}) {
    EXPECT_NE(weak.body.find(rule), std::string::npos) << rule << " in " << weak.body;
  }
  EXPECT_EQ(weak.body.find("no_lower"), std::string::npos);

  auto same = change(ApiTestServer::kAdminPassword, ApiTestServer::kAdminPassword);
  EXPECT_EQ(same.status, 400);
  EXPECT_EQ(ApiTestServer::error_code(same), "auth.password_unchanged");

  auto missing = api.request("POST", "/api/v1/auth/password", token,
                             boost::json::value{{"current_password", "x"}});
  EXPECT_EQ(missing.status, 400);
  EXPECT_EQ(ApiTestServer::error_field(missing), "new_password");
}

TEST(ApiAuth, PasswordChangeKeepsThisSessionAndEndsTheOthers) {
  ApiTestServer api;
  auto mine = api.login("admin", ApiTestServer::kAdminPassword).token;
  auto other = api.login("admin", ApiTestServer::kAdminPassword).token;
  auto r = api.request("POST", "/api/v1/auth/password", mine,
                       boost::json::value{{"current_password", ApiTestServer::kAdminPassword},
                                          {"new_password", "Fresh-pass2?"}});
  ASSERT_EQ(r.status, 204) << r.body;
  EXPECT_EQ(api.request("GET", "/api/v1/auth/me", mine).status, 200);
  EXPECT_EQ(api.request("GET", "/api/v1/auth/me", other).status, 401);
  EXPECT_EQ(api.login("admin", ApiTestServer::kAdminPassword).status, 401);
  EXPECT_EQ(api.login("admin", "Fresh-pass2?").status, 200);
}

TEST(ApiAuth, LoginBodiesAreValidated) {
  ApiTestServer api;
  auto unknown =
      api.request("POST", "/api/v1/auth/login", "",
                  boost::json::value{{"username", "admin"}, {"password", "x"}, {"passwrd", "x"}});
  EXPECT_EQ(unknown.status, 400);
  EXPECT_EQ(ApiTestServer::error_code(unknown), "json.unknown_field");
  EXPECT_EQ(ApiTestServer::error_field(unknown), "passwrd");

  auto type = api.request("POST", "/api/v1/auth/login", "",
                          boost::json::value{{"username", "admin"}, {"password", 12345}});
  EXPECT_EQ(type.status, 400);
  EXPECT_EQ(ApiTestServer::error_code(type), "json.wrong_type");
  EXPECT_EQ(ApiTestServer::error_field(type), "password");

  auto bad = api.request("POST", "/api/v1/auth/login", "", std::string("{\"username\":"));
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(ApiTestServer::error_code(bad), "api.bad_json");
  auto empty = api.request("POST", "/api/v1/auth/login", "", std::string());
  EXPECT_EQ(ApiTestServer::error_code(empty), "api.bad_json");
  auto array = api.request("POST", "/api/v1/auth/login", "", std::string("[1]"));
  EXPECT_EQ(ApiTestServer::error_code(array), "api.bad_json");
}

TEST(ApiAuth, NonAdminsAreRefusedOnAdminRoutes) {
  ApiTestServer api(with_keys());
  auto token = api.user_token("erin");
  auto r = api.request("GET", "/api/v1/users", token);
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(ApiTestServer::error_code(r), "auth.forbidden");
}

TEST(ApiAuth, DisablingAUserEndsItsAccessAtOnce) {
  ApiTestServer api;
  auto token = api.user_token("frank");
  auto u = api.store().users().get_by_name("frank");
  ASSERT_TRUE(u);
  u->disabled = true;
  ASSERT_TRUE(api.store().users().update(*u));
  auto r = api.request("GET", "/api/v1/auth/me", token);
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(ApiTestServer::error_code(r), "auth.user_disabled");
}

TEST(ApiContextDrain, DrainReturnsOnlyOnceTheBlockingWorkInFlightHasEnded) {
  // A request is inside ctx.blocking() when its server's I/O context stops for good. drain()
  // must return only once that work has ended: the pool thread then hands the result to the
  // context's executor, so the context may be destroyed only after drain() (destroying the
  // server first was a use after free in ApiTestServer's and ServerApp's shutdown, found by
  // AddressSanitizer).
  ApiTestServer api;
  std::atomic<bool> started{false};
  std::atomic<bool> finished{false};
  auto io = std::make_unique<boost::asio::io_context>();
  boost::asio::co_spawn(
      *io,
      [&]() -> http::Awaitable<void> {
        co_await api.ctx().blocking([&] {
          started = true;
          std::this_thread::sleep_for(std::chrono::milliseconds(300));
          finished = true;
          return 0;
        });
      },
      boost::asio::detached);
  std::thread runner([&] { io->run_one(); });  // starts the coroutine, which hands off its work
  runner.join();
  while (!started) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  io->stop();  // the coroutine is never resumed, as when a server has stopped
  api.ctx().drain();
  EXPECT_TRUE(finished);
  api.ctx().drain();  // idempotent
  io.reset();         // only now: the pool thread is done with the context's executor
}

}  // namespace
}  // namespace openstation::server
