#pragma once
/// What every REST route group of the management API (/api/v1) shares: the store, the clock, the
/// configuration, a worker pool for blocking store calls, authentication of the caller, body
/// parsing with the project's rules, and the audit trail.
///
/// Route groups are free functions `register_<group>_routes(http::Server&, ApiContext&)` (see
/// api/routes.hpp); each handler authenticates with `ctx.authenticate(req, Access::...)`, parses
/// its body with `parse_body`, does its store work inside `ctx.blocking(...)` and answers with
/// `json_response` or `error_response`. Errors are always {"error": {"code", "message", "field"}}
/// with the status of their category (docs/api.md lists the codes).

#include "config/config.hpp"
#include "core/clock.hpp"
#include "core/error.hpp"
#include "http/asio.hpp"
#include "http/message.hpp"
#include "server/auth/login_limiter.hpp"
#include "server/auth/password.hpp"
#include "server/auth/session.hpp"
#include "server/instance_progress.hpp"
#include "store/store.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/object.hpp>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

namespace openstation::server {

/// Who is calling, once authenticated.
struct Caller {
  store::User user{};
  auth::AuthMethod method = auth::AuthMethod::none;
  std::string session_hash{};  ///< the session's token hash (cookie or bearer session)

  bool is_admin() const { return user.role == store::Role::admin; }
  /// The audit trail's actor: the user name.
  const std::string& actor() const { return user.username; }
};

/// What a route requires of its caller.
enum class Access {
  user,   ///< any logged-in, enabled user whose password need not be changed first
  admin,  ///< an admin (403 "auth.forbidden" otherwise)
  /// Any logged-in user, even one who must still change the password (the password-change and
  /// "who am I" routes).
  any_session,
};

/// Shared state of the management API. Thread-safe.
class ApiContext {
 public:
  struct Options {
    store::Store* store = nullptr;       ///< required; outlives the context
    const core::Clock* clock = nullptr;  ///< nullptr: the system clock
    config::Config config{};             ///< the effective configuration
    std::size_t worker_threads = 4;      ///< threads for blocking work (store calls)
    bool secure_cookies = true;          ///< false when the server speaks plain HTTP
    /// argon2id cost for stored passwords; tests pass PasswordHashLimits::minimum().
    auth::PasswordHashLimits password_hash_limits = auth::PasswordHashLimits::interactive();
    /// Called (on the worker pool) after API keys or users changed in a way the gateway's key
    /// snapshot must see (a key created or revoked; a user disabled, enabled, deleted or given
    /// another role). The server republishes its KeySnapshot here. Empty: nothing to do.
    std::function<void()> on_keys_changed{};
    /// Called (on the worker pool) after a model was deleted from the library: the download
    /// manager cancels its download and frees its files. Empty: nothing to do.
    std::function<void(const store::Model&)> on_model_deleted{};
  };

  explicit ApiContext(Options options);
  ~ApiContext();  ///< joins the worker pool (drain())
  /// Waits for the blocking work in flight and ends the worker pool: call it after the HTTP
  /// server stopped and before it is destroyed, since a pool thread that has just resumed a
  /// request on one of the server's I/O contexts still holds that context's executor. No
  /// blocking() may come after it. Idempotent.
  void drain();
  ApiContext(const ApiContext&) = delete;
  ApiContext& operator=(const ApiContext&) = delete;

  store::Store& store() const { return *store_; }
  const core::Clock& clock() const { return *clock_; }
  const config::Config& config() const { return options_.config; }
  bool secure_cookies() const { return options_.secure_cookies; }
  auth::LoginLimiter& login_limiter() { return *limiter_; }
  /// The model-file progress of preparing instances, from the agents' heartbeats.
  InstanceProgress& instance_progress() { return progress_; }
  /// Idle timeout = config server.session_ttl; absolute = 7 days (or the idle timeout when that
  /// is longer).
  auth::SessionLifetime session_lifetime() const;
  const auth::PasswordHashLimits& password_hash_limits() const {
    return options_.password_hash_limits;
  }
  /// An argon2id hash (made once, lazily, with password_hash_limits()) of a random password that
  /// nobody knows: the login verifies against it when the user does not exist, so an unknown
  /// user costs the same time as a wrong password. Call on the worker pool.
  const std::string& dummy_password_hash();
  /// Runs Options::on_keys_changed, if any (exceptions are logged and swallowed).
  void keys_changed();
  /// Runs Options::on_model_deleted, if any (exceptions are logged and swallowed).
  void model_deleted(const store::Model& model);

