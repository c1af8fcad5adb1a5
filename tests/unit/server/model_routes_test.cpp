// /api/v1/catalog, /api/v1/models, /api/v1/plan and /api/v1/instances/{id}/logs over real HTTP,
// with a real agent (AgentApi over a Supervisor with fake process seams) registered through the
// protocol, so model imports and logs really go through the node's agent API.

#include "node_fixture.hpp"

#include "agent/agent_api.hpp"
#include "agent/supervisor.hpp"
#include "model/catalog.hpp"
#include "support/fake_supervisor_seams.hpp"
#include "support/manual_clock.hpp"
#include "support/model_fixtures.hpp"
#include "support/wait_until.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace openstation::testing_support {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

/// A raw client connection for the streamed follow: reads until a text appears or a deadline.
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
  ~RawConnection() {
    if (fd_ >= 0) ::close(fd_);
  }
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
  const std::string& received() const { return received_; }

 private:
  int fd_ = -1;
  std::string received_;
};

class ModelRoutesTest : public NodeApiFixture {
 protected:
  void SetUp() override {
    NodeApiFixture::SetUp();
    scratch_ = std::make_unique<fixtures::ScratchDir>("model-routes");
    agent::SupervisorOptions so;
    so.data_dir = scratch_->path() / "agent";
    so.ports = {45000, 45099};
    supervisor_ = std::make_unique<agent::Supervisor>(so, launcher_, probe_, ports_, agent_clock_);
    agent::AgentApiOptions ao;
    ao.host = "127.0.0.1";
    ao.port = 0;
    ao.follow_poll = 10ms;
    agent_api_ = std::make_unique<agent::AgentApi>(ao, *supervisor_, [this] {
      std::lock_guard lock(token_mutex_);
      return node_token_;
    });
    ASSERT_TRUE(agent_api_->start());
    auto id = register_node("gpu-1", join_token(), agent_api_->port(), "127.0.0.1");
    ASSERT_TRUE(id) << id.error().message;
    identity_ = *id;
    std::lock_guard lock(token_mutex_);
    node_token_ = id->node_token;
  }
  void TearDown() override {
    agent_api_.reset();
    supervisor_.reset();
    NodeApiFixture::TearDown();
    scratch_.reset();
  }

  http::Response import(const std::string& name, const std::string& path,
                        const std::string& node = "gpu-1") {
    boost::json::object body{{"name", name}, {"path", path}, {"node", node}};
    return api_->request("POST", "/api/v1/models", api_->admin_token(), body);
  }

  std::unique_ptr<fixtures::ScratchDir> scratch_;
  testing::ManualClock agent_clock_;
  testing::FakeProcessLauncher launcher_;
  testing::FakeReadinessProbe probe_;
  testing::FakePortChecker ports_;
  std::unique_ptr<agent::Supervisor> supervisor_;
  std::unique_ptr<agent::AgentApi> agent_api_;
  std::mutex token_mutex_;
  std::string node_token_;
  agent::NodeIdentity identity_;
};

TEST_F(ModelRoutesTest, ImportsALocalPathCheckedByTheNodesAgent) {
  const auto m = fixtures::make_hf_model_dir(scratch_->path() / "qwen-tiny",
                                             fixtures::tiny_qwen2_arch(), "BF16", 2);
  auto r = import("qwen-tiny", m.dir.string());
  ASSERT_EQ(r.status, 201) << r.body;
  auto body = ApiTestServer::json(r).as_object();
  EXPECT_EQ(body.at("name").as_string(), "qwen-tiny");
  EXPECT_EQ(body.at("source").as_string(), "local");
  EXPECT_EQ(body.at("node").as_string(), identity_.node_id);
  EXPECT_EQ(body.at("format").as_string(), "safetensors");
  EXPECT_EQ(body.at("status").as_string(), "ready");
  EXPECT_GT(body.at("size_bytes").as_int64(), static_cast<std::int64_t>(m.weight_bytes));
  const auto& details = body.at("details").as_object();
  EXPECT_EQ(details.at("weight_bytes").as_int64(), static_cast<std::int64_t>(m.weight_bytes));
  EXPECT_EQ(details.at("architecture").at("architecture").as_string(), "Qwen2ForCausalLM");
  EXPECT_EQ(details.at("architecture").at("num_layers").as_int64(), 2);

  // Listed, and found by name or id.
  r = api_->request("GET", "/api/v1/models", api_->user_token("ann"));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(ApiTestServer::json(r).at("items").as_array().size(), 1u);
  r = api_->request("GET", "/api/v1/models/qwen-tiny", api_->admin_token());
  ASSERT_EQ(r.status, 200);
  const std::string id(ApiTestServer::json(r).at("id").as_string());
  r = api_->request("GET", "/api/v1/models/" + id, api_->admin_token());
  EXPECT_EQ(r.status, 200);

  // The same name again: 409, and nothing new.
  r = import("qwen-tiny", m.dir.string());
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(ApiTestServer::error_code(r), "model.name_taken");

  auto events = api_->store().events().list({.action = "model.import"});
  ASSERT_TRUE(events);
  EXPECT_EQ(events->items.size(), 1u);
}

