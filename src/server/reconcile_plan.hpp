#pragma once
/// The control plane's reconciliation as a pure function (DESIGN.md §3): desired services,
/// observed instances and node states in; the actions that move the store towards the desired
/// state out. No I/O, no clock: the loop (reconciler.hpp) loads the input from the store, passes
/// the time and its memory of when each instance entered its condition, and applies the actions.
///
/// What it decides, per service (docs/scheduling.md "Reconciliation"):
/// - fewer instances than `replicas` → create the missing ones, placed at once when placement
///   finds room, else pending with a reason per node;
/// - pending instances → placed when room appears (reasons refreshed otherwise); a pending
///   instance whose node_ids are set (added on chosen nodes) is placed on those nodes only;
/// - an instance on a node that is not ready → unhealthy at once; after `replace_grace`, with
///   automatic placement, replaced by a new instance elsewhere;
/// - a failed instance (the agent gave up restarting it) → replaced after a backoff that doubles
///   with its restarts (on the same listed nodes, or anywhere with automatic placement);
/// - more instances than `replicas` → the extra ones go: pending first, then failed, unhealthy,
///   the rest; newest first within each; placed ones drain, pending and failed ones are removed;
/// - a service being deleted → all its instances drain or go, then the service row is removed;
/// - draining instances are removed when the gateway reports no request in flight, or after
///   `drain_deadline`.

#include "scheduler/placement.hpp"
#include "server/assignments.hpp"
#include "store/types.hpp"

#include <chrono>
#include <cstddef>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace openstation::server {

/// How many requests the gateway has in flight on an instance (the gateway of issue [5]
/// implements it). Thread-safe, non-blocking.
class InFlightSource {
 public:
  virtual ~InFlightSource() = default;
  virtual std::size_t in_flight(std::string_view instance_id) = 0;
};

/// No gateway: nothing is ever in flight, so a draining instance goes at the next round.
class NullInFlightSource final : public InFlightSource {
 public:
  std::size_t in_flight(std::string_view) override { return 0; }
};

/// The timers of reconciliation.
struct ReconcileTimings {
  /// A node whose last heartbeat is older than this is not ready (config server.node_timeout).
  std::chrono::milliseconds node_timeout{std::chrono::seconds(30)};
  /// How long an instance's node may stay not ready before the instance is placed elsewhere.
  std::chrono::milliseconds replace_grace{std::chrono::seconds(60)};
  /// The longest a draining instance waits for in-flight requests (config gateway.drain_deadline).
  std::chrono::milliseconds drain_deadline{std::chrono::seconds(30)};
  /// Backoff before a failed instance is replaced: base × 2^restarts, at most max.
  std::chrono::milliseconds retry_base{std::chrono::seconds(10)};
  std::chrono::milliseconds retry_max{std::chrono::minutes(5)};
};

/// A service as desired, with what placement needs to place one of its instances.
struct DesiredService {
  store::Service service;
  bool deleting = false;  ///< DELETE was called: drain everything, then remove the row
  /// The request for one new instance; empty when the service cannot be placed now (its model is
  /// not ready or unreadable): `unresolved` says why, and its instances stay pending.
  std::optional<scheduler::PlacementRequest> request;
  std::string unresolved;
};

/// A node as observed.
struct ObservedNode {
  store::Node node;
  std::optional<model::NodeSpec> spec;  ///< its last inventory; empty when none or unreadable
};

/// Everything the plan looks at.
struct ReconcileInput {
  core::Clock::TimePoint now{};
  std::vector<DesiredService> services;
  std::vector<store::Instance> instances;
  std::vector<ObservedNode> nodes;
  /// When each instance entered its current condition (condition_of); absent = now.
  std::map<std::string, core::Clock::TimePoint> since;
  /// Requests in flight per draining instance (absent = 0).
  std::map<std::string, std::size_t> in_flight;
  /// Engine name (as in assignments) → kind, for reading what instances hold; names not listed
  /// are parsed as kind names.
  std::map<std::string, core::EngineKind> engine_kinds;
  ReconcileTimings timings;
};

enum class ActionKind {
  create,          ///< a new instance: placed (`placement`) or pending (`reason`)
  place,           ///< a pending instance gets `placement`
  keep_pending,    ///< a pending instance stays pending; `reason` = format_reasons(...)
  mark_unhealthy,  ///< its node is not ready; `reason` says which
  replace,         ///< remove `instance_id` and create a new instance (`placement` or pending)
  drain,           ///< start draining `instance_id`
  remove,          ///< delete `instance_id` (drained, pending or failed)
  delete_service,  ///< every instance is gone: delete the service row
};

std::string_view to_string(ActionKind k) noexcept;

struct Action {
  ActionKind kind = ActionKind::keep_pending;
  std::string service_id;
  std::string instance_id;  ///< empty for create and delete_service
  std::string reason;       ///< the state_reason to write
  std::optional<scheduler::Placement> placement;
};

/// The condition an instance is in, for the loop's `since` memory: "draining"; or "placed"
/// (scheduled … unhealthy) or its state, plus the nodes of the instance that are not ready.
std::string condition_of(const store::Instance& instance, const std::set<std::string>& not_ready);

/// Whether `node` is ready at `now`, and if not why ("no heartbeat for 45 s", the node's status
/// reason, "draining").
bool node_ready(const store::Node& node, core::Clock::TimePoint now,
                std::chrono::milliseconds node_timeout, std::string* why = nullptr);

/// The cluster placement sees: every node (ready or not) with its inventory, and the GPU shares
/// the instances that are not stopped or failed hold (read from their assignments).
std::vector<scheduler::ClusterNode> cluster_of(const ReconcileInput& in);

/// Decides. Deterministic for a given input.
std::vector<Action> plan_reconcile(const ReconcileInput& in);

/// What the agents run for a placed instance.
struct AssignmentOptions {
  std::string engine_name;  ///< the configured engine name (its command prefixes argv)
  std::string health_path = "/health";
  std::uint32_t startup_timeout_s = 600;
  std::string model_id{};   ///< the library's model id
  bool model_sync = false;  ///< the files live on the server's model store (nodes may pull them)
};

/// One agent::Assignment per node of the placement, keyed by node id: the plan's argv after the
/// engine's own command (vllm → "serve …"; SGLang → the launch_server flags), the engine port
/// replaced by "{port}" (the agent allocates it), the plan's env (CUDA_VISIBLE_DEVICES, …). A Ray
/// worker's assignment runs the engine name "ray" with `start …` and no health path.
InstanceAssignments build_assignments(std::string_view instance_id, std::string_view service_name,
                                      const scheduler::Placement& placement,
                                      const AssignmentOptions& options);

}  // namespace openstation::server
