#include "gateway/remote_source.hpp"

#include "core/thread_name.hpp"

#include "http/client.hpp"

#include <spdlog/spdlog.h>
#include <boost/json.hpp>

#include <algorithm>

namespace openstation::gateway {
namespace {

std::string base_of(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url;
}

/// The server's {"error": {"code", "message"}} as one error.
core::Error refused(const http::Response& r, std::string_view what) {
  [[maybe_unused]] auto [found, code, message, field] = http::parse_error_body(r.body);
  if (message.empty()) message = r.body.substr(0, 200);
  std::string text = std::string(what) + ": the server answered HTTP " + std::to_string(r.status);
  if (!code.empty()) text += " " + code;
  if (!message.empty()) text += ": " + message;
  const auto cat =
      r.status == 401 || r.status == 403 ? core::Errc::unauthorized : core::Errc::unavailable;
  return core::Error(cat, "gateway.server_refused", text);
}

/// The pause after a failed snapshot request, and the shortest time between two requests that
/// found nothing new.
constexpr std::chrono::seconds kPause{1};

http::Headers auth_headers(const RemoteServer& s) {
  return {{"Authorization", "Bearer " + s.credential}};
}

}  // namespace

std::vector<ServiceRoute> routes_from(const std::vector<server::GatewayService>& services,
                                      LoadRegistry& loads) {
  std::vector<ServiceRoute> out;
  std::vector<std::string> listed;
  out.reserve(services.size());
  for (const auto& s : services) {
    ServiceRoute r;
    r.model = s.model;
    r.service_id = s.service_id;
    r.created = s.created;
    for (const auto& i : s.instances) {
      r.upstreams.push_back(
          {i.instance_id, i.host, i.port, i.draining, loads.load_for(i.instance_id)});
      listed.push_back(i.instance_id);
    }
    out.push_back(std::move(r));
  }
  loads.retain(listed);
  return out;
}

void SnapshotPublisher::publish(std::shared_ptr<const std::vector<server::auth::KeyRecord>> keys,
                                std::vector<server::GatewayService> services) {
  if (!published_ || (keys != published_keys_ && *keys != *published_keys_)) {
    keys_.store(std::make_shared<const server::auth::KeySnapshot>(*keys));
    published_keys_ = std::move(keys);
  }
  if (!published_ || services != published_services_) {
    routes_.store(std::make_shared<const RouteTable>(routes_from(services, loads_)));
    published_services_ = std::move(services);
  }
  published_ = true;
}

RemoteSource::RemoteSource(RemoteServer server, server::auth::KeySnapshotHolder& keys,
                           RouteTableHolder& routes, LoadRegistry& loads, std::chrono::seconds wait)
    : server_(std::move(server)), publisher_(keys, routes, loads), wait_(wait) {
  server_.url = base_of(server_.url);
}

RemoteSource::~RemoteSource() {
  stop();
}

core::Result<server::GatewaySnapshot> RemoteSource::fetch(const std::string& after,
                                                          std::chrono::seconds wait) const {
  http::Client client(server_.tls);
  std::string url = server_.url + std::string(server::kGatewaySnapshotPath);
  if (!after.empty()) {
    url += "?wait_after=" + after + "&wait=" + std::to_string(wait.count());
    std::lock_guard lock(mutex_);
    if (!keys_version_.empty()) url += "&keys_after=" + keys_version_;
  }
  auto r = client.request("GET", url, auth_headers(server_), {}, server_.timeout + wait);
  if (!r) return r.error();
  if (r->status != 200) return refused(*r, "gateway snapshot");
  return server::parse_gateway_snapshot(r->body);
}

void RemoteSource::apply(server::GatewaySnapshot snapshot) {
  std::shared_ptr<const std::vector<server::auth::KeyRecord>> keys;
  if (snapshot.keys_included) {
    keys = std::make_shared<const std::vector<server::auth::KeyRecord>>(std::move(snapshot.keys));
  } else {
    // Left out because they are the ones applied last (this replica named them as keys_after).
    std::lock_guard lock(mutex_);
    if (snapshot.keys_version != keys_version_ || publisher_.keys() == nullptr) {
      spdlog::warn("gateway: the server left out keys {} this replica does not have; asking again",
                   snapshot.keys_version);
      keys_version_.clear();
      return;
    }
    keys = publisher_.keys();
  }
  publisher_.publish(std::move(keys), std::move(snapshot.services));
  std::lock_guard lock(mutex_);
  version_ = snapshot.version;
  keys_version_ = snapshot.keys_version;
}

core::Result<server::GatewaySnapshot> RemoteSource::refresh() {
  auto s = fetch({}, std::chrono::seconds(0));
  if (!s) return s.error();
  server::GatewaySnapshot copy = *s;
  apply(std::move(copy));
  return s;
}

void RemoteSource::start() {
  thread_ = core::named_thread("gw-remote", [this] {
    for (;;) {
      std::string after;
      {
        std::lock_guard lock(mutex_);
        if (stopping_) return;
        after = version_;
      }
      const auto asked = std::chrono::steady_clock::now();
      auto s = fetch(after.empty() ? std::string("-") : after, wait_);
      if (s) {
        if (s->version != after) {
          if (s->keys_included) {
            spdlog::info("gateway: snapshot {} ({} keys, {} services)", s->version, s->keys.size(),
                         s->services.size());
          } else {
            spdlog::info("gateway: snapshot {} (the same keys, {} services)", s->version,
                         s->services.size());
          }
          apply(std::move(*s));
          continue;
        }
        // Unchanged: a long poll comes back so only after `wait_`. A server that answers at once
        // (one that does not hold long polls) would make this loop ask again without pause; it
        // pauses as after a failure instead.
        if (std::chrono::steady_clock::now() - asked >= kPause) continue;
      } else {
        spdlog::warn("gateway: following {} failed, serving the last snapshot: {}", server_.url,
                     s.error().message);
      }
      std::unique_lock lock(mutex_);
      cv_.wait_for(lock, kPause, [&] { return stopping_; });
    }
  });
}

void RemoteSource::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::string RemoteSource::version() const {
  std::lock_guard lock(mutex_);
  return version_;
}

RemoteCallLogSink::RemoteCallLogSink(RemoteServer server, Options options)
    : BatchingCallLogSink(options), server_(std::move(server)) {
  server_.url = base_of(server_.url);
  start();
}

RemoteCallLogSink::~RemoteCallLogSink() {
  stop();
}

core::Result<void> RemoteCallLogSink::deliver(std::span<const store::CallLog> batch, bool& retry) {
  http::Client client(server_.tls);
  const std::string url = server_.url + std::string(server::kGatewayCallLogsPath);
  auto r = client.post_json(url, server::call_logs_to_json(batch), server_.timeout,
                            auth_headers(server_));
  if (!r) return r.error();
  if (r->status == 200) return {};
  retry = r->status != 400;
  return refused(*r, "call logs");
}

}  // namespace openstation::gateway
