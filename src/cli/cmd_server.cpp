// `openstation server` (the control plane) and `openstation start` (the all-in-one process: the
// control plane plus a local agent; the gateway joins it with issue [5]).
#include "agent/agent_api.hpp"
#include "agent/daemon.hpp"
#include "agent/host_probe.hpp"
#include "agent/inventory.hpp"
#include "agent/inventory_json.hpp"
#include "agent/process_launcher.hpp"
#include "agent/protocol.hpp"
#include "agent/readiness.hpp"
#include "cli/commands.hpp"
#include "cli/context.hpp"
#include "cli/signals.hpp"
#include "config/load.hpp"
#include "gateway/call_log_writer.hpp"
#include "gateway/gateway.hpp"
#include "gateway/route_table.hpp"
#include "gateway/store_source.hpp"
#include "server/api/context.hpp"
#include "server/app.hpp"
#include "server/assignments.hpp"
#include "server/auth/token.hpp"
#include "server/reconcile_plan.hpp"

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <boost/json/serialize.hpp>

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <vector>

namespace openstation::cli {
namespace {

/// The flags of `server` and `start` (the agent ones only on `start`).
struct ServerFlags {
  std::string config_file;
  std::string data_dir;
  std::string database;
  std::string gpu_inventory;
  std::vector<std::string> set;
  int port = -1;
  int gateway_port = -1;
  int agent_port = -1;
  bool no_tls = false;
};

core::Result<config::Config> load_server_config(const ServerFlags& flags) {
  config::LoadOptions options;
  if (!flags.config_file.empty()) options.config_file = flags.config_file;
  options.env = config::process_environment();
  options.is_root = config::running_as_root();
  auto& o = options.overrides;
  if (!flags.data_dir.empty()) o.push_back("data_dir=" + flags.data_dir);
  if (flags.port >= 0) o.push_back("server.port=" + std::to_string(flags.port));
  if (flags.gateway_port >= 0) o.push_back("gateway.port=" + std::to_string(flags.gateway_port));
  if (flags.agent_port >= 0) o.push_back("agent.port=" + std::to_string(flags.agent_port));
  if (!flags.database.empty()) o.push_back("server.database=" + flags.database);
  if (flags.no_tls) o.push_back("server.tls=false");
  if (!flags.gpu_inventory.empty()) o.push_back("agent.gpu_inventory=" + flags.gpu_inventory);
  o.insert(o.end(), flags.set.begin(), flags.set.end());
  return config::load_config(options);
}

/// A join token for the local agent, written straight into the store (no admin session needed):
/// only when the agent has no identity yet, or the store does not know its node (a new or
/// replaced database). Valid for ten minutes; "" when none is needed.
core::Result<std::string> local_join_token(server::ServerApp& app) {
  const auto& data_dir = app.config().data_dir;
  auto identity = agent::load_identity(data_dir);
  if (!identity) return identity.error();
  if (*identity) {
    auto node = app.store().nodes().get((*identity)->node_id);
    if (node) return std::string();
    if (node.error().code != "store.not_found") return node.error();
    spdlog::warn("the store does not know this machine's node {}; the local agent joins again",
                 (*identity)->node_id);
  }
  const std::string token = server::auth::generate_token(server::auth::TokenKind::join);
  auto written = app.store().transaction([&](store::Store& tx) -> core::Result<void> {
    store::JoinToken t;
    t.token_hash = server::auth::hash_token(token);
    t.created_at = app.api().clock().now();
    t.expires_at = t.created_at + std::chrono::minutes(10);
    auto created = tx.join_tokens().create(t);
    if (!created) return created.error();
    return server::ApiContext::audit_in(tx, "system:start", "join_token.create", "join_token",
                                        created->id, {{"purpose", "the local agent"}});
  });
  if (!written) return written.error();
  return token;
}

/// The agent half of `openstation start`: the same pieces as `openstation agent`, pointed at the
/// local server (over HTTPS, trusting exactly the server's own certificate by its fingerprint).
/// Its identity and instance state live in the shared data dir, so a restart adopts the engine
/// processes the previous run left.
class LocalAgent {
 public:
  LocalAgent(const config::Config& c, server::ServerApp& app) : config_(c), app_(app) {}
  ~LocalAgent() { stop(); }
  LocalAgent(const LocalAgent&) = delete;
  LocalAgent& operator=(const LocalAgent&) = delete;

