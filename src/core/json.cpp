#include "core/json.hpp"

#include "core/strings.hpp"

#include <boost/json.hpp>

#include <charconv>
#include <cmath>
#include <fstream>
#include <sstream>
#include <vector>

namespace openstation::core::json {

namespace {
[[noreturn]] void fail(Error e) {
  throw ErrorException(std::move(e));
}

std::string kind_name(const boost::json::value& v) {
  switch (v.kind()) {
    case boost::json::kind::null: return "null";
    case boost::json::kind::bool_: return "a boolean";
    case boost::json::kind::int64:
    case boost::json::kind::uint64: return "an integer";
    case boost::json::kind::double_: return "a number";
    case boost::json::kind::string: return "a string";
    case boost::json::kind::array: return "an array";
    case boost::json::kind::object: return "an object";
  }
  return "a value";
}

[[noreturn]] void wrong_type(const boost::json::value& v, std::string_view path,
                             std::string_view want) {
  fail(invalid("json.wrong_type",
               std::string(path) + " must be " + std::string(want) + ", got " + kind_name(v),
               std::string(path)));
}

const boost::json::value* find(const boost::json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || it->value().is_null()) return nullptr;
  return &it->value();
}
}  // namespace

std::string join_path(std::string_view base, std::string_view key) {
  if (base.empty()) return std::string(key);
  return std::string(base) + "." + std::string(key);
}

