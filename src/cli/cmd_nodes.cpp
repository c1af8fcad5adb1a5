// openstation nodes [list|show|remove] and openstation join-token create: the cluster's nodes
// through the management API.
#include "cli/client_command.hpp"
#include "cli/commands.hpp"
#include "cli/context.hpp"
#include "cli/rest_client.hpp"
#include "cli/table.hpp"

#include <CLI/CLI.hpp>
#include <boost/json.hpp>

#include <cstdio>
#include <map>
#include <memory>
#include <ostream>

namespace openstation::cli {
namespace {

/// "2× NVIDIA A100-SXM4-80GB" (per distinct name), "-" without GPUs.
std::string gpu_summary(const boost::json::value& node) {
  const auto* o = node.if_object();
  const auto* gpus = o ? o->if_contains("gpus") : nullptr;
  if (!gpus || !gpus->is_array() || gpus->get_array().empty()) return "-";
  std::vector<std::pair<std::string, int>> counts;
  for (const auto& g : gpus->get_array()) {
    std::string name = str_field(g, "name");
    if (name.empty()) name = "GPU";
    bool found = false;
    for (auto& [n, c] : counts) {
      if (n == name) {
        ++c;
        found = true;
      }
    }
    if (!found) counts.emplace_back(name, 1);
  }
  std::string out;
  for (const auto& [name, count] : counts) {
    if (!out.empty()) out += ", ";
    out += std::to_string(count) + "× " + name;
  }
  return out;
}

/// "used / total" GPU memory over all GPUs of a node.
std::string gpu_memory(const boost::json::value& node) {
  const auto* o = node.if_object();
  const auto* gpus = o ? o->if_contains("gpus") : nullptr;
  if (!gpus || !gpus->is_array() || gpus->get_array().empty()) return "-";
  std::int64_t used = 0, total = 0;
  for (const auto& g : gpus->get_array()) {
    used += int_field(g, "memory_used_mib");
    total += int_field(g, "memory_total_mib");
  }
  return human_mib(used) + " / " + human_mib(total);
}

std::string status_text(const boost::json::value& node) {
  std::string s = cell(node, "status");
  const std::string reason = str_field(node, "status_reason");
  if (!reason.empty()) s += " (" + reason + ")";
  return s;
}

/// Labels as "k=v,k=v".
std::string labels_text(const boost::json::value& node) {
  const auto* o = node.if_object();
  const auto* labels = o ? o->if_contains("labels") : nullptr;
  if (!labels) return "";
  if (const auto* lo = labels->if_object()) {
    std::string out;
    for (const auto& [k, v] : *lo) {
      if (!out.empty()) out += ",";
      out += std::string(k) + "=" + (v.is_string() ? std::string(v.get_string()) : serialize(v));
    }
    return out;
  }
  return cell(node, "labels") == "-" ? "" : cell(node, "labels");
}

/// A field that may be an object (cpu, memory): compact JSON, a scalar as is.
std::string compact(const boost::json::value& v, std::string_view key) {
  const auto* o = v.if_object();
  const auto* f = o ? o->if_contains(key) : nullptr;
  if (!f || f->is_null()) return "";
  if (f->is_object() || f->is_array()) return serialize(*f);
  return cell(v, key);
}

const boost::json::value* sub(const boost::json::value& v, std::string_view key) {
  const auto* o = v.if_object();
  const auto* f = o ? o->if_contains(key) : nullptr;
  return f && f->is_object() ? f : nullptr;
}

/// "16 cores, Intel Xeon".
std::string cpu_text(const boost::json::value& n) {
  const auto* cpu = sub(n, "cpu");
  if (!cpu) return compact(n, "cpu");
  std::string out;
  if (const auto cores = int_field(*cpu, "cores", -1); cores >= 0) {
    out = std::to_string(cores) + " cores";
  }
  if (const auto model = str_field(*cpu, "model"); !model.empty()) {
    out += (out.empty() ? "" : ", ") + model;
  }
  return out.empty() ? compact(n, "cpu") : out;
}

/// "117.2 GiB available of 128.0 GiB".
std::string memory_text(const boost::json::value& n) {
  const auto* mem = sub(n, "memory");
  if (!mem) return compact(n, "memory");
  const auto total = int_field(*mem, "total_mib", -1);
  const auto available = int_field(*mem, "available_mib", -1);
  if (total < 0) return compact(n, "memory");
  if (available < 0) return human_mib(total);
  return human_mib(available) + " available of " + human_mib(total);
}

/// "900.5 GiB free in /var/lib/openstation".
std::string disk_text(const boost::json::value& n) {
  const auto* disk = sub(n, "disk");
  if (!disk) return compact(n, "disk");
  const auto& d = disk->get_object();
  const auto* free = d.if_contains("free_gib");
  if (!free || !free->is_number()) return compact(n, "disk");
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f GiB free", free->to_number<double>());
  std::string out = buf;
  if (const auto path = str_field(*disk, "path"); !path.empty()) out += " in " + path;
  return out;
}

core::Result<void> list_nodes(const RestClient& api, Context& ctx) {
  auto items = api.list_all("/nodes");
  if (!items) return items.error();
  if (print_json_if(ctx, boost::json::object{{"items", *items}})) return {};
  if (items->empty()) {
    *ctx.out << "No nodes. Add one: `openstation join-token create`, then run `openstation "
                "agent --server URL --token TOKEN` on it.\n";
    return {};
  }
  Table t({"NAME", "STATUS", "ADDRESS", "GPUS", "GPU MEMORY", "HEARTBEAT"});
  for (const auto& n : *items) {
    t.add({cell(n, "name"), status_text(n), cell(n, "address"), gpu_summary(n), gpu_memory(n),
           human_time(str_field(n, "last_heartbeat_at"))});
  }
  *ctx.out << t.render();
  return {};
}

core::Result<void> show_node(const RestClient& api, Context& ctx, const std::string& id) {
  auto node = api.get("/nodes/" + url_encode(id));
  if (!node) return node.error();
  if (print_json_if(ctx, *node)) return {};
  const auto& n = *node;
  *ctx.out << render_fields({{"Name", cell(n, "name")},
                             {"ID", cell(n, "id")},
                             {"Address", cell(n, "address")},
                             {"Status", status_text(n)},
                             {"Labels", labels_text(n)},
                             {"Last heartbeat", human_time(str_field(n, "last_heartbeat_at"))},
                             {"CPU", cpu_text(n)},
                             {"Memory", memory_text(n)},
                             {"Disk", disk_text(n)}});
  const auto* o = n.if_object();
  if (const auto* gpus = o ? o->if_contains("gpus") : nullptr; gpus && gpus->is_array()) {
    *ctx.out << "\nGPUs:\n";
    Table t({"INDEX", "NAME", "MEMORY USED", "MEMORY TOTAL"});
    t.align(0, Table::Align::right);
    t.align(2, Table::Align::right);
    t.align(3, Table::Align::right);
    for (const auto& g : gpus->get_array()) {
      t.add({cell(g, "index"), cell(g, "name"), human_mib(int_field(g, "memory_used_mib", -1)),
             human_mib(int_field(g, "memory_total_mib", -1))});
    }
    *ctx.out << (gpus->get_array().empty() ? "  none\n" : t.render());
  }
  if (const auto* inst = o ? o->if_contains("instances") : nullptr; inst && inst->is_array()) {
    *ctx.out << "\nInstances:\n";
    Table t({"ID", "SERVICE", "STATE", "PORT"});
    for (const auto& i : inst->get_array()) {
      t.add({cell(i, "id"), cell(i, "service"), cell(i, "state"), cell(i, "port")});
    }
    *ctx.out << (inst->get_array().empty() ? "  none\n" : t.render());
  }
  return {};
}

core::Result<void> remove_node(const RestClient& api, Context& ctx, const std::string& id) {
  auto reply = api.del("/nodes/" + url_encode(id));
  if (!reply) return reply.error();
  if (print_json_if(ctx, *reply)) return {};
  if (reply->is_null()) {
    *ctx.out << "Node " << id << " removed.\n";
  } else {
    *ctx.out << "Node " << id
             << " is being removed: its instances drain first (status: " << cell(*reply, "status")
             << ").\n";
  }
  return {};
}

}  // namespace

void register_nodes_commands(CLI::App& root, Context& ctx) {
  CLI::App* nodes = root.add_subcommand(
      "nodes", "The cluster's nodes: list (the default), show one, remove one (drains it)");
  run_without_subcommand(nodes, ctx,
                         [&ctx](const RestClient& api) { return list_nodes(api, ctx); });
  add_client_command(nodes, "list", "List the nodes with status, GPUs and last heartbeat", ctx,
                     [&ctx](const RestClient& api) { return list_nodes(api, ctx); });

  auto show_id = std::make_shared<std::string>();
  add_client_command(
      nodes, "show", "One node: inventory (GPUs, CPU, memory) and instances", ctx,
      [show_id, &ctx](const RestClient& api) { return show_node(api, ctx, *show_id); })
      ->add_option("node", *show_id, "Node name or id")
      ->required();

  auto remove_id = std::make_shared<std::string>();
  add_client_command(
      nodes, "remove", "Remove a node (admin): its instances drain and move elsewhere first", ctx,
      [remove_id, &ctx](const RestClient& api) { return remove_node(api, ctx, *remove_id); })
      ->add_option("node", *remove_id, "Node name or id")
      ->required();

  CLI::App* join = root.add_subcommand("join-token", "Tokens with which new nodes join (admin)");
  join->require_subcommand(1);
  auto ttl = std::make_shared<std::int64_t>(0);
  add_client_command(
      join, "create", "Create a join token for `openstation agent --server URL --token TOKEN`", ctx,
      [ttl, &ctx](const RestClient& api) -> core::Result<void> {
        boost::json::object body;
        if (*ttl > 0) body["ttl_seconds"] = *ttl;
        auto reply = api.post("/join-tokens", body);
        if (!reply) return reply.error();
        if (print_json_if(ctx, *reply)) return {};
        *ctx.out << "Join token (shown once): " << str_field(*reply, "token") << "\n";
        const std::string expires = str_field(*reply, "expires_at");
        if (!expires.empty()) {
          *ctx.out << "Expires " << human_time(expires) << " (" << expires << ").\n";
        }
        *ctx.out << "On the new node run:\n  openstation agent --server " << api.options().server
                 << " --token " << str_field(*reply, "token") << "\n";
        return {};
      })
      ->add_option("--ttl", *ttl, "Seconds the token stays valid (default: the server's)")
      ->check(CLI::PositiveNumber);
}

}  // namespace openstation::cli
