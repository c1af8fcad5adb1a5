// open_store(), the pooled store and the transaction-bound store.

#include "store/detail/sql_store.hpp"
#include "store/detail/call_log_blocks.hpp"
#include "store/detail/migrations.hpp"
#include "store/store.hpp"

#include <array>
#include <exception>
#include <filesystem>
#include <system_error>

namespace openstation::store {
namespace detail {
namespace {

constexpr std::string_view kCrockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Appends `chars` base-32 digits of `value` (most significant first).
void base32(std::string& out, std::uint64_t value, int chars) {
  for (int i = chars - 1; i >= 0; --i) out += kCrockford[(value >> (5 * i)) & 31];
}

}  // namespace

IdGenerator::IdGenerator(const core::Clock& clock) : clock_(clock), rng_(std::random_device{}()) {}

std::string IdGenerator::next(std::string_view prefix) {
  const auto ms = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now().time_since_epoch())
          .count());
  std::lock_guard lock(mutex_);
  if (ms > last_ms_) {
    last_ms_ = ms;
    random_hi_ = rng_() & 0xffff;
    random_lo_ = rng_();
  } else if (++random_lo_ == 0) {  // same millisecond (or a clock step back): stay monotonic
    random_hi_ = (random_hi_ + 1) & 0xffff;
  }
  std::string id(prefix);
  id += '_';
  base32(id, last_ms_ & 0xffffffffffffULL, 10);
  // 80 random bits as 16 characters: the top 16 bits (hi) then the low 64, split 15/64 + 1.
  const std::uint64_t top = (random_hi_ << 4) | (random_lo_ >> 60);  // 20 bits
  base32(id, top, 4);
  base32(id, random_lo_ & 0x0fffffffffffffffULL, 12);
  return id;
}

TimePoint Shared::now() const {
  return std::chrono::time_point_cast<std::chrono::milliseconds>(clock.now());
}

namespace {

/// The repos of one store view, bound to a Source.
class SqlStore : public Store {
 public:
  SqlStore(Source& source, Shared& shared)
      : source_(source),
        shared_(shared),
        users_(source, shared),
        sessions_(source, shared),
        api_keys_(source, shared),
        nodes_(source, shared),
        join_tokens_(source, shared),
        models_(source, shared),
        services_(source, shared),
        instances_(source, shared),
        downloads_(source, shared),
        settings_(source, shared),
        events_(source, shared),
        call_logs_(source, shared) {}

  NamedRepo<User, UserFilter>& users() override { return users_; }
  Repo<Session, SessionFilter>& sessions() override { return sessions_; }
  NamedRepo<ApiKey, ApiKeyFilter>& api_keys() override { return api_keys_; }
  NamedRepo<Node, NodeFilter>& nodes() override { return nodes_; }
  NamedRepo<JoinToken, JoinTokenFilter>& join_tokens() override { return join_tokens_; }
  NamedRepo<Model, ModelFilter>& models() override { return models_; }
  NamedRepo<Service, ServiceFilter>& services() override { return services_; }
  Repo<Instance, InstanceFilter>& instances() override { return instances_; }
  Repo<Download, DownloadFilter>& downloads() override { return downloads_; }
  Repo<Setting, SettingFilter>& settings() override { return settings_; }
  LogRepo<Event, EventFilter>& events() override { return events_; }
  LogRepo<CallLog, CallLogFilter>& call_logs() override { return call_logs_; }

  core::Result<void> transaction(const std::function<core::Result<void>(Store& tx)>& fn) override;

  core::Result<void> mark_keys_used(std::span<const KeyUse> uses) override {
    if (uses.empty()) return {};
    return source_.with([&](Connection& c) -> core::Result<void> {
      for (const auto& use : uses) {
        const std::int64_t ms = to_millis(use.time);
        auto r = c.exec(
            "UPDATE api_keys SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR "
            "last_used_at < ?)",
            {ms, use.key_id, ms});
        if (!r) return r.error();
      }
      return {};
    });
  }

  std::string_view backend() const override {
    return shared_.backend == Backend::sqlite ? "sqlite" : "postgresql";
  }

  core::Result<int> schema_version() override {
    std::optional<core::Result<int>> out;
    auto r = source_.with([&](Connection& c) -> core::Result<void> {
      out.emplace(detail::schema_version(c));
      return {};
    });
    if (!r) return r.error();
    return *out;
  }

  core::Result<void> backup_to(const std::filesystem::path& dest) override {
    if (shared_.backend != Backend::sqlite) {
      return core::invalid("store.invalid",
                           "backup_to copies SQLite databases; back up PostgreSQL with pg_dump");
    }
    return source_.with([&](Connection& c) { return sqlite_backup(c, dest.string()); });
  }

 protected:
  Source& source_;
  Shared& shared_;

 private:
  template <class T, class F>
  using Named = SqlRepo<T, F, NamedRepo<T, F>>;
  template <class T, class F>
  using Plain = SqlRepo<T, F, Repo<T, F>>;

