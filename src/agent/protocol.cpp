#include "agent/protocol.hpp"

#include "core/fs.hpp"

#include "core/json.hpp"
#include "core/strings.hpp"

#include <boost/json.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>

namespace openstation::agent {
namespace json = boost::json;
namespace cj = core::json;

namespace {

json::array string_array(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v) a.emplace_back(s);
  return a;
}

json::value inventory_value(const std::string& text) {
  if (text.empty()) return json::object{};
  return cj::parse(text, "inventory");
}

json::value parse_text(std::string_view text, std::string_view what) {
  try {
    return json::parse(text);
  } catch (const std::exception& e) {
    throw core::ErrorException(core::parse_error(
        "protocol.bad_json", std::string(what) + ": not valid JSON: " + e.what()));
  }
}

std::vector<std::string> strings_of(const json::object& o, std::string_view key,
                                    std::string_view path) {
  std::vector<std::string> out;
  const auto* v = o.if_contains(key);
  if (v == nullptr || v->is_null()) return out;
  const std::string p = cj::join_path(path, key);
  const auto& arr = cj::as_array(*v, p);
  for (std::size_t i = 0; i < arr.size(); ++i) {
    if (!arr[i].is_string()) {
      throw core::ErrorException(core::invalid("protocol.bad_field",
                                               p + "[" + std::to_string(i) + "] must be a string",
                                               p + "[" + std::to_string(i) + "]"));
    }
    out.emplace_back(arr[i].get_string());
  }
  return out;
}

std::int64_t ranged_int(const json::object& o, std::string_view key, std::string_view path,
                        std::int64_t lo, std::int64_t hi, std::int64_t fallback) {
  const auto v = cj::opt_int(o, key, path);
  if (!v) return fallback;
  if (*v < lo || *v > hi) {
    const std::string p = cj::join_path(path, key);
    throw core::ErrorException(core::invalid("protocol.out_of_range",
                                             p + " is " + std::to_string(*v) +
                                                 "; it must be between " + std::to_string(lo) +
                                                 " and " + std::to_string(hi),
                                             p));
  }
  return *v;
}

std::string inventory_text(const json::object& o, std::string_view path) {
  const auto* v = o.if_contains("inventory");
  if (v == nullptr || v->is_null()) return {};
  cj::as_object(*v, cj::join_path(path, "inventory"));
  return json::serialize(*v);
}

json::object report_object(const InstanceReport& m) {
  json::array ports;
  for (auto p : m.ports) ports.emplace_back(p);
  json::object o{{"id", m.id},
                 {"state", m.state},
                 {"pid", m.pid},
                 {"ports", std::move(ports)},
                 {"restarts", m.restarts},
                 {"reason", m.reason},
                 {"last_log_lines", string_array(m.last_log_lines)},
                 {"adopted", m.adopted}};
  // Only while preparing, so a heartbeat without a pull reads the same to an older server
  // (requests refuse unknown fields).
  if (m.bytes_done != 0 || m.bytes_total != 0) {
    o["bytes_done"] = m.bytes_done;
    o["bytes_total"] = m.bytes_total;
  }
  return o;
}

InstanceReport parse_report(const json::value& v, const std::string& path) {
  const auto& o = cj::as_object(v, path);
  cj::reject_unknown(o,
                     {"id", "state", "pid", "ports", "restarts", "reason", "last_log_lines",
                      "adopted", "bytes_done", "bytes_total"},
                     path);
  InstanceReport r;
  r.id = cj::get_string(o, "id", path);
  r.state = cj::get_string(o, "state", path);
  r.pid = cj::opt_int(o, "pid", path).value_or(0);
  if (const auto* ports = o.if_contains("ports"); ports != nullptr && !ports->is_null()) {
    const std::string p = cj::join_path(path, "ports");
    const auto& arr = cj::as_array(*ports, p);
    for (std::size_t i = 0; i < arr.size(); ++i) {
      const auto port = cj::to_int(arr[i], p + "[" + std::to_string(i) + "]");
      if (port < 1 || port > 65535) {
        throw core::ErrorException(core::invalid(
            "protocol.out_of_range", p + " holds " + std::to_string(port) + ", not a port", p));
      }
      r.ports.push_back(static_cast<std::uint16_t>(port));
    }
  }
  r.restarts = static_cast<unsigned>(
      ranged_int(o, "restarts", path, 0, std::numeric_limits<std::uint32_t>::max(), 0));
  r.reason = cj::opt_string(o, "reason", path).value_or("");
  r.last_log_lines = strings_of(o, "last_log_lines", path);
  r.adopted = cj::opt_bool(o, "adopted", path).value_or(false);
  constexpr auto kMax = std::numeric_limits<std::int64_t>::max();
  r.bytes_done = ranged_int(o, "bytes_done", path, 0, kMax, 0);
  r.bytes_total = ranged_int(o, "bytes_total", path, 0, kMax, 0);
  return r;
}

json::object assignment_object(const Assignment& m) {
  json::object env;
  for (const auto& [k, v] : m.env) env[k] = v;
  return json::object{{"id", m.id},
                      {"service", m.service},
                      {"engine", m.engine},
                      {"argv", string_array(m.argv)},
                      {"env", std::move(env)},
                      {"health_path", m.health_path},
                      {"ports_needed", m.ports_needed},
                      {"startup_timeout_s", m.startup_timeout_s},
                      {"model_path", m.model_path},
                      {"model_id", m.model_id},
                      {"model_sync", m.model_sync}};
}

Assignment parse_assignment(const json::value& v, const std::string& path) {
  const auto& o = cj::as_object(v, path);
  Assignment a;
  a.id = cj::get_string(o, "id", path);
  a.service = cj::opt_string(o, "service", path).value_or("");
  a.engine = cj::get_string(o, "engine", path);
  a.argv = strings_of(o, "argv", path);
  if (const auto* env = o.if_contains("env"); env != nullptr && !env->is_null()) {
    const std::string p = cj::join_path(path, "env");
    for (const auto& kv : cj::as_object(*env, p)) {
      if (!kv.value().is_string()) {
        const std::string f = cj::join_path(p, kv.key());
        throw core::ErrorException(core::invalid("protocol.bad_field", f + " must be a string", f));
      }
      a.env[std::string(kv.key())] = std::string(kv.value().get_string());
    }
  }
  a.health_path = cj::opt_string(o, "health_path", path).value_or("/health");
  a.ports_needed = static_cast<unsigned>(ranged_int(o, "ports_needed", path, 0, 64, 1));
  a.startup_timeout_s =
      static_cast<std::uint32_t>(ranged_int(o, "startup_timeout_s", path, 1, 7 * 24 * 3600, 600));
  a.model_path = cj::opt_string(o, "model_path", path).value_or("");
  a.model_id = cj::opt_string(o, "model_id", path).value_or("");
  a.model_sync = cj::opt_bool(o, "model_sync", path).value_or(false);
  return a;
}

}  // namespace

