#include "server/model_files.hpp"

#include "core/fs.hpp"
#include "core/json.hpp"
#include "core/strings.hpp"
#include "download/fetch.hpp"
#include "server/auth/crypto.hpp"

#include <spdlog/spdlog.h>
#include <boost/json.hpp>

#include <sys/stat.h>

#include <algorithm>
#include <charconv>

namespace openstation::server {
namespace fs = std::filesystem;
namespace json = boost::json;

namespace {

core::Error io(const std::string& what) {
  return core::io_error("model_files.io", what);
}

/// Modification time in nanoseconds (0 when it cannot be read).
std::int64_t mtime_ns(const fs::path& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return 0;
  return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

struct CacheEntry {
  std::int64_t size = 0;
  std::int64_t mtime = 0;
  std::string sha256;
};

std::map<std::string, CacheEntry> load_cache(const fs::path& p) {
  std::map<std::string, CacheEntry> out;
  auto text = core::json::read_file(p, 64u << 20);
  if (!text) return out;
  boost::system::error_code ec;
  auto v = json::parse(*text, ec);
  if (ec || !v.is_object()) return out;
  const auto* files = v.as_object().if_contains("files");
  if (files == nullptr || !files->is_array()) return out;
  for (const auto& f : files->as_array()) {
    if (!f.is_object()) continue;
    const auto& o = f.as_object();
    const auto* path = o.if_contains("path");
    const auto* size = o.if_contains("size");
    const auto* mtime = o.if_contains("mtime_ns");
    const auto* sha = o.if_contains("sha256");
    if (path == nullptr || !path->is_string() || size == nullptr || !size->is_int64() ||
        mtime == nullptr || !mtime->is_int64() || sha == nullptr || !sha->is_string()) {
      continue;
    }
    out[std::string(path->as_string())] =
        CacheEntry{size->as_int64(), mtime->as_int64(), std::string(sha->as_string())};
  }
  return out;
}

bool valid_relative(std::string_view p) {
  if (p.empty() || p.front() == '/' || p.find('\\') != p.npos || p.find('\0') != p.npos) {
    return false;
  }
  for (std::size_t start = 0; start <= p.size();) {
    const auto end = std::min(p.find('/', start), p.size());
    const auto seg = p.substr(start, end - start);
    if (seg.empty() || seg == "." || seg == "..") return false;
    start = end + 1;
  }
  return true;
}

bool within(const fs::path& root, const fs::path& p) {
  auto r = root.begin();
  auto q = p.begin();
  for (; r != root.end(); ++r, ++q) {
    if (r->empty()) continue;  // a trailing separator
    if (q == p.end() || *r != *q) return false;
  }
  return true;
}

}  // namespace

core::Result<std::string> ensure_store_id(const fs::path& model_dir) {
  if (auto id = agent::read_store_id(model_dir)) return *id;
  const std::string id = "store_" + auth::base64url(auth::random_bytes(18));
  if (auto w = core::write_file_atomic(model_dir / agent::kStoreMarkerName, id + "\n"); !w) {
    return core::io_error("model_files.store_marker",
                          "cannot write the model store's marker " +
                              (model_dir / agent::kStoreMarkerName).string() + ": " +
                              w.error().message);
  }
  return id;
}

std::map<std::string, std::string> download_hashes(store::Store& s, const fs::path& model_dir,
                                                   const std::string& model_id) {
  std::map<std::string, std::string> out;
  store::DownloadFilter f;
  f.model_id = model_id;
  auto list = s.downloads().list(f, store::PageRequest{0, {}});
  if (!list) return out;
  for (const auto& d : list->items) {
    auto text = core::json::read_file(model_dir / ".downloads" / d.id / "job.json", 64u << 20);
    if (!text) continue;
    boost::system::error_code ec;
    auto v = json::parse(*text, ec);
    if (ec || !v.is_object()) continue;
    const auto* files = v.as_object().if_contains("files");
    if (files == nullptr || !files->is_array()) continue;
    for (const auto& file : files->as_array()) {
      if (!file.is_object()) continue;
      const auto* p = file.as_object().if_contains("path");
      const auto* h = file.as_object().if_contains("sha256");
      if (p != nullptr && p->is_string() && h != nullptr && h->is_string() &&
          !h->as_string().empty()) {
        out[std::string(p->as_string())] = std::string(h->as_string());
      }
    }
  }
  return out;
}

core::Result<void> check_servable(const store::Model& m) {
  if (m.node_id) {
    return core::Error(core::Errc::conflict, "model_files.not_on_server",
                       "model " + m.name + " lives on node " + *m.node_id + " (" + m.path +
                           "), not on the server's model store; nodes cannot pull it",
                       "id");
  }
  if (m.status != store::ModelStatus::ready) {
    return core::Error(core::Errc::conflict, "model_files.not_ready",
                       "model " + m.name + " is " + std::string(store::to_string(m.status)) +
                           "; its files can be pulled once it is ready",
                       "id");
  }
  std::error_code ec;
  if (m.path.empty() || !fs::exists(m.path, ec)) {
    return core::not_found("model_files.missing",
                           "the files of model " + m.name + " are not on the server any more (" +
                               m.path + " does not exist); download it again",
                           "id");
  }
  return {};
}

core::Result<agent::ModelManifest> model_manifest(
    const store::Model& m, const fs::path& model_dir, const std::string& store_id,
    const std::map<std::string, std::string>& known_sha256) {
  if (auto ok = check_servable(m); !ok) return ok.error();
  agent::ModelManifest out;
  out.model_id = m.id;
  out.name = m.name;
  out.path = m.path;
  out.store_root = model_dir.string();
  out.store_id = store_id;

  std::error_code ec;
  const fs::path root(m.path);
  std::vector<std::pair<std::string, fs::path>> files;  // relative path, absolute path
  if (fs::is_regular_file(root, ec)) {
    out.single_file = true;
    files.emplace_back(root.filename().string(), root);
  } else {
    fs::recursive_directory_iterator it(root, ec), end;
    if (ec) return io("cannot list " + root.string() + ": " + ec.message());
    for (; it != end; it.increment(ec)) {
      if (ec) return io("cannot list " + root.string() + ": " + ec.message());
      if (!it->is_regular_file(ec)) continue;
      files.emplace_back(fs::relative(it->path(), root, ec).generic_string(), it->path());
    }
    std::sort(files.begin(), files.end());
  }

  const fs::path cache_path = model_dir / ".manifests" / (m.id + ".json");
  auto cache = load_cache(cache_path);
  bool cache_changed = false;
  json::array cached;
  for (const auto& [rel, abs] : files) {
    const auto size = static_cast<std::int64_t>(fs::file_size(abs, ec));
    if (ec) return io("cannot read " + abs.string() + ": " + ec.message());
    const auto mtime = mtime_ns(abs);
    agent::ManifestFile f{rel, size, {}};
    if (auto c = cache.find(rel);
        c != cache.end() && c->second.size == size && c->second.mtime == mtime) {
      f.sha256 = c->second.sha256;
    } else if (auto k = known_sha256.find(rel); k != known_sha256.end()) {
      f.sha256 = k->second;  // the hub's digest, checked when the file was downloaded
      cache_changed = true;
    } else {
      spdlog::info("model {}: computing SHA-256 of {} ({} bytes) for node sync", m.name, rel, size);
      auto h = download::sha256_file(abs);
      if (!h) return io("cannot hash " + abs.string() + ": " + h.error().message);
      f.sha256 = *h;
      cache_changed = true;
    }
    cached.push_back(
        json::object{{"path", rel}, {"size", size}, {"mtime_ns", mtime}, {"sha256", f.sha256}});
    out.files.push_back(std::move(f));
  }
  if (cache_changed || cache.size() != files.size()) {
    if (auto w = core::write_file_atomic(
            cache_path, json::serialize(json::object{{"model_id", m.id}, {"files", cached}}));
        !w) {
      spdlog::warn("cannot keep the manifest of model {} in {}: {}", m.name, cache_path.string(),
                   w.error().message);
    }
  }
  return out;
}

core::Result<fs::path> model_file(const store::Model& m, std::string_view relative) {
  if (!valid_relative(relative)) {
    return core::invalid("model_files.bad_path",
                         "\"" + std::string(relative) +
                             "\" is not a relative path inside the model (no \"..\", \".\", empty "
                             "segments or backslashes)",
                         "path");
  }
  const auto not_found = [&] {
    return core::not_found("model_files.not_found",
                           "model " + m.name + " has no file \"" + std::string(relative) +
                               "\"; GET /api/v1/agent/models/" + m.id + "/manifest lists its files",
                           "path");
  };
  std::error_code ec;
  const fs::path root(m.path);
  if (fs::is_regular_file(root, ec)) {
    if (relative != root.filename().string()) return not_found();
    return root;
  }
  const auto base = fs::canonical(root, ec);
  if (ec) return not_found();
  const auto file = fs::canonical(root / std::string(relative), ec);
  if (ec || !fs::is_regular_file(file, ec)) return not_found();
  if (!within(base, file)) {
    return core::invalid("model_files.bad_path",
                         "\"" + std::string(relative) + "\" leads outside the model's directory",
                         "path");
  }
  return file;
}

core::Result<std::optional<ByteRange>> parse_byte_range(std::string_view header,
                                                        std::int64_t size) {
  const auto text = core::trim(header);
  if (text.empty()) return std::optional<ByteRange>{};
  const auto bad = [&](const std::string& why) {
    return core::invalid("model_files.bad_range",
                         "Range \"" + std::string(header) + "\" " + why + " (the file has " +
                             std::to_string(size) + " bytes)",
                         "Range");
  };
  if (!text.starts_with("bytes=")) return bad("is not a byte range (bytes=N-, bytes=N-M)");
  const std::string_view spec = std::string_view(text).substr(6);
  if (spec.find(',') != spec.npos) return bad("asks for several ranges; ask for one");
  const auto dash = spec.find('-');
  if (dash == spec.npos) return bad("has no '-'");
  const auto number = [](std::string_view s, std::int64_t& out) {
    if (s.empty()) return false;
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && p == s.data() + s.size() && out >= 0;
  };
  const auto first_s = spec.substr(0, dash);
  const auto last_s = spec.substr(dash + 1);
  ByteRange r;
  if (first_s.empty()) {  // the last N bytes
    std::int64_t n = 0;
    if (!number(last_s, n) || n == 0) return bad("is not a valid suffix range");
    if (size == 0) return bad("cannot be satisfied");
    r.first = std::max<std::int64_t>(0, size - n);
    r.last = size - 1;
    return std::optional<ByteRange>(r);
  }
  if (!number(first_s, r.first)) return bad("has a malformed first byte");
  if (last_s.empty()) {
    r.last = size - 1;
  } else if (!number(last_s, r.last)) {
    return bad("has a malformed last byte");
  } else if (r.last < r.first) {
    return bad("ends before it starts");
  }
  if (r.first >= size) return bad("starts at or past the end");
  r.last = std::min(r.last, size - 1);
  return std::optional<ByteRange>(r);
}

}  // namespace openstation::server
