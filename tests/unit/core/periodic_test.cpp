// core::Periodic: the first run now or after an interval, a trigger runs early, stop() is prompt,
// and the thread carries its name.
#include "core/periodic.hpp"

#include "core/thread_name.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace openstation::core {
namespace {

using namespace std::chrono_literals;

bool eventually(const std::atomic<int>& runs, int at_least) {
  for (int i = 0; i < 500 && runs.load() < at_least; ++i) std::this_thread::sleep_for(5ms);
  return runs.load() >= at_least;
}

TEST(Periodic, RunsAtOnceThenEveryIntervalAndStopsWithoutWaitingItOut) {
  std::atomic<int> runs{0};
  Periodic p;
  std::mutex mu;
  std::string name;
  p.start("test-sweep", 30ms, [&] {
    {
      std::lock_guard lock(mu);
      name = this_thread_name();
    }
    ++runs;
  });
  EXPECT_TRUE(eventually(runs, 3));  // now, +30 ms, +60 ms
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(name, "test-sweep");
  }
  Periodic slow;
  std::atomic<int> slow_runs{0};
  slow.start("test-slow", std::chrono::hours(1), [&] { ++slow_runs; });
  EXPECT_TRUE(eventually(slow_runs, 1));
  const auto before = std::chrono::steady_clock::now();
  slow.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - before, 2s);
  slow.stop();  // idempotent
  EXPECT_EQ(slow_runs.load(), 1);
}

TEST(Periodic, AfterIntervalWaitsForTheFirstRunAndATriggerCutsTheWaitShort) {
  std::atomic<int> runs{0};
  Periodic p;
  p.start(
      "test-late", std::chrono::hours(1), [&] { ++runs; }, Periodic::First::after_interval);
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(runs.load(), 0);
  p.trigger();
  EXPECT_TRUE(eventually(runs, 1));
  p.trigger();
  EXPECT_TRUE(eventually(runs, 2));
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(runs.load(), 2);  // one run per trigger, then back to the hour's wait
}

TEST(Periodic, TriggersInABurstRunOncePerMinGap) {
  // A burst of triggers (keys made one after another by a script) must not make one run after
  // another: with min_gap, each triggered run starts at least that long after the last one ended.
  std::mutex mu;
  std::vector<
      std::pair<std::chrono::steady_clock::time_point, std::chrono::steady_clock::time_point>>
      spans;  // start and end of each run
  Periodic p;
  p.start(
      "test-gap", std::chrono::hours(1),
      [&] {
        const auto start = std::chrono::steady_clock::now();
        std::lock_guard lock(mu);
        spans.emplace_back(start, std::chrono::steady_clock::now());
      },
      Periodic::First::now, 100ms);
  const auto until = std::chrono::steady_clock::now() + 450ms;
  while (std::chrono::steady_clock::now() < until) {
    p.trigger();
    std::this_thread::sleep_for(5ms);
  }
  p.stop();
  std::lock_guard lock(mu);
  ASSERT_GE(spans.size(), 2u);  // the first run, then at least one triggered run
  EXPECT_LE(spans.size(), 6u);  // about one per 100 ms over 450 ms, not one per trigger (90)
  for (std::size_t i = 1; i < spans.size(); ++i) {
    EXPECT_GE(spans[i].first - spans[i - 1].second, 100ms) << "run " << i;
  }
}

}  // namespace
}  // namespace openstation::core
