#include "agent/smi_probe.hpp"
#include "support/agent_fake_runner.hpp"

#include <gtest/gtest.h>

namespace oa = openstation::agent;
namespace ot = openstation::testing;

namespace {

const std::string kGpuArgs =
    "--query-gpu=" + std::string(oa::kSmiGpuFields) + " --format=csv,noheader,nounits";
const std::string kGpuArgsOld =
    "--query-gpu=index,name,uuid,memory.total,memory.used,memory.free,driver_version,"
    "utilization.gpu,pci.bus_id --format=csv,noheader,nounits";
const std::string kAppArgs =
    "--query-compute-apps=" + std::string(oa::kSmiAppFields) + " --format=csv,noheader,nounits";

constexpr const char* kTwoH100 =
    "0, NVIDIA H100 80GB HBM3, GPU-aaaa, 81559, 20480, 60528, 9.0, 550.54.15, 55, "
    "00000000:18:00.0\n"
    "1, NVIDIA H100 80GB HBM3, GPU-bbbb, 81559, 0, 80970, 9.0, 550.54.15, 0, 00000000:2A:00.0\n";

// GPU 1 fell off the bus: nvidia-smi says so on a line of its own and lists the others.
constexpr const char* kOneLost =
    "Unable to determine the device handle for GPU0000:3B:00.0: Unknown Error\n"
    "0, Tesla V100-SXM2-32GB, GPU-v0, 32768, 1024, 31744, 7.0, 535.104.05, [N/A], "
    "00000000:1A:00.0\n"
    "2, Tesla V100-SXM2-32GB, GPU-v2, 32768, [N/A], [N/A], 7.0, 535.104.05, 3, "
    "00000000:5E:00.0\n";

constexpr const char* kHeader =
    "+-----------------------------------------------------------------------------+\n"
    "| NVIDIA-SMI 550.54.15    Driver Version: 550.54.15    CUDA Version: 12.4     |\n";

}  // namespace

