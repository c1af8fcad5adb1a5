// /api/v1/downloads*: submit a hub download, list and show the queue, pause / resume / cancel,
// read the per-model log.
// GCC 12 reports a false -Wmismatched-new-delete on Asio coroutine frames (awaitable_frame_base
// has its own operator new/delete); the frames are allocated and freed by the same pair.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include "server/api/download_routes.hpp"

#include "core/json.hpp"
#include "http/server.hpp"
#include "model/catalog.hpp"
#include "server/download_manager.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <memory>

namespace openstation::server {
namespace {

namespace json = boost::json;
namespace cj = core::json;
using download::QueueCommand;

struct DownloadRoutes {
  ApiContext& ctx;
  DownloadManager& downloads;
};

json::value number_or_null(const std::optional<double>& v) {
  return v ? json::value(*v) : json::value(nullptr);
}

json::object view_json(const DownloadView& v) {
  const auto& d = v.download;
  return {{"id", d.id},
          {"model_id", v.model.id},
          {"name", v.model.name},
          {"source", v.source},
          {"repo", v.model.repo},
          {"revision", v.revision},
          {"state", std::string(store::to_string(d.state))},
          {"position", d.position},
          {"bytes_total", d.bytes_total},
          {"bytes_done", d.bytes_done},
          {"percent", v.percent()},
          {"files_total", d.files_total},
          {"files_done", d.files_done},
          {"bytes_per_second", v.bytes_per_second},
          {"eta_seconds", number_or_null(v.eta_seconds)},
          {"error", d.error},
          {"model_status", std::string(store::to_string(v.model.status))},
          {"path", v.model.path},
          {"started_at", format_time_or_null(d.started_at)},
          {"finished_at", format_time_or_null(d.finished_at)},
          {"created_at", format_time(d.created_at)},
          {"updated_at", format_time(d.updated_at)}};
}

/// Model names: the rule of POST /api/v1/models (one path segment of /api/v1/models/{id}).
core::Result<void> check_name(std::string_view name) {
  const bool ok = !name.empty() && name.size() <= 128 &&
                  std::isalnum(static_cast<unsigned char>(name[0])) &&
                  std::all_of(name.begin(), name.end(), [](char c) {
                    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' ||
                           c == '-' || c == ':';
                  });
  if (ok) return {};
  return core::invalid("model.bad_name",
                       "model name \"" + std::string(name) +
                           "\" is not valid: use 1 to 128 letters, digits, '.', '_', '-' or ':', "
                           "starting with a letter or digit",
                       "name");
}

struct SubmitInput {
  std::string repo;
  std::string catalog;
  std::string source;
  std::string revision;
  std::string name;
};

/// Resolves the body into a request: a catalog id picks the card's repository on the chosen
/// source; the name defaults to the catalog id or the repository's name part.
core::Result<DownloadRequest> resolve(const ApiContext& ctx, const SubmitInput& in) {
  DownloadRequest r;
  auto kind =
      download::parse_hub_kind(in.source.empty() ? ctx.config().hub.default_source : in.source);
  if (!kind) return kind.error();
  r.source = *kind;
  if (in.repo.empty() == in.catalog.empty()) {
    return core::invalid("download.bad_request",
                         "give either \"repo\" (owner/name on the hub) or \"catalog\" (a catalog "
                         "model id, GET /api/v1/catalog), not both and not neither",
                         in.repo.empty() ? "repo" : "catalog");
  }
  r.repo = in.repo;
  r.name = in.name;
  if (!in.catalog.empty()) {
    auto cat = ctx.config().data_dir.empty()
                   ? core::Result<model::Catalog>(model::Catalog::builtin())
                   : model::Catalog::load(ctx.config().data_dir / "catalog.json");
    if (!cat) return cat.error();
    auto card = cat->find(in.catalog);
    if (!card) {
      auto e = card.error();
      e.field = "catalog";
      return e;
    }
    r.repo = r.source == download::HubKind::modelscope ? card->ms_repo : card->hf_repo;
    if (r.repo.empty()) {
      return core::invalid("download.no_repo",
                           "catalog model " + card->id + " has no " +
                               std::string(download::to_string(r.source)) +
                               " repository; choose the other source",
                           "source");
    }
    if (r.name.empty()) r.name = card->id;
  }
  if (auto ok = download::check_repo(r.repo); !ok) return ok.error();
  if (r.name.empty()) r.name = r.repo.substr(r.repo.find('/') + 1);
  if (auto ok = check_name(r.name); !ok) return ok.error();
  r.revision = in.revision;
  return r;
}

http::Awaitable<http::Response> list(DownloadRoutes& r, http::Request& req) {
  auto caller = co_await r.ctx.authenticate(req, Access::user);
  if (!caller) co_return error_response(caller.error());
  auto all = co_await r.ctx.blocking([&] { return r.downloads.list(); });
  if (!all) co_return error_response(all.error());
  json::array items;
  for (const auto& v : *all) items.push_back(view_json(v));
  co_return json_response(json::object{{"items", std::move(items)}, {"next_cursor", ""}});
}

http::Awaitable<http::Response> submit(DownloadRoutes& r, http::Request& req) {
  auto caller = co_await r.ctx.authenticate(req, Access::admin);
  if (!caller) co_return error_response(caller.error());
  auto body = parse_body(req);
  if (!body) co_return error_response(body.error());
  auto input = cj::capture([&] {
    cj::reject_unknown(*body, {"repo", "catalog", "source", "revision", "name"}, "");
    return SubmitInput{cj::opt_string(*body, "repo", "").value_or(""),
                       cj::opt_string(*body, "catalog", "").value_or(""),
                       cj::opt_string(*body, "source", "").value_or(""),
                       cj::opt_string(*body, "revision", "").value_or(""),
                       cj::opt_string(*body, "name", "").value_or("")};
  });
  if (!input) co_return error_response(input.error());
  auto request = resolve(r.ctx, *input);
  if (!request) co_return error_response(request.error());
  request->actor = caller->actor();
  auto v = co_await r.ctx.blocking([&] { return r.downloads.submit(*request); });
  if (!v) co_return error_response(v.error());
  co_return json_response(view_json(*v), 201);
}

http::Awaitable<http::Response> show(DownloadRoutes& r, http::Request& req) {
  auto caller = co_await r.ctx.authenticate(req, Access::user);
  if (!caller) co_return error_response(caller.error());
  const std::string id(req.param("id"));
  auto v = co_await r.ctx.blocking([&] { return r.downloads.get(id); });
  if (!v) co_return error_response(v.error());
  co_return json_response(view_json(*v));
}

http::Awaitable<http::Response> act(DownloadRoutes& r, http::Request& req, QueueCommand c) {
  auto caller = co_await r.ctx.authenticate(req, Access::admin);
  if (!caller) co_return error_response(caller.error());
  const std::string id(req.param("id"));
  auto v = co_await r.ctx.blocking([&] { return r.downloads.command(id, c, caller->actor()); });
  if (!v) co_return error_response(v.error());
  co_return json_response(view_json(*v));
}
http::Awaitable<http::Response> pause(DownloadRoutes& r, http::Request& req) {
  co_return co_await act(r, req, QueueCommand::pause);
}
http::Awaitable<http::Response> resume(DownloadRoutes& r, http::Request& req) {
  co_return co_await act(r, req, QueueCommand::resume);
}
http::Awaitable<http::Response> cancel(DownloadRoutes& r, http::Request& req) {
  co_return co_await act(r, req, QueueCommand::cancel);
}

http::Awaitable<http::Response> log(DownloadRoutes& r, http::Request& req) {
  auto caller = co_await r.ctx.authenticate(req, Access::user);
  if (!caller) co_return error_response(caller.error());
  std::size_t tail = 200;
  if (const auto v = req.query_param("tail")) {
    const auto* end = v->data() + v->size();
    const auto [p, ec] = std::from_chars(v->data(), end, tail);
    if (ec != std::errc() || p != end || tail > 100000) {
      co_return error_response(core::invalid(
          "api.bad_query", "tail must be a whole number from 0 to 100000, not \"" + *v + "\"",
          "tail"));
    }
  }
  const std::string id(req.param("id"));
  auto text = co_await r.ctx.blocking([&] { return r.downloads.log(id, tail); });
  if (!text) co_return error_response(text.error());
  co_return http::Response::text(200, std::move(*text));
}

}  // namespace

void register_download_routes(http::Server& server, ApiContext& ctx, DownloadManager& downloads) {
  auto r = std::make_shared<DownloadRoutes>(DownloadRoutes{ctx, downloads});
  auto route = [&server, r](
                   std::string method, std::string pattern,
                   http::Awaitable<http::Response> (*fn)(DownloadRoutes&, http::Request&)) {
    server.route(std::move(method), std::move(pattern),
                 [r, fn](http::Request& req) { return fn(*r, req); });
  };
  route("GET", "/api/v1/downloads", list);
  route("POST", "/api/v1/downloads", submit);
  route("GET", "/api/v1/downloads/{id}", show);
  route("POST", "/api/v1/downloads/{id}/pause", pause);
  route("POST", "/api/v1/downloads/{id}/resume", resume);
  route("POST", "/api/v1/downloads/{id}/cancel", cancel);
  route("GET", "/api/v1/downloads/{id}/log", log);
}

}  // namespace openstation::server
