#pragma once
/// Writes call logs off the request path: requests hand their record to `submit` (a lock and a
/// copy into a slot whose storage is reused: `submit_reusing`), or an I/O thread fills one in a
/// lane of its own and publishes it (`producer`: no lock), and a background thread
/// appends them to the store in batches (one transaction each) and sets each used API key's
/// last_used_at. When the store is down the batch is retried at the next flush; past `max_queue`
/// the oldest records are dropped and counted, so a dead database never grows the gateway's memory
/// without bound.

#include "core/error.hpp"
#include "store/store.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace openstation::gateway {

/// A finished request's call-log record as the request holds it: store::CallLog's fields, with
/// views of the request's own strings (valid for the call they are passed to).
struct CallRecord {
  store::TimePoint time{};
  std::string_view user_id{};
  std::string_view key_id{};
  std::string_view service{};
  std::string_view instance_id{};
  int status = 0;
  std::int64_t duration_ms = 0;
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
  std::optional<std::int64_t> ttft_ms{};
  double tokens_per_second = 0;
  std::string_view error{};
};

/// `r` as a record's fields (id 0), into `log`, whose strings keep their storage.
void assign(store::CallLog& log, const CallRecord& r);
/// A view of `log`'s fields.
CallRecord view_of(const store::CallLog& log);

/// Where finished requests go. Thread-safe, never blocks on I/O.
class CallLogSink {
 public:
  virtual ~CallLogSink() = default;
  virtual void submit(store::CallLog log) = 0;
  /// Queues `log` and leaves in its place a record to overwrite next time, whose strings keep
  /// their storage: `log` itself where the sink copies it into storage of its own (so a thread
  /// that submits a log per request allocates nothing for it, and frees nothing another thread
  /// allocated), or another record. The caller sets every field before the next call.
  virtual void submit_reusing(store::CallLog& log) {
    submit(std::move(log));
    log = {};
  }

  /// One thread's own way in, for a thread that logs every request it serves. Used by one
  /// thread; must not outlive its sink.
  class Producer {
   public:
    virtual ~Producer() = default;
    /// Queues a record with `r`'s values (copied: its views need not outlive the call).
    virtual void publish(const CallRecord& r) = 0;
  };
  /// A producer for the calling thread. This one copies each record into a record of its own
  /// and hands that to submit_reusing().
  virtual std::unique_ptr<Producer> producer();
  /// Records dropped so far at the sink's bounds (a destination down or hanging), for /metrics.
  virtual std::uint64_t dropped() const { return 0; }
};

namespace detail {

/// Call-log records in arrival order, at most `max`: past it, a new record takes the oldest one's
/// place (dropped). Slots keep their records when emptied, and a record is copied into its slot,
/// whose strings keep the storage of the records it held before: a ring in steady use allocates
/// nothing. Not thread-safe.
class CallLogRing {
 public:
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  /// The i-th oldest record.
  store::CallLog& operator[](std::size_t i) { return slots_[(head_ + i) % slots_.size()]; }
  /// Copies `log` into the newest slot; true when the oldest record was dropped for it.
  bool push(const store::CallLog& log, std::size_t max);
  /// Forgets the `n` oldest records (their slots keep them for reuse).
  void pop_front(std::size_t n);
  /// Puts the records in one run, oldest first, for contiguous() (a ring that wrapped).
  void linearize();
  /// The records, oldest first, after linearize().
  std::span<const store::CallLog> contiguous() const { return {slots_.data() + head_, size_}; }
  /// Empties the ring, which held `used` records. Its slots stay for reuse; they are trimmed to
  /// twice `used` (at least `floor`) only after 16 such calls in a row used under a quarter of
  /// them, so a load that varies from flush to flush does not free and remake them each time.
  void clear(std::size_t used, std::size_t floor);

 private:
  std::vector<store::CallLog> slots_;
  std::size_t head_ = 0;  ///< the oldest record's slot
  std::size_t size_ = 0;
  int underused_ = 0;  ///< clear() calls in a row that used under a quarter of the slots
};

/// One thread's call-log records on their way to the flushing thread, without a lock on either
/// side: the producing thread writes each record into the next slot and publishes it (a release
/// store), and one consumer at a time takes published records, oldest first. Slots live in
/// chunks that go back to the producer once taken, so a lane in steady use allocates nothing.
///
/// A slot holds a record's numbers in 56 bytes (under a cache line), and its strings only where
/// they differ from the lane's record before (the user, key, model, instance and error of a
/// thread's requests mostly repeat): the producer compares them with copies of its own, and the
/// consumer keeps the last of each. A record then costs the producer one line that the consumer
/// read last. A shared queue under a lock made every request wait, at the unlock, for the stores of
/// a whole record (five strings, five lines or more) into a slot the flushing thread had read.
class CallLogLane {
 public:
  CallLogLane();
  ~CallLogLane();
  CallLogLane(const CallLogLane&) = delete;
  CallLogLane& operator=(const CallLogLane&) = delete;

