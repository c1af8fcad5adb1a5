#include "cli/commands.hpp"
#include "cli/context.hpp"
#include "config/config_json.hpp"
#include "config/load.hpp"

#include <CLI/CLI.hpp>
#include <boost/json.hpp>

#include <memory>
#include <ostream>

namespace openstation::cli {
namespace {

/// The flags shared by `openstation config show` and `config check`.
struct ConfigFlags {
  std::string config_file;
  std::string data_dir;
  std::vector<std::string> set;
  bool show_secrets = false;
  bool no_sources = false;
};

core::Result<config::Config> load(const ConfigFlags& flags) {
  config::LoadOptions options;
  if (!flags.config_file.empty()) options.config_file = flags.config_file;
  options.env = config::process_environment();
  options.is_root = config::running_as_root();
  if (!flags.data_dir.empty()) options.overrides.push_back("data_dir=" + flags.data_dir);
  options.overrides.insert(options.overrides.end(), flags.set.begin(), flags.set.end());
  return config::load_config(options);
}

void run_show(const ConfigFlags& flags, Context& ctx) {
  auto c = load(flags);
  if (!c) {
    ctx.fail(c.error());
    return;
  }
  if (ctx.json) {
    ctx.print_json(boost::json::object{
        {"config_file", c->config_file.empty() ? boost::json::value(nullptr)
                                               : boost::json::value(c->config_file.string())},
        {"config", config::to_json(*c, !flags.show_secrets)},
        {"sources", config::sources_json(*c)}});
    return;
  }
  *ctx.out << "# OpenStation effective configuration\n"
           << "# config file: " << (c->config_file.empty() ? "(none)" : c->config_file.string())
           << "\n"
           << "# precedence: defaults < config file < OPENSTATION_* environment < flags\n"
           << (flags.no_sources ? "" : "# after each value: where it came from\n")
           << (flags.show_secrets ? "" : "# secrets are shown as \"***\" (--show-secrets)\n")
           << "\n";
  config::TomlOptions options;
  options.sources = !flags.no_sources;
  options.redact = !flags.show_secrets;
  *ctx.out << config::to_toml(*c, options);
}

void run_check(const ConfigFlags& flags, Context& ctx) {
  auto c = load(flags);
  if (!c) {
    ctx.fail(c.error());
    return;
  }
  if (ctx.json) {
    ctx.print_json(boost::json::object{
        {"ok", true},
        {"config_file", c->config_file.empty() ? boost::json::value(nullptr)
                                               : boost::json::value(c->config_file.string())}});
    return;
  }
  *ctx.out << "config OK"
           << (c->config_file.empty() ? std::string(" (no config file; defaults, environment "
                                                    "and flags)")
                                      : " (" + c->config_file.string() + ")")
           << "\n";
}

void add_common(CLI::App* cmd, ConfigFlags& flags, Context& ctx) {
  cmd->add_option("--config", flags.config_file,
                  "The TOML config file (default: $OPENSTATION_CONFIG, else "
                  "<data dir>/openstation.toml when it exists)");
  cmd->add_option("--data-dir", flags.data_dir, "The data dir (as for openstation start)");
  cmd->add_option("--set", flags.set,
                  "Override a key as on the command line: --set server.port=9443 (repeatable)")
      ->take_all();
  cmd->add_flag("--json", ctx.json, "JSON output");
}

}  // namespace

void register_config_commands(CLI::App& root, Context& ctx) {
  CLI::App* cmd = root.add_subcommand(
      "config", "The settings: defaults < config file < OPENSTATION_* environment < flags");
  cmd->require_subcommand(1);

  auto flags = std::make_shared<ConfigFlags>();
  CLI::App* show = cmd->add_subcommand(
      "show", "Print the effective configuration as TOML, with where each value came from");
  add_common(show, *flags, ctx);
  show->add_flag("--show-secrets", flags->show_secrets,
                 "Print tokens and the database password instead of ***");
  show->add_flag("--no-sources", flags->no_sources, "Leave out the source comments");
  show->callback([flags, &ctx] { run_show(*flags, ctx); });

  CLI::App* check = cmd->add_subcommand(
      "check", "Load and validate the configuration; exit 0 when valid, 2 with the error");
  add_common(check, *flags, ctx);
  check->callback([flags, &ctx] { run_check(*flags, ctx); });
}

}  // namespace openstation::cli
