// The Supervisor over fake seams (launcher, probe, port checker) and a manual clock: the state
// machine applied end to end, persistence and adoption, without processes or sockets.
#include "agent/supervisor.hpp"
#include "support/temp_dir.hpp"

#include "support/fake_supervisor_seams.hpp"
#include "support/manual_clock.hpp"

#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>

namespace openstation::agent {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

class SupervisorFake : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        fs::path(::testing::TempDir()) /
        ("supfake-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    options_.data_dir = dir_;
    options_.ports = {41000, 41009};
    options_.policy.backoff_base = 1s;
    options_.policy.backoff_max = 30s;
    options_.policy.crash_loop_threshold = 3;
    options_.policy.crash_loop_window = 600s;
    options_.policy.stop_grace = 10s;
    options_.policy.startup_probe_interval = 1s;
    options_.policy.health_probe_interval = 5s;
    options_.policy.unhealthy_after = 2;
  }
  std::unique_ptr<Supervisor> make() {
    return std::make_unique<Supervisor>(options_, launcher_, probe_, checker_, clock_);
  }
  static InstanceSpec spec(std::string id = "llm-1") {
    InstanceSpec s;
    s.id = std::move(id);
    s.argv = {"engine", "--port", "{port}"};
    s.env = {{"ENGINE_PORT", "{port}"}};
    s.startup_timeout = 60s;
    return s;
  }
  InstanceState state(Supervisor& s, const std::string& id = "llm-1") {
    const auto st = s.status(id);
    EXPECT_TRUE(st.has_value());
    return st ? st->state : InstanceState::failed;
  }

  fs::path dir_;
  SupervisorOptions options_;
  testing::FakeProcessLauncher launcher_;
  testing::FakeReadinessProbe probe_;
  testing::FakePortChecker checker_;
  testing::ManualClock clock_;
};

TEST_F(SupervisorFake, LaunchesWithAnAllocatedPortAndBecomesRunning) {
  auto sup = make();
  ASSERT_TRUE(sup->reconcile({spec()}));
  sup->tick();
  ASSERT_EQ(launcher_.launches.size(), 1u);
  const auto& req = launcher_.launches[0];
  EXPECT_EQ(req.argv, (std::vector<std::string>{"engine", "--port", "41000"}));
  EXPECT_EQ(req.env[0].second, "41000");
  EXPECT_EQ(req.log_file, dir_ / "logs" / "llm-1" / "engine.log");
  EXPECT_EQ(state(*sup), InstanceState::starting);

  sup->tick();  // probe: not yet
  EXPECT_EQ(state(*sup), InstanceState::starting);
  probe_.ready_ports.insert(41000);
  clock_.advance(1s);
  sup->tick();  // probe: ready
  sup->tick();  // → running
  const auto st = sup->status("llm-1");
  EXPECT_EQ(st->state, InstanceState::running);
  EXPECT_EQ(st->ports, std::vector<std::uint16_t>{41000});
  EXPECT_EQ(st->pid, launcher_.last_pid());
}

TEST_F(SupervisorFake, TickDoesNothingBeforeTheFirstReconcile) {
  auto sup = make();
  sup->tick();
  EXPECT_TRUE(launcher_.launches.empty());
  EXPECT_TRUE(sup->idle());
}

TEST_F(SupervisorFake, RejectsInvalidDesiredSets) {
  auto sup = make();
  auto bad = spec("../etc");
  EXPECT_EQ(sup->reconcile({bad}).error().code, "supervisor.bad_instance_id");
  EXPECT_EQ(sup->reconcile({spec(), spec()}).error().code, "supervisor.duplicate_instance");
  auto empty = spec();
  empty.argv.clear();
  EXPECT_EQ(sup->reconcile({empty}).error().code, "supervisor.empty_argv");
  auto noport = spec();
  noport.ports = 0;
  EXPECT_EQ(sup->reconcile({noport}).error().code, "supervisor.bad_health_path");
}

TEST_F(SupervisorFake, CrashRestartsWithBackoffThenCrashLoops) {
  auto sup = make();
  ASSERT_TRUE(sup->reconcile({spec()}));
  sup->tick();
  launcher_.end(launcher_.last_pid(), ExitStatus::exited_with(3));
  sup->tick();
  auto st = sup->status("llm-1");
  EXPECT_EQ(st->state, InstanceState::backoff);
  EXPECT_NE(st->reason.find("exited with code 3"), std::string::npos) << st->reason;
  EXPECT_EQ(st->last_exit, ExitStatus::exited_with(3));

  clock_.advance(999ms);
  sup->tick();
  EXPECT_EQ(launcher_.launches.size(), 1u) << "still backing off";
  clock_.advance(1ms);
  sup->tick();
  EXPECT_EQ(launcher_.launches.size(), 2u);
  EXPECT_EQ(state(*sup), InstanceState::starting);
  EXPECT_EQ(launcher_.launches[1].argv[2], "41000") << "the port is kept across restarts";

  launcher_.end(launcher_.last_pid(), ExitStatus::exited_with(3));
  sup->tick();
  EXPECT_EQ(state(*sup), InstanceState::backoff);
  clock_.advance(1s);
  sup->tick();
  EXPECT_EQ(launcher_.launches.size(), 2u) << "second backoff is 2 s";
  clock_.advance(1s);
  sup->tick();
  ASSERT_EQ(launcher_.launches.size(), 3u);

  launcher_.end(launcher_.last_pid(), ExitStatus::killed_by(SIGSEGV));
  sup->tick();
  st = sup->status("llm-1");
  EXPECT_EQ(st->state, InstanceState::crash_loop);
  EXPECT_NE(st->reason.find("3 crashes"), std::string::npos) << st->reason;
  EXPECT_EQ(st->restarts, 2u);
  clock_.advance(29s);
  sup->tick();
  EXPECT_EQ(launcher_.launches.size(), 3u);
  clock_.advance(1s);
  sup->tick();
  EXPECT_EQ(launcher_.launches.size(), 4u) << "crash_loop retries at the maximum backoff";
}

