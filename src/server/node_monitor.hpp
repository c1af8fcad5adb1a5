#pragma once
/// Watches the nodes' heartbeats and finishes node removals.
///
/// Each sweep (every few seconds, on a background thread, or called directly by tests):
/// - a ready node whose last heartbeat is older than `server.node_timeout` becomes not_ready with
///   the reason "no heartbeat for 45 s (last at 2026-11-27T22:00:39.123Z)"; every instance on it
///   that the agents drive (scheduled, preparing, starting, running) becomes unhealthy with a
///   reason naming the node, and the reconciler is triggered so it can place them elsewhere;
/// - a draining node (DELETE /api/v1/nodes/{id}) with no instance left on it other than stopped or
///   failed ones is removed from the store, its credential forgotten.
/// A heartbeat makes a not_ready node ready again (the node routes do that, and map the reports
/// onto its instances).
///
/// Decisions are a pure function (plan_node_sweep) of the nodes, their instance counts and the
/// time; NodeMonitor applies them. Time comes from the injected clock.

#include "core/clock.hpp"
#include "core/error.hpp"
#include "core/periodic.hpp"
#include "store/store.hpp"

#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace openstation::server {

class AgentLink;
class AssignmentNotifier;
class ReconcileTrigger;

/// One thing a sweep does to a node.
struct NodeAction {
  enum class Kind { mark_not_ready, remove };
  Kind kind = Kind::mark_not_ready;
  std::string node_id;
  std::string reason;  ///< for mark_not_ready
};

/// What to do now. `live_instances` counts, per node id, the instances on the node that are not
/// stopped or failed (absent = none).
std::vector<NodeAction> plan_node_sweep(const std::vector<store::Node>& nodes,
                                        const std::map<std::string, std::size_t>& live_instances,
                                        core::Clock::TimePoint now,
                                        std::chrono::milliseconds timeout);

/// The reason a node without heartbeats is not ready: "no heartbeat for 45 s (last at …)", or,
/// when it never sent one, "no heartbeat since it registered at …".
std::string no_heartbeat_reason(const store::Node& node, core::Clock::TimePoint now);

/// Applies plan_node_sweep to the store. Thread-safe.
class NodeMonitor {
 public:
  struct Options {
    std::chrono::milliseconds timeout{std::chrono::seconds(30)};  ///< config server.node_timeout
    std::chrono::milliseconds interval{std::chrono::seconds(5)};  ///< between sweeps (start())
  };

  NodeMonitor(store::Store& store, const core::Clock& clock, ReconcileTrigger& reconcile,
              AgentLink& agents, AssignmentNotifier& assignments, Options options);
  ~NodeMonitor();  ///< stop()
  NodeMonitor(const NodeMonitor&) = delete;
  NodeMonitor& operator=(const NodeMonitor&) = delete;

  /// What one sweep did.
  struct Sweep {
    std::vector<std::string> not_ready;            ///< node ids marked not_ready
    std::vector<std::string> removed;              ///< node ids removed
    std::vector<std::string> instances_unhealthy;  ///< instance ids marked unhealthy
  };
  /// One sweep now (blocking store calls). Store errors are returned; a sweep that failed
  /// half-way is finished by the next one (each node's change is its own transaction).
  core::Result<Sweep> sweep();

  /// Sweeps every `interval` on a background thread until stop(). Errors are logged.
  void start();
  /// Stops the thread (joins). Idempotent.
  void stop();

 private:
  core::Result<void> mark_not_ready(const store::Node& node, const std::string& reason, Sweep& out);
  core::Result<void> remove(const store::Node& node, Sweep& out);

  store::Store& store_;
  const core::Clock& clock_;
  ReconcileTrigger& reconcile_;
  AgentLink& agents_;
  AssignmentNotifier& assignments_;
  Options options_;

  core::Periodic sweeper_;
};

}  // namespace openstation::server
