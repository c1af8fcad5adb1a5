#include "server/gateway_feed.hpp"

#include "core/json.hpp"
#include "server/auth/role.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <cstdio>
#include <map>
#include <unordered_map>

namespace openstation::server {
namespace {

namespace json = boost::json;
namespace cj = core::json;

constexpr std::size_t kMaxCallLogsPerBatch = 10000;

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

std::int64_t to_ms(core::Clock::TimePoint t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

core::Clock::TimePoint from_ms(std::int64_t ms) {
  return core::Clock::TimePoint(std::chrono::milliseconds(ms));
}

std::string limits_json(std::uint32_t requests_per_minute, std::uint32_t tokens_per_minute) {
  json::object limits;
  limits["requests_per_minute"] = requests_per_minute;
  limits["tokens_per_minute"] = tokens_per_minute;
  return json::serialize(limits);
}

std::string keys_json(std::span<const auth::KeyRecord> keys) {
  json::array out;
  out.reserve(keys.size());
  for (const auto& k : keys) {
    json::object j;
    j["key_id"] = k.key_id;
    j["user_id"] = k.user_id;
    j["username"] = k.username;
    j["role"] = std::string(auth::to_string(k.role));
    j["name"] = k.name;
    j["prefix"] = k.prefix;
    j["hash"] = k.hash;
    j["revoked"] = k.revoked;
    j["user_disabled"] = k.user_disabled;
    j["expires_at"] = k.expires_at ? json::value(to_ms(*k.expires_at)) : json::value(nullptr);
    json::array models;
    for (const auto& m : k.allowed_models) models.emplace_back(m);
    j["allowed_models"] = std::move(models);
    out.push_back(std::move(j));
  }
  return json::serialize(out);
}

std::string services_json(std::span<const GatewayService> services) {
  json::array out;
  for (const auto& svc : services) {
    json::object j;
    j["model"] = svc.model;
    j["service_id"] = svc.service_id;
    j["created"] = svc.created;
    json::array instances;
    for (const auto& i : svc.instances) {
      json::object ij;
      ij["instance_id"] = i.instance_id;
      ij["host"] = i.host;
      ij["port"] = i.port;
      ij["draining"] = i.draining;
      instances.push_back(std::move(ij));
    }
    j["instances"] = std::move(instances);
    out.push_back(std::move(j));
  }
  return json::serialize(out);
}

/// FNV-1a, 64 bits: a digest to tell contents apart, not a security boundary.
std::string digest(std::string_view text) {
  std::uint64_t h = 1469598103934665603ull;
  for (const unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

/// A snapshot's version from its parts: the keys enter by their digest, so a snapshot whose keys
/// did not change is versioned without going over them again.
std::string version_of(std::string_view limits, std::string_view keys_digest,
                       std::string_view services) {
  std::string all;
  all.reserve(limits.size() + keys_digest.size() + services.size() + 2);
  all.append(limits).append("\n").append(keys_digest).append("\n").append(services);
  return digest(all);
}

/// The document: {"version", "limits", "keys_version", "keys", "services"}, from the parts' JSON
/// texts; without "keys" when `keys` is null.
std::string document(std::string_view version, std::string_view limits,
                     std::string_view keys_version, const std::string* keys,
                     std::string_view services) {
  std::string out;
  out.reserve(version.size() + limits.size() + (keys ? keys->size() : 0) + services.size() + 96);
  out.append("{\"version\":").append(json::serialize(json::string(version)));
  out.append(",\"limits\":").append(limits);
  out.append(",\"keys_version\":").append(json::serialize(json::string(keys_version)));
  if (keys != nullptr) out.append(",\"keys\":").append(*keys);
  out.append(",\"services\":").append(services).append("}");
  return out;
}

std::vector<std::string> string_array(const json::object& o, std::string_view key,
                                      const std::string& path) {
  std::vector<std::string> out;
  const auto* v = o.if_contains(key);
  if (v == nullptr || v->is_null()) return out;
  const auto& a = cj::as_array(*v, cj::join_path(path, key));
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto p = cj::join_path(path, key) + "[" + std::to_string(i) + "]";
    if (!a[i].is_string()) {
      throw core::ErrorException(core::parse_error("gateway.bad_snapshot", p + " is not a string"));
    }
    out.emplace_back(a[i].get_string());
  }
  return out;
}

template <class F>
auto with_code(std::string_view code, F&& f) -> core::Result<decltype(f())> {
  auto r = cj::capture(std::forward<F>(f));
  if (!r) {
    core::Error e = r.error();
    e.code = std::string(code);
    return e;
  }
  return r;
}

}  // namespace

core::Result<std::vector<auth::KeyRecord>> load_gateway_keys(store::Store& store) {
  auto users = all_of<store::User>(store.users(), store::UserFilter{});
  if (!users) return users.error();
  std::unordered_map<std::string, const store::User*> by_id;
  for (const auto& u : *users) by_id.emplace(u.id, &u);
  auto keys = all_of<store::ApiKey>(store.api_keys(), store::ApiKeyFilter{});
  if (!keys) return keys.error();
  std::vector<auth::KeyRecord> out;
  out.reserve(keys->size());
  for (auto& k : *keys) {
    const auto it = by_id.find(k.user_id);
    if (it == by_id.end()) continue;  // the user is gone (keys go with it)
    auth::KeyRecord r;
    r.key_id = k.id;
    r.user_id = k.user_id;
    r.username = it->second->username;
    r.role = it->second->role == store::Role::admin ? auth::Role::admin : auth::Role::user;
    r.name = k.name;
    r.prefix = k.prefix;
    r.hash = k.secret_hash;
    r.revoked = k.revoked_at.has_value();
    r.user_disabled = it->second->disabled;
    r.expires_at = k.expires_at;
    r.allowed_models = std::move(k.allowed_models);
    out.push_back(std::move(r));
  }
  std::sort(out.begin(), out.end(),
            [](const auth::KeyRecord& a, const auth::KeyRecord& b) { return a.key_id < b.key_id; });
  return out;
}

core::Result<std::vector<GatewayService>> load_gateway_services(store::Store& store) {
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

  std::vector<GatewayService> out;
  for (const auto& s : *services) {
    GatewayService r;
    r.model = s.name;
    r.service_id = s.id;
    r.created =
        std::chrono::duration_cast<std::chrono::seconds>(s.created_at.time_since_epoch()).count();
    auto& mine = by_service[s.id];
    std::sort(mine.begin(), mine.end(),
              [](const store::Instance* a, const store::Instance* b) { return a->id < b->id; });
    for (const auto* i : mine) {
      const bool draining = i->state == store::InstanceState::draining;
      if (i->state != store::InstanceState::running && !draining) continue;
      if (i->port <= 0 || i->port > 65535 || i->node_ids.empty()) continue;
      const auto n = node_by_id.find(i->node_ids.front());
      if (n == node_by_id.end() || n->second->address.empty()) continue;
      r.instances.push_back(
          {i->id, n->second->address, static_cast<std::uint16_t>(i->port), draining});
    }
    out.push_back(std::move(r));
  }
  std::sort(out.begin(), out.end(),
            [](const GatewayService& a, const GatewayService& b) { return a.model < b.model; });
  return out;
}

namespace {

/// A snapshot's document in parts, and its version from them.
struct DocumentParts {
  std::string limits;
  std::string keys;
  std::string keys_version;
  std::string services;
  std::string version() const { return version_of(limits, keys_version, services); }
};

DocumentParts parts_of(const GatewaySnapshot& s) {
  DocumentParts p{limits_json(s.requests_per_minute, s.tokens_per_minute),
                  keys_json(s.keys),
                  {},
                  services_json(s.services)};
  p.keys_version = digest(p.keys);
  return p;
}

}  // namespace

std::string gateway_snapshot_version(const GatewaySnapshot& s) {
  return parts_of(s).version();
}

std::string gateway_snapshot_to_json(const GatewaySnapshot& s) {
  const auto p = parts_of(s);
  return document(s.version.empty() ? p.version() : s.version, p.limits, p.keys_version, &p.keys,
                  p.services);
}

GatewayFeedReader::GatewayFeedReader(const core::Clock& clock,
                                     std::chrono::milliseconds key_max_age)
    : clock_(clock), key_max_age_(key_max_age) {}

void GatewayFeedReader::keys_changed() noexcept {
  keys_stale_.store(true);
}

core::Result<GatewayFeedReading> GatewayFeedReader::read(store::Store& store) {
  const auto now = clock_.steady_now();
  // The flag is cleared before the keys are read: a change noticed during the read makes the
  // next read read them again.
  if (keys_stale_.exchange(false) || !keys_ || now - keys_read_at_ >= key_max_age_) {
    ++key_reads_;
    auto keys = load_gateway_keys(store);
    if (!keys) {
      keys_stale_.store(true);
      return keys.error();
    }
    if (!keys_ || *keys != *keys_) {
      keys_ = std::make_shared<const std::vector<auth::KeyRecord>>(std::move(*keys));
    }
    keys_read_at_ = now;
  }
  auto services = load_gateway_services(store);
  if (!services) return services.error();
  return GatewayFeedReading{keys_, std::move(*services)};
}

GatewaySnapshotCache::GatewaySnapshotCache(const core::Clock& clock,
                                           std::chrono::milliseconds max_age,
                                           std::chrono::milliseconds key_max_age)
    : clock_(clock), max_age_(max_age), reader_(clock, key_max_age) {}

core::Result<std::shared_ptr<const PublishedGatewaySnapshot>> GatewaySnapshotCache::current(
    store::Store& store, const config::GatewayConfig& limits, std::uint64_t key_generation) {
  std::lock_guard lock(mutex_);
  const auto now = clock_.steady_now();
  const bool keys_moved = key_generation != key_generation_;
  if (current_ && !keys_moved && now - made_at_ < max_age_) return current_;
  if (keys_moved) {
    reader_.keys_changed();
    key_generation_ = key_generation;
  }
  auto reading = reader_.read(store);
  if (!reading) return reading.error();
  if (reading->keys != keys_) {
    keys_ = reading->keys;
    keys_json_ = keys_json(*keys_);
    keys_digest_ = digest(keys_json_);
  }
  const auto limits_text = limits_json(limits.requests_per_minute, limits.tokens_per_minute);
  const auto services_text = services_json(reading->services);
  auto version = version_of(limits_text, keys_digest_, services_text);
  if (!current_ || current_->version != version) {
    current_ = std::make_shared<const PublishedGatewaySnapshot>(PublishedGatewaySnapshot{
        version, keys_digest_,
        document(version, limits_text, keys_digest_, &keys_json_, services_text),
        document(version, limits_text, keys_digest_, nullptr, services_text)});
  }
  made_at_ = now;
  return current_;
}

core::Result<GatewaySnapshot> parse_gateway_snapshot(std::string_view text) {
  return with_code("gateway.bad_snapshot", [&]() -> GatewaySnapshot {
    const auto v = cj::parse(text, "the gateway snapshot");
    const auto& o = cj::as_object(v, "");
    GatewaySnapshot s;
    s.version = cj::get_string(o, "version", "");
    s.keys_version = cj::opt_string(o, "keys_version", "").value_or("");
    // Keys left out: the caller has the keys of keys_version (it asked with keys_after).
    s.keys_included = o.contains("keys") || s.keys_version.empty();
    if (const auto* l = o.if_contains("limits"); l != nullptr) {
      const auto& lo = cj::as_object(*l, "limits");
      s.requests_per_minute =
          static_cast<std::uint32_t>(cj::opt_int(lo, "requests_per_minute", "limits").value_or(0));
      s.tokens_per_minute =
          static_cast<std::uint32_t>(cj::opt_int(lo, "tokens_per_minute", "limits").value_or(0));
    }
    static const json::value kNone = json::array();
    const auto& keys = cj::as_array(o.contains("keys") ? o.at("keys") : kNone, "keys");
    for (std::size_t i = 0; i < keys.size(); ++i) {
      const std::string p = "keys[" + std::to_string(i) + "]";
      const auto& k = cj::as_object(keys[i], p);
      auth::KeyRecord r;
      r.key_id = cj::get_string(k, "key_id", p);
      r.user_id = cj::get_string(k, "user_id", p);
      r.username = cj::opt_string(k, "username", p).value_or("");
      auto role = auth::parse_role(cj::get_string(k, "role", p));
      if (!role) throw core::ErrorException(role.error());
      r.role = *role;
      r.name = cj::opt_string(k, "name", p).value_or("");
      r.prefix = cj::get_string(k, "prefix", p);
      r.hash = cj::get_string(k, "hash", p);
      r.revoked = cj::opt_bool(k, "revoked", p).value_or(false);
      r.user_disabled = cj::opt_bool(k, "user_disabled", p).value_or(false);
      if (auto e = cj::opt_int(k, "expires_at", p)) r.expires_at = from_ms(*e);
      r.allowed_models = string_array(k, "allowed_models", p);
      s.keys.push_back(std::move(r));
    }
    const auto& services =
        cj::as_array(o.contains("services") ? o.at("services") : kNone, "services");
    for (std::size_t i = 0; i < services.size(); ++i) {
      const std::string p = "services[" + std::to_string(i) + "]";
      const auto& so = cj::as_object(services[i], p);
      GatewayService svc;
      svc.model = cj::get_string(so, "model", p);
      svc.service_id = cj::get_string(so, "service_id", p);
      svc.created = cj::opt_int(so, "created", p).value_or(0);
      if (const auto* is = so.if_contains("instances"); is != nullptr) {
        const auto& arr = cj::as_array(*is, p + ".instances");
        for (std::size_t j = 0; j < arr.size(); ++j) {
          const std::string ip = p + ".instances[" + std::to_string(j) + "]";
          const auto& io = cj::as_object(arr[j], ip);
          GatewayInstance inst;
          inst.instance_id = cj::get_string(io, "instance_id", ip);
          inst.host = cj::get_string(io, "host", ip);
          const auto port = cj::get_int(io, "port", ip);
          if (port <= 0 || port > 65535) {
            throw core::ErrorException(core::parse_error(
                "gateway.bad_snapshot", ip + ".port is not a port: " + std::to_string(port)));
          }
          inst.port = static_cast<std::uint16_t>(port);
          inst.draining = cj::opt_bool(io, "draining", ip).value_or(false);
          svc.instances.push_back(std::move(inst));
        }
      }
      s.services.push_back(std::move(svc));
    }
    return s;
  });
}

std::string call_logs_to_json(std::span<const store::CallLog> logs) {
  json::array a;
  for (const auto& l : logs) {
    json::object j;
    j["time"] = to_ms(l.time);
    j["user_id"] = l.user_id;
    j["key_id"] = l.key_id;
    j["service"] = l.service;
    j["instance_id"] = l.instance_id;
    j["status"] = l.status;
    j["duration_ms"] = l.duration_ms;
    j["prompt_tokens"] = l.prompt_tokens;
    j["completion_tokens"] = l.completion_tokens;
    j["ttft_ms"] = l.ttft_ms ? json::value(*l.ttft_ms) : json::value(nullptr);
    j["tokens_per_second"] = l.tokens_per_second;
    j["error"] = l.error;
    a.push_back(std::move(j));
  }
  json::object o;
  o["logs"] = std::move(a);
  return json::serialize(o);
}

core::Result<std::vector<store::CallLog>> parse_call_logs(std::string_view text) {
  auto r = cj::capture([&]() -> std::vector<store::CallLog> {
    const auto v = cj::parse(text, "the call logs");
    const auto& o = cj::as_object(v, "");
    const auto* l = o.if_contains("logs");
    if (l == nullptr) {
      throw core::ErrorException(core::invalid("gateway.bad_call_logs", "logs is missing", "logs"));
    }
    const auto& a = cj::as_array(*l, "logs");
    if (a.size() > kMaxCallLogsPerBatch) {
      throw core::ErrorException(core::invalid(
          "gateway.bad_call_logs",
          "at most " + std::to_string(kMaxCallLogsPerBatch) + " call logs per batch", "logs"));
    }
    std::vector<store::CallLog> out;
    out.reserve(a.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
      const std::string p = "logs[" + std::to_string(i) + "]";
      const auto& j = cj::as_object(a[i], p);
      store::CallLog c;
      c.time = from_ms(cj::get_int(j, "time", p));
      c.user_id = cj::opt_string(j, "user_id", p).value_or("");
      c.key_id = cj::opt_string(j, "key_id", p).value_or("");
      c.service = cj::opt_string(j, "service", p).value_or("");
      c.instance_id = cj::opt_string(j, "instance_id", p).value_or("");
      c.status = static_cast<int>(cj::get_int(j, "status", p));
      c.duration_ms = cj::opt_int(j, "duration_ms", p).value_or(0);
      c.prompt_tokens = cj::opt_int(j, "prompt_tokens", p).value_or(0);
      c.completion_tokens = cj::opt_int(j, "completion_tokens", p).value_or(0);
      c.ttft_ms = cj::opt_int(j, "ttft_ms", p);
      c.tokens_per_second = cj::opt_number(j, "tokens_per_second", p).value_or(0);
      c.error = cj::opt_string(j, "error", p).value_or("");
      if (c.status < 100 || c.status > 599) {
        throw core::ErrorException(core::invalid(
            "gateway.bad_call_logs", p + ".status is not an HTTP status", p + ".status"));
      }
      out.push_back(std::move(c));
    }
    return out;
  });
  if (!r) {
    core::Error e = r.error();
    e.code = "gateway.bad_call_logs";
    return e;
  }
  return r;
}

core::Result<void> append_call_logs(store::Store& store, std::span<const store::CallLog> logs) {
  if (logs.empty()) return {};
  std::map<std::string_view, store::TimePoint> newest;
  for (const auto& log : logs) {
    if (log.key_id.empty()) continue;
    auto& t = newest[log.key_id];
    t = std::max(t, log.time);
  }
  std::vector<store::KeyUse> uses;
  uses.reserve(newest.size());
  for (const auto& [id, time] : newest) uses.push_back({std::string(id), time});
  return store.transaction([&](store::Store& tx) -> core::Result<void> {
    if (auto r = tx.call_logs().append_all(logs); !r) return r.error();
    return tx.mark_keys_used(uses);
  });
}

}  // namespace openstation::server
