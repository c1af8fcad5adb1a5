#include "config/values.hpp"

#include "core/strings.hpp"

#include <array>
#include <cctype>
#include <charconv>
#include <limits>

namespace openstation::config {

namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

/// Reads the leading decimal digits of `s` at `i`; false on none or overflow.
bool read_number(std::string_view s, std::size_t& i, std::uint64_t& out) {
  const std::size_t start = i;
  while (i < s.size() && is_digit(s[i])) ++i;
  if (i == start) return false;
  auto [p, ec] = std::from_chars(s.data() + start, s.data() + i, out);
  return ec == std::errc() && p == s.data() + i;
}

}  // namespace

core::Result<std::chrono::milliseconds> parse_duration(std::string_view text) {
  const std::string t = core::trim(text);
  auto bad = [&](std::string why) {
    return core::invalid("config.bad_duration",
                         "\"" + std::string(text) + "\" is not a duration: " + why +
                             " (write e.g. \"250ms\", \"30s\", \"5m\", \"1h30m\"; a bare number is "
                             "seconds)");
  };
  if (t.empty()) return bad("it is empty");
  std::size_t i = 0;
  std::uint64_t n = 0;
  if (!read_number(t, i, n)) return bad("it must start with a whole number");
  if (i == t.size()) {
    if (n > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max() / 1000))
      return bad("it is too large");
    return std::chrono::milliseconds(static_cast<std::int64_t>(n) * 1000);
  }
  std::int64_t total = 0;
  i = 0;
  while (i < t.size()) {
    if (!read_number(t, i, n)) return bad("expected a number at \"" + t.substr(i) + "\"");
    std::size_t u = i;
    while (u < t.size() && std::isalpha(static_cast<unsigned char>(t[u]))) ++u;
    const std::string unit = core::to_lower(t.substr(i, u - i));
    std::int64_t scale = 0;
    if (unit == "ms")
      scale = 1;
    else if (unit == "s")
      scale = 1000;
    else if (unit == "m")
      scale = 60'000;
    else if (unit == "h")
      scale = 3'600'000;
    else if (unit == "d")
      scale = 86'400'000;
    else if (unit.empty())
      return bad("a unit (ms, s, m, h, d) must follow " + std::to_string(n));
    else
      return bad("unknown unit \"" + unit + "\" (use ms, s, m, h or d)");
    if (n > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max() / scale) ||
        total > std::numeric_limits<std::int64_t>::max() - static_cast<std::int64_t>(n) * scale)
      return bad("it is too large");
    total += static_cast<std::int64_t>(n) * scale;
    i = u;
  }
  return std::chrono::milliseconds(total);
}

