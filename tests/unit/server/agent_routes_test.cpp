// The agent protocol's server side (register, heartbeat, assignments long poll), driven by the
// real agent::AgentClient over HTTP: proof that the agent and the server speak the same protocol.

#include "node_fixture.hpp"

#include "server/auth/token.hpp"

#include <future>
#include <thread>

namespace openstation::testing_support {
namespace {

using namespace std::chrono_literals;

class AgentRoutesTest : public NodeApiFixture {};

TEST_F(AgentRoutesTest, RegistersWithAJoinTokenAndStoresOnlyHashes) {
  const auto token = join_token();
  ASSERT_TRUE(server::auth::looks_like_token(token, server::auth::TokenKind::join)) << token;
  auto id = register_node("gpu-1", token, 32300);
  ASSERT_TRUE(id) << id.error().message;
  EXPECT_TRUE(server::auth::looks_like_token(id->node_token, server::auth::TokenKind::node));

  auto node = api_->store().nodes().get(id->node_id);
  ASSERT_TRUE(node) << node.error().message;
  EXPECT_EQ(node->name, "gpu-1");
  EXPECT_EQ(node->address, "127.0.0.1");  // empty address: where the request came from
  EXPECT_EQ(server::agent_port(*node), 32300);
  EXPECT_EQ(node->status, store::NodeStatus::ready);
  EXPECT_EQ(node->token_hash, server::auth::hash_token(id->node_token));
  EXPECT_EQ(node->inventory_json, gpu_inventory("gpu-1"));
  auto tokens = api_->store().join_tokens().list({});
  ASSERT_TRUE(tokens);
  ASSERT_EQ(tokens->items.size(), 1u);
  EXPECT_EQ(tokens->items[0].token_hash, server::auth::hash_token(token));
  EXPECT_TRUE(tokens->items[0].used);
  // The server can call the node's agent with the token it just issued.
  EXPECT_EQ(agents_.token(id->node_id), id->node_token);

  auto events = api_->store().events().list({.action = "node.register"});
  ASSERT_TRUE(events);
  ASSERT_EQ(events->items.size(), 1u);
  EXPECT_EQ(events->items[0].actor, "node:gpu-1");
}

TEST_F(AgentRoutesTest, OneJoinTokenRegistersSeveralNodesUntilItExpires) {
  const auto token = join_token(R"({"ttl_seconds": 3600})");
  ASSERT_TRUE(register_node("gpu-1", token));
  ASSERT_TRUE(register_node("gpu-2", token, 32208, "10.0.0.6"));
  EXPECT_EQ(api_->store().nodes().get_by_name("gpu-2")->address, "10.0.0.6");
  api_->clock.advance(1h + 1s);
  auto late = register_node("gpu-3", token);
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().code, "agent.unauthorized");
  EXPECT_NE(late.error().message.find("node.bad_join_token"), std::string::npos);
  EXPECT_NE(late.error().message.find("expired"), std::string::npos);
}

TEST_F(AgentRoutesTest, RefusesWrongTokensBadNamesAndTakenNames) {
  const auto token = join_token();
  auto wrong = register_node("gpu-1", "osj_wrong");
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code, "agent.unauthorized");

  auto bad = register_node("bad name!", token);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("node.bad_name"), std::string::npos);

  ASSERT_TRUE(register_node("gpu-1", token));
  const auto other = join_token();
  auto taken = register_node("gpu-1", other);
  ASSERT_FALSE(taken);
  EXPECT_NE(taken.error().message.find("HTTP 409"), std::string::npos);
  EXPECT_NE(taken.error().message.find("node.name_taken"), std::string::npos);
  EXPECT_NE(taken.error().message.find("--name"), std::string::npos);

  // Unknown fields are refused, naming them.
  auto r = api_->request("POST", "/api/v1/agent/register", "",
                         std::string(R"({"join_token": "x", "name": "n", "colour": "red"})"));
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(ApiTestServer::error_field(r), "colour");
  EXPECT_EQ(api_->store().nodes().list({})->items.size(), 1u);
}

