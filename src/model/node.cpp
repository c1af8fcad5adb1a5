#include "model/node.hpp"

#include "core/json.hpp"

#include <boost/json.hpp>

#include <cmath>
#include <cstdio>
#include <set>

namespace openstation::model {

namespace json = core::json;

namespace {

[[noreturn]] void fail(core::Error e) {
  throw core::ErrorException(std::move(e));
}

[[noreturn]] void bad(const std::string& path, const std::string& msg) {
  fail(core::invalid("node.invalid", path + " " + msg, path));
}

std::int64_t non_negative_int(const boost::json::object& o, std::string_view key,
                              const std::string& path, std::optional<std::int64_t> dflt) {
  auto v = json::opt_int(o, key, path);
  const std::string p = json::join_path(path, key);
  if (!v) {
    if (!dflt) fail(core::invalid("json.missing_field", p + " is required", p));
    return *dflt;
  }
  if (*v < 0) bad(p, "must not be negative, got " + std::to_string(*v));
  return *v;
}

void parse_cc(const std::string& cc, const std::string& path, GpuSpec& g) {
  int major = 0, minor = 0;
  char extra = 0;
  if (std::sscanf(cc.c_str(), "%d.%d%c", &major, &minor, &extra) != 2 || major < 1 || major > 99 ||
      minor < 0 || minor > 9 || cc.find('.') == std::string::npos) {
    bad(path, "'" + cc + "' is not a compute capability like \"8.0\"");
  }
  g.cc_major = major;
  g.cc_minor = minor;
}

GpuSpec parse_gpu(const boost::json::value& v, const std::string& path) {
  const auto& o = json::as_object(v, path);
  json::reject_unknown(
      o,
      {"index", "name", "uuid", "memory_total_mib", "memory_used_mib", "compute_capability",
       "driver_version", "cuda_driver_version", "utilization_percent", "health", "processes"},
      path);
  GpuSpec g;
  // A GPU the driver cannot read (fallen off the bus) is listed by the agent with health != "ok"
  // and placeholder sizes (0 MiB, compute capability "0.0"); keep it so plans can name it.
  g.health = json::opt_string(o, "health", path).value_or("ok");
  const bool healthy = g.health == "ok";
  g.index = static_cast<int>(non_negative_int(o, "index", path, std::nullopt));
  g.name = json::get_string(o, "name", path);
  g.uuid = json::opt_string(o, "uuid", path).value_or("");
  g.memory_total_mib = non_negative_int(o, "memory_total_mib", path, std::nullopt);
  if (g.memory_total_mib == 0 && healthy) {
    bad(json::join_path(path, "memory_total_mib"), "must be positive");
  }
  g.memory_used_mib = non_negative_int(o, "memory_used_mib", path, 0);
  if (g.memory_used_mib > g.memory_total_mib) {
    bad(json::join_path(path, "memory_used_mib"), "(" + std::to_string(g.memory_used_mib) +
                                                      ") exceeds memory_total_mib (" +
                                                      std::to_string(g.memory_total_mib) + ")");
  }
  const std::string cc = json::get_string(o, "compute_capability", path);
  if (healthy || cc != "0.0") parse_cc(cc, json::join_path(path, "compute_capability"), g);
  g.driver_version = json::opt_string(o, "driver_version", path).value_or("");
  g.cuda_driver_version = json::opt_string(o, "cuda_driver_version", path).value_or("");
  if (auto u = json::opt_int(o, "utilization_percent", path)) {
    if (*u < 0 || *u > 100) bad(json::join_path(path, "utilization_percent"), "must be 0-100");
    g.utilization_percent = static_cast<int>(*u);
  }
  if (auto it = o.find("processes"); it != o.end() && !it->value().is_null()) {
    const std::string pp = json::join_path(path, "processes");
    const auto& arr = json::as_array(it->value(), pp);
    for (std::size_t i = 0; i < arr.size(); ++i) {
      const std::string ep = pp + "[" + std::to_string(i) + "]";
      const auto& po = json::as_object(arr[i], ep);
      json::reject_unknown(po, {"pid", "name", "used_memory_mib"}, ep);
      GpuProcess proc;
      proc.pid = static_cast<int>(non_negative_int(po, "pid", ep, std::nullopt));
      proc.name = json::opt_string(po, "name", ep).value_or("");
      proc.used_memory_mib = non_negative_int(po, "used_memory_mib", ep, 0);
      g.processes.push_back(std::move(proc));
    }
  }
  return g;
}

NodeSpec parse_node(const boost::json::value& v, const std::string& path) {
  const auto& o = json::as_object(v, path);
  json::reject_unknown(
      o, {"name", "type", "cpu_cores", "memory_mib", "disk_free_gib", "gpus", "address"}, path);
  NodeSpec n;
  n.name = json::get_string(o, "name", path);
  if (n.name.empty()) bad(json::join_path(path, "name"), "must not be empty");
  const std::string type = json::get_string(o, "type", path);
  if (type == "gpu") {
    n.type = NodeType::gpu;
  } else if (type == "cpu") {
    n.type = NodeType::cpu;
  } else {
    bad(json::join_path(path, "type"), "must be \"gpu\" or \"cpu\", got \"" + type + "\"");
  }
  n.cpu_cores = static_cast<int>(non_negative_int(o, "cpu_cores", path, std::nullopt));
  n.memory_mib = non_negative_int(o, "memory_mib", path, std::nullopt);
  const double disk = json::get_number(o, "disk_free_gib", path);
  if (!(disk >= 0) || !std::isfinite(disk)) {
    bad(json::join_path(path, "disk_free_gib"), "must be a non-negative number");
  }
  n.disk_free_gib = disk;
  n.address = json::opt_string(o, "address", path).value_or("");
  if (auto it = o.find("gpus"); it != o.end() && !it->value().is_null()) {
    const std::string gp = json::join_path(path, "gpus");
    const auto& arr = json::as_array(it->value(), gp);
    std::set<int> indexes;
    for (std::size_t i = 0; i < arr.size(); ++i) {
      const std::string ep = gp + "[" + std::to_string(i) + "]";
      GpuSpec g = parse_gpu(arr[i], ep);
      if (!indexes.insert(g.index).second) {
        bad(json::join_path(ep, "index"), "duplicates GPU index " + std::to_string(g.index));
      }
      n.gpus.push_back(std::move(g));
    }
  }
  if (n.type == NodeType::gpu && n.gpus.empty()) {
    bad(json::join_path(path, "gpus"), "must list at least one GPU for a \"gpu\" node");
  }
  if (n.type == NodeType::cpu && !n.gpus.empty()) {
    bad(json::join_path(path, "gpus"), "must be empty for a \"cpu\" node (use \"type\": \"gpu\")");
  }
  return n;
}

}  // namespace

std::string GpuSpec::compute_capability() const {
  return std::to_string(cc_major) + "." + std::to_string(cc_minor);
}

core::Result<NodeSpec> parse_node_json(std::string_view text, std::string_view source) {
  return json::capture([&] {
    try {
      return parse_node(json::parse(text, source), "");
    } catch (const core::ErrorException& e) {
      core::Error err = e.error();
      if (err.code.rfind("json.invalid", 0) != 0)
        err.message = std::string(source) + ": " + err.message;
      throw core::ErrorException(err);
    }
  });
}

core::Result<ClusterSpec> parse_cluster_json(std::string_view text, std::string_view source) {
  return json::capture([&] {
    try {
      const auto doc = json::parse(text, source);
      ClusterSpec c;
      const auto& root = json::as_object(doc, "");
      if (root.contains("nodes")) {
        json::reject_unknown(root, {"nodes"}, "");
        const auto& arr = json::as_array(root.at("nodes"), "nodes");
        if (arr.empty()) bad("nodes", "must list at least one node");
        std::set<std::string> names;
        for (std::size_t i = 0; i < arr.size(); ++i) {
          const std::string p = "nodes[" + std::to_string(i) + "]";
          NodeSpec n = parse_node(arr[i], p);
          if (!names.insert(n.name).second) {
            bad(p + ".name", "duplicates node name \"" + n.name + "\"");
          }
          c.nodes.push_back(std::move(n));
        }
      } else {
        c.nodes.push_back(parse_node(doc, ""));
      }
      return c;
    } catch (const core::ErrorException& e) {
      core::Error err = e.error();
      if (err.code.rfind("json.invalid", 0) != 0)
        err.message = std::string(source) + ": " + err.message;
      throw core::ErrorException(err);
    }
  });
}

core::Result<NodeSpec> load_node_file(const std::filesystem::path& path) {
  auto text = json::read_file(path, 16u << 20);
  if (!text) return text.error();
  return parse_node_json(*text, path.string());
}

core::Result<ClusterSpec> load_cluster_file(const std::filesystem::path& path) {
  auto text = json::read_file(path, 16u << 20);
  if (!text) return text.error();
  return parse_cluster_json(*text, path.string());
}

std::string node_to_json(const NodeSpec& node) {
  boost::json::object o;
  o["name"] = node.name;
  o["type"] = node.type == NodeType::gpu ? "gpu" : "cpu";
  o["cpu_cores"] = node.cpu_cores;
  o["memory_mib"] = node.memory_mib;
  o["disk_free_gib"] = node.disk_free_gib;
  if (!node.address.empty()) o["address"] = node.address;
  boost::json::array gpus;
  for (const auto& g : node.gpus) {
    boost::json::object go;
    go["index"] = g.index;
    go["name"] = g.name;
    go["uuid"] = g.uuid;
    go["memory_total_mib"] = g.memory_total_mib;
    go["memory_used_mib"] = g.memory_used_mib;
    go["compute_capability"] = g.compute_capability();
    if (!g.driver_version.empty()) go["driver_version"] = g.driver_version;
    if (!g.cuda_driver_version.empty()) go["cuda_driver_version"] = g.cuda_driver_version;
    if (g.utilization_percent >= 0) go["utilization_percent"] = g.utilization_percent;
    if (g.health != "ok") go["health"] = g.health;
    if (!g.processes.empty()) {
      boost::json::array ps;
      for (const auto& p : g.processes) {
        ps.push_back(boost::json::object{
            {"pid", p.pid}, {"name", p.name}, {"used_memory_mib", p.used_memory_mib}});
      }
      go["processes"] = std::move(ps);
    }
    gpus.push_back(std::move(go));
  }
  o["gpus"] = std::move(gpus);
  return boost::json::serialize(o);
}

}  // namespace openstation::model
