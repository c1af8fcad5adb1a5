#include "cli/cmd_models.hpp"
#include "cli/commands.hpp"
#include "cli/context.hpp"
#include "core/engine_kind.hpp"
#include "core/strings.hpp"
#include "engine/args.hpp"
#include "engine/memory_settings.hpp"
#include "engine/spec.hpp"
#include "model/estimator.hpp"
#include "model/estimator_json.hpp"
#include "model/model_files.hpp"
#include "model/node.hpp"

#include <CLI/CLI.hpp>
#include <boost/json.hpp>

#include <cstdio>
#include <map>
#include <memory>
#include <ostream>

namespace openstation::cli {
namespace {

/// The flags of `openstation estimate`.
struct EstimateFlags {
  std::string model;
  std::string model_path;
  std::string node;
  std::string engine;
  std::string engine_version;
  int tp = 0;  ///< 0 = default
  int pp = 0;
  std::string args;
  std::vector<std::string> env;
  std::string catalog;
};

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string gib(std::uint64_t b) {
  return core::gib(b);
}

std::string engine_display(const std::string& e) {
  if (e == "vllm") return "vLLM";
  if (e == "vllm-cpu") return "vLLM CPU";
  if (e == "sglang") return "SGLang";
  return e;
}

/// An integer flag value from --args ("--tensor-parallel-size 4").
core::Result<std::optional<int>> int_flag(const engine::ParsedArgs& args,
                                          std::initializer_list<std::string_view> names) {
  for (auto name : names) {
    if (const auto* f = args.find(name); f != nullptr && !f->values.empty()) {
      try {
        std::size_t used = 0;
        const int v = std::stoi(f->values[0], &used);
        if (used == f->values[0].size()) return std::optional<int>(v);
      } catch (const std::exception&) {
      }
      return core::invalid("estimate.bad_args",
                           std::string(name) + " must be an integer, got '" + f->values[0] + "'",
                           "args");
    }
  }
  return std::optional<int>();
}

void print_report(const model::Estimate& e, std::ostream& out) {
  const std::string eng = engine_display(e.engine) + " " + e.engine_version;
  out << "Model:      " << e.model << "\n";
  out << "Engine:     " << eng << ", tensor parallel " << e.tp << ", pipeline parallel " << e.pp
      << "\n";
  out << "Weights:    " << fixed(static_cast<double>(e.weights_bytes) / 1e9, 1) << " GB ("
      << gib(e.weights_bytes) << "), " << gib(e.weights_bytes_per_gpu)
      << (e.engine == "vllm-cpu" ? " per rank" : " per GPU") << "\n";
  out << "Seed min:   " << e.min_vram_gb << " GB of GPU memory (weights × 1.2 + 2 GB, FAQ §1)\n";
  out << "KV/token:   " << core::with_commas(static_cast<std::int64_t>(e.kv_bytes_per_token))
      << " bytes" << (e.engine == "vllm-cpu" ? " per rank" : " per GPU")
      << (e.kv_cache_dtype.empty() ? "" : " (" + e.kv_cache_dtype + ")") << "\n";
  if (e.has_verdict) {
    if (e.engine == "llama.cpp") {
      // llama.cpp reserves no fraction of the device: what it needs against what is free.
      out << "Node:       " << e.node << ": "
          << (e.gpus_used == 0 ? std::string("CPU, RAM ")
                               : std::to_string(e.gpus_used) + " × " + e.gpu_name + ", ")
          << gib(e.free_bytes_per_gpu) << (e.gpus_used == 0 ? "" : " free per GPU") << "\n";
      out << "Needs:      " << gib(e.budget_bytes_per_gpu)
          << (e.gpus_used == 0 ? " of RAM" : " per GPU") << "\n";
    } else if (e.engine == "vllm-cpu") {
      out << "Node:       " << e.node << " (CPU), budget " << gib(e.budget_bytes_per_gpu)
          << " per rank (" << fixed(e.utilization, 2) << " of RAM)\n";
    } else {
      out << "Node:       " << e.node << ": " << e.gpus_used << " × " << e.gpu_name << " ("
          << gib(e.gpu_total_bytes) << " each";
      if (e.other_processes_bytes_per_gpu > 0) {
        out << ", " << gib(e.other_processes_bytes_per_gpu) << " used by other processes";
      }
      out << ")\n";
      if (e.engine == "sglang") {
        out << "Budget:     " << gib(e.gpu_total_bytes) << " × --mem-fraction-static "
            << fixed(e.mem_fraction_static, 3) << " = " << gib(e.budget_bytes_per_gpu)
            << " per GPU for weights and the KV pool\n";
      } else {
        out << "Budget:     " << gib(e.gpu_total_bytes) << " × --gpu-memory-utilization "
            << fixed(e.utilization, 2) << " = " << gib(e.budget_bytes_per_gpu) << " per GPU\n";
      }
    }
    out << "  weights          " << gib(e.weights_bytes_per_gpu) << "\n";
    if (e.engine != "sglang") {
      out << "  activations      " << gib(e.activation_bytes_per_gpu) << "  ("
          << core::with_commas(e.max_num_batched_tokens) << " batched tokens, "
          << core::with_commas(e.max_num_seqs) << " sequences)\n";
      out << "  " << (e.engine == "vllm-cpu" ? "runtime     " : "non-torch   ") << "     "
          << gib(e.non_torch_bytes_per_gpu) << "\n";
      if (e.engine == "vllm")
        out << "  CUDA graphs      " << gib(e.cuda_graph_bytes_per_gpu) << "\n";
    }
    out << "  KV cache         " << gib(e.kv_cache_bytes_per_gpu) << "  ("
        << core::with_commas(e.kv_cache_tokens) << " tokens, block size " << e.block_size << ")\n";
    out << "Context:    " << core::with_commas(e.max_model_len) << " tokens (model maximum "
        << core::with_commas(e.model_max_len) << "); max concurrency "
        << fixed(e.max_concurrency, 2) << "x; largest context that fits "
        << core::with_commas(e.largest_fitting_len) << "\n";
    out << "Disk:       " << fixed(static_cast<double>(e.disk_bytes) / 1e9, 1)
        << " GB for the files\n";
    out << "Verdict:    " << (e.fits ? "FITS" : "DOES NOT FIT") << "\n";
  } else {
    out << "Verdict:    none (no --node given)\n";
  }
  if (!e.problems.empty()) {
    out << "Problems:\n";
    for (const auto& p : e.problems) out << "  [" << p.code << "] " << p.message << "\n";
  }
  if (!e.suggestions.empty()) {
    out << "Suggestions:\n";
    for (const auto& s : e.suggestions) out << "  - " << s << "\n";
  }
  if (!e.notes.empty()) {
    out << "Notes:\n";
    for (const auto& s : e.notes) out << "  - " << s << "\n";
  }
}

void run_estimate(const EstimateFlags& f, Context& ctx) {
  if (f.model.empty() == f.model_path.empty()) {
    ctx.fail(core::invalid("estimate.model_required",
                           "give exactly one of --model ID (from `openstation models catalog`) "
                           "or --model-path DIR",
                           "model"));
    return;
  }
  model::EstimateRequest req;
  if (!f.model.empty()) {
    auto cat = load_catalog(f.catalog);
    if (!cat) return ctx.fail(cat.error());
    auto card = cat->find(f.model);
    if (!card) return ctx.fail(card.error());
    req.model = card->to_model_info();
  } else {
    auto info = model::inspect_model_path(f.model_path);
    if (!info) return ctx.fail(info.error());
    req.model = *info;
  }

  std::size_t nodes_in_file = 0;
  if (!f.node.empty()) {
    auto cluster = model::load_cluster_file(f.node);
    if (!cluster) return ctx.fail(cluster.error());
    nodes_in_file = cluster->nodes.size();
    req.node = cluster->nodes.front();
  }

  core::EngineKind kind = core::EngineKind::vllm;
  if (!f.engine.empty()) {
    auto k = core::parse_engine_kind(f.engine);
    if (!k) return ctx.fail(k.error());
    kind = *k;
  } else if (req.model.format == model::WeightFormat::gguf) {
    kind = core::EngineKind::llama_cpp;
  } else if (req.node && req.node->type == model::NodeType::cpu) {
    kind = core::EngineKind::vllm_cpu;
  }
  auto spec = engine::resolve_engine(kind, f.engine_version);
  if (!spec) return ctx.fail(spec.error());
  req.engine.kind = kind;
  if (!f.engine_version.empty()) {
    auto v = core::Version::parse(f.engine_version);
    if (!v) return ctx.fail(v.error());
    req.engine.version = *v;
  } else {
    req.engine.version = (*spec)->version;
  }

  std::map<std::string, std::string> env;
  for (const auto& kv : f.env) {
    const auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      return ctx.fail(
          core::invalid("estimate.bad_env", "--env expects NAME=VALUE, got '" + kv + "'", "env"));
    }
    env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  engine::ParsedArgs parsed;
  if (!f.args.empty()) {
    auto p = engine::parse_args(**spec, std::string_view(f.args));
    if (!p) return ctx.fail(p.error());
    parsed = std::move(*p);
  }
  auto settings = engine::memory_settings(**spec, parsed, env);
  if (!settings) return ctx.fail(settings.error());
  req.settings = *settings;

  // TP and PP: --tp/--pp, else the engine's own flags in --args, else the FAQ defaults (TP = the
  // node's GPUs, PP = the nodes in the file).
  auto args_tp = int_flag(parsed, {"--tensor-parallel-size", "--tp-size"});
  if (!args_tp) return ctx.fail(args_tp.error());
  auto args_pp = int_flag(parsed, {"--pipeline-parallel-size", "--pp-size"});
  if (!args_pp) return ctx.fail(args_pp.error());
  if (f.tp > 0 && *args_tp && **args_tp != f.tp) {
    return ctx.fail(core::invalid("estimate.tp_conflict",
                                  "--tp " + std::to_string(f.tp) +
                                      " and the tensor parallel size " + std::to_string(**args_tp) +
                                      " in --args disagree",
                                  "tp"));
  }
  if (f.pp > 0 && *args_pp && **args_pp != f.pp) {
    return ctx.fail(core::invalid("estimate.pp_conflict",
                                  "--pp " + std::to_string(f.pp) +
                                      " and the pipeline parallel size " +
                                      std::to_string(**args_pp) + " in --args disagree",
                                  "pp"));
  }
  int tp = f.tp > 0 ? f.tp : args_tp->value_or(0);
  int pp = f.pp > 0 ? f.pp : args_pp->value_or(0);
  if (tp <= 0) {
    tp = (req.node && kind != core::EngineKind::vllm_cpu && !req.node->gpus.empty())
             ? static_cast<int>(req.node->gpus.size())
             : 1;
  }
  if (pp <= 0) pp = nodes_in_file > 1 ? static_cast<int>(nodes_in_file) : 1;
  req.tp = tp;
  req.pp = pp;

  auto est = model::estimate(req);
  if (!est) return ctx.fail(est.error());
  if (nodes_in_file > 1) {
    est->notes.push_back("the node file lists " + std::to_string(nodes_in_file) +
                         " nodes; the estimate uses the first (" + req.node->name +
                         ") and assumes the others are identical");
  }
  if (ctx.json) {
    ctx.print_json(model::estimate_to_json(*est));
  } else {
    print_report(*est, *ctx.out);
  }
  ctx.exit_code = (est->has_verdict && !est->fits) ? kExitFailure : kExitOk;
}

}  // namespace

void register_estimate_command(CLI::App& root, Context& ctx) {
  auto f = std::make_shared<EstimateFlags>();
  CLI::App* cmd = root.add_subcommand(
      "estimate",
      "Estimate GPU memory for a model on a node, as the engine itself will compute it at "
      "start-up: weights per GPU, activations, CUDA graphs, KV cache tokens, the largest context "
      "that fits, and a verdict. Exit codes: 0 fits (or no --node given), 1 does not fit (the "
      "full report is still printed), 2 bad input. Method: docs/estimator.md");
  cmd->add_option("--model", f->model, "A catalog id (see `openstation models catalog`)");
  cmd->add_option("--model-path", f->model_path,
                  "A model directory (config.json + safetensors) or a GGUF file, read exactly");
  cmd->add_option("--node", f->node,
                  "A node inventory file (JSON, see examples/nodes/) or a cluster file "
                  "{\"nodes\": [...]}");
  cmd->add_option("--engine", f->engine,
                  "vllm, sglang, vllm-cpu or llama.cpp (default: vllm-cpu for a CPU node, else "
                  "vllm; llama.cpp for a GGUF file)");
  cmd->add_option("--engine-version", f->engine_version,
                  "The engine version that will run (default: the newest known)");
  cmd->add_option("--tp", f->tp, "Tensor parallel size (default: the node's GPU count)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--pp", f->pp, "Pipeline parallel size (default: the number of nodes)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--args", f->args,
                  "The engine's own flags as you would type them, e.g. \"--max-model-len 32768 "
                  "--gpu-memory-utilization 0.9 --kv-cache-dtype fp8\"");
  cmd->add_option("--env", f->env,
                  "Engine environment variables NAME=VALUE (e.g. VLLM_CPU_KVCACHE_SPACE=40)");
  cmd->add_option("--catalog", f->catalog, "A catalog file to use besides the built-in cards");
  cmd->add_flag("--json", ctx.json, "Print the estimate as JSON");
  cmd->callback([f, &ctx] { run_estimate(*f, ctx); });
}

}  // namespace openstation::cli
