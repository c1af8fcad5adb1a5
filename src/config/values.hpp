#pragma once
/// The text forms of config values shared by the file, environment variables and flags:
/// durations ("250ms", "30s", "5m", "1h30m"), sizes ("64MiB", "1GB", 1048576), port ranges
/// ("40000-40999"), booleans and shell-like word lists. Each parser returns a precise error
/// (no location: the caller adds which key and where).

#include "config/config.hpp"
#include "core/error.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace openstation::config {

/// One or more <integer><unit> groups, units ms, s, m, h, d: "30s", "1h30m", "0s".
/// A bare integer is seconds. Errors: config.bad_duration.
core::Result<std::chrono::milliseconds> parse_duration(std::string_view text);
/// The shortest exact form: "250ms", "30s", "5m", "2h", "1h30m", "0s".
std::string format_duration(std::chrono::milliseconds d);

/// An integer with an optional unit: B, KiB, MiB, GiB, TiB (powers of 1024) or KB, MB, GB, TB
/// (powers of 1000), case-insensitive, a space allowed before the unit. Errors: config.bad_size.
core::Result<std::uint64_t> parse_bytes(std::string_view text);
/// The largest binary unit that divides exactly: "64MiB", "1000B".
std::string format_bytes(std::uint64_t bytes);

/// "a-b" with 1 <= a <= b <= 65535. Errors: config.bad_range.
core::Result<PortRange> parse_port_range(std::string_view text);
/// "40000-40999".
std::string format_port_range(const PortRange& r);

/// true/false, yes/no, on/off, 1/0 (case-insensitive). Errors: config.bad_bool.
core::Result<bool> parse_bool(std::string_view text);

/// Splits like a POSIX shell without expansion: blanks separate words; '...' is literal; "..."
/// keeps blanks and honours \" \\ \$ \`; a backslash outside quotes escapes the next character.
/// Errors: config.bad_words (an unclosed quote, a trailing backslash).
core::Result<std::vector<std::string>> split_words(std::string_view text);
/// The inverse of split_words: words quoted only where needed.
std::string join_words(const std::vector<std::string>& words);

}  // namespace openstation::config
