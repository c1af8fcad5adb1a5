#pragma once
/// Deletes what is older than its retention: call logs after `server.call_log_retention` (90 days
/// by default), audit events after `server.event_retention` (kept by default); 0 keeps them. A
/// pass runs when the server starts and then every `interval` on a background thread; each log
/// is cut in append order (store::LogRepo::remove_before), so nothing newer than the cut is
/// ever deleted, in chunks of `chunk` entries per transaction. Time comes from the injected
/// clock.

#include "core/clock.hpp"
#include "core/error.hpp"
#include "core/periodic.hpp"
#include "store/store.hpp"

#include <atomic>
#include <chrono>
#include <cstddef>

namespace openstation::server {

class Retention {
 public:
  struct Options {
    std::chrono::milliseconds call_logs{0};  ///< config server.call_log_retention; 0: keep
    std::chrono::milliseconds events{0};     ///< config server.event_retention; 0: keep
    std::chrono::milliseconds interval{std::chrono::hours(1)};  ///< between passes (start())
    std::size_t chunk = 10000;                                  ///< entries deleted per transaction
  };
  /// What one pass deleted.
  struct Pass {
    std::size_t call_logs = 0;
    std::size_t events = 0;
  };

  Retention(store::Store& store, const core::Clock& clock, Options options);
  ~Retention();  ///< stop()
  Retention(const Retention&) = delete;
  Retention& operator=(const Retention&) = delete;

  /// One pass now (blocking store calls). The first error is returned; the next pass retries.
  core::Result<Pass> run_once();
  /// A pass now and every `interval` on a background thread until stop(); errors are logged.
  /// Does nothing when both retentions are 0.
  void start();
  /// Stops the thread (joins). Idempotent.
  void stop();

 private:
  store::Store& store_;
  const core::Clock& clock_;
  Options options_;
  std::atomic<bool> stopping_{false};
  core::Periodic passes_;
};

}  // namespace openstation::server
