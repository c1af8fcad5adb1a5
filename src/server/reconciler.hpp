#pragma once
/// The reconciliation loop: a thin shell around plan_reconcile (reconcile_plan.hpp). Each round
/// loads the services, instances, nodes and models from the store, resolves what each service
/// needs to place an instance (the model's architecture from the library or the catalog, the
/// configured engine), runs the pure plan and applies its actions, each in its own store
/// transaction: new instances with their agents' assignments (assignment_json), placements,
/// pending reasons, unhealthy marks, replacements, drains and removals. After each commit the
/// nodes whose desired set changed are notified (AssignmentNotifier), and every change is an
/// audit event with actor "system".
///
/// Rounds run on a background thread: after trigger() (a service changed, a heartbeat reported a
/// failure, a node went not-ready) and at least every `interval`. Time for the decisions comes from
/// the injected clock; the loop remembers when each instance entered its current condition
/// (restarting the server restarts those timers, which only delays a replacement or a drain).
///
/// A service being deleted carries {"deleting": true} in its spec_json (service_routes.cpp sets
/// it): its instances drain, then the row is removed.

#include "config/config.hpp"
#include "core/clock.hpp"
#include "core/error.hpp"
#include "server/api/routes.hpp"
#include "server/assignments.hpp"
#include "server/reconcile_plan.hpp"
#include "store/store.hpp"

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace openstation::server {

/// Whether a service's spec_json marks it as being deleted.
bool service_deleting(const store::Service& s);
/// spec_json with the deleting mark set (other members kept).
std::string mark_deleting(const std::string& spec_json);

/// The engine name (a key of `engines`) that runs plans of `kind`: the one named like the kind
/// ("vllm", "sglang", "vllm-cpu"), else the first configured with that kind, else the kind's name.
std::string engine_name_for(const std::map<std::string, config::EngineConfig>& engines,
                            core::EngineKind kind);

/// What placing an instance of `service` needs, resolved from the store (its model) and the
/// configuration (its engine). Blocking. Errors (the service cannot be placed now, the message says
/// why): "service.model_not_ready" (its model is still downloading or failed),
/// "service.model_unknown" (the model's architecture cannot be read), "service.engine_unknown".
core::Result<scheduler::PlacementRequest> placement_request(
    store::Store& store, const store::Service& service,
    const std::map<std::string, config::EngineConfig>& engines);

class Reconciler final : public ReconcileTrigger {
 public:
  struct Options {
    std::chrono::milliseconds interval{std::chrono::seconds(2)};
    ReconcileTimings timings;
    std::map<std::string, config::EngineConfig> engines;  ///< config.engines
    std::uint32_t startup_timeout_s = 600;
  };

  /// All references must outlive the reconciler.
  Reconciler(store::Store& store, const core::Clock& clock, AssignmentNotifier& notifier,
             InFlightSource& in_flight, Options options);
  ~Reconciler() override;  ///< stop()
  Reconciler(const Reconciler&) = delete;
  Reconciler& operator=(const Reconciler&) = delete;

  /// Asks for a round soon. Thread-safe, non-blocking.
  void trigger() override;

  /// What one round did.
  struct Round {
    std::vector<Action> actions;      ///< as planned
    std::size_t applied = 0;          ///< actions whose transaction committed
    std::vector<std::string> errors;  ///< one line per action that failed (retried next round)
    std::set<std::string> notified;   ///< node ids notified
  };
  /// One round now, on the calling thread (blocking store calls). Errors: loading from the store
  /// failed (nothing was applied).
  core::Result<Round> run_once();

  /// Runs rounds on a background thread until stop(). Errors are logged.
  void start();
  /// Stops the thread (joins). Idempotent.
  void stop();
  /// Rounds completed since construction (tests wait on it).
  std::uint64_t rounds() const;

 private:
  struct Seen {
    std::string condition;
    core::Clock::TimePoint since;
  };
  core::Result<void> apply(const Action& a, const std::map<std::string, store::Service>& services,
                           std::set<std::string>& notify);
  void event(std::string_view action, std::string_view kind, std::string_view id,
             const std::string& detail);

  store::Store& store_;
  const core::Clock& clock_;
  AssignmentNotifier& notifier_;
  InFlightSource& in_flight_;
  Options options_;

  std::mutex round_mutex_;  ///< one round at a time
  std::map<std::string, Seen> seen_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool triggered_ = false;
  bool stopping_ = false;
  std::uint64_t rounds_ = 0;
  std::thread thread_;
};

}  // namespace openstation::server
