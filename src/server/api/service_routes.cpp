// /api/v1/services* (deploy, list, show, scale, delete) and /api/v1/instances* (list, show, add on
// chosen nodes, remove with drain, health check). See docs/api/services.md and
// docs/scheduling.md. The reconciler (server/reconciler.hpp) does the work; these routes change
// the desired state, validate it up front, and trigger it.

#include "core/json.hpp"
#include "core/strings.hpp"
#include "engine/args.hpp"
#include "engine/spec.hpp"
#include "http/client.hpp"
#include "http/server.hpp"
#include "scheduler/placement.hpp"
#include "server/api/context.hpp"
#include "server/api/detail/nodes.hpp"
#include "server/api/routes.hpp"
#include "server/instance_progress.hpp"
#include "server/reconcile_plan.hpp"
#include "server/reconciler.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <memory>

namespace openstation::server {

namespace {

namespace json = boost::json;
namespace cj = core::json;
using store::InstanceState;

constexpr int kMaxReplicas = 64;
constexpr std::size_t kMaxNameLength = 128;
constexpr auto kCheckTimeout = std::chrono::seconds(5);

struct ServiceRoutes {
  ApiContext& ctx;
  AssignmentNotifier& assignments;
  ReconcileTrigger& reconcile;
};

std::string lower(std::string_view s) {
  return core::to_lower(s);
}

template <class T, class F>
core::Result<std::vector<T>> list_all(F&& list) {
  auto page = list(store::PageRequest{0, {}});
  if (!page) return page.error();
  return std::move(page->items);
}

// ---------------------------------------------------------------------------------------------
// Look-ups

core::Result<store::Service> find_service(store::Store& s, std::string_view id_or_name,
                                          std::string_view field = "id") {
  if (auto v = s.services().get(id_or_name); v || v.error().code != "store.not_found") return v;
  if (auto v = s.services().get_by_name(id_or_name); v || v.error().code != "store.not_found") {
    return v;
  }
  auto all = list_all<store::Service>(
      [&](const store::PageRequest& p) { return s.services().list({}, p); });
  if (!all) return all.error();
  std::vector<std::string> names;
  for (const auto& v : *all) names.push_back(v.name);
  const auto guess = core::closest(id_or_name, names);
  return core::not_found("service.not_found",
                         "There is no service '" + std::string(id_or_name) + "'" +
                             (guess.empty() ? "" : " (did you mean '" + guess + "'?)") +
                             "; 'openstation services list' shows the services.",
                         std::string(field));
}

core::Result<store::Model> find_model(store::Store& s, std::string_view id_or_name) {
  if (auto v = s.models().get(id_or_name); v || v.error().code != "store.not_found") return v;
  if (auto v = s.models().get_by_name(id_or_name); v || v.error().code != "store.not_found") {
    return v;
  }
  auto all =
      list_all<store::Model>([&](const store::PageRequest& p) { return s.models().list({}, p); });
  if (!all) return all.error();
  std::vector<std::string> names;
  for (const auto& v : *all) names.push_back(v.name);
  const auto guess = core::closest(id_or_name, names);
  return core::not_found("model.not_found",
                         "There is no model '" + std::string(id_or_name) + "' in the library" +
                             (guess.empty() ? "" : " (did you mean '" + guess + "'?)") +
                             "; import it first ('openstation models import' or POST "
                             "/api/v1/models).",
                         "model");
}

core::Result<store::Instance> find_instance(store::Store& s, std::string_view id) {
  auto v = s.instances().get(id);
  if (!v && v.error().code == "store.not_found") {
    return core::not_found("instance.not_found",
                           "There is no instance '" + std::string(id) +
                               "'; 'openstation instances list' shows the instances.",
                           "id");
  }
  return v;
}

// ---------------------------------------------------------------------------------------------
// JSON shapes

/// Node id → name, for the objects (ids of removed nodes are shown as they are).
using NodeNames = std::map<std::string, std::string>;

NodeNames node_names(store::Store& s) {
  NodeNames out;
  auto all =
      list_all<store::Node>([&](const store::PageRequest& p) { return s.nodes().list({}, p); });
  if (all) {
    for (const auto& n : *all) out[n.id] = n.name;
  }
  return out;
}

json::array names_of(const std::vector<std::string>& ids, const NodeNames& names) {
  json::array out;
  for (const auto& id : ids) {
    auto it = names.find(id);
    out.emplace_back(it == names.end() ? id : it->second);
  }
  return out;
}

json::value endpoint_of(store::Store& s, const store::Instance& i) {
  if (i.port <= 0 || i.node_ids.empty()) return nullptr;
  auto n = s.nodes().get(i.node_ids.front());
  if (!n || n->address.empty()) return nullptr;
  return json::value("http://" + n->address + ":" + std::to_string(i.port));
}

/// {bytes_done, bytes_total, percent} while the instance's nodes pull its model files; null
/// otherwise.
json::value progress_json(const store::Instance& i, const InstanceProgress& progress) {
  if (i.state != InstanceState::preparing) return nullptr;
  const auto p = progress.get(i.id);
  if (!p) return nullptr;
  return json::object{
      {"bytes_done", p->bytes_done}, {"bytes_total", p->bytes_total}, {"percent", p->percent()}};
}

json::object instance_json(store::Store& s, const store::Instance& i, const std::string& service,
                           const NodeNames& names, const InstanceProgress& progress) {
  json::array reasons;
  if (i.state == InstanceState::pending) {
    for (const auto& r : scheduler::parse_reasons(i.state_reason)) {
      reasons.push_back(json::object{{"node", r.node}, {"message", r.message}});
    }
  }
  return {
      {"id", i.id},
      {"service", service},
      {"state", std::string(store::to_string(i.state))},
      {"state_reason", i.state_reason},
      {"nodes", i.state == InstanceState::pending ? json::array{} : names_of(i.node_ids, names)},
      {"port", i.port},
      {"pid", i.pid},
      {"restarts", i.restarts},
      {"pending_reasons", std::move(reasons)},
      {"created_at", format_time(i.created_at)},
      {"updated_at", format_time(i.updated_at)},
      {"endpoint", endpoint_of(s, i)},
      {"progress", progress_json(i, progress)}};
}

core::Result<json::object> service_json(store::Store& s, const store::Service& v,
                                        const NodeNames& names, const InstanceProgress& progress) {
  auto model = s.models().get(v.model_id);
  store::InstanceFilter f;
  f.service_id = v.id;
  auto insts = s.instances().list(f, store::PageRequest{0, {}});
  if (!insts) return insts.error();
  json::array instances;
  for (const auto& i : insts->items)
    instances.push_back(instance_json(s, i, v.name, names, progress));
  return json::object{{"id", v.id},
                      {"name", v.name},
                      {"model", model ? model->name : v.model_id},
                      {"engine", v.engine.empty() ? "auto" : v.engine},
                      {"engine_version", v.engine_version},
                      {"extra_args", v.extra_args},
                      {"nodes", names_of(v.placement, names)},
                      {"replicas", v.replicas},
                      {"state", service_deleting(v) ? "deleting" : "active"},
                      {"created_at", format_time(v.created_at)},
                      {"updated_at", format_time(v.updated_at)},
                      {"instances", std::move(instances)}};
}

// ---------------------------------------------------------------------------------------------
// Validation

/// An OpenAI model id: 1..128 characters, letters, digits and . _ - : /, starting with a letter
/// or a digit.
core::Result<void> check_name(const std::string& name) {
  const bool ok_chars = std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-' ||
           c == ':' || c == '/';
  });
  if (name.empty() || name.size() > kMaxNameLength || !ok_chars ||
      !std::isalnum(static_cast<unsigned char>(name.front()))) {
    return core::invalid("service.bad_name",
                         "name '" + name +
                             "' is not a valid model id: use 1 to 128 letters, digits and . _ - "
                             ": /, starting with a letter or digit (clients send it as \"model\")",
                         "name");
  }
  return {};
}