  // The producing thread's:
  /// Writes `r` into the next slot and makes it visible to the consumer.
  void publish(const CallRecord& r);
  /// Says the producer is gone: nothing will be published any more.
  void retire() { retired_.store(true, std::memory_order_release); }
  /// Counts a record the producer dropped instead of publishing.
  void count_dropped() {
    dropped_.store(dropped_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }

  // Any thread's:
  /// Records published and not yet taken.
  std::size_t pending() const {
    return static_cast<std::size_t>(published_.load(std::memory_order_acquire) -
                                    taken_.load(std::memory_order_acquire));
  }
  bool retired() const { return retired_.load(std::memory_order_acquire); }
  std::uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

  // The consumer's (one thread at a time), with pending() > 0:
  /// The oldest record's time.
  store::TimePoint front_time();
  /// The oldest record not taken (valid until pop()).
  const store::CallLog& front();
  /// Takes the oldest record; its slot may be filled again.
  void pop();

 private:
  static constexpr std::size_t kChunk = 128;
  /// Chunks kept for reuse beyond those in use (about 28 KB each): enough for the records of
  /// 0.2 s at 40,000 requests per second, for a flush running late. With fewer, a lane made and
  /// freed chunks at every late flush.
  static constexpr std::size_t kSpares = 64;
  /// A record's strings, in CallLog's order: user, key, service, instance, error.
  static constexpr std::size_t kTexts = 5;
  using Texts = std::array<std::string, kTexts>;
  /// A record's numbers, written for every record.
  struct Numbers {
    store::TimePoint time{};
    std::int64_t duration_ms = 0;
    std::int64_t prompt_tokens = 0;
    std::int64_t completion_tokens = 0;
    std::int64_t ttft_ms = 0;
    double tokens_per_second = 0;
    std::int32_t status = 0;
    bool has_ttft = false;
    std::uint8_t changed = 0;  ///< bit i: the slot's texts[i] holds a new value
  };
  struct Chunk {
    std::array<Numbers, kChunk> numbers;
    std::array<Texts, kChunk> texts;    ///< written only where a string changed
    std::atomic<Chunk*> next{nullptr};  ///< set by the producer before it publishes into it
  };
  /// A chunk given back by the consumer, or a new one.
  Chunk* fresh_chunk();
  /// Makes the head slot's record the consumer's `current_`, once per record.
  void decode();

  // The producer's.
  Chunk* tail_;
  std::size_t tail_used_ = 0;  ///< slots of tail_ published
  std::uint64_t published_count_ = 0;
  Texts sent_;  ///< the strings of the last record published
  alignas(64) std::atomic<std::uint64_t> published_{0};
  std::atomic<std::uint64_t> dropped_{0};
  // The consumer's.
  alignas(64) Chunk* head_;
  std::size_t head_used_ = 0;  ///< slots of head_ taken
  std::uint64_t taken_count_ = 0;
  store::CallLog current_;  ///< the head record once decoded; its strings the last ones taken
  bool decoded_ = false;
  std::atomic<std::uint64_t> taken_{0};
  std::atomic<bool> retired_{false};
  // Chunks taken, for the producer to reuse (a lock once per chunk).
  alignas(64) std::mutex spare_mutex_;
  std::vector<Chunk*> spares_;
};

}  // namespace detail

/// The queue and flush thread shared by the sinks that write call logs somewhere slow (the store,
/// a remote server): `submit` is a lock and a push; a thread hands batches to `deliver` every
/// `flush_interval`, or early once `batch_size` wait. A batch that fails goes back in front, oldest
/// first, for the next flush; past `max_queue` the oldest records are dropped and counted, so a
/// dead destination never grows the gateway's memory without bound.
///
/// Priority (Linux). `deliver` runs on a thread at SCHED_IDLE: the batches are encoded and written
/// on CPU time that nothing else wants, and a request thread that wakes takes that CPU at once.
/// At normal priority a flush (a few milliseconds for a batch of thousands) held a CPU that the
/// request threads, the engine and the clients were waiting for, which cost throughput and tail
/// latency under load. The idle thread never takes the lock that `submit` takes (the flush
/// thread, at normal priority, moves records in and out of the queue), so a request never waits
/// for it. The flush thread delivers itself, at normal priority, when the idle thread falls
/// behind: when a flush takes `backlog` records or more (they piled up during the last delivery),
/// and when the idle thread has not begun a delivery within two flush intervals (a machine whose
/// every CPU is busy with other work). A delivery the idle thread has begun is its own to finish,
/// however slowly a busy machine lets it run; records queue meanwhile (up to `max_queue`), and the
/// next flush takes them at normal priority once `backlog` wait.
class BatchingCallLogSink : public CallLogSink {
 public:
  struct Options {
    std::chrono::milliseconds flush_interval{1000};
    std::size_t batch_size = 512;    ///< a flush happens early once this many wait
    std::size_t max_queue = 100000;  ///< beyond it the oldest are dropped
    bool idle_priority = true;    ///< deliver at SCHED_IDLE (see above); false: on the flush thread
    std::size_t backlog = 32768;  ///< a flush taking this many delivers at normal priority
  };
  BatchingCallLogSink(const BatchingCallLogSink&) = delete;
  BatchingCallLogSink& operator=(const BatchingCallLogSink&) = delete;

