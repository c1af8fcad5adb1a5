#pragma once
/// What a gateway needs from the control plane, as plain data and as the JSON document the
/// server hands to `openstation gateway --server` replicas (docs/api/gateway.md):
///
///  - the key snapshot: every API key's prefix and SHA-256 hash with its user's name, role and
///    state (revoked, disabled, expiry) and its allow-list, plus the per-key rate limits;
///  - the route table: every service (by its OpenAI model id) with its routable instances (node
///    address, port, draining or not).
///
/// A snapshot's `version` is a digest of its content: equal versions mean equal snapshots, so a
/// replica long-polls with `?wait_after=<version>` and the server answers when the content
/// differs (a key revoked, an instance added, draining or gone). Versions are opaque strings.
///
/// Routable: an instance in state running or draining (listed as draining, so its in-flight
/// requests finish while no new ones arrive) with a port, on a node with an address.

#include "config/config.hpp"
#include "core/error.hpp"
#include "server/auth/api_key.hpp"
#include "store/store.hpp"

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace openstation::server {

/// The replica endpoints (docs/api/gateway.md).
inline constexpr std::string_view kGatewaySnapshotPath = "/api/v1/gateway/snapshot";
inline constexpr std::string_view kGatewayCallLogsPath = "/api/v1/gateway/call-logs";

/// One instance a gateway may send a service's requests to.
struct GatewayInstance {
  std::string instance_id;
  std::string host;  ///< the node's address
  std::uint16_t port = 0;
  bool draining = false;
  bool operator==(const GatewayInstance&) const = default;
};

/// One service: the model id clients name and its routable instances.
struct GatewayService {
  std::string model;
  std::string service_id;
  std::int64_t created = 0;  ///< Unix seconds
  std::vector<GatewayInstance> instances;
  bool operator==(const GatewayService&) const = default;
};

/// Everything a gateway routes and authenticates with.
struct GatewaySnapshot {
  std::string version;                    ///< content digest (16 hex digits)
  std::uint32_t requests_per_minute = 0;  ///< per-key limits; 0: unlimited
  std::uint32_t tokens_per_minute = 0;
  std::vector<auth::KeyRecord> keys;
  std::vector<GatewayService> services;  ///< sorted by model id
};

/// Every key with its user's name, role and state (keys of deleted users left out). Blocking.
core::Result<std::vector<auth::KeyRecord>> load_gateway_keys(store::Store& store);
/// Every service with its routable instances, sorted by model id. Blocking.
core::Result<std::vector<GatewayService>> load_gateway_services(store::Store& store);
/// Both, with the gateway config's limits and the version filled in. Blocking; the store's
/// errors.
core::Result<GatewaySnapshot> load_gateway_snapshot(store::Store& store,
                                                    const config::GatewayConfig& limits);

/// The digest of a snapshot's content (the version field ignored).
std::string gateway_snapshot_version(const GatewaySnapshot& s);
/// The JSON document (docs/api/gateway.md).
std::string gateway_snapshot_to_json(const GatewaySnapshot& s);
/// Parses the JSON document. Errors: "gateway.bad_snapshot" (parse_error) naming the field.
core::Result<GatewaySnapshot> parse_gateway_snapshot(std::string_view text);

/// Call logs as {"logs": [...]} (times as Unix milliseconds), what a replica posts.
std::string call_logs_to_json(std::span<const store::CallLog> logs);
/// Parses {"logs": [...]}. Errors: "gateway.bad_call_logs" (invalid_argument) naming the field;
/// more than 10,000 entries is one of them.
core::Result<std::vector<store::CallLog>> parse_call_logs(std::string_view text);

/// Appends call logs in one transaction and moves each used key's last_used_at forward.
/// Blocking; the store's errors (nothing is written then).
core::Result<void> append_call_logs(store::Store& store, std::vector<store::CallLog> logs);

}  // namespace openstation::server
