// Retention: call logs and events past their retention are deleted, newer ones and everything
// with a retention of 0 are kept; the background pass runs at start. A temporary SQLite store on
// a manual clock.

#include "server/retention.hpp"

#include "support/manual_clock.hpp"
#include "support/temp_store.hpp"

#include <gtest/gtest.h>

#include <thread>

namespace openstation::server {
namespace {

using namespace std::chrono_literals;
constexpr auto kDay = std::chrono::hours(24);

class RetentionTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_NE(store_.get(), nullptr); }

  /// A call log and an event written `age` ago, tagged so the test can tell them apart.
  void write(std::chrono::milliseconds age, const std::string& tag) {
    store::CallLog log;
    log.time = clock_.now() - age;
    log.service = tag;
    log.status = 200;
    ASSERT_TRUE(store_->call_logs().append(log));
    store::Event e;
    e.time = clock_.now() - age;
    e.actor = "system";
    e.action = tag;
    ASSERT_TRUE(store_->events().append(e));
  }
  /// What a log still holds (each entry's tag), newest first.
  template <class Log, class Entry>
  static std::vector<std::string> tags(Log& log, std::string Entry::*tag) {
    auto page = log.list({}, store::PageRequest{0, {}});
    EXPECT_TRUE(page) << page.error().message;
    std::vector<std::string> out;
    if (page) {
      for (const auto& e : page->items) out.push_back(e.*tag);
    }
    return out;
  }
  std::vector<std::string> call_log_tags() {
    return tags(store_->call_logs(), &store::CallLog::service);
  }
  std::vector<std::string> event_tags() { return tags(store_->events(), &store::Event::action); }

  testing::ManualClock clock_;
  testing_support::TempStore store_{"retention", clock_};
};

TEST_F(RetentionTest, OnlyEntriesPastTheirRetentionGo) {
  write(100 * kDay, "old");
  write(91 * kDay, "older-than-90");
  write(89 * kDay, "kept");
  write(1h, "new");

  Retention::Options o;
  o.call_logs = 90 * kDay;
  o.events = 0ms;  // the audit trail is kept unless asked
  Retention retention(*store_, clock_, o);
  auto pass = retention.run_once();
  ASSERT_TRUE(pass) << pass.error().message;
  EXPECT_EQ(pass->call_logs, 2u);
  EXPECT_EQ(pass->events, 0u);
  EXPECT_EQ(call_log_tags(), (std::vector<std::string>{"new", "kept"}));
  EXPECT_EQ(event_tags().size(), 4u);

  // Time moves on: the next pass takes what has aged past the cut since.
  clock_.advance(2 * kDay);
  pass = retention.run_once();
  ASSERT_TRUE(pass) << pass.error().message;
  EXPECT_EQ(pass->call_logs, 1u);
  EXPECT_EQ(call_log_tags(), (std::vector<std::string>{"new"}));
}

TEST_F(RetentionTest, EventRetentionWhenSetAndZeroKeepsEverything) {
  write(400 * kDay, "ancient");
  write(10 * kDay, "recent");

  Retention::Options keep;
  keep.call_logs = 0ms;
  keep.events = 0ms;
  auto none = Retention(*store_, clock_, keep).run_once();
  ASSERT_TRUE(none) << none.error().message;
  EXPECT_EQ(none->call_logs + none->events, 0u);
  EXPECT_EQ(call_log_tags().size(), 2u);

  Retention::Options year;
  year.call_logs = 0ms;
  year.events = 365 * kDay;
  auto pass = Retention(*store_, clock_, year).run_once();
  ASSERT_TRUE(pass) << pass.error().message;
  EXPECT_EQ(pass->events, 1u);
  EXPECT_EQ(event_tags(), (std::vector<std::string>{"recent"}));
  EXPECT_EQ(call_log_tags().size(), 2u);
}

TEST_F(RetentionTest, ALargeCutGoesInChunksAndAllOfItGoes) {
  for (int i = 0; i < 25; ++i) write(100 * kDay + i * 1min, "old");
  write(1h, "new");
  Retention::Options o;
  o.call_logs = 90 * kDay;
  o.events = 90 * kDay;
  o.chunk = 4;  // 25 entries: seven transactions per log
  auto pass = Retention(*store_, clock_, o).run_once();
  ASSERT_TRUE(pass) << pass.error().message;
  EXPECT_EQ(pass->call_logs, 25u);
  EXPECT_EQ(pass->events, 25u);
  EXPECT_EQ(call_log_tags(), (std::vector<std::string>{"new"}));
  EXPECT_EQ(event_tags(), (std::vector<std::string>{"new"}));
}

TEST_F(RetentionTest, StartRunsAPassAtOnceAndStopDoesNotWaitForTheNext) {
  write(100 * kDay, "old");
  write(1h, "new");
  Retention::Options o;
  o.call_logs = 90 * kDay;
  o.interval = std::chrono::hours(1);
  Retention retention(*store_, clock_, o);
  retention.start();
  for (int i = 0; i < 500 && call_log_tags().size() != 1; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(call_log_tags(), (std::vector<std::string>{"new"}));
  const auto before = std::chrono::steady_clock::now();
  retention.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - before, 5s);  // woken, not an hour's wait
}

}  // namespace
}  // namespace openstation::server
