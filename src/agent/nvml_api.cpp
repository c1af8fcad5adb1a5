#include "agent/nvml_api.hpp"

#include <dlfcn.h>

#include <array>
#include <cstring>
#include <utility>

namespace openstation::agent {
namespace {

// NVML's C ABI, declared from its documentation (no NVML header at build time).
using nvmlReturn_t = int;  // a C enum: int-sized
using nvmlDevice_t = void*;

struct nvmlMemory_t {  // nvmlDeviceGetMemoryInfo
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};

struct nvmlMemory_v2_t {  // nvmlDeviceGetMemoryInfo_v2
  unsigned int version;
  unsigned long long total;
  unsigned long long reserved;
  unsigned long long free;
  unsigned long long used;
};
// NVML_STRUCT_VERSION(Memory, 2): the struct size in the low bits, the version in the top byte.
constexpr unsigned kMemoryV2Version = static_cast<unsigned>(sizeof(nvmlMemory_v2_t)) | (2u << 24);
static_assert(sizeof(nvmlMemory_v2_t) == 40);

struct nvmlUtilization_t {
  unsigned int gpu;
  unsigned int memory;
};

struct nvmlProcessInfo_v1_t {  // nvmlDeviceGetComputeRunningProcesses (the original)
  unsigned int pid;
  unsigned long long usedGpuMemory;
};

struct nvmlProcessInfo_v2_t {  // ..._v2 and ..._v3 take this layout
  unsigned int pid;
  unsigned long long usedGpuMemory;
  unsigned int gpuInstanceId;
  unsigned int computeInstanceId;
};
static_assert(sizeof(nvmlProcessInfo_v1_t) == 16);
static_assert(sizeof(nvmlProcessInfo_v2_t) == 24);

constexpr unsigned kNameBufferSize = 96;    // NVML_DEVICE_NAME_V2_BUFFER_SIZE
constexpr unsigned kUuidBufferSize = 96;    // NVML_DEVICE_UUID_V2_BUFFER_SIZE
constexpr unsigned kDriverBufferSize = 80;  // NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE
constexpr unsigned kProcessNameSize = 256;

using InitFn = nvmlReturn_t (*)();
using ErrorStringFn = const char* (*)(nvmlReturn_t);
using StringFn = nvmlReturn_t (*)(char*, unsigned int);
using IntFn = nvmlReturn_t (*)(int*);
using CountFn = nvmlReturn_t (*)(unsigned int*);
using HandleFn = nvmlReturn_t (*)(unsigned int, nvmlDevice_t*);
using DeviceStringFn = nvmlReturn_t (*)(nvmlDevice_t, char*, unsigned int);
using MemoryFn = nvmlReturn_t (*)(nvmlDevice_t, nvmlMemory_t*);
using MemoryV2Fn = nvmlReturn_t (*)(nvmlDevice_t, nvmlMemory_v2_t*);
using CcFn = nvmlReturn_t (*)(nvmlDevice_t, int*, int*);
using UtilFn = nvmlReturn_t (*)(nvmlDevice_t, nvmlUtilization_t*);
using ProcV1Fn = nvmlReturn_t (*)(nvmlDevice_t, unsigned int*, nvmlProcessInfo_v1_t*);
using ProcV2Fn = nvmlReturn_t (*)(nvmlDevice_t, unsigned int*, nvmlProcessInfo_v2_t*);
using ProcNameFn = nvmlReturn_t (*)(unsigned int, char*, unsigned int);

std::string from_buffer(const char* buf, std::size_t size) {
  return std::string(buf, strnlen(buf, size));
}

/// NVML through dlopen. Optional functions are null when the driver is older.
class DlNvmlApi final : public NvmlApi {
 public:
  explicit DlNvmlApi(void* lib) : lib_(lib) {}
  ~DlNvmlApi() override {
    if (lib_ != nullptr) dlclose(lib_);
  }
  DlNvmlApi(const DlNvmlApi&) = delete;
  DlNvmlApi& operator=(const DlNvmlApi&) = delete;

