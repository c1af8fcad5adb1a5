#pragma once
/// The thin database layer under the store: one connection to SQLite or PostgreSQL, driven with
/// `?` placeholders and typed values, and a small pool of them. Private to the store module.

#include "core/error.hpp"

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace openstation::store::detail {

/// One SQL value: NULL, integer, real or text. PostgreSQL results arrive as text; readers convert.
using Value = std::variant<std::monostate, std::int64_t, double, std::string>;
using Params = std::vector<Value>;
using Row = std::vector<Value>;

/// A statement's result rows and, for writes, how many rows it changed.
struct Rows {
  std::vector<Row> rows;
  std::size_t affected = 0;
};

enum class Backend { sqlite, postgresql };

/// Codes a connection reports for constraint failures; the repos turn them into store.conflict or
/// store.not_found naming the field.
inline constexpr std::string_view kUniqueViolation = "store.unique_violation";
inline constexpr std::string_view kForeignKeyViolation = "store.foreign_key_violation";

/// The schema's dialect differences: the only one is the auto-increment primary key.
std::string render_dialect(std::string_view sql, Backend backend);

/// One database connection. Not thread-safe: one thread at a time (the pool guarantees it).
class Connection {
 public:
  virtual ~Connection() = default;
  virtual Backend backend() const = 0;
  /// Runs one statement with `?` placeholders (prepared once per connection and cached).
  virtual core::Result<Rows> exec(std::string_view sql, const Params& params = {}) = 0;
  /// Runs several statements without parameters (migrations).
  virtual core::Result<void> exec_script(std::string_view sql) = 0;
  /// Starts a transaction (SQLite: BEGIN IMMEDIATE, so writers queue on the busy timeout instead
  /// of failing on lock upgrades), or a savepoint inside one.
  virtual core::Result<void> begin() = 0;
  virtual core::Result<void> commit() = 0;
  virtual core::Result<void> rollback() = 0;
  /// False once the connection is known to be broken; the pool then drops it.
  virtual bool healthy() const = 0;
};

/// Opens a SQLite connection (WAL, foreign keys, busy timeout).
core::Result<std::unique_ptr<Connection>> open_sqlite(const std::string& path, int busy_timeout_ms);
/// Opens a PostgreSQL connection from a libpq URL.
core::Result<std::unique_ptr<Connection>> open_postgres(const std::string& url);
/// SQLite's online backup of the connection's main database into `dest`.
core::Result<void> sqlite_backup(Connection& conn, const std::string& dest);

/// A fixed-size pool of connections, created on demand; callers block while all are in use.
/// Thread-safe.
class Pool {
 public:
  using Factory = std::function<core::Result<std::unique_ptr<Connection>>()>;
  Pool(Factory factory, std::size_t size);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  /// Runs `fn` with a connection of its own; a connection found broken afterwards is dropped.
  core::Result<void> with(const std::function<core::Result<void>(Connection&)>& fn);

 private:
  core::Result<std::unique_ptr<Connection>> acquire();
  void release(std::unique_ptr<Connection> conn);

  Factory factory_;
  std::size_t size_;
  std::mutex mutex_;
  std::condition_variable available_;
  std::vector<std::unique_ptr<Connection>> idle_;
  std::size_t open_ = 0;
};

/// store.internal with a message.
core::Error internal_error(std::string message);
/// store.unavailable with a message.
core::Error unavailable_error(std::string message);

}  // namespace openstation::store::detail
