#pragma once
/// Text output of the client commands: aligned tables, human sizes and times, and cells read from
/// the API's JSON objects (a missing or null field shows as "-").

#include <boost/json/value.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace openstation::cli {

/// A table with a header row; each column is as wide as its widest cell (counted in UTF-8 code
/// points), columns two spaces apart, no trailing spaces.
class Table {
 public:
  enum class Align { left, right };

  explicit Table(std::vector<std::string> headers);
  /// Right-aligns (or left-aligns) a column, for numbers.
  void align(std::size_t column, Align a);
  /// Adds a row; short rows are padded with "", long rows are cut to the header's width.
  void add(std::vector<std::string> row);
  std::size_t rows() const { return rows_.size(); }
  /// The header line and the rows, each ending in "\n".
  std::string render() const;

 private:
  std::vector<std::string> headers_;
  std::vector<Align> align_;
  std::vector<std::vector<std::string>> rows_;
};

/// "Label:  value" lines with the values aligned, for one object's details; "" values skipped.
std::string render_fields(const std::vector<std::pair<std::string, std::string>>& fields);

/// Length of a UTF-8 string in code points (the display width of the text the tables hold).
std::size_t display_width(std::string_view s);

/// Mebibytes for people: "512 MiB", "23.5 GiB", "1.2 TiB".
std::string human_mib(std::int64_t mib);
/// Bytes for people: "900 B", "12.0 KiB", "3.4 GiB".
std::string human_bytes(std::uint64_t bytes);

/// Parses the API's RFC 3339 UTC times ("2026-11-27T22:00:39.123Z", also "+00:00" and no
/// fraction); nullopt for anything else.
std::optional<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view text);
/// Time relative to `now` for people: "just now", "42s ago", "5m ago", "3h ago", "2d ago",
/// "in 6d"; "-" for an empty text, the text itself when it is not an RFC 3339 time.
std::string human_time(std::string_view rfc3339, std::chrono::system_clock::time_point now);
/// human_time() against the system clock.
std::string human_time(std::string_view rfc3339);

/// A field of a JSON object as cell text: strings as they are, numbers and booleans printed,
/// arrays of scalars joined with ",", missing, null or empty → "-". `v` need not be an object.
std::string cell(const boost::json::value& v, std::string_view key);
/// A string field or "" when it is missing, null or not a string.
std::string str_field(const boost::json::value& v, std::string_view key);
/// An integer field (JSON integer or whole double) or `fallback`.
std::int64_t int_field(const boost::json::value& v, std::string_view key,
                       std::int64_t fallback = 0);
/// A boolean field or `fallback`.
bool bool_field(const boost::json::value& v, std::string_view key, bool fallback = false);

}  // namespace openstation::cli
