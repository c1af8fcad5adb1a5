#include "download/queue.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>

namespace openstation::download {
namespace {

using store::DownloadState;
using S = DownloadState;

/// Applies a command and writes the changed row back, as the manager does.
void run(std::vector<QueueItem>& items, const std::string& id, QueueCommand c) {
  auto r = apply(items, id, c);
  ASSERT_TRUE(r) << r.error().message;
  for (auto& i : items) {
    if (i.id == id) i = *r;
  }
}

/// What the worker does when nothing runs: the next one starts.
void start_next(std::vector<QueueItem>& items) {
  auto next = next_to_run(items);
  if (!next) return;
  for (auto& i : items) {
    if (i.id == *next) i.state = S::downloading;
  }
}

std::string running(const std::vector<QueueItem>& items) {
  for (const auto& i : items) {
    if (i.state == S::downloading) return i.id;
  }
  return "";
}

std::vector<QueueItem> submitted(std::initializer_list<const char*> ids) {
  std::vector<QueueItem> items;
  for (const char* id : ids) items.push_back({id, S::queued, submit_position(items)});
  return items;
}

TEST(DownloadQueue, OneAtATimeInSubmissionOrder) {
  auto q = submitted({"a", "b", "c"});
  start_next(q);
  EXPECT_EQ(running(q), "a");
  EXPECT_EQ(next_to_run(q), "a");  // the one downloading keeps running
  q[0].state = S::completed;
  start_next(q);
  EXPECT_EQ(running(q), "b");
  q[1].state = S::completed;
  start_next(q);
  EXPECT_EQ(running(q), "c");
  q[2].state = S::completed;
  EXPECT_EQ(next_to_run(q), std::nullopt);
}

TEST(DownloadQueue, PauseStartsTheNextOne) {
  auto q = submitted({"a", "b"});
  start_next(q);
  run(q, "a", QueueCommand::pause);
  EXPECT_EQ(q[0].state, S::paused);
  start_next(q);
  EXPECT_EQ(running(q), "b");
}

TEST(DownloadQueue, PauseAQueuedOneSkipsIt) {
  auto q = submitted({"a", "b", "c"});
  start_next(q);
  run(q, "b", QueueCommand::pause);
  q[0].state = S::completed;
  start_next(q);
  EXPECT_EQ(running(q), "c");
}

TEST(DownloadQueue, StartingAPausedOneQueuesItRightAfterTheOneDownloading) {
  auto q = submitted({"a", "b", "c", "d"});
  start_next(q);
  run(q, "a", QueueCommand::pause);
  start_next(q);
  ASSERT_EQ(running(q), "b");
  run(q, "a", QueueCommand::resume);
  EXPECT_EQ(q[0].state, S::queued);
  EXPECT_EQ(running(q), "b");  // it does not interrupt the one downloading
  q[1].state = S::completed;
  start_next(q);
  EXPECT_EQ(running(q), "a");  // before c and d, submitted earlier than its restart
}

TEST(DownloadQueue, WithSeveralPausedTheOneStartedLastGoesFirst) {
  auto q = submitted({"a", "b", "c", "d", "e"});
  start_next(q);
  run(q, "a", QueueCommand::pause);
  start_next(q);
  run(q, "b", QueueCommand::pause);
  start_next(q);
  ASSERT_EQ(running(q), "c");
  run(q, "a", QueueCommand::resume);
  run(q, "b", QueueCommand::resume);
  std::vector<std::string> order;
  for (int i = 0; i < 4; ++i) {
    for (auto& item : q) {
      if (item.state == S::downloading) item.state = S::completed;
    }
    start_next(q);
    order.push_back(running(q));
  }
  EXPECT_EQ(order, (std::vector<std::string>{"b", "a", "d", "e"}));
}

TEST(DownloadQueue, ResumeWithNothingRunningStartsIt) {
  auto q = submitted({"a"});
  start_next(q);
  run(q, "a", QueueCommand::pause);
  EXPECT_EQ(next_to_run(q), std::nullopt);
  run(q, "a", QueueCommand::resume);
  EXPECT_EQ(next_to_run(q), "a");
}

TEST(DownloadQueue, CancelStartsTheNextOneAndAFailedOneCanBeRetried) {
  auto q = submitted({"a", "b", "c"});
  start_next(q);
  run(q, "a", QueueCommand::cancel);
  EXPECT_EQ(q[0].state, S::cancelled);
  start_next(q);
  EXPECT_EQ(running(q), "b");
  q[1].state = S::failed;  // the worker records a failure
  start_next(q);
  EXPECT_EQ(running(q), "c");
  run(q, "b", QueueCommand::resume);  // retry
  EXPECT_EQ(q[1].state, S::queued);
  q[2].state = S::completed;
  start_next(q);
  EXPECT_EQ(running(q), "b");
}

TEST(DownloadQueue, ADownloadingRowAfterARestartRunsFirst) {
  // Rows as a restarted server finds them: b was downloading when the process stopped.
  std::vector<QueueItem> q{{"a", S::queued, 1}, {"b", S::downloading, 2}, {"c", S::queued, 3}};
  EXPECT_EQ(next_to_run(q), "b");
}

TEST(DownloadQueue, CommandsRefusedInTheWrongState) {
  std::vector<QueueItem> q{
      {"done", S::completed, 1}, {"p", S::paused, 2}, {"q", S::queued, 3}, {"x", S::cancelled, 4}};
  struct Case {
    const char* id;
    QueueCommand c;
  };
  for (const auto& [id, c] : {Case{"done", QueueCommand::pause}, Case{"done", QueueCommand::resume},
                              Case{"done", QueueCommand::cancel}, Case{"p", QueueCommand::pause},
                              Case{"q", QueueCommand::resume}, Case{"x", QueueCommand::cancel},
                              Case{"x", QueueCommand::pause}}) {
    auto r = apply(q, id, c);
    ASSERT_FALSE(r) << id << " " << to_string(c);
    EXPECT_EQ(r.error().code, "download.bad_state");
    EXPECT_EQ(r.error().category, core::Errc::conflict);
  }
  auto missing = apply(q, "nope", QueueCommand::pause);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, "download.not_found");
  // A cancelled download can be started again (from zero).
  auto again = apply(q, "x", QueueCommand::resume);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->state, S::queued);
}

