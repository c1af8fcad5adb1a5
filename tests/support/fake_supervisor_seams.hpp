#pragma once
/// Fakes for the supervisor's seams: a process launcher whose processes live in a table the test
/// controls, a readiness probe with scripted answers per port, and a port checker with a set of
/// busy ports. All deterministic; no processes, sockets or time.

#include "agent/ports.hpp"
#include "agent/process_launcher.hpp"
#include "agent/readiness.hpp"

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace openstation::testing {

class FakeProcessLauncher final : public agent::ProcessLauncher {
 public:
  struct Proc {
    agent::LaunchRequest request;
    bool running = true;
    std::optional<agent::ExitStatus> exit;  ///< set by the test to make it end
    std::vector<int> signals;
  };
  std::map<pid_t, Proc> procs;
  std::vector<agent::LaunchRequest> launches;
  /// The next launch fails with this error (once).
  std::optional<core::Error> fail_next;
  /// SIGTERM ends the process (with killed_by(SIGTERM)) unless false; SIGKILL always does.
  bool obey_sigterm = true;
  pid_t next_pid = 1000;

  core::Result<agent::ProcessHandle> launch(const agent::LaunchRequest& req) override {
    launches.push_back(req);
    if (fail_next) {
      auto e = *fail_next;
      fail_next.reset();
      return e;
    }
    const pid_t pid = next_pid++;
    procs[pid] = Proc{req, true, std::nullopt, {}};
    return agent::ProcessHandle{pid, static_cast<std::uint64_t>(pid) * 10};
  }
  bool signal_group(const agent::ProcessHandle& p, int sig) override {
    auto it = procs.find(p.pid);
    if (it == procs.end() || !it->second.running) return false;
    it->second.signals.push_back(sig);
    if (sig == 9 || (sig == 15 && obey_sigterm)) {
      if (!it->second.exit) it->second.exit = agent::ExitStatus::killed_by(sig);
    }
    return true;
  }
  std::optional<agent::ExitStatus> poll(const agent::ProcessHandle& p) override {
    auto it = procs.find(p.pid);
    if (it == procs.end()) return agent::ExitStatus{};
    if (!it->second.running || !it->second.exit) return std::nullopt;
    it->second.running = false;
    return it->second.exit;
  }
  bool alive(const agent::ProcessHandle& p) override {
    auto it = procs.find(p.pid);
    return it != procs.end() && it->second.running && !it->second.exit &&
           p.start_time == static_cast<std::uint64_t>(p.pid) * 10;
  }

  /// The process most recently launched.
  pid_t last_pid() const { return procs.empty() ? -1 : procs.rbegin()->first; }
  /// Makes `pid` end with `status` (seen on the next poll).
  void end(pid_t pid, agent::ExitStatus status) { procs.at(pid).exit = status; }
  std::size_t running_count() const {
    std::size_t n = 0;
    for (const auto& [pid, p] : procs) n += p.running && !p.exit ? 1 : 0;
    return n;
  }
};

class FakeReadinessProbe final : public agent::ReadinessProbe {
 public:
  std::set<std::uint16_t> ready_ports;
  std::vector<std::uint16_t> probed;
  agent::ProbeResult probe(std::uint16_t port, std::string_view /*path*/) override {
    probed.push_back(port);
    if (ready_ports.count(port)) return {agent::ProbeResult::Status::ready, "HTTP 200"};
    return {agent::ProbeResult::Status::not_yet, "connection refused"};
  }
};

class FakePortChecker final : public agent::PortChecker {
 public:
  std::set<std::uint16_t> busy;
  std::map<std::uint16_t, agent::PortOwner> owners;
  bool is_free(std::uint16_t port) override { return !busy.count(port); }
  std::optional<agent::PortOwner> owner(std::uint16_t port) override {
    const auto it = owners.find(port);
    if (it == owners.end()) return std::nullopt;
    return it->second;
  }
};

}  // namespace openstation::testing
