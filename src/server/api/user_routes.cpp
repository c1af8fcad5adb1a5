// /api/v1/users*: admin user management. See docs/api/auth.md.

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
#include "server/auth/role.hpp"
#include "server/auth/user_rules.hpp"
#include "server/auth/users_csv.hpp"

#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <charconv>
#include <unordered_set>

namespace openstation::server {

namespace {

using api_detail::user_json;

store::Role to_store(auth::Role r) {
  return r == auth::Role::admin ? store::Role::admin : store::Role::user;
}

http::Response no_content() {
  http::Response r;
  r.status = 204;
  return r;
}

/// Hashes a freshly generated password. Generated passwords carry about 96 random bits, so a
/// bulk import may use `limits` cheaper than the interactive ones without making them guessable;
/// the first login's forced password change stores a full-cost hash anyway.
core::Result<std::pair<std::string, std::string>> generated_password(
    const auth::PasswordHashLimits& limits) {
  auto password = auth::generate_password();
  auto hash = auth::hash_password(password, limits);
  if (!hash) return hash.error();
  return std::pair{std::move(password), std::move(*hash)};
}

// --- list / get ---------------------------------------------------------------------------------

http::Awaitable<http::Response> list_users(ApiContext& ctx, http::Request& req) {
  auto caller = co_await ctx.authenticate(req, Access::admin);
  if (!caller) co_return error_response(caller.error());
  auto page = page_request(req);
  if (!page) co_return error_response(page.error());
  store::UserFilter filter;
  if (auto role = req.query_param("role")) {
    auto parsed = auth::parse_role(*role);
    if (!parsed)
      co_return error_response(core::invalid("api.bad_query", parsed.error().message, "role"));
    filter.role = to_store(*parsed);
  }
  if (auto disabled = req.query_param("disabled")) {
    if (*disabled != "true" && *disabled != "false") {
      co_return error_response(
          core::invalid("api.bad_query", "disabled must be true or false", "disabled"));
    }
    filter.disabled = *disabled == "true";
  }
  auto users = co_await ctx.blocking([&] { return ctx.store().users().list(filter, *page); });
  if (!users) co_return error_response(users.error());
  boost::json::array items;
  for (const auto& u : users->items) items.push_back(user_json(u));
  co_return json_response(
      boost::json::object{{"items", std::move(items)}, {"next_cursor", users->next_cursor}});
}

http::Awaitable<http::Response> get_user(ApiContext& ctx, http::Request& req) {
  auto caller = co_await ctx.authenticate(req, Access::admin);
  if (!caller) co_return error_response(caller.error());
  auto user =
      co_await ctx.blocking([&] { return api_detail::find_user(ctx.store(), req.param("id")); });
  if (!user) co_return error_response(user.error());
  co_return json_response(user_json(*user));
}

// --- create -------------------------------------------------------------------------------------

struct NewUser {
  std::string username;
  std::string display_name;
  std::string email;
  store::Role role = store::Role::user;
};

core::Result<NewUser> read_new_user(const boost::json::object& body) {
  auto fields = api_detail::capture([&] {
    NewUser u;
    u.username = core::json::get_string(body, "username", "");
    u.display_name = core::json::opt_string(body, "display_name", "").value_or("");
    u.email = core::json::opt_string(body, "email", "").value_or("");
    return std::pair{u, core::json::opt_string(body, "role", "").value_or("user")};
  });
  if (!fields) return fields.error();
  auto& [u, role] = *fields;
  if (auto r = auth::check_username(u.username); !r) return r.error();
  if (auto r = auth::check_display_name(u.display_name); !r) return r.error();
  if (auto r = auth::check_email(u.email); !r) return r.error();
  auto parsed = auth::parse_role(role);
  if (!parsed) return parsed.error();
  u.role = to_store(*parsed);
  return u;
}

http::Awaitable<http::Response> create_user(ApiContext& ctx, http::Request& req) {
  auto caller = co_await ctx.authenticate(req, Access::admin);
  if (!caller) co_return error_response(caller.error());
  auto body = api_detail::parse_known_body(req, {"username", "role", "display_name", "email"});
  if (!body) co_return error_response(body.error());
  auto input = read_new_user(*body);
  if (!input) co_return error_response(input.error());

  using Out = core::Result<std::pair<store::User, std::string>>;
  auto created = co_await ctx.blocking([&]() -> Out {
    auto password = generated_password(ctx.password_hash_limits());
    if (!password) return password.error();
    store::User stored;
    auto tx_result = ctx.store().transaction([&](store::Store& tx) -> core::Result<void> {
      if (auto free = api_detail::check_username_free(tx, input->username); !free) {
        return free.error();
      }
      store::User u;
      u.username = input->username;
      u.display_name = input->display_name;
      u.email = input->email;
      u.role = input->role;
      u.password_hash = password->second;
      u.must_change_password = true;
      auto r = tx.users().create(std::move(u));
      if (!r) return r.error();
      stored = *r;
      return ApiContext::audit_in(
          tx, caller->actor(), "user.create", "user", stored.id,
          {{"username", stored.username}, {"role", std::string(store::to_string(stored.role))}});
    });
    if (!tx_result) return tx_result.error();
    return std::pair{std::move(stored), std::move(password->first)};
  });
  if (!created) co_return error_response(created.error());
  auto response = json_response(
      boost::json::object{{"user", user_json(created->first)}, {"password", created->second}}, 201);
  response.headers.set("Cache-Control", "no-store");
  co_return response;
}

// --- update -------------------------------------------------------------------------------------

http::Awaitable<http::Response> update_user(ApiContext& ctx, http::Request& req) {
  auto caller = co_await ctx.authenticate(req, Access::admin);
  if (!caller) co_return error_response(caller.error());
  auto body = api_detail::parse_known_body(req, {"display_name", "email", "role"});
  if (!body) co_return error_response(body.error());
  struct Patch {
    std::optional<std::string> display_name, email;
    std::optional<store::Role> role;
  };
  auto patch = api_detail::capture([&] {
    Patch p;
    p.display_name = core::json::opt_string(*body, "display_name", "");
    p.email = core::json::opt_string(*body, "email", "");
    if (auto role = core::json::opt_string(*body, "role", "")) {
      auto parsed = auth::parse_role(*role);
      if (!parsed) throw core::ErrorException(parsed.error());
      p.role = to_store(*parsed);
    }
    return p;
  });
  if (!patch) co_return error_response(patch.error());
  if (patch->display_name) {
    if (auto r = auth::check_display_name(*patch->display_name); !r) {
      co_return error_response(r.error());
    }
  }
  if (patch->email) {
    if (auto r = auth::check_email(*patch->email); !r) co_return error_response(r.error());
  }

  bool role_changed = false;
  auto updated = co_await ctx.blocking([&]() -> core::Result<store::User> {
    store::User out;
    auto r = ctx.store().transaction([&](store::Store& tx) -> core::Result<void> {
      auto user = api_detail::find_user(tx, req.param("id"));
      if (!user) return user.error();
      boost::json::object changed;
      if (patch->display_name && *patch->display_name != user->display_name) {
        user->display_name = *patch->display_name;
        changed["display_name"] = user->display_name;
      }
      if (patch->email && *patch->email != user->email) {
        user->email = *patch->email;
        changed["email"] = user->email;
      }
      if (patch->role && *patch->role != user->role) {
        if (auto ok = api_detail::check_not_last_admin(tx, *user, "demote"); !ok) {
          return ok.error();
        }
        user->role = *patch->role;
        changed["role"] = std::string(store::to_string(user->role));
        role_changed = true;
      }
      if (changed.empty()) {
        out = std::move(*user);
        return {};
      }
      auto saved = tx.users().update(*user);
      if (!saved) return saved.error();
      out = std::move(*saved);
      return ApiContext::audit_in(tx, caller->actor(), "user.update", "user", out.id, changed);
    });
    if (!r) return r.error();
    return out;
  });
  if (!updated) co_return error_response(updated.error());
  if (role_changed)
    co_await ctx.blocking([&] {
      ctx.keys_changed();
      return 0;
    });
  co_return json_response(user_json(*updated));
}

// --- delete, disable, enable ---------------------------------------------------------------------

http::Awaitable<http::Response> delete_user(ApiContext& ctx, http::Request& req) {
  auto caller = co_await ctx.authenticate(req, Access::admin);
  if (!caller) co_return error_response(caller.error());
  auto removed = co_await ctx.blocking([&]() -> core::Result<void> {
    auto r = ctx.store().transaction([&](store::Store& tx) -> core::Result<void> {
      auto user = api_detail::find_user(tx, req.param("id"));
      if (!user) return user.error();
      if (user->id == caller->user.id) {
        return core::Error{core::Errc::conflict, "user.delete_self",
                           "You cannot delete your own user; ask another admin to do it."};
      }
      if (auto ok = api_detail::check_not_last_admin(tx, *user, "delete"); !ok) return ok.error();
      if (auto gone = tx.users().remove(user->id); !gone) return gone.error();
      return ApiContext::audit_in(tx, caller->actor(), "user.delete", "user", user->id,
                                  {{"username", user->username}});
    });
    if (r) ctx.keys_changed();
    return r;
  });
  if (!removed) co_return error_response(removed.error());
  co_return no_content();
}

http::Awaitable<http::Response> set_disabled(ApiContext& ctx, http::Request& req, bool disabled) {
  auto caller = co_await ctx.authenticate(req, Access::admin);
  if (!caller) co_return error_response(caller.error());
  auto updated = co_await ctx.blocking([&]() -> core::Result<store::User> {
    store::User out;
    auto r = ctx.store().transaction([&](store::Store& tx) -> core::Result<void> {
      auto user = api_detail::find_user(tx, req.param("id"));
      if (!user) return user.error();
      if (user->disabled == disabled) {
        out = std::move(*user);
        return {};
      }
      if (disabled) {
        if (auto ok = api_detail::check_not_last_admin(tx, *user, "disable"); !ok) {
          return ok.error();
        }
      }
      user->disabled = disabled;
      auto saved = tx.users().update(*user);
      if (!saved) return saved.error();
      out = std::move(*saved);
      boost::json::object detail{{"username", out.username}};
      if (disabled) {
        auto ended = api_detail::end_sessions(tx, out.id);
        if (!ended) return ended.error();
        detail["sessions_ended"] = *ended;
      }
      return ApiContext::audit_in(tx, caller->actor(), disabled ? "user.disable" : "user.enable",
                                  "user", out.id, detail);
    });
    if (!r) return r.error();
    ctx.keys_changed();
    return out;
  });
  if (!updated) co_return error_response(updated.error());
  co_return json_response(user_json(*updated));
}

http::Awaitable<http::Response> reset_password(ApiContext& ctx, http::Request& req) {
  auto caller = co_await ctx.authenticate(req, Access::admin);
  if (!caller) co_return error_response(caller.error());
  if (req.body.find_first_not_of(" \t\r\n") != std::string::npos) {
    auto body = api_detail::parse_known_body(req, {});
    if (!body) co_return error_response(body.error());
  }
  auto reset = co_await ctx.blocking([&]() -> core::Result<std::string> {
    auto password = generated_password(ctx.password_hash_limits());
    if (!password) return password.error();
    auto r = ctx.store().transaction([&](store::Store& tx) -> core::Result<void> {
      auto user = api_detail::find_user(tx, req.param("id"));
      if (!user) return user.error();
      user->password_hash = password->second;
      user->must_change_password = true;
      if (auto saved = tx.users().update(*user); !saved) return saved.error();
      auto ended = api_detail::end_sessions(tx, user->id);
      if (!ended) return ended.error();
      return ApiContext::audit_in(tx, caller->actor(), "user.reset_password", "user", user->id,
                                  {{"username", user->username}, {"sessions_ended", *ended}});
    });
    if (!r) return r.error();
    return std::move(password->first);
  });
  if (!reset) co_return error_response(reset.error());
  auto response = json_response(boost::json::object{{"password", *reset}});
  response.headers.set("Cache-Control", "no-store");
  co_return response;
}

// --- CSV import ---------------------------------------------------------------------------------

/// The line number in a users_csv error's field ("line 3, column 2"), or 0.
std::int64_t line_of(std::string_view field) {
  constexpr std::string_view kLine = "line ";
  if (field.substr(0, kLine.size()) != kLine) return 0;
  field.remove_prefix(kLine.size());
  std::int64_t line = 0;
  std::from_chars(field.data(), field.data() + field.size(), line);
  return line;
}

http::Response import_failed(const core::Error& e, boost::json::array errors) {
  auto response = error_response(e);
  auto body = boost::json::parse(response.body).as_object();
  body["created"] = boost::json::array();
  body["errors"] = std::move(errors);
  response.body = boost::json::serialize(body);
  return response;
}

http::Awaitable<http::Response> import_users(ApiContext& ctx, http::Request& req) {
  auto caller = co_await ctx.authenticate(req, Access::admin);
  if (!caller) co_return error_response(caller.error());
  auto rows = auth::parse_users_csv(req.body);
  if (!rows) {
    const auto& e = rows.error();
    co_return import_failed(e, boost::json::array{boost::json::object{{"line", line_of(e.field)},
                                                                      {"code", e.code},
                                                                      {"field", e.field},
                                                                      {"message", e.message}}});
  }

  struct Outcome {
    std::vector<std::pair<std::string, std::string>> created;  // username, password
    boost::json::array errors;
    core::Error error;
    bool ok = false;
  };
  auto outcome = co_await ctx.blocking([&] {
    Outcome out;
    // Generated passwords are strong on their own (see generated_password), so a large import
    // hashes them at the minimum argon2 cost rather than taking seconds per user.
    std::vector<std::string> hashes;
    for (std::size_t i = 0; i < rows->size(); ++i) {
      auto p = generated_password(auth::PasswordHashLimits::minimum());
      if (!p) {
        out.error = p.error();
        return out;
      }
      out.created.emplace_back((*rows)[i].username, std::move(p->first));
      hashes.push_back(std::move(p->second));
    }
    auto r = ctx.store().transaction([&](store::Store& tx) -> core::Result<void> {
      auto existing = api_detail::all_users(tx);
      if (!existing) return existing.error();
      std::unordered_set<std::string> taken;
      for (const auto& u : *existing) taken.insert(api_detail::lower(u.username));
      for (const auto& row : *rows) {
        if (taken.count(api_detail::lower(row.username))) {
          out.errors.push_back(boost::json::object{
              {"line", static_cast<std::int64_t>(row.line)},
              {"code", "user.exists"},
              {"field", "username"},
              {"message", "line " + std::to_string(row.line) + ": a user called '" + row.username +
                              "' already exists"}});
        }
      }
      if (!out.errors.empty()) {
        return core::Error{core::Errc::conflict, "user.exists",
                           std::to_string(out.errors.size()) +
                               " of the file's users already exist (see errors); nothing was "
                               "imported. Remove those lines and import again.",
                           "username"};
      }
      for (std::size_t i = 0; i < rows->size(); ++i) {
        const auto& row = (*rows)[i];
        store::User u;
        u.username = row.username;
        u.display_name = row.display_name;
        u.email = row.email;
        u.role = to_store(row.role);
        u.password_hash = hashes[i];
        u.must_change_password = true;
        auto created = tx.users().create(std::move(u));
        if (!created) {
          auto e = created.error();
          e.message = "line " + std::to_string(row.line) + ": " + e.message;
          return e;
        }
        if (auto a = ApiContext::audit_in(tx, caller->actor(), "user.create", "user", created->id,
                                          {{"username", created->username},
                                           {"role", std::string(store::to_string(created->role))},
                                           {"import", true}});
            !a) {
          return a.error();
        }
      }
      return ApiContext::audit_in(tx, caller->actor(), "user.import", "user", "",
                                  {{"count", static_cast<std::int64_t>(rows->size())}});
    });
    if (!r) {
      out.error = r.error();
      return out;
    }
    out.ok = true;
    return out;
  });
  if (!outcome.ok) {
    if (outcome.errors.empty()) {
      outcome.errors.push_back(boost::json::object{{"line", line_of(outcome.error.field)},
                                                   {"code", outcome.error.code},
                                                   {"field", outcome.error.field},
                                                   {"message", outcome.error.message}});
    }
    co_return import_failed(outcome.error, std::move(outcome.errors));
  }
  boost::json::array created;
  for (auto& [name, password] : outcome.created) {
    created.push_back(boost::json::object{{"username", name}, {"password", password}});
  }
  auto response = json_response(
      boost::json::object{{"created", std::move(created)}, {"errors", boost::json::array()}}, 201);
  response.headers.set("Cache-Control", "no-store");
  co_return response;
}

}  // namespace

void register_user_routes(http::Server& server, ApiContext& ctx) {
  // The fixed paths first: the router takes the first pattern that matches.
  server.route("POST", "/api/v1/users/import",
               [&ctx](http::Request& req) { return import_users(ctx, req); });
  server.route("GET", "/api/v1/users", [&ctx](http::Request& req) { return list_users(ctx, req); });
  server.route("POST", "/api/v1/users",
               [&ctx](http::Request& req) { return create_user(ctx, req); });
  server.route("GET", "/api/v1/users/{id}",
               [&ctx](http::Request& req) { return get_user(ctx, req); });
  server.route("PATCH", "/api/v1/users/{id}",
               [&ctx](http::Request& req) { return update_user(ctx, req); });
  server.route("DELETE", "/api/v1/users/{id}",
               [&ctx](http::Request& req) { return delete_user(ctx, req); });
  server.route("POST", "/api/v1/users/{id}/disable",
               [&ctx](http::Request& req) { return set_disabled(ctx, req, true); });
  server.route("POST", "/api/v1/users/{id}/enable",
               [&ctx](http::Request& req) { return set_disabled(ctx, req, false); });
  server.route("POST", "/api/v1/users/{id}/reset-password",
               [&ctx](http::Request& req) { return reset_password(ctx, req); });
}

}  // namespace openstation::server
