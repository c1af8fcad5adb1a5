#pragma once
/// Private helpers shared by the identity route groups (auth, users, keys): the JSON shapes of
/// users and keys, user look-up by id or name, the last-admin rule and ending sessions. All store
/// functions block: call them on the worker pool, with the transaction's `tx` where there is one.

#include "core/error.hpp"
#include "core/json.hpp"
#include "http/message.hpp"
#include "server/api/context.hpp"
#include "store/store.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>

namespace openstation::server::api_detail {

inline std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

/// The API's user object; never the hash.
inline boost::json::object user_json(const store::User& u) {
  return {{"id", u.id},
          {"username", u.username},
          {"display_name", u.display_name},
          {"email", u.email},
          {"role", std::string(store::to_string(u.role))},
          {"disabled", u.disabled},
          {"must_change_password", u.must_change_password},
          {"created_at", format_time(u.created_at)},
          {"updated_at", format_time(u.updated_at)}};
}

/// The API's key object; never the hash.
inline boost::json::object api_key_json(const store::ApiKey& k) {
  boost::json::array models;
  for (const auto& m : k.allowed_models) models.emplace_back(m);
  return {{"id", k.id},
          {"name", k.name},
          {"prefix", k.prefix},
          {"user_id", k.user_id},
          {"created_at", format_time(k.created_at)},
          {"last_used_at", format_time_or_null(k.last_used_at)},
          {"expires_at", format_time_or_null(k.expires_at)},
          {"revoked_at", format_time_or_null(k.revoked_at)},
          {"allowed_models", std::move(models)}};
}

/// Every user (for the case-insensitive checks; installations have thousands at most).
inline core::Result<std::vector<store::User>> all_users(store::Store& s) {
  auto page = s.users().list({}, store::PageRequest{0, {}});
  if (!page) return page.error();
  return std::move(page->items);
}

/// The user whose id or username is `id_or_name` (the username also case-insensitively).
/// Error "user.not_found" (404, field `field`).
inline core::Result<store::User> find_user(store::Store& s, std::string_view id_or_name,
                                           std::string_view field = "id") {
  auto not_found = [&] {
    return core::not_found("user.not_found",
                           "There is no user '" + std::string(id_or_name) +
                               "'; 'openstation users list' shows the users.",
                           std::string(field));
  };
  if (id_or_name.empty()) return not_found();
  if (auto u = s.users().get(id_or_name); u || u.error().code != "store.not_found") return u;
  if (auto u = s.users().get_by_name(id_or_name); u || u.error().code != "store.not_found") {
    return u;
  }
  auto users = all_users(s);
  if (!users) return users.error();
  const auto wanted = lower(id_or_name);
  for (auto& u : *users) {
    if (lower(u.username) == wanted) return std::move(u);
  }
  return not_found();
}

/// Error "user.exists" (409, field "username") when another user (not `except_id`) has this
/// username, compared ignoring case.
inline core::Result<void> check_username_free(store::Store& s, std::string_view username,
                                              std::string_view except_id = {}) {
  auto users = all_users(s);
  if (!users) return users.error();
  const auto wanted = lower(username);
  for (const auto& u : *users) {
    if (u.id != except_id && lower(u.username) == wanted) {
      return core::Error{core::Errc::conflict, "user.exists",
                         "A user called '" + u.username + "' already exists; choose another name.",
                         "username"};
    }
  }
  return {};
}

/// Error "user.last_admin" (409) when `target` is the only enabled admin, so disabling, demoting
/// or deleting it would leave nobody able to administer the installation.
inline core::Result<void> check_not_last_admin(store::Store& s, const store::User& target,
                                               std::string_view action) {
  if (target.role != store::Role::admin || target.disabled) return {};
  store::UserFilter filter;
  filter.role = store::Role::admin;
  filter.disabled = false;
  auto admins = s.users().list(filter, store::PageRequest{2, {}});
  if (!admins) return admins.error();
  if (admins->items.size() <= 1) {
    return core::Error{core::Errc::conflict, "user.last_admin",
                       "Cannot " + std::string(action) + " '" + target.username +
                           "': it is the last enabled admin. Make another user an admin first."};
  }
  return {};
}

/// Deletes the user's sessions except the one whose hash is `keep`; returns how many ended.
inline core::Result<std::size_t> end_sessions(store::Store& s, const std::string& user_id,
                                              std::string_view keep = {}) {
  store::SessionFilter filter;
  filter.user_id = user_id;
  if (keep.empty()) return s.sessions().remove_all(filter);
  auto sessions = s.sessions().list(filter, store::PageRequest{0, {}});
  if (!sessions) return sessions.error();
  std::size_t ended = 0;
  for (const auto& session : sessions->items) {
    if (session.token_hash == keep) continue;
    if (auto r = s.sessions().remove(session.token_hash); !r) return r.error();
    ++ended;
  }
  return ended;
}

/// Parses the body as an object with only `known` fields; errors name the field.
inline core::Result<boost::json::object> parse_known_body(
    const http::Request& req, std::initializer_list<std::string_view> known) {
  auto body = parse_body(req);
  if (!body) return body.error();
  auto checked = core::json::capture([&] {
    core::json::reject_unknown(*body, known, "");
    return true;
  });
  if (!checked) return checked.error();
  return body;
}

/// Runs `fn` (which may throw core::ErrorException from the json getters) into a Result.
template <class F>
auto capture(F&& fn) {
  return core::json::capture(std::forward<F>(fn));
}

}  // namespace openstation::server::api_detail
