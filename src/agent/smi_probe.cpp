#include "agent/smi_probe.hpp"

#include "core/strings.hpp"

#include <algorithm>
#include <charconv>
#include <optional>
#include <set>

namespace openstation::agent {
namespace {

std::vector<std::string> split_lines(std::string_view text) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string line = core::trim(text.substr(start, end - start));
    if (!line.empty()) lines.push_back(std::move(line));
    start = end + 1;
  }
  return lines;
}

std::vector<std::string> split_fields(std::string_view line) {
  std::vector<std::string> fields;
  std::size_t start = 0;
  while (true) {
    std::size_t end = line.find(',', start);
    fields.push_back(
        core::trim(line.substr(start, end == std::string_view::npos ? end : end - start)));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return fields;
}

/// nvidia-smi's ways of saying "no value".
bool is_unavailable(std::string_view v) {
  return v.empty() || v == "[N/A]" || v == "N/A" || v == "[Not Supported]" ||
         v == "[Insufficient Permissions]" || v == "[Unknown]";
}
bool is_error_value(std::string_view v) {
  return v == "ERR!" || v == "[Unknown Error]";
}
bool is_reset_value(std::string_view v) {
  return v == "[GPU requires reset]";
}

std::optional<std::int64_t> to_int(std::string_view v) {
  std::int64_t n = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || p != v.data() + v.size()) return std::nullopt;
  return n;
}

std::optional<std::pair<int, int>> to_cc(std::string_view v) {
  auto dot = v.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  auto major = to_int(v.substr(0, dot));
  auto minor = to_int(v.substr(dot + 1));
  if (!major || !minor) return std::nullopt;
  return std::pair<int, int>{static_cast<int>(*major), static_cast<int>(*minor)};
}

constexpr std::string_view kLostPrefix = "Unable to determine the device handle for GPU";

/// A GPU the driver cannot open: its PCI bus id and nvidia-smi's reason.
struct LostGpu {
  std::string bus_id;
  std::string reason;
};

std::optional<LostGpu> parse_lost_line(std::string_view line) {
  auto at = line.find(kLostPrefix);
  if (at == std::string_view::npos) return std::nullopt;
  std::string_view rest = line.substr(at + kLostPrefix.size());
  LostGpu lost;
  auto sep = rest.find(": ");
  if (sep == std::string_view::npos) {
    lost.bus_id = core::trim(rest);
  } else {
    lost.bus_id = core::trim(rest.substr(0, sep));
    lost.reason = core::trim(rest.substr(sep + 2));
  }
  if (!lost.bus_id.empty() && lost.bus_id.back() == ':') lost.bus_id.pop_back();
  return lost;
}

/// Lines nvidia-smi prints that carry no GPU and need no warning.
bool is_benign(std::string_view line) {
  return line == "No devices were found" || line.find("No running processes found") != line.npos;
}

}  // namespace

std::pair<int, int> compute_capability_from_name(std::string_view gpu_name) {
  struct Known {
    std::string_view model;
    int major;
    int minor;
  };
  static constexpr Known kKnown[] = {
      {"GH200", 9, 0}, {"H200", 9, 0}, {"H100", 9, 0}, {"H800", 9, 0},  {"H20", 9, 0},
      {"L40S", 8, 9},  {"L40", 8, 9},  {"L20", 8, 9},  {"L4", 8, 9},    {"A100", 8, 0},
      {"A800", 8, 0},  {"A30", 8, 0},  {"A10G", 8, 6}, {"A10", 8, 6},   {"A40", 8, 6},
      {"A16", 8, 6},   {"A2", 8, 6},   {"T4", 7, 5},   {"V100S", 7, 0}, {"V100", 7, 0},
      {"P100", 6, 0},  {"P40", 6, 1},  {"P4", 6, 1},   {"K80", 3, 7},
  };
  std::vector<std::string> tokens;
  std::string token;
  for (char c : gpu_name) {
    if (c == ' ' || c == '-') {
      if (!token.empty()) tokens.push_back(token);
      token.clear();
    } else {
      token += c;
    }
  }
  if (!token.empty()) tokens.push_back(token);
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    for (const auto& k : kKnown) {
      if (tokens[i] == k.model) return {k.major, k.minor};
    }
    // GeForce/RTX: "RTX 4090" → Ada 8.9, "RTX 3090" → Ampere 8.6, "RTX 2080" → Turing 7.5.
    if (tokens[i] == "RTX" && i + 1 < tokens.size() && tokens[i + 1].size() == 4) {
      std::string_view series = std::string_view(tokens[i + 1]).substr(0, 2);
      if (series == "40") return {8, 9};
      if (series == "30") return {8, 6};
      if (series == "20") return {7, 5};
    }
  }
  return {0, 0};
}

