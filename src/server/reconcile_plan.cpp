#include "server/reconcile_plan.hpp"

#include "core/strings.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <tuple>

namespace openstation::server {
namespace {

using store::InstanceState;
using Clock = core::Clock;

std::string seconds_text(Clock::Duration d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::seconds>(d).count()) + " s";
}

/// Placed states: an agent runs (or is about to run) the instance.
bool placed_state(InstanceState s) {
  return s == InstanceState::scheduled || s == InstanceState::preparing ||
         s == InstanceState::starting || s == InstanceState::running ||
         s == InstanceState::unhealthy;
}

/// The instance holds GPU memory right now (a process exists).
bool holds_memory(InstanceState s) {
  return s == InstanceState::starting || s == InstanceState::running ||
         s == InstanceState::unhealthy || s == InstanceState::draining;
}

core::EngineKind kind_of(const ReconcileInput& in, const std::string& engine) {
  if (auto it = in.engine_kinds.find(engine); it != in.engine_kinds.end()) return it->second;
  auto k = core::parse_engine_kind(engine);
  return k ? *k : core::EngineKind::custom;
}

std::vector<std::string> split_ints(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string part;
  while (std::getline(ss, part, ',')) {
    if (!part.empty()) out.push_back(part);
  }
  return out;
}

Clock::Duration backoff(const ReconcileTimings& t, int restarts) {
  const int exp = std::clamp(restarts, 0, 16);
  const auto d = t.retry_base * (1LL << exp);
  return std::min<Clock::Duration>(d, t.retry_max);
}

/// Scale-down order: the cheapest to lose first (pending, failed, unhealthy, then the rest),
/// newest first within each.
int loss_rank(InstanceState s) {
  switch (s) {
    case InstanceState::pending: return 0;
    case InstanceState::failed: return 1;
    case InstanceState::unhealthy: return 2;
    case InstanceState::scheduled:
    case InstanceState::preparing:
    case InstanceState::starting: return 3;
    default: return 4;
  }
}

/// Reserves a new placement in the cluster so the next placement of this round sees it.
void reserve(std::vector<scheduler::ClusterNode>& cluster, const scheduler::Placement& p,
             const std::string& who) {
  for (std::size_t i = 0; i < p.plan.nodes.size() && i < p.node_ids.size(); ++i) {
    for (auto& n : cluster) {
      if (n.id != p.node_ids[i]) continue;
      if (p.plan.nodes[i].gpus.empty()) {
        n.reserved[-1].push_back({who, 1.0, false});
      }
      for (int g : p.plan.nodes[i].gpus) n.reserved[g].push_back({who, p.gpu_fraction, false});
    }
  }
}

struct Placer {
  const ReconcileInput& in;
  std::vector<scheduler::ClusterNode> cluster;
  int counter = 0;

  /// A placement, or the reasons as state_reason text.
  std::optional<scheduler::Placement> place(const DesiredService& d, std::string& reason) {
    if (!d.request) {
      reason = d.unresolved;
      return std::nullopt;
    }
    auto r = scheduler::place(*d.request, cluster);
    if (!r) {
      reason = r.error().message;
      return std::nullopt;
    }
    if (!r->placement) {
      reason = scheduler::format_reasons(r->reasons);
      return std::nullopt;
    }
    reserve(cluster, *r->placement, "new-" + std::to_string(++counter));
    return std::move(r->placement);
  }
};

}  // namespace

std::string_view to_string(ActionKind k) noexcept {
  switch (k) {
    case ActionKind::create: return "create";
    case ActionKind::place: return "place";
    case ActionKind::keep_pending: return "keep_pending";
    case ActionKind::mark_unhealthy: return "mark_unhealthy";
    case ActionKind::replace: return "replace";
    case ActionKind::drain: return "drain";
    case ActionKind::remove: return "remove";
    case ActionKind::delete_service: return "delete_service";
  }
  return "?";
}

