#include "server/auth/password.hpp"

#include "server/auth/crypto.hpp"

#include <sodium.h>

#include <algorithm>
#include <cstdlib>

namespace openstation::server::auth {
namespace {

constexpr std::string_view kLower = "abcdefghijkmnopqrstuvwxyz";  // no l
constexpr std::string_view kUpper = "ABCDEFGHJKLMNPQRSTUVWXYZ";   // no I, O
constexpr std::string_view kDigits = "23456789";                  // no 0, 1
constexpr std::size_t kGeneratedLength = 16;

/// Code points in UTF-8 text: bytes that do not continue a sequence.
std::size_t code_points(std::string_view s) {
  return static_cast<std::size_t>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0U) != 0x80U; }));
}

std::string_view describe(PasswordRule rule) {
  switch (rule) {
    case PasswordRule::too_short: return "at least 8 characters";
    case PasswordRule::no_digit: return "a digit (0-9)";
    case PasswordRule::no_lower: return "a lower-case letter (a-z)";
    case PasswordRule::no_special: return "one of the special characters !@#$%^&*?";
    case PasswordRule::too_long: return "at most 1024 bytes";
  }
  return "";
}

}  // namespace

std::string_view to_string(PasswordRule rule) noexcept {
  switch (rule) {
    case PasswordRule::too_short: return "too_short";
    case PasswordRule::no_digit: return "no_digit";
    case PasswordRule::no_lower: return "no_lower";
    case PasswordRule::no_special: return "no_special";
    case PasswordRule::too_long: return "too_long";
  }
  return "unknown";
}

std::vector<PasswordRule> failed_password_rules(std::string_view password) {
  std::vector<PasswordRule> failed;
  if (code_points(password) < kPasswordMinLength) failed.push_back(PasswordRule::too_short);
  const auto has = [&](auto pred) { return std::any_of(password.begin(), password.end(), pred); };
  if (!has([](char c) { return c >= '0' && c <= '9'; })) failed.push_back(PasswordRule::no_digit);
  if (!has([](char c) { return c >= 'a' && c <= 'z'; })) failed.push_back(PasswordRule::no_lower);
  if (!has([](char c) { return kPasswordSpecials.find(c) != std::string_view::npos; })) {
    failed.push_back(PasswordRule::no_special);
  }
  if (password.size() > kPasswordMaxBytes) failed.push_back(PasswordRule::too_long);
  return failed;
}

core::Result<void> check_password_rules(std::string_view password) {
  const auto failed = failed_password_rules(password);
  if (failed.empty()) return {};
  std::string needs;
  std::string ids;
  for (std::size_t i = 0; i < failed.size(); ++i) {
    if (i > 0) {
      needs += i + 1 == failed.size() ? " and " : ", ";
      ids += ", ";
    }
    needs += describe(failed[i]);
    ids += to_string(failed[i]);
  }
  return core::invalid("auth.weak_password",
                       "The password is too weak: it needs " + needs +
                           ". Choose a password of at least 8 characters with a digit, a "
                           "lower-case letter and one of !@#$%^&*? [rules: " +
                           ids + "]",
                       "password");
}

std::string generate_password() {
  std::string all;
  all.append(kLower).append(kUpper).append(kDigits).append(kPasswordSpecials);
  // One of each required class, the rest from everything, then a Fisher-Yates shuffle so the
  // required characters are not always in front.
  std::string pw = random_string(1, kLower) + random_string(1, kDigits) +
                   random_string(1, kPasswordSpecials) + random_string(kGeneratedLength - 3, all);
  for (std::size_t i = pw.size() - 1; i > 0; --i) {
    const auto j = ::randombytes_uniform(static_cast<std::uint32_t>(i + 1));
    std::swap(pw[i], pw[j]);
  }
  return pw;
}

PasswordHashLimits PasswordHashLimits::interactive() {
  return {crypto_pwhash_argon2id_OPSLIMIT_INTERACTIVE, crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE};
}
PasswordHashLimits PasswordHashLimits::moderate() {
  return {crypto_pwhash_argon2id_OPSLIMIT_MODERATE, crypto_pwhash_argon2id_MEMLIMIT_MODERATE};
}
PasswordHashLimits PasswordHashLimits::minimum() {
  return {crypto_pwhash_argon2id_OPSLIMIT_MIN, crypto_pwhash_argon2id_MEMLIMIT_MIN};
}

core::Result<std::string> hash_password(std::string_view password, PasswordHashLimits limits) {
  if (password.size() > kPasswordMaxBytes) {
    return core::invalid("auth.weak_password",
                         "The password is longer than 1024 bytes; choose a shorter one "
                         "[rules: too_long]",
                         "password");
  }
  if (!ensure_sodium()) {
    return core::Error(core::Errc::internal, "auth.hash_failed",
                       "libsodium could not initialise; no password can be hashed");
  }
  char out[crypto_pwhash_argon2id_STRBYTES];
  if (::crypto_pwhash_argon2id_str(out, password.data(), password.size(), limits.ops, limits.mem) !=
      0) {
    return core::Error(core::Errc::internal, "auth.hash_failed",
                       "argon2id hashing failed (out of memory for " +
                           std::to_string(limits.mem / 1024) +
                           " KiB?); free memory or lower the password hash limits");
  }
  return std::string(out);
}

bool verify_password(std::string_view hash, std::string_view password) {
  if (!ensure_sodium()) return false;
  // crypto_pwhash_str_verify needs a NUL-terminated string of bounded length.
  if (hash.empty() || hash.size() >= crypto_pwhash_STRBYTES) return false;
  if (password.size() > kPasswordMaxBytes) return false;
  const std::string stored(hash);
  return ::crypto_pwhash_str_verify(stored.c_str(), password.data(), password.size()) == 0;
}

bool needs_rehash(std::string_view hash, PasswordHashLimits limits) {
  if (!ensure_sodium()) return false;
  if (hash.empty() || hash.size() >= crypto_pwhash_STRBYTES) return true;
  const std::string stored(hash);
  // 1 = other parameters, -1 = not an argon2id string: both mean "hash it again".
  return ::crypto_pwhash_argon2id_str_needs_rehash(stored.c_str(), limits.ops, limits.mem) != 0;
}

}  // namespace openstation::server::auth