TEST_F(SupervisorFake, MissingExecutableFailsUntilTheSpecChanges) {
  auto sup = make();
  launcher_.fail_next = core::not_found("process.not_found", "cannot run engine: No such file");
  ASSERT_TRUE(sup->reconcile({spec()}));
  sup->tick();
  auto st = sup->status("llm-1");
  EXPECT_EQ(st->state, InstanceState::failed);
  EXPECT_NE(st->reason.find("No such file"), std::string::npos);
  clock_.advance(1h);
  sup->tick();
  EXPECT_EQ(launcher_.launches.size(), 1u);
  auto fixed = spec();
  fixed.argv[0] = "/opt/engine";
  ASSERT_TRUE(sup->reconcile({fixed}));
  sup->tick();
  EXPECT_EQ(launcher_.launches.size(), 2u);
  EXPECT_EQ(state(*sup), InstanceState::starting);
}

TEST_F(SupervisorFake, StartupTimeoutStopsAndBacksOff) {
  auto sup = make();
  ASSERT_TRUE(sup->reconcile({spec()}));
  sup->tick();
  clock_.advance(60s);
  sup->tick();
  const auto pid = launcher_.last_pid();
  EXPECT_EQ(state(*sup), InstanceState::stopping);
  EXPECT_EQ(launcher_.procs.at(pid).signals, std::vector<int>{SIGTERM});
  sup->tick();
  const auto st = sup->status("llm-1");
  EXPECT_EQ(st->state, InstanceState::backoff);
  EXPECT_NE(st->reason.find("not ready within 60 s"), std::string::npos) << st->reason;
}

TEST_F(SupervisorFake, SlowStopGetsSigkillAfterGrace) {
  launcher_.obey_sigterm = false;
  auto sup = make();
  ASSERT_TRUE(sup->reconcile({spec()}));
  sup->tick();
  const auto pid = launcher_.last_pid();
  ASSERT_TRUE(sup->reconcile({}));
  sup->tick();
  EXPECT_EQ(state(*sup), InstanceState::stopping);
  clock_.advance(9s);
  sup->tick();
  EXPECT_EQ(launcher_.procs.at(pid).signals, std::vector<int>{SIGTERM});
  clock_.advance(1s);
  sup->tick();
  EXPECT_EQ(launcher_.procs.at(pid).signals, (std::vector<int>{SIGTERM, SIGKILL}));
  sup->tick();
  EXPECT_TRUE(sup->idle());
  EXPECT_EQ(launcher_.running_count(), 0u);
}

TEST_F(SupervisorFake, SpecChangeRestartsWithTheNewSpec) {
  auto sup = make();
  ASSERT_TRUE(sup->reconcile({spec()}));
  sup->tick();
  auto changed = spec();
  changed.argv.push_back("--max-model-len=4096");
  ASSERT_TRUE(sup->reconcile({changed}));
  sup->tick();
  EXPECT_EQ(state(*sup), InstanceState::stopping);
  sup->tick();
  ASSERT_EQ(launcher_.launches.size(), 2u);
  EXPECT_EQ(launcher_.launches[1].argv.back(), "--max-model-len=4096");
  EXPECT_EQ(state(*sup), InstanceState::starting);
}

TEST_F(SupervisorFake, PortCollisionMovesToAnotherPortWithoutCountingACrash) {
  auto sup = make();
  ASSERT_TRUE(sup->reconcile({spec()}));
  sup->tick();
  // Someone grabbed 41000 before the engine bound it; the engine exits.
  checker_.busy.insert(41000);
  checker_.owners[41000] = PortOwner{4242, "nginx"};
  launcher_.end(launcher_.last_pid(), ExitStatus::exited_with(1));
  sup->tick();
  auto st = sup->status("llm-1");
  EXPECT_EQ(st->state, InstanceState::backoff);
  EXPECT_NE(st->reason.find("port 41000 is held by pid 4242 (nginx)"), std::string::npos)
      << st->reason;
  sup->tick();  // no delay
  ASSERT_EQ(launcher_.launches.size(), 2u);
  EXPECT_EQ(launcher_.launches[1].argv[2], "41001");
}

