#pragma once
/// The client CLI's connection to the management API (/api/v1): base URL, bearer token, JSON
/// requests, and the mapping of the API's error bodies to core::Error values.
///
/// Every call is blocking and opens its own connection. A reply with a 2xx status is a success
/// (its JSON body, or null for 204 and empty bodies); any other status becomes a core::Error built
/// from the API's {"error": {"code", "message", "field"}} body, with the category of the status
/// (400 → invalid_argument, 401 → unauthorized, 403 → forbidden, 404 → not_found, 409 →
/// conflict, 429 → resource_exhausted, 503 → unavailable, other 5xx → internal), so that the
/// CLI's exit code follows (2 for bad input, 1 otherwise). Network failures keep the http
/// module's codes ("http.connect", "http.timeout", ...) with a hint to check --server.
///
/// TLS: an https:// server is trusted either by the SHA-256 fingerprint of its certificate
/// (pinned; a different certificate is refused with "cli.certificate_changed") or by a CA file.

#include "core/error.hpp"
#include "http/message.hpp"

#include <boost/json/array.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <functional>
#include <string>
#include <string_view>

namespace openstation::cli {

/// How an https:// server is trusted. Neither set: only plain http:// servers are reachable.
struct TlsTrust {
  std::string fingerprint;  ///< "sha256:AB:CD:..." of the server's certificate (pinned)
  std::string ca_file;      ///< a PEM CA bundle to verify the server's certificate with
};

struct RestOptions {
  std::string server;  ///< base URL without /api/v1: "https://host:32206"
  std::string token;   ///< bearer session token; "" for unauthenticated calls (login)
  TlsTrust trust;
  std::chrono::milliseconds timeout{30000};  ///< per request
};

/// A blocking client of /api/v1. Copyable; calls share nothing.
class RestClient {
 public:
  explicit RestClient(RestOptions options) : options_(std::move(options)) {}

  const RestOptions& options() const { return options_; }

  /// GET /api/v1`path` ("/nodes", "/services/chat?x=1") → the JSON body.
  core::Result<boost::json::value> get(std::string_view path) const;
  /// POST with a JSON body (an empty object when `body` is null).
  core::Result<boost::json::value> post(std::string_view path,
                                        const boost::json::value& body = nullptr) const;
  /// POST with a body of another type (CSV for users/import).
  core::Result<boost::json::value> post_text(std::string_view path, std::string body,
                                             std::string content_type) const;
  core::Result<boost::json::value> patch(std::string_view path,
                                         const boost::json::value& body) const;
  core::Result<boost::json::value> del(std::string_view path) const;

  /// GETs a list endpoint and follows next_cursor until the last page; the items of all pages.
  core::Result<boost::json::array> list_all(std::string_view path) const;

  /// GET whose body is handed to `on_data` piece by piece as it arrives (logs --follow); returns
  /// when the body ends or `on_data` returns false. A non-2xx reply is an error as above.
  /// `idle_timeout` bounds each wait for more bytes (zero: wait forever).
  core::Result<void> stream(std::string_view path,
                            const std::function<bool(std::string_view)>& on_data,
                            std::chrono::milliseconds idle_timeout) const;

  /// The raw call: method, path under /api/v1, body with its content type. Returns the
  /// response whatever its status; errors only for network failures.
  core::Result<http::Response> raw(std::string_view method, std::string_view path,
                                   std::string body = {},
                                   std::string_view content_type = "application/json") const;

 private:
  http::Headers headers(std::string_view content_type) const;
  core::Error network_error(const core::Error& e) const;
  core::Result<boost::json::value> json_call(std::string_view method, std::string_view path,
                                             std::string body, std::string_view content_type) const;

  RestOptions options_;
};

/// The core::Error of a non-2xx reply: the API's error body when present (code, message, field),
/// else "api.http_<status>" with the status line and the start of the body.
core::Error error_from_response(int status, std::string_view body);
/// The error category of an HTTP status.
core::Errc category_for_status(int status);
/// Percent-encodes one path segment or query value ("my model" → "my%20model").
std::string url_encode(std::string_view s);

}  // namespace openstation::cli
