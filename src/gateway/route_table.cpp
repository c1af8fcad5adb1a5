#include "gateway/route_table.hpp"

#include <algorithm>
#include <unordered_set>

namespace openstation::gateway {

RouteTable::RouteTable(std::vector<ServiceRoute> services) : services_(std::move(services)) {
  std::sort(services_.begin(), services_.end(),
            [](const auto& a, const auto& b) { return a.model < b.model; });
  for (std::size_t i = 0; i < services_.size(); ++i) index_.emplace(services_[i].model, i);
}

std::int64_t InstanceLoad::outstanding() const {
  std::int64_t n = 0;
  slots_.for_each([&](const Slot& s) { n += s.outstanding.load(std::memory_order_relaxed); });
  return n;
}

std::int64_t InstanceLoad::latency_us() const {
  std::int64_t sum = 0;
  std::int64_t with = 0;
  slots_.for_each([&](const Slot& s) {
    const auto v = s.latency_ewma_us.load(std::memory_order_relaxed);
    if (v == 0) return;
    sum += v;
    ++with;
  });
  return with == 0 ? 0 : sum / with;
}

std::uint64_t InstanceLoad::requests() const {
  std::uint64_t n = 0;
  slots_.for_each([&](const Slot& s) { n += s.requests.load(std::memory_order_relaxed); });
  return n;
}

const ServiceRoute* RouteTable::find(std::string_view model) const {
  const auto it = index_.find(model);
  return it == index_.end() ? nullptr : &services_[it->second];
}

RouteTableHolder::RouteTableHolder() : current_(std::make_shared<const RouteTable>()) {}

std::shared_ptr<const RouteTable> RouteTableHolder::load() const {
  std::lock_guard lock(mutex_);
  return current_;
}

void RouteTableHolder::store(std::shared_ptr<const RouteTable> table) {
  if (!table) table = std::make_shared<const RouteTable>();
  std::lock_guard lock(mutex_);
  current_.swap(table);
  generation_.fetch_add(1, std::memory_order_release);
  // The old table (in `table` now) is released outside the lock.
}

std::shared_ptr<InstanceLoad> LoadRegistry::load_for(const std::string& instance_id) {
  std::lock_guard lock(mutex_);
  auto& slot = loads_[instance_id];
  if (!slot) slot = std::make_shared<InstanceLoad>();
  return slot;
}

void LoadRegistry::retain(const std::vector<std::string>& instance_ids) {
  const std::unordered_set<std::string> keep(instance_ids.begin(), instance_ids.end());
  std::lock_guard lock(mutex_);
  std::erase_if(loads_, [&](const auto& kv) {
    return !keep.contains(kv.first) && kv.second->outstanding() == 0;
  });
}

std::int64_t LoadRegistry::in_flight(std::string_view instance_id) const {
  std::lock_guard lock(mutex_);
  const auto it = loads_.find(std::string(instance_id));
  return it == loads_.end() ? 0 : it->second->outstanding();
}

std::vector<std::pair<std::string, std::shared_ptr<InstanceLoad>>> LoadRegistry::all() const {
  std::lock_guard lock(mutex_);
  std::vector<std::pair<std::string, std::shared_ptr<InstanceLoad>>> out(loads_.begin(),
                                                                         loads_.end());
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

const Upstream* pick_upstream(const ServiceRoute& route, std::int64_t now_ms,
                              std::string_view exclude) {
  // The counters are read only when there is a choice to make: one routable instance (the
  // usual case) costs no reads of other threads' slots.
  const Upstream* best = nullptr;
  bool best_read = false;
  std::int64_t best_outstanding = 0;
  std::int64_t best_latency = 0;
  for (const auto& u : route.upstreams) {
    if (u.draining || u.instance_id == exclude || !u.load) continue;
    if (u.load->failed_until_ms.load(std::memory_order_relaxed) > now_ms) continue;
    if (best == nullptr) {
      best = &u;
      continue;
    }
    if (!best_read) {
      best_outstanding = best->load->outstanding();
      best_latency = best->load->latency_us();
      best_read = true;
    }
    const auto outstanding = u.load->outstanding();
    if (outstanding > best_outstanding) continue;
    const auto latency = u.load->latency_us();
    if (outstanding < best_outstanding || latency < best_latency) {
      best = &u;
      best_outstanding = outstanding;
      best_latency = latency;
    }
  }
  return best;
}

void mark_failed(const Upstream& u, std::int64_t now_ms, std::chrono::milliseconds cooldown) {
  if (u.load) u.load->failed_until_ms.store(now_ms + cooldown.count(), std::memory_order_relaxed);
}

void record_latency(const Upstream& u, std::chrono::microseconds sample) {
  if (!u.load) return;
  auto& ewma = u.load->mine().latency_ewma_us;
  const auto s = std::max<std::int64_t>(1, sample.count());  // 0 means "no sample"
  auto old = ewma.load(std::memory_order_relaxed);
  std::int64_t next = 0;
  do {
    next = old == 0 ? s : old + (s - old) / 8;
  } while (!ewma.compare_exchange_weak(old, next, std::memory_order_relaxed));
}

InFlight::InFlight(InstanceLoad* load) : slot_(load != nullptr ? &load->mine() : nullptr) {
  if (slot_ != nullptr) {
    slot_->outstanding.fetch_add(1, std::memory_order_relaxed);
    slot_->requests.fetch_add(1, std::memory_order_relaxed);
  }
}

InFlight::~InFlight() {
  if (slot_ != nullptr) slot_->outstanding.fetch_sub(1, std::memory_order_relaxed);
}

namespace {

/// FNV-1a over the session and the instance id, then the splitmix64 finaliser for spread.
std::uint64_t rendezvous_hash(std::string_view session, std::string_view instance) {
  std::uint64_t h = 1469598103934665603ull;
  auto feed = [&h](std::string_view s) {
    for (const unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ull;
    }
  };
  feed(session);
  h ^= 0xff;
  h *= 1099511628211ull;
  feed(instance);
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h;
}

}  // namespace

const Upstream* pick_affine(const ServiceRoute& route, std::string_view session,
                            std::int64_t now_ms, std::string_view exclude) {
  const Upstream* best = nullptr;
  std::uint64_t best_hash = 0;
  for (const auto& u : route.upstreams) {
    if (u.draining) continue;
    const auto h = rendezvous_hash(session, u.instance_id);
    if (best == nullptr || h > best_hash || (h == best_hash && u.instance_id < best->instance_id)) {
      best = &u;
      best_hash = h;
    }
  }
  if (best == nullptr || best->instance_id == exclude) return nullptr;
  if (best->load && best->load->failed_until_ms.load(std::memory_order_relaxed) > now_ms) {
    return nullptr;
  }
  return best;
}

}  // namespace openstation::gateway
