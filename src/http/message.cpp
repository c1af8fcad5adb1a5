#include "http/message.hpp"

#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>

namespace openstation::http {

bool detail::iequals_slow(std::string_view a, std::string_view b) noexcept {
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

Headers& Headers::operator=(const Headers& other) {
  if (this == &other) return *this;
  size_ = 0;
  for (const auto& [k, v] : other.fields()) {
    auto& f = next_slot();
    f.first.assign(k);
    f.second.assign(v);
  }
  return *this;
}

Headers::Field& Headers::next_slot() {
  if (size_ == fields_.size()) fields_.emplace_back();
  return fields_[size_++];
}

template <class Keep>
void Headers::keep_if(Keep keep) {
  std::size_t kept = 0;
  for (std::size_t i = 0; i < size_; ++i) {
    if (!keep(fields_[i])) continue;
    if (kept != i) std::swap(fields_[kept], fields_[i]);
    ++kept;
  }
  size_ = kept;
}

std::optional<std::string_view> Headers::get(std::string_view name) const {
  for (const auto& [k, v] : fields()) {
    if (iequals(k, name)) return std::string_view(v);
  }
  return std::nullopt;
}

std::string_view Headers::get_or(std::string_view name, std::string_view fallback) const {
  auto v = get(name);
  return v ? *v : fallback;
}

void Headers::set(std::string_view name, std::string_view value) {
  erase(name);
  add(name, value);
}

void Headers::add(std::string_view name, std::string_view value) {
  auto& f = next_slot();
  f.first.assign(name);
  f.second.assign(value);
}

void Headers::assign(std::span<const std::pair<std::string_view, std::string_view>> fields) {
  size_ = 0;
  for (const auto& [k, v] : fields) {
    auto& f = next_slot();
    f.first.assign(k);
    f.second.assign(v);
  }
}

bool Headers::erase(std::string_view name) {
  const auto before = size_;
  keep_if([&](const Field& f) { return !iequals(f.first, name); });
  return size_ != before;
}

void Headers::retain(std::span<const std::string_view> names) {
  keep_if([&](const Field& f) {
    return std::any_of(names.begin(), names.end(),
                       [&](std::string_view n) { return iequals(f.first, n); });
  });
}

std::string_view Request::path() const {
  std::string_view t = target;
  return t.substr(0, t.find('?'));
}

std::string_view Request::query() const {
  std::string_view t = target;
  const auto q = t.find('?');
  return q == std::string_view::npos ? std::string_view() : t.substr(q + 1);
}

std::optional<std::string> Request::query_param(std::string_view name) const {
  std::string_view q = query();
  while (!q.empty()) {
    const auto amp = q.find('&');
    std::string_view pair = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
    const auto eq = pair.find('=');
    if (percent_decode(pair.substr(0, eq)) == name) {
      return eq == std::string_view::npos ? std::string() : percent_decode(pair.substr(eq + 1));
    }
  }
  return std::nullopt;
}

std::string_view Request::param(std::string_view name) const {
  return params.get(name);
}

std::string& PathParams::add(std::string_view name) {
  if (size_ == slots_.size()) slots_.emplace_back();
  auto& [k, v] = slots_[size_++];
  k.assign(name);
  v.clear();
  return v;
}

std::string_view PathParams::get(std::string_view name) const {
  for (std::size_t i = 0; i < size_; ++i) {
    if (slots_[i].first == name) return slots_[i].second;
  }
  return {};
}

Response Response::text(int status, std::string body, std::string content_type) {
  Response r;
  r.status = status;
  r.headers.set("Content-Type", std::move(content_type));
  r.body = std::move(body);
  return r;
}

Response Response::json(int status, std::string json) {
  return text(status, std::move(json), "application/json");
}

Response Response::error(const core::Error& e) {
  return error(core::http_status(e.category), e);
}

Response Response::error(int status, const core::Error& e) {
  return json(status, error_body(e));
}

std::string error_body(const core::Error& e) {
  boost::json::object inner;
  inner["code"] = e.code;
  inner["message"] = e.message;
  if (!e.field.empty()) inner["field"] = e.field;
  boost::json::object outer;
  outer["error"] = std::move(inner);
  return boost::json::serialize(outer);
}

ErrorBody parse_error_body(std::string_view body) {
  ErrorBody out;
  boost::system::error_code ec;
  const auto v = boost::json::parse(body, ec);
  const auto* o = ec ? nullptr : v.if_object();
  const auto* e = o ? o->if_contains("error") : nullptr;
  if (e == nullptr || !e->is_object()) return out;
  out.found = true;
  auto text = [&](std::string_view k) {
    const auto* f = e->get_object().if_contains(k);
    return f != nullptr && f->is_string() ? std::string(f->get_string()) : std::string();
  };
  out.code = text("code");
  out.message = text("message");
  out.field = text("field");
  return out;
}

std::string_view reason_phrase(int status) noexcept {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
  }
}

std::string percent_decode(std::string_view s, bool plus_as_space) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '%') {
      const int hi = i + 1 < s.size() ? hex_digit(s[i + 1]) : -1;
      const int lo = i + 2 < s.size() ? hex_digit(s[i + 2]) : -1;
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_as_space && c == '+' ? ' ' : c);
  }
  return out;
}

}  // namespace openstation::http