core::Result<void> check_replicas(std::int64_t n) {
  if (n < 0 || n > kMaxReplicas) {
    return core::invalid("service.bad_replicas",
                         "replicas must be between 0 and " + std::to_string(kMaxReplicas) +
                             ", not " + std::to_string(n),
                         "replicas");
  }
  return {};
}

/// The engine name is configured; the version is known; the extended parameters parse for that
/// engine version (with did-you-mean). With the engine left to the platform, the parameters must
/// parse for one of the engines it may pick (llama.cpp for GGUF models).
core::Result<void> check_engine(const config::Config& cfg, const std::string& engine,
                                const std::string& version, const std::string& extra_args) {
  std::vector<core::EngineKind> kinds;
  if (!engine.empty()) {
    auto it = cfg.engines.find(engine);
    if (it == cfg.engines.end()) {
      std::vector<std::string> names;
      for (const auto& [n, e] : cfg.engines) names.push_back(n);
      const auto guess = core::closest(engine, names);
      return core::invalid("service.unknown_engine",
                           "engine '" + engine + "' is not configured" +
                               (guess.empty() ? "" : " (did you mean '" + guess + "'?)") +
                               "; configured: " + core::join(names) +
                               ", or leave it out to let the platform choose",
                           "engine");
    }
    kinds.push_back(it->second.kind);
  } else {
    kinds = {core::EngineKind::sglang, core::EngineKind::vllm, core::EngineKind::vllm_cpu,
             core::EngineKind::llama_cpp};
  }
  std::optional<core::Error> first;
  for (auto kind : kinds) {
    if (kind == core::EngineKind::custom) return {};
    std::string v = version;
    if (v.empty() && !engine.empty()) v = cfg.engines.at(engine).version;
    auto spec = engine::resolve_engine(kind, v);
    if (!spec) {
      auto e = spec.error();
      e.field = "engine_version";
      if (!first) first = e;
      continue;
    }
    auto parsed = engine::parse_args(**spec, extra_args);
    if (parsed) return {};
    auto e = parsed.error();
    e.field = "extra_args";
    if (!first) first = e;
  }
  return *first;
}