std::string format_duration(std::chrono::milliseconds d) {
  std::int64_t ms = d.count();
  if (ms == 0) return "0s";
  std::string out;
  if (ms < 0) {
    out = "-";
    ms = -ms;
  }
  if (ms % 1000 != 0) return out + std::to_string(ms) + "ms";
  std::int64_t s = ms / 1000;
  const std::array<std::pair<std::int64_t, const char*>, 4> units{
      {{86'400, "d"}, {3600, "h"}, {60, "m"}, {1, "s"}}};
  for (const auto& [scale, name] : units) {
    if (s >= scale) {
      out += std::to_string(s / scale) + name;
      s %= scale;
    }
  }
  return out;
}

core::Result<std::uint64_t> parse_bytes(std::string_view text) {
  const std::string t = core::trim(text);
  auto bad = [&](std::string why) {
    return core::invalid("config.bad_size",
                         "\"" + std::string(text) + "\" is not a size: " + why +
                             " (write e.g. 1048576, \"64MiB\", \"1GiB\", \"500MB\")");
  };
  std::size_t i = 0;
  std::uint64_t n = 0;
  if (!read_number(t, i, n)) return bad("it must start with a whole number");
  const std::string unit = core::to_lower(core::trim(std::string_view(t).substr(i)));
  struct Unit {
    const char* name;
    std::uint64_t scale;
  };
  static constexpr std::array<Unit, 9> kUnits{{{"", 1},
                                               {"b", 1},
                                               {"kib", 1ull << 10},
                                               {"mib", 1ull << 20},
                                               {"gib", 1ull << 30},
                                               {"tib", 1ull << 40},
                                               {"kb", 1000ull},
                                               {"mb", 1000'000ull},
                                               {"gb", 1000'000'000ull}}};
  std::uint64_t scale = 0;
  for (const auto& u : kUnits)
    if (unit == u.name) scale = u.scale;
  if (unit == "tb") scale = 1000'000'000'000ull;
  if (scale == 0)
    return bad("unknown unit \"" + unit + "\" (use B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)");
  if (n > std::numeric_limits<std::uint64_t>::max() / scale) return bad("it is too large");
  return n * scale;
}

std::string format_bytes(std::uint64_t bytes) {
  static constexpr std::array<std::pair<std::uint64_t, const char*>, 4> kUnits{
      {{1ull << 40, "TiB"}, {1ull << 30, "GiB"}, {1ull << 20, "MiB"}, {1ull << 10, "KiB"}}};
  if (bytes != 0) {
    for (const auto& [scale, name] : kUnits)
      if (bytes % scale == 0) return std::to_string(bytes / scale) + name;
  }
  return std::to_string(bytes) + "B";
}

core::Result<PortRange> parse_port_range(std::string_view text) {
  const std::string t = core::trim(text);
  auto bad = [&](std::string why) {
    return core::invalid("config.bad_range", "\"" + std::string(text) +
                                                 "\" is not a port range: " + why +
                                                 " (write \"first-last\", e.g. \"40000-40999\")");
  };
  const auto dash = t.find('-');
  if (dash == std::string::npos) return bad("there is no '-'");
  const std::string a = core::trim(std::string_view(t).substr(0, dash));
  const std::string b = core::trim(std::string_view(t).substr(dash + 1));
  std::uint64_t first = 0, last = 0;
  std::size_t i = 0, j = 0;
  if (!read_number(a, i, first) || i != a.size() || !read_number(b, j, last) || j != b.size())
    return bad("both ends must be whole numbers");
  if (first < 1 || last > 65535 || first > 65535) return bad("ports are between 1 and 65535");
  if (first > last) return bad("the first port is above the last");
  return PortRange{static_cast<std::uint16_t>(first), static_cast<std::uint16_t>(last)};
}

std::string format_port_range(const PortRange& r) {
  return std::to_string(r.first) + "-" + std::to_string(r.last);
}

core::Result<bool> parse_bool(std::string_view text) {
  const std::string t = core::to_lower(core::trim(text));
  if (t == "true" || t == "yes" || t == "on" || t == "1") return true;
  if (t == "false" || t == "no" || t == "off" || t == "0") return false;
  return core::invalid("config.bad_bool",
                       "\"" + std::string(text) + "\" is not a boolean (use true or false)");
}

core::Result<std::vector<std::string>> split_words(std::string_view text) {
  std::vector<std::string> words;
  std::string cur;
  bool in_word = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      if (in_word) words.push_back(std::move(cur));
      cur.clear();
      in_word = false;
    } else if (c == '\'') {
      const auto end = text.find('\'', i + 1);
      if (end == std::string_view::npos)
        return core::invalid("config.bad_words",
                             "unclosed single quote in \"" + std::string(text) + "\"");
      cur.append(text.substr(i + 1, end - i - 1));
      i = end;
      in_word = true;
    } else if (c == '"') {
      std::size_t k = i + 1;
      for (; k < text.size() && text[k] != '"'; ++k) {
        if (text[k] == '\\' && k + 1 < text.size() &&
            (text[k + 1] == '"' || text[k + 1] == '\\' || text[k + 1] == '$' ||
             text[k + 1] == '`')) {
          ++k;
        }
        cur.push_back(text[k]);
      }
      if (k >= text.size())
        return core::invalid("config.bad_words",
                             "unclosed double quote in \"" + std::string(text) + "\"");
      i = k;
      in_word = true;
    } else if (c == '\\') {
      if (i + 1 >= text.size())
        return core::invalid("config.bad_words",
                             "trailing backslash in \"" + std::string(text) + "\"");
      cur.push_back(text[++i]);
      in_word = true;
    } else {
      cur.push_back(c);
      in_word = true;
    }
  }
  if (in_word) words.push_back(std::move(cur));
  return words;
}

std::string join_words(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) {
    if (!out.empty()) out.push_back(' ');
    const bool plain =
        !w.empty() && w.find_first_of(" \t\r\n'\"\\$`;&|<>()*?[]#~") == std::string::npos;
    if (plain) {
      out += w;
    } else {
      out.push_back('\'');
      for (char c : w) {
        if (c == '\'')
          out += "'\\''";
        else
          out.push_back(c);
      }
      out.push_back('\'');
    }
  }
  return out;
}

}  // namespace openstation::config
