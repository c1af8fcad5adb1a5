#pragma once
/// Deployment plans: which engine runs a model on the chosen nodes, with which tensor and pipeline
/// parallelism, on which GPUs, with which argv and environment on every node — decided before
/// anything launches. The compatibility rules of FAQ §4 are applied on the way (compat.hpp), and
/// the pre-flight problems that make a distributed deploy wait forever ("no resource demands") are
/// listed per node and per GPU. Pure function, no I/O. Rules and codes: docs/plans.md.

#include "core/engine_kind.hpp"
#include "core/error.hpp"
#include "model/estimator.hpp"
#include "model/model_info.hpp"
#include "model/node.hpp"

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace openstation::scheduler {

/// The first port of each range the plan takes ports from (DESIGN.md §2: engines from 40000).
struct PortBase {
  int engine = 40000;     ///< the engine's HTTP port (vLLM --port, SGLang --port)
  int ray = 41000;        ///< the Ray head's GCS port (ray start --port)
  int dist_init = 42000;  ///< SGLang's --dist-init-addr port on the first node
};

/// What to plan.
struct PlanRequest {
  model::ModelInfo model;
  /// Where the model is on the nodes (the engine's model argument). Empty: model.path, else
  /// model.id.
  std::string model_path;
  /// The chosen nodes in order; the first is the head (vLLM) or rank 0 (SGLang).
  std::vector<model::NodeSpec> nodes;
  /// The user's engine; empty = chosen by the platform (see choose_engine).
  std::optional<core::EngineKind> engine;
  std::string engine_version;  ///< empty = the newest known
  std::string extra_args;      ///< the user's extended parameters, as typed
  std::string served_name;     ///< empty = model.id
  PortBase ports;
  /// Engine environment variables (all nodes), e.g. VLLM_CPU_KVCACHE_SPACE=40.
  std::map<std::string, std::string> env;
  /// Nodes known to be unreachable from the others (the caller's connectivity checks).
  std::set<std::string> unreachable;
};

/// A fix applied to the user's flags (e.g. "compat.bf16_to_half").
struct AppliedFix {
  std::string code;
  std::string message;
};

/// A warning or an error, about the plan as a whole or one node / one GPU.
struct PlanIssue {
  std::string code;        ///< stable, dotted: "plan.gpu_lost", "compat.bf16_unsupported"
  std::string message;     ///< English, in the FAQ's and the engine's terms
  std::string node;        ///< empty when not about one node
  std::optional<int> gpu;  ///< the GPU index on `node`, when about one GPU
};

/// One process the agent starts on a node.
struct PlanCommand {
  std::string name;               ///< "ray-head", "ray-worker", "engine"
  std::vector<std::string> argv;  ///< never passed through a shell
};

/// What one node runs.
struct NodePlan {
  std::string name;
  std::string role;     ///< "single", "head", "worker", or "rank-N" (SGLang multi-node)
  std::string address;  ///< the node's address, else its name
  /// The node's main process: the engine, or `ray start` on a vLLM worker.
  std::vector<std::string> argv;
  /// Every process in start order (a vLLM head: ray-head, then engine).
  std::vector<PlanCommand> commands;
  std::map<std::string, std::string> env;
  std::map<std::string, int> ports;  ///< "engine", "ray", "dist_init"
  std::vector<int> gpus;             ///< pinned GPU indexes (CUDA_VISIBLE_DEVICES)
};

/// The plan. `ok` is false when any error is listed; the nodes may then lack argv.
struct Plan {
  core::EngineKind engine = core::EngineKind::vllm;
  std::string engine_version;
  int tp = 1;
  int pp = 1;
  std::string model_path;
  std::string served_name;
  std::vector<std::string> engine_args;  ///< the extended parameters after the fixes, rendered
  std::vector<NodePlan> nodes;
  std::vector<AppliedFix> applied_fixes;
  std::vector<PlanIssue> warnings;
  std::vector<PlanIssue> errors;
  /// When the model does not fit: the largest context that fits, how many GPUs would.
  std::vector<std::string> proposals;
  /// The memory estimate for the chosen engine, TP and PP against the smallest GPUs of the plan.
  std::optional<model::Estimate> estimate;
  bool ok = false;
};

/// The engine the platform picks when the user does not: a GGUF model → llama.cpp (one node, CPU
/// or GPU); otherwise one CPU node → vLLM CPU; one GPU node → SGLang; two or more GPU nodes →
/// vLLM. Errors (plan-level codes, returned as an issue): no nodes, CPU and GPU nodes mixed
/// ("plan.mixed_node_types"), several CPU nodes ("plan.cpu_multi_node"), a GGUF model on several
/// nodes ("plan.llama_cpp_multi_node").
std::optional<PlanIssue> choose_engine(const model::ModelInfo& model,
                                       const std::vector<model::NodeSpec>& nodes,
                                       core::EngineKind& kind);

/// Builds the plan. Errors (bad input, exit 2): no nodes, an unknown engine version, extended
/// parameters that do not parse for the engine version, a bad served name or port. A plan that
/// cannot work is a Plan with ok = false and its errors.
core::Result<Plan> make_plan(const PlanRequest& req);

}  // namespace openstation::scheduler
