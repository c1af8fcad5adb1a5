// GCC 12 reports a false -Wmismatched-new-delete on Asio coroutine frames (awaitable_frame_base
// has its own operator new/delete); the frames are allocated and freed by the same pair.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include "server/agent_link.hpp"

#include "agent/model_inspect.hpp"
#include "http/client.hpp"
#include "http/server.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/json.hpp>

#include <charconv>

namespace openstation::server {
namespace {

std::string url_host(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

/// The agent's error body turned into our error, keeping its code and message.
core::Error agent_error(const store::Node& node, int status, std::string_view body) {
  [[maybe_unused]] auto [found, code, message, field] = http::parse_error_body(body);
  if (status == 401) {
    return core::Error(
        core::Errc::unavailable, "node.agent_refused",
        "the agent of node " + node.name +
            " refused the server's credential (was it re-registered elsewhere?): " + message);
  }
  if (code.empty()) {
    code = "node.agent_error";
    message = "the agent of node " + node.name + " answered HTTP " + std::to_string(status) + ": " +
              std::string(body.substr(0, 200));
  }
  core::Errc cat = core::Errc::unavailable;
  if (status == 400) cat = core::Errc::invalid_argument;
  if (status == 404) cat = core::Errc::not_found;
  if (status == 409) cat = core::Errc::conflict;
  return core::Error(cat, std::move(code), std::move(message), std::move(field));
}

core::Error unreachable(const store::Node& node, std::uint16_t port, const core::Error& e) {
  return core::Error(core::Errc::unavailable, "node.agent_unreachable",
                     "the agent of node " + node.name + " at " + node.address + ":" +
                         std::to_string(port) + " does not answer (" + e.message +
                         "); check that the agent runs and that the server reaches that "
                         "address and port");
}

}  // namespace

std::uint16_t agent_port(const store::Node& node) {
  const auto it = node.labels.find(std::string(kAgentPortLabel));
  if (it == node.labels.end()) return kDefaultAgentPort;
  unsigned v = 0;
  const auto* end = it->second.data() + it->second.size();
  const auto [p, ec] = std::from_chars(it->second.data(), end, v);
  if (ec != std::errc() || p != end || v == 0 || v > 65535) return kDefaultAgentPort;
  return static_cast<std::uint16_t>(v);
}

AgentLink::AgentLink() : AgentLink(Options{}) {}

AgentLink::AgentLink(Options options) : options_(options) {}

void AgentLink::remember(std::string_view node_id, std::string_view token) {
  if (node_id.empty() || token.empty()) return;
  std::lock_guard lock(mutex_);
  tokens_.insert_or_assign(std::string(node_id), std::string(token));
}

void AgentLink::forget(std::string_view node_id) {
  std::lock_guard lock(mutex_);
  if (const auto it = tokens_.find(node_id); it != tokens_.end()) tokens_.erase(it);
}

std::optional<std::string> AgentLink::token(std::string_view node_id) const {
  std::lock_guard lock(mutex_);
  const auto it = tokens_.find(node_id);
  if (it == tokens_.end()) return std::nullopt;
  return it->second;
}

core::Result<AgentLink::Target> AgentLink::target(const store::Node& node) const {
  auto t = token(node.id);
  if (!t) {
    return core::Error(core::Errc::unavailable, "node.not_connected",
                       "the server has not heard from node " + node.name +
                           " since it started, so it cannot call its agent yet; agents send a "
                           "heartbeat every few seconds — retry shortly, or check that the "
                           "agent on " +
                           node.address + " runs");
  }
  return Target{node.address, agent_port(node), std::move(*t)};
}

core::Result<model::ModelInfo> AgentLink::inspect_model(const store::Node& node,
                                                        std::string_view path) const {
  auto t = target(node);
  if (!t) return t.error();
  const std::string url = "http://" + url_host(t->host) + ":" + std::to_string(t->port) +
                          std::string(agent::kInspectModelPath);
  http::Client client;
  auto r = client.post_json(url, boost::json::serialize(boost::json::object{{"path", path}}),
                            options_.timeout, {{"Authorization", "Bearer " + t->token}});
  if (!r) return unreachable(node, t->port, r.error());
  if (r->status != 200) return agent_error(node, r->status, r->body);
  return agent::parse_model_info_json(r->body);
}

core::Result<std::string> AgentLink::tail_log(const store::Node& node,
                                              std::string_view assignment_id,
                                              std::size_t lines) const {
  auto t = target(node);
  if (!t) return t.error();
  const std::string url = "http://" + url_host(t->host) + ":" + std::to_string(t->port) +
                          "/api/v1/instances/" + std::string(assignment_id) +
                          "/logs?tail=" + std::to_string(lines);
  http::Client client;
  auto r =
      client.request("GET", url, {{"Authorization", "Bearer " + t->token}}, {}, options_.timeout);
  if (!r) return unreachable(node, t->port, r.error());
  if (r->status != 200) return agent_error(node, r->status, r->body);
  return std::move(r->body);
}

http::Awaitable<void> AgentLink::follow_log(store::Node node, std::string assignment_id,
                                            std::size_t tail, http::ResponseStream& out) const {
  using namespace boost::asio::experimental::awaitable_operators;
  auto t = target(node);
  if (!t) {
    co_await out.respond(http::Response::error(t.error()));
    co_return;
  }
  auto ex = co_await boost::asio::this_coro::executor;
  auto conn = co_await http::Connection::connect(ex, t->host, t->port, options_.connect_timeout);
  if (!conn) {
    co_await out.respond(http::Response::error(unreachable(node, t->port, conn.error())));
    co_return;
  }
  http::Request req;
  req.method = "GET";
  req.target = "/api/v1/instances/" + assignment_id + "/logs?follow=1&tail=" + std::to_string(tail);
  req.headers.set("Authorization", "Bearer " + t->token);
  auto head = co_await conn->send(req, options_.timeout);
  if (!head) {
    co_await out.respond(http::Response::error(unreachable(node, t->port, head.error())));
    co_return;
  }
  if (head->status != 200) {
    std::string body;
    for (;;) {
      auto piece = co_await conn->read_some(options_.timeout);
      if (!piece || piece->empty() || body.size() > 65536) break;
      body += *piece;
    }
    co_await out.respond(http::Response::error(agent_error(node, head->status, body)));
    co_return;
  }
  http::Headers headers;  // built apart: GCC cannot take a braced list inside co_await
  headers.set("Content-Type", "text/plain; charset=utf-8");
  headers.set("Cache-Control", "no-cache");
  headers.set("X-Accel-Buffering", "no");
  if (!co_await out.start(200, std::move(headers))) co_return;
  auto relay = [&]() -> http::Awaitable<void> {
    for (;;) {
      auto piece = co_await conn->read_some(options_.follow_idle_timeout);
      if (!piece || piece->empty()) co_return;
      if (!co_await out.write(*piece)) co_return;
    }
  };
  co_await (relay() || out.wait_disconnected());
  conn->close();
  co_await out.finish();
}

}  // namespace openstation::server
