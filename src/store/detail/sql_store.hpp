#pragma once
/// The one Store implementation over either backend: generic repos driven by the mappings, a
/// pooled store and the transaction-bound store handed to `transaction()` callbacks. Private to
/// the store module; `open_store()` is the public way in.

#include "store/detail/db.hpp"
#include "store/detail/mapping.hpp"
#include "store/store.hpp"

#include <cstdint>
#include <iterator>
#include <mutex>
#include <optional>
#include <random>
#include <string>

namespace openstation::store::detail {

/// ULID-like ids: "<prefix>_" + 10 base-32 characters of milliseconds + 16 of randomness,
/// monotonic within one generator. Thread-safe.
class IdGenerator {
 public:
  explicit IdGenerator(const core::Clock& clock);
  std::string next(std::string_view prefix);

 private:
  const core::Clock& clock_;
  std::mutex mutex_;
  std::mt19937_64 rng_;
  std::uint64_t last_ms_ = 0;
  std::uint64_t random_hi_ = 0;  ///< 16 bits
  std::uint64_t random_lo_ = 0;  ///< 64 bits
};

/// What the pooled store and its transaction stores share.
struct Shared {
  const core::Clock& clock;
  IdGenerator ids;
  Backend backend;

  /// Now, truncated to what the database keeps (milliseconds).
  TimePoint now() const;
};

/// Where a repo gets its connection: the pool, or the connection of a running transaction.
class Source {
 public:
  virtual ~Source() = default;
  virtual core::Result<void> with(const std::function<core::Result<void>(Connection&)>& fn) = 0;
};

/// The SQL of one table and the row conversions, shared by the entity and log repos.
template <class T>
class Table {
 public:
  Table(Source& source, Shared& shared)
      : source_(source), shared_(shared), m_(mapping_of(std::type_identity<T>{})) {
    for (std::size_t i = 0; i < m_.fields.size(); ++i) {
      const auto col = std::string(m_.fields[i].column);
      columns_ += (i ? ", " : "") + col;
      if (i == 0 && m_.serial_id) continue;
      insert_columns_ += (insert_columns_.empty() ? "" : ", ") + col;
      insert_marks_ += insert_marks_.empty() ? "?" : ", ?";
    }
  }

  const Mapping<T>& mapping() const { return m_; }
  std::string pk() const { return std::string(m_.fields[0].column); }
  std::string table() const { return std::string(m_.table); }
  const std::string& columns() const { return columns_; }

  /// Runs f(connection) → Result<R> on a connection from the source.
  template <class R, class F>
  core::Result<R> run(F&& f) {
    std::optional<core::Result<R>> out;
    auto r = source_.with([&](Connection& c) -> core::Result<void> {
      out.emplace(f(c));
      return {};
    });
    if (!r) return r.error();
    return std::move(*out);
  }

  /// Stamps times, generates the id, and rounds every member through its codec so the record
  /// returned equals what a later read gives.
  void prepare(T& record, bool creating) {
    const auto now = shared_.now();
    if (creating && m_.created != nullptr && record.*m_.created == TimePoint{}) {
      record.*m_.created = now;
    }
    if (m_.updated != nullptr) record.*m_.updated = now;
    if (creating && !m_.id_prefix.empty() && text(m_.fields[0].get(record)).empty()) {
      m_.fields[0].set(record, Value(shared_.ids.next(m_.id_prefix)));
    }
    for (const auto& f : m_.fields) f.set(record, f.get(record));
  }

  /// How many values a record gives an INSERT (the serial id is the database's).
  std::size_t insert_width() const { return m_.fields.size() - (m_.serial_id ? 1 : 0); }

  /// Writes a new log record's INSERT values over `out[0, insert_width())` without changing the
  /// record: the same values `prepare(record, true)` and `insert_values` give for a table with a
  /// serial id (a creation time at the epoch becomes the current time), without their copies; a
  /// slot that held a string before keeps its storage for the new one.
  void put_insert_values(const T& record, Value* out) const {
    if (m_.created != nullptr && record.*m_.created == TimePoint{}) {
      T stamped = record;
      stamped.*m_.created = shared_.now();
      put_insert_values(stamped, out);
      return;
    }
    for (std::size_t i = m_.serial_id ? 1 : 0; i < m_.fields.size(); ++i) {
      m_.fields[i].put(record, *out++);
    }
  }

