#pragma once
/// The gateway's view of what it can route to: every service (by its OpenAI model id) with its
/// instances' endpoints, as an immutable snapshot swapped atomically when the server's state
/// changes, and the per-instance load counters that outlive the snapshots.
///
/// Picking an instance reads atomics only: no lock and no database on the request path.

#include "core/clock.hpp"
#include "core/sharded.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace openstation::gateway {

/// Live counters of one instance, shared by every snapshot that lists it. The counters that every
/// request moves are split into per-thread slots (core::thread_slot; see core/sharded.hpp): one
/// shared cache line written for every request made each request thread wait for it to come back
/// from another core. Readers sum the slots.
class InstanceLoad {
 public:
  /// Requests in flight (every slot's count).
  std::int64_t outstanding() const;
  /// Recent response latency in µs, the mean of the slots that have one (0: unknown).
  std::int64_t latency_us() const;
  /// Requests sent, ever (for /metrics).
  std::uint64_t requests() const;
  /// Steady ms until which the instance is skipped after a failure.
  std::atomic<std::int64_t> failed_until_ms{0};

  /// One thread's counters.
  struct Slot {
    std::atomic<std::int64_t> outstanding{0};
    std::atomic<std::int64_t> latency_ewma_us{0};  ///< 0: no sample yet
    std::atomic<std::uint64_t> requests{0};
  };
  using Slots = core::PerThreadSlots<Slot>;
  static constexpr std::size_t kSlots = Slots::kSlots;
  /// This thread's slot.
  Slot& mine() { return slots_.mine(); }

 private:
  Slots slots_;
};

/// One instance a service can be sent to.
struct Upstream {
  std::string instance_id;
  std::string host;  ///< the node's address
  std::uint16_t port = 0;
  bool draining = false;  ///< finishing its requests: no new ones
  std::shared_ptr<InstanceLoad> load;
};

/// One service: the model id clients name and its instances.
struct ServiceRoute {
  std::string model;  ///< the service name (OpenAI model id)
  std::string service_id;
  std::string owned_by = "openstation";
  std::int64_t created = 0;  ///< Unix seconds, for /v1/models
  std::vector<Upstream> upstreams;
};

/// An immutable route table.
class RouteTable {
 public:
  RouteTable() = default;
  explicit RouteTable(std::vector<ServiceRoute> services);

  /// The service called `model`, or null.
  const ServiceRoute* find(std::string_view model) const;
  /// Every service, sorted by model id.
  const std::vector<ServiceRoute>& services() const { return services_; }

 private:
  /// Hashes std::string and std::string_view alike, so a lookup by view copies nothing.
  struct NameHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::vector<ServiceRoute> services_;
  std::unordered_map<std::string, std::size_t, NameHash, std::equal_to<>> index_;
};

/// The current table. Thread-safe; `load` never returns null.
class RouteTableHolder {
 public:
  RouteTableHolder();
  std::shared_ptr<const RouteTable> load() const;
  void store(std::shared_ptr<const RouteTable> table);
  /// Counts the stores: a reader that remembers it knows without a lock whether its copy of
  /// the table is still the current one (it is read before `load`).
  std::uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const RouteTable> current_;
  std::atomic<std::uint64_t> generation_{0};
};

/// The per-instance counters, by instance id. `load_for` is called when a table is built;
/// counters of instances no longer listed are dropped by `retain`.
class LoadRegistry {
 public:
  std::shared_ptr<InstanceLoad> load_for(const std::string& instance_id);
  /// Keeps only the listed instances' counters (in-flight requests keep theirs alive anyway).
  void retain(const std::vector<std::string>& instance_ids);
  /// Requests in flight on an instance (0 when unknown): what draining waits for.
  std::int64_t in_flight(std::string_view instance_id) const;
  /// Every instance's counters, for /metrics.
  std::vector<std::pair<std::string, std::shared_ptr<InstanceLoad>>> all() const;

 private:
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<InstanceLoad>> loads_;
};

/// Least outstanding requests among the routable (non-draining, not recently failed) upstreams,
/// ties broken by the lower recent latency, then by the earlier position. `exclude` skips one
/// instance (the retry after a failure). Null when none is routable. `now_ms`: steady ms.
const Upstream* pick_upstream(const ServiceRoute& route, std::int64_t now_ms,
                              std::string_view exclude = {});

/// Session affinity by rendezvous hashing: among the service's non-draining upstreams, the one
/// whose hash with `session` is highest (adding or removing an instance moves only the sessions
/// that win or lose it). Null when that one is unroutable right now (recently failed, or
/// `exclude`), or there is none: the caller falls back to pick_upstream. `now_ms`: steady ms.
const Upstream* pick_affine(const ServiceRoute& route, std::string_view session,
                            std::int64_t now_ms, std::string_view exclude = {});

/// Marks an upstream as failed for `cooldown` from `now_ms`.
void mark_failed(const Upstream& u, std::int64_t now_ms, std::chrono::milliseconds cooldown);

/// Folds a latency sample into the upstream's moving average (weight 1/8).
void record_latency(const Upstream& u, std::chrono::microseconds sample);

/// Counts a request in flight on an upstream for its lifetime. The caller keeps `load` alive
/// meanwhile (the route table that lists the upstream does; null counts nothing).
class InFlight {
 public:
  explicit InFlight(InstanceLoad* load);
  ~InFlight();
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;

 private:
  InstanceLoad::Slot* slot_;  ///< the one counted in, whichever thread ends the request
};

}  // namespace openstation::gateway
