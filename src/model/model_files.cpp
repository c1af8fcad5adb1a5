#include "model/model_files.hpp"

#include "core/strings.hpp"
#include "model/config_json.hpp"
#include "model/gguf.hpp"
#include "model/safetensors.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <optional>
#include <set>

namespace openstation::model {

namespace fs = std::filesystem;

namespace {

/// "<prefix>-00002-of-00005.gguf" → {prefix, 2, 5}.
struct SplitName {
  std::string prefix;
  int index = 0;
  int count = 0;
};

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::optional<SplitName> parse_split_name(const std::string& file) {
  // -NNNNN-of-NNNNN.gguf is 20 characters.
  constexpr std::size_t kTail = 20;
  if (file.size() <= kTail) return std::nullopt;
  const std::string_view tail = std::string_view(file).substr(file.size() - kTail);
  if (tail[0] != '-' || tail.substr(6, 4) != "-of-" || tail.substr(15) != ".gguf")
    return std::nullopt;
  const auto idx = tail.substr(1, 5);
  const auto cnt = tail.substr(10, 5);
  if (!all_digits(idx) || !all_digits(cnt)) return std::nullopt;
  SplitName s;
  s.prefix = file.substr(0, file.size() - kTail);
  s.index = std::stoi(std::string(idx));
  s.count = std::stoi(std::string(cnt));
  if (s.index < 1 || s.count < 1 || s.index > s.count) return std::nullopt;
  return s;
}

std::string split_file_name(const std::string& prefix, int index, int count) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "-%05d-of-%05d.gguf", index, count);
  return prefix + buf;
}

bool has_ext(const fs::path& p, std::string_view ext) {
  return core::to_lower(p.extension().string()) == ext;
}

std::uint64_t file_size_or_zero(const fs::path& p) {
  std::error_code ec;
  const auto n = fs::file_size(p, ec);
  return ec ? 0 : n;
}

/// Sum of all regular files below `dir` (symlinks followed, as in HuggingFace cache snapshots).
std::uint64_t dir_bytes(const fs::path& dir) {
  std::uint64_t sum = 0;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec),
       end;
       !ec && it != end; it.increment(ec)) {
    std::error_code sec;
    if (it->is_regular_file(sec)) sum += file_size_or_zero(it->path());
  }
  return sum;
}

