// The node monitor: missed heartbeats make a node not ready and its instances unhealthy; drained
// nodes are removed. A temporary SQLite store on a manual clock.

#include "server/node_monitor.hpp"

#include "server/agent_link.hpp"
#include "server/api/context.hpp"
#include "server/api/routes.hpp"
#include "server/assignments.hpp"
#include "support/manual_clock.hpp"
#include "support/temp_store.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>

namespace openstation::server {
namespace {

using namespace std::chrono_literals;

class CountingTrigger final : public ReconcileTrigger {
 public:
  void trigger() override { ++count; }
  std::atomic<int> count{0};
};

store::Node node_named(std::string name, store::NodeStatus status) {
  store::Node n;
  n.name = std::move(name);
  n.address = "10.0.0.1";
  n.status = status;
  return n;
}

TEST(NodeSweepPlan, MarksSilentReadyNodesAndRemovesDrainedOnes) {
  testing::ManualClock clock;
  const auto now = clock.now();
  auto fresh = node_named("fresh", store::NodeStatus::ready);
  fresh.id = "n1";
  fresh.last_heartbeat_at = now - 10s;
  auto silent = node_named("silent", store::NodeStatus::ready);
  silent.id = "n2";
  silent.last_heartbeat_at = now - 45s;
  auto never = node_named("never", store::NodeStatus::ready);
  never.id = "n3";
  never.created_at = now - 31s;
  auto down = node_named("down", store::NodeStatus::not_ready);
  down.id = "n4";
  down.last_heartbeat_at = now - 1h;
  auto drained = node_named("drained", store::NodeStatus::draining);
  drained.id = "n5";
  auto busy = node_named("busy", store::NodeStatus::draining);
  busy.id = "n6";

  const auto actions =
      plan_node_sweep({fresh, silent, never, down, drained, busy}, {{"n6", 1}}, now, 30s);
  ASSERT_EQ(actions.size(), 3u);
  EXPECT_EQ(actions[0].kind, NodeAction::Kind::mark_not_ready);
  EXPECT_EQ(actions[0].node_id, "n2");
  EXPECT_EQ(actions[0].reason, "no heartbeat for 45 s (last at " + format_time(now - 45s) + ")");
  EXPECT_EQ(actions[1].node_id, "n3");
  EXPECT_EQ(actions[1].reason, "no heartbeat since it registered at " + format_time(now - 31s));
  EXPECT_EQ(actions[2].kind, NodeAction::Kind::remove);
  EXPECT_EQ(actions[2].node_id, "n5");
}

class NodeMonitorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(store_.get(), nullptr);
    NodeMonitor::Options o;
    o.timeout = 30s;
    monitor_ = std::make_unique<NodeMonitor>(*store_, clock_, trigger_, agents_, notifier_, o);

    store::Model m;
    m.name = "qwen";
    auto model = store_->models().create(m);
    ASSERT_TRUE(model) << model.error().message;
    store::Service svc;
    svc.name = "chat";
    svc.model_id = model->id;
    auto service = store_->services().create(svc);
    ASSERT_TRUE(service) << service.error().message;
    service_id_ = service->id;
  }
  void TearDown() override { monitor_.reset(); }

  store::Node add_node(const std::string& name, store::NodeStatus status) {
    auto n = node_named(name, status);
    n.last_heartbeat_at = clock_.now();
    auto created = store_->nodes().create(n);
    EXPECT_TRUE(created) << created.error().message;
    return *created;
  }
  store::Instance add_instance(std::vector<std::string> nodes, store::InstanceState state) {
    store::Instance i;
    i.service_id = service_id_;
    i.node_ids = std::move(nodes);
    i.state = state;
    auto created = store_->instances().create(i);
    EXPECT_TRUE(created) << created.error().message;
    return *created;
  }

  testing::ManualClock clock_;
  testing_support::TempStore store_{"node-monitor", clock_};
  CountingTrigger trigger_;
  AgentLink agents_;
  AssignmentNotifier notifier_{clock_};
  std::unique_ptr<NodeMonitor> monitor_;
  std::string service_id_;
};

