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

}  // namespace
}  // namespace openstation::core
