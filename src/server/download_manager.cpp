#include "server/download_manager.hpp"

#include "agent/model_inspect.hpp"
#include "core/fs.hpp"
#include "core/strings.hpp"
#include "core/thread_name.hpp"
#include "download/disk.hpp"
#include "download/fetch.hpp"
#include "model/model_files.hpp"
#include "server/api/context.hpp"

#include <spdlog/spdlog.h>
#include <boost/json.hpp>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace openstation::server {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using download::HubFile;
using download::HubKind;
using store::DownloadState;

constexpr auto kRateWindow = std::chrono::seconds(5);

}  // namespace

/// What job.json holds: where the files come from and the hub's listing once fetched.
struct DownloadManager::Job {
  HubKind source = HubKind::modelscope;
  std::string model_id;  ///< the model the files are for (found again after the row is gone)
  std::string repo;
  std::string revision;
  bool listed = false;
  std::vector<HubFile> files;

  std::string to_json() const {
    json::array fa;
    for (const auto& f : files) {
      fa.push_back(json::object{{"path", f.path}, {"size", f.size}, {"sha256", f.sha256}});
    }
    return json::serialize(json::object{{"model_id", model_id},
                                        {"source", std::string(download::to_string(source))},
                                        {"repo", repo},
                                        {"revision", revision},
                                        {"listed", listed},
                                        {"files", std::move(fa)}});
  }
  static core::Result<Job> load(const fs::path& p) {
    std::ifstream in(p);
    if (!in) return core::io_error("download.io", "cannot read " + p.string());
    std::stringstream ss;
    ss << in.rdbuf();
    boost::system::error_code ec;
    auto v = json::parse(ss.str(), ec);
    if (ec || !v.is_object()) return core::io_error("download.io", p.string() + " is not JSON");
    const auto& o = v.as_object();
    Job j;
    try {
      auto src = download::parse_hub_kind(std::string(o.at("source").as_string()));
      if (!src) return src.error();
      j.source = *src;
      if (const auto* mid = o.if_contains("model_id"); mid != nullptr && mid->is_string()) {
        j.model_id = std::string(mid->as_string());
      }
      j.repo = std::string(o.at("repo").as_string());
      j.revision = std::string(o.at("revision").as_string());
      j.listed = o.at("listed").as_bool();
      for (const auto& f : o.at("files").as_array()) {
        const auto& fo = f.as_object();
        j.files.push_back(HubFile{std::string(fo.at("path").as_string()),
                                  fo.at("size").to_number<std::int64_t>(),
                                  std::string(fo.at("sha256").as_string())});
      }
    } catch (const std::exception& e) {
      return core::io_error("download.io", p.string() + " is damaged: " + e.what());
    }
    return j;
  }
};

double DownloadView::percent() const {
  if (download.bytes_total <= 0) return download.state == DownloadState::completed ? 100.0 : 0.0;
  return 100.0 * static_cast<double>(download.bytes_done) /
         static_cast<double>(download.bytes_total);
}

DownloadManager::DownloadManager(Options options) : options_(std::move(options)) {
  if (options_.clock == nullptr) owned_clock_ = std::make_unique<core::SystemClock>();
  clock_ = options_.clock != nullptr ? options_.clock : owned_clock_.get();
}

DownloadManager::~DownloadManager() {
  stop();
}

void DownloadManager::start() {
  std::lock_guard lock(mu_);
  if (worker_.joinable()) return;
  stopping_ = false;
  wake_ = true;
  worker_ = core::named_thread("downloads", [this] { run(); });
}

void DownloadManager::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    stop_active_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

fs::path DownloadManager::work_dir(std::string_view download_id) const {
  return options_.model_dir / ".downloads" / std::string(download_id);
}

void DownloadManager::append_log(const std::string& id, const std::string& line) {
  const fs::path p = work_dir(id) / "download.log";
  std::error_code ec;
  fs::create_directories(p.parent_path(), ec);
  std::ofstream out(p, std::ios::app);
  out << format_time(clock_->now()) << " " << line << "\n";
}

