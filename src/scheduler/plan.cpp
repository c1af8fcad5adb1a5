#include "scheduler/plan.hpp"

#include "core/strings.hpp"
#include "engine/args.hpp"
#include "engine/memory_settings.hpp"
#include "engine/spec.hpp"
#include "scheduler/compat.hpp"
#include "scheduler/parallelism.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <set>

namespace openstation::scheduler {
namespace {

using core::EngineKind;

std::string label(EngineKind k) {
  switch (k) {
    case EngineKind::vllm: return "vLLM";
    case EngineKind::vllm_cpu: return "vLLM CPU";
    case EngineKind::sglang: return "SGLang";
    case EngineKind::llama_cpp: return "llama.cpp";
    case EngineKind::custom: return "a custom engine";
  }
  return "the engine";
}

std::string address_of(const model::NodeSpec& n) {
  return n.address.empty() ? n.name : n.address;
}

std::string join_ints(const std::vector<int>& v, std::string_view sep = ", ") {
  std::vector<std::string> s;
  for (int i : v) s.push_back(std::to_string(i));
  return core::join(s, sep);
}

std::string frac(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

PlanIssue issue(std::string code, std::string message, std::string node = {},
                std::optional<int> gpu = std::nullopt) {
  return {std::move(code), std::move(message), std::move(node), gpu};
}

/// An integer flag's value (tensor/pipeline parallel sizes), already range-checked by the parser.
std::optional<int> int_arg(const engine::ParsedArgs& a, std::string_view name) {
  const auto* f = a.find(name);
  if (f == nullptr || f->values.empty()) return std::nullopt;
  int v = 0;
  const auto& s = f->values[0];
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

/// Lost and missing GPUs of a node, for messages: " (GPU 3 lost: health 'xid 79'; GPU 5 missing)".
std::string lost_text(const model::NodeSpec& n) {
  std::vector<std::string> parts;
  for (const auto& g : n.gpus) {
    if (g.health != "ok") {
      parts.push_back("GPU " + std::to_string(g.index) + " lost: health '" + g.health + "'");
    }
  }
  for (int i : missing_gpu_indexes(n)) {
    parts.push_back("GPU " + std::to_string(i) + " missing");
  }
  return parts.empty() ? std::string() : " (" + core::join(parts, "; ") + ")";
}

std::string gpu_inventory_text(const std::vector<model::NodeSpec>& nodes) {
  std::vector<std::string> parts;
  for (const auto& n : nodes) {
    parts.push_back(n.name + ": " + std::to_string(healthy_gpus(n).size()) + " usable of " +
                    std::to_string(n.gpus.size()) + lost_text(n));
  }
  return core::join(parts, ", ");
}

/// Whether `kind` can run on `nodes` at all; an error issue when it cannot.
std::optional<PlanIssue> check_engine(EngineKind kind, const model::ModelInfo& model,
                                      const std::vector<model::NodeSpec>& nodes) {
  if (model.format == model::WeightFormat::gguf &&
      (kind == EngineKind::vllm || kind == EngineKind::sglang || kind == EngineKind::vllm_cpu)) {
    return issue("plan.gguf_needs_llama_cpp",
                 "model " + model.id + " is a GGUF file; " + label(kind) +
                     " needs a HuggingFace safetensors directory: deploy it with llama.cpp "
                     "(--engine llama.cpp, or leave the engine to the platform), or deploy the "
                     "safetensors version of the model");
  }
  if (kind == EngineKind::llama_cpp) {
    if (model.format != model::WeightFormat::gguf) {
      return issue("plan.llama_cpp_needs_gguf",
                   "model " + model.id +
                       " is not a GGUF file; llama.cpp loads GGUF models only: deploy it with "
                       "vLLM or SGLang (leave the engine to the platform), or convert it to GGUF "
                       "with llama.cpp's convert_hf_to_gguf.py and import the .gguf file");
    }
    if (nodes.size() > 1) {
      return issue("plan.llama_cpp_multi_node",
                   "llama.cpp's server runs on one node; " + std::to_string(nodes.size()) +
                       " nodes were chosen: choose one node (CPU or GPU)");
    }
    return std::nullopt;
  }
  if (kind == EngineKind::custom) {
    return issue("plan.engine_unsupported",
                 "deployment plans support vllm, sglang, vllm-cpu and "
                 "llama.cpp; " +
                     label(kind) + " is not planned yet");
  }
  if (core::needs_gpu(kind)) {
    for (const auto& n : nodes) {
      if (n.type == model::NodeType::cpu) {
        return issue("plan.engine_needs_gpu",
                     label(kind) + " needs NVIDIA GPUs but node " + n.name +
                         " is a CPU node: use --engine vllm-cpu there (or leave --engine out)",
                     n.name);
      }
    }
  }
  if (kind == EngineKind::vllm_cpu && nodes.size() > 1) {
    return issue("plan.cpu_multi_node", "vLLM CPU runs on one node; " +
                                            std::to_string(nodes.size()) +
                                            " nodes were chosen: choose one node");
  }
  return std::nullopt;
}

/// How many GPUs each node runs, or an error.
struct Layout {
  int tp = 1;
  int pp = 1;
  std::vector<int> per_node;  ///< GPUs each node uses (same order as the request's nodes)
};

/// Whole pipeline stages per node: every node first gets one stage, then the remaining stages go
/// where there is room. Empty when a stage does not fit on one node.
std::vector<int> place_stages(const std::vector<int>& usable, int tp, int pp) {
  std::vector<int> stages(usable.size(), 0);
  int left = pp;
  for (int round = 0; left > 0; ++round) {
    bool placed = false;
    for (std::size_t i = 0; i < usable.size() && left > 0; ++i) {
      if ((stages[i] + 1) * tp <= usable[i]) {
        ++stages[i];
        --left;
        placed = true;
      }
    }
    if (!placed) return {};
  }
  for (auto& s : stages) s *= tp;
  return stages;
}

/// Ranks in order, filling each node before the next.
std::vector<int> fill_ranks(const std::vector<int>& usable, int world) {
  std::vector<int> out(usable.size(), 0);
  for (std::size_t i = 0; i < usable.size() && world > 0; ++i) {
    out[i] = std::min(usable[i], world);
    world -= out[i];
  }
  if (world > 0) return {};
  return out;
}

std::string tp_fix_message(const model::ModelArch& arch, int wanted, int chosen,
                           const std::string& what) {
  return tp_invalid_reason(arch, wanted) + " Tensor parallel size " + std::to_string(chosen) +
         " chosen instead of " + std::to_string(wanted) + " (" + what +
         "): the largest that divides the model's attention heads (" +
         std::to_string(arch.num_attention_heads) + ", KV heads " +
         std::to_string(arch.num_kv_heads > 0 ? arch.num_kv_heads : arch.num_attention_heads) +
         ") and fits the GPUs";
}

std::string tp_error_message(const model::ModelArch& arch, int tp, int max_gpus) {
  return tp_invalid_reason(arch, tp) + " Valid tensor parallel sizes up to " +
         std::to_string(max_gpus) + ": " + join_ints(valid_tps(arch, max_gpus));
}

/// Decides TP, PP and the GPUs per node for a GPU engine. Adds fixes/errors to the plan.
std::optional<Layout> gpu_layout(EngineKind kind, const model::ModelArch& arch,
                                 const std::vector<model::NodeSpec>& nodes,
                                 std::optional<int> user_tp, std::optional<int> user_pp,
                                 Plan& plan) {
  const int n = static_cast<int>(nodes.size());
  std::vector<int> usable;
  for (const auto& node : nodes) usable.push_back(static_cast<int>(healthy_gpus(node).size()));
  const int min_usable = *std::min_element(usable.begin(), usable.end());
  int total = 0;
  for (int u : usable) total += u;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    if (usable[i] == 0) {
      plan.errors.push_back(issue("plan.not_enough_gpus",
                                  "node " + nodes[i].name + " has no usable GPU" +
                                      lost_text(nodes[i]) + "; " + label(kind) + " needs GPUs",
                                  nodes[i].name));
    }
  }
  if (min_usable == 0) return std::nullopt;

  Layout l;
  const bool sglang_multi = kind == EngineKind::sglang && n > 1;
  if (sglang_multi) {
    // SGLang: one command per node; --tp-size is the total over the nodes (engines.md §3.2).
    l.pp = user_pp.value_or(1);
    if (user_tp) {
      l.tp = *user_tp;
      if (const auto why = tp_invalid_reason(arch, l.tp); !why.empty()) {
        plan.errors.push_back(
            issue("plan.tp_invalid", tp_error_message(arch, l.tp, min_usable * n)));
        return std::nullopt;
      }
      if ((l.tp * l.pp) % n != 0) {
        plan.errors.push_back(issue("plan.tp_not_divisible_by_nodes",
                                    "SGLang needs tp × pp (" + std::to_string(l.tp * l.pp) +
                                        ") divisible by the number of nodes (" + std::to_string(n) +
                                        "); it stops with \"tp_size must be divisible by number of "
                                        "nodes\": use --tp-size " +
                                        std::to_string(min_usable * n) + " (the GPUs of " +
                                        std::to_string(n) + " nodes)"));
        return std::nullopt;
      }
    } else {
      int k = min_usable;
      for (; k >= 1; --k) {
        if ((k * n) % l.pp == 0 && tp_valid_for_model(arch, k * n / l.pp)) break;
      }
      if (k < 1) {
        plan.errors.push_back(
            issue("plan.tp_invalid", "no tensor parallel size over " + std::to_string(n) +
                                         " nodes divides the model's attention heads (" +
                                         std::to_string(arch.num_attention_heads) +
                                         "): deploy on one node"));
        return std::nullopt;
      }
      l.tp = k * n / l.pp;
      const int wanted = min_usable * n / std::max(1, l.pp);
      if (k < min_usable) {
        plan.applied_fixes.push_back(
            {"plan.tp_adjusted",
             tp_fix_message(arch, wanted, l.tp,
                            "SGLang's total over " + std::to_string(n) + " nodes")});
      }
    }
    const int per = l.tp * l.pp / n;
    if (per > min_usable) {
      plan.errors.push_back(
          issue("plan.not_enough_gpus",
                "--tp-size " + std::to_string(l.tp) + " × --pp-size " + std::to_string(l.pp) +
                    " over " + std::to_string(n) + " nodes needs " + std::to_string(per) +
                    " GPUs on every node, but the nodes have " + gpu_inventory_text(nodes)));
      return std::nullopt;
    }
    l.per_node.assign(nodes.size(), per);
    return l;
  }

  // vLLM (one node or Ray), SGLang on one node.
  const bool defaults = !user_tp && !user_pp;
  if (n == 1) {
    l.pp = user_pp.value_or(1);
  } else if (user_pp) {
    l.pp = *user_pp;
  } else if (user_tp) {
    l.pp = std::max(1, std::min(n, total / std::max(1, *user_tp)));
  } else {
    l.pp = n;
  }
  if (user_tp) {
    l.tp = *user_tp;
    if (!tp_valid_for_model(arch, l.tp)) {
      plan.errors.push_back(
          issue("plan.tp_invalid", tp_error_message(arch, l.tp, std::max(total, l.tp))));
      return std::nullopt;
    }
  } else {
    const int wanted = n == 1 ? std::max(1, usable[0] / l.pp)
                              : (defaults ? min_usable : std::max(1, min_usable * n / l.pp));
    l.tp = largest_valid_tp(arch, wanted);
    if (l.tp != wanted) {
      plan.applied_fixes.push_back(
          {"plan.tp_adjusted", tp_fix_message(arch, wanted, l.tp,
                                              n == 1 ? "the GPUs of node " + nodes[0].name
                                                     : "the GPUs per node; the smallest node has " +
                                                           std::to_string(min_usable))});
    }
  }
  const int world = l.tp * l.pp;
  if (n == 1) {
    if (world > usable[0]) {
      plan.errors.push_back(issue(
          "plan.not_enough_gpus",
          "tensor parallel " + std::to_string(l.tp) + " × pipeline " + "parallel " +
              std::to_string(l.pp) + " needs " + std::to_string(world) + " GPUs but node " +
              nodes[0].name + " has " + std::to_string(usable[0]) + " usable" + lost_text(nodes[0]),
          nodes[0].name));
      return std::nullopt;
    }
    l.per_node = {world};
    return l;
  }
  l.per_node = place_stages(usable, l.tp, l.pp);
  if (l.per_node.empty()) l.per_node = fill_ranks(usable, world);
  if (l.per_node.empty()) {
    plan.errors.push_back(issue("plan.not_enough_gpus",
                                "tensor parallel " + std::to_string(l.tp) + " × pipeline " +
                                    "parallel " + std::to_string(l.pp) + " needs " +
                                    std::to_string(world) + " GPUs but the chosen nodes have " +
                                    std::to_string(total) +
                                    " usable: " + gpu_inventory_text(nodes) +
                                    ". Ray would wait for them forever (\"no resource "
                                    "demands\" / placement group pending, FAQ §4.3)"));
    return std::nullopt;
  }
  return l;
}

/// Renders the planner's own flags (values checked by make_flag; `alias` is the spelling shown).
struct OwnFlags {
  const engine::EngineSpec* spec;
  engine::ParsedArgs args;
  std::optional<core::Error> error;

  void add(std::string_view name, std::string value, std::string_view shown = {}) {
    auto f = engine::make_flag(*spec, name, {std::move(value)});
    if (!f) {
      if (!error) error = f.error();
      return;
    }
    if (!shown.empty()) f->name = std::string(shown);
    args.flags.push_back(std::move(*f));
  }
};

}  // namespace

std::optional<PlanIssue> choose_engine(const model::ModelInfo& model,
                                       const std::vector<model::NodeSpec>& nodes,
                                       core::EngineKind& kind) {
  if (nodes.empty()) return issue("plan.no_nodes", "no nodes were chosen");
  std::size_t cpu = 0;
  for (const auto& n : nodes) cpu += n.type == model::NodeType::cpu ? 1 : 0;
  if (cpu > 0 && cpu < nodes.size()) {
    std::vector<std::string> c, g;
    for (const auto& n : nodes) (n.type == model::NodeType::cpu ? c : g).push_back(n.name);
    return issue("plan.mixed_node_types",
                 "CPU nodes (" + core::join(c) + ") and GPU nodes (" + core::join(g) +
                     ") cannot serve one instance together: choose only GPU nodes or one CPU "
                     "node");
  }
  if (model.format == model::WeightFormat::gguf) {
    kind = EngineKind::llama_cpp;
    return check_engine(kind, model, nodes);
  }
  if (cpu > 0) {
    kind = EngineKind::vllm_cpu;
    if (nodes.size() > 1) return check_engine(kind, model, nodes);
    return std::nullopt;
  }
  kind = nodes.size() == 1 ? EngineKind::sglang : EngineKind::vllm;
  return std::nullopt;
}

core::Result<Plan> make_plan(const PlanRequest& req) {
  if (req.nodes.empty()) {
    return core::invalid("plan.no_nodes", "no nodes were chosen: give at least one node", "nodes");
  }
  {
    std::set<std::string> names;
    for (const auto& n : req.nodes) {
      if (!names.insert(n.name).second) {
        return core::invalid("plan.duplicate_node", "node " + n.name + " is chosen twice", "nodes");
      }
    }
  }
  for (int p : {req.ports.engine, req.ports.ray, req.ports.dist_init}) {
    if (p < 1 || p > 65535) {
      return core::invalid("plan.bad_port", "port " + std::to_string(p) + " is outside 1-65535",
                           "ports");
    }
  }
  Plan plan;
  plan.model_path = !req.model_path.empty()   ? req.model_path
                    : !req.model.path.empty() ? req.model.path
                                              : req.model.id;
  plan.served_name = req.served_name.empty() ? req.model.id : req.served_name;
  if (plan.served_name.empty()) {
    return core::invalid("plan.bad_served_name", "the served model name is empty", "served_name");
  }

  // Engine choice.
  EngineKind kind = EngineKind::vllm;
  if (req.engine) {
    kind = *req.engine;
    std::size_t cpu = 0;
    for (const auto& n : req.nodes) cpu += n.type == model::NodeType::cpu ? 1 : 0;
    std::optional<PlanIssue> bad;
    if (cpu > 0 && cpu < req.nodes.size()) {
      EngineKind ignored = kind;
      bad = choose_engine(req.model, req.nodes, ignored);
    }
    if (!bad) bad = check_engine(kind, req.model, req.nodes);
    if (bad) {
      plan.engine = kind;
      plan.errors.push_back(*bad);
      return plan;
    }
  } else if (auto bad = choose_engine(req.model, req.nodes, kind)) {
    plan.engine = kind;
    plan.errors.push_back(*bad);
    return plan;
  }
  plan.engine = kind;
  if (kind == EngineKind::sglang && plan.served_name.find(':') != std::string::npos) {
    return core::invalid("plan.bad_served_name",
                         "SGLang's served model name must not contain ':' (reserved for "
                         "model:adapter): '" +
                             plan.served_name + "'",
                         "served_name");
  }

  auto spec_r = engine::resolve_engine(kind, req.engine_version);
  if (!spec_r) return spec_r.error();
  const engine::EngineSpec& spec = **spec_r;
  core::EngineId id{kind, spec.version};
  if (!req.engine_version.empty()) {
    auto v = core::Version::parse(req.engine_version);
    if (!v) return v.error();
    id.version = *v;
  }
  plan.engine_version = id.version.str();

  engine::ParsedArgs args;
  if (!core::trim(req.extra_args).empty()) {
    auto p = engine::parse_args(spec, std::string_view(req.extra_args));
    if (!p) return p.error();
    args = std::move(*p);
  }

  // Pre-flight: reachability and GPU health.
  for (const auto& n : req.nodes) {
    if (req.unreachable.count(n.name)) {
      plan.errors.push_back(issue(
          "plan.node_unreachable",
          "node " + n.name + " (" + address_of(n) +
              ") cannot be reached from the other nodes: check the management network (ping it "
              "from the head node) before deploying (FAQ §4.3)",
          n.name));
    }
  }
  if (kind != EngineKind::vllm_cpu) {
    for (const auto& n : req.nodes) {
      for (const auto& g : n.gpus) {
        if (g.health == "ok") continue;
        plan.warnings.push_back(issue(
            "plan.gpu_lost",
            "GPU " + std::to_string(g.index) + (g.name.empty() ? "" : " (" + g.name + ")") +
                " of node " + n.name + " reports health '" + g.health +
                "': the card fell off the bus or the driver cannot read it (check nvidia-smi and "
                "the kernel log for Xid errors); the plan leaves it out",
            n.name, g.index));
      }
      for (int i : missing_gpu_indexes(n)) {
        plan.warnings.push_back(issue(
            "plan.gpu_missing",
            "node " + n.name + " lists GPUs up to index " +
                std::to_string(
                    std::max_element(n.gpus.begin(), n.gpus.end(),
                                     [](const auto& a, const auto& b) { return a.index < b.index; })
                        ->index) +
                " but not GPU " + std::to_string(i) +
                ": the card fell off the bus (the node had more GPUs before); the plan cannot "
                "use it",
            n.name, i));
      }
    }
  }

  // Parallelism and placement.
  const auto user_tp = int_arg(args, "--tensor-parallel-size");
  const auto user_pp = int_arg(args, "--pipeline-parallel-size");
  args.erase("--tensor-parallel-size");
  args.erase("--pipeline-parallel-size");
  const bool multi = req.nodes.size() > 1;
  if (kind == EngineKind::vllm && multi) {
    if (const auto* b = args.find("--distributed-executor-backend");
        b != nullptr && !b->values.empty() && b->values[0] != "ray") {
      plan.errors.push_back(issue("plan.executor_backend_conflict",
                                  "--distributed-executor-backend " + b->values[0] +
                                      " cannot span nodes in this plan: multi-node vLLM runs "
                                      "through Ray; leave the flag out"));
      return plan;
    }
    args.erase("--distributed-executor-backend");
  }

  std::vector<std::vector<int>> pinned(req.nodes.size());
  if (kind == EngineKind::llama_cpp) {
    // One process; on a GPU node it splits the layers over the GPUs it is given (its default
    // --split-mode layer), so there is no tensor or pipeline parallel size to choose.
    plan.tp = 1;
    plan.pp = 1;
    const auto& n = req.nodes[0];
    if (n.type == model::NodeType::gpu) {
      const auto healthy = healthy_gpus(n);
      if (healthy.empty()) {
        plan.errors.push_back(issue("plan.not_enough_gpus",
                                    "node " + n.name + " has no usable GPU" + lost_text(n) +
                                        "; llama.cpp on a GPU node needs one",
                                    n.name));
        return plan;
      }
      pinned[0] = pick_gpus(n, static_cast<int>(healthy.size()));
    }
  } else if (kind == EngineKind::vllm_cpu) {
    plan.tp = user_tp.value_or(1);
    plan.pp = user_pp.value_or(1);
    if (!req.nodes[0].gpus.empty()) {
      plan.warnings.push_back(issue("plan.gpus_unused",
                                    "vLLM CPU runs on the CPUs; the " +
                                        std::to_string(req.nodes[0].gpus.size()) +
                                        " GPUs of node " + req.nodes[0].name + " stay unused",
                                    req.nodes[0].name));
    }
  } else {
    const auto layout = gpu_layout(kind, req.model.arch, req.nodes, user_tp, user_pp, plan);
    if (!layout) {
      plan.ok = false;
      return plan;
    }
    plan.tp = layout->tp;
    plan.pp = layout->pp;
    for (std::size_t i = 0; i < req.nodes.size(); ++i) {
      pinned[i] = pick_gpus(req.nodes[i], layout->per_node[i]);
      const auto healthy = healthy_gpus(req.nodes[i]);
      std::vector<int> unused;
      for (const auto* g : healthy) {
        if (std::find(pinned[i].begin(), pinned[i].end(), g->index) == pinned[i].end()) {
          unused.push_back(g->index);
        }
      }
      if (pinned[i].empty()) {
        plan.warnings.push_back(issue("plan.node_unused",
                                      "node " + req.nodes[i].name +
                                          " gets no rank with tensor parallel " +
                                          std::to_string(plan.tp) + " × pipeline parallel " +
                                          std::to_string(plan.pp) + "; it is left out",
                                      req.nodes[i].name));
      } else if (!unused.empty()) {
        plan.warnings.push_back(issue("plan.gpus_unused",
                                      "GPUs " + join_ints(unused) + " of node " +
                                          req.nodes[i].name + " are not used (tensor parallel " +
                                          std::to_string(plan.tp) + " × pipeline parallel " +
                                          std::to_string(plan.pp) + " uses " +
                                          std::to_string(pinned[i].size()) + " of its " +
                                          std::to_string(healthy.size()) + " usable GPUs)",
                                      req.nodes[i].name));
      }
    }
  }

  // Compatibility rules on the GPUs the plan uses.
  CompatInput cin;
  cin.spec = &spec;
  cin.kind = kind;
  cin.model = &req.model;
  for (std::size_t i = 0; i < req.nodes.size(); ++i) {
    for (int idx : pinned[i]) {
      for (const auto& g : req.nodes[i].gpus) {
        if (g.index == idx) cin.gpus.push_back({req.nodes[i].name, &g});
      }
    }
  }
  CompatFindings found;
  apply_compat_rules(cin, args, found);
  plan.applied_fixes.insert(plan.applied_fixes.end(), found.fixes.begin(), found.fixes.end());
  plan.warnings.insert(plan.warnings.end(), found.warnings.begin(), found.warnings.end());
  plan.errors.insert(plan.errors.end(), found.errors.begin(), found.errors.end());
  if (kind == EngineKind::llama_cpp && req.model.gguf_chat_template.empty() &&
      args.find("--chat-template") == nullptr && args.find("--chat-template-file") == nullptr) {
    // Without a template llama-server cannot serve /v1/chat/completions; ChatML is what most
    // chat fine-tunes (Qwen, DeepSeek distills, Yi) were trained on.
    auto t = engine::make_flag(spec, "--chat-template", {"chatml"});
    if (!t) return t.error();
    args.flags.push_back(std::move(*t));
    plan.applied_fixes.push_back(
        {"plan.default_chat_template",
         "the GGUF file of " + req.model.id +
             " has no chat template (tokenizer.chat_template); --chat-template chatml was added "
             "so that /v1/chat/completions works: give --chat-template (a built-in name such as "
             "llama3 or a Jinja template) if the model uses another format"});
  }
  plan.engine_args = engine::render(spec, args);

  // Argv, env and ports per node.
  std::vector<std::size_t> used;  // request indexes of the nodes in the plan
  for (std::size_t i = 0; i < req.nodes.size(); ++i) {
    if (kind == EngineKind::vllm_cpu || kind == EngineKind::llama_cpp || !pinned[i].empty())
      used.push_back(i);
  }
  const model::NodeSpec& head = req.nodes[used.front()];
  const bool distributed = used.size() > 1;
  const std::string port = std::to_string(req.ports.engine);
  for (std::size_t rank = 0; rank < used.size(); ++rank) {
    const model::NodeSpec& n = req.nodes[used[rank]];
    NodePlan np;
    np.name = n.name;
    np.address = address_of(n);
    np.gpus = pinned[used[rank]];
    np.env = req.env;
    if (!np.gpus.empty()) {
      np.env["CUDA_VISIBLE_DEVICES"] = join_ints(np.gpus, ",");
      np.env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID";
    }
    OwnFlags own{&spec, {}, std::nullopt};
    std::vector<std::string> engine_argv;
    if (kind == EngineKind::sglang) {
      OwnFlags path{&spec, {}, std::nullopt};
      path.add("--model-path", plan.model_path);
      if (path.error) return *path.error;
      engine_argv = {"python3", "-m", "sglang.launch_server"};
      const auto rendered = engine::render(spec, path.args);
      engine_argv.insert(engine_argv.end(), rendered.begin(), rendered.end());
    } else if (kind == EngineKind::llama_cpp) {
      OwnFlags path{&spec, {}, std::nullopt};
      path.add("--model", plan.model_path);
      if (path.error) return *path.error;
      engine_argv = {"llama-server"};
      const auto rendered = engine::render(spec, path.args);
      engine_argv.insert(engine_argv.end(), rendered.begin(), rendered.end());
    } else {
      engine_argv = {"vllm", "serve", plan.model_path};
    }
    const auto user = engine::render(spec, args);
    if (kind == EngineKind::llama_cpp) {
      // No parallel sizes: one process.
    } else if (kind == EngineKind::sglang) {
      own.add("--tensor-parallel-size", std::to_string(plan.tp), "--tp-size");
      if (plan.pp > 1) own.add("--pipeline-parallel-size", std::to_string(plan.pp), "--pp-size");
      if (distributed) {
        own.add("--nnodes", std::to_string(used.size()));
        own.add("--node-rank", std::to_string(rank));
        own.add("--dist-init-addr", address_of(head) + ":" + std::to_string(req.ports.dist_init));
      }
    } else if (distributed || plan.tp > 1 || plan.pp > 1) {
      own.add("--tensor-parallel-size", std::to_string(plan.tp));
      own.add("--pipeline-parallel-size", std::to_string(plan.pp));
      if (distributed) own.add("--distributed-executor-backend", "ray");
    }
    own.add("--host", "0.0.0.0");
    own.add("--port", port);
    own.add(kind == EngineKind::llama_cpp ? "--alias" : "--served-model-name", plan.served_name);
    if (own.error) return *own.error;
    // The model first, then the user's flags (after the fixes), then the platform's.
    const std::vector<std::string> own_argv = engine::render(spec, own.args);
    engine_argv.insert(engine_argv.end(), user.begin(), user.end());
    engine_argv.insert(engine_argv.end(), own_argv.begin(), own_argv.end());

    if (!distributed) {
      np.role = "single";
      np.ports["engine"] = req.ports.engine;
      np.argv = engine_argv;
      np.commands.push_back({"engine", engine_argv});
    } else if (kind == EngineKind::sglang) {
      np.role = "rank-" + std::to_string(rank);
      np.ports["engine"] = req.ports.engine;  // ranks >= 1 serve a health check there
      if (rank == 0) np.ports["dist_init"] = req.ports.dist_init;
      np.argv = engine_argv;
      np.commands.push_back({"engine", engine_argv});
    } else {
      np.env["VLLM_HOST_IP"] = np.address;
      np.ports["ray"] = req.ports.ray;
      if (rank == 0) {
        np.role = "head";
        np.ports["engine"] = req.ports.engine;
        np.commands.push_back({"ray-head",
                               {"ray", "start", "--head", "--node-ip-address=" + np.address,
                                "--port=" + std::to_string(req.ports.ray), "--block"}});
        np.commands.push_back({"engine", engine_argv});
        np.argv = engine_argv;
      } else {
        np.role = "worker";
        np.argv = {"ray", "start",
                   "--address=" + address_of(head) + ":" + std::to_string(req.ports.ray),
                   "--node-ip-address=" + np.address, "--block"};
        np.commands.push_back({"ray-worker", np.argv});
      }
    }
    plan.nodes.push_back(std::move(np));
  }

  // The memory estimate, against the smallest GPUs the plan uses.
  auto settings = engine::memory_settings(spec, args, req.env);
  if (!settings) return settings.error();
  model::EstimateRequest er;
  er.model = req.model;
  er.engine = id;
  er.tp = plan.tp;
  er.pp = plan.pp;
  er.settings = *settings;
  model::NodeSpec view = head;
  const bool on_cpu = kind == EngineKind::vllm_cpu ||
                      (kind == EngineKind::llama_cpp && head.type == model::NodeType::cpu);
  if (!on_cpu) {
    std::vector<std::string> names;
    view.gpus.clear();
    for (std::size_t i : used) {
      const auto& n = req.nodes[i];
      names.push_back(n.name);
      view.disk_free_gib = std::min(view.disk_free_gib, n.disk_free_gib);
      view.memory_mib = std::min(view.memory_mib, n.memory_mib);
      for (int idx : pinned[i]) {
        for (const auto& g : n.gpus) {
          if (g.index == idx) view.gpus.push_back(g);
        }
      }
    }
    view.name = core::join(names, "+");
  }
  er.node = view;
  auto est = model::estimate(er);
  if (!est) {
    plan.warnings.push_back(
        issue("plan.no_estimate", "no memory estimate: " + est.error().message));
  } else {
    plan.estimate = *est;
  }

  // Pre-flight: GPU memory held by other processes.
  bool held_error = false;
  if (plan.estimate && !on_cpu) {
    const auto& e = *plan.estimate;
    const bool sglang = kind == EngineKind::sglang;
    const std::string util_flag = sglang ? "--mem-fraction-static" : "--gpu-memory-utilization";
    for (std::size_t i : used) {
      const auto& n = req.nodes[i];
      for (int idx : pinned[i]) {
        const model::GpuSpec* g = nullptr;
        for (const auto& x : n.gpus) {
          if (x.index == idx) g = &x;
        }
        if (g == nullptr || (g->memory_used_mib <= 0 && g->processes.empty())) continue;
        std::vector<std::string> procs;
        for (const auto& p : g->processes) {
          procs.push_back("pid " + std::to_string(p.pid) + " " + p.name + " " +
                          core::gib(static_cast<std::uint64_t>(p.used_memory_mib) << 20));
        }
        const std::uint64_t free =
            g->total_bytes() > g->used_bytes() ? g->total_bytes() - g->used_bytes() : 0;
        const std::uint64_t need = e.budget_bytes_per_gpu;
        std::string msg = "GPU " + std::to_string(idx) + " (" + g->name + ") of node " + n.name +
                          ": other processes hold " + core::gib(g->used_bytes()) +
                          (procs.empty() ? std::string() : " (" + core::join(procs) + ")") + "; " +
                          core::gib(free) + " of " + core::gib(g->total_bytes()) + " is free";
        if (free < need) {
          const double max_util =
              std::floor(static_cast<double>(free) / static_cast<double>(g->total_bytes()) * 100) /
              100;
          msg += ", but the plan needs " + core::gib(need) + " per GPU (" + util_flag + " " +
                 frac(e.utilization) +
                 "): stop those processes, choose other GPUs or nodes, or "
                 "lower " +
                 util_flag + " to " + frac(max_util) + " or less (FAQ §4.3: GPUs occupied)";
          plan.errors.push_back(issue("plan.gpu_memory_held", msg, n.name, idx));
          held_error = true;
        } else {
          msg += "; the plan needs " + core::gib(need) + " per GPU, which still fits";
          plan.warnings.push_back(issue("plan.gpu_memory_shared", msg, n.name, idx));
        }
      }
    }
  }

  // Memory verdict and proposals.
  if (plan.estimate && plan.estimate->has_verdict) {
    const auto& e = *plan.estimate;
    const std::string single = used.size() == 1 ? head.name : std::string();
    bool reported = false;
    for (const auto& p : e.problems) {
      if (p.code == "estimate.max_model_len_exceeds_model") {
        bool mine = false;
        for (const auto& x : plan.errors) mine |= x.code == "compat.max_model_len_exceeds_model";
        if (mine) continue;
      }
      if (p.code == "estimate.insufficient_free_memory" && held_error) continue;
      plan.errors.push_back(issue(p.code, p.message, single));
      reported = true;
    }
    if (!e.fits) {
      const bool sglang = kind == EngineKind::sglang;
      const std::string len_flag = kind == EngineKind::llama_cpp ? "--ctx-size"
                                   : sglang                      ? "--context-length"
                                                                 : "--max-model-len";
      if (e.largest_fitting_len > 0 && e.largest_fitting_len < e.max_model_len) {
        plan.proposals.push_back("use " + len_flag + " " + std::to_string(e.largest_fitting_len) +
                                 ": the largest context that fits (the plan asks for " +
                                 std::to_string(e.max_model_len) + ")");
      }
      const int world = static_cast<int>(e.gpus_used);
      if (e.gpus_needed > world && !on_cpu) {
        plan.proposals.push_back(std::to_string(e.gpus_needed - world) + " more GPUs like " +
                                 e.gpu_name + " (" + std::to_string(e.gpus_needed) +
                                 " in all) hold the model with " + len_flag + " " +
                                 std::to_string(std::min(e.max_model_len, e.model_max_len)));
      }
      for (const auto& s : e.suggestions) {
        if (core::starts_with(s, "lower the context") || core::starts_with(s, "more GPUs needed"))
          continue;
        plan.proposals.push_back(s);
      }
      if (!reported && !held_error) {
        plan.errors.push_back(issue("plan.does_not_fit",
                                    "the model does not fit the GPUs of this plan (" + e.gpu_name +
                                        ", tensor parallel " + std::to_string(plan.tp) +
                                        ", pipeline parallel " + std::to_string(plan.pp) + ")",
                                    single));
      }
    }
  }

  plan.ok = plan.errors.empty();
  return plan;
}

}  // namespace openstation::scheduler
