#include "agent/host_probe.hpp"

#include "core/strings.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <array>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace openstation::agent {
namespace {

bool read_text(const std::filesystem::path& path, std::string& out) {
  std::ifstream in(path);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  return true;
}

/// Calls f(key, value) for each "key: value" (or key=value) line.
template <class F>
void for_each_pair(std::string_view text, char sep, F&& f) {
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    auto at = line.find(sep);
    if (at != std::string_view::npos)
      f(core::trim(line.substr(0, at)), core::trim(line.substr(at + 1)));
    start = end + 1;
  }
}

std::int64_t kib_to_mib(std::string_view value) {
  std::int64_t n = 0;
  std::from_chars(value.data(), value.data() + value.size(), n);
  return n / 1024;
}

std::string unquote(std::string v) {
  if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front()) {
    v = v.substr(1, v.size() - 2);
  }
  return v;
}

}  // namespace

CpuInfo parse_cpuinfo(std::string_view text) {
  CpuInfo info;
  std::string fallback_model;
  for_each_pair(text, ':', [&](const std::string& key, const std::string& value) {
    if (key == "processor") ++info.cores;
    if (info.model.empty() && key == "model name") info.model = value;
    if (fallback_model.empty() && (key == "Model" || key == "Hardware" || key == "cpu model")) {
      fallback_model = value;
    }
  });
  if (info.model.empty()) info.model = fallback_model;
  return info;
}

MemInfo parse_meminfo(std::string_view text) {
  MemInfo info;
  for_each_pair(text, ':', [&](const std::string& key, const std::string& value) {
    if (key == "MemTotal") info.total_mib = kib_to_mib(value);
    if (key == "MemAvailable") info.available_mib = kib_to_mib(value);
  });
  return info;
}

std::string parse_os_release(std::string_view text) {
  std::string pretty, name, version;
  for_each_pair(text, '=', [&](const std::string& key, const std::string& value) {
    if (key == "PRETTY_NAME") pretty = unquote(value);
    if (key == "NAME") name = unquote(value);
    if (key == "VERSION") version = unquote(value);
  });
  if (!pretty.empty()) return pretty;
  return core::trim(name + " " + version);
}

std::vector<std::string> list_ip_addresses() {
  std::vector<std::string> v4, v6, loopback;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return {};
  for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    if (a->ifa_addr == nullptr || (a->ifa_flags & IFF_UP) == 0) continue;
    std::array<char, INET6_ADDRSTRLEN> buf{};
    bool is_loopback = (a->ifa_flags & IFF_LOOPBACK) != 0;
    if (a->ifa_addr->sa_family == AF_INET) {
      sockaddr_in sin{};
      std::memcpy(&sin, a->ifa_addr, sizeof sin);
      if (::inet_ntop(AF_INET, &sin.sin_addr, buf.data(), buf.size()) == nullptr) continue;
      (is_loopback ? loopback : v4).emplace_back(buf.data());
    } else if (a->ifa_addr->sa_family == AF_INET6) {
      sockaddr_in6 sin6{};
      std::memcpy(&sin6, a->ifa_addr, sizeof sin6);
      if (IN6_IS_ADDR_LINKLOCAL(&sin6.sin6_addr)) continue;
      if (::inet_ntop(AF_INET6, &sin6.sin6_addr, buf.data(), buf.size()) == nullptr) continue;
      (is_loopback ? loopback : v6).emplace_back(buf.data());
    }
  }
  ::freeifaddrs(list);
  v4.insert(v4.end(), v6.begin(), v6.end());
  return v4.empty() ? loopback : v4;
}

HostInfo probe_host(const HostProbeOptions& options, std::vector<std::string>& warnings) {
  HostInfo host;
  std::array<char, 256> name{};
  if (::gethostname(name.data(), name.size() - 1) == 0) host.hostname = name.data();

  std::string text;
  if (read_text(options.proc_root / "cpuinfo", text)) {
    CpuInfo cpu = parse_cpuinfo(text);
    host.cpu_model = cpu.model;
    host.cpu_cores = cpu.cores;
  } else {
    warnings.push_back("cannot read " + (options.proc_root / "cpuinfo").string());
  }
  if (host.cpu_cores == 0) host.cpu_cores = static_cast<int>(std::thread::hardware_concurrency());

  if (read_text(options.proc_root / "meminfo", text)) {
    MemInfo mem = parse_meminfo(text);
    host.memory_total_mib = mem.total_mib;
    host.memory_available_mib = mem.available_mib;
  }
  if (host.memory_total_mib == 0) {
    warnings.push_back("cannot read the memory size from " +
                       (options.proc_root / "meminfo").string());
  }

  if (read_text(options.etc_root / "os-release", text) ||
      (options.etc_root == "/etc" && read_text("/usr/lib/os-release", text))) {
    host.os = parse_os_release(text);
  } else {
    warnings.push_back("cannot read " + (options.etc_root / "os-release").string() +
                       "; the OS name is unknown");
  }
  utsname uts{};
  if (::uname(&uts) == 0) {
    host.kernel = uts.release;
    host.arch = uts.machine;
  }

  std::error_code ec;
  std::filesystem::path dir = std::filesystem::absolute(options.data_dir, ec);
  if (ec) dir = options.data_dir;
  host.data_dir = dir.lexically_normal().string();
  std::filesystem::path probe = dir.lexically_normal();
  while (!std::filesystem::exists(probe, ec) && probe.has_relative_path()) {
    probe = probe.parent_path();
  }
  host.disk_path = probe.string();
  struct statvfs fs {};
  if (::statvfs(probe.c_str(), &fs) == 0) {
    host.disk_free_gib = static_cast<double>(fs.f_bavail) * static_cast<double>(fs.f_frsize) /
                         static_cast<double>(1ull << 30);
    if (probe != dir.lexically_normal()) {
      warnings.push_back("the data dir " + host.data_dir + " does not exist yet; free disk is " +
                         "measured at " + host.disk_path);
    }
  } else {
    warnings.push_back("cannot measure free disk at " + host.disk_path);
  }

  host.ips = list_ip_addresses();
  if (host.ips.empty()) warnings.push_back("no IP addresses found");
  return host;
}

}  // namespace openstation::agent
