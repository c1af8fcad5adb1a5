#include "agent/command_runner.hpp"
#include "support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace oa = openstation::agent;
using namespace std::chrono_literals;

TEST(SpawnCommandRunner, CapturesOutputsAndExitCode) {
  oa::SpawnCommandRunner runner;
  auto r = runner.run({"sh", "-c", "echo out; echo err >&2; exit 3"}, 10s);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->out, "out\n");
  EXPECT_EQ(r->err, "err\n");
}

TEST(SpawnCommandRunner, ArgumentsAreNotInterpretedByAShell) {
  oa::SpawnCommandRunner runner;
  auto r = runner.run({"echo", "a;b", "$HOME"}, 10s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->out, "a;b $HOME\n");
}

TEST(SpawnCommandRunner, MissingExecutableIsNotFound) {
  oa::SpawnCommandRunner runner;
  auto r = runner.run({"/nonexistent/nvidia-smi"}, 10s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "command.not_found");
}

TEST(SpawnCommandRunner, KillsACommandThatRunsPastItsTimeout) {
  oa::SpawnCommandRunner runner;
  auto r = runner.run({"sh", "-c", "exec sleep 30"}, 50ms);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "command.timed_out");
}

TEST(FindOnPath, FindsExecutablesOnly) {
  namespace fs = std::filesystem;
  fs::path dir = openstation::testing_support::unique_temp_path("agent_path");
  fs::remove_all(dir);
  fs::create_directories(dir / "a");
  fs::create_directories(dir / "b");
  std::ofstream(dir / "a" / "tool") << "not executable";
  std::ofstream(dir / "b" / "tool") << "#!/bin/sh\n";
  fs::permissions(dir / "b" / "tool", fs::perms::owner_all);
  std::string path = (dir / "a").string() + ":" + (dir / "b").string();
  auto found = oa::find_on_path("tool", path);
  ASSERT_TRUE(found);
  EXPECT_EQ(*found, dir / "b" / "tool");
  EXPECT_FALSE(oa::find_on_path("other", path));
  EXPECT_FALSE(oa::find_on_path("tool", (dir / "a").string()));
}