core::Result<store::Download> DownloadManager::find(std::string_view id_or_model) {
  store::Store& s = *options_.store;
  if (auto d = s.downloads().get(id_or_model); d)
    return *d;
  else if (d.error().code != "store.not_found")
    return d.error();
  auto m = s.models().get_by_name(id_or_model);
  if (!m && m.error().code != "store.not_found") return m.error();
  if (!m) m = s.models().get(id_or_model);
  if (m) {
    store::DownloadFilter f;
    f.model_id = m->id;
    auto rows = s.downloads().list(f, store::PageRequest{0, {}});
    if (!rows) return rows.error();
    if (!rows->items.empty()) return rows->items.back();
  }
  return core::not_found("download.not_found",
                         "There is no download '" + std::string(id_or_model) +
                             "' (by id or model name); GET /api/v1/downloads lists them.",
                         "id");
}

core::Result<std::vector<download::QueueItem>> DownloadManager::queue_items() {
  auto rows = options_.store->downloads().list({}, store::PageRequest{0, {}});
  if (!rows) return rows.error();
  std::vector<download::QueueItem> items;
  for (const auto& d : rows->items) items.push_back({d.id, d.state, d.position});
  return items;
}

core::Result<DownloadView> DownloadManager::view(const store::Download& d) {
  DownloadView v;
  v.download = d;
  auto m = options_.store->models().get(d.model_id);
  if (!m) return m.error();
  v.model = *m;
  v.source = std::string(store::to_string(m->source));
  if (auto job = Job::load(work_dir(d.id) / "job.json")) v.revision = job->revision;
  std::lock_guard lock(mu_);
  if (active_id_ == d.id && d.state == DownloadState::downloading) {
    v.download.bytes_done = std::max(v.download.bytes_done, active_bytes_.load());
    if (samples_.size() >= 2) {
      const auto dt = std::chrono::duration<double>(samples_.back().first - samples_.front().first);
      if (dt.count() > 0) {
        v.bytes_per_second =
            static_cast<double>(samples_.back().second - samples_.front().second) / dt.count();
      }
    }
    if (v.bytes_per_second > 0 && v.download.bytes_total > 0) {
      v.eta_seconds =
          static_cast<double>(v.download.bytes_total - v.download.bytes_done) / v.bytes_per_second;
    }
  }
  return v;
}

void DownloadManager::set_model_status(const std::string& model_id, store::ModelStatus status,
                                       const std::string& reason) {
  auto m = options_.store->models().get(model_id);
  if (!m) return;
  m->status = status;
  m->status_reason = reason;
  if (auto u = options_.store->models().update(*m); !u) {
    spdlog::warn("downloads: cannot update model {}: {}", model_id, u.error().message);
  }
}

core::Result<DownloadView> DownloadManager::submit(const DownloadRequest& request) {
  if (auto ok = download::check_repo(request.repo); !ok) return ok.error();
  Job job;
  job.source = request.source;
  job.repo = request.repo;
  job.revision = request.revision.empty() ? std::string(download::default_revision(request.source))
                                          : request.revision;
  store::Download created;
  {
    std::lock_guard lock(mu_);
    store::Store& s = *options_.store;
    auto items = queue_items();
    if (!items) return items.error();
    auto tx = s.transaction([&](store::Store& t) -> core::Result<void> {
      store::Model m;
      m.name = request.name;
      m.source = request.source == HubKind::modelscope ? store::ModelSource::modelscope
                                                       : store::ModelSource::huggingface;
      m.repo = request.repo;
      m.path = (options_.model_dir / request.name).string();
      m.status = store::ModelStatus::pending;
      m.status_reason = "queued for download";
      auto cm = t.models().create(m);
      if (!cm) {
        if (cm.error().code == "store.conflict") {
          return core::Error(core::Errc::conflict, "model.name_taken",
                             "a model named \"" + request.name +
                                 "\" is already in the library; choose another name (\"name\") "
                                 "or delete it first",
                             "name");
        }
        return cm.error();
      }
      store::Download d;
      d.model_id = cm->id;
      d.state = DownloadState::queued;
      d.position = download::submit_position(*items);
      auto cd = t.downloads().create(d);
      if (!cd) return cd.error();
      created = *cd;
      created.log_path = (work_dir(cd->id) / "download.log").string();
      auto u = t.downloads().update(created);
      if (!u) return u.error();
      created = *u;
      return ApiContext::audit_in(t, request.actor, "model.download", "model", cm->id,
                                  {{"name", cm->name},
                                   {"source", std::string(download::to_string(request.source))},
                                   {"repo", request.repo},
                                   {"revision", job.revision}});
    });
    if (!tx) return tx.error();
    job.model_id = created.model_id;
    std::error_code ec;
    fs::create_directories(work_dir(created.id), ec);
    if (auto w = core::write_file_atomic(work_dir(created.id) / "job.json", job.to_json()); !w) {
      return w.error();
    }
    append_log(created.id, "queued: " + std::string(download::to_string(request.source)) + " " +
                               request.repo + " at " + job.revision + " as model " + request.name);
    wake_ = true;
  }
  cv_.notify_all();
  return view(created);
}

