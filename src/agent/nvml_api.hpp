#pragma once
/// The part of NVML (the NVIDIA Management Library) the agent uses, behind an interface so tests
/// can inject fixture data. The real implementation loads `libnvidia-ml.so.1` with dlopen at run
/// time: nothing of NVML or CUDA is needed at build time, and a machine without the driver simply
/// has no NVML. Return codes are NVML's `nvmlReturn_t` values (constants below).

#include "core/error.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace openstation::agent {

/// NVML return codes the agent reacts to (values from NVML's documented ABI).
namespace nvml_rc {
inline constexpr int kSuccess = 0;
inline constexpr int kUninitialized = 1;
inline constexpr int kInvalidArgument = 2;
inline constexpr int kNotSupported = 3;
inline constexpr int kNoPermission = 4;
inline constexpr int kNotFound = 6;
inline constexpr int kInsufficientSize = 7;
inline constexpr int kDriverNotLoaded = 9;
inline constexpr int kTimeout = 10;
inline constexpr int kFunctionNotFound = 13;
inline constexpr int kGpuIsLost = 15;
inline constexpr int kResetRequired = 16;
inline constexpr int kLibRmVersionMismatch = 18;
inline constexpr int kUnknown = 999;
}  // namespace nvml_rc

/// An opaque device handle (NVML's `nvmlDevice_t`).
struct NvmlDevice {
  void* handle = nullptr;
};

/// Frame-buffer memory in bytes. `used` excludes driver-reserved memory where the driver supports
/// nvmlDeviceGetMemoryInfo_v2 (as nvidia-smi shows it); with older drivers it includes it.
struct NvmlMemory {
  std::uint64_t total = 0;
  std::uint64_t free = 0;
  std::uint64_t used = 0;
};

/// Utilization over the driver's last sample period, in percent.
struct NvmlUtilization {
  unsigned gpu = 0;
  unsigned memory = 0;
};

/// A compute process on a device. `used_memory` is kNvmlValueNotAvailable when the driver does
/// not know (e.g. without permission to see the process).
struct NvmlProcess {
  unsigned pid = 0;
  std::uint64_t used_memory = 0;
};

/// NVML's NVML_VALUE_NOT_AVAILABLE for unsigned long long fields.
inline constexpr std::uint64_t kNvmlValueNotAvailable = ~std::uint64_t{0};

/// The NVML calls the agent makes, one method per NVML function (names in the comments). Each
/// returns an NVML return code; outputs are written only on kSuccess. Not thread-safe.
class NvmlApi {
 public:
  virtual ~NvmlApi() = default;
  virtual int init() = 0;      ///< nvmlInit_v2
  virtual int shutdown() = 0;  ///< nvmlShutdown
  /// nvmlErrorString; never empty.
  virtual std::string error_string(int rc) = 0;
  virtual int system_driver_version(std::string& out) = 0;  ///< nvmlSystemGetDriverVersion
  /// nvmlSystemGetCudaDriverVersion(_v2): 12040 for CUDA 12.4.
  virtual int system_cuda_driver_version(int& out) = 0;
  virtual int device_count(unsigned& out) = 0;                        ///< nvmlDeviceGetCount_v2
  virtual int device_handle(unsigned index, NvmlDevice& out) = 0;     ///< ..HandleByIndex_v2
  virtual int device_name(NvmlDevice device, std::string& out) = 0;   ///< nvmlDeviceGetName
  virtual int device_uuid(NvmlDevice device, std::string& out) = 0;   ///< nvmlDeviceGetUUID
  virtual int device_memory(NvmlDevice device, NvmlMemory& out) = 0;  ///< ..GetMemoryInfo(_v2)
  /// nvmlDeviceGetCudaComputeCapability.
  virtual int device_compute_capability(NvmlDevice device, int& major, int& minor) = 0;
  /// nvmlDeviceGetUtilizationRates.
  virtual int device_utilization(NvmlDevice device, NvmlUtilization& out) = 0;
  /// nvmlDeviceGetComputeRunningProcesses_v3 (or _v2, or the original), all of them (the
  /// implementation grows its buffer on NVML_ERROR_INSUFFICIENT_SIZE).
  virtual int device_compute_processes(NvmlDevice device, std::vector<NvmlProcess>& out) = 0;
  virtual int process_name(unsigned pid, std::string& out) = 0;  ///< nvmlSystemGetProcessName
};

/// Loads NVML from `library` (a name dlopen searches for, or a path) and resolves its functions.
/// Errors: "nvml.not_found" (unavailable) when the library cannot be loaded — the normal case on a
/// machine without the NVIDIA driver; "nvml.symbol_missing" when a required function is absent.
/// Does not call nvmlInit; NvmlProbe does. The library stays loaded while the object lives.
core::Result<std::unique_ptr<NvmlApi>> load_nvml(const std::string& library = "libnvidia-ml.so.1");

}  // namespace openstation::agent
