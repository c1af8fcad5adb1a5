// Node sync (/api/v1/agent/models/*): a model's manifest and its files with range requests, for
// agents that pull a model from the server's model store. docs/agent.md describes the protocol,
// docs/models.md the flow, docs/openapi/agent.json the schema.
// GCC 12 reports a false -Wmismatched-new-delete on Asio coroutine frames (awaitable_frame_base
// has its own operator new/delete); the frames are allocated and freed by the same pair.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include "config/config.hpp"
#include "http/server.hpp"
#include "server/api/detail/nodes.hpp"
#include "server/api/routes.hpp"
#include "server/model_files.hpp"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>

namespace openstation::server {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t kChunk = 1 << 20;

struct ModelFileRoutes {
  ApiContext& ctx;
  fs::path model_dir;
  std::string store_id;       ///< empty when the marker could not be written
  std::mutex manifest_mutex;  ///< one manifest build at a time: a new model is hashed once
};

struct FileClose {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

/// The node of the token and the servable model `id`. Blocking.
core::Result<store::Model> authorised_model(ModelFileRoutes& r, const http::Request& req,
                                            const std::string& id) {
  auto node = api_detail::node_of_token(r.ctx.store(), req);
  if (!node) return node.error();
  auto m = r.ctx.store().models().get(id);
  if (!m) {
    if (m.error().code == "store.not_found") {
      return core::not_found("model.not_found",
                             "there is no model with id \"" + id + "\" in the library", "id");
    }
    return m.error();
  }
  if (auto ok = check_servable(*m); !ok) return ok.error();
  return *m;
}

http::Awaitable<http::Response> get_manifest(ModelFileRoutes& r, http::Request& req) {
  const std::string id(req.param("id"));
  auto out = co_await r.ctx.blocking([&]() -> core::Result<std::string> {
    auto m = authorised_model(r, req, id);
    if (!m) return m.error();
    if (r.store_id.empty()) {
      return core::io_error("model_files.store_marker",
                            "the server could not write its model store's marker in " +
                                r.model_dir.string() + "; see the server log");
    }
    const auto known = download_hashes(r.ctx.store(), r.model_dir, m->id);
    std::lock_guard lock(r.manifest_mutex);
    auto manifest = model_manifest(*m, r.model_dir, r.store_id, known);
    if (!manifest) return manifest.error();
    return agent::to_json(*manifest);
  });
  if (!out) co_return error_response(out.error());
  co_return http::Response::json(200, std::move(*out));
}

http::Awaitable<void> get_file(ModelFileRoutes& r, http::Request& req,
                               http::ResponseStream& stream) {
  const std::string id(req.param("id"));
  const std::string rel = http::percent_decode(req.param("*"), false);
  struct Opened {
    std::shared_ptr<std::FILE> file;
    std::int64_t size = 0;
  };
  auto opened = co_await r.ctx.blocking([&]() -> core::Result<Opened> {
    auto m = authorised_model(r, req, id);
    if (!m) return m.error();
    auto path = model_file(*m, rel);
    if (!path) return path.error();
    std::shared_ptr<std::FILE> f(std::fopen(path->c_str(), "rb"), FileClose{});
    if (!f) {
      return core::io_error("model_files.io",
                            "cannot open " + path->string() + ": " + std::strerror(errno));
    }
    std::error_code ec;
    const auto size = fs::file_size(*path, ec);
    if (ec) return core::io_error("model_files.io", "cannot read " + path->string());
    return Opened{std::move(f), static_cast<std::int64_t>(size)};
  });
  if (!opened) {
    co_await stream.respond(error_response(opened.error()));
    co_return;
  }
  auto range = parse_byte_range(req.headers.get_or("Range", ""), opened->size);
  if (!range) {
    auto res = http::Response::error(416, range.error());
    res.headers.set("Content-Range", "bytes */" + std::to_string(opened->size));
    co_await stream.respond(res);
    co_return;
  }
  std::int64_t pos = *range ? (*range)->first : 0;
  const std::int64_t end = *range ? (*range)->last + 1 : opened->size;
  http::Headers headers;
  headers.set("Content-Type", "application/octet-stream");
  headers.set("Accept-Ranges", "bytes");
  if (*range) {
    headers.set("Content-Range", "bytes " + std::to_string(pos) + "-" + std::to_string(end - 1) +
                                     "/" + std::to_string(opened->size));
  }
  if (!co_await stream.start(*range ? 206 : 200, std::move(headers))) co_return;
  if (pos > 0 && ::fseeko(opened->file.get(), pos, SEEK_SET) != 0) co_return;
  std::string buf;
  std::FILE* const file = opened->file.get();
  std::size_t want = 0;
  // Captures by reference only, bound to a name: GCC 12 destroys the captures of a temporary
  // lambda in a co_await expression twice.
  const auto read_chunk = [&buf, &want, file]() -> std::size_t {
    buf.resize(want);
    const auto n = std::fread(buf.data(), 1, want, file);
    buf.resize(n);
    return n;
  };
  while (pos < end) {
    want = static_cast<std::size_t>(std::min<std::int64_t>(end - pos, kChunk));
    auto got = co_await r.ctx.blocking(read_chunk);
    if (got == 0) break;  // the file shrank under us: the client sees a short body
    if (!co_await stream.write(buf)) co_return;
    pos += static_cast<std::int64_t>(got);
  }
  co_await stream.finish();
}

}  // namespace

void register_model_file_routes(http::Server& server, ApiContext& ctx) {
  auto r = std::make_shared<ModelFileRoutes>(ctx, config::model_dir(ctx.config()), std::string());
  std::error_code ec;
  fs::create_directories(r->model_dir, ec);
  if (auto id = ensure_store_id(r->model_dir)) {
    r->store_id = *id;
  } else {
    spdlog::error("{}; nodes will not be able to pull models", id.error().message);
  }
  const std::string base(agent::kModelsPath);
  server.route("GET", base + "/{id}/manifest",
               [r](http::Request& req) { return get_manifest(*r, req); });
  server.stream("GET", base + "/{id}/files/*",
                [r](http::Request& req, http::ResponseStream& s) { return get_file(*r, req, s); });
}

}  // namespace openstation::server
