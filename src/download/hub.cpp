#include "download/hub.hpp"

#include "core/strings.hpp"
#include "core/url.hpp"

#include <curl/curl.h>
#include <boost/json.hpp>

#include <algorithm>
#include <cctype>
#include <mutex>

namespace openstation::download {
namespace {

namespace json = boost::json;

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string escape_segment(std::string_view s) {
  return core::percent_encode(s);
}

/// Escapes each segment of a '/'-separated path, keeping the slashes.
std::string escape_path(std::string_view p) {
  std::string out;
  std::size_t start = 0;
  while (true) {
    const auto slash = p.find('/', start);
    out +=
        escape_segment(p.substr(start, slash == std::string_view::npos ? p.npos : slash - start));
    if (slash == std::string_view::npos) break;
    out += '/';
    start = slash + 1;
  }
  return out;
}

std::string trim_slash(std::string s) {
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

struct CurlFree {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistFree {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

/// One GET with libcurl: the body goes to `on_body` (false stops), headers are collected.
struct Transfer {
  const HubOptions& options;
  std::function<bool(std::string_view)> on_body;
  std::function<bool()> keep_going{};
  std::vector<std::string> headers{};
  long status = 0;
  bool stopped_by_sink = false;
  bool status_failed = false;
  std::string error_body{};

  static std::size_t write_cb(char* p, std::size_t size, std::size_t n, void* self) {
    auto* t = static_cast<Transfer*>(self);
    const std::size_t len = size * n;
    if (t->status_failed) {
      if (t->error_body.size() < 4096) t->error_body.append(p, std::min<std::size_t>(len, 4096));
      return len;
    }
    if (!t->on_body(std::string_view(p, len))) {
      t->stopped_by_sink = true;
      return 0;  // CURLE_WRITE_ERROR
    }
    return len;
  }
  static int progress_cb(void* self, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    auto* t = static_cast<Transfer*>(self);
    if (t->keep_going && !t->keep_going()) {
      t->stopped_by_sink = true;
      return 1;  // CURLE_ABORTED_BY_CALLBACK
    }
    return 0;
  }
  static std::size_t header_cb(char* p, std::size_t size, std::size_t n, void* self) {
    auto* t = static_cast<Transfer*>(self);
    std::string line(p, size * n);
    while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.pop_back();
    if (core::starts_with(line, "HTTP/")) {
      t->headers.clear();  // a redirect's or 100-continue's headers are not the final ones
      const auto sp = line.find(' ');
      if (sp != std::string::npos) t->status = std::atol(line.c_str() + sp + 1);
      t->status_failed = t->status >= 400;
    } else if (!line.empty()) {
      t->headers.push_back(std::move(line));
    }
    return size * n;
  }

  std::optional<std::string> header(std::string_view name) const {
    for (const auto& h : headers) {
      const auto colon = h.find(':');
      if (colon == std::string::npos) continue;
      if (core::to_lower(h.substr(0, colon)) == core::to_lower(name)) {
        return core::trim(std::string_view(h).substr(colon + 1));
      }
    }
    return std::nullopt;
  }

  /// Runs the GET. `what` names the thing fetched in error messages.
  /// `range_end` (exclusive) bounds the Range request; -1: to the end of the file.
  /// `reuse`: an easy handle whose live connection may serve this request (reset here first);
  /// null: a fresh one.
  core::Result<void> run(const std::string& url, std::int64_t range_from, std::string_view what,
                         std::int64_t range_end = -1, CURL* reuse = nullptr) {
    global_init();
    std::unique_ptr<CURL, CurlFree> owned(reuse == nullptr ? curl_easy_init() : nullptr);
    if (reuse != nullptr) curl_easy_reset(reuse);
    CURL* const handle = reuse != nullptr ? reuse : owned.get();
    if (handle == nullptr) {
      return core::Error(core::Errc::internal, "hub.internal", "curl_easy_init failed");
    }
    std::unique_ptr<curl_slist, SlistFree> list;
    auto add_header = [&](const std::string& h) {
      list.reset(curl_slist_append(list.release(), h.c_str()));
    };
    if (!options.token.empty()) add_header("Authorization: Bearer " + options.token);
    add_header("User-Agent: openstation");
    CURL* c = handle;
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list.get());
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, static_cast<long>(options.connect_timeout.count()));
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, options.low_speed_bytes);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, static_cast<long>(options.low_speed_time.count()));
    curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 512L * 1024L);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    if (!options.proxy.empty()) curl_easy_setopt(c, CURLOPT_PROXY, options.proxy.c_str());
    const std::string range = std::to_string(range_from) + "-" +
                              (range_end > 0 ? std::to_string(range_end - 1) : std::string());
    if (range_from > 0 || range_end > 0) curl_easy_setopt(c, CURLOPT_RANGE, range.c_str());
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &Transfer::write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, this);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &Transfer::header_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, this);
    if (keep_going) {
      curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
      curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, &Transfer::progress_cb);
      curl_easy_setopt(c, CURLOPT_XFERINFODATA, this);
    }
    const CURLcode rc = curl_easy_perform(c);
    if (stopped_by_sink) {
      return core::Error(core::Errc::conflict, "hub.aborted",
                         "the transfer of " + std::string(what) + " was stopped");
    }
    if (status == 401 || status == 403) {
      return core::Error(core::Errc::unauthorized, "hub.unauthorized",
                         "the hub refused " + std::string(what) + " (HTTP " +
                             std::to_string(status) +
                             "): the repository is gated or private; set an access token "
                             "(hub.hf_token or hub.ms_token) that may read it");
    }
    if (status == 404) {
      return core::not_found("hub.not_found",
                             "the hub has no " + std::string(what) + " (HTTP 404)");
    }
    if (rc != CURLE_OK) {
      return core::Error(
          core::Errc::unavailable, "hub.unavailable",
          "fetching " + std::string(what) + " from " + url + " failed: " + curl_easy_strerror(rc));
    }
    if (status >= 400 || status < 200) {
      return core::Error(core::Errc::unavailable, "hub.unavailable",
                         "the hub answered HTTP " + std::to_string(status) + " for " +
                             std::string(what) +
                             (error_body.empty() ? "" : ": " + error_body.substr(0, 200)));
    }
    return {};
  }
};

