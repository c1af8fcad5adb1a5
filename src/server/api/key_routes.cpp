// /api/v1/keys*: API keys for the gateway, per user. See docs/api/auth.md.

// GCC 12 reports a false -Wmismatched-new-delete on Asio coroutine frames (awaitable_frame_base
// has its own operator new/delete); the frames are allocated and freed by the same pair.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include "http/server.hpp"
#include "server/api/context.hpp"
#include "server/api/detail/identity.hpp"
#include "server/api/routes.hpp"
#include "server/auth/api_key.hpp"

#include <boost/json/array.hpp>

namespace openstation::server {

namespace {

using api_detail::api_key_json;

/// Longest key label, in bytes.
constexpr std::size_t kKeyNameMax = 128;
/// Most entries in a key's model allow-list.
constexpr std::size_t kMaxAllowedModels = 256;

core::Error key_not_found(std::string_view id) {
  return core::not_found("key.not_found",
                         "There is no API key '" + std::string(id) +
                             "' of yours; 'openstation keys list' shows your keys.",
                         "id");
}

/// The key whose id or prefix is `id`, if the caller may see it: their own, or anyone's for an
/// admin. Someone else's key is "key.not_found" for a non-admin, so ids do not leak.
core::Result<store::ApiKey> find_key(store::Store& s, const Caller& caller, std::string_view id) {
  auto key = s.api_keys().get(id);
  if (!key && key.error().code == "store.not_found") key = s.api_keys().get_by_name(id);
  if (!key) {
    if (key.error().code == "store.not_found") return key_not_found(id);
    return key.error();
  }
  if (key->user_id != caller.user.id && !caller.is_admin()) return key_not_found(id);
  return key;
}

http::Awaitable<http::Response> list_keys(ApiContext& ctx, http::Request& req) {
  auto caller = co_await ctx.authenticate(req, Access::user);
  if (!caller) co_return error_response(caller.error());
  auto page = page_request(req);
  if (!page) co_return error_response(page.error());
  std::optional<bool> revoked;
  if (auto r = req.query_param("revoked")) {
    if (*r != "true" && *r != "false") {
      co_return error_response(
          core::invalid("api.bad_query", "revoked must be true or false", "revoked"));
    }
    revoked = *r == "true";
  }
  const auto user_param = req.query_param("user");
  auto keys = co_await ctx.blocking([&]() -> core::Result<store::Page<store::ApiKey>> {
    store::ApiKeyFilter filter;
    filter.revoked = revoked;
    filter.user_id = caller->user.id;
    if (user_param && !user_param->empty()) {
      auto user = api_detail::find_user(ctx.store(), *user_param, "user");
      if (!user) return user.error();
      if (user->id != caller->user.id && !caller->is_admin()) {
        return core::Error{core::Errc::forbidden, "auth.forbidden",
                           "Only admins may list other users' keys.", "user"};
      }
      filter.user_id = user->id;
    }
    return ctx.store().api_keys().list(filter, *page);
  });
  if (!keys) co_return error_response(keys.error());
  boost::json::array items;
  for (const auto& k : keys->items) items.push_back(api_key_json(k));
  co_return json_response(
      boost::json::object{{"items", std::move(items)}, {"next_cursor", keys->next_cursor}});
}

http::Awaitable<http::Response> get_key(ApiContext& ctx, http::Request& req) {
  auto caller = co_await ctx.authenticate(req, Access::user);
  if (!caller) co_return error_response(caller.error());
  auto key = co_await ctx.blocking([&] { return find_key(ctx.store(), *caller, req.param("id")); });
  if (!key) co_return error_response(key.error());
  co_return json_response(api_key_json(*key));
}

struct NewKey {
  std::string name;
  std::optional<core::Clock::TimePoint> expires_at;
  std::vector<std::string> allowed_models;
};

core::Result<NewKey> read_new_key(const boost::json::object& body, core::Clock::TimePoint now) {
  auto fields = api_detail::capture([&] {
    NewKey k;
    k.name = core::json::get_string(body, "name", "");
    auto expires = core::json::opt_string(body, "expires_at", "");
    if (const auto* models = body.if_contains("allowed_models"); models && !models->is_null()) {
      const auto& list = core::json::as_array(*models, "allowed_models");
      for (std::size_t i = 0; i < list.size(); ++i) {
        const std::string path = "allowed_models[" + std::to_string(i) + "]";
        if (!list[i].is_string()) {
          throw core::ErrorException(
              core::invalid("json.wrong_type", path + " must be a string (a model name)", path));
        }
        std::string model(list[i].as_string());
        if (model.empty() || model.size() > 256) {
          throw core::ErrorException(core::invalid(
              "key.bad_model", path + " must be a model name of 1 to 256 characters", path));
        }
        k.allowed_models.push_back(std::move(model));
      }
    }
    return std::pair{k, expires};
  });
  if (!fields) return fields.error();
  auto& [key, expires] = *fields;
  if (key.name.empty() || key.name.size() > kKeyNameMax) {
    return core::invalid(
        "key.bad_name",
        "name must be 1 to " + std::to_string(kKeyNameMax) + " bytes, e.g. \"laptop\" or \"ci\"",
        "name");
  }
  for (unsigned char c : key.name) {
    if (c < 0x20 || c == 0x7f) {
      return core::invalid("key.bad_name", "name must not contain control characters", "name");
    }
  }
  if (key.allowed_models.size() > kMaxAllowedModels) {
    return core::invalid(
        "key.bad_model",
        "allowed_models may list at most " + std::to_string(kMaxAllowedModels) + " models",
        "allowed_models");
  }
  if (expires) {
    auto t = parse_time(*expires, "expires_at");
    if (!t) return t.error();
    if (*t <= now) {
      return core::invalid(
          "key.bad_expiry",
          "expires_at (" + *expires + ") must be in the future; now is " + format_time(now),
          "expires_at");
    }
    key.expires_at = *t;
  }
  return key;
}

http::Awaitable<http::Response> create_key(ApiContext& ctx, http::Request& req) {
  auto caller = co_await ctx.authenticate(req, Access::user);
  if (!caller) co_return error_response(caller.error());
  auto body = api_detail::parse_known_body(req, {"name", "expires_at", "allowed_models"});
  if (!body) co_return error_response(body.error());
  auto input = read_new_key(*body, ctx.clock().now());
  if (!input) co_return error_response(input.error());

  using Out = core::Result<std::pair<store::ApiKey, std::string>>;
  auto created = co_await ctx.blocking([&]() -> Out {
    // A prefix collision (1 in 36^8 per pair) is answered by generating again.
    for (int attempt = 0;; ++attempt) {
      auto generated = auth::generate_api_key();
      store::ApiKey stored;
      auto r = ctx.store().transaction([&](store::Store& tx) -> core::Result<void> {
        store::ApiKey k;
        k.user_id = caller->user.id;
        k.name = input->name;
        k.prefix = generated.prefix;
        k.secret_hash = generated.hash;
        k.expires_at = input->expires_at;
        k.allowed_models = input->allowed_models;
        auto saved = tx.api_keys().create(std::move(k));
        if (!saved) return saved.error();
        stored = *saved;
        return ApiContext::audit_in(tx, caller->actor(), "key.create", "api_key", stored.id,
                                    {{"name", stored.name}, {"prefix", stored.prefix}});
      });
      if (!r) {
        if (r.error().code == "store.conflict" && r.error().field == "prefix" && attempt < 3) {
          continue;
        }
        return r.error();
      }
      ctx.keys_changed();
      return std::pair{std::move(stored), std::move(generated.text)};
    }
  });
  if (!created) co_return error_response(created.error());
  auto response = json_response(
      boost::json::object{{"key", created->second}, {"api_key", api_key_json(created->first)}},
      201);
  response.headers.set("Cache-Control", "no-store");
  co_return response;
}

http::Awaitable<http::Response> revoke_key(ApiContext& ctx, http::Request& req) {
  auto caller = co_await ctx.authenticate(req, Access::user);
  if (!caller) co_return error_response(caller.error());
  auto revoked = co_await ctx.blocking([&]() -> core::Result<void> {
    bool changed = false;
    auto r = ctx.store().transaction([&](store::Store& tx) -> core::Result<void> {
      auto key = find_key(tx, *caller, req.param("id"));
      if (!key) return key.error();
      if (key->revoked_at) return {};  // revoking twice is not an error
      key->revoked_at = ctx.clock().now();
      if (auto saved = tx.api_keys().update(*key); !saved) return saved.error();
      changed = true;
      return ApiContext::audit_in(
          tx, caller->actor(), "key.revoke", "api_key", key->id,
          {{"name", key->name}, {"prefix", key->prefix}, {"user_id", key->user_id}});
    });
    if (r && changed) ctx.keys_changed();
    return r;
  });
  if (!revoked) co_return error_response(revoked.error());
  http::Response response;
  response.status = 204;
  co_return response;
}

}  // namespace

void register_key_routes(http::Server& server, ApiContext& ctx) {
  server.route("GET", "/api/v1/keys", [&ctx](http::Request& req) { return list_keys(ctx, req); });
  server.route("POST", "/api/v1/keys", [&ctx](http::Request& req) { return create_key(ctx, req); });
  server.route("GET", "/api/v1/keys/{id}",
               [&ctx](http::Request& req) { return get_key(ctx, req); });
  server.route("DELETE", "/api/v1/keys/{id}",
               [&ctx](http::Request& req) { return revoke_key(ctx, req); });
}

}  // namespace openstation::server
