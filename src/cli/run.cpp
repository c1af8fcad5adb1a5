#include "cli/commands.hpp"
#include "cli/context.hpp"
#include "core/log.hpp"

#include <CLI/CLI.hpp>

#include <iostream>

#ifndef OPENSTATION_VERSION
#define OPENSTATION_VERSION "0.0.0"
#endif

namespace openstation::cli {

int run(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  Context ctx;
  ctx.out = &out;
  ctx.err = &err;

  CLI::App root{
      "OpenStation: deploy large language models on your own GPU and CPU servers and "
      "serve them through one OpenAI-compatible endpoint.",
      "openstation"};
  root.set_version_flag("--version", std::string("openstation ") + OPENSTATION_VERSION);
  root.require_subcommand(1);
  std::string log_level = "warn";
  root.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  root.parse_complete_callback([&] { core::init_logging(core::parse_log_level(log_level)); });

  register_models_commands(root, ctx);
  register_estimate_command(root, ctx);
  register_plan_command(root, ctx);
  register_engines_commands(root, ctx);
  register_agent_commands(root, ctx);
  register_config_commands(root, ctx);
  register_server_commands(root, ctx);
  register_gateway_command(root, ctx);
  register_login_commands(root, ctx);
  register_nodes_commands(root, ctx);
  register_services_commands(root, ctx);
  register_instances_commands(root, ctx);
  register_users_commands(root, ctx);
  register_keys_commands(root, ctx);

  try {
    root.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    out << root.help();
    return kExitOk;
  } catch (const CLI::CallForAllHelp&) {
    out << root.help("", CLI::AppFormatMode::All);
    return kExitOk;
  } catch (const CLI::CallForVersion&) {
    out << root.version() << "\n";
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    // A subcommand's --help: CLI11 reports it as a ParseError subclass with exit code 0.
    if (e.get_exit_code() == 0) {
      root.exit(e, out, err);
      return kExitOk;
    }
    err << "error: " << e.what() << "\n";
    err << "Run with --help for usage.\n";
    return kExitBadInput;
  } catch (const core::ErrorException& e) {
    ctx.fail(e.error());
  }
  return ctx.exit_code;
}

}  // namespace openstation::cli