TEST_F(AgentRoutesTest, SameNameAndTokenReRegistersWithAFreshCredential) {
  const auto token = join_token();
  auto first = register_node("gpu-1", token);
  ASSERT_TRUE(first);
  auto second = register_node("gpu-1", token);
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_EQ(second->node_id, first->node_id);
  EXPECT_NE(second->node_token, first->node_token);

  agent::AgentClient client(base_url(), 10s);
  agent::HeartbeatRequest hb;
  hb.node_id = first->node_id;
  auto old = client.heartbeat(*first, hb);
  ASSERT_FALSE(old);
  EXPECT_EQ(old.error().code, "agent.unauthorized");  // the agent registers again on 401
  EXPECT_TRUE(client.heartbeat(*second, hb)) << "the new token works";
}

TEST_F(AgentRoutesTest, HeartbeatUpdatesTheNodeAndMapsReportsOntoInstances) {
  auto id = register_node("gpu-1", join_token());
  ASSERT_TRUE(id);
  const auto inst = add_instance({id->node_id});
  api_->clock.advance(7s);

  agent::HeartbeatRequest hb;
  hb.node_id = id->node_id;
  hb.inventory_json = gpu_inventory("gpu-1", 30000);
  agent::InstanceReport running;
  running.id = inst.id;
  running.state = "running";
  running.pid = 4242;
  running.ports = {40007};
  running.restarts = 1;
  agent::InstanceReport stray;
  stray.id = "inst_unknown";
  stray.state = "running";
  hb.instances = {running, stray};
  const int triggers = trigger_.count;
  auto r = agent::AgentClient(base_url(), 10s).heartbeat(*id, hb);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->ok);
  EXPECT_FALSE(r->server_time.empty());

  auto node = api_->store().nodes().get(id->node_id);
  EXPECT_EQ(node->inventory_json, hb.inventory_json);
  EXPECT_EQ(node->last_heartbeat_at, api_->clock.now());
  auto stored = api_->store().instances().get(inst.id);
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->state, store::InstanceState::running);
  EXPECT_EQ(stored->pid, 4242);
  EXPECT_EQ(stored->port, 40007);
  EXPECT_EQ(stored->restarts, 1);
  EXPECT_GT(trigger_.count, triggers);

  // The same report again writes nothing (the revision stays).
  ASSERT_TRUE(agent::AgentClient(base_url(), 10s).heartbeat(*id, hb));
  EXPECT_EQ(api_->store().instances().get(inst.id)->revision, stored->revision);
}

TEST_F(AgentRoutesTest, MultiNodeInstanceIsTheHeadDegradedByItsRanks) {
  const auto token = join_token();
  auto head = register_node("gpu-1", token);
  auto worker = register_node("gpu-2", token);
  ASSERT_TRUE(head && worker);
  const auto inst = add_instance({head->node_id, worker->node_id});
  agent::AgentClient client(base_url(), 10s);

  agent::HeartbeatRequest hb1;
  hb1.node_id = head->node_id;
  hb1.instances = {
      agent::InstanceReport{inst.id + ".r0", "running", 100, {40000}, 0, "", {}, false}};
  ASSERT_TRUE(client.heartbeat(*head, hb1));
  EXPECT_EQ(api_->store().instances().get(inst.id)->state, store::InstanceState::running);

  agent::HeartbeatRequest hb2;
  hb2.node_id = worker->node_id;
  hb2.instances = {agent::InstanceReport{
      inst.id + ".r1", "crash_loop", 200, {}, 5, "exited with code 1", {}, false}};
  ASSERT_TRUE(client.heartbeat(*worker, hb2));
  auto stored = api_->store().instances().get(inst.id);
  EXPECT_EQ(stored->state, store::InstanceState::unhealthy);
  EXPECT_EQ(stored->state_reason, "rank 1 on node gpu-2 is crash_loop: exited with code 1");
  EXPECT_EQ(stored->pid, 100);  // the head's

  // A rank reported by the wrong node is not taken.
  agent::HeartbeatRequest wrong;
  wrong.node_id = head->node_id;
  wrong.instances = {agent::InstanceReport{inst.id + ".r1", "failed", 1, {}, 0, "x", {}, false}};
  ASSERT_TRUE(client.heartbeat(*head, wrong));
  EXPECT_EQ(api_->store().instances().get(inst.id)->state, store::InstanceState::unhealthy);
}