  core::Result<void> start() {
    const config::AgentConfig& a = config_.agent;
    inventory_options_.name = a.name;
    inventory_options_.gpu_inventory = a.gpu_inventory;
    inventory_options_.host.data_dir = config_.data_dir;
    auto first = agent::collect_inventory(inventory_options_);
    if (!first) return first.error();
    last_inventory_ = boost::json::serialize(agent::inventory_to_json(*first));
    node_name_ = a.name.empty() ? first->node.name : a.name;

    agent::SupervisorOptions so;
    so.data_dir = config_.data_dir;
    so.ports = {a.engine_ports.first, a.engine_ports.last};
    so.logs.max_bytes = a.log_max_bytes;
    so.logs.keep = a.log_files;
    so.policy.backoff_base = a.restart_backoff_base;
    so.policy.backoff_max = a.restart_backoff_max;
    so.policy.crash_loop_threshold = a.crash_loop_threshold;
    so.policy.crash_loop_window = a.crash_loop_window;
    so.policy.stop_grace = a.stop_grace;
    supervisor_ = std::make_unique<agent::Supervisor>(so, launcher_, probe_, checker_, clock_);

    // The API first: with agent.port = 0 the port it got is what the node registers with.
    agent::AgentApiOptions api_options;
    api_options.host = a.host;
    api_options.port = a.port;
    api_ = std::make_unique<agent::AgentApi>(api_options, *supervisor_, [this] {
      std::lock_guard lock(mutex_);
      return daemon_ ? daemon_->node_token() : std::string();
    });
    if (auto r = api_->start(); !r) return r.error();

    auto token = local_join_token(app_);
    if (!token) return token.error();

    agent::DaemonOptions d;
    d.data_dir = config_.data_dir;
    d.server_url = app_.local_url();
    if (app_.tls()) d.tls.pinned_sha256 = app_.fingerprint();
    d.join_token = *token;
    d.name = node_name_;
    d.address = a.address;
    d.api_port = api_->port();
    d.heartbeat_interval = a.heartbeat_interval;
    d.watch_wait = std::chrono::seconds(10);
    for (const auto& [name, engine] : config_.engines) {
      d.engines[name] = agent::EngineCommand{engine.command, engine.env};
    }
    // Node sync: the local agent shares the server's storage (the store's marker says so), so
    // it pulls nothing unless agent.model_sync = "always".
    model_source_ = std::make_unique<agent::ServerModelSource>(d.server_url, d.tls, [this] {
      std::lock_guard lock(mutex_);
      return daemon_ ? daemon_->node_token() : std::string();
    });
    agent::ModelSyncOptions sync_options;
    sync_options.data_dir = config_.data_dir;
    sync_options.always_pull = a.model_sync == "always";
    sync_options.max_bytes_per_second = a.model_sync_rate;
    model_sync_ = std::make_unique<agent::ModelSync>(sync_options, *model_source_, clock_);
    auto daemon = std::make_unique<agent::Daemon>(
        d, *supervisor_, [this] { return inventory_json(); }, clock_, model_sync_.get());
    auto started = daemon->start();
    if (!started) return started.error();
    {
      std::lock_guard lock(mutex_);
      daemon_ = std::move(daemon);
    }
    daemon_->run();
    spdlog::info("local agent {} ({}): API on {}:{}, {} instance(s) adopted", node_name_,
                 daemon_->identity()->node_id, a.host, api_->port(), started->adopted.size());
    return {};
  }

  /// Stops the agent's threads and API; engine processes keep running for the next start.
  void stop() {
    if (api_) api_->stop();
    if (daemon_) daemon_->stop();
    if (model_sync_) model_sync_->stop();
  }

  const std::string& node_name() const { return node_name_; }

 private:
  std::string inventory_json() {
    std::lock_guard lock(inventory_mutex_);
    if (auto now = agent::collect_inventory(inventory_options_)) {
      last_inventory_ = boost::json::serialize(agent::inventory_to_json(*now));
    }
    return last_inventory_;
  }

