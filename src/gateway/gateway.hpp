#pragma once
/// The OpenAI-compatible gateway (port 8080): authenticates the API key from an in-memory
/// snapshot, routes on the body's "model" to the least-loaded healthy instance of that service,
/// relays the response (SSE event by event, never coalesced), meters tokens and writes a call log
/// per request — with no database and no lock held on the request path.
///
///     client ─► [auth: KeySnapshot] ─► [inspect body] ─► [allow-list] ─► [rate limit]
///            ─► [route: RouteTable → least outstanding] ─► upstream keep-alive pool
///            ─► relay (retry once on another instance if nothing reached the client yet)
///            ─► metrics + CallLogSink
///
/// Routes: GET /health (503 while draining), GET /metrics (Prometheus), GET /v1/models,
/// GET /v1/models/{model}, POST /v1/chat/completions, /v1/completions, /v1/embeddings, and any
/// other POST /v1/... passed through to the engine that serves the body's model.
/// docs/gateway.md documents behaviour and error codes.

#include "config/config.hpp"
#include "core/clock.hpp"
#include "core/error.hpp"
#include "gateway/call_log_writer.hpp"
#include "gateway/metrics.hpp"
#include "gateway/route_table.hpp"
#include "server/auth/api_key.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <string_view>

namespace openstation::gateway {

struct GatewayOptions {
  config::GatewayConfig config{};  ///< host, port, limits, timeouts
  int threads = 2;                 ///< I/O threads
  /// How long an instance that failed a connect (or answered 502/503) is skipped.
  std::chrono::milliseconds failure_cooldown{5000};
  std::size_t max_idle_per_upstream = 64;  ///< idle keep-alive connections kept per instance
};

/// The gateway. The holders, registry and sink must outlive it. Thread-safe start/stop.
class Gateway {
 public:
  Gateway(GatewayOptions options, const server::auth::KeySnapshotHolder& keys,
          const RouteTableHolder& routes, LoadRegistry& loads, CallLogSink& logs,
          const core::Clock& clock);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  /// Binds and serves. Errors: "http.bind" naming the address.
  core::Result<void> start();
  std::uint16_t port() const;
  /// Drains: /health answers 503 at once, new requests are still served for `grace` only if
  /// they are already connected; in-flight requests get up to `grace` to finish.
  void stop(std::chrono::milliseconds grace);
  /// Requests in flight on one instance (what draining an instance waits for).
  std::int64_t in_flight(std::string_view instance_id) const;
  const Metrics& metrics() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace openstation::gateway