  /// The record's values for an INSERT, in insert-column order.
  Params insert_values(const T& record) const {
    Params p;
    push_insert_values(record, p);
    return p;
  }

  std::string insert_sql() const {
    return "INSERT INTO " + table() + " (" + insert_columns_ + ") VALUES (" + insert_marks_ + ")" +
           (m_.serial_id ? " RETURNING " + pk() : "");
  }

  /// INSERT of `rows` records in one statement, without returning ids (for appending logs).
  std::string insert_rows_sql(std::size_t rows) const {
    std::string sql = "INSERT INTO " + table() + " (" + insert_columns_ + ") VALUES ";
    for (std::size_t i = 0; i < rows; ++i) {
      sql += (i == 0 ? "(" : ", (") + insert_marks_ + ")";
    }
    return sql;
  }

  /// Inserts; for serial ids, stores the assigned id into the record.
  core::Result<void> insert(Connection& c, T& record) {
    auto rows = c.exec(insert_sql(), insert_values(record));
    if (!rows) return explain(c, rows.error(), record);
    if (m_.serial_id && (rows->rows.empty() || !m_.fields[0].set(record, rows->rows[0][0]))) {
      return internal_error("the database returned no id for the new " + std::string(m_.entity));
    }
    return {};
  }

  core::Result<T> from_row(const Row& row) const {
    T t{};
    for (std::size_t i = 0; i < m_.fields.size() && i < row.size(); ++i) {
      if (!m_.fields[i].set(t, row[i])) {
        return internal_error("corrupt value in " + table() + "." +
                              std::string(m_.fields[i].column) + " (" + text(row[i]) +
                              "); the database was changed outside openstation");
      }
    }
    return t;
  }

  /// SELECT ... WHERE column = ? → the record, or store.not_found.
  core::Result<T> get_where(std::string_view column, std::string_view key) {
    return run<T>([&](Connection& c) -> core::Result<T> {
      auto rows = c.exec(
          "SELECT " + columns_ + " FROM " + table() + " WHERE " + std::string(column) + " = ?",
          {std::string(key)});
      if (!rows) return rows.error();
      if (rows->rows.empty()) {
        return core::Error(core::Errc::not_found, "store.not_found",
                           "no " + std::string(m_.entity) + " with " + std::string(column) + " \"" +
                               std::string(key) + "\"",
                           std::string(column));
      }
      return from_row(rows->rows[0]);
    });
  }

  /// One page in primary-key order (descending for newest-first lists).
  core::Result<Page<T>> list(Conditions conds, const PageRequest& page, bool descending) {
    if (!page.cursor.empty()) {
      Value cursor = page.cursor;
      if (m_.serial_id) {
        std::int64_t n = 0;
        if (!decode_int(cursor, n)) {
          return core::invalid("store.invalid",
                               "the cursor \"" + page.cursor + "\" is not one this list returned",
                               "cursor");
        }
        cursor = n;
      }
      conds.push_back({pk() + (descending ? " < ?" : " > ?"), {cursor}});
    }
    std::string sql = "SELECT " + columns_ + " FROM " + table();
    Params params;
    append_where(sql, params, conds);
    sql += " ORDER BY " + pk() + (descending ? " DESC" : " ASC");
    if (page.limit > 0) {
      sql += " LIMIT ?";
      params.emplace_back(static_cast<std::int64_t>(page.limit + 1));
    }
    return run<Page<T>>([&](Connection& c) -> core::Result<Page<T>> {
      auto rows = c.exec(sql, params);
      if (!rows) return rows.error();
      Page<T> out;
      for (const auto& row : rows->rows) {
        if (page.limit > 0 && out.items.size() == page.limit) {
          out.next_cursor = text(m_.fields[0].get(out.items.back()));
          break;
        }
        auto t = from_row(row);
        if (!t) return t.error();
        out.items.push_back(std::move(*t));
      }
      return out;
    });
  }