void DownloadManager::clear_partial(const store::Download& d) {
  std::error_code ec;
  fs::remove_all(work_dir(d.id) / "staging", ec);
  auto m = options_.store->models().get(d.model_id);
  if (m && !m->path.empty() && fs::path(m->path).parent_path() == options_.model_dir) {
    fs::remove_all(m->path, ec);
  }
  if (auto job = Job::load(work_dir(d.id) / "job.json")) {
    job->listed = false;
    job->files.clear();
    (void)core::write_file_atomic(work_dir(d.id) / "job.json", job->to_json());
  }
  std::ofstream(work_dir(d.id) / "download.log", std::ios::trunc);
}

core::Result<DownloadView> DownloadManager::command(std::string_view id_or_model,
                                                    download::QueueCommand command,
                                                    std::string_view actor) {
  using download::QueueCommand;
  store::Download row;
  {
    std::unique_lock lock(mu_);
    auto found = find(id_or_model);
    if (!found) return found.error();
    auto items = queue_items();
    if (!items) return items.error();
    auto next = download::apply(*items, found->id, command);
    if (!next) return next.error();
    row = *found;
    row.state = next->state;
    row.position = next->position;
    if (command == QueueCommand::resume) {
      row.error.clear();
      row.finished_at.reset();
    }
    auto u = options_.store->downloads().update(row);
    if (!u) return u.error();
    row = *u;
    if (active_id_ == row.id) {
      stop_active_ = true;
      cv_.notify_all();
      cv_.wait(lock, [&] { return active_id_ != row.id; });
      auto fresh = options_.store->downloads().get(row.id);
      if (fresh) row = *fresh;
      // The worker may have finished meanwhile (the command came while it flushed a ready
      // model): the model is whole, nothing to pause or cancel.
      if (row.state == DownloadState::completed && command != QueueCommand::resume) {
        return core::Error(core::Errc::conflict, "download.bad_state",
                           "cannot " + std::string(download::to_string(command)) + " download " +
                               row.id + ": it completed before the " +
                               std::string(download::to_string(command)) +
                               " took effect; delete the model to remove its files");
      }
    }
    append_log(row.id, std::string(download::to_string(command)) + " by " + std::string(actor));
    if (command == QueueCommand::cancel) {
      clear_partial(row);
      row.bytes_done = 0;
      row.files_done = 0;
      row.error.clear();
      row.started_at.reset();
      row.finished_at.reset();
      if (auto c = options_.store->downloads().update(row); c) row = *c;
      set_model_status(row.model_id, store::ModelStatus::failed, "download cancelled");
    } else if (command == QueueCommand::pause) {
      set_model_status(row.model_id, store::ModelStatus::pending, "download paused");
    } else {
      set_model_status(row.model_id, store::ModelStatus::pending, "queued for download");
    }
    (void)ApiContext::audit_in(*options_.store, actor,
                               "download." + std::string(download::to_string(command)), "download",
                               row.id, {});
    wake_ = true;
  }
  cv_.notify_all();
  return view(row);
}

