#include "cli/cmd_models.hpp"
#include "cli/commands.hpp"
#include "cli/context.hpp"
#include "core/engine_kind.hpp"
#include "core/strings.hpp"
#include "engine/args.hpp"
#include "model/model_files.hpp"
#include "model/node.hpp"
#include "scheduler/plan.hpp"
#include "scheduler/plan_json.hpp"

#include <CLI/CLI.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <ostream>
#include <sstream>

namespace openstation::cli {
namespace {

/// The flags of `openstation plan`.
struct PlanFlags {
  std::string model;
  std::string model_path;
  std::string cluster;
  std::string nodes;
  std::string engine;
  std::string engine_version;
  std::string args;
  std::string served_name;
  std::vector<std::string> env;
  std::string unreachable;
  int engine_port = 0;
  int ray_port = 0;
  int dist_port = 0;
  std::string catalog;
};

std::vector<std::string> split_names(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string part;
  while (std::getline(ss, part, ',')) {
    part = core::trim(part);
    if (!part.empty()) out.push_back(part);
  }
  return out;
}

std::string engine_display(core::EngineKind k) {
  switch (k) {
    case core::EngineKind::vllm: return "vLLM";
    case core::EngineKind::vllm_cpu: return "vLLM CPU";
    case core::EngineKind::sglang: return "SGLang";
    default: return std::string(core::to_string(k));
  }
}

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string where(const scheduler::PlanIssue& i) {
  if (i.node.empty()) return {};
  return "(node " + i.node + (i.gpu ? ", GPU " + std::to_string(*i.gpu) : std::string()) + ") ";
}

void print_plan(const scheduler::Plan& p, std::ostream& out) {
  out << "Engine:     " << engine_display(p.engine) << " " << p.engine_version
      << ", tensor parallel " << p.tp << ", pipeline parallel " << p.pp << "\n";
  out << "Model:      " << p.model_path << " (served as " << p.served_name << ")\n";
  if (!p.engine_args.empty()) {
    out << "Parameters: " << engine::join_command_line(p.engine_args) << "\n";
  }
  if (!p.nodes.empty()) out << "Nodes:\n";
  for (const auto& n : p.nodes) {
    out << "  " << n.name << "  role " << n.role << ", address " << n.address;
    if (!n.gpus.empty()) {
      std::vector<std::string> g;
      for (int i : n.gpus) g.push_back(std::to_string(i));
      out << ", GPUs " << core::join(g, ",");
    }
    out << "\n";
    if (!n.ports.empty()) {
      std::vector<std::string> ports;
      for (const auto& [k, v] : n.ports) ports.push_back(k + " " + std::to_string(v));
      out << "    ports: " << core::join(ports) << "\n";
    }
    for (const auto& [k, v] : n.env) {
      out << "    env:   " << k << "=" << v << "\n";
    }
    for (const auto& c : n.commands) {
      out << "    " << c.name << ": " << engine::join_command_line(c.argv) << "\n";
    }
  }
  if (p.estimate) {
    const auto& e = *p.estimate;
    out << "Estimate:   weights " << core::gib(e.weights_bytes_per_gpu)
        << (e.engine == "vllm-cpu" ? " per rank" : " per GPU");
    if (e.has_verdict) {
      out << ", KV cache " << core::with_commas(e.kv_cache_tokens) << " tokens, context "
          << core::with_commas(e.max_model_len) << " (model maximum "
          << core::with_commas(e.model_max_len) << "), max concurrency "
          << fixed(e.max_concurrency, 2) << "x: " << (e.fits ? "FITS" : "DOES NOT FIT");
    }
    out << "\n";
  }
  if (!p.applied_fixes.empty()) {
    out << "Applied fixes:\n";
    for (const auto& f : p.applied_fixes) out << "  [" << f.code << "] " << f.message << "\n";
  }
  if (!p.warnings.empty()) {
    out << "Warnings:\n";
    for (const auto& w : p.warnings) {
      out << "  [" << w.code << "] " << where(w) << w.message << "\n";
    }
  }
  if (!p.errors.empty()) {
    out << "Errors:\n";
    for (const auto& e : p.errors) {
      out << "  [" << e.code << "] " << where(e) << e.message << "\n";
    }
  }
  if (!p.proposals.empty()) {
    out << "Proposals:\n";
    for (const auto& s : p.proposals) out << "  - " << s << "\n";
  }
  out << "Result:     "
      << (p.ok ? std::string("OK, ready to deploy")
               : "NOT DEPLOYABLE (" + std::to_string(p.errors.size()) + " error" +
                     (p.errors.size() == 1 ? "" : "s") + ")")
      << "\n";
}

void run_plan(const PlanFlags& f, Context& ctx) {
  if (f.model.empty() == f.model_path.empty()) {
    return ctx.fail(core::invalid("plan.model_required",
                                  "give exactly one of --model ID (from `openstation models "
                                  "catalog`) or --model-path DIR",
                                  "model"));
  }
  scheduler::PlanRequest req;
  if (!f.model.empty()) {
    auto cat = load_catalog(f.catalog);
    if (!cat) return ctx.fail(cat.error());
    auto card = cat->find(f.model);
    if (!card) return ctx.fail(card.error());
    req.model = card->to_model_info();
    // Without files the engines load the model from its hub repository.
    req.model_path = card->hf_repo;
  } else {
    auto info = model::inspect_model_path(f.model_path);
    if (!info) return ctx.fail(info.error());
    req.model = *info;
    req.model_path = f.model_path;
  }

  auto cluster = model::load_cluster_file(f.cluster);
  if (!cluster) return ctx.fail(cluster.error());
  if (f.nodes.empty()) {
    req.nodes = cluster->nodes;
  } else {
    std::vector<std::string> known;
    for (const auto& n : cluster->nodes) known.push_back(n.name);
    for (const auto& name : split_names(f.nodes)) {
      auto it = std::find_if(cluster->nodes.begin(), cluster->nodes.end(),
                             [&](const model::NodeSpec& n) { return n.name == name; });
      if (it == cluster->nodes.end()) {
        const std::string near = core::closest(name, known);
        return ctx.fail(
            core::not_found("plan.unknown_node",
                            "node '" + name + "' is not in " + f.cluster +
                                (near.empty() ? "" : " (did you mean '" + near + "'?)") +
                                "; its nodes: " + core::join(known),
                            "nodes"));
      }
      req.nodes.push_back(*it);
    }
    if (req.nodes.empty()) {
      return ctx.fail(core::invalid("plan.no_nodes", "--nodes names no node", "nodes"));
    }
  }
  for (const auto& name : split_names(f.unreachable)) req.unreachable.insert(name);

  if (!f.engine.empty()) {
    auto k = core::parse_engine_kind(f.engine);
    if (!k) return ctx.fail(k.error());
    req.engine = *k;
  }
  req.engine_version = f.engine_version;
  req.extra_args = f.args;
  req.served_name = f.served_name;
  if (f.engine_port > 0) req.ports.engine = f.engine_port;
  if (f.ray_port > 0) req.ports.ray = f.ray_port;
  if (f.dist_port > 0) req.ports.dist_init = f.dist_port;
  for (const auto& kv : f.env) {
    const auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      return ctx.fail(
          core::invalid("plan.bad_env", "--env expects NAME=VALUE, got '" + kv + "'", "env"));
    }
    req.env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }

