#pragma once
/// The node agent daemon: ties the inventory, the supervisor, the protocol client and the agent
/// API together.
///
///     start(): identity (load <data_dir>/agent/identity.json, or register with the join token)
///              → supervisor.recover() (adopt what an earlier agent left running)
///     loop thread (every loop_interval):  supervisor.tick() → a state changed, or the heartbeat
///              is due? → heartbeat (inventory + every instance's status)
///     watch thread: long poll of the assignments → the WHOLE set → supervisor.reconcile()
///
/// With a ModelSync, an assignment whose model lives on the server's model store (model_sync)
/// reaches the supervisor only once its files are on this node: until then the heartbeat reports
/// it "preparing" with the pull's progress (or "failed" with the pull's reason), and its argv is
/// rewritten to the node's copy (rewrite_model_path). When a pull ends, the loop thread applies
/// the last set again. An instance the supervisor already runs keeps its spec while its model is
/// being checked (after an agent restart).
///
/// Level-triggered: every watch answer carries the whole desired set, so a lost answer or a missed
/// generation heals on the next poll. When the server is unreachable, calls fail and are retried
/// with exponential backoff (heartbeats timed on the injected clock in poll(); the watch thread
/// pauses on its condition variable, woken by stop()); the supervisor keeps its instances
/// running meanwhile. A 401 means the server no longer knows this node's token: the agent
/// registers again when it still has a join token, else it reports "agent.identity_rejected".
///
/// The step functions (heartbeat_now, watch_once, poll) are public so tests drive the daemon
/// deterministically; run() and stop() wrap them in the two threads.

#include "agent/agent_client.hpp"
#include "agent/model_sync.hpp"
#include "agent/protocol.hpp"
#include "agent/supervisor.hpp"
#include "core/clock.hpp"
#include "core/error.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace openstation::agent {

/// What the daemon needs (mapped from config::Config by the CLI).
struct DaemonOptions {
  std::filesystem::path data_dir;  ///< the identity lives in <data_dir>/agent/identity.json
  std::string server_url;          ///< "https://host:32206" (or http:// without TLS)
  http::TlsClientOptions tls;      ///< how an https server is trusted (pinned fingerprint, CA)
  std::string join_token;          ///< the cluster's join token; may be empty once registered
  std::string name;                ///< the node's name
  std::string address;             ///< where the server reaches this node
  std::uint16_t api_port = 32208;  ///< reported at registration
  std::map<std::string, EngineCommand> engines;  ///< engine name → command prefix and env
  std::chrono::milliseconds heartbeat_interval{std::chrono::seconds(5)};
  std::chrono::seconds watch_wait{30};  ///< the long poll's wait
  std::chrono::milliseconds retry_base{std::chrono::seconds(1)};
  std::chrono::milliseconds retry_max{std::chrono::seconds(30)};
  std::chrono::milliseconds request_timeout{std::chrono::seconds(15)};
  std::chrono::milliseconds loop_interval{std::chrono::milliseconds(500)};  ///< run()'s tick
};

/// The agent daemon. Thread-safe: the step functions may be called from several threads.
class Daemon {
 public:
  /// `inventory` returns the node's inventory as JSON text (inventory_to_json serialised); it is
  /// called for registration and for each heartbeat. Supervisor and clock must outlive the daemon.
  /// `sync` (may be null: model paths are used as the server sends them) must outlive the
  /// daemon too.
  Daemon(DaemonOptions options, Supervisor& supervisor, std::function<std::string()> inventory,
         const core::Clock& clock, ModelSync* sync = nullptr);
  ~Daemon();  ///< stop()
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  /// Loads or obtains the identity, then recovers the supervisor. Errors: "agent.no_join_token"
  /// (invalid_argument) with no identity and no token; the register call's errors (a server
  /// that cannot be reached is an error here: the first start needs it);
  /// "agent.identity_*" and "supervisor.state_unreadable".
  core::Result<RecoveryReport> start();

  /// Sends one heartbeat now. On 401 re-registers (join token) and retries once.
  core::Result<HeartbeatResponse> heartbeat_now();
  /// One long poll of `wait`; reconciles the supervisor with the answer. Returns true when the
  /// generation changed. An assignment the agent cannot turn into a spec (unknown engine) is
  /// left out of the set and reported through the heartbeat (state "failed" with the reason).
  core::Result<bool> watch_once(std::chrono::seconds wait);
  /// One loop round: supervisor.tick(); then a heartbeat when an instance changed state or the
  /// interval passed since the last one (or, after failures, when the backoff expired).
  /// Returns whether a heartbeat was attempted.
  bool poll();

  /// Starts the loop and watch threads. Call after start().
  void run();
  /// Stops both threads (a watch in flight ends within its request timeout + wait at worst: the
  /// daemon abandons it by closing nothing; keep watch_wait short in tests). Idempotent.
  void stop();

  /// The current identity (after start()).
  std::optional<NodeIdentity> identity() const;
  /// The node token, "" before start(); for the agent API's authentication.
  std::string node_token() const;
  /// The last generation applied.
  std::uint64_t generation() const;
  /// The last error of the loop or the watch ("" when the last calls succeeded).
  std::string last_error() const;

 private:
  core::Result<NodeIdentity> register_node();
  /// Turns the set into specs (holding back those whose model is not on the node yet) and
  /// reconciles the supervisor.
  core::Result<void> apply(const AssignmentSet& set);
  core::Result<void> handle_unauthorized();
  HeartbeatRequest build_heartbeat() const;
  /// The "preparing" report of an assignment waiting for its model (call with mutex_ held).
  InstanceReport preparing_report(const std::string& id, const std::string& model_id) const;
  std::chrono::milliseconds backoff(unsigned failures) const;
  void watch_loop();
  void main_loop();

  DaemonOptions options_;
  Supervisor& supervisor_;
  std::function<std::string()> inventory_;
  const core::Clock& clock_;
  ModelSync* sync_;
  AgentClient client_;

  std::mutex apply_mutex_;  ///< one apply() at a time (watch and loop threads)
  std::optional<AssignmentSet> last_set_;
  std::uint64_t applied_sync_version_ = 0;
  std::map<std::string, InstanceSpec> applied_;  ///< id → the spec given to the supervisor

  mutable std::mutex mutex_;
  std::optional<NodeIdentity> identity_;
  std::uint64_t generation_ = 0;
  std::map<std::string, InstanceReport> rejected_;  ///< assignments that could not be specs
  std::map<std::string, std::string> preparing_;    ///< assignment id → model id being pulled
  std::map<std::string, std::string> last_states_;  ///< id → state at the last heartbeat
  bool heartbeat_sent_ = false;
  std::chrono::steady_clock::time_point next_heartbeat_{};
  unsigned heartbeat_failures_ = 0;
  unsigned watch_failures_ = 0;
  std::string last_error_;

  std::mutex run_mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread loop_thread_;
  std::thread watch_thread_;
};

}  // namespace openstation::agent
