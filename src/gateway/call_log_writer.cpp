#include "gateway/call_log_writer.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <vector>

namespace openstation::gateway {

CallLogWriter::CallLogWriter(store::Store& store, Options options)
    : store_(store), options_(options), thread_([this] { run(); }) {}

CallLogWriter::~CallLogWriter() {
  stop();
}

void CallLogWriter::submit(store::CallLog log) {
  bool wake = false;
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(log));
    while (queue_.size() > options_.max_queue) {
      queue_.pop_front();
      ++dropped_;
    }
    wake = queue_.size() >= options_.batch_size;
  }
  if (wake) cv_.notify_one();
}

bool CallLogWriter::flush() {
  std::lock_guard flushing(flush_mutex_);
  for (;;) {
    std::vector<store::CallLog> batch;
    {
      std::lock_guard lock(mutex_);
      if (queue_.empty()) return true;
      const auto n = std::min(queue_.size(), options_.batch_size);
      batch.assign(std::make_move_iterator(queue_.begin()),
                   std::make_move_iterator(queue_.begin() + static_cast<std::ptrdiff_t>(n)));
      queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n));
    }
    const auto n = batch.size();
    // The newest use of each key in the batch, for its last_used_at.
    std::map<std::string, store::TimePoint> used;
    for (const auto& log : batch) {
      if (log.key_id.empty()) continue;
      auto& t = used[log.key_id];
      t = std::max(t, log.time);
    }
    auto r = store_.call_logs().append_all(batch);
    if (r) touch_keys(used);
    std::lock_guard lock(mutex_);
    if (!r) {
      spdlog::warn("gateway: writing {} call logs failed, will retry: {}", n, r.error().message);
      // Put them back in front, oldest first, within the bound.
      for (auto it = batch.rbegin(); it != batch.rend(); ++it) {
        if (queue_.size() >= options_.max_queue) {
          ++dropped_;
          continue;
        }
        queue_.push_front(std::move(*it));
      }
      return false;
    }
    written_ += n;
  }
}

void CallLogWriter::touch_keys(const std::map<std::string, store::TimePoint>& used) {
  for (const auto& [id, time] : used) {
    auto key = store_.api_keys().get(id);
    if (!key || (key->last_used_at && *key->last_used_at >= time)) continue;  // gone, or newer
    key->last_used_at = time;
    if (auto u = store_.api_keys().update(*key); !u) {
      spdlog::warn("gateway: recording the last use of key {} failed: {}", id, u.error().message);
    }
  }
}

void CallLogWriter::run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    cv_.wait_for(lock, options_.flush_interval,
                 [&] { return stopping_ || queue_.size() >= options_.batch_size; });
    if (queue_.empty()) continue;
    lock.unlock();
    flush();
    lock.lock();
  }
}

void CallLogWriter::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  flush();
}

std::uint64_t CallLogWriter::written() const {
  std::lock_guard lock(mutex_);
  return written_;
}

std::uint64_t CallLogWriter::dropped() const {
  std::lock_guard lock(mutex_);
  return dropped_;
}

}  // namespace openstation::gateway