TEST_F(ModelRoutesTest, ImportsAGgufFile) {
  const auto g = fixtures::make_gguf_model(scratch_->path() / "tiny.gguf");
  auto r = import("tiny-gguf", g.path.string());
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(ApiTestServer::json(r).at("format").as_string(), "gguf");
}

TEST_F(ModelRoutesTest, RefusesBadImportsWithTheReadersError) {
  auto r = import("missing", (scratch_->path() / "nothing-here").string());
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(ApiTestServer::error_code(r), "model.path_not_found");
  EXPECT_EQ(ApiTestServer::error_field(r), "path");
  EXPECT_NE(r.body.find("gpu-1"), std::string::npos) << r.body;

  fs::create_directories(scratch_->path() / "empty");
  r = import("empty", (scratch_->path() / "empty").string());
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(ApiTestServer::error_code(r), "model.no_weights");

  r = import("relative", "models/q");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(ApiTestServer::error_code(r), "model.bad_path");
  r = import("bad name", "/x");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(ApiTestServer::error_code(r), "model.bad_name");
  r = import("q", "/x", "gpu-9");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(ApiTestServer::error_code(r), "node.not_found");
  EXPECT_EQ(ApiTestServer::error_field(r), "node");
  r = api_->request(
      "POST", "/api/v1/models", api_->admin_token(),
      std::string(R"({"name": "q", "path": "/x", "node": "gpu-1", "format": "gguf"})"));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(ApiTestServer::error_field(r), "format");
  r = api_->request("POST", "/api/v1/models", api_->user_token("u1"),
                    std::string(R"({"name": "q", "path": "/x", "node": "gpu-1"})"));
  EXPECT_EQ(r.status, 403);
  EXPECT_TRUE(api_->store().models().list({})->items.empty());
}

TEST_F(ModelRoutesTest, ImportNeedsTheAgentReachable) {
  const auto m = fixtures::make_hf_model_dir(scratch_->path() / "q", fixtures::tiny_llama_arch());
  agent_api_->stop();
  auto r = import("q", m.dir.string());
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_EQ(ApiTestServer::error_code(r), "node.agent_unreachable");
  agents_.forget(identity_.node_id);  // as after a server restart, before the next heartbeat
  r = import("q", m.dir.string());
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_EQ(ApiTestServer::error_code(r), "node.not_connected");
}

TEST_F(ModelRoutesTest, DeletingAModelInUseIsRefused) {
  const auto m = fixtures::make_hf_model_dir(scratch_->path() / "q", fixtures::tiny_llama_arch());
  auto r = import("q", m.dir.string());
  ASSERT_EQ(r.status, 201) << r.body;
  const std::string id(ApiTestServer::json(r).at("id").as_string());
  store::Service svc;
  svc.name = "chat-q";
  svc.model_id = id;
  auto created = api_->store().services().create(svc);
  ASSERT_TRUE(created);

  r = api_->request("DELETE", "/api/v1/models/q", api_->admin_token());
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_EQ(ApiTestServer::error_code(r), "model.in_use");
  EXPECT_NE(r.body.find("chat-q"), std::string::npos) << r.body;

  ASSERT_TRUE(api_->store().services().remove(created->id));
  r = api_->request("DELETE", "/api/v1/models/q", api_->admin_token());
  EXPECT_EQ(r.status, 204) << r.body;
  r = api_->request("GET", "/api/v1/models/q", api_->admin_token());
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(ApiTestServer::error_code(r), "model.not_found");
}

