#pragma once
/// A management API on 127.0.0.1 (ephemeral port) for route tests: a temporary SQLite store, an
/// ApiContext on a ManualClock with the cheapest argon2 limits, an http::Server with the auth
/// routes plus whatever groups the test registers, an admin user with a known password, and
/// blocking helpers to log in and send requests with the token.
///
///     ApiTestServer api({.routes = [](http::Server& s, server::ApiContext& ctx) {
///       server::register_user_routes(s, ctx);
///     }});
///     auto token = api.admin_token();
///     auto r = api.request("GET", "/api/v1/users", token);
///     EXPECT_EQ(r.status, 200);
///     auto body = ApiTestServer::json(r);
///
/// Construct it inside a test (unique_temp_path names the directory after the running test).
/// Failures to set up throw std::runtime_error, which gtest reports as a failed test.

#include "config/config.hpp"
#include "http/client.hpp"
#include "http/message.hpp"
#include "http/server.hpp"
#include "server/api/context.hpp"
#include "server/api/routes.hpp"
#include "server/auth/password.hpp"
#include "store/store.hpp"
#include "support/manual_clock.hpp"
#include "support/temp_dir.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <filesystem>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

namespace openstation::testing_support {

class ApiTestServer {
 public:
  /// The seeded admin's credentials.
  static constexpr std::string_view kAdminName = "admin";
  static constexpr std::string_view kAdminPassword = "Admin-pass1!";

  struct Options {
    /// Registers the route groups under test (the auth routes are always there).
    std::function<void(http::Server&, server::ApiContext&)> routes{};
    /// The configuration the context sees (data_dir defaults to the temp directory).
    config::Config config{};
    bool secure_cookies = false;
    /// Called after the keys or users changed (ApiContext::Options::on_keys_changed).
    std::function<void()> on_keys_changed{};
    /// Called after a model was deleted (ApiContext::Options::on_model_deleted).
    std::function<void(const store::Model&)> on_model_deleted{};
  };

  /// A logged-in session.
  struct Login {
    int status = 0;
    std::string token;       ///< bearer token ("" when the login failed)
    std::string csrf_token;  ///< for cookie requests
    http::Response response;
  };

  ApiTestServer() : ApiTestServer(Options{}) {}
  explicit ApiTestServer(Options options)
      : dir_(unique_temp_path("api")), options_(std::move(options)) {
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    store::StoreOptions so;
    so.clock = &clock;
    auto opened = store::open_store((dir_ / "store.db").string(), so);
    if (!opened) throw std::runtime_error("open_store: " + opened.error().message);
    store_ = std::move(*opened);

    server::ApiContext::Options co;
    co.store = store_.get();
    co.clock = &clock;
    co.config = options_.config;
    if (co.config.data_dir.empty()) co.config.data_dir = dir_;
    co.worker_threads = 2;
    co.secure_cookies = options_.secure_cookies;
    co.password_hash_limits = server::auth::PasswordHashLimits::minimum();
    co.on_keys_changed = options_.on_keys_changed;
    co.on_model_deleted = options_.on_model_deleted;
    ctx_ = std::make_unique<server::ApiContext>(std::move(co));

    create_user(std::string(kAdminName), std::string(kAdminPassword), store::Role::admin);

    http::ServerOptions ho;
    ho.host = "127.0.0.1";
    ho.port = 0;
    ho.threads = 2;
    server_ = std::make_unique<http::Server>(ho);
    server::register_auth_routes(*server_, *ctx_);
    if (options_.routes) options_.routes(*server_, *ctx_);
    if (auto started = server_->start(); !started) {
      throw std::runtime_error("server start: " + started.error().message);
    }
  }

