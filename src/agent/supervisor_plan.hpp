#pragma once
/// The supervisor's decisions as a pure function: `plan(desired, observed, now, policy)` looks at
/// what should run and what was seen, and returns the actions that converge one to the other.
/// No I/O, no clock: `Supervisor` (supervisor.hpp) observes, calls plan() and applies.
///
/// The per-instance state machine (each arrow is one Action):
///
/// ```
///                       launch
///   (desired) ───────────────────────────┐
///                                        ▼
///        ┌──────────── exit ─────── starting ──── startup timeout ──┐
///        │                            │  probe ok                   │ terminate
///        │                            ▼                             ▼
///        ├──────────── exit ─────── running ─── removed/changed ─► stopping ── exit ──► stopped
///        │                         ▲   │ probe fails ×N            ▲   │ grace over     (forget;
///        │                probe ok │   ▼                           │   └─► SIGKILL      or launch
///        ├──────────── exit ─────── unhealthy ─── removed/changed ──┘                  the new
///        spec) ▼
///   crash: K-th in the window? ── no ──► backoff ──┐ (next start = now + base·2^(n-1), ≤ max)
///        │                                         │
///        └──────────────────── yes ──► crash_loop ─┤ (next start = now + max)
///                                                  │ time reached, or spec changed
///                                                  └──────────────► launch ──► starting
///
///   launch refused for good (executable missing, bad spec) ──► failed(reason), until the spec
///   changes. An exit while starting with the instance's port now held by another process is a
///   port collision: backoff with no delay and a new port, not counted as a crash. A startup
///   timeout is counted as a crash once the process has stopped.
/// ```

#include "agent/process_launcher.hpp"
#include "agent/readiness.hpp"

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace openstation::agent {

using SteadyTime = std::chrono::steady_clock::time_point;

/// Where an instance is in its life. See the diagram above.
enum class InstanceState { starting, running, unhealthy, stopping, backoff, crash_loop, failed };
/// "starting", "running", "unhealthy", "stopping", "backoff", "crash_loop", "failed".
std::string_view to_string(InstanceState s) noexcept;

/// Why an instance is being stopped; decides what follows its exit.
enum class StopReason { removed, spec_changed, startup_timeout };

/// Timing and thresholds of the state machine.
struct SupervisorPolicy {
  std::chrono::milliseconds backoff_base{std::chrono::seconds(2)};
  std::chrono::milliseconds backoff_max{std::chrono::minutes(5)};
  unsigned crash_loop_threshold = 5;  ///< this many crashes within the window → crash_loop
  std::chrono::milliseconds crash_loop_window{std::chrono::minutes(10)};
  std::chrono::milliseconds stop_grace{std::chrono::seconds(30)};  ///< SIGTERM → SIGKILL
  std::chrono::milliseconds startup_probe_interval{std::chrono::seconds(2)};
  std::chrono::milliseconds health_probe_interval{std::chrono::seconds(10)};
  unsigned unhealthy_after = 3;  ///< consecutive failed probes while running → unhealthy
};

/// The delay before restart number `crashes` (1-based): base·2^(crashes-1), capped at max.
std::chrono::milliseconds backoff_delay(const SupervisorPolicy& p, unsigned crashes);

/// What plan() needs of a desired instance.
struct DesiredInstance {
  std::uint64_t spec_hash = 0;
  std::chrono::milliseconds startup_timeout{std::chrono::minutes(10)};
  bool probed = true;  ///< has a health path; without one an instance is running once launched
  std::string health_path;
};

/// What plan() knows of an instance that exists (has a process, or waits to get one).
struct ObservedInstance {
  std::string id;
  InstanceState state = InstanceState::starting;
  std::uint64_t spec_hash = 0;
  SteadyTime state_since{};
  /// An exit seen by this tick's observation and not yet acted upon.
  std::optional<ExitStatus> exit;
  /// When `exit` came while starting and the port is now held by someone else: who.
  std::optional<std::string> port_conflict;
  /// The newest probe answer not yet acted upon.
  std::optional<ProbeResult> probe;
  unsigned probe_failures = 0;  ///< consecutive failed probes
  std::optional<SteadyTime> last_probe_at;
  SteadyTime next_start_at{};  ///< backoff and crash_loop
  SteadyTime stop_sent_at{};   ///< stopping
  bool kill_sent = false;      ///< stopping
  StopReason stop_reason = StopReason::removed;
  std::string stop_detail;              ///< why a startup timeout stopped it
  std::vector<SteadyTime> crash_times;  ///< crashes, oldest first
};

/// One step towards the desired state.
struct Action {
  enum class Kind {
    launch,         ///< allocate ports, start the process → starting
    probe,          ///< run the readiness probe, record the answer
    terminate,      ///< SIGTERM to the group → stopping (stop_reason)
    kill,           ///< SIGKILL to the group (stays stopping)
    to_running,     ///< probe answered → running
    to_unhealthy,   ///< probes failed → unhealthy (reason)
    to_backoff,     ///< crashed (or port collision) → backoff until `at`
    to_crash_loop,  ///< crashed too often → crash_loop until `at`
    forget,         ///< gone and not desired → removed from the table, ports released
  };
  Kind kind = Kind::probe;
  std::string id;
  SteadyTime at{};                               ///< to_backoff, to_crash_loop: next start
  StopReason stop_reason = StopReason::removed;  ///< terminate
  std::string reason;                            ///< human text for transitions and terminate
  bool count_crash = false;  ///< to_backoff / to_crash_loop: record a crash at now
  bool new_port = false;     ///< to_backoff: drop the port, it collided

  friend bool operator==(const Action&, const Action&) = default;
};
/// "launch", "probe", "terminate", …
std::string_view to_string(Action::Kind k) noexcept;

/// The transition for a crash of `o` at `now` (counted against its recent crashes): to_backoff,
/// or to_crash_loop when it is the threshold-th within the window. `reason` says what happened.
Action crash_transition(const ObservedInstance& o, SteadyTime now, const SupervisorPolicy& policy,
                        std::string reason);

/// The actions that move `observed` towards `desired` at time `now`. Pure and deterministic:
/// actions come ordered by instance id.
std::vector<Action> plan(const std::map<std::string, DesiredInstance>& desired,
                         const std::vector<ObservedInstance>& observed, SteadyTime now,
                         const SupervisorPolicy& policy);

}  // namespace openstation::agent