  const config::Config& config_;
  server::ServerApp& app_;
  agent::InventoryOptions inventory_options_;
  std::mutex inventory_mutex_;
  std::string last_inventory_;
  std::string node_name_;

  core::SystemClock clock_;
  agent::PosixProcessLauncher launcher_;
  agent::HttpReadinessProbe probe_;
  agent::SystemPortChecker checker_;
  std::unique_ptr<agent::Supervisor> supervisor_;
  std::unique_ptr<agent::AgentApi> api_;
  std::unique_ptr<agent::ServerModelSource> model_source_;
  std::unique_ptr<agent::ModelSync> model_sync_;
  std::mutex mutex_;
  std::unique_ptr<agent::Daemon> daemon_;
};

/// The OpenAI-compatible gateway next to the control plane, in the same process: it reads routes
/// from the app's store every second, and keys when they change (server::GatewayFeedReader),
/// writes call logs to it, and tells the reconciler how many requests each instance has in
/// flight, so draining waits for them.
class LocalGateway final : public server::InFlightSource {
 public:
  explicit LocalGateway(const config::Config& c) : config_(c) {}

  std::size_t in_flight(std::string_view instance_id) override {
    return static_cast<std::size_t>(std::max<std::int64_t>(0, loads_.in_flight(instance_id)));
  }
  /// Asks for a fresh key snapshot (ServerAppOptions::on_keys_changed).
  void keys_changed() {
    if (auto* s = source_.load()) s->keys_changed();
  }

  core::Result<void> start(store::Store& store) {
    source_owner_ = std::make_unique<gateway::StoreSource>(store, keys_, routes_, loads_,
                                                           std::chrono::seconds(1), clock_);
    source_owner_->start();
    source_.store(source_owner_.get());
    // Larger transactions than the default: under load a commit (WAL frames, checkpoints) cost
    // as much as the rows; the logs still reach the store within flush_interval (1 s).
    gateway::CallLogWriter::Options logs;
    logs.batch_size = 4096;
    logs.idle_priority = config_.gateway.call_log_idle_priority;
    writer_ = std::make_unique<gateway::CallLogWriter>(store, logs);
    gateway::GatewayOptions o;
    o.config = config_.gateway;
    gateway_ = std::make_unique<gateway::Gateway>(o, keys_, routes_, loads_, *writer_, clock_);
    return gateway_->start();
  }
  std::uint16_t port() const { return gateway_ ? gateway_->port() : 0; }

  /// Drains the gateway (in-flight requests get the drain deadline), then stops the refresher
  /// and flushes the call logs.
  void stop() {
    if (gateway_) gateway_->stop(config_.gateway.drain_deadline);
    source_.store(nullptr);
    if (source_owner_) source_owner_->stop();
    if (writer_) writer_->stop();
  }

