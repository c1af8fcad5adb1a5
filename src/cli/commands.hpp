#pragma once
/// Registration of the subcommands. Each lives in its own file and adds itself to the root app;
/// the callback it installs runs the command and leaves the exit code in the Context.

#include <iosfwd>

namespace CLI {
class App;
}

namespace openstation::cli {

struct Context;

void register_models_commands(CLI::App& root, Context& ctx);   // cmd_models.cpp
void register_estimate_command(CLI::App& root, Context& ctx);  // cmd_estimate.cpp
void register_plan_command(CLI::App& root, Context& ctx);      // cmd_plan.cpp
void register_engines_commands(CLI::App& root, Context& ctx);  // cmd_engines.cpp
void register_agent_commands(CLI::App& root, Context& ctx);    // cmd_agent.cpp
void register_config_commands(CLI::App& root, Context& ctx);   // cmd_config.cpp
void register_server_commands(CLI::App& root, Context& ctx);   // cmd_server.cpp: server, start

/// Runs the CLI on argv, writing to the given streams; returns the process exit code.
int run(int argc, const char* const* argv, std::ostream& out, std::ostream& err);

}  // namespace openstation::cli
