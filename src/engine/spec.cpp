#include "engine/spec.hpp"

#include "core/json.hpp"
#include "core/strings.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <stdexcept>

namespace openstation::embedded {
std::string_view flags_vllm_0_7_3();
std::string_view flags_vllm_0_21_0();
std::string_view flags_sglang_0_5_6_post2();
std::string_view flags_llama_cpp_0_4_0();
}  // namespace openstation::embedded

namespace openstation::engine {
namespace {

namespace json = core::json;

std::vector<std::string> string_list(const boost::json::object& o, std::string_view key,
                                     const std::string& path) {
  std::vector<std::string> out;
  const auto* v = o.if_contains(key);
  if (v == nullptr) return out;
  const auto& arr = json::as_array(*v, json::join_path(path, key));
  for (std::size_t i = 0; i < arr.size(); ++i) {
    const std::string p = json::join_path(path, key) + "[" + std::to_string(i) + "]";
    if (!arr[i].is_string()) {
      throw core::ErrorException(core::parse_error("engine.bad_table", p + " must be a string", p));
    }
    out.emplace_back(arr[i].as_string());
  }
  return out;
}

FlagType flag_type_of(const std::string& s, const std::string& path) {
  static constexpr std::pair<std::string_view, FlagType> kTypes[] = {
      {"int", FlagType::integer},  {"float", FlagType::number},  {"str", FlagType::string},
      {"bool", FlagType::boolean}, {"choice", FlagType::choice}, {"list", FlagType::list},
      {"json", FlagType::json}};
  for (const auto& [name, t] : kTypes) {
    if (s == name) return t;
  }
  throw core::ErrorException(
      core::parse_error("engine.bad_table", path + ": unknown flag type '" + s + "'", path));
}

BoolStyle bool_style_of(const std::string& s, const std::string& path) {
  if (s == "presence") return BoolStyle::presence;
  if (s == "optional_action") return BoolStyle::optional_action;
  if (s == "store_boolean") return BoolStyle::store_boolean;
  throw core::ErrorException(
      core::parse_error("engine.bad_table", path + ": unknown bool style '" + s + "'", path));
}

bool flag_bool(const boost::json::object& o, std::string_view key, const std::string& path) {
  return json::opt_bool(o, key, path).value_or(false);
}

FlagSpec load_flag(const boost::json::object& o, const std::string& path) {
  FlagSpec f;
  f.name = json::get_string(o, "name", path);
  f.aliases = string_list(o, "aliases", path);
  f.type = flag_type_of(json::get_string(o, "type", path), json::join_path(path, "type"));
  if (auto s = json::opt_string(o, "bool_style", path)) {
    f.bool_style = bool_style_of(*s, json::join_path(path, "bool_style"));
  }
  if (auto s = json::opt_string(o, "item_type", path)) {
    f.item_type = flag_type_of(*s, json::join_path(path, "item_type"));
  }
  f.choices = string_list(o, "choices", path);
  f.choices_strict = flag_bool(o, "choices_strict", path);
  f.min = json::opt_number(o, "min", path);
  f.min_exclusive = flag_bool(o, "min_exclusive", path);
  f.max = json::opt_number(o, "max", path);
  f.human_readable = flag_bool(o, "human_readable", path);
  f.multi_value = flag_bool(o, "multi_value", path);
  f.accepts_none = flag_bool(o, "accepts_none", path);
  f.default_value = json::opt_string(o, "default", path).value_or("");
  f.help = json::opt_string(o, "help", path).value_or("");
  f.platform_owned = flag_bool(o, "platform_owned", path);
  f.owned_reason = json::opt_string(o, "owned_reason", path).value_or("");
  f.special_values = string_list(o, "special_values", path);
  f.value_optional = flag_bool(o, "value_optional", path);
  f.repeatable = flag_bool(o, "repeatable", path);
  f.dotted_keys = flag_bool(o, "dotted_keys", path);
  f.versions = string_list(o, "versions", path);
  return f;
}

std::string kind_display(core::EngineKind kind, const std::string& table_display) {
  switch (kind) {
    case core::EngineKind::vllm_cpu: return table_display + " CPU";
    case core::EngineKind::custom: return "custom engine";
    default: return table_display;
  }
}

/// A spec for engines without a flag table: every flag accepted as strings.
EngineSpec open_spec(core::EngineKind kind) {
  EngineSpec s;
  s.kind = kind;
  s.family = std::string(core::to_string(kind));
  s.display_name = kind_display(kind, "");
  s.version_range = "any version";
  s.open_flags = true;
  return s;
}

std::vector<EngineSpec> load_all() {
  const std::pair<std::string_view (*)(), bool> tables[] = {
      {&embedded::flags_vllm_0_7_3, true},
      {&embedded::flags_vllm_0_21_0, true},
      {&embedded::flags_sglang_0_5_6_post2, false},
  };
  std::vector<EngineSpec> out;
  for (core::EngineKind kind :
       {core::EngineKind::vllm, core::EngineKind::vllm_cpu, core::EngineKind::sglang}) {
    for (const auto& [text, is_vllm] : tables) {
      if (is_vllm != (kind != core::EngineKind::sglang)) continue;
      auto spec = load_flag_table(text(), kind);
      if (!spec) throw std::logic_error("embedded flag table is invalid: " + spec.error().message);
      out.push_back(std::move(*spec));
    }
  }
  auto llama = load_flag_table(embedded::flags_llama_cpp_0_4_0(), core::EngineKind::llama_cpp);
  if (!llama) throw std::logic_error("embedded flag table is invalid: " + llama.error().message);
  out.push_back(std::move(*llama));
  out.push_back(open_spec(core::EngineKind::custom));
  return out;
}

}  // namespace

std::string_view to_string(FlagType t) noexcept {
  switch (t) {
    case FlagType::integer: return "int";
    case FlagType::number: return "float";
    case FlagType::string: return "str";
    case FlagType::boolean: return "bool";
    case FlagType::choice: return "choice";
    case FlagType::list: return "list";
    case FlagType::json: return "json";
  }
  return "str";
}

std::string_view to_string(BoolStyle s) noexcept {
  switch (s) {
    case BoolStyle::presence: return "presence";
    case BoolStyle::optional_action: return "optional_action";
    case BoolStyle::store_boolean: return "store_boolean";
  }
  return "presence";
}

const FlagSpec* EngineSpec::find(std::string_view name) const {
  std::string key(name);
  if (underscore_equals_dash && core::starts_with(key, "--")) {
    std::replace(key.begin() + 2, key.end(), '_', '-');
  }
  for (const auto& f : flags) {
    if (f.name == key) return &f;
  }
  for (const auto& f : flags) {
    if (std::find(f.aliases.begin(), f.aliases.end(), key) != f.aliases.end()) return &f;
  }
  return nullptr;
}

bool EngineSpec::covers(const core::Version& v) const {
  if (open_flags) return true;
  if (v < applies_from) return false;
  return !applies_below || v < *applies_below;
}

std::string EngineSpec::describe() const {
  if (open_flags) return display_name;
  return display_name + " (" + version_range + ")";
}

core::Result<EngineSpec> load_flag_table(std::string_view json_text, core::EngineKind kind) {
  return json::capture([&]() -> EngineSpec {
    const auto root = json::parse(json_text, "flag table");
    const auto& o = json::as_object(root, "");
    EngineSpec s;
    s.kind = kind;
    s.family = json::get_string(o, "engine", "");
    const auto version = json::get_string(o, "version", "");
    auto v = core::Version::parse(version);
    if (!v) throw core::ErrorException(v.error());
    s.version = *v;
    auto from = core::Version::parse(json::get_string(o, "applies_from", ""));
    if (!from) throw core::ErrorException(from.error());
    s.applies_from = *from;
    const auto below = json::opt_string(o, "applies_below", "").value_or("");
    if (!below.empty()) {
      auto b = core::Version::parse(below);
      if (!b) throw core::ErrorException(b.error());
      s.applies_below = *b;
    }
    s.version_range = json::get_string(o, "version_range", "");
    s.display_name = kind_display(kind, json::get_string(o, "display_name", "")) + " " + version;
    s.underscore_equals_dash = json::opt_bool(o, "underscore_equals_dash", "").value_or(false);
    s.allow_prefix_abbrev = json::opt_bool(o, "allow_prefix_abbrev", "").value_or(false);
    const auto* flags = o.if_contains("flags");
    if (flags == nullptr) {
      throw core::ErrorException(
          core::parse_error("engine.bad_table", "flags is missing", "flags"));
    }
    const auto& arr = json::as_array(*flags, "flags");
    s.flags.reserve(arr.size());
    for (std::size_t i = 0; i < arr.size(); ++i) {
      const std::string path = "flags[" + std::to_string(i) + "]";
      s.flags.push_back(load_flag(json::as_object(arr[i], path), path));
    }
    return s;
  });
}

const std::vector<EngineSpec>& known_engines() {
  // Immutable after the first call; C++ guarantees thread-safe initialisation.
  static const std::vector<EngineSpec> specs = load_all();
  return specs;
}

std::vector<const EngineSpec*> engines_of(core::EngineKind kind) {
  std::vector<const EngineSpec*> out;
  for (const auto& s : known_engines()) {
    if (s.kind == kind) out.push_back(&s);
  }
  return out;
}

core::Result<const EngineSpec*> resolve_engine(core::EngineKind kind, std::string_view version) {
  const auto specs = engines_of(kind);
  if (specs.empty()) {
    return core::invalid("engine.unknown",
                         "no flag table for engine '" + std::string(core::to_string(kind)) + "'",
                         "engine");
  }
  if (version.empty() || specs.back()->open_flags) return specs.back();
  auto v = core::Version::parse(version);
  if (!v) {
    return core::invalid("engine.bad_version",
                         "invalid engine version '" + std::string(version) +
                             "': expected digits like 0.8.4 or 0.5.6.post2",
                         "engine_version");
  }
  for (const auto* s : specs) {
    if (s->covers(*v)) return s;
  }
  std::vector<std::string> known;
  for (const auto* s : specs) known.push_back(s->describe());
  return core::Error(core::Errc::unsupported, "engine.version_too_old",
                     std::string(core::to_string(kind)) + " " + std::string(version) +
                         " is older than the oldest flag table the platform knows; known: " +
                         core::join(known) + ". Upgrade the engine or choose a known version.",
                     "engine_version");
}

}  // namespace openstation::engine
