// How heartbeat reports become an instance's observed state (pure).

#include "server/instance_reports.hpp"

#include <gtest/gtest.h>

namespace openstation::server {
namespace {

using store::InstanceState;

agent::InstanceReport report(std::string id, std::string state, std::string reason = {}) {
  agent::InstanceReport r;
  r.id = std::move(id);
  r.state = std::move(state);
  r.reason = std::move(reason);
  r.pid = 4242;
  r.ports = {40001};
  r.restarts = 2;
  return r;
}

store::Instance instance(std::vector<std::string> nodes, InstanceState state) {
  store::Instance i;
  i.id = "inst_1";
  i.service_id = "svc_1";
  i.state = state;
  i.node_ids = std::move(nodes);
  return i;
}

InstanceAssignments assignments_for(const store::Instance& inst) {
  InstanceAssignments a;
  for (std::size_t r = 0; r < inst.node_ids.size(); ++r) {
    agent::Assignment x;
    x.id = assignment_id(inst.id, r, inst.node_ids.size());
    x.engine = "vllm";
    a[inst.node_ids[r]] = x;
  }
  return a;
}

TEST(NodeInstanceReports, SingleNodeTakesTheReportedState) {
  const auto inst = instance({"n1"}, InstanceState::scheduled);
  RankReports reports{{"inst_1", {"gpu-1", report("inst_1", "running")}}};
  auto next = observe_instance(inst, assignments_for(inst), reports);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->state, InstanceState::running);
  EXPECT_EQ(next->pid, 4242);
  EXPECT_EQ(next->port, 40001);
  EXPECT_EQ(next->restarts, 2);
  EXPECT_EQ(next->state_reason, "");
  // The same report again changes nothing: no store write.
  EXPECT_FALSE(observe_instance(*next, assignments_for(inst), reports));
}

TEST(NodeInstanceReports, SupervisorStatesMap) {
  const auto inst = instance({"n1"}, InstanceState::running);
  const auto a = assignments_for(inst);
  auto state_of = [&](const std::string& s) -> std::optional<InstanceState> {
    auto next = observe_instance(inst, a, {{"inst_1", {"gpu-1", report("inst_1", s, "why")}}});
    if (!next) return std::nullopt;
    return next->state;
  };
  EXPECT_EQ(state_of("starting"), InstanceState::starting);
  EXPECT_EQ(state_of("unhealthy"), InstanceState::unhealthy);
  EXPECT_EQ(state_of("backoff"), InstanceState::unhealthy);
  EXPECT_EQ(state_of("crash_loop"), InstanceState::unhealthy);
  EXPECT_EQ(state_of("failed"), InstanceState::failed);
  // stopping: the agent does what the server asked; pid and port still update.
  auto stopping = observe_instance(inst, a, {{"inst_1", {"gpu-1", report("inst_1", "stopping")}}});
  EXPECT_FALSE(stopping);

  auto backoff = observe_instance(
      inst, a, {{"inst_1", {"gpu-1", report("inst_1", "backoff", "exited with code 1")}}});
  ASSERT_TRUE(backoff);
  EXPECT_EQ(backoff->state_reason, "backoff: exited with code 1");
}

TEST(NodeInstanceReports, ReconcilerStatesAreNotTheAgentsToChange) {
  for (auto s : {InstanceState::pending, InstanceState::draining, InstanceState::stopped,
                 InstanceState::failed}) {
    const auto inst = instance({"n1"}, s);
    EXPECT_FALSE(observe_instance(inst, assignments_for(inst),
                                  {{"inst_1", {"gpu-1", report("inst_1", "running")}}}))
        << store::to_string(s);
  }
}

TEST(NodeInstanceReports, MultiNodeIsTheHeadDegradedByAnyRank) {
  const auto inst = instance({"n1", "n2", "n3"}, InstanceState::starting);
  const auto a = assignments_for(inst);
  RankReports reports{{"inst_1.r0", {"gpu-1", report("inst_1.r0", "running")}},
                      {"inst_1.r1", {"gpu-2", report("inst_1.r1", "running")}}};
  auto next = observe_instance(inst, a, reports);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->state, InstanceState::running);

  reports["inst_1.r2"] = {"gpu-3", report("inst_1.r2", "crash_loop", "exited with code 1")};
  next = observe_instance(inst, a, reports);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->state, InstanceState::unhealthy);
  EXPECT_EQ(next->state_reason, "rank 2 on node gpu-3 is crash_loop: exited with code 1");
  EXPECT_EQ(next->pid, 4242);  // the head's process

  reports["inst_1.r1"] = {"gpu-2", report("inst_1.r1", "failed", "ray: not found")};
  next = observe_instance(inst, a, reports);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->state, InstanceState::failed);
  EXPECT_EQ(next->state_reason, "rank 1 on node gpu-2 is failed: ray: not found");
}

TEST(NodeInstanceReports, NothingWithoutTheHeadsReport) {
  const auto inst = instance({"n1", "n2"}, InstanceState::scheduled);
  EXPECT_FALSE(observe_instance(inst, assignments_for(inst),
                                {{"inst_1.r1", {"gpu-2", report("inst_1.r1", "failed")}}}));
}

}  // namespace
}  // namespace openstation::server
