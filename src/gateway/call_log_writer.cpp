#include "gateway/call_log_writer.hpp"

#include "core/thread_name.hpp"
#include "server/gateway_feed.hpp"

#include <spdlog/spdlog.h>

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <utility>
#include <vector>

namespace openstation::gateway {

namespace {

/// Moves the calling thread to SCHED_IDLE; false where the system refuses.
bool lower_to_idle_priority() {
#ifdef SCHED_IDLE
  sched_param param{};
  param.sched_priority = 0;
  return pthread_setschedparam(pthread_self(), SCHED_IDLE, &param) == 0;
#else
  return false;
#endif
}

}  // namespace

void assign(store::CallLog& log, const CallRecord& r) {
  // The binding lists all of CallLog's fields, so a new one cannot be missed here.
  auto& [id, time, user_id, key_id, service, instance_id, status, duration_ms, prompt_tokens,
         completion_tokens, ttft_ms, tokens_per_second, error] = log;
  id = 0;
  time = r.time;
  user_id.assign(r.user_id);
  key_id.assign(r.key_id);
  service.assign(r.service);
  instance_id.assign(r.instance_id);
  status = r.status;
  duration_ms = r.duration_ms;
  prompt_tokens = r.prompt_tokens;
  completion_tokens = r.completion_tokens;
  ttft_ms = r.ttft_ms;
  tokens_per_second = r.tokens_per_second;
  error.assign(r.error);
}

CallRecord view_of(const store::CallLog& log) {
  return {log.time,        log.user_id,           log.key_id,
          log.service,     log.instance_id,       log.status,
          log.duration_ms, log.prompt_tokens,     log.completion_tokens,
          log.ttft_ms,     log.tokens_per_second, log.error};
}

namespace detail {

bool CallLogRing::push(const store::CallLog& log, std::size_t max) {
  if (size_ < slots_.size()) {
    slots_[(head_ + size_) % slots_.size()] = log;
    ++size_;
    return false;
  }
  if (size_ < max || slots_.empty()) {
    linearize();  // new slots go after the newest record
    slots_.push_back(log);
    ++size_;
    return false;
  }
  // Full: the newest record takes the oldest one's slot.
  slots_[head_] = log;
  head_ = (head_ + 1) % slots_.size();
  return true;
}

void CallLogRing::pop_front(std::size_t n) {
  n = std::min(n, size_);
  if (!slots_.empty()) head_ = (head_ + n) % slots_.size();
  size_ -= n;
}

void CallLogRing::linearize() {
  if (head_ == 0) return;
  std::rotate(slots_.begin(), slots_.begin() + static_cast<std::ptrdiff_t>(head_), slots_.end());
  head_ = 0;
}

void CallLogRing::clear(std::size_t used, std::size_t floor) {
  head_ = 0;
  size_ = 0;
  if (used * 4 >= slots_.size()) {
    underused_ = 0;
    return;
  }
  if (++underused_ < 16) return;
  underused_ = 0;
  const auto keep = std::max(2 * used, floor);
  if (slots_.size() > keep) {
    slots_.resize(keep);
    slots_.shrink_to_fit();
  }
}

CallLogLane::CallLogLane() : tail_(new Chunk), head_(tail_) {}

CallLogLane::~CallLogLane() {
  for (Chunk* c = head_; c != nullptr;) delete std::exchange(c, c->next.load());
  for (Chunk* c : spares_) delete c;
}

CallLogLane::Chunk* CallLogLane::fresh_chunk() {
  {
    std::lock_guard lock(spare_mutex_);
    if (!spares_.empty()) {
      Chunk* c = spares_.back();
      spares_.pop_back();
      return c;
    }
  }
  return new Chunk;
}

void CallLogLane::publish(const CallRecord& r) {
  if (tail_used_ == kChunk) {
    // Linked before anything is published into it: the consumer, seeing a record past this
    // chunk's end, finds the link.
    Chunk* c = fresh_chunk();
    tail_->next.store(c, std::memory_order_release);
    tail_ = c;
    tail_used_ = 0;
  }
  auto& n = tail_->numbers[tail_used_];
  n.time = r.time;
  n.duration_ms = r.duration_ms;
  n.prompt_tokens = r.prompt_tokens;
  n.completion_tokens = r.completion_tokens;
  n.has_ttft = r.ttft_ms.has_value();
  n.ttft_ms = r.ttft_ms.value_or(0);
  n.tokens_per_second = r.tokens_per_second;
  n.status = r.status;
  const std::array<std::string_view, kTexts> texts{r.user_id, r.key_id, r.service, r.instance_id,
                                                   r.error};
  std::uint8_t changed = 0;
  for (std::size_t i = 0; i < kTexts; ++i) {
    if (texts[i] == sent_[i]) continue;
    sent_[i].assign(texts[i]);
    tail_->texts[tail_used_][i].assign(texts[i]);
    changed |= static_cast<std::uint8_t>(1U << i);
  }
  n.changed = changed;
  ++tail_used_;
  published_.store(++published_count_, std::memory_order_release);
}

store::TimePoint CallLogLane::front_time() {
  if (head_used_ == kChunk) {
    // Every slot taken, and a record waits past them: the producer has moved to the next chunk
    // and never comes back to this one, which goes to the spares.
    Chunk* done = std::exchange(head_, head_->next.load(std::memory_order_acquire));
    head_used_ = 0;
    done->next.store(nullptr, std::memory_order_relaxed);
    std::unique_lock lock(spare_mutex_);
    if (spares_.size() < kSpares) {
      spares_.push_back(done);
    } else {
      lock.unlock();
      delete done;
    }
  }
  return head_->numbers[head_used_].time;
}

void CallLogLane::decode() {
  if (decoded_) return;
  current_.time = front_time();
  const auto& n = head_->numbers[head_used_];
  current_.status = n.status;
  current_.duration_ms = n.duration_ms;
  current_.prompt_tokens = n.prompt_tokens;
  current_.completion_tokens = n.completion_tokens;
  current_.ttft_ms = n.has_ttft ? std::optional<std::int64_t>(n.ttft_ms) : std::nullopt;
  current_.tokens_per_second = n.tokens_per_second;
  if (n.changed != 0) {
    const auto& texts = head_->texts[head_used_];
    std::array<std::string*, kTexts> into{&current_.user_id, &current_.key_id, &current_.service,
                                          &current_.instance_id, &current_.error};
    for (std::size_t i = 0; i < kTexts; ++i) {
      if ((n.changed & (1U << i)) != 0) *into[i] = texts[i];
    }
  }
  decoded_ = true;
}

const store::CallLog& CallLogLane::front() {
  decode();
  return current_;
}

void CallLogLane::pop() {
  decode();  // the strings that changed carry over to the records after it
  decoded_ = false;
  ++head_used_;
  // Only counted here: the slot is filled again once its whole chunk has come back through the
  // spares (under their lock), after this thread is done reading it.
  taken_.store(++taken_count_, std::memory_order_release);
}

}  // namespace detail

namespace {

/// Copies each record into one of its own and hands that to the sink's submit_reusing().
class CopyingProducer final : public CallLogSink::Producer {
 public:
  explicit CopyingProducer(CallLogSink& sink) : sink_(sink) {}
  void publish(const CallRecord& r) override {
    assign(log_, r);
    sink_.submit_reusing(log_);
  }

