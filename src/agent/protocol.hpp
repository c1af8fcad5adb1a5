#pragma once
/// The agent ↔ server protocol: the messages of register, heartbeat and assignments (the long-poll
/// watch), their JSON codecs, and the node's persisted identity. HTTP + JSON; docs/agent.md
/// ("Protocol and agent API") documents every endpoint. No Boost.JSON here: inventories travel as
/// serialised JSON text, so this header stays light for the server and the agent alike.
///
/// Parsing rules: requests (what the server reads) refuse unknown fields, like every REST body;
/// responses (what the agent reads) ignore unknown fields, so a newer server can add some.

#include "agent/supervisor.hpp"
#include "core/error.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace openstation::agent {

/// Endpoint paths (on the server unless said otherwise).
inline constexpr std::string_view kRegisterPath = "/api/v1/agent/register";
inline constexpr std::string_view kHeartbeatPath = "/api/v1/agent/heartbeat";
inline constexpr std::string_view kAssignmentsPath = "/api/v1/agent/assignments";
/// GET {kModelsPath}/{model id}/manifest and GET {kModelsPath}/{model id}/files/{relative path}:
/// a model's files on the server's model store, for node sync (model_sync.hpp).
inline constexpr std::string_view kModelsPath = "/api/v1/agent/models";

/// POST /api/v1/agent/register — a new node joins with the cluster's join token.
struct RegisterRequest {
  std::string join_token;
  std::string name;            ///< the node's name (unique in the cluster)
  std::string address;         ///< where the server and other nodes reach this node
  std::uint16_t api_port = 0;  ///< the agent API's port on `address` (32208)
  std::string inventory_json;  ///< inventory_to_json() serialised: {"node", "host", ...}
  bool operator==(const RegisterRequest&) const = default;
};

/// The node's identity, returned by register and persisted by the agent.
struct NodeIdentity {
  std::string node_id;
  std::string
      node_token;  ///< the node's credential: Bearer on every later call, and the agent API's
  bool operator==(const NodeIdentity&) const = default;
};

/// One instance's state as the heartbeat reports it (InstanceStatus, flattened).
struct InstanceReport {
  std::string id;
  std::string state;  ///< to_string(InstanceState): "starting", "running", …
  std::int64_t pid = 0;
  std::vector<std::uint16_t> ports;
  unsigned restarts = 0;
  std::string reason;
  std::vector<std::string> last_log_lines;
  bool adopted = false;
  /// While the state is "preparing" (model files being pulled from the server): bytes of the
  /// model on this node so far and in all; 0/0 otherwise.
  std::int64_t bytes_done = 0;
  std::int64_t bytes_total = 0;
  bool operator==(const InstanceReport&) const = default;
};

/// POST /api/v1/agent/heartbeat (Bearer node_token).
struct HeartbeatRequest {
  std::string node_id;
  std::string inventory_json;  ///< as in RegisterRequest
  std::vector<InstanceReport> instances;
  bool operator==(const HeartbeatRequest&) const = default;
};

/// The heartbeat's answer.
struct HeartbeatResponse {
  bool ok = true;
  std::string server_time;  ///< RFC 3339 UTC, informational
  bool operator==(const HeartbeatResponse&) const = default;
};

/// One instance the server wants on this node.
struct Assignment {
  std::string id;       ///< unique on the node; letters, digits, '.', '_', '-'
  std::string service;  ///< the service it belongs to (informational for the agent)
  std::string
      engine;  ///< a configured engine name ("vllm", "sglang", …); its command prefixes argv
  std::vector<std::string> argv;  ///< the engine's arguments after its command ("{port}" allowed)
  std::map<std::string, std::string> env;
  std::string health_path = "/health";  ///< empty: running once launched
  unsigned ports_needed = 1;
  std::uint32_t startup_timeout_s = 600;
  /// The model's path as the server knows it. With `model_sync`, argv elements equal to it or
  /// starting with "<model_path>/" are rewritten to the node's copy when the node pulled one.
  std::string model_path;
  std::string model_id;  ///< the library's model id ("mdl_..."); empty for catalog-only models
  /// True when the files live on the server's model store: a node that lacks them (not on
  /// storage shared with the server) pulls them before the launch (model_sync.hpp).
  bool model_sync = false;
  bool operator==(const Assignment&) const = default;
};