/// Every sequence of commands up to length 4 over three downloads keeps the invariants: at most
/// one downloading, next_to_run picks it or the lowest queued one, and no row is lost.
TEST(DownloadQueue, InvariantsHoldForEverySequence) {
  const QueueCommand cmds[] = {QueueCommand::pause, QueueCommand::resume, QueueCommand::cancel};
  const char* ids[] = {"a", "b", "c"};
  std::vector<std::pair<int, int>> steps;
  std::function<void(std::vector<QueueItem>, int)> explore = [&](std::vector<QueueItem> q,
                                                                 int depth) {
    start_next(q);
    int downloading = 0;
    for (const auto& i : q) downloading += i.state == S::downloading ? 1 : 0;
    ASSERT_LE(downloading, 1);
    ASSERT_EQ(q.size(), 3u);
    if (auto next = next_to_run(q)) {
      for (const auto& i : q) {
        if (i.state == S::queued && downloading == 0) {
          const auto chosen =
              std::find_if(q.begin(), q.end(), [&](auto& x) { return x.id == *next; });
          ASSERT_LE(chosen->position, i.position);
        }
      }
    }
    if (depth == 0) return;
    for (const auto* id : ids) {
      for (const auto c : cmds) {
        auto r = apply(q, id, c);
        if (!r) continue;
        auto copy = q;
        for (auto& i : copy) {
          if (i.id == id) i = *r;
        }
        explore(copy, depth - 1);
      }
    }
  };
  explore(submitted({"a", "b", "c"}), 4);
}

}  // namespace
}  // namespace openstation::download
