#include "server/app.hpp"

#include "agent/host_probe.hpp"
#include "core/strings.hpp"
#include "http/client.hpp"
#include "http/server.hpp"
#include "http/tls.hpp"
#include "server/agent_link.hpp"
#include "server/api/context.hpp"
#include "server/api/download_routes.hpp"
#include "server/api/routes.hpp"
#include "server/assignments.hpp"
#include "server/bootstrap.hpp"
#include "server/download_manager.hpp"
#include "server/node_monitor.hpp"
#include "server/reconciler.hpp"
#include "server/retention.hpp"

#include <spdlog/spdlog.h>

#include <unistd.h>

#include <algorithm>
#include <ostream>
#include <system_error>

namespace openstation::server {

namespace fs = std::filesystem;

namespace {

bool is_wildcard(std::string_view host) {
  return host.empty() || host == "0.0.0.0" || host == "::" || host == "[::]";
}

bool is_postgres(std::string_view url) {
  return core::starts_with(url, "postgresql://") || core::starts_with(url, "postgres://");
}

std::string hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return {};
  return buf;
}

}  // namespace

std::string store_url(const config::Config& c) {
  if (is_postgres(c.server.database)) return c.server.database;
  return config::sqlite_database_path(c).string();
}

std::vector<std::string> certificate_names(const config::Config& c) {
  std::vector<std::string> names{"localhost"};
  if (auto h = hostname(); !h.empty()) names.push_back(h);
  names.push_back("127.0.0.1");
  names.push_back("::1");
  if (!is_wildcard(c.server.host)) names.push_back(c.server.host);
  if (!c.server.public_url.empty()) {
    if (auto url = http::parse_url(c.server.public_url)) names.push_back(url->host);
  }
  for (auto& ip : agent::list_ip_addresses()) names.push_back(std::move(ip));
  std::vector<std::string> unique;
  for (auto& n : names) {
    if (!n.empty() && std::find(unique.begin(), unique.end(), n) == unique.end()) {
      unique.push_back(std::move(n));
    }
  }
  return unique;
}

struct ServerApp::Impl {
  config::Config config;
  ServerAppOptions options;
  std::unique_ptr<core::SystemClock> owned_clock;
  const core::Clock* clock = nullptr;

  std::unique_ptr<store::Store> store;
  std::optional<std::string> initial_password;
  std::filesystem::path cert_file;
  std::string fingerprint;

  // Declared in dependency order: destroyed in reverse, the HTTP server (whose handlers use
  // everything above it) first.
  std::unique_ptr<AssignmentNotifier> gateway_wake;  ///< ends gateway replicas' long polls early
  std::unique_ptr<DownloadManager> downloads;        ///< the model library's download queue
  std::unique_ptr<ApiContext> api;
  std::unique_ptr<AssignmentNotifier> assignments;
  std::unique_ptr<AgentLink> agents;
  // Without a gateway in the process nothing is ever in flight.
  NullInFlightSource no_gateway;
  std::unique_ptr<Reconciler> reconciler;
  std::unique_ptr<NodeMonitor> monitor;
  std::unique_ptr<Retention> retention;
  std::unique_ptr<http::Server> http;

  bool started = false;
  bool stopped = false;
};

