#pragma once
/// Extended parameters: what a user types ("--max-model-len 65536 --dtype=half") parsed and
/// validated against one engine version's flag table, and rendered back to an argv vector.
/// Nothing here ever involves a shell.

#include "core/error.hpp"
#include "engine/spec.hpp"

#include <cstdint>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace openstation::engine {

/// Splits a command line like a POSIX shell's word splitting, without any expansion: single and
/// double quotes, backslash escapes. Errors: unbalanced quotes, a trailing backslash.
core::Result<std::vector<std::string>> split_command_line(std::string_view text);

/// The inverse of split_command_line: quotes each token only where needed (single quotes), so
/// that split_command_line(join_command_line(argv)) == argv. For display and for storing argv as
/// text; never given to a shell by the platform.
std::string join_command_line(const std::vector<std::string>& argv);

/// One flag as given by the user, normalised.
struct ParsedFlag {
  const FlagSpec* spec = nullptr;  ///< points into the EngineSpec
  std::string name;                ///< canonical name, "--max-model-len"
  std::vector<std::string>
      values;  ///< normalised values (human-readable ints expanded); empty for presence booleans
  std::optional<bool> bool_value;  ///< for booleans: true for --x, false for --no-x / --x false
  std::string as_typed;            ///< the user's spelling, for messages

  /// Same flag, values and boolean (the spelling and the spec pointer are not compared).
  bool operator==(const ParsedFlag& o) const {
    return name == o.name && values == o.values && bool_value == o.bool_value;
  }
};

struct ParsedArgs {
  std::vector<ParsedFlag> flags;  ///< in the order given

  const ParsedFlag* find(std::string_view canonical_name) const;
  /// Sets or replaces a flag (used by compatibility fixes); keeps the position of an existing one.
  void set(ParsedFlag flag);
  /// Removes a flag; true if it was there.
  bool erase(std::string_view canonical_name);

  bool operator==(const ParsedArgs& o) const { return flags == o.flags; }
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

/// Builds a flag programmatically (compatibility fixes, the planner's own flags such as --port or
/// --nnodes): `name` is a canonical name or alias; values are checked like parse_args checks
/// them, but platform-owned flags are allowed. Booleans: use make_bool_flag.
core::Result<ParsedFlag> make_flag(const EngineSpec& spec, std::string_view name,
                                   std::vector<std::string> values);
/// A boolean flag set to `value` in the version's syntax. Errors: not a boolean; `false` for a
/// presence flag (leave the flag out instead: args.cannot_negate).
core::Result<ParsedFlag> make_bool_flag(const EngineSpec& spec, std::string_view name, bool value);

/// Parses a human-readable integer as vLLM >= 0.8.5 does: 1k = 1000, 1K = 1024, 25.6k = 25600,
/// 64K = 65536 (k m g t decimal, K M G T binary). Errors: not a number, a fraction left over,
/// decimals with a binary suffix (the hint says the decimal spelling), overflow.
core::Result<std::int64_t> parse_human_int(std::string_view text, std::string_view flag = {});

}  // namespace openstation::engine
