// /api/v1/nodes*, /api/v1/join-tokens* and the agent protocol (/api/v1/agent/*). docs/api/nodes.md
// describes them for people, docs/agent.md the protocol, docs/openapi/nodes.json the schema.
// GCC 12 reports a false -Wmismatched-new-delete on Asio coroutine frames (awaitable_frame_base
// has its own operator new/delete); the frames are allocated and freed by the same pair.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include "core/json.hpp"
#include "core/strings.hpp"
#include "http/server.hpp"
#include "server/agent_link.hpp"
#include "server/api/detail/nodes.hpp"
#include "server/api/routes.hpp"
#include "server/auth/token.hpp"
#include "server/instance_reports.hpp"

#include <spdlog/spdlog.h>
#include <boost/json.hpp>

#include <algorithm>
#include <charconv>
#include <map>
#include <memory>
#include <mutex>
#include <set>

namespace openstation::server {
namespace {

namespace json = boost::json;
namespace cj = core::json;
using api_detail::find_node;
using api_detail::node_json;
using api_detail::node_of_token;

constexpr std::chrono::seconds kDefaultJoinTtl = std::chrono::hours(24);
constexpr std::chrono::seconds kMinJoinTtl{60};
constexpr std::chrono::seconds kMaxJoinTtl = std::chrono::hours(24 * 365);
constexpr std::chrono::seconds kMaxWatchWait{300};
constexpr int kConflictRetries = 5;

/// State shared by the handlers: the last report of every assignment (multi-node instances
/// combine the reports of several nodes' heartbeats).
struct NodeRoutes {
  ApiContext& ctx;
  AssignmentNotifier& assignments;
  ReconcileTrigger& reconcile;
  AgentLink& agents;

  std::mutex mutex;
  std::map<std::string, std::string> report_node;  // assignment id → node id that reported it
  RankReports reports;
};

/// Node names: 1–63 characters of letters, digits, '.', '_', '-', starting with a letter or digit
/// (they appear in paths, logs and engine flags).
core::Result<void> check_node_name(std::string_view name) {
  const bool ok =
      !name.empty() && name.size() <= 63 && std::isalnum(static_cast<unsigned char>(name[0])) &&
      std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
      });
  if (ok) return {};
  return core::invalid("node.bad_name",
                       "node name \"" + std::string(name) +
                           "\" is not valid: use 1 to 63 letters, digits, '.', '_' or '-', "
                           "starting with a letter or digit (agent --name)",
                       "name");
}

std::string bearer_of(const http::Request& req) {
  return std::string(auth::bearer_token(req.headers.get_or("Authorization", "")).value_or(""));
}

bool live(store::InstanceState s) {
  return s != store::InstanceState::stopped && s != store::InstanceState::failed;
}

// ---------------------------------------------------------------------------------------------
// Join tokens

json::object join_token_json(const store::JoinToken& t, core::Clock::TimePoint now) {
  return {{"id", t.id},
          {"created_at", format_time(t.created_at)},
          {"expires_at", format_time(t.expires_at)},
          {"used", t.used},
          {"expired", t.expires_at <= now}};
}

