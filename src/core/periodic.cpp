#include "core/periodic.hpp"

#include <utility>

namespace openstation::core {

Periodic::~Periodic() {
  stop();
}

void Periodic::start(std::chrono::milliseconds interval, std::function<void()> run) {
  std::lock_guard lock(mutex_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this, interval, run = std::move(run)] {
    std::unique_lock guard(mutex_);
    while (!stopping_) {
      guard.unlock();
      run();
      guard.lock();
      wake_.wait_for(guard, interval, [this] { return stopping_; });
    }
  });
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