std::string condition_of(const store::Instance& instance, const std::set<std::string>& not_ready) {
  // Placed states are one condition (the reconciler's own unhealthy mark must not restart the
  // node's grace); a drain's deadline does not restart when a node goes away.
  if (instance.state == InstanceState::draining) return "draining";
  std::string c = placed_state(instance.state) ? std::string("placed")
                                               : std::string(store::to_string(instance.state));
  for (const auto& n : instance.node_ids) {
    if (not_ready.contains(n)) c += "|" + n;
  }
  return c;
}

bool node_ready(const store::Node& node, Clock::TimePoint now, std::chrono::milliseconds timeout,
                std::string* why) {
  auto say = [&](std::string s) {
    if (why) *why = std::move(s);
    return false;
  };
  if (node.status == store::NodeStatus::draining) return say("draining: being removed");
  if (node.status == store::NodeStatus::removed) return say("removed");
  if (!node.last_heartbeat_at) {
    return say(node.status_reason.empty() ? "no heartbeat yet" : node.status_reason);
  }
  const auto silent = now - *node.last_heartbeat_at;
  if (silent > timeout) return say("no heartbeat for " + seconds_text(silent));
  if (node.status != store::NodeStatus::ready) {
    return say(node.status_reason.empty() ? std::string(store::to_string(node.status))
                                          : node.status_reason);
  }
  return true;
}

std::vector<scheduler::ClusterNode> cluster_of(const ReconcileInput& in) {
  std::vector<scheduler::ClusterNode> out;
  for (const auto& o : in.nodes) {
    scheduler::ClusterNode n;
    n.id = o.node.id;
    if (o.spec) {
      n.spec = *o.spec;
    } else {
      n.spec.name = o.node.name;
      n.spec.type = model::NodeType::gpu;
    }
    n.spec.name = o.node.name;
    if (!o.node.address.empty()) n.spec.address = o.node.address;
    std::string why;
    n.ready = node_ready(o.node, in.now, in.timings.node_timeout, &why);
    if (n.ready && !o.spec) {
      n.ready = false;
      why = "no inventory reported yet";
    }
    n.not_ready = why;
    out.push_back(std::move(n));
  }
  for (const auto& inst : in.instances) {
    if (inst.state == InstanceState::stopped || inst.state == InstanceState::failed ||
        inst.state == InstanceState::pending || inst.assignment_json.empty()) {
      continue;
    }
    auto parsed = parse_assignments(inst.assignment_json);
    if (!parsed) continue;
    for (const auto& [node_id, a] : *parsed) {
      auto it = std::find_if(out.begin(), out.end(),
                             [&](const scheduler::ClusterNode& n) { return n.id == node_id; });
      if (it == out.end()) continue;
      const auto kind = kind_of(in, a.engine);
      const bool active = holds_memory(inst.state);
      auto cvd = a.env.find("CUDA_VISIBLE_DEVICES");
      if (cvd == a.env.end() || cvd->second.empty()) {
        // No GPUs pinned: vLLM CPU (or a Ray worker of a CPU plan) takes the node.
        if (kind == core::EngineKind::vllm_cpu) {
          it->reserved[-1].push_back({inst.id, 1.0, active});
        }
      } else {
        const double share = scheduler::gpu_fraction_of(kind, a.argv);
        for (const auto& g : split_ints(cvd->second)) {
          try {
            it->reserved[std::stoi(g)].push_back({inst.id, share, active});
          } catch (const std::exception&) {
            // A value this binary did not write: ignore it rather than block placement.
          }
        }
      }
      if (inst.pid > 0 && !inst.node_ids.empty() && inst.node_ids.front() == node_id) {
        it->own_pids.insert(inst.pid);
      }
    }
  }
  return out;
}

