// GCC 12 reports a false -Wmismatched-new-delete on Asio coroutine frames (awaitable_frame_base
// has its own operator new/delete); the frames are allocated and freed by the same pair.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include "agent/model_sync.hpp"

#include "core/fs.hpp"
#include "core/json.hpp"
#include "core/thread_name.hpp"
#include "core/url.hpp"
#include "download/disk.hpp"
#include "download/fetch.hpp"
#include "http/client.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdio>
#include <set>

namespace openstation::agent {
namespace fs = std::filesystem;

namespace {

/// Percent-encodes everything but unreserved characters and '/'.
std::string encode_path(std::string_view p) {
  return core::percent_encode(p, true);
}

/// The error of a non-2xx answer: the server's code and message, in the category its status
/// means (401 → agent.unauthorized).
core::Error answer_error(int status, std::string_view body, std::string_view what) {
  if (status == 401) {
    return core::Error(core::Errc::unauthorized, "agent.unauthorized",
                       std::string(what) + ": the server refused the node token");
  }
  const auto e = http::parse_error_body(body);
  const auto category = status >= 500   ? core::Errc::unavailable
                        : status == 404 ? core::Errc::not_found
                        : status == 409 ? core::Errc::conflict
                                        : core::Errc::invalid_argument;
  return core::Error(category, e.found ? e.code : "agent.server_error",
                     std::string(what) + ": the server answered " + std::to_string(status) +
                         (e.found ? ": " + e.message : std::string()));
}

/// download::fetch_file speaks to a HubClient; this one reads from a ModelSource. Only fetch()
/// is used by fetch_file; the repository is the model id, the revision is unused.
class SourceHub final : public download::HubClient {
 public:
  explicit SourceHub(ModelSource& source) : source_(source) {}
  download::HubKind kind() const override { return download::HubKind::huggingface; }
  core::Result<std::vector<download::HubFile>> list_files(std::string_view,
                                                          std::string_view) override {
    return core::Error(core::Errc::unsupported, "model_sync.unsupported",
                       "the server's model store is listed through its manifest");
  }
  core::Result<void> fetch(std::string_view repo, std::string_view, std::string_view path,
                           std::int64_t offset, const download::ChunkSink& sink,
                           const std::function<bool()>& keep_going) override {
    return source_.fetch(repo, path, offset, sink, keep_going);
  }

