#include "agent/file_probe.hpp"

namespace openstation::agent {

core::Result<GpuReport> FileProbe::probe() {
  auto node = model::load_node_file(path_);
  if (!node) return node.error();
  GpuReport report;
  report.gpus = std::move(node->gpus);
  for (const auto& g : report.gpus) {
    if (report.driver_version.empty()) report.driver_version = g.driver_version;
    if (report.cuda_driver_version.empty()) report.cuda_driver_version = g.cuda_driver_version;
  }
  report.warnings.push_back("GPUs are simulated from the inventory file " + path_.string());
  return report;
}

}  // namespace openstation::agent
