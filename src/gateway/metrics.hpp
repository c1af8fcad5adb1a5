#pragma once
/// The gateway's Prometheus metrics (text exposition format 0.0.4 on GET /metrics): requests by
/// model and status, TTFT and duration histograms, tokens, and requests in flight per instance.
/// Thread-safe. Each I/O thread records into a shard of its own (one lock that only the
/// rendering contends for), so no two threads write the same memory per request; /metrics sums
/// the shards.

#include "gateway/route_table.hpp"

#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

namespace openstation::gateway {

/// What one finished request adds.
struct RequestSample {
  std::string_view model;  ///< empty when the request never got as far as a model
  int status = 0;
  double duration_s = 0;
  double ttft_s = -1;  ///< < 0: not a stream, or no token came
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
};

/// A cumulative histogram with fixed bucket bounds (seconds).
struct Histogram {
  static constexpr std::array<double, 14> kBounds{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                  1,     2.5,  5,     10,   30,  60,   120};
  std::array<std::uint64_t, kBounds.size()> buckets{};
  std::uint64_t count = 0;
  double sum = 0;
  void observe(double v);
  /// Adds another histogram's counts (same bounds).
  void add(const Histogram& other);
};

class Metrics {
  struct PerModel {
    std::map<int, std::uint64_t> by_status;
    Histogram duration;
    Histogram ttft;
    std::uint64_t prompt_tokens = 0;
    std::uint64_t completion_tokens = 0;
    void add(const PerModel& other);
  };

 public:
  /// One writer's part of the counters, on cache lines of its own.
  class alignas(64) Shard {
    friend class Metrics;
    mutable std::mutex mutex_;
    std::map<std::string, PerModel, std::less<>> models_;
    // The entries the last request counted in (map nodes never move and are never erased): a
    // thread that serves one model with one status most of the time skips both lookups.
    std::string_view last_model_;
    PerModel* last_ = nullptr;
    int last_status_ = 0;
    std::uint64_t* last_status_count_ = nullptr;
  };

  Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  /// A new shard for one thread to record into; it lives as long as this object.
  Shard& add_shard();
  /// Records into `shard` (one of this object's).
  void record(Shard& shard, const RequestSample& s);
  /// Records into the shard that every thread without one of its own shares.
  void record(const RequestSample& s) { record(shards_.front(), s); }
  /// The exposition text (every shard summed), with in-flight gauges read from `loads`.
  std::string render(const LoadRegistry& loads, std::uint64_t call_logs_dropped = 0) const;

 private:
  mutable std::mutex shards_mutex_;  ///< guards the list, not the shards' contents
  std::deque<Shard> shards_;         ///< never empty; the front one is shared
};

/// Escapes a label value (backslash, double quote, newline).
std::string escape_label(std::string_view v);

}  // namespace openstation::gateway
