#include "agent/instance_store.hpp"

#include "core/fs.hpp"

#include "core/json.hpp"

#include <fcntl.h>
#include <unistd.h>
#include <boost/json.hpp>

#include <cerrno>
#include <cstring>

namespace openstation::agent {
namespace json = boost::json;
namespace {

std::uint64_t to_u64(const std::string& text, int base, const std::string& path) {
  try {
    std::size_t used = 0;
    const auto v = std::stoull(text, &used, base);
    if (used == text.size()) return v;
  } catch (const std::exception&) {
  }
  throw core::ErrorException(
      core::parse_error("supervisor.state_unreadable", path + ": not a number: " + text, path));
}

}  // namespace

core::Result<std::vector<InstanceRecord>> InstanceStore::load() const {
  std::error_code ec;
  if (!std::filesystem::exists(file_, ec)) return std::vector<InstanceRecord>{};
  auto text = core::json::read_file(file_);
  if (!text) return text.error();
  auto parsed = core::json::capture([&] {
    const std::string where = file_.string();
    const auto doc = core::json::parse(*text, where);
    const auto& root = core::json::as_object(doc, "");
    std::vector<InstanceRecord> out;
    const auto it = root.find("instances");
    if (it == root.end()) return out;
    const auto& arr = core::json::as_array(it->value(), "instances");
    for (std::size_t i = 0; i < arr.size(); ++i) {
      const std::string path = "instances[" + std::to_string(i) + "]";
      const auto& o = core::json::as_object(arr[i], path);
      InstanceRecord r;
      r.id = core::json::get_string(o, "id", path);
      r.pid = static_cast<pid_t>(core::json::get_int(o, "pid", path));
      r.start_time =
          to_u64(core::json::get_string(o, "start_time", path), 10, path + ".start_time");
      r.spec_hash = to_u64(core::json::get_string(o, "spec_hash", path), 16, path + ".spec_hash");
      r.health_path = core::json::opt_string(o, "health_path", path).value_or("");
      r.log_file = core::json::opt_string(o, "log_file", path).value_or("");
      if (const auto p = o.find("ports"); p != o.end()) {
        for (const auto& v : core::json::as_array(p->value(), path + ".ports")) {
          r.ports.push_back(static_cast<std::uint16_t>(core::json::to_int(v, path + ".ports")));
        }
      }
      out.push_back(std::move(r));
    }
    return out;
  });
  if (!parsed) {
    auto e = parsed.error();
    e.code = "supervisor.state_unreadable";
    e.message = "cannot read the supervisor's state " + file_.string() + ": " + e.message +
                " (engines it lists may still run: check with `ps -eo pid,pgid,cmd`)";
    return e;
  }
  return parsed;
}

core::Result<void> InstanceStore::save(const std::vector<InstanceRecord>& records) const {
  json::array arr;
  for (const auto& r : records) {
    json::array ports;
    for (auto p : r.ports) ports.emplace_back(p);
    char hash[17];
    std::snprintf(hash, sizeof hash, "%016llx", static_cast<unsigned long long>(r.spec_hash));
    arr.emplace_back(json::object{{"id", r.id},
                                  {"pid", r.pid},
                                  {"start_time", std::to_string(r.start_time)},
                                  {"ports", std::move(ports)},
                                  {"spec_hash", hash},
                                  {"health_path", r.health_path},
                                  {"log_file", r.log_file.string()}});
  }
  const std::string text =
      json::serialize(json::object{{"version", 1}, {"instances", std::move(arr)}}) + "\n";
  const auto fail = [&](const std::string& what) -> core::Result<void> {
    return core::io_error("supervisor.state_write_failed",
                          "cannot write the supervisor's state " + file_.string() + ": " + what +
                              " (check free space and permissions of the data directory)");
  };
  if (auto w = core::write_file_atomic(file_, text, 0600); !w) return fail(w.error().message);
  return {};
}

}  // namespace openstation::agent
