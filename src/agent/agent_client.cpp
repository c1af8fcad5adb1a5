#include "agent/agent_client.hpp"

#include "core/json.hpp"
#include "http/client.hpp"

#include <boost/json.hpp>

namespace openstation::agent {
namespace {

/// The server's error body {"error": {"code", "message"}} turned into an Error.
core::Error server_error(const http::Response& r, std::string_view what) {
  [[maybe_unused]] auto [found, code, message, field] = http::parse_error_body(r.body);
  if (message.empty()) message = r.body.substr(0, 200);
  std::string text = std::string(what) + ": the server answered HTTP " + std::to_string(r.status);
  if (!code.empty()) text += " " + code;
  if (!message.empty()) text += ": " + message;
  if (r.status == 401) {
    return core::Error(core::Errc::unauthorized, "agent.unauthorized", text);
  }
  const auto cat = r.status >= 500 ? core::Errc::unavailable : core::Errc::invalid_argument;
  return core::Error(cat, "agent.server_error", text);
}

std::string base_url(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url;
}

}  // namespace

AgentClient::AgentClient(std::string server_url, std::chrono::milliseconds timeout,
                         http::TlsClientOptions tls)
    : base_(base_url(std::move(server_url))),
      timeout_(timeout),
      tls_(std::move(tls)),
      heartbeats_(std::make_shared<http::KeptClient>(tls_)) {}

core::Result<NodeIdentity> AgentClient::register_node(const RegisterRequest& request) const {
  http::Client client(tls_);
  auto r = client.post_json(base_ + std::string(kRegisterPath), to_json(request), timeout_);
  if (!r) return r.error();
  if (r->status < 200 || r->status >= 300) return server_error(*r, "register");
  return parse_node_identity(r->body);
}

core::Result<HeartbeatResponse> AgentClient::heartbeat(const NodeIdentity& id,
                                                       const HeartbeatRequest& request) const {
  auto r = heartbeats_->post_json(base_ + std::string(kHeartbeatPath), to_json(request), timeout_,
                                  {{"Authorization", "Bearer " + id.node_token}});
  if (!r) return r.error();
  if (r->status < 200 || r->status >= 300) return server_error(*r, "heartbeat");
  return parse_heartbeat_response(r->body);
}

core::Result<AssignmentSet> AgentClient::watch(const NodeIdentity& id, std::uint64_t generation,
                                               std::chrono::seconds wait) const {
  http::Client client(tls_);
  const std::string url = base_ + std::string(kAssignmentsPath) + "?node_id=" + id.node_id +
                          "&generation=" + std::to_string(generation) +
                          "&wait=" + std::to_string(wait.count());
  auto r = client.request("GET", url, {{"Authorization", "Bearer " + id.node_token}}, {},
                          timeout_ + wait);
  if (!r) return r.error();
  if (r->status < 200 || r->status >= 300) return server_error(*r, "assignments");
  return parse_assignment_set(r->body);
}

}  // namespace openstation::agent