boost::json::value parse(std::string_view text, std::string_view what) {
  boost::system::error_code ec;
  boost::json::parse_options opts;
  opts.max_depth = 64;
  boost::json::stream_parser p({}, opts);
  std::size_t n = p.write_some(text.data(), text.size(), ec);
  if (!ec) p.finish(ec);
  if (ec) {
    // Locate the failure for the message.
    std::size_t line = 1, col = 1;
    for (std::size_t i = 0; i < n && i < text.size(); ++i) {
      if (text[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    fail(parse_error("json.invalid", std::string(what) + ": invalid JSON at line " +
                                         std::to_string(line) + " column " + std::to_string(col) +
                                         ": " + ec.message()));
  }
  return p.release();
}

Result<std::string> read_file(const std::filesystem::path& path, std::uint64_t max_bytes) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return not_found("file.not_found", path.string() + ": no such file", path.string());
  }
  if (std::filesystem::is_directory(path, ec)) {
    return invalid("file.is_directory", path.string() + " is a directory, expected a file",
                   path.string());
  }
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) return io_error("file.unreadable", path.string() + ": " + ec.message(), path.string());
  if (size > max_bytes) {
    return invalid("file.too_large",
                   path.string() + " is " + std::to_string(size) + " bytes, more than the " +
                       std::to_string(max_bytes) + " allowed",
                   path.string());
  }
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return io_error("file.unreadable", path.string() + ": cannot open for reading", path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const boost::json::object& as_object(const boost::json::value& v, std::string_view path) {
  if (!v.is_object()) wrong_type(v, path.empty() ? "the document" : path, "an object");
  return v.get_object();
}

const boost::json::array& as_array(const boost::json::value& v, std::string_view path) {
  if (!v.is_array()) wrong_type(v, path, "an array");
  return v.get_array();
}

std::optional<std::string> opt_string(const boost::json::object& o, std::string_view key,
                                      std::string_view path) {
  const auto* v = find(o, key);
  if (!v) return std::nullopt;
  if (!v->is_string()) wrong_type(*v, join_path(path, key), "a string");
  return std::string(v->get_string());
}

std::string get_string(const boost::json::object& o, std::string_view key, std::string_view path) {
  auto s = opt_string(o, key, path);
  if (!s)
    fail(
        invalid("json.missing_field", join_path(path, key) + " is required", join_path(path, key)));
  return *s;
}

std::int64_t to_int(const boost::json::value& v, std::string_view path) {
  if (v.is_int64()) return v.get_int64();
  if (v.is_uint64()) {
    if (v.get_uint64() > static_cast<std::uint64_t>(INT64_MAX))
      wrong_type(v, path, "an integer below 2^63");
    return static_cast<std::int64_t>(v.get_uint64());
  }
  if (v.is_double()) {
    const double d = v.get_double();
    if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9.0e18)
      return static_cast<std::int64_t>(d);
  }
  wrong_type(v, path, "an integer");
}

double to_number(const boost::json::value& v, std::string_view path) {
  if (v.is_int64()) return static_cast<double>(v.get_int64());
  if (v.is_uint64()) return static_cast<double>(v.get_uint64());
  if (v.is_double()) return v.get_double();
  wrong_type(v, path, "a number");
}

std::optional<std::int64_t> opt_int(const boost::json::object& o, std::string_view key,
                                    std::string_view path) {
  const auto* v = find(o, key);
  if (!v) return std::nullopt;
  return to_int(*v, join_path(path, key));
}

std::int64_t get_int(const boost::json::object& o, std::string_view key, std::string_view path) {
  auto n = opt_int(o, key, path);
  if (!n)
    fail(
        invalid("json.missing_field", join_path(path, key) + " is required", join_path(path, key)));
  return *n;
}

std::optional<double> opt_number(const boost::json::object& o, std::string_view key,
                                 std::string_view path) {
  const auto* v = find(o, key);
  if (!v) return std::nullopt;
  return to_number(*v, join_path(path, key));
}

double get_number(const boost::json::object& o, std::string_view key, std::string_view path) {
  auto n = opt_number(o, key, path);
  if (!n)
    fail(
        invalid("json.missing_field", join_path(path, key) + " is required", join_path(path, key)));
  return *n;
}

std::optional<bool> opt_bool(const boost::json::object& o, std::string_view key,
                             std::string_view path) {
  const auto* v = find(o, key);
  if (!v) return std::nullopt;
  if (!v->is_bool()) wrong_type(*v, join_path(path, key), "true or false");
  return v->get_bool();
}

void reject_unknown(const boost::json::object& o, std::initializer_list<std::string_view> known,
                    std::string_view path) {
  std::vector<std::string> names(known.begin(), known.end());
  for (const auto& kv : o) {
    const std::string key(kv.key());
    bool ok = false;
    for (auto k : known) ok = ok || k == key;
    if (ok) continue;
    std::string msg = "unknown field " + join_path(path, key);
    const std::string hint = closest(key, names);
    if (!hint.empty())
      msg += " (did you mean \"" + hint + "\"?)";
    else
      msg += "; known fields: " + join(names);
    fail(invalid("json.unknown_field", msg, join_path(path, key)));
  }
}

std::string format_double(double d) {
  // Boost.JSON writes 79.2 as 7.92E1; people read these reports, so use the shortest plain form.
  if (!std::isfinite(d)) return "null";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d);
  if (ec != std::errc{}) return boost::json::serialize(boost::json::value(d));
  std::string s(buf, end);
  if (s.find_first_of(".eE") == std::string::npos) s += ".0";
  return s;
}

std::string pretty(const boost::json::value& v) {
  std::string out;
  auto indent = [&](int n) { out.append(static_cast<std::size_t>(n) * 2, ' '); };
  auto rec = [&](auto& self, const boost::json::value& x, int depth) -> void {
    if (x.is_object()) {
      const auto& o = x.get_object();
      if (o.empty()) {
        out += "{}";
        return;
      }
      out += "{\n";
      std::size_t i = 0;
      for (const auto& kv : o) {
        indent(depth + 1);
        out += boost::json::serialize(boost::json::value(kv.key()));
        out += ": ";
        self(self, kv.value(), depth + 1);
        if (++i < o.size()) out += ",";
        out += "\n";
      }
      indent(depth);
      out += "}";
    } else if (x.is_array()) {
      const auto& a = x.get_array();
      if (a.empty()) {
        out += "[]";
        return;
      }
      out += "[\n";
      for (std::size_t i = 0; i < a.size(); ++i) {
        indent(depth + 1);
        self(self, a[i], depth + 1);
        if (i + 1 < a.size()) out += ",";
        out += "\n";
      }
      indent(depth);
      out += "]";
    } else if (x.is_double()) {
      out += format_double(x.get_double());
    } else {
      out += boost::json::serialize(x);
    }
  };
  rec(rec, v, 0);
  out += "\n";
  return out;
}

}  // namespace openstation::core::json