/// Fetches a whole (small) document.
core::Result<std::string> get_text(const HubOptions& options, const std::string& url,
                                   std::string_view what, std::optional<std::string>* next_link) {
  std::string body;
  Transfer t{options, [&](std::string_view b) {
               if (body.size() + b.size() > 256u * 1024 * 1024) return false;
               body.append(b);
               return true;
             }};
  if (auto r = t.run(url, 0, what); !r) return r.error();
  if (next_link != nullptr) {
    next_link->reset();
    // RFC 8288 Link header: <url>; rel="next" (HuggingFace paginates long trees this way).
    if (auto link = t.header("Link")) {
      const auto rel = link->find("rel=\"next\"");
      const auto open = link->rfind('<', rel);
      const auto close = link->find('>', open);
      if (rel != std::string::npos && open != std::string::npos && close != std::string::npos &&
          close < rel) {
        *next_link = link->substr(open + 1, close - open - 1);
      }
    }
  }
  return body;
}

class CurlHub final : public HubClient {
 public:
  CurlHub(HubKind kind, HubOptions options) : kind_(kind), options_(std::move(options)) {
    options_.endpoint = trim_slash(options_.endpoint);
  }
  HubKind kind() const override { return kind_; }

  core::Result<std::vector<HubFile>> list_files(std::string_view repo,
                                                std::string_view revision) override {
    if (auto ok = check_repo(repo); !ok) return ok.error();
    const std::string what = "repository " + std::string(repo) + " at revision " +
                             std::string(revision) + " on " + std::string(to_string(kind_));
    std::vector<HubFile> all;
    if (kind_ == HubKind::huggingface) {
      std::optional<std::string> next = options_.endpoint + "/api/models/" + escape_path(repo) +
                                        "/tree/" + escape_segment(revision) + "?recursive=true";
      for (int page = 0; next && page < 10000; ++page) {
        const std::string url = *next;
        auto text = get_text(options_, url, what, &next);
        if (!text) return text.error();
        auto files = parse_hf_tree(*text);
        if (!files) return files.error();
        all.insert(all.end(), files->begin(), files->end());
      }
    } else {
      const std::string url = options_.endpoint + "/api/v1/models/" + escape_path(repo) +
                              "/repo/files?Revision=" + escape_segment(revision) +
                              "&Recursive=true";
      auto text = get_text(options_, url, what, nullptr);
      if (!text) return text.error();
      auto files = parse_ms_files(*text);
      if (!files) return files.error();
      all = std::move(*files);
    }
    for (const auto& f : all) {
      if (auto ok = check_file_path(f.path); !ok) return ok.error();
    }
    return all;
  }

