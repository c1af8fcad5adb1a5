#pragma once
/// The agent's side of the protocol (protocol.hpp): register, heartbeat and the long-poll watch
/// of assignments, over the blocking http::Client (heartbeats over an http::KeptClient, which
/// keeps its connection). Every call is one HTTP request; retrying with backoff is the daemon's
/// business (daemon.hpp).

#include "agent/protocol.hpp"
#include "core/error.hpp"
#include "http/tls.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace openstation::http {
class KeptClient;
}  // namespace openstation::http

namespace openstation::agent {

/// Calls the control plane at `server_url` ("http://host:32206"). Thread-safe (heartbeats,
/// which share a connection, are serialised; the other calls share nothing). Errors of every call:
/// "http.connect", "http.timeout", "http.read"… (unavailable) when the server cannot be reached;
/// "agent.unauthorized" (unauthorized) on 401; "agent.server_error" carrying the server's own error
/// code and message on other non-2xx answers; the protocol's parse errors on a malformed answer.
class AgentClient {
 public:
  /// `timeout` bounds register and heartbeat; a watch waits `wait` plus `timeout`. `tls` says
  /// how an https:// server is trusted (a pinned fingerprint or a CA file; http/tls.hpp).
  explicit AgentClient(std::string server_url,
                       std::chrono::milliseconds timeout = std::chrono::seconds(15),
                       http::TlsClientOptions tls = {});

  /// POST register with the join token → the node's identity.
  core::Result<NodeIdentity> register_node(const RegisterRequest& request) const;
  /// POST heartbeat with Bearer node_token.
  core::Result<HeartbeatResponse> heartbeat(const NodeIdentity& id,
                                            const HeartbeatRequest& request) const;
  /// GET assignments: the whole desired set. The server answers at once when its generation
  /// differs from `generation`, else after up to `wait` with the same generation.
  core::Result<AssignmentSet> watch(const NodeIdentity& id, std::uint64_t generation,
                                    std::chrono::seconds wait) const;

  const std::string& server_url() const { return base_; }

 private:
  std::string base_;
  std::chrono::milliseconds timeout_;
  http::TlsClientOptions tls_;
  /// Heartbeats go over one kept connection (shared by copies of this client): a new TCP
  /// connection and TLS handshake every few seconds cost both sides more than the heartbeat.
  std::shared_ptr<http::KeptClient> heartbeats_;
};

}  // namespace openstation::agent