TEST(SmiParse, ReadsEveryColumn) {
  auto r = oa::parse_smi_gpus(kTwoH100, true);
  ASSERT_EQ(r.gpus.size(), 2u);
  EXPECT_TRUE(r.warnings.empty());
  EXPECT_EQ(r.driver_version, "550.54.15");
  const auto& g = r.gpus[0];
  EXPECT_EQ(g.index, 0);
  EXPECT_EQ(g.name, "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(g.uuid, "GPU-aaaa");
  EXPECT_EQ(g.memory_total_mib, 81559);
  EXPECT_EQ(g.memory_used_mib, 20480);
  EXPECT_EQ(g.cc_major, 9);
  EXPECT_EQ(g.cc_minor, 0);
  EXPECT_EQ(g.driver_version, "550.54.15");
  EXPECT_EQ(g.utilization_percent, 55);
  EXPECT_EQ(g.health, "ok");
  EXPECT_EQ(r.gpus[1].uuid, "GPU-bbbb");
}

TEST(SmiParse, AMissingGpuIsReportedLostAtTheFreeIndex) {
  auto r = oa::parse_smi_gpus(kOneLost, true);
  ASSERT_EQ(r.gpus.size(), 3u);
  EXPECT_EQ(r.gpus[0].uuid, "GPU-v0");
  EXPECT_EQ(r.gpus[0].utilization_percent, -1);  // [N/A]
  EXPECT_EQ(r.gpus[1].index, 1);
  EXPECT_EQ(r.gpus[1].health, "lost");
  EXPECT_EQ(r.gpus[1].driver_version, "535.104.05");
  EXPECT_EQ(r.gpus[2].index, 2);
  EXPECT_EQ(r.gpus[2].memory_used_mib, 0);  // [N/A]
  EXPECT_EQ(r.gpus[2].health, "ok");
  bool mentioned = false;
  for (const auto& w : r.warnings) mentioned |= w.find("0000:3B:00.0") != std::string::npos;
  EXPECT_TRUE(mentioned);
}

TEST(SmiParse, ErrorAndResetValuesSetHealth) {
  auto r = oa::parse_smi_gpus(
      "0, NVIDIA A100-SXM4-80GB, GPU-a, 81920, ERR!, ERR!, 8.0, 550.54.15, ERR!, 0:1\n"
      "1, NVIDIA A100-SXM4-80GB, GPU-b, [GPU requires reset], [GPU requires reset], "
      "[GPU requires reset], 8.0, 550.54.15, [GPU requires reset], 0:2\n",
      true);
  ASSERT_EQ(r.gpus.size(), 2u);
  EXPECT_EQ(r.gpus[0].health, "error");
  EXPECT_EQ(r.gpus[0].memory_total_mib, 81920);
  EXPECT_EQ(r.gpus[0].memory_used_mib, 0);
  EXPECT_EQ(r.gpus[1].health, "reset required");
  EXPECT_EQ(r.gpus[1].memory_total_mib, 0);
}

TEST(SmiParse, WithoutComputeCapColumnTheNameGivesIt) {
  auto r = oa::parse_smi_gpus(
      "0, Tesla T4, GPU-t4, 15360, 0, 15360, 470.82.01, 0, 00000000:00:04.0\n"
      "1, Mystery GPU, GPU-m, 1024, 0, 1024, 470.82.01, 0, 00000000:00:05.0\n",
      false);
  ASSERT_EQ(r.gpus.size(), 2u);
  EXPECT_EQ(r.gpus[0].cc_major, 7);
  EXPECT_EQ(r.gpus[0].cc_minor, 5);
  EXPECT_EQ(r.gpus[0].driver_version, "470.82.01");
  EXPECT_EQ(r.gpus[0].utilization_percent, 0);
  EXPECT_EQ(r.gpus[1].cc_major, 0);
  EXPECT_EQ(r.warnings.size(), 2u);
}

TEST(SmiParse, UnknownLinesBecomeWarnings) {
  auto r = oa::parse_smi_gpus("No devices were found\nsomething odd\n", true);
  EXPECT_TRUE(r.gpus.empty());
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_NE(r.warnings[0].find("something odd"), std::string::npos);
}

TEST(SmiParse, ProcessesJoinTheirGpus) {
  auto r = oa::parse_smi_gpus(kTwoH100, true);
  oa::add_smi_apps(
      "GPU-aaaa, 1234, python3, 20000\n"
      "GPU-bbbb, 77, /opt/app, with comma, [N/A]\n"
      "GPU-zzzz, 5, ghost, 1\n",
      r);
  ASSERT_EQ(r.gpus[0].processes.size(), 1u);
  EXPECT_EQ(r.gpus[0].processes[0].pid, 1234);
  EXPECT_EQ(r.gpus[0].processes[0].name, "python3");
  EXPECT_EQ(r.gpus[0].processes[0].used_memory_mib, 20000);
  ASSERT_EQ(r.gpus[1].processes.size(), 1u);
  EXPECT_EQ(r.gpus[1].processes[0].name, "/opt/app, with comma");
  EXPECT_EQ(r.gpus[1].processes[0].used_memory_mib, 0);
  EXPECT_EQ(r.warnings.size(), 2u);  // memory unknown for pid 77; GPU-zzzz unknown
}

TEST(SmiParse, CudaVersionAndNames) {
  EXPECT_EQ(oa::parse_smi_cuda_version(kHeader), "12.4");
  EXPECT_EQ(oa::parse_smi_cuda_version("CUDA Version : 11.8\n"), "11.8");
  EXPECT_EQ(oa::parse_smi_cuda_version("no such thing"), "");
  EXPECT_EQ(oa::compute_capability_from_name("Tesla V100-SXM2-16GB"), std::make_pair(7, 0));
  EXPECT_EQ(oa::compute_capability_from_name("NVIDIA A100-SXM4-80GB"), std::make_pair(8, 0));
  EXPECT_EQ(oa::compute_capability_from_name("NVIDIA A10"), std::make_pair(8, 6));
  EXPECT_EQ(oa::compute_capability_from_name("NVIDIA GeForce RTX 3090"), std::make_pair(8, 6));
  EXPECT_EQ(oa::compute_capability_from_name("NVIDIA H20"), std::make_pair(9, 0));
  EXPECT_EQ(oa::compute_capability_from_name("Quadro X"), std::make_pair(0, 0));
}

TEST(NvidiaSmiProbe, RunsTheThreeQueries) {
  ot::FakeCommandRunner runner;
  runner.answer(kGpuArgs, kTwoH100);
  runner.answer(kAppArgs, "GPU-aaaa, 1234, python3, 20000\n");
  runner.answer("", kHeader);
  oa::NvidiaSmiProbe probe(runner, "/usr/bin/nvidia-smi");
  EXPECT_EQ(probe.name(), "nvidia-smi");
  auto r = probe.probe();
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->gpus.size(), 2u);
  EXPECT_EQ(r->cuda_driver_version, "12.4");
  EXPECT_EQ(r->gpus[1].cuda_driver_version, "12.4");
  ASSERT_EQ(r->gpus[0].processes.size(), 1u);
  EXPECT_EQ(r->gpus[0].processes[0].used_memory_mib, 20000);
  ASSERT_EQ(runner.calls.size(), 3u);
  EXPECT_EQ(runner.calls[0][0], "/usr/bin/nvidia-smi");
}

