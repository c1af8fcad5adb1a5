// PostgreSQL connection over libpqxx 6.4: prepared statements cached per connection; a transaction
// is a pqxx::work, nested ones are savepoints; every statement inside a transaction runs in its
// own savepoint so a failed statement (a unique violation the caller handles) does not poison the
// rest of the transaction.

#include "store/detail/db.hpp"

#include <pqxx/pqxx>

#include <string>
#include <unordered_map>

namespace openstation::store::detail {
namespace {

/// "a = ? AND b = ?" → "a = $1 AND b = $2" (outside quoted literals).
std::string number_placeholders(std::string_view sql) {
  std::string out;
  out.reserve(sql.size() + 8);
  int n = 0;
  bool quoted = false;
  for (char c : sql) {
    if (c == '\'') quoted = !quoted;
    if (c == '?' && !quoted) {
      out += '$';
      out += std::to_string(++n);
    } else {
      out += c;
    }
  }
  return out;
}

class PgConnection final : public Connection {
 public:
  explicit PgConnection(const std::string& url) : conn_(url) {}
  ~PgConnection() override = default;  // an open pqxx::work aborts
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  Backend backend() const override { return Backend::postgresql; }
  bool healthy() const override { return healthy_ && work_ == nullptr; }

  core::Result<Rows> exec(std::string_view sql, const Params& params) override {
    return guard([&]() -> Rows {
      const auto& name = prepared(sql);
      std::vector<std::string> texts(params.size());
      std::vector<const char*> ptrs(params.size(), nullptr);
      for (std::size_t i = 0; i < params.size(); ++i) {
        const Value& v = params[i];
        if (std::holds_alternative<std::monostate>(v)) continue;
        if (const auto* n = std::get_if<std::int64_t>(&v)) {
          texts[i] = std::to_string(*n);
        } else if (const auto* d = std::get_if<double>(&v)) {
          texts[i] = pqxx::to_string(*d);
        } else {
          texts[i] = std::get<std::string>(v);
        }
        ptrs[i] = texts[i].c_str();
      }
      auto run = [&](pqxx::transaction_base& tx) {
        return tx.exec_prepared(name, pqxx::prepare::make_dynamic_params(ptrs));
      };
      if (work_ == nullptr) {
        pqxx::nontransaction tx(conn_);
        return convert(run(tx));
      }
      work_->exec("SAVEPOINT os_stmt");
      pqxx::result result;
      try {
        result = run(*work_);
      } catch (const pqxx::sql_error&) {
        work_->exec("ROLLBACK TO SAVEPOINT os_stmt");
        throw;
      }
      work_->exec("RELEASE SAVEPOINT os_stmt");
      return convert(result);
    });
  }

  core::Result<void> exec_script(std::string_view sql) override {
    auto r = guard([&]() -> Rows {
      const std::string text(sql);
      if (work_ == nullptr) {
        pqxx::nontransaction tx(conn_);
        tx.exec(text);
      } else {
        work_->exec(text);
      }
      return {};
    });
    if (!r) return r.error();
    return {};
  }

  core::Result<void> begin() override {
    auto r = guard([&]() -> Rows {
      if (depth_ == 0) {
        work_ = std::make_unique<pqxx::work>(conn_);
      } else {
        work_->exec("SAVEPOINT " + savepoint(depth_));
      }
      return {};
    });
    if (!r) return r.error();
    ++depth_;
    return {};
  }

  core::Result<void> commit() override {
    if (depth_ == 0) return internal_error("commit without a transaction");
    if (depth_ > 1) {
      auto r = guard([&]() -> Rows {
        work_->exec("RELEASE SAVEPOINT " + savepoint(depth_ - 1));
        return {};
      });
      if (!r) {
        (void)rollback();
        return r.error();
      }
      --depth_;
      return {};
    }
    auto r = guard([&]() -> Rows {
      work_->commit();
      return {};
    });
    work_.reset();  // a failed commit ends the transaction too
    depth_ = 0;
    if (!r) return r.error();
    return {};
  }

