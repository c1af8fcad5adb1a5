#pragma once
// Shared by the node, agent-protocol and model route tests: a management API with the node and
// model routes, a counting reconcile trigger, the agent link and the notifier, and helpers to
// create a join token and register a node through the real agent::AgentClient.

#include "agent/agent_client.hpp"
#include "server/agent_link.hpp"
#include "server/api/routes.hpp"
#include "server/assignments.hpp"
#include "support/api_test_server.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <atomic>
#include <memory>
#include <string>

namespace openstation::testing_support {

class CountingTrigger final : public server::ReconcileTrigger {
 public:
  void trigger() override { ++count; }
  std::atomic<int> count{0};
};

/// A one-GPU (A100 80 GB) inventory as `openstation agent inventory --json` prints it.
inline std::string gpu_inventory(const std::string& name, std::int64_t used_mib = 1024) {
  boost::json::object gpu{
      {"index", 0},
      {"name", "NVIDIA A100-SXM4-80GB"},
      {"uuid", "GPU-" + name},
      {"memory_total_mib", 81920},
      {"memory_used_mib", used_mib},
      {"compute_capability", "8.0"},
      {"processes", boost::json::array{boost::json::object{
                        {"pid", 777}, {"name", "python3"}, {"used_memory_mib", used_mib}}}}};
  boost::json::object node{{"name", name},           {"type", "gpu"},
                           {"cpu_cores", 16},        {"memory_mib", 131072},
                           {"disk_free_gib", 900.5}, {"gpus", boost::json::array{gpu}}};
  boost::json::object host{{"hostname", name},
                           {"cpu_model", "Intel Xeon"},
                           {"cpu_cores", 16},
                           {"memory_total_mib", 131072},
                           {"memory_available_mib", 120000},
                           {"data_dir", "/var/lib/openstation"},
                           {"disk_path", "/var/lib/openstation"},
                           {"disk_free_gib", 900.5},
                           {"os", "Debian GNU/Linux 12"},
                           {"kernel", "6.1.0"},
                           {"arch", "x86_64"},
                           {"ips", boost::json::array{"10.0.0.5"}}};
  return boost::json::serialize(boost::json::object{
      {"node", node}, {"host", host}, {"probe", "file"}, {"warnings", boost::json::array{}}});
}

class NodeApiFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    notifier_ = std::make_unique<server::AssignmentNotifier>(system_clock_);
    ApiTestServer::Options o;
    o.routes = [this](http::Server& s, server::ApiContext& ctx) {
      server::register_node_routes(s, ctx, *notifier_, trigger_, agents_);
      server::register_model_routes(s, ctx, agents_);
    };
    api_ = std::make_unique<ApiTestServer>(std::move(o));
  }
  void TearDown() override {
    if (notifier_) notifier_->shutdown();
    api_.reset();
  }

  std::string base_url() const { return api_->url(""); }

  /// POST /api/v1/join-tokens as the admin; the token.
  std::string join_token(const std::string& body = {}) {
    auto r = api_->request("POST", "/api/v1/join-tokens", api_->admin_token(), body);
    EXPECT_EQ(r.status, 201) << r.body;
    if (r.status != 201) return {};
    return std::string(ApiTestServer::json(r).at("token").as_string());
  }

  /// Registers a node through the real agent client.
  core::Result<agent::NodeIdentity> register_node(const std::string& name, const std::string& token,
                                                  std::uint16_t api_port = 32208,
                                                  const std::string& address = "") {
    agent::RegisterRequest req;
    req.join_token = token;
    req.name = name;
    req.address = address;
    req.api_port = api_port;
    req.inventory_json = gpu_inventory(name);
    return agent::AgentClient(base_url(), std::chrono::seconds(10)).register_node(req);
  }

  /// A model, a service using it and an instance on `nodes` with assignments for them.
  store::Instance add_instance(const std::vector<std::string>& nodes,
                               store::InstanceState state = store::InstanceState::scheduled) {
    auto& s = api_->store();
    if (service_id_.empty()) {
      store::Model m;
      m.name = "fixture-model";
      auto model = s.models().create(m);
      EXPECT_TRUE(model) << model.error().message;
      store::Service svc;
      svc.name = "chat";
      svc.model_id = model->id;
      auto service = s.services().create(svc);
      EXPECT_TRUE(service) << service.error().message;
      service_id_ = service->id;
    }
    store::Instance i;
    i.service_id = service_id_;
    i.node_ids = nodes;
    i.state = state;
    auto created = s.instances().create(i);
    EXPECT_TRUE(created) << created.error().message;
    server::InstanceAssignments a;
    for (std::size_t r = 0; r < nodes.size(); ++r) {
      agent::Assignment x;
      x.id = server::assignment_id(created->id, r, nodes.size());
      x.service = "chat";
      x.engine = "vllm";
      x.argv = {"serve", "/models/q", "--port", "{port}"};
      a[nodes[r]] = x;
    }
    created->assignment_json = server::assignments_to_json(a);
    auto updated = s.instances().update(*created);
    EXPECT_TRUE(updated) << updated.error().message;
    return *updated;
  }

  core::SystemClock system_clock_;
  CountingTrigger trigger_;
  server::AgentLink agents_;
  std::unique_ptr<server::AssignmentNotifier> notifier_;
  std::unique_ptr<ApiTestServer> api_;
  std::string service_id_;
};

}  // namespace openstation::testing_support