  /// Resolves the functions; returns the name of the first required one that is missing.
  std::string resolve() {
    init_ = sym<InitFn>("nvmlInit_v2", "nvmlInit");
    shutdown_ = sym<InitFn>("nvmlShutdown");
    error_string_ = sym<ErrorStringFn>("nvmlErrorString");
    driver_version_ = sym<StringFn>("nvmlSystemGetDriverVersion");
    cuda_version_ =
        sym<IntFn>("nvmlSystemGetCudaDriverVersion_v2", "nvmlSystemGetCudaDriverVersion");
    count_ = sym<CountFn>("nvmlDeviceGetCount_v2", "nvmlDeviceGetCount");
    handle_ = sym<HandleFn>("nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByIndex");
    name_ = sym<DeviceStringFn>("nvmlDeviceGetName");
    uuid_ = sym<DeviceStringFn>("nvmlDeviceGetUUID");
    memory_ = sym<MemoryFn>("nvmlDeviceGetMemoryInfo");
    memory_v2_ = sym<MemoryV2Fn>("nvmlDeviceGetMemoryInfo_v2");
    cc_ = sym<CcFn>("nvmlDeviceGetCudaComputeCapability");
    util_ = sym<UtilFn>("nvmlDeviceGetUtilizationRates");
    procs_v2_ = sym<ProcV2Fn>("nvmlDeviceGetComputeRunningProcesses_v3",
                              "nvmlDeviceGetComputeRunningProcesses_v2");
    procs_v1_ = sym<ProcV1Fn>("nvmlDeviceGetComputeRunningProcesses");
    proc_name_ = sym<ProcNameFn>("nvmlSystemGetProcessName");

    const std::pair<const void*, const char*> required[] = {
        {reinterpret_cast<const void*>(init_), "nvmlInit_v2"},
        {reinterpret_cast<const void*>(shutdown_), "nvmlShutdown"},
        {reinterpret_cast<const void*>(count_), "nvmlDeviceGetCount_v2"},
        {reinterpret_cast<const void*>(handle_), "nvmlDeviceGetHandleByIndex_v2"},
    };
    for (const auto& [fn, name] : required) {
      if (fn == nullptr) return name;
    }
    return {};
  }

  int init() override { return init_(); }
  int shutdown() override { return shutdown_(); }

  std::string error_string(int rc) override {
    const char* s = error_string_ != nullptr ? error_string_(rc) : nullptr;
    if (s != nullptr && *s != '\0') return s;
    return "NVML error " + std::to_string(rc);
  }

  int system_driver_version(std::string& out) override {
    if (driver_version_ == nullptr) return nvml_rc::kFunctionNotFound;
    std::array<char, kDriverBufferSize> buf{};
    int rc = driver_version_(buf.data(), kDriverBufferSize);
    if (rc == nvml_rc::kSuccess) out = from_buffer(buf.data(), buf.size());
    return rc;
  }

  int system_cuda_driver_version(int& out) override {
    if (cuda_version_ == nullptr) return nvml_rc::kFunctionNotFound;
    return cuda_version_(&out);
  }

  int device_count(unsigned& out) override { return count_(&out); }

  int device_handle(unsigned index, NvmlDevice& out) override {
    nvmlDevice_t h = nullptr;
    int rc = handle_(index, &h);
    if (rc == nvml_rc::kSuccess) out.handle = h;
    return rc;
  }

  int device_name(NvmlDevice device, std::string& out) override {
    return device_string(name_, device, kNameBufferSize, out);
  }
  int device_uuid(NvmlDevice device, std::string& out) override {
    return device_string(uuid_, device, kUuidBufferSize, out);
  }

  int device_memory(NvmlDevice device, NvmlMemory& out) override {
    if (memory_v2_ != nullptr) {
      nvmlMemory_v2_t m{};
      m.version = kMemoryV2Version;
      int rc = memory_v2_(device.handle, &m);
      if (rc == nvml_rc::kSuccess) {
        out = {m.total, m.free, m.used};
        return rc;
      }
      // An older driver may export the symbol but refuse the version; fall back below.
      if (rc == nvml_rc::kGpuIsLost || rc == nvml_rc::kResetRequired || memory_ == nullptr) {
        return rc;
      }
    }
    if (memory_ == nullptr) return nvml_rc::kFunctionNotFound;
    nvmlMemory_t m{};
    int rc = memory_(device.handle, &m);
    if (rc == nvml_rc::kSuccess) out = {m.total, m.free, m.used};
    return rc;
  }

  int device_compute_capability(NvmlDevice device, int& major, int& minor) override {
    if (cc_ == nullptr) return nvml_rc::kFunctionNotFound;
    return cc_(device.handle, &major, &minor);
  }

