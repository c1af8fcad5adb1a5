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
#include <deque>
#include <map>
#include <mutex>
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

/// The queue and flush thread shared by the sinks that write call logs somewhere slow (the store,
/// a remote server): `submit` is a lock and a push; a thread hands batches to `deliver` every
/// `flush_interval`, or early once `batch_size` wait. A batch that fails goes back in front, oldest
/// first, for the next flush; past `max_queue` the oldest records are dropped and counted, so a
/// dead destination never grows the gateway's memory without bound.
class BatchingCallLogSink : public CallLogSink {
 public:
  struct Options {
    std::chrono::milliseconds flush_interval{1000};
    std::size_t batch_size = 512;    ///< a flush happens early once this many wait
    std::size_t max_queue = 100000;  ///< beyond it the oldest are dropped
  };
  BatchingCallLogSink(const BatchingCallLogSink&) = delete;
  BatchingCallLogSink& operator=(const BatchingCallLogSink&) = delete;

  void submit(store::CallLog log) final;
  /// Delivered records are kept (up to one batch) and handed back here.
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
  virtual core::Result<void> deliver(std::vector<store::CallLog>& batch, bool& retry) = 0;
  /// Where the logs go, for log lines ("the store", "http://...").
  virtual std::string destination() const = 0;

 private:
  void run();
  /// Puts `older` (records taken but not delivered) back in front of the queue; `mutex_` held.
  void requeue(std::deque<store::CallLog>& older);
  /// Queues `log` (moved from); with `reuse`, refills it from the spares.
  void enqueue(store::CallLog& log, bool reuse);

  Options options_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<store::CallLog> queue_;
  std::vector<store::CallLog> spare_;  ///< delivered records, for submit_reusing
  std::mutex flush_mutex_;
  std::uint64_t written_ = 0;
  std::uint64_t dropped_ = 0;
  bool stopping_ = false;
  std::thread thread_;
};

/// Call logs into the store, one transaction per batch, setting each used API key's last_used_at.
class CallLogWriter final : public BatchingCallLogSink {
 public:
  /// `store` must outlive the writer. Starts the thread.
  CallLogWriter(store::Store& store, Options options);
  ~CallLogWriter() override;  ///< stop()

 private:
  core::Result<void> deliver(std::vector<store::CallLog>& batch, bool& retry) override;
  std::string destination() const override { return "the store"; }
  void touch_keys(const std::map<std::string, store::TimePoint>& used);

  store::Store& store_;
};

}  // namespace openstation::gateway
