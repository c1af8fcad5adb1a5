// The call-log queue shared by the store and remote sinks: records go out in order, in batches of
// at most batch_size; a failed batch goes back in front; past max_queue the oldest are dropped
// and counted; while the destination is down the thread retries once per interval; deliveries
// run on a thread at idle priority, and a request's submit never waits for one.
#include "gateway/call_log_writer.hpp"

#include <gtest/gtest.h>

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace openstation::gateway {
namespace {

using namespace std::chrono_literals;

store::CallLog numbered(int i) {
  store::CallLog log;
  log.service = "service-with-a-name-longer-than-sso-" + std::to_string(i);
  log.user_id = "u_" + std::to_string(i);
  log.status = 200 + i % 3;
  return log;
}

/// Delivers into a vector; fails (retryable or not) while told to. Flushed by hand unless
/// `with_thread`.
class RecordingSink final : public BatchingCallLogSink {
 public:
  explicit RecordingSink(Options o, bool with_thread = false) : BatchingCallLogSink(o) {
    if (with_thread) start();
  }
  ~RecordingSink() override { stop(); }

  int attempts() {
    std::lock_guard lock(mu_);
    return attempts_;
  }

  std::vector<std::string> delivered;   ///< services, in delivery order
  std::vector<store::CallLog> records;  ///< the records themselves, in delivery order
  std::vector<std::size_t> batch_sizes;
  bool fail = false;
  bool fail_for_good = false;
  int fail_after = -1;  ///< when not -1: this many deliveries succeed, then `fail` is set
  /// Submitted from inside the next successful deliver (a request finishing meanwhile).
  std::vector<store::CallLog> arriving;
  std::vector<int> policies;             ///< the scheduling policy of each delivery's thread
  std::vector<std::thread::id> threads;  ///< the thread of each delivery
  /// While set, a delivery waits (with `delivering` set) until it is cleared.
  bool hold = false;
  bool delivering = false;
  std::mutex hold_mu;
  std::condition_variable hold_cv;

 private:
  core::Result<void> deliver(std::span<const store::CallLog> batch, bool& retry) override {
    std::lock_guard lock(mu_);
    ++attempts_;
    if (fail_after == 0) fail = true;
    if (fail_after >= 0) --fail_after;
    if (fail || fail_for_good) {
      retry = !fail_for_good;
      return core::Error(core::Errc::unavailable, "test.down", "the destination is down");
    }
    batch_sizes.push_back(batch.size());
    policies.push_back(sched_getscheduler(0));
    threads.push_back(std::this_thread::get_id());
    if (hold) {
      std::unique_lock held(hold_mu);
      delivering = true;
      hold_cv.notify_all();
      hold_cv.wait(held, [&] { return !hold; });
    }
    for (const auto& l : batch) delivered.push_back(l.service);
    records.insert(records.end(), batch.begin(), batch.end());
    for (auto& l : std::exchange(arriving, {})) submit(std::move(l));
    return {};
  }
  std::string destination() const override { return "a vector"; }
  std::mutex mu_;
  int attempts_ = 0;
};

std::vector<std::string> services(int from, int to) {
  std::vector<std::string> out;
  for (int i = from; i < to; ++i) out.push_back(numbered(i).service);
  return out;
}

std::vector<std::string> operator+(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST(CallLogQueue, RecordsGoOutInOrderInBatchesAndAFailedBatchGoesBackInFront) {
  RecordingSink sink({1h, 4, 1000});
  for (int i = 0; i < 10; ++i) sink.submit(numbered(i));
  EXPECT_EQ(sink.queued(), 10u);

  sink.fail = true;
  EXPECT_FALSE(sink.flush());
  EXPECT_EQ(sink.queued(), 10u);  // the failed batch is back, in front
  EXPECT_TRUE(sink.delivered.empty());

  sink.fail = false;
  sink.submit(numbered(10));
  ASSERT_TRUE(sink.flush());
  EXPECT_EQ(sink.delivered, services(0, 11));
  EXPECT_EQ(sink.batch_sizes, (std::vector<std::size_t>{4, 4, 3}));
  EXPECT_EQ(sink.written(), 11u);
  EXPECT_EQ(sink.queued(), 0u);
  EXPECT_EQ(sink.dropped(), 0u);
}

TEST(CallLogQueue, PastTheBoundTheOldestAreDroppedAndCounted) {
  RecordingSink sink({1h, 512, 100});
  for (int i = 0; i < 250; ++i) sink.submit(numbered(i));
  EXPECT_EQ(sink.queued(), 100u);
  EXPECT_EQ(sink.dropped(), 150u);
  ASSERT_TRUE(sink.flush());
  EXPECT_EQ(sink.delivered, services(150, 250));

  // A batch that can never succeed is dropped and counted, not queued again.
  sink.submit(numbered(1));
  sink.fail_for_good = true;
  EXPECT_FALSE(sink.flush());
  EXPECT_EQ(sink.queued(), 0u);
  EXPECT_EQ(sink.dropped(), 151u);
}

TEST(CallLogQueue, ARetriedBatchKeepsItsPlaceWhenTheQueueFilledMeanwhile) {
  RecordingSink sink({1h, 3, 5});
  for (int i = 0; i < 5; ++i) sink.submit(numbered(i));
  sink.fail = true;
  EXPECT_FALSE(sink.flush());  // 0, 1, 2 back in front of 3, 4
  sink.fail = false;
  sink.submit(numbered(5));  // full: 0 is dropped
  EXPECT_EQ(sink.dropped(), 1u);
  ASSERT_TRUE(sink.flush());
  EXPECT_EQ(sink.delivered, services(1, 6));
}

TEST(CallLogQueue, SubmitReusingCopiesTheRecordIntoSlotsThatNeverLeakAnEarlierOnesFields) {
  // The caller keeps its record (and its strings' storage) to overwrite for the next request;
  // the queue's slots are reused flush after flush, and a shorter or emptier record copied over
  // a longer one must come out as itself.
  RecordingSink sink({1h, 2, 1000});
  std::vector<store::CallLog> sent;
  auto send = [&](store::CallLog& log) {
    const store::CallLog before = log;
    sink.submit_reusing(log);
    EXPECT_EQ(log, before);  // left as it was
    sent.push_back(before);
  };
  store::CallLog log = numbered(0);
  log.error = "a long error message that does not fit in a short string";
  log.ttft_ms = 12;
  for (int round = 0; round < 4; ++round) {
    for (int i = 0; i < 3; ++i) {
      log.service = round % 2 == 0 ? numbered(10 * round + i).service : "s";
      log.user_id = round % 2 == 0 ? "" : "u_" + std::to_string(i);
      log.error = round == 3 ? "" : log.error;
      log.ttft_ms = round % 2 == 0 ? std::optional<std::int64_t>(12) : std::nullopt;
      send(log);
    }
    if (round == 1) {
      sink.fail = true;
      EXPECT_FALSE(sink.flush());  // queued again, in front of the next round's records
      sink.fail = false;
      continue;
    }
    ASSERT_TRUE(sink.flush());
  }
  std::vector<std::string> expected;
  for (const auto& l : sent) expected.push_back(l.service);
  EXPECT_EQ(sink.delivered, expected);
  ASSERT_EQ(sink.records.size(), sent.size());
  for (std::size_t i = 0; i < sent.size(); ++i) EXPECT_EQ(sink.records[i], sent[i]) << i;
}

TEST(CallLogQueue, AQueueThatWrappedPastItsBoundGoesOutOldestFirstAfterARetry) {
  // Records dropped at the bound leave the ring wrapped; a failure part-way through keeps the
  // rest in order in front of what arrived meanwhile, and a record that can never be delivered
  // is dropped and counted.
  RecordingSink sink({1h, 3, 7});
  for (int i = 0; i < 10; ++i) sink.submit(numbered(i));  // 0..2 dropped; 3..9 queued, wrapped
  EXPECT_EQ(sink.dropped(), 3u);
  sink.fail_after = 1;  // the first batch goes out, the second fails
  EXPECT_FALSE(sink.flush());
  EXPECT_EQ(sink.delivered, services(3, 6));
  EXPECT_EQ(sink.queued(), 4u);
  for (int i = 10; i < 14; ++i) sink.submit(numbered(i));  // 6..9 then 10..13: 6 is dropped
  EXPECT_EQ(sink.queued(), 7u);
  EXPECT_EQ(sink.dropped(), 4u);
  sink.fail_after = -1;
  sink.fail = false;
  ASSERT_TRUE(sink.flush());
  EXPECT_EQ(sink.delivered, services(3, 6) + services(7, 14));
  EXPECT_EQ(sink.written(), 10u);
  sink.submit(numbered(14));
  sink.fail_for_good = true;
  EXPECT_FALSE(sink.flush());
  EXPECT_EQ(sink.queued(), 0u);
  EXPECT_EQ(sink.dropped(), 5u);
}

TEST(CallLogQueue, AFlushDeliversWhatWasQueuedWhenItStartedNotWhatArrivesMeanwhile) {
  // A busy gateway keeps submitting while a batch is written; a flush that chased those records
  // would commit a small transaction after each write instead of one per full batch.
  RecordingSink sink({1h, 4, 1000});
  for (int i = 0; i < 6; ++i) sink.submit(numbered(i));
  sink.arriving = {numbered(6), numbered(7)};
  ASSERT_TRUE(sink.flush());
  EXPECT_EQ(sink.delivered, services(0, 6));
  EXPECT_EQ(sink.batch_sizes, (std::vector<std::size_t>{4, 2}));
  EXPECT_EQ(sink.queued(), 2u);
  ASSERT_TRUE(sink.flush());
  EXPECT_EQ(sink.delivered, services(0, 8));
  EXPECT_EQ(sink.queued(), 0u);
}

TEST(CallLogQueue, WhileTheDestinationIsDownTheThreadRetriesOncePerInterval) {
  RecordingSink sink({100ms, 2, 1000}, true);
  sink.fail = true;
  for (int i = 0; i < 5; ++i) sink.submit(numbered(i));
  std::this_thread::sleep_for(450ms);
  // A full batch waiting must not turn the retry into a busy loop.
  EXPECT_GE(sink.attempts(), 1);
  EXPECT_LE(sink.attempts(), 8);
  EXPECT_EQ(sink.queued(), 5u);
}

/// Whether this system lets a thread lower itself to SCHED_IDLE (containers may refuse).
bool idle_priority_allowed() {
  bool ok = false;
  std::thread([&] {
    sched_param p{};
    ok = pthread_setschedparam(pthread_self(), SCHED_IDLE, &p) == 0;
  }).join();
  return ok;
}

TEST(CallLogQueue, DeliveriesRunOnAThreadAtIdlePriorityAndSubmitsNeverWaitForThem) {
  if (!idle_priority_allowed()) GTEST_SKIP() << "SCHED_IDLE is refused here";
  // Fewer records than a batch throughout: the sink's own flush thread stays asleep (1 h).
  RecordingSink sink({1h, 4, 1000}, true);
  for (int i = 0; i < 3; ++i) sink.submit(numbered(i));
  sink.hold = true;
  std::thread::id flushing_thread;
  std::thread flusher([&] {
    flushing_thread = std::this_thread::get_id();
    ASSERT_TRUE(sink.flush());
  });
  {
    std::unique_lock held(sink.hold_mu);
    ASSERT_TRUE(sink.hold_cv.wait_for(held, 10s, [&] { return sink.delivering; }));
  }
  // A batch is being written: requests finishing now queue their records without waiting.
  for (int i = 3; i < 6; ++i) sink.submit(numbered(i));
  EXPECT_EQ(sink.queued(), 3u);
  {
    std::lock_guard held(sink.hold_mu);
    sink.hold = false;
  }
  sink.hold_cv.notify_all();
  flusher.join();
  EXPECT_EQ(sink.delivered, services(0, 3));
  ASSERT_EQ(sink.policies.size(), 1u);
  for (std::size_t i = 0; i < sink.policies.size(); ++i) {
    EXPECT_EQ(sink.policies[i], SCHED_IDLE) << "batch " << i;
    EXPECT_NE(sink.threads[i], flushing_thread);
  }
}

TEST(CallLogQueue, WithoutIdlePriorityTheFlushingThreadDelivers) {
  BatchingCallLogSink::Options o{1h, 4, 1000};
  o.idle_priority = false;
  RecordingSink sink(o, true);
  for (int i = 0; i < 3; ++i) sink.submit(numbered(i));
  ASSERT_TRUE(sink.flush());
  ASSERT_EQ(sink.threads.size(), 1u);
  EXPECT_EQ(sink.threads[0], std::this_thread::get_id());
  EXPECT_EQ(sink.policies[0], sched_getscheduler(0));
}

TEST(CallLogQueue, ABacklogIsDeliveredAtTheFlushingThreadsPriority) {
  if (!idle_priority_allowed()) GTEST_SKIP() << "SCHED_IDLE is refused here";
  BatchingCallLogSink::Options o{1h, 100, 1000};
  o.backlog = 4;
  RecordingSink sink(o, true);
  for (int i = 0; i < 3; ++i) sink.submit(numbered(i));
  ASSERT_TRUE(sink.flush());  // below the mark: the idle thread
  for (int i = 3; i < 8; ++i) sink.submit(numbered(i));
  ASSERT_TRUE(sink.flush());  // five waited: the idle thread is behind, this thread delivers
  EXPECT_EQ(sink.delivered, services(0, 8));
  ASSERT_EQ(sink.threads.size(), 2u);
  EXPECT_EQ(sink.policies[0], SCHED_IDLE);
  EXPECT_NE(sink.threads[0], std::this_thread::get_id());
  EXPECT_EQ(sink.threads[1], std::this_thread::get_id());
  EXPECT_EQ(sink.policies[1], sched_getscheduler(0));
}

void publish(CallLogSink::Producer& p, const store::CallLog& log) {
  p.publish(view_of(log));
}

store::CallLog at(int i, int seconds) {
  auto log = numbered(i);
  log.time = store::TimePoint{} + std::chrono::seconds(seconds);
  return log;
}

/// The i-th record of a thread's run: strings that repeat for stretches of different lengths,
/// change back to earlier values and to empty ones, and numbers of every field.
store::CallLog varied(int i) {
  store::CallLog log;
  log.time = store::TimePoint{} + std::chrono::milliseconds(i);
  log.user_id = "u_" + std::to_string(i / 3 % 4);
  log.key_id = i % 10 < 7 ? "key-with-a-name-longer-than-sso" : "";
  log.service = "service-" + std::to_string(i / 200);
  log.instance_id = i % 2 == 0 ? "inst_a" : "inst_b";
  log.error = i % 97 == 0
                  ? "engine answered 500: " + std::string(static_cast<std::size_t>(i % 50), 'e')
                  : "";
  log.status = i % 97 == 0 ? 502 : 200;
  log.duration_ms = i * 3;
  log.prompt_tokens = i;
  log.completion_tokens = i * 2;
  if (i % 5 == 0) log.ttft_ms = i % 11;
  log.tokens_per_second = i * 0.5;
  return log;
}

TEST(CallLogLane, RecordsComeOutWholeAndInOrderAcrossChunks) {
  // A slot holds only the strings that changed since the record before; what the consumer
  // takes must be every record as published, across chunks and chunks reused.
  detail::CallLogLane lane;
  int produced = 0;
  int consumed = 0;
  auto produce = [&](int n) {
    for (int k = 0; k < n; ++k, ++produced) lane.publish(view_of(varied(produced)));
  };
  auto consume = [&](int n) {
    ASSERT_GE(lane.pending(), static_cast<std::size_t>(n));
    for (int k = 0; k < n; ++k, ++consumed) {
      ASSERT_EQ(lane.front_time(), varied(consumed).time);
      if (consumed % 13 != 0) {  // some records are taken without a look: the rest stay right
        ASSERT_EQ(lane.front(), varied(consumed)) << consumed;
        ASSERT_EQ(lane.front(), varied(consumed)) << consumed;  // the same until popped
      }
      lane.pop();
    }
  };
  produce(700);  // six chunks
  EXPECT_EQ(lane.pending(), 700u);
  consume(300);
  produce(500);
  consume(900);
  EXPECT_EQ(lane.pending(), 0u);
  for (int round = 0; round < 20; ++round) {  // the chunks go round through the spares
    produce(100);
    consume(100);
  }
  for (int k = 0; k < 1000; ++k) {
    produce(1);
    consume(1);
  }
}

TEST(CallLogLane, AConsumerOnAnotherThreadSeesEveryRecordWholeAndInOrder) {
  detail::CallLogLane lane;
  constexpr int kRecords = 200000;
  std::thread producer([&] {
    for (int i = 0; i < kRecords; ++i) lane.publish(view_of(varied(i)));
  });
  int seen = 0;
  bool whole = true;
  while (seen < kRecords) {
    if (lane.pending() == 0) {
      std::this_thread::yield();
      continue;
    }
    whole = whole && lane.front() == varied(seen);
    lane.pop();
    ++seen;
  }
  producer.join();
  EXPECT_TRUE(whole);
  EXPECT_EQ(lane.pending(), 0u);
}

TEST(CallLogQueue, ProducersLanesAreTakenAfterTheQueueAndMergedByTime) {
  // Requests finish on several threads, each with its own lane; the store gets them in the
  // order they finished, whatever thread served them.
  RecordingSink sink({1h, 4, 1000});
  auto a = sink.producer();
  auto b = sink.producer();
  publish(*a, at(1, 10));
  publish(*b, at(2, 20));
  publish(*a, at(3, 30));
  publish(*a, at(4, 40));
  publish(*b, at(5, 35));
  sink.submit(at(0, 50));  // queued the other way: goes first
  EXPECT_EQ(sink.queued(), 6u);
  ASSERT_TRUE(sink.flush());
  const std::vector<store::CallLog> expected{at(0, 50), at(1, 10), at(2, 20),
                                             at(3, 30), at(5, 35), at(4, 40)};
  EXPECT_EQ(sink.records, expected);
  EXPECT_EQ(sink.batch_sizes, (std::vector<std::size_t>{4, 2}));
  EXPECT_EQ(sink.written(), 6u);
  EXPECT_EQ(sink.queued(), 0u);
}

TEST(CallLogQueue, ALanesRecordsAreRetriedAndBoundedLikeQueuedOnes) {
  RecordingSink sink({1h, 2, 5});
  auto p = sink.producer();
  for (int i = 0; i < 4; ++i) publish(*p, at(i, i));
  sink.fail = true;
  EXPECT_FALSE(sink.flush());
  EXPECT_EQ(sink.queued(), 4u);  // back in the queue, in order
  for (int i = 4; i < 7; ++i) publish(*p, at(i, i));
  EXPECT_EQ(sink.queued(), 7u);
  sink.fail = false;
  ASSERT_TRUE(sink.flush());  // 0 and 1 dropped at the bound of 5
  EXPECT_EQ(sink.delivered, services(2, 7));
  EXPECT_EQ(sink.dropped(), 2u);
  EXPECT_EQ(sink.queued(), 0u);
}

TEST(CallLogQueue, WhileAFlushIsStuckALaneHoldsAtMostTheBoundAndDropsTheNewest) {
  // A destination that hangs instead of failing keeps the flush from taking the lanes; they
  // must not grow with every request meanwhile.
  RecordingSink sink({1h, 2, 5});
  auto p = sink.producer();
  for (int i = 0; i < 8; ++i) publish(*p, at(i, i));
  EXPECT_EQ(sink.queued(), 5u);
  EXPECT_EQ(sink.dropped(), 3u);
  ASSERT_TRUE(sink.flush());
  EXPECT_EQ(sink.delivered, services(0, 5));
  // Room again. The strings of the last record dropped: they never reached the lane, so this
  // record must carry them.
  publish(*p, at(7, 8));
  p.reset();
  ASSERT_TRUE(sink.flush());
  ASSERT_TRUE(sink.flush());  // the lane is let go; its drops stay counted
  EXPECT_EQ(sink.delivered, services(0, 5) + services(7, 8));
  EXPECT_EQ(sink.dropped(), 3u);
}

TEST(CallLogQueue, AProducerThatIsGoneLeavesItsRecordsToBeDelivered) {
  RecordingSink sink({1h, 4, 1000});
  auto p = sink.producer();
  for (int i = 0; i < 3; ++i) publish(*p, at(i, i));
  p.reset();
  EXPECT_EQ(sink.queued(), 3u);
  ASSERT_TRUE(sink.flush());
  EXPECT_EQ(sink.delivered, services(0, 3));
  EXPECT_EQ(sink.queued(), 0u);
  ASSERT_TRUE(sink.flush());  // the empty lane of a producer that is gone is let go
  EXPECT_EQ(sink.delivered, services(0, 3));
}

TEST(CallLogQueue, ALaneHoldingABatchWakesTheFlushThreadAndStopDeliversTheRest) {
  auto sink = std::make_unique<RecordingSink>(BatchingCallLogSink::Options{1h, 4, 1000}, true);
  auto p = sink->producer();
  for (int i = 0; i < 4; ++i) publish(*p, at(i, i));
  for (int i = 0; i < 1000 && sink->written() < 4; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(sink->written(), 4u);  // not the hour-long interval
  publish(*p, at(4, 4));
  sink->stop();
  EXPECT_EQ(sink->delivered, services(0, 5));
  EXPECT_EQ(sink->queued(), 0u);
}

TEST(CallLogQueue, ASinksDefaultProducerSubmitsACopyOfEachRecord) {
  struct Submitted final : CallLogSink {
    std::vector<store::CallLog> logs;
    void submit(store::CallLog log) override { logs.push_back(std::move(log)); }
  } sink;
  auto p = sink.CallLogSink::producer();
  publish(*p, at(1, 1));
  publish(*p, at(2, 2));
  ASSERT_EQ(sink.logs.size(), 2u);
  EXPECT_EQ(sink.logs[0], at(1, 1));
  EXPECT_EQ(sink.logs[1], at(2, 2));
}

TEST(CallLogQueue, StopDeliversWhatIsStillQueued) {
  auto sink = std::make_unique<RecordingSink>(BatchingCallLogSink::Options{1h, 4, 1000}, true);
  for (int i = 0; i < 5; ++i) sink->submit(numbered(i));
  sink->stop();
  EXPECT_EQ(sink->delivered, services(0, 5));
  EXPECT_EQ(sink->queued(), 0u);
}

}  // namespace
}  // namespace openstation::gateway
