// The real launcher, with test-child as the process.
#include "agent/process_launcher.hpp"

#include "support/wait_until.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <fstream>

namespace openstation::agent {
namespace {

namespace fs = std::filesystem;

class Process : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("proc-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    for (pid_t pid : pids_) {
      ::kill(-pid, SIGKILL);
      ::waitpid(pid, nullptr, WNOHANG);
    }
  }
  ProcessHandle start(std::vector<std::string> args) {
    LaunchRequest req;
    req.argv = {OPENSTATION_TEST_CHILD};
    req.argv.insert(req.argv.end(), args.begin(), args.end());
    req.log_file = dir_ / "engine.log";
    auto h = launcher_.launch(req);
    EXPECT_TRUE(h) << h.error().message;
    if (!h) return {};
    pids_.push_back(h->pid);
    return *h;
  }
  std::optional<ExitStatus> wait_exit(const ProcessHandle& h) {
    std::optional<ExitStatus> st;
    EXPECT_TRUE(testing::wait_until([&] { return (st = launcher_.poll(h)).has_value(); }));
    return st;
  }
  std::string log() {
    std::ifstream in(dir_ / "engine.log");
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

  fs::path dir_;
  PosixProcessLauncher launcher_;
  std::vector<pid_t> pids_;
};

TEST_F(Process, RunsInItsOwnGroupAndLogsStdoutAndStderr) {
  const auto h = start({"--exit-after-ms", "60000"});
  ASSERT_GT(h.pid, 0);
  const auto st = read_proc_stat(h.pid);
  ASSERT_TRUE(st);
  EXPECT_EQ(st->pgid, h.pid);
  EXPECT_EQ(st->start_time, h.start_time);
  EXPECT_TRUE(launcher_.alive(h));
  EXPECT_FALSE(launcher_.alive(ProcessHandle{h.pid, h.start_time + 1})) << "another start time";
  EXPECT_FALSE(launcher_.poll(h).has_value());
  EXPECT_TRUE(testing::wait_until([&] { return log().find("started pid") != std::string::npos; }));
  EXPECT_TRUE(launcher_.signal_group(h, SIGTERM));
  EXPECT_EQ(wait_exit(h), ExitStatus::killed_by(SIGTERM));
  EXPECT_FALSE(launcher_.alive(h));
}

TEST_F(Process, ReportsTheExitCode) {
  const auto h = start({"--exit-after-ms", "0", "--exit-code", "7"});
  const auto st = wait_exit(h);
  ASSERT_TRUE(st);
  EXPECT_EQ(*st, ExitStatus::exited_with(7));
  EXPECT_EQ(st->describe(), "exited with code 7");
  EXPECT_NE(log().find("exiting with code 7"), std::string::npos);
}

TEST_F(Process, PassesEnvironmentAndWorkingDirectory) {
  LaunchRequest req;
  req.argv = {OPENSTATION_TEST_CHILD, "--print-env",     "OS_TEST_VAR",
              "--print-cwd",          "--exit-after-ms", "0"};
  req.env = {{"OS_TEST_VAR", "hello world"}};
  req.working_dir = dir_;
  req.log_file = dir_ / "engine.log";
  auto h = launcher_.launch(req);
  ASSERT_TRUE(h);
  pids_.push_back(h->pid);
  wait_exit(*h);
  EXPECT_NE(log().find("OS_TEST_VAR=hello world"), std::string::npos) << log();
  EXPECT_NE(log().find("cwd=" + fs::canonical(dir_).string()), std::string::npos) << log();
}

TEST_F(Process, MissingExecutableIsNotFound) {
  LaunchRequest req;
  req.argv = {(dir_ / "no-such-engine").string()};
  req.log_file = dir_ / "engine.log";
  const auto h = launcher_.launch(req);
  ASSERT_FALSE(h);
  EXPECT_EQ(h.error().code, "process.not_found");
  EXPECT_EQ(launcher_.launch(LaunchRequest{}).error().code, "process.empty_argv");
}

TEST_F(Process, UnwritableLogIsAnError) {
  LaunchRequest req;
  req.argv = {OPENSTATION_TEST_CHILD};
  req.log_file = dir_ / "engine.log" / "x";  // under a regular file: cannot be created
  std::ofstream(dir_ / "engine.log") << "x";
  const auto h = launcher_.launch(req);
  ASSERT_FALSE(h);
  EXPECT_EQ(h.error().code, "process.log_open_failed");
}

TEST(ProcStat, ParsesCommandNamesWithSpacesAndParentheses) {
  const std::string text =
      "4242 (we ird) (name)) S 1 4242 4242 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 "
      "987654 1000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 3 0 0 0 0 0";
  const auto st = parse_proc_stat(text);
  ASSERT_TRUE(st);
  EXPECT_EQ(st->state, 'S');
  EXPECT_EQ(st->pgid, 4242);
  EXPECT_EQ(st->start_time, 987654u);
  EXPECT_FALSE(parse_proc_stat("garbage").has_value());
  EXPECT_EQ(ExitStatus::killed_by(9).describe(), "killed by signal 9 (SIGKILL)");
}

}  // namespace
}  // namespace openstation::agent
