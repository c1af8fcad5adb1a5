// /api/v1/settings*: installation-wide key/value settings (admins). See docs/api/auth.md.

// GCC 12 reports a false -Wmismatched-new-delete on Asio coroutine frames (awaitable_frame_base
// has its own operator new/delete); the frames are allocated and freed by the same pair.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include "http/server.hpp"
#include "server/api/context.hpp"
#include "server/api/detail/identity.hpp"
#include "server/api/routes.hpp"

#include <boost/json/array.hpp>

namespace openstation::server {

namespace {

/// Longest setting key and value, in bytes.
constexpr std::size_t kKeyMax = 128;
constexpr std::size_t kValueMax = 64 * 1024;

core::Result<void> check_key(std::string_view key) {
  bool ok = !key.empty() && key.size() <= kKeyMax;
  for (char c : key) {
    ok = ok &&
         ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-');
  }
  if (ok) return {};
  return core::invalid("setting.bad_key",
                       "A setting key is 1 to " + std::to_string(kKeyMax) +
                           " characters of a-z, 0-9, '_', '.' and '-' (e.g. \"ui.banner\"), got '" +
                           std::string(key) + "'",
                       "key");
}

boost::json::object setting_json(const store::Setting& s) {
  return {{"key", s.key}, {"value", s.value}, {"updated_at", format_time(s.updated_at)}};
}

http::Awaitable<http::Response> list_settings(ApiContext& ctx, http::Request& req) {
  auto caller = co_await ctx.authenticate(req, Access::admin);
  if (!caller) co_return error_response(caller.error());
  auto page = page_request(req);
  if (!page) co_return error_response(page.error());
  if (!req.query_param("limit")) page->limit = 0;  // all of them unless paged explicitly
  store::SettingFilter filter;
  if (auto prefix = req.query_param("prefix")) filter.key_prefix = *prefix;
  auto settings = co_await ctx.blocking([&] { return ctx.store().settings().list(filter, *page); });
  if (!settings) co_return error_response(settings.error());
  boost::json::array items;
  for (const auto& s : settings->items) items.push_back(setting_json(s));
  co_return json_response(
      boost::json::object{{"items", std::move(items)}, {"next_cursor", settings->next_cursor}});
}

http::Awaitable<http::Response> get_setting(ApiContext& ctx, http::Request& req) {
  auto caller = co_await ctx.authenticate(req, Access::admin);
  if (!caller) co_return error_response(caller.error());
  const std::string key(req.param("key"));
  if (auto ok = check_key(key); !ok) co_return error_response(ok.error());
  auto setting = co_await ctx.blocking([&] { return ctx.store().settings().get(key); });
  if (!setting) {
    if (setting.error().code == "store.not_found") {
      co_return error_response(
          core::not_found("setting.not_found", "There is no setting '" + key + "'", "key"));
    }
    co_return error_response(setting.error());
  }
  co_return json_response(setting_json(*setting));
}

http::Awaitable<http::Response> put_setting(ApiContext& ctx, http::Request& req) {
  auto caller = co_await ctx.authenticate(req, Access::admin);
  if (!caller) co_return error_response(caller.error());
  const std::string key(req.param("key"));
  if (auto ok = check_key(key); !ok) co_return error_response(ok.error());
  auto body = api_detail::parse_known_body(req, {"value"});
  if (!body) co_return error_response(body.error());
  auto value = api_detail::capture([&] { return core::json::get_string(*body, "value", ""); });
  if (!value) co_return error_response(value.error());
  if (value->size() > kValueMax) {
    co_return error_response(core::invalid("setting.too_large",
                                           "value is " + std::to_string(value->size()) +
                                               " bytes; a setting holds at most " +
                                               std::to_string(kValueMax) + " bytes",
                                           "value"));
  }
  auto saved = co_await ctx.blocking([&]() -> core::Result<store::Setting> {
    store::Setting out;
    auto r = ctx.store().transaction([&](store::Store& tx) -> core::Result<void> {
      auto before = tx.settings().get(key);
      if (!before && before.error().code != "store.not_found") return before.error();
      store::Setting s;
      s.key = key;
      s.value = *value;
      s.updated_at = ctx.clock().now();
      auto put = tx.settings().put(std::move(s));
      if (!put) return put.error();
      out = *put;
      // Values may be secrets (tokens for hubs and the like): the trail records sizes only.
      boost::json::object detail{{"bytes", static_cast<std::int64_t>(out.value.size())},
                                 {"created", !before.has_value()}};
      return ApiContext::audit_in(tx, caller->actor(), "setting.update", "setting", key, detail);
    });
    if (!r) return r.error();
    return out;
  });
  if (!saved) co_return error_response(saved.error());
  co_return json_response(setting_json(*saved));
}

http::Awaitable<http::Response> delete_setting(ApiContext& ctx, http::Request& req) {
  auto caller = co_await ctx.authenticate(req, Access::admin);
  if (!caller) co_return error_response(caller.error());
  const std::string key(req.param("key"));
  if (auto ok = check_key(key); !ok) co_return error_response(ok.error());
  auto removed = co_await ctx.blocking([&]() -> core::Result<void> {
    return ctx.store().transaction([&](store::Store& tx) -> core::Result<void> {
      if (auto r = tx.settings().remove(key); !r) {
        if (r.error().code == "store.not_found") {
          return core::not_found("setting.not_found", "There is no setting '" + key + "'", "key");
        }
        return r.error();
      }
      return ApiContext::audit_in(tx, caller->actor(), "setting.delete", "setting", key);
    });
  });
  if (!removed) co_return error_response(removed.error());
  http::Response response;
  response.status = 204;
  co_return response;
}

}  // namespace

void register_setting_routes(http::Server& server, ApiContext& ctx) {
  server.route("GET", "/api/v1/settings",
               [&ctx](http::Request& req) { return list_settings(ctx, req); });
  server.route("GET", "/api/v1/settings/{key}",
               [&ctx](http::Request& req) { return get_setting(ctx, req); });
  server.route("PUT", "/api/v1/settings/{key}",
               [&ctx](http::Request& req) { return put_setting(ctx, req); });
  server.route("DELETE", "/api/v1/settings/{key}",
               [&ctx](http::Request& req) { return delete_setting(ctx, req); });
}

}  // namespace openstation::server
