#include "server/auth/login_limiter.hpp"

#include "core/strings.hpp"

#include <algorithm>

namespace openstation::server::auth {
namespace {

/// Keys are capped so a client cannot make us hold huge strings.
constexpr std::size_t kMaxKeyBytes = 256;

std::string user_key(std::string_view username) {
  return core::to_lower(username.substr(0, kMaxKeyBytes));
}
std::string address_key(std::string_view address) {
  return std::string(address.substr(0, kMaxKeyBytes));
}

}  // namespace

core::Error Lockout::to_error() const {
  const auto seconds = std::to_string(retry_after.count());
  if (scope == Scope::user) {
    return {core::Errc::resource_exhausted, "auth.rate_limited",
            "Too many failed logins for this user; try again in " + seconds +
                " seconds, or ask an administrator to reset the password",
            "username"};
  }
  return {core::Errc::resource_exhausted, "auth.rate_limited",
          "Too many failed logins from this address; try again in " + seconds + " seconds",
          "address"};
}

LoginLimiter::LoginLimiter(const core::Clock& clock, LoginLimits limits)
    : clock_(clock), limits_(limits) {
  limits_.user_failures = std::max<std::size_t>(limits_.user_failures, 1);
  limits_.address_failures = std::max<std::size_t>(limits_.address_failures, 1);
  limits_.max_entries = std::max<std::size_t>(limits_.max_entries, 1);
}

std::optional<std::chrono::seconds> LoginLimiter::locked_for(const Table& table,
                                                             const std::string& key,
                                                             std::size_t limit,
                                                             std::chrono::seconds window,
                                                             Steady now) {
  const auto it = table.find(key);
  if (it == table.end() || it->second.size() < limit) return std::nullopt;
  // The entry holds the last `limit` failures; locked while the oldest is still in the window.
  const auto until = it->second.front() + window;
  if (until <= now) return std::nullopt;
  const auto left = std::chrono::ceil<std::chrono::seconds>(until - now);
  return std::max(left, std::chrono::seconds(1));
}

std::optional<Lockout> LoginLimiter::lockout(std::string_view username,
                                             std::string_view address) const {
  const auto now = clock_.steady_now();
  std::lock_guard lock(mutex_);
  if (auto left =
          locked_for(users_, user_key(username), limits_.user_failures, limits_.user_window, now)) {
    return Lockout{Lockout::Scope::user, *left};
  }
  if (auto left = locked_for(addresses_, address_key(address), limits_.address_failures,
                             limits_.address_window, now)) {
    return Lockout{Lockout::Scope::address, *left};
  }
  return std::nullopt;
}

core::Result<void> LoginLimiter::check(std::string_view username, std::string_view address) const {
  if (const auto l = lockout(username, address)) return l->to_error();
  return {};
}

void LoginLimiter::add(Table& table, std::string key, std::size_t limit,
                       std::chrono::seconds window, Steady now) {
  if (table.size() >= limits_.max_entries && table.find(key) == table.end()) {
    // Forget entries whose newest failure left the window; if that is not enough, the oldest
    // quarter by newest failure, so eviction stays amortised under a flood of new keys.
    std::erase_if(table, [&](const auto& entry) { return entry.second.back() + window <= now; });
    if (table.size() >= limits_.max_entries) {
      std::vector<Steady> newest;
      newest.reserve(table.size());
      for (const auto& entry : table) newest.push_back(entry.second.back());
      const auto cut = newest.begin() + static_cast<std::ptrdiff_t>(newest.size() / 4);
      std::nth_element(newest.begin(), cut, newest.end());
      const auto threshold = *cut;
      std::erase_if(table, [&](const auto& entry) { return entry.second.back() <= threshold; });
    }
  }
  auto& failures = table[std::move(key)];
  // Drop failures that left the window, and keep at most `limit`.
  const auto fresh =
      std::find_if(failures.begin(), failures.end(), [&](Steady t) { return t + window > now; });
  failures.erase(failures.begin(), fresh);
  if (failures.size() >= limit) {
    failures.erase(failures.begin(),
                   failures.begin() + static_cast<std::ptrdiff_t>(failures.size() - limit + 1));
  }
  failures.push_back(now);
}

void LoginLimiter::record_failure(std::string_view username, std::string_view address) {
  const auto now = clock_.steady_now();
  std::lock_guard lock(mutex_);
  add(users_, user_key(username), limits_.user_failures, limits_.user_window, now);
  add(addresses_, address_key(address), limits_.address_failures, limits_.address_window, now);
}

void LoginLimiter::record_success(std::string_view username, std::string_view /*address*/) {
  std::lock_guard lock(mutex_);
  users_.erase(user_key(username));
}

std::size_t LoginLimiter::tracked() const {
  std::lock_guard lock(mutex_);
  return users_.size() + addresses_.size();
}

}  // namespace openstation::server::auth
