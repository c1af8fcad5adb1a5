#pragma once
/// Plain HTTP message types shared by the server, the clients and their users. No Beast here:
/// modules that serve or call HTTP include these light types only; Beast stays in src/http/*.cpp.

#include "core/error.hpp"

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace openstation::http {

/// Header fields in arrival order. Names compare case-insensitively; values are kept verbatim.
/// Fields that are removed or replaced keep their strings' storage for the next ones, so an
/// object refilled for every request (a server's per-connection Request) stops allocating.
class Headers {
 public:
  using Field = std::pair<std::string, std::string>;

  Headers() = default;
  Headers(std::initializer_list<Field> fields) : fields_(fields), size_(fields_.size()) {}
  Headers(const Headers& other) : fields_(other.begin(), other.end()), size_(other.size_) {}
  Headers(Headers&& other) noexcept
      : fields_(std::move(other.fields_)), size_(std::exchange(other.size_, 0)) {}
  Headers& operator=(const Headers& other);
  Headers& operator=(Headers&& other) noexcept {
    if (this == &other) return *this;
    fields_ = std::move(other.fields_);
    size_ = std::exchange(other.size_, 0);
    other.fields_.clear();
    return *this;
  }

  /// The first value of `name`, if present.
  std::optional<std::string_view> get(std::string_view name) const;
  /// The first value of `name`, or `fallback`.
  std::string_view get_or(std::string_view name, std::string_view fallback) const;
  bool has(std::string_view name) const { return get(name).has_value(); }
  /// Replaces every field called `name` with one field. Copies into the storage of a removed
  /// field where there is one, so `name` and `value` must not point into these headers.
  void set(std::string_view name, std::string_view value);
  /// Appends a field (several fields of one name are allowed, e.g. Set-Cookie); as set().
  void add(std::string_view name, std::string_view value);
  /// Removes every field, keeping their storage for the next ones.
  void clear() { size_ = 0; }
  /// Removes every field called `name`; true if one was there.
  bool erase(std::string_view name);
  /// Removes every field whose name is not one of `names`; the rest keep their order.
  void retain(std::span<const std::string_view> names);
  /// Replaces every field with copies of `fields`, reusing this object's storage (a server that
  /// keeps one Request per connection allocates nothing for a new request's usual headers).
  void assign(std::span<const std::pair<std::string_view, std::string_view>> fields);

  std::span<const Field> fields() const { return {fields_.data(), size_}; }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

 private:
  const Field* begin() const { return fields_.data(); }
  const Field* end() const { return fields_.data() + size_; }
  /// The slot for one more field, reusing a removed field's strings where there is one.
  Field& next_slot();
  /// Keeps the fields for which `keep` is true, in order; the others' storage moves past size_.
  template <class Keep>
  void keep_if(Keep keep);

  std::vector<Field> fields_;  ///< [0, size_) are the fields; the rest are spare storage
  std::size_t size_ = 0;
};

/// The path parameters a route captured ("{id}" → "n1"; a trailing wildcard as "*"), in pattern
/// order. Clearing keeps the strings' storage for the next parameters, so a server's
/// per-connection Request allocates nothing for a new request's usual parameters.
class PathParams {
 public:
  using Param = std::pair<std::string, std::string>;

  void clear() { size_ = 0; }
  /// Appends a parameter called `name`; returns its value, empty, for the caller to fill.
  std::string& add(std::string_view name);
  /// The value of `name`; "" when absent.
  std::string_view get(std::string_view name) const;
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const Param& operator[](std::size_t i) const { return slots_[i]; }

 private:
  std::vector<Param> slots_;  ///< [0, size_) are the parameters; the rest are spare storage
  std::size_t size_ = 0;
};

/// Case-insensitive ASCII comparison, for header names and tokens.
namespace detail {
bool iequals_slow(std::string_view a, std::string_view b) noexcept;
}
/// Inline, as most comparisons (a header name against the one looked for) end at the sizes.
inline bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  if (a == b) return true;  // the usual spelling
  return detail::iequals_slow(a, b);
}

/// A request as a handler sees it.
struct Request {
  std::string method;  ///< "GET", "POST", ... (upper case as sent)
  std::string target;  ///< path and query as sent: "/api/v1/nodes?limit=10"
  Headers headers;
  std::string body;
  std::string remote_address;  ///< peer IP ("127.0.0.1"); empty for client-side requests
  PathParams params;           ///< path parameters from the route

  /// The target without the query: "/api/v1/nodes".
  std::string_view path() const;
  /// The raw query after '?', or "".
  std::string_view query() const;
  /// A query parameter, percent-decoded ("limit" → "10"); nullopt when absent.
  std::optional<std::string> query_param(std::string_view name) const;
  /// A path parameter captured by the route ("{id}" → param("id")); "" when absent.
  std::string_view param(std::string_view name) const;
};

/// A complete response.
struct Response {
  int status = 200;
  Headers headers;
  std::string body;

  /// A response with a body and its Content-Type.
  static Response text(int status, std::string body,
                       std::string content_type = "text/plain; charset=utf-8");
  /// A JSON response; `json` must already be serialised JSON text.
  static Response json(int status, std::string json);
  /// The project's error body {"error": {"code", "message", "field"}} with the status of the
  /// error's category (core::http_status).
  static Response error(const core::Error& e);
  /// The same body with an explicit status (413, 431 and others without a category).
  static Response error(int status, const core::Error& e);
};

/// {"error": {"code": ..., "message": ..., "field": ...}} as JSON text ("field" only when set).
std::string error_body(const core::Error& e);

/// The parts of an error body as error_body() writes it; `found` is false (and the rest empty)
/// when `body` is not JSON or has no "error" object. Parts that are absent or not strings stay
/// empty.
struct ErrorBody {
  bool found = false;
  std::string code;
  std::string message;
  std::string field;
};
ErrorBody parse_error_body(std::string_view body);

/// "Not Found" for 404 and so on; "Unknown" for codes it does not know.
std::string_view reason_phrase(int status) noexcept;

/// Percent-decodes a URL component ('+' as space when `plus_as_space`). Invalid escapes are kept
/// verbatim.
std::string percent_decode(std::string_view s, bool plus_as_space = true);
/// The value of a hexadecimal digit ('0'–'9', 'a'–'f', 'A'–'F'); -1 for any other character.
constexpr int hex_digit(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace openstation::http
