#include "gateway/openai_error.hpp"

#include "gateway/utf8.hpp"

#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <array>
#include <utility>

namespace openstation::gateway {
namespace json = boost::json;

namespace {

json::value string_or_null(const std::string& s) {
  if (s.empty()) return nullptr;
  return json::string(s);
}

/// Project codes whose OpenAI names differ from their last dotted part.
constexpr std::array<std::pair<std::string_view, std::string_view>, 6> kCodeNames{{
    {"auth.invalid_api_key", "invalid_api_key"},
    {"auth.key_revoked", "invalid_api_key"},
    {"auth.key_expired", "invalid_api_key"},
    {"auth.user_disabled", "invalid_api_key"},
    {"gateway.rate_limited", "rate_limit_exceeded"},
    {"gateway.body_too_large", "request_too_large"},
}};

std::string openai_code(std::string_view code) {
  for (const auto& [ours, theirs] : kCodeNames)
    if (code == ours) return std::string(theirs);
  const auto dot = code.rfind('.');
  return std::string(dot == std::string_view::npos ? code : code.substr(dot + 1));
}

/// Text of a JSON value that should be a string; numbers are printed; null/other → "".
std::string text_of(const json::value* v) {
  if (v == nullptr) return {};
  if (v->is_string()) return std::string(v->as_string());
  if (v->is_int64()) return std::to_string(v->as_int64());
  if (v->is_uint64()) return std::to_string(v->as_uint64());
  return {};
}

/// `s` with every byte that is not part of a valid UTF-8 sequence replaced by U+FFFD, so an
/// engine's binary or mis-encoded error text still makes valid JSON.
std::string valid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    if (const auto len = detail::utf8_sequence(s, i); len > 0) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

std::string cut(std::string_view s, std::size_t n) {
  if (s.size() <= n) return valid_utf8(s);
  // Do not split a UTF-8 sequence.
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return valid_utf8(s.substr(0, n)) + "...";
}

}  // namespace

std::string OpenAiError::body() const {
  json::object inner;
  inner["message"] = message;
  inner["type"] = type.empty() ? std::string(openai_type(status)) : type;
  inner["param"] = string_or_null(param);
  inner["code"] = string_or_null(code);
  json::object outer;
  outer["error"] = std::move(inner);
  return json::serialize(outer);
}

http::Response OpenAiError::response() const {
  return http::Response::json(status, body());
}

std::string OpenAiError::sse_event() const {
  return "data: " + body() + "\n\n";
}

std::string_view openai_type(int status) noexcept {
  switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404:
    case 400:
    case 409:
    case 413:
    case 422: return "invalid_request_error";
    case 429: return "rate_limit_exceeded";
    case 503: return "service_unavailable";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

OpenAiError from_error(int status, const core::Error& e) {
  OpenAiError out;
  out.status = status;
  out.message = e.message;
  out.type = std::string(openai_type(status));
  out.code = openai_code(e.code);
  out.param = e.field;
  return out;
}

OpenAiError normalise_engine_error(int status, std::string_view body) {
  OpenAiError out;
  out.status = status;
  out.type = std::string(openai_type(status));
  boost::system::error_code ec;
  const json::value v = json::parse(body, ec);
  if (!ec && v.is_object()) {
    const json::object* o = &v.as_object();
    if (const auto* inner = o->if_contains("error"); inner != nullptr && inner->is_object()) {
      o = &inner->as_object();
    } else if (const auto* inner_text = o->if_contains("error");
               inner_text != nullptr && inner_text->is_string() && !o->contains("message")) {
      out.message = std::string(inner_text->as_string());
    }
    if (out.message.empty()) out.message = text_of(o->if_contains("message"));
    if (out.message.empty()) {
      if (const auto* d = o->if_contains("detail")) {
        out.message = d->is_string() ? std::string(d->as_string()) : cut(json::serialize(*d), 1000);
      }
    }
    if (auto t = text_of(o->if_contains("type")); !t.empty()) out.type = std::move(t);
    out.param = text_of(o->if_contains("param"));
    // vLLM puts the status number in "code"; OpenAI's code is a name. Keep names only.
    if (const auto* c = o->if_contains("code"); c != nullptr && c->is_string()) {
      out.code = std::string(c->as_string());
    }
  }
  if (out.message.empty()) {
    std::string_view text = body;
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' '))
      text.remove_suffix(1);
    out.message = text.empty() || (!ec && v.is_object()) ? std::string(http::reason_phrase(status))
                                                         : cut(text, 1000);
  }
  return out;
}

}  // namespace openstation::gateway
