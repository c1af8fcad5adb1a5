#include "server/auth/session.hpp"

#include "server/auth/crypto.hpp"
#include "server/auth/token.hpp"

#include <algorithm>
#include <cctype>

namespace openstation::server::auth {
namespace {

std::string_view trim_ows(std::string_view s) {
  const auto ows = [](char c) { return c == ' ' || c == '\t'; };
  while (!s.empty() && ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && ows(s.back())) s.remove_suffix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

core::Error csrf_error(std::string message) {
  return {core::Errc::forbidden, "auth.csrf_failed", std::move(message), std::string(kCsrfHeader)};
}

}  // namespace

NewSession generate_session() {
  NewSession s;
  s.session_token = generate_token(TokenKind::session);
  s.session_hash = hash_token(s.session_token);
  s.csrf_token = generate_token(TokenKind::csrf);
  s.csrf_hash = hash_token(s.csrf_token);
  return s;
}

bool session_alive(core::Clock::TimePoint created, core::Clock::TimePoint last_seen,
                   core::Clock::TimePoint now, const SessionLifetime& lifetime) {
  return now < created + lifetime.absolute && now < last_seen + lifetime.idle;
}

std::string format_set_cookie(std::string_view name, std::string_view value,
                              const CookieOptions& options) {
  std::string out;
  out.reserve(name.size() + value.size() + 80);
  out.append(name).append("=").append(value).append("; Path=/");
  if (options.max_age) out.append("; Max-Age=").append(std::to_string(options.max_age->count()));
  if (options.http_only) out.append("; HttpOnly");
  if (options.secure) out.append("; Secure");
  out.append("; SameSite=Strict");
  return out;
}

std::vector<std::string> login_cookies(const NewSession& session, bool secure,
                                       const SessionLifetime& lifetime) {
  return {
      format_set_cookie(kSessionCookie, session.session_token, {true, secure, lifetime.absolute}),
      format_set_cookie(kCsrfCookie, session.csrf_token, {false, secure, lifetime.absolute})};
}

std::vector<std::string> logout_cookies(bool secure) {
  const std::chrono::seconds zero{0};
  return {format_set_cookie(kSessionCookie, "", {true, secure, zero}),
          format_set_cookie(kCsrfCookie, "", {false, secure, zero})};
}

std::vector<std::pair<std::string_view, std::string_view>> parse_cookie_header(
    std::string_view header) {
  std::vector<std::pair<std::string_view, std::string_view>> out;
  while (!header.empty()) {
    const auto semi = header.find(';');
    auto pair = header.substr(0, semi);
    header = semi == std::string_view::npos ? std::string_view{} : header.substr(semi + 1);
    const auto eq = pair.find('=');
    if (eq == std::string_view::npos) continue;
    const auto name = trim_ows(pair.substr(0, eq));
    auto value = trim_ows(pair.substr(eq + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
      value = value.substr(1, value.size() - 2);
    }
    if (!name.empty()) out.emplace_back(name, value);
  }
  return out;
}

std::optional<std::string_view> find_cookie(std::string_view header, std::string_view name) {
  for (const auto& [n, v] : parse_cookie_header(header)) {
    if (n == name) return v;
  }
  return std::nullopt;
}

std::optional<std::string_view> bearer_token(std::string_view authorization) {
  authorization = trim_ows(authorization);
  const auto space = authorization.find(' ');
  if (space == std::string_view::npos || !iequals(authorization.substr(0, space), "Bearer")) {
    return std::nullopt;
  }
  const auto token = trim_ows(authorization.substr(space + 1));
  if (token.empty()) return std::nullopt;
  return token;
}

Credential find_credential(std::string_view authorization_header, std::string_view cookie_header) {
  if (const auto token = bearer_token(authorization_header)) {
    return {AuthMethod::bearer, *token};
  }
  if (const auto cookie = find_cookie(cookie_header, kSessionCookie); cookie && !cookie->empty()) {
    return {AuthMethod::cookie, *cookie};
  }
  return {};
}

bool is_safe_method(std::string_view method) noexcept {
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "TRACE";
}

core::Result<void> check_csrf(const CsrfInput& input) {
  if (is_safe_method(input.method) || input.auth != AuthMethod::cookie) return {};
  if (!input.csrf_header || input.csrf_header->empty()) {
    return csrf_error(std::string(input.method) +
                      " with a session cookie needs the X-CSRF-Token header; send the csrf_token "
                      "from the login response (or the os_csrf cookie)");
  }
  if (input.session_csrf_hash.empty() ||
      !verify_token(trim_ows(*input.csrf_header), input.session_csrf_hash)) {
    return csrf_error(
        "The X-CSRF-Token header does not match this session; reload the page or log in again");
  }
  return {};
}

}  // namespace openstation::server::auth