TEST_F(AgentRoutesTest, HeartbeatMakesANotReadyNodeReady) {
  auto id = register_node("gpu-1", join_token());
  ASSERT_TRUE(id);
  auto node = api_->store().nodes().get(id->node_id);
  node->status = store::NodeStatus::not_ready;
  node->status_reason = "no heartbeat for 45 s";
  ASSERT_TRUE(api_->store().nodes().update(*node));
  agent::HeartbeatRequest hb;
  hb.node_id = id->node_id;
  ASSERT_TRUE(agent::AgentClient(base_url(), 10s).heartbeat(*id, hb));
  node = api_->store().nodes().get(id->node_id);
  EXPECT_EQ(node->status, store::NodeStatus::ready);
  EXPECT_EQ(node->status_reason, "");
}

TEST_F(AgentRoutesTest, UnknownNodeTokensAreRefused) {
  auto id = register_node("gpu-1", join_token());
  ASSERT_TRUE(id);
  agent::NodeIdentity forged{id->node_id,
                             server::auth::generate_token(server::auth::TokenKind::node)};
  agent::AgentClient client(base_url(), 10s);
  agent::HeartbeatRequest hb;
  hb.node_id = id->node_id;
  auto h = client.heartbeat(forged, hb);
  ASSERT_FALSE(h);
  EXPECT_EQ(h.error().code, "agent.unauthorized");
  auto w = client.watch(forged, 0, 0s);
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code, "agent.unauthorized");
  // Another node's id with this node's token.
  hb.node_id = "node_other";
  h = client.heartbeat(*id, hb);
  ASSERT_FALSE(h);
  EXPECT_NE(h.error().message.find("node.id_mismatch"), std::string::npos);
}

TEST_F(AgentRoutesTest, WatchAnswersTheWholeSetAndLongPollsForChanges) {
  const auto token = join_token();
  auto id = register_node("gpu-1", token);
  auto other = register_node("gpu-2", token);
  ASSERT_TRUE(id && other);
  const auto mine = add_instance({id->node_id});
  const auto spanning = add_instance({other->node_id, id->node_id});
  add_instance({other->node_id});
  add_instance({id->node_id}, store::InstanceState::stopped);
  agent::AgentClient client(base_url(), 10s);

  // Generation 0 is never the server's: the answer comes at once.
  auto set = client.watch(*id, 0, 30s);
  ASSERT_TRUE(set) << set.error().message;
  EXPECT_EQ(set->generation, notifier_->generation(id->node_id));
  ASSERT_EQ(set->instances.size(), 2u);
  std::vector<std::string> ids{set->instances[0].id, set->instances[1].id};
  std::sort(ids.begin(), ids.end());
  std::vector<std::string> expected{mine.id, spanning.id + ".r1"};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(ids, expected);
  EXPECT_EQ(set->instances[0].engine, "vllm");

  // Same generation: the server waits; a notify answers it with the new set.
  const auto known = set->generation;
  auto waiting = std::async(std::launch::async, [&] { return client.watch(*id, known, 30s); });
  EXPECT_EQ(waiting.wait_for(200ms), std::future_status::timeout);
  const auto added = add_instance({id->node_id});
  notifier_->notify(id->node_id);
  ASSERT_EQ(waiting.wait_for(10s), std::future_status::ready);
  auto changed = waiting.get();
  ASSERT_TRUE(changed) << changed.error().message;
  EXPECT_EQ(changed->generation, known + 1);
  EXPECT_EQ(changed->instances.size(), 3u);
  EXPECT_TRUE(std::any_of(changed->instances.begin(), changed->instances.end(),
                          [&](const agent::Assignment& a) { return a.id == added.id; }));

  // Nothing changes: the same generation after the wait, never a 204.
  auto idle = client.watch(*id, changed->generation, 1s);
  ASSERT_TRUE(idle) << idle.error().message;
  EXPECT_EQ(idle->generation, changed->generation);
  EXPECT_EQ(idle->instances.size(), 3u);
}

}  // namespace
}  // namespace openstation::testing_support
