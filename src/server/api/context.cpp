// GCC 12 reports a false -Wmismatched-new-delete on Asio coroutine frames (awaitable_frame_base
// has its own operator new/delete); the frames are allocated and freed by the same pair.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include "server/api/context.hpp"

#include "core/json.hpp"
#include "core/pool_thread_names.hpp"
#include "server/auth/token.hpp"

#include <spdlog/spdlog.h>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <exception>
#include <limits>

namespace openstation::server {

namespace {

/// How often a session's last_seen_at is written back at most: a store write per request would
/// be wasted work, and the idle timeout is measured in hours.
constexpr std::chrono::seconds kTouchInterval{30};

core::Error unauthenticated(std::string message) {
  return {core::Errc::unauthorized, "auth.unauthenticated", std::move(message)};
}

auth::LoginLimits login_limits(const config::Config& c) {
  auth::LoginLimits limits;
  const auto per_minute = c.server.login_attempts_per_minute;
  if (per_minute == 0) {
    limits.user_failures = std::numeric_limits<std::size_t>::max();
    limits.address_failures = std::numeric_limits<std::size_t>::max();
  } else {
    limits.user_failures = per_minute;
    limits.address_failures = per_minute;
  }
  limits.user_window = std::chrono::minutes(1);
  limits.address_window = std::chrono::minutes(1);
  return limits;
}

}  // namespace

ApiContext::ApiContext(Options options)
    : options_(std::move(options)),
      store_(options_.store),
      clock_(options_.clock),
      pool_(std::make_unique<boost::asio::thread_pool>(worker_count())) {
  if (store_ == nullptr) throw std::invalid_argument("ApiContext needs a store");
  core::name_pool_threads(*pool_, worker_count(), "api-worker");
  if (clock_ == nullptr) {
    owned_clock_ = std::make_unique<core::SystemClock>();
    clock_ = owned_clock_.get();
  }
  limiter_ = std::make_unique<auth::LoginLimiter>(*clock_, login_limits(options_.config));
}

ApiContext::~ApiContext() {
  drain();
}

void ApiContext::drain() {
  pool_->join();
}

auth::SessionLifetime ApiContext::session_lifetime() const {
  auth::SessionLifetime lifetime;
  const auto ttl = std::chrono::ceil<std::chrono::seconds>(options_.config.server.session_ttl);
  if (ttl.count() > 0) lifetime.idle = ttl;
  lifetime.absolute = std::max(lifetime.absolute, lifetime.idle);
  return lifetime;
}

const std::string& ApiContext::dummy_password_hash() {
  std::call_once(dummy_once_, [this] {
    auto hash = auth::hash_password(auth::generate_password(), options_.password_hash_limits);
    // A hash that fails to compute leaves the dummy empty; verify_password is then simply false,
    // only faster, which costs timing uniformity but never correctness.
    if (hash) dummy_hash_ = std::move(*hash);
  });
  return dummy_hash_;
}

void ApiContext::keys_changed() {
  if (!options_.on_keys_changed) return;
  try {
    options_.on_keys_changed();
  } catch (const std::exception& e) {
    spdlog::error("api: republishing the key snapshot failed: {}", e.what());
  }
}

void ApiContext::model_deleted(const store::Model& model) {
  if (!options_.on_model_deleted) return;
  try {
    options_.on_model_deleted(model);
  } catch (const std::exception& e) {
    spdlog::error("api: freeing the files of model {} failed: {}", model.name, e.what());
  }
}

http::Awaitable<core::Result<Caller>> ApiContext::authenticate(const http::Request& req,
                                                               Access access) {
  co_return co_await blocking([this, &req, access] { return authenticate_blocking(req, access); });
}

core::Result<Caller> ApiContext::authenticate_blocking(const http::Request& req, Access access) {
  const auto credential = auth::find_credential(req.headers.get_or("Authorization", ""),
                                                req.headers.get_or("Cookie", ""));
  if (credential.method == auth::AuthMethod::none) {
    return unauthenticated(
        "This request needs a login: send 'Authorization: Bearer <token>' with the token from "
        "POST /api/v1/auth/login (or log in again with 'openstation login').");
  }
  const std::string hash = auth::hash_token(credential.token);
  auto session = store_->sessions().get(hash);
  if (!session) {
    if (session.error().code != "store.not_found") return session.error();
    return unauthenticated(
        "The session token is not valid (it was logged out, revoked or never issued); log in "
        "again.");
  }
  const auto now = clock_->now();
  if (!auth::session_alive(session->created_at, session->last_seen_at, now, session_lifetime()) ||
      now >= session->expires_at) {
    if (auto removed = store_->sessions().remove(hash); !removed) {
      spdlog::warn("api: removing an expired session failed: {}", removed.error().message);
    }
    return core::Error{core::Errc::unauthorized, "auth.session_expired",
                       "The session has expired; log in again."};
  }
  if (auto csrf = auth::check_csrf({req.method, credential.method,
                                    req.headers.get(auth::kCsrfHeader), session->csrf_token_hash});
      !csrf) {
    return csrf.error();
  }
  auto user = store_->users().get(session->user_id);
  if (!user) {
    if (user.error().code != "store.not_found") return user.error();
    return unauthenticated("The session's user no longer exists; log in as another user.");
  }
  if (user->disabled) {
    return core::Error{core::Errc::forbidden, "auth.user_disabled",
                       "The user '" + user->username + "' is disabled; ask an admin to enable it."};
  }
  if (user->must_change_password && access != Access::any_session) {
    return core::Error{core::Errc::forbidden, "auth.password_change_required",
                       "The password must be changed before anything else: POST "
                       "/api/v1/auth/password (or 'openstation login' asks for a new one)."};
  }
  if (access == Access::admin && user->role != store::Role::admin) {
    return core::Error{
        core::Errc::forbidden, "auth.forbidden",
        "Only admins may do this; the user '" + user->username + "' has the role 'user'."};
  }
  if (now - session->last_seen_at >= kTouchInterval) {
    session->last_seen_at = now;
    if (auto touched = store_->sessions().update(*session); !touched) {
      spdlog::warn("api: updating the session's last use failed: {}", touched.error().message);
    }
  }
  Caller caller;
  caller.user = std::move(*user);
  caller.method = credential.method;
  caller.session_hash = hash;
  return caller;
}

void ApiContext::audit(std::string_view actor, std::string_view action,
                       std::string_view target_kind, std::string_view target_id,
                       const boost::json::object& detail) {
  if (auto r = audit_in(*store_, actor, action, target_kind, target_id, detail); !r) {
    spdlog::error("api: writing the audit event {} by {} failed: {}", action, actor,
                  r.error().message);
  }
}

core::Result<void> ApiContext::audit_in(store::Store& tx, std::string_view actor,
                                        std::string_view action, std::string_view target_kind,
                                        std::string_view target_id,
                                        const boost::json::object& detail) {
  store::Event event;
  event.actor = std::string(actor);
  event.action = std::string(action);
  event.target_kind = std::string(target_kind);
  event.target_id = std::string(target_id);
  event.detail_json = detail.empty() ? std::string() : boost::json::serialize(detail);
  auto appended = tx.events().append(std::move(event));
  if (!appended) return appended.error();
  return {};
}

core::Result<boost::json::object> parse_body(const http::Request& req) {
  if (req.body.find_first_not_of(" \t\r\n") == std::string::npos) {
    return core::invalid("api.bad_json",
                         "The request body is empty; send a JSON object (Content-Type: "
                         "application/json).");
  }
  auto parsed = core::json::capture([&] { return core::json::parse(req.body, "request body"); });
  if (!parsed) return core::invalid("api.bad_json", parsed.error().message);
  if (!parsed->is_object()) {
    return core::invalid("api.bad_json", "The request body must be a JSON object ({...}).");
  }
  return std::move(parsed->as_object());
}

http::Response json_response(const boost::json::value& v, int status) {
  return http::Response::json(status, boost::json::serialize(v));
}

http::Response error_response(const core::Error& e,
                              std::optional<std::chrono::seconds> retry_after) {
  const int status = e.code == "auth.rate_limited" ? 429 : core::http_status(e.category);
  auto response = http::Response::error(status, e);
  if (retry_after) {
    response.headers.set("Retry-After",
                         std::to_string(std::max<std::int64_t>(1, retry_after->count())));
  }
  return response;
}

core::Result<store::PageRequest> page_request(const http::Request& req) {
  store::PageRequest page;
  if (auto limit = req.query_param("limit")) {
    long long value = 0;
    const auto* end = limit->data() + limit->size();
    auto [ptr, ec] = std::from_chars(limit->data(), end, value);
    if (limit->empty() || ec != std::errc() || ptr != end || value < 1 || value > 1000) {
      return core::invalid("api.bad_query",
                           "limit must be a whole number from 1 to 1000, got '" + *limit + "'",
                           "limit");
    }
    page.limit = static_cast<std::size_t>(value);
  }
  if (auto cursor = req.query_param("cursor")) page.cursor = *cursor;
  return page;
}

std::string format_time(core::Clock::TimePoint t) {
  using namespace std::chrono;
  const auto ms = time_point_cast<milliseconds>(t);
  const auto day = floor<days>(ms);
  const year_month_day ymd{day};
  const hh_mm_ss hms{ms - day};
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ",
                static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()), static_cast<int>(hms.hours().count()),
                static_cast<int>(hms.minutes().count()), static_cast<int>(hms.seconds().count()),
                static_cast<int>(hms.subseconds().count()));
  return buf;
}

