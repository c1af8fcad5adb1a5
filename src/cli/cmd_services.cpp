// openstation services deploy|list|show|scale|delete: services (a model served by N instances)
// through the management API.
#include "cli/client_command.hpp"
#include "cli/commands.hpp"
#include "cli/context.hpp"
#include "cli/instance_view.hpp"
#include "cli/rest_client.hpp"
#include "cli/table.hpp"

#include <CLI/CLI.hpp>
#include <boost/json.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <ostream>
#include <thread>

namespace openstation::cli {
namespace {

/// The flags of `openstation services deploy`.
struct DeployFlags {
  std::string name;
  std::string model;
  std::string engine;
  std::string engine_version;
  std::string args;
  std::vector<std::string> nodes;
  int replicas = 0;
  bool no_wait = false;
  double timeout_s = 600;
  double poll_s = 1;
};

const boost::json::array& instances_of(const boost::json::value& service) {
  static const boost::json::array kNone;
  const auto* o = service.if_object();
  const auto* inst = o ? o->if_contains("instances") : nullptr;
  return inst && inst->is_array() ? inst->get_array() : kNone;
}

int running_count(const boost::json::value& service) {
  int n = 0;
  for (const auto& i : instances_of(service)) n += str_field(i, "state") == "running" ? 1 : 0;
  return n;
}

std::string replicas_text(const boost::json::value& s) {
  const auto* o = s.if_object();
  const std::string desired = cell(s, "replicas");
  if (!o || !o->contains("instances")) return "-/" + desired;
  return std::to_string(running_count(s)) + "/" + desired;
}

void print_service(const boost::json::value& s, std::ostream& out) {
  out << render_fields({{"Name", cell(s, "name")},
                        {"ID", cell(s, "id")},
                        {"Model", cell(s, "model")},
                        {"Engine", cell(s, "engine") == "-" ? "auto" : cell(s, "engine")},
                        {"Engine version", str_field(s, "engine_version")},
                        {"Extended parameters", str_field(s, "extra_args")},
                        {"Nodes", cell(s, "nodes") == "-" ? "automatic" : cell(s, "nodes")},
                        {"Instances", replicas_text(s) + " running"},
                        {"Created", str_field(s, "created_at")},
                        {"Updated", str_field(s, "updated_at")}});
  const auto& inst = instances_of(s);
  if (!inst.empty()) out << "\nInstances:\n" << instance_table(inst, false).render();
}

/// Polls the service until one instance runs, printing each instance's state changes and pending
/// reasons (to stderr with --json, stdout otherwise). Errors: "cli.deploy_timeout" (unavailable).
core::Result<boost::json::value> wait_running(const RestClient& api, Context& ctx,
                                              const std::string& id, const DeployFlags& flags) {
  std::ostream& progress = ctx.json ? *ctx.err : *ctx.out;
  const auto deadline =
      std::chrono::steady_clock::now() +
      std::chrono::milliseconds(static_cast<std::int64_t>(flags.timeout_s * 1000));
  const auto poll = std::chrono::milliseconds(
      std::max<std::int64_t>(10, static_cast<std::int64_t>(flags.poll_s * 1000)));
  std::map<std::string, std::string> seen;  // instance id → last progress text
  progress << "Waiting for an instance to run (up to " << flags.timeout_s
           << " s; --no-wait to return at once)...\n";
  for (;;) {
    auto s = api.get("/services/" + url_encode(id));
    if (!s) return s.error();
    for (const auto& i : instances_of(*s)) {
      const std::string text = instance_progress(i);
      auto& last = seen[str_field(i, "id")];
      if (text != last) {
        progress << text;
        last = text;
      }
    }
    if (running_count(*s) > 0) return *s;
    if (std::chrono::steady_clock::now() + poll > deadline) {
      return core::Error(core::Errc::unavailable, "cli.deploy_timeout",
                         "no instance of service " + id + " is running after " +
                             std::to_string(static_cast<int>(flags.timeout_s)) +
                             " s; the service stays deployed. See `openstation services show " +
                             id + "` and `openstation instances logs ID`",
                         "--timeout");
    }
    std::this_thread::sleep_for(poll);
  }
}

core::Result<void> deploy(const RestClient& api, Context& ctx, const DeployFlags& flags) {
  boost::json::object body{{"name", flags.name.empty() ? flags.model : flags.name},
                           {"model", flags.model}};
  if (!flags.engine.empty() && flags.engine != "auto") body["engine"] = flags.engine;
  if (!flags.engine_version.empty()) body["engine_version"] = flags.engine_version;
  if (!flags.args.empty()) body["extra_args"] = flags.args;
  if (!flags.nodes.empty()) {
    boost::json::array nodes;
    for (const auto& n : flags.nodes) nodes.emplace_back(n);
    body["nodes"] = std::move(nodes);
  }
  if (flags.replicas > 0) body["replicas"] = flags.replicas;
  auto created = api.post("/services", body);
  if (!created) return created.error();
  const std::string name = str_field(*created, "name");
  if (!ctx.json) {
    *ctx.out << "Service " << name << " created.\n";
    print_service(*created, *ctx.out);
  }
  if (flags.no_wait) {
    if (ctx.json) ctx.print_json(*created);
    return {};
  }
  auto running = wait_running(api, ctx, name.empty() ? str_field(*created, "id") : name, flags);
  if (!running) return running.error();
  if (print_json_if(ctx, *running)) return {};
  *ctx.out << "Service " << name << " is running.";
  for (const auto& i : instances_of(*running)) {
    const std::string endpoint = str_field(i, "endpoint");
    if (str_field(i, "state") == "running" && !endpoint.empty()) {
      *ctx.out << " Instance " << str_field(i, "id") << " serves at " << endpoint << ".";
      break;
    }
  }
  *ctx.out << "\n";
  return {};
}

core::Result<void> list_services(const RestClient& api, Context& ctx) {
  auto items = api.list_all("/services");
  if (!items) return items.error();
  if (print_json_if(ctx, boost::json::object{{"items", *items}})) return {};
  if (items->empty()) {
    *ctx.out << "No services. Deploy one: `openstation services deploy --model NAME`.\n";
    return {};
  }
  Table t({"NAME", "MODEL", "ENGINE", "RUNNING", "NODES", "CREATED"});
  t.align(3, Table::Align::right);
  for (const auto& s : *items) {
    t.add({cell(s, "name"), cell(s, "model"), cell(s, "engine") == "-" ? "auto" : cell(s, "engine"),
           replicas_text(s), cell(s, "nodes") == "-" ? "auto" : cell(s, "nodes"),
           human_time(str_field(s, "created_at"))});
  }
  *ctx.out << t.render();
  return {};
}

}  // namespace

void register_services_commands(CLI::App& root, Context& ctx) {
  CLI::App* services = root.add_subcommand(
      "services", "Services: a model served by one or more instances behind the gateway");
  services->require_subcommand(1);

  auto df = std::make_shared<DeployFlags>();
  CLI::App* dep = add_client_command(
      services, "deploy",
      "Deploy a model as a service and wait until an instance runs (state changes and the "
      "reasons an instance is pending are printed as they happen)",
      ctx, [df, &ctx](const RestClient& api) { return deploy(api, ctx, *df); });
  dep->add_option("--name", df->name,
                  "The service's name, which clients use as the OpenAI model id (default: the "
                  "model's name)");
  dep->add_option("--model", df->model, "A model of the library (name or id)")->required();
  dep->add_option("--engine", df->engine, "vllm, sglang, vllm-cpu, ... (default: automatic)");
  dep->add_option("--engine-version", df->engine_version, "The engine version to use");
  dep->add_option("--args", df->args,
                  "Extended parameters for the engine, e.g. \"--max-model-len 65536 "
                  "--gpu-memory-utilization 0.98\"");
  dep->add_option("--node", df->nodes,
                  "Run on this node (repeat for a multi-node instance; default: automatic "
                  "placement)");
  dep->add_option("--replicas", df->replicas, "Number of instances (default: 1)")
      ->check(CLI::PositiveNumber);
  dep->add_flag("--no-wait", df->no_wait, "Return once the service is created");
  dep->add_option("--timeout", df->timeout_s,
                  "Seconds to wait for a running instance (default: 600)")
      ->check(CLI::PositiveNumber);
  dep->add_option("--poll-interval", df->poll_s,
                  "Seconds between status checks while waiting (default: 1)")
      ->check(CLI::PositiveNumber);

  add_client_command(services, "list", "List the services with their running instance count", ctx,
                     [&ctx](const RestClient& api) { return list_services(api, ctx); });

  auto show_id = std::make_shared<std::string>();
  add_client_command(services, "show", "One service with its instances and their states", ctx,
                     [show_id, &ctx](const RestClient& api) -> core::Result<void> {
                       auto s = api.get("/services/" + url_encode(*show_id));
                       if (!s) return s.error();
                       if (print_json_if(ctx, *s)) return {};
                       print_service(*s, *ctx.out);
                       return {};
                     })
      ->add_option("service", *show_id, "Service name or id")
      ->required();

  struct ScaleFlags {
    std::string id;
    int replicas = -1;
    int replicas_flag = -1;
  };
  auto sf = std::make_shared<ScaleFlags>();
  CLI::App* scale = add_client_command(
      services, "scale", "Set a service's number of instances (instances removed drain first)", ctx,
      [sf, &ctx](const RestClient& api) -> core::Result<void> {
        const int n = sf->replicas_flag >= 0 ? sf->replicas_flag : sf->replicas;
        if (n < 0) {
          return core::invalid(
              "cli.missing_replicas",
              "how many instances? e.g. `openstation services scale " + sf->id + " 2`", "replicas");
        }
        auto s = api.patch("/services/" + url_encode(sf->id), boost::json::object{{"replicas", n}});
        if (!s) return s.error();
        if (print_json_if(ctx, *s)) return {};
        *ctx.out << "Service " << cell(*s, "name") << " scaled to " << n << " instance"
                 << (n == 1 ? "" : "s") << ".\n";
        return {};
      });
  scale->add_option("service", sf->id, "Service name or id")->required();
  scale->add_option("replicas", sf->replicas, "The number of instances")
      ->check(CLI::NonNegativeNumber);
  scale->add_option("--replicas", sf->replicas_flag, "The number of instances")
      ->check(CLI::NonNegativeNumber);

  auto delete_id = std::make_shared<std::string>();
  add_client_command(
      services, "delete", "Delete a service: its instances drain, then stop", ctx,
      [delete_id, &ctx](const RestClient& api) -> core::Result<void> {
        auto reply = api.del("/services/" + url_encode(*delete_id));
        if (!reply) return reply.error();
        if (print_json_if(ctx, reply->is_null() ? boost::json::value(
                                                      boost::json::object{{"deleted", *delete_id}})
                                                : *reply)) {
          return {};
        }
        *ctx.out << "Service " << *delete_id
                 << (reply->is_null() ? " deleted.\n"
                                      : " is being deleted: its instances drain, then stop.\n");
        return {};
      })
      ->add_option("service", *delete_id, "Service name or id")
      ->required();
}

}  // namespace openstation::cli
