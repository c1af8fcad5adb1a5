// `openstation gateway --server URL`: a gateway replica on its own. It follows the server's key
// snapshot and route table (long poll of GET /api/v1/gateway/snapshot), serves the OpenAI API on
// gateway.port and posts its call logs to the server. docs/gateway.md ("Replicas").
#include "cli/commands.hpp"
#include "cli/context.hpp"
#include "cli/signals.hpp"
#include "config/load.hpp"
#include "gateway/gateway.hpp"
#include "gateway/remote_source.hpp"
#include "gateway/route_table.hpp"

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <memory>
#include <ostream>
#include <string>
#include <vector>

namespace openstation::cli {
namespace {

struct GatewayFlags {
  std::string server;
  std::string server_fingerprint;
  std::string ca_cert;
  std::string config_file;
  std::string data_dir;
  std::vector<std::string> set;
  int port = -1;
};

core::Result<config::Config> load_gateway_config(const GatewayFlags& flags) {
  config::LoadOptions options;
  if (!flags.config_file.empty()) options.config_file = flags.config_file;
  options.env = config::process_environment();
  options.is_root = config::running_as_root();
  auto& o = options.overrides;
  if (!flags.data_dir.empty()) o.push_back("data_dir=" + flags.data_dir);
  if (!flags.server.empty()) o.push_back("gateway.server_url=" + flags.server);
  if (!flags.server_fingerprint.empty()) {
    o.push_back("gateway.server_fingerprint=" + flags.server_fingerprint);
  }
  if (!flags.ca_cert.empty()) o.push_back("gateway.ca_cert=" + flags.ca_cert);
  if (flags.port >= 0) o.push_back("gateway.port=" + std::to_string(flags.port));
  o.insert(o.end(), flags.set.begin(), flags.set.end());
  return config::load_config(options);
}

std::string display_host(const std::string& host) {
  if (host.empty() || host == "0.0.0.0") return "127.0.0.1";
  if (host == "::") return "[::1]";
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

void run_gateway(const GatewayFlags& flags, Context& ctx) {
  auto loaded = load_gateway_config(flags);
  if (!loaded) {
    ctx.fail(loaded.error());
    return;
  }
  const config::Config& c = *loaded;
  const config::GatewayConfig& g = c.gateway;
  if (g.server_url.empty()) {
    ctx.fail(core::invalid("gateway.no_server",
                           "the gateway replica needs its server: pass --server "
                           "https://HOST:32206 (or set gateway.server_url)",
                           "server"));
    return;
  }
  if (g.server_key.empty()) {
    ctx.fail(core::invalid("gateway.no_credential",
                           "the gateway replica needs an admin's API key to call its server: set "
                           "OPENSTATION_GATEWAY_SERVER_KEY (or gateway.server_key)",
                           "server_key"));
    return;
  }
  gateway::RemoteServer remote;
  remote.url = g.server_url;
  remote.tls.pinned_sha256 = g.server_fingerprint;
  remote.tls.ca_file = g.ca_cert;
  remote.credential = g.server_key;

  // Before any thread exists, so only sigwait below sees the signals.
  SignalBlock signals;
  core::SystemClock clock;
  gateway::LoadRegistry loads;
  server::auth::KeySnapshotHolder keys;
  gateway::RouteTableHolder routes;
  gateway::RemoteSource source(remote, keys, routes, loads);
  auto first = source.refresh();
  if (!first) {
    ctx.fail(first.error());
    return;
  }
  gateway::RemoteCallLogSink::Options log_options;
  log_options.idle_priority = g.call_log_idle_priority;
  gateway::RemoteCallLogSink logs(remote, log_options);
  gateway::GatewayOptions o;
  o.config = g;
  // The server's per-key limits apply to every gateway (each counts its own requests).
  o.config.requests_per_minute = first->requests_per_minute;
  o.config.tokens_per_minute = first->tokens_per_minute;
  gateway::Gateway gw(o, keys, routes, loads, logs, clock);
  if (auto r = gw.start(); !r) {
    ctx.fail(r.error());
    return;
  }
  source.start();
  auto& out = *ctx.out;
  out << "OpenAI-compatible gateway replica on http://" << display_host(g.host) << ":" << gw.port()
      << "/v1\n"
      << "following " << g.server_url << " (snapshot " << first->version << ": "
      << first->keys.size() << " keys, " << first->services.size() << " services)\n"
      << "press Ctrl-C to stop" << std::endl;

  const int sig = signals.wait();
  spdlog::info("{} received; draining the gateway", sig == SIGINT ? "SIGINT" : "SIGTERM");
  out << "stopping (draining up to "
      << std::chrono::duration_cast<std::chrono::seconds>(g.drain_deadline).count() << " s)..."
      << std::endl;
  gw.stop(g.drain_deadline);
  source.stop();
  logs.stop();
  out << "stopped" << std::endl;
}

}  // namespace

void register_gateway_command(CLI::App& root, Context& ctx) {
  auto flags = std::make_shared<GatewayFlags>();
  CLI::App* cmd = root.add_subcommand(
      "gateway",
      "A gateway replica on its own: serves the OpenAI API (port 8080) from the key snapshot and "
      "route table it follows on the server, and posts its call logs there. The credential is "
      "an admin's API key in OPENSTATION_GATEWAY_SERVER_KEY.");
  cmd->add_option("--server", flags->server, "The server's URL, https://HOST:32206");
  cmd->add_option("--server-fingerprint", flags->server_fingerprint,
                  "Trust the https server whose certificate has this fingerprint (sha256:AB:...; "
                  "`openstation server` prints it)");
  cmd->add_option("--ca-cert", flags->ca_cert,
                  "Trust the https server through this CA file (PEM) instead");
  cmd->add_option("--port", flags->port, "The gateway's port (default 8080; 0: any free one)")
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--config", flags->config_file, "The TOML config file");
  cmd->add_option("--data-dir", flags->data_dir, "The data dir");
  cmd->add_option("--set", flags->set, "Override a setting: dotted.key=value (repeatable)");
  cmd->callback([flags, &ctx] { run_gateway(*flags, ctx); });
}

}  // namespace openstation::cli
