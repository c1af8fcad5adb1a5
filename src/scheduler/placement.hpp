#pragma once
/// Placement: where ONE new instance of a service runs, given the live cluster — which nodes are
/// ready, what their GPUs hold (memory used by processes outside the platform counts), and which
/// GPU memory the platform already promised to other instances. Runs the planner (plan.hpp) for
/// each candidate, so the answer carries the full plan (engine, TP/PP, pinned GPUs, argv). When
/// nothing fits, the answer says why, per node ("node a: GPU 1 has 9.80 GiB free, needs
/// 14.20 GiB"), never a bare "no resources". Pure function, no I/O. Rules: docs/scheduling.md.

#include "core/engine_kind.hpp"
#include "core/error.hpp"
#include "model/model_info.hpp"
#include "model/node.hpp"
#include "scheduler/plan.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace openstation::scheduler {

/// GPU memory one instance of the platform holds (or will hold) on one GPU.
struct GpuReservation {
  std::string instance_id;
  /// The share of the GPU's total memory the instance may take: vLLM's
  /// --gpu-memory-utilization; 1.0 = the whole GPU (SGLang, or vLLM without the flag).
  double fraction = 1.0;
  /// False while the instance is not yet using the memory (pending, scheduled, preparing):
  /// memory the inventory reports then belongs to someone else.
  bool active = true;
};

/// One node as placement sees it.
struct ClusterNode {
  std::string id;         ///< the store's node id
  model::NodeSpec spec;   ///< name, address, GPUs with the last inventory's memory figures
  bool ready = true;      ///< heartbeats arrive and the node is not draining
  std::string not_ready;  ///< why not ready ("no heartbeat for 45 s"), for the reasons
  /// GPU index → the platform's instances on it. A CPU node's instances are under index -1.
  std::map<int, std::vector<GpuReservation>> reserved;
  /// Process ids of the platform's own engines on the node (not "other processes").
  std::set<std::int64_t> own_pids;
};

/// What to place: one instance of a service.
struct PlacementRequest {
  model::ModelInfo model;
  std::string model_path;                  ///< the engine's model argument (see PlanRequest)
  std::optional<core::EngineKind> engine;  ///< empty = the platform's choice
  std::string engine_version;
  std::string extra_args;   ///< the user's extended parameters
  std::string served_name;  ///< the service name (the OpenAI model id)
  std::map<std::string, std::string> env;
  /// The nodes the user chose (store ids), head first; empty = automatic placement.
  std::vector<std::string> nodes;
  PortBase ports;
};

/// Why the instance cannot go on one node (node = the node's name; empty when about the whole
/// cluster, e.g. "no ready nodes").
struct PendingReason {
  std::string node;
  std::string message;
  bool operator==(const PendingReason&) const = default;
};

/// Where the instance goes.
struct Placement {
  Plan plan;                          ///< ok == true
  std::vector<std::string> node_ids;  ///< store ids in plan order (head first)
  /// The share of each pinned GPU the instance takes (1.0 = exclusive).
  double gpu_fraction = 1.0;
  bool shared = false;  ///< true when it shares a GPU with another instance
};

/// The answer: a placement, or the reasons per node.
struct PlacementResult {
  std::optional<Placement> placement;
  std::vector<PendingReason> reasons;  ///< when not placed: at least one
};

/// Chooses nodes and GPUs for one new instance.
///
/// - Listed nodes (`req.nodes`): exactly those, in order (several = a distributed instance).
/// - Automatic: single nodes first; the candidate with the fewest GPUs wins, then one that needs
///   no shared GPU, then the least-loaded node. Several nodes only when no single node can hold
///   the model (the nodes with the most free GPUs first, two, then three, ...).
/// - GPUs promised to other instances are left out; a GPU already shared (fraction < 1) can take
///   a vLLM instance too when the estimator says it fits in what is left: the new instance then
///   gets `--gpu-memory-utilization` set to that share (vLLM's way of running several engines on
///   one GPU). SGLang instances and vLLM instances without the flag hold their GPUs alone. With
///   the engine left to the platform, a GPU node with no free GPU is tried with vLLM.
///
/// Errors (bad input, the same for every node): unknown node ids in `req.nodes`, and make_plan's
/// input errors (extended parameters that do not parse for the engine version, an unknown
/// version).
core::Result<PlacementResult> place(const PlacementRequest& req,
                                    const std::vector<ClusterNode>& cluster);

/// The cluster as if empty and ready: no reservations, no memory used. A request that cannot be
/// placed on this view can never be placed (the create endpoint's dry run).
std::vector<ClusterNode> capacity_view(std::vector<ClusterNode> cluster);

/// The share of each GPU an engine command line takes: the value of --gpu-memory-utilization
/// (also `--gpu-memory-utilization=X`, underscores accepted) for vLLM, else 1.0.
double gpu_fraction_of(core::EngineKind kind, const std::vector<std::string>& argv);

/// Each reason as "node <name>: <message>" (or the message alone without a node), one per line;
/// parse_reasons is the inverse. The store keeps a pending instance's reasons this way in
/// Instance::state_reason.
std::string format_reasons(const std::vector<PendingReason>& reasons);
std::vector<PendingReason> parse_reasons(std::string_view text);

}  // namespace openstation::scheduler
