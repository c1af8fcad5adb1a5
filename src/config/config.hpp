#pragma once
/// OpenStation's settings as validated plain structs. Every process (server, gateway, agent, the
/// all-in-one `start`) reads one `Config`, built once at the edge by `load_config()` from the
/// defaults, a TOML file, OPENSTATION_* environment variables and command-line flags, in that
/// order of precedence (see config/load.hpp and docs/configuration.md). No TOML or JSON type
/// appears here; domain code takes the section it needs by value or const reference.

#include "core/engine_kind.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace openstation::config {

/// An inclusive port range, [first, last], written "40000-40999".
struct PortRange {
  std::uint16_t first = 0;
  std::uint16_t last = 0;

  /// Number of ports in the range.
  std::uint32_t size() const { return static_cast<std::uint32_t>(last) - first + 1; }
  bool contains(std::uint16_t port) const { return port >= first && port <= last; }
  bool overlaps(const PortRange& o) const { return first <= o.last && o.first <= last; }
  bool operator==(const PortRange&) const = default;
};

/// The management server (REST API, web UI, scheduler, reconciler) on 32206.
struct ServerConfig {
  std::string host = "0.0.0.0";
  std::uint16_t port = 32206;  ///< 0: an ephemeral port (tests)
  bool tls = true;             ///< HTTPS; plain HTTP only when set to false
  std::string cert_file;       ///< empty: a self-signed certificate in <data_dir>/tls/
  std::string key_file;        ///< given together with cert_file
  /// Empty: SQLite at <data_dir>/openstation.db; or "sqlite:///path/to.db";
  /// or "postgresql://user:pass@host:port/db" ("postgres://" too).
  std::string database;
  std::string public_url;  ///< how agents and browsers reach the server; empty: derived
  std::string model_dir;   ///< the model store; empty: <data_dir>/models
  std::chrono::milliseconds session_ttl{std::chrono::hours(12)};
  std::chrono::milliseconds node_timeout{std::chrono::seconds(30)};  ///< missed heartbeats
  std::uint32_t login_attempts_per_minute = 10;  ///< per user and per address; 0: unlimited
  /// Call logs older than this are deleted (hourly); 0: kept forever.
  std::chrono::milliseconds call_log_retention{std::chrono::hours(24 * 90)};
  /// Audit events older than this are deleted (hourly); 0: kept forever (the default).
  std::chrono::milliseconds event_retention{0};
  bool operator==(const ServerConfig&) const = default;
};

/// The OpenAI-compatible gateway on 8080.
struct GatewayConfig {
  std::string host = "0.0.0.0";
  std::uint16_t port = 8080;  ///< 0: an ephemeral port (tests)
  bool tls = false;
  std::string cert_file;
  std::string key_file;
  std::string server_url;  ///< a gateway replica's server; empty in the all-in-one process
  /// A replica trusts an https server_url with this certificate fingerprint ("sha256:AB:...").
  std::string server_fingerprint;
  /// Else a replica trusts an https server_url through this CA (PEM) file; with neither, the
  /// system's CA store.
  std::string ca_cert;
  /// The credential a replica presents to its server: an API key of an admin user.
  std::string server_key;
  std::uint64_t max_body_bytes = 32ull << 20;
  std::chrono::milliseconds header_timeout{std::chrono::seconds(10)};
  std::chrono::milliseconds upstream_connect_timeout{std::chrono::seconds(5)};
  /// Longest silence from an engine (between bytes); 0: none. Not a cap on a stream's length.
  std::chrono::milliseconds upstream_read_timeout{std::chrono::minutes(10)};
  /// Longest silence from an engine in the middle of an SSE stream (keep-alive comments go to the
  /// client meanwhile); 0: none. Separate from upstream_read_timeout, so slow streams live.
  std::chrono::milliseconds stream_read_timeout{std::chrono::minutes(30)};
  /// An SSE comment is sent on a stream idle this long, keeping proxies from closing it; 0: off.
  std::chrono::milliseconds sse_keepalive_interval{std::chrono::seconds(15)};
  /// How long draining (an instance removed, or SIGTERM) waits for in-flight requests.
  std::chrono::milliseconds drain_deadline{std::chrono::seconds(30)};
  std::uint32_t requests_per_minute = 0;  ///< default per-key limit; 0: unlimited
  std::uint32_t tokens_per_minute = 0;    ///< default per-key limit; 0: unlimited
  /// Requests with a session key (the X-Session-ID header, else the body's "user") stick to one
  /// healthy instance of their service (rendezvous hashing); off: least outstanding only.
  bool session_affinity = false;
  /// Call logs are written by a thread at idle priority (SCHED_IDLE), on CPU time the requests
  /// do not want; it falls back to normal priority when it falls behind. Off: normal priority.
  bool call_log_idle_priority = true;
  bool operator==(const GatewayConfig&) const = default;
};

