#pragma once
/// An in-process NVML fixture for the agent's probe tests: GPUs described as plain data, each
/// call answering from it, with per-GPU return codes to simulate lost or broken devices.

#include "agent/nvml_api.hpp"

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace openstation::testing {

/// One simulated GPU. A non-zero *_rc makes that call fail with that NVML code.
struct FakeNvmlGpu {
  std::string name = "NVIDIA A100-SXM4-80GB";
  std::string uuid = "GPU-00000000-0000-0000-0000-000000000000";
  std::uint64_t total = 81920ull << 20;
  std::uint64_t used = 0;
  int cc_major = 8;
  int cc_minor = 0;
  unsigned utilization = 0;
  std::vector<agent::NvmlProcess> processes;
  int handle_rc = agent::nvml_rc::kSuccess;
  int memory_rc = agent::nvml_rc::kSuccess;
  int utilization_rc = agent::nvml_rc::kSuccess;
  int processes_rc = agent::nvml_rc::kSuccess;
};

/// NvmlApi answering from `gpus`. Records init/shutdown calls.
class FakeNvml final : public agent::NvmlApi {
 public:
  std::vector<FakeNvmlGpu> gpus;
  std::map<unsigned, std::string> process_names;
  std::string driver = "550.54.15";
  int cuda = 12040;
  int init_rc = agent::nvml_rc::kSuccess;
  int* init_calls = nullptr;  ///< optional counters the test keeps after the fake is moved
  int* shutdown_calls = nullptr;

  int init() override {
    if (init_calls != nullptr) ++*init_calls;
    return init_rc;
  }
  int shutdown() override {
    if (shutdown_calls != nullptr) ++*shutdown_calls;
    return agent::nvml_rc::kSuccess;
  }
  std::string error_string(int rc) override {
    switch (rc) {
      case agent::nvml_rc::kGpuIsLost: return "GPU is lost";
      case agent::nvml_rc::kDriverNotLoaded: return "Driver Not Loaded";
      case agent::nvml_rc::kNotSupported: return "Not Supported";
      default: return "Unknown Error";
    }
  }
  int system_driver_version(std::string& out) override {
    out = driver;
    return agent::nvml_rc::kSuccess;
  }
  int system_cuda_driver_version(int& out) override {
    out = cuda;
    return agent::nvml_rc::kSuccess;
  }
  int device_count(unsigned& out) override {
    out = static_cast<unsigned>(gpus.size());
    return agent::nvml_rc::kSuccess;
  }
  int device_handle(unsigned index, agent::NvmlDevice& out) override {
    if (index >= gpus.size()) return agent::nvml_rc::kInvalidArgument;
    if (gpus[index].handle_rc != 0) return gpus[index].handle_rc;
    out.handle = &gpus[index];
    return agent::nvml_rc::kSuccess;
  }
  int device_name(agent::NvmlDevice d, std::string& out) override {
    out = gpu(d).name;
    return agent::nvml_rc::kSuccess;
  }
  int device_uuid(agent::NvmlDevice d, std::string& out) override {
    out = gpu(d).uuid;
    return agent::nvml_rc::kSuccess;
  }
  int device_memory(agent::NvmlDevice d, agent::NvmlMemory& out) override {
    const auto& g = gpu(d);
    if (g.memory_rc != 0) return g.memory_rc;
    out = {g.total, g.total - g.used, g.used};
    return agent::nvml_rc::kSuccess;
  }
  int device_compute_capability(agent::NvmlDevice d, int& major, int& minor) override {
    major = gpu(d).cc_major;
    minor = gpu(d).cc_minor;
    return agent::nvml_rc::kSuccess;
  }
  int device_utilization(agent::NvmlDevice d, agent::NvmlUtilization& out) override {
    if (gpu(d).utilization_rc != 0) return gpu(d).utilization_rc;
    out = {gpu(d).utilization, 0};
    return agent::nvml_rc::kSuccess;
  }
  int device_compute_processes(agent::NvmlDevice d, std::vector<agent::NvmlProcess>& out) override {
    if (gpu(d).processes_rc != 0) return gpu(d).processes_rc;
    out = gpu(d).processes;
    return agent::nvml_rc::kSuccess;
  }
  int process_name(unsigned pid, std::string& out) override {
    auto it = process_names.find(pid);
    if (it == process_names.end()) return agent::nvml_rc::kNotFound;
    out = it->second;
    return agent::nvml_rc::kSuccess;
  }

 private:
  static FakeNvmlGpu& gpu(agent::NvmlDevice d) { return *static_cast<FakeNvmlGpu*>(d.handle); }
};

}  // namespace openstation::testing