  core::Result<void> fetch(std::string_view repo, std::string_view revision, std::string_view path,
                           std::int64_t offset, const ChunkSink& sink,
                           const std::function<bool()>& keep_going) override {
    return transfer(repo, revision, path, offset, -1, sink, keep_going);
  }

  core::Result<void> fetch_range(std::string_view repo, std::string_view revision,
                                 std::string_view path, std::int64_t offset, std::int64_t end,
                                 const ChunkSink& sink,
                                 const std::function<bool()>& keep_going) override {
    if (end <= offset) return {};
    return transfer(repo, revision, path, offset, end, sink, keep_going);
  }

  // Each call has its own easy handle and only reads options_.
  bool concurrent_fetches() const override { return true; }

 private:
  /// GET of `path` from `offset` to `end` (exclusive; -1: the file's end).
  core::Result<void> transfer(std::string_view repo, std::string_view revision,
                              std::string_view path, std::int64_t offset, std::int64_t end,
                              const ChunkSink& sink, const std::function<bool()>& keep_going) {
    if (auto ok = check_repo(repo); !ok) return ok.error();
    if (auto ok = check_file_path(path); !ok) return ok.error();
    std::string url;
    if (kind_ == HubKind::huggingface) {
      url = options_.endpoint + "/" + escape_path(repo) + "/resolve/" + escape_segment(revision) +
            "/" + escape_path(path);
    } else {
      url = options_.endpoint + "/api/v1/models/" + escape_path(repo) +
            "/repo?Revision=" + escape_segment(revision) + "&FilePath=" + escape_segment(path);
    }
    std::int64_t skip = 0;
    bool checked = false;
    // Bytes still wanted when the request is bounded; reaching 0 ends the transfer early.
    std::int64_t left = end > 0 ? end - offset : -1;
    bool reached_end = false;
    Transfer* self = nullptr;
    Transfer t{options_, [&](std::string_view b) {
                 if (!checked) {
                   checked = true;
                   // A 200 to a range request means the hub sent the whole file.
                   if ((offset > 0 || end > 0) && self->status == 200) skip = offset;
                 }
                 if (skip > 0) {
                   const auto n = std::min<std::int64_t>(skip, static_cast<std::int64_t>(b.size()));
                   b.remove_prefix(static_cast<std::size_t>(n));
                   skip -= n;
                   if (b.empty()) return true;
                 }
                 if (left >= 0) {
                   if (static_cast<std::int64_t>(b.size()) >= left) {
                     b = b.substr(0, static_cast<std::size_t>(left));
                     left = 0;
                     if (!b.empty() && !sink(b)) return false;
                     reached_end = true;
                     return false;  // everything asked for has arrived
                   }
                   left -= static_cast<std::int64_t>(b.size());
                 }
                 return sink(b);
               }};
    self = &t;
    t.keep_going = keep_going;
    // A kept handle keeps its connection: many small files do not pay a connect each.
    std::unique_ptr<CURL, CurlFree> handle;
    {
      std::lock_guard lock(idle_mu_);
      if (!idle_.empty()) {
        handle = std::move(idle_.back());
        idle_.pop_back();
      }
    }
    if (!handle) {
      global_init();
      handle.reset(curl_easy_init());
    }
    auto r = t.run(url, offset, "file " + std::string(path) + " of " + std::string(repo), end,
                   handle.get());
    if (handle) {
      std::lock_guard lock(idle_mu_);
      if (idle_.size() < kMaxIdleHandles) idle_.push_back(std::move(handle));
    }
    if (!r && reached_end) return {};
    return r;
  }