http::Awaitable<http::Response> create_join_token(NodeRoutes& r, http::Request& req) {
  auto caller = co_await r.ctx.authenticate(req, Access::admin);
  if (!caller) co_return error_response(caller.error());
  std::chrono::seconds ttl = kDefaultJoinTtl;
  if (!core::trim(req.body).empty()) {
    auto body = parse_body(req);
    if (!body) co_return error_response(body.error());
    auto parsed = cj::capture([&] {
      cj::reject_unknown(*body, {"ttl_seconds"}, "");
      return cj::opt_int(*body, "ttl_seconds", "");
    });
    if (!parsed) co_return error_response(parsed.error());
    if (*parsed) {
      if (**parsed < kMinJoinTtl.count() || **parsed > kMaxJoinTtl.count()) {
        co_return error_response(core::invalid("join_token.bad_ttl",
                                               "ttl_seconds must be between " +
                                                   std::to_string(kMinJoinTtl.count()) + " and " +
                                                   std::to_string(kMaxJoinTtl.count()) +
                                                   " (365 days), not " + std::to_string(**parsed),
                                               "ttl_seconds"));
      }
      ttl = std::chrono::seconds(**parsed);
    }
  }
  const std::string token = auth::generate_token(auth::TokenKind::join);
  auto created = co_await r.ctx.blocking([&]() -> core::Result<store::JoinToken> {
    store::JoinToken stored;
    auto tx_result = r.ctx.store().transaction([&](store::Store& tx) -> core::Result<void> {
      store::JoinToken t;
      t.token_hash = auth::hash_token(token);
      t.created_at = r.ctx.clock().now();
      t.expires_at = t.created_at + ttl;
      auto c = tx.join_tokens().create(t);
      if (!c) return c.error();
      stored = *c;
      return ApiContext::audit_in(tx, caller->actor(), "join_token.create", "join_token", c->id,
                                  {{"expires_at", format_time(c->expires_at)}});
    });
    if (!tx_result) return tx_result.error();
    return stored;
  });
  if (!created) co_return error_response(created.error());
  auto o = join_token_json(*created, r.ctx.clock().now());
  o["token"] = token;
  co_return json_response(o, 201);
}

http::Awaitable<http::Response> list_join_tokens(NodeRoutes& r, http::Request& req) {
  auto caller = co_await r.ctx.authenticate(req, Access::admin);
  if (!caller) co_return error_response(caller.error());
  auto page = page_request(req);
  if (!page) co_return error_response(page.error());
  auto list = co_await r.ctx.blocking([&] { return r.ctx.store().join_tokens().list({}, *page); });
  if (!list) co_return error_response(list.error());
  json::array items;
  const auto now = r.ctx.clock().now();
  for (const auto& t : list->items) items.push_back(join_token_json(t, now));
  co_return json_response(
      json::object{{"items", std::move(items)}, {"next_cursor", list->next_cursor}});
}

http::Awaitable<http::Response> delete_join_token(NodeRoutes& r, http::Request& req) {
  auto caller = co_await r.ctx.authenticate(req, Access::admin);
  if (!caller) co_return error_response(caller.error());
  const std::string id(req.param("id"));
  auto removed = co_await r.ctx.blocking([&]() -> core::Result<void> {
    return r.ctx.store().transaction([&](store::Store& tx) -> core::Result<void> {
      if (auto d = tx.join_tokens().remove(id); !d) {
        if (d.error().code == "store.not_found") {
          return core::not_found(
              "join_token.not_found",
              "There is no join token '" + id + "'; GET /api/v1/join-tokens lists them.", "id");
        }
        return d.error();
      }
      return ApiContext::audit_in(tx, caller->actor(), "join_token.delete", "join_token", id);
    });
  });
  if (!removed) co_return error_response(removed.error());
  co_return http::Response{204, {}, {}};
}

// ---------------------------------------------------------------------------------------------
// Nodes

/// The compact instance entries of a node's detail.
json::array node_instances_json(store::Store& s, const std::string& node_id) {
  json::array out;
  store::InstanceFilter f;
  f.node_id = node_id;
  auto insts = s.instances().list(f, store::PageRequest{0, {}});
  if (!insts) return out;
  std::map<std::string, std::string> service_names;
  for (const auto& i : insts->items) {
    auto& name = service_names[i.service_id];
    if (name.empty()) {
      auto svc = s.services().get(i.service_id);
      name = svc ? svc->name : i.service_id;
    }
    json::array nodes;
    for (const auto& n : i.node_ids) nodes.emplace_back(n);
    const auto rank = std::find(i.node_ids.begin(), i.node_ids.end(), node_id) - i.node_ids.begin();
    out.push_back(json::object{{"id", i.id},
                               {"service", name},
                               {"state", std::string(store::to_string(i.state))},
                               {"state_reason", i.state_reason},
                               {"nodes", std::move(nodes)},
                               {"rank", rank},
                               {"port", i.port},
                               {"pid", i.pid}});
  }
  return out;
}