/// Node ids for the names or ids in `list`. Errors: "node.not_found" (field nodes[i]),
/// "service.duplicate_node".
core::Result<std::vector<std::string>> resolve_nodes(store::Store& s,
                                                     const std::vector<std::string>& list) {
  std::vector<std::string> ids;
  for (std::size_t i = 0; i < list.size(); ++i) {
    auto n = api_detail::find_node(s, list[i], "nodes[" + std::to_string(i) + "]");
    if (!n) return n.error();
    if (std::find(ids.begin(), ids.end(), n->id) != ids.end()) {
      return core::invalid("service.duplicate_node", "node " + n->name + " is listed twice",
                           "nodes[" + std::to_string(i) + "]");
    }
    ids.push_back(n->id);
  }
  return ids;
}

/// The dry run at create: the request placed on the cluster as if it were empty and ready. A
/// request that cannot go anywhere even then is refused ("service.unplaceable", 409, with the
/// reasons per node); "not enough free memory right now" is not checked here (the instance waits,
/// pending, with its reasons). Nodes that never reported an inventory are left out; without any,
/// nothing is checked.
core::Result<void> dry_run(store::Store& s, const config::Config& cfg, const store::Service& svc) {
  auto req = placement_request(s, svc, cfg.engines);
  if (!req) {
    auto e = req.error();
    if (e.code == "service.model_unknown") {
      e.category = core::Errc::conflict;
      e.field = "model";
    }
    return e;
  }
  auto nodes =
      list_all<store::Node>([&](const store::PageRequest& p) { return s.nodes().list({}, p); });
  if (!nodes) return nodes.error();
  ReconcileInput in;
  for (const auto& n : *nodes) {
    if (n.status == store::NodeStatus::removed) continue;
    auto spec = api_detail::node_spec(n);
    if (!spec) continue;
    in.nodes.push_back({n, std::move(*spec)});
  }
  if (in.nodes.empty()) return {};
  for (const auto& id : req->nodes) {
    const bool known = std::any_of(in.nodes.begin(), in.nodes.end(),
                                   [&](const ObservedNode& o) { return o.node.id == id; });
    if (!known) return {};  // a listed node without an inventory yet: cannot judge
  }
  auto placed = scheduler::place(*req, scheduler::capacity_view(cluster_of(in)));
  if (!placed) return placed.error();
  if (placed->placement) return {};
  return core::Error{
      core::Errc::resource_exhausted, "service.unplaceable",
      "this deploy cannot run on " +
          std::string(req->nodes.empty() ? "any node" : "the chosen nodes") +
          " even with nothing else running: " +
          core::join(
              [&] {
                std::vector<std::string> v;
                for (const auto& r : placed->reasons) {
                  v.push_back(r.node.empty() ? r.message : "node " + r.node + ": " + r.message);
                }
                return v;
              }(),
              "; "),
      req->nodes.empty() ? "model" : "nodes"};
}