TEST_F(NodeMonitorTest, SilentNodeBecomesNotReadyWithItsInstancesUnhealthy) {
  const auto gpu1 = add_node("gpu-1", store::NodeStatus::ready);
  const auto gpu2 = add_node("gpu-2", store::NodeStatus::ready);
  const auto running = add_instance({gpu1.id}, store::InstanceState::running);
  const auto spanning = add_instance({gpu2.id, gpu1.id}, store::InstanceState::starting);
  const auto elsewhere = add_instance({gpu2.id}, store::InstanceState::running);
  const auto draining = add_instance({gpu1.id}, store::InstanceState::draining);

  auto first = monitor_->sweep();
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_TRUE(first->not_ready.empty());
  EXPECT_EQ(trigger_.count, 0);

  clock_.advance(20s);
  // gpu-2 keeps sending heartbeats.
  auto n2 = store_->nodes().get(gpu2.id);
  n2->last_heartbeat_at = clock_.now();
  ASSERT_TRUE(store_->nodes().update(*n2));
  const auto last = gpu1.last_heartbeat_at;
  clock_.advance(25s);

  auto sweep = monitor_->sweep();
  ASSERT_TRUE(sweep) << sweep.error().message;
  EXPECT_EQ(sweep->not_ready, std::vector<std::string>{gpu1.id});
  EXPECT_EQ(trigger_.count, 1);

  auto n1 = store_->nodes().get(gpu1.id);
  ASSERT_TRUE(n1);
  EXPECT_EQ(n1->status, store::NodeStatus::not_ready);
  EXPECT_EQ(n1->status_reason, "no heartbeat for 45 s (last at " + format_time(*last) + ")");
  EXPECT_EQ(store_->nodes().get(gpu2.id)->status, store::NodeStatus::ready);

  auto r = store_->instances().get(running.id);
  EXPECT_EQ(r->state, store::InstanceState::unhealthy);
  EXPECT_EQ(r->state_reason, "node gpu-1 is not ready: " + n1->status_reason);
  EXPECT_EQ(store_->instances().get(spanning.id)->state, store::InstanceState::unhealthy);
  EXPECT_EQ(store_->instances().get(elsewhere.id)->state, store::InstanceState::running);
  EXPECT_EQ(store_->instances().get(draining.id)->state, store::InstanceState::draining);

  auto events = store_->events().list({.action = "node.not_ready"});
  ASSERT_TRUE(events);
  EXPECT_EQ(events->items.size(), 1u);

  // Already not ready: the next sweep does nothing more.
  auto again = monitor_->sweep();
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->not_ready.empty());
  EXPECT_EQ(trigger_.count, 1);
}

TEST_F(NodeMonitorTest, DrainedNodeIsRemovedOnceItsInstancesAreGone) {
  const auto node = add_node("gpu-1", store::NodeStatus::draining);
  agents_.remember(node.id, "osn_token");
  auto inst = add_instance({node.id}, store::InstanceState::draining);
  const auto gen = notifier_.generation(node.id);

  auto sweep = monitor_->sweep();
  ASSERT_TRUE(sweep) << sweep.error().message;
  EXPECT_TRUE(sweep->removed.empty());
  EXPECT_TRUE(store_->nodes().get(node.id));

  inst.state = store::InstanceState::stopped;
  ASSERT_TRUE(store_->instances().update(inst));
  sweep = monitor_->sweep();
  ASSERT_TRUE(sweep) << sweep.error().message;
  EXPECT_EQ(sweep->removed, std::vector<std::string>{node.id});
  auto gone = store_->nodes().get(node.id);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, "store.not_found");
  EXPECT_FALSE(agents_.token(node.id));
  EXPECT_GT(notifier_.generation(node.id), gen);
  EXPECT_EQ(trigger_.count, 1);
}

TEST_F(NodeMonitorTest, BackgroundLoopSweeps) {
  add_node("gpu-1", store::NodeStatus::ready);
  clock_.advance(60s);
  NodeMonitor::Options o;
  o.timeout = 30s;
  o.interval = 10ms;
  NodeMonitor loop(*store_, clock_, trigger_, agents_, notifier_, o);
  loop.start();
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (trigger_.count == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  loop.stop();
  EXPECT_EQ(store_->nodes().get_by_name("gpu-1")->status, store::NodeStatus::not_ready);
}

}  // namespace
}  // namespace openstation::server
