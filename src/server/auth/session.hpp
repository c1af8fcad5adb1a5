#pragma once
/// UI sessions and CSRF protection, as pure functions over header values.
///
/// A login creates a session token (the HttpOnly cookie `os_session`) and a CSRF token (returned
/// in the login response body and also set as the readable cookie `os_csrf`); the store keeps the
/// hashes of both. A request authenticated by the session cookie with an unsafe method must send
/// the CSRF token in the `X-CSRF-Token` header; requests with a bearer token (the CLI) carry no
/// ambient credential and are exempt. Cookies are SameSite=Strict, so browsers do not send them
/// on cross-site requests in the first place; the CSRF token is the second line.

#include "core/clock.hpp"
#include "core/error.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace openstation::server::auth {

/// The session cookie's name.
inline constexpr std::string_view kSessionCookie = "os_session";
/// The readable cookie that hands the CSRF token to the UI after a page reload.
inline constexpr std::string_view kCsrfCookie = "os_csrf";
/// The request header that must echo the CSRF token.
inline constexpr std::string_view kCsrfHeader = "X-CSRF-Token";

/// A new session's secrets: the tokens go to the browser, the hashes to the store.
struct NewSession {
  std::string session_token;  ///< "oss_..."
  std::string session_hash;   ///< SHA-256 hex of session_token
  std::string csrf_token;     ///< "osc_..."
  std::string csrf_hash;      ///< SHA-256 hex of csrf_token
};

/// Fresh random session and CSRF tokens with their hashes.
NewSession generate_session();

/// How long a session lives.
struct SessionLifetime {
  std::chrono::seconds idle{std::chrono::hours(8)};           ///< since the last request
  std::chrono::seconds absolute{std::chrono::hours(24 * 7)};  ///< since login
};

/// True while a session created at `created` and last used at `last_seen` is still valid at
/// `now` under `lifetime`.
bool session_alive(core::Clock::TimePoint created, core::Clock::TimePoint last_seen,
                   core::Clock::TimePoint now, const SessionLifetime& lifetime = {});

/// Attributes of a Set-Cookie header.
struct CookieOptions {
  bool http_only = true;  ///< invisible to scripts
  bool secure = true;     ///< set when the server speaks TLS; off for configured plain HTTP
  std::optional<std::chrono::seconds> max_age;  ///< none: a browser-session cookie
};

/// A Set-Cookie header value: `name=value; Path=/; Max-Age=N; HttpOnly; Secure; SameSite=Strict`
/// (Max-Age, HttpOnly and Secure as `options` say). `name` and `value` must be cookie-safe (our
/// tokens are).
std::string format_set_cookie(std::string_view name, std::string_view value,
                              const CookieOptions& options);

/// The Set-Cookie values that a login answers with: the HttpOnly session cookie and the
/// readable CSRF cookie, both with Max-Age = lifetime.absolute.
std::vector<std::string> login_cookies(const NewSession& session, bool secure,
                                       const SessionLifetime& lifetime = {});

/// The Set-Cookie values that a logout answers with: both cookies emptied with Max-Age=0.
std::vector<std::string> logout_cookies(bool secure);

/// The pairs of a Cookie request header ("a=1; b=2"), in order, as views into `header`. Pairs
/// without '=' are skipped; surrounding spaces and double quotes around a value are removed.
std::vector<std::pair<std::string_view, std::string_view>> parse_cookie_header(
    std::string_view header);

/// The value of the first cookie called `name` in a Cookie header, if any.
std::optional<std::string_view> find_cookie(std::string_view header, std::string_view name);

/// How a request proved who it is.
enum class AuthMethod {
  none,    ///< no credential
  cookie,  ///< the os_session cookie (the UI)
  bearer,  ///< Authorization: Bearer (the CLI, scripts)
};

/// A request's credential, chosen from its headers.
struct Credential {
  AuthMethod method = AuthMethod::none;
  std::string_view token;  ///< a view into the header it came from
};

/// The token from `Authorization: Bearer <token>` (scheme case-insensitive), if that is the
/// header's form.
std::optional<std::string_view> bearer_token(std::string_view authorization);

/// The request's credential: a bearer token when the Authorization header carries one (it wins),
/// else the session cookie, else none.
Credential find_credential(std::string_view authorization_header, std::string_view cookie_header);

/// True for GET, HEAD, OPTIONS and TRACE (methods are case-sensitive).
bool is_safe_method(std::string_view method) noexcept;

/// What the CSRF rule looks at.
struct CsrfInput {
  std::string_view method;
  AuthMethod auth = AuthMethod::none;
  std::optional<std::string_view> csrf_header;  ///< the X-CSRF-Token value, if sent
  std::string_view session_csrf_hash;           ///< the session's stored csrf_hash
};

/// The CSRF rule: ok for safe methods, for bearer and unauthenticated requests, and for cookie
/// requests whose X-CSRF-Token hashes to the session's csrf_hash (constant-time). Otherwise
/// error "auth.csrf_failed" (forbidden, field "X-CSRF-Token") saying what was missing.
core::Result<void> check_csrf(const CsrfInput& input);

}  // namespace openstation::server::auth
