#pragma once
/// Node sync: before an instance starts on a node that lacks its model's files, the agent pulls
/// them from the server's model store. docs/models.md ("Node sync") is the user-facing story.
///
///     request(model id, server path)           (non-blocking; one job per model per node)
///       │ new job → its own thread:
///       ▼
///     manifest ── GET /api/v1/agent/models/{id}/manifest (retried while the server is away)
///       │ the store's marker at store_root has the manifest's store_id here, and every file is
///       │ at `path` with its size → shared storage: ready, nothing pulled, the path is used as is
///       │ <data>/agent/models/.complete/<id>.json equals the manifest and every file is in place →
///       │ ready (an earlier pull)
///       ▼ free disk ≥ bytes still missing, else failed (model_sync.disk_full)
///     pulling ── each file: download::fetch_file (Range from the .part's size, SHA-256
///       │        streamed, size and hash checked, rename into place), retried
///       ▼
///     ready: <data>/agent/models/<id>/ (a directory model) or <data>/agent/models/<id>/<file
///     name>; the
///            completion marker is written last, so a half-pulled model is never used
///
///     <data>/agent/models/<id>/...                 the verified files only
///     <data>/agent/models/.staging/<id>/<path>.part  bytes so far (an agent restart resumes them)
///     <data>/agent/models/.complete/<id>.json      the manifest the files match (written last)
///     <data>/agent/models/.shared/<id>.json        the manifest of a model seen on shared storage
///
/// A model with a completion marker (or a shared record that still holds) is ready at once on
/// the first request of a new agent process, without asking the server.
///
/// Error codes (in ModelSyncStatus::code): model_sync.unreachable (the server could not be
/// reached within the retries), model_sync.refused (the server will not serve the model: not
/// ready, on a node, gone), model_sync.bad_manifest, model_sync.disk_full,
/// model_sync.hash_mismatch (after the retries), model_sync.size_mismatch, model_sync.io.
/// A failed model is not retried until `failure_hold` passed (the server replaces the failed
/// instance; its next request starts again from the bytes on disk).
///
/// Thread rules: every public function is thread-safe; jobs run on their own threads, joined
/// by stop() (the destructor).

#include "agent/protocol.hpp"
#include "core/clock.hpp"
#include "core/error.hpp"
#include "download/hub.hpp"
#include "http/tls.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace openstation::agent {

/// Where a node pulls a model's files from: the server (ServerModelSource) or a test's fake.
/// Calls block; they may come from several job threads at once.
class ModelSource {
 public:
  virtual ~ModelSource() = default;
  /// The model's manifest. Errors: unavailable ones when the server cannot be reached (retried),
  /// others (a refusal) are final.
  virtual core::Result<ModelManifest> manifest(std::string_view model_id) = 0;
  /// Streams file `path` of the model from byte `offset` into `sink` (download::HubClient's
  /// fetch contract: hub.unavailable for a cut or a stall, hub.aborted when `keep_going` or the
  /// sink says stop).
  virtual core::Result<void> fetch(std::string_view model_id, std::string_view path,
                                   std::int64_t offset, const download::ChunkSink& sink,
                                   const std::function<bool()>& keep_going) = 0;
};

/// The server's agent endpoints (/api/v1/agent/models/...) over HTTP(S) with the node token.
class ServerModelSource final : public ModelSource {
 public:
  /// `token` returns the current node token (it changes when the agent registers again).
  ServerModelSource(std::string server_url, http::TlsClientOptions tls,
                    std::function<std::string()> token,
                    std::chrono::milliseconds manifest_timeout = std::chrono::minutes(30),
                    std::chrono::milliseconds read_timeout = std::chrono::seconds(60));
  core::Result<ModelManifest> manifest(std::string_view model_id) override;
  core::Result<void> fetch(std::string_view model_id, std::string_view path, std::int64_t offset,
                           const download::ChunkSink& sink,
                           const std::function<bool()>& keep_going) override;

 private:
  std::string base_;
  http::TlsClientOptions tls_;
  std::function<std::string()> token_;
  std::chrono::milliseconds manifest_timeout_;
  std::chrono::milliseconds read_timeout_;
};

