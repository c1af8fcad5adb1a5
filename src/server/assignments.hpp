#pragma once
/// The bridge between the reconciler, which decides what runs where, and the agent endpoints,
/// which hand each node its desired set (the long-poll watch of docs/agent.md).
///
/// An instance's `assignment_json` (store::Instance) holds one agent::Assignment per node it
/// spans, keyed by node id: {"<node_id>": {Assignment...}, ...}. A single-node instance has one
/// entry whose Assignment id is the instance id; a multi-node instance's entries have ids
/// "<instance_id>.r<rank>" (rank 0 = the head). The node's desired set is every Assignment keyed
/// by its id in the instances that are not stopped (draining instances stay until the reconciler
/// removes them, so the agent keeps them running while the gateway drains).
///
/// Generations only ever grow, also across server restarts: they start from the wall-clock
/// milliseconds at construction, so an agent that knows generation N from before a restart is
/// never told "nothing changed" about a different set.

#include "agent/protocol.hpp"
#include "core/clock.hpp"
#include "core/error.hpp"
#include "http/asio.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

namespace openstation::server {

/// Node id → what that node runs for one instance.
using InstanceAssignments = std::map<std::string, agent::Assignment>;

/// JSON text of an instance's assignments (the store's assignment_json).
std::string assignments_to_json(const InstanceAssignments& a);
/// Parses assignment_json; "" is an empty map. Errors: "server.bad_assignment" (internal: the
/// store holds something this binary did not write).
core::Result<InstanceAssignments> parse_assignments(std::string_view json);

/// The id of the Assignment for rank `rank` of an instance spanning `nodes` nodes.
std::string assignment_id(std::string_view instance_id, std::size_t rank, std::size_t nodes);
/// The instance id an Assignment id belongs to (the inverse of assignment_id).
std::string instance_of_assignment(std::string_view assignment_id);

/// Per-node generations, and waiting for them to change. Thread-safe. The reconciler (or any code
/// that changes what a node should run) calls notify(node) after committing the change; the
/// assignments endpoint long-polls with wait_change().
class AssignmentNotifier {
 public:
  explicit AssignmentNotifier(const core::Clock& clock);
  ~AssignmentNotifier();
  AssignmentNotifier(const AssignmentNotifier&) = delete;
  AssignmentNotifier& operator=(const AssignmentNotifier&) = delete;

  /// The node's current generation.
  std::uint64_t generation(std::string_view node_id) const;
  /// Bumps the node's generation and wakes its waiters.
  void notify(std::string_view node_id);
  /// Bumps every node's generation (after a restart of the reconciler, a node removal, ...).
  void notify_all();
  /// Completes when the node's generation differs from `known`, or after `timeout`, with the
  /// generation then. Runs on the calling coroutine's executor; a notify from any thread wakes
  /// it.
  http::Awaitable<std::uint64_t> wait_change(std::string node_id, std::uint64_t known,
                                             std::chrono::milliseconds timeout);
  /// Wakes every waiter now (server shutdown): they return the current generation.
  void shutdown();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace openstation::server