http::Awaitable<http::Response> list_nodes(NodeRoutes& r, http::Request& req) {
  auto caller = co_await r.ctx.authenticate(req, Access::user);
  if (!caller) co_return error_response(caller.error());
  auto page = page_request(req);
  if (!page) co_return error_response(page.error());
  store::NodeFilter filter;
  if (auto st = req.query_param("status")) {
    store::NodeStatus s{};
    if (!store::from_string(*st, s)) {
      co_return error_response(core::invalid(
          "api.bad_query",
          "status must be one of ready, not_ready, draining, removed; not \"" + *st + "\"",
          "status"));
    }
    filter.status = s;
  }
  auto list = co_await r.ctx.blocking([&] { return r.ctx.store().nodes().list(filter, *page); });
  if (!list) co_return error_response(list.error());
  json::array items;
  for (const auto& n : list->items) items.push_back(node_json(n));
  co_return json_response(
      json::object{{"items", std::move(items)}, {"next_cursor", list->next_cursor}});
}

http::Awaitable<http::Response> get_node(NodeRoutes& r, http::Request& req) {
  auto caller = co_await r.ctx.authenticate(req, Access::user);
  if (!caller) co_return error_response(caller.error());
  const std::string id(req.param("id"));
  auto out = co_await r.ctx.blocking([&]() -> core::Result<json::object> {
    auto node = find_node(r.ctx.store(), id);
    if (!node) return node.error();
    auto o = node_json(*node);
    auto inv = api_detail::node_inventory(*node);
    o["inventory"] = inv ? *inv : json::value(nullptr);
    o["instances"] = node_instances_json(r.ctx.store(), node->id);
    return o;
  });
  if (!out) co_return error_response(out.error());
  co_return json_response(*out);
}

http::Awaitable<http::Response> delete_node(NodeRoutes& r, http::Request& req) {
  auto caller = co_await r.ctx.authenticate(req, Access::admin);
  if (!caller) co_return error_response(caller.error());
  const std::string id(req.param("id"));
  auto out = co_await r.ctx.blocking([&]() -> core::Result<store::Node> {
    store::Node result;
    auto tx_result = r.ctx.store().transaction([&](store::Store& tx) -> core::Result<void> {
      auto node = find_node(tx, id);
      if (!node) return node.error();
      if (node->status != store::NodeStatus::draining) {
        node->status = store::NodeStatus::draining;
        node->status_reason = "removal requested by " + caller->actor() +
                              "; its instances are being moved to other nodes";
        auto u = tx.nodes().update(*node);
        if (!u) return u.error();
        *node = *u;
        if (auto a = ApiContext::audit_in(tx, caller->actor(), "node.delete", "node", node->id,
                                          {{"name", node->name}});
            !a) {
          return a;
        }
      }
      result = *node;
      return {};
    });
    if (!tx_result) return tx_result.error();
    return result;
  });
  if (!out) co_return error_response(out.error());
  r.assignments.notify(out->id);
  r.reconcile.trigger();
  co_return json_response(node_json(*out), 202);
}

// ---------------------------------------------------------------------------------------------
// The agent protocol