  Named<User, UserFilter> users_;
  Plain<Session, SessionFilter> sessions_;
  Named<ApiKey, ApiKeyFilter> api_keys_;
  Named<Node, NodeFilter> nodes_;
  Named<JoinToken, JoinTokenFilter> join_tokens_;
  Named<Model, ModelFilter> models_;
  Named<Service, ServiceFilter> services_;
  Plain<Instance, InstanceFilter> instances_;
  Plain<Download, DownloadFilter> downloads_;
  Plain<Setting, SettingFilter> settings_;
  SqlLogRepo<Event, EventFilter> events_;
  SqlCallLogRepo call_logs_;
};

/// A Source that is one connection: the one a transaction runs on.
class FixedSource final : public Source {
 public:
  explicit FixedSource(Connection& conn) : conn_(conn) {}
  core::Result<void> with(const std::function<core::Result<void>(Connection&)>& fn) override {
    return fn(conn_);
  }

 private:
  Connection& conn_;
};

/// A Source over the pool.
class PoolSource final : public Source {
 public:
  explicit PoolSource(Pool& pool) : pool_(pool) {}
  core::Result<void> with(const std::function<core::Result<void>(Connection&)>& fn) override {
    return pool_.with(fn);
  }

 private:
  Pool& pool_;
};

/// The store handed to a transaction callback: every call runs on the transaction's connection.
struct TxParts {
  explicit TxParts(Connection& conn) : source(conn) {}
  FixedSource source;
};
class TxStore final : private TxParts, public SqlStore {
 public:
  TxStore(Connection& conn, Shared& shared) : TxParts(conn), SqlStore(TxParts::source, shared) {}
};

/// Begin, run fn on a store bound to `conn`, then commit, or roll back on error or exception.
core::Result<void> run_transaction(Connection& conn, Shared& shared,
                                   const std::function<core::Result<void>(Store& tx)>& fn) {
  if (auto r = conn.begin(); !r) return r;
  core::Result<void> result;
  try {
    TxStore tx(conn, shared);
    result = fn(tx);
  } catch (const std::exception& e) {
    result = internal_error(std::string("a store transaction threw: ") + e.what());
  }
  if (!result) {
    (void)conn.rollback();
    return result;
  }
  return conn.commit();
}

core::Result<void> SqlStore::transaction(const std::function<core::Result<void>(Store& tx)>& fn) {
  return source_.with([&](Connection& c) { return run_transaction(c, shared_, fn); });
}

/// The store open_store() returns: a pool and what its views share.
struct PooledParts {
  PooledParts(const core::Clock& clock, Backend backend, Pool::Factory factory, std::size_t size)
      : shared{clock, IdGenerator(clock), backend}, pool(std::move(factory), size), source(pool) {}
  Shared shared;
  Pool pool;
  PoolSource source;
};
class PooledStore final : private PooledParts, public SqlStore {
 public:
  PooledStore(std::unique_ptr<core::Clock> own_clock, const core::Clock& clock, Backend backend,
              Pool::Factory factory, std::size_t size)
      : PooledParts(clock, backend, std::move(factory), size),
        SqlStore(PooledParts::source, PooledParts::shared),
        own_clock_(std::move(own_clock)) {}

  /// A connection of the pool, for the migration runner.
  core::Result<void> with_connection(const std::function<core::Result<void>(Connection&)>& fn) {
    return PooledParts::source.with(fn);
  }

 private:
  std::unique_ptr<core::Clock> own_clock_;
};

}  // namespace
}  // namespace detail

int latest_schema_version() noexcept {
  return detail::migrations().back().version;
}

core::Result<std::unique_ptr<Store>> open_store(std::string_view url_or_path,
                                                const StoreOptions& options) {
  using namespace detail;
  const std::string target(url_or_path);
  const bool postgres =
      target.rfind("postgresql://", 0) == 0 || target.rfind("postgres://", 0) == 0;
  Pool::Factory factory;
  std::size_t size = options.pool_size;
  if (postgres) {
    factory = [target] { return open_postgres(target); };
  } else {
    std::string path = target.rfind("sqlite://", 0) == 0 ? target.substr(9) : target;
    if (path.empty()) {
      return core::invalid("store.invalid",
                           "no database given; pass a SQLite file path or a postgresql:// URL",
                           "database");
    }
    if (path == ":memory:") {
      size = 1;  // every SQLite connection to ":memory:" is a database of its own
    } else {
      std::error_code ec;
      const auto parent = std::filesystem::path(path).parent_path();
      if (!parent.empty()) std::filesystem::create_directories(parent, ec);
      if (ec) {
        return core::io_error("store.unavailable", "cannot create the directory " +
                                                       parent.string() + ": " + ec.message());
      }
    }
    const int busy = options.busy_timeout_ms;
    factory = [path, busy] { return open_sqlite(path, busy); };
  }
  // Without a clock from the caller, the store owns a system clock (on the heap, so the
  // references to it stay valid when the pointer moves into the store).
  std::unique_ptr<core::Clock> own_clock;
  if (options.clock == nullptr) own_clock = std::make_unique<core::SystemClock>();
  const core::Clock& clock = options.clock ? *options.clock : *own_clock;
  auto store = std::make_unique<PooledStore>(std::move(own_clock), clock,
                                             postgres ? Backend::postgresql : Backend::sqlite,
                                             std::move(factory), size);
  const auto now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(clock.now().time_since_epoch()).count();
  std::optional<core::Result<int>> migrated;
  auto ran = store->with_connection([&](Connection& c) -> core::Result<void> {
    migrated.emplace(migrate(c, now_ms));
    return {};
  });
  if (!ran) return ran.error();
  if (!*migrated) return migrated->error();
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace openstation::store
