#include "gateway/store_source.hpp"

#include "gateway/remote_source.hpp"
#include "server/gateway_feed.hpp"

#include <spdlog/spdlog.h>

namespace openstation::gateway {
namespace {

/// Notices in a burst (keys made one after another by a script) make one refresh per this gap:
/// with 10,000 keys a refresh that reads them costs about 28 ms.
constexpr std::chrono::milliseconds kMinRefreshGap{200};

}  // namespace

core::Result<std::vector<ServiceRoute>> load_routes(store::Store& store, LoadRegistry& loads) {
  auto services = server::load_gateway_services(store);
  if (!services) return services.error();
  return routes_from(*services, loads);
}

StoreSource::StoreSource(store::Store& store, server::auth::KeySnapshotHolder& keys,
                         RouteTableHolder& routes, LoadRegistry& loads,
                         std::chrono::milliseconds interval, const core::Clock& clock,
                         std::chrono::milliseconds key_max_age)
    : store_(store),
      interval_(interval),
      reader_(clock, key_max_age),
      publisher_(keys, routes, loads) {}

StoreSource::~StoreSource() {
  stop();
}

bool StoreSource::refresh() {
  std::lock_guard lock(refresh_mutex_);
  auto read = reader_.read(store_);
  if (!read) {
    spdlog::warn("gateway: reading keys and services failed, keeping the previous ones: {}",
                 read.error().message);
    return false;
  }
  // The reader keeps the pointer of unchanged keys: the publisher compares no records then.
  publisher_.publish(std::move(read->keys), std::move(read->services));
  return true;
}

void StoreSource::start() {
  refresh();
  refresher_.start(
      "gw-snapshot", interval_, [this] { refresh(); }, core::Periodic::First::after_interval,
      kMinRefreshGap);
}

void StoreSource::trigger() {
  refresher_.trigger();
}

void StoreSource::keys_changed() {
  reader_.keys_changed();
  refresher_.trigger();
}

void StoreSource::stop() {
  refresher_.stop();
}

}  // namespace openstation::gateway
