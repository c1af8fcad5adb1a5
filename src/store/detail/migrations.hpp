#pragma once
/// The schema as numbered migrations embedded in the binary, and the runner that applies the
/// pending ones in one transaction, recorded in `schema_migrations`. Private to the store module.

#include "store/detail/db.hpp"

#include <cstdint>
#include <span>
#include <string_view>

namespace openstation::store::detail {

/// One step of the schema. `sql` is written once for both backends; `{serial}` is the only
/// dialect token (render_dialect).
struct Migration {
  int version;
  std::string_view name;
  std::string_view sql;
};

/// Every migration, in order; versions are 1, 2, 3, ...
std::span<const Migration> migrations();

/// Applies the pending migrations (all or none) and returns the schema version. Refuses a
/// database whose schema is newer than this binary knows. Concurrent openers are serialised
/// (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory lock). Errors: store.migration_failed,
/// store.unavailable.
core::Result<int> migrate(Connection& conn, std::int64_t now_ms);

/// The newest migration applied; 0 for an empty database.
core::Result<int> schema_version(Connection& conn);

}  // namespace openstation::store::detail
