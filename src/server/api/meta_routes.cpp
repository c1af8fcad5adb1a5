// GET /health and GET /api/v1/openapi.json: the two routes that need no login.

// GCC 12 reports a false -Wmismatched-new-delete on Asio coroutine frames (awaitable_frame_base
// has its own operator new/delete); the frames are allocated and freed by the same pair.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
#include "http/server.hpp"
#include "server/api/openapi.hpp"
#include "server/api/routes.hpp"

#include <spdlog/spdlog.h>
#include <boost/json/serialize.hpp>

#include <memory>
#include <string>

#ifndef OPENSTATION_VERSION
#define OPENSTATION_VERSION "0.0.0"
#endif

namespace openstation::server {

void register_meta_routes(http::Server& server, ApiContext& ctx) {
  // The document is merged once: the fragments are part of the binary, so a merge error is a
  // build defect that every request would repeat. It is logged and answered as a 500.
  auto merged = merge_openapi(embedded_openapi_fragments(), OPENSTATION_VERSION);
  std::shared_ptr<const http::Response> openapi;
  if (merged) {
    auto r = http::Response::json(200, boost::json::serialize(*merged));
    r.headers.set("Cache-Control", "no-cache");
    openapi = std::make_shared<const http::Response>(std::move(r));
  } else {
    spdlog::error("the OpenAPI document cannot be built: {}", merged.error().message);
    openapi = std::make_shared<const http::Response>(error_response(merged.error()));
  }
  server.route(
      "GET", "/api/v1/openapi.json",
      [openapi](http::Request&) -> http::Awaitable<http::Response> { co_return *openapi; });

  // Liveness and the store's reachability: 200 when the store answers, 503 otherwise (a load
  // balancer or systemd watchdog can act on it). Cheap: one schema-version read.
  server.route("GET", "/health", [&ctx](http::Request&) -> http::Awaitable<http::Response> {
    auto version = co_await ctx.blocking([&ctx] { return ctx.store().schema_version(); });
    boost::json::object body{
        {"version", OPENSTATION_VERSION},
        {"store", std::string(ctx.store().backend())},
    };
    if (version) {
      body["status"] = "ok";
      body["schema_version"] = *version;
      co_return json_response(body);
    }
    body["status"] = "unavailable";
    body["error"] =
        boost::json::object{{"code", version.error().code}, {"message", version.error().message}};
    co_return json_response(body, 503);
  });
}

}  // namespace openstation::server
