#pragma once
/// Passwords: the product's strength rules, generated passwords that always meet them, and
/// argon2id hashes (libsodium's crypto_pwhash_str) for storage.

#include "core/error.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace openstation::server::auth {

/// The special characters a password must contain one of.
inline constexpr std::string_view kPasswordSpecials = "!@#$%^&*?";
/// The minimum password length, in characters (UTF-8 code points).
inline constexpr std::size_t kPasswordMinLength = 8;
/// The longest password accepted; argon2 would take anything, but an upper bound keeps request
/// bodies and hashing cost bounded.
inline constexpr std::size_t kPasswordMaxBytes = 1024;

/// One strength rule. Its stable id (`to_string`) lets the UI show a localised hint per rule.
enum class PasswordRule {
  too_short,   ///< fewer than 8 characters
  no_digit,    ///< no 0-9
  no_lower,    ///< no a-z
  no_special,  ///< none of `!@#$%^&*?`
  too_long,    ///< more than kPasswordMaxBytes bytes
};

/// "too_short", "no_digit", "no_lower", "no_special", "too_long".
std::string_view to_string(PasswordRule rule) noexcept;

/// Every rule `password` breaks, in the order above; empty when it is acceptable.
std::vector<PasswordRule> failed_password_rules(std::string_view password);

/// Ok when `password` meets all rules. Otherwise error "auth.weak_password" (invalid_argument,
/// field "password") whose message names every missing rule in English and ends with the rule
/// ids in brackets, e.g. "... [rules: no_digit, no_special]"; callers that need the ids as data
/// call `failed_password_rules`.
core::Result<void> check_password_rules(std::string_view password);

/// A random 16-character password that always meets the rules: letters (both cases), digits and
/// the special characters, with at least one lower-case letter, one digit and one special
/// character, shuffled. Characters that are easy to confuse (0/O, 1/l/I) are left out.
std::string generate_password();

/// argon2id cost: passes over memory and memory in bytes.
struct PasswordHashLimits {
  std::uint64_t ops = 0;
  std::size_t mem = 0;

  /// libsodium's "interactive" limits (2 passes, 64 MiB): the server default. About 0.1-0.2 s
  /// per hash on a server core; the login limiter bounds how often an attacker makes us pay it.
  static PasswordHashLimits interactive();
  /// libsodium's "moderate" limits (3 passes, 256 MiB): for installations that accept slower
  /// logins for stronger hashes.
  static PasswordHashLimits moderate();
  /// The smallest allowed limits (1 pass, 8 KiB): tests only, never for stored passwords.
  static PasswordHashLimits minimum();
};

/// An argon2id hash in the PHC string format ("$argon2id$v=19$m=65536,t=2,p=1$salt$hash"), with a
/// random salt; the string carries its own parameters. Error "auth.hash_failed" (internal) when
/// libsodium cannot allocate the memory, or "auth.weak_password" (field "password") when the
/// password is longer than kPasswordMaxBytes. Does not apply the strength rules: call
/// `check_password_rules` first where they apply. Blocks for the hash's duration: run it off the
/// I/O threads.
core::Result<std::string> hash_password(
    std::string_view password, PasswordHashLimits limits = PasswordHashLimits::interactive());

/// True when `password` matches the stored `hash`. False for a wrong password and for a hash that
/// is not a valid argon2 string (never an exception). Blocks like `hash_password`.
bool verify_password(std::string_view hash, std::string_view password);

/// True when `hash` was made with other limits (or another algorithm) than `limits`, so the
/// caller should re-hash the password it just verified and store the new hash.
bool needs_rehash(std::string_view hash,
                  PasswordHashLimits limits = PasswordHashLimits::interactive());

}  // namespace openstation::server::auth
