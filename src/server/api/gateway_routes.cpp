// /api/v1/gateway/* (what `openstation gateway --server` replicas follow and report to) and
// /api/v1/services/{id}/call-logs. docs/api/gateway.md describes them, docs/openapi/gateway.json
// the schema.
// GCC 12 reports a false -Wmismatched-new-delete on Asio coroutine frames (awaitable_frame_base
// has its own operator new/delete); the frames are allocated and freed by the same pair.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include "core/strings.hpp"
#include "http/server.hpp"
#include "server/api/routes.hpp"
#include "server/auth/api_key.hpp"
#include "server/gateway_feed.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <charconv>
#include <memory>

namespace openstation::server {
namespace {

namespace json = boost::json;

constexpr std::chrono::seconds kMaxWait{300};
/// While a replica waits, the snapshot is made again this often (instance states change without a
/// notification); a key change wakes the wait at once. Every waiting replica shares one making.
constexpr std::chrono::milliseconds kPollInterval{500};
constexpr std::string_view kWakeKey = "gateway";

struct GatewayRoutes {
  GatewayRoutes(ApiContext& c, AssignmentNotifier& w)
      : ctx(c), wake(w), snapshots(c.clock(), kPollInterval) {}
  ApiContext& ctx;
  AssignmentNotifier& wake;
  GatewaySnapshotCache snapshots;
};

/// A replica's credential: an API key of an enabled admin (checked against the store, like the
/// gateway checks keys), or an admin's session token. Errors: the key's ("auth.invalid_api_key",
/// "auth.key_revoked", ... all 401), "gateway.replica_forbidden" (403) for a non-admin's key,
/// and ctx.authenticate's for sessions.
http::Awaitable<core::Result<std::string>> authenticate_replica(GatewayRoutes& r,
                                                                const http::Request& req) {
  const std::string header(req.headers.get_or("Authorization", ""));
  const auto token = auth::bearer_token(header);
  if (token && core::starts_with(*token, auth::kApiKeyTag)) {
    auto who = co_await r.ctx.blocking([&]() -> core::Result<std::string> {
      auto parsed = auth::parse_api_key(header);
      if (!parsed) return parsed.error();
      auto key = r.ctx.store().api_keys().get_by_name(parsed->prefix);
      if (!key) {
        if (key.error().code != "store.not_found") return key.error();
        return core::Error(core::Errc::unauthorized, "auth.invalid_api_key",
                           "The API key is not valid");
      }
      auto user = r.ctx.store().users().get(key->user_id);
      if (!user) {
        return core::Error(core::Errc::unauthorized, "auth.invalid_api_key",
                           "The API key is not valid");
      }
      auth::KeyRecord rec;
      rec.key_id = key->id;
      rec.user_id = user->id;
      rec.username = user->username;
      rec.role = user->role == store::Role::admin ? auth::Role::admin : auth::Role::user;
      rec.prefix = key->prefix;
      rec.hash = key->secret_hash;
      rec.revoked = key->revoked_at.has_value();
      rec.user_disabled = user->disabled;
      rec.expires_at = key->expires_at;
      const auth::KeySnapshot one({rec});
      auto p = one.authenticate(header, r.ctx.clock().now());
      if (!p) return p.error();
      if (p->role() != auth::Role::admin) {
        return core::Error(core::Errc::forbidden, "gateway.replica_forbidden",
                           "A gateway replica needs an API key of an admin user");
      }
      return p->username();
    });
    co_return who;
  }
  auto caller = co_await r.ctx.authenticate(req, Access::admin);
  if (!caller) co_return caller.error();
  co_return caller->actor();
}

http::Awaitable<http::Response> get_snapshot(GatewayRoutes& r, http::Request& req) {
  auto who = co_await authenticate_replica(r, req);
  if (!who) co_return error_response(who.error());
  const std::string after = req.query_param("wait_after").value_or("");
  const std::string keys_after = req.query_param("keys_after").value_or("");
  std::uint64_t wait_s = 0;
  if (auto w = req.query_param("wait"); w && !w->empty()) {
    const auto* end = w->data() + w->size();
    const auto [p, ec] = std::from_chars(w->data(), end, wait_s);
    if (ec != std::errc() || p != end) {
      co_return error_response(core::invalid(
          "api.bad_query", "wait must be a whole number of seconds, not \"" + *w + "\"", "wait"));
    }
  }
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(std::min<std::uint64_t>(
                                             wait_s, static_cast<std::uint64_t>(kMaxWait.count())));
  const config::GatewayConfig limits = r.ctx.config().gateway;
  for (;;) {
    const auto generation = r.wake.generation(kWakeKey);
    auto snap = co_await r.ctx.blocking(
        [&]() { return r.snapshots.current(r.ctx.store(), limits, generation); });
    if (!snap) co_return error_response(snap.error());
    const auto now = std::chrono::steady_clock::now();
    if (after.empty() || (*snap)->version != after || now >= deadline) {
      const auto& p = **snap;
      const bool caller_has_keys = !keys_after.empty() && keys_after == p.keys_version;
      co_return http::Response::json(200, caller_has_keys ? p.json_without_keys : p.json);
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
    (void)co_await r.wake.wait_change(std::string(kWakeKey), generation,
                                      std::min(left, kPollInterval));
  }
}

http::Awaitable<http::Response> post_call_logs(GatewayRoutes& r, http::Request& req) {
  auto who = co_await authenticate_replica(r, req);
  if (!who) co_return error_response(who.error());
  auto logs = parse_call_logs(req.body);
  if (!logs) co_return error_response(logs.error());
  const auto n = logs->size();
  auto written = co_await r.ctx.blocking([&]() { return append_call_logs(r.ctx.store(), *logs); });
  if (!written) co_return error_response(written.error());
  co_return json_response(json::object{{"written", n}});
}

http::Awaitable<http::Response> list_call_logs(GatewayRoutes& r, http::Request& req) {
  auto caller = co_await r.ctx.authenticate(req, Access::user);
  if (!caller) co_return error_response(caller.error());
  auto page = page_request(req);
  if (!page) co_return error_response(page.error());
  const std::string id(req.param("id"));
  auto out = co_await r.ctx.blocking([&]() -> core::Result<json::object> {
    auto& s = r.ctx.store();
    auto svc = s.services().get(id);
    if (!svc && svc.error().code == "store.not_found") svc = s.services().get_by_name(id);
    if (!svc) {
      if (svc.error().code != "store.not_found") return svc.error();
      return core::not_found("service.not_found", "There is no service '" + id + "'", "id");
    }
    store::CallLogFilter filter;
    filter.service = svc->name;
    if (!caller->is_admin()) filter.user_id = caller->user.id;  // users see their own calls
    auto list = s.call_logs().list(filter, *page);
    if (!list) return list.error();
    json::array items;
    for (const auto& l : list->items) {
      json::object j;
      j["id"] = l.id;
      j["time"] = format_time(l.time);
      j["user_id"] = l.user_id;
      j["key_id"] = l.key_id;
      j["service"] = l.service;
      j["instance_id"] = l.instance_id;
      j["status"] = l.status;
      j["duration_ms"] = l.duration_ms;
      j["prompt_tokens"] = l.prompt_tokens;
      j["completion_tokens"] = l.completion_tokens;
      j["total_tokens"] = l.prompt_tokens + l.completion_tokens;
      j["ttft_ms"] = l.ttft_ms ? json::value(*l.ttft_ms) : json::value(nullptr);
      j["tokens_per_second"] = l.tokens_per_second;
      j["error"] = l.error;
      items.push_back(std::move(j));
    }
    return json::object{{"items", std::move(items)}, {"next_cursor", list->next_cursor}};
  });
  if (!out) co_return error_response(out.error());
  co_return json_response(*out);
}

}  // namespace

void register_gateway_routes(http::Server& server, ApiContext& ctx, AssignmentNotifier& wake) {
  auto r = std::make_shared<GatewayRoutes>(ctx, wake);
  auto route = [&server, r](std::string method, std::string pattern,
                            http::Awaitable<http::Response> (*fn)(GatewayRoutes&, http::Request&)) {
    server.route(std::move(method), std::move(pattern),
                 [r, fn](http::Request& req) { return fn(*r, req); });
  };
  route("GET", std::string(kGatewaySnapshotPath), get_snapshot);
  route("POST", std::string(kGatewayCallLogsPath), post_call_logs);
  route("GET", "/api/v1/services/{id}/call-logs", list_call_logs);
}

void notify_gateway_feed(AssignmentNotifier& wake) {
  wake.notify(kWakeKey);
}

}  // namespace openstation::server
