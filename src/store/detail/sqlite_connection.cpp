// SQLite connection: WAL, foreign keys, busy timeout, a prepared-statement cache per connection.

#include "store/detail/db.hpp"

#include <sqlite3.h>

#include <string>
#include <unordered_map>

namespace openstation::store::detail {
namespace {

core::Error sqlite_error(sqlite3* db, int rc, std::string_view what) {
  const int ext = db ? sqlite3_extended_errcode(db) : rc;
  std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  switch (ext) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
      return {core::Errc::conflict, std::string(kUniqueViolation), msg};
    case SQLITE_CONSTRAINT_FOREIGNKEY:
      return {core::Errc::conflict, std::string(kForeignKeyViolation), msg};
    default: break;
  }
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return unavailable_error("the SQLite database is locked by another writer (" + msg +
                               "); retry, or raise the busy timeout");
    case SQLITE_CANTOPEN:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_READONLY:
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_PERM: return unavailable_error("SQLite " + std::string(what) + " failed: " + msg);
    default: return internal_error("SQLite " + std::string(what) + " failed: " + msg);
  }
}

class SqliteConnection final : public Connection {
 public:
  explicit SqliteConnection(sqlite3* db) : db_(db) {}
  ~SqliteConnection() override {
    for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
    sqlite3_close_v2(db_);
  }
  SqliteConnection(const SqliteConnection&) = delete;
  SqliteConnection& operator=(const SqliteConnection&) = delete;

  Backend backend() const override { return Backend::sqlite; }
  bool healthy() const override { return true; }
  sqlite3* handle() const { return db_; }

  core::Result<Rows> exec(std::string_view sql, const Params& params) override {
    auto prepared = prepare(sql);
    if (!prepared) return prepared.error();
    sqlite3_stmt* stmt = *prepared;
    struct Reset {
      sqlite3_stmt* s;
      ~Reset() {
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
      }
    } reset{stmt};
    for (std::size_t i = 0; i < params.size(); ++i) {
      const int idx = static_cast<int>(i + 1);
      const Value& v = params[i];
      int rc = SQLITE_OK;
      if (std::holds_alternative<std::monostate>(v)) {
        rc = sqlite3_bind_null(stmt, idx);
      } else if (const auto* n = std::get_if<std::int64_t>(&v)) {
        rc = sqlite3_bind_int64(stmt, idx, *n);
      } else if (const auto* d = std::get_if<double>(&v)) {
        rc = sqlite3_bind_double(stmt, idx, *d);
      } else {
        const auto& s = std::get<std::string>(v);
        // Not copied: `params` outlives the statement's use of it (Reset clears the bindings).
        rc = sqlite3_bind_text64(stmt, idx, s.data(), s.size(), SQLITE_STATIC, SQLITE_UTF8);
      }
      if (rc != SQLITE_OK) return sqlite_error(db_, rc, "bind");
    }
    Rows out;
    const int columns = sqlite3_column_count(stmt);
    while (true) {
      const int rc = sqlite3_step(stmt);
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) return sqlite_error(db_, rc, "statement");
      Row row;
      row.reserve(static_cast<std::size_t>(columns));
      for (int c = 0; c < columns; ++c) {
        switch (sqlite3_column_type(stmt, c)) {
          case SQLITE_NULL: row.emplace_back(std::monostate{}); break;
          case SQLITE_INTEGER: row.emplace_back(std::int64_t{sqlite3_column_int64(stmt, c)}); break;
          case SQLITE_FLOAT: row.emplace_back(sqlite3_column_double(stmt, c)); break;
          default: {
            const auto* text = sqlite3_column_text(stmt, c);
            const int bytes = sqlite3_column_bytes(stmt, c);
            row.emplace_back(
                std::string(reinterpret_cast<const char*>(text), static_cast<std::size_t>(bytes)));
          }
        }
      }
      out.rows.push_back(std::move(row));
    }
    if (!sqlite3_stmt_readonly(stmt)) out.affected = static_cast<std::size_t>(sqlite3_changes(db_));
    return out;
  }

  core::Result<void> exec_script(std::string_view sql) override {
    const std::string text(sql);
    char* err = nullptr;
    const int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &err);
    if (err) sqlite3_free(err);
    if (rc != SQLITE_OK) return sqlite_error(db_, rc, "script");
    return {};
  }

  core::Result<void> begin() override {
    auto r = exec_script(depth_ == 0 ? std::string("BEGIN IMMEDIATE")
                                     : "SAVEPOINT os_sp" + std::to_string(depth_));
    if (r) ++depth_;
    return r;
  }
  core::Result<void> commit() override {
    if (depth_ == 0) return internal_error("commit without a transaction");
    auto r = exec_script(depth_ == 1 ? std::string("COMMIT")
                                     : "RELEASE SAVEPOINT os_sp" + std::to_string(depth_ - 1));
    if (r) {
      --depth_;
    } else {
      (void)rollback();  // like PostgreSQL: a failed commit ends the transaction, undone
    }
    return r;
  }
  core::Result<void> rollback() override {
    if (depth_ == 0) return internal_error("rollback without a transaction");
    --depth_;
    if (depth_ == 0) return exec_script("ROLLBACK");
    const auto sp = "os_sp" + std::to_string(depth_);
    return exec_script("ROLLBACK TO SAVEPOINT " + sp + "; RELEASE SAVEPOINT " + sp);
  }

 private:
  core::Result<sqlite3_stmt*> prepare(std::string_view sql) {
    const std::string key(sql);
    if (auto it = statements_.find(key); it != statements_.end()) return it->second;
    sqlite3_stmt* stmt = nullptr;
    const int rc = sqlite3_prepare_v3(db_, key.c_str(), static_cast<int>(key.size()),
                                      SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) return sqlite_error(db_, rc, "prepare");
    statements_.emplace(key, stmt);
    return stmt;
  }

  sqlite3* db_;
  std::unordered_map<std::string, sqlite3_stmt*> statements_;
  int depth_ = 0;
};

}  // namespace