  static constexpr std::size_t kMaxIdleHandles = 16;
  std::mutex idle_mu_;
  std::vector<std::unique_ptr<CURL, CurlFree>> idle_;

  HubKind kind_;
  HubOptions options_;
};

bool is_hex64(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return std::isxdigit(static_cast<unsigned char>(c)) != 0;
         });
}

core::Error bad_response(const std::string& what) {
  return core::Error(core::Errc::unavailable, "hub.bad_response",
                     "the hub's file listing is not what it should be: " + what);
}

std::int64_t json_int(const json::value& v) {
  if (v.is_int64()) return v.as_int64();
  if (v.is_uint64()) return static_cast<std::int64_t>(v.as_uint64());
  if (v.is_double()) return static_cast<std::int64_t>(v.as_double());
  return -1;
}

}  // namespace

core::Result<void> HubClient::fetch_range(std::string_view repo, std::string_view revision,
                                          std::string_view path, std::int64_t offset,
                                          std::int64_t end, const ChunkSink& sink,
                                          const std::function<bool()>& keep_going) {
  if (end <= offset) return {};
  std::int64_t left = end - offset;
  bool reached_end = false;
  auto r = fetch(
      repo, revision, path, offset,
      [&](std::string_view b) {
        if (static_cast<std::int64_t>(b.size()) >= left) {
          b = b.substr(0, static_cast<std::size_t>(left));
          left = 0;
          if (!b.empty() && !sink(b)) return false;
          reached_end = true;
          return false;
        }
        left -= static_cast<std::int64_t>(b.size());
        return sink(b);
      },
      keep_going);
  if (!r && reached_end) return {};
  return r;
}

std::string_view to_string(HubKind k) noexcept {
  return k == HubKind::modelscope ? "modelscope" : "huggingface";
}

core::Result<HubKind> parse_hub_kind(std::string_view s) {
  if (s == "modelscope") return HubKind::modelscope;
  if (s == "huggingface") return HubKind::huggingface;
  return core::invalid(
      "hub.unknown_source",
      "unknown model source \"" + std::string(s) + "\": use \"modelscope\" or \"huggingface\"",
      "source");
}

std::string_view default_revision(HubKind kind) noexcept {
  return kind == HubKind::modelscope ? "master" : "main";
}

HubOptions hub_options(const config::HubConfig& config, HubKind kind) {
  HubOptions o;
  o.endpoint =
      kind == HubKind::modelscope ? config.modelscope_endpoint : config.huggingface_endpoint;
  o.token = kind == HubKind::modelscope ? config.ms_token : config.hf_token;
  o.proxy = config.proxy;
  return o;
}

std::unique_ptr<HubClient> make_hub_client(HubKind kind, HubOptions options) {
  return std::make_unique<CurlHub>(kind, std::move(options));
}

core::Result<void> check_repo(std::string_view repo) {
  const auto slash = repo.find('/');
  auto part_ok = [](std::string_view p) {
    return !p.empty() && p.size() <= 96 && p != "." && p != ".." &&
           std::all_of(p.begin(), p.end(), [](char c) {
             return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
           });
  };
  if (slash != std::string_view::npos && part_ok(repo.substr(0, slash)) &&
      part_ok(repo.substr(slash + 1))) {
    return {};
  }
  return core::invalid("hub.bad_repo",
                       "repository \"" + std::string(repo) +
                           "\" is not valid: use owner/name, e.g. "
                           "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
                       "repo");
}