  ~ApiTestServer() {
    if (server_) server_->stop(std::chrono::milliseconds(1000));
    if (ctx_) ctx_->drain();  // before the server's I/O contexts go (ApiContext::drain)
    server_.reset();
    ctx_.reset();
    store_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  ApiTestServer(const ApiTestServer&) = delete;
  ApiTestServer& operator=(const ApiTestServer&) = delete;

  /// Moves the store's, the context's and the login limiter's time.
  testing::ManualClock clock;

  store::Store& store() { return *store_; }
  server::ApiContext& ctx() { return *ctx_; }
  http::Server& server() { return *server_; }
  const std::filesystem::path& dir() const { return dir_; }
  std::string url(std::string_view target) const {
    return "http://127.0.0.1:" + std::to_string(server_->port()) + std::string(target);
  }

  /// Creates a user directly in the store (cheap argon2 limits).
  store::User create_user(const std::string& username, const std::string& password,
                          store::Role role = store::Role::user, bool must_change = false) {
    store::User u;
    u.username = username;
    u.role = role;
    u.must_change_password = must_change;
    auto hash = server::auth::hash_password(password, server::auth::PasswordHashLimits::minimum());
    if (!hash) throw std::runtime_error("hash_password: " + hash.error().message);
    u.password_hash = *hash;
    auto created = store_->users().create(u);
    if (!created) throw std::runtime_error("create user: " + created.error().message);
    return *created;
  }

  /// POST /api/v1/auth/login.
  Login login(std::string_view username, std::string_view password) {
    boost::json::object body{{"username", username}, {"password", password}};
    Login out;
    out.response = request("POST", "/api/v1/auth/login", "", boost::json::serialize(body));
    out.status = out.response.status;
    if (out.status == 200) {
      auto v = json(out.response);
      out.token = std::string(v.at("token").as_string());
      out.csrf_token = std::string(v.at("csrf_token").as_string());
    }
    return out;
  }

  /// A bearer token of the seeded admin (logged in once, then cached).
  const std::string& admin_token() {
    if (admin_token_.empty()) {
      auto l = login(kAdminName, kAdminPassword);
      if (l.status != 200) {
        throw std::runtime_error("admin login failed: " + std::to_string(l.status) + " " +
                                 l.response.body);
      }
      admin_token_ = l.token;
    }
    return admin_token_;
  }

  /// Creates a user in the store and logs it in; returns the bearer token.
  std::string user_token(const std::string& username, store::Role role = store::Role::user) {
    create_user(username, "User-pass1!", role);
    auto l = login(username, "User-pass1!");
    if (l.status != 200) throw std::runtime_error("user login failed: " + l.response.body);
    return l.token;
  }

  /// Sends a request; `token` non-empty adds `Authorization: Bearer <token>`. A JSON content type
  /// is set for a non-empty body unless `headers` names one.
  http::Response request(std::string_view method, std::string_view target, std::string_view token,
                         std::string body = {}, http::Headers headers = {}) {
    if (!token.empty()) headers.set("Authorization", "Bearer " + std::string(token));
    if (!body.empty() && !headers.has("Content-Type")) {
      headers.set("Content-Type", "application/json");
    }
    auto r =
        client_.request(method, url(target), headers, std::move(body), std::chrono::seconds(30));
    if (!r) throw std::runtime_error("request failed: " + r.error().message);
    return *r;
  }

  /// A request with a JSON value as the body.
  http::Response request(std::string_view method, std::string_view target, std::string_view token,
                         const boost::json::value& body) {
    return request(method, target, token, boost::json::serialize(body));
  }

  /// The body parsed as JSON (throws on invalid JSON).
  static boost::json::value json(const http::Response& r) { return boost::json::parse(r.body); }
  /// The error code of an error response, or "" when there is none.
  static std::string error_code(const http::Response& r) {
    boost::system::error_code ec;
    auto v = boost::json::parse(r.body, ec);
    if (ec || !v.is_object()) return "";
    const auto* e = v.as_object().if_contains("error");
    if (!e || !e->is_object()) return "";
    const auto* c = e->as_object().if_contains("code");
    return c && c->is_string() ? std::string(c->as_string()) : std::string();
  }
  /// The error field of an error response, or "".
  static std::string error_field(const http::Response& r) {
    boost::system::error_code ec;
    auto v = boost::json::parse(r.body, ec);
    if (ec || !v.is_object()) return "";
    const auto* e = v.as_object().if_contains("error");
    if (!e || !e->is_object()) return "";
    const auto* f = e->as_object().if_contains("field");
    return f && f->is_string() ? std::string(f->as_string()) : std::string();
  }

 private:
  std::filesystem::path dir_;
  Options options_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<server::ApiContext> ctx_;
  std::unique_ptr<http::Server> server_;
  http::Client client_;
  std::string admin_token_;
};

}  // namespace openstation::testing_support