/// GET /api/v1/agent/assignments — the WHOLE desired set for the node at a generation.
struct AssignmentSet {
  std::uint64_t generation = 0;
  std::vector<Assignment> instances;
  bool operator==(const AssignmentSet&) const = default;
};

/// One file of a model on the server's model store.
struct ManifestFile {
  std::string path;  ///< relative to the model's path, '/'-separated
  std::int64_t size = 0;
  std::string sha256;  ///< lower-case hex
  bool operator==(const ManifestFile&) const = default;
};

/// GET /api/v1/agent/models/{id}/manifest — what a node needs to pull a model or to tell that it
/// already sees the server's copy (storage shared with the server).
struct ModelManifest {
  std::string model_id;
  std::string name;
  std::string path;          ///< the model's path on the server (a directory, or one file)
  bool single_file = false;  ///< `path` is one file (a .gguf); `files` holds its name alone
  std::string store_root;    ///< the server's model store (server.model_dir)
  std::string store_id;      ///< the random id in <store_root>/.openstation-store
  std::vector<ManifestFile> files;
  bool operator==(const ModelManifest&) const = default;
};

/// The marker file at the root of the server's model store holding the store's random id. A
/// node that reads the same id at the manifest's store_root shares the server's storage.
inline constexpr std::string_view kStoreMarkerName = ".openstation-store";
/// The id in <store_root>/.openstation-store (whitespace trimmed); nullopt when the file is not
/// there, unreadable or empty.
std::optional<std::string> read_store_id(const std::filesystem::path& store_root);

/// How a configured engine is launched (config's `[engines.<name>]`).
struct EngineCommand {
  std::vector<std::string> command;  ///< the argv prefix, e.g. {"vllm"}
  std::map<std::string, std::string> env;
};

/// JSON text of each message.
std::string to_json(const RegisterRequest& m);
std::string to_json(const NodeIdentity& m);
std::string to_json(const InstanceReport& m);
std::string to_json(const HeartbeatRequest& m);
std::string to_json(const HeartbeatResponse& m);
std::string to_json(const Assignment& m);
std::string to_json(const AssignmentSet& m);
std::string to_json(const ModelManifest& m);

/// Parsers. Errors: "protocol.bad_json" (parse_error) for text that is not JSON, and the core::json
/// errors (invalid_argument, naming the field) for a wrong type, a missing field or, in requests,
/// an unknown field.
core::Result<RegisterRequest> parse_register_request(std::string_view json);
core::Result<NodeIdentity> parse_node_identity(std::string_view json);
core::Result<HeartbeatRequest> parse_heartbeat_request(std::string_view json);
core::Result<HeartbeatResponse> parse_heartbeat_response(std::string_view json);
core::Result<AssignmentSet> parse_assignment_set(std::string_view json);
/// Also checks every file path (relative, no "..", no empty or "." segments, no backslash or
/// NUL: "protocol.bad_field") and that sizes are not negative.
core::Result<ModelManifest> parse_model_manifest(std::string_view json);

/// The heartbeat's view of a supervisor status.
InstanceReport to_report(const InstanceStatus& status);

/// The supervisor's spec for an assignment: argv = the engine's configured command + the
/// assignment's argv; env = the engine's env, then the assignment's. Errors:
/// "agent.unknown_engine" (invalid_argument, with did-you-mean) when `engines` lacks it,
/// "agent.empty_engine_command" when its command is empty.
core::Result<InstanceSpec> to_spec(const Assignment& a,
                                   const std::map<std::string, EngineCommand>& engines);

/// Where the identity lives: <data_dir>/agent/identity.json.
std::filesystem::path identity_path(const std::filesystem::path& data_dir);
/// Reads the identity; nullopt when the file does not exist. Errors: "agent.identity_unreadable".
core::Result<std::optional<NodeIdentity>> load_identity(const std::filesystem::path& data_dir);
/// Writes it atomically (temp file, fsync, rename) with mode 0600. Errors:
/// "agent.identity_write_failed" (io_error).
core::Result<void> save_identity(const std::filesystem::path& data_dir, const NodeIdentity& id);
/// Removes the identity (after the server refused it). Missing is fine.
void forget_identity(const std::filesystem::path& data_dir);

}  // namespace openstation::agent
