#pragma once
/// The engine process supervisor: keeps the set of engine instances this node should run
/// running. Level-triggered — `reconcile()` gives it the whole desired set, `tick()` (driven by
/// the injected clock, never sleeping) observes the processes, asks the pure `plan()`
/// (supervisor_plan.hpp, where the state diagram is) what to do, and does it. `SupervisorRunner`
/// is the thin thread that calls tick() periodically in the agent.
///
/// Processes are launched through `ProcessLauncher` (argv, never a shell; own process group;
/// stdout and stderr appended to `<log dir>/<id>/engine.log`, rotated by size on the tick), probed
/// through `ReadinessProbe`, given ports by a `PortAllocator`. The instances that have a process
/// are persisted (instance_store.hpp) so a restarted agent adopts them with `recover()`.

#include "agent/instance_store.hpp"
#include "agent/log_files.hpp"
#include "agent/ports.hpp"
#include "agent/process_launcher.hpp"
#include "agent/readiness.hpp"
#include "agent/supervisor_plan.hpp"
#include "core/clock.hpp"
#include "core/error.hpp"
#include "core/periodic.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace openstation::agent {

/// One engine instance as the agent should run it.
struct InstanceSpec {
  /// Unique on the node; letters, digits, '.', '_', '-' (it names the log directory).
  std::string id;
  /// The command. "{port}" in an argument or env value becomes the first allocated port,
  /// "{port1}", "{port2}", … the others.
  std::vector<std::string> argv;
  std::vector<std::pair<std::string, std::string>> env;  ///< on top of the agent's environment
  std::filesystem::path working_dir;                     ///< empty: the agent's
  unsigned ports = 1;                                    ///< how many ports to allocate
  /// Readiness: GET on 127.0.0.1:<first port><health_path> answers 2xx. Empty: running as soon
  /// as launched (and no health checks).
  std::string health_path = "/health";
  std::chrono::milliseconds startup_timeout{std::chrono::minutes(10)};
};

/// A stable hash of everything in a spec that needs a restart when it changes (FNV-1a 64).
std::uint64_t spec_hash(const InstanceSpec& spec);

/// The arguments with "{port}", "{portN}" replaced.
std::string expand_ports(std::string_view text, const std::vector<std::uint16_t>& ports);

/// Where and how the supervisor works.
struct SupervisorOptions {
  std::filesystem::path data_dir;  ///< state in <data_dir>/supervisor/instances.json
  std::filesystem::path log_dir;   ///< empty: <data_dir>/logs; logs in <log_dir>/<id>/engine.log
  PortRange ports;
  LogPolicy logs;
  SupervisorPolicy policy;
  std::size_t failure_log_lines = 20;  ///< log lines kept with a failure reason
};

/// What a caller (the agent API, the heartbeat) sees of one instance.
struct InstanceStatus {
  std::string id;
  InstanceState state = InstanceState::starting;
  pid_t pid = 0;  ///< 0 when no process runs
  std::vector<std::uint16_t> ports;
  std::uint64_t spec_hash = 0;
  bool adopted = false;            ///< started by an earlier agent process
  unsigned restarts = 0;           ///< launches after the first
  core::Clock::TimePoint since{};  ///< wall time of the last state change
  std::optional<ExitStatus> last_exit;
  std::string reason;  ///< why it is unhealthy, backing off, crash-looping, failed or stopping
  std::vector<std::string> last_log_lines;  ///< the log's last lines when it last failed
  std::optional<ProbeResult> last_probe;
  std::filesystem::path log_file;
};

/// What recover() did.
struct RecoveryReport {
  std::vector<std::string> adopted;  ///< ids whose process still runs and is now supervised
  std::vector<std::string> gone;     ///< ids whose process had ended (or whose pid was reused)
};

/// Supervises engine processes. All public functions are thread-safe (one internal mutex;
/// tick() holds it while probing, so other calls may wait up to the probe's timeout).
class Supervisor {
 public:
  /// The launcher, probe, port checker and clock must outlive the supervisor.
  Supervisor(SupervisorOptions options, ProcessLauncher& launcher, ReadinessProbe& probe,
             PortChecker& ports, const core::Clock& clock);
  /// Leaves the processes running (a restarted agent adopts them); stop them with
  /// reconcile({}) and ticks until idle().
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  /// Reads the state file and adopts the processes that still run with the same pid and start
  /// time: running when their port is held by their process group (or the probe answers), else
  /// starting (so the startup timeout applies). Call once, before the first reconcile().
  /// Errors: "supervisor.state_unreadable".
  core::Result<RecoveryReport> recover();

  /// Replaces the desired set. Errors (nothing changes then): "supervisor.bad_instance_id",
  /// "supervisor.duplicate_instance", "supervisor.empty_argv", "supervisor.bad_health_path"
  /// (invalid_argument). Until the first reconcile(), tick() starts and stops nothing.
  core::Result<void> reconcile(std::vector<InstanceSpec> desired);

  /// One round: observe exits, rotate logs, plan, apply, persist. Never blocks except for
  /// readiness probes (bounded by the probe's timeout).
  void tick();

  /// All instances, by id.
  std::vector<InstanceStatus> snapshot() const;
  /// One instance; nullopt when unknown.
  std::optional<InstanceStatus> status(const std::string& id) const;
  /// True when no instance exists (all stopped and forgotten).
  bool idle() const;
  /// The log file of instance `id` (whether or not it exists yet).
  std::filesystem::path log_file(const std::string& id) const;
  /// The last `n` lines of instance `id`'s log (reaching into the rotated file).
  std::vector<std::string> tail(const std::string& id, std::size_t n) const;

 private:
  struct Instance {
    ObservedInstance obs;
    ProcessHandle proc;
    bool has_process = false;
    std::vector<std::uint16_t> ports;
    std::set<std::uint16_t> avoid_ports;
    std::string health_path;
    bool adopted = false;
    unsigned launches = 0;
    core::Clock::TimePoint since{};
    std::optional<ExitStatus> last_exit;
    std::string reason;
    std::vector<std::string> failure_log;
    std::optional<ProbeResult> last_probe;
  };

  void observe(Instance& inst);
  void apply(const Action& a);
  void launch(Instance& inst, const InstanceSpec& spec);
  void set_state(Instance& inst, InstanceState s);
  void enter_crash(Instance& inst, const std::string& reason);
  void note(const Instance& inst, const std::string& line) const;
  void persist();
  InstanceStatus to_status(const std::string& id, const Instance& inst) const;
  std::filesystem::path log_path(const std::string& id) const;

  SupervisorOptions options_;
  ProcessLauncher& launcher_;
  ReadinessProbe& probe_;
  PortChecker& checker_;
  const core::Clock& clock_;
  PortAllocator allocator_;
  InstanceStore store_;

  mutable std::mutex mutex_;
  std::map<std::string, InstanceSpec> desired_;
  std::map<std::string, DesiredInstance> desired_plan_;
  bool reconciled_ = false;
  std::map<std::string, Instance> instances_;
  bool dirty_ = false;
};

/// Calls `supervisor.tick()` every `interval` on its own thread until stopped or destroyed.
class SupervisorRunner {
 public:
  SupervisorRunner(Supervisor& supervisor, std::chrono::milliseconds interval);
  ~SupervisorRunner();
  SupervisorRunner(const SupervisorRunner&) = delete;
  SupervisorRunner& operator=(const SupervisorRunner&) = delete;
  /// Stops the thread (after the tick in progress); idempotent.
  void stop();

 private:
  core::Periodic ticks_;
};

}  // namespace openstation::agent