TEST(NvidiaSmiProbe, ALostGpuMakesANonZeroExitButStillAReport) {
  ot::FakeCommandRunner runner;
  runner.answer(kGpuArgs, kOneLost, 15);
  runner.answer(kAppArgs, "");
  runner.answer("", kHeader);
  oa::NvidiaSmiProbe probe(runner);
  auto r = probe.probe();
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->gpus.size(), 3u);
  EXPECT_EQ(r->gpus[1].health, "lost");
}

TEST(NvidiaSmiProbe, RetriesWithoutComputeCapOnOldDrivers) {
  ot::FakeCommandRunner runner;
  runner.answer(kGpuArgs, "Field \"compute_cap\" is not a valid field to query.\n", 2);
  runner.answer(kGpuArgsOld,
                "0, Tesla V100-PCIE-16GB, GPU-v, 16160, 0, 16160, 450.80.02, 0, 0:1\n");
  runner.answer(kAppArgs, "");
  runner.answer("", "CUDA Version: 11.0\n");
  oa::NvidiaSmiProbe probe(runner);
  auto r = probe.probe();
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->gpus.size(), 1u);
  EXPECT_EQ(r->gpus[0].cc_major, 7);
  EXPECT_EQ(r->gpus[0].cc_minor, 0);
  EXPECT_EQ(r->cuda_driver_version, "11.0");
}

TEST(NvidiaSmiProbe, DriverFailureIsAnError) {
  ot::FakeCommandRunner runner;
  runner.answer(kGpuArgs,
                "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
                "Make sure that the latest NVIDIA driver is installed and running.\n",
                9);
  oa::NvidiaSmiProbe probe(runner);
  auto r = probe.probe();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "nvidia_smi.failed");
  EXPECT_NE(r.error().message.find("couldn't communicate"), std::string::npos);
}

TEST(NvidiaSmiProbe, MissingProcessListIsOnlyAWarning) {
  ot::FakeCommandRunner runner;
  runner.answer(kGpuArgs, kTwoH100);
  runner.answer("", kHeader);
  oa::NvidiaSmiProbe probe(runner);
  auto r = probe.probe();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->gpus.size(), 2u);
  EXPECT_FALSE(r->warnings.empty());
}
