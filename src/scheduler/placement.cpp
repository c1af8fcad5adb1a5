#include "scheduler/placement.hpp"

#include "core/strings.hpp"
#include "scheduler/parallelism.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <tuple>

namespace openstation::scheduler {
namespace {

using core::EngineKind;

/// The CUDA context and allocator slack each extra engine needs outside its share
/// (docs/estimator.md: ≈ 0.5 GiB per process).
constexpr std::int64_t kContextMiB = 512;
/// Below this share a GPU is not offered for sharing (nothing useful fits).
constexpr double kMinShare = 0.05;

std::string gib_mib(std::int64_t mib) {
  return core::gib(static_cast<std::uint64_t>(std::max<std::int64_t>(mib, 0)) << 20);
}

/// One GPU as placement sees it.
struct GpuView {
  const model::GpuSpec* gpu = nullptr;
  std::int64_t external_mib = 0;  ///< held by processes outside the platform
  double reserved = 0;            ///< shares promised to the platform's instances
  bool exclusive_holder = false;  ///< some instance holds it whole
  std::vector<std::string> holders;

  std::int64_t reserved_mib() const {
    return static_cast<std::int64_t>(
        std::ceil(reserved * static_cast<double>(gpu->memory_total_mib)));
  }
  std::int64_t free_mib() const {
    return std::max<std::int64_t>(0, gpu->memory_total_mib - external_mib - reserved_mib());
  }
  bool healthy() const { return gpu->health == "ok"; }
  bool is_free() const { return holders.empty(); }
  /// Whether a vLLM instance may join the instances already on it.
  bool shareable() const { return !holders.empty() && !exclusive_holder && reserved < 1.0; }
};

std::vector<GpuView> gpu_views(const ClusterNode& node) {
  std::vector<GpuView> out;
  for (const auto& g : node.spec.gpus) {
    GpuView v;
    v.gpu = &g;
    double active_share = 0;
    if (auto it = node.reserved.find(g.index); it != node.reserved.end()) {
      for (const auto& r : it->second) {
        v.reserved += r.fraction;
        if (r.fraction >= 1.0) v.exclusive_holder = true;
        if (r.active) active_share += r.fraction;
        v.holders.push_back(r.instance_id);
      }
    }
    if (!g.processes.empty()) {
      for (const auto& p : g.processes) {
        if (!node.own_pids.contains(p.pid)) v.external_mib += p.used_memory_mib;
      }
    } else {
      // Without a process list, what the platform's running instances hold is their share.
      const auto own =
          static_cast<std::int64_t>(active_share * static_cast<double>(g.memory_total_mib));
      v.external_mib = std::max<std::int64_t>(0, g.memory_used_mib - own);
    }
    v.external_mib = std::min(v.external_mib, g.memory_total_mib);
    out.push_back(v);
  }
  return out;
}

/// The node with only `chosen` GPUs, each showing as used what is not ours to take.
model::NodeSpec spec_with(const ClusterNode& node, const std::vector<const GpuView*>& chosen) {
  model::NodeSpec s = node.spec;
  s.gpus.clear();
  for (const auto* v : chosen) {
    model::GpuSpec g = *v->gpu;
    g.memory_used_mib = std::min(g.memory_total_mib, v->external_mib + v->reserved_mib());
    s.gpus.push_back(std::move(g));
  }
  std::sort(s.gpus.begin(), s.gpus.end(),
            [](const auto& a, const auto& b) { return a.index < b.index; });
  return s;
}

/// What holds memory on a GPU besides free space, for messages: "pid 1234 (python3) 60.00 GiB,
/// instance inst_x".
std::string holders_text(const ClusterNode& node, const GpuView& v) {
  std::vector<std::string> parts;
  for (const auto& p : v.gpu->processes) {
    if (node.own_pids.contains(p.pid)) continue;
    parts.push_back("pid " + std::to_string(p.pid) + (p.name.empty() ? "" : " (" + p.name + ")") +
                    " holds " + gib_mib(p.used_memory_mib));
  }
  if (v.gpu->processes.empty() && v.external_mib >= 1024) {
    parts.push_back("other processes hold " + gib_mib(v.external_mib));
  }
  for (const auto& h : v.holders) parts.push_back("instance " + h);
  return core::join(parts);
}

std::uint64_t need_bytes(const model::Estimate& e) {
  std::uint64_t kv =
      e.kv_bytes_per_token * static_cast<std::uint64_t>(std::max<std::int64_t>(e.max_model_len, 0));
  return e.weights_bytes_per_gpu + e.activation_bytes_per_gpu + e.non_torch_bytes_per_gpu +
         e.cuda_graph_bytes_per_gpu + kv + (static_cast<std::uint64_t>(kContextMiB) << 20);
}

bool has_estimate_error(const Plan& p) {
  return std::any_of(p.errors.begin(), p.errors.end(),
                     [](const PlanIssue& i) { return core::starts_with(i.code, "estimate."); });
}

/// Why a plan on one node failed, in memory terms when memory was the problem.
std::string failure_text(const ClusterNode& node, const std::vector<GpuView>& views,
                         const Plan& p) {
  if (has_estimate_error(p) && p.estimate && !p.nodes.empty() && !p.nodes.front().gpus.empty()) {
    std::vector<std::string> parts;
    for (int idx : p.nodes.front().gpus) {
      for (const auto& v : views) {
        if (v.gpu->index != idx) continue;
        std::string s = "GPU " + std::to_string(idx) + " has " + gib_mib(v.free_mib()) + " free";
        const auto h = holders_text(node, v);
        if (!h.empty()) s += " (" + h + ")";
        parts.push_back(s);
      }
    }
    std::string msg = core::join(parts, "; ") + ", needs " + core::gib(need_bytes(*p.estimate));
    msg += p.nodes.front().gpus.size() > 1 ? " per GPU" : "";
    for (const auto& e : p.errors) {
      if (core::starts_with(e.code, "estimate.")) {
        msg += " (" + e.message + ")";
        break;
      }
    }
    return msg;
  }
  std::vector<std::string> msgs;
  for (const auto& e : p.errors) msgs.push_back(e.message);
  if (msgs.empty()) msgs.push_back("the plan does not work here");
  if (!p.nodes.empty()) {
    for (int idx : p.nodes.front().gpus) {
      for (const auto& v : views) {
        if (v.gpu->index == idx && !v.holders.empty()) {
          msgs.push_back("GPU " + std::to_string(idx) + " is shared with " + holders_text(node, v));
        }
      }
    }
  }
  return core::join(msgs, "; ");
}

/// "GPU 0 held by instance inst_x; GPU 1 used by pid 1234 (python3) ..." for GPUs left out.
std::string excluded_text(const ClusterNode& node, const std::vector<GpuView>& views,
                          bool sharing_allowed) {
  std::vector<std::string> parts;
  for (const auto& v : views) {
    if (!v.healthy()) continue;  // the plan names lost GPUs itself
    if (v.is_free()) continue;
    if (sharing_allowed && v.shareable()) continue;
    parts.push_back("GPU " + std::to_string(v.gpu->index) + " is taken (" + holders_text(node, v) +
                    ")");
  }
  return core::join(parts, "; ");
}

struct Candidate {
  Placement placement;
  std::size_t gpus = 0;
  double load = 0;
  std::size_t order = 0;
};

double node_load(const std::vector<GpuView>& views) {
  if (views.empty()) return 0;
  double sum = 0;
  for (const auto& v : views) {
    const double total = static_cast<double>(std::max<std::int64_t>(v.gpu->memory_total_mib, 1));
    sum += std::min(1.0, v.reserved + static_cast<double>(v.external_mib) / total);
  }
  return sum / static_cast<double>(views.size());
}

bool user_sets_utilization(const std::string& extra_args) {
  return extra_args.find("gpu-memory-utilization") != std::string::npos ||
         extra_args.find("gpu_memory_utilization") != std::string::npos;
}

std::string with_utilization(const std::string& extra_args, double u) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", u);
  std::string s = extra_args;
  if (!s.empty()) s += ' ';
  return s + "--gpu-memory-utilization " + buf;
}

PlanRequest plan_request(const PlacementRequest& req, std::vector<model::NodeSpec> nodes,
                         std::optional<EngineKind> kind, std::string extra_args) {
  PlanRequest p;
  p.model = req.model;
  p.model_path = req.model_path;
  p.nodes = std::move(nodes);
  p.engine = kind;
  p.engine_version = req.engine_version;
  p.extra_args = std::move(extra_args);
  p.served_name = req.served_name;
  p.ports = req.ports;
  p.env = req.env;
  return p;
}

Placement make_placement(Plan plan, const std::vector<const ClusterNode*>& nodes, bool shared) {
  Placement pl;
  for (const auto& np : plan.nodes) {
    for (const auto* n : nodes) {
      if (n->spec.name == np.name) pl.node_ids.push_back(n->id);
    }
  }
  pl.gpu_fraction =
      plan.nodes.empty() ? 1.0 : gpu_fraction_of(plan.engine, plan.nodes.front().argv);
  if (plan.engine == EngineKind::vllm_cpu) pl.gpu_fraction = 1.0;
  pl.shared = shared;
  pl.plan = std::move(plan);
  return pl;
}

/// Tries one node alone. Returns the best candidate on it, or sets `reason`.
core::Result<std::optional<Candidate>> try_node(const PlacementRequest& req,
                                                const ClusterNode& node, std::string& reason) {
  if (!node.ready) {
    reason = "not ready" + (node.not_ready.empty() ? std::string() : " (" + node.not_ready + ")");
    return std::optional<Candidate>{};
  }
  const auto views = gpu_views(node);
  std::optional<EngineKind> kind = req.engine;
  if (!kind) {
    EngineKind chosen{};
    if (auto issue = choose_engine(req.model, {node.spec}, chosen)) {
      reason = issue->message;
      return std::optional<Candidate>{};
    }
    kind = chosen;
  }

  const bool cpu = node.spec.type == model::NodeType::cpu || *kind == EngineKind::vllm_cpu;
  if (cpu) {
    if (auto it = node.reserved.find(-1); it != node.reserved.end() && !it->second.empty()) {
      reason = "runs instance " + it->second.front().instance_id +
               " already (vLLM CPU takes the node's memory for one engine)";
      return std::optional<Candidate>{};
    }
    auto plan = make_plan(plan_request(req, {node.spec}, kind, req.extra_args));
    if (!plan) return plan.error();
    if (!plan->ok) {
      reason = failure_text(node, views, *plan);
      return std::optional<Candidate>{};
    }
    Candidate c{make_placement(std::move(*plan), {&node}, false), 0, node_load(views), 0};
    return std::optional<Candidate>{std::move(c)};
  }

  std::vector<const GpuView*> free;
  std::vector<const GpuView*> any;  // free or shareable
  for (const auto& v : views) {
    if (!v.healthy()) continue;
    if (v.is_free()) free.push_back(&v);
    if (v.is_free() || v.shareable()) any.push_back(&v);
  }
  std::stable_sort(free.begin(), free.end(), [](const GpuView* a, const GpuView* b) {
    return a->external_mib < b->external_mib;
  });
  std::stable_sort(any.begin(), any.end(), [](const GpuView* a, const GpuView* b) {
    return a->free_mib() > b->free_mib();
  });

  std::optional<Plan> last_failed;
  for (std::size_t k = 1; k <= free.size(); ++k) {
    std::vector<const GpuView*> chosen(free.begin(), free.begin() + static_cast<std::ptrdiff_t>(k));
    auto plan = make_plan(plan_request(req, {spec_with(node, chosen)}, kind, req.extra_args));
    if (!plan) return plan.error();
    if (plan->ok) {
      Candidate c{make_placement(std::move(*plan), {&node}, false), k, node_load(views), 0};
      return std::optional<Candidate>{std::move(c)};
    }
    last_failed = std::move(*plan);
  }

  // Sharing: vLLM only (its utilization is a share of the GPU); the platform's choice becomes
  // vLLM when the GPUs are all taken.
  const bool can_share =
      req.engine ? *req.engine == EngineKind::vllm : req.model.format != model::WeightFormat::gguf;
  const bool any_shareable =
      std::any_of(any.begin(), any.end(), [](const GpuView* v) { return !v->is_free(); });
  std::optional<Plan> last_shared;
  if (can_share && any_shareable) {
    for (std::size_t k = 1; k <= any.size(); ++k) {
      std::vector<const GpuView*> chosen(any.begin(), any.begin() + static_cast<std::ptrdiff_t>(k));
      if (std::all_of(chosen.begin(), chosen.end(), [](const GpuView* v) { return v->is_free(); }))
        continue;
      double share = 1.0;
      for (const auto* v : chosen) {
        const double total = static_cast<double>(v->gpu->memory_total_mib);
        share = std::min(share, static_cast<double>(v->free_mib() - kContextMiB) / total);
      }
      share = std::floor(share * 100.0) / 100.0;
      if (share < kMinShare) continue;
      std::string args = req.extra_args;
      if (!user_sets_utilization(args)) args = with_utilization(args, std::min(share, 0.92));
      auto plan = make_plan(plan_request(req, {spec_with(node, chosen)}, EngineKind::vllm, args));
      if (!plan) return plan.error();
      if (plan->ok) {
        Candidate c{make_placement(std::move(*plan), {&node}, true), k, node_load(views), 0};
        return std::optional<Candidate>{std::move(c)};
      }
      last_shared = std::move(*plan);
    }
  }

  std::string text;
  if (last_failed) {
    text = failure_text(node, views, *last_failed);
  } else if (last_shared) {
    text = failure_text(node, views, *last_shared);
  } else {
    std::size_t healthy = 0;
    for (const auto& v : views) healthy += v.healthy() ? 1 : 0;
    text = healthy == 0 ? "no usable GPU" : "no free GPU";
    const auto taken = excluded_text(node, views, false);
    if (!taken.empty()) text += ": " + taken;
  }
  if (last_failed || last_shared) {
    const auto excluded = excluded_text(node, views, can_share);
    if (!excluded.empty()) text += "; " + excluded;
  }
  for (const auto& v : views) {
    if (!v.healthy())
      text += "; GPU " + std::to_string(v.gpu->index) + " reports health '" + v.gpu->health + "'";
  }
  reason = text;
  return std::optional<Candidate>{};
}

/// A plan across several nodes, each offering its free GPUs.
core::Result<std::optional<Plan>> try_nodes(const PlacementRequest& req,
                                            const std::vector<const ClusterNode*>& nodes,
                                            Plan* failed) {
  std::vector<model::NodeSpec> specs;
  for (const auto* n : nodes) {
    const auto views = gpu_views(*n);
    std::vector<const GpuView*> free;
    for (const auto& v : views) {
      if (v.is_free()) free.push_back(&v);
    }
    if (n->spec.type == model::NodeType::cpu) {
      specs.push_back(n->spec);
    } else {
      specs.push_back(spec_with(*n, free));
    }
  }
  // A GPU node whose GPUs are all taken has none to offer: the planner would refuse the node as
  // having no GPUs, which is exactly the reason to give.
  auto plan = make_plan(plan_request(req, specs, req.engine, req.extra_args));
  if (!plan) return plan.error();
  if (plan->ok) return std::optional<Plan>{std::move(*plan)};
  if (failed) *failed = std::move(*plan);
  return std::optional<Plan>{};
}

}  // namespace

