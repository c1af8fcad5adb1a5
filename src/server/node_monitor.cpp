#include "server/node_monitor.hpp"

#include "server/agent_link.hpp"
#include "server/api/context.hpp"
#include "server/api/routes.hpp"
#include "server/assignments.hpp"

#include <spdlog/spdlog.h>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

namespace openstation::server {
namespace {

bool live(store::InstanceState s) {
  return s != store::InstanceState::stopped && s != store::InstanceState::failed;
}

/// States in which the agents drive the instance: these become unhealthy when a node is lost.
bool driven_by_agents(store::InstanceState s) {
  switch (s) {
    case store::InstanceState::scheduled:
    case store::InstanceState::preparing:
    case store::InstanceState::starting:
    case store::InstanceState::running: return true;
    default: return false;
  }
}

}  // namespace

std::string no_heartbeat_reason(const store::Node& node, core::Clock::TimePoint now) {
  if (!node.last_heartbeat_at) {
    return "no heartbeat since it registered at " + format_time(node.created_at);
  }
  const auto silent =
      std::chrono::duration_cast<std::chrono::seconds>(now - *node.last_heartbeat_at).count();
  return "no heartbeat for " + std::to_string(silent) + " s (last at " +
         format_time(*node.last_heartbeat_at) + ")";
}

std::vector<NodeAction> plan_node_sweep(const std::vector<store::Node>& nodes,
                                        const std::map<std::string, std::size_t>& live_instances,
                                        core::Clock::TimePoint now,
                                        std::chrono::milliseconds timeout) {
  std::vector<NodeAction> out;
  for (const auto& n : nodes) {
    if (n.status == store::NodeStatus::draining || n.status == store::NodeStatus::removed) {
      const auto it = live_instances.find(n.id);
      if (it == live_instances.end() || it->second == 0) {
        out.push_back({NodeAction::Kind::remove, n.id, {}});
      }
      continue;
    }
    if (n.status != store::NodeStatus::ready) continue;
    const auto last = n.last_heartbeat_at.value_or(n.created_at);
    if (now - last > timeout) {
      out.push_back({NodeAction::Kind::mark_not_ready, n.id, no_heartbeat_reason(n, now)});
    }
  }
  return out;
}

NodeMonitor::NodeMonitor(store::Store& store, const core::Clock& clock, ReconcileTrigger& reconcile,
                         AgentLink& agents, AssignmentNotifier& assignments, Options options)
    : store_(store),
      clock_(clock),
      reconcile_(reconcile),
      agents_(agents),
      assignments_(assignments),
      options_(options) {}

NodeMonitor::~NodeMonitor() {
  stop();
}

core::Result<NodeMonitor::Sweep> NodeMonitor::sweep() {
  auto nodes = store_.nodes().list({}, store::PageRequest{0, {}});
  if (!nodes) return nodes.error();
  std::map<std::string, std::size_t> live_count;
  for (const auto& n : nodes->items) {
    if (n.status != store::NodeStatus::draining && n.status != store::NodeStatus::removed) {
      continue;
    }
    store::InstanceFilter f;
    f.node_id = n.id;
    auto insts = store_.instances().list(f, store::PageRequest{0, {}});
    if (!insts) return insts.error();
    for (const auto& i : insts->items) {
      if (live(i.state)) ++live_count[n.id];
    }
  }
  Sweep out;
  const auto actions = plan_node_sweep(nodes->items, live_count, clock_.now(), options_.timeout);
  for (const auto& a : actions) {
    const auto it = std::find_if(nodes->items.begin(), nodes->items.end(),
                                 [&](const store::Node& n) { return n.id == a.node_id; });
    if (it == nodes->items.end()) continue;
    auto r =
        a.kind == NodeAction::Kind::remove ? remove(*it, out) : mark_not_ready(*it, a.reason, out);
    if (!r) return r.error();
  }
  if (!out.not_ready.empty() || !out.removed.empty()) reconcile_.trigger();
  return out;
}

core::Result<void> NodeMonitor::mark_not_ready(const store::Node& node, const std::string& reason,
                                               Sweep& out) {
  std::vector<std::string> marked;
  bool changed = false;
  auto r = store_.transaction([&](store::Store& tx) -> core::Result<void> {
    marked.clear();
    changed = false;
    auto current = tx.nodes().get(node.id);
    if (!current) return current.error();
    // A heartbeat may have arrived since the list was read.
    if (current->status != store::NodeStatus::ready ||
        current->last_heartbeat_at != node.last_heartbeat_at) {
      return {};
    }
    current->status = store::NodeStatus::not_ready;
    current->status_reason = reason;
    if (auto u = tx.nodes().update(*current); !u) return u.error();
    changed = true;
    store::InstanceFilter f;
    f.node_id = node.id;
    auto insts = tx.instances().list(f, store::PageRequest{0, {}});
    if (!insts) return insts.error();
    for (auto inst : insts->items) {
      if (!driven_by_agents(inst.state)) continue;
      inst.state = store::InstanceState::unhealthy;
      inst.state_reason = "node " + node.name + " is not ready: " + reason;
      if (auto u = tx.instances().update(inst); !u) return u.error();
      marked.push_back(inst.id);
    }
    return ApiContext::audit_in(tx, "system", "node.not_ready", "node", node.id,
                                {{"name", node.name}, {"reason", reason}});
  });
  if (!r) return r.error();
  if (!changed) return {};
  spdlog::warn("node {} is not ready: {}", node.name, reason);
  out.not_ready.push_back(node.id);
  out.instances_unhealthy.insert(out.instances_unhealthy.end(), marked.begin(), marked.end());
  return {};
}

core::Result<void> NodeMonitor::remove(const store::Node& node, Sweep& out) {
  auto r = store_.transaction([&](store::Store& tx) -> core::Result<void> {
    // Re-checked inside the transaction: an instance may have been placed here meanwhile.
    store::InstanceFilter f;
    f.node_id = node.id;
    auto insts = tx.instances().list(f, store::PageRequest{0, {}});
    if (!insts) return insts.error();
    for (const auto& i : insts->items) {
      if (live(i.state)) {
        return core::Error(core::Errc::conflict, "node.busy",
                           "node " + node.name + " still has instance " + i.id);
      }
    }
    if (auto d = tx.nodes().remove(node.id); !d) return d.error();
    return ApiContext::audit_in(tx, "system", "node.remove", "node", node.id,
                                {{"name", node.name}});
  });
  if (!r) {
    if (r.error().code == "node.busy") return {};  // an instance arrived meanwhile
    return r.error();
  }
  agents_.forget(node.id);
  assignments_.notify(node.id);
  spdlog::info("node {} ({}) removed: drained", node.name, node.id);
  out.removed.push_back(node.id);
  return {};
}

void NodeMonitor::start() {
  sweeper_.start("node-sweep", options_.interval, [this] {
    if (auto r = sweep(); !r) spdlog::warn("node monitor: {}", r.error().message);
  });
}

void NodeMonitor::stop() {
  sweeper_.stop();
}

}  // namespace openstation::server
