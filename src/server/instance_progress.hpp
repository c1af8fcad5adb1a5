#pragma once
/// The model-file progress of instances that are `preparing` (their nodes pull the model's files
/// from the server's model store), as the agents' heartbeats last reported it. Kept in memory
/// only: progress is transient, the store keeps the state and its reason ("pulling model files
/// from the server: …"), and a restarted server learns the numbers again from the next
/// heartbeats. Thread-safe.

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace openstation::server {

/// Bytes of an instance's model files on its nodes so far and in all (summed over its ranks).
struct PrepareProgress {
  std::int64_t bytes_done = 0;
  std::int64_t bytes_total = 0;
  /// 0–100, one decimal; 0 when the total is not known.
  double percent() const {
    if (bytes_total <= 0) return 0;
    const double p = 100.0 * static_cast<double>(bytes_done) / static_cast<double>(bytes_total);
    return static_cast<double>(static_cast<std::int64_t>(p * 10)) / 10;
  }
  bool operator==(const PrepareProgress&) const = default;
};

/// Instance id → assignment id → that rank's progress.
class InstanceProgress {
 public:
  /// Records one rank's report: `total` > 0 sets it, otherwise the rank's entry is dropped.
  void report(const std::string& instance_id, const std::string& assignment_id, std::int64_t done,
              std::int64_t total) {
    std::lock_guard lock(mutex_);
    if (total > 0) {
      ranks_[instance_id][assignment_id] = PrepareProgress{done, total};
      return;
    }
    const auto it = ranks_.find(instance_id);
    if (it == ranks_.end()) return;
    it->second.erase(assignment_id);
    if (it->second.empty()) ranks_.erase(it);
  }
  /// The instance's progress summed over its ranks; nullopt when no rank is pulling.
  std::optional<PrepareProgress> get(std::string_view instance_id) const {
    std::lock_guard lock(mutex_);
    const auto it = ranks_.find(std::string(instance_id));
    if (it == ranks_.end()) return std::nullopt;
    PrepareProgress sum;
    for (const auto& [_, p] : it->second) {
      sum.bytes_done += p.bytes_done;
      sum.bytes_total += p.bytes_total;
    }
    return sum;
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::map<std::string, PrepareProgress>> ranks_;
};

}  // namespace openstation::server
