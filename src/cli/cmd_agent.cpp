#include "agent/agent_api.hpp"
#include "agent/daemon.hpp"
#include "agent/inventory.hpp"
#include "agent/inventory_json.hpp"
#include "cli/commands.hpp"
#include "cli/context.hpp"
#include "cli/signals.hpp"
#include "config/load.hpp"
#include "core/paths.hpp"

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <boost/json.hpp>

#include <pthread.h>
#include <signal.h>

#include <memory>
#include <mutex>
#include <ostream>
#include <thread>

namespace openstation::cli {
namespace {

/// The flags of `openstation agent inventory`.
struct InventoryFlags {
  std::string gpu_inventory;
  std::string data_dir;
  std::string name;
  std::string probe = "auto";
  std::string nvml_library = "libnvidia-ml.so.1";
  std::string nvidia_smi = "nvidia-smi";
};

void run_inventory(const InventoryFlags& flags, Context& ctx) {
  agent::InventoryOptions options;
  options.name = flags.name;
  options.gpu_inventory = flags.gpu_inventory;
  options.probe = agent::parse_probe_choice(flags.probe).value_or(agent::ProbeChoice::automatic);
  options.nvml_library = flags.nvml_library;
  options.nvidia_smi = flags.nvidia_smi;
  options.host.data_dir =
      flags.data_dir.empty() ? core::default_data_dir() : std::filesystem::path(flags.data_dir);
  auto inventory = agent::collect_inventory(options);
  if (!inventory) {
    ctx.fail(inventory.error());
    return;
  }
  if (ctx.json) {
    ctx.print_json(agent::inventory_to_json(*inventory));
  } else {
    *ctx.out << agent::render_inventory(*inventory);
  }
}

/// The flags of `openstation agent` when it runs the daemon (no subcommand).
struct DaemonFlags {
  std::string server;
  std::string token;
  std::string server_fingerprint;
  std::string ca_cert;
  std::string config_file;
  std::string data_dir;
  std::string name;
  std::string address;
  std::string gpu_inventory;
  int port = -1;
  std::vector<std::string> set;
  int watch_wait_s = 10;
  bool stop_instances_on_exit = false;
};

core::Result<config::Config> load_agent_config(const DaemonFlags& flags) {
  config::LoadOptions options;
  if (!flags.config_file.empty()) options.config_file = flags.config_file;
  options.env = config::process_environment();
  options.is_root = config::running_as_root();
  if (!flags.data_dir.empty()) options.overrides.push_back("data_dir=" + flags.data_dir);
  if (!flags.server.empty()) options.overrides.push_back("agent.server_url=" + flags.server);
  if (!flags.token.empty()) options.overrides.push_back("agent.token=" + flags.token);
  if (!flags.server_fingerprint.empty()) {
    options.overrides.push_back("agent.server_fingerprint=" + flags.server_fingerprint);
  }
  if (!flags.ca_cert.empty()) options.overrides.push_back("agent.ca_cert=" + flags.ca_cert);
  if (!flags.name.empty()) options.overrides.push_back("agent.name=" + flags.name);
  if (!flags.address.empty()) options.overrides.push_back("agent.address=" + flags.address);
  if (!flags.gpu_inventory.empty()) {
    options.overrides.push_back("agent.gpu_inventory=" + flags.gpu_inventory);
  }
  if (flags.port >= 0) options.overrides.push_back("agent.port=" + std::to_string(flags.port));
  options.overrides.insert(options.overrides.end(), flags.set.begin(), flags.set.end());
  return config::load_config(options);
}

void run_daemon(const DaemonFlags& flags, Context& ctx) {
  auto loaded = load_agent_config(flags);
  if (!loaded) {
    ctx.fail(loaded.error());
    return;
  }
  const config::Config& c = *loaded;
  const config::AgentConfig& a = c.agent;
  if (a.server_url.empty()) {
    ctx.fail(core::invalid("agent.no_server",
                           "the agent needs its server: pass --server https://HOST:32206 (or set "
                           "agent.server_url in the config file)",
                           "server"));
    return;
  }

  agent::InventoryOptions inv;
  inv.name = a.name;
  inv.gpu_inventory = a.gpu_inventory;
  inv.host.data_dir = c.data_dir;
  auto first = agent::collect_inventory(inv);
  if (!first) {
    ctx.fail(first.error());
    return;
  }
  std::mutex inventory_mutex;
  std::string last_inventory = boost::json::serialize(agent::inventory_to_json(*first));
  const std::string node_name = a.name.empty() ? first->node.name : a.name;
  auto inventory = [&]() -> std::string {
    std::lock_guard lock(inventory_mutex);
    if (auto now = agent::collect_inventory(inv)) {
      last_inventory = boost::json::serialize(agent::inventory_to_json(*now));
    }
    return last_inventory;
  };

  agent::SupervisorOptions so;
  so.data_dir = c.data_dir;
  so.ports = {a.engine_ports.first, a.engine_ports.last};
  so.logs.max_bytes = a.log_max_bytes;
  so.logs.keep = a.log_files;
  so.policy.backoff_base = a.restart_backoff_base;
  so.policy.backoff_max = a.restart_backoff_max;
  so.policy.crash_loop_threshold = a.crash_loop_threshold;
  so.policy.crash_loop_window = a.crash_loop_window;
  so.policy.stop_grace = a.stop_grace;

  agent::DaemonOptions dopt;
  dopt.data_dir = c.data_dir;
  dopt.server_url = a.server_url;
  dopt.tls.pinned_sha256 = a.server_fingerprint;
  dopt.tls.ca_file = a.ca_cert;
  dopt.join_token = a.token;
  dopt.name = node_name;
  dopt.address = a.address;
  dopt.api_port = a.port;
  dopt.heartbeat_interval = a.heartbeat_interval;
  dopt.watch_wait = std::chrono::seconds(flags.watch_wait_s);
  dopt.loop_interval = std::chrono::milliseconds(500);
  for (const auto& [name, engine] : c.engines) {
    dopt.engines[name] = agent::EngineCommand{engine.command, engine.env};
  }

  // Signals are blocked before any thread starts, so only sigwait below receives them.
  SignalBlock signals;
  core::SystemClock clock;
  agent::PosixProcessLauncher launcher;
  agent::HttpReadinessProbe probe;
  agent::SystemPortChecker checker;
  agent::Supervisor supervisor(so, launcher, probe, checker, clock);
  // Node sync: models on the server's model store are pulled into <data_dir>/models/ before
  // their instances start. The token is the daemon's current one (it may register again).
  agent::Daemon* daemon_ptr = nullptr;
  agent::ServerModelSource model_source(dopt.server_url, dopt.tls, [&daemon_ptr] {
    return daemon_ptr != nullptr ? daemon_ptr->node_token() : std::string();
  });
  agent::ModelSyncOptions sync_options;
  sync_options.data_dir = c.data_dir;
  sync_options.always_pull = a.model_sync == "always";
  sync_options.max_bytes_per_second = a.model_sync_rate;
  agent::ModelSync model_sync(sync_options, model_source, clock);
  agent::Daemon daemon(dopt, supervisor, inventory, clock, &model_sync);
  daemon_ptr = &daemon;
  auto started = daemon.start();
  if (!started) {
    ctx.fail(started.error());
    return;
  }
  agent::AgentApiOptions api_options;
  api_options.host = a.host;
  api_options.port = a.port;
  agent::AgentApi api(api_options, supervisor, [&daemon] { return daemon.node_token(); });
  if (auto r = api.start(); !r) {
    ctx.fail(r.error());
    return;
  }
  spdlog::info("agent {} ({}) serving its API on {}:{}; server {}", node_name,
               daemon.identity()->node_id, a.host, api.port(), a.server_url);
  daemon.run();
  const int sig = signals.wait();
  spdlog::info("{} received; stopping the agent", sig == SIGINT ? "SIGINT" : "SIGTERM");
  api.stop();
  daemon.stop();
  model_sync.stop();
  if (flags.stop_instances_on_exit) {
    (void)supervisor.reconcile({});
    const auto deadline = std::chrono::steady_clock::now() + a.stop_grace + std::chrono::seconds(5);
    while (!supervisor.idle() && std::chrono::steady_clock::now() < deadline) {
      supervisor.tick();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  } else {
    spdlog::info("engine instances keep running; the next agent start adopts them");
  }
}

}  // namespace

void register_agent_commands(CLI::App& root, Context& ctx) {
  CLI::App* agent = root.add_subcommand(
      "agent",
      "The node agent: `openstation agent --server URL --token T` runs it (joins the server, runs "
      "the engine instances assigned to this node, serves the agent API on 32208); "
      "`agent inventory` prints this machine's inventory");
  agent->require_subcommand(0, 1);
  auto dflags = std::make_shared<DaemonFlags>();
  agent->add_option("--server", dflags->server, "The server's URL, https://HOST:32206");
  agent->add_option("--server-fingerprint", dflags->server_fingerprint,
                    "Trust the https server whose certificate has this fingerprint (sha256:AB:...; "
                    "`openstation server` prints it)");
  agent->add_option("--ca-cert", dflags->ca_cert,
                    "Trust the https server through this CA file (PEM) instead");
  agent->add_option("--token", dflags->token,
                    "The cluster's join token (needed until this node has an identity)");
  agent->add_option("--config", dflags->config_file, "The config file");
  agent->add_option("--data-dir", dflags->data_dir, "The data dir (identity, state, engine logs)");
  agent->add_option("--name", dflags->name, "The node's name (default: the host name)");
  agent->add_option("--address", dflags->address,
                    "The address the server reaches this node on (default: as seen by the server)");
  agent->add_option("--port", dflags->port, "The agent API's port (default 32208; 0: any)");
  agent->add_option("--gpu-inventory", dflags->gpu_inventory,
                    "Read the GPUs from this node JSON file instead of the hardware");
  agent->add_option("--set", dflags->set, "Override a setting: dotted.key=value (repeatable)");
  agent
      ->add_option("--watch-wait", dflags->watch_wait_s,
                   "Seconds each long poll of the assignments waits (also bounds shutdown)")
      ->check(CLI::Range(0, 300))
      ->capture_default_str();
  agent->add_flag("--stop-instances-on-exit", dflags->stop_instances_on_exit,
                  "Stop the engine instances on SIGTERM/SIGINT instead of leaving them running "
                  "for the next agent to adopt");

  auto flags = std::make_shared<InventoryFlags>();
  CLI::App* inventory = agent->add_subcommand(
      "inventory",
      "Print this machine's GPUs (with the processes holding their memory), CPU, memory, free "
      "disk, OS and IP addresses. A machine without GPUs reports none; that is not an error.");
  inventory->add_flag("--json", ctx.json,
                      "JSON: {\"node\": <a node file, usable as --node>, \"host\", \"probe\", "
                      "\"warnings\"}");
  inventory->add_option("--gpu-inventory", flags->gpu_inventory,
                        "Read the GPUs from this node JSON file instead of the hardware");
  inventory->add_option("--data-dir", flags->data_dir,
                        "The directory whose free disk space is reported (default: the data dir)");
  inventory->add_option("--name", flags->name, "The node's name (default: the host name)");
  inventory
      ->add_option("--probe", flags->probe,
                   "How to read GPUs: auto (NVML, then nvidia-smi), nvml, nvidia-smi, file, none")
      ->check(CLI::IsMember({"auto", "nvml", "nvidia-smi", "file", "none"}))
      ->capture_default_str();
  inventory
      ->add_option("--nvml-library", flags->nvml_library, "The NVML library to load with dlopen")
      ->capture_default_str();
  inventory->add_option("--nvidia-smi", flags->nvidia_smi, "The nvidia-smi executable")
      ->capture_default_str();
  inventory->callback([flags, &ctx] { run_inventory(*flags, ctx); });
  agent->callback([agent, dflags, &ctx] {
    if (agent->get_subcommands().empty()) run_daemon(*dflags, ctx);
  });
}

}  // namespace openstation::cli
