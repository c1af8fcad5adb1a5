#pragma once
/// Private: a deadline for the I/O of one connection that costs a clock read per operation, not
/// a timer operation. set() moves the due time; one timer waits on it and, when it fires early
/// (the due time moved later in the meantime), waits again for the rest. So a connection busy
/// with many short reads and writes re-arms its timer about once per timeout period instead of
/// twice per operation (Beast's tcp_stream arms and cancels a timer around every operation).
/// When the due time passes, `on_expire` runs (it closes the socket, which ends the pending
/// operation) and expired() turns true until the next set(). Everything runs on the
/// connection's executor (one thread, or a strand).

#include "http/detail/beast.hpp"

#include <chrono>
#include <functional>
#include <memory>

namespace openstation::http::detail {

class Deadline {
 public:
  using Clock = std::chrono::steady_clock;

  Deadline(const asio::any_io_executor& ex, std::function<void()> on_expire)
      : state_(std::make_shared<State>(ex, std::move(on_expire))) {}
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;
  ~Deadline() {
    state_->on_expire = nullptr;
    state_->due = Clock::time_point::max();
    state_->timer.cancel();
  }

  /// The operations from now on must finish within `d`; zero or less: no deadline.
  void set(std::chrono::milliseconds d) {
    auto& s = *state_;
    s.expired = false;
    if (d.count() <= 0) {
      s.due = Clock::time_point::max();  // a waiting timer finds it cleared and stops
      return;
    }
    s.due = Clock::now() + d;
    if (!s.waiting || s.armed_for > s.due) arm(state_);
  }
  /// No deadline (an idle wait that may last forever, or the end of the operations); expired()
  /// keeps its value, so an operation that failed because of the deadline can still tell.
  void clear() { state_->due = Clock::time_point::max(); }
  /// The last deadline passed (and on_expire ran) since the last set().
  bool expired() const { return state_->expired; }

 private:
  struct State {
    State(const asio::any_io_executor& ex, std::function<void()> f)
        : timer(ex), on_expire(std::move(f)) {}
    asio::steady_timer timer;
    std::function<void()> on_expire;
    Clock::time_point due = Clock::time_point::max();
    Clock::time_point armed_for{};
    bool waiting = false;
    bool expired = false;
    unsigned generation = 0;
  };

  static void arm(const std::shared_ptr<State>& sp) {
    auto& s = *sp;
    s.armed_for = s.due;
    s.waiting = true;
    const unsigned gen = ++s.generation;
    s.timer.expires_at(s.due);
    s.timer.async_wait([sp, gen](const beast::error_code&) {
      auto& st = *sp;
      if (gen != st.generation) return;  // superseded by a later arm()
      st.waiting = false;
      if (!st.on_expire || st.due == Clock::time_point::max()) return;
      if (Clock::now() < st.due) {
        arm(sp);  // the due time moved: wait for the rest
        return;
      }
      st.expired = true;
      st.due = Clock::time_point::max();
      st.on_expire();
    });
  }

  std::shared_ptr<State> state_;
};

}  // namespace openstation::http::detail
