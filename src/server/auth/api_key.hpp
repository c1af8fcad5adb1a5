#pragma once
/// API keys for the OpenAI-compatible gateway.
///
/// A key reads `sk-os-<prefix>-<secret>`: `prefix` is 8 characters of `a-z0-9` that stay visible
/// in the UI and the store and find the key without a scan; `secret` is 43 characters of
/// `A-Za-z0-9` (256 random bits). The full key is shown once, at creation; the store keeps the
/// prefix and the SHA-256 of the full key text only.
///
/// The gateway authenticates from a `KeySnapshot`, an immutable in-memory index built from the
/// store's key rows, which the server swaps atomically through a `KeySnapshotHolder` whenever
/// keys or users change: no database on the request path.

#include "core/clock.hpp"
#include "core/error.hpp"
#include "server/auth/role.hpp"

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>
#include <version>

#if !defined(__cpp_lib_atomic_shared_ptr)
#include <mutex>
#endif

namespace openstation::server::auth {

/// "sk-os-".
inline constexpr std::string_view kApiKeyTag = "sk-os-";
/// Characters in a key's visible prefix.
inline constexpr std::size_t kApiKeyPrefixLength = 8;
/// Characters in a key's secret part.
inline constexpr std::size_t kApiKeySecretLength = 43;
/// Characters in a whole key: 6 + 8 + 1 + 43.
inline constexpr std::size_t kApiKeyLength =
    kApiKeyTag.size() + kApiKeyPrefixLength + 1 + kApiKeySecretLength;

/// A new key: `text` goes to the user once; `prefix` and `hash` go to the store.
struct GeneratedApiKey {
  std::string text;    ///< "sk-os-ab12cd34-..." — never stored, never logged
  std::string prefix;  ///< "ab12cd34"
  std::string hash;    ///< SHA-256 hex of `text`
};

/// A fresh random key. Prefixes are random too; the store should keep them unique (a collision
/// among 36^8 values is unlikely, and the snapshot copes with one anyway) and the caller may
/// simply generate again on a unique-constraint violation.
GeneratedApiKey generate_api_key();

/// The SHA-256 hex of a key's full text: what the store keeps and the snapshot compares.
std::string hash_api_key(std::string_view key);

/// A key split into its parts. Views into the text given to `parse_api_key`.
struct ParsedApiKey {
  std::string_view key;     ///< the whole key, "sk-os-..."
  std::string_view prefix;  ///< the 8 visible characters
};

/// Reads a key from an `Authorization` header value ("Bearer sk-os-...", scheme case-insensitive)
/// or from the bare key text, ignoring surrounding spaces. Error "auth.invalid_api_key"
/// (unauthorized) when it is empty, uses another scheme, or is not shaped like our keys; the
/// message never repeats the secret.
core::Result<ParsedApiKey> parse_api_key(std::string_view text);

/// One API key as the store knows it, flattened with what the gateway needs of its user.
struct KeyRecord {
  std::string key_id;
  std::string user_id;
  std::string username;
  Role role = Role::user;
  std::string name;    ///< the key's label, for logs
  std::string prefix;  ///< the visible 8 characters
  std::string hash;    ///< SHA-256 hex of the full key
  bool revoked = false;
  bool user_disabled = false;
  std::optional<core::Clock::TimePoint> expires_at;  ///< none: never expires
  /// Models (service Model IDs) the key may call; empty means every model. Sorted and
  /// de-duplicated when a snapshot is built.
  std::vector<std::string> allowed_models;
  bool operator==(const KeyRecord&) const = default;
};

/// Who a request acts for: the key that authenticated it. Holds the snapshot's record, so it stays
/// valid after the snapshot is replaced. Cheap to copy (one shared_ptr).
struct Principal {
  std::shared_ptr<const KeyRecord> key;  ///< never null in a successful `authenticate` result

  const std::string& user_id() const { return key->user_id; }
  const std::string& key_id() const { return key->key_id; }
  const std::string& username() const { return key->username; }
  Role role() const { return key->role; }
};

/// True when the principal's key may call `model` (its allow-list is empty or names `model`
/// exactly).
bool allows_model(const Principal& principal, std::string_view model);

/// An immutable index of API keys by prefix. Thread-safe to share (const).
class KeySnapshot {
 public:
  /// An empty snapshot: every key is unknown.
  KeySnapshot() = default;
  /// Indexes `records`. Records with the same prefix are all kept (told apart by their hash).
  explicit KeySnapshot(std::vector<KeyRecord> records);

  /// Authenticates an `Authorization` header value or bare key at time `now`: parses it, finds
  /// its prefix, hashes it once (SHA-256) and compares the hash in constant time. Errors (all
  /// unauthorized): "auth.invalid_api_key" (malformed, unknown, wrong secret), and only for a
  /// key whose secret matched: "auth.key_revoked", "auth.user_disabled", "auth.key_expired"
  /// (at or after expires_at), checked in that order. Never blocks, never throws.
  core::Result<Principal> authenticate(std::string_view authorization,
                                       core::Clock::TimePoint now) const;

  /// Keys in the snapshot.
  std::size_t size() const { return by_prefix_.size(); }

 private:
  std::unordered_multimap<std::string, std::shared_ptr<const KeyRecord>> by_prefix_;
};

/// Remembers which key the last few `Authorization` values matched in one snapshot, so a client
/// that sends the same key with every request (keep-alive connections, the SDKs) is parsed and
/// hashed once per snapshot instead of once per request. A hit still checks revocation, the
/// user and expiry at `now`; a new snapshot forgets everything; failures are never remembered.
/// Holds up to kEntries header values (bearer keys) in memory. Not thread-safe: the gateway keeps
/// one per I/O thread. The principals it returns share a reference count of this memo's own, so
/// threads that authenticate the same key never write the same memory.
class AuthMemo {
 public:
  static constexpr std::size_t kEntries = 8;

  /// The same result as `snapshot->authenticate(authorization, now)`.
  core::Result<Principal> authenticate(const std::shared_ptr<const KeySnapshot>& snapshot,
                                       std::string_view authorization, core::Clock::TimePoint now);

 private:
  struct Entry {
    std::string authorization;
    std::shared_ptr<const KeyRecord> key;
  };
  std::shared_ptr<const KeySnapshot> snapshot_;
  std::array<Entry, kEntries> entries_{};
  std::size_t next_ = 0;
};

/// The current snapshot, replaced as a whole by the server and read by every gateway request.
/// `load` and `store` are thread-safe and lock-free where the standard library allows.
class KeySnapshotHolder {
 public:
  /// Starts with an empty snapshot.
  KeySnapshotHolder();
  /// The current snapshot, never null.
  std::shared_ptr<const KeySnapshot> load() const;
  /// Makes `snapshot` current (null is taken as an empty snapshot).
  void store(std::shared_ptr<const KeySnapshot> snapshot);
  /// Counts the stores: a reader that remembers it knows without a lock whether its copy of
  /// the snapshot is still the current one (it is read before `load`).
  std::uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

 private:
  std::atomic<std::uint64_t> generation_{0};
#if defined(__cpp_lib_atomic_shared_ptr)
  std::atomic<std::shared_ptr<const KeySnapshot>> current_;
#else
  mutable std::mutex mutex_;
  std::shared_ptr<const KeySnapshot> current_;
#endif
};

}  // namespace openstation::server::auth
