#pragma once
/// The table of every config key: its dotted name, its type, where it lives in `Config`, its
/// environment variable and whether it is a secret. One table drives the file reader, the
/// environment and flag layers, validation and the TOML/JSON writers, so they cannot disagree.

#include "config/config.hpp"
#include "core/error.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace openstation::config::detail {

/// How a value is written and checked.
enum class Kind {
  string,      ///< any string
  path,        ///< a string; relative paths in a file resolve against the file's directory
  choice,      ///< one of `choices`
  url,         ///< empty or a URL with one of `choices` as scheme ("http", "https", ...)
  boolean,     ///< true/false
  count,       ///< a non-negative integer up to `max`
  port,        ///< 1–65535, or 0 where `zero_ok`
  duration,    ///< "30s"; a bare integer is seconds
  bytes,       ///< "64MiB" or an integer of bytes
  range,       ///< "40000-40999"
  words,       ///< an array of strings; a shell-like word list in env and flags
  string_map,  ///< a table of strings; KEY=VALUE words in env and flags
  engine_kind  ///< vllm, vllm-cpu, sglang, llama.cpp, custom
};

/// A typed reference to the member a key sets.
using Target =
    std::variant<std::string*, std::filesystem::path*, bool*, std::uint32_t*, std::uint16_t*,
                 std::uint64_t*, std::chrono::milliseconds*, PortRange*, std::vector<std::string>*,
                 std::map<std::string, std::string>*, core::EngineKind*>;

/// One key.
struct Field {
  std::string key;  ///< "server.port", "engines.vllm.command"
  Kind kind = Kind::string;
  std::function<Target(Config&)> target;
  std::vector<std::string> choices;  ///< choice values, or url schemes
  std::uint64_t max = 0;             ///< count: the largest allowed value (0: no limit)
  bool zero_ok = false;              ///< port: 0 means ephemeral
  bool secret = false;               ///< hidden by `config show` unless asked
  std::string help;                  ///< one line, for docs and `config show`
};

/// The section names and top-level keys, for "did you mean" at the top level.
const std::vector<std::string>& top_level_names();
/// The fixed keys (everything but engines.*), in display order.
const std::vector<Field>& fixed_fields();
/// The keys of one engine table: kind, command, version, env, health_path.
std::vector<Field> engine_fields(const std::string& engine);
/// The key names inside an engine table.
const std::vector<std::string>& engine_keys();

/// The field named `key`, for fixed keys and engines.<name>.<key>; nullptr when unknown.
/// `storage` holds an engine field made on the fly.
const Field* find_field(std::string_view key, Field& storage);

/// Known keys of a section ("server") without the prefix, for "did you mean".
std::vector<std::string> section_keys(std::string_view section);

/// OPENSTATION_ + the key upper-cased, '.' and '-' as '_': "engines.vllm-cpu.command" →
/// "OPENSTATION_ENGINES_VLLM_CPU_COMMAND".
std::string env_name(std::string_view key);

/// An engine name is lower-case letters, digits, '.', '-' and '_', starting with a letter or
/// digit. Errors: config.bad_engine_name.
core::Result<void> check_engine_name(std::string_view name, std::string_view where);

/// A value before it is checked against its field: what a TOML node or a text held.
using Raw = std::variant<std::string, std::int64_t, bool, std::vector<std::string>,
                         std::map<std::string, std::string>>;

/// "a string", "an integer", "a boolean", "an array", "a table".
std::string_view raw_type_name(const Raw& r);

/// The text of an env var or a flag as the field's raw type: integers for ports and counts, a
/// word list for words, KEY=VALUE words for maps, the text itself otherwise.
/// Errors (config.bad_value, config.bad_words) are prefixed with `where`.
core::Result<Raw> raw_from_text(const Field& f, std::string_view text, std::string_view where);

/// Checks `raw` against the field (type, bounds, choices, URL scheme, units) and stores it.
/// Errors: config.wrong_type, config.port_out_of_range, config.bad_value, config.bad_duration,
/// config.bad_size, config.bad_range, config.bad_url; their message starts with `where`, their
/// field is the key.
core::Result<void> assign(const Field& f, Config& c, const Raw& raw, std::string_view where);

/// The value as TOML (a literal: "text", 42, true, ["a", "b"], { K = "v" }).
std::string toml_literal(const Field& f, Config& c);
/// A TOML basic string with escapes.
std::string toml_quote(std::string_view s);
/// A bare key when allowed, else quoted.
std::string toml_key(std::string_view k);

}  // namespace openstation::config::detail
