// /api/v1/users*: admin user management, last-admin protection, CSV import.

#include "server/api/routes.hpp"
#include "server/auth/password.hpp"
#include "support/api_test_server.hpp"

#include <gtest/gtest.h>

#include <atomic>

namespace openstation::server {
namespace {

using testing_support::ApiTestServer;

class ApiUsers : public ::testing::Test {
 protected:
  static ApiTestServer::Options options(std::atomic<int>* key_changes) {
    ApiTestServer::Options o;
    o.routes = [](http::Server& s, ApiContext& ctx) {
      register_user_routes(s, ctx);
      register_event_routes(s, ctx);
    };
    o.on_keys_changed = [key_changes] { ++*key_changes; };
    return o;
  }

  std::atomic<int> key_changes_{0};
  ApiTestServer api_{options(&key_changes_)};

  http::Response admin(std::string_view method, std::string_view target,
                       const boost::json::value& body) {
    return api_.request(method, target, api_.admin_token(), body);
  }
  http::Response admin(std::string_view method, std::string_view target) {
    return api_.request(method, target, api_.admin_token());
  }
  /// Creates a user through the API; returns {id, password}.
  std::pair<std::string, std::string> create(std::string_view name,
                                             std::string_view role = "user") {
    auto r = admin("POST", "/api/v1/users", boost::json::value{{"username", name}, {"role", role}});
    EXPECT_EQ(r.status, 201) << r.body;
    auto v = ApiTestServer::json(r);
    return {std::string(v.at("user").at("id").as_string()),
            std::string(v.at("password").as_string())};
  }
  std::size_t user_count() {
    auto page = api_.store().users().list({}, store::PageRequest{0, {}});
    return page ? page->items.size() : 0;
  }
};

TEST_F(ApiUsers, CreateGeneratesAPasswordThatMustBeChanged) {
  auto r = admin(
      "POST", "/api/v1/users",
      boost::json::value{
          {"username", "alice"}, {"display_name", "Alice Liu"}, {"email", "alice@example.com"}});
  ASSERT_EQ(r.status, 201) << r.body;
  auto v = ApiTestServer::json(r).as_object();
  const auto password = std::string(v.at("password").as_string());
  EXPECT_TRUE(auth::check_password_rules(password));
  const auto& user = v.at("user").as_object();
  EXPECT_EQ(user.at("username").as_string(), "alice");
  EXPECT_EQ(user.at("role").as_string(), "user");
  EXPECT_EQ(user.at("display_name").as_string(), "Alice Liu");
  EXPECT_TRUE(user.at("must_change_password").as_bool());

  auto stored = api_.store().users().get_by_name("alice");
  ASSERT_TRUE(stored);
  EXPECT_NE(stored->password_hash, password);
  EXPECT_TRUE(auth::verify_password(stored->password_hash, password));

  auto login = api_.login("alice", password);
  ASSERT_EQ(login.status, 200);
  EXPECT_TRUE(ApiTestServer::json(login.response).at("must_change_password").as_bool());

  auto trail = ApiTestServer::json(admin("GET", "/api/v1/events?action=user.create"));
  ASSERT_EQ(trail.at("items").as_array().size(), 1u);
  EXPECT_EQ(trail.at("items").at(0).at("actor").as_string(), "admin");
  EXPECT_EQ(trail.at("items").at(0).at("target_id").as_string(), user.at("id").as_string());
}

TEST_F(ApiUsers, CreateRefusesTakenNamesAndBadFields) {
  create("alice");
  const auto before = user_count();
  auto taken = admin("POST", "/api/v1/users", boost::json::value{{"username", "ALICE"}});
  EXPECT_EQ(taken.status, 409);
  EXPECT_EQ(ApiTestServer::error_code(taken), "user.exists");
  EXPECT_EQ(ApiTestServer::error_field(taken), "username");

  auto bad_name = admin("POST", "/api/v1/users", boost::json::value{{"username", "-bob"}});
  EXPECT_EQ(bad_name.status, 400);
  EXPECT_EQ(ApiTestServer::error_code(bad_name), "auth.bad_username");
  auto bad_role =
      admin("POST", "/api/v1/users", boost::json::value{{"username", "bob"}, {"role", "root"}});
  EXPECT_EQ(ApiTestServer::error_code(bad_role), "auth.bad_role");
  auto bad_email =
      admin("POST", "/api/v1/users", boost::json::value{{"username", "bob"}, {"email", "nope"}});
  EXPECT_EQ(ApiTestServer::error_code(bad_email), "auth.bad_email");
  auto unknown =
      admin("POST", "/api/v1/users", boost::json::value{{"username", "bob"}, {"password", "x"}});
  EXPECT_EQ(unknown.status, 400);
  EXPECT_EQ(ApiTestServer::error_code(unknown), "json.unknown_field");
  auto type = admin("POST", "/api/v1/users", boost::json::value{{"username", 7}});
  EXPECT_EQ(ApiTestServer::error_field(type), "username");
  EXPECT_EQ(user_count(), before);
}

TEST_F(ApiUsers, ListAndGetByIdOrName) {
  auto [id, password] = create("alice");
  auto list = ApiTestServer::json(admin("GET", "/api/v1/users"));
  EXPECT_EQ(list.at("items").as_array().size(), 2u);
  EXPECT_EQ(list.at("next_cursor").as_string(), "");
  auto page = ApiTestServer::json(admin("GET", "/api/v1/users?limit=1"));
  EXPECT_EQ(page.at("items").as_array().size(), 1u);
  EXPECT_NE(page.at("next_cursor").as_string(), "");

  EXPECT_EQ(ApiTestServer::json(admin("GET", "/api/v1/users/" + id)).at("username").as_string(),
            "alice");
  EXPECT_EQ(ApiTestServer::json(admin("GET", "/api/v1/users/alice")).at("id").as_string(), id);
  auto missing = admin("GET", "/api/v1/users/zed");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(ApiTestServer::error_code(missing), "user.not_found");
  EXPECT_EQ(ApiTestServer::error_code(admin("GET", "/api/v1/users?limit=0")), "api.bad_query");
}

TEST_F(ApiUsers, PatchUpdatesFieldsAndProtectsTheLastAdmin) {
  create("alice");
  auto r = admin("PATCH", "/api/v1/users/alice",
                 boost::json::value{{"display_name", "A."}, {"role", "admin"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(ApiTestServer::json(r).at("role").as_string(), "admin");
  EXPECT_EQ(key_changes_.load(), 1);

  // Two admins: one may be demoted; then the remaining one may not.
  EXPECT_EQ(admin("PATCH", "/api/v1/users/alice", boost::json::value{{"role", "user"}}).status,
            200);
  auto last = admin("PATCH", "/api/v1/users/admin", boost::json::value{{"role", "user"}});
  EXPECT_EQ(last.status, 409);
  EXPECT_EQ(ApiTestServer::error_code(last), "user.last_admin");
  EXPECT_EQ(api_.store().users().get_by_name("admin")->role, store::Role::admin);

  auto unknown = admin("PATCH", "/api/v1/users/alice", boost::json::value{{"username", "x"}});
  EXPECT_EQ(ApiTestServer::error_code(unknown), "json.unknown_field");
}

TEST_F(ApiUsers, DisableEndsSessionsAndEnableRestoresLogin) {
  auto [id, password] = create("alice");
  auto alice = api_.create_user("bob", "Bob-pass1!");
  auto token = api_.login("bob", "Bob-pass1!").token;
  ASSERT_FALSE(token.empty());

  auto r = admin("POST", "/api/v1/users/bob/disable");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(ApiTestServer::json(r).at("disabled").as_bool());
  EXPECT_EQ(api_.request("GET", "/api/v1/auth/me", token).status, 401);  // session ended
  EXPECT_EQ(ApiTestServer::error_code(api_.login("bob", "Bob-pass1!").response),
            "auth.user_disabled");

  ASSERT_EQ(admin("POST", "/api/v1/users/bob/enable").status, 200);
  EXPECT_EQ(api_.login("bob", "Bob-pass1!").status, 200);
  EXPECT_EQ(key_changes_.load(), 2);
}

TEST_F(ApiUsers, TheLastEnabledAdminCannotBeDisabled) {
  auto r = admin("POST", "/api/v1/users/admin/disable");
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(ApiTestServer::error_code(r), "user.last_admin");
  EXPECT_FALSE(api_.store().users().get_by_name("admin")->disabled);

  // A disabled second admin does not count.
  create("root2", "admin");
  ASSERT_EQ(admin("POST", "/api/v1/users/root2/disable").status, 200);
  EXPECT_EQ(admin("POST", "/api/v1/users/admin/disable").status, 409);
}

TEST_F(ApiUsers, DeleteRefusesYourselfAndRemovesOthers) {
  auto self = admin("DELETE", "/api/v1/users/admin");
  EXPECT_EQ(self.status, 409);
  EXPECT_EQ(ApiTestServer::error_code(self), "user.delete_self");

  auto [id, password] = create("alice");
  EXPECT_EQ(admin("DELETE", "/api/v1/users/" + id).status, 204);
  EXPECT_EQ(admin("GET", "/api/v1/users/" + id).status, 404);
  EXPECT_EQ(admin("DELETE", "/api/v1/users/" + id).status, 404);
  EXPECT_EQ(api_.login("alice", password).status, 401);
}

TEST_F(ApiUsers, TheLastAdminCannotBeDeletedByAnotherWhoIsNoLongerAdmin) {
  // admin2 deletes admin: allowed while admin2 is an enabled admin.
  create("admin2", "admin");
  auto a2 = api_.store().users().get_by_name("admin2");
  auto hash = auth::hash_password("Adm2-pass1!", auth::PasswordHashLimits::minimum());
  a2->password_hash = *hash;
  a2->must_change_password = false;
  ASSERT_TRUE(api_.store().users().update(*a2));
  auto token2 = api_.login("admin2", "Adm2-pass1!").token;
  EXPECT_EQ(api_.request("DELETE", "/api/v1/users/admin", token2).status, 204);
  auto self = api_.request("DELETE", "/api/v1/users/admin2", token2);
  EXPECT_EQ(ApiTestServer::error_code(self), "user.delete_self");
}

TEST_F(ApiUsers, ResetPasswordGivesANewOneAndEndsSessions) {
  api_.create_user("bob", "Bob-pass1!");
  auto token = api_.login("bob", "Bob-pass1!").token;
  auto r = admin("POST", "/api/v1/users/bob/reset-password");
  ASSERT_EQ(r.status, 200) << r.body;
  const auto password = std::string(ApiTestServer::json(r).at("password").as_string());
  EXPECT_TRUE(auth::check_password_rules(password));
  EXPECT_EQ(api_.request("GET", "/api/v1/auth/me", token).status, 401);
  EXPECT_EQ(api_.login("bob", "Bob-pass1!").status, 401);
  auto login = api_.login("bob", password);
  ASSERT_EQ(login.status, 200);
  EXPECT_TRUE(ApiTestServer::json(login.response).at("must_change_password").as_bool());
  EXPECT_EQ(admin("POST", "/api/v1/users/nobody/reset-password").status, 404);
}

TEST_F(ApiUsers, CsvImportCreatesEveryUserWithAPassword) {
  const std::string csv =
      "username,display_name,email,role\n"
      "carol,\"Liu, Carol\",carol@example.com,admin\n"
      "dan,Dan,,user\n";
  auto r = api_.request("POST", "/api/v1/users/import", api_.admin_token(), csv,
                        {{"Content-Type", "text/csv"}});
  ASSERT_EQ(r.status, 201) << r.body;
  auto v = ApiTestServer::json(r);
  const auto& created = v.at("created").as_array();
  ASSERT_EQ(created.size(), 2u);
  EXPECT_EQ(created[0].at("username").as_string(), "carol");
  EXPECT_TRUE(v.at("errors").as_array().empty());
  const auto password = std::string(created[1].at("password").as_string());
  auto login = api_.login("dan", password);
  ASSERT_EQ(login.status, 200);
  EXPECT_TRUE(ApiTestServer::json(login.response).at("must_change_password").as_bool());
  auto carol = api_.store().users().get_by_name("carol");
  ASSERT_TRUE(carol);
  EXPECT_EQ(carol->role, store::Role::admin);
  EXPECT_EQ(carol->display_name, "Liu, Carol");
}

TEST_F(ApiUsers, CsvImportIsAllOrNothing) {
  create("alice");
  const auto before = user_count();

  auto exists =
      api_.request("POST", "/api/v1/users/import", api_.admin_token(),
                   std::string("username\nnewbie\nAlice\n"), {{"Content-Type", "text/csv"}});
  EXPECT_EQ(exists.status, 409) << exists.body;
  EXPECT_EQ(ApiTestServer::error_code(exists), "user.exists");
  auto v = ApiTestServer::json(exists);
  ASSERT_EQ(v.at("errors").as_array().size(), 1u);
  EXPECT_EQ(v.at("errors").at(0).at("line").as_int64(), 3);
  EXPECT_TRUE(v.at("created").as_array().empty());
  EXPECT_EQ(user_count(), before);
  EXPECT_EQ(api_.store().users().get_by_name("newbie").error().code, "store.not_found");

  auto bad = api_.request("POST", "/api/v1/users/import", api_.admin_token(),
                          std::string("username,email\nok1,ok1@example.com\nok2,not-an-email\n"),
                          {{"Content-Type", "text/csv"}});
  EXPECT_EQ(bad.status, 400) << bad.body;
  EXPECT_EQ(ApiTestServer::error_code(bad), "users_csv.bad_email");
  EXPECT_EQ(ApiTestServer::json(bad).at("errors").at(0).at("line").as_int64(), 3);
  EXPECT_EQ(user_count(), before);
}

TEST_F(ApiUsers, NonAdminsCannotManageUsers) {
  auto token = api_.user_token("bob");
  for (auto [method, target] :
       {std::pair{"GET", "/api/v1/users"}, std::pair{"POST", "/api/v1/users/admin/disable"},
        std::pair{"DELETE", "/api/v1/users/admin"}}) {
    auto r = api_.request(method, target, token);
    EXPECT_EQ(r.status, 403) << method << " " << target;
    EXPECT_EQ(ApiTestServer::error_code(r), "auth.forbidden");
  }
}

}  // namespace
}  // namespace openstation::server
