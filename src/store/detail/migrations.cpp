#include "store/detail/migrations.hpp"

#include "store/detail/mapping.hpp"

#include <array>
#include <string>

namespace openstation::store::detail {
namespace {

// Conventions: ids are TEXT (generated, see types.hpp) except the logs' {serial}; times are
// BIGINT milliseconds since the epoch; booleans are INTEGER 0/1; lists and maps are JSON TEXT.
constexpr std::string_view k001Init = R"sql(
CREATE TABLE users (
  id TEXT PRIMARY KEY,
  username TEXT NOT NULL UNIQUE,
  display_name TEXT NOT NULL,
  email TEXT NOT NULL,
  role TEXT NOT NULL,
  password_hash TEXT NOT NULL,
  must_change_password INTEGER NOT NULL,
  disabled INTEGER NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE TABLE sessions (
  token_hash TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  csrf_token_hash TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  last_seen_at BIGINT NOT NULL,
  ip TEXT NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE TABLE api_keys (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  prefix TEXT NOT NULL UNIQUE,
  secret_hash TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  last_used_at BIGINT,
  expires_at BIGINT,
  revoked_at BIGINT,
  allowed_models TEXT NOT NULL
);
CREATE INDEX api_keys_user ON api_keys(user_id);
CREATE TABLE nodes (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  address TEXT NOT NULL,
  labels TEXT NOT NULL,
  status TEXT NOT NULL,
  status_reason TEXT NOT NULL,
  token_hash TEXT NOT NULL,
  inventory_json TEXT NOT NULL,
  last_heartbeat_at BIGINT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX nodes_token ON nodes(token_hash) WHERE token_hash <> '';
CREATE TABLE join_tokens (
  id TEXT PRIMARY KEY,
  token_hash TEXT NOT NULL UNIQUE,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  used INTEGER NOT NULL
);
CREATE TABLE models (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  source TEXT NOT NULL,
  repo TEXT NOT NULL,
  path TEXT NOT NULL,
  node_id TEXT,
  format TEXT NOT NULL,
  size_bytes BIGINT NOT NULL,
  status TEXT NOT NULL,
  status_reason TEXT NOT NULL,
  meta_json TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE TABLE services (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  model_id TEXT NOT NULL REFERENCES models(id),
  engine TEXT NOT NULL,
  engine_version TEXT NOT NULL,
  extra_args TEXT NOT NULL,
  placement TEXT NOT NULL,
  replicas INTEGER NOT NULL,
  spec_json TEXT NOT NULL,
  generation BIGINT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE INDEX services_model ON services(model_id);
CREATE TABLE instances (
  id TEXT PRIMARY KEY,
  service_id TEXT NOT NULL REFERENCES services(id) ON DELETE CASCADE,
  state TEXT NOT NULL,
  state_reason TEXT NOT NULL,
  node_ids TEXT NOT NULL,
  assignment_json TEXT NOT NULL,
  port INTEGER NOT NULL,
  pid BIGINT NOT NULL,
  restarts INTEGER NOT NULL,
  revision BIGINT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE INDEX instances_service ON instances(service_id);
CREATE TABLE downloads (
  id TEXT PRIMARY KEY,
  model_id TEXT NOT NULL REFERENCES models(id) ON DELETE CASCADE,
  state TEXT NOT NULL,
  position BIGINT NOT NULL,
  bytes_total BIGINT NOT NULL,
  bytes_done BIGINT NOT NULL,
  files_total BIGINT NOT NULL,
  files_done BIGINT NOT NULL,
  error TEXT NOT NULL,
  log_path TEXT NOT NULL,
  started_at BIGINT,
  finished_at BIGINT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE INDEX downloads_model ON downloads(model_id);
CREATE TABLE settings (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE TABLE events (
  id {serial},
  time BIGINT NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  target_kind TEXT NOT NULL,
  target_id TEXT NOT NULL,
  detail_json TEXT NOT NULL
);
CREATE TABLE call_logs (
  id {serial},
  time BIGINT NOT NULL,
  user_id TEXT NOT NULL,
  key_id TEXT NOT NULL,
  service TEXT NOT NULL,
  instance_id TEXT NOT NULL,
  status INTEGER NOT NULL,
  duration_ms BIGINT NOT NULL,
  prompt_tokens BIGINT NOT NULL,
  completion_tokens BIGINT NOT NULL,
  ttft_ms BIGINT,
  tokens_per_second DOUBLE PRECISION NOT NULL,
  error TEXT NOT NULL
);
)sql";

// The lookups the API pages by: an entity's events, a service's or user's call logs, retention.
constexpr std::string_view k002LogIndexes = R"sql(
CREATE INDEX events_target ON events(target_kind, target_id, id);
CREATE INDEX events_time ON events(time);
CREATE INDEX call_logs_service ON call_logs(service, id);
CREATE INDEX call_logs_user ON call_logs(user_id, id);
CREATE INDEX call_logs_time ON call_logs(time);
)sql";

// Every gateway request adds a call log: one B-tree fewer to update per request. Retention finds
// its cut by id (LogRepo::remove_before), so the time index served nothing.
constexpr std::string_view k003DropCallLogTimeIndex = R"sql(
DROP INDEX IF EXISTS call_logs_time;
)sql";

// Call logs in blocks: one row per service of an appended batch instead of one per call
// (store/detail/call_log_blocks.hpp). The calls already in call_logs stay there; new ids continue
// after theirs.
constexpr std::string_view k004CallLogBlocks = R"sql(
CREATE TABLE call_log_blocks (
  first_id BIGINT PRIMARY KEY,
  n BIGINT NOT NULL,
  service TEXT NOT NULL,
  users TEXT NOT NULL,
  time_first BIGINT NOT NULL,
  time_last BIGINT NOT NULL,
  calls TEXT NOT NULL
);
CREATE INDEX call_log_blocks_service ON call_log_blocks(service, first_id);
CREATE TABLE call_log_ids (next_id BIGINT NOT NULL);
INSERT INTO call_log_ids (next_id) SELECT COALESCE(MAX(id), 0) + 1 FROM call_logs;
)sql";

constexpr std::array<Migration, 4> kMigrations{{
    {1, "init", k001Init},
    {2, "log_indexes", k002LogIndexes},
    {3, "drop_call_logs_time_index", k003DropCallLogTimeIndex},
    {4, "call_log_blocks", k004CallLogBlocks},
}};

constexpr std::string_view kCreateMigrationsTable =
    "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT "
    "NULL, applied_at BIGINT NOT NULL)";

core::Error migration_error(std::string message) {
  return {core::Errc::internal, "store.migration_failed", std::move(message)};
}

core::Result<int> read_version(Connection& conn) {
  auto rows = conn.exec("SELECT MAX(version) FROM schema_migrations", {});
  if (!rows) return rows.error();
  std::int64_t v = 0;
  if (!rows->rows.empty() && !rows->rows[0].empty() &&
      !std::holds_alternative<std::monostate>(rows->rows[0][0]) &&
      !decode_int(rows->rows[0][0], v)) {
    return internal_error("schema_migrations holds a version that is not a number");
  }
  return static_cast<int>(v);
}

core::Result<int> apply_pending(Connection& conn, std::int64_t now_ms) {
  if (conn.backend() == Backend::postgresql) {
    // Two servers starting on one database at once: the second waits, then sees it done.
    if (auto r = conn.exec("SELECT pg_advisory_xact_lock(7305127003)", {}); !r) return r.error();
  }
  if (auto r = conn.exec_script(kCreateMigrationsTable); !r) return r.error();
  auto current = read_version(conn);
  if (!current) return current.error();
  const int latest = kMigrations.back().version;
  if (*current > latest) {
    return migration_error("the database schema is version " + std::to_string(*current) +
                           ", newer than this openstation knows (" + std::to_string(latest) +
                           "); run the openstation release that wrote it, or restore a backup "
                           "made with this release");
  }
  for (const auto& m : kMigrations) {
    if (m.version <= *current) continue;
    if (auto r = conn.exec_script(render_dialect(m.sql, conn.backend())); !r) {
      return migration_error("migration " + std::to_string(m.version) + "_" + std::string(m.name) +
                             " failed: " + r.error().message);
    }
    auto r = conn.exec("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                       {std::int64_t{m.version}, std::string(m.name), now_ms});
    if (!r) return r.error();
  }
  return latest;
}

}  // namespace

std::span<const Migration> migrations() {
  return kMigrations;
}

core::Result<int> migrate(Connection& conn, std::int64_t now_ms) {
  if (auto r = conn.begin(); !r) return r.error();
  auto version = apply_pending(conn, now_ms);
  if (!version) {
    (void)conn.rollback();
    return version.error();
  }
  if (auto r = conn.commit(); !r) return r.error();
  return version;
}

core::Result<int> schema_version(Connection& conn) {
  return read_version(conn);
}

}  // namespace openstation::store::detail
