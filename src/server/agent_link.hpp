#pragma once
/// The server's client of the nodes' agent APIs (port 32208, docs/agent.md "The agent's API"):
/// reading an instance's log (tail, and follow as a stream) and inspecting a model path on a node.
///
/// The agent API authenticates with the node's own credential. The store keeps only its hash, so
/// the link learns the token in memory from the node's register and from every authenticated
/// heartbeat and watch (remember()); after a server restart it is known again within one heartbeat
/// interval (5 s). Until then calls fail with "node.not_connected".
///
/// Where a node's agent listens: the node's `address` and the port kept in its label
/// kAgentPortLabel (the api_port the agent registered with; 32208 when absent).
///
/// Errors of every call: "node.not_connected" (unavailable) without a known credential,
/// "node.agent_unreachable" (unavailable) naming address:port when the agent does not answer, and
/// the agent's own error (its code and message, the category from its HTTP status; a 401 becomes
/// "node.agent_refused", unavailable).

#include "core/error.hpp"
#include "http/asio.hpp"
#include "model/model_info.hpp"
#include "store/types.hpp"

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace openstation::http {
class ResponseStream;
}

namespace openstation::server {

/// The node label that holds the agent API's port.
inline constexpr std::string_view kAgentPortLabel = "openstation.io/agent-port";
/// The node label that holds the id of the join token the node registered with.
inline constexpr std::string_view kJoinTokenLabel = "openstation.io/join-token";
/// The agent API's port when a node does not say.
inline constexpr std::uint16_t kDefaultAgentPort = 32208;

/// The agent API port of a node (kAgentPortLabel, else kDefaultAgentPort).
std::uint16_t agent_port(const store::Node& node);

/// Calls the nodes' agents. Thread-safe.
class AgentLink {
 public:
  struct Options {
    std::chrono::milliseconds timeout{std::chrono::seconds(15)};  ///< one request (not a follow)
    std::chrono::milliseconds connect_timeout{std::chrono::seconds(5)};
    /// A follow ends when the agent sends nothing for this long (0: never). Agents send log
    /// lines as they come; an idle engine is silent, so the default is generous.
    std::chrono::milliseconds follow_idle_timeout{std::chrono::hours(1)};
  };

  AgentLink();
  explicit AgentLink(Options options);

  /// Remembers the node's credential (from register, heartbeat or watch).
  void remember(std::string_view node_id, std::string_view token);
  /// Forgets it (the node was removed).
  void forget(std::string_view node_id);
  /// The credential, if known.
  std::optional<std::string> token(std::string_view node_id) const;

  /// POST /api/v1/models/inspect on the node: what the model at `path` (a path on that node) is.
  /// The agent's reader errors come back as they are ("model.path_not_found", "model.no_weights",
  /// "safetensors.*", "gguf.*", ... with field "path"). Blocking: call on a worker thread.
  core::Result<model::ModelInfo> inspect_model(const store::Node& node,
                                               std::string_view path) const;

  /// The last `lines` lines of an assignment's log on the node (GET .../logs?tail=N). Blocking.
  core::Result<std::string> tail_log(const store::Node& node, std::string_view assignment_id,
                                     std::size_t lines) const;

  /// Relays GET .../logs?follow=1&tail=N from the node to `out` as a chunked text/plain stream,
  /// until the client or the agent goes away. Before anything was sent, a failure is answered on
  /// `out` as the project's error body. Runs on the calling coroutine's executor; never blocks.
  http::Awaitable<void> follow_log(store::Node node, std::string assignment_id, std::size_t tail,
                                   http::ResponseStream& out) const;

 private:
  struct Target {
    std::string host;
    std::uint16_t port = 0;
    std::string token;
  };
  core::Result<Target> target(const store::Node& node) const;

  Options options_;
  mutable std::mutex mutex_;
  std::map<std::string, std::string, std::less<>> tokens_;
};

}  // namespace openstation::server
