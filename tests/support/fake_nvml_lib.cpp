// A stand-in for libnvidia-ml.so.1 with NVML's C ABI, so the agent's dlopen binding (symbol
// names, struct layouts, the count-then-fill protocol) is tested without a GPU. Two GPUs:
// GPU 0 an H100 with ten compute processes (more than one first buffer holds), GPU 1 lost.
// Built twice: the current ABI, and with FAKE_NVML_V1 the pre-R450 one (unversioned functions,
// the two-field process struct, no _v2 memory call).
#include <cstring>

extern "C" {

using nvmlReturn_t = int;
using nvmlDevice_t = void*;

struct nvmlMemory_t {
  unsigned long long total, free, used;
};
struct nvmlMemory_v2_t {
  unsigned int version;
  unsigned long long total, reserved, free, used;
};
struct nvmlUtilization_t {
  unsigned int gpu, memory;
};
struct nvmlProcessInfo_v1_t {
  unsigned int pid;
  unsigned long long usedGpuMemory;
};
struct nvmlProcessInfo_t {
  unsigned int pid;
  unsigned long long usedGpuMemory;
  unsigned int gpuInstanceId, computeInstanceId;
};

}  // extern "C"

namespace {

constexpr int kSuccess = 0, kInvalidArgument = 2, kInsufficientSize = 7, kGpuIsLost = 15,
              kArgumentVersionMismatch = 25, kUninitialized = 1;
constexpr unsigned long long kMiB = 1ull << 20;
constexpr unsigned kProcesses = 10;
int g_device0 = 0;  // the handle points here
int g_initialised = 0;

int copy_string(const char* s, char* out, unsigned int length) {
  if (out == nullptr || std::strlen(s) + 1 > length) return kInsufficientSize;
  std::memcpy(out, s, std::strlen(s) + 1);
  return kSuccess;
}

int check(nvmlDevice_t d) {
  if (g_initialised == 0) return kUninitialized;
  return d == &g_device0 ? kSuccess : kInvalidArgument;
}

template <class Info>
int fill_processes(nvmlDevice_t d, unsigned int* count, Info* infos) {
  if (int rc = check(d); rc != kSuccess) return rc;
  if (*count < kProcesses) {
    *count = kProcesses;
    return kInsufficientSize;
  }
  for (unsigned i = 0; i < kProcesses; ++i) {
    Info info{};
    info.pid = 4242 + i;
    info.usedGpuMemory = (i == 0 ? 1000 : 10) * kMiB;
    infos[i] = info;
  }
  *count = kProcesses;
  return kSuccess;
}

}  // namespace

extern "C" {

#ifdef FAKE_NVML_V1
nvmlReturn_t nvmlInit() {
#else
nvmlReturn_t nvmlInit_v2() {
#endif
  ++g_initialised;
  return kSuccess;
}
nvmlReturn_t nvmlShutdown() {
  if (g_initialised > 0) --g_initialised;
  return kSuccess;
}
const char* nvmlErrorString(nvmlReturn_t rc) {
  return rc == kGpuIsLost ? "GPU is lost" : rc == kSuccess ? "Success" : "Unknown Error";
}
nvmlReturn_t nvmlSystemGetDriverVersion(char* out, unsigned int length) {
  return copy_string("550.54.15", out, length);
}
#ifdef FAKE_NVML_V1
nvmlReturn_t nvmlSystemGetCudaDriverVersion(int* v) {
  *v = 11080;
  return kSuccess;
}
nvmlReturn_t nvmlDeviceGetCount(unsigned int* n) {
#else
nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int* v) {
  *v = 12040;
  return kSuccess;
}
nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int* n) {
#endif
  if (g_initialised == 0) return kUninitialized;
  *n = 2;
  return kSuccess;
}
#ifdef FAKE_NVML_V1
nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned int i, nvmlDevice_t* d) {
#else
nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int i, nvmlDevice_t* d) {
#endif
  if (g_initialised == 0) return kUninitialized;
  if (i == 1) return kGpuIsLost;
  if (i != 0) return kInvalidArgument;
  *d = &g_device0;
  return kSuccess;
}
nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char* out, unsigned int length) {
  if (int rc = check(d); rc != kSuccess) return rc;
  return copy_string("NVIDIA H100 80GB HBM3", out, length);
}
nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char* out, unsigned int length) {
  if (int rc = check(d); rc != kSuccess) return rc;
  return copy_string("GPU-6f1a2b3c-0000-1111-2222-333344445555", out, length);
}
nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t* m) {
  if (int rc = check(d); rc != kSuccess) return rc;
  // v1 counts the driver's reserved 512 MiB as used.
  m->total = 81559 * kMiB;
  m->used = (1090 + 512) * kMiB;
  m->free = m->total - m->used;
  return kSuccess;
}
#ifndef FAKE_NVML_V1
nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t d, nvmlMemory_v2_t* m) {
  if (int rc = check(d); rc != kSuccess) return rc;
  if (m->version != (sizeof(nvmlMemory_v2_t) | (2u << 24))) return kArgumentVersionMismatch;
  m->total = 81559 * kMiB;
  m->reserved = 512 * kMiB;
  m->used = 1090 * kMiB;
  m->free = m->total - m->reserved - m->used;
  return kSuccess;
}
#endif
nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t d, int* major, int* minor) {
  if (int rc = check(d); rc != kSuccess) return rc;
  *major = 9;
  *minor = 0;
  return kSuccess;
}
nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t d, nvmlUtilization_t* u) {
  if (int rc = check(d); rc != kSuccess) return rc;
  u->gpu = 37;
  u->memory = 12;
  return kSuccess;
}
#ifdef FAKE_NVML_V1
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses(nvmlDevice_t d, unsigned int* count,
                                                  nvmlProcessInfo_v1_t* infos) {
  return fill_processes(d, count, infos);
}
#else
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t d, unsigned int* count,
                                                     nvmlProcessInfo_t* infos) {
  return fill_processes(d, count, infos);
}
#endif
nvmlReturn_t nvmlSystemGetProcessName(unsigned int pid, char* out, unsigned int length) {
  return copy_string(pid == 4242 ? "python3" : "worker", out, length);
}

}  // extern "C"
