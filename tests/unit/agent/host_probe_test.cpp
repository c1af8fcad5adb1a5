#include "agent/host_probe.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace oa = openstation::agent;
namespace fs = std::filesystem;

namespace {

fs::path make_dir(const std::string& name) {
  fs::path dir = fs::path(testing::TempDir()) / ("agent_host_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

constexpr const char* kCpuinfo =
    "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n\n"
    "processor\t: 1\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n\n"
    "processor\t: 2\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n\n";

}  // namespace

TEST(HostParse, Cpuinfo) {
  auto cpu = oa::parse_cpuinfo(kCpuinfo);
  EXPECT_EQ(cpu.cores, 3);
  EXPECT_EQ(cpu.model, "Intel(R) Xeon(R) Platinum 8480+");
  auto arm =
      oa::parse_cpuinfo("processor : 0\nBogoMIPS : 50\n\nprocessor : 1\nModel : Ampere Altra\n");
  EXPECT_EQ(arm.cores, 2);
  EXPECT_EQ(arm.model, "Ampere Altra");
}

TEST(HostParse, Meminfo) {
  auto mem = oa::parse_meminfo(
      "MemTotal:       16318480 kB\nMemFree:  100 kB\n"
      "MemAvailable:   12000000 kB\n");
  EXPECT_EQ(mem.total_mib, 15936);
  EXPECT_EQ(mem.available_mib, 11718);
}

TEST(HostParse, OsRelease) {
  EXPECT_EQ(oa::parse_os_release("NAME=\"Ubuntu\"\nVERSION=\"22.04.4 LTS (Jammy Jellyfish)\"\n"
                                 "PRETTY_NAME=\"Ubuntu 22.04.4 LTS\"\n"),
            "Ubuntu 22.04.4 LTS");
  EXPECT_EQ(oa::parse_os_release("NAME=Debian\nVERSION='12'\n"), "Debian 12");
  EXPECT_EQ(oa::parse_os_release(""), "");
}

TEST(HostProbe, ReadsFromTheGivenRoots) {
  fs::path root = make_dir("roots");
  write(root / "proc" / "cpuinfo", kCpuinfo);
  write(root / "proc" / "meminfo", "MemTotal: 2097152 kB\nMemAvailable: 1048576 kB\n");
  write(root / "etc" / "os-release", "PRETTY_NAME=\"Test OS 1.0\"\n");
  fs::create_directories(root / "data");
  oa::HostProbeOptions options;
  options.proc_root = root / "proc";
  options.etc_root = root / "etc";
  options.data_dir = root / "data";
  std::vector<std::string> warnings;
  oa::HostInfo host = oa::probe_host(options, warnings);
  EXPECT_EQ(host.cpu_cores, 3);
  EXPECT_EQ(host.cpu_model, "Intel(R) Xeon(R) Platinum 8480+");
  EXPECT_EQ(host.memory_total_mib, 2048);
  EXPECT_EQ(host.memory_available_mib, 1024);
  EXPECT_EQ(host.os, "Test OS 1.0");
  EXPECT_FALSE(host.kernel.empty());
  EXPECT_FALSE(host.hostname.empty());
  EXPECT_EQ(host.data_dir, (root / "data").lexically_normal().string());
  EXPECT_EQ(host.disk_path, host.data_dir);
  EXPECT_GT(host.disk_free_gib, 0.0);
  EXPECT_FALSE(host.ips.empty());  // at least loopback
  for (const auto& w : warnings) EXPECT_EQ(w.find("disk"), std::string::npos) << w;
}

TEST(HostProbe, MissingFilesAndDataDirAreWarningsNotFailures) {
  fs::path root = make_dir("missing");
  oa::HostProbeOptions options;
  options.proc_root = root / "proc";
  options.etc_root = root / "etc";
  options.data_dir = root / "not" / "yet";
  std::vector<std::string> warnings;
  oa::HostInfo host = oa::probe_host(options, warnings);
  EXPECT_GT(host.cpu_cores, 0);  // falls back to the CPUs the process sees
  EXPECT_EQ(host.memory_total_mib, 0);
  EXPECT_EQ(host.os, "");
  EXPECT_EQ(host.disk_path, root.lexically_normal().string());
  EXPECT_GT(host.disk_free_gib, 0.0);
  EXPECT_GE(warnings.size(), 4u);
}
