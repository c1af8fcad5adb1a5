#pragma once
/// How the agents' heartbeat reports become an instance's observed state in the store. Pure
/// functions, no I/O.
///
/// An instance spans one node or several (assignments.hpp). Each rank's agent reports its own
/// process; the instance's state is the head's (rank 0), degraded when any other rank is worse:
/// a failed rank makes the instance failed, an unhealthy (or restarting) one makes it unhealthy.
///
/// The supervisor's states map as follows (plus the agent's own "preparing": model files being
/// pulled → preparing): starting → starting, running → running, unhealthy,
/// backoff and crash_loop → unhealthy (the agent keeps restarting it; the reason says so),
/// failed → failed (it cannot be started at all until its specification changes), stopping → no
/// change (the agent is stopping it because the server asked). Reports never change an instance
/// that is pending, draining, stopped or failed in the store: those states are the reconciler's.

#include "agent/protocol.hpp"
#include "server/assignments.hpp"
#include "store/types.hpp"

#include <map>
#include <optional>
#include <string>

namespace openstation::server {

/// The last report of each assignment, keyed by assignment id, with the node that sent it.
struct RankReport {
  std::string node_name;
  agent::InstanceReport report;
};
using RankReports = std::map<std::string, RankReport, std::less<>>;

/// The instance with the reported state, pid, port, restarts and reason applied, or nullopt when
/// the reports change nothing (or the store's state is not the agents' to change). `assignments`
/// is the instance's parsed assignment_json; reports of ranks not in it are ignored, ranks not
/// reported yet count as not known.
std::optional<store::Instance> observe_instance(const store::Instance& current,
                                                const InstanceAssignments& assignments,
                                                const RankReports& reports);

}  // namespace openstation::server
