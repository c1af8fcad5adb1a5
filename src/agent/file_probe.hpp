#pragma once
/// The inventory-file GPU probe (`--gpu-inventory FILE`): the GPUs of a node JSON file in the
/// format of model/node.hpp, for tests and for simulating T4/V100/A100/H100 nodes on any machine.

#include "agent/gpu_probe.hpp"

#include <filesystem>

namespace openstation::agent {

/// Reads the GPUs (and their optional driver, utilization, process and health fields) from a
/// node file. The file's other fields (cpu_cores, memory) are ignored: the host probe measures
/// those on the real machine.
class FileProbe final : public GpuProbe {
 public:
  explicit FileProbe(std::filesystem::path path) : path_(std::move(path)) {}
  /// Errors: those of model::load_node_file (a missing or invalid file: exit code 2).
  core::Result<GpuReport> probe() override;
  std::string_view name() const override { return "file"; }

 private:
  std::filesystem::path path_;
};

}  // namespace openstation::agent
