#pragma once
/// A background thread that runs one function now and then every `interval` until stopped, or
/// sooner when triggered. For the server's sweeps (node heartbeats, retention) and the gateway's
/// store snapshots: stop() wakes a waiting thread at once and waits for a run in progress to end.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace openstation::core {

class Periodic {
 public:
  Periodic() = default;
  ~Periodic();  ///< stop()
  Periodic(const Periodic&) = delete;
  Periodic& operator=(const Periodic&) = delete;

  /// When the first run happens.
  enum class First { now, after_interval };
  /// Starts the thread, named `name` (core::name_this_thread): `run` at once (or after one
  /// interval), then `interval` after each run ends. A second start while running does nothing.
  /// With `min_gap`, a triggered run starts no sooner than `min_gap` after the last run ended: a
  /// burst of triggers costs one run per gap, not one after another.
  void start(std::string name, std::chrono::milliseconds interval, std::function<void()> run,
             First first = First::now,
             std::chrono::milliseconds min_gap = std::chrono::milliseconds(0));
  /// Runs once more as soon as possible (see min_gap) instead of waiting out the interval (a run
  /// in progress finishes first; several triggers before the next run make one run).
  void trigger();
  /// Stops the thread; idempotent. A run in progress finishes first.
  void stop();

 private:
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  bool triggered_ = false;
  std::thread thread_;
};

}  // namespace openstation::core
