// openstation instances list|add|remove|check|logs: the instances of services through the
// management API.
#include "cli/client_command.hpp"
#include "cli/commands.hpp"
#include "cli/context.hpp"
#include "cli/instance_view.hpp"
#include "cli/rest_client.hpp"
#include "cli/table.hpp"

#include <CLI/CLI.hpp>
#include <boost/json.hpp>

#include <memory>
#include <ostream>

namespace openstation::cli {
namespace {

core::Result<void> list_instances(const RestClient& api, Context& ctx, const std::string& service) {
  std::string path = "/instances";
  if (!service.empty()) path += "?service=" + url_encode(service);
  auto items = api.list_all(path);
  if (!items) return items.error();
  if (print_json_if(ctx, boost::json::object{{"items", *items}})) return {};
  if (items->empty()) {
    *ctx.out << (service.empty() ? "No instances.\n" : "No instances of " + service + ".\n");
    return {};
  }
  *ctx.out << instance_table(*items).render();
  return {};
}

/// The flags of `openstation instances logs`.
struct LogsFlags {
  std::string id;
  int tail = -1;
  bool follow = false;
};

core::Result<void> logs(const RestClient& api, Context& ctx, const LogsFlags& flags) {
  std::string path = "/instances/" + url_encode(flags.id) + "/logs";
  std::string query;
  if (flags.tail >= 0) query += "tail=" + std::to_string(flags.tail);
  if (flags.follow) query += std::string(query.empty() ? "" : "&") + "follow=1";
  if (!query.empty()) path += "?" + query;
  // Following waits as long as the server keeps the stream open; a tail alone ends with it.
  const auto idle = flags.follow ? std::chrono::milliseconds(0) : api.options().timeout;
  return api.stream(
      path,
      [&ctx](std::string_view data) {
        ctx.out->write(data.data(), static_cast<std::streamsize>(data.size()));
        ctx.out->flush();
        return static_cast<bool>(*ctx.out);
      },
      idle);
}

}  // namespace

void register_instances_commands(CLI::App& root, Context& ctx) {
  CLI::App* instances = root.add_subcommand(
      "instances", "Instances of services: list, add on chosen nodes, remove (drain), check, logs");
  instances->require_subcommand(1);

  auto service = std::make_shared<std::string>();
  add_client_command(
      instances, "list", "List instances with state, nodes and pending reasons", ctx,
      [service, &ctx](const RestClient& api) { return list_instances(api, ctx, *service); })
      ->add_option("--service", *service, "Only this service's instances (name or id)");

  struct AddFlags {
    std::string service;
    std::vector<std::string> nodes;
  };
  auto af = std::make_shared<AddFlags>();
  CLI::App* add = add_client_command(
      instances, "add", "Add an instance to a service, on the nodes you choose", ctx,
      [af, &ctx](const RestClient& api) -> core::Result<void> {
        boost::json::object body;
        if (!af->nodes.empty()) {
          boost::json::array nodes;
          for (const auto& n : af->nodes) nodes.emplace_back(n);
          body["nodes"] = std::move(nodes);
        }
        auto inst = api.post("/services/" + url_encode(af->service) + "/instances", body);
        if (!inst) return inst.error();
        if (print_json_if(ctx, *inst)) return {};
        *ctx.out << "Instance " << cell(*inst, "id") << " added to " << af->service << ".\n"
                 << instance_progress(*inst);
        return {};
      });
  add->add_option("service", af->service, "Service name or id")->required();
  add->add_option("--node", af->nodes,
                  "A node for the instance (repeat for a multi-node instance; default: "
                  "automatic placement)");

  auto remove_id = std::make_shared<std::string>();
  add_client_command(
      instances, "remove",
      "Remove an instance: the gateway stops sending it requests, in-flight requests finish, then "
      "it stops",
      ctx,
      [remove_id, &ctx](const RestClient& api) -> core::Result<void> {
        auto reply = api.del("/instances/" + url_encode(*remove_id));
        if (!reply) return reply.error();
        if (print_json_if(ctx, reply->is_null() ? boost::json::value(
                                                      boost::json::object{{"deleted", *remove_id}})
                                                : *reply)) {
          return {};
        }
        *ctx.out << "Instance " << *remove_id
                 << (reply->is_null() ? " removed.\n" : " is draining, then stops.\n");
        return {};
      })
      ->add_option("instance", *remove_id, "Instance id")
      ->required();

  auto check_id = std::make_shared<std::string>();
  add_client_command(
      instances, "check", "Health-check an instance now (exit code 1 when it is not healthy)", ctx,
      [check_id, &ctx](const RestClient& api) -> core::Result<void> {
        auto r = api.post("/instances/" + url_encode(*check_id) + "/check");
        if (!r) return r.error();
        const bool healthy = bool_field(*r, "healthy");
        if (!print_json_if(ctx, *r)) {
          *ctx.out << "Instance " << *check_id << (healthy ? " is healthy" : " is NOT healthy");
          std::string detail;
          if (int_field(*r, "status", 0) > 0) detail += "HTTP " + cell(*r, "status");
          if (cell(*r, "latency_ms") != "-") {
            detail += (detail.empty() ? "" : ", ") + cell(*r, "latency_ms") + " ms";
          }
          if (!detail.empty()) *ctx.out << " (" << detail << ")";
          const std::string message = str_field(*r, "message");
          if (!message.empty()) *ctx.out << ": " << message;
          *ctx.out << "\n";
        }
        if (!healthy) ctx.exit_code = kExitFailure;
        return {};
      })
      ->add_option("instance", *check_id, "Instance id")
      ->required();

  auto lf = std::make_shared<LogsFlags>();
  CLI::App* log_cmd = add_client_command(
      instances, "logs", "Print an instance's engine log; -f keeps printing as it grows", ctx,
      [lf, &ctx](const RestClient& api) { return logs(api, ctx, *lf); });
  log_cmd->add_option("instance", lf->id, "Instance id")->required();
  log_cmd->add_option("--tail,-n", lf->tail, "Only the last N lines")
      ->check(CLI::NonNegativeNumber);
  log_cmd->add_flag("--follow,-f", lf->follow, "Keep printing new lines until interrupted");
}

}  // namespace openstation::cli
