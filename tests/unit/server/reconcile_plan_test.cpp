// The pure reconciliation plan: scale up and down (which instance goes), pending reasons, node
// not ready (unhealthy, then replaced after the grace), failed instances replaced with backoff,
// draining until idle or the deadline, deleted services, and the agents' assignments.

#include "server/reconcile_plan.hpp"

#include "core/strings.hpp"
#include "model/catalog.hpp"

#include <gtest/gtest.h>

#include <algorithm>

namespace openstation::server {
namespace {

using namespace std::chrono_literals;
using store::InstanceState;
using TP = core::Clock::TimePoint;

const TP kNow = TP(std::chrono::seconds(1'800'000'000));

model::NodeSpec gpu_spec(const std::string& name, int gpus, std::int64_t total_mib = 81920) {
  model::NodeSpec s;
  s.name = name;
  s.type = model::NodeType::gpu;
  s.cpu_cores = 32;
  s.memory_mib = 512 * 1024;
  s.disk_free_gib = 1000;
  for (int i = 0; i < gpus; ++i) {
    model::GpuSpec g;
    g.index = i;
    g.name = "NVIDIA A100-SXM4-80GB";
    g.memory_total_mib = total_mib;
    g.cc_major = 8;
    s.gpus.push_back(g);
  }
  return s;
}

ObservedNode node(const std::string& id, const std::string& name, int gpus, bool ready = true) {
  ObservedNode o;
  o.node.id = id;
  o.node.name = name;
  o.node.address = "10.0.0.1";
  o.node.status = ready ? store::NodeStatus::ready : store::NodeStatus::not_ready;
  o.node.status_reason = ready ? "" : "no heartbeat for 45 s";
  o.node.last_heartbeat_at = ready ? kNow - 2s : kNow - 45s;
  o.spec = gpu_spec(name, gpus);
  return o;
}

DesiredService service(const std::string& id, int replicas, std::vector<std::string> nodes = {}) {
  DesiredService d;
  d.service.id = id;
  d.service.name = "m-" + id;
  d.service.replicas = replicas;
  d.service.placement = nodes;
  scheduler::PlacementRequest r;
  r.model = model::Catalog::builtin().find("deepseek-r1-distill-qwen-1.5b")->to_model_info();
  r.engine = core::EngineKind::vllm;
  r.extra_args = "--max-model-len 8192";
  r.served_name = d.service.name;
  r.nodes = std::move(nodes);
  d.request = r;
  return d;
}

store::Instance instance(const std::string& id, const std::string& svc, InstanceState state,
                         int age_s, std::vector<std::string> nodes = {}) {
  store::Instance i;
  i.id = id;
  i.service_id = svc;
  i.state = state;
  i.created_at = kNow - std::chrono::seconds(age_s);
  i.node_ids = std::move(nodes);
  return i;
}

/// An instance placed on `node_id`, holding GPU `gpu` whole.
store::Instance placed(const std::string& id, const std::string& svc, InstanceState state,
                       int age_s, const std::string& node_id, int gpu = 0) {
  auto i = instance(id, svc, state, age_s, {node_id});
  agent::Assignment a;
  a.id = id;
  a.engine = "vllm";
  a.argv = {"serve", "m"};
  a.env["CUDA_VISIBLE_DEVICES"] = std::to_string(gpu);
  i.assignment_json = assignments_to_json({{node_id, a}});
  return i;
}

ReconcileInput input() {
  ReconcileInput in;
  in.now = kNow;
  return in;
}

std::vector<std::string> summary(const std::vector<Action>& actions) {
  std::vector<std::string> out;
  for (const auto& a : actions) {
    std::string s = std::string(to_string(a.kind)) + " " + a.service_id;
    if (!a.instance_id.empty()) s += "/" + a.instance_id;
    if (a.kind == ActionKind::create || a.kind == ActionKind::replace ||
        a.kind == ActionKind::place) {
      s += a.placement ? " @" + core::join(a.placement->node_ids, ",") : " pending";
    }
    out.push_back(s);
  }
  return out;
}

using V = std::vector<std::string>;

TEST(ReconcilePlan, CreatesMissingInstancesOnSeparateGpus) {
  auto in = input();
  in.nodes = {node("n1", "a", 2)};
  in.services = {service("s1", 2)};
  const auto actions = plan_reconcile(in);
  ASSERT_EQ(summary(actions), (V{"create s1 @n1", "create s1 @n1"}));
  // The second placement saw the first one's reservation.
  EXPECT_NE(actions[0].placement->plan.nodes[0].gpus, actions[1].placement->plan.nodes[0].gpus);
}

TEST(ReconcilePlan, NothingToDoWhenConverged) {
  auto in = input();
  in.nodes = {node("n1", "a", 1)};
  in.services = {service("s1", 1)};
  in.instances = {placed("i1", "s1", InstanceState::running, 100, "n1")};
  EXPECT_TRUE(plan_reconcile(in).empty());
}

TEST(ReconcilePlan, PendingWithReasonsPerNodeAndNoRepeatedWrites) {
  auto in = input();
  in.nodes = {node("n1", "a", 1), node("n2", "b", 1, false)};
  in.services = {service("s1", 2)};
  in.instances = {placed("i1", "s1", InstanceState::running, 100, "n1")};
  auto actions = plan_reconcile(in);
  ASSERT_EQ(summary(actions), (V{"create s1 pending"}));
  const auto reasons = scheduler::parse_reasons(actions[0].reason);
  ASSERT_EQ(reasons.size(), 2u) << actions[0].reason;
  EXPECT_EQ(reasons[0].node, "a");
  EXPECT_NE(reasons[0].message.find("i1"), std::string::npos) << reasons[0].message;
  EXPECT_EQ(reasons[1].node, "b");
  EXPECT_NE(reasons[1].message.find("not ready"), std::string::npos);

  // A pending instance with the same reasons: no write.
  auto p = instance("i2", "s1", InstanceState::pending, 10);
  p.state_reason = actions[0].reason;
  in.instances.push_back(p);
  EXPECT_TRUE(plan_reconcile(in).empty());
  // The node comes back: the pending instance is placed.
  in.nodes[1] = node("n2", "b", 1);
  EXPECT_EQ(summary(plan_reconcile(in)), (V{"place s1/i2 @n2"}));
}

TEST(ReconcilePlan, PendingInstanceWithChosenNodesGoesThere) {
  auto in = input();
  in.nodes = {node("n1", "a", 1), node("n2", "b", 1)};
  in.services = {service("s1", 1)};
  in.instances = {instance("i1", "s1", InstanceState::pending, 10, {"n2"})};
  EXPECT_EQ(summary(plan_reconcile(in)), (V{"place s1/i1 @n2"}));
}

TEST(ReconcilePlan, UnresolvedServiceKeepsPending) {
  auto in = input();
  in.nodes = {node("n1", "a", 1)};
  auto s = service("s1", 1);
  s.request.reset();
  s.unresolved = "model m is downloading";
  in.services = {s};
  auto actions = plan_reconcile(in);
  ASSERT_EQ(summary(actions), (V{"create s1 pending"}));
  EXPECT_EQ(actions[0].reason, "model m is downloading");
}

TEST(ReconcilePlan, ScaleDownChoiceTable) {
  struct Case {
    const char* name;
    std::vector<store::Instance> instances;
    int replicas;
    V expected;
  };
  const std::vector<Case> cases = {
      {"newest running drains first",
       {placed("old", "s1", InstanceState::running, 300, "n1", 0),
        placed("new", "s1", InstanceState::running, 100, "n1", 1)},
       1,
       {"drain s1/new"}},
      {"unhealthy before running even when older",
       {placed("old", "s1", InstanceState::unhealthy, 300, "n1", 0),
        placed("new", "s1", InstanceState::running, 100, "n1", 1)},
       1,
       {"drain s1/old"}},
      {"pending removed at once, before anything placed",
       {placed("a", "s1", InstanceState::running, 300, "n1", 0),
        instance("p", "s1", InstanceState::pending, 500)},
       1,
       {"remove s1/p"}},
      {"failed removed before unhealthy",
       {placed("u", "s1", InstanceState::unhealthy, 300, "n1", 0),
        placed("f", "s1", InstanceState::failed, 400, "n1", 1)},
       1,
       {"remove s1/f"}},
      {"to zero: everything goes",
       {placed("a", "s1", InstanceState::running, 300, "n1", 0),
        placed("b", "s1", InstanceState::starting, 200, "n1", 1)},
       0,
       {"drain s1/b", "drain s1/a"}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto in = input();
    in.nodes = {node("n1", "a", 2)};
    in.services = {service("s1", c.replicas)};
    in.instances = c.instances;
    EXPECT_EQ(summary(plan_reconcile(in)), c.expected);
  }
}

TEST(ReconcilePlan, DrainTable) {
  struct Case {
    const char* name;
    std::size_t in_flight;
    std::chrono::seconds draining_for;
    bool removed;
  };
  const std::vector<Case> cases = {
      {"idle: removed", 0, 0s, true},
      {"busy, within the deadline: kept", 3, 10s, false},
      {"busy, past the deadline: removed", 3, 31s, true},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto in = input();
    in.nodes = {node("n1", "a", 2)};
    in.services = {service("s1", 1)};
    in.instances = {placed("keep", "s1", InstanceState::running, 500, "n1", 0),
                    placed("d", "s1", InstanceState::draining, 100, "n1", 1)};
    in.in_flight["d"] = c.in_flight;
    in.since["d"] = kNow - c.draining_for;
    const auto s = summary(plan_reconcile(in));
    EXPECT_EQ(s, c.removed ? V{"remove s1/d"} : V{});
  }
}

TEST(ReconcilePlan, NodeNotReadyTable) {
  struct Case {
    const char* name;
    bool automatic;
    InstanceState state;
    std::chrono::seconds not_ready_for;
    V expected;
  };
  const std::vector<Case> cases = {
      {"just lost: unhealthy", true, InstanceState::running, 5s, {"mark_unhealthy s1/i1"}},
      {"already unhealthy, within grace: nothing", true, InstanceState::unhealthy, 30s, {}},
      {"past the grace, automatic: replaced elsewhere",
       true,
       InstanceState::unhealthy,
       61s,
       {"replace s1/i1 @n2"}},
      {"past the grace, listed nodes: stays", false, InstanceState::unhealthy, 600s, {}},
      {"listed nodes, just lost: unhealthy",
       false,
       InstanceState::running,
       1s,
       {"mark_unhealthy s1/i1"}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto in = input();
    in.nodes = {node("n1", "a", 1, false), node("n2", "b", 1)};
    in.services = {c.automatic ? service("s1", 1) : service("s1", 1, {"n1"})};
    in.instances = {placed("i1", "s1", c.state, 500, "n1")};
    in.since["i1"] = kNow - c.not_ready_for;
    const auto actions = plan_reconcile(in);
    EXPECT_EQ(summary(actions), c.expected);
    if (!actions.empty() && actions[0].kind == ActionKind::mark_unhealthy) {
      EXPECT_EQ(actions[0].reason, "node a not ready (no heartbeat for 45 s)");
    }
  }
}

TEST(ReconcilePlan, FailedInstancesAreReplacedWithBackoff) {
  struct Case {
    int restarts;
    std::chrono::seconds failed_for;
    bool replaced;
  };
  // base 10 s × 2^restarts, at most 5 min.
  const std::vector<Case> cases = {{0, 5s, false}, {0, 10s, true},   {2, 39s, false},
                                   {2, 40s, true}, {9, 299s, false}, {9, 300s, true}};
  for (const auto& c : cases) {
    SCOPED_TRACE(std::to_string(c.restarts) + " restarts, failed for " +
                 std::to_string(c.failed_for.count()) + " s");
    auto in = input();
    in.nodes = {node("n1", "a", 1)};
    in.services = {service("s1", 1, {"n1"})};
    auto f = placed("i1", "s1", InstanceState::failed, 500, "n1");
    f.restarts = c.restarts;
    f.state_reason = "crash loop";
    in.instances = {f};
    in.since["i1"] = kNow - c.failed_for;
    const auto actions = plan_reconcile(in);
    if (c.replaced) {
      // A failed instance holds no GPU: the replacement goes on the same listed node.
      ASSERT_EQ(summary(actions), (V{"replace s1/i1 @n1"}));
      EXPECT_NE(actions[0].reason.find("crash loop"), std::string::npos);
    } else {
      EXPECT_TRUE(actions.empty());
    }
  }
}

TEST(ReconcilePlan, DeletedServiceDrainsThenGoes) {
  auto in = input();
  in.nodes = {node("n1", "a", 2)};
  auto s = service("s1", 2);
  s.deleting = true;
  in.services = {s};
  in.instances = {placed("r", "s1", InstanceState::running, 100, "n1"),
                  instance("p", "s1", InstanceState::pending, 50)};
  EXPECT_EQ(summary(plan_reconcile(in)), (V{"drain s1/r", "remove s1/p"}));
  in.instances = {placed("r", "s1", InstanceState::draining, 100, "n1")};
  in.in_flight["r"] = 1;
  EXPECT_TRUE(plan_reconcile(in).empty());
  in.instances.clear();
  EXPECT_EQ(summary(plan_reconcile(in)), (V{"delete_service s1"}));
}

TEST(ReconcilePlan, StoppedAndOrphanedInstancesAreRemoved) {
  auto in = input();
  in.nodes = {node("n1", "a", 2)};
  in.services = {service("s1", 1)};
  in.instances = {placed("run", "s1", InstanceState::running, 100, "n1", 0),
                  placed("st", "s1", InstanceState::stopped, 200, "n1", 1),
                  instance("orphan", "gone", InstanceState::pending, 10)};
  EXPECT_EQ(summary(plan_reconcile(in)), (V{"remove gone/orphan", "remove s1/st"}));
}

TEST(ReconcilePlan, ClusterReadsSharesAndReadiness) {
  auto in = input();
  in.nodes = {node("n1", "a", 2), node("n2", "b", 1, false)};
  auto i = placed("i1", "s1", InstanceState::running, 100, "n1", 1);
  auto parsed = *parse_assignments(i.assignment_json);
  parsed["n1"].argv = {"serve", "m", "--gpu-memory-utilization", "0.4"};
  i.assignment_json = assignments_to_json(parsed);
  i.pid = 4242;
  in.instances = {i, placed("gone", "s1", InstanceState::failed, 100, "n1", 0)};
  const auto c = cluster_of(in);
  ASSERT_EQ(c.size(), 2u);
  EXPECT_TRUE(c[0].ready);
  EXPECT_FALSE(c[1].ready);
  EXPECT_EQ(c[1].not_ready, "no heartbeat for 45 s");
  ASSERT_EQ(c[0].reserved.count(1), 1u);
  EXPECT_EQ(c[0].reserved.count(0), 0u);  // failed instances hold nothing
  EXPECT_DOUBLE_EQ(c[0].reserved.at(1).at(0).fraction, 0.4);
  EXPECT_TRUE(c[0].own_pids.contains(4242));
}

TEST(ReconcilePlan, ConditionsForTheTimers) {
  auto i = instance("i", "s", InstanceState::running, 1, {"n1", "n2"});
  EXPECT_EQ(condition_of(i, {}), "placed");
  EXPECT_EQ(condition_of(i, {"n2"}), "placed|n2");
  i.state = InstanceState::unhealthy;
  EXPECT_EQ(condition_of(i, {"n2"}), "placed|n2");  // our own mark keeps the grace running
  i.state = InstanceState::draining;
  EXPECT_EQ(condition_of(i, {"n2"}), "draining");
  i.state = InstanceState::failed;
  EXPECT_EQ(condition_of(i, {}), "failed");
}

TEST(ReconcilePlan, NodeReadiness) {
  store::Node n;
  n.status = store::NodeStatus::ready;
  std::string why;
  EXPECT_FALSE(node_ready(n, kNow, 30s, &why));
  EXPECT_EQ(why, "no heartbeat yet");
  n.last_heartbeat_at = kNow - 10s;
  EXPECT_TRUE(node_ready(n, kNow, 30s, &why));
  n.last_heartbeat_at = kNow - 31s;
  EXPECT_FALSE(node_ready(n, kNow, 30s, &why));
  EXPECT_EQ(why, "no heartbeat for 31 s");
  n.last_heartbeat_at = kNow;
  n.status = store::NodeStatus::draining;
  EXPECT_FALSE(node_ready(n, kNow, 30s, &why));
}

TEST(ReconcilePlan, AssignmentsFromThePlan) {
  auto in = input();
  in.nodes = {node("n1", "a", 2)};
  in.services = {service("s1", 2)};
  in.instances = {placed("i0", "s1", InstanceState::running, 100, "n1", 0)};
  auto actions = plan_reconcile(in);
  ASSERT_EQ(actions.size(), 1u);
  ASSERT_TRUE(actions[0].placement);
  const auto a =
      build_assignments("inst_1", "m-s1", *actions[0].placement, {"vllm", "/health", 900});
  ASSERT_EQ(a.size(), 1u);
  const auto& x = a.at("n1");
  EXPECT_EQ(x.id, "inst_1");
  EXPECT_EQ(x.engine, "vllm");
  EXPECT_EQ(x.service, "m-s1");
  EXPECT_EQ(x.health_path, "/health");
  EXPECT_EQ(x.startup_timeout_s, 900u);
  ASSERT_GE(x.argv.size(), 2u);
  EXPECT_EQ(x.argv[0], "serve");
  EXPECT_EQ(x.env.at("CUDA_VISIBLE_DEVICES"), "1");
  auto port = std::find(x.argv.begin(), x.argv.end(), "--port");
  ASSERT_NE(port, x.argv.end());
  EXPECT_EQ(*(port + 1), "{port}");
  EXPECT_EQ(std::count(x.argv.begin(), x.argv.end(), "40000"), 0);
}

TEST(ReconcilePlan, DistributedAssignmentsHaveRankIds) {
  auto in = input();
  in.nodes = {node("n1", "a", 1), node("n2", "b", 1)};
  in.services = {service("s1", 1, {"n1", "n2"})};
  auto actions = plan_reconcile(in);
  ASSERT_EQ(actions.size(), 1u);
  ASSERT_TRUE(actions[0].placement) << actions[0].reason;
  const auto a = build_assignments("inst_9", "m", *actions[0].placement, {"vllm"});
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a.at("n1").id, "inst_9.r0");
  EXPECT_EQ(a.at("n1").engine, "vllm");
  EXPECT_EQ(a.at("n2").id, "inst_9.r1");
  EXPECT_EQ(a.at("n2").engine, "ray");
  EXPECT_EQ(a.at("n2").health_path, "");
  EXPECT_EQ(a.at("n2").argv.at(0), "start");
}

}  // namespace
}  // namespace openstation::server
