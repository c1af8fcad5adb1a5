// The supervisor's pure decision function: every arrow of the state diagram, without processes.
#include "agent/supervisor_plan.hpp"

#include <gtest/gtest.h>

namespace openstation::agent {
namespace {

using namespace std::chrono_literals;
using Kind = Action::Kind;

const SteadyTime kT0 = SteadyTime(std::chrono::hours(100));

SupervisorPolicy policy() {
  SupervisorPolicy p;
  p.backoff_base = 1s;
  p.backoff_max = 60s;
  p.crash_loop_threshold = 3;
  p.crash_loop_window = 300s;
  p.stop_grace = 10s;
  p.startup_probe_interval = 1s;
  p.health_probe_interval = 5s;
  p.unhealthy_after = 2;
  return p;
}

std::map<std::string, DesiredInstance> want(std::uint64_t hash = 7) {
  DesiredInstance d;
  d.spec_hash = hash;
  d.startup_timeout = 60s;
  d.health_path = "/health";
  return {{"a", d}};
}

ObservedInstance seen(InstanceState s, std::uint64_t hash = 7) {
  ObservedInstance o;
  o.id = "a";
  o.state = s;
  o.spec_hash = hash;
  o.state_since = kT0;
  return o;
}

std::vector<Action> one(const std::map<std::string, DesiredInstance>& d, const ObservedInstance& o,
                        SteadyTime now) {
  return plan(d, {o}, now, policy());
}

TEST(SupervisorPlan, LaunchesWhatIsDesiredAndMissing) {
  const auto actions = plan(want(), {}, kT0, policy());
  ASSERT_EQ(actions.size(), 1u);
  EXPECT_EQ(actions[0].kind, Kind::launch);
  EXPECT_EQ(actions[0].id, "a");
}

TEST(SupervisorPlan, NothingDesiredNothingObservedDoesNothing) {
  EXPECT_TRUE(plan({}, {}, kT0, policy()).empty());
}

TEST(SupervisorPlan, StartingProbesThenRunsWhenReady) {
  auto o = seen(InstanceState::starting);
  auto a = one(want(), o, kT0);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].kind, Kind::probe);

  o.last_probe_at = kT0;
  EXPECT_TRUE(one(want(), o, kT0 + 500ms).empty()) << "probe interval not reached";
  EXPECT_EQ(one(want(), o, kT0 + 1s)[0].kind, Kind::probe);

  o.probe = ProbeResult{ProbeResult::Status::ready, "HTTP 200"};
  a = one(want(), o, kT0 + 1s);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].kind, Kind::to_running);
}

TEST(SupervisorPlan, WithoutHealthPathRunsAtOnce) {
  auto d = want();
  d["a"].probed = false;
  EXPECT_EQ(one(d, seen(InstanceState::starting), kT0)[0].kind, Kind::to_running);
  EXPECT_TRUE(one(d, seen(InstanceState::running), kT0 + 1h).empty());
}

TEST(SupervisorPlan, StartupTimeoutTerminatesAndCountsAsCrashOnceStopped) {
  auto o = seen(InstanceState::starting);
  o.last_probe_at = kT0 + 59s;
  o.probe = ProbeResult{ProbeResult::Status::error, "HTTP 503"};
  auto a = one(want(), o, kT0 + 60s);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].kind, Kind::terminate);
  EXPECT_EQ(a[0].stop_reason, StopReason::startup_timeout);
  EXPECT_NE(a[0].reason.find("not ready within 60 s"), std::string::npos) << a[0].reason;
  EXPECT_NE(a[0].reason.find("HTTP 503"), std::string::npos) << a[0].reason;

  auto s = seen(InstanceState::stopping);
  s.stop_reason = StopReason::startup_timeout;
  s.stop_detail = a[0].reason;
  s.stop_sent_at = kT0 + 60s;
  s.exit = ExitStatus::killed_by(15);
  a = one(want(), s, kT0 + 61s);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].kind, Kind::to_backoff);
  EXPECT_TRUE(a[0].count_crash);
  EXPECT_EQ(a[0].at, kT0 + 61s + 1s);
  EXPECT_NE(a[0].reason.find("not ready within"), std::string::npos);
}

TEST(SupervisorPlan, CrashBacksOffExponentiallyUpToMax) {
  const auto p = policy();
  EXPECT_EQ(backoff_delay(p, 1), 1s);
  EXPECT_EQ(backoff_delay(p, 2), 2s);
  EXPECT_EQ(backoff_delay(p, 3), 4s);
  EXPECT_EQ(backoff_delay(p, 7), 60s);
  EXPECT_EQ(backoff_delay(p, 100), 60s);

  auto o = seen(InstanceState::running);
  o.exit = ExitStatus::exited_with(3);
  auto a = one(want(), o, kT0);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].kind, Kind::to_backoff);
  EXPECT_EQ(a[0].at, kT0 + 1s);
  EXPECT_NE(a[0].reason.find("exited with code 3"), std::string::npos) << a[0].reason;

  o.crash_times = {kT0 - 10s};
  a = one(want(), o, kT0);
  EXPECT_EQ(a[0].kind, Kind::to_backoff);
  EXPECT_EQ(a[0].at, kT0 + 2s);
}

TEST(SupervisorPlan, CrashLoopAfterThresholdWithinWindow) {
  auto o = seen(InstanceState::starting);
  o.exit = ExitStatus::killed_by(11);
  o.crash_times = {kT0 - 20s, kT0 - 10s};
  auto a = one(want(), o, kT0);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].kind, Kind::to_crash_loop);
  EXPECT_EQ(a[0].at, kT0 + 60s);
  EXPECT_NE(a[0].reason.find("SIGSEGV"), std::string::npos) << a[0].reason;
  EXPECT_NE(a[0].reason.find("3 crashes"), std::string::npos) << a[0].reason;

  // Crashes outside the window do not count.
  o.crash_times = {kT0 - 400s, kT0 - 10s};
  EXPECT_EQ(one(want(), o, kT0)[0].kind, Kind::to_backoff);
}

