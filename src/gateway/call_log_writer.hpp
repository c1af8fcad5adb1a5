#pragma once
/// Writes call logs off the request path: requests hand their record to `submit` (a lock and a
/// push; `submit_reusing` hands a delivered record back for the next one), a background thread
/// appends them to the store in batches (one transaction each) and sets each used API key's
/// last_used_at. When the store is down the batch is retried at the next flush; past `max_queue`
/// the oldest records are dropped and counted, so a dead database never grows the gateway's memory
/// without bound.

#include "core/error.hpp"
#include "store/store.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace openstation::gateway {

/// Where finished requests go. Thread-safe, never blocks on I/O.
class CallLogSink {
 public:
  virtual ~CallLogSink() = default;
  virtual void submit(store::CallLog log) = 0;
  /// Queues `log` and leaves in its place a record to overwrite next time: one already
  /// delivered, whose strings keep their storage, where the sink recycles them (so a thread
  /// that submits a log per request allocates nothing for it, and frees nothing another thread
  /// allocated); an empty record otherwise. The caller sets every field before the next call.
  virtual void submit_reusing(store::CallLog& log) {
    submit(std::move(log));
    log = {};
  }
};

namespace detail {

/// Call-log records in arrival order, at most `max`: past it, a new record takes the oldest one's
/// place (dropped). Slots keep their records when emptied, and a record comes in by swapping with
/// its slot, so the submitter gets back what the slot held before: a record already delivered,
/// whose strings keep their storage (or an empty record in a new slot). Not thread-safe.
class CallLogRing {
 public:
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  /// The i-th oldest record.
  store::CallLog& operator[](std::size_t i) { return slots_[(head_ + i) % slots_.size()]; }
  /// Swaps `log` into the newest slot; true when the oldest record was dropped for it.
  bool push_swap(store::CallLog& log, std::size_t max);
  /// Forgets the `n` oldest records (their slots keep them for reuse).
  void pop_front(std::size_t n);
  /// Puts the records in one run, oldest first, for contiguous() (a ring that wrapped).
  void linearize();
  /// The records, oldest first, after linearize().
  std::span<const store::CallLog> contiguous() const { return {slots_.data() + head_, size_}; }
  /// Empties the ring; keeps at most `keep` slots (and their records) for reuse.
  void clear(std::size_t keep);
  std::size_t slots() const { return slots_.size(); }

 private:
  std::vector<store::CallLog> slots_;
  std::size_t head_ = 0;  ///< the oldest record's slot
  std::size_t size_ = 0;
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
  /// Hands back the records of a delivery before last (see CallLogRing): the queue is two rings
  /// that trade places at each flush.
  void submit_reusing(store::CallLog& log) final;
  /// Delivers what is queued when called (blocking; records submitted meanwhile wait for the
  /// next flush); the error of the first batch that failed (kept queued unless `deliver` said it
  /// can never succeed).
  core::Result<void> flush();
  /// Stops the thread, then flushes once more. Idempotent. Derived classes call it in their
  /// destructor, before their own members go.
  void stop();

  std::uint64_t written() const;
  std::uint64_t dropped() const;
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
  /// Queues `log`; it gets back what its slot held (see CallLogRing).
  void enqueue(store::CallLog& log);

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
  std::mutex flush_mutex_;
  /// What a flush took from the queue (guarded by flush_mutex_); emptied after delivery, it is
  /// the next flush's fresh queue, whose slots hand delivered records back to submit_reusing.
  detail::CallLogRing taken_;
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

/// Call logs into the store, one transaction per batch, setting each used API key's last_used_at.
class CallLogWriter final : public BatchingCallLogSink {
 public:
  /// `store` must outlive the writer. Starts the thread.
  CallLogWriter(store::Store& store, Options options);
  ~CallLogWriter() override;  ///< stop()

 private:
  core::Result<void> deliver(std::span<const store::CallLog> batch, bool& retry) override;
  std::string destination() const override { return "the store"; }
  void touch_keys(const std::map<std::string, store::TimePoint>& used);

  store::Store& store_;
};

}  // namespace openstation::gateway
