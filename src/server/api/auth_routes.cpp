// /api/v1/auth/*: login, logout, who am I, password change. See docs/api/auth.md.

// GCC 12 reports a false -Wmismatched-new-delete on Asio coroutine frames (awaitable_frame_base
// has its own operator new/delete); the frames are allocated and freed by the same pair.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include "http/server.hpp"
#include "server/api/context.hpp"
#include "server/api/detail/identity.hpp"
#include "server/api/routes.hpp"
#include "server/auth/password.hpp"
#include "server/auth/session.hpp"

#include <spdlog/spdlog.h>

namespace openstation::server {

namespace {

using api_detail::user_json;

core::Error bad_credentials() {
  return {core::Errc::unauthorized, "auth.bad_credentials", "The username or password is wrong.",
          "password"};
}

struct LoginInput {
  std::string username;
  std::string password;
};

struct LoginOutcome {
  core::Error error{};
  bool ok = false;
  auth::NewSession session{};
  store::User user{};
  core::Clock::TimePoint expires_at{};
};

LoginOutcome do_login(ApiContext& ctx, const LoginInput& in, const std::string& address) {
  LoginOutcome out;
  auto& store = ctx.store();
  auto user = api_detail::find_user(store, in.username, "username");
  if (!user && user.error().code != "user.not_found") {
    out.error = user.error();
    return out;
  }
  // find_user also takes ids; a login names the user.
  if (user && api_detail::lower(user->username) != api_detail::lower(in.username)) {
    user = core::not_found("user.not_found", "", "username");
  }
  bool verified = false;
  if (user) {
    verified = auth::verify_password(user->password_hash, in.password);
  } else {
    // Same work as for a wrong password, so the time taken does not tell which users exist.
    (void)auth::verify_password(ctx.dummy_password_hash(), in.password);
  }
  if (!verified) {
    ctx.login_limiter().record_failure(in.username, address);
    ctx.audit(in.username, "auth.login_failed", "user", user ? user->id : std::string(),
              {{"address", address}});
    out.error = bad_credentials();
    return out;
  }
  if (user->disabled) {
    ctx.audit(user->username, "auth.login_failed", "user", user->id,
              {{"address", address}, {"reason", "disabled"}});
    out.error = {core::Errc::forbidden, "auth.user_disabled",
                 "The user '" + user->username + "' is disabled; ask an admin to enable it."};
    return out;
  }
  ctx.login_limiter().record_success(in.username, address);

  const auto now = ctx.clock().now();
  out.session = auth::generate_session();
  out.expires_at = now + ctx.session_lifetime().absolute;
  std::optional<std::string> rehashed;
  if (auth::needs_rehash(user->password_hash, ctx.password_hash_limits())) {
    if (auto h = auth::hash_password(in.password, ctx.password_hash_limits())) rehashed = *h;
  }
  auto written = store.transaction([&](store::Store& tx) -> core::Result<void> {
    store::Session row;
    row.token_hash = out.session.session_hash;
    row.user_id = user->id;
    row.csrf_token_hash = out.session.csrf_hash;
    row.created_at = now;
    row.last_seen_at = now;
    row.expires_at = out.expires_at;
    row.ip = address;
    if (auto r = tx.sessions().create(std::move(row)); !r) return r.error();
    if (rehashed) {
      auto fresh = tx.users().get(user->id);
      if (!fresh) return fresh.error();
      fresh->password_hash = *rehashed;
      auto updated = tx.users().update(*fresh);
      if (!updated) return updated.error();
      *user = std::move(*updated);
    }
    return ApiContext::audit_in(tx, user->username, "auth.login", "user", user->id,
                                {{"address", address}});
  });
  if (!written) {
    out.error = written.error();
    return out;
  }
  out.user = std::move(*user);
  out.ok = true;
  return out;
}

http::Awaitable<http::Response> login(ApiContext& ctx, http::Request& req) {
  auto body = api_detail::parse_known_body(req, {"username", "password"});
  if (!body) co_return error_response(body.error());
  auto input = api_detail::capture([&] {
    LoginInput in;
    in.username = core::json::get_string(*body, "username", "");
    in.password = core::json::get_string(*body, "password", "");
    return in;
  });
  if (!input) co_return error_response(input.error());
  if (input->username.empty()) {
    co_return error_response(
        core::invalid("json.missing_field", "username is required", "username"));
  }
  const std::string address = req.remote_address;
  if (auto lockout = ctx.login_limiter().lockout(input->username, address)) {
    co_return error_response(lockout->to_error(), lockout->retry_after);
  }
  auto outcome = co_await ctx.blocking([&] { return do_login(ctx, *input, address); });
  if (!outcome.ok) co_return error_response(outcome.error);

  boost::json::object out{{"token", outcome.session.session_token},
                          {"csrf_token", outcome.session.csrf_token},
                          {"expires_at", format_time(outcome.expires_at)},
                          {"user", user_json(outcome.user)},
                          {"must_change_password", outcome.user.must_change_password}};
  auto response = json_response(out);
  for (auto& cookie :
       auth::login_cookies(outcome.session, ctx.secure_cookies(), ctx.session_lifetime())) {
    response.headers.add("Set-Cookie", std::move(cookie));
  }
  response.headers.set("Cache-Control", "no-store");
  co_return response;
}

http::Awaitable<http::Response> logout(ApiContext& ctx, http::Request& req) {
  auto caller = co_await ctx.authenticate(req, Access::any_session);
  if (!caller) co_return error_response(caller.error());
  auto removed = co_await ctx.blocking([&]() -> core::Result<void> {
    return ctx.store().transaction([&](store::Store& tx) -> core::Result<void> {
      if (auto r = tx.sessions().remove(caller->session_hash); !r) return r.error();
      return ApiContext::audit_in(tx, caller->actor(), "auth.logout", "user", caller->user.id);
    });
  });
  if (!removed) co_return error_response(removed.error());
  http::Response response;
  response.status = 204;
  for (auto& cookie : auth::logout_cookies(ctx.secure_cookies())) {
    response.headers.add("Set-Cookie", std::move(cookie));
  }
  co_return response;
}

http::Awaitable<http::Response> me(ApiContext& ctx, http::Request& req) {
  auto caller = co_await ctx.authenticate(req, Access::any_session);
  if (!caller) co_return error_response(caller.error());
  co_return json_response(user_json(caller->user));
}

struct PasswordChange {
  std::string current;
  std::string next;
};

core::Result<void> do_change_password(ApiContext& ctx, const Caller& caller,
                                      const PasswordChange& in, const std::string& address) {
  if (!auth::verify_password(caller.user.password_hash, in.current)) {
    ctx.login_limiter().record_failure(caller.user.username, address);
    ctx.audit(caller.actor(), "auth.password_change_failed", "user", caller.user.id,
              {{"address", address}});
    return core::Error{core::Errc::forbidden, "auth.wrong_password",
                       "The current password is wrong.", "current_password"};
  }
  if (in.current == in.next) {
    return core::invalid("auth.password_unchanged",
                         "The new password must differ from the current one.", "new_password");
  }
  if (auto rules = auth::check_password_rules(in.next); !rules) {
    auto e = rules.error();
    e.field = "new_password";
    return e;
  }
  auto hash = auth::hash_password(in.next, ctx.password_hash_limits());
  if (!hash) return hash.error();
  return ctx.store().transaction([&](store::Store& tx) -> core::Result<void> {
    auto user = tx.users().get(caller.user.id);
    if (!user) return user.error();
    user->password_hash = *hash;
    user->must_change_password = false;
    if (auto r = tx.users().update(*user); !r) return r.error();
    auto ended = api_detail::end_sessions(tx, user->id, caller.session_hash);
    if (!ended) return ended.error();
    return ApiContext::audit_in(tx, caller.actor(), "auth.password_change", "user", user->id,
                                {{"sessions_ended", *ended}});
  });
}

http::Awaitable<http::Response> change_password(ApiContext& ctx, http::Request& req) {
  auto caller = co_await ctx.authenticate(req, Access::any_session);
  if (!caller) co_return error_response(caller.error());
  auto body = api_detail::parse_known_body(req, {"current_password", "new_password"});
  if (!body) co_return error_response(body.error());
  auto input = api_detail::capture([&] {
    PasswordChange in;
    in.current = core::json::get_string(*body, "current_password", "");
    in.next = core::json::get_string(*body, "new_password", "");
    return in;
  });
  if (!input) co_return error_response(input.error());
  const std::string address = req.remote_address;
  if (auto lockout = ctx.login_limiter().lockout(caller->user.username, address)) {
    co_return error_response(lockout->to_error(), lockout->retry_after);
  }
  auto changed =
      co_await ctx.blocking([&] { return do_change_password(ctx, *caller, *input, address); });
  if (!changed) co_return error_response(changed.error());
  http::Response response;
  response.status = 204;
  co_return response;
}

}  // namespace

void register_auth_routes(http::Server& server, ApiContext& ctx) {
  server.route("POST", "/api/v1/auth/login",
               [&ctx](http::Request& req) { return login(ctx, req); });
  server.route("POST", "/api/v1/auth/logout",
               [&ctx](http::Request& req) { return logout(ctx, req); });
  server.route("GET", "/api/v1/auth/me", [&ctx](http::Request& req) { return me(ctx, req); });
  server.route("POST", "/api/v1/auth/password",
               [&ctx](http::Request& req) { return change_password(ctx, req); });
}

}  // namespace openstation::server
