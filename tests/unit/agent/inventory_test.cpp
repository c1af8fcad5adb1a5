#include "agent/inventory.hpp"
#include "agent/inventory_json.hpp"
#include "agent/smi_probe.hpp"
#include "support/agent_fake_runner.hpp"
#include "support/fake_nvml.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <filesystem>
#include <fstream>

namespace oa = openstation::agent;
namespace ot = openstation::testing;
namespace fs = std::filesystem;

namespace {

fs::path make_dir(const std::string& name) {
  fs::path dir = fs::path(testing::TempDir()) / ("agent_inv_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

/// Options reading a fake host from `dir`, with NVML and nvidia-smi absent unless a test adds them.
oa::InventoryOptions fake_host(const fs::path& dir) {
  fs::create_directories(dir / "proc");
  fs::create_directories(dir / "etc");
  std::ofstream(dir / "proc" / "cpuinfo") << "processor : 0\nmodel name : Test CPU\n\n"
                                             "processor : 1\nmodel name : Test CPU\n";
  std::ofstream(dir / "proc" / "meminfo") << "MemTotal: 4194304 kB\nMemAvailable: 2097152 kB\n";
  std::ofstream(dir / "etc" / "os-release") << "PRETTY_NAME=\"Test OS\"\n";
  oa::InventoryOptions o;
  o.host.proc_root = dir / "proc";
  o.host.etc_root = dir / "etc";
  o.host.data_dir = dir;
  o.path_env = (dir / "bin").string();
  o.nvml_loader =
      [](const std::string& lib) -> openstation::core::Result<std::unique_ptr<oa::NvmlApi>> {
    return openstation::core::Error(openstation::core::Errc::unavailable, "nvml.not_found",
                                    "cannot load " + lib);
  };
  return o;
}

std::unique_ptr<oa::NvmlApi> nvml_with_two_gpus() {
  auto nvml = std::make_unique<ot::FakeNvml>();
  ot::FakeNvmlGpu a;
  a.uuid = "GPU-a";
  a.used = 2048ull << 20;
  a.utilization = 10;
  a.processes = {{321, 2000ull << 20}};
  ot::FakeNvmlGpu b;
  b.uuid = "GPU-b";
  nvml->gpus = {a, b};
  nvml->process_names[321] = "vllm";
  return nvml;
}

void put_fake_smi(const fs::path& dir) {
  fs::create_directories(dir / "bin");
  std::ofstream(dir / "bin" / "nvidia-smi") << "#!/bin/sh\nexit 0\n";
  fs::permissions(dir / "bin" / "nvidia-smi", fs::perms::owner_all);
}

}  // namespace

TEST(Inventory, NoDriverAndNoToolIsACpuNodeNotAnError) {
  fs::path dir = make_dir("none");
  auto inv = oa::collect_inventory(fake_host(dir));
  ASSERT_TRUE(inv) << inv.error().message;
  EXPECT_EQ(inv->probe, "none");
  EXPECT_EQ(inv->node.type, openstation::model::NodeType::cpu);
  EXPECT_TRUE(inv->node.gpus.empty());
  EXPECT_EQ(inv->node.cpu_cores, 2);
  EXPECT_EQ(inv->node.memory_mib, 4096);
  EXPECT_EQ(inv->host.memory_available_mib, 2048);
  EXPECT_EQ(inv->host.cpu_model, "Test CPU");
  EXPECT_EQ(inv->node.name, inv->host.hostname);
  bool explained = false;
  for (const auto& w : inv->warnings) {
    explained |= w.find("NVML skipped") != std::string::npos &&
                 w.find("nvidia-smi skipped") != std::string::npos;
  }
  EXPECT_TRUE(explained);
  EXPECT_NE(oa::render_inventory(*inv).find("GPUs: none"), std::string::npos);
}

TEST(Inventory, PrefersNvml) {
  fs::path dir = make_dir("nvml");
  put_fake_smi(dir);
  auto o = fake_host(dir);
  o.name = "gpu-node-1";
  o.nvml_loader =
      [](const std::string&) -> openstation::core::Result<std::unique_ptr<oa::NvmlApi>> {
    return nvml_with_two_gpus();
  };
  ot::FakeCommandRunner runner;
  o.runner = &runner;
  auto inv = oa::collect_inventory(o);
  ASSERT_TRUE(inv) << inv.error().message;
  EXPECT_EQ(inv->probe, "nvml");
  EXPECT_TRUE(runner.calls.empty());
  EXPECT_EQ(inv->node.name, "gpu-node-1");
  EXPECT_EQ(inv->node.type, openstation::model::NodeType::gpu);
  ASSERT_EQ(inv->node.gpus.size(), 2u);
  EXPECT_EQ(inv->node.gpus[0].processes[0].name, "vllm");

  std::string text = oa::render_inventory(*inv);
  EXPECT_NE(text.find("GPU-a"), std::string::npos);
  EXPECT_NE(text.find("pid 321 vllm holds 2,000 MiB"), std::string::npos);
  EXPECT_NE(text.find("2,048 / 81,920"), std::string::npos);
}

TEST(Inventory, FallsBackToNvidiaSmiAndSaysWhy) {
  fs::path dir = make_dir("smi");
  put_fake_smi(dir);
  auto o = fake_host(dir);
  ot::FakeCommandRunner runner;
  runner.answer("--query-gpu=" + std::string(oa::kSmiGpuFields) + " --format=csv,noheader,nounits",
                "0, Tesla T4, GPU-t4, 15360, 300, 15060, 7.5, 535.104.05, 4, 00000000:00:04.0\n");
  runner.answer(
      "--query-compute-apps=" + std::string(oa::kSmiAppFields) + " --format=csv,noheader,nounits",
      "GPU-t4, 99, python, 290\n");
  runner.answer("", "CUDA Version: 12.2\n");
  o.runner = &runner;
  auto inv = oa::collect_inventory(o);
  ASSERT_TRUE(inv) << inv.error().message;
  EXPECT_EQ(inv->probe, "nvidia-smi");
  ASSERT_EQ(inv->node.gpus.size(), 1u);
  EXPECT_EQ(inv->node.gpus[0].cuda_driver_version, "12.2");
  EXPECT_EQ(runner.calls.at(0).at(0), (dir / "bin" / "nvidia-smi").string());
  bool explained = false;
  for (const auto& w : inv->warnings) explained |= w.find("NVML skipped") != std::string::npos;
  EXPECT_TRUE(explained);
}

TEST(Inventory, ExplicitProbeThatFailsIsAnError) {
  fs::path dir = make_dir("explicit");
  auto o = fake_host(dir);
  o.probe = oa::ProbeChoice::nvml;
  auto inv = oa::collect_inventory(o);
  ASSERT_FALSE(inv);
  EXPECT_EQ(inv.error().code, "nvml.not_found");
  o.probe = oa::ProbeChoice::nvidia_smi;
  inv = oa::collect_inventory(o);
  ASSERT_FALSE(inv);
  EXPECT_EQ(inv.error().code, "nvidia_smi.not_found");
}

TEST(Inventory, InventoryFileGivesTheGpus) {
  fs::path dir = make_dir("file");
  std::ofstream(dir / "node.json")
      << R"({"name": "sim", "type": "gpu", "cpu_cores": 8, "memory_mib": 65536,
             "disk_free_gib": 500, "gpus": [
             {"index": 0, "name": "Tesla V100-SXM2-32GB", "uuid": "GPU-v", "memory_total_mib": 32768,
              "memory_used_mib": 1024, "compute_capability": "7.0", "driver_version": "535.104.05",
              "processes": [{"pid": 7, "name": "other", "used_memory_mib": 1000}]}]})";
  auto o = fake_host(dir);
  o.gpu_inventory = dir / "node.json";
  auto inv = oa::collect_inventory(o);
  ASSERT_TRUE(inv) << inv.error().message;
  EXPECT_EQ(inv->probe, "file");
  ASSERT_EQ(inv->node.gpus.size(), 1u);
  EXPECT_EQ(inv->node.gpus[0].cc_major, 7);
  EXPECT_EQ(inv->node.gpus[0].processes[0].used_memory_mib, 1000);
  EXPECT_EQ(inv->node.cpu_cores, 2);  // the host's, not the file's
}

