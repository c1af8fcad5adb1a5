// The agent's HTTP API over a real supervisor running test-child: health, auth, instance list,
// log tail and follow (streamed until the client disconnects).

#include "agent/agent_api.hpp"
#include "agent/process_launcher.hpp"
#include "http/client.hpp"
#include "support/manual_clock.hpp"
#include "support/wait_until.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>

namespace openstation::agent {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::uint16_t ephemeral_base() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

/// A raw client connection, for the streamed follow: reads until a text appears or a deadline.
class RawConnection {
 public:
  explicit RawConnection(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  }
  ~RawConnection() { close(); }
  void send(const std::string& text) {
    EXPECT_EQ(::write(fd_, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  }
  bool read_until(const std::string& needle, std::chrono::milliseconds timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (received_.find(needle) == std::string::npos) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
      char buf[4096];
      const auto n = ::read(fd_, buf, sizeof buf);
      if (n <= 0) return false;
      received_.append(buf, static_cast<std::size_t>(n));
    }
    return true;
  }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  const std::string& received() const { return received_; }

 private:
  int fd_ = -1;
  std::string received_;
};

class AgentApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("agent-api-" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    const auto base = ephemeral_base();
    SupervisorOptions o;
    o.data_dir = dir_;
    o.ports = {base, static_cast<std::uint16_t>(std::min(base + 40, 65535))};
    o.policy.startup_probe_interval = 0s;
    supervisor_ = std::make_unique<Supervisor>(o, launcher_, probe_, checker_, clock_);
    InstanceSpec spec;
    spec.id = "svc-0";
    spec.argv = {OPENSTATION_TEST_CHILD, "--listen", "{port}", "--print", "5"};
    ASSERT_TRUE(supervisor_->reconcile({spec}));
    ASSERT_TRUE(testing::wait_until([&] {
      supervisor_->tick();
      const auto s = supervisor_->status("svc-0");
      return s && s->state == InstanceState::running && supervisor_->tail("svc-0", 10).size() >= 5;
    }));
    AgentApiOptions ao;
    ao.host = "127.0.0.1";
    ao.port = 0;
    ao.follow_poll = 10ms;
    api_ = std::make_unique<AgentApi>(ao, *supervisor_, [this] { return token_; });
    ASSERT_TRUE(api_->start());
    base_url_ = "http://127.0.0.1:" + std::to_string(api_->port());
  }
  void TearDown() override {
    api_.reset();
    if (const auto s = supervisor_->status("svc-0"); s && s->pid > 0) {
      ::kill(-s->pid, SIGKILL);
      ::waitpid(s->pid, nullptr, 0);
    }
  }
  core::Result<http::Response> get(const std::string& target, const std::string& token) {
    http::Headers h;
    if (!token.empty()) h.set("Authorization", "Bearer " + token);
    return http::Client().request("GET", base_url_ + target, h, {}, 10s);
  }

  fs::path dir_;
  testing::ManualClock clock_;
  PosixProcessLauncher launcher_;
  HttpReadinessProbe probe_{1000ms};
  SystemPortChecker checker_;
  std::unique_ptr<Supervisor> supervisor_;
  std::unique_ptr<AgentApi> api_;
  std::string token_ = "node-secret";
  std::string base_url_;
};

TEST_F(AgentApiTest, HealthNeedsNoCredential) {
  auto r = get("/health", "");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("ok"), std::string::npos);
}

TEST_F(AgentApiTest, EverythingElseNeedsTheNodeToken) {
  for (const std::string target : {"/api/v1/instances", "/api/v1/instances/svc-0/logs?tail=2",
                                   "/api/v1/instances/svc-0/logs?follow=1"}) {
    for (const auto& token : {std::string(), std::string("wrong-secret")}) {
      auto r = get(target, token);
      ASSERT_TRUE(r) << r.error().message;
      EXPECT_EQ(r->status, 401) << target;
      EXPECT_NE(r->body.find("\"agent.unauthorized\""), std::string::npos) << r->body;
    }
  }
  token_.clear();  // no identity yet: nothing is accepted
  auto r = get("/api/v1/instances", "");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
}

TEST_F(AgentApiTest, ListsInstances) {
  auto r = get("/api/v1/instances", token_);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("\"id\":\"svc-0\""), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("\"state\":\"running\""), std::string::npos) << r->body;
}

TEST_F(AgentApiTest, TailsLogsAndRefusesBadInput) {
  auto r = get("/api/v1/instances/svc-0/logs?tail=2", token_);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 200);
  const auto lines = supervisor_->tail("svc-0", 2);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(r->body, lines[0] + "\n" + lines[1] + "\n");

  auto missing = get("/api/v1/instances/nope/logs?tail=2", token_);
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  EXPECT_NE(missing->body.find("agent.instance_not_found"), std::string::npos);

  auto bad = get("/api/v1/instances/svc-0/logs?tail=many", token_);
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  EXPECT_NE(bad->body.find("\"field\":\"tail\""), std::string::npos) << bad->body;
}

TEST_F(AgentApiTest, FollowStreamsNewLinesUntilTheClientDisconnects) {
  RawConnection c(api_->port());
  c.send(
      "GET /api/v1/instances/svc-0/logs?follow=1&tail=1 HTTP/1.1\r\nHost: x\r\n"
      "Authorization: Bearer " +
      token_ + "\r\n\r\n");
  const auto last = supervisor_->tail("svc-0", 1);
  ASSERT_EQ(last.size(), 1u);
  ASSERT_TRUE(c.read_until(last[0])) << c.received();
  EXPECT_NE(c.received().find("200"), std::string::npos);
  EXPECT_NE(c.received().find("chunked"), std::string::npos);
  {
    std::ofstream log(supervisor_->log_file("svc-0"), std::ios::app);
    log << "a line appended while following\n";
  }
  ASSERT_TRUE(c.read_until("a line appended while following")) << c.received();
  EXPECT_EQ(api_->in_flight(), 1u);
  c.close();
  EXPECT_TRUE(testing::wait_until([&] { return api_->in_flight() == 0; }))
      << "the follow must end when its client goes";
}

}  // namespace
}  // namespace openstation::agent
