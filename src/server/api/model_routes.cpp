// /api/v1/catalog*, /api/v1/models*, /api/v1/plan and /api/v1/instances/{id}/logs.
// docs/api/models.md describes them for people, docs/openapi/models.json the schema.
// GCC 12 reports a false -Wmismatched-new-delete on Asio coroutine frames (awaitable_frame_base
// has its own operator new/delete); the frames are allocated and freed by the same pair.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include "agent/model_inspect.hpp"
#include "core/engine_kind.hpp"
#include "core/json.hpp"
#include "core/strings.hpp"
#include "http/server.hpp"
#include "model/catalog.hpp"
#include "scheduler/plan.hpp"
#include "scheduler/plan_json.hpp"
#include "server/agent_link.hpp"
#include "server/api/detail/nodes.hpp"
#include "server/api/routes.hpp"
#include "server/assignments.hpp"

#include <spdlog/spdlog.h>
#include <boost/json.hpp>

#include <algorithm>
#include <charconv>
#include <memory>

namespace openstation::server {
namespace {

namespace json = boost::json;
namespace cj = core::json;
using api_detail::find_node;

constexpr std::size_t kMaxTail = 10000;

struct ModelRoutes {
  ApiContext& ctx;
  AgentLink& agents;
};

/// Built-in cards plus <data dir>/catalog.json (the same file `openstation models catalog` reads).
core::Result<model::Catalog> load_catalog(const ApiContext& ctx) {
  if (ctx.config().data_dir.empty()) return model::Catalog::builtin();
  return model::Catalog::load(ctx.config().data_dir / "catalog.json");
}

json::object card_json(const model::ModelCard& c) {
  return {{"id", c.id},
          {"display_name", c.display_name},
          {"params_b", c.params_b},
          {"params_label", c.params_label},
          {"dtype", model::to_string(c.dtype)},
          {"hf_repo", c.hf_repo},
          {"ms_repo", c.ms_repo},
          {"min_vram_gb", c.min_vram_gb},
          {"disk_gb", c.disk_gb},
          {"architecture", c.arch.architecture},
          {"max_context", c.arch.derived_max_len()},
          {"builtin", c.builtin}};
}

json::object model_json(const store::Model& m) {
  json::object o{{"id", m.id},
                 {"name", m.name},
                 {"source", std::string(store::to_string(m.source))},
                 {"repo", m.repo},
                 {"path", m.path},
                 {"node", m.node_id ? json::value(*m.node_id) : json::value(nullptr)},
                 {"format", m.format},
                 {"size_bytes", m.size_bytes},
                 {"status", std::string(store::to_string(m.status))},
                 {"status_reason", m.status_reason},
                 {"created_at", format_time(m.created_at)},
                 {"updated_at", format_time(m.updated_at)}};
  json::value details = nullptr;
  if (!m.meta_json.empty()) {
    boost::system::error_code ec;
    auto v = json::parse(m.meta_json, ec);
    if (!ec && v.is_object()) {
      auto& d = v.as_object();
      d.erase("chat_template");  // long, and not what a listing is for
      details = std::move(v);
    }
  }
  o["details"] = std::move(details);
  return o;
}

core::Error model_not_found(store::Store& s, std::string_view id_or_name, std::string_view field,
                            const std::vector<std::string>& more = {}) {
  std::vector<std::string> names = more;
  if (auto all = s.models().list({}, store::PageRequest{0, {}})) {
    for (const auto& m : all->items) names.push_back(m.name);
  }
  const auto near = core::closest(id_or_name, names);
  return core::not_found("model.not_found",
                         "There is no model '" + std::string(id_or_name) + "'" +
                             (near.empty() ? "" : " (did you mean '" + near + "'?)") +
                             "; GET /api/v1/models lists the library, GET /api/v1/catalog the "
                             "catalog.",
                         std::string(field));
}

/// The library model whose id or name is `id_or_name`, or nullopt.
core::Result<std::optional<store::Model>> lookup_model(store::Store& s,
                                                       std::string_view id_or_name) {
  if (id_or_name.empty()) return std::optional<store::Model>{};
  if (auto m = s.models().get(id_or_name); m)
    return std::optional<store::Model>(*m);
  else if (m.error().code != "store.not_found")
    return m.error();
  if (auto m = s.models().get_by_name(id_or_name); m)
    return std::optional<store::Model>(*m);
  else if (m.error().code != "store.not_found")
    return m.error();
  return std::optional<store::Model>{};
}

/// Model names: 1–128 letters, digits, '.', '_', '-', ':', starting with a letter or digit (no
/// '/': the name is one path segment of /api/v1/models/{id}).
core::Result<void> check_model_name(std::string_view name) {
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

// ---------------------------------------------------------------------------------------------

http::Awaitable<http::Response> get_catalog(ModelRoutes& r, http::Request& req) {
  auto caller = co_await r.ctx.authenticate(req, Access::user);
  if (!caller) co_return error_response(caller.error());
  auto cat = co_await r.ctx.blocking([&] { return load_catalog(r.ctx); });
  if (!cat) co_return error_response(cat.error());
  json::array items;
  for (const auto& c : cat->cards()) items.push_back(card_json(c));
  co_return json_response(json::object{{"items", std::move(items)}, {"next_cursor", ""}});
}

http::Awaitable<http::Response> get_catalog_card(ModelRoutes& r, http::Request& req) {
  auto caller = co_await r.ctx.authenticate(req, Access::user);
  if (!caller) co_return error_response(caller.error());
  auto cat = co_await r.ctx.blocking([&] { return load_catalog(r.ctx); });
  if (!cat) co_return error_response(cat.error());
  auto card = cat->find(req.param("id"));
  if (!card) {
    auto e = card.error();
    e.field = "id";
    co_return error_response(e);
  }
  co_return json_response(card_json(*card));
}

http::Awaitable<http::Response> list_models(ModelRoutes& r, http::Request& req) {
  auto caller = co_await r.ctx.authenticate(req, Access::user);
  if (!caller) co_return error_response(caller.error());
  auto page = page_request(req);
  if (!page) co_return error_response(page.error());
  store::ModelFilter filter;
  if (auto node = req.query_param("node")) {
    auto n = co_await r.ctx.blocking([&] { return find_node(r.ctx.store(), *node, "node"); });
    if (!n) co_return error_response(n.error());
    filter.node_id = n->id;
  }
  auto list = co_await r.ctx.blocking([&] { return r.ctx.store().models().list(filter, *page); });
  if (!list) co_return error_response(list.error());
  json::array items;
  for (const auto& m : list->items) items.push_back(model_json(m));
  co_return json_response(
      json::object{{"items", std::move(items)}, {"next_cursor", list->next_cursor}});
}

http::Awaitable<http::Response> get_model(ModelRoutes& r, http::Request& req) {
  auto caller = co_await r.ctx.authenticate(req, Access::user);
  if (!caller) co_return error_response(caller.error());
  const std::string id(req.param("id"));
  auto m = co_await r.ctx.blocking([&]() -> core::Result<store::Model> {
    auto found = lookup_model(r.ctx.store(), id);
    if (!found) return found.error();
    if (!*found) return model_not_found(r.ctx.store(), id, "id");
    return **found;
  });
  if (!m) co_return error_response(m.error());
  co_return json_response(model_json(*m));
}

struct ImportInput {
  std::string name;
  std::string path;
  std::string node;
};

http::Awaitable<http::Response> import_model(ModelRoutes& r, http::Request& req) {
  auto caller = co_await r.ctx.authenticate(req, Access::admin);
  if (!caller) co_return error_response(caller.error());
  auto body = parse_body(req);
  if (!body) co_return error_response(body.error());
  auto input = cj::capture([&] {
    cj::reject_unknown(*body, {"name", "path", "node"}, "");
    return ImportInput{cj::get_string(*body, "name", ""), cj::get_string(*body, "path", ""),
                       cj::get_string(*body, "node", "")};
  });
  if (!input) co_return error_response(input.error());
  if (auto ok = check_model_name(input->name); !ok) co_return error_response(ok.error());
  if (input->path.empty() || input->path.front() != '/') {
    co_return error_response(core::invalid(
        "model.bad_path",
        "path must be an absolute path on the node (a model directory with config.json and "
        "*.safetensors, or a .gguf file), not \"" +
            input->path + "\"",
        "path"));
  }

  auto created = co_await r.ctx.blocking([&]() -> core::Result<store::Model> {
    store::Store& s = r.ctx.store();
    auto node = find_node(s, input->node, "node");
    if (!node) return node.error();
    if (node->status != store::NodeStatus::ready) {
      return core::Error(core::Errc::conflict, "node.not_ready",
                         "node " + node->name + " is " +
                             std::string(store::to_string(node->status)) +
                             (node->status_reason.empty() ? "" : " (" + node->status_reason + ")") +
                             "; its agent must be up to check the model files",
                         "node");
    }
    auto taken = lookup_model(s, input->name);
    if (!taken) return taken.error();
    const auto name_taken = [&] {
      return core::Error(core::Errc::conflict, "model.name_taken",
                         "a model named \"" + input->name +
                             "\" is already in the library; choose another name or delete it "
                             "first (DELETE /api/v1/models/" +
                             input->name + ")",
                         "name");
    };
    if (*taken) return name_taken();
    // The node's agent reads the files' headers: the path is on that node, not here.
    auto info = r.agents.inspect_model(*node, input->path);
    if (!info) {
      auto e = info.error();
      if (e.category == core::Errc::invalid_argument || e.category == core::Errc::not_found ||
          e.category == core::Errc::parse_error) {
        e.category = core::Errc::invalid_argument;
        e.field = "path";
        e.message = "node " + node->name + " cannot use " + input->path + ": " + e.message;
      }
      return e;
    }
    info->path = input->path;
    store::Model result;
    auto tx_result = s.transaction([&](store::Store& tx) -> core::Result<void> {
      store::Model m;
      m.name = input->name;
      m.source = store::ModelSource::local;
      m.path = input->path;
      m.node_id = node->id;
      m.format = info->format == model::WeightFormat::gguf          ? "gguf"
                 : info->format == model::WeightFormat::safetensors ? "safetensors"
                                                                    : "unknown";
      m.size_bytes = static_cast<std::int64_t>(info->disk_bytes);
      m.status = store::ModelStatus::ready;
      m.meta_json = agent::model_info_to_json(*info);
      auto c = tx.models().create(m);
      if (!c) {
        if (c.error().code == "store.conflict") return name_taken();
        return c.error();
      }
      result = *c;
      return ApiContext::audit_in(
          tx, caller->actor(), "model.import", "model", c->id,
          {{"name", c->name}, {"path", c->path}, {"node", node->name}, {"format", c->format}});
    });
    if (!tx_result) return tx_result.error();
    return result;
  });
  if (!created) co_return error_response(created.error());
  co_return json_response(model_json(*created), 201);
}

http::Awaitable<http::Response> delete_model(ModelRoutes& r, http::Request& req) {
  auto caller = co_await r.ctx.authenticate(req, Access::admin);
  if (!caller) co_return error_response(caller.error());
  const std::string id(req.param("id"));
  std::optional<store::Model> deleted;
  auto removed = co_await r.ctx.blocking([&]() -> core::Result<void> {
    auto done = r.ctx.store().transaction([&](store::Store& tx) -> core::Result<void> {
      auto found = lookup_model(tx, id);
      if (!found) return found.error();
      if (!*found) return model_not_found(tx, id, "id");
      const auto& m = **found;
      store::ServiceFilter f;
      f.model_id = m.id;
      auto users = tx.services().list(f, store::PageRequest{0, {}});
      if (!users) return users.error();
      if (!users->items.empty()) {
        std::vector<std::string> names;
        for (const auto& svc : users->items) names.push_back(svc.name);
        return core::Error(core::Errc::conflict, "model.in_use",
                           "model " + m.name + " is used by service" +
                               (names.size() == 1 ? " " : "s ") + core::join(names) + "; delete " +
                               (names.size() == 1 ? "that service" : "those services") +
                               " first (DELETE /api/v1/services/{id})",
                           "id");
      }
      if (auto d = tx.models().remove(m.id); !d) return d.error();
      deleted = m;
      return ApiContext::audit_in(tx, caller->actor(), "model.delete", "model", m.id,
                                  {{"name", m.name}});
    });
    // Only once the row is gone: a downloaded model's files are freed (the download manager).
    if (done && deleted) r.ctx.model_deleted(*deleted);
    return done;
  });
  if (!removed) co_return error_response(removed.error());
  co_return http::Response{204, {}, {}};
}

// ---------------------------------------------------------------------------------------------
// Plan (dry run)

struct PlanInput {
  std::string model;
  std::vector<std::string> nodes;
  std::string engine;
  std::string engine_version;
  std::string extra_args;
  std::string served_name;
};

PlanInput parse_plan_input(const json::object& o) {
  cj::reject_unknown(o, {"model", "nodes", "engine", "engine_version", "extra_args", "served_name"},
                     "");
  PlanInput in;
  in.model = cj::get_string(o, "model", "");
  const auto* nodes = o.if_contains("nodes");
  if (nodes == nullptr) {
    throw core::ErrorException(
        core::invalid("plan.no_nodes",
                      "nodes is required: the node names in order, the first "
                      "is the head",
                      "nodes"));
  }
  const auto& arr = cj::as_array(*nodes, "nodes");
  for (std::size_t i = 0; i < arr.size(); ++i) {
    if (!arr[i].is_string()) {
      throw core::ErrorException(core::invalid(
          "api.bad_field", "nodes[" + std::to_string(i) + "] must be a node name or id",
          "nodes[" + std::to_string(i) + "]"));
    }
    in.nodes.emplace_back(arr[i].get_string());
  }
  if (in.nodes.empty()) {
    throw core::ErrorException(core::invalid("plan.no_nodes", "nodes names no node", "nodes"));
  }
  in.engine = cj::opt_string(o, "engine", "").value_or("");
  in.engine_version = cj::opt_string(o, "engine_version", "").value_or("");
  in.extra_args = cj::opt_string(o, "extra_args", "").value_or("");
  in.served_name = cj::opt_string(o, "served_name", "").value_or("");
  return in;
}

/// The planner's request from the library or the catalog and the stored nodes. Blocking.
core::Result<scheduler::PlanRequest> build_plan_request(ApiContext& ctx, const PlanInput& in) {
  scheduler::PlanRequest req;
  store::Store& s = ctx.store();
  auto lib = lookup_model(s, in.model);
  if (!lib) return lib.error();
  if (*lib && !(*lib)->meta_json.empty()) {
    auto info = agent::parse_model_info_json((*lib)->meta_json);
    if (!info) return info.error();
    req.model = *info;
    req.model.id = (*lib)->name;
    req.model_path = (*lib)->path;
  } else {
    auto cat = load_catalog(ctx);
    if (!cat) return cat.error();
    const std::string card_id =
        *lib ? ((*lib)->repo.empty() ? (*lib)->name : (*lib)->repo) : in.model;
    auto card = cat->find(card_id);
    if (!card) {
      if (*lib) return card.error();
      std::vector<std::string> ids;
      for (const auto& c : cat->cards()) ids.push_back(c.id);
      return model_not_found(s, in.model, "model", ids);
    }
    req.model = card->to_model_info();
    // Without files the engines load the model from its hub repository.
    req.model_path = *lib && !(*lib)->path.empty() ? (*lib)->path : card->hf_repo;
  }
  for (const auto& name : in.nodes) {
    auto node = find_node(s, name, "nodes");
    if (!node) return node.error();
    auto spec = api_detail::node_spec(*node);
    if (!spec) return spec.error();
    if (node->status != store::NodeStatus::ready) req.unreachable.insert(node->name);
    req.nodes.push_back(std::move(*spec));
  }
  if (!in.engine.empty()) {
    auto k = core::parse_engine_kind(in.engine);
    if (!k) {
      auto e = k.error();
      e.field = "engine";
      return e;
    }
    req.engine = *k;
  }
  req.engine_version = in.engine_version;
  req.extra_args = in.extra_args;
  req.served_name = in.served_name;
  return req;
}

http::Awaitable<http::Response> plan(ModelRoutes& r, http::Request& req) {
  auto caller = co_await r.ctx.authenticate(req, Access::user);
  if (!caller) co_return error_response(caller.error());
  auto body = parse_body(req);
  if (!body) co_return error_response(body.error());
  auto input = cj::capture([&] { return parse_plan_input(*body); });
  if (!input) co_return error_response(input.error());
  auto out = co_await r.ctx.blocking([&]() -> core::Result<scheduler::Plan> {
    auto preq = build_plan_request(r.ctx, *input);
    if (!preq) return preq.error();
    return scheduler::make_plan(*preq);
  });
  if (!out) co_return error_response(out.error());
  co_return json_response(scheduler::plan_to_json(*out));
}

// ---------------------------------------------------------------------------------------------
// Instance logs, through the node's agent

core::Result<std::optional<std::size_t>> query_size(const http::Request& req, std::string_view name,
                                                    std::size_t max) {
  const auto v = req.query_param(name);
  if (!v) return std::optional<std::size_t>{};
  std::size_t n = 0;
  const auto* end = v->data() + v->size();
  const auto [p, ec] = std::from_chars(v->data(), end, n);
  if (ec != std::errc() || p != end || n > max) {
    return core::invalid("api.bad_query",
                         std::string(name) + " must be a whole number from 0 to " +
                             std::to_string(max) + ", not \"" + *v + "\"",
                         std::string(name));
  }
  return std::optional<std::size_t>(n);
}

struct LogSource {
  store::Node node;
  std::string assignment_id;
};

core::Result<LogSource> log_source(store::Store& s, const std::string& instance_id,
                                   std::size_t rank) {
  auto inst = s.instances().get(instance_id);
  if (!inst) {
    if (inst.error().code == "store.not_found") {
      return core::not_found(
          "instance.not_found",
          "There is no instance '" + instance_id + "'; GET /api/v1/instances lists them.", "id");
    }
    return inst.error();
  }
  if (inst->node_ids.empty()) {
    return core::Error(core::Errc::conflict, "instance.not_placed",
                       "instance " + instance_id + " is " +
                           std::string(store::to_string(inst->state)) +
                           " and runs on no node yet, so it has no log" +
                           (inst->state_reason.empty() ? "" : ": " + inst->state_reason));
  }
  if (rank >= inst->node_ids.size()) {
    return core::invalid("api.bad_query",
                         "rank must be below " + std::to_string(inst->node_ids.size()) +
                             ": instance " + instance_id + " spans " +
                             std::to_string(inst->node_ids.size()) + " node(s)",
                         "rank");
  }
  auto node = s.nodes().get(inst->node_ids[rank]);
  if (!node) {
    if (node.error().code == "store.not_found") {
      return core::Error(core::Errc::conflict, "instance.node_gone",
                         "the node of instance " + instance_id + " (" + inst->node_ids[rank] +
                             ") was removed; its log went with it");
    }
    return node.error();
  }
  return LogSource{*node, assignment_id(inst->id, rank, inst->node_ids.size())};
}

http::Awaitable<void> instance_logs(ModelRoutes& r, http::Request& req,
                                    http::ResponseStream& stream) {
  auto caller = co_await r.ctx.authenticate(req, Access::user);
  if (!caller) {
    co_await stream.respond(error_response(caller.error()));
    co_return;
  }
  const auto follow_v = req.query_param("follow").value_or("0");
  const bool follow = follow_v == "1" || follow_v == "true";
  auto tail = query_size(req, "tail", kMaxTail);
  if (!tail) {
    co_await stream.respond(error_response(tail.error()));
    co_return;
  }
  auto rank = query_size(req, "rank", 1024);
  if (!rank) {
    co_await stream.respond(error_response(rank.error()));
    co_return;
  }
  const std::string id(req.param("id"));
  auto source =
      co_await r.ctx.blocking([&] { return log_source(r.ctx.store(), id, rank->value_or(0)); });
  if (!source) {
    co_await stream.respond(error_response(source.error()));
    co_return;
  }
  if (follow) {
    co_await r.agents.follow_log(source->node, source->assignment_id, tail->value_or(0), stream);
    co_return;
  }
  auto text = co_await r.ctx.blocking(
      [&] { return r.agents.tail_log(source->node, source->assignment_id, tail->value_or(100)); });
  if (!text) {
    co_await stream.respond(error_response(text.error()));
    co_return;
  }
  co_await stream.respond(http::Response::text(200, std::move(*text)));
}

}  // namespace

void register_model_routes(http::Server& server, ApiContext& ctx, AgentLink& agents) {
  auto r = std::make_shared<ModelRoutes>(ModelRoutes{ctx, agents});
  auto route = [&server, r](std::string method, std::string pattern,
                            http::Awaitable<http::Response> (*fn)(ModelRoutes&, http::Request&)) {
    server.route(std::move(method), std::move(pattern),
                 [r, fn](http::Request& req) { return fn(*r, req); });
  };
  route("GET", "/api/v1/catalog", get_catalog);
  route("GET", "/api/v1/catalog/{id}", get_catalog_card);
  route("GET", "/api/v1/models", list_models);
  route("POST", "/api/v1/models", import_model);
  route("GET", "/api/v1/models/{id}", get_model);
  route("DELETE", "/api/v1/models/{id}", delete_model);
  route("POST", "/api/v1/plan", plan);
  server.stream("GET", "/api/v1/instances/{id}/logs",
                [r](http::Request& req, http::ResponseStream& stream) {
                  return instance_logs(*r, req, stream);
                });
}

}  // namespace openstation::server
