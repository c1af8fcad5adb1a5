#pragma once
/// A background thread that runs one function now and then every `interval` until stopped. For
/// the server's sweeps (node heartbeats, retention): stop() wakes a waiting thread at once and
/// waits for a run in progress to end.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace openstation::core {

class Periodic {
 public:
  Periodic() = default;
  ~Periodic();  ///< stop()
  Periodic(const Periodic&) = delete;
  Periodic& operator=(const Periodic&) = delete;

  /// Starts the thread: `run` at once, then `interval` after each run ends. A second start
  /// while running does nothing.
  void start(std::chrono::milliseconds interval, std::function<void()> run);
  /// Stops the thread; idempotent. A run in progress finishes first.
  void stop();

 private:
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace openstation::core
