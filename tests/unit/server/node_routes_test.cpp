// /api/v1/nodes and /api/v1/join-tokens over real HTTP.

#include "node_fixture.hpp"

namespace openstation::testing_support {
namespace {

using namespace std::chrono_literals;

class NodeRoutesTest : public NodeApiFixture {};

TEST_F(NodeRoutesTest, JoinTokensAreAdminOnlyAndValidated) {
  const auto user = api_->user_token("alice");
  auto r = api_->request("POST", "/api/v1/join-tokens", user);
  EXPECT_EQ(r.status, 403) << r.body;

  r = api_->request("POST", "/api/v1/join-tokens", api_->admin_token());
  ASSERT_EQ(r.status, 201) << r.body;
  auto body = ApiTestServer::json(r);
  EXPECT_EQ(body.at("expires_at").as_string(),
            server::format_time(api_->clock.now() + std::chrono::hours(24)));
  EXPECT_FALSE(body.at("used").as_bool());
  const std::string id(body.at("id").as_string());

  r = api_->request("POST", "/api/v1/join-tokens", api_->admin_token(),
                    std::string(R"({"ttl_seconds": 5})"));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(ApiTestServer::error_code(r), "join_token.bad_ttl");
  r = api_->request("POST", "/api/v1/join-tokens", api_->admin_token(),
                    std::string(R"({"ttl": 600})"));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(ApiTestServer::error_field(r), "ttl");

  r = api_->request("GET", "/api/v1/join-tokens", api_->admin_token());
  ASSERT_EQ(r.status, 200);
  auto items = ApiTestServer::json(r).at("items").as_array();
  ASSERT_EQ(items.size(), 1u);
  EXPECT_FALSE(items[0].as_object().contains("token"));  // shown once, at creation

  r = api_->request("DELETE", "/api/v1/join-tokens/" + id, api_->admin_token());
  EXPECT_EQ(r.status, 204);
  r = api_->request("DELETE", "/api/v1/join-tokens/" + id, api_->admin_token());
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(ApiTestServer::error_code(r), "join_token.not_found");
}

TEST_F(NodeRoutesTest, ListsAndShowsNodesWithTheirHardware) {
  const auto token = join_token();
  auto id = register_node("gpu-1", token, 32300, "10.0.0.5");
  ASSERT_TRUE(id);
  ASSERT_TRUE(register_node("gpu-2", token));
  const auto inst = add_instance({id->node_id}, store::InstanceState::running);

  auto r = api_->request("GET", "/api/v1/nodes", api_->user_token("bob"));
  ASSERT_EQ(r.status, 200) << r.body;
  auto items = ApiTestServer::json(r).at("items").as_array();
  ASSERT_EQ(items.size(), 2u);
  const auto& n = items[0].as_object();
  EXPECT_EQ(n.at("name").as_string(), "gpu-1");
  EXPECT_EQ(n.at("address").as_string(), "10.0.0.5");
  EXPECT_EQ(n.at("agent_port").as_int64(), 32300);
  EXPECT_EQ(n.at("status").as_string(), "ready");
  EXPECT_EQ(n.at("type").as_string(), "gpu");
  EXPECT_TRUE(n.at("labels").as_object().empty());  // system labels are not shown
  const auto& gpu = n.at("gpus").as_array().at(0).as_object();
  EXPECT_EQ(gpu.at("memory_total_mib").as_int64(), 81920);
  EXPECT_EQ(gpu.at("memory_used_mib").as_int64(), 1024);
  EXPECT_EQ(gpu.at("memory_free_mib").as_int64(), 81920 - 1024);
  EXPECT_EQ(gpu.at("processes").as_array().size(), 1u);
  EXPECT_EQ(n.at("cpu").at("cores").as_int64(), 16);
  EXPECT_EQ(n.at("memory").at("available_mib").as_int64(), 120000);

  r = api_->request("GET", "/api/v1/nodes?limit=1", api_->admin_token());
  ASSERT_EQ(r.status, 200);
  auto page = ApiTestServer::json(r);
  EXPECT_EQ(page.at("items").as_array().size(), 1u);
  EXPECT_FALSE(page.at("next_cursor").as_string().empty());

  // By name or id, with the inventory and the instances.
  for (const std::string& key : {std::string("gpu-1"), id->node_id}) {
    r = api_->request("GET", "/api/v1/nodes/" + key, api_->admin_token());
    ASSERT_EQ(r.status, 200) << r.body;
    auto d = ApiTestServer::json(r).as_object();
    EXPECT_EQ(d.at("id").as_string(), id->node_id);
    EXPECT_EQ(d.at("inventory").at("probe").as_string(), "file");
    const auto& insts = d.at("instances").as_array();
    ASSERT_EQ(insts.size(), 1u);
    EXPECT_EQ(insts[0].at("id").as_string(), inst.id);
    EXPECT_EQ(insts[0].at("service").as_string(), "chat");
    EXPECT_EQ(insts[0].at("state").as_string(), "running");
  }
  r = api_->request("GET", "/api/v1/nodes/gpu-3", api_->admin_token());
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(ApiTestServer::error_code(r), "node.not_found");
  EXPECT_NE(r.body.find("did you mean"), std::string::npos) << r.body;

  r = api_->request("GET", "/api/v1/nodes", "");
  EXPECT_EQ(r.status, 401);
}

TEST_F(NodeRoutesTest, DeleteDrainsThenTheNodeGoes) {
  auto id = register_node("gpu-1", join_token());
  ASSERT_TRUE(id);
  const auto inst = add_instance({id->node_id}, store::InstanceState::running);
  const int before = trigger_.count;
  const auto gen = notifier_->generation(id->node_id);

  auto r = api_->request("DELETE", "/api/v1/nodes/gpu-1", api_->user_token("carol"));
  EXPECT_EQ(r.status, 403);

  r = api_->request("DELETE", "/api/v1/nodes/gpu-1", api_->admin_token());
  ASSERT_EQ(r.status, 202) << r.body;
  auto body = ApiTestServer::json(r);
  EXPECT_EQ(body.at("status").as_string(), "draining");
  EXPECT_NE(std::string(body.at("status_reason").as_string()).find("admin"), std::string::npos);
  EXPECT_GT(trigger_.count, before);
  EXPECT_GT(notifier_->generation(id->node_id), gen);
  EXPECT_EQ(api_->store().nodes().get(id->node_id)->status, store::NodeStatus::draining);
  // The instance is the reconciler's to move; the node stays until it is gone.
  EXPECT_EQ(api_->store().instances().get(inst.id)->state, store::InstanceState::running);

  // Again: still 202, nothing new in the audit trail.
  r = api_->request("DELETE", "/api/v1/nodes/" + id->node_id, api_->admin_token());
  EXPECT_EQ(r.status, 202);
  auto events = api_->store().events().list({.action = "node.delete"});
  ASSERT_TRUE(events);
  EXPECT_EQ(events->items.size(), 1u);
  EXPECT_EQ(events->items[0].actor, "admin");

  // A heartbeat does not make a draining node ready.
  auto node_id = *id;
  agent::HeartbeatRequest hb;
  hb.node_id = node_id.node_id;
  ASSERT_TRUE(agent::AgentClient(base_url(), 10s).heartbeat(node_id, hb));
  EXPECT_EQ(api_->store().nodes().get(id->node_id)->status, store::NodeStatus::draining);
}

}  // namespace
}  // namespace openstation::testing_support
