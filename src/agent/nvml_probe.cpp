#include "agent/nvml_probe.hpp"

#include <string>

namespace openstation::agent {
namespace {

std::string health_for(NvmlApi& api, int rc) {
  if (rc == nvml_rc::kGpuIsLost) return "lost";
  if (rc == nvml_rc::kResetRequired) return "reset required";
  return "error: " + api.error_string(rc);
}

bool is_device_fault(int rc) {
  return rc == nvml_rc::kGpuIsLost || rc == nvml_rc::kResetRequired;
}

std::string init_hint(int rc) {
  switch (rc) {
    case nvml_rc::kDriverNotLoaded:
      return "; the NVIDIA kernel module is not loaded: check `lsmod | grep nvidia` and `dmesg`";
    case nvml_rc::kLibRmVersionMismatch:
      return "; the driver library and kernel module versions differ (a driver upgrade without "
             "a reboot): reboot or reload the nvidia module";
    case nvml_rc::kNoPermission:
      return "; the agent may not open /dev/nvidia*: check the device permissions";
    default: return "";
  }
}

std::int64_t to_mib(std::uint64_t bytes) {
  return static_cast<std::int64_t>(bytes >> 20);
}

/// Fills one GPU; every field error is a warning, a device fault also sets health.
void read_device(NvmlApi& api, NvmlDevice dev, model::GpuSpec& gpu,
                 std::vector<std::string>& warnings) {
  const std::string who = "GPU " + std::to_string(gpu.index);
  auto field_failed = [&](int rc, const char* what) {
    if (is_device_fault(rc)) {
      gpu.health = health_for(api, rc);
    } else if (rc != nvml_rc::kNotSupported) {
      warnings.push_back(who + ": cannot read " + what + ": " + api.error_string(rc));
    }
  };

  if (int rc = api.device_name(dev, gpu.name); rc != nvml_rc::kSuccess) field_failed(rc, "name");
  if (int rc = api.device_uuid(dev, gpu.uuid); rc != nvml_rc::kSuccess) field_failed(rc, "UUID");
  NvmlMemory mem;
  if (int rc = api.device_memory(dev, mem); rc == nvml_rc::kSuccess) {
    gpu.memory_total_mib = to_mib(mem.total);
    gpu.memory_used_mib = to_mib(mem.used);
  } else {
    field_failed(rc, "memory");
  }
  int major = 0;
  int minor = 0;
  if (int rc = api.device_compute_capability(dev, major, minor); rc == nvml_rc::kSuccess) {
    gpu.cc_major = major;
    gpu.cc_minor = minor;
  } else {
    field_failed(rc, "compute capability");
  }
  NvmlUtilization util;
  if (int rc = api.device_utilization(dev, util); rc == nvml_rc::kSuccess) {
    gpu.utilization_percent = static_cast<int>(util.gpu);
  } else {
    field_failed(rc, "utilization");
  }
  std::vector<NvmlProcess> procs;
  if (int rc = api.device_compute_processes(dev, procs); rc == nvml_rc::kSuccess) {
    for (const auto& p : procs) {
      model::GpuProcess gp;
      gp.pid = static_cast<int>(p.pid);
      gp.used_memory_mib = p.used_memory == kNvmlValueNotAvailable ? 0 : to_mib(p.used_memory);
      if (p.used_memory == kNvmlValueNotAvailable) {
        warnings.push_back(who + ": the driver does not say how much memory pid " +
                           std::to_string(p.pid) + " holds");
      }
      if (api.process_name(p.pid, gp.name) != nvml_rc::kSuccess) gp.name.clear();
      gpu.processes.push_back(std::move(gp));
    }
  } else {
    field_failed(rc, "processes");
  }
  if (gpu.health != "ok") {
    warnings.push_back(who + " (" + (gpu.uuid.empty() ? std::string("unknown UUID") : gpu.uuid) +
                       ") is unhealthy: " + gpu.health +
                       "; it has likely fallen off the bus: check `dmesg` for Xid errors, a "
                       "reset (`nvidia-smi -r`) or a reboot may bring it back");
  }
}

}  // namespace

std::string cuda_version_string(int version) {
  if (version <= 0) return {};
  return std::to_string(version / 1000) + "." + std::to_string((version % 1000) / 10);
}

core::Result<GpuReport> NvmlProbe::probe() {
  NvmlApi& api = *api_;
  if (int rc = api.init(); rc != nvml_rc::kSuccess) {
    return core::Error(core::Errc::unavailable, "nvml.init_failed",
                       "NVML could not initialise: " + api.error_string(rc) + init_hint(rc));
  }
  struct Shutdown {
    NvmlApi& api;
    ~Shutdown() { api.shutdown(); }
  } shutdown{api};

  GpuReport report;
  if (int rc = api.system_driver_version(report.driver_version); rc != nvml_rc::kSuccess) {
    report.warnings.push_back("cannot read the driver version: " + api.error_string(rc));
  }
  int cuda = 0;
  if (int rc = api.system_cuda_driver_version(cuda); rc == nvml_rc::kSuccess) {
    report.cuda_driver_version = cuda_version_string(cuda);
  } else {
    report.warnings.push_back("cannot read the CUDA driver version: " + api.error_string(rc));
  }

  unsigned count = 0;
  if (int rc = api.device_count(count); rc != nvml_rc::kSuccess) {
    return core::Error(core::Errc::unavailable, "nvml.count_failed",
                       "NVML cannot count the GPUs: " + api.error_string(rc));
  }
  for (unsigned i = 0; i < count; ++i) {
    model::GpuSpec gpu;
    gpu.index = static_cast<int>(i);
    gpu.driver_version = report.driver_version;
    gpu.cuda_driver_version = report.cuda_driver_version;
    NvmlDevice dev;
    if (int rc = api.device_handle(i, dev); rc != nvml_rc::kSuccess) {
      // nvidia-smi shows this case as "Unable to determine the device handle for GPU<bus id>:
      // Unknown Error": a device the driver counts but cannot open has fallen off the bus.
      gpu.health = rc == nvml_rc::kUnknown ? "lost" : health_for(api, rc);
      report.warnings.push_back("GPU " + std::to_string(i) + " cannot be opened: " +
                                api.error_string(rc) + " (health: " + gpu.health +
                                "); check `dmesg` for Xid errors, a reset or reboot may help");
    } else {
      read_device(api, dev, gpu, report.warnings);
    }
    report.gpus.push_back(std::move(gpu));
  }
  return report;
}

}  // namespace openstation::agent
