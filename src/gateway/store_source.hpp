#pragma once
/// Feeds the gateway from the store, in the process that owns the store (the server and the
/// all-in-one `openstation start`): the API keys (with their users' state) as a KeySnapshot and
/// the services' routable instances as a RouteTable, rebuilt by a background thread every
/// `interval` or at once on `trigger()`, and swapped atomically when they changed. A request never
/// waits for it. The keys are read through a server::GatewayFeedReader: only after
/// `keys_changed()` or when `key_max_age` passed, not every interval.
///
/// Routable: an instance in state running (draining ones are listed as draining, so their
/// in-flight requests finish while no new ones arrive) with a port, on a node with an address.

#include "core/clock.hpp"
#include "core/error.hpp"
#include "core/periodic.hpp"
#include "gateway/remote_source.hpp"
#include "gateway/route_table.hpp"
#include "server/auth/api_key.hpp"
#include "server/gateway_feed.hpp"
#include "store/store.hpp"

#include <chrono>
#include <memory>
#include <mutex>
#include <vector>

namespace openstation::gateway {

/// The route table's services, counters taken from `loads` (and the others dropped).
core::Result<std::vector<ServiceRoute>> load_routes(store::Store& store, LoadRegistry& loads);

/// The refresher thread. The holders and the store must outlive it.
class StoreSource {
 public:
  StoreSource(store::Store& store, server::auth::KeySnapshotHolder& keys, RouteTableHolder& routes,
              LoadRegistry& loads, std::chrono::milliseconds interval, const core::Clock& clock,
              std::chrono::milliseconds key_max_age = server::kGatewayKeyMaxAge);
  ~StoreSource();  ///< stop()
  StoreSource(const StoreSource&) = delete;
  StoreSource& operator=(const StoreSource&) = delete;

  /// Reads services (and keys, when due) now, on the calling thread, and replaces the snapshots
  /// when either changed since the last read. Unchanged (the usual case), the holders keep theirs:
  /// the I/O threads keep their copies, and their memos of the keys they authenticated. False (and
  /// the old snapshots kept) when the store failed.
  bool refresh();
  /// Starts the thread (after one synchronous refresh).
  void start();
  /// Asks for a rebuild soon (an instance changed). Non-blocking.
  void trigger();
  /// Keys or users changed (committed): the keys are read again, soon. Non-blocking.
  void keys_changed();
  void stop();

 private:
  store::Store& store_;
  std::chrono::milliseconds interval_;
  // What the snapshots were built from (refresh() runs on one thread at a time).
  std::mutex refresh_mutex_;
  server::GatewayFeedReader reader_;
  SnapshotPublisher publisher_;
  core::Periodic refresher_;
};

}  // namespace openstation::gateway