core::Result<DownloadView> DownloadManager::get(std::string_view id_or_model) {
  store::Download row;
  {
    std::lock_guard lock(mu_);
    auto found = find(id_or_model);
    if (!found) return found.error();
    row = *found;
  }
  return view(row);
}

core::Result<std::vector<DownloadView>> DownloadManager::list() {
  auto rows = options_.store->downloads().list({}, store::PageRequest{0, {}});
  if (!rows) return rows.error();
  auto rank = [](DownloadState s) {
    switch (s) {
      case DownloadState::downloading: return 0;
      case DownloadState::queued: return 1;
      case DownloadState::paused: return 2;
      case DownloadState::failed: return 3;
      default: return 4;
    }
  };
  auto items = rows->items;
  std::stable_sort(items.begin(), items.end(), [&](const auto& a, const auto& b) {
    if (rank(a.state) != rank(b.state)) return rank(a.state) < rank(b.state);
    return a.position < b.position;
  });
  std::vector<DownloadView> out;
  for (const auto& d : items) {
    auto v = view(d);
    if (!v) return v.error();
    out.push_back(std::move(*v));
  }
  return out;
}

core::Result<std::string> DownloadManager::log(std::string_view id_or_model, std::size_t lines) {
  auto found = find(id_or_model);
  if (!found) return found.error();
  std::ifstream in(work_dir(found->id) / "download.log");
  std::vector<std::string> all;
  for (std::string line; std::getline(in, line);) all.push_back(line);
  const std::size_t from = lines == 0 || all.size() <= lines ? 0 : all.size() - lines;
  std::string out;
  for (std::size_t i = from; i < all.size(); ++i) out += all[i] + "\n";
  return out;
}

core::Result<void> DownloadManager::forget_model(const store::Model& model) {
  std::unique_lock lock(mu_);
  // The model row may already be gone (its download rows with it): the running download and the
  // work directories are found by the model id they were made for.
  if (!active_id_.empty() && active_model_id_ == model.id) {
    const std::string id = active_id_;
    if (auto row = options_.store->downloads().get(id)) {
      row->state = DownloadState::cancelled;
      (void)options_.store->downloads().update(*row);
    }
    stop_active_ = true;
    cv_.notify_all();
    cv_.wait(lock, [&] { return active_id_ != id; });
  }
  std::error_code ec;
  const fs::path root = options_.model_dir / ".downloads";
  if (fs::is_directory(root, ec)) {
    for (const auto& e : fs::directory_iterator(root, ec)) {
      auto job = Job::load(e.path() / "job.json");
      if (job && job->model_id == model.id) fs::remove_all(e.path(), ec);
    }
  }
  if (model.source == store::ModelSource::modelscope ||
      model.source == store::ModelSource::huggingface) {
    const fs::path p = model.path;
    if (!p.empty() && p.parent_path() == options_.model_dir) fs::remove_all(p, ec);
  }
  return {};
}

void DownloadManager::store_progress(const std::string& id, std::int64_t done, bool force) {
  const auto now = clock_->steady_now();
  std::lock_guard lock(mu_);
  samples_.emplace_back(now, done);
  while (samples_.size() > 2 && now - samples_.front().first > kRateWindow) samples_.pop_front();
  if (!force && now - last_store_ < options_.progress_interval) return;
  last_store_ = now;
  auto row = options_.store->downloads().get(id);
  if (!row) return;
  row->bytes_done = done;
  (void)options_.store->downloads().update(*row);
}

