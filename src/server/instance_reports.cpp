#include "server/instance_reports.hpp"

#include <algorithm>
#include <vector>

namespace openstation::server {
namespace {

using store::InstanceState;

/// The store state a supervisor state means; nullopt: no change.
std::optional<InstanceState> map_state(std::string_view s) {
  if (s == "preparing") return InstanceState::preparing;
  if (s == "starting") return InstanceState::starting;
  if (s == "running") return InstanceState::running;
  if (s == "unhealthy" || s == "backoff" || s == "crash_loop") return InstanceState::unhealthy;
  if (s == "failed") return InstanceState::failed;
  return std::nullopt;
}

/// Worse is larger: running < starting < unhealthy < failed.
int severity(InstanceState s) {
  switch (s) {
    case InstanceState::running: return 0;
    case InstanceState::preparing:
    case InstanceState::starting: return 1;
    case InstanceState::unhealthy: return 2;
    case InstanceState::failed: return 3;
    default: return 1;
  }
}

bool agents_own(InstanceState s) {
  switch (s) {
    case InstanceState::scheduled:
    case InstanceState::preparing:
    case InstanceState::starting:
    case InstanceState::running:
    case InstanceState::unhealthy: return true;
    default: return false;
  }
}

std::string reason_of(const agent::InstanceReport& r, std::string_view fallback) {
  if (!r.reason.empty()) return r.reason;
  return std::string(fallback);
}

}  // namespace

std::optional<store::Instance> observe_instance(const store::Instance& current,
                                                const InstanceAssignments& assignments,
                                                const RankReports& reports) {
  if (!agents_own(current.state)) return std::nullopt;
  const std::size_t n = current.node_ids.size();
  if (n == 0 || assignments.empty()) return std::nullopt;

  // The head: rank 0, the first node's assignment.
  const std::string head_id = assignment_id(current.id, 0, n);
  const auto head = reports.find(head_id);
  if (head == reports.end()) return std::nullopt;
  const auto head_state = map_state(head->second.report.state);
  if (!head_state) return std::nullopt;

  store::Instance next = current;
  next.state = *head_state;
  next.state_reason =
      *head_state == InstanceState::running ? std::string() : head->second.report.reason;
  if (head->second.report.state == "backoff" || head->second.report.state == "crash_loop") {
    next.state_reason = head->second.report.state + ": " +
                        reason_of(head->second.report, "the engine exited; restarting");
  }
  next.pid = head->second.report.pid;
  if (!head->second.report.ports.empty()) next.port = head->second.report.ports.front();
  // The agent counts restarts in memory: after an agent restart (the instance adopted) it counts
  // from 0 again, so the stored count never goes down.
  next.restarts = std::max(current.restarts, static_cast<int>(head->second.report.restarts));

  // The other ranks can only make it worse.
  for (std::size_t rank = 1; rank < n; ++rank) {
    const auto it = reports.find(assignment_id(current.id, rank, n));
    if (it == reports.end()) continue;
    const auto s = map_state(it->second.report.state);
    if (!s || severity(*s) <= severity(next.state) || severity(*s) < 2) continue;
    next.state = *s;
    next.state_reason = "rank " + std::to_string(rank) + " on node " + it->second.node_name +
                        " is " + it->second.report.state + ": " +
                        reason_of(it->second.report, "no reason given");
  }

  if (next.state == current.state && next.state_reason == current.state_reason &&
      next.pid == current.pid && next.port == current.port && next.restarts == current.restarts) {
    return std::nullopt;
  }
  return next;
}

}  // namespace openstation::server
