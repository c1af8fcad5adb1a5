#pragma once
/// An in-process fake of the control plane's agent endpoints (register, heartbeat, assignments),
/// on http::Server at an ephemeral loopback port. It records what agents send, serves the
/// assignment set a test publishes, can drop watch answers (the connection closes without a
/// response), revoke node tokens, and go down and come back on the same port.

#include "agent/protocol.hpp"
#include "http/server.hpp"

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace openstation::testing {

class FakeControlPlane {
 public:
  /// Starts listening; aborts the test process if it cannot bind (loopback port 0).
  explicit FakeControlPlane(std::string join_token = "join-secret");
  ~FakeControlPlane();

  /// "http://127.0.0.1:<port>".
  std::string url() const;
  std::uint16_t port() const { return port_; }

  /// Replaces the desired set of every node and bumps the generation; returns it.
  std::uint64_t publish(std::vector<agent::Assignment> instances);
  std::uint64_t generation() const;

  /// The next `n` watch answers are dropped: the server closes the connection mid-response.
  void drop_next_watches(int n);
  /// Forgets every node token: heartbeats and watches answer 401 until the node registers again.
  void revoke_tokens();
  /// Stops listening (connections refused) / starts again on the same port.
  void go_down();
  void come_back();

  std::vector<agent::RegisterRequest> registrations() const;
  std::vector<agent::HeartbeatRequest> heartbeats() const;
  /// Watch requests that reached the server (dropped ones included).
  int watch_count() const;
  /// Issued identities, in order.
  std::vector<agent::NodeIdentity> nodes() const;

 private:
  void install_routes(http::Server& server);
  bool authorized(const http::Request& req) const;  // caller holds mutex_

  std::string join_token_;
  std::uint16_t port_ = 0;
  std::unique_ptr<http::Server> server_;

  mutable std::mutex mutex_;
  std::uint64_t generation_ = 1;
  std::vector<agent::Assignment> desired_;
  int drop_watches_ = 0;
  int watch_count_ = 0;
  std::vector<agent::RegisterRequest> registrations_;
  std::vector<agent::HeartbeatRequest> heartbeats_;
  std::vector<agent::NodeIdentity> nodes_;
  std::vector<std::string> valid_tokens_;
};

}  // namespace openstation::testing
