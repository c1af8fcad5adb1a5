#include "cli/commands.hpp"
#include "cli/context.hpp"

#include <CLI/CLI.hpp>

namespace openstation::cli {

void register_agent_commands(CLI::App& /*root*/, Context& /*ctx*/) {}

}  // namespace openstation::cli
