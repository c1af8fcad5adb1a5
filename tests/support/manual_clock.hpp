#pragma once
/// A core::Clock that moves only when a test says so. Thread-safe.

#include "core/clock.hpp"

#include <mutex>

namespace openstation::testing {

class ManualClock final : public core::Clock {
 public:
  /// Starts at an arbitrary fixed wall time (2025-01-01T00:00:00Z) and steady time.
  ManualClock()
      : wall_(TimePoint(std::chrono::seconds(1735689600))),
        steady_(std::chrono::steady_clock::time_point(std::chrono::hours(1000))) {}

  TimePoint now() const override {
    std::lock_guard lock(mutex_);
    return wall_;
  }
  std::chrono::steady_clock::time_point steady_now() const override {
    std::lock_guard lock(mutex_);
    return steady_;
  }
  /// Moves both clocks forward by `d`.
  template <class Rep, class Period>
  void advance(std::chrono::duration<Rep, Period> d) {
    std::lock_guard lock(mutex_);
    wall_ += std::chrono::duration_cast<Duration>(d);
    steady_ += std::chrono::duration_cast<std::chrono::steady_clock::duration>(d);
  }

 private:
  mutable std::mutex mutex_;
  TimePoint wall_;
  std::chrono::steady_clock::time_point steady_;
};

}  // namespace openstation::testing