std::string to_json(const RegisterRequest& m) {
  return json::serialize(json::object{{"join_token", m.join_token},
                                      {"name", m.name},
                                      {"address", m.address},
                                      {"api_port", m.api_port},
                                      {"inventory", inventory_value(m.inventory_json)}});
}

std::string to_json(const NodeIdentity& m) {
  return json::serialize(json::object{{"node_id", m.node_id}, {"node_token", m.node_token}});
}

std::string to_json(const InstanceReport& m) {
  return json::serialize(report_object(m));
}

std::string to_json(const HeartbeatRequest& m) {
  json::array instances;
  for (const auto& r : m.instances) instances.emplace_back(report_object(r));
  return json::serialize(json::object{{"node_id", m.node_id},
                                      {"inventory", inventory_value(m.inventory_json)},
                                      {"instances", std::move(instances)}});
}

std::string to_json(const HeartbeatResponse& m) {
  return json::serialize(json::object{{"ok", m.ok}, {"server_time", m.server_time}});
}

std::string to_json(const Assignment& m) {
  return json::serialize(assignment_object(m));
}

std::string to_json(const AssignmentSet& m) {
  json::array instances;
  for (const auto& a : m.instances) instances.emplace_back(assignment_object(a));
  return json::serialize(
      json::object{{"generation", m.generation}, {"instances", std::move(instances)}});
}

std::string to_json(const ModelManifest& m) {
  json::array files;
  for (const auto& f : m.files) {
    files.push_back(json::object{{"path", f.path}, {"size", f.size}, {"sha256", f.sha256}});
  }
  return json::serialize(json::object{{"model_id", m.model_id},
                                      {"name", m.name},
                                      {"path", m.path},
                                      {"single_file", m.single_file},
                                      {"store_root", m.store_root},
                                      {"store_id", m.store_id},
                                      {"files", std::move(files)}});
}

