#include "support/fake_control_plane.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace openstation::testing {
namespace {

http::Response unauthorized() {
  return http::Response::error(core::Error(core::Errc::unauthorized, "auth.bad_node_token",
                                           "unknown node token; register again"));
}

}  // namespace

FakeControlPlane::FakeControlPlane(std::string join_token) : join_token_(std::move(join_token)) {
  come_back();
}

FakeControlPlane::~FakeControlPlane() {
  go_down();
}

std::string FakeControlPlane::url() const {
  return "http://127.0.0.1:" + std::to_string(port_);
}

void FakeControlPlane::come_back() {
  if (server_) return;
  http::ServerOptions options;
  options.port = port_;
  options.threads = 2;
  auto server = std::make_unique<http::Server>(options);
  install_routes(*server);
  auto started = server->start();
  if (!started) {
    std::fprintf(stderr, "fake control plane: %s\n", started.error().message.c_str());
    std::abort();
  }
  port_ = server->port();
  server_ = std::move(server);
}

void FakeControlPlane::go_down() {
  if (!server_) return;
  server_->stop(std::chrono::milliseconds(0));
  server_.reset();
}

std::uint64_t FakeControlPlane::publish(std::vector<agent::Assignment> instances) {
  std::lock_guard lock(mutex_);
  desired_ = std::move(instances);
  return ++generation_;
}

std::uint64_t FakeControlPlane::generation() const {
  std::lock_guard lock(mutex_);
  return generation_;
}

void FakeControlPlane::drop_next_watches(int n) {
  std::lock_guard lock(mutex_);
  drop_watches_ = n;
}

void FakeControlPlane::revoke_tokens() {
  std::lock_guard lock(mutex_);
  valid_tokens_.clear();
}

std::vector<agent::RegisterRequest> FakeControlPlane::registrations() const {
  std::lock_guard lock(mutex_);
  return registrations_;
}

std::vector<agent::HeartbeatRequest> FakeControlPlane::heartbeats() const {
  std::lock_guard lock(mutex_);
  return heartbeats_;
}

int FakeControlPlane::watch_count() const {
  std::lock_guard lock(mutex_);
  return watch_count_;
}

std::vector<agent::NodeIdentity> FakeControlPlane::nodes() const {
  std::lock_guard lock(mutex_);
  return nodes_;
}

bool FakeControlPlane::authorized(const http::Request& req) const {
  const auto auth = req.headers.get_or("Authorization", "");
  constexpr std::string_view kBearer = "Bearer ";
  if (auth.substr(0, kBearer.size()) != kBearer) return false;
  const std::string token(auth.substr(kBearer.size()));
  return std::find(valid_tokens_.begin(), valid_tokens_.end(), token) != valid_tokens_.end();
}

void FakeControlPlane::install_routes(http::Server& server) {
  server.route("POST", std::string(agent::kRegisterPath),
               [this](http::Request& req) -> http::Awaitable<http::Response> {
                 auto r = agent::parse_register_request(req.body);
                 if (!r) co_return http::Response::error(r.error());
                 std::lock_guard lock(mutex_);
                 if (r->join_token != join_token_) co_return unauthorized();
                 registrations_.push_back(*r);
                 agent::NodeIdentity id;
                 id.node_id = "node-" + std::to_string(nodes_.size() + 1);
                 id.node_token = "tok-" + std::to_string(nodes_.size() + 1) + "-" + r->name;
                 nodes_.push_back(id);
                 valid_tokens_.push_back(id.node_token);
                 co_return http::Response::json(200, agent::to_json(id));
               });
  server.route("POST", std::string(agent::kHeartbeatPath),
               [this](http::Request& req) -> http::Awaitable<http::Response> {
                 std::lock_guard lock(mutex_);
                 if (!authorized(req)) co_return unauthorized();
                 auto r = agent::parse_heartbeat_request(req.body);
                 if (!r) co_return http::Response::error(r.error());
                 heartbeats_.push_back(*r);
                 co_return http::Response::json(
                     200, agent::to_json(agent::HeartbeatResponse{true, "2025-01-01T00:00:00Z"}));
               });
  server.stream(
      "GET", std::string(agent::kAssignmentsPath),
      [this](http::Request& req, http::ResponseStream& stream) -> http::Awaitable<void> {
        std::uint64_t known = 0;
        int wait_s = 0;
        bool drop = false;
        {
          std::lock_guard lock(mutex_);
          ++watch_count_;
          if (!authorized(req)) {
            co_await stream.respond(unauthorized());
            co_return;
          }
          if (drop_watches_ > 0) {
            --drop_watches_;
            drop = true;
          }
        }
        if (drop) {
          // Start a response and break it off: the client sees the connection drop.
          http::Headers headers;  // built apart: GCC cannot take a braced list inside co_await
          headers.set("Content-Type", "application/json");
          co_await stream.start(200, std::move(headers));
          co_await stream.write("{\"generation\":");
          throw std::runtime_error("fake control plane: dropping this watch");
        }
        known = std::strtoull(req.query_param("generation").value_or("0").c_str(), nullptr, 10);
        wait_s = std::atoi(req.query_param("wait").value_or("0").c_str());
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(wait_s);
        for (;;) {
          {
            std::lock_guard lock(mutex_);
            if (generation_ != known || std::chrono::steady_clock::now() >= deadline) break;
          }
          boost::asio::steady_timer t(co_await boost::asio::this_coro::executor,
                                      std::chrono::milliseconds(5));
          co_await t.async_wait(boost::asio::use_awaitable);
        }
        std::string body;
        {
          std::lock_guard lock(mutex_);
          body = agent::to_json(agent::AssignmentSet{generation_, desired_});
        }
        co_await stream.respond(http::Response::json(200, std::move(body)));
      });
}

}  // namespace openstation::testing
