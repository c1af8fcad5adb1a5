#include "cli/commands.hpp"
#include "cli/context.hpp"

#include <CLI/CLI.hpp>

namespace openstation::cli {

void register_estimate_command(CLI::App& /*root*/, Context& /*ctx*/) {}

}  // namespace openstation::cli