http::Awaitable<http::Response> agent_register(NodeRoutes& r, http::Request& req) {
  auto parsed = agent::parse_register_request(req.body);
  if (!parsed) co_return error_response(parsed.error());
  if (auto ok = check_node_name(parsed->name); !ok) co_return error_response(ok.error());
  if (parsed->join_token.empty()) {
    co_return error_response(core::invalid(
        "node.join_token_required",
        "join_token is required: create one with POST /api/v1/join-tokens", "join_token"));
  }
  auto req_data = *parsed;
  if (req_data.address.empty()) req_data.address = req.remote_address;
  if (req_data.api_port == 0) req_data.api_port = kDefaultAgentPort;
  if (!req_data.inventory_json.empty()) {
    // Normalised (and checked) once here: the planner reads it back later.
    auto inv = cj::capture([&] { return cj::parse(req_data.inventory_json, "inventory"); });
    if (!inv || !inv->is_object()) {
      co_return error_response(
          core::invalid("node.bad_inventory",
                        "inventory must be a JSON object (agent inventory --json)", "inventory"));
    }
  }
  const std::string node_token = auth::generate_token(auth::TokenKind::node);

  auto identity = co_await r.ctx.blocking([&]() -> core::Result<agent::NodeIdentity> {
    const auto now = r.ctx.clock().now();
    agent::NodeIdentity id;
    auto tx_result = r.ctx.store().transaction([&](store::Store& tx) -> core::Result<void> {
      auto jt = tx.join_tokens().get_by_name(auth::hash_token(req_data.join_token));
      if (!jt && jt.error().code != "store.not_found") return jt.error();
      if (!jt || jt->expires_at <= now) {
        return core::Error(
            core::Errc::unauthorized, "node.bad_join_token",
            std::string(jt ? "this join token expired at " + format_time(jt->expires_at)
                           : "this join token is not known to the server") +
                "; an admin creates a new one with POST /api/v1/join-tokens, "
                "then start the agent with --token <it>",
            "join_token");
      }
      store::Node node;
      auto existing = tx.nodes().get_by_name(req_data.name);
      if (existing) {
        const auto label = existing->labels.find(std::string(kJoinTokenLabel));
        if (label == existing->labels.end() || label->second != jt->id) {
          return core::Error(
              core::Errc::conflict, "node.name_taken",
              "a node named \"" + req_data.name + "\" is already registered (" + existing->id +
                  ", address " + existing->address +
                  "); start this agent with another --name, or remove that node first "
                  "(DELETE /api/v1/nodes/" +
                  req_data.name + ")",
              "name");
        }
        node = *existing;
      } else if (existing.error().code != "store.not_found") {
        return existing.error();
      }
      node.name = req_data.name;
      node.address = req_data.address;
      node.labels[std::string(kAgentPortLabel)] = std::to_string(req_data.api_port);
      node.labels[std::string(kJoinTokenLabel)] = jt->id;
      node.token_hash = auth::hash_token(node_token);
      if (!req_data.inventory_json.empty()) node.inventory_json = req_data.inventory_json;
      node.last_heartbeat_at = now;
      if (node.status != store::NodeStatus::draining) {
        node.status = store::NodeStatus::ready;
        node.status_reason.clear();
      }
      auto saved = existing ? tx.nodes().update(node) : tx.nodes().create(node);
      if (!saved) return saved.error();
      if (!jt->used) {
        jt->used = true;
        if (auto u = tx.join_tokens().update(*jt); !u) return u.error();
      }
      id.node_id = saved->id;
      id.node_token = node_token;
      return ApiContext::audit_in(
          tx, "node:" + saved->name, existing ? "node.reregister" : "node.register", "node",
          saved->id, {{"name", saved->name}, {"address", saved->address}, {"join_token", jt->id}});
    });
    if (!tx_result) return tx_result.error();
    return id;
  });
  if (!identity) co_return error_response(identity.error());
  r.agents.remember(identity->node_id, identity->node_token);
  r.assignments.notify(identity->node_id);
  r.reconcile.trigger();  // a new node can take pending instances
  spdlog::info("node {} registered as {} from {}", req_data.name, identity->node_id,
               req.remote_address);
  co_return http::Response::json(200, agent::to_json(*identity));
}