 private:
  ModelSource& source_;
};

fs::path file_of(const ModelManifest& m, const ManifestFile& f) {
  return m.single_file ? fs::path(m.path) : fs::path(m.path) / f.path;
}

std::int64_t size_or(const fs::path& p, std::int64_t fallback) {
  std::error_code ec;
  const auto s = fs::file_size(p, ec);
  return ec ? fallback : static_cast<std::int64_t>(s);
}

std::string pulling_reason(std::int64_t done, std::int64_t total) {
  const int pct =
      total > 0 ? static_cast<int>(100.0 * static_cast<double>(done) / static_cast<double>(total))
                : 0;
  return "pulling model files from the server: " + format_bytes(done) + " of " +
         format_bytes(total) + " (" + std::to_string(pct) + "%)";
}

}  // namespace

std::string format_bytes(std::int64_t n) {
  static constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  if (n < 1024) return std::to_string(n) + " B";
  double v = static_cast<double>(n);
  int unit = -1;
  while (v >= 1024 && unit < 4) {
    v /= 1024;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", v, kUnits[unit]);
  return buf;
}

std::vector<std::string> rewrite_model_path(std::vector<std::string> argv,
                                            std::string_view server_path,
                                            std::string_view local_path) {
  if (server_path.empty() || local_path.empty() || server_path == local_path) return argv;
  const auto rewrite = [&](std::string_view v) -> std::optional<std::string> {
    if (v == server_path) return std::string(local_path);
    if (v.size() > server_path.size() && v.starts_with(server_path) &&
        v[server_path.size()] == '/') {
      return std::string(local_path) + std::string(v.substr(server_path.size()));
    }
    return std::nullopt;
  };
  for (auto& a : argv) {
    if (auto r = rewrite(a)) {
      a = *r;
      continue;
    }
    if (a.starts_with("-")) {
      if (const auto eq = a.find('='); eq != std::string::npos) {
        if (auto r = rewrite(std::string_view(a).substr(eq + 1))) a = a.substr(0, eq + 1) + *r;
      }
    }
  }
  return argv;
}

bool shared_with_server(const ModelManifest& m) {
  if (m.store_root.empty() || m.store_id.empty()) return false;
  const auto here = read_store_id(m.store_root);
  if (!here || *here != m.store_id) return false;
  for (const auto& f : m.files) {
    if (size_or(file_of(m, f), -1) != f.size) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// ServerModelSource

ServerModelSource::ServerModelSource(std::string server_url, http::TlsClientOptions tls,
                                     std::function<std::string()> token,
                                     std::chrono::milliseconds manifest_timeout,
                                     std::chrono::milliseconds read_timeout)
    : base_(std::move(server_url)),
      tls_(std::move(tls)),
      token_(std::move(token)),
      manifest_timeout_(manifest_timeout),
      read_timeout_(read_timeout) {
  while (!base_.empty() && base_.back() == '/') base_.pop_back();
}

core::Result<ModelManifest> ServerModelSource::manifest(std::string_view model_id) {
  http::Client client(tls_);
  http::Headers h;
  h.set("Authorization", "Bearer " + token_());
  h.set("Accept", "application/json");
  const std::string what = "the manifest of model " + std::string(model_id);
  auto res = client.request(
      "GET", base_ + std::string(kModelsPath) + "/" + encode_path(model_id) + "/manifest", h, {},
      manifest_timeout_);
  if (!res) return res.error();
  if (res->status != 200) return answer_error(res->status, res->body, what);
  auto m = parse_model_manifest(res->body);
  if (!m) {
    return core::Error(core::Errc::parse_error, "model_sync.bad_manifest",
                       what + " is not valid: " + m.error().message);
  }
  return m;
}

core::Result<void> ServerModelSource::fetch(std::string_view model_id, std::string_view path,
                                            std::int64_t offset, const download::ChunkSink& sink,
                                            const std::function<bool()>& keep_going) {
  auto url = http::parse_url(base_ + std::string(kModelsPath) + "/" + encode_path(model_id) +
                             "/files/" + encode_path(path));
  if (!url) return url.error();
  std::optional<http::TlsClientOptions> tls;
  if (url->scheme == "https") tls = tls_;
  http::Request req;
  req.method = "GET";
  req.target = url->target;
  req.headers.set("Authorization", "Bearer " + token_());
  req.headers.set("Connection", "close");
  if (offset > 0) req.headers.set("Range", "bytes=" + std::to_string(offset) + "-");
  const std::string what = "file " + std::string(path) + " of model " + std::string(model_id);

  http::asio::io_context ioc;
  core::Result<void> out =
      core::Error(core::Errc::internal, "http.internal", "the request did not complete");
  auto work = [&]() -> http::Awaitable<void> {
    auto conn = co_await http::Connection::connect(ioc.get_executor(), url->host, url->port,
                                                   read_timeout_, tls);
    if (!conn) {
      out = conn.error();
      co_return;
    }
    auto head = co_await conn->send(req, read_timeout_);
    if (!head) {
      out = head.error();
      co_return;
    }
    if (head->status != 200 && head->status != 206) {
      std::string body;
      while (body.size() < (64u << 10)) {
        auto piece = co_await conn->read_some(read_timeout_);
        if (!piece || piece->empty()) break;
        body += *piece;
      }
      out = answer_error(head->status, body, what);
      co_return;
    }
    // A 200 to a range request carries the whole file: drop the prefix we have.
    std::int64_t skip = head->status == 200 ? offset : 0;
    for (;;) {
      if (!keep_going()) {
        out = core::Error(core::Errc::unavailable, "hub.aborted", what + ": stopped");
        co_return;
      }
      auto piece = co_await conn->read_some(read_timeout_);
      if (!piece) {
        out = core::Error(core::Errc::unavailable, "hub.unavailable",
                          what + ": the transfer was cut (" + piece.error().message + ")");
        co_return;
      }
      if (piece->empty()) break;
      std::string_view b = *piece;
      if (skip > 0) {
        const auto n = std::min<std::int64_t>(skip, static_cast<std::int64_t>(b.size()));
        b.remove_prefix(static_cast<std::size_t>(n));
        skip -= n;
        if (b.empty()) continue;
      }
      if (!sink(b)) {
        out = core::Error(core::Errc::unavailable, "hub.aborted", what + ": stopped");
        co_return;
      }
    }
    out = {};
  };
  http::asio::co_spawn(ioc, std::move(work), http::asio::detached);
  ioc.run();
  return out;
}

// ---------------------------------------------------------------------------------------------
// ModelSync

struct ModelSync::Job {
  ModelSyncStatus status;
  bool running = false;
  std::chrono::steady_clock::time_point failed_at{};
};

ModelSync::ModelSync(ModelSyncOptions options, ModelSource& source, const core::Clock& clock)
    : options_(std::move(options)), source_(source), clock_(clock) {}

ModelSync::~ModelSync() {
  stop();
}

fs::path ModelSync::models_root() const {
  return options_.data_dir / "agent" / "models";
}

fs::path ModelSync::model_dir(const std::string& model_id) const {
  return models_root() / model_id;
}

std::optional<ModelSyncStatus> ModelSync::local_status(const std::string& model_id) const {
  const fs::path models = models_root();
  const auto read = [](const fs::path& p) -> std::optional<ModelManifest> {
    auto text = core::json::read_file(p, 64u << 20);
    if (!text) return std::nullopt;
    auto m = parse_model_manifest(*text);
    if (!m) return std::nullopt;
    return *m;
  };
  ModelSyncStatus ready;
  ready.state = ModelSyncStatus::State::ready;
  if (auto m = read(models / ".complete" / (model_id + ".json")); m && !m->files.empty()) {
    const fs::path local = model_dir(model_id);
    std::int64_t total = 0;
    for (const auto& f : m->files) {
      if (size_or(local / f.path, -1) != f.size) return std::nullopt;
      total += f.size;
    }
    ready.local_path = m->single_file ? (local / m->files.front().path).string() : local.string();
    ready.bytes_done = ready.bytes_total = total;
    return ready;
  }
  if (options_.always_pull) return std::nullopt;
  if (auto m = read(models / ".shared" / (model_id + ".json")); m && shared_with_server(*m)) {
    ready.shared = true;
    return ready;
  }
  return std::nullopt;
}

ModelSyncStatus ModelSync::request(const std::string& model_id, const std::string& server_path) {
  std::lock_guard lock(mutex_);
  auto& slot = jobs_[model_id];
  if (!slot) {
    // A model this node already has (pulled, or seen on shared storage) before this process
    // started: ready at once, without asking the server, so adopted instances keep running.
    if (auto known = local_status(model_id)) {
      slot = std::make_shared<Job>();
      slot->status = *known;
      return slot->status;
    }
  }
  if (slot) {
    auto& j = *slot;
    const bool retry = j.status.state == ModelSyncStatus::State::failed && !j.running &&
                       clock_.steady_now() - j.failed_at >= options_.failure_hold;
    if (!retry) return j.status;
    j.status = ModelSyncStatus{};
  } else {
    slot = std::make_shared<Job>();
  }
  if (stopping_) return slot->status;
  slot->running = true;
  slot->status.reason = "checking the model files of " + model_id + " on this node";
  auto job = slot;
  threads_.push_back(core::named_thread(
      "model-sync", [this, job, model_id, server_path] { run(job, model_id, server_path); }));
  return slot->status;
}

std::optional<ModelSyncStatus> ModelSync::status(const std::string& model_id) const {
  std::lock_guard lock(mutex_);
  const auto it = jobs_.find(model_id);
  if (it == jobs_.end()) return std::nullopt;
  return it->second->status;
}

bool ModelSync::wait_idle(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [this] {
    for (const auto& [_, j] : jobs_) {
      if (j->running) return false;
    }
    return true;
  });
}

void ModelSync::stop() {
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    threads.swap(threads_);
  }
  changed_.notify_all();
  for (auto& t : threads) {
    if (t.joinable()) t.join();
  }
}

bool ModelSync::pause(std::chrono::milliseconds d) {
  std::unique_lock lock(mutex_);
  return !changed_.wait_for(lock, d, [this] { return stopping_.load(); });
}

void ModelSync::set(Job& job, const ModelSyncStatus& s) {
  {
    std::lock_guard lock(mutex_);
    job.status = s;
  }
  changed_.notify_all();
}

void ModelSync::run(const std::shared_ptr<Job>& job, std::string model_id,
                    std::string server_path) {
  auto r = pull(*job, model_id, server_path);
  {
    std::lock_guard lock(mutex_);
    job->running = false;
    if (r) {
      job->status = *r;
    } else {
      job->status = ModelSyncStatus{};
      job->status.state = ModelSyncStatus::State::failed;
      job->status.code = r.error().code;
      job->status.reason =
          "pulling model " + model_id + " from the server failed: " + r.error().message;
      job->failed_at = clock_.steady_now();
    }
  }
  if (r) {
    spdlog::info("model {} is ready on this node ({})", model_id,
                 r->shared ? "on storage shared with the server" : "local copy " + r->local_path);
  } else if (!stopping_) {
    spdlog::warn("{}", job->status.reason);
  }
  ++version_;
  changed_.notify_all();
}

core::Result<ModelSyncStatus> ModelSync::pull(Job& job, const std::string& model_id,
                                              const std::string& server_path) {
  const auto stopped = [] {
    return core::Error(core::Errc::unavailable, "model_sync.stopped", "the agent is stopping");
  };
  // 1. The manifest (the server may be away for a while).
  core::Result<ModelManifest> manifest = core::Error(core::Errc::internal, "", "");
  for (unsigned attempt = 0;; ++attempt) {
    manifest = source_.manifest(model_id);
    if (manifest) break;
    const auto& e = manifest.error();
    if (e.category != core::Errc::unavailable) {
      if (e.code == "model_sync.bad_manifest") return e;
      return core::Error(e.category, "model_sync.refused",
                         "the server refused the model's files (" + e.code + "): " + e.message);
    }
    if (attempt >= options_.retries) {
      return core::Error(core::Errc::unavailable, "model_sync.unreachable",
                         "the server could not be reached after " + std::to_string(attempt + 1) +
                             " tries: " + e.message);
    }
    if (!pause(options_.retry_delay * (1 << attempt))) return stopped();
  }
  const ModelManifest& m = *manifest;
  if (m.model_id != model_id) {
    return core::Error(core::Errc::parse_error, "model_sync.bad_manifest",
                       "asked for model " + model_id + ", the server sent " + m.model_id);
  }
  if (m.single_file && m.files.size() != 1) {
    return core::Error(core::Errc::parse_error, "model_sync.bad_manifest",
                       "a single-file model must list exactly one file");
  }
  if (!server_path.empty() && m.path != server_path) {
    spdlog::warn("model {}: the assignment names {}, the server's manifest {}", model_id,
                 server_path, m.path);
  }

  // 2. Storage shared with the server: nothing to pull.
  ModelSyncStatus ready;
  ready.state = ModelSyncStatus::State::ready;
  if (!options_.always_pull && shared_with_server(m)) {
    ready.shared = true;
    const auto record = models_root() / ".shared" / (model_id + ".json");
    if (auto w = core::write_file_atomic(record, to_json(m)); !w) {
      spdlog::warn("cannot remember that model {} is shared: {}", model_id, w.error().message);
    }
    return ready;
  }

  // 3. An earlier pull.
  const fs::path local = model_dir(model_id);
  const fs::path staging = models_root() / ".staging" / model_id;
  const fs::path marker = models_root() / ".complete" / (model_id + ".json");
  ready.local_path = m.single_file ? (local / m.files.front().path).string() : local.string();
  std::int64_t total = 0;
  for (const auto& f : m.files) total += f.size;
  ready.bytes_done = ready.bytes_total = total;
  const std::string expected = to_json(m);
  const auto in_place = [&] {
    for (const auto& f : m.files) {
      if (size_or(local / f.path, -1) != f.size) return false;
    }
    return true;
  };
  if (auto text = core::json::read_file(marker, 64u << 20);
      text && *text == expected && in_place()) {
    return ready;
  }

  // 4. Clean up: no marker; files the manifest does not list go; finished files whose
  //    content is not the manifest's go (a model that changed on the server).
  std::error_code ec;
  fs::remove(marker, ec);
  std::set<std::string> listed;
  for (const auto& f : m.files) listed.insert(f.path);
  if (fs::is_directory(local, ec)) {
    std::vector<fs::path> extra;
    for (auto it = fs::recursive_directory_iterator(local, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it->is_directory(ec)) continue;
      if (!listed.contains(fs::relative(it->path(), local, ec).generic_string())) {
        extra.push_back(it->path());
      }
    }
    for (const auto& p : extra) fs::remove(p, ec);
  }
  for (const auto& f : m.files) {
    const auto p = local / f.path;
    if (size_or(p, -1) != f.size || f.sha256.empty()) continue;
    auto h = download::sha256_file(p);
    if (!h || *h != f.sha256) fs::remove(p, ec);
  }

  // 5. Free disk for what is missing.
  const download::FileTarget target{staging, local};
  std::int64_t done = 0;
  for (const auto& f : m.files) {
    done += download::bytes_on_disk(target, download::HubFile{f.path, f.size, f.sha256});
  }
  fs::create_directories(local, ec);
  if (ec) {
    return core::io_error("model_sync.io", "cannot create " + local.string() + ": " + ec.message());
  }
  if (auto free = download::free_bytes(local); free && *free < total - done) {
    return core::Error(core::Errc::resource_exhausted, "model_sync.disk_full",
                       "model " + m.name + " needs " + format_bytes(total - done) +
                           " more on this node, but only " + format_bytes(*free) +
                           " is free under " + local.string() +
                           "; free disk space on the node (agent data_dir)");
  }

  // 6. Pull each file.
  ModelSyncStatus progress;
  progress.state = ModelSyncStatus::State::pulling;
  progress.bytes_total = total;
  progress.bytes_done = done;
  progress.reason = pulling_reason(done, total);
  set(job, progress);
  spdlog::info("pulling model {} ({}) from the server into {}: {} of {} already here", m.name,
               model_id, local.string(), format_bytes(done), format_bytes(total));
  SourceHub hub(source_);
  std::int64_t last_report = done;
  const auto started = clock_.steady_now();
  std::int64_t pulled = 0;  // bytes received by this pull, for the rate limit
  const auto throttle = [&](std::int64_t n) {
    pulled += n;
    if (options_.max_bytes_per_second == 0) return;
    const auto due =
        started + std::chrono::milliseconds(
                      pulled * 1000 / static_cast<std::int64_t>(options_.max_bytes_per_second));
    const auto now = clock_.steady_now();
    if (due > now) {
      pause(std::chrono::duration_cast<std::chrono::milliseconds>(due - now));
    }
  };
  for (const auto& f : m.files) {
    const download::HubFile file{f.path, f.size, f.sha256};
    for (unsigned attempt = 0;; ++attempt) {
      const std::int64_t before = download::bytes_on_disk(target, file);
      std::int64_t got = 0;
      auto r = download::fetch_file(
          hub, model_id, "", file, target,
          [&](std::int64_t n) {
            got += n;
            throttle(n);
            if (done + got - last_report >= (1 << 20)) {
              last_report = done + got;
              progress.bytes_done = done + got;
              progress.reason = pulling_reason(progress.bytes_done, total);
              set(job, progress);
            }
          },
          [this] { return keep_going(); });
      if (r) {
        done += f.size - before;
        break;
      }
      if (stopping_) return stopped();
      const auto& e = r.error();
      done = 0;
      for (const auto& g : m.files) {
        done += download::bytes_on_disk(target, download::HubFile{g.path, g.size, g.sha256});
      }
      if (e.code == "download.disk_full") {
        return core::Error(core::Errc::resource_exhausted, "model_sync.disk_full",
                           e.message + " (node " + local.string() + ")");
      }
      const bool transient = e.category == core::Errc::unavailable;
      if (!transient) {
        const std::string code = e.code == "download.io" ? "model_sync.io" : "model_sync.refused";
        return core::Error(e.category, code, f.path + ": " + e.message);
      }
      if (attempt >= options_.retries) {
        const std::string code = e.code == "download.hash_mismatch"   ? "model_sync.hash_mismatch"
                                 : e.code == "download.size_mismatch" ? "model_sync.size_mismatch"
                                                                      : "model_sync.unreachable";
        return core::Error(
            core::Errc::unavailable, code,
            f.path + " failed " + std::to_string(attempt + 1) + " times; the last: " + e.message);
      }
      spdlog::warn("model {}: {} (try {} of {}); retrying from the bytes on disk", model_id,
                   e.message, attempt + 1, options_.retries + 1);
      if (!pause(options_.retry_delay * (1 << attempt))) return stopped();
    }
    progress.bytes_done = done;
    progress.reason = pulling_reason(done, total);
    set(job, progress);
  }

  // 7. Everything verified: the marker goes last.
  if (auto w = core::write_file_atomic(marker, expected); !w) {
    return core::io_error("model_sync.io",
                          "cannot write " + marker.string() + ": " + w.error().message);
  }
  fs::remove_all(staging, ec);
  return ready;
}

}  // namespace openstation::agent
