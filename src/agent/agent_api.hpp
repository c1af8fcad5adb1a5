#pragma once
/// The agent's own HTTP API (port 32208 by default), served by http::Server:
///
///   GET /health                                  no auth   {"status": "ok"}
///   GET /api/v1/instances                        Bearer    {"instances": [InstanceReport…]}
///   GET /api/v1/instances/{id}/logs?tail=N       Bearer    the last N lines (text/plain)
///   GET /api/v1/instances/{id}/logs?follow=1     Bearer    streamed as the log grows (chunked
///                                                          text/plain; after tail=N lines if
///                                                          given)
///   POST /api/v1/models/inspect {"path"}         Bearer    what the model at that path is
///                                                          (agent/model_inspect.hpp's JSON), or
///                                                          400 with the reader's error
///
/// Authenticated with the node's credential (Authorization: Bearer <node_token>): the server
/// uses it to proxy log requests and to validate model imports. Errors are the project's JSON body:
/// 401 "agent.unauthorized", 404 "agent.instance_not_found", 400 "agent.bad_query". docs/agent.md
/// documents them.

#include "agent/supervisor.hpp"
#include "core/error.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace openstation::agent {

/// Where the API listens and how it streams.
struct AgentApiOptions {
  std::string host = "0.0.0.0";
  std::uint16_t port = 32208;                  ///< 0: an ephemeral port (tests)
  std::chrono::milliseconds follow_poll{200};  ///< how often a follow checks the log for more
  std::size_t max_tail = 10000;                ///< the largest tail=N accepted
};

/// The agent API. `token` returns the node token to require ("" refuses every authenticated
/// request: the node has no identity yet). The supervisor must outlive the API.
class AgentApi {
 public:
  AgentApi(AgentApiOptions options, Supervisor& supervisor, std::function<std::string()> token);
  ~AgentApi();  ///< stop()
  AgentApi(const AgentApi&) = delete;
  AgentApi& operator=(const AgentApi&) = delete;

  /// Binds and serves. Errors: "http.bind" naming the address and who holds the port.
  core::Result<void> start();
  /// The port listened on (after start()).
  std::uint16_t port() const;
  /// Requests being handled now (a follow counts until its client disconnects).
  std::size_t in_flight() const;
  /// Stops serving; follows in progress end within `grace`. Idempotent.
  void stop(std::chrono::milliseconds grace = std::chrono::milliseconds(1000));

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace openstation::agent