/// Applies one heartbeat. Returns whether an instance's state changed. Blocking.
core::Result<bool> apply_heartbeat(NodeRoutes& r, const store::Node& authed,
                                   const agent::HeartbeatRequest& hb) {
  store::Store& s = r.ctx.store();
  const auto now = r.ctx.clock().now();
  bool was_not_ready = false;
  // The node: inventory, time, readiness.
  for (int attempt = 0;; ++attempt) {
    auto node = s.nodes().get(authed.id);
    if (!node) return node.error();
    was_not_ready = node->status == store::NodeStatus::not_ready;
    if (!hb.inventory_json.empty()) node->inventory_json = hb.inventory_json;
    node->last_heartbeat_at = now;
    if (node->status == store::NodeStatus::not_ready) {
      node->status = store::NodeStatus::ready;
      node->status_reason.clear();
    }
    auto u = s.nodes().update(*node);
    if (u) break;
    if (u.error().code != "store.conflict" || attempt >= kConflictRetries) return u.error();
  }
  if (was_not_ready) {
    (void)ApiContext::audit_in(s, "node:" + authed.name, "node.ready", "node", authed.id,
                               {{"name", authed.name}});
    spdlog::info("node {} is ready again", authed.name);
  }

  // Remember the reports; this node's reports replace its previous ones.
  std::set<std::string> touched;
  RankReports snapshot;
  {
    std::lock_guard lock(r.mutex);
    for (auto it = r.report_node.begin(); it != r.report_node.end();) {
      if (it->second == authed.id) {
        r.reports.erase(it->first);
        it = r.report_node.erase(it);
      } else {
        ++it;
      }
    }
    for (const auto& rep : hb.instances) {
      r.report_node[rep.id] = authed.id;
      r.reports[rep.id] = RankReport{authed.name, rep};
      touched.insert(instance_of_assignment(rep.id));
      const bool pulling = rep.state == "preparing" && rep.bytes_total > 0;
      r.ctx.instance_progress().report(instance_of_assignment(rep.id), rep.id,
                                       pulling ? rep.bytes_done : 0, pulling ? rep.bytes_total : 0);
    }
    snapshot = r.reports;
  }

  bool changed = false;
  for (const auto& inst_id : touched) {
    for (int attempt = 0;; ++attempt) {
      auto inst = s.instances().get(inst_id);
      if (!inst) {
        if (inst.error().code == "store.not_found") {
          spdlog::debug("heartbeat of node {}: no instance {} (ignored)", authed.name, inst_id);
          break;
        }
        return inst.error();
      }
      auto assignments = parse_assignments(inst->assignment_json);
      if (!assignments) return assignments.error();
      const auto mine = assignments->find(authed.id);
      if (mine == assignments->end() || !snapshot.contains(mine->second.id)) {
        spdlog::debug("heartbeat of node {}: instance {} is not assigned to it (ignored)",
                      authed.name, inst_id);
        break;
      }
      auto next = observe_instance(*inst, *assignments, snapshot);
      if (!next) break;
      auto u = s.instances().update(*next);
      if (u) {
        changed = true;
        break;
      }
      if (u.error().code != "store.conflict" || attempt >= kConflictRetries) return u.error();
    }
  }
  return changed || was_not_ready;
}

http::Awaitable<http::Response> agent_heartbeat(NodeRoutes& r, http::Request& req) {
  auto node = co_await r.ctx.blocking([&] { return node_of_token(r.ctx.store(), req); });
  if (!node) co_return error_response(node.error());
  auto hb = agent::parse_heartbeat_request(req.body);
  if (!hb) co_return error_response(hb.error());
  if (hb->node_id != node->id) {
    co_return error_response(
        core::Error(core::Errc::unauthorized, "node.id_mismatch",
                    "this token belongs to node " + node->id + ", not " + hb->node_id, "node_id"));
  }
  r.agents.remember(node->id, bearer_of(req));
  auto changed = co_await r.ctx.blocking([&] { return apply_heartbeat(r, *node, *hb); });
  if (!changed) co_return error_response(changed.error());
  if (*changed) r.reconcile.trigger();
  co_return http::Response::json(
      200, agent::to_json(agent::HeartbeatResponse{true, format_time(r.ctx.clock().now())}));
}