/// The node agent on 32208.
struct AgentConfig {
  std::string server_url;  ///< empty in the all-in-one process (the local server)
  std::string token;       ///< cluster join token
  /// Trust an https server_url whose certificate has this SHA-256 fingerprint
  /// ("sha256:AB:CD:..."; case, prefix and colons optional), e.g. the server's self-signed one.
  std::string server_fingerprint;
  /// Else trust an https server_url whose certificate chains to this CA (PEM) file; with
  /// neither, the system's CA store.
  std::string ca_cert;
  std::string host = "0.0.0.0";
  std::uint16_t port = 32208;  ///< 0: an ephemeral port (tests)
  std::string name;            ///< the node's name; empty: the host name
  std::string address;         ///< the address other nodes reach it on; empty: detected
  std::string gpu_inventory;   ///< a JSON inventory file read instead of NVML (simulation, tests)
  std::string engine_packages_dir;  ///< offline engine packages; empty: <data_dir>/engine-packages
  PortRange engine_ports{40000, 40999};
  PortRange ray_ports{41000, 41999};
  std::uint64_t log_max_bytes = 64ull << 20;  ///< per engine log file before rotation
  std::uint32_t log_files = 5;                ///< rotated files kept
  std::chrono::milliseconds restart_backoff_base{std::chrono::seconds(2)};
  std::chrono::milliseconds restart_backoff_max{std::chrono::minutes(5)};
  std::uint32_t crash_loop_threshold = 5;  ///< crashes within crash_loop_window → crash loop
  std::chrono::milliseconds crash_loop_window{std::chrono::minutes(10)};
  std::chrono::milliseconds stop_grace{std::chrono::seconds(30)};  ///< SIGTERM → SIGKILL
  std::chrono::milliseconds heartbeat_interval{std::chrono::seconds(5)};
  /// Node sync of models on the server's model store: "auto" pulls them unless the node shares
  /// the server's storage (detected by the store's marker); "always" keeps a copy on the node.
  std::string model_sync = "auto";
  std::uint64_t model_sync_rate = 0;  ///< bytes per second of one model pull; 0: no limit
  bool operator==(const AgentConfig&) const = default;
};

/// How one engine is launched. Keyed in `Config::engines` by the engine's name: "vllm",
/// "vllm-cpu", "sglang", "llama.cpp", or an administrator's own name.
struct EngineConfig {
  /// What kind of engine this is (its flags and rules). The known names imply their kind; other
  /// names default to custom.
  core::EngineKind kind = core::EngineKind::custom;
  /// The argv prefix the engine's arguments follow, e.g. {"vllm"} or
  /// {"python3", "-m", "sglang.launch_server"}. Never run through a shell.
  std::vector<std::string> command;
  std::string version;                     ///< empty: the newest version the platform knows
  std::map<std::string, std::string> env;  ///< added to the engine's environment
  std::string health_path = "/health";
  bool operator==(const EngineConfig&) const = default;
};

/// Where models come from.
struct HubConfig {
  std::string default_source = "modelscope";  ///< "modelscope" or "huggingface"
  std::string modelscope_endpoint = "https://www.modelscope.cn";
  std::string huggingface_endpoint = "https://huggingface.co";
  std::string proxy;  ///< http://, https:// or socks5:// proxy for hub downloads; empty: none
  std::string hf_token;
  std::string ms_token;
  bool operator==(const HubConfig&) const = default;
};

/// Where each effective value came from: "default", "<file>:<line>:<column>",
/// "env OPENSTATION_SERVER_PORT" or "flag server.port". Keyed by dotted key.
using Sources = std::map<std::string, std::string>;

/// Everything. Build it with load_config(); a default-constructed Config has no engines and an
/// empty data dir (see default_config()).
struct Config {
  std::filesystem::path data_dir;
  std::string log_level = "info";  ///< trace, debug, info, warn, error, off
  ServerConfig server;
  GatewayConfig gateway;
  AgentConfig agent;
  std::map<std::string, EngineConfig> engines;
  HubConfig hub;

  std::filesystem::path config_file;  ///< the file that was read; empty when none
  Sources sources;                    ///< provenance of every value, for `config show`
};

/// The built-in engines and their launch commands: vllm → ["vllm"], vllm-cpu → ["vllm"],
/// sglang → ["python3", "-m", "sglang.launch_server"], llama.cpp → ["llama-server"].
std::map<std::string, EngineConfig> default_engines();

/// The defaults: Config{} with default_engines() and the given data dir.
Config default_config(std::filesystem::path data_dir);

/// Where the server keeps things when the config leaves the path empty.
std::filesystem::path server_cert_file(
    const Config& c);                                    ///< cert_file or <data_dir>/tls/server.crt
std::filesystem::path server_key_file(const Config& c);  ///< key_file or <data_dir>/tls/server.key
/// The SQLite file when `server.database` is empty or sqlite://; empty for PostgreSQL.
std::filesystem::path sqlite_database_path(const Config& c);
std::filesystem::path model_dir(const Config& c);  ///< model_dir or <data_dir>/models

}  // namespace openstation::config