TEST_F(SupervisorFake, BusyPortsAreSkippedAndTwoInstancesNeverShare) {
  checker_.busy.insert(41000);
  auto sup = make();
  ASSERT_TRUE(sup->reconcile({spec("a"), spec("b")}));
  sup->tick();
  EXPECT_EQ(sup->status("a")->ports, std::vector<std::uint16_t>{41001});
  EXPECT_EQ(sup->status("b")->ports, std::vector<std::uint16_t>{41002});
}

TEST_F(SupervisorFake, UnhealthyAndBack) {
  auto sup = make();
  ASSERT_TRUE(sup->reconcile({spec()}));
  probe_.ready_ports.insert(41000);
  sup->tick();
  sup->tick();
  sup->tick();
  ASSERT_EQ(state(*sup), InstanceState::running);
  probe_.ready_ports.clear();
  for (int i = 0; i < 3; ++i) {
    clock_.advance(5s);
    sup->tick();
  }
  EXPECT_EQ(state(*sup), InstanceState::unhealthy);
  probe_.ready_ports.insert(41000);
  clock_.advance(5s);
  sup->tick();
  sup->tick();
  EXPECT_EQ(state(*sup), InstanceState::running);
}

TEST_F(SupervisorFake, AdoptsAfterRestartAndStopsWhatIsNoLongerDesired) {
  {
    auto first = make();
    ASSERT_TRUE(first->reconcile({spec("keep"), spec("drop")}));
    first->tick();
  }  // the agent goes away; its processes stay
  ASSERT_EQ(launcher_.running_count(), 2u);
  ASSERT_TRUE(fs::exists(dir_ / "supervisor" / "instances.json"));
  probe_.ready_ports = {41000, 41001};

  auto second = make();
  const auto report = second->recover();
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(report->adopted, (std::vector<std::string>{"drop", "keep"}));
  EXPECT_EQ(state(*second, "keep"), InstanceState::running);
  EXPECT_TRUE(second->status("keep")->adopted);

  ASSERT_TRUE(second->reconcile({spec("keep")}));
  second->tick();
  second->tick();
  EXPECT_EQ(launcher_.launches.size(), 2u) << "the kept instance was not restarted";
  EXPECT_FALSE(second->status("drop").has_value());
  EXPECT_EQ(launcher_.running_count(), 1u);
  EXPECT_EQ(state(*second, "keep"), InstanceState::running);
}

TEST_F(SupervisorFake, RecoverDropsRecordsWhoseProcessEnded) {
  {
    auto first = make();
    ASSERT_TRUE(first->reconcile({spec()}));
    first->tick();
  }
  launcher_.end(launcher_.last_pid(), ExitStatus::exited_with(0));
  launcher_.poll(ProcessHandle{launcher_.last_pid(), 0});
  auto second = make();
  const auto report = second->recover();
  ASSERT_TRUE(report);
  EXPECT_EQ(report->gone, std::vector<std::string>{"llm-1"});
  EXPECT_TRUE(second->idle());
  ASSERT_TRUE(second->reconcile({spec()}));
  second->tick();
  EXPECT_EQ(launcher_.launches.size(), 2u) << "started again";
}

TEST_F(SupervisorFake, CorruptStateFileIsAnError) {
  fs::create_directories(dir_ / "supervisor");
  std::ofstream(dir_ / "supervisor" / "instances.json") << "{not json";
  auto sup = make();
  const auto r = sup->recover();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "supervisor.state_unreadable");
}

TEST(SupervisorSpec, HashChangesWithWhatMattersAndPortsExpand) {
  InstanceSpec a;
  a.id = "x";
  a.argv = {"vllm", "serve", "m"};
  auto b = a;
  EXPECT_EQ(spec_hash(a), spec_hash(b));
  b.argv = {"vllm", "serve", "m", "--x"};
  EXPECT_NE(spec_hash(a), spec_hash(b));
  b = a;
  b.env = {{"A", "1"}};
  EXPECT_NE(spec_hash(a), spec_hash(b));
  EXPECT_EQ(expand_ports("--port={port} --p2 {port1} {port9} {portx}", {40000, 40001}),
            "--port=40000 --p2 40001 {port9} {portx}");
}

TEST(InstanceStoreTest, RoundTripsAtomically) {
  const auto file = openstation::testing_support::unique_temp_path("store-rt") / "instances.json";
  fs::remove_all(file.parent_path());
  InstanceStore store(file);
  EXPECT_TRUE(store.load()->empty());
  InstanceRecord r{"a",
                   123,
                   98765432101ull,
                   {40000, 40001},
                   0xfedcba9876543210ull,
                   "/health",
                   "/tmp/a/engine.log"};
  ASSERT_TRUE(store.save({r}));
  EXPECT_FALSE(fs::exists(file.string() + ".tmp"));
  const auto back = store.load();
  ASSERT_TRUE(back);
  ASSERT_EQ(back->size(), 1u);
  EXPECT_EQ(back->front(), r);
}

}  // namespace
}  // namespace openstation::agent