/// What ModelSync does.
struct ModelSyncOptions {
  /// Files go to <data_dir>/agent/models/ (under agent/, so an all-in-one process's agent never
  /// mixes its copies with the server's model store, <data_dir>/models by default).
  std::filesystem::path data_dir;
  /// false ("auto"): the server's copy is used where the node shares its storage; true
  /// ("always", config agent.model_sync): the node always keeps its own copy.
  bool always_pull = false;
  unsigned retries = 3;  ///< per file (cuts, stalls, hash mismatches) and for the manifest
  std::chrono::milliseconds retry_delay{std::chrono::seconds(2)};  ///< doubled per retry
  std::chrono::milliseconds failure_hold{std::chrono::seconds(30)};
  /// At most this many bytes per second per pull (config agent.model_sync_rate), so a pull
  /// leaves room on the management network; 0: no limit.
  std::uint64_t max_bytes_per_second = 0;
};

/// Where a model stands on this node.
struct ModelSyncStatus {
  enum class State { checking, pulling, ready, failed };
  State state = State::checking;
  /// When ready: the node's copy to run from; empty when the server's path is used as is
  /// (shared storage).
  std::string local_path;
  bool shared = false;
  std::int64_t bytes_done = 0;
  std::int64_t bytes_total = 0;
  std::string reason;  ///< "pulling model files from the server: 1.2 GiB of 3.4 GiB (35%)", …
  std::string code;    ///< the error code when failed
  bool operator==(const ModelSyncStatus&) const = default;
};

/// Pulls models' files from a ModelSource, one job per model.
class ModelSync {
 public:
  ModelSync(ModelSyncOptions options, ModelSource& source, const core::Clock& clock);
  ~ModelSync();  ///< stop()
  ModelSync(const ModelSync&) = delete;
  ModelSync& operator=(const ModelSync&) = delete;

  /// The model's status; starts its job when there is none (or when a failure's hold expired).
  ModelSyncStatus request(const std::string& model_id, const std::string& server_path);
  /// The status without starting anything; nullopt when the model has no job.
  std::optional<ModelSyncStatus> status(const std::string& model_id) const;
  /// Grows whenever a job reaches ready or failed (the daemon re-applies its assignments).
  std::uint64_t version() const { return version_.load(); }
  /// Blocks until no job is checking or pulling, or `timeout` passed (tests). True when idle.
  bool wait_idle(std::chrono::milliseconds timeout) const;
  /// Stops every job (partial files stay for the next start) and joins their threads.
  void stop();

  /// Where the node's copy of a model lives: <data_dir>/agent/models/<model id>.
  std::filesystem::path model_dir(const std::string& model_id) const;
  /// <data_dir>/agent/models.
  std::filesystem::path models_root() const;

 private:
  struct Job;
  /// Ready from what is on disk alone (a completion marker with its files in place, or a
  /// shared-storage record that still holds); nullopt otherwise.
  std::optional<ModelSyncStatus> local_status(const std::string& model_id) const;
  void run(const std::shared_ptr<Job>& job, std::string model_id, std::string server_path);
  core::Result<ModelSyncStatus> pull(Job& job, const std::string& model_id,
                                     const std::string& server_path);
  void set(Job& job, const ModelSyncStatus& s);
  bool keep_going() const { return !stopping_.load(); }
  bool pause(std::chrono::milliseconds d);

  ModelSyncOptions options_;
  ModelSource& source_;
  const core::Clock& clock_;
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  std::map<std::string, std::shared_ptr<Job>> jobs_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> version_{0};
};

/// The assignment's argv with the server's model path replaced by the node's copy: elements
/// equal to `server_path`, starting with "<server_path>/", or of the form "--flag=<those>".
std::vector<std::string> rewrite_model_path(std::vector<std::string> argv,
                                            std::string_view server_path,
                                            std::string_view local_path);

/// Whether the node sees the manifest's files where the server has them: the store marker at
/// store_root holds the manifest's store_id, and every file is at `path` with its size.
bool shared_with_server(const ModelManifest& m);

/// "1.2 GiB" (binary units, one decimal above bytes).
std::string format_bytes(std::int64_t n);

}  // namespace openstation::agent
