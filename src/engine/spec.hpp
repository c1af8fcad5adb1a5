#pragma once
/// Engine specifications: for each engine kind and version, its command and its full flag table
/// (generated from shared/reference/flags/*.md into data/*.json, compiled into the binary).

#include "core/engine_kind.hpp"
#include "core/error.hpp"
#include "core/version.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace openstation::engine {

enum class FlagType { integer, number, string, boolean, choice, list, json };

/// How a boolean flag is written on the command line for a given engine version.
enum class BoolStyle {
  presence,         ///< store_true: `--x` only (SGLang, vLLM store_true flags)
  optional_action,  ///< BooleanOptionalAction: `--x` / `--no-x`, no value (vLLM ≥ 0.8.5)
  store_boolean,    ///< `--x`, `--x true|false`, `--x=false` (vLLM ≤ 0.8.4 StoreBoolean)
};

/// One flag of one engine version.
struct FlagSpec {
  std::string name;                  ///< canonical, with dashes: "--max-model-len"
  std::vector<std::string> aliases;  ///< "-tp", "--tp-size", ...
  FlagType type = FlagType::string;
  BoolStyle bool_style = BoolStyle::presence;  ///< for booleans
  std::vector<std::string> choices;            ///< allowed values (strict for FlagType::choice)
  bool choices_strict = false;  ///< false: known values, others accepted with a warning
  std::optional<double> min;    ///< inclusive unless min_exclusive
  bool min_exclusive = false;
  std::optional<double> max;
  bool human_readable = false;  ///< integers like 64k / 64K accepted
  bool multi_value = false;     ///< nargs='+'
  bool accepts_none = false;    ///< "None" accepted as a value
  std::string default_value;    ///< as documented, for display
  std::string help;             ///< one line
  /// Owned by the platform (--port, --host, the model path, the served name): refused in
  /// extended parameters with `owned_reason`.
  bool platform_owned = false;
  std::string owned_reason;

  // Added with the implementation (additive):
  FlagType item_type = FlagType::string;    ///< for FlagType::list: the type of each value
  std::vector<std::string> special_values;  ///< accepted verbatim besides the type ("auto", "-1")
  bool value_optional = false;  ///< nargs '?' (or '*' with multi_value): the value may be left out
  bool repeatable = false;      ///< action=append: may be given more than once
  bool dotted_keys = false;     ///< vLLM JSON flags: `--compilation-config.mode 3` accepted
  std::vector<std::string> versions;  ///< the table versions (same engine) the flag exists in

  /// True for FlagType::boolean.
  bool is_bool() const { return type == FlagType::boolean; }
};

/// "int", "float", "str", "bool", "choice", "list", "json" (the data files' spelling).
std::string_view to_string(FlagType t) noexcept;
/// "presence", "optional_action", "store_boolean".
std::string_view to_string(BoolStyle s) noexcept;

/// One engine version's identity and flags.
struct EngineSpec {
  core::EngineKind kind = core::EngineKind::vllm;
  core::Version version;                ///< the version this table describes
  std::string version_range;            ///< human text: "<= 0.8.4", ">= 0.8.5"
  std::string display_name;             ///< "vLLM 0.21.0"
  bool underscore_equals_dash = false;  ///< vLLM: --max_model_len == --max-model-len
  bool allow_prefix_abbrev = false;     ///< SGLang: argparse unique-prefix abbreviations
  std::vector<FlagSpec> flags;

  // Added with the implementation (additive):
  std::string family;  ///< the flag tables' engine: "vllm" (also vLLM CPU), "sglang", "custom"
  core::Version applies_from;                  ///< first engine version this table stands for
  std::optional<core::Version> applies_below;  ///< first version it no longer stands for
  /// Custom engines: any flag is accepted, values are strings, nothing is platform-owned.
  bool open_flags = false;

  /// The flag by canonical name or alias (after underscore normalisation where it applies).
  const FlagSpec* find(std::string_view name) const;
  /// True if `version` falls in [applies_from, applies_below).
  bool covers(const core::Version& version) const;
  /// "vLLM 0.21.0 (>= 0.8.5)", for messages.
  std::string describe() const;
};

/// All engine versions the project knows, newest last per kind.
const std::vector<EngineSpec>& known_engines();

/// The spec for a kind and a version text ("0.8.4"; empty = the newest known). A version between
/// two known tables maps to the table whose range contains it; unknown kinds or versions older
/// than the oldest table are errors listing what is known.
core::Result<const EngineSpec*> resolve_engine(core::EngineKind kind, std::string_view version);

/// The specs of one kind, oldest first (empty for kinds without flag tables).
std::vector<const EngineSpec*> engines_of(core::EngineKind kind);

/// Loads one generated flag table (src/engine/data/*.json) as the spec of `kind`. Errors name the
/// JSON path that is wrong. Used for the embedded tables and by tests.
core::Result<EngineSpec> load_flag_table(std::string_view json_text, core::EngineKind kind);

}  // namespace openstation::engine
