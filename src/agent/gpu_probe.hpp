#pragma once
/// The seam through which the agent sees GPUs. Three implementations: NVML loaded at run time
/// (nvml_probe.hpp), `nvidia-smi --query-gpu` (smi_probe.hpp) and an inventory file
/// (file_probe.hpp). inventory.hpp picks one.

#include "core/error.hpp"
#include "model/node.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace openstation::agent {

/// What one probe saw. A GPU the driver cannot talk to is still listed, with its index and a
/// `health` other than "ok" ("lost", "reset required", ...): it is never dropped silently.
struct GpuReport {
  std::vector<model::GpuSpec> gpus;   ///< ordered by index
  std::string driver_version;         ///< "550.54.15"; empty when unknown
  std::string cuda_driver_version;    ///< "12.4"; empty when unknown
  std::vector<std::string> warnings;  ///< what was odd or unknown, for people to read
};

/// Reads the GPUs of this machine. Implementations are not thread-safe; call from one thread.
class GpuProbe {
 public:
  virtual ~GpuProbe() = default;
  /// Returns the GPUs, or an error when the probe cannot run at all (library missing, driver not
  /// loaded, command failed). Problems with single GPUs are reported inside the GpuReport.
  virtual core::Result<GpuReport> probe() = 0;
  /// "nvml", "nvidia-smi" or "file".
  virtual std::string_view name() const = 0;
};

}  // namespace openstation::agent
