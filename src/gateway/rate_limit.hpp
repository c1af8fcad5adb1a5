#pragma once
/// Per-key limits: requests per minute and tokens per minute, over fixed one-minute windows on
/// the injected clock's steady time. Requests are counted when admitted; tokens when metered
/// (after the response), so a key over its token budget is refused from its next request until
/// the window rolls over. Thread-safe; memory is one small entry per key seen in the window.

#include "core/clock.hpp"

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace openstation::gateway {

class RateLimiter {
 public:
  struct Limits {
    std::uint32_t requests_per_minute = 0;  ///< 0: unlimited
    std::uint32_t tokens_per_minute = 0;    ///< 0: unlimited
  };
  /// A refusal.
  struct Refusal {
    bool tokens = false;  ///< the token budget, else the request count
    std::chrono::seconds retry_after{1};
  };

  RateLimiter(const core::Clock& clock, Limits limits);

  /// Admits one request of `key_id`, or says why not and for how long.
  std::optional<Refusal> admit(std::string_view key_id);
  /// Adds metered tokens to the key's current window.
  void add_tokens(std::string_view key_id, std::int64_t tokens);
  bool enabled() const { return limits_.requests_per_minute > 0 || limits_.tokens_per_minute > 0; }

 private:
  struct Window {
    std::int64_t minute = 0;
    std::uint32_t requests = 0;
    std::int64_t tokens = 0;
  };
  std::int64_t minute_now(std::chrono::seconds& into_minute) const;

  const core::Clock& clock_;
  Limits limits_;
  std::mutex mutex_;
  std::unordered_map<std::string, Window> windows_;
};

}  // namespace openstation::gateway
