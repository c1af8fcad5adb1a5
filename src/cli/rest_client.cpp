#include "cli/rest_client.hpp"

#include "core/json.hpp"
#include "core/url.hpp"
#include "http/client.hpp"
#include "http/tls.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include <optional>

namespace openstation::cli {

namespace {

constexpr std::string_view kApiPrefix = "/api/v1";

http::TlsClientOptions tls_options(const TlsTrust& trust) {
  http::TlsClientOptions tls;
  if (!trust.ca_file.empty()) {
    tls.ca_file = trust.ca_file;
  } else {
    tls.pinned_sha256 = trust.fingerprint;
  }
  return tls;
}

std::string serialize_body(const boost::json::value& body) {
  return body.is_null() ? std::string("{}") : boost::json::serialize(body);
}

}  // namespace

core::Errc category_for_status(int status) {
  switch (status) {
    case 400:
    case 405:
    case 411:
    case 413:
    case 415:
    case 422:
    case 431: return core::Errc::invalid_argument;
    case 401: return core::Errc::unauthorized;
    case 403: return core::Errc::forbidden;
    case 404: return core::Errc::not_found;
    case 409:
    case 412: return core::Errc::conflict;
    case 429: return core::Errc::resource_exhausted;
    case 502:
    case 503:
    case 504: return core::Errc::unavailable;
    default: break;
  }
  if (status >= 400 && status < 500) return core::Errc::invalid_argument;
  return core::Errc::internal;
}

core::Error error_from_response(int status, std::string_view body) {
  const auto category = category_for_status(status);
  if (auto e = http::parse_error_body(body); e.found) {
    if (e.code.empty()) e.code = "api.http_" + std::to_string(status);
    if (e.message.empty()) e.message = "the server answered " + std::to_string(status);
    return core::Error(category, std::move(e.code), std::move(e.message), std::move(e.field));
  }
  std::string excerpt(body.substr(0, 200));
  for (auto& c : excerpt) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  std::string message = "the server answered " + std::to_string(status) + " " +
                        std::string(http::reason_phrase(status));
  if (!excerpt.empty()) message += ": " + excerpt;
  return core::Error(category, "api.http_" + std::to_string(status), std::move(message));
}

std::string url_encode(std::string_view s) {
  return core::percent_encode(s);
}

http::Headers RestClient::headers(std::string_view content_type) const {
  http::Headers h;
  h.set("Accept", "application/json");
  if (!content_type.empty()) h.set("Content-Type", std::string(content_type));
  if (!options_.token.empty()) h.set("Authorization", "Bearer " + options_.token);
  return h;
}

core::Error RestClient::network_error(const core::Error& e) const {
  core::Error out = e;
  if (e.code == "http.connect" || e.code == "http.resolve" || e.code == "http.timeout") {
    out.message += " (is the OpenStation server running at " + options_.server +
                   "? pass --server URL or run `openstation login`)";
  } else if (e.code == "http.tls_fingerprint_mismatch") {
    out.code = "cli.certificate_changed";
    out.message =
        "the certificate of " + options_.server + " is not the one you trusted at login (" +
        e.message +
        "). If the server's certificate was replaced on purpose, check the new "
        "fingerprint with the server's administrator and run `openstation login --server " +
        options_.server + " --trust-fingerprint NEW`; otherwise do not continue";
  } else if (e.code == "http.tls_verify") {
    out.message +=
        " (pass --ca-cert FILE with the CA that signed the server's certificate, or "
        "log in again to pin its fingerprint)";
  }
  if (out.field.empty() || out.field == "url") out.field = "--server";
  return out;
}

core::Result<http::Response> RestClient::raw(std::string_view method, std::string_view path,
                                             std::string body,
                                             std::string_view content_type) const {
  const std::string url = options_.server + std::string(kApiPrefix) + std::string(path);
  http::Client client(tls_options(options_.trust));
  const http::Headers h = headers(body.empty() ? "" : content_type);
  auto res = client.request(method, url, h, std::move(body), options_.timeout);
  if (!res) return network_error(res.error());
  return std::move(*res);
}

core::Result<boost::json::value> RestClient::json_call(std::string_view method,
                                                       std::string_view path, std::string body,
                                                       std::string_view content_type) const {
  auto res = raw(method, path, std::move(body), content_type);
  if (!res) return res.error();
  if (res->status < 200 || res->status > 299) return error_from_response(res->status, res->body);
  if (res->status == 204 || res->body.empty()) return boost::json::value(nullptr);
  boost::system::error_code ec;
  auto v = boost::json::parse(res->body, ec);
  if (ec) {
    return core::Error(core::Errc::unavailable, "cli.bad_reply",
                       std::string(method) + " " + std::string(kApiPrefix) + std::string(path) +
                           ": the server's reply is not JSON (" + ec.message() +
                           "); is --server an OpenStation server?");
  }
  return v;
}

core::Result<boost::json::value> RestClient::get(std::string_view path) const {
  return json_call("GET", path, {}, "");
}

core::Result<boost::json::value> RestClient::post(std::string_view path,
                                                  const boost::json::value& body) const {
  return json_call("POST", path, serialize_body(body), "application/json");
}

core::Result<boost::json::value> RestClient::post_text(std::string_view path, std::string body,
                                                       std::string content_type) const {
  return json_call("POST", path, std::move(body), content_type);
}

core::Result<boost::json::value> RestClient::patch(std::string_view path,
                                                   const boost::json::value& body) const {
  return json_call("PATCH", path, serialize_body(body), "application/json");
}

core::Result<boost::json::value> RestClient::del(std::string_view path) const {
  return json_call("DELETE", path, {}, "");
}

core::Result<boost::json::array> RestClient::list_all(std::string_view path) const {
  boost::json::array items;
  std::string cursor;
  const char sep = std::string_view(path).find('?') == std::string_view::npos ? '?' : '&';
  for (int page = 0; page < 10000; ++page) {
    std::string target(path);
    if (!cursor.empty()) target += sep + std::string("cursor=") + url_encode(cursor);
    auto v = get(target);
    if (!v) return v.error();
    const auto* o = v->if_object();
    const auto* arr = o ? o->if_contains("items") : nullptr;
    if (!arr || !arr->is_array()) {
      return core::Error(core::Errc::unavailable, "cli.bad_reply",
                         "GET " + std::string(kApiPrefix) + std::string(path) +
                             ": the reply has no \"items\" list");
    }
    for (const auto& item : arr->get_array()) items.push_back(item);
    const auto* next = o->if_contains("next_cursor");
    if (!next || !next->is_string() || next->get_string().empty()) break;
    const std::string next_cursor(next->get_string());
    if (next_cursor == cursor) break;
    cursor = next_cursor;
  }
  return items;
}

core::Result<void> RestClient::stream(std::string_view path,
                                      const std::function<bool(std::string_view)>& on_data,
                                      std::chrono::milliseconds idle_timeout) const {
  auto url = http::parse_url(options_.server + std::string(kApiPrefix) + std::string(path));
  if (!url) return network_error(url.error());
  std::optional<http::TlsClientOptions> tls;
  if (url->scheme == "https") tls = tls_options(options_.trust);
  http::Request req;
  req.method = "GET";
  req.target = url->target;
  req.headers = headers("");
  req.headers.set("Accept", "text/plain");
  req.headers.set("Connection", "close");
  const auto connect_timeout = options_.timeout;
  boost::asio::io_context ioc;
  std::optional<core::Result<void>> out;
  boost::asio::co_spawn(
      ioc,
      [&]() -> http::Awaitable<void> {
        auto conn = co_await http::Connection::connect(ioc.get_executor(), url->host, url->port,
                                                       connect_timeout, tls);
        if (!conn) {
          out.emplace(network_error(conn.error()));
          co_return;
        }
        auto head = co_await conn->send(req, connect_timeout);
        if (!head) {
          out.emplace(network_error(head.error()));
          co_return;
        }
        if (head->status < 200 || head->status > 299) {
          std::string body;
          while (!conn->body_done() && body.size() < (1u << 20)) {
            auto piece = co_await conn->read_some(connect_timeout);
            if (!piece) break;
            body += *piece;
          }
          out.emplace(error_from_response(head->status, body));
          co_return;
        }
        while (!conn->body_done()) {
          auto piece = co_await conn->read_some(idle_timeout);
          if (!piece) {
            out.emplace(network_error(piece.error()));
            co_return;
          }
          if (!piece->empty() && !on_data(*piece)) break;
        }
        conn->close();
        out.emplace(core::Result<void>());
      },
      boost::asio::detached);
  ioc.run();
  if (!out) {
    return core::Error(core::Errc::internal, "cli.stream_incomplete", "the request did not end");
  }
  return std::move(*out);
}

}  // namespace openstation::cli
