// The Supervisor over real processes (test-child), real ports and the real HTTP probe; the
// supervisor's own time (backoff, grace, startup timeout) on a manual clock. Waits for the
// processes are bounded and fail rather than hang; every process group is killed in TearDown.
#include "agent/supervisor.hpp"
#include "support/recording_launcher.hpp"

#include "core/strings.hpp"
#include "support/manual_clock.hpp"
#include "support/wait_until.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>

namespace openstation::agent {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

using testing_support::RecordingLauncher;

/// The real checker, which says "free" once for a port that is in fact taken: the race where a
/// port is grabbed between the supervisor's check and the engine's bind.
class RacyPortChecker final : public PortChecker {
 public:
  std::optional<std::uint16_t> lie_once;
  bool is_free(std::uint16_t port) override {
    if (lie_once == port) {
      lie_once.reset();
      return true;
    }
    return real_.is_free(port);
  }
  std::optional<PortOwner> owner(std::uint16_t port) override { return real_.owner(port); }

 private:
  SystemPortChecker real_;
};

/// A listener on 127.0.0.1:<ephemeral>, closed on destruction.
struct Listener {
  int fd = -1;
  std::uint16_t port = 0;
  Listener() {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(fd, 4), 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
  }
  ~Listener() { ::close(fd); }
};

class SupervisorReal : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        fs::path(::testing::TempDir()) /
        ("supreal-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    std::uint16_t base = 0;
    {
      Listener probe_port;  // somewhere in the ephemeral range, not a fixed port
      base = probe_port.port;
    }
    options_.data_dir = dir_;
    options_.ports = {base, static_cast<std::uint16_t>(std::min(base + 40, 65535))};
    options_.policy.backoff_base = 1s;
    options_.policy.backoff_max = 8s;
    options_.policy.crash_loop_threshold = 3;
    options_.policy.crash_loop_window = 600s;
    options_.policy.stop_grace = 10s;
    options_.policy.startup_probe_interval = 1s;
    options_.policy.health_probe_interval = 5s;
  }
  void TearDown() override {
    for (pid_t pid : pids_) {
      ::kill(-pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    for (pid_t pid : pids_) {
      EXPECT_NE(::kill(pid, 0), 0) << "pid " << pid << " left running";
    }
  }
  std::unique_ptr<Supervisor> make() {
    return std::make_unique<Supervisor>(options_, launcher_, probe_, checker_, clock_);
  }
  static InstanceSpec child(std::string id, std::vector<std::string> args) {
    InstanceSpec s;
    s.id = std::move(id);
    s.argv = {OPENSTATION_TEST_CHILD};
    s.argv.insert(s.argv.end(), args.begin(), args.end());
    s.startup_timeout = 30s;
    return s;
  }
  /// Ticks (advancing the manual clock by `step` each time) until `pred` holds; real time bounded.
  template <class Pred>
  bool tick_until(Supervisor& s, Pred pred, std::chrono::milliseconds step = 0ms) {
    return testing::wait_until([&] {
      s.tick();
      if (pred()) return true;
      clock_.advance(step);
      return false;
    });
  }
  static bool in(Supervisor& s, const std::string& id, InstanceState st) {
    const auto status = s.status(id);
    return status && status->state == st;
  }
  std::string log(Supervisor& s, const std::string& id) {
    std::ifstream in(s.log_file(id));
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

  fs::path dir_;
  SupervisorOptions options_;
  std::vector<pid_t> pids_;
  RecordingLauncher launcher_{pids_};
  HttpReadinessProbe probe_{1000ms};
  RacyPortChecker checker_;
  testing::ManualClock clock_;
};

TEST_F(SupervisorReal, StartsAnEngineThatBecomesReadyAndStopsIt) {
  auto sup = make();
  auto spec =
      child("e1", {"--listen", "{port}", "--ready-after-ms", "100", "--print-env", "OS_INSTANCE"});
  spec.env = {{"OS_INSTANCE", "e1 on {port}"}};
  ASSERT_TRUE(sup->reconcile({spec}));
  ASSERT_TRUE(tick_until(
      *sup, [&] { return in(*sup, "e1", InstanceState::running); }, 1s));
  const auto st = sup->status("e1");
  ASSERT_EQ(st->ports.size(), 1u);
  EXPECT_EQ(st->ports[0], options_.ports.first);
  EXPECT_NE(log(*sup, "e1").find("OS_INSTANCE=e1 on " + std::to_string(st->ports[0])),
            std::string::npos);
  EXPECT_NE(log(*sup, "e1").find("--- openstation"), std::string::npos);
  const auto tail = sup->tail("e1", 50);
  EXPECT_TRUE(std::any_of(tail.begin(), tail.end(), [](const std::string& l) {
    return l.find("test-child: listening on port") != std::string::npos;
  }));

  ASSERT_TRUE(sup->reconcile({}));
  ASSERT_TRUE(tick_until(*sup, [&] { return sup->idle(); }));
  EXPECT_NE(::kill(st->pid, 0), 0) << "stopped and reaped";
}

TEST_F(SupervisorReal, CrashRestartsWithBackoffThenCrashLoops) {
  auto sup = make();
  ASSERT_TRUE(
      sup->reconcile({child("c", {"--print", "2", "--exit-after-ms", "0", "--exit-code", "3"})}));
  ASSERT_TRUE(tick_until(*sup, [&] { return in(*sup, "c", InstanceState::backoff); }));
  auto st = sup->status("c");
  EXPECT_EQ(st->last_exit, ExitStatus::exited_with(3));
  EXPECT_NE(st->reason.find("exited with code 3"), std::string::npos) << st->reason;
  EXPECT_NE(st->reason.find("restarting in 1 s"), std::string::npos) << st->reason;
  ASSERT_FALSE(st->last_log_lines.empty());
  EXPECT_NE(core::join(st->last_log_lines, "\n").find("test-child: exiting with code 3"),
            std::string::npos);

  sup->tick();
  EXPECT_EQ(pids_.size(), 1u) << "waits for the backoff";
  clock_.advance(1s);
  ASSERT_TRUE(
      tick_until(*sup, [&] { return pids_.size() == 2 && in(*sup, "c", InstanceState::backoff); }));
  EXPECT_NE(sup->status("c")->reason.find("restarting in 2 s"), std::string::npos);
  clock_.advance(2s);
  ASSERT_TRUE(tick_until(*sup, [&] { return in(*sup, "c", InstanceState::crash_loop); }));
  st = sup->status("c");
  EXPECT_EQ(pids_.size(), 3u);
  EXPECT_EQ(st->restarts, 2u);
  EXPECT_NE(st->reason.find("3 crashes"), std::string::npos) << st->reason;
  ASSERT_TRUE(sup->reconcile({}));
  sup->tick();
  EXPECT_TRUE(sup->idle());
}

TEST_F(SupervisorReal, HangAtStartupTimesOutAndIsRestarted) {
  auto sup = make();
  ASSERT_TRUE(sup->reconcile({child("h", {"--listen", "{port}", "--never-ready"})}));
  ASSERT_TRUE(tick_until(
      *sup,
      [&] {
        const auto st = sup->status("h");
        return st && st->last_probe && st->last_probe->detail == "HTTP 503";
      },
      1s));
  EXPECT_EQ(sup->status("h")->state, InstanceState::starting);
  clock_.advance(30s);
  ASSERT_TRUE(tick_until(*sup, [&] { return in(*sup, "h", InstanceState::backoff); }));
  const auto st = sup->status("h");
  EXPECT_NE(st->reason.find("not ready within 30 s"), std::string::npos) << st->reason;
  EXPECT_NE(st->reason.find("HTTP 503"), std::string::npos) << st->reason;
  EXPECT_EQ(st->last_exit, ExitStatus::killed_by(SIGTERM));
  clock_.advance(1s);
  ASSERT_TRUE(tick_until(*sup, [&] { return pids_.size() == 2; }));
  EXPECT_EQ(sup->status("h")->state, InstanceState::starting);
  ASSERT_TRUE(sup->reconcile({}));
  ASSERT_TRUE(tick_until(*sup, [&] { return sup->idle(); }));
}

TEST_F(SupervisorReal, SlowStopIsKilledAfterTheGracePeriod) {
  auto sup = make();
  ASSERT_TRUE(sup->reconcile({child("s", {"--listen", "{port}", "--ignore-sigterm"})}));
  ASSERT_TRUE(tick_until(
      *sup, [&] { return in(*sup, "s", InstanceState::running); }, 1s));
  const auto pid = sup->status("s")->pid;
  ASSERT_TRUE(sup->reconcile({}));
  sup->tick();
  ASSERT_TRUE(in(*sup, "s", InstanceState::stopping));
  ASSERT_TRUE(tick_until(*sup, [&] {
    return log(*sup, "s").find("test-child: ignoring SIGTERM") != std::string::npos;
  }));
  sup->tick();
  EXPECT_TRUE(in(*sup, "s", InstanceState::stopping)) << "still within the grace period";
  EXPECT_EQ(::kill(pid, 0), 0) << "it ignored SIGTERM";
  clock_.advance(10s);
  ASSERT_TRUE(tick_until(*sup, [&] { return sup->idle(); }));
  EXPECT_NE(::kill(pid, 0), 0);
  EXPECT_NE(log(*sup, "s").find("SIGKILL: still running 10 s after SIGTERM"), std::string::npos);
}

TEST_F(SupervisorReal, PortTakenBetweenCheckAndBindMovesToAnotherPort) {
  Listener squatter;  // this test process holds the port
  options_.ports = {squatter.port, static_cast<std::uint16_t>(std::min(squatter.port + 40, 65535))};
  checker_.lie_once = squatter.port;
  auto sup = make();
  ASSERT_TRUE(sup->reconcile({child("p", {"--listen", "{port}"})}));
  ASSERT_TRUE(tick_until(*sup, [&] { return in(*sup, "p", InstanceState::backoff); }));
  const auto st = sup->status("p");
  EXPECT_EQ(st->last_exit, ExitStatus::exited_with(98));
  EXPECT_NE(st->reason.find("port " + std::to_string(squatter.port) + " is held by pid " +
                            std::to_string(::getpid())),
            std::string::npos)
      << st->reason;
  ASSERT_TRUE(tick_until(
      *sup, [&] { return in(*sup, "p", InstanceState::running); }, 1s));
  const auto ports = sup->status("p")->ports;
  ASSERT_EQ(ports.size(), 1u);
  EXPECT_NE(ports[0], squatter.port);
  ASSERT_TRUE(sup->reconcile({}));
  ASSERT_TRUE(tick_until(*sup, [&] { return sup->idle(); }));
}

TEST_F(SupervisorReal, RestartedAgentAdoptsWhatRunsAndStopsWhatIsNotDesired) {
  const auto keep = child("keep", {"--listen", "{port}"});
  const auto drop = child("drop", {"--listen", "{port}"});
  pid_t keep_pid = 0, drop_pid = 0;
  {
    auto first = make();
    ASSERT_TRUE(first->reconcile({keep, drop}));
    ASSERT_TRUE(tick_until(
        *first,
        [&] {
          return in(*first, "keep", InstanceState::running) &&
                 in(*first, "drop", InstanceState::running);
        },
        1s));
    keep_pid = first->status("keep")->pid;
    drop_pid = first->status("drop")->pid;
  }  // the agent exits; its engines keep running
  ASSERT_EQ(::kill(keep_pid, 0), 0);

  auto second = make();
  const auto report = second->recover();
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(report->adopted, (std::vector<std::string>{"drop", "keep"}));
  const auto adopted = second->status("keep");
  ASSERT_TRUE(adopted);
  EXPECT_TRUE(adopted->adopted);
  EXPECT_EQ(adopted->pid, keep_pid);
  EXPECT_EQ(adopted->state, InstanceState::running) << "its port is held by its process group";

  ASSERT_TRUE(second->reconcile({keep}));
  ASSERT_TRUE(tick_until(*second, [&] { return !second->status("drop").has_value(); }));
  EXPECT_NE(::kill(drop_pid, 0), 0) << "the undesired one was stopped";
  EXPECT_EQ(second->status("keep")->pid, keep_pid) << "the kept one was not restarted";
  EXPECT_EQ(pids_.size(), 2u);
  clock_.advance(5s);
  second->tick();
  second->tick();
  EXPECT_TRUE(in(*second, "keep", InstanceState::running)) << "health checks reach it";

  // A third agent after the engine ended while no agent ran: nothing to adopt.
  ASSERT_TRUE(second->reconcile({}));
  ASSERT_TRUE(tick_until(*second, [&] { return second->idle(); }));
  auto third = make();
  const auto again = third->recover();
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->adopted.empty());
  EXPECT_TRUE(third->idle());
}

TEST_F(SupervisorReal, LogsAreRotatedBySizeAndTailed) {
  options_.logs = LogPolicy{4096, 2};
  auto sup = make();
  ASSERT_TRUE(sup->reconcile(
      {child("l", {"--print", "200", "--line-bytes", "100", "--listen", "{port}"})}));
  ASSERT_TRUE(tick_until(
      *sup, [&] { return in(*sup, "l", InstanceState::running); }, 1s));
  sup->tick();
  const auto file = sup->log_file("l");
  EXPECT_TRUE(fs::exists(rotated_path(file, 1)));
  EXPECT_LE(fs::file_size(file), 4096u);
  EXPECT_FALSE(fs::exists(rotated_path(file, 3)));
  // The newest printed line the files hold must be in the tail, reached across the rotation.
  // (Copytruncate rotation drops what is written between its last read and the truncate, as
  // docs/agent.md says; when the agent is preempted there during this burst of 200 writes that
  // can be many lines, so this need not be line 199.)
  const auto newest_in = [](const std::vector<std::string>& lines) {
    int newest = -1;
    for (const auto& l : lines) {
      if (l.rfind("test-child line ", 0) != 0) continue;
      newest = std::max(newest, std::atoi(l.c_str() + 16));
    }
    return newest;
  };
  int newest_on_disk = -1;
  for (const auto& path : {file, rotated_path(file, 1), rotated_path(file, 2)}) {
    std::ifstream in(path);
    std::vector<std::string> lines;
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    newest_on_disk = std::max(newest_on_disk, newest_in(lines));
  }
  ASSERT_GE(newest_on_disk, 0);
  const auto tail = sup->tail("l", 300);
  ASSERT_FALSE(tail.empty());
  EXPECT_EQ(newest_in(tail), newest_on_disk);
  ASSERT_TRUE(sup->reconcile({}));
  ASSERT_TRUE(tick_until(*sup, [&] { return sup->idle(); }));
}

TEST_F(SupervisorReal, RunnerTicksOnItsOwnThread) {
  auto sup = make();
  ASSERT_TRUE(sup->reconcile({child("r", {"--listen", "{port}"})}));
  {
    SupervisorRunner runner(*sup, 10ms);
    ASSERT_TRUE(testing::wait_until([&] { return in(*sup, "r", InstanceState::running); }));
  }
  ASSERT_TRUE(sup->reconcile({}));
  ASSERT_TRUE(tick_until(*sup, [&] { return sup->idle(); }));
}

}  // namespace
}  // namespace openstation::agent
