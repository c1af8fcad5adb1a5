#pragma once
/// Building a `Config`: defaults < TOML file < OPENSTATION_* environment < command-line flags.
///
/// - The file is `LoadOptions::config_file` when given (it must exist), else $OPENSTATION_CONFIG
///   (it must exist), else <data_dir>/openstation.toml when that exists, else none. The data dir
///   used to look for it is the flag's, else $OPENSTATION_DATA_DIR, else core::data_dir_for().
///   Relative paths in a file resolve against the file's directory.
/// - Every key has one environment variable: OPENSTATION_ + the dotted key upper-cased with '.'
///   and '-' as '_' (server.port → OPENSTATION_SERVER_PORT, engines.vllm-cpu.command →
///   OPENSTATION_ENGINES_VLLM_CPU_COMMAND). Empty variables are ignored. Lists (an engine's
///   command) are shell-like word lists ("python3 -m sglang.launch_server"), maps (an engine's
///   env) KEY=VALUE words. An OPENSTATION_* variable that names no key is an error.
/// - Flags arrive as "dotted.key=value" overrides with the same text forms; an engine's env
///   variable can also be set one at a time: "engines.vllm.env.HF_HOME=/data/hf".
/// See docs/configuration.md for every key.

#include "config/config.hpp"
#include "core/error.hpp"

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace openstation::config {

/// What load_config() reads. Nothing is taken from the process itself: the CLI passes
/// process_environment() and running_as_root().
struct LoadOptions {
  /// An explicit config file (--config); it must exist.
  std::optional<std::filesystem::path> config_file;
  /// The environment: OPENSTATION_* variables, and HOME / XDG_DATA_HOME for the default data dir.
  std::map<std::string, std::string> env;
  /// "dotted.key=value", applied in order after everything else.
  std::vector<std::string> overrides;
  /// Decides the default data dir (/var/lib/openstation for root).
  bool is_root = false;
  /// OPENSTATION_* names that are not settings and must not be refused (besides
  /// OPENSTATION_CONFIG and the OPENSTATION_TEST_* / OPENSTATION_FAKE_* prefixes, always ignored).
  std::vector<std::string> ignored_env;
};

/// Loads, merges and validates. Errors (all with `field` = the dotted key where there is one):
/// config.file_not_found (an explicit file is missing), config.read_failed, config.parse_error
/// (malformed TOML, with file:line:column), config.unknown_key / config.unknown_env (with "did
/// you mean"), config.bad_override, config.wrong_type, config.port_out_of_range,
/// config.bad_value, config.bad_duration, config.bad_size, config.bad_range, config.bad_url,
/// config.bad_words, config.bad_engine_name, and validate()'s codes. Messages start with where
/// the value came from: "<file>:<line>:<column>", "env OPENSTATION_X" or "command line".
core::Result<Config> load_config(const LoadOptions& options);

/// Cross-field checks of a merged config: config.tls_incomplete (only one of cert_file/key_file),
/// config.bad_database_url, config.range_overlap (engine/Ray port ranges overlapping each other
/// or a service port), config.port_conflict (two services on one port), config.empty_command,
/// config.bad_value (backoff base above max, a built-in engine given another kind, a health path
/// without '/', an unparsable engine version, an empty data dir). Messages name the value's
/// source from `c.sources` when known.
core::Result<void> validate(const Config& c);

/// How to_toml() writes.
struct TomlOptions {
  bool sources = false;  ///< a "# <source>" comment after each value
  bool redact = false;   ///< secrets (tokens, the database password) as "***"
};

/// The config as a TOML document that load_config() reads back to the same values (without
/// redaction). Every key is written, defaults included.
std::string to_toml(const Config& c, const TomlOptions& options = {});

/// The environment variable of a dotted key: "server.port" → "OPENSTATION_SERVER_PORT".
std::string env_var_for(std::string_view key);

/// Every key with its current value as TOML text, its env variable, its source and one line of
/// help — what `openstation config show` and the docs list.
struct KeyInfo {
  std::string key;
  std::string value;  ///< a TOML literal
  std::string env;
  std::string source;
  std::string help;
  bool secret = false;
};
std::vector<KeyInfo> describe(const Config& c, bool redact = false);

/// This process's environment (environ) as a map.
std::map<std::string, std::string> process_environment();
/// Whether the effective uid is 0.
bool running_as_root();

}  // namespace openstation::config
