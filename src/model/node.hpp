#pragma once
/// A compute node as the planner and estimator see it: the inventory file format of issue [1],
/// also produced by the agent's live inventory.
///
/// JSON: {"name", "type": "gpu"|"cpu", "cpu_cores", "memory_mib", "disk_free_gib",
///        "gpus": [{"index", "name", "uuid", "memory_total_mib", "memory_used_mib",
///                  "compute_capability": "8.0"}]}
/// Optional node field "address"; optional GPU fields "driver_version", "cuda_driver_version",
/// "utilization_percent", "health", "processes": [{"pid", "name", "used_memory_mib"}].
/// A cluster file is {"nodes": [...]}.

#include "core/error.hpp"

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace openstation::model {

/// A process holding memory on a GPU.
struct GpuProcess {
  int pid = 0;
  std::string name;
  std::int64_t used_memory_mib = 0;
};

struct GpuSpec {
  int index = 0;
  std::string name;  ///< "NVIDIA H100 80GB HBM3"
  std::string uuid;
  std::int64_t memory_total_mib = 0;  ///< as NVML reports it
  std::int64_t memory_used_mib = 0;   ///< held by other processes now
  int cc_major = 0;                   ///< compute capability
  int cc_minor = 0;
  // Optional, filled by the agent's live probes (and accepted in inventory files):
  std::string driver_version;       ///< "550.54.15"
  std::string cuda_driver_version;  ///< "12.4"
  int utilization_percent = -1;     ///< -1 when unknown
  std::vector<GpuProcess> processes;
  std::string health = "ok";  ///< "ok", or what the driver says is wrong ("lost", "xid 79")

  std::uint64_t total_bytes() const { return static_cast<std::uint64_t>(memory_total_mib) << 20; }
  std::uint64_t used_bytes() const { return static_cast<std::uint64_t>(memory_used_mib) << 20; }
  /// "8.0"
  std::string compute_capability() const;
};

enum class NodeType { gpu, cpu };

struct NodeSpec {
  std::string name;
  NodeType type = NodeType::cpu;
  int cpu_cores = 0;
  std::int64_t memory_mib = 0;
  double disk_free_gib = 0;
  std::vector<GpuSpec> gpus;
  std::string address;  ///< optional IP or host name, for distributed plans
};

struct ClusterSpec {
  std::vector<NodeSpec> nodes;
};

/// Parses one node object. Errors (exit 2): missing/invalid fields with their JSON path, a GPU node
/// without GPUs, negative sizes, duplicate GPU indexes, a malformed compute capability.
core::Result<NodeSpec> parse_node_json(std::string_view text, std::string_view source);
/// Parses {"nodes": [...]} or a single node object (a one-node cluster). Node names are unique.
core::Result<ClusterSpec> parse_cluster_json(std::string_view text, std::string_view source);
core::Result<NodeSpec> load_node_file(const std::filesystem::path& path);
core::Result<ClusterSpec> load_cluster_file(const std::filesystem::path& path);
/// The inverse of parse_node_json (a JSON object as text).
std::string node_to_json(const NodeSpec& node);

}  // namespace openstation::model