TEST(Inventory, BadInventoryFileIsBadInput) {
  fs::path dir = make_dir("badfile");
  std::ofstream(dir / "node.json") << R"({"name": "x", "type": "gpu"})";
  auto o = fake_host(dir);
  o.gpu_inventory = dir / "node.json";
  auto inv = oa::collect_inventory(o);
  ASSERT_FALSE(inv);
  EXPECT_EQ(openstation::core::exit_code(inv.error().category), 2);
  o.gpu_inventory = dir / "missing.json";
  inv = oa::collect_inventory(o);
  ASSERT_FALSE(inv);
}

TEST(Inventory, JsonNodeIsTheNodeFileFormat) {
  fs::path dir = make_dir("json");
  auto o = fake_host(dir);
  o.nvml_loader =
      [](const std::string&) -> openstation::core::Result<std::unique_ptr<oa::NvmlApi>> {
    return nvml_with_two_gpus();
  };
  auto inv = oa::collect_inventory(o);
  ASSERT_TRUE(inv);
  boost::json::value v = oa::inventory_to_json(*inv);
  const auto& root = v.as_object();
  EXPECT_EQ(root.at("probe").as_string(), "nvml");
  EXPECT_TRUE(root.at("warnings").is_array());
  const auto& host = root.at("host").as_object();
  EXPECT_EQ(host.at("cpu_model").as_string(), "Test CPU");
  EXPECT_EQ(host.at("memory_available_mib").as_int64(), 2048);
  EXPECT_EQ(host.at("os").as_string(), "Test OS");
  EXPECT_TRUE(host.at("ips").is_array());
  const auto& gpu = root.at("node").at("gpus").at(0).as_object();
  EXPECT_EQ(gpu.at("utilization_percent").as_int64(), 10);
  EXPECT_EQ(gpu.at("driver_version").as_string(), "550.54.15");
  EXPECT_EQ(gpu.at("processes").at(0).at("pid").as_int64(), 321);

  // The "node" member loads back as a node file, unchanged.
  auto back = openstation::model::parse_node_json(boost::json::serialize(root.at("node")), "node");
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->name, inv->node.name);
  ASSERT_EQ(back->gpus.size(), 2u);
  EXPECT_EQ(back->gpus[0].uuid, "GPU-a");
  EXPECT_EQ(back->gpus[0].processes[0].used_memory_mib, 2000);
  EXPECT_EQ(back->cpu_cores, 2);
}

TEST(Inventory, ProbeChoiceNames) {
  EXPECT_EQ(oa::parse_probe_choice("auto"), oa::ProbeChoice::automatic);
  EXPECT_EQ(oa::parse_probe_choice("nvidia-smi"), oa::ProbeChoice::nvidia_smi);
  EXPECT_EQ(oa::parse_probe_choice("file"), oa::ProbeChoice::file);
  EXPECT_FALSE(oa::parse_probe_choice("cuda"));
}
