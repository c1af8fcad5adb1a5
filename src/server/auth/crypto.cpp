#include "server/auth/crypto.hpp"

#include <sodium.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace openstation::server::auth {
namespace {

/// Aborts when libsodium cannot start: without randomness no token or key is safe to hand out,
/// and these functions have no error channel.
void require_sodium() {
  if (!ensure_sodium()) std::abort();
}

}  // namespace

bool ensure_sodium() noexcept {
  static const bool ok = ::sodium_init() >= 0;  // 0 = initialised now, 1 = already
  return ok;
}

std::string random_bytes(std::size_t n) {
  require_sodium();
  std::string out(n, '\0');
  if (n > 0) ::randombytes_buf(out.data(), n);
  return out;
}

std::string random_string(std::size_t length, std::string_view alphabet) {
  require_sodium();
  if (alphabet.size() < 2 || alphabet.size() > 256) {
    throw std::invalid_argument("random_string: the alphabet must hold 2..256 characters");
  }
  const auto size = static_cast<std::uint32_t>(alphabet.size());
  std::string out;
  out.reserve(length);
  for (std::size_t i = 0; i < length; ++i) out.push_back(alphabet[::randombytes_uniform(size)]);
  return out;
}

std::string base64url(std::string_view bytes) {
  require_sodium();
  constexpr int kVariant = sodium_base64_VARIANT_URLSAFE_NO_PADDING;
  std::string out(sodium_base64_ENCODED_LEN(bytes.size(), kVariant), '\0');
  ::sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(bytes.data()),
                      bytes.size(), kVariant);
  out.resize(out.find('\0'));
  return out;
}

std::string sha256_hex(std::string_view data) {
  require_sodium();
  unsigned char digest[crypto_hash_sha256_BYTES];
  ::crypto_hash_sha256(digest, reinterpret_cast<const unsigned char*>(data.data()), data.size());
  std::string hex(crypto_hash_sha256_BYTES * 2 + 1, '\0');
  ::sodium_bin2hex(hex.data(), hex.size(), digest, sizeof digest);
  hex.pop_back();
  return hex;
}

bool constant_time_equal(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  // Every word is read and folded into `diff`, whatever the earlier ones held. sodium_memcmp
  // does the same a byte at a time through volatile reads, and it ran on every gateway request
  // (the remembered-key check): 2 % of the gateway's user time. The empty asm keeps the compiler
  // from reasoning about `diff` and ending the loop early.
  const std::size_t n = a.size();
  std::uint64_t diff = 0;
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t x = 0;
    std::uint64_t y = 0;
    std::memcpy(&x, a.data() + i, 8);
    std::memcpy(&y, b.data() + i, 8);
    diff |= x ^ y;
    __asm__ volatile("" : "+r"(diff));
  }
  for (; i < n; ++i) {
    diff |= static_cast<std::uint8_t>(a[i] ^ b[i]);
    __asm__ volatile("" : "+r"(diff));
  }
  return diff == 0;
}

}  // namespace openstation::server::auth