TEST_F(ModelRoutesTest, CatalogListsTheBuiltInCards) {
  auto r = api_->request("GET", "/api/v1/catalog", api_->user_token("cat"));
  ASSERT_EQ(r.status, 200) << r.body;
  const auto items = ApiTestServer::json(r).at("items").as_array();
  EXPECT_EQ(items.size(), model::Catalog::builtin().cards().size());
  r = api_->request("GET", "/api/v1/catalog/deepseek-r1-distill-qwen-1.5b", api_->admin_token());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(ApiTestServer::json(r).at("params_label").as_string(), "1.5B");
  r = api_->request("GET", "/api/v1/catalog/deepseek-r1-distill-qwen-1.6b", api_->admin_token());
  EXPECT_EQ(r.status, 404);
}

TEST_F(ModelRoutesTest, PlansOverStoredNodes) {
  boost::json::object body{{"model", "deepseek-r1-distill-qwen-1.5b"},
                           {"nodes", boost::json::array{"gpu-1"}}};
  auto r = api_->request("POST", "/api/v1/plan", api_->user_token("p"), body);
  ASSERT_EQ(r.status, 200) << r.body;
  auto plan = ApiTestServer::json(r).as_object();
  EXPECT_TRUE(plan.at("ok").as_bool()) << r.body;
  EXPECT_EQ(plan.at("engine").as_string(), "sglang");  // one GPU node
  EXPECT_EQ(plan.at("nodes").as_array().at(0).at("name").as_string(), "gpu-1");

  // A library model plans with what its files say.
  const auto m = fixtures::make_hf_model_dir(scratch_->path() / "q", fixtures::tiny_llama_arch());
  ASSERT_EQ(import("tiny", m.dir.string()).status, 201);
  body = {{"model", "tiny"}, {"nodes", boost::json::array{"gpu-1"}}, {"engine", "vllm"}};
  r = api_->request("POST", "/api/v1/plan", api_->admin_token(), body);
  ASSERT_EQ(r.status, 200) << r.body;
  plan = ApiTestServer::json(r).as_object();
  EXPECT_EQ(plan.at("engine").as_string(), "vllm");
  EXPECT_EQ(plan.at("model_path").as_string(), m.dir.string());

  body = {{"model", "tiny"}, {"nodes", boost::json::array{"gpu-7"}}};
  r = api_->request("POST", "/api/v1/plan", api_->admin_token(), body);
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(ApiTestServer::error_code(r), "node.not_found");
  body = {{"model", "tinyy"}, {"nodes", boost::json::array{"gpu-1"}}};
  r = api_->request("POST", "/api/v1/plan", api_->admin_token(), body);
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(ApiTestServer::error_code(r), "model.not_found");
  EXPECT_NE(r.body.find("did you mean 'tiny'"), std::string::npos) << r.body;
  body = {{"model", "tiny"}, {"nodes", boost::json::array{}}};
  r = api_->request("POST", "/api/v1/plan", api_->admin_token(), body);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(ApiTestServer::error_code(r), "plan.no_nodes");
}

TEST_F(ModelRoutesTest, InstanceLogsTailAndFollowThroughTheAgent) {
  const auto inst = add_instance({identity_.node_id}, store::InstanceState::running);
  agent::InstanceSpec spec;
  spec.id = inst.id;
  spec.argv = {"/bin/engine"};
  spec.health_path.clear();
  ASSERT_TRUE(supervisor_->reconcile({spec}));
  supervisor_->tick();
  const auto log = supervisor_->log_file(inst.id);
  {
    fs::create_directories(log.parent_path());
    std::ofstream out(log, std::ios::app);
    out << "engine line 1\nengine line 2\n";
  }
  auto r = api_->request("GET", "/api/v1/instances/" + inst.id + "/logs?tail=2",
                         api_->user_token("reader"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, "engine line 1\nengine line 2\n");

  r = api_->request("GET", "/api/v1/instances/" + inst.id + "/logs?tail=x", api_->admin_token());
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(ApiTestServer::error_field(r), "tail");
  r = api_->request("GET", "/api/v1/instances/inst_nope/logs", api_->admin_token());
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(ApiTestServer::error_code(r), "instance.not_found");

  // Follow: the last line, then what the engine writes, streamed through the server.
  RawConnection c(api_->server().port());
  c.send("GET /api/v1/instances/" + inst.id +
         "/logs?follow=1&tail=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
         api_->admin_token() + "\r\n\r\n");
  ASSERT_TRUE(c.read_until("engine line 2")) << c.received();
  EXPECT_NE(c.received().find("chunked"), std::string::npos);
  EXPECT_EQ(c.received().find("engine line 1"), std::string::npos);
  {
    std::ofstream out(log, std::ios::app);
    out << "written later\n";
  }
  ASSERT_TRUE(c.read_until("written later")) << c.received();
}

}  // namespace
}  // namespace openstation::testing_support
