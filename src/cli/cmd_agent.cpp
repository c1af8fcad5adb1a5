#include "agent/inventory.hpp"
#include "agent/inventory_json.hpp"
#include "cli/commands.hpp"
#include "cli/context.hpp"
#include "core/paths.hpp"

#include <CLI/CLI.hpp>

#include <memory>
#include <ostream>

namespace openstation::cli {
namespace {

/// The flags of `openstation agent inventory`.
struct InventoryFlags {
  std::string gpu_inventory;
  std::string data_dir;
  std::string name;
  std::string probe = "auto";
  std::string nvml_library = "libnvidia-ml.so.1";
  std::string nvidia_smi = "nvidia-smi";
};

void run_inventory(const InventoryFlags& flags, Context& ctx) {
  agent::InventoryOptions options;
  options.name = flags.name;
  options.gpu_inventory = flags.gpu_inventory;
  options.probe = agent::parse_probe_choice(flags.probe).value_or(agent::ProbeChoice::automatic);
  options.nvml_library = flags.nvml_library;
  options.nvidia_smi = flags.nvidia_smi;
  options.host.data_dir =
      flags.data_dir.empty() ? core::default_data_dir() : std::filesystem::path(flags.data_dir);
  auto inventory = agent::collect_inventory(options);
  if (!inventory) {
    ctx.fail(inventory.error());
    return;
  }
  if (ctx.json) {
    ctx.print_json(agent::inventory_to_json(*inventory));
  } else {
    *ctx.out << agent::render_inventory(*inventory);
  }
}

}  // namespace

void register_agent_commands(CLI::App& root, Context& ctx) {
  CLI::App* agent = root.add_subcommand("agent", "The node agent: this machine's inventory");
  agent->require_subcommand(1);

  auto flags = std::make_shared<InventoryFlags>();
  CLI::App* inventory = agent->add_subcommand(
      "inventory",
      "Print this machine's GPUs (with the processes holding their memory), CPU, memory, free "
      "disk, OS and IP addresses. A machine without GPUs reports none; that is not an error.");
  inventory->add_flag("--json", ctx.json,
                      "JSON: {\"node\": <a node file, usable as --node>, \"host\", \"probe\", "
                      "\"warnings\"}");
  inventory->add_option("--gpu-inventory", flags->gpu_inventory,
                        "Read the GPUs from this node JSON file instead of the hardware");
  inventory->add_option("--data-dir", flags->data_dir,
                        "The directory whose free disk space is reported (default: the data dir)");
  inventory->add_option("--name", flags->name, "The node's name (default: the host name)");
  inventory
      ->add_option("--probe", flags->probe,
                   "How to read GPUs: auto (NVML, then nvidia-smi), nvml, nvidia-smi, file, none")
      ->check(CLI::IsMember({"auto", "nvml", "nvidia-smi", "file", "none"}))
      ->capture_default_str();
  inventory
      ->add_option("--nvml-library", flags->nvml_library, "The NVML library to load with dlopen")
      ->capture_default_str();
  inventory->add_option("--nvidia-smi", flags->nvidia_smi, "The nvidia-smi executable")
      ->capture_default_str();
  inventory->callback([flags, &ctx] { run_inventory(*flags, ctx); });
}

}  // namespace openstation::cli