core::Result<ModelManifest> parse_model_manifest(std::string_view text) {
  return cj::capture([&] {
    const auto v = parse_text(text, "model manifest");
    const auto& o = cj::as_object(v, "");
    ModelManifest m;
    m.model_id = cj::get_string(o, "model_id", "");
    m.name = cj::opt_string(o, "name", "").value_or("");
    m.path = cj::get_string(o, "path", "");
    m.single_file = cj::opt_bool(o, "single_file", "").value_or(false);
    m.store_root = cj::opt_string(o, "store_root", "").value_or("");
    m.store_id = cj::opt_string(o, "store_id", "").value_or("");
    const auto* files = o.if_contains("files");
    if (files == nullptr) {
      throw core::ErrorException(
          core::invalid("protocol.missing_field", "files is required", "files"));
    }
    const auto& arr = cj::as_array(*files, "files");
    for (std::size_t i = 0; i < arr.size(); ++i) {
      const std::string p = "files[" + std::to_string(i) + "]";
      const auto& fo = cj::as_object(arr[i], p);
      ManifestFile f;
      f.path = cj::get_string(fo, "path", p);
      f.size = ranged_int(fo, "size", p, 0, std::numeric_limits<std::int64_t>::max(), 0);
      f.sha256 = cj::opt_string(fo, "sha256", p).value_or("");
      bool ok = !f.path.empty() && f.path.front() != '/' &&
                f.path.find('\\') == std::string::npos && f.path.find('\0') == std::string::npos;
      for (std::size_t start = 0; ok && start <= f.path.size();) {
        const auto end = std::min(f.path.find('/', start), f.path.size());
        const auto seg = std::string_view(f.path).substr(start, end - start);
        ok = !seg.empty() && seg != "." && seg != "..";
        start = end + 1;
      }
      if (!ok) {
        throw core::ErrorException(core::invalid(
            "protocol.bad_field",
            p + ".path \"" + f.path + "\" is not a relative path inside the model", p + ".path"));
      }
      m.files.push_back(std::move(f));
    }
    return m;
  });
}

core::Result<RegisterRequest> parse_register_request(std::string_view text) {
  return cj::capture([&] {
    const auto v = parse_text(text, "register request");
    const auto& o = cj::as_object(v, "");
    cj::reject_unknown(o, {"join_token", "name", "address", "api_port", "inventory"}, "");
    RegisterRequest r;
    r.join_token = cj::get_string(o, "join_token", "");
    r.name = cj::get_string(o, "name", "");
    r.address = cj::opt_string(o, "address", "").value_or("");
    r.api_port = static_cast<std::uint16_t>(ranged_int(o, "api_port", "", 0, 65535, 0));
    r.inventory_json = inventory_text(o, "");
    return r;
  });
}

core::Result<NodeIdentity> parse_node_identity(std::string_view text) {
  return cj::capture([&] {
    const auto v = parse_text(text, "node identity");
    const auto& o = cj::as_object(v, "");
    NodeIdentity id;
    id.node_id = cj::get_string(o, "node_id", "");
    id.node_token = cj::get_string(o, "node_token", "");
    if (id.node_id.empty() || id.node_token.empty()) {
      throw core::ErrorException(
          core::invalid("protocol.empty_identity", "node_id and node_token must not be empty"));
    }
    return id;
  });
}

core::Result<HeartbeatRequest> parse_heartbeat_request(std::string_view text) {
  return cj::capture([&] {
    const auto v = parse_text(text, "heartbeat");
    const auto& o = cj::as_object(v, "");
    cj::reject_unknown(o, {"node_id", "inventory", "instances"}, "");
    HeartbeatRequest r;
    r.node_id = cj::get_string(o, "node_id", "");
    r.inventory_json = inventory_text(o, "");
    if (const auto* arr = o.if_contains("instances"); arr != nullptr && !arr->is_null()) {
      const auto& a = cj::as_array(*arr, "instances");
      for (std::size_t i = 0; i < a.size(); ++i) {
        r.instances.push_back(parse_report(a[i], "instances[" + std::to_string(i) + "]"));
      }
    }
    return r;
  });
}

core::Result<HeartbeatResponse> parse_heartbeat_response(std::string_view text) {
  return cj::capture([&] {
    const auto v = parse_text(text, "heartbeat response");
    const auto& o = cj::as_object(v, "");
    HeartbeatResponse r;
    r.ok = cj::opt_bool(o, "ok", "").value_or(true);
    r.server_time = cj::opt_string(o, "server_time", "").value_or("");
    return r;
  });
}