core::Result<std::unique_ptr<ServerApp>> ServerApp::create(config::Config config,
                                                           ServerAppOptions options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  if (options.clock == nullptr) {
    impl->owned_clock = std::make_unique<core::SystemClock>();
    impl->clock = impl->owned_clock.get();
  } else {
    impl->clock = options.clock;
  }
  const fs::path data_dir = config.data_dir;
  {
    std::error_code ec;
    fs::create_directories(data_dir, ec);
    if (ec) {
      return core::io_error("server.bad_data_dir",
                            "cannot create the data dir " + data_dir.string() + ": " +
                                ec.message() + "; pass --data-dir with a writable directory",
                            "data_dir");
    }
  }

  // The store.
  const std::string url = store_url(config);
  store::StoreOptions store_options;
  store_options.clock = impl->clock;
  auto opened = store::open_store(url, store_options);
  if (!opened) return opened.error();
  impl->store = std::move(*opened);
  spdlog::info("store: {} ({})", impl->store->backend(), is_postgres(url) ? "PostgreSQL" : url);

  // The first admin.
  const auto limits = options.fast_password_hashing ? auth::PasswordHashLimits::minimum()
                                                    : auth::PasswordHashLimits::interactive();
  auto admin = bootstrap_admin(*impl->store, data_dir, limits);
  if (!admin) return admin.error();
  if (*admin) {
    impl->initial_password = (*admin)->password;
    spdlog::warn("first start: created the user '{}'; its password is in {}",
                 (*admin)->user.username, (*admin)->password_file.string());
    if (options.notices != nullptr) {
      *options.notices << "First start: log in as '" << (*admin)->user.username
                       << "' with the password\n\n    " << (*admin)->password << "\n\n(also in "
                       << (*admin)->password_file.string()
                       << "; you must change it at the first login)\n"
                       << std::flush;
    }
  }

  // TLS.
  http::ServerOptions server_options;
  server_options.host = config.server.host;
  server_options.port = config.server.port;
  server_options.threads = std::max(1, options.io_threads);
  server_options.name = "api";
  if (config.server.tls) {
    impl->cert_file = config::server_cert_file(config);
    const fs::path key = config::server_key_file(config);
    if (config.server.cert_file.empty()) {
      auto made =
          http::ensure_self_signed_certificate(impl->cert_file, key, certificate_names(config));
      if (!made) return made.error();
      if (*made) spdlog::info("made a self-signed certificate {}", impl->cert_file.string());
    }
    auto fp = http::certificate_fingerprint(impl->cert_file);
    if (!fp) return fp.error();
    impl->fingerprint = *fp;
    server_options.tls = http::TlsServerOptions{impl->cert_file.string(), key.string()};
  }

  // The API and its loops.
  ApiContext::Options api_options;
  api_options.store = impl->store.get();
  api_options.clock = impl->clock;
  api_options.config = config;
  api_options.worker_threads = std::max<std::size_t>(1, options.worker_threads);
  api_options.secure_cookies = config.server.tls;
  impl->gateway_wake = std::make_unique<AssignmentNotifier>(*impl->clock);
  api_options.on_keys_changed = [wake = impl->gateway_wake.get(), then = options.on_keys_changed] {
    notify_gateway_feed(*wake);
    if (then) then();
  };
  api_options.password_hash_limits = limits;
  {
    DownloadManager::Options dl;
    dl.store = impl->store.get();
    dl.clock = impl->clock;
    dl.hub = config.hub;
    dl.model_dir = config::model_dir(config);
    impl->downloads = std::make_unique<DownloadManager>(std::move(dl));
  }
  api_options.on_model_deleted = [downloads = impl->downloads.get()](const store::Model& m) {
    if (auto r = downloads->forget_model(m); !r) {
      spdlog::warn("model {}: its files could not all be removed: {}", m.name, r.error().message);
    }
  };
  impl->api = std::make_unique<ApiContext>(std::move(api_options));
  impl->assignments = std::make_unique<AssignmentNotifier>(*impl->clock);
  impl->agents = std::make_unique<AgentLink>();

  Reconciler::Options reconciler_options;
  reconciler_options.engines = config.engines;
  reconciler_options.timings.node_timeout = config.server.node_timeout;
  reconciler_options.timings.drain_deadline = config.gateway.drain_deadline;
  impl->reconciler = std::make_unique<Reconciler>(
      *impl->store, *impl->clock, *impl->assignments,
      options.in_flight != nullptr ? *options.in_flight : impl->no_gateway, reconciler_options);
  NodeMonitor::Options monitor_options;
  monitor_options.timeout = config.server.node_timeout;
  impl->monitor = std::make_unique<NodeMonitor>(*impl->store, *impl->clock, *impl->reconciler,
                                                *impl->agents, *impl->assignments, monitor_options);
  Retention::Options retention_options;
  retention_options.call_logs = config.server.call_log_retention;
  retention_options.events = config.server.event_retention;
  impl->retention = std::make_unique<Retention>(*impl->store, *impl->clock, retention_options);

  impl->http = std::make_unique<http::Server>(std::move(server_options));
  http::Server& s = *impl->http;
  ApiContext& ctx = *impl->api;
  register_auth_routes(s, ctx);
  register_user_routes(s, ctx);
  register_key_routes(s, ctx);
  register_setting_routes(s, ctx);
  register_event_routes(s, ctx);
  register_node_routes(s, ctx, *impl->assignments, *impl->reconciler, *impl->agents);
  register_model_routes(s, ctx, *impl->agents);
  register_model_file_routes(s, ctx);
  register_service_routes(s, ctx, *impl->assignments, *impl->reconciler);
  register_gateway_routes(s, ctx, *impl->gateway_wake);
  register_download_routes(s, ctx, *impl->downloads);
  register_meta_routes(s, ctx);

  impl->config = std::move(config);
  return std::unique_ptr<ServerApp>(new ServerApp(std::move(impl)));
}

