#include "server/auth/api_key.hpp"

#include "core/shared.hpp"
#include "server/auth/crypto.hpp"

#include <algorithm>
#include <cctype>

namespace openstation::server::auth {
namespace {

constexpr std::string_view kPrefixAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
constexpr std::string_view kSecretAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

bool in(std::string_view alphabet, std::string_view text) {
  return std::all_of(text.begin(), text.end(),
                     [&](char c) { return alphabet.find(c) != std::string_view::npos; });
}

bool is_space(char c) {
  return c == ' ' || c == '\t';
}

std::string_view trim_spaces(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

core::Error invalid_key(std::string message) {
  return {core::Errc::unauthorized, "auth.invalid_api_key", std::move(message), "authorization"};
}

core::Error key_error(std::string code, std::string message) {
  return {core::Errc::unauthorized, std::move(code), std::move(message), "authorization"};
}

/// "sk-os-ab12cd34-…", safe to show: the prefix only.
std::string redacted(std::string_view prefix) {
  return std::string(kApiKeyTag) + std::string(prefix) + "-…";
}

}  // namespace

GeneratedApiKey generate_api_key() {
  GeneratedApiKey key;
  key.prefix = random_string(kApiKeyPrefixLength, kPrefixAlphabet);
  key.text = std::string(kApiKeyTag) + key.prefix + "-" +
             random_string(kApiKeySecretLength, kSecretAlphabet);
  key.hash = hash_api_key(key.text);
  return key;
}

std::string hash_api_key(std::string_view key) {
  return sha256_hex(key);
}

core::Result<ParsedApiKey> parse_api_key(std::string_view text) {
  text = trim_spaces(text);
  if (const auto space = text.find(' '); space != std::string_view::npos) {
    const auto scheme = text.substr(0, space);
    if (!iequals(scheme, "Bearer")) {
      return invalid_key("The Authorization header uses the '" + std::string(scheme.substr(0, 20)) +
                         "' scheme; send 'Authorization: Bearer sk-os-...' with an API key");
    }
    text = trim_spaces(text.substr(space + 1));
  }
  if (text.empty()) {
    return invalid_key(
        "No API key was given; send 'Authorization: Bearer sk-os-...' with a key created in "
        "OpenStation (Keys page or `openstation keys create`)");
  }
  const bool shaped = text.size() == kApiKeyLength &&
                      text.substr(0, kApiKeyTag.size()) == kApiKeyTag &&
                      text[kApiKeyTag.size() + kApiKeyPrefixLength] == '-' &&
                      in(kPrefixAlphabet, text.substr(kApiKeyTag.size(), kApiKeyPrefixLength)) &&
                      in(kSecretAlphabet, text.substr(kApiKeyTag.size() + kApiKeyPrefixLength + 1));
  if (!shaped) {
    return invalid_key(
        "The API key is malformed: OpenStation keys look like sk-os-<8 characters>-<43 "
        "characters>, 58 in all. Copy the whole key, or create a new one");
  }
  return ParsedApiKey{text, text.substr(kApiKeyTag.size(), kApiKeyPrefixLength)};
}

bool allows_model(const Principal& principal, std::string_view model) {
  if (!principal.key) return false;
  const auto& allowed = principal.key->allowed_models;
  if (allowed.empty()) return true;
  return std::binary_search(allowed.begin(), allowed.end(), model,
                            [](std::string_view a, std::string_view b) { return a < b; });
}

KeySnapshot::KeySnapshot(std::vector<KeyRecord> records) {
  by_prefix_.reserve(records.size());
  for (auto& record : records) {
    auto& models = record.allowed_models;
    std::sort(models.begin(), models.end());
    models.erase(std::unique(models.begin(), models.end()), models.end());
    auto prefix = record.prefix;
    by_prefix_.emplace(std::move(prefix), std::make_shared<const KeyRecord>(std::move(record)));
  }
}

namespace {

/// A key whose secret matched, if it may be used at `now`.
core::Result<Principal> usable(std::shared_ptr<const KeyRecord> match, std::string_view prefix,
                               core::Clock::TimePoint now) {
  if (match->revoked) {
    return key_error("auth.key_revoked", "The API key " + redacted(prefix) +
                                             " was revoked; ask for a new key or create one");
  }
  if (match->user_disabled) {
    return key_error("auth.user_disabled", "The user '" + match->username +
                                               "' who owns this API key is disabled; an "
                                               "administrator can enable the user again");
  }
  if (match->expires_at && now >= *match->expires_at) {
    return key_error("auth.key_expired", "The API key " + redacted(prefix) +
                                             " has expired; create a new key or extend its expiry");
  }
  return Principal{std::move(match)};
}

}  // namespace

core::Result<Principal> KeySnapshot::authenticate(std::string_view authorization,
                                                  core::Clock::TimePoint now) const {
  auto parsed = parse_api_key(authorization);
  if (!parsed) return parsed.error();
  const auto unknown = [&] {
    return invalid_key(
        "The API key " + redacted(parsed->prefix) +
        " is not valid: it is unknown, was deleted, or was mistyped. Create a new key "
        "in OpenStation");
  };
  const auto [first, last] = by_prefix_.equal_range(std::string(parsed->prefix));
  if (first == last) return unknown();
  const auto hash = hash_api_key(parsed->key);
  std::shared_ptr<const KeyRecord> match;
  for (auto it = first; it != last; ++it) {
    if (constant_time_equal(hash, it->second->hash)) match = it->second;
  }
  if (!match) return unknown();
  return usable(std::move(match), parsed->prefix, now);
}

core::Result<Principal> AuthMemo::authenticate(const std::shared_ptr<const KeySnapshot>& snapshot,
                                               std::string_view authorization,
                                               core::Clock::TimePoint now) {
  if (snapshot != snapshot_) {
    snapshot_ = snapshot;
    for (auto& e : entries_) e = {};
    next_ = 0;
  }
  for (const auto& e : entries_) {
    // Constant time, as the hash comparison: a remembered key must not leak through timing.
    if (e.key && constant_time_equal(e.authorization, authorization)) {
      return usable(e.key, e.key->prefix, now);
    }
  }
  auto r = snapshot->authenticate(authorization, now);
  if (r) {
    auto& e = entries_[next_];
    next_ = (next_ + 1) % entries_.size();
    e.authorization.assign(authorization);
    e.key = core::with_own_count(std::move(r->key));  // this thread's count, not the snapshot's
    r->key = e.key;
  }
  return r;
}

KeySnapshotHolder::KeySnapshotHolder() : current_(std::make_shared<const KeySnapshot>()) {}

#if defined(__cpp_lib_atomic_shared_ptr)
std::shared_ptr<const KeySnapshot> KeySnapshotHolder::load() const {
  return current_.load(std::memory_order_acquire);
}
void KeySnapshotHolder::store(std::shared_ptr<const KeySnapshot> snapshot) {
  if (!snapshot) snapshot = std::make_shared<const KeySnapshot>();
  current_.store(std::move(snapshot), std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_release);
}
#else
std::shared_ptr<const KeySnapshot> KeySnapshotHolder::load() const {
  std::lock_guard lock(mutex_);
  return current_;
}
void KeySnapshotHolder::store(std::shared_ptr<const KeySnapshot> snapshot) {
  if (!snapshot) snapshot = std::make_shared<const KeySnapshot>();
  {
    std::lock_guard lock(mutex_);
    current_ = std::move(snapshot);
  }
  generation_.fetch_add(1, std::memory_order_release);
}
#endif

}  // namespace openstation::server::auth
