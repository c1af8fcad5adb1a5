#pragma once
/// The node's inventory: its GPUs through the best probe available, and the host's facts. This
/// is what `openstation agent inventory` prints and what the agent sends in its heartbeats.

#include "agent/command_runner.hpp"
#include "agent/host_probe.hpp"
#include "agent/nvml_api.hpp"
#include "core/error.hpp"
#include "model/node.hpp"

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace openstation::agent {

/// Which GPU probe to use. `automatic`: the inventory file when given; else NVML when the library
/// loads and initialises; else nvidia-smi when it is on PATH; else none (a CPU node).
enum class ProbeChoice { automatic, nvml, nvidia_smi, file, none };

/// "auto", "nvml", "nvidia-smi", "file", "none" → the choice; nullopt for anything else.
std::optional<ProbeChoice> parse_probe_choice(std::string_view name);

/// What collect_inventory needs. Defaults read the real machine.
struct InventoryOptions {
  std::string name;                     ///< the node's name; the host name when empty
  std::filesystem::path gpu_inventory;  ///< a node JSON file; implies ProbeChoice::file
  ProbeChoice probe = ProbeChoice::automatic;
  std::string nvml_library = "libnvidia-ml.so.1";
  std::string nvidia_smi = "nvidia-smi";  ///< a name looked up on PATH, or a path
  std::optional<std::string> path_env;    ///< PATH for nvidia-smi; nullopt: $PATH
  HostProbeOptions host;
  CommandRunner* runner = nullptr;  ///< runs nvidia-smi; nullptr: a SpawnCommandRunner
  /// Loads NVML; empty: load_nvml. Tests inject a fixture here.
  std::function<core::Result<std::unique_ptr<NvmlApi>>(const std::string& library)> nvml_loader;
};

/// The node as the planner sees it, plus the host's details and how the GPUs were found.
struct Inventory {
  model::NodeSpec node;  ///< type gpu iff GPUs were found; in the node-file format
  HostInfo host;
  std::string probe;                  ///< "nvml", "nvidia-smi", "file" or "none"
  std::vector<std::string> warnings;  ///< which probes were skipped and why; odd or unknown values
};

/// Collects the inventory. With ProbeChoice::automatic a missing driver or tool is not an error:
/// the node simply has no GPUs and `warnings` say why. Errors: a bad inventory file (the
/// model::load_node_file error, exit 2); an explicitly chosen probe that fails (its error).
core::Result<Inventory> collect_inventory(const InventoryOptions& options);

/// A readable report: host, then a GPU table with each GPU's processes, then warnings.
std::string render_inventory(const Inventory& inventory);

}  // namespace openstation::agent