core::Result<AssignmentSet> parse_assignment_set(std::string_view text) {
  return cj::capture([&] {
    const auto v = parse_text(text, "assignments");
    const auto& o = cj::as_object(v, "");
    AssignmentSet s;
    const auto gen = cj::get_int(o, "generation", "");
    if (gen < 0) {
      throw core::ErrorException(
          core::invalid("protocol.out_of_range", "generation must not be negative", "generation"));
    }
    s.generation = static_cast<std::uint64_t>(gen);
    if (const auto* arr = o.if_contains("instances"); arr != nullptr && !arr->is_null()) {
      const auto& a = cj::as_array(*arr, "instances");
      for (std::size_t i = 0; i < a.size(); ++i) {
        s.instances.push_back(parse_assignment(a[i], "instances[" + std::to_string(i) + "]"));
      }
    }
    return s;
  });
}

InstanceReport to_report(const InstanceStatus& status) {
  InstanceReport r;
  r.id = status.id;
  r.state = std::string(to_string(status.state));
  r.pid = status.pid;
  r.ports = status.ports;
  r.restarts = status.restarts;
  r.reason = status.reason;
  r.last_log_lines = status.last_log_lines;
  r.adopted = status.adopted;
  return r;
}

core::Result<InstanceSpec> to_spec(const Assignment& a,
                                   const std::map<std::string, EngineCommand>& engines) {
  const auto it = engines.find(a.engine);
  if (it == engines.end()) {
    std::vector<std::string> names;
    for (const auto& [name, _] : engines) names.push_back(name);
    std::string msg = "instance " + a.id + " asks for engine \"" + a.engine +
                      "\", which this agent has no [engines." + a.engine + "] command for";
    if (const auto near = core::closest(a.engine, names); !near.empty()) {
      msg += " (did you mean " + near + "?)";
    }
    msg += "; configure it in the agent's config file";
    return core::invalid("agent.unknown_engine", msg, "engine");
  }
  if (it->second.command.empty()) {
    return core::invalid("agent.empty_engine_command",
                         "[engines." + a.engine + "] command is empty; set the engine's executable",
                         "engine");
  }
  InstanceSpec spec;
  spec.id = a.id;
  spec.argv = it->second.command;
  spec.argv.insert(spec.argv.end(), a.argv.begin(), a.argv.end());
  std::map<std::string, std::string> env = it->second.env;
  for (const auto& [k, v] : a.env) env[k] = v;
  for (auto& [k, v] : env) spec.env.emplace_back(k, v);
  spec.ports = a.ports_needed;
  spec.health_path = a.health_path;
  spec.startup_timeout = std::chrono::seconds(a.startup_timeout_s);
  return spec;
}

std::optional<std::string> read_store_id(const std::filesystem::path& store_root) {
  auto text = cj::read_file(store_root / kStoreMarkerName, 4096);
  if (!text) return std::nullopt;
  auto id = std::string(core::trim(*text));
  if (id.empty()) return std::nullopt;
  return id;
}

std::filesystem::path identity_path(const std::filesystem::path& data_dir) {
  return data_dir / "agent" / "identity.json";
}

core::Result<std::optional<NodeIdentity>> load_identity(const std::filesystem::path& data_dir) {
  const auto path = identity_path(data_dir);
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::optional<NodeIdentity>{};
  auto text = cj::read_file(path, 1 << 20);
  if (!text) {
    return core::io_error(
        "agent.identity_unreadable",
        "cannot read the node identity " + path.string() + ": " + text.error().message);
  }
  auto id = parse_node_identity(*text);
  if (!id) {
    return core::io_error("agent.identity_unreadable",
                          "the node identity " + path.string() + " is damaged (" +
                              id.error().message +
                              "); remove it and restart the agent with --token to join again");
  }
  return std::optional<NodeIdentity>(*id);
}

core::Result<void> save_identity(const std::filesystem::path& data_dir, const NodeIdentity& id) {
  const auto path = identity_path(data_dir);
  const auto fail = [&](const std::string& what) -> core::Result<void> {
    return core::io_error("agent.identity_write_failed",
                          "cannot write the node identity " + path.string() + ": " + what +
                              " (check the data directory's permissions and free space)");
  };
  const std::string text = to_json(id) + "\n";
  if (auto w = core::write_file_atomic(path, text, 0600); !w) return fail(w.error().message);
  return {};
}

void forget_identity(const std::filesystem::path& data_dir) {
  std::error_code ec;
  std::filesystem::remove(identity_path(data_dir), ec);
}

}  // namespace openstation::agent
