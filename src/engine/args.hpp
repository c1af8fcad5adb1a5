#pragma once
/// Extended parameters: what a user types ("--max-model-len 65536 --dtype=half") parsed and
/// validated against one engine version's flag table, and rendered back to an argv vector.
/// Nothing here ever involves a shell.

#include "core/error.hpp"
#include "engine/spec.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace openstation::engine {

/// Splits a command line like a POSIX shell's word splitting, without any expansion: single and
/// double quotes, backslash escapes. Errors: unbalanced quotes, a trailing backslash.
core::Result<std::vector<std::string>> split_command_line(std::string_view text);

/// One flag as given by the user, normalised.
struct ParsedFlag {
  const FlagSpec* spec = nullptr;  ///< points into the EngineSpec
  std::string name;                ///< canonical name, "--max-model-len"
  std::vector<std::string> values; ///< normalised values (human-readable ints expanded); empty for presence booleans
  std::optional<bool> bool_value;  ///< for booleans: true for --x, false for --no-x / --x false
  std::string as_typed;            ///< the user's spelling, for messages
};

struct ParsedArgs {
  std::vector<ParsedFlag> flags;  ///< in the order given

  const ParsedFlag* find(std::string_view canonical_name) const;
  /// Sets or replaces a flag (used by compatibility fixes); keeps the position of an existing one.
  void set(ParsedFlag flag);
  /// Removes a flag; true if it was there.
  bool erase(std::string_view canonical_name);
};

/// Parses tokens/text against `spec`. Errors name the exact flag: unknown (with "did you mean"),
/// wrong type, out of range, invalid choice (listing allowed values), a value where none is
/// allowed, a missing value, a flag given twice, a platform-owned flag (with the reason), an
/// empty flag, a stray positional.
core::Result<ParsedArgs> parse_args(const EngineSpec& spec, const std::vector<std::string>& tokens);
core::Result<ParsedArgs> parse_args(const EngineSpec& spec, std::string_view text);

/// Renders parsed flags back to argv tokens in the syntax of `spec`'s version
/// (e.g. `--no-enable-chunked-prefill` vs `--enable-chunked-prefill False`).
std::vector<std::string> render(const EngineSpec& spec, const ParsedArgs& args);

}  // namespace openstation::engine