boost::json::value format_time_or_null(const std::optional<core::Clock::TimePoint>& t) {
  if (!t) return nullptr;
  return boost::json::value(format_time(*t));
}

core::Result<core::Clock::TimePoint> parse_time(std::string_view text, std::string_view field) {
  auto bad = [&] {
    return core::invalid("api.bad_time",
                         std::string(field) +
                             " must be an RFC 3339 time such as "
                             "2026-11-27T22:00:00Z, got '" +
                             std::string(text) + "'",
                         std::string(field));
  };
  std::size_t pos = 0;
  auto number = [&](std::size_t digits, int& out) {
    if (pos + digits > text.size()) return false;
    out = 0;
    for (std::size_t i = 0; i < digits; ++i) {
      const char c = text[pos + i];
      if (c < '0' || c > '9') return false;
      out = out * 10 + (c - '0');
    }
    pos += digits;
    return true;
  };
  auto expect = [&](std::string_view chars) {
    if (pos >= text.size() || chars.find(text[pos]) == std::string_view::npos) return false;
    ++pos;
    return true;
  };
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
  if (!number(4, y) || !expect("-") || !number(2, mo) || !expect("-") || !number(2, d) ||
      !expect("Tt ") || !number(2, h) || !expect(":") || !number(2, mi) || !expect(":") ||
      !number(2, s)) {
    return bad();
  }
  using namespace std::chrono;
  nanoseconds fraction{0};
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    std::int64_t scale = 100000000;
    const std::size_t start = pos;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      fraction += nanoseconds((text[pos] - '0') * scale);
      scale /= 10;
      ++pos;
    }
    if (pos == start) return bad();
  }
  minutes offset{0};
  if (expect("Zz")) {
  } else if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
    const int sign = text[pos] == '+' ? 1 : -1;
    ++pos;
    int oh = 0, om = 0;
    if (!number(2, oh) || !expect(":") || !number(2, om) || oh > 23 || om > 59) return bad();
    offset = minutes(sign * (oh * 60 + om));
  } else {
    return bad();
  }
  if (pos != text.size()) return bad();
  const year_month_day ymd{year(y), month(static_cast<unsigned>(mo)),
                           day(static_cast<unsigned>(d))};
  if (!ymd.ok() || h > 23 || mi > 59 || s > 60) return bad();
  const auto t = sys_days(ymd) + hours(h) + minutes(mi) + seconds(std::min(s, 59)) - offset;
  return time_point_cast<core::Clock::Duration>(t) + fraction;
}

}  // namespace openstation::server
