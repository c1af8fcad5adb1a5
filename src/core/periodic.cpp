#include "core/periodic.hpp"

#include "core/thread_name.hpp"

#include <utility>

namespace openstation::core {

Periodic::~Periodic() {
  stop();
}

void Periodic::start(std::string name, std::chrono::milliseconds interval,
                     std::function<void()> run, First first, std::chrono::milliseconds min_gap) {
  std::lock_guard lock(mutex_);
  if (thread_.joinable()) return;
  stopping_ = false;
  triggered_ = false;
  thread_ = named_thread(std::move(name), [this, interval, first, min_gap, run = std::move(run)] {
    std::unique_lock guard(mutex_);
    bool wait = first == First::after_interval;
    while (!stopping_) {
      if (wait) {
        const auto ended = std::chrono::steady_clock::now();
        wake_.wait_for(guard, interval, [this] { return stopping_ || triggered_; });
        if (stopping_) break;
        if (triggered_ && min_gap.count() > 0) {
          wake_.wait_until(guard, ended + min_gap, [this] { return stopping_; });
          if (stopping_) break;
        }
      }
      wait = true;
      triggered_ = false;
      guard.unlock();
      run();
      guard.lock();
    }
  });
}

void Periodic::trigger() {
  {
    std::lock_guard lock(mutex_);
    triggered_ = true;
  }
  wake_.notify_all();
}

void Periodic::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace openstation::core
