#pragma once
/// Injectable time. Production code takes a `Clock&`; tests pass a `ManualClock`
/// (tests/support/manual_clock.hpp) and never sleep.

#include <chrono>

namespace openstation::core {

/// A source of time. Implementations are thread-safe.
class Clock {
 public:
  using Duration = std::chrono::nanoseconds;
  using TimePoint = std::chrono::time_point<std::chrono::system_clock, Duration>;

  virtual ~Clock() = default;
  /// Wall-clock time, for timestamps shown to people and stored.
  virtual TimePoint now() const = 0;
  /// Monotonic time, for durations, timeouts and backoff.
  virtual std::chrono::steady_clock::time_point steady_now() const = 0;
};

/// The real clock.
class SystemClock final : public Clock {
 public:
  TimePoint now() const override {
    return std::chrono::time_point_cast<Duration>(std::chrono::system_clock::now());
  }
  std::chrono::steady_clock::time_point steady_now() const override {
    return std::chrono::steady_clock::now();
  }
};

}  // namespace openstation::core