  /// DELETE ... WHERE conds → how many.
  core::Result<std::size_t> remove_where(const Conditions& conds) {
    std::string sql = "DELETE FROM " + table();
    Params params;
    append_where(sql, params, conds);
    return run<std::size_t>([&](Connection& c) -> core::Result<std::size_t> {
      auto rows = c.exec(sql, params);
      if (!rows) return rows.error();
      return rows->affected;
    });
  }

  /// Turns a constraint failure into a message that names the field.
  core::Error explain(Connection& c, const core::Error& e, const T& record) {
    const std::string entity(m_.entity);
    if (e.code == kUniqueViolation) {
      const Value id = m_.fields[0].get(record);
      for (const auto& column : m_.unique_columns) {
        const Value v = m_.find(column)->get(record);
        auto rows = c.exec("SELECT 1 FROM " + table() + " WHERE " + std::string(column) +
                               " = ? AND " + pk() + " <> ?",
                           {v, id});
        if (rows && !rows->rows.empty()) {
          return conflict(entity + " with " + std::string(column) + " \"" + text(v) +
                              "\" already exists; choose another " + std::string(column),
                          std::string(column));
        }
      }
      return conflict(entity + " \"" + text(id) + "\" already exists", pk());
    }
    if (e.code == kForeignKeyViolation) {
      for (const auto& ref : m_.references) {
        const Value v = m_.find(ref.column)->get(record);
        auto rows = c.exec("SELECT 1 FROM " + std::string(ref.table) + " WHERE id = ?", {v});
        if (rows && rows->rows.empty()) {
          return core::Error(core::Errc::not_found, "store.not_found",
                             std::string(ref.entity) + " \"" + text(v) + "\" does not exist",
                             std::string(ref.column));
        }
      }
      return conflict(entity + " refers to a record that does not exist: " + e.message, {});
    }
    return e;
  }

  /// Why a delete was refused: which record still refers to this one.
  core::Error explain_delete(Connection& c, const core::Error& e, std::string_view id) {
    if (e.code != kForeignKeyViolation) return e;
    const std::string what = std::string(m_.entity) + " \"" + std::string(id) + "\"";
    for (const auto& ref : m_.referrers) {
      auto rows =
          c.exec("SELECT " + std::string(ref.name_column) + " FROM " + std::string(ref.table) +
                     " WHERE " + std::string(ref.column) + " = ? LIMIT 1",
                 {std::string(id)});
      if (rows && !rows->rows.empty()) {
        return conflict("cannot delete " + what + ": " + std::string(ref.entity) + " \"" +
                            text(rows->rows[0][0]) + "\" uses it; delete or change that " +
                            std::string(ref.entity) + " first",
                        {});
      }
    }
    return conflict("cannot delete " + what + ": other records still refer to it", {});
  }

  static std::string text(const Value& v) {
    if (const auto* s = std::get_if<std::string>(&v)) return *s;
    if (const auto* n = std::get_if<std::int64_t>(&v)) return std::to_string(*n);
    if (const auto* d = std::get_if<double>(&v)) return std::to_string(*d);
    return {};
  }

  static core::Error conflict(std::string message, std::string field) {
    return {core::Errc::conflict, "store.conflict", std::move(message), std::move(field)};
  }

  Shared& shared() { return shared_; }

 private:
  /// Appends the record's values in insert-column order (no serial id).
  void push_insert_values(const T& record, Params& out) const {
    for (std::size_t i = m_.serial_id ? 1 : 0; i < m_.fields.size(); ++i) {
      out.push_back(m_.fields[i].get(record));
    }
  }

  static void append_where(std::string& sql, Params& params, const Conditions& conds) {
    for (std::size_t i = 0; i < conds.size(); ++i) {
      sql += (i ? " AND " : " WHERE ") + conds[i].sql;
      params.insert(params.end(), conds[i].params.begin(), conds[i].params.end());
    }
  }

  Source& source_;
  Shared& shared_;
  const Mapping<T>& m_;
  std::string columns_;
  std::string insert_columns_;
  std::string insert_marks_;
};

/// Repo / NamedRepo over one table.
template <class T, class Filter, class Base>
class SqlRepo final : public Base {
 public:
  SqlRepo(Source& source, Shared& shared) : t_(source, shared) {}

