#pragma once
/// Feeds a gateway replica (`openstation gateway --server URL`) from a running server instead of
/// a store: `RemoteSource` long-polls GET /api/v1/gateway/snapshot?wait_after=<version> and swaps
/// the key snapshot and route table in as soon as the server's content changes (a revoked key
/// reaches the replica with the next answer); `RemoteCallLogSink` posts the replica's call logs
/// to POST /api/v1/gateway/call-logs in batches. Both authenticate with `Authorization: Bearer
/// <credential>` (an admin's API key) and trust an https server like the agent does (pinned
/// fingerprint or CA file, http/tls.hpp). docs/gateway.md describes the replica.
///
/// While the server cannot be reached the replica keeps serving from its last snapshot and keeps
/// its call logs queued (bounded), retrying every second.

#include "core/error.hpp"
#include "gateway/call_log_writer.hpp"
#include "gateway/route_table.hpp"
#include "http/tls.hpp"
#include "server/auth/api_key.hpp"
#include "server/gateway_feed.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace openstation::gateway {

/// Where a replica's server is and how it is trusted and called.
struct RemoteServer {
  std::string url;             ///< "https://host:32206"
  http::TlsClientOptions tls;  ///< pinned fingerprint or CA file
  std::string credential;      ///< the bearer credential (an admin's API key)
  std::chrono::milliseconds timeout{std::chrono::seconds(15)};  ///< per request, beyond a wait
};

/// Route table services from a snapshot, their counters taken from `loads` (the others dropped).
std::vector<ServiceRoute> routes_from(const std::vector<server::GatewayService>& services,
                                      LoadRegistry& loads);

/// Puts what a follower of the control plane read into the gateway's holders: the keys as a
/// KeySnapshot and the services as a RouteTable, each only when it differs from what was put last.
/// Unchanged (the usual case), a holder keeps its snapshot, so the I/O threads keep their copies
/// and their memos of the keys they authenticated. One caller at a time.
class SnapshotPublisher {
 public:
  SnapshotPublisher(server::auth::KeySnapshotHolder& keys, RouteTableHolder& routes,
                    LoadRegistry& loads)
      : keys_(keys), routes_(routes), loads_(loads) {}
  /// Keys equal to the last ones, by pointer or by content, are kept.
  void publish(std::shared_ptr<const std::vector<server::auth::KeyRecord>> keys,
               std::vector<server::GatewayService> services);
  /// The keys published last (null before the first publish).
  const std::shared_ptr<const std::vector<server::auth::KeyRecord>>& keys() const {
    return published_keys_;
  }

 private:
  server::auth::KeySnapshotHolder& keys_;
  RouteTableHolder& routes_;
  LoadRegistry& loads_;
  bool published_ = false;
  std::shared_ptr<const std::vector<server::auth::KeyRecord>> published_keys_;
  std::vector<server::GatewayService> published_services_;
};

/// The long-poll follower. The holders and registry must outlive it.
class RemoteSource {
 public:
  RemoteSource(RemoteServer server, server::auth::KeySnapshotHolder& keys, RouteTableHolder& routes,
               LoadRegistry& loads, std::chrono::seconds wait = std::chrono::seconds(5));
  ~RemoteSource();  ///< stop()
  RemoteSource(const RemoteSource&) = delete;
  RemoteSource& operator=(const RemoteSource&) = delete;

  /// One GET of the snapshot: at once when `after` is empty or differs from the server's version,
  /// else when it changes or after `wait`. Once a snapshot was applied, the request names its
  /// keys (`keys_after`): while the server's keys are the same, the answer leaves them out
  /// (GatewaySnapshot::keys_included false) and applying it keeps the replica's keys. Errors: the
  /// client's ("http.connect", "http.tls_*",
  /// ...), "gateway.server_refused" (unauthorized on 401/403, unavailable otherwise) carrying the
  /// server's code and message, "gateway.bad_snapshot".
  core::Result<server::GatewaySnapshot> fetch(const std::string& after,
                                              std::chrono::seconds wait) const;
  /// Fetches without waiting and applies the snapshot. The first call of a replica: its error
  /// stops the replica's start.
  core::Result<server::GatewaySnapshot> refresh();
  /// Starts the follower thread (after a successful refresh()).
  void start();
  /// Stops the thread (waits for a long poll in flight: at most `wait` plus the timeout).
  void stop();
  /// The version applied last ("" before the first).
  std::string version() const;

 private:
  void apply(server::GatewaySnapshot snapshot);

  RemoteServer server_;
  SnapshotPublisher publisher_;  // apply() runs on one thread at a time: refresh(), then the loop
  std::chrono::seconds wait_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::string version_;
  std::string keys_version_;  // of the keys applied last: sent as keys_after
  bool stopping_ = false;
  std::thread thread_;
};

/// A CallLogSink that posts batches to the server. Thread-safe; `submit` never blocks on I/O.
/// A batch the server refuses as malformed (400) is dropped and counted: it would fail forever.
class RemoteCallLogSink final : public BatchingCallLogSink {
 public:
  RemoteCallLogSink(RemoteServer server, Options options);
  ~RemoteCallLogSink() override;  ///< stop()

 private:
  core::Result<void> deliver(std::span<const store::CallLog> batch, bool& retry) override;
  std::string destination() const override { return server_.url; }

  RemoteServer server_;
};

}  // namespace openstation::gateway