void DownloadManager::run() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    cv_.wait(lock, [&] { return stopping_ || wake_; });
    wake_ = false;
    while (!stopping_) {
      auto items = queue_items();
      if (!items) {
        spdlog::error("downloads: cannot read the queue: {}", items.error().message);
        break;
      }
      auto next = download::next_to_run(*items);
      if (!next) break;
      auto row = options_.store->downloads().get(*next);
      if (!row) break;
      const bool resumed_after_restart = row->state == DownloadState::downloading;
      row->state = DownloadState::downloading;
      if (!row->started_at) row->started_at = clock_->now();
      auto u = options_.store->downloads().update(*row);
      if (!u) {
        spdlog::error("downloads: cannot start {}: {}", row->id, u.error().message);
        break;
      }
      set_model_status(row->model_id, store::ModelStatus::downloading, "");
      active_id_ = row->id;
      active_model_id_ = row->model_id;
      stop_active_ = false;
      active_bytes_ = row->bytes_done;
      samples_.clear();
      append_log(row->id, resumed_after_restart ? "resuming after a restart" : "started");
      lock.unlock();
      std::string error;
      const Outcome outcome = run_job(*u, resumed_after_restart, error);
      lock.lock();
      auto fresh = options_.store->downloads().get(active_id_);
      if (fresh) {
        fresh->bytes_done = std::max<std::int64_t>(active_bytes_.load(), 0);
        if (outcome == Outcome::completed) {
          fresh->state = DownloadState::completed;
          fresh->finished_at = clock_->now();
          fresh->error.clear();
        } else if (outcome == Outcome::failed && fresh->state == DownloadState::downloading) {
          fresh->state = DownloadState::failed;
          fresh->error = error;
          fresh->finished_at = clock_->now();
          set_model_status(fresh->model_id, store::ModelStatus::failed, error);
        }
        (void)options_.store->downloads().update(*fresh);
      }
      active_id_.clear();
      active_model_id_.clear();
      samples_.clear();
      cv_.notify_all();
    }
  }
}