std::vector<Action> plan_reconcile(const ReconcileInput& in) {
  std::vector<Action> actions;
  Placer placer{in, cluster_of(in)};

  std::map<std::string, bool> ready;
  std::map<std::string, std::string> why_not;
  std::map<std::string, std::string> names;
  for (const auto& n : placer.cluster) {
    ready[n.id] = n.ready;
    why_not[n.id] = n.not_ready;
    names[n.id] = n.spec.name;
  }
  auto since = [&](const store::Instance& i) {
    auto it = in.since.find(i.id);
    return it == in.since.end() ? in.now : it->second;
  };

  std::map<std::string, const DesiredService*> by_id;
  for (const auto& d : in.services) by_id[d.service.id] = &d;
  std::map<std::string, std::vector<const store::Instance*>> of_service;
  for (const auto& i : in.instances) {
    if (!by_id.contains(i.service_id)) {
      actions.push_back({ActionKind::remove, i.service_id, i.id, "its service is gone", {}});
      continue;
    }
    of_service[i.service_id].push_back(&i);
  }

  // Removals and drains first, then placements (placement sees the same cluster either way:
  // draining instances keep their GPUs until they are removed).
  std::vector<Action> later;
  for (const auto& d : in.services) {
    const auto& svc = d.service;
    auto& list = of_service[svc.id];
    std::sort(list.begin(), list.end(), [](const store::Instance* a, const store::Instance* b) {
      return std::tie(a->created_at, a->id) < std::tie(b->created_at, b->id);
    });
    std::vector<const store::Instance*> live;
    for (const auto* i : list) {
      if (i->state == InstanceState::draining) {
        const auto flight = in.in_flight.contains(i->id) ? in.in_flight.at(i->id) : 0;
        const auto waited = in.now - since(*i);
        if (flight == 0) {
          actions.push_back({ActionKind::remove, svc.id, i->id, "drained", {}});
        } else if (waited >= in.timings.drain_deadline) {
          actions.push_back({ActionKind::remove,
                             svc.id,
                             i->id,
                             "drain deadline (" + seconds_text(in.timings.drain_deadline) +
                                 ") passed with " + std::to_string(flight) + " requests in flight",
                             {}});
        }
        continue;
      }
      if (i->state == InstanceState::stopped) {
        actions.push_back({ActionKind::remove, svc.id, i->id, "stopped", {}});
        continue;
      }
      live.push_back(i);
    }

    if (d.deleting) {
      for (const auto* i : live) {
        if (placed_state(i->state)) {
          actions.push_back({ActionKind::drain, svc.id, i->id, "its service is being deleted", {}});
        } else {
          actions.push_back({ActionKind::remove, svc.id, i->id, "its service is deleted", {}});
        }
      }
      if (list.empty()) actions.push_back({ActionKind::delete_service, svc.id, {}, {}, {}});
      continue;
    }

    // Scale down: the extra ones go.
    const auto want = static_cast<std::size_t>(std::max(svc.replicas, 0));
    if (live.size() > want) {
      std::vector<const store::Instance*> order = live;
      std::stable_sort(order.begin(), order.end(),
                       [](const store::Instance* a, const store::Instance* b) {
                         const int ra = loss_rank(a->state), rb = loss_rank(b->state);
                         if (ra != rb) return ra < rb;
                         return std::tie(a->created_at, a->id) > std::tie(b->created_at, b->id);
                       });
      std::set<std::string> gone;
      for (std::size_t k = 0; k < live.size() - want; ++k) {
        const auto* i = order[k];
        gone.insert(i->id);
        if (placed_state(i->state)) {
          actions.push_back({ActionKind::drain,
                             svc.id,
                             i->id,
                             "scaled down to " + std::to_string(want) + " replicas",
                             {}});
        } else {
          actions.push_back({ActionKind::remove,
                             svc.id,
                             i->id,
                             "scaled down to " + std::to_string(want) + " replicas",
                             {}});
        }
      }
      std::erase_if(live, [&](const store::Instance* i) { return gone.contains(i->id); });
    }

    const bool automatic = svc.placement.empty();
    for (const auto* i : live) {
      if (i->state == InstanceState::pending) {
        std::string reason;
        // A pending instance's node_ids are the nodes it was added on (POST
        // /services/{id}/instances); they override the service's.
        DesiredService own;
        const DesiredService* use = &d;
        if (!i->node_ids.empty() && d.request) {
          own = d;
          own.request->nodes = i->node_ids;
          use = &own;
        }
        if (auto p = placer.place(*use, reason)) {
          later.push_back({ActionKind::place, svc.id, i->id, "placed", std::move(p)});
        } else if (reason != i->state_reason) {
          later.push_back({ActionKind::keep_pending, svc.id, i->id, reason, {}});
        }
        continue;
      }
      if (i->state == InstanceState::failed) {
        const auto wait = backoff(in.timings, i->restarts);
        if (in.now - since(*i) < wait) continue;
        std::string reason;
        auto p = placer.place(d, reason);
        later.push_back({ActionKind::replace, svc.id, i->id,
                         p ? "replaces " + i->id + " (failed: " + i->state_reason + ")" : reason,
                         std::move(p)});
        continue;
      }
      // Placed: are its nodes ready?
      std::vector<std::string> down;
      for (const auto& n : i->node_ids) {
        if (!ready.contains(n)) {
          down.push_back("node " + n + " is gone");
        } else if (!ready[n]) {
          down.push_back("node " + names[n] + " not ready (" + why_not[n] + ")");
        }
      }
      if (down.empty()) continue;
      const auto text = core::join(down, "; ");
      if (automatic && in.now - since(*i) >= in.timings.replace_grace) {
        std::string reason;
        auto p = placer.place(d, reason);
        later.push_back({ActionKind::replace, svc.id, i->id,
                         p ? "replaces " + i->id + " (" + text + ")" : reason, std::move(p)});
      } else if (i->state != InstanceState::unhealthy) {
        actions.push_back({ActionKind::mark_unhealthy, svc.id, i->id, text, {}});
      }
    }

    // Scale up.
    for (std::size_t k = live.size(); k < want; ++k) {
      std::string reason;
      auto p = placer.place(d, reason);
      later.push_back({ActionKind::create, svc.id, {}, p ? "placed" : reason, std::move(p)});
    }
  }
  actions.insert(actions.end(), std::make_move_iterator(later.begin()),
                 std::make_move_iterator(later.end()));
  return actions;
}