GpuReport parse_smi_gpus(std::string_view text, bool with_compute_cap) {
  GpuReport report;
  const std::size_t columns = with_compute_cap ? 10 : 9;
  const std::size_t cc_col = 6;
  std::vector<LostGpu> lost;
  for (const auto& line : split_lines(text)) {
    if (auto l = parse_lost_line(line)) {
      lost.push_back(std::move(*l));
      continue;
    }
    if (is_benign(line)) continue;
    std::vector<std::string> f = split_fields(line);
    if (f.size() > columns) {  // a GPU name with a comma in it: glue the extra fields back
      std::size_t extra = f.size() - columns;
      for (std::size_t i = 0; i < extra; ++i) f[1] += ", " + f[2 + i];
      f.erase(f.begin() + 2, f.begin() + 2 + static_cast<std::ptrdiff_t>(extra));
    }
    auto index = f.size() == columns ? to_int(f[0]) : std::nullopt;
    if (!index) {
      report.warnings.push_back("nvidia-smi printed a line that is not a GPU row: " + line);
      continue;
    }
    if (!with_compute_cap) f.insert(f.begin() + cc_col, std::string());
    // f: index name uuid total used free cc driver util bus
    model::GpuSpec gpu;
    gpu.index = static_cast<int>(*index);
    const std::string who = "GPU " + std::to_string(gpu.index);
    static constexpr std::string_view kNames[] = {
        "index",       "name",        "uuid",           "memory.total",    "memory.used",
        "memory.free", "compute_cap", "driver_version", "utilization.gpu", "pci.bus_id"};
    for (std::size_t i = 1; i < f.size(); ++i) {
      if (is_reset_value(f[i])) {
        gpu.health = "reset required";
      } else if (is_error_value(f[i]) && gpu.health == "ok") {
        gpu.health = "error";
        report.warnings.push_back(who + ": nvidia-smi reads " + std::string(kNames[i]) + " as " +
                                  f[i] + "; the GPU may be failing: check `dmesg` for Xid errors");
      }
    }
    auto text_field = [&](std::size_t i) {
      return is_unavailable(f[i]) || is_error_value(f[i]) || is_reset_value(f[i]) ? std::string()
                                                                                  : f[i];
    };
    gpu.name = text_field(1);
    gpu.uuid = text_field(2);
    gpu.memory_total_mib = to_int(f[3]).value_or(0);
    gpu.memory_used_mib = to_int(f[4]).value_or(0);
    if (auto cc = to_cc(f[cc_col])) {
      gpu.cc_major = cc->first;
      gpu.cc_minor = cc->second;
    } else if (!gpu.name.empty()) {
      auto [major, minor] = compute_capability_from_name(gpu.name);
      gpu.cc_major = major;
      gpu.cc_minor = minor;
      report.warnings.push_back(who + ": nvidia-smi does not report the compute capability" +
                                (major > 0
                                     ? "; " + std::to_string(major) + "." + std::to_string(minor) +
                                           " is taken from the GPU name"
                                     : std::string("; it is unknown (0.0)")));
    }
    gpu.driver_version = text_field(7);
    if (report.driver_version.empty()) report.driver_version = gpu.driver_version;
    if (auto util = to_int(f[8])) gpu.utilization_percent = static_cast<int>(*util);
    if (gpu.health == "reset required") {
      report.warnings.push_back(who + " (" + text_field(9) +
                                ") requires a reset: run `nvidia-smi -r -i " +
                                std::to_string(gpu.index) + "` when idle, or reboot");
    }
    report.gpus.push_back(std::move(gpu));
  }

  std::set<int> used;
  for (const auto& g : report.gpus) used.insert(g.index);
  int next = 0;
  for (const auto& l : lost) {
    while (used.count(next) != 0) ++next;
    model::GpuSpec gpu;
    gpu.index = next;
    gpu.health = "lost";
    gpu.driver_version = report.driver_version;
    used.insert(next);
    report.warnings.push_back(
        "GPU " + std::to_string(next) + " at PCI " + l.bus_id + " cannot be opened (" +
        (l.reason.empty() ? std::string("no reason given") : l.reason) +
        "); it has likely fallen off the bus: check `dmesg` for Xid 79, then reset or reboot. Its "
        "index is inferred from the indexes the other GPUs leave free");
    report.gpus.push_back(std::move(gpu));
  }
  std::sort(report.gpus.begin(), report.gpus.end(),
            [](const auto& a, const auto& b) { return a.index < b.index; });
  for (auto& g : report.gpus) {
    if (g.driver_version.empty()) g.driver_version = report.driver_version;
  }
  return report;
}