core::Result<void> check_file_path(std::string_view path) {
  bool ok = !path.empty() && path.front() != '/' && path.size() <= 4096 &&
            path.find('\\') == std::string_view::npos && path.find('\0') == std::string_view::npos;
  std::size_t start = 0;
  while (ok) {
    const auto slash = path.find('/', start);
    const auto seg =
        path.substr(start, slash == std::string_view::npos ? path.npos : slash - start);
    if (seg.empty() || seg == "." || seg == "..") ok = false;
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  if (ok) return {};
  return core::Error(core::Errc::unavailable, "hub.bad_path",
                     "the hub listed a file path that is not a plain relative path: \"" +
                         std::string(path) + "\"");
}

core::Result<std::vector<HubFile>> parse_hf_tree(std::string_view text) {
  boost::system::error_code ec;
  auto v = json::parse(text, ec);
  if (ec || !v.is_array()) return bad_response("expected a JSON array of tree entries");
  std::vector<HubFile> out;
  for (const auto& e : v.as_array()) {
    if (!e.is_object()) return bad_response("a tree entry is not an object");
    const auto& o = e.as_object();
    const auto* type = o.if_contains("type");
    const auto* path = o.if_contains("path");
    if (type == nullptr || !type->is_string() || path == nullptr || !path->is_string()) {
      return bad_response("a tree entry lacks type or path");
    }
    if (type->as_string() != "file") continue;
    HubFile f;
    f.path = std::string(path->as_string());
    const auto* size = o.if_contains("size");
    f.size = size != nullptr ? json_int(*size) : -1;
    if (const auto* lfs = o.if_contains("lfs"); lfs != nullptr && lfs->is_object()) {
      const auto& l = lfs->as_object();
      if (const auto* oid = l.if_contains("oid"); oid != nullptr && oid->is_string()) {
        f.sha256 = core::to_lower(oid->as_string());
      }
      if (const auto* ls = l.if_contains("size"); ls != nullptr) f.size = json_int(*ls);
    }
    if (f.size < 0) return bad_response("file " + f.path + " has no size");
    if (!f.sha256.empty() && !is_hex64(f.sha256)) {
      return bad_response("file " + f.path + " has an LFS oid that is not a SHA-256");
    }
    out.push_back(std::move(f));
  }
  return out;
}

core::Result<std::vector<HubFile>> parse_ms_files(std::string_view text) {
  boost::system::error_code ec;
  auto v = json::parse(text, ec);
  if (ec || !v.is_object()) return bad_response("expected a JSON object");
  const auto& root = v.as_object();
  const auto* data = root.if_contains("Data");
  if (data == nullptr || !data->is_object()) {
    std::string msg = "no Data object";
    if (const auto* m = root.if_contains("Message"); m != nullptr && m->is_string()) {
      msg += " (the hub says: " + std::string(m->as_string()) + ")";
    }
    return bad_response(msg);
  }
  const auto* files = data->as_object().if_contains("Files");
  if (files == nullptr || !files->is_array()) return bad_response("no Data.Files array");
  std::vector<HubFile> out;
  for (const auto& e : files->as_array()) {
    if (!e.is_object()) return bad_response("a file entry is not an object");
    const auto& o = e.as_object();
    const auto* type = o.if_contains("Type");
    const auto* path = o.if_contains("Path");
    if (type == nullptr || !type->is_string() || path == nullptr || !path->is_string()) {
      return bad_response("a file entry lacks Type or Path");
    }
    if (type->as_string() != "blob") continue;  // "tree": a directory
    HubFile f;
    f.path = std::string(path->as_string());
    const auto* size = o.if_contains("Size");
    f.size = size != nullptr ? json_int(*size) : -1;
    if (f.size < 0) return bad_response("file " + f.path + " has no Size");
    if (const auto* sha = o.if_contains("Sha256"); sha != nullptr && sha->is_string()) {
      f.sha256 = core::to_lower(sha->as_string());
      if (!f.sha256.empty() && !is_hex64(f.sha256)) {
        return bad_response("file " + f.path + " has a Sha256 that is not 64 hex digits");
      }
    }
    out.push_back(std::move(f));
  }
  return out;
}

}  // namespace openstation::download
