#pragma once
/// The control plane's persistence, behind one interface (the seam tests fake): SQLite by default,
/// PostgreSQL through the same interface. `open_store()` picks the backend from the URL, opens it
/// and applies the embedded migrations.
///
/// Error codes (core::Error::code): store.not_found, store.conflict (a unique field taken — `field`
/// names it —, a stale generation/revision, or a row still referred to), store.unavailable (the
/// database is down, locked past the busy timeout, or refused the connection),
/// store.migration_failed (including a schema newer than this binary), store.invalid (a bad URL or
/// argument), store.internal (a bug: bad SQL, a corrupt row).
///
/// Thread rules: a Store returned by open_store() is thread-safe; every call blocks on the
/// database, so the server calls it from its thread pool, never from I/O threads. The `Store& tx`
/// given to a transaction callback belongs to that call and that thread only.

#include "core/error.hpp"
#include "store/types.hpp"

#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace openstation::store {

/// Which page of a list to read. Lists are ordered by id: ascending for entities (generated ids
/// sort by creation), newest first for events and call logs.
struct PageRequest {
  std::size_t limit = 100;  ///< 0 = everything
  std::string cursor{};     ///< `next_cursor` of the previous page; empty = from the start
};

/// One page of a list.
template <class T>
struct Page {
  std::vector<T> items{};
  std::string next_cursor{};  ///< empty when this is the last page
};

/// Filters: every member that is set must match (AND).
struct UserFilter {
  std::optional<Role> role{};
  std::optional<bool> disabled{};
};
struct SessionFilter {
  std::optional<std::string> user_id{};
  std::optional<TimePoint> expires_before{};  ///< expires_at < this
};
struct ApiKeyFilter {
  std::optional<std::string> user_id{};
  std::optional<bool> revoked{};
};
struct NodeFilter {
  std::optional<NodeStatus> status{};
  std::optional<std::string> token_hash{};
};
struct JoinTokenFilter {
  std::optional<bool> used{};
  std::optional<TimePoint> expires_before{};
};
struct ModelFilter {
  std::optional<ModelSource> source{};
  std::optional<ModelStatus> status{};
  std::optional<std::string> node_id{};
};
struct ServiceFilter {
  std::optional<std::string> model_id{};
};
struct InstanceFilter {
  std::optional<std::string> service_id{};
  std::optional<InstanceState> state{};
  std::optional<std::string> node_id{};  ///< instances that use this node (any position)
};
struct DownloadFilter {
  std::optional<std::string> model_id{};
  std::optional<DownloadState> state{};
};
struct SettingFilter {
  std::optional<std::string> key_prefix{};
};
struct EventFilter {
  std::optional<std::string> actor{};
  std::optional<std::string> action{};
  std::optional<std::string> target_kind{};
  std::optional<std::string> target_id{};
  std::optional<TimePoint> since{};  ///< time >= since
  std::optional<TimePoint> until{};  ///< time < until
};
struct CallLogFilter {
  std::optional<std::string> service{};
  std::optional<std::string> user_id{};
  std::optional<std::string> key_id{};
  std::optional<TimePoint> since{};
  std::optional<TimePoint> until{};
};

/// Typed access to one table of records with a text id.
template <class T, class Filter>
class Repo {
 public:
  virtual ~Repo() = default;
  /// Inserts; generates the id when empty (where the type has a generated id) and stamps
  /// created_at (when at the epoch) and updated_at. Returns the stored record.
  /// store.conflict with `field` when a unique field is taken; store.conflict when a referenced
  /// record (user, model, service) does not exist.
  virtual core::Result<T> create(T record) = 0;
  /// store.not_found when there is none.
  virtual core::Result<T> get(std::string_view id) = 0;
  /// Records matching the filter, one page.
  virtual core::Result<Page<T>> list(const Filter& filter, const PageRequest& page = {}) = 0;
  /// Replaces every field of the record with this id; stamps updated_at. For Service and
  /// Instance, `generation`/`revision` must equal the stored value (else store.conflict: someone
  /// else changed it; reload and retry) and the returned record carries the incremented value.
  virtual core::Result<T> update(const T& record) = 0;
  /// Inserts or replaces by id, without the generation/revision check. For settings and the like.
  virtual core::Result<T> put(T record) = 0;
  /// store.not_found when there is none; store.conflict when other records still refer to it.
  virtual core::Result<void> remove(std::string_view id) = 0;
  /// Deletes every match; returns how many.
  virtual core::Result<std::size_t> remove_all(const Filter& filter) = 0;
};

/// A Repo with a unique secondary key (user name, node name, service name, key prefix, ...).
template <class T, class Filter>
class NamedRepo : public Repo<T, Filter> {
 public:
  /// store.not_found when there is none.
  virtual core::Result<T> get_by_name(std::string_view name) = 0;
};

