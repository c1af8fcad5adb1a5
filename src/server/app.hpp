#pragma once
/// The control-plane process: everything `openstation server` (and the server half of
/// `openstation start`) runs, composed from a config::Config.
///
///     ServerApp::create(config)
///       ├─ store: SQLite (WAL) at sqlite_database_path(config), or PostgreSQL (server.database)
///       ├─ bootstrap: the first start creates `admin` with a random password, written once to
///       │             <data_dir>/initial-admin-password and printed (bootstrap.hpp)
///       ├─ TLS: server.cert_file/key_file, or a self-signed certificate made once in
///       │       <data_dir>/tls/ (plain HTTP only with server.tls = false)
///       └─ the management http::Server on server.host:server.port with every route group
///          (routes.hpp), the agent link, the assignment notifier, the node monitor and the
///          reconciler
///     start()  listen, then start the node monitor and the reconciler threads
///     stop()   stop the reconciler and monitor, wake the agents' long polls, drain the HTTP
///              server (in-flight requests get `grace`), close the store
///
/// Signals are the command's business (cli/cmd_server.cpp): the app only offers start/stop.
/// The gateway (port 8080) is composed next to the app by the command (cli/cmd_server.cpp),
/// sharing the store; it reports its in-flight requests through ServerAppOptions::in_flight.

#include "config/config.hpp"
#include "core/clock.hpp"
#include "core/error.hpp"
#include "store/store.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace openstation::http {
class Server;
}

namespace openstation::server {

class ApiContext;
class AssignmentNotifier;
class DownloadManager;
class InFlightSource;

/// How to build the app besides the config.
struct ServerAppOptions {
  const core::Clock* clock = nullptr;  ///< nullptr: the system clock
  /// Where the first start's admin password notice is printed (stdout in the CLI); nullptr:
  /// only the file in the data dir and the log.
  std::ostream* notices = nullptr;
  std::size_t worker_threads = 4;  ///< ApiContext's pool for store calls and hashing
  int io_threads = 2;              ///< the HTTP server's I/O threads
  /// The gateway's requests in flight per instance, so draining waits for them; nullptr: nothing
  /// is ever in flight (no gateway in this process). Must outlive the app.
  InFlightSource* in_flight = nullptr;
  /// Called after API keys or their users change (the gateway refreshes its key snapshot).
  std::function<void()> on_keys_changed{};
  /// Cheap argon2id parameters (tests only: hashing at the interactive cost is slow under
  /// sanitizers).
  bool fast_password_hashing = false;
};

/// The management server. Create, start, stop; not restartable after stop().
/// Thread-safe accessors; start/stop from one controlling thread.
class ServerApp {
 public:
  /// Opens the store, bootstraps the first admin, prepares TLS and registers every route.
  /// Errors: the store's ("store.unavailable", "store.migration_failed", ...), bootstrap's,
  /// "http.tls_cert" (a configured certificate that is unreadable, or a self-signed one that
  /// cannot be written), "server.bad_data_dir" (io_error) when the data dir cannot be created.
  static core::Result<std::unique_ptr<ServerApp>> create(config::Config config,
                                                         ServerAppOptions options = {});
  ~ServerApp();  ///< stop()
  ServerApp(const ServerApp&) = delete;
  ServerApp& operator=(const ServerApp&) = delete;

  /// Listens and starts the background loops. Errors: "http.bind" naming host:port (the port is
  /// taken: another server runs?), "http.tls_cert".
  core::Result<void> start();
  /// Graceful stop: loops first, then the HTTP server with `grace` for in-flight requests.
  /// Idempotent.
  void stop(std::chrono::milliseconds grace = std::chrono::seconds(10));

  /// The port listened on (after start()).
  std::uint16_t port() const;
  /// "https://127.0.0.1:<port>" (or http://, or the configured host when it is not a wildcard):
  /// the URL a process on this machine (the local agent, the CLI) uses.
  std::string local_url() const;
  /// True when the server speaks HTTPS.
  bool tls() const;
  /// The server certificate's fingerprint ("sha256:AB:..."); empty for plain HTTP.
  const std::string& fingerprint() const;
  /// The certificate file (for agents given a CA file); empty for plain HTTP.
  const std::filesystem::path& certificate_file() const;
  /// Set on the first start only: the generated admin password (also in the password file).
  const std::optional<std::string>& initial_admin_password() const;

  const config::Config& config() const;
  store::Store& store() const;
  http::Server& http_server() const;
  ApiContext& api() const;
  AssignmentNotifier& assignments() const;
  /// The model library's download queue (started with the app).
  DownloadManager& downloads() const;

  struct Impl;

 private:
  explicit ServerApp(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// The store URL the config selects: server.database when it is PostgreSQL, else the SQLite file
/// path (sqlite_database_path).
std::string store_url(const config::Config& c);

/// Names the self-signed certificate is valid for: "localhost", the host name, the loopback
/// addresses, the configured host (when not a wildcard), public_url's host and this machine's
/// IP addresses.
std::vector<std::string> certificate_names(const config::Config& c);

}  // namespace openstation::server
