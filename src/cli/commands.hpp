#pragma once
/// Registration of the subcommands. Each lives in its own file and adds itself to the root app;
/// the callback it installs runs the command and leaves the exit code in the Context.

#include <iosfwd>

namespace CLI {
class App;
}

namespace openstation::cli {

struct Context;

void register_models_commands(CLI::App& root, Context& ctx);     // cmd_models.cpp
void register_estimate_command(CLI::App& root, Context& ctx);    // cmd_estimate.cpp
void register_plan_command(CLI::App& root, Context& ctx);        // cmd_plan.cpp
void register_engines_commands(CLI::App& root, Context& ctx);    // cmd_engines.cpp
void register_agent_commands(CLI::App& root, Context& ctx);      // cmd_agent.cpp
void register_config_commands(CLI::App& root, Context& ctx);     // cmd_config.cpp
void register_server_commands(CLI::App& root, Context& ctx);     // cmd_server.cpp: server, start
void register_gateway_command(CLI::App& root, Context& ctx);     // cmd_gateway.cpp
void register_login_commands(CLI::App& root, Context& ctx);      // cmd_login.cpp
void register_nodes_commands(CLI::App& root, Context& ctx);      // cmd_nodes.cpp
void register_services_commands(CLI::App& root, Context& ctx);   // cmd_services.cpp
void register_instances_commands(CLI::App& root, Context& ctx);  // cmd_instances.cpp
void register_users_commands(CLI::App& root, Context& ctx);      // cmd_users.cpp
void register_keys_commands(CLI::App& root, Context& ctx);       // cmd_keys.cpp

/// Runs the CLI on argv, writing to the given streams; returns the process exit code.
int run(int argc, const char* const* argv, std::ostream& out, std::ostream& err);

}  // namespace openstation::cli