std::vector<fs::path> list_files(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code sec;
    if (it->is_regular_file(sec)) out.push_back(it->path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

core::Error no_weights(const fs::path& p, const std::string& what) {
  return core::not_found("model.no_weights",
                         p.string() + ": " + what +
                             "; expected a directory with config.json and *.safetensors (or "
                             "model.safetensors.index.json), or a .gguf file",
                         p.string());
}

core::Result<ModelInfo> inspect_safetensors_dir(const fs::path& dir,
                                                const std::vector<fs::path>& files) {
  ModelInfo info;
  info.id = dir.filename().string();
  if (info.id.empty()) info.id = dir.parent_path().filename().string();
  info.path = dir.string();
  info.format = WeightFormat::safetensors;
  auto arch = load_config_json(dir / "config.json");
  if (!arch) return arch.error();
  info.arch = std::move(*arch);

  std::vector<fs::path> shards;
  const fs::path index_path = dir / "model.safetensors.index.json";
  std::optional<fs::path> index;
  if (fs::exists(index_path)) {
    index = index_path;
  } else {
    for (const auto& f : files) {
      const std::string n = f.filename().string();
      if (n.size() > 23 && n.ends_with(".safetensors.index.json")) {
        index = f;
        break;
      }
    }
  }
  if (index) {
    auto idx = read_safetensors_index(*index);
    if (!idx) return idx.error();
    for (const auto& s : idx->shards) {
      const fs::path sp = dir / s;
      std::error_code ec;
      if (!fs::is_regular_file(sp, ec)) {
        return core::not_found("model.shard_missing",
                               sp.string() + ": shard listed in " + index->filename().string() +
                                   " is missing; the download is incomplete (download it again)",
                               sp.string());
      }
      shards.push_back(sp);
    }
  } else {
    for (const auto& f : files) {
      if (has_ext(f, ".safetensors")) shards.push_back(f);
    }
  }
  if (shards.empty()) {
    bool has_bin = false;
    for (const auto& f : files)
      has_bin = has_bin || has_ext(f, ".bin") || has_ext(f, ".pt") || has_ext(f, ".pth");
    return no_weights(dir, has_bin
                               ? "config.json found but only PyTorch .bin/.pt weights, which are "
                                 "not read (convert them to safetensors)"
                               : "config.json found but no *.safetensors weights");
  }
  for (const auto& s : shards) {
    auto h = read_safetensors_header(s);
    if (!h) return h.error();
    for (const auto& t : h->tensors) {
      info.weight_bytes += t.bytes();
      info.params += static_cast<double>(t.elements());
      info.bytes_by_type[t.dtype] += t.bytes();
    }
  }
  info.weights_exact = true;
  info.disk_bytes = dir_bytes(dir);
  return info;
}

core::Result<ModelInfo> inspect_gguf_files(const fs::path& given,
                                           const std::vector<fs::path>& shards, std::string id,
                                           bool count_dir) {
  ModelInfo info;
  info.id = std::move(id);
  info.path = given.string();
  info.format = WeightFormat::gguf;
  bool first = true;
  bool has_output = false;
  for (const auto& s : shards) {
    auto f = read_gguf(s);
    if (!f) return f.error();
    if (first) {
      auto arch = gguf_model_arch(*f);
      if (!arch) {
        auto e = arch.error();
        e.message = s.string() + ": " + e.message;
        return e;
      }
      info.arch = std::move(*arch);
      info.gguf_chat_template = f->chat_template();
      first = false;
    }
    for (const auto& t : f->tensors) {
      info.weight_bytes += t.bytes;
      info.params += static_cast<double>(t.elements);
      info.bytes_by_type[std::string(t.type_name())] += t.bytes;
      has_output = has_output || t.name == "output.weight";
    }
    if (!count_dir) info.disk_bytes += file_size_or_zero(s);
  }
  // A split model's first shard may carry only metadata; the tie flag must see every shard.
  if (shards.size() > 1) info.arch.tie_word_embeddings = !has_output;
  if (count_dir) info.disk_bytes = dir_bytes(given);
  info.weights_exact = true;
  return info;
}

std::string gguf_id(const fs::path& file) {
  const std::string name = file.filename().string();
  if (auto s = parse_split_name(name)) return s->prefix;
  return file.stem().string();
}

}  // namespace

core::Result<std::vector<fs::path>> gguf_shard_paths(const fs::path& file) {
  const auto split = parse_split_name(file.filename().string());
  if (!split) return std::vector<fs::path>{file};
  std::vector<fs::path> out;
  for (int i = 1; i <= split->count; ++i) {
    const fs::path p = file.parent_path() / split_file_name(split->prefix, i, split->count);
    std::error_code ec;
    if (!fs::is_regular_file(p, ec)) {
      return core::not_found("model.shard_missing",
                             p.string() + ": GGUF shard " + std::to_string(i) + " of " +
                                 std::to_string(split->count) + " is missing; download it too",
                             p.string());
    }
    out.push_back(p);
  }
  return out;
}

core::Result<ModelInfo> inspect_model_path(const fs::path& p) {
  std::error_code ec;
  const auto st = fs::status(p, ec);
  if (ec || !fs::exists(st)) {
    return core::not_found("model.path_not_found",
                           p.string() +
                               ": no such file or directory; give a model directory or a "
                               ".gguf file",
                           p.string());
  }
  if (fs::is_regular_file(st)) {
    if (has_ext(p, ".gguf")) {
      auto shards = gguf_shard_paths(p);
      if (!shards) return shards.error();
      return inspect_gguf_files(p, *shards, gguf_id(p), false);
    }
    if (p.filename() == "config.json")
      return inspect_model_path(p.parent_path().empty() ? "." : p.parent_path());
    return no_weights(p, "not a .gguf file");
  }
  if (!fs::is_directory(st)) return no_weights(p, "neither a regular file nor a directory");

  const auto files = list_files(p);
  std::vector<fs::path> ggufs;
  for (const auto& f : files) {
    if (has_ext(f, ".gguf") &&
        !core::starts_with(core::to_lower(f.filename().string()), "mmproj")) {
      ggufs.push_back(f);
    }
  }
  bool has_safetensors = false;
  for (const auto& f : files) {
    const std::string n = f.filename().string();
    has_safetensors =
        has_safetensors || has_ext(f, ".safetensors") || n.ends_with(".safetensors.index.json");
  }
  const bool has_config = fs::is_regular_file(p / "config.json", ec);
  if (has_config && (has_safetensors || ggufs.empty())) return inspect_safetensors_dir(p, files);
  if (ggufs.empty()) {
    return no_weights(p, has_safetensors ? "*.safetensors found but no config.json"
                                         : "no config.json and no .gguf file found");
  }
  // One model: a single file, or the shards of one split model.
  std::set<std::string> models;
  for (const auto& g : ggufs) {
    const auto s = parse_split_name(g.filename().string());
    models.insert(s ? s->prefix + "-of-" + std::to_string(s->count) : g.filename().string());
  }
  if (models.size() > 1) {
    std::vector<std::string> names;
    for (const auto& g : ggufs) names.push_back(g.filename().string());
    return core::invalid("model.ambiguous_gguf",
                         p.string() + " holds several GGUF models (" + core::join(names) +
                             "); give the path of the .gguf file to use",
                         p.string());
  }
  auto shards = gguf_shard_paths(ggufs.front());
  if (!shards) return shards.error();
  std::string id = p.filename().string();
  if (id.empty()) id = p.parent_path().filename().string();
  return inspect_gguf_files(p, *shards, id, true);
}

}  // namespace openstation::model