InstanceAssignments build_assignments(std::string_view instance_id, std::string_view service_name,
                                      const scheduler::Placement& placement,
                                      const AssignmentOptions& options) {
  InstanceAssignments out;
  const auto& plan = placement.plan;
  const std::size_t n = plan.nodes.size();
  for (std::size_t rank = 0; rank < n && rank < placement.node_ids.size(); ++rank) {
    const auto& np = plan.nodes[rank];
    agent::Assignment a;
    a.id = assignment_id(instance_id, rank, n);
    a.service = std::string(service_name);
    a.env = np.env;
    a.model_path = plan.model_path;
    a.model_id = options.model_id;
    a.model_sync = options.model_sync && !plan.model_path.empty();
    a.startup_timeout_s = options.startup_timeout_s;
    std::vector<std::string> argv = np.argv;
    const bool ray_worker = !argv.empty() && argv.front() == "ray";
    std::size_t prefix = 0;
    if (ray_worker) {
      a.engine = "ray";
      a.health_path.clear();
      prefix = 1;
    } else {
      a.engine = options.engine_name;
      a.health_path = options.health_path;
      if (plan.engine == core::EngineKind::sglang) {
        prefix = 3;  // python3 -m sglang.launch_server
      } else {
        prefix = 1;  // vllm
      }
    }
    prefix = std::min(prefix, argv.size());
    argv.erase(argv.begin(), argv.begin() + static_cast<std::ptrdiff_t>(prefix));
    if (!ray_worker) {
      if (auto it = np.ports.find("engine"); it != np.ports.end()) {
        const auto port = std::to_string(it->second);
        for (std::size_t k = 0; k + 1 < argv.size(); ++k) {
          if (argv[k] == "--port" && argv[k + 1] == port) argv[k + 1] = "{port}";
        }
        for (auto& t : argv) {
          if (t == "--port=" + port) t = "--port={port}";
        }
      }
    }
    a.argv = std::move(argv);
    out[placement.node_ids[rank]] = std::move(a);
  }
  return out;
}

}  // namespace openstation::server