 private:
  const config::Config& config_;
  core::SystemClock clock_;
  gateway::LoadRegistry loads_;
  server::auth::KeySnapshotHolder keys_;
  gateway::RouteTableHolder routes_;
  std::unique_ptr<gateway::StoreSource> source_owner_;
  std::atomic<gateway::StoreSource*> source_{nullptr};
  std::unique_ptr<gateway::CallLogWriter> writer_;
  std::unique_ptr<gateway::Gateway> gateway_;
};

/// The host to print in a URL: a wildcard listen address is reached on loopback.
std::string display_host(const std::string& host) {
  if (host.empty() || host == "0.0.0.0") return "127.0.0.1";
  if (host == "::") return "[::1]";
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

void run_server(const ServerFlags& flags, bool all_in_one, Context& ctx) {
  auto loaded = load_server_config(flags);
  if (!loaded) {
    ctx.fail(loaded.error());
    return;
  }
  const config::Config& c = *loaded;
  // Before any thread exists (the app starts pools), so only sigwait below sees the signals.
  SignalBlock signals;

  LocalGateway gw(c);
  server::ServerAppOptions options;
  options.notices = ctx.out;
  options.in_flight = &gw;
  options.on_keys_changed = [&gw] { gw.keys_changed(); };
  auto app = server::ServerApp::create(c, options);
  if (!app) {
    ctx.fail(app.error());
    return;
  }
  if (auto r = (*app)->start(); !r) {
    ctx.fail(r.error());
    return;
  }
  if (auto r = gw.start((*app)->store()); !r) {
    gw.stop();
    (*app)->stop();
    ctx.fail(r.error());
    return;
  }
  auto& out = *ctx.out;
  out << "OpenStation " << (all_in_one ? "(all-in-one) " : "") << "management API on "
      << (*app)->local_url() << "\n";
  if ((*app)->tls()) {
    out << "TLS certificate " << (*app)->certificate_file().string() << "\n"
        << "  fingerprint " << (*app)->fingerprint() << "\n";
  }
  out << "OpenAI-compatible gateway on http://" << display_host(c.gateway.host) << ":" << gw.port()
      << "/v1\n";
  out << "data dir " << c.data_dir.string() << ", store " << (*app)->store().backend() << "\n"
      << std::flush;

  std::unique_ptr<LocalAgent> local;
  if (all_in_one) {
    local = std::make_unique<LocalAgent>(c, **app);
    if (auto r = local->start(); !r) {
      local.reset();
      (*app)->stop();
      ctx.fail(r.error());
      return;
    }
    out << "local node " << local->node_name() << " joined\n";
  }
  out << "press Ctrl-C to stop" << std::endl;

  const int sig = signals.wait();
  spdlog::info("{} received; stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
  out << "stopping..." << std::endl;
  gw.stop();
  if (local) {
    // Wake the agent's long poll at once instead of letting it run out its wait.
    (*app)->assignments().shutdown();
    local->stop();
    local.reset();
  }
  (*app)->stop();
  out << "stopped"
      << (all_in_one ? " (engine instances keep running; the next start adopts them)" : "")
      << std::endl;
}

void add_common_flags(CLI::App* cmd, ServerFlags& f) {
  cmd->add_option("--data-dir", f.data_dir,
                  "The data dir: database, TLS certificate, first admin password, logs "
                  "(default /var/lib/openstation for root, ~/.local/share/openstation otherwise)");
  cmd->add_option("--config", f.config_file, "The TOML config file");
  cmd->add_option("--set", f.set, "Override a setting: dotted.key=value (repeatable)");
  cmd->add_option("--port", f.port, "The management API's port (default 32206; 0: any free one)")
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--gateway-port", f.gateway_port, "The OpenAI gateway's port (default 8080)")
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--database", f.database,
                  "postgresql://user:pass@host:port/db, or a SQLite file (default: "
                  "<data dir>/openstation.db)");
  cmd->add_flag("--no-tls", f.no_tls,
                "Serve plain HTTP instead of HTTPS (server.tls = false): only on a trusted "
                "network or behind a TLS proxy");
}

}  // namespace

void register_server_commands(CLI::App& root, Context& ctx) {
  auto sflags = std::make_shared<ServerFlags>();
  CLI::App* server = root.add_subcommand(
      "server",
      "The control plane: REST API on 32206 (HTTPS with a self-signed certificate unless "
      "configured), scheduler and reconciler. Agents join it with a join token.");
  add_common_flags(server, *sflags);
  server->callback([sflags, &ctx] { run_server(*sflags, false, ctx); });

  auto aflags = std::make_shared<ServerFlags>();
  CLI::App* start = root.add_subcommand(
      "start",
      "All in one: the control plane and a local agent in one process, the way to try "
      "OpenStation on one machine. Engine instances outlive a stop and are adopted by the next "
      "start.");
  add_common_flags(start, *aflags);
  start->add_option("--gpu-inventory", aflags->gpu_inventory,
                    "The local agent reads its GPUs from this node JSON file instead of the "
                    "hardware (simulation, tests)");
  start
      ->add_option("--agent-port", aflags->agent_port,
                   "The local agent API's port (default 32208; 0: any free one)")
      ->check(CLI::Range(0, 65535));
  start->callback([aflags, &ctx] { run_server(*aflags, true, ctx); });
}

}  // namespace openstation::cli
