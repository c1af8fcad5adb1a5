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

/// A counter split into `N` per-thread slots, one cache line each; its value is their sum.
template <std::size_t N = 8>
class ShardedCounter {
 public:
  /// The calling thread's slot: a guard that undoes its add keeps it (it may end on another
  /// thread; the sum stays right).
  std::atomic<std::int64_t>& mine() { return slots_[thread_slot(N)].value; }
  void add(std::int64_t n) { mine().fetch_add(n, std::memory_order_relaxed); }
  std::int64_t sum() const {
    std::int64_t total = 0;
    for (const auto& s : slots_) total += s.value.load(std::memory_order_relaxed);
    return total;
  }

 private:
  struct alignas(64) Slot {
    std::atomic<std::int64_t> value{0};
  };
  std::array<Slot, N> slots_{};
};

}  // namespace openstation::core
