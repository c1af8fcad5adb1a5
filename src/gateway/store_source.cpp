#include "gateway/store_source.hpp"

#include "gateway/remote_source.hpp"
#include "server/gateway_feed.hpp"

#include <spdlog/spdlog.h>

namespace openstation::gateway {

core::Result<std::vector<server::auth::KeyRecord>> load_key_records(store::Store& store) {
  return server::load_gateway_keys(store);
}

core::Result<std::vector<ServiceRoute>> load_routes(store::Store& store, LoadRegistry& loads) {
  auto services = server::load_gateway_services(store);
  if (!services) return services.error();
  return routes_from(*services, loads);
}

StoreSource::StoreSource(store::Store& store, server::auth::KeySnapshotHolder& keys,
                         RouteTableHolder& routes, LoadRegistry& loads,
                         std::chrono::milliseconds interval)
    : store_(store), keys_(keys), routes_(routes), loads_(loads), interval_(interval) {}

StoreSource::~StoreSource() {
  stop();
}

bool StoreSource::refresh() {
  std::lock_guard lock(refresh_mutex_);
  auto k = load_key_records(store_);
  if (!k) {
    spdlog::warn("gateway: reading API keys failed, keeping the previous ones: {}",
                 k.error().message);
    return false;
  }
  auto services = server::load_gateway_services(store_);
  if (!services) {
    spdlog::warn("gateway: reading services failed, keeping the previous routes: {}",
                 services.error().message);
    return false;
  }
  if (!built_ || *k != built_keys_) {
    built_keys_ = *k;
    keys_.store(std::make_shared<const server::auth::KeySnapshot>(std::move(*k)));
  }
  if (!built_ || *services != built_services_) {
    routes_.store(std::make_shared<const RouteTable>(routes_from(*services, loads_)));
    built_services_ = std::move(*services);
  }
  built_ = true;
  return true;
}

void StoreSource::start() {
  refresh();
  refresher_.start(
      "gw-snapshot", interval_, [this] { refresh(); }, core::Periodic::First::after_interval);
}

void StoreSource::trigger() {
  refresher_.trigger();
}

void StoreSource::stop() {
  refresher_.stop();
}

}  // namespace openstation::gateway