std::vector<std::string> string_list(const json::object& o, std::string_view key) {
  std::vector<std::string> out;
  const auto* v = o.if_contains(key);
  if (v == nullptr || v->is_null()) return out;
  const auto& arr = cj::as_array(*v, key);
  for (std::size_t i = 0; i < arr.size(); ++i) {
    if (!arr[i].is_string()) {
      throw core::ErrorException(
          core::invalid("api.bad_field",
                        std::string(key) + "[" + std::to_string(i) + "] must be a node name or id",
                        std::string(key) + "[" + std::to_string(i) + "]"));
    }
    out.emplace_back(arr[i].get_string());
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Services

struct CreateInput {
  std::string name, model, engine, engine_version, extra_args;
  std::vector<std::string> nodes;
  std::int64_t replicas = 1;
};

http::Awaitable<http::Response> create_service(ServiceRoutes& r, http::Request& req) {
  auto caller = co_await r.ctx.authenticate(req, Access::user);
  if (!caller) co_return error_response(caller.error());
  auto body = parse_body(req);
  if (!body) co_return error_response(body.error());
  auto input = cj::capture([&] {
    cj::reject_unknown(
        *body, {"name", "model", "engine", "engine_version", "extra_args", "nodes", "replicas"},
        "");
    CreateInput in;
    in.name = cj::get_string(*body, "name", "");
    in.model = cj::get_string(*body, "model", "");
    in.engine = cj::opt_string(*body, "engine", "").value_or("");
    if (in.engine == "auto") in.engine.clear();
    in.engine_version = cj::opt_string(*body, "engine_version", "").value_or("");
    in.extra_args = cj::opt_string(*body, "extra_args", "").value_or("");
    in.nodes = string_list(*body, "nodes");
    in.replicas = cj::opt_int(*body, "replicas", "").value_or(1);
    return in;
  });
  if (!input) co_return error_response(input.error());
  if (auto ok = check_name(input->name); !ok) co_return error_response(ok.error());
  if (auto ok = check_replicas(input->replicas); !ok) co_return error_response(ok.error());
  if (auto ok =
          check_engine(r.ctx.config(), input->engine, input->engine_version, input->extra_args);
      !ok) {
    co_return error_response(ok.error());
  }
  auto out = co_await r.ctx.blocking([&]() -> core::Result<json::object> {
    store::Store& s = r.ctx.store();
    auto model = find_model(s, input->model);
    if (!model) return model.error();
    if (model->status != store::ModelStatus::ready) {
      return core::Error{core::Errc::conflict, "service.model_not_ready",
                         "model " + model->name + " is " +
                             std::string(store::to_string(model->status)) +
                             "; deploy it once it is ready",
                         "model"};
    }
    auto nodes = resolve_nodes(s, input->nodes);
    if (!nodes) return nodes.error();
    auto all = list_all<store::Service>(
        [&](const store::PageRequest& p) { return s.services().list({}, p); });
    if (!all) return all.error();
    for (const auto& v : *all) {
      if (lower(v.name) == lower(input->name)) {
        return core::Error{core::Errc::conflict, "service.exists",
                           "A service called '" + v.name + "' already exists" +
                               (service_deleting(v) ? " (it is being deleted; try again when it "
                                                      "is gone)"
                                                    : "; choose another name or scale it"),
                           "name"};
      }
    }
    store::Service svc;
    svc.name = input->name;
    svc.model_id = model->id;
    svc.engine = input->engine;
    svc.engine_version = input->engine_version;
    svc.extra_args = input->extra_args;
    svc.placement = *nodes;
    svc.replicas = static_cast<int>(input->replicas);
    if (auto ok = dry_run(s, r.ctx.config(), svc); !ok) return ok.error();
    store::Service made;
    auto tx = s.transaction([&](store::Store& t) -> core::Result<void> {
      auto c = t.services().create(svc);
      if (!c) {
        if (c.error().code == "store.conflict") {
          return core::Error{core::Errc::conflict, "service.exists",
                             "A service called '" + svc.name + "' already exists", "name"};
        }
        return c.error();
      }
      made = *c;
      return ApiContext::audit_in(
          t, caller->actor(), "service.create", "service", made.id,
          {{"name", made.name}, {"model", model->name}, {"replicas", made.replicas}});
    });
    if (!tx) return tx.error();
    return service_json(s, made, node_names(s), r.ctx.instance_progress());
  });
  if (!out) co_return error_response(out.error());
  r.reconcile.trigger();
  co_return json_response(*out, 201);
}

http::Awaitable<http::Response> list_services(ServiceRoutes& r, http::Request& req) {
  auto caller = co_await r.ctx.authenticate(req, Access::user);
  if (!caller) co_return error_response(caller.error());
  auto page = page_request(req);
  if (!page) co_return error_response(page.error());
  auto out = co_await r.ctx.blocking([&]() -> core::Result<json::object> {
    store::Store& s = r.ctx.store();
    auto list = s.services().list({}, *page);
    if (!list) return list.error();
    const auto names = node_names(s);
    json::array items;
    for (const auto& v : list->items) {
      auto j = service_json(s, v, names, r.ctx.instance_progress());
      if (!j) return j.error();
      items.push_back(std::move(*j));
    }
    return json::object{{"items", std::move(items)}, {"next_cursor", list->next_cursor}};
  });
  if (!out) co_return error_response(out.error());
  co_return json_response(*out);
}

http::Awaitable<http::Response> get_service(ServiceRoutes& r, http::Request& req) {
  auto caller = co_await r.ctx.authenticate(req, Access::user);
  if (!caller) co_return error_response(caller.error());
  const std::string id(req.param("id"));
  auto out = co_await r.ctx.blocking([&]() -> core::Result<json::object> {
    store::Store& s = r.ctx.store();
    auto v = find_service(s, id);
    if (!v) return v.error();
    return service_json(s, *v, node_names(s), r.ctx.instance_progress());
  });
  if (!out) co_return error_response(out.error());
  co_return json_response(*out);
}

http::Awaitable<http::Response> update_service(ServiceRoutes& r, http::Request& req) {
  auto caller = co_await r.ctx.authenticate(req, Access::user);
  if (!caller) co_return error_response(caller.error());
  auto body = parse_body(req);
  if (!body) co_return error_response(body.error());
  struct Patch {
    std::optional<std::int64_t> replicas;
    std::optional<std::string> extra_args, engine_version;
    std::optional<std::vector<std::string>> nodes;
  };
  auto patch = cj::capture([&] {
    cj::reject_unknown(*body, {"replicas", "extra_args", "engine_version", "nodes"}, "");
    Patch p;
    p.replicas = cj::opt_int(*body, "replicas", "");
    p.extra_args = cj::opt_string(*body, "extra_args", "");
    p.engine_version = cj::opt_string(*body, "engine_version", "");
    if (body->contains("nodes")) p.nodes = string_list(*body, "nodes");
    return p;
  });
  if (!patch) co_return error_response(patch.error());
  if (patch->replicas) {
    if (auto ok = check_replicas(*patch->replicas); !ok) co_return error_response(ok.error());
  }
  const std::string id(req.param("id"));
  auto out = co_await r.ctx.blocking([&]() -> core::Result<json::object> {
    store::Store& s = r.ctx.store();
    store::Service updated;
    auto tx = s.transaction([&](store::Store& t) -> core::Result<void> {
      auto v = find_service(t, id);
      if (!v) return v.error();
      if (service_deleting(*v)) {
        return core::Error{core::Errc::conflict, "service.deleting",
                           "service " + v->name + " is being deleted", "id"};
      }
      json::object changes;
      if (patch->replicas) {
        changes["replicas"] = *patch->replicas;
        v->replicas = static_cast<int>(*patch->replicas);
      }
      if (patch->extra_args || patch->engine_version) {
        if (patch->extra_args) v->extra_args = *patch->extra_args;
        if (patch->engine_version) v->engine_version = *patch->engine_version;
        if (auto ok = check_engine(r.ctx.config(), v->engine, v->engine_version, v->extra_args);
            !ok) {
          return ok.error();
        }
        changes["extra_args"] = v->extra_args;
        changes["engine_version"] = v->engine_version;
      }
      if (patch->nodes) {
        auto ids = resolve_nodes(t, *patch->nodes);
        if (!ids) return ids.error();
        v->placement = *ids;
        changes["nodes"] = json::value_from(*patch->nodes);
      }
      auto up = t.services().update(*v);
      if (!up) return up.error();
      updated = *up;
      return ApiContext::audit_in(t, caller->actor(), "service.update", "service", v->id, changes);
    });
    if (!tx) return tx.error();
    return service_json(s, updated, node_names(s), r.ctx.instance_progress());
  });
  if (!out) co_return error_response(out.error());
  r.reconcile.trigger();
  co_return json_response(*out);
}

http::Awaitable<http::Response> delete_service(ServiceRoutes& r, http::Request& req) {
  auto caller = co_await r.ctx.authenticate(req, Access::user);
  if (!caller) co_return error_response(caller.error());
  const std::string id(req.param("id"));
  auto out = co_await r.ctx.blocking([&]() -> core::Result<json::object> {
    store::Store& s = r.ctx.store();
    store::Service marked;
    auto tx = s.transaction([&](store::Store& t) -> core::Result<void> {
      auto v = find_service(t, id);
      if (!v) return v.error();
      marked = *v;
      if (service_deleting(*v)) return {};
      v->spec_json = mark_deleting(v->spec_json);
      auto up = t.services().update(*v);
      if (!up) return up.error();
      marked = *up;
      return ApiContext::audit_in(t, caller->actor(), "service.delete", "service", v->id,
                                  {{"name", v->name}});
    });
    if (!tx) return tx.error();
    return service_json(s, marked, node_names(s), r.ctx.instance_progress());
  });
  if (!out) co_return error_response(out.error());
  r.reconcile.trigger();
  co_return json_response(*out, 202);
}

// ---------------------------------------------------------------------------------------------
// Instances

http::Awaitable<http::Response> list_instances(ServiceRoutes& r, http::Request& req) {
  auto caller = co_await r.ctx.authenticate(req, Access::user);
  if (!caller) co_return error_response(caller.error());
  auto page = page_request(req);
  if (!page) co_return error_response(page.error());
  const auto service = req.query_param("service");
  auto out = co_await r.ctx.blocking([&]() -> core::Result<json::object> {
    store::Store& s = r.ctx.store();
    store::InstanceFilter f;
    if (service && !service->empty()) {
      auto v = find_service(s, *service, "service");
      if (!v) return v.error();
      f.service_id = v->id;
    }
    auto list = s.instances().list(f, *page);
    if (!list) return list.error();
    const auto names = node_names(s);
    std::map<std::string, std::string> services;
    json::array items;
    for (const auto& i : list->items) {
      auto& name = services[i.service_id];
      if (name.empty()) {
        auto v = s.services().get(i.service_id);
        name = v ? v->name : i.service_id;
      }
      items.push_back(instance_json(s, i, name, names, r.ctx.instance_progress()));
    }
    return json::object{{"items", std::move(items)}, {"next_cursor", list->next_cursor}};
  });
  if (!out) co_return error_response(out.error());
  co_return json_response(*out);
}

http::Awaitable<http::Response> get_instance(ServiceRoutes& r, http::Request& req) {
  auto caller = co_await r.ctx.authenticate(req, Access::user);
  if (!caller) co_return error_response(caller.error());
  const std::string id(req.param("id"));
  auto out = co_await r.ctx.blocking([&]() -> core::Result<json::object> {
    store::Store& s = r.ctx.store();
    auto i = find_instance(s, id);
    if (!i) return i.error();
    auto v = s.services().get(i->service_id);
    return instance_json(s, *i, v ? v->name : i->service_id, node_names(s),
                         r.ctx.instance_progress());
  });
  if (!out) co_return error_response(out.error());
  co_return json_response(*out);
}

/// POST /services/{id}/instances {"nodes": [...]}: one more instance, on the chosen nodes (or
/// placed automatically without them). The service's replicas grow by one; the instance starts
/// pending with the nodes it must use, and the reconciler places it there.
http::Awaitable<http::Response> add_instance(ServiceRoutes& r, http::Request& req) {
  auto caller = co_await r.ctx.authenticate(req, Access::user);
  if (!caller) co_return error_response(caller.error());
  auto body = parse_body(req);
  if (!body) co_return error_response(body.error());
  auto nodes_in = cj::capture([&] {
    cj::reject_unknown(*body, {"nodes"}, "");
    return string_list(*body, "nodes");
  });
  if (!nodes_in) co_return error_response(nodes_in.error());
  const std::string id(req.param("id"));
  auto out = co_await r.ctx.blocking([&]() -> core::Result<json::object> {
    store::Store& s = r.ctx.store();
    auto svc = find_service(s, id);
    if (!svc) return svc.error();
    if (service_deleting(*svc)) {
      return core::Error{core::Errc::conflict, "service.deleting",
                         "service " + svc->name + " is being deleted", "id"};
    }
    if (svc->replicas >= kMaxReplicas) return check_replicas(svc->replicas + 1).error();
    auto nodes = resolve_nodes(s, *nodes_in);
    if (!nodes) return nodes.error();
    store::Service probe = *svc;
    if (!nodes->empty()) probe.placement = *nodes;
    if (auto ok = dry_run(s, r.ctx.config(), probe); !ok) return ok.error();
    store::Instance made;
    auto tx = s.transaction([&](store::Store& t) -> core::Result<void> {
      auto v = t.services().get(svc->id);
      if (!v) return v.error();
      v->replicas += 1;
      if (auto up = t.services().update(*v); !up) return up.error();
      store::Instance i;
      i.service_id = v->id;
      i.state = InstanceState::pending;
      i.node_ids = *nodes;  // a pending instance's node_ids are the nodes it must use
      i.state_reason = "waiting for the reconciler to place it";
      auto c = t.instances().create(i);
      if (!c) return c.error();
      made = *c;
      json::object detail{{"service", v->name}};
      detail["nodes"] = json::value_from(*nodes_in);
      return ApiContext::audit_in(t, caller->actor(), "instance.add", "instance", made.id, detail);
    });
    if (!tx) return tx.error();
    return instance_json(s, made, svc->name, node_names(s), r.ctx.instance_progress());
  });
  if (!out) co_return error_response(out.error());
  r.reconcile.trigger();
  co_return json_response(*out, 201);
}

/// DELETE /instances/{id}: the service keeps one instance fewer; this one drains (placed) or goes
/// at once (pending, failed, stopped).
http::Awaitable<http::Response> remove_instance(ServiceRoutes& r, http::Request& req) {
  auto caller = co_await r.ctx.authenticate(req, Access::user);
  if (!caller) co_return error_response(caller.error());
  const std::string id(req.param("id"));
  auto out = co_await r.ctx.blocking([&]() -> core::Result<std::optional<json::object>> {
    store::Store& s = r.ctx.store();
    std::optional<store::Instance> left;
    std::string service_name;
    std::vector<std::string> touched;
    auto tx = s.transaction([&](store::Store& t) -> core::Result<void> {
      auto i = find_instance(t, id);
      if (!i) return i.error();
      auto v = t.services().get(i->service_id);
      if (!v) return v.error();
      service_name = v->name;
      if (i->state == InstanceState::draining) {
        left = *i;
        return {};
      }
      if (!service_deleting(*v)) {
        v->replicas = std::max(0, v->replicas - 1);
        if (auto up = t.services().update(*v); !up) return up.error();
      }
      const bool placed =
          i->state == InstanceState::scheduled || i->state == InstanceState::preparing ||
          i->state == InstanceState::starting || i->state == InstanceState::running ||
          i->state == InstanceState::unhealthy;
      if (placed) {
        i->state = InstanceState::draining;
        i->state_reason = "removed by " + caller->actor();
        auto up = t.instances().update(*i);
        if (!up) return up.error();
        left = *up;
      } else {
        if (auto rm = t.instances().remove(i->id); !rm) return rm.error();
        touched = i->node_ids;
      }
      return ApiContext::audit_in(t, caller->actor(), "instance.remove", "instance", i->id,
                                  {{"service", v->name}, {"drain", placed}});
    });
    if (!tx) return tx.error();
    for (const auto& n : touched) r.assignments.notify(n);
    if (!left) return std::optional<json::object>{};
    return std::optional<json::object>{
        instance_json(s, *left, service_name, node_names(s), r.ctx.instance_progress())};
  });
  if (!out) co_return error_response(out.error());
  r.reconcile.trigger();
  if (!*out) co_return http::Response{204, {}, {}};
  co_return json_response(**out, 202);
}

/// POST /instances/{id}/check: GET <head node address>:<port><health path> with a short timeout.
http::Awaitable<http::Response> check_instance(ServiceRoutes& r, http::Request& req) {
  auto caller = co_await r.ctx.authenticate(req, Access::user);
  if (!caller) co_return error_response(caller.error());
  const std::string id(req.param("id"));
  auto out = co_await r.ctx.blocking([&]() -> core::Result<json::object> {
    store::Store& s = r.ctx.store();
    auto i = find_instance(s, id);
    if (!i) return i.error();
    auto unhealthy = [](std::string message) {
      return json::object{
          {"healthy", false}, {"status", 0}, {"latency_ms", 0}, {"message", std::move(message)}};
    };
    if (i->port <= 0 || i->node_ids.empty()) {
      return unhealthy("the instance is " + std::string(store::to_string(i->state)) +
                       (i->state_reason.empty() ? "" : " (" + i->state_reason + ")") +
                       " and has no engine port yet");
    }
    auto node = s.nodes().get(i->node_ids.front());
    if (!node) return unhealthy("its head node " + i->node_ids.front() + " is gone");
    if (node->address.empty()) return unhealthy("node " + node->name + " has no address");
    std::string path = "/health";
    if (auto a = parse_assignments(i->assignment_json)) {
      if (auto it = a->find(node->id); it != a->end() && !it->second.health_path.empty()) {
        path = it->second.health_path;
      }
    }
    const std::string url = "http://" + node->address + ":" + std::to_string(i->port) + path;
    http::Client client;
    const auto started = std::chrono::steady_clock::now();
    auto resp = client.get(url, kCheckTimeout);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - started)
                        .count();
    if (!resp) {
      return json::object{{"healthy", false},
                          {"status", 0},
                          {"latency_ms", ms},
                          {"message", "GET " + url + ": " + resp.error().message}};
    }
    const bool healthy = resp->status >= 200 && resp->status < 300;
    return json::object{{"healthy", healthy},
                        {"status", resp->status},
                        {"latency_ms", ms},
                        {"message", "GET " + url + " answered " + std::to_string(resp->status)}};
  });
  if (!out) co_return error_response(out.error());
  co_return json_response(*out);
}

}  // namespace

void register_service_routes(http::Server& server, ApiContext& ctx, AssignmentNotifier& assignments,
                             ReconcileTrigger& reconcile) {
  auto r = std::make_shared<ServiceRoutes>(ServiceRoutes{ctx, assignments, reconcile});
  auto route = [&server, r](std::string method, std::string pattern,
                            http::Awaitable<http::Response> (*fn)(ServiceRoutes&, http::Request&)) {
    server.route(std::move(method), std::move(pattern),
                 [r, fn](http::Request& req) { return fn(*r, req); });
  };
  route("POST", "/api/v1/services", create_service);
  route("GET", "/api/v1/services", list_services);
  route("GET", "/api/v1/services/{id}", get_service);
  route("PATCH", "/api/v1/services/{id}", update_service);
  route("DELETE", "/api/v1/services/{id}", delete_service);
  route("POST", "/api/v1/services/{id}/instances", add_instance);
  route("GET", "/api/v1/instances", list_instances);
  route("GET", "/api/v1/instances/{id}", get_instance);
  route("DELETE", "/api/v1/instances/{id}", remove_instance);
  route("POST", "/api/v1/instances/{id}/check", check_instance);
}

}  // namespace openstation::server
