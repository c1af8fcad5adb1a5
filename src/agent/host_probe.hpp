#pragma once
/// What the agent knows about the machine besides its GPUs: CPU, memory, free disk for the data
/// dir, OS and IP addresses. The /proc and /etc roots are options so tests can supply files.

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace openstation::agent {

/// The host's facts. Numbers are 0 and strings empty where unknown (a warning then says why).
struct HostInfo {
  std::string hostname;
  std::string cpu_model;  ///< "Intel(R) Xeon(R) Platinum 8480+"
  int cpu_cores = 0;      ///< logical CPUs
  std::int64_t memory_total_mib = 0;
  std::int64_t memory_available_mib = 0;
  std::string data_dir;      ///< the directory whose free space was asked for
  std::string disk_path;     ///< where it was measured: data_dir, or its nearest existing parent
  double disk_free_gib = 0;  ///< available to unprivileged users
  std::string os;            ///< PRETTY_NAME of os-release: "Ubuntu 22.04.4 LTS"
  std::string kernel;        ///< uname release: "5.15.0-105-generic"
  std::string arch;          ///< uname machine: "x86_64"
  std::vector<std::string> ips;  ///< IPv4 first, then global IPv6; loopback only if nothing else
};

/// Where the host probe looks.
struct HostProbeOptions {
  std::filesystem::path proc_root = "/proc";
  std::filesystem::path etc_root = "/etc";
  std::filesystem::path data_dir = ".";
};

/// Reads the host's facts; never fails — what cannot be read is left unknown and explained in
/// `warnings`.
HostInfo probe_host(const HostProbeOptions& options, std::vector<std::string>& warnings);

/// /proc/cpuinfo → model name and number of logical CPUs.
struct CpuInfo {
  std::string model;
  int cores = 0;
};
CpuInfo parse_cpuinfo(std::string_view text);

/// /proc/meminfo → MemTotal and MemAvailable in MiB (0 where absent).
struct MemInfo {
  std::int64_t total_mib = 0;
  std::int64_t available_mib = 0;
};
MemInfo parse_meminfo(std::string_view text);

/// os-release → PRETTY_NAME unquoted (or NAME VERSION when PRETTY_NAME is absent); "" if neither.
std::string parse_os_release(std::string_view text);

/// The machine's IP addresses (getifaddrs): IPv4 first, then IPv6 other than link-local;
/// loopback addresses only when there is nothing else.
std::vector<std::string> list_ip_addresses();

}  // namespace openstation::agent