 private:
  CallLogSink& sink_;
  store::CallLog log_;
};

}  // namespace

std::unique_ptr<CallLogSink::Producer> CallLogSink::producer() {
  return std::make_unique<CopyingProducer>(*this);
}

/// Publishes into a lane and wakes the flush thread once a batch waits there.
class BatchingCallLogSink::LaneProducer final : public CallLogSink::Producer {
 public:
  LaneProducer(BatchingCallLogSink& sink, std::shared_ptr<detail::CallLogLane> lane)
      : sink_(sink),
        lane_(std::move(lane)),
        until_check_(std::max<std::size_t>(sink.options_.batch_size, 1)) {}
  ~LaneProducer() override { lane_->retire(); }
  LaneProducer(const LaneProducer&) = delete;
  LaneProducer& operator=(const LaneProducer&) = delete;

  void publish(const CallRecord& r) override {
    const std::size_t pending = lane_->pending() + 1;  // with this record
    if (pending > sink_.options_.max_queue) {
      lane_->count_dropped();  // a flush is stuck: the lane keeps what it has
      return;
    }
    lane_->publish(r);
    // The flush thread is woken no more often than once per batch_size records.
    if (--until_check_ > 0) return;
    const std::size_t batch = std::max<std::size_t>(sink_.options_.batch_size, 1);
    if (pending >= batch) {
      sink_.lane_filled();
      until_check_ = batch;
    } else {
      until_check_ = batch - pending;
    }
  }

