#include "agent/nvml_probe.hpp"
#include "support/fake_nvml.hpp"

#include <gtest/gtest.h>

namespace oa = openstation::agent;
namespace ot = openstation::testing;

namespace {

/// Two GPUs: GPU 0 holds 20 GiB for a python process, GPU 1 has fallen off the bus.
std::unique_ptr<ot::FakeNvml> two_gpus_one_lost() {
  auto nvml = std::make_unique<ot::FakeNvml>();
  ot::FakeNvmlGpu a;
  a.uuid = "GPU-aaaa";
  a.used = 20480ull << 20;
  a.utilization = 55;
  a.processes = {{1234, 20000ull << 20}};
  ot::FakeNvmlGpu b;
  b.uuid = "GPU-bbbb";
  b.handle_rc = oa::nvml_rc::kGpuIsLost;
  nvml->gpus = {a, b};
  nvml->process_names[1234] = "python3";
  return nvml;
}

}  // namespace

TEST(NvmlProbe, ReportsEveryGpuWithProcessesAndTheLostOne) {
  int inits = 0;
  int shutdowns = 0;
  auto nvml = two_gpus_one_lost();
  nvml->init_calls = &inits;
  nvml->shutdown_calls = &shutdowns;
  oa::NvmlProbe probe(std::move(nvml));
  EXPECT_EQ(probe.name(), "nvml");
  auto report = probe.probe();
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(report->driver_version, "550.54.15");
  EXPECT_EQ(report->cuda_driver_version, "12.4");
  ASSERT_EQ(report->gpus.size(), 2u);

  const auto& a = report->gpus[0];
  EXPECT_EQ(a.index, 0);
  EXPECT_EQ(a.name, "NVIDIA A100-SXM4-80GB");
  EXPECT_EQ(a.uuid, "GPU-aaaa");
  EXPECT_EQ(a.memory_total_mib, 81920);
  EXPECT_EQ(a.memory_used_mib, 20480);
  EXPECT_EQ(a.cc_major, 8);
  EXPECT_EQ(a.cc_minor, 0);
  EXPECT_EQ(a.utilization_percent, 55);
  EXPECT_EQ(a.driver_version, "550.54.15");
  EXPECT_EQ(a.cuda_driver_version, "12.4");
  EXPECT_EQ(a.health, "ok");
  ASSERT_EQ(a.processes.size(), 1u);
  EXPECT_EQ(a.processes[0].pid, 1234);
  EXPECT_EQ(a.processes[0].name, "python3");
  EXPECT_EQ(a.processes[0].used_memory_mib, 20000);

  const auto& b = report->gpus[1];
  EXPECT_EQ(b.index, 1);
  EXPECT_EQ(b.health, "lost");
  ASSERT_FALSE(report->warnings.empty());
  EXPECT_NE(report->warnings.back().find("GPU 1"), std::string::npos);
  EXPECT_EQ(inits, 1);
  EXPECT_EQ(shutdowns, 1);
}

TEST(NvmlProbe, LostDuringAFieldReadMarksTheGpuLost) {
  auto nvml = two_gpus_one_lost();
  nvml->gpus[1].handle_rc = 0;
  nvml->gpus[1].memory_rc = oa::nvml_rc::kGpuIsLost;
  oa::NvmlProbe probe(std::move(nvml));
  auto report = probe.probe();
  ASSERT_TRUE(report);
  EXPECT_EQ(report->gpus[1].health, "lost");
  EXPECT_EQ(report->gpus[1].uuid, "GPU-bbbb");
}

TEST(NvmlProbe, AHandleThatCannotBeDeterminedIsLost) {
  auto nvml = two_gpus_one_lost();
  nvml->gpus[1].handle_rc = oa::nvml_rc::kUnknown;
  oa::NvmlProbe probe(std::move(nvml));
  auto report = probe.probe();
  ASSERT_TRUE(report);
  EXPECT_EQ(report->gpus[1].health, "lost");
  EXPECT_EQ(report->gpus[0].health, "ok");
}

TEST(NvmlProbe, UnsupportedFieldsStayUnknownWithoutWarnings) {
  auto nvml = std::make_unique<ot::FakeNvml>();
  ot::FakeNvmlGpu g;
  g.utilization_rc = oa::nvml_rc::kNotSupported;
  nvml->gpus = {g};
  oa::NvmlProbe probe(std::move(nvml));
  auto report = probe.probe();
  ASSERT_TRUE(report);
  EXPECT_EQ(report->gpus[0].utilization_percent, -1);
  EXPECT_EQ(report->gpus[0].health, "ok");
  EXPECT_TRUE(report->warnings.empty());
}

