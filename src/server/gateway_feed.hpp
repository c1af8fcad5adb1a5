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
#include "core/clock.hpp"
#include "core/error.hpp"
#include "server/auth/api_key.hpp"
#include "store/store.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
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
  /// The digest of the keys alone. A replica that passes it back as `keys_after` gets the next
  /// document without its keys while they are unchanged.
  std::string keys_version;
  /// False when the document left the keys out (they are the ones of `keys_version`, which the
  /// caller said it has); `keys` is empty then.
  bool keys_included = true;
  std::vector<auth::KeyRecord> keys;
  std::vector<GatewayService> services;  ///< sorted by model id
};

/// Every key with its user's name, role and state (keys of deleted users left out). Blocking.
core::Result<std::vector<auth::KeyRecord>> load_gateway_keys(store::Store& store);
/// Every service with its routable instances, sorted by model id. Blocking.
core::Result<std::vector<GatewayService>> load_gateway_services(store::Store& store);
/// How old the keys of a GatewayFeedReader's reading may get before they are read again without
/// a notice. The API notices every change it makes to keys and users (keys_changed), so this only
/// bounds how long a change made around it (by hand in the database) goes unseen.
inline constexpr std::chrono::seconds kGatewayKeyMaxAge{30};

/// One reading of the gateway's inputs.
struct GatewayFeedReading {
  /// Every key, shared with the reader's earlier readings for as long as the keys are unchanged:
  /// the same pointer means the same keys.
  std::shared_ptr<const std::vector<auth::KeyRecord>> keys;
  std::vector<GatewayService> services;
};

/// Reads the gateway's inputs for one follower of the store. The keys (every user and API key:
/// the part that grows with the company, changed only through the API) are read only when they
/// may have changed: at the first read, after keys_changed(), or when the last reading of them is
/// older than `key_max_age` on `clock`. Services, nodes and instances (few, changed by heartbeats
/// and the reconciler without a notice) are read every time.
class GatewayFeedReader {
 public:
  explicit GatewayFeedReader(const core::Clock& clock,
                             std::chrono::milliseconds key_max_age = kGatewayKeyMaxAge);
  /// The next read() reads the keys again. Call it after the change is committed. Any thread.
  void keys_changed() noexcept;
  /// Blocking; one caller at a time. Keys read again but equal to the last ones keep their
  /// pointer. The store's errors (the next read tries the keys again).
  core::Result<GatewayFeedReading> read(store::Store& store);
  /// How many times the keys were read from the store.
  std::uint64_t key_reads() const noexcept { return key_reads_.load(); }

 private:
  const core::Clock& clock_;
  std::chrono::milliseconds key_max_age_;
  std::atomic<bool> keys_stale_{true};
  std::atomic<std::uint64_t> key_reads_{0};
  std::shared_ptr<const std::vector<auth::KeyRecord>> keys_;
  std::chrono::steady_clock::time_point keys_read_at_{};
};

/// A snapshot as replicas get it: its versions and its JSON document, whole and without the keys
/// (for a replica that has these keys already).
struct PublishedGatewaySnapshot {
  std::string version;
  std::string keys_version;
  std::string json;
  std::string json_without_keys;
};

/// The snapshot every replica's long poll serves, made once for all of them: the one made last
/// while it is younger than `max_age` and no key changed, else made again from a
/// GatewayFeedReader (the keys' part of the document, the bulk of it, only when they changed).
/// Thread-safe; concurrent callers wait for one reading.
class GatewaySnapshotCache {
 public:
  GatewaySnapshotCache(const core::Clock& clock, std::chrono::milliseconds max_age,
                       std::chrono::milliseconds key_max_age = kGatewayKeyMaxAge);
  /// The current snapshot with `limits`. `key_generation` is the count of key changes so far
  /// (a notifier's generation): when it moved since the last call, the keys are read again.
  /// Blocking; the store's errors.
  core::Result<std::shared_ptr<const PublishedGatewaySnapshot>> current(
      store::Store& store, const config::GatewayConfig& limits, std::uint64_t key_generation);
  /// How many times the keys were read from the store.
  std::uint64_t key_reads() const noexcept { return reader_.key_reads(); }

 private:
  const core::Clock& clock_;
  std::chrono::milliseconds max_age_;
  std::mutex mutex_;
  GatewayFeedReader reader_;
  std::uint64_t key_generation_ = 0;
  std::shared_ptr<const PublishedGatewaySnapshot> current_;
  std::chrono::steady_clock::time_point made_at_{};
  // The keys' part of the document, for the keys it was made from.
  std::shared_ptr<const std::vector<auth::KeyRecord>> keys_;
  std::string keys_json_;
  std::string keys_digest_;
};

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

/// Appends call logs and moves each used key's last_used_at forward, all in one transaction (one
/// commit however many keys the batch used). Blocking; the store's errors (nothing is written
/// then). The embedded gateway's CallLogWriter and the replicas' endpoint both write this way.
core::Result<void> append_call_logs(store::Store& store, std::span<const store::CallLog> logs);

}  // namespace openstation::server