 private:
  BatchingCallLogSink& sink_;
  std::shared_ptr<detail::CallLogLane> lane_;
  std::size_t until_check_;
};

std::unique_ptr<CallLogSink::Producer> BatchingCallLogSink::producer() {
  auto lane = std::make_shared<detail::CallLogLane>();
  {
    std::lock_guard lock(mutex_);
    lanes_.push_back(lane);
  }
  return std::make_unique<LaneProducer>(*this, std::move(lane));
}

void BatchingCallLogSink::lane_filled() {
  {
    std::lock_guard lock(mutex_);
    lane_filled_ = true;
  }
  cv_.notify_one();
}

std::size_t BatchingCallLogSink::lanes_pending() const {
  std::size_t n = 0;
  for (const auto& lane : lanes_) n += lane->pending();
  return n;
}

std::uint64_t BatchingCallLogSink::take_from_lanes() {
  std::uint64_t dropped = 0;
  for (;;) {
    // The lane whose oldest record is the oldest (a lane's records are in its thread's order).
    std::pair<std::shared_ptr<detail::CallLogLane>, std::size_t>* from = nullptr;
    for (auto& d : draining_) {
      if (d.second == 0) continue;
      if (from == nullptr || d.first->front_time() < from->first->front_time()) from = &d;
    }
    if (from == nullptr) break;
    if (taken_.push(from->first->front(), options_.max_queue)) ++dropped;
    from->first->pop();
    --from->second;
  }
  draining_.clear();
  return dropped;
}

BatchingCallLogSink::BatchingCallLogSink(Options options) : options_(options) {}

BatchingCallLogSink::~BatchingCallLogSink() {
  // Derived destructors stop first (deliver() is theirs); this only catches a forgotten stop.
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  stop_idle_thread();
}

void BatchingCallLogSink::stop_idle_thread() {
  {
    std::lock_guard lock(idle_mutex_);
    idle_stopping_ = true;
  }
  idle_cv_.notify_all();
  if (idle_thread_.joinable()) idle_thread_.join();
}

void BatchingCallLogSink::start() {
  if (options_.idle_priority) {
    idle_running_ = true;  // before any thread can flush
    idle_thread_ = core::named_thread("call-log-idle", [this] { run_idle(); });
  }
  thread_ = core::named_thread("call-log", [this] { run(); });
}

void BatchingCallLogSink::run_idle() {
  if (!lower_to_idle_priority()) {
    spdlog::debug("gateway: call logs are written at normal priority (SCHED_IDLE refused)");
  }
  std::unique_lock lock(idle_mutex_);
  for (;;) {
    idle_cv_.wait(lock, [&] { return idle_stopping_ || idle_state_ == IdleJob::posted; });
    if (idle_state_ != IdleJob::posted) return;  // stopping, nothing posted
    idle_state_ = IdleJob::running;
    const auto* job = idle_job_;
    lock.unlock();
    (*job)();
    lock.lock();
    idle_state_ = IdleJob::done;
    idle_cv_.notify_all();
  }
}

void BatchingCallLogSink::at_idle_priority(const std::function<void()>& job) {
  std::unique_lock lock(idle_mutex_);
  if (!idle_running_ || idle_stopping_) {
    lock.unlock();
    job();
    return;
  }
  idle_job_ = &job;
  idle_state_ = IdleJob::posted;
  idle_cv_.notify_all();
  if (!idle_cv_.wait_for(lock, 2 * options_.flush_interval,
                         [&] { return idle_state_ != IdleJob::posted; })) {
    // Not begun: the idle thread gets no CPU (every CPU is busy with other work). Done here.
    idle_job_ = nullptr;
    idle_state_ = IdleJob::none;
    lock.unlock();
    job();
    return;
  }
  idle_cv_.wait(lock, [&] { return idle_state_ == IdleJob::done; });
  idle_job_ = nullptr;
  idle_state_ = IdleJob::none;
}

void BatchingCallLogSink::submit(store::CallLog log) {
  enqueue(log);
}

void BatchingCallLogSink::submit_reusing(store::CallLog& log) {
  enqueue(log);
}

void BatchingCallLogSink::enqueue(const store::CallLog& log) {
  bool wake = false;
  {
    std::lock_guard lock(mutex_);
    if (queue_.push(log, options_.max_queue)) ++dropped_;
    wake = queue_.size() >= options_.batch_size;
  }
  if (wake) cv_.notify_one();
}

core::Result<void> BatchingCallLogSink::flush() {
  std::lock_guard flushing(flush_mutex_);
  // Every step under `mutex_` is O(1) per lane on the way that succeeds, and only threads at
  // normal priority take it: a thread that submits takes that lock for every record (a request
  // thread, once a batch waits in its lane), and a writer preempted while it held it would keep
  // them waiting.
  // What is queued now is taken once: records that arrive while it is written wait for the next
  // flush (a full batch or the interval). Taking them as they come would turn a busy gateway's
  // writer into a loop of small transactions, each with its commit's fixed cost.
  // The queue and the emptied ring of the last flush trade places: submitting threads go on
  // copying into slots that held delivered records (whose strings' storage is reused), and this
  // thread owns what it took, to which the lanes' records are added.
  std::size_t from_lanes = 0;
  {
    std::lock_guard lock(mutex_);
    std::swap(taken_, queue_);
    lane_filled_ = false;
    std::erase_if(lanes_, [&](const auto& lane) {
      if (!lane->retired() || lane->pending() != 0) return false;
      dropped_ += lane->dropped();
      return true;
    });
    draining_.clear();
    for (const auto& lane : lanes_) {
      if (const auto n = lane->pending(); n > 0) {
        draining_.emplace_back(lane, n);
        from_lanes += n;
      }
    }
  }
  if (taken_.empty() && from_lanes == 0) return {};
  const std::size_t took = taken_.size() + from_lanes;
  Delivered d;
  if (took >= options_.backlog) {
    d = deliver_all();  // the idle thread fell behind: at this thread's priority
  } else {
    at_idle_priority([&] { d = deliver_all(); });
  }
  std::lock_guard lock(mutex_);
  written_ += d.written;
  dropped_ += d.dropped;
  if (!d.result) {
    taken_.pop_front(d.delivered);
    requeue();
  }
  // A steady load reuses every slot; after a burst, the memory goes back (CallLogRing::clear).
  taken_.clear(took, options_.batch_size);
  return d.result;
}

BatchingCallLogSink::Delivered BatchingCallLogSink::deliver_all() {
  Delivered d;
  d.dropped = take_from_lanes();
  taken_.linearize();
  const auto all = taken_.contiguous();
  while (d.delivered < all.size()) {
    const auto batch =
        all.subspan(d.delivered, std::min(all.size() - d.delivered, options_.batch_size));
    bool retry = true;
    auto r = deliver(batch, retry);
    if (!r) {
      if (!retry) {
        d.dropped += batch.size();
        d.delivered += batch.size();
      }
      d.result = r.error();
      return d;
    }
    d.written += batch.size();
    d.delivered += batch.size();
  }
  return d;
}

void BatchingCallLogSink::requeue() {
  // The records not delivered go back in front of the ones that arrived meanwhile, oldest
  // first; past the bound the oldest of all are dropped.
  for (std::size_t i = 0; i < queue_.size(); ++i) {
    if (taken_.push(queue_[i], options_.max_queue)) ++dropped_;
  }
  std::swap(taken_, queue_);
}

void BatchingCallLogSink::run() {
  std::unique_lock lock(mutex_);
  bool failed = false;
  while (!stopping_) {
    if (failed) {
      // A full batch may still be waiting: retry after the interval, not at once in a loop.
      cv_.wait_for(lock, options_.flush_interval, [&] { return stopping_; });
    } else {
      cv_.wait_for(lock, options_.flush_interval, [&] {
        return stopping_ || lane_filled_ || queue_.size() >= options_.batch_size;
      });
    }
    if ((queue_.empty() && lanes_pending() == 0) || stopping_) continue;
    lock.unlock();
    auto r = flush();
    failed = !r;
    if (failed) {
      spdlog::warn("gateway: writing call logs to {} failed, will retry: {}", destination(),
                   r.error().message);
    }
    lock.lock();
  }
}

void BatchingCallLogSink::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  // The last flush at the caller's priority: the process is stopping.
  stop_idle_thread();
  if (auto r = flush(); !r) {
    spdlog::warn("gateway: {} call logs could not be written to {} at stop: {}", queued(),
                 destination(), r.error().message);
  }
}

std::uint64_t BatchingCallLogSink::written() const {
  std::lock_guard lock(mutex_);
  return written_;
}

std::uint64_t BatchingCallLogSink::dropped() const {
  std::lock_guard lock(mutex_);
  std::uint64_t n = dropped_;
  for (const auto& lane : lanes_) n += lane->dropped();
  return n;
}

std::size_t BatchingCallLogSink::queued() const {
  std::lock_guard lock(mutex_);
  return queue_.size() + lanes_pending();
}

CallLogWriter::CallLogWriter(store::Store& store, Options options)
    : BatchingCallLogSink(options), store_(store) {
  start();
}

CallLogWriter::~CallLogWriter() {
  stop();
}

core::Result<void> CallLogWriter::deliver(std::span<const store::CallLog> batch, bool& /*retry*/) {
  return server::append_call_logs(store_, batch);
}

}  // namespace openstation::gateway