TEST(NvmlProbe, InitFailureIsAnErrorWithAHint) {
  auto nvml = std::make_unique<ot::FakeNvml>();
  nvml->init_rc = oa::nvml_rc::kDriverNotLoaded;
  oa::NvmlProbe probe(std::move(nvml));
  auto report = probe.probe();
  ASSERT_FALSE(report);
  EXPECT_EQ(report.error().code, "nvml.init_failed");
  EXPECT_NE(report.error().message.find("lsmod"), std::string::npos);
}

TEST(NvmlProbe, CudaVersionString) {
  EXPECT_EQ(oa::cuda_version_string(12040), "12.4");
  EXPECT_EQ(oa::cuda_version_string(11080), "11.8");
  EXPECT_EQ(oa::cuda_version_string(12010), "12.1");
  EXPECT_EQ(oa::cuda_version_string(0), "");
}

TEST(LoadNvml, MissingLibraryIsUnavailableNotACrash) {
  auto api = oa::load_nvml("/nonexistent/libnvidia-ml.so.1");
  ASSERT_FALSE(api);
  EXPECT_EQ(api.error().code, "nvml.not_found");
  EXPECT_EQ(api.error().category, openstation::core::Errc::unavailable);
}

TEST(LoadNvml, LibraryWithoutNvmlSymbolsIsRejected) {
  auto api = oa::load_nvml("libc.so.6");
  ASSERT_FALSE(api);
  EXPECT_EQ(api.error().code, "nvml.symbol_missing");
}

// The real dlopen binding against a library with NVML's C ABI.
TEST(LoadNvml, ReadsTheCurrentAbiThroughDlopen) {
  auto api = oa::load_nvml(OPENSTATION_FAKE_NVML);
  ASSERT_TRUE(api) << api.error().message;
  oa::NvmlProbe probe(std::move(*api));
  auto report = probe.probe();
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(report->driver_version, "550.54.15");
  EXPECT_EQ(report->cuda_driver_version, "12.4");
  ASSERT_EQ(report->gpus.size(), 2u);
  const auto& g = report->gpus[0];
  EXPECT_EQ(g.name, "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(g.uuid, "GPU-6f1a2b3c-0000-1111-2222-333344445555");
  EXPECT_EQ(g.memory_total_mib, 81559);
  EXPECT_EQ(g.memory_used_mib, 1090);  // the _v2 call: reserved memory not counted as used
  EXPECT_EQ(g.cc_major, 9);
  EXPECT_EQ(g.cc_minor, 0);
  EXPECT_EQ(g.utilization_percent, 37);
  ASSERT_EQ(g.processes.size(), 10u);  // more than the first buffer: grown and retried
  EXPECT_EQ(g.processes[0].pid, 4242);
  EXPECT_EQ(g.processes[0].name, "python3");
  EXPECT_EQ(g.processes[0].used_memory_mib, 1000);
  EXPECT_EQ(g.processes[9].pid, 4251);
  EXPECT_EQ(g.processes[9].used_memory_mib, 10);
  EXPECT_EQ(report->gpus[1].index, 1);
  EXPECT_EQ(report->gpus[1].health, "lost");
}

TEST(LoadNvml, ReadsThePreR450AbiThroughDlopen) {
  auto api = oa::load_nvml(OPENSTATION_FAKE_NVML_V1);
  ASSERT_TRUE(api) << api.error().message;
  oa::NvmlProbe probe(std::move(*api));
  auto report = probe.probe();
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(report->cuda_driver_version, "11.8");
  ASSERT_EQ(report->gpus.size(), 2u);
  const auto& g = report->gpus[0];
  EXPECT_EQ(g.memory_used_mib, 1090 + 512);  // the v1 call counts reserved memory
  ASSERT_EQ(g.processes.size(), 10u);
  EXPECT_EQ(g.processes[0].pid, 4242);
  EXPECT_EQ(g.processes[0].used_memory_mib, 1000);
  EXPECT_EQ(g.processes[1].pid, 4243);
  EXPECT_EQ(report->gpus[1].health, "lost");
}
