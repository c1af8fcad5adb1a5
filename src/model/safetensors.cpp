#include "model/safetensors.hpp"

#include "core/fs.hpp"

#include "core/json.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <fstream>
#include <set>

namespace openstation::model {

namespace {

namespace bj = boost::json;

[[noreturn]] void fail(core::Error e) {
  throw core::ErrorException(std::move(e));
}

[[noreturn]] void invalid_header(const std::string& msg, const std::string& field = {}) {
  fail(core::parse_error("safetensors.invalid_header", msg, field));
}

std::uint64_t read_le64(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

std::uint64_t to_u64(const bj::value& v, const std::string& what) {
  if (v.is_uint64()) return v.get_uint64();
  if (v.is_int64() && v.get_int64() >= 0) return static_cast<std::uint64_t>(v.get_int64());
  invalid_header(what + " must be a non-negative integer, got " + bj::serialize(v), what);
}

SafetensorsTensor parse_entry(const std::string& name, const bj::value& v) {
  if (!v.is_object()) invalid_header("tensor \"" + name + "\" must be an object", name);
  const auto& o = v.get_object();
  SafetensorsTensor t;
  t.name = name;
  const auto* dtype = o.if_contains("dtype");
  if (!dtype || !dtype->is_string())
    invalid_header("tensor \"" + name + "\": dtype must be a string", name);
  t.dtype = std::string(dtype->get_string());
  const auto* shape = o.if_contains("shape");
  if (!shape || !shape->is_array())
    invalid_header("tensor \"" + name + "\": shape must be an array", name);
  if (shape->get_array().size() > 64)
    invalid_header("tensor \"" + name + "\": more than 64 dimensions", name);
  std::uint64_t elements = 1;
  for (const auto& d : shape->get_array()) {
    const std::uint64_t n = to_u64(d, "tensor \"" + name + "\" shape entry");
    if (n > static_cast<std::uint64_t>(INT64_MAX))
      invalid_header("tensor \"" + name + "\": dimension too large", name);
    if (__builtin_mul_overflow(elements, n, &elements)) {
      invalid_header("tensor \"" + name + "\": the shape's element count overflows 64 bits", name);
    }
    t.shape.push_back(static_cast<std::int64_t>(n));
  }
  const auto* offs = o.if_contains("data_offsets");
  if (!offs || !offs->is_array() || offs->get_array().size() != 2) {
    invalid_header("tensor \"" + name + "\": data_offsets must be [begin, end]", name);
  }
  t.begin = to_u64(offs->get_array()[0], "tensor \"" + name + "\" data_offsets[0]");
  t.end = to_u64(offs->get_array()[1], "tensor \"" + name + "\" data_offsets[1]");
  if (t.end < t.begin) {
    fail(core::parse_error("safetensors.bad_offsets",
                           "tensor \"" + name + "\": data_offsets end " + std::to_string(t.end) +
                               " is before begin " + std::to_string(t.begin),
                           name));
  }
  const int bits = safetensors_dtype_bits(t.dtype);
  if (bits > 0) {
    std::uint64_t total_bits = 0;
    if (__builtin_mul_overflow(elements, static_cast<std::uint64_t>(bits), &total_bits)) {
      invalid_header("tensor \"" + name + "\": byte size overflows 64 bits", name);
    }
    const std::uint64_t want = (total_bits + 7) / 8;
    if (t.end - t.begin != want) {
      fail(core::parse_error("safetensors.bad_offsets",
                             "tensor \"" + name + "\": data_offsets span " +
                                 std::to_string(t.end - t.begin) + " bytes but shape × " + t.dtype +
                                 " needs " + std::to_string(want) + " bytes",
                             name));
    }
  }
  return t;
}

SafetensorsHeader parse_header(std::span<const std::uint8_t> prefix, std::uint64_t file_size) {
  if (file_size < 8 || prefix.size() < 8) {
    fail(core::parse_error(
        "safetensors.truncated",
        "the file has " + std::to_string(std::min<std::uint64_t>(file_size, prefix.size())) +
            " bytes, fewer than the 8-byte header length; not a safetensors file"));
  }
  const std::uint64_t n = read_le64(prefix.data());
  if (n > kMaxSafetensorsHeader) {
    fail(core::parse_error(
        "safetensors.header_too_large",
        "the header length field says " + std::to_string(n) +
            " bytes, more than the 100 MB limit; not a safetensors file or corrupt"));
  }
  if (n > file_size - 8) {
    fail(core::parse_error("safetensors.truncated",
                           "the header length field says " + std::to_string(n) +
                               " bytes but the file has only " + std::to_string(file_size - 8) +
                               " bytes after it; the file is truncated (incomplete download?)"));
  }
  if (prefix.size() - 8 < n) {
    fail(core::parse_error(
        "safetensors.truncated",
        "need " + std::to_string(8 + n) + " header bytes, got " + std::to_string(prefix.size())));
  }
  const std::string_view json(reinterpret_cast<const char*>(prefix.data() + 8),
                              static_cast<std::size_t>(n));
  const bj::value doc = core::json::parse(json, "safetensors header");
  if (!doc.is_object()) invalid_header("the header must be a JSON object");

  SafetensorsHeader h;
  h.header_bytes = 8 + n;
  h.data_bytes = file_size - h.header_bytes;
  for (const auto& kv : doc.get_object()) {
    const std::string key(kv.key());
    if (key == "__metadata__") {
      if (!kv.value().is_object()) invalid_header("__metadata__ must be an object of strings");
      for (const auto& m : kv.value().get_object()) {
        if (!m.value().is_string()) {
          invalid_header("__metadata__." + std::string(m.key()) + " must be a string");
        }
        h.metadata[std::string(m.key())] = std::string(m.value().get_string());
      }
      continue;
    }
    h.tensors.push_back(parse_entry(key, kv.value()));
  }
  std::sort(h.tensors.begin(), h.tensors.end(), [](const auto& a, const auto& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  std::uint64_t prev_end = 0;
  const SafetensorsTensor* prev = nullptr;
  for (const auto& t : h.tensors) {
    if (t.end > h.data_bytes) {
      fail(core::parse_error("safetensors.bad_offsets",
                             "tensor \"" + t.name + "\" ends at data offset " +
                                 std::to_string(t.end) + " but the data area has " +
                                 std::to_string(h.data_bytes) +
                                 " bytes; the file is truncated (incomplete download?)",
                             t.name));
    }
    if (prev && t.begin < prev_end && t.end > t.begin) {
      fail(core::parse_error("safetensors.bad_offsets",
                             "tensors \"" + prev->name + "\" and \"" + t.name + "\" overlap",
                             t.name));
    }
    if (t.end > t.begin || !prev) {
      prev_end = std::max(prev_end, t.end);
      prev = &t;
    }
  }
  return h;
}

}  // namespace

std::uint64_t SafetensorsTensor::elements() const {
  std::uint64_t n = 1;
  for (auto d : shape) n *= static_cast<std::uint64_t>(d);
  return n;
}

std::uint64_t SafetensorsHeader::tensor_bytes() const {
  std::uint64_t sum = 0;
  for (const auto& t : tensors) sum += t.bytes();
  return sum;
}

int safetensors_dtype_bits(std::string_view dtype) {
  struct Entry {
    std::string_view name;
    int bits;
  };
  static constexpr std::array<Entry, 20> kTable{{
      {"F64", 64},    {"F32", 32},        {"F16", 16},    {"BF16", 16},   {"I64", 64},
      {"I32", 32},    {"I16", 16},        {"I8", 8},      {"U64", 64},    {"U32", 32},
      {"U16", 16},    {"U8", 8},          {"BOOL", 8},    {"F8_E4M3", 8}, {"F8_E5M2", 8},
      {"F8_E8M0", 8}, {"F8_E4M3FNUZ", 8}, {"F6_E2M3", 6}, {"F6_E3M2", 6}, {"F4", 4},
  }};
  for (const auto& e : kTable) {
    if (e.name == dtype) return e.bits;
  }
  return 0;
}

core::Result<SafetensorsHeader> parse_safetensors_header(std::span<const std::uint8_t> file_prefix,
                                                         std::uint64_t file_size) {
  return core::json::capture([&] { return parse_header(file_prefix, file_size); });
}

core::Result<SafetensorsHeader> read_safetensors_header(const std::filesystem::path& path) {
  const std::string name = path.string();
  std::ifstream in;
  auto opened = core::open_for_read(path, in);
  if (!opened) return opened.error();
  const std::uint64_t size = *opened;
  std::vector<std::uint8_t> buf(static_cast<std::size_t>(std::min<std::uint64_t>(size, 8)));
  in.read(reinterpret_cast<char*>(buf.data()), static_cast<std::streamsize>(buf.size()));
  if (buf.size() == 8) {
    const std::uint64_t n = read_le64(buf.data());
    if (n <= kMaxSafetensorsHeader && n <= size - 8) {
      buf.resize(static_cast<std::size_t>(8 + n));
      in.read(reinterpret_cast<char*>(buf.data() + 8), static_cast<std::streamsize>(n));
      if (static_cast<std::uint64_t>(in.gcount()) != n) {
        return core::io_error("file.unreadable", name + ": short read of the header", name);
      }
    }
  }
  auto h = parse_safetensors_header(buf, size);
  if (!h) {
    auto e = h.error();
    e.message = name + ": " + e.message;
    if (e.field.empty()) e.field = name;
    return e;
  }
  return h;
}

core::Result<SafetensorsIndex> parse_safetensors_index(std::string_view text,
                                                       std::string_view source) {
  return core::json::capture([&] {
    const bj::value doc = core::json::parse(text, source);
    const std::string src(source);
    auto bad = [&](const std::string& msg) {
      fail(core::parse_error("safetensors.invalid_index", src + ": " + msg, src));
    };
    if (!doc.is_object()) bad("expected a JSON object");
    SafetensorsIndex idx;
    if (const auto* meta = doc.get_object().if_contains("metadata"); meta && meta->is_object()) {
      if (const auto* ts = meta->get_object().if_contains("total_size")) {
        if (ts->is_uint64())
          idx.total_size = ts->get_uint64();
        else if (ts->is_int64() && ts->get_int64() >= 0)
          idx.total_size = static_cast<std::uint64_t>(ts->get_int64());
        else if (ts->is_double() && ts->get_double() >= 0 && ts->get_double() < 1.8e19) {
          idx.total_size = static_cast<std::uint64_t>(ts->get_double());
        } else {
          bad("metadata.total_size must be a non-negative integer");
        }
      }
    }
    const auto* wm = doc.get_object().if_contains("weight_map");
    if (!wm || !wm->is_object()) bad("weight_map (tensor name → shard file) is missing");
    std::set<std::string> shards;
    for (const auto& kv : wm->get_object()) {
      if (!kv.value().is_string())
        bad("weight_map." + std::string(kv.key()) + " must be a file name");
      std::string file(kv.value().get_string());
      if (file.empty() || file.find('/') != std::string::npos ||
          file.find('\\') != std::string::npos || file == "." || file == "..") {
        bad("weight_map." + std::string(kv.key()) + " = \"" + file +
            "\" is not a plain file name in the model directory");
      }
      shards.insert(file);
      idx.weight_map.emplace(std::string(kv.key()), std::move(file));
    }
    idx.shards.assign(shards.begin(), shards.end());
    return idx;
  });
}

core::Result<SafetensorsIndex> read_safetensors_index(const std::filesystem::path& path) {
  auto text = core::json::read_file(path, 256u << 20);
  if (!text) return text.error();
  return parse_safetensors_index(*text, path.string());
}

}  // namespace openstation::model
