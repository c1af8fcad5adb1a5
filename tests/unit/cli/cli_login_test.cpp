// openstation login / logout against a fake API: the saved login (mode 0600), the password from
// standard input, the forced password change, wrong passwords, the token sent only to its server.
#include "fake_api.hpp"
#include "support/cli_runner.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <sys/stat.h>

namespace openstation::cli {
namespace {

using testing_support::CliEnv;
using testing_support::FakeApi;
using testing_support::run_cli;

constexpr const char* kUser =
    R"({"id":"usr_1","username":"admin","display_name":"","email":"","role":"admin",)"
    R"("disabled":false,"must_change_password":false,"created_at":"2026-11-27T20:00:00.000Z",)"
    R"("updated_at":"2026-11-27T20:00:00.000Z"})";

std::string login_reply(const std::string& token, bool must_change) {
  return std::string(R"({"token":")") + token +
         R"(","csrf_token":"csrf","expires_at":"2030-01-01T00:00:00.000Z","user":)" + kUser +
         R"(,"must_change_password":)" + (must_change ? "true" : "false") + "}";
}

/// Accepts admin / `password` only.
void serve_login(FakeApi& api, const std::string& password, bool must_change) {
  api.on("POST", "/auth/login", [password, must_change](const http::Request& r) {
    auto body = boost::json::parse(r.body).as_object();
    if (body.at("username").as_string() != "admin" || body.at("password").as_string() != password) {
      return http::Response::json(
          401,
          R"({"error":{"code":"auth.invalid_credentials","message":"wrong user name or password"}})");
    }
    return http::Response::json(200, login_reply("tok-1", must_change));
  });
}

TEST(CliLogin, PasswordFromStdinSavesTheSession) {
  CliEnv env;
  FakeApi api;
  serve_login(api, "Secret#1x", false);
  api.start();
  env.stdin_text("Secret#1x\n");
  auto r = run_cli({"login", "--server", api.url(), "--username", "admin", "--password-stdin"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(r.out_has("Logged in to " + api.url() + " as admin (admin)")) << r.out;

  struct stat st {};
  ASSERT_EQ(::stat(env.credentials().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto saved = boost::json::parse(env.read_credentials());
  EXPECT_EQ(saved.at("token").as_string(), "tok-1");
  EXPECT_EQ(saved.at("server").as_string(), api.url());
  EXPECT_EQ(saved.at("username").as_string(), "admin");

  // Later commands use the saved server and token.
  api.on_json("GET", "/nodes", 200, R"({"items":[],"next_cursor":""})");
  auto nodes = run_cli({"nodes", "list"});
  ASSERT_EQ(nodes.code, 0) << nodes.err;
  EXPECT_EQ(api.last("GET", "/api/v1/nodes").authorization, "Bearer tok-1");
}

TEST(CliLogin, WrongPasswordExitsOneWithTheApiError) {
  CliEnv env;
  FakeApi api;
  serve_login(api, "Secret#1x", false);
  api.start();
  env.stdin_text("nope\n");
  auto r = run_cli({"login", "--server", api.url(), "-u", "admin", "--password-stdin"});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(r.err_has("error: wrong user name or password (auth.invalid_credentials)")) << r.err;
  EXPECT_FALSE(std::filesystem::exists(env.credentials()));
}

TEST(CliLogin, MustChangePasswordChangesItFromStdin) {
  CliEnv env;
  FakeApi api;
  serve_login(api, "Initial#1", true);
  api.on("POST", "/auth/password", [](const http::Request& r) {
    if (r.headers.get_or("Authorization", "") != "Bearer tok-1") {
      return http::Response::json(
          401, R"({"error":{"code":"auth.unauthenticated","message":"log in"}})");
    }
    auto body = boost::json::parse(r.body).as_object();
    if (body.at("current_password").as_string() != "Initial#1") {
      return http::Response::json(400, R"({"error":{"code":"auth.bad_password","message":"x"}})");
    }
    if (body.at("new_password").as_string().size() < 8) {
      return http::Response::json(
          400,
          R"({"error":{"code":"auth.weak_password","message":"the password needs at least 8 characters","field":"new_password"}})");
    }
    return http::Response{204, {}, ""};
  });
  api.on_json("GET", "/auth/me", 200, kUser);
  api.start();

  env.stdin_text("Initial#1\nshort\n");
  auto weak = run_cli(
      {"login", "--server", api.url(), "-u", "admin", "--password-stdin", "--new-password-stdin"});
  EXPECT_EQ(weak.code, 2) << weak.err;
  EXPECT_TRUE(weak.err_has("(auth.weak_password)")) << weak.err;
  EXPECT_FALSE(std::filesystem::exists(env.credentials()));

  env.stdin_text("Initial#1\nBetter#2pass\n");
  auto r = run_cli(
      {"login", "--server", api.url(), "-u", "admin", "--password-stdin", "--new-password-stdin"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(r.err_has("Password changed.")) << r.err;
  auto change = api.last("POST", "/api/v1/auth/password");
  auto body = boost::json::parse(change.body);
  EXPECT_EQ(body.at("new_password").as_string(), "Better#2pass");
  EXPECT_EQ(boost::json::parse(env.read_credentials()).at("token").as_string(), "tok-1");
}

TEST(CliLogin, PasswordStdinNeedsALine) {
  CliEnv env;
  FakeApi api;
  serve_login(api, "Secret#1x", false);
  api.start();
  env.stdin_text("");
  auto r = run_cli({"login", "--server", api.url(), "-u", "admin", "--password-stdin"});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(r.err_has("(cli.stdin_empty)")) << r.err;
}

TEST(CliLogin, JsonOutputHasNoToken) {
  CliEnv env;
  FakeApi api;
  serve_login(api, "Secret#1x", false);
  api.start();
  env.stdin_text("Secret#1x\n");
  auto r = run_cli({"login", "--server", api.url(), "-u", "admin", "--password-stdin", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto v = boost::json::parse(r.out);
  EXPECT_EQ(v.at("user").at("username").as_string(), "admin");
  EXPECT_EQ(v.as_object().count("token"), 0u);
  EXPECT_FALSE(r.out_has("tok-1"));
}

TEST(CliLogin, LogoutEndsTheSessionAndForgetsTheToken) {
  CliEnv env;
  FakeApi api;
  api.on_json("POST", "/auth/logout", 204, "");
  api.start();
  env.save_login(api.url(), "tok-9");
  auto r = run_cli({"logout"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(r.out_has("Logged out of " + api.url())) << r.out;
  EXPECT_EQ(api.last("POST", "/api/v1/auth/logout").authorization, "Bearer tok-9");
  auto saved = boost::json::parse(env.read_credentials());
  EXPECT_EQ(saved.at("token").as_string(), "");
  EXPECT_EQ(saved.at("server").as_string(), api.url());

  auto again = run_cli({"nodes"});
  EXPECT_EQ(again.code, 1);
  EXPECT_TRUE(again.err_has("not logged in to " + api.url())) << again.err;
  EXPECT_TRUE(again.err_has("(cli.not_logged_in)")) << again.err;
}

TEST(CliLogin, TokenIsNotSentToAnotherServer) {
  CliEnv env;
  FakeApi api;
  api.on_json("GET", "/nodes", 200, R"({"items":[],"next_cursor":""})");
  api.start();
  env.save_login("http://127.0.0.1:1", "tok-9");
  auto r = run_cli({"nodes", "--server", api.url()});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(r.err_has("(cli.not_logged_in)")) << r.err;
  EXPECT_TRUE(api.seen().empty());
}

TEST(CliLogin, NoServerAnywhereIsBadInput) {
  CliEnv env;
  auto r = run_cli({"services", "list"});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(r.err_has("(cli.no_server)")) << r.err;
}

TEST(CliLogin, ExpiredSessionHintsAtLoggingInAgain) {
  CliEnv env;
  FakeApi api;
  api.on_json("GET", "/services", 401,
              R"({"error":{"code":"auth.session_expired","message":"your session has expired"}})");
  api.start();
  env.save_login(api.url(), "old");
  auto r = run_cli({"services", "list"});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(r.err_has("error: your session has expired (auth.session_expired)")) << r.err;
  EXPECT_TRUE(r.err_has("openstation login")) << r.err;

  auto j = run_cli({"services", "list", "--json"});
  EXPECT_EQ(j.code, 1);
  EXPECT_EQ(boost::json::parse(j.out).at("error").at("code").as_string(), "auth.session_expired");
}

}  // namespace
}  // namespace openstation::cli