DownloadManager::Outcome DownloadManager::run_job(const store::Download& row, bool after_restart,
                                                  std::string& error) {
  const fs::path work = work_dir(row.id);
  auto fail = [&](const core::Error& e) {
    error = e.code + ": " + e.message;
    append_log(row.id, "failed: " + error);
    return Outcome::failed;
  };
  auto job = Job::load(work / "job.json");
  if (!job) return fail(job.error());
  auto model = options_.store->models().get(row.model_id);
  if (!model) return fail(model.error());
  auto opts = download::hub_options(options_.hub, job->source);
  opts.low_speed_time = options_.stall_timeout;
  auto hub = download::make_hub_client(job->source, opts);
  const auto keep_going = [&] { return !stop_active_.load(); };
  // Files are made durable after the model is ready (see the header), so a restart before that
  // may have lost some of their bytes: check what is in place before trusting it.
  bool recheck = after_restart && job->listed;
  download::FetchOptions fetch_options;
  fetch_options.sync = false;

  for (int attempt = 1;; ++attempt) {
    core::Result<void> r = {};
    if (!job->listed) {
      auto files = hub->list_files(job->repo, job->revision);
      if (files) {
        job->files = std::move(*files);
        job->listed = true;
        if (auto w = core::write_file_atomic(work / "job.json", job->to_json()); !w) {
          return fail(w.error());
        }
        std::int64_t total = 0;
        for (const auto& f : job->files) total += f.size;
        append_log(row.id, "listed " + std::to_string(job->files.size()) + " files, " +
                               core::with_commas(total) + " bytes");
      } else {
        r = files.error();
      }
    }
    if (r && job->listed) {
      const download::FileTarget target{work / "staging", fs::path(model->path)};
      if (recheck) {
        recheck = false;
        append_log(row.id, "re-checking the files finished before the restart");
        for (const auto& f : job->files) {
          if (!keep_going()) break;
          auto v = download::verify_in_place(target, f);
          if (!v && v.error().code == "download.io") return fail(v.error());
          if (!v) append_log(row.id, v.error().message);
        }
      }
      std::int64_t total = 0;
      std::int64_t done = 0;
      std::int64_t files_done = 0;
      for (const auto& f : job->files) {
        total += f.size;
        const auto have = download::bytes_on_disk(target, f);
        done += have;
        std::error_code ec;
        if (fs::exists(target.dest_dir / f.path, ec) && have == f.size) ++files_done;
      }
      {
        std::lock_guard lock(mu_);
        if (auto d = options_.store->downloads().get(row.id)) {
          d->bytes_total = total;
          d->files_total = static_cast<std::int64_t>(job->files.size());
          d->bytes_done = done;
          d->files_done = files_done;
          (void)options_.store->downloads().update(*d);
        }
      }
      active_bytes_ = done;
      auto free = download::free_bytes(options_.model_dir);
      if (!free) return fail(free.error());
      if (total - done > *free) {
        return fail(core::Error(
            core::Errc::resource_exhausted, "download.disk_full",
            "the model needs " + core::with_commas(total - done) + " more bytes but only " +
                core::with_commas(*free) + " are free on " + options_.model_dir.string() +
                "; free space (or set server.model_dir to a larger disk) and retry"));
      }
      for (const auto& f : job->files) {
        if (!keep_going()) break;
        std::error_code ec;
        if (download::bytes_on_disk(target, f) == f.size &&
            fs::exists(target.dest_dir / f.path, ec)) {
          continue;
        }
        r = download::fetch_file(
            *hub, job->repo, job->revision, f, target,
            [&](std::int64_t n) { store_progress(row.id, active_bytes_ += n, false); }, keep_going,
            fetch_options);
        if (!r) break;
        ++files_done;
        append_log(row.id, "verified " + f.path + " (" + core::with_commas(f.size) + " bytes" +
                               (f.sha256.empty() ? "" : ", sha256 " + f.sha256) + ")");
        std::lock_guard lock(mu_);
        if (auto d = options_.store->downloads().get(row.id)) {
          d->files_done = files_done;
          d->bytes_done = active_bytes_;
          (void)options_.store->downloads().update(*d);
        }
      }
    }
    if (!keep_going()) {
      append_log(row.id, "stopped at " + core::with_commas(active_bytes_) + " bytes");
      return Outcome::stopped;
    }
    if (r) break;
    const bool transient =
        r.error().code == "hub.unavailable" || r.error().code == "download.size_mismatch";
    if (!transient || attempt >= options_.attempts) return fail(r.error());
    append_log(row.id, "attempt " + std::to_string(attempt) + " failed (" + r.error().message +
                           "); resuming from the bytes on disk");
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, options_.retry_backoff * attempt, [&] { return stop_active_.load(); });
  }

  // Every file is in place and verified: describe the model and mark it ready.
  store_progress(row.id, active_bytes_, true);
  auto m = options_.store->models().get(row.model_id);
  if (!m) return fail(m.error());
  std::error_code ec;
  fs::remove_all(work / "staging", ec);
  std::int64_t size = 0;
  for (const auto& f : job->files) size += f.size;
  m->size_bytes = size;
  m->status = store::ModelStatus::ready;
  m->status_reason.clear();
  if (auto info = model::inspect_model_path(m->path)) {
    info->path = m->path;
    m->format = info->format == model::WeightFormat::gguf          ? "gguf"
                : info->format == model::WeightFormat::safetensors ? "safetensors"
                                                                   : "unknown";
    m->meta_json = agent::model_info_to_json(*info);
  } else {
    append_log(row.id, "note: the files' headers could not be read (" + info.error().message +
                           "); the model has no estimated requirements");
  }
  if (auto u = options_.store->models().update(*m); !u) return fail(u.error());
  append_log(row.id, "ready: " + std::to_string(job->files.size()) + " files, " +
                         core::with_commas(size) + " bytes verified at " + m->path);
  // Now onto the disk; the download is completed only then (a restart before re-checks).
  const auto flush_started = std::chrono::steady_clock::now();
  if (auto f = download::flush_files(fs::path(m->path), job->files); !f) return fail(f.error());
  append_log(row.id, "completed: flushed to disk in " +
                         std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                            std::chrono::steady_clock::now() - flush_started)
                                            .count()) +
                         " ms");
  return Outcome::completed;
}

}  // namespace openstation::server
