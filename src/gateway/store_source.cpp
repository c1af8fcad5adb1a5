#include "gateway/store_source.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <unordered_map>

namespace openstation::gateway {

namespace {

/// Every item of a paged list.
template <class T, class Repo, class Filter>
core::Result<std::vector<T>> all_of(Repo& repo, const Filter& filter) {
  std::vector<T> out;
  store::PageRequest page;
  page.limit = 1000;
  for (;;) {
    auto p = repo.list(filter, page);
    if (!p) return p.error();
    for (auto& item : p->items) out.push_back(std::move(item));
    if (p->next_cursor.empty()) return out;
    page.cursor = p->next_cursor;
  }
}

}  // namespace

core::Result<std::vector<server::auth::KeyRecord>> load_key_records(store::Store& store) {
  auto users = all_of<store::User>(store.users(), store::UserFilter{});
  if (!users) return users.error();
  std::unordered_map<std::string, const store::User*> by_id;
  for (const auto& u : *users) by_id.emplace(u.id, &u);
  auto keys = all_of<store::ApiKey>(store.api_keys(), store::ApiKeyFilter{});
  if (!keys) return keys.error();
  std::vector<server::auth::KeyRecord> out;
  out.reserve(keys->size());
  for (auto& k : *keys) {
    const auto it = by_id.find(k.user_id);
    if (it == by_id.end()) continue;  // the user is gone (keys go with it)
    server::auth::KeyRecord r;
    r.key_id = k.id;
    r.user_id = k.user_id;
    r.username = it->second->username;
    r.role = it->second->role == store::Role::admin ? server::auth::Role::admin
                                                    : server::auth::Role::user;
    r.name = k.name;
    r.prefix = k.prefix;
    r.hash = k.secret_hash;
    r.revoked = k.revoked_at.has_value();
    r.user_disabled = it->second->disabled;
    r.expires_at = k.expires_at;
    r.allowed_models = std::move(k.allowed_models);
    out.push_back(std::move(r));
  }
  return out;
}

core::Result<std::vector<ServiceRoute>> load_routes(store::Store& store, LoadRegistry& loads) {
  auto services = all_of<store::Service>(store.services(), store::ServiceFilter{});
  if (!services) return services.error();
  auto nodes = all_of<store::Node>(store.nodes(), store::NodeFilter{});
  if (!nodes) return nodes.error();
  std::unordered_map<std::string, const store::Node*> node_by_id;
  for (const auto& n : *nodes) node_by_id.emplace(n.id, &n);
  auto instances = all_of<store::Instance>(store.instances(), store::InstanceFilter{});
  if (!instances) return instances.error();
  std::map<std::string, std::vector<const store::Instance*>> by_service;
  for (const auto& i : *instances) by_service[i.service_id].push_back(&i);

  std::vector<ServiceRoute> out;
  std::vector<std::string> listed;
  for (const auto& s : *services) {
    ServiceRoute r;
    r.model = s.name;
    r.service_id = s.id;
    r.created =
        std::chrono::duration_cast<std::chrono::seconds>(s.created_at.time_since_epoch()).count();
    for (const auto* i : by_service[s.id]) {
      const bool draining = i->state == store::InstanceState::draining;
      if (i->state != store::InstanceState::running && !draining) continue;
      if (i->port <= 0 || i->port > 65535 || i->node_ids.empty()) continue;
      const auto n = node_by_id.find(i->node_ids.front());
      if (n == node_by_id.end() || n->second->address.empty()) continue;
      r.upstreams.push_back({i->id, n->second->address, static_cast<std::uint16_t>(i->port),
                             draining, loads.load_for(i->id)});
      listed.push_back(i->id);
    }
    out.push_back(std::move(r));
  }
  loads.retain(listed);
  return out;
}

StoreSource::StoreSource(store::Store& store, server::auth::KeySnapshotHolder& keys,
                         RouteTableHolder& routes, LoadRegistry& loads,
                         std::chrono::milliseconds interval)
    : store_(store), keys_(keys), routes_(routes), loads_(loads), interval_(interval) {}

StoreSource::~StoreSource() {
  stop();
}

bool StoreSource::refresh() {
  auto k = load_key_records(store_);
  if (!k) {
    spdlog::warn("gateway: reading API keys failed, keeping the previous ones: {}",
                 k.error().message);
    return false;
  }
  auto r = load_routes(store_, loads_);
  if (!r) {
    spdlog::warn("gateway: reading services failed, keeping the previous routes: {}",
                 r.error().message);
    return false;
  }
  keys_.store(std::make_shared<const server::auth::KeySnapshot>(std::move(*k)));
  routes_.store(std::make_shared<const RouteTable>(std::move(*r)));
  return true;
}

void StoreSource::start() {
  refresh();
  thread_ = std::thread([this] {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      cv_.wait_for(lock, interval_, [&] { return stopping_ || triggered_; });
      if (stopping_) break;
      triggered_ = false;
      lock.unlock();
      refresh();
      lock.lock();
    }
  });
}

void StoreSource::trigger() {
  {
    std::lock_guard lock(mutex_);
    triggered_ = true;
  }
  cv_.notify_one();
}

void StoreSource::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace openstation::gateway
