#pragma once
/// Counters that many threads write without sharing a cache line. A counter that every request
/// thread updates for every request makes each of them wait for the line to come back from the
/// core that wrote it last; split into per-thread slots, each thread writes only its own line and
/// readers (rare: metrics, draining, shutdown) sum the slots.

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace openstation::core {

/// The calling thread's slot among `n`: threads take 0, 1, 2, ... (modulo `n`) in the order they
/// first ask, and keep it for life. Threads past `n` share slots: correct, only slower.
inline std::size_t thread_slot(std::size_t n) {
  static std::atomic<std::size_t> next{0};
  thread_local const std::size_t index = next.fetch_add(1, std::memory_order_relaxed);
  return index % n;
}

/// `N` values of `T` (atomics), one cache line each: a thread writes the one thread_slot() gives
/// it; readers visit them all.
template <class T, std::size_t N = 8>
class PerThreadSlots {
 public:
  static constexpr std::size_t kSlots = N;
  T& mine() { return slots_[thread_slot(N)].value; }
  template <class F>
  void for_each(F&& f) const {
    for (const auto& s : slots_) f(s.value);
  }

 private:
  struct alignas(64) Slot {
    T value{};
  };
  std::array<Slot, N> slots_{};
};

/// A counter in per-thread slots; its value is their sum.
template <std::size_t N = 8>
class ShardedCounter {
 public:
  /// Counts one for its lifetime, in the slot of the thread that made it (it may end on another
  /// thread; the sum stays right).
  class Hold {
   public:
    explicit Hold(ShardedCounter& c) : slot_(c.slots_.mine()) {
      slot_.fetch_add(1, std::memory_order_relaxed);
    }
    ~Hold() { slot_.fetch_sub(1, std::memory_order_relaxed); }
    Hold(const Hold&) = delete;
    Hold& operator=(const Hold&) = delete;

   private:
    std::atomic<std::int64_t>& slot_;
  };

  std::int64_t sum() const {
    std::int64_t total = 0;
    slots_.for_each([&](const auto& v) { total += v.load(std::memory_order_relaxed); });
    return total;
  }

 private:
  PerThreadSlots<std::atomic<std::int64_t>, N> slots_;
};

}  // namespace openstation::core