  core::Result<T> create(T record) override {
    t_.prepare(record, true);
    return t_.template run<T>([&](Connection& c) -> core::Result<T> {
      if (auto r = t_.insert(c, record); !r) return r.error();
      return record;
    });
  }

  core::Result<T> get(std::string_view id) override { return t_.get_where(t_.pk(), id); }

  core::Result<T> get_by_name(std::string_view name) {
    return t_.get_where(t_.mapping().name_column, name);
  }

  core::Result<Page<T>> list(const Filter& filter, const PageRequest& page) override {
    return t_.list(conditions(filter), page, false);
  }

  core::Result<T> update(const T& given) override {
    const auto& m = t_.mapping();
    T record = given;
    t_.prepare(record, false);
    const Field<T>* version = m.version_column.empty() ? nullptr : m.find(m.version_column);
    std::int64_t expected = 0;
    if (version != nullptr) {
      decode_int(version->get(record), expected);
      version->set(record, Value(expected + 1));
    }
    std::string sql = "UPDATE " + t_.table() + " SET ";
    Params params;
    for (std::size_t i = 1; i < m.fields.size(); ++i) {
      sql += (i > 1 ? ", " : "") + std::string(m.fields[i].column) + " = ?";
      params.push_back(m.fields[i].get(record));
    }
    sql += " WHERE " + t_.pk() + " = ?";
    const Value id = m.fields[0].get(record);
    params.push_back(id);
    if (version != nullptr) {
      sql += " AND " + std::string(m.version_column) + " = ?";
      params.emplace_back(expected);
    }
    return t_.template run<T>([&](Connection& c) -> core::Result<T> {
      auto rows = c.exec(sql, params);
      if (!rows) return t_.explain(c, rows.error(), record);
      if (rows->affected == 1) return record;
      auto current =
          c.exec("SELECT " + std::string(version ? m.version_column : m.fields[0].column) +
                     " FROM " + t_.table() + " WHERE " + t_.pk() + " = ?",
                 {id});
      if (!current) return current.error();
      if (current->rows.empty() || version == nullptr) {
        return core::Error(
            core::Errc::not_found, "store.not_found",
            "no " + std::string(m.entity) + " with id \"" + Table<T>::text(id) + "\"", t_.pk());
      }
      return Table<T>::conflict(
          std::string(m.entity) + " \"" + Table<T>::text(id) + "\" was changed meanwhile (" +
              std::string(m.version_column) + " " + Table<T>::text(current->rows[0][0]) +
              ", this change was made from " + std::to_string(expected) + "); reload and retry",
          std::string(m.version_column));
    });
  }

  core::Result<T> put(T record) override {
    const auto& m = t_.mapping();
    t_.prepare(record, true);
    std::string sql = t_.insert_sql() + " ON CONFLICT (" + t_.pk() + ") DO UPDATE SET ";
    bool first = true;
    for (std::size_t i = 1; i < m.fields.size(); ++i) {
      const std::string col(m.fields[i].column);
      if (m.created != nullptr && col == "created_at") continue;  // keep the first creation time
      sql += (first ? "" : ", ") + col + " = excluded." + col;
      first = false;
    }
    return t_.template run<T>([&](Connection& c) -> core::Result<T> {
      auto rows = c.exec(sql, t_.insert_values(record));
      if (!rows) return t_.explain(c, rows.error(), record);
      return record;
    });
  }

  core::Result<void> remove(std::string_view id) override {
    return t_.template run<void>([&](Connection& c) -> core::Result<void> {
      auto rows =
          c.exec("DELETE FROM " + t_.table() + " WHERE " + t_.pk() + " = ?", {std::string(id)});
      if (!rows) return t_.explain_delete(c, rows.error(), id);
      if (rows->affected == 0) {
        return core::Error(
            core::Errc::not_found, "store.not_found",
            "no " + std::string(t_.mapping().entity) + " with id \"" + std::string(id) + "\"",
            t_.pk());
      }
      return {};
    });
  }

  core::Result<std::size_t> remove_all(const Filter& filter) override {
    return t_.remove_where(conditions(filter));
  }