  auto plan = scheduler::make_plan(req);
  if (!plan) return ctx.fail(plan.error());
  if (ctx.json) {
    ctx.print_json(scheduler::plan_to_json(*plan));
  } else {
    print_plan(*plan, *ctx.out);
  }
  ctx.exit_code = plan->ok ? kExitOk : kExitFailure;
}

}  // namespace

void register_plan_command(CLI::App& root, Context& ctx) {
  auto f = std::make_shared<PlanFlags>();
  CLI::App* cmd = root.add_subcommand(
      "plan",
      "Plan a deployment before anything launches: the engine and its version, tensor and "
      "pipeline parallelism, each node's role, GPUs, argv, environment and ports, the memory "
      "estimate, the compatibility fixes applied (bf16 on T4/V100, V100 chunked prefill, "
      "quantization, context length) and every problem per node and GPU. Exit codes: 0 the plan "
      "is deployable, 1 it has errors (the full plan is still printed), 2 bad input. "
      "Rules: docs/plans.md");
  cmd->add_option("--model", f->model, "A catalog id (see `openstation models catalog`)");
  cmd->add_option("--model-path", f->model_path,
                  "A model directory (config.json + safetensors) or a GGUF file");
  cmd->add_option("--cluster", f->cluster,
                  "A cluster file {\"nodes\": [...]} (see examples/clusters/) or one node file")
      ->required();
  cmd->add_option("--nodes", f->nodes,
                  "Comma-separated node names from the cluster file, in order; the first is the "
                  "head (default: all nodes in file order)");
  cmd->add_option("--engine", f->engine,
                  "vllm, sglang, vllm-cpu or llama.cpp (default: a GGUF model → llama.cpp; "
                  "one CPU node → vllm-cpu, one GPU node → sglang, several GPU nodes → vllm)");
  cmd->add_option("--engine-version", f->engine_version,
                  "The engine version that will run (default: the newest known)");
  cmd->add_option("--args", f->args,
                  "Extended parameters: the engine's own flags, e.g. \"--max-model-len 32768 "
                  "--gpu-memory-utilization 0.9\"");
  cmd->add_option("--served-name", f->served_name,
                  "The model name clients use (default: the model id)");
  cmd->add_option("--env", f->env, "Engine environment variables NAME=VALUE (all nodes)");
  cmd->add_option("--unreachable", f->unreachable,
                  "Comma-separated nodes known to be unreachable (from a connectivity check)");
  cmd->add_option("--engine-port", f->engine_port, "The engine's port (default 40000)")
      ->check(CLI::Range(1, 65535));
  cmd->add_option("--ray-port", f->ray_port, "The Ray head's port (default 41000)")
      ->check(CLI::Range(1, 65535));
  cmd->add_option("--dist-port", f->dist_port,
                  "SGLang's --dist-init-addr port on the first node (default 42000)")
      ->check(CLI::Range(1, 65535));
  cmd->add_option("--catalog", f->catalog, "A catalog file to use besides the built-in cards");
  cmd->add_flag("--json", ctx.json, "Print the plan as JSON");
  cmd->callback([f, &ctx] { run_plan(*f, ctx); });
}

}  // namespace openstation::cli