core::Result<std::uint64_t> query_uint(const http::Request& req, std::string_view name) {
  const auto v = req.query_param(name);
  if (!v || v->empty()) return 0;
  std::uint64_t n = 0;
  const auto* end = v->data() + v->size();
  const auto [p, ec] = std::from_chars(v->data(), end, n);
  if (ec != std::errc() || p != end) {
    return core::invalid("api.bad_query",
                         std::string(name) + " must be a whole number, not \"" + *v + "\"",
                         std::string(name));
  }
  return n;
}

/// The node's desired set: every assignment for it in the instances that are not stopped/failed.
core::Result<std::vector<agent::Assignment>> desired_set(store::Store& s,
                                                         const std::string& node_id) {
  store::InstanceFilter f;
  f.node_id = node_id;
  auto insts = s.instances().list(f, store::PageRequest{0, {}});
  if (!insts) return insts.error();
  std::vector<agent::Assignment> out;
  for (const auto& i : insts->items) {
    if (!live(i.state)) continue;
    auto a = parse_assignments(i.assignment_json);
    if (!a) {
      spdlog::error("instance {}: {}", i.id, a.error().message);
      continue;
    }
    if (const auto it = a->find(node_id); it != a->end()) out.push_back(it->second);
  }
  std::sort(out.begin(), out.end(),
            [](const agent::Assignment& x, const agent::Assignment& y) { return x.id < y.id; });
  return out;
}

http::Awaitable<http::Response> agent_assignments(NodeRoutes& r, http::Request& req) {
  auto node = co_await r.ctx.blocking([&] { return node_of_token(r.ctx.store(), req); });
  if (!node) co_return error_response(node.error());
  const auto node_id = req.query_param("node_id").value_or("");
  if (!node_id.empty() && node_id != node->id) {
    co_return error_response(
        core::Error(core::Errc::unauthorized, "node.id_mismatch",
                    "this token belongs to node " + node->id + ", not " + node_id, "node_id"));
  }
  auto known = query_uint(req, "generation");
  if (!known) co_return error_response(known.error());
  auto wait = query_uint(req, "wait");
  if (!wait) co_return error_response(wait.error());
  r.agents.remember(node->id, bearer_of(req));
  const auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::seconds(std::min<std::uint64_t>(*wait, kMaxWatchWait.count())));
  const auto generation = co_await r.assignments.wait_change(node->id, *known, timeout);
  auto set = co_await r.ctx.blocking([&] { return desired_set(r.ctx.store(), node->id); });
  if (!set) co_return error_response(set.error());
  co_return http::Response::json(200, agent::to_json(agent::AssignmentSet{generation, *set}));
}

}  // namespace

void register_node_routes(http::Server& server, ApiContext& ctx, AssignmentNotifier& assignments,
                          ReconcileTrigger& reconcile, AgentLink& agents) {
  auto r = std::make_shared<NodeRoutes>(ctx, assignments, reconcile, agents);
  auto route = [&server, r](std::string method, std::string pattern,
                            http::Awaitable<http::Response> (*fn)(NodeRoutes&, http::Request&)) {
    server.route(std::move(method), std::move(pattern),
                 [r, fn](http::Request& req) { return fn(*r, req); });
  };
  route("GET", "/api/v1/nodes", list_nodes);
  route("GET", "/api/v1/nodes/{id}", get_node);
  route("DELETE", "/api/v1/nodes/{id}", delete_node);
  route("POST", "/api/v1/join-tokens", create_join_token);
  route("GET", "/api/v1/join-tokens", list_join_tokens);
  route("DELETE", "/api/v1/join-tokens/{id}", delete_join_token);
  route("POST", std::string(agent::kRegisterPath), agent_register);
  route("POST", std::string(agent::kHeartbeatPath), agent_heartbeat);
  route("GET", std::string(agent::kAssignmentsPath), agent_assignments);
}

}  // namespace openstation::server
