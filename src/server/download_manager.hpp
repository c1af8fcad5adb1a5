#pragma once
/// The model library's download queue (issue [6]): one model downloads at a time, in the order
/// submitted; pause, resume (start again), retry after a failure and cancel follow the pure rules
/// of download/queue.hpp. Everything lives in the store (the `downloads` row: state, position,
/// progress, error) and under the model store, so a restarted server resumes the queue:
///
///     <model_dir>/<name>/                 finished files only (renamed in when verified)
///     <model_dir>/.downloads/<dl id>/
///         job.json                        source, repository, revision, the hub's file list
///         staging/<path>.part             bytes so far
///         download.log                    the per-model log (GET /api/v1/downloads/{id}/log)
///
/// The worker thread:
///
///     wait ─► next_to_run(rows) ─► list files (once) ─► free disk check ─► fetch each file
///       ▲       (downloading first,      │                  │ download.disk_full    │ resume by
///       │        then lowest queued)     ▼                  ▼                       ▼ Range
///       └──── completed (model ready, meta from the files' headers) | failed(reason) | stopped
///
/// A transient hub failure (cut, stall, 5xx) is retried `attempts` times, each resuming from the
/// bytes on disk; then the download is failed with the reason, and a retry (resume) continues
/// from those bytes. A model is `ready` only when every file passed its size and SHA-256 check.
///
/// Durability: files are fetched with FetchOptions::sync = false, so a model is ready as soon as
/// its bytes are verified (as a plain download would end), and flush_files puts them on the disk
/// right after; the download is `completed` only then. A restart before that point (the row is
/// still `downloading`) re-checks every finished file with verify_in_place before going on, so
/// bytes a crash lost are fetched again instead of reaching an engine.
///
/// Thread rules: every public call blocks (store, files) — call from the API's worker pool.
/// Thread-safe. A pause or cancel of the running download returns once the worker let go of it.

#include "config/config.hpp"
#include "core/clock.hpp"
#include "core/error.hpp"
#include "download/hub.hpp"
#include "download/queue.hpp"
#include "store/store.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace openstation::server {

/// A download as the API shows it: the row, its model, and the live rate.
struct DownloadView {
  store::Download download{};
  store::Model model{};
  std::string source{};                 ///< "modelscope" / "huggingface"
  std::string revision{};               ///< the hub revision fetched
  double bytes_per_second = 0;          ///< over the last seconds; 0 when not running
  std::optional<double> eta_seconds{};  ///< while running at a non-zero rate
  double percent() const;
};

/// What to download.
struct DownloadRequest {
  std::string name;  ///< the library model name (unique)
  download::HubKind source = download::HubKind::modelscope;
  std::string repo;      ///< "owner/name"
  std::string revision;  ///< empty: the hub's default branch
  std::string actor;     ///< who asked, for the audit trail
};

class DownloadManager {
 public:
  struct Options {
    store::Store* store = nullptr;                     ///< required; outlives the manager
    const core::Clock* clock = nullptr;                ///< nullptr: the system clock
    config::HubConfig hub{};                           ///< endpoints, proxy, tokens
    std::filesystem::path model_dir;                   ///< the server's model store
    int attempts = 3;                                  ///< tries per run on transient hub failures
    std::chrono::milliseconds retry_backoff{2000};     ///< × the attempt number
    std::chrono::milliseconds progress_interval{500};  ///< how often progress is stored
    std::chrono::seconds stall_timeout{60};  ///< a transfer below 1 KiB/s this long is cut
  };

  explicit DownloadManager(Options options);
  ~DownloadManager();  ///< stop()
  DownloadManager(const DownloadManager&) = delete;
  DownloadManager& operator=(const DownloadManager&) = delete;

  /// Starts the worker; the queue as stored resumes (a row left `downloading` by a stopped
  /// process goes first).
  void start();
  /// Stops the worker; the running download keeps its state and bytes for the next start.
  void stop();

  /// Adds a model (status pending, source the hub) and its download at the end of the queue.
  /// Errors: model.bad_name, hub.bad_repo, model.name_taken (conflict), the store's.
  core::Result<DownloadView> submit(const DownloadRequest& request);
  /// Pause, resume (also: retry a failed one, restart a cancelled one) or cancel, by download
  /// id or model name. Cancel deletes the partial files, clears progress and log. Errors:
  /// download.not_found, download.bad_state, the store's.
  core::Result<DownloadView> command(std::string_view id_or_model, download::QueueCommand command,
                                     std::string_view actor);
  /// One download, by id or model name. download.not_found.
  core::Result<DownloadView> get(std::string_view id_or_model);
  /// Every download, in queue order (running first, then queued by position, then the rest).
  core::Result<std::vector<DownloadView>> list();
  /// The last `lines` lines of the download's log (0: all).
  core::Result<std::string> log(std::string_view id_or_model, std::size_t lines);
  /// Before a model is deleted: cancels its download (if any), removes its files from the model
  /// store and its download state. Does not touch the model row.
  core::Result<void> forget_model(const store::Model& model);

  /// The directory holding a download's job, staging files and log.
  std::filesystem::path work_dir(std::string_view download_id) const;

 private:
  struct Job;
  enum class Outcome { completed, failed, stopped };

  void run();
  /// `after_restart`: the row was downloading when the process stopped (finished files are
  /// re-checked before anything else).
  Outcome run_job(const store::Download& row, bool after_restart, std::string& error);
  core::Result<store::Download> find(std::string_view id_or_model);
  core::Result<std::vector<download::QueueItem>> queue_items();
  core::Result<DownloadView> view(const store::Download& d);
  void append_log(const std::string& id, const std::string& line);
  void store_progress(const std::string& id, std::int64_t done, bool force);
  void clear_partial(const store::Download& d);
  void set_model_status(const std::string& model_id, store::ModelStatus status,
                        const std::string& reason);

  Options options_;
  std::unique_ptr<core::Clock> owned_clock_;
  const core::Clock* clock_;

  std::mutex mu_;  ///< serialises queue changes; guards the members below
  std::condition_variable cv_;
  bool wake_ = true;
  bool stopping_ = false;
  std::string active_id_;
  std::string active_model_id_;
  std::atomic<bool> stop_active_{false};
  std::atomic<std::int64_t> active_bytes_{0};
  std::deque<std::pair<std::chrono::steady_clock::time_point, std::int64_t>> samples_;
  std::chrono::steady_clock::time_point last_store_{};
  std::thread worker_;
};

}  // namespace openstation::server