TEST(SupervisorPlan, BackoffAndCrashLoopRelaunchWhenTimeComes) {
  for (auto st : {InstanceState::backoff, InstanceState::crash_loop}) {
    auto o = seen(st);
    o.next_start_at = kT0 + 5s;
    EXPECT_TRUE(one(want(), o, kT0 + 4s).empty());
    EXPECT_EQ(one(want(), o, kT0 + 5s)[0].kind, Kind::launch);
    // A new spec does not wait.
    EXPECT_EQ(one(want(8), o, kT0)[0].kind, Kind::launch);
    // Not desired any more: forgotten.
    EXPECT_EQ(one({}, o, kT0)[0].kind, Kind::forget);
  }
}

TEST(SupervisorPlan, FailedWaitsForANewSpec) {
  auto o = seen(InstanceState::failed);
  EXPECT_TRUE(one(want(), o, kT0 + 10h).empty());
  EXPECT_EQ(one(want(8), o, kT0)[0].kind, Kind::launch);
  EXPECT_EQ(one({}, o, kT0)[0].kind, Kind::forget);
}

TEST(SupervisorPlan, RemovedOrChangedInstancesAreTerminated) {
  for (auto st : {InstanceState::starting, InstanceState::running, InstanceState::unhealthy}) {
    auto a = one({}, seen(st), kT0);
    ASSERT_EQ(a.size(), 1u);
    EXPECT_EQ(a[0].kind, Kind::terminate);
    EXPECT_EQ(a[0].stop_reason, StopReason::removed);
    a = one(want(8), seen(st), kT0);
    EXPECT_EQ(a[0].kind, Kind::terminate);
    EXPECT_EQ(a[0].stop_reason, StopReason::spec_changed);
  }
}

TEST(SupervisorPlan, StoppingKillsAfterGraceThenForgetsOrRelaunches) {
  auto o = seen(InstanceState::stopping);
  o.stop_sent_at = kT0;
  EXPECT_TRUE(one({}, o, kT0 + 9s).empty());
  auto a = one({}, o, kT0 + 10s);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].kind, Kind::kill);
  o.kill_sent = true;
  EXPECT_TRUE(one({}, o, kT0 + 20s).empty()) << "SIGKILL is sent once";

  o.exit = ExitStatus::killed_by(9);
  EXPECT_EQ(one({}, o, kT0 + 21s)[0].kind, Kind::forget);
  o.stop_reason = StopReason::spec_changed;
  EXPECT_EQ(one(want(8), o, kT0 + 21s)[0].kind, Kind::launch);
}

TEST(SupervisorPlan, ExitWhileStartingWithPortTakenIsACollisionNotACrash) {
  auto o = seen(InstanceState::starting);
  o.exit = ExitStatus::exited_with(98);
  o.port_conflict = "port 40000 is held by pid 42 (nginx)";
  o.crash_times = {kT0 - 1s, kT0 - 2s};  // would be a crash loop if counted
  auto a = one(want(), o, kT0);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].kind, Kind::to_backoff);
  EXPECT_TRUE(a[0].new_port);
  EXPECT_FALSE(a[0].count_crash);
  EXPECT_EQ(a[0].at, kT0);
  EXPECT_NE(a[0].reason.find("pid 42 (nginx)"), std::string::npos) << a[0].reason;
}

TEST(SupervisorPlan, RunningBecomesUnhealthyAfterConsecutiveFailuresAndRecovers) {
  auto o = seen(InstanceState::running);
  o.last_probe_at = kT0;
  EXPECT_TRUE(one(want(), o, kT0 + 4s).empty());
  EXPECT_EQ(one(want(), o, kT0 + 5s)[0].kind, Kind::probe);

  o.probe = ProbeResult{ProbeResult::Status::error, "HTTP 500"};
  o.probe_failures = 1;
  EXPECT_TRUE(one(want(), o, kT0 + 1s).empty()) << "one failure is not enough";
  o.probe_failures = 2;
  auto a = one(want(), o, kT0 + 1s);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].kind, Kind::to_unhealthy);
  EXPECT_NE(a[0].reason.find("HTTP 500"), std::string::npos);

  auto u = seen(InstanceState::unhealthy);
  u.probe = ProbeResult{ProbeResult::Status::ready, "HTTP 200"};
  EXPECT_EQ(one(want(), u, kT0)[0].kind, Kind::to_running);
}

TEST(SupervisorPlan, ExitOfAnUndesiredInstanceIsForgotten) {
  auto o = seen(InstanceState::running);
  o.exit = ExitStatus::exited_with(0);
  EXPECT_EQ(one({}, o, kT0)[0].kind, Kind::forget);
}

TEST(SupervisorPlan, ActionsAreOrderedById) {
  std::map<std::string, DesiredInstance> d;
  d["c"] = {};
  d["a"] = {};
  ObservedInstance b;
  b.id = "b";
  b.state = InstanceState::running;
  const auto a = plan(d, {b}, kT0, policy());
  ASSERT_EQ(a.size(), 3u);
  EXPECT_EQ(a[0].id, "a");
  EXPECT_EQ(a[1].id, "b");
  EXPECT_EQ(a[1].kind, Kind::terminate);
  EXPECT_EQ(a[2].id, "c");
}

}  // namespace
}  // namespace openstation::agent
