#pragma once
/// The nvidia-smi GPU probe: the fallback where NVML cannot be loaded but the nvidia-smi tool
/// runs (containers with only the tool mounted, unusual library paths). It asks for CSV and
/// parses it defensively: "[N/A]", "[Not Supported]", "ERR!", "[GPU requires reset]", lines such
/// as "Unable to determine the device handle for GPU0000:3B:00.0: Unknown Error" (a GPU that fell
/// off the bus, reported with health "lost") and old drivers without the compute_cap field.

#include "agent/command_runner.hpp"
#include "agent/gpu_probe.hpp"

#include <chrono>
#include <string>
#include <string_view>

namespace openstation::agent {

/// The --query-gpu fields asked for, in this order (compute_cap is dropped on drivers before
/// R510, which do not know it).
inline constexpr std::string_view kSmiGpuFields =
    "index,name,uuid,memory.total,memory.used,memory.free,compute_cap,driver_version,"
    "utilization.gpu,pci.bus_id";
/// The --query-compute-apps fields asked for.
inline constexpr std::string_view kSmiAppFields = "gpu_uuid,pid,process_name,used_memory";

/// Runs nvidia-smi three times (GPUs, compute apps, the plain header for the CUDA version)
/// through a CommandRunner.
class NvidiaSmiProbe final : public GpuProbe {
 public:
  /// `smi` is the executable (a path, or a name looked up on PATH); `runner` must outlive this.
  NvidiaSmiProbe(CommandRunner& runner, std::string smi = "nvidia-smi",
                 std::chrono::milliseconds timeout = std::chrono::seconds(20))
      : runner_(runner), smi_(std::move(smi)), timeout_(timeout) {}

  /// Errors: the runner's ("command.not_found", "command.timed_out"), or "nvidia_smi.failed"
  /// (unavailable) when nvidia-smi exits non-zero without listing any GPU — its message included.
  core::Result<GpuReport> probe() override;
  std::string_view name() const override { return "nvidia-smi"; }

 private:
  CommandRunner& runner_;
  std::string smi_;
  std::chrono::milliseconds timeout_;
};

/// Parses `--query-gpu=<kSmiGpuFields> --format=csv,noheader,nounits` output (stdout and stderr
/// together). `with_compute_cap` false: the compute_cap column is absent and the capability is
/// derived from the GPU name where known. Lost GPUs get the lowest indexes the rows leave free.
GpuReport parse_smi_gpus(std::string_view text, bool with_compute_cap);
/// Parses `--query-compute-apps=<kSmiAppFields> --format=csv,noheader,nounits` output and adds
/// each process to the GPU with its UUID.
void add_smi_apps(std::string_view text, GpuReport& report);
/// "CUDA Version: 12.4" in nvidia-smi's plain output → "12.4"; "" when absent.
std::string parse_smi_cuda_version(std::string_view text);
/// The compute capability of a GPU model known by name ("Tesla T4" → {7, 5}); {0, 0} if unknown.
std::pair<int, int> compute_capability_from_name(std::string_view gpu_name);

}  // namespace openstation::agent