double gpu_fraction_of(core::EngineKind kind, const std::vector<std::string>& argv) {
  if (kind != EngineKind::vllm) return 1.0;
  for (std::size_t i = 0; i < argv.size(); ++i) {
    std::string a = argv[i];
    std::replace(a.begin(), a.end(), '_', '-');
    std::string value;
    if (a == "--gpu-memory-utilization" && i + 1 < argv.size()) {
      value = argv[i + 1];
    } else if (core::starts_with(a, "--gpu-memory-utilization=")) {
      value = argv[i].substr(argv[i].find('=') + 1);
    } else {
      continue;
    }
    double v = 0;
    const auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
    if (ec == std::errc() && p == value.data() + value.size() && v > 0 && v <= 1.0) return v;
    return 1.0;
  }
  return 1.0;
}

std::vector<ClusterNode> capacity_view(std::vector<ClusterNode> cluster) {
  for (auto& n : cluster) {
    n.ready = true;
    n.not_ready.clear();
    n.reserved.clear();
    for (auto& g : n.spec.gpus) {
      g.memory_used_mib = 0;
      g.processes.clear();
    }
  }
  return cluster;
}

core::Result<PlacementResult> place(const PlacementRequest& req,
                                    const std::vector<ClusterNode>& cluster) {
  PlacementResult result;

  if (!req.nodes.empty()) {
    std::vector<const ClusterNode*> chosen;
    for (const auto& id : req.nodes) {
      auto it = std::find_if(cluster.begin(), cluster.end(),
                             [&](const ClusterNode& n) { return n.id == id; });
      if (it == cluster.end()) {
        return core::not_found("placement.unknown_node", "node " + id + " is not in the cluster",
                               "nodes");
      }
      chosen.push_back(&*it);
    }
    for (const auto* n : chosen) {
      if (!n->ready) {
        result.reasons.push_back(
            {n->spec.name,
             "not ready" + (n->not_ready.empty() ? std::string() : " (" + n->not_ready + ")")});
      }
    }
    if (!result.reasons.empty()) return result;
    if (chosen.size() == 1) {
      std::string reason;
      auto c = try_node(req, *chosen.front(), reason);
      if (!c) return c.error();
      if (*c) {
        result.placement = std::move((*c)->placement);
      } else {
        result.reasons.push_back({chosen.front()->spec.name, reason});
      }
      return result;
    }
    Plan failed;
    auto plan = try_nodes(req, chosen, &failed);
    if (!plan) return plan.error();
    if (*plan) {
      result.placement = make_placement(std::move(**plan), chosen, false);
      return result;
    }
    for (const auto& e : failed.errors) result.reasons.push_back({e.node, e.message});
    for (const auto* n : chosen) {
      const auto views = gpu_views(*n);
      const auto ex = excluded_text(*n, views, false);
      if (!ex.empty()) result.reasons.push_back({n->spec.name, ex});
    }
    return result;
  }

  if (cluster.empty()) {
    result.reasons.push_back(
        {"", "no nodes have joined the cluster (start an agent with a join token)"});
    return result;
  }

  std::vector<Candidate> candidates;
  std::vector<PendingReason> reasons;
  for (std::size_t i = 0; i < cluster.size(); ++i) {
    std::string reason;
    auto c = try_node(req, cluster[i], reason);
    if (!c) return c.error();
    if (*c) {
      (*c)->order = i;
      candidates.push_back(std::move(**c));
    } else {
      reasons.push_back({cluster[i].spec.name, reason});
    }
  }
  if (!candidates.empty()) {
    auto best = std::min_element(candidates.begin(), candidates.end(),
                                 [](const Candidate& a, const Candidate& b) {
                                   return std::tuple(a.gpus, a.placement.shared, a.load, a.order) <
                                          std::tuple(b.gpus, b.placement.shared, b.load, b.order);
                                 });
    result.placement = std::move(best->placement);
    return result;
  }

  // No single node holds it: several GPU nodes, those with the most free GPUs first.
  std::vector<std::pair<std::size_t, const ClusterNode*>> gpu_nodes;
  for (const auto& n : cluster) {
    if (!n.ready || n.spec.type != model::NodeType::gpu) continue;
    std::size_t free = 0;
    for (const auto& v : gpu_views(n)) free += v.healthy() && v.is_free() ? 1 : 0;
    if (free > 0) gpu_nodes.emplace_back(free, &n);
  }
  std::stable_sort(gpu_nodes.begin(), gpu_nodes.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  const bool engine_multi =
      !req.engine || *req.engine == EngineKind::vllm || *req.engine == EngineKind::sglang;
  Plan last;
  bool tried = false;
  for (std::size_t count = 2; engine_multi && count <= std::min<std::size_t>(gpu_nodes.size(), 8);
       ++count) {
    std::vector<const ClusterNode*> nodes;
    for (std::size_t i = 0; i < count; ++i) nodes.push_back(gpu_nodes[i].second);
    auto plan = try_nodes(req, nodes, &last);
    if (!plan) return plan.error();
    tried = true;
    if (*plan) {
      result.placement = make_placement(std::move(**plan), nodes, false);
      return result;
    }
  }
  result.reasons = std::move(reasons);
  if (tried) {
    std::vector<std::string> msgs;
    for (const auto& e : last.errors) msgs.push_back(e.message);
    if (!msgs.empty()) result.reasons.push_back({"", "across nodes: " + core::join(msgs, "; ")});
  }
  return result;
}

std::string format_reasons(const std::vector<PendingReason>& reasons) {
  std::string out;
  for (const auto& r : reasons) {
    if (!out.empty()) out += '\n';
    out += r.node.empty() ? r.message : "node " + r.node + ": " + r.message;
  }
  return out;
}

std::vector<PendingReason> parse_reasons(std::string_view text) {
  std::vector<PendingReason> out;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (line.empty()) continue;
    PendingReason r;
    if (line.starts_with("node ")) {
      const auto colon = line.find(": ");
      const auto name =
          colon == std::string_view::npos ? std::string_view{} : line.substr(5, colon - 5);
      if (!name.empty() && name.find(' ') == std::string_view::npos) {
        r.node = std::string(name);
        r.message = std::string(line.substr(colon + 2));
        out.push_back(std::move(r));
        continue;
      }
    }
    r.message = std::string(line);
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace openstation::scheduler
