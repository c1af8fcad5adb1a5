#include "agent/log_files.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

namespace openstation::agent {
namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

class LogFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("logs-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    log_ = dir_ / "engine.log";
    // The engine's side: an O_APPEND descriptor it keeps for its whole life.
    fd_ = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    ASSERT_GE(fd_, 0);
  }
  void TearDown() override { ::close(fd_); }
  void write_lines(const std::string& tag, int n) {
    for (int i = 0; i < n; ++i) {
      const std::string line = tag + " " + std::to_string(i) + "\n";
      ASSERT_EQ(::write(fd_, line.data(), line.size()), static_cast<ssize_t>(line.size()));
    }
  }
  fs::path dir_, log_;
  int fd_ = -1;
};

TEST_F(LogFiles, RotatesBySizeAndTheWriterContinuesAtTheStart) {
  write_lines("old", 100);  // "old 0\n" … ≈ 690 bytes
  const LogPolicy policy{256, 3};
  auto r = rotate_if_needed(log_, policy);
  ASSERT_TRUE(r);
  EXPECT_TRUE(*r);
  EXPECT_EQ(fs::file_size(log_), 0u);
  EXPECT_EQ(slurp(rotated_path(log_, 1)).substr(0, 6), "old 0\n");
  write_lines("new", 1);
  EXPECT_EQ(slurp(log_), "new 0\n") << "O_APPEND puts the next write at the new start, no hole";
  EXPECT_FALSE(*rotate_if_needed(log_, policy)) << "under the cap";
}

TEST_F(LogFiles, KeepsAtMostKeepRotatedFiles) {
  const LogPolicy policy{64, 2};
  for (const char* tag : {"first", "second", "third"}) {
    write_lines(tag, 20);
    ASSERT_TRUE(*rotate_if_needed(log_, policy));
  }
  EXPECT_EQ(slurp(rotated_path(log_, 1)).substr(0, 7), "third 0");
  EXPECT_EQ(slurp(rotated_path(log_, 2)).substr(0, 8), "second 0");
  EXPECT_FALSE(fs::exists(rotated_path(log_, 3)));
}

TEST_F(LogFiles, TailReachesIntoTheRotatedFile) {
  write_lines("old", 10);
  ASSERT_TRUE(*rotate_if_needed(log_, LogPolicy{10, 2}));
  write_lines("new", 2);
  EXPECT_EQ(tail_lines(log_, 2), (std::vector<std::string>{"new 0", "new 1"}));
  EXPECT_EQ(tail_lines(log_, 4), (std::vector<std::string>{"old 8", "old 9", "new 0", "new 1"}));
  EXPECT_TRUE(tail_lines(dir_ / "missing.log", 5).empty());
  EXPECT_TRUE(tail_lines(log_, 0).empty());
}

TEST_F(LogFiles, TailOfALargeFileReadsOnlyItsEnd) {
  write_lines("line", 5000);
  const auto lines = tail_lines(log_, 3, 64);
  EXPECT_EQ(lines, (std::vector<std::string>{"line 4997", "line 4998", "line 4999"}));
}

TEST_F(LogFiles, FollowerSeesAppendsAndSurvivesRotation) {
  write_lines("before", 1);
  LogFollower follow(log_);
  EXPECT_EQ(follow.read_new(), "");
  write_lines("a", 2);
  EXPECT_EQ(follow.read_new(), "a 0\na 1\n");
  write_lines("b", 1);
  ASSERT_TRUE(*rotate_if_needed(log_, LogPolicy{8, 2}));
  write_lines("c", 1);
  EXPECT_EQ(follow.read_new(), "b 0\nc 0\n") << "the unread rest of .1, then the new file";
  LogFollower from_start(log_, true);
  EXPECT_EQ(from_start.read_new(), "c 0\n");
}

}  // namespace
}  // namespace openstation::agent