core::Result<std::unique_ptr<Connection>> open_sqlite(const std::string& path,
                                                      int busy_timeout_ms) {
  sqlite3* db = nullptr;
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  const int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close_v2(db);
    return unavailable_error("cannot open the SQLite database " + path + ": " + msg +
                             "; check that the directory exists and is writable");
  }
  auto conn = std::make_unique<SqliteConnection>(db);
  sqlite3_busy_timeout(db, busy_timeout_ms);
  sqlite3_extended_result_codes(db, 1);
  // WAL lets readers run beside the one writer; NORMAL sync is durable across application crashes
  // and loses at most the last commits on power loss, the usual pairing with WAL.
  const bool memory = path == ":memory:" || path.empty();
  if (!memory) {
    auto wal = conn->exec("PRAGMA journal_mode=WAL", {});
    if (!wal) return wal.error();
    if (wal->rows.empty() || wal->rows[0].empty() ||
        std::get_if<std::string>(&wal->rows[0][0]) == nullptr ||
        std::get<std::string>(wal->rows[0][0]) != "wal") {
      return unavailable_error(
          "SQLite refused WAL mode for " + path +
          " (is it on a network file system?); put the data dir on a local disk");
    }
  }
  if (auto r = conn->exec_script("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON"); !r) {
    return r.error();
  }
  return std::unique_ptr<Connection>(std::move(conn));
}

core::Result<void> sqlite_backup(Connection& conn, const std::string& dest) {
  auto* source = dynamic_cast<SqliteConnection*>(&conn);
  if (source == nullptr) return internal_error("backup needs a SQLite connection");
  sqlite3* out = nullptr;
  int rc = sqlite3_open_v2(dest.c_str(), &out, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = out ? sqlite3_errmsg(out) : sqlite3_errstr(rc);
    sqlite3_close_v2(out);
    return core::io_error("store.backup_failed",
                          "cannot create the backup file " + dest + ": " + msg);
  }
  sqlite3_backup* backup = sqlite3_backup_init(out, "main", source->handle(), "main");
  if (backup == nullptr) {
    std::string msg = sqlite3_errmsg(out);
    sqlite3_close_v2(out);
    return core::io_error("store.backup_failed", "cannot back up into " + dest + ": " + msg);
  }
  // All pages in one step: the copy is a consistent snapshot of one committed state.
  rc = sqlite3_backup_step(backup, -1);
  sqlite3_backup_finish(backup);
  std::string msg = sqlite3_errmsg(out);
  sqlite3_close_v2(out);
  if (rc != SQLITE_DONE) {
    return core::io_error("store.backup_failed", "backup into " + dest + " failed: " + msg);
  }
  return {};
}

}  // namespace openstation::store::detail