  void submit(store::CallLog log) final;
  /// Copies `log` into a queue slot that keeps the storage of the records it held (see
  /// CallLogRing); `log` stays as it was.
  void submit_reusing(store::CallLog& log) final;
  /// A lane of the calling thread's own (CallLogLane): no lock per record. A flush takes the
  /// lanes' records after the queue's, the lanes merged by time, and from there on they are
  /// queued records like any other (retried, bounded by `max_queue`). Between flushes a lane
  /// holds what its thread published since the last one, at most `max_queue`: while a flush is
  /// stuck (a destination that hangs rather than fails), the newest are dropped and counted.
  std::unique_ptr<Producer> producer() final;
  /// Delivers what is queued when called (blocking; records submitted meanwhile wait for the
  /// next flush); the error of the first batch that failed (kept queued unless `deliver` said it
  /// can never succeed).
  core::Result<void> flush();
  /// Stops the thread, then flushes once more. Idempotent. Derived classes call it in their
  /// destructor, before their own members go.
  void stop();

  std::uint64_t written() const;
  std::uint64_t dropped() const override;
  std::size_t queued() const;

 protected:
  explicit BatchingCallLogSink(Options options);
  ~BatchingCallLogSink() override;
  /// Starts the thread; derived constructors call it last.
  void start();
  /// Writes one batch. On failure, set `retry` to false for a batch that would fail forever
  /// (it is then dropped and counted instead of queued again).
  virtual core::Result<void> deliver(std::span<const store::CallLog> batch, bool& retry) = 0;
  /// Where the logs go, for log lines ("the store", "http://...").
  virtual std::string destination() const = 0;

 private:
  void run();
  /// Puts the records of `taken_` not delivered back in front of the queue; `mutex_` held.
  void requeue();
  /// Queues a copy of `log`.
  void enqueue(const store::CallLog& log);
  class LaneProducer;
  /// Wakes the flush thread: a lane holds `batch_size` records.
  void lane_filled();
  /// Records waiting in the lanes; `mutex_` held.
  std::size_t lanes_pending() const;
  /// Moves the records counted in `draining_` from their lanes to `taken_`, merged by time;
  /// the number dropped at the bound.
  std::uint64_t take_from_lanes();

  /// What delivering the records taken from the queue came to.
  struct Delivered {
    std::uint64_t written = 0;
    std::uint64_t dropped = 0;
    std::size_t delivered = 0;  ///< records of `taken_` delivered or dropped, oldest first
    core::Result<void> result;  ///< the first failure; `taken_` then holds the rest
  };
  /// Hands `taken_` to deliver() in batches, oldest first, until one fails. No lock of the queue.
  Delivered deliver_all();
  /// Runs `job` on the idle-priority thread and waits for it; runs it here when there is no such
  /// thread, or when the thread has not begun it within two flush intervals.
  void at_idle_priority(const std::function<void()>& job);
  /// The idle-priority thread's loop.
  void run_idle();
  /// Ends the idle-priority thread (a job it has begun or was handed first); idempotent.
  void stop_idle_thread();

  Options options_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  detail::CallLogRing queue_;  ///< guarded by mutex_
  /// The producers' lanes (guarded by mutex_); a retired one goes once it is empty.
  std::vector<std::shared_ptr<detail::CallLogLane>> lanes_;
  bool lane_filled_ = false;  ///< guarded by mutex_
  std::mutex flush_mutex_;
  /// What a flush took from the queue (guarded by flush_mutex_); emptied after delivery, it is
  /// the next flush's fresh queue, whose slots keep the delivered records' storage.
  detail::CallLogRing taken_;
  /// The lanes a flush takes from, each with the number of records it had when the flush began
  /// (guarded by flush_mutex_).
  std::vector<std::pair<std::shared_ptr<detail::CallLogLane>, std::size_t>> draining_;
  std::uint64_t written_ = 0;
  std::uint64_t dropped_ = 0;
  bool stopping_ = false;
  std::thread thread_;

  // The idle-priority thread and the one job it may hold (guarded by idle_mutex_).
  enum class IdleJob { none, posted, running, done };
  std::mutex idle_mutex_;
  std::condition_variable idle_cv_;
  const std::function<void()>* idle_job_ = nullptr;
  IdleJob idle_state_ = IdleJob::none;
  bool idle_running_ = false;  ///< set before the thread starts, never cleared
  bool idle_stopping_ = false;
  std::thread idle_thread_;
};

/// Call logs into the store, one transaction per batch that also sets each used API key's
/// last_used_at (server::append_call_logs).
class CallLogWriter final : public BatchingCallLogSink {
 public:
  /// `store` must outlive the writer. Starts the thread.
  CallLogWriter(store::Store& store, Options options);
  ~CallLogWriter() override;  ///< stop()

 private:
  core::Result<void> deliver(std::span<const store::CallLog> batch, bool& retry) override;
  std::string destination() const override { return "the store"; }

  store::Store& store_;
};

}  // namespace openstation::gateway
