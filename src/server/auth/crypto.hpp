#pragma once
/// Low-level primitives over libsodium shared by the auth pieces: library initialisation, random
/// bytes and strings, URL-safe encoding, SHA-256 for storing high-entropy secrets, and
/// constant-time comparison. Every function here is thread-safe.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace openstation::server::auth {

/// Initialises libsodium once per process (a function-local static, so thread-safe). Returns
/// false only when the library cannot initialise (no entropy source); every other function in
/// this module calls it first and reports that case as an error or aborts where no error can be
/// returned.
bool ensure_sodium() noexcept;

/// `n` cryptographically random bytes.
std::string random_bytes(std::size_t n);

/// A uniformly random string of `length` characters drawn from `alphabet` (rejection sampling,
/// no modulo bias). `alphabet` must hold 2..256 characters; anything else is a programming error
/// and throws std::invalid_argument.
std::string random_string(std::size_t length, std::string_view alphabet);

/// Base64url without padding (RFC 4648 §5): only `A-Z a-z 0-9 - _`, safe in URLs, headers and
/// cookies.
std::string base64url(std::string_view bytes);

/// SHA-256 of `data` as 64 lower-case hex characters. For high-entropy secrets (tokens, API
/// keys) only; passwords go through `hash_password`.
std::string sha256_hex(std::string_view data);

/// Compares two strings in time that depends only on their lengths; strings of
/// different lengths are unequal. Use for every comparison of a secret or a hash of one.
bool constant_time_equal(std::string_view a, std::string_view b) noexcept;

}  // namespace openstation::server::auth
