#pragma once
/// Writes call logs off the request path: requests hand their record to `submit` (a lock and a
/// push), a background thread appends them to the store in batches (one transaction each) and
/// sets each used API key's last_used_at. When
/// the store is down the batch is retried at the next flush; past `max_queue` the oldest records
/// are dropped and counted, so a dead database never grows the gateway's memory without bound.

#include "store/store.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>

namespace openstation::gateway {

/// Where finished requests go. Thread-safe, never blocks on I/O.
class CallLogSink {
 public:
  virtual ~CallLogSink() = default;
  virtual void submit(store::CallLog log) = 0;
};

class CallLogWriter final : public CallLogSink {
 public:
  struct Options {
    std::chrono::milliseconds flush_interval{1000};
    std::size_t batch_size = 512;    ///< a flush happens early once this many wait
    std::size_t max_queue = 100000;  ///< beyond it the oldest are dropped
  };
  /// `store` must outlive the writer. Starts the thread.
  CallLogWriter(store::Store& store, Options options);
  ~CallLogWriter() override;  ///< stop()
  CallLogWriter(const CallLogWriter&) = delete;
  CallLogWriter& operator=(const CallLogWriter&) = delete;

  void submit(store::CallLog log) override;
  /// Writes everything queued now (blocking); false when the store refused.
  bool flush();
  /// Flushes and stops the thread. Idempotent.
  void stop();

  std::uint64_t written() const;
  std::uint64_t dropped() const;

 private:
  void run();
  void touch_keys(const std::map<std::string, store::TimePoint>& used);

  store::Store& store_;
  Options options_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<store::CallLog> queue_;
  std::mutex flush_mutex_;
  std::uint64_t written_ = 0;
  std::uint64_t dropped_ = 0;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace openstation::gateway