  /// Runs blocking `fn` (store calls, hashing) on the worker pool and resumes the calling
  /// coroutine with its result on the caller's executor.
  template <class F>
  http::Awaitable<std::invoke_result_t<F>> blocking(F fn) {
    using R = std::invoke_result_t<F>;
    // A named local, not a temporary lambda inside the co_await expression: GCC 12 destroys
    // such temporaries' captures twice.
    auto work = [f = std::move(fn)]() mutable -> http::Awaitable<R> { co_return f(); };
    co_return co_await boost::asio::co_spawn(pool_->get_executor(), std::move(work),
                                             boost::asio::use_awaitable);
  }

  /// Authenticates the request: a bearer session token (CLI) or the session cookie (UI, with the
  /// CSRF rule for unsafe methods). Touches the session's last_seen_at. Errors:
  /// "auth.unauthenticated" (401) without a valid credential, "auth.session_expired" (401),
  /// "auth.user_disabled" (403), "auth.password_change_required" (403) while the user must
  /// change the password (except Access::any_session), "auth.forbidden" (403) for a non-admin on
  /// an admin route, "auth.csrf_failed" (403).
  http::Awaitable<core::Result<Caller>> authenticate(const http::Request& req, Access access);
  /// The same, synchronously, for code already on the worker pool.
  core::Result<Caller> authenticate_blocking(const http::Request& req, Access access);

  /// Appends an audit event (errors are logged, never returned: the audit trail must not fail a
  /// request that already happened). Call on the worker pool.
  void audit(std::string_view actor, std::string_view action, std::string_view target_kind,
             std::string_view target_id, const boost::json::object& detail = {});
  /// Appends an audit event through `tx`, inside the caller's transaction, so the event and the
  /// change it records commit or roll back together. Returns the store's error.
  static core::Result<void> audit_in(store::Store& tx, std::string_view actor,
                                     std::string_view action, std::string_view target_kind,
                                     std::string_view target_id,
                                     const boost::json::object& detail = {});

 private:
  /// The worker pool's threads (at least one).
  std::size_t worker_count() const { return std::max<std::size_t>(1, options_.worker_threads); }

  Options options_;
  store::Store* store_;
  const core::Clock* clock_;
  std::unique_ptr<core::Clock> owned_clock_;
  std::unique_ptr<auth::LoginLimiter> limiter_;
  std::unique_ptr<boost::asio::thread_pool> pool_;
  InstanceProgress progress_;
  std::once_flag dummy_once_;
  std::string dummy_hash_;
};

/// Parses a JSON object body. Errors: "api.bad_json" (invalid_argument) for an empty body, text
/// that is not JSON or not an object, naming line and column.
core::Result<boost::json::object> parse_body(const http::Request& req);

/// A 200 (or `status`) JSON response from a value.
http::Response json_response(const boost::json::value& v, int status = 200);
/// The project's error response with the status of the error's category; `retry_after` adds a
/// Retry-After header (login rate limiting answers 429 with it).
http::Response error_response(const core::Error& e,
                              std::optional<std::chrono::seconds> retry_after = std::nullopt);

/// The optional `limit` and `cursor` query parameters of a list endpoint (limit 1..1000, default
/// 100). Error "api.bad_query" naming the parameter.
core::Result<store::PageRequest> page_request(const http::Request& req);

/// Milliseconds-since-epoch time as RFC 3339 UTC with milliseconds ("2026-11-27T22:00:39.123Z");
/// used for every time field the API returns.
std::string format_time(core::Clock::TimePoint t);
/// The inverse of `format_time`: an RFC 3339 time ("2026-11-27T22:00:39Z", fractional seconds
/// and a "+hh:mm"/"-hh:mm" offset or "Z" accepted; "t"/"z" too). Error "api.bad_time"
/// (invalid_argument, field `field`) naming the expected form.
core::Result<core::Clock::TimePoint> parse_time(std::string_view text, std::string_view field);
/// `format_time` of an optional time, or JSON null.
boost::json::value format_time_or_null(const std::optional<core::Clock::TimePoint>& t);

}  // namespace openstation::server
