#pragma once
/// Login rate limiting: too many failed logins for one username, or from one remote address,
/// within a sliding window lock further attempts out until the oldest failure leaves the window.

#include "core/clock.hpp"
#include "core/error.hpp"

#include <chrono>
#include <cstddef>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace openstation::server::auth {

/// Limits for `LoginLimiter`.
struct LoginLimits {
  std::size_t user_failures = 5;  ///< failures per username within user_window
  std::chrono::seconds user_window{std::chrono::minutes(15)};
  std::size_t address_failures = 20;  ///< failures per remote address within address_window
  std::chrono::seconds address_window{std::chrono::minutes(15)};
  /// Usernames and addresses tracked, each; beyond it the entries idle longest are forgotten.
  std::size_t max_entries = 10000;
};

/// A refusal: which counter tripped and when to try again.
struct Lockout {
  enum class Scope { user, address };
  Scope scope = Scope::user;
  std::chrono::seconds retry_after{0};  ///< at least 1 s; for a Retry-After header

  /// Error "auth.rate_limited" (resource_exhausted; the REST layer answers 429 with Retry-After),
  /// field "username" or "address", saying how many seconds to wait.
  core::Error to_error() const;
};

/// Counts failed logins per username (case-insensitive) and per remote address on the injected
/// clock's steady time. Memory is bounded by `max_entries` per counter and by the failure limit
/// per entry. Thread-safe.
///
/// Use: `check` before verifying the password (a locked-out attempt is refused without the cost
/// of argon2 and is not counted); then `record_failure` or `record_success`.
class LoginLimiter {
 public:
  /// `clock` must outlive the limiter.
  explicit LoginLimiter(const core::Clock& clock, LoginLimits limits = {});

  /// The lockout that applies to this attempt now, if any (the user's counter first).
  std::optional<Lockout> lockout(std::string_view username, std::string_view address) const;
  /// Ok, or `lockout(...)->to_error()`.
  core::Result<void> check(std::string_view username, std::string_view address) const;
  /// Counts a failed login against the username and the address.
  void record_failure(std::string_view username, std::string_view address);
  /// A successful login clears the username's failures (the address keeps its count, so one good
  /// account does not reset a password-spraying address).
  void record_success(std::string_view username, std::string_view address);

  /// Usernames plus addresses tracked now (for tests and metrics).
  std::size_t tracked() const;

 private:
  using Steady = std::chrono::steady_clock::time_point;
  /// The last failures of one key, oldest first, at most `limit` of them.
  using Failures = std::vector<Steady>;
  using Table = std::unordered_map<std::string, Failures>;

  static std::optional<std::chrono::seconds> locked_for(const Table& table, const std::string& key,
                                                        std::size_t limit,
                                                        std::chrono::seconds window, Steady now);
  void add(Table& table, std::string key, std::size_t limit, std::chrono::seconds window,
           Steady now);

  const core::Clock& clock_;
  LoginLimits limits_;
  mutable std::mutex mutex_;
  Table users_;
  Table addresses_;
};

}  // namespace openstation::server::auth
