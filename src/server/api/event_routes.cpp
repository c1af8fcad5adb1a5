// /api/v1/events: the audit trail (admins), newest first. See docs/api/auth.md.

// GCC 12 reports a false -Wmismatched-new-delete on Asio coroutine frames (awaitable_frame_base
// has its own operator new/delete); the frames are allocated and freed by the same pair.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include "http/server.hpp"
#include "server/api/context.hpp"
#include "server/api/routes.hpp"

#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>

namespace openstation::server {

namespace {

boost::json::object event_json(const store::Event& e) {
  boost::json::value detail = boost::json::object();
  if (!e.detail_json.empty()) {
    boost::system::error_code ec;
    auto parsed = boost::json::parse(e.detail_json, ec);
    detail = ec ? boost::json::value(e.detail_json) : std::move(parsed);
  }
  return {{"id", e.id},
          {"time", format_time(e.time)},
          {"actor", e.actor},
          {"action", e.action},
          {"target_kind", e.target_kind},
          {"target_id", e.target_id},
          {"detail", std::move(detail)}};
}

core::Result<store::EventFilter> event_filter(const http::Request& req) {
  store::EventFilter f;
  auto text = [&](std::string_view name, std::optional<std::string>& out) {
    if (auto v = req.query_param(name); v && !v->empty()) out = *v;
  };
  text("actor", f.actor);
  text("action", f.action);
  text("target_kind", f.target_kind);
  text("target_id", f.target_id);
  for (auto [name, out] : {std::pair{"since", &f.since}, std::pair{"until", &f.until}}) {
    if (auto v = req.query_param(name); v && !v->empty()) {
      auto t = parse_time(*v, name);
      if (!t) return t.error();
      *out = *t;
    }
  }
  return f;
}

http::Awaitable<http::Response> list_events(ApiContext& ctx, http::Request& req) {
  auto caller = co_await ctx.authenticate(req, Access::admin);
  if (!caller) co_return error_response(caller.error());
  auto page = page_request(req);
  if (!page) co_return error_response(page.error());
  auto filter = event_filter(req);
  if (!filter) co_return error_response(filter.error());
  auto events = co_await ctx.blocking([&] { return ctx.store().events().list(*filter, *page); });
  if (!events) co_return error_response(events.error());
  boost::json::array items;
  for (const auto& e : events->items) items.push_back(event_json(e));
  co_return json_response(
      boost::json::object{{"items", std::move(items)}, {"next_cursor", events->next_cursor}});
}

}  // namespace

void register_event_routes(http::Server& server, ApiContext& ctx) {
  server.route("GET", "/api/v1/events",
               [&ctx](http::Request& req) { return list_events(ctx, req); });
}

}  // namespace openstation::server
