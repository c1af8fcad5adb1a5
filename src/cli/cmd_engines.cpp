#include "cli/commands.hpp"
#include "cli/context.hpp"
#include "core/engine_kind.hpp"
#include "core/strings.hpp"
#include "engine/args.hpp"
#include "engine/spec.hpp"

#include <CLI/CLI.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <memory>
#include <ostream>

namespace openstation::cli {
namespace {

struct EnginesFlags {
  std::string engine;
  std::string engine_version;
  std::string args;
};

std::string number_text(double v) {
  if (v == static_cast<double>(static_cast<long long>(v)))
    return std::to_string(static_cast<long long>(v));
  std::string s = std::to_string(v);
  while (!s.empty() && s.back() == '0') s.pop_back();
  return s;
}

std::string range_text(const engine::FlagSpec& f) {
  std::string out;
  if (f.min) out += std::string(f.min_exclusive ? "> " : ">= ") + number_text(*f.min);
  if (f.max) out += std::string(out.empty() ? "" : ", ") + "<= " + number_text(*f.max);
  return out;
}

/// "int", "bool (--x / --no-x)", "list of int", ...
std::string type_text(const engine::FlagSpec& f) {
  using engine::BoolStyle;
  using engine::FlagType;
  if (f.type == FlagType::boolean) {
    switch (f.bool_style) {
      case BoolStyle::presence: return "bool (presence)";
      case BoolStyle::optional_action: return "bool (--x / --no-x)";
      case BoolStyle::store_boolean: return "bool (--x [true|false])";
    }
  }
  std::string t(engine::to_string(f.type));
  if (f.type == FlagType::list) t += " of " + std::string(engine::to_string(f.item_type));
  if (f.human_readable) t += " (64k / 64K)";
  return t;
}

boost::json::object spec_summary(const engine::EngineSpec& s) {
  boost::json::object o{
      {"engine", std::string(core::to_string(s.kind))},
      {"display_name", s.display_name},
      {"version", s.version.str()},
      {"version_range", s.version_range},
      {"flags", s.open_flags ? boost::json::value(nullptr) : boost::json::value(s.flags.size())},
      {"underscore_equals_dash", s.underscore_equals_dash},
      {"prefix_abbreviations", s.allow_prefix_abbrev},
      {"open_flags", s.open_flags}};
  return o;
}

boost::json::object flag_json(const engine::FlagSpec& f) {
  boost::json::object o{{"name", f.name}, {"type", std::string(engine::to_string(f.type))}};
  boost::json::array aliases;
  for (const auto& a : f.aliases) aliases.emplace_back(a);
  o["aliases"] = std::move(aliases);
  if (f.type == engine::FlagType::boolean)
    o["bool_style"] = std::string(engine::to_string(f.bool_style));
  if (f.type == engine::FlagType::list)
    o["item_type"] = std::string(engine::to_string(f.item_type));
  if (!f.choices.empty()) {
    boost::json::array c;
    for (const auto& v : f.choices) c.emplace_back(v);
    o["choices"] = std::move(c);
    o["choices_strict"] = f.choices_strict;
  }
  if (f.min) o["min"] = *f.min;
  if (f.min_exclusive) o["min_exclusive"] = true;
  if (f.max) o["max"] = *f.max;
  if (f.human_readable) o["human_readable"] = true;
  if (f.multi_value) o["multi_value"] = true;
  if (f.accepts_none) o["accepts_none"] = true;
  if (!f.special_values.empty()) {
    boost::json::array c;
    for (const auto& v : f.special_values) c.emplace_back(v);
    o["special_values"] = std::move(c);
  }
  o["default"] = f.default_value;
  if (!f.help.empty()) o["help"] = f.help;
  if (f.platform_owned) {
    o["platform_owned"] = true;
    o["owned_reason"] = f.owned_reason;
  }
  boost::json::array versions;
  for (const auto& v : f.versions) versions.emplace_back(v);
  o["versions"] = std::move(versions);
  return o;
}

core::Result<const engine::EngineSpec*> spec_for(const EnginesFlags& f) {
  auto kind = core::parse_engine_kind(f.engine);
  if (!kind) return kind.error();
  return engine::resolve_engine(*kind, f.engine_version);
}

void run_list(Context& ctx) {
  const auto& specs = engine::known_engines();
  if (ctx.json) {
    boost::json::array arr;
    for (const auto& s : specs) arr.push_back(spec_summary(s));
    ctx.print_json(boost::json::object{{"engines", std::move(arr)}});
    return;
  }
  auto& out = *ctx.out;
  out << "ENGINE     VERSION       STANDS FOR        FLAGS  SYNTAX\n";
  for (const auto& s : specs) {
    std::string name(core::to_string(s.kind));
    std::string version = s.open_flags ? "-" : s.version.str();
    std::string flags = s.open_flags ? "any" : std::to_string(s.flags.size());
    std::string syntax;
    if (s.open_flags) {
      syntax = "any flags, values as strings";
    } else {
      const auto* chunked = s.find("--enable-chunked-prefill");
      syntax = s.underscore_equals_dash ? "--x_y = --x-y" : "prefix abbreviations";
      if (chunked != nullptr) {
        syntax += chunked->bool_style == engine::BoolStyle::store_boolean
                      ? "; --enable-chunked-prefill False"
                      : "; --no-enable-chunked-prefill";
      } else {
        syntax += "; booleans are presence flags";
      }
    }
    name.resize(std::max<std::size_t>(name.size(), 10), ' ');
    version.resize(std::max<std::size_t>(version.size(), 13), ' ');
    std::string range = s.version_range;
    range.resize(std::max<std::size_t>(range.size(), 17), ' ');
    flags.resize(std::max<std::size_t>(flags.size(), 6), ' ');
    out << name << " " << version << " " << range << " " << flags << " " << syntax << "\n";
  }
}

void run_flags(const EnginesFlags& f, Context& ctx) {
  auto spec = spec_for(f);
  if (!spec) return ctx.fail(spec.error());
  const auto& s = **spec;
  if (ctx.json) {
    boost::json::object o = spec_summary(s);
    boost::json::array arr;
    for (const auto& flag : s.flags) arr.push_back(flag_json(flag));
    o["flags"] = std::move(arr);
    ctx.print_json(o);
    return;
  }
  auto& out = *ctx.out;
  out << s.describe() << "\n";
  if (s.open_flags) {
    out << "Accepts any flags; values are passed as strings. The command comes from the engine's "
           "template (see docs/engines.md).\n";
    return;
  }
  for (const auto& flag : s.flags) {
    out << "  " << flag.name;
    if (!flag.aliases.empty()) out << ", " << core::join(flag.aliases);
    out << "  " << type_text(flag);
    if (!flag.default_value.empty()) out << "  default " << flag.default_value;
    if (const auto r = range_text(flag); !r.empty()) out << "  range " << r;
    out << "\n";
    if (!flag.choices.empty()) {
      out << "      " << (flag.choices_strict ? "choices: " : "known values: ")
          << core::join(flag.choices) << (flag.accepts_none ? ", None" : "") << "\n";
    }
    if (!flag.help.empty()) out << "      " << flag.help << "\n";
    if (flag.platform_owned) out << "      set by the platform: " << flag.owned_reason << "\n";
  }
}

void run_check(const EnginesFlags& f, Context& ctx) {
  auto spec = spec_for(f);
  if (!spec) return ctx.fail(spec.error());
  auto parsed = engine::parse_args(**spec, std::string_view(f.args));
  if (!parsed) return ctx.fail(parsed.error());
  const auto argv = engine::render(**spec, *parsed);
  if (ctx.json) {
    boost::json::array a;
    for (const auto& t : argv) a.emplace_back(t);
    boost::json::object o{{"engine", std::string(core::to_string((*spec)->kind))},
                          {"engine_version", (*spec)->version.str()},
                          {"argv", std::move(a)},
                          {"ok", true}};
    ctx.print_json(o);
    return;
  }
  *ctx.out << engine::join_command_line(argv) << "\n";
}

}  // namespace

void register_engines_commands(CLI::App& root, Context& ctx) {
  auto f = std::make_shared<EnginesFlags>();
  CLI::App* engines = root.add_subcommand(
      "engines", "The inference engines the platform knows: their versions and flags");
  engines->require_subcommand(1);

  CLI::App* list = engines->add_subcommand("list",
                                           "List engines, the versions of their flag tables "
                                           "and the versions each table stands for");
  list->add_flag("--json", ctx.json, "Print JSON");
  list->callback([&ctx] { run_list(ctx); });

  CLI::App* flags = engines->add_subcommand(
      "flags",
      "Show an engine version's flags: type, aliases, default, choices, range, and the "
      "flags the platform sets itself");
  flags->add_option("engine", f->engine, "vllm, vllm-cpu, sglang, llama.cpp or custom")->required();
  flags->add_option("--engine-version", f->engine_version,
                    "The engine version (default: the newest known); 0.8.4 selects the table "
                    "with vLLM's older syntax");
  flags->add_flag("--json", ctx.json, "Print JSON");
  flags->callback([f, &ctx] { run_flags(*f, ctx); });

  CLI::App* check = engines->add_subcommand(
      "check",
      "Validate extended parameters for an engine version and print the argv they "
      "become (exit 2 with a precise error otherwise)");
  check->add_option("engine", f->engine, "vllm, vllm-cpu, sglang, llama.cpp or custom")->required();
  check->add_option("--engine-version", f->engine_version, "The engine version (default: newest)");
  check->add_option("--args", f->args, "The extended parameters, e.g. \"--max-model-len 32768\"");
  check->add_flag("--json", ctx.json, "Print JSON");
  check->callback([f, &ctx] { run_check(*f, ctx); });
}

}  // namespace openstation::cli
