#include "server/auth/token.hpp"

#include "server/auth/crypto.hpp"

#include <algorithm>

namespace openstation::server::auth {
namespace {

/// Length of base64url without padding for kTokenBytes bytes.
constexpr std::size_t kEncodedLength = (kTokenBytes * 4 + 2) / 3;

bool is_base64url(char c) noexcept {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

}  // namespace

std::string_view token_prefix(TokenKind kind) noexcept {
  switch (kind) {
    case TokenKind::session: return "oss_";
    case TokenKind::csrf: return "osc_";
    case TokenKind::cli: return "ost_";
    case TokenKind::join: return "osj_";
    case TokenKind::node: return "osn_";
  }
  return "os_";
}

std::string generate_token(TokenKind kind) {
  return std::string(token_prefix(kind)) + base64url(random_bytes(kTokenBytes));
}

bool looks_like_token(std::string_view token, TokenKind kind) noexcept {
  const auto prefix = token_prefix(kind);
  if (token.size() != prefix.size() + kEncodedLength || token.substr(0, prefix.size()) != prefix) {
    return false;
  }
  const auto body = token.substr(prefix.size());
  return std::all_of(body.begin(), body.end(), is_base64url);
}

std::string hash_token(std::string_view token) {
  return sha256_hex(token);
}

bool verify_token(std::string_view token, std::string_view stored_hash) {
  return constant_time_equal(hash_token(token), stored_hash);
}

}  // namespace openstation::server::auth