ServerApp::ServerApp(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ServerApp::~ServerApp() {
  stop(std::chrono::milliseconds(0));
}

core::Result<void> ServerApp::start() {
  if (impl_->started) return {};
  if (auto r = impl_->http->start(); !r) return r.error();
  impl_->started = true;
  // Agents that knew a generation from before a restart get the whole set again at once.
  impl_->assignments->notify_all();
  impl_->monitor->start();
  impl_->retention->start();
  impl_->reconciler->start();
  impl_->downloads->start();
  spdlog::info("management API on {}://{}:{}", impl_->config.server.tls ? "https" : "http",
               impl_->config.server.host, impl_->http->port());
  return {};
}

void ServerApp::stop(std::chrono::milliseconds grace) {
  if (!impl_->started || impl_->stopped) return;
  impl_->stopped = true;
  impl_->reconciler->stop();
  impl_->monitor->stop();
  impl_->retention->stop();
  impl_->downloads->stop();  // the running download resumes on the next start
  // Long polls of the agents' watches would hold the drain up to their full wait.
  impl_->assignments->shutdown();
  impl_->gateway_wake->shutdown();
  impl_->http->stop(grace);
  impl_->api->drain();  // before the server's I/O contexts are destroyed (ApiContext::drain)
}

std::uint16_t ServerApp::port() const {
  return impl_->http->port();
}

std::string ServerApp::local_url() const {
  const std::string& host = impl_->config.server.host;
  std::string h;
  if (host.empty() || host == "0.0.0.0") {
    h = "127.0.0.1";
  } else if (host == "::" || host == "[::]") {
    h = "[::1]";
  } else if (host.find(':') != std::string::npos && host.front() != '[') {
    h = "[" + host + "]";
  } else {
    h = host;
  }
  return std::string(tls() ? "https" : "http") + "://" + h + ":" + std::to_string(port());
}

bool ServerApp::tls() const {
  return impl_->config.server.tls;
}
const std::string& ServerApp::fingerprint() const {
  return impl_->fingerprint;
}
const std::filesystem::path& ServerApp::certificate_file() const {
  return impl_->cert_file;
}
const std::optional<std::string>& ServerApp::initial_admin_password() const {
  return impl_->initial_password;
}
const config::Config& ServerApp::config() const {
  return impl_->config;
}
store::Store& ServerApp::store() const {
  return *impl_->store;
}
http::Server& ServerApp::http_server() const {
  return *impl_->http;
}
DownloadManager& ServerApp::downloads() const {
  return *impl_->downloads;
}

ApiContext& ServerApp::api() const {
  return *impl_->api;
}
AssignmentNotifier& ServerApp::assignments() const {
  return *impl_->assignments;
}

}  // namespace openstation::server