 private:
  Table<T> t_;
};

/// LogRepo over one table with a serial id.
template <class T, class Filter>
class SqlLogRepo final : public LogRepo<T, Filter> {
 public:
  SqlLogRepo(Source& source, Shared& shared)
      : t_(source, shared),
        many_sql_(t_.insert_rows_sql(kRowsPerInsert)),
        one_sql_(t_.insert_rows_sql(1)) {}

  core::Result<T> append(T entry) override {
    t_.prepare(entry, true);
    return t_.template run<T>([&](Connection& c) -> core::Result<T> {
      if (auto r = t_.insert(c, entry); !r) return r.error();
      return entry;
    });
  }

  /// Appends in one transaction, kRowsPerInsert records per INSERT statement (a gateway under
  /// load appends thousands of call logs a second; one statement per row cost more CPU than
  /// proxying the request), the rest one by one. Both statements stay in the statement cache.
  /// The parameters are the calling thread's own and are kept between calls: a writer thread
  /// that appends batch after batch overwrites the same values, strings included, instead of
  /// allocating and freeing every string of every row.
  core::Result<void> append_all(std::span<const T> entries) override {
    return t_.template run<void>([&](Connection& c) -> core::Result<void> {
      if (auto r = c.begin(); !r) return r;
      thread_local Params many;
      thread_local Params one;
      const std::size_t width = t_.insert_width();
      many.resize(kRowsPerInsert * width);
      one.resize(width);
      for (std::size_t i = 0; i < entries.size();) {
        const std::size_t n = entries.size() - i >= kRowsPerInsert ? kRowsPerInsert : 1;
        Params& params = n == 1 ? one : many;
        for (std::size_t k = 0; k < n; ++k)
          t_.put_insert_values(entries[i + k], &params[k * width]);
        auto rows = c.exec(n == 1 ? one_sql_ : many_sql_, params);
        if (!rows) {
          (void)c.rollback();
          return t_.explain(c, rows.error(), entries[i]);
        }
        i += n;
      }
      return c.commit();
    });
  }

  core::Result<Page<T>> list(const Filter& filter, const PageRequest& page) override {
    return t_.list(conditions(filter), page, true);
  }

  /// Logs are appended in time order, so the cut is an id: everything below the first entry
  /// at or after `before`, found by walking ids from the oldest (only the entries that go, and
  /// one more, are read; no index on the time column is needed). An entry that arrived late
  /// with an older time (a replica's delayed batch) stays until the entries before it go; an
  /// entry at or after `before` never goes.
  /// With `at_most`, only the ids below the oldest one plus `at_most` can go.
  core::Result<std::size_t> remove_before(TimePoint before, std::size_t at_most) override {
    const auto table = t_.table();
    const auto id = t_.pk();
    const std::string time_column(t_.mapping().time_column);
    if (at_most == 0) {
      const std::string first_kept = "(SELECT " + id + " FROM " + table + " WHERE " + time_column +
                                     " >= ? ORDER BY " + id + " LIMIT 1)";
      const std::string past_last = "(SELECT MAX(" + id + ") FROM " + table + ") + 1";
      return t_.remove_where(
          {{id + " < COALESCE(" + first_kept + ", " + past_last + ")", {param(before)}}});
    }
    // Only the window of the oldest `at_most` ids is searched for the cut, so each chunk of a
    // long purge reads its own rows and not the whole backlog behind them.
    const std::string window_end = "((SELECT MIN(" + id + ") FROM " + table + ") + ?)";
    const std::string first_kept_in_window = "(SELECT " + id + " FROM " + table + " WHERE " +
                                             time_column + " >= ? AND " + id + " < " + window_end +
                                             " ORDER BY " + id + " LIMIT 1)";
    const auto n = param(static_cast<std::int64_t>(at_most));
    return t_.remove_where({{id + " < COALESCE(" + first_kept_in_window + ", " + window_end + ")",
                             {param(before), n, n}}});
  }

 private:
  static constexpr std::size_t kRowsPerInsert = 32;
  Table<T> t_;
  const std::string many_sql_;  ///< built once: the table's columns do not change
  const std::string one_sql_;
};

}  // namespace openstation::store::detail
