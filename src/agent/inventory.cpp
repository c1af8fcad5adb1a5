#include "agent/inventory.hpp"

#include "agent/file_probe.hpp"
#include "agent/inventory_json.hpp"
#include "agent/nvml_probe.hpp"
#include "agent/smi_probe.hpp"
#include "core/json.hpp"
#include "core/strings.hpp"

#include <fmt/format.h>
#include <boost/json.hpp>

#include <cmath>
#include <cstdlib>

namespace openstation::agent {
namespace {

/// Outcome of trying one probe: a report, or why it was skipped.
struct Attempt {
  std::optional<GpuReport> report;
  core::Error why;
};

Attempt run_probe(GpuProbe& probe) {
  auto r = probe.probe();
  if (!r) return {std::nullopt, r.error()};
  return {std::move(*r), {}};
}

Attempt try_nvml(const InventoryOptions& o) {
  auto api = o.nvml_loader ? o.nvml_loader(o.nvml_library) : load_nvml(o.nvml_library);
  if (!api) return {std::nullopt, api.error()};
  NvmlProbe probe(std::move(*api));
  return run_probe(probe);
}

Attempt try_smi(const InventoryOptions& o, CommandRunner& runner) {
  std::string path_env = o.path_env ? *o.path_env : std::string();
  if (!o.path_env) {
    const char* p = std::getenv("PATH");
    path_env = p != nullptr ? p : "";
  }
  auto exe = find_on_path(o.nvidia_smi, path_env);
  if (!exe) {
    return {std::nullopt, core::not_found("nvidia_smi.not_found",
                                          o.nvidia_smi + " is not on PATH (the NVIDIA driver "
                                                         "installs it)")};
  }
  NvidiaSmiProbe probe(runner, exe->string());
  return run_probe(probe);
}

std::string mib_as_gib(std::int64_t mib) {
  return fmt::format("{:.1f} GiB", static_cast<double>(mib) / 1024.0);
}

}  // namespace

std::optional<ProbeChoice> parse_probe_choice(std::string_view name) {
  if (name == "auto") return ProbeChoice::automatic;
  if (name == "nvml") return ProbeChoice::nvml;
  if (name == "nvidia-smi") return ProbeChoice::nvidia_smi;
  if (name == "file") return ProbeChoice::file;
  if (name == "none") return ProbeChoice::none;
  return std::nullopt;
}

core::Result<Inventory> collect_inventory(const InventoryOptions& options) {
  Inventory inv;
  inv.host = probe_host(options.host, inv.warnings);

  SpawnCommandRunner default_runner;
  CommandRunner& runner = options.runner != nullptr ? *options.runner : default_runner;
  ProbeChoice choice = options.probe;
  if (!options.gpu_inventory.empty() && choice == ProbeChoice::automatic) {
    choice = ProbeChoice::file;
  }

  std::optional<GpuReport> report;
  switch (choice) {
    case ProbeChoice::file: {
      if (options.gpu_inventory.empty()) {
        return core::invalid("agent.inventory_file_missing",
                             "the file probe needs an inventory file: pass --gpu-inventory FILE",
                             "--gpu-inventory");
      }
      FileProbe probe(options.gpu_inventory);
      auto r = probe.probe();
      if (!r) return r.error();
      report = std::move(*r);
      inv.probe = "file";
      break;
    }
    case ProbeChoice::nvml: {
      Attempt a = try_nvml(options);
      if (!a.report) return a.why;
      report = std::move(a.report);
      inv.probe = "nvml";
      break;
    }
    case ProbeChoice::nvidia_smi: {
      Attempt a = try_smi(options, runner);
      if (!a.report) return a.why;
      report = std::move(a.report);
      inv.probe = "nvidia-smi";
      break;
    }
    case ProbeChoice::none:
      inv.probe = "none";
      inv.warnings.push_back("GPU probing is off (--probe none): this is a CPU node");
      break;
    case ProbeChoice::automatic: {
      Attempt a = try_nvml(options);
      if (a.report) {
        report = std::move(a.report);
        inv.probe = "nvml";
        break;
      }
      std::string nvml_why = a.why.message;
      a = try_smi(options, runner);
      if (a.report) {
        report = std::move(a.report);
        inv.probe = "nvidia-smi";
        inv.warnings.push_back("NVML skipped: " + nvml_why + "; GPUs read with nvidia-smi");
        break;
      }
      inv.probe = "none";
      inv.warnings.push_back("no GPUs: NVML skipped: " + nvml_why + "; nvidia-smi skipped: " +
                             a.why.message + ". This node is a CPU node");
      break;
    }
  }

  model::NodeSpec& node = inv.node;
  node.name = options.name.empty() ? inv.host.hostname : options.name;
  if (node.name.empty()) node.name = "node";
  node.cpu_cores = inv.host.cpu_cores;
  node.memory_mib = inv.host.memory_total_mib;
  node.disk_free_gib = std::floor(inv.host.disk_free_gib * 100.0) / 100.0;
  if (!inv.host.ips.empty()) node.address = inv.host.ips.front();
  if (report) {
    node.gpus = std::move(report->gpus);
    for (auto& w : report->warnings) inv.warnings.push_back(std::move(w));
  }
  node.type = node.gpus.empty() ? model::NodeType::cpu : model::NodeType::gpu;
  return inv;
}

std::string render_inventory(const Inventory& inv) {
  const HostInfo& h = inv.host;
  const model::NodeSpec& n = inv.node;
  std::string s;
  s += fmt::format("Node {} ({} node, GPUs read with: {})\n", n.name,
                   n.type == model::NodeType::gpu ? "GPU" : "CPU", inv.probe);
  s += fmt::format("  CPU      {} x {}\n", h.cpu_cores,
                   h.cpu_model.empty() ? "unknown" : h.cpu_model);
  s += fmt::format("  Memory   {} total, {} available\n", mib_as_gib(h.memory_total_mib),
                   mib_as_gib(h.memory_available_mib));
  s += fmt::format("  Disk     {:.1f} GiB free for {}{}\n", h.disk_free_gib, h.data_dir,
                   h.disk_path == h.data_dir ? "" : " (measured at " + h.disk_path + ")");
  s += fmt::format("  OS       {} (kernel {}, {})\n", h.os.empty() ? "unknown" : h.os, h.kernel,
                   h.arch);
  s += fmt::format("  IPs      {}\n", h.ips.empty() ? "none" : core::join(h.ips, ", "));
  if (n.gpus.empty()) {
    s += "GPUs: none\n";
  } else {
    const auto& g0 = n.gpus.front();
    s += fmt::format("GPUs: {} (driver {}, CUDA {})\n", n.gpus.size(),
                     g0.driver_version.empty() ? "unknown" : g0.driver_version,
                     g0.cuda_driver_version.empty() ? "unknown" : g0.cuda_driver_version);
    s += fmt::format("  {:<4} {:<28} {:>21} {:>4} {:>5}  {:<15} {}\n", "IDX", "NAME",
                     "MEMORY USED/TOTAL MiB", "CC", "UTIL", "HEALTH", "UUID");
    for (const auto& g : n.gpus) {
      std::string mem =
          core::with_commas(g.memory_used_mib) + " / " + core::with_commas(g.memory_total_mib);
      std::string util = g.utilization_percent < 0 ? std::string("?")
                                                   : std::to_string(g.utilization_percent) + "%";
      std::string cc = g.cc_major > 0
                           ? std::to_string(g.cc_major) + "." + std::to_string(g.cc_minor)
                           : std::string("?");
      s += fmt::format("  {:<4} {:<28} {:>21} {:>4} {:>5}  {:<15} {}\n", g.index,
                       g.name.empty() ? "(unknown)" : g.name, mem, cc, util, g.health,
                       g.uuid.empty() ? "-" : g.uuid);
      for (const auto& p : g.processes) {
        s += fmt::format("       pid {} {} holds {} MiB\n", p.pid,
                         p.name.empty() ? "(unknown)" : p.name,
                         core::with_commas(p.used_memory_mib));
      }
    }
  }
  if (!inv.warnings.empty()) {
    s += "Warnings:\n";
    for (const auto& w : inv.warnings) s += "  - " + w + "\n";
  }
  return s;
}

boost::json::value inventory_to_json(const Inventory& inv) {
  const HostInfo& h = inv.host;
  boost::json::array ips;
  for (const auto& ip : h.ips) ips.emplace_back(ip);
  boost::json::array warnings;
  for (const auto& w : inv.warnings) warnings.emplace_back(w);
  return boost::json::object{
      {"node", boost::json::parse(model::node_to_json(inv.node))},
      {"host", boost::json::object{{"hostname", h.hostname},
                                   {"cpu_model", h.cpu_model},
                                   {"cpu_cores", h.cpu_cores},
                                   {"memory_total_mib", h.memory_total_mib},
                                   {"memory_available_mib", h.memory_available_mib},
                                   {"data_dir", h.data_dir},
                                   {"disk_path", h.disk_path},
                                   {"disk_free_gib", std::floor(h.disk_free_gib * 100.0) / 100.0},
                                   {"os", h.os},
                                   {"kernel", h.kernel},
                                   {"arch", h.arch},
                                   {"ips", std::move(ips)}}},
      {"probe", inv.probe},
      {"warnings", std::move(warnings)}};
}

}  // namespace openstation::agent