/// An append-only log (events, call logs) with database-assigned integer ids, newest first.
template <class T, class Filter>
class LogRepo {
 public:
  virtual ~LogRepo() = default;
  /// Appends one entry; stamps `time` when at the epoch; returns it with its id.
  virtual core::Result<T> append(T entry) = 0;
  /// Appends several in one transaction (all or none); for the gateway's batched call logs.
  /// Entries at the epoch are stamped with the current time in the database only: `entries`
  /// is not changed (a writer that must retry keeps its batch as it was).
  virtual core::Result<void> append_all(std::span<const T> entries) = 0;
  /// Matching entries, newest first.
  virtual core::Result<Page<T>> list(const Filter& filter, const PageRequest& page = {}) = 0;
  /// Retention: deletes the entries older than `before`, in append order: everything appended
  /// before the first entry at or after `before` (an older entry appended after that one stays
  /// until it is reached; a newer one is never deleted). With `at_most` > 0, only the oldest
  /// `at_most` entries are candidates, so a large cut can go in short transactions that let
  /// other writers in. Returns how many were deleted.
  virtual core::Result<std::size_t> remove_before(TimePoint before, std::size_t at_most = 0) = 0;
};

/// One use of an API key: when it was last used in a batch of calls.
struct KeyUse {
  std::string key_id{};
  TimePoint time{};
};

/// The store. Repos are owned by the store and live as long as it.
class Store {
 public:
  virtual ~Store() = default;

  virtual NamedRepo<User, UserFilter>& users() = 0;                  ///< by username
  virtual Repo<Session, SessionFilter>& sessions() = 0;              ///< id = token_hash
  virtual NamedRepo<ApiKey, ApiKeyFilter>& api_keys() = 0;           ///< by prefix
  virtual NamedRepo<Node, NodeFilter>& nodes() = 0;                  ///< by name
  virtual NamedRepo<JoinToken, JoinTokenFilter>& join_tokens() = 0;  ///< by token_hash
  virtual NamedRepo<Model, ModelFilter>& models() = 0;               ///< by name
  virtual NamedRepo<Service, ServiceFilter>& services() = 0;         ///< by name
  virtual Repo<Instance, InstanceFilter>& instances() = 0;
  virtual Repo<Download, DownloadFilter>& downloads() = 0;
  virtual Repo<Setting, SettingFilter>& settings() = 0;  ///< id = key
  virtual LogRepo<Event, EventFilter>& events() = 0;
  virtual LogRepo<CallLog, CallLogFilter>& call_logs() = 0;

  /// Runs `fn` in one transaction: everything it wrote through `tx` is committed when it returns
  /// success and rolled back when it returns an error (which is passed on) or throws (returned as
  /// store.internal). Use only `tx` inside `fn`. Nested calls on `tx` are savepoints: an inner
  /// failure undoes only the inner part.
  virtual core::Result<void> transaction(
      const std::function<core::Result<void>(Store& tx)>& fn) = 0;

  /// Moves each key's last_used_at forward to its use's time, never back; a key that is gone is
  /// skipped. One UPDATE per key and no read: every batch of the gateway's call logs marks the keys
  /// it used. Call it on a transaction's `tx` to make it one commit.
  virtual core::Result<void> mark_keys_used(std::span<const KeyUse> uses) = 0;

  /// "sqlite" or "postgresql".
  virtual std::string_view backend() const = 0;
  /// The number of the newest migration applied.
  virtual core::Result<int> schema_version() = 0;
  /// A consistent copy of a SQLite database to `dest` while it is in use (SQLite's online backup);
  /// store.invalid on PostgreSQL (use pg_dump).
  virtual core::Result<void> backup_to(const std::filesystem::path& dest) = 0;
};

/// How to open a store.
struct StoreOptions {
  const core::Clock* clock = nullptr;  ///< for timestamps and ids; nullptr = the system clock
  std::size_t pool_size = 4;           ///< connections (PostgreSQL) or SQLite connections
  int busy_timeout_ms = 5000;          ///< SQLite: how long a writer waits for the lock
};

/// Opens "postgresql://..." / "postgres://..." as PostgreSQL, anything else as a SQLite file path
/// (created with its parent directory if missing; ":memory:" for a private in-memory database),
/// and applies the pending migrations. Errors: store.unavailable, store.migration_failed,
/// store.invalid.
core::Result<std::unique_ptr<Store>> open_store(std::string_view url_or_path,
                                                const StoreOptions& options = {});

/// The newest schema version this binary knows.
int latest_schema_version() noexcept;

}  // namespace openstation::store
