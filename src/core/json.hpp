#pragma once
/// Reading JSON at the edges (files, request bodies) into plain structs. The getters throw
/// `ErrorException` with a precise path ("nodes[1].gpus[0].memory_total_mib"); each public parse
/// function wraps its body in `capture()` so the throw never escapes as an exception.

#include "core/error.hpp"

#include <boost/json/value.hpp>

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

namespace openstation::core::json {

/// Parses text; on failure throws parse_error "<what>: invalid JSON at line L column C: reason".
boost::json::value parse(std::string_view text, std::string_view what);
/// Reads a whole file (refusing files above max_bytes); errors name the path.
Result<std::string> read_file(const std::filesystem::path& path,
                              std::uint64_t max_bytes = 64u << 20);

const boost::json::object& as_object(const boost::json::value& v, std::string_view path);
const boost::json::array& as_array(const boost::json::value& v, std::string_view path);

std::string get_string(const boost::json::object& o, std::string_view key, std::string_view path);
std::optional<std::string> opt_string(const boost::json::object& o, std::string_view key,
                                      std::string_view path);
std::int64_t get_int(const boost::json::object& o, std::string_view key, std::string_view path);
std::optional<std::int64_t> opt_int(const boost::json::object& o, std::string_view key,
                                    std::string_view path);
double get_number(const boost::json::object& o, std::string_view key, std::string_view path);
std::optional<double> opt_number(const boost::json::object& o, std::string_view key,
                                 std::string_view path);
std::optional<bool> opt_bool(const boost::json::object& o, std::string_view key,
                             std::string_view path);
/// Value as integer: accepts JSON integers and doubles with no fractional part.
std::int64_t to_int(const boost::json::value& v, std::string_view path);
double to_number(const boost::json::value& v, std::string_view path);

/// Throws invalid_argument naming the first key of `o` not in `known` (with "did you mean").
void reject_unknown(const boost::json::object& o, std::initializer_list<std::string_view> known,
                    std::string_view path);

/// "a.b" + "c" → "a.b.c"; "" + "c" → "c".
std::string join_path(std::string_view base, std::string_view key);

/// Runs f() and turns an ErrorException into an error value.
template <class F>
auto capture(F&& f) -> Result<decltype(f())> {
  try {
    return f();
  } catch (const ErrorException& e) {
    return e.error();
  }
}

/// A double in its shortest round-trip form, "79.2" rather than Boost.JSON's "7.92E1".
std::string format_double(double d);

/// Serialises with two-space indentation, for CLI `--json` output people also read.
std::string pretty(const boost::json::value& v);

}  // namespace openstation::core::json