  core::Result<void> rollback() override {
    if (depth_ == 0) return internal_error("rollback without a transaction");
    --depth_;
    auto r = guard([&]() -> Rows {
      if (depth_ == 0) {
        work_->abort();
      } else {
        const auto sp = savepoint(depth_);
        work_->exec("ROLLBACK TO SAVEPOINT " + sp + "; RELEASE SAVEPOINT " + sp);
      }
      return {};
    });
    if (depth_ == 0) work_.reset();
    if (!r) return r.error();
    return {};
  }

 private:
  const std::string& prepared(std::string_view sql) {
    const std::string key(sql);
    auto it = statements_.find(key);
    if (it == statements_.end()) {
      std::string name = "os" + std::to_string(statements_.size());
      conn_.prepare(name, number_placeholders(sql));
      it = statements_.emplace(key, std::move(name)).first;
    }
    return it->second;
  }

  static std::string savepoint(int depth) { return "os_sp" + std::to_string(depth); }

  static Rows convert(const pqxx::result& result) {
    Rows out;
    out.affected = result.affected_rows();
    out.rows.reserve(result.size());
    for (const auto& r : result) {
      Row row;
      row.reserve(r.size());
      for (const auto& f : r) {
        if (f.is_null()) {
          row.emplace_back(std::monostate{});
        } else {
          row.emplace_back(std::string(f.c_str(), f.size()));
        }
      }
      out.rows.push_back(std::move(row));
    }
    return out;
  }

  /// Runs f and turns libpqxx's exceptions into store errors.
  template <class F>
  core::Result<Rows> guard(F&& f) {
    try {
      return f();
    } catch (const pqxx::unique_violation& e) {
      return core::Error(core::Errc::conflict, std::string(kUniqueViolation), e.what());
    } catch (const pqxx::foreign_key_violation& e) {
      return core::Error(core::Errc::conflict, std::string(kForeignKeyViolation), e.what());
    } catch (const pqxx::broken_connection& e) {
      healthy_ = false;
      return unavailable_error(std::string("lost the connection to PostgreSQL: ") + e.what());
    } catch (const pqxx::in_doubt_error& e) {
      healthy_ = false;
      return unavailable_error(std::string("PostgreSQL commit outcome unknown: ") + e.what());
    } catch (const pqxx::sql_error& e) {
      const std::string& state = e.sqlstate();
      // Class 08: connection exceptions; 57P0x: the server is shutting down or restarting;
      // 40001/40P01: serialization failure or deadlock, worth retrying.
      if (state.rfind("08", 0) == 0 || state.rfind("57P0", 0) == 0) {
        healthy_ = false;
        return unavailable_error(std::string("PostgreSQL is not available: ") + e.what());
      }
      if (state == "40001" || state == "40P01") {
        return unavailable_error(std::string("PostgreSQL aborted a conflicting write: ") +
                                 e.what() + "; retry");
      }
      return internal_error(std::string("PostgreSQL statement failed: ") + e.what());
    } catch (const std::exception& e) {
      if (!conn_.is_open()) healthy_ = false;
      return internal_error(std::string("PostgreSQL: ") + e.what());
    }
  }

  pqxx::connection conn_;
  std::unique_ptr<pqxx::work> work_;
  int depth_ = 0;
  std::unordered_map<std::string, std::string> statements_;
  bool healthy_ = true;
};

}  // namespace

core::Result<std::unique_ptr<Connection>> open_postgres(const std::string& url) {
  try {
    return std::unique_ptr<Connection>(std::make_unique<PgConnection>(url));
  } catch (const std::exception& e) {
    std::string msg = e.what();
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    return unavailable_error("cannot connect to PostgreSQL: " + msg +
                             "; check the --database URL, that the server runs and accepts "
                             "this user");
  }
}

}  // namespace openstation::store::detail