void add_smi_apps(std::string_view text, GpuReport& report) {
  for (const auto& line : split_lines(text)) {
    if (is_benign(line) || parse_lost_line(line)) continue;
    std::vector<std::string> f = split_fields(line);
    auto pid = f.size() >= 4 ? to_int(f[1]) : std::nullopt;
    if (!pid) {
      report.warnings.push_back("nvidia-smi printed a line that is not a process row: " + line);
      continue;
    }
    model::GpuProcess proc;
    proc.pid = static_cast<int>(*pid);
    for (std::size_t i = 2; i + 1 < f.size(); ++i) {  // a process name may hold commas
      proc.name += (i > 2 ? ", " : "") + f[i];
    }
    if (is_unavailable(proc.name)) proc.name.clear();
    auto mem = to_int(f.back());
    proc.used_memory_mib = mem.value_or(0);
    auto gpu = std::find_if(report.gpus.begin(), report.gpus.end(),
                            [&](const auto& g) { return !g.uuid.empty() && g.uuid == f[0]; });
    if (gpu == report.gpus.end()) {
      report.warnings.push_back("process " + f[1] + " uses " + f[0] +
                                ", which is not in the GPU list");
      continue;
    }
    if (!mem) {
      report.warnings.push_back("GPU " + std::to_string(gpu->index) +
                                ": nvidia-smi does not say how much memory pid " + f[1] +
                                " holds (" + f.back() + ")");
    }
    gpu->processes.push_back(std::move(proc));
  }
}

std::string parse_smi_cuda_version(std::string_view text) {
  constexpr std::string_view kKey = "CUDA Version";
  auto at = text.find(kKey);
  if (at == std::string_view::npos) return {};
  std::size_t i = at + kKey.size();
  while (i < text.size() && (text[i] == ' ' || text[i] == ':')) ++i;
  std::size_t start = i;
  while (i < text.size() && ((text[i] >= '0' && text[i] <= '9') || text[i] == '.')) ++i;
  return std::string(text.substr(start, i - start));
}

core::Result<GpuReport> NvidiaSmiProbe::probe() {
  const std::string format = "--format=csv,noheader,nounits";
  bool with_cc = true;
  auto gpus = runner_.run({smi_, "--query-gpu=" + std::string(kSmiGpuFields), format}, timeout_);
  if (!gpus) return gpus.error();
  std::string all = gpus->out + "\n" + gpus->err;
  if (gpus->exit_code != 0 && all.find("compute_cap") != std::string::npos &&
      all.find("not a valid field") != std::string::npos) {
    with_cc = false;  // a driver before R510
    std::string fields(kSmiGpuFields);
    fields.erase(fields.find("compute_cap,"), std::string_view("compute_cap,").size());
    gpus = runner_.run({smi_, "--query-gpu=" + fields, format}, timeout_);
    if (!gpus) return gpus.error();
    all = gpus->out + "\n" + gpus->err;
  }
  GpuReport report = parse_smi_gpus(all, with_cc);
  if (gpus->exit_code != 0 && report.gpus.empty()) {
    auto lines = split_lines(all);
    std::string first = lines.empty() ? std::string("no output") : lines.front();
    if (first == "No devices were found") return report;
    return core::Error(
        core::Errc::unavailable, "nvidia_smi.failed",
        "nvidia-smi failed (exit " + std::to_string(gpus->exit_code) + "): " + first);
  }

  auto apps =
      runner_.run({smi_, "--query-compute-apps=" + std::string(kSmiAppFields), format}, timeout_);
  if (!apps) {
    report.warnings.push_back("cannot list GPU processes: " + apps.error().message);
  } else {
    add_smi_apps(apps->out, report);
  }

  auto header = runner_.run({smi_}, timeout_);
  if (header) report.cuda_driver_version = parse_smi_cuda_version(header->out);
  if (report.cuda_driver_version.empty() && !report.gpus.empty()) {
    report.warnings.push_back("nvidia-smi does not show the CUDA driver version" +
                              (header ? std::string() : ": " + header.error().message));
  }
  for (auto& g : report.gpus) g.cuda_driver_version = report.cuda_driver_version;
  return report;
}

}  // namespace openstation::agent
