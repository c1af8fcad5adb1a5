#pragma once
/// Opaque random tokens (UI sessions, CLI bearer tokens, node join tokens, node credentials):
/// generated here, shown once, stored only as a SHA-256 hash, compared in constant time.

#include <cstddef>
#include <string>
#include <string_view>

namespace openstation::server::auth {

/// What a token is for; decides its visible prefix so a leaked token is recognisable in logs and
/// secret scanners, and a token of one kind is never accepted as another.
enum class TokenKind {
  session,  ///< "oss_": the UI's session cookie
  csrf,     ///< "osc_": the UI's anti-CSRF token
  cli,      ///< "ost_": `openstation login` bearer tokens
  join,     ///< "osj_": `openstation agent --token` node join tokens
  node,     ///< "osn_": the credential a joined agent uses afterwards
};

/// "oss_", "osc_", "ost_", "osj_", "osn_".
std::string_view token_prefix(TokenKind kind) noexcept;

/// Random bytes per token: 32 (256 bits), far beyond guessing.
inline constexpr std::size_t kTokenBytes = 32;

/// A fresh token: the kind's prefix and 32 random bytes in base64url, 47 characters of
/// `A-Za-z0-9_-`, safe in headers, cookies and URLs.
std::string generate_token(TokenKind kind);

/// True when `token` has the shape `generate_token(kind)` produces (prefix, length, alphabet).
/// A cheap pre-check before hashing; it says nothing about validity.
bool looks_like_token(std::string_view token, TokenKind kind) noexcept;

/// The value to store for `token`: SHA-256 hex (64 characters). A fast hash is right here because
/// tokens carry 256 random bits, so there is nothing to brute-force; see docs/auth.md.
std::string hash_token(std::string_view token);

/// True when `token` hashes to `stored_hash`, compared in constant time.
bool verify_token(std::string_view token, std::string_view stored_hash);

}  // namespace openstation::server::auth
