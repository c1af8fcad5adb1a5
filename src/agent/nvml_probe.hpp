#pragma once
/// The NVML GPU probe: the preferred way to see GPUs, through the driver's own library.

#include "agent/gpu_probe.hpp"
#include "agent/nvml_api.hpp"

#include <memory>
#include <string>

namespace openstation::agent {

/// Reads every GPU through an NvmlApi (the real one from load_nvml, or a test fixture). Each
/// probe() initialises NVML and shuts it down again. A device NVML cannot open is reported with
/// its index and health "lost" (NVML_ERROR_GPU_IS_LOST, or an unknown error opening it),
/// "reset required", or "error: <why>".
class NvmlProbe final : public GpuProbe {
 public:
  explicit NvmlProbe(std::unique_ptr<NvmlApi> api) : api_(std::move(api)) {}

  /// Errors: "nvml.init_failed" (unavailable) when nvmlInit fails — driver not loaded, version
  /// mismatch — with what to check; "nvml.count_failed" when the device count is unreadable.
  core::Result<GpuReport> probe() override;
  std::string_view name() const override { return "nvml"; }

 private:
  std::unique_ptr<NvmlApi> api_;
};

/// 12040 → "12.4"; 0 or negative → "".
std::string cuda_version_string(int version);

}  // namespace openstation::agent
