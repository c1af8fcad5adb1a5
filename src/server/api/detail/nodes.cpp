#include "server/api/detail/nodes.hpp"

#include "core/strings.hpp"
#include "server/agent_link.hpp"
#include "server/api/context.hpp"
#include "server/auth/token.hpp"

#include <boost/json.hpp>

namespace openstation::server::api_detail {
namespace json = boost::json;

namespace {

constexpr std::string_view kSystemLabelPrefix = "openstation.io/";

const json::object* member_object(const json::value& v, std::string_view key) {
  if (!v.is_object()) return nullptr;
  const auto* m = v.as_object().if_contains(key);
  return m != nullptr && m->is_object() ? &m->as_object() : nullptr;
}

json::value member_or_null(const json::object* o, std::string_view key) {
  if (o == nullptr) return nullptr;
  const auto* m = o->if_contains(key);
  return m != nullptr ? *m : json::value(nullptr);
}

std::int64_t int_member(const json::object& o, std::string_view key) {
  const auto* m = o.if_contains(key);
  if (m == nullptr) return 0;
  if (m->is_int64()) return m->as_int64();
  if (m->is_uint64()) return static_cast<std::int64_t>(m->as_uint64());
  if (m->is_double()) return static_cast<std::int64_t>(m->as_double());
  return 0;
}

}  // namespace

core::Result<store::Node> find_node(store::Store& s, std::string_view id_or_name,
                                    std::string_view field) {
  if (!id_or_name.empty()) {
    if (auto n = s.nodes().get(id_or_name); n || n.error().code != "store.not_found") return n;
    if (auto n = s.nodes().get_by_name(id_or_name); n || n.error().code != "store.not_found") {
      return n;
    }
  }
  std::vector<std::string> names;
  if (auto all = s.nodes().list({}, store::PageRequest{0, {}})) {
    for (const auto& n : all->items) names.push_back(n.name);
  }
  const auto near = core::closest(id_or_name, names);
  return core::not_found("node.not_found",
                         "There is no node '" + std::string(id_or_name) + "'" +
                             (near.empty() ? "" : " (did you mean '" + near + "'?)") +
                             "; 'openstation nodes' lists the nodes.",
                         std::string(field));
}

std::optional<json::value> node_inventory(const store::Node& n) {
  if (n.inventory_json.empty()) return std::nullopt;
  boost::system::error_code ec;
  auto v = json::parse(n.inventory_json, ec);
  if (ec || !v.is_object()) return std::nullopt;
  return v;
}

json::object node_json(const store::Node& n) {
  json::object labels;
  for (const auto& [k, v] : n.labels) {
    if (!core::starts_with(k, kSystemLabelPrefix)) labels[k] = v;
  }
  json::object o{{"id", n.id},
                 {"name", n.name},
                 {"address", n.address},
                 {"agent_port", agent_port(n)},
                 {"status", std::string(store::to_string(n.status))},
                 {"status_reason", n.status_reason},
                 {"labels", std::move(labels)},
                 {"last_heartbeat_at", format_time_or_null(n.last_heartbeat_at)},
                 {"created_at", format_time(n.created_at)},
                 {"updated_at", format_time(n.updated_at)}};
  const auto inv = node_inventory(n);
  const json::object* node = inv ? member_object(*inv, "node") : nullptr;
  const json::object* host = inv ? member_object(*inv, "host") : nullptr;
  o["type"] = node != nullptr ? member_or_null(node, "type") : json::value(nullptr);
  json::array gpus;
  if (node != nullptr) {
    if (const auto* g = node->if_contains("gpus"); g != nullptr && g->is_array()) {
      for (const auto& gv : g->as_array()) {
        if (!gv.is_object()) continue;
        json::object gpu = gv.as_object();
        const auto total = int_member(gpu, "memory_total_mib");
        const auto used = int_member(gpu, "memory_used_mib");
        gpu["memory_free_mib"] = std::max<std::int64_t>(total - used, 0);
        if (!gpu.contains("health")) gpu["health"] = "ok";
        gpus.push_back(std::move(gpu));
      }
    }
  }
  o["gpus"] = std::move(gpus);
  if (inv) {
    o["cpu"] = json::object{{"cores", host != nullptr ? member_or_null(host, "cpu_cores")
                                                      : member_or_null(node, "cpu_cores")},
                            {"model", member_or_null(host, "cpu_model")}};
    o["memory"] =
        json::object{{"total_mib", host != nullptr ? member_or_null(host, "memory_total_mib")
                                                   : member_or_null(node, "memory_mib")},
                     {"available_mib", member_or_null(host, "memory_available_mib")}};
    o["disk"] = json::object{{"free_gib", member_or_null(node, "disk_free_gib")},
                             {"path", member_or_null(host, "disk_path")}};
    o["os"] = json::object{{"name", member_or_null(host, "os")},
                           {"kernel", member_or_null(host, "kernel")},
                           {"arch", member_or_null(host, "arch")}};
  } else {
    o["cpu"] = nullptr;
    o["memory"] = nullptr;
    o["disk"] = nullptr;
    o["os"] = nullptr;
  }
  return o;
}

core::Result<model::NodeSpec> node_spec(const store::Node& n) {
  const auto inv = node_inventory(n);
  const json::object* node = inv ? member_object(*inv, "node") : nullptr;
  if (node == nullptr) {
    return core::Error(core::Errc::conflict, "node.no_inventory",
                       "node " + n.name +
                           " has not reported its hardware yet; wait for its agent's first "
                           "heartbeat (every 5 s) and check that the agent runs",
                       "nodes");
  }
  json::object copy = *node;
  copy["name"] = n.name;
  if (!n.address.empty()) copy["address"] = n.address;
  auto spec = model::parse_node_json(json::serialize(copy), "node " + n.name + " inventory");
  if (!spec) return spec.error();
  return spec;
}

core::Result<store::Node> node_of_token(store::Store& s, const http::Request& req) {
  const auto bad_node_token = [] {
    return core::Error(core::Errc::unauthorized, "node.bad_token",
                       "this node token is not known to the server (the node was removed, or the "
                       "server's database was replaced); the agent registers again with its join "
                       "token (--token)");
  };
  const auto token = auth::bearer_token(req.headers.get_or("Authorization", ""));
  if (!token || !auth::looks_like_token(*token, auth::TokenKind::node)) return bad_node_token();
  store::NodeFilter f;
  f.token_hash = auth::hash_token(*token);
  auto nodes = s.nodes().list(f, store::PageRequest{1, {}});
  if (!nodes) return nodes.error();
  if (nodes->items.empty()) return bad_node_token();
  return nodes->items.front();
}

}  // namespace openstation::server::api_detail