  int device_utilization(NvmlDevice device, NvmlUtilization& out) override {
    if (util_ == nullptr) return nvml_rc::kFunctionNotFound;
    nvmlUtilization_t u{};
    int rc = util_(device.handle, &u);
    if (rc == nvml_rc::kSuccess) out = {u.gpu, u.memory};
    return rc;
  }

  int device_compute_processes(NvmlDevice device, std::vector<NvmlProcess>& out) override {
    if (procs_v2_ != nullptr) return fill_processes<nvmlProcessInfo_v2_t>(procs_v2_, device, out);
    if (procs_v1_ != nullptr) return fill_processes<nvmlProcessInfo_v1_t>(procs_v1_, device, out);
    return nvml_rc::kFunctionNotFound;
  }

  int process_name(unsigned pid, std::string& out) override {
    if (proc_name_ == nullptr) return nvml_rc::kFunctionNotFound;
    std::array<char, kProcessNameSize> buf{};
    int rc = proc_name_(pid, buf.data(), kProcessNameSize);
    if (rc == nvml_rc::kSuccess) out = from_buffer(buf.data(), buf.size());
    return rc;
  }

 private:
  template <class Fn>
  Fn sym(const char* name, const char* fallback = nullptr) {
    void* p = dlsym(lib_, name);
    if (p == nullptr && fallback != nullptr) p = dlsym(lib_, fallback);
    return reinterpret_cast<Fn>(p);
  }

  static int device_string(DeviceStringFn fn, NvmlDevice device, unsigned size, std::string& out) {
    if (fn == nullptr) return nvml_rc::kFunctionNotFound;
    std::vector<char> buf(size, '\0');
    int rc = fn(device.handle, buf.data(), size);
    if (rc == nvml_rc::kSuccess) out = from_buffer(buf.data(), buf.size());
    return rc;
  }

  /// The count-then-fill protocol: NVML answers INSUFFICIENT_SIZE with the count it needs.
  /// Processes can start between two calls, so it retries a few times with some slack.
  template <class Info, class Fn>
  static int fill_processes(Fn fn, NvmlDevice device, std::vector<NvmlProcess>& out) {
    std::vector<Info> buf(8);
    for (int attempt = 0; attempt < 5; ++attempt) {
      auto count = static_cast<unsigned int>(buf.size());
      int rc = fn(device.handle, &count, buf.data());
      if (rc == nvml_rc::kSuccess) {
        out.clear();
        for (unsigned i = 0; i < count && i < buf.size(); ++i) {
          out.push_back({buf[i].pid, buf[i].usedGpuMemory});
        }
        return rc;
      }
      if (rc != nvml_rc::kInsufficientSize) return rc;
      buf.resize(static_cast<std::size_t>(count) + 8);
    }
    return nvml_rc::kInsufficientSize;
  }

  void* lib_ = nullptr;
  InitFn init_ = nullptr;
  InitFn shutdown_ = nullptr;
  ErrorStringFn error_string_ = nullptr;
  StringFn driver_version_ = nullptr;
  IntFn cuda_version_ = nullptr;
  CountFn count_ = nullptr;
  HandleFn handle_ = nullptr;
  DeviceStringFn name_ = nullptr;
  DeviceStringFn uuid_ = nullptr;
  MemoryFn memory_ = nullptr;
  MemoryV2Fn memory_v2_ = nullptr;
  CcFn cc_ = nullptr;
  UtilFn util_ = nullptr;
  ProcV2Fn procs_v2_ = nullptr;
  ProcV1Fn procs_v1_ = nullptr;
  ProcNameFn proc_name_ = nullptr;
};

}  // namespace

core::Result<std::unique_ptr<NvmlApi>> load_nvml(const std::string& library) {
  void* lib = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* why = dlerror();
    return core::Error(core::Errc::unavailable, "nvml.not_found",
                       "cannot load the NVIDIA Management Library " + library + ": " +
                           (why != nullptr ? why : "unknown reason") +
                           " (normal without the NVIDIA driver; install the driver to use GPUs)");
  }
  auto api = std::make_unique<DlNvmlApi>(lib);
  std::string missing = api->resolve();
  if (!missing.empty()) {
    return core::Error(core::Errc::unavailable, "nvml.symbol_missing",
                       library + " lacks " + missing +
                           "; the NVIDIA driver is too old or the library is not NVML");
  }
  return std::unique_ptr<NvmlApi>(std::move(api));
}

}  // namespace openstation::agent
