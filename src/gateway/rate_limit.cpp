#include "gateway/rate_limit.hpp"

#include <vector>

namespace openstation::gateway {

RateLimiter::RateLimiter(const core::Clock& clock, Limits limits)
    : clock_(clock), limits_(limits) {}

std::int64_t RateLimiter::minute_now(std::chrono::seconds& into_minute) const {
  const auto s =
      std::chrono::duration_cast<std::chrono::seconds>(clock_.steady_now().time_since_epoch())
          .count();
  into_minute = std::chrono::seconds(s % 60);
  return s / 60;
}

std::optional<RateLimiter::Refusal> RateLimiter::admit(std::string_view key_id) {
  if (!enabled()) return std::nullopt;
  std::chrono::seconds into{0};
  const auto minute = minute_now(into);
  std::lock_guard lock(mutex_);
  if (windows_.size() > 100000) {  // forget windows from earlier minutes
    std::erase_if(windows_, [&](const auto& kv) { return kv.second.minute != minute; });
  }
  auto& w = windows_[std::string(key_id)];
  if (w.minute != minute) w = Window{minute, 0, 0};
  const Refusal wait{false, std::chrono::seconds(60) - into};
  if (limits_.tokens_per_minute > 0 && w.tokens >= limits_.tokens_per_minute)
    return Refusal{true, wait.retry_after};
  if (limits_.requests_per_minute > 0 && w.requests >= limits_.requests_per_minute) return wait;
  ++w.requests;
  return std::nullopt;
}

void RateLimiter::add_tokens(std::string_view key_id, std::int64_t tokens) {
  if (limits_.tokens_per_minute == 0 || tokens <= 0) return;
  std::chrono::seconds into{0};
  const auto minute = minute_now(into);
  std::lock_guard lock(mutex_);
  auto& w = windows_[std::string(key_id)];
  if (w.minute != minute) w = Window{minute, 0, 0};
  w.tokens += tokens;
}

}  // namespace openstation::gateway
