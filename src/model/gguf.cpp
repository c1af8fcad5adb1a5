#include "model/gguf.hpp"

#include "core/fs.hpp"

#include "core/strings.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <set>

namespace openstation::model {

namespace {

[[noreturn]] void fail(core::Error e) {
  throw core::ErrorException(std::move(e));
}

[[noreturn]] void invalid(const std::string& msg, const std::string& field = {}) {
  fail(core::parse_error("gguf.invalid", msg, field));
}

constexpr std::uint32_t kMaxDims = 4;  // GGML_MAX_DIMS
constexpr int kMaxArrayDepth = 4;

// ggml's type table: block size (elements) and type size (bytes per block), by type id. Ids 4, 5
// (Q4_2, Q4_3) and 31–33, 36–38 (repacked Q4_0/IQ4_NL layouts) were removed from the format.
constexpr std::array<GgmlTypeInfo, 33> kGgmlTypes{{
    {0, "F32", 1, 4},         {1, "F16", 1, 2},         {2, "Q4_0", 32, 18},
    {3, "Q4_1", 32, 20},      {6, "Q5_0", 32, 22},      {7, "Q5_1", 32, 24},
    {8, "Q8_0", 32, 34},      {9, "Q8_1", 32, 36},      {10, "Q2_K", 256, 84},
    {11, "Q3_K", 256, 110},   {12, "Q4_K", 256, 144},   {13, "Q5_K", 256, 176},
    {14, "Q6_K", 256, 210},   {15, "Q8_K", 256, 292},   {16, "IQ2_XXS", 256, 66},
    {17, "IQ2_XS", 256, 74},  {18, "IQ3_XXS", 256, 98}, {19, "IQ1_S", 256, 50},
    {20, "IQ4_NL", 32, 18},   {21, "IQ3_S", 256, 110},  {22, "IQ2_S", 256, 82},
    {23, "IQ4_XS", 256, 136}, {24, "I8", 1, 1},         {25, "I16", 1, 2},
    {26, "I32", 1, 4},        {27, "I64", 1, 8},        {28, "F64", 1, 8},
    {29, "IQ1_M", 256, 56},   {30, "BF16", 1, 2},       {34, "TQ1_0", 256, 54},
    {35, "TQ2_0", 256, 66},   {39, "MXFP4", 32, 17},    {40, "NVFP4", 64, 36},
}};

std::uint64_t align_up(std::uint64_t v, std::uint64_t a) {
  return (v + a - 1) / a * a;
}

/// Minimum encoded size of one value of a type (for capping counts by the bytes left).
std::uint64_t min_encoded_size(GgufValueType t) {
  switch (t) {
    case GgufValueType::uint8:
    case GgufValueType::int8:
    case GgufValueType::boolean: return 1;
    case GgufValueType::uint16:
    case GgufValueType::int16: return 2;
    case GgufValueType::uint32:
    case GgufValueType::int32:
    case GgufValueType::float32: return 4;
    case GgufValueType::uint64:
    case GgufValueType::int64:
    case GgufValueType::float64:
    case GgufValueType::string: return 8;
    case GgufValueType::array: return 12;
  }
  return 1;
}

bool valid_value_type(std::uint32_t t) {
  return t <= 12;
}

/// Reads little-endian fields from a file prefix, telling a file that ends (truncated) from a
/// prefix that ends (the caller may read more).
class Cursor {
 public:
  Cursor(std::span<const std::uint8_t> prefix, std::uint64_t file_size)
      : p_(prefix), size_(file_size) {}

  std::uint64_t pos() const { return pos_; }
  std::uint64_t left() const { return size_ - pos_; }

  void need(std::uint64_t n, std::string_view what) const {
    if (n > size_ - pos_) {
      fail(core::parse_error("gguf.truncated",
                             "the file ends inside the header while reading " + std::string(what) +
                                 " at byte " + std::to_string(pos_) + " (needs " +
                                 std::to_string(n) + " bytes, " + std::to_string(size_ - pos_) +
                                 " left); the file is truncated or not GGUF"));
    }
    if (n > p_.size() - std::min<std::uint64_t>(pos_, p_.size())) {
      fail(core::parse_error(
          "gguf.prefix_too_short",
          "the header continues past the " + std::to_string(p_.size()) + " bytes given"));
    }
  }

  template <class T>
  T read(std::string_view what) {
    need(sizeof(T), what);
    T v{};
    std::uint64_t raw = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i) {
      raw |= static_cast<std::uint64_t>(p_[static_cast<std::size_t>(pos_ + i)]) << (8 * i);
    }
    if constexpr (sizeof(T) == 1) {
      const auto b = static_cast<std::uint8_t>(raw);
      std::memcpy(&v, &b, 1);
    } else if constexpr (sizeof(T) == 2) {
      const auto b = static_cast<std::uint16_t>(raw);
      std::memcpy(&v, &b, 2);
    } else if constexpr (sizeof(T) == 4) {
      const auto b = static_cast<std::uint32_t>(raw);
      std::memcpy(&v, &b, 4);
    } else {
      std::memcpy(&v, &raw, 8);
    }
    pos_ += sizeof(T);
    return v;
  }

  std::string read_string(std::string_view what) {
    const auto n = read<std::uint64_t>(what);
    need(n, what);
    std::string s(reinterpret_cast<const char*>(p_.data() + pos_), static_cast<std::size_t>(n));
    pos_ += n;
    return s;
  }

 private:
  std::span<const std::uint8_t> p_;
  std::uint64_t size_;
  std::uint64_t pos_ = 0;
};

GgufValue read_value(Cursor& c, GgufValueType t, const std::string& key, int depth) {
  GgufValue v;
  v.type = t;
  switch (t) {
    case GgufValueType::uint8: v.uint_value = c.read<std::uint8_t>(key); break;
    case GgufValueType::int8: v.int_value = c.read<std::int8_t>(key); break;
    case GgufValueType::uint16: v.uint_value = c.read<std::uint16_t>(key); break;
    case GgufValueType::int16: v.int_value = c.read<std::int16_t>(key); break;
    case GgufValueType::uint32: v.uint_value = c.read<std::uint32_t>(key); break;
    case GgufValueType::int32: v.int_value = c.read<std::int32_t>(key); break;
    case GgufValueType::uint64: v.uint_value = c.read<std::uint64_t>(key); break;
    case GgufValueType::int64: v.int_value = c.read<std::int64_t>(key); break;
    case GgufValueType::float32: v.float_value = c.read<float>(key); break;
    case GgufValueType::float64: v.float_value = c.read<double>(key); break;
    case GgufValueType::boolean: {
      const auto b = c.read<std::uint8_t>(key);
      if (b > 1) invalid("metadata \"" + key + "\": boolean byte is " + std::to_string(b), key);
      v.bool_value = b == 1;
      break;
    }
    case GgufValueType::string: v.string_value = c.read_string(key); break;
    case GgufValueType::array: {
      if (depth >= kMaxArrayDepth)
        invalid("metadata \"" + key + "\": arrays nested too deeply", key);
      const auto et = c.read<std::uint32_t>(key);
      if (!valid_value_type(et)) {
        invalid("metadata \"" + key + "\": unknown array element type " + std::to_string(et), key);
      }
      v.element_type = static_cast<GgufValueType>(et);
      const auto count = c.read<std::uint64_t>(key);
      const std::uint64_t min = min_encoded_size(v.element_type);
      if (count > c.left() / min) {
        fail(core::parse_error("gguf.truncated",
                               "metadata \"" + key + "\": array of " + std::to_string(count) +
                                   " elements cannot fit in the " + std::to_string(c.left()) +
                                   " bytes left in the file",
                               key));
      }
      v.elements.reserve(static_cast<std::size_t>(count));
      for (std::uint64_t i = 0; i < count; ++i) {
        v.elements.push_back(read_value(c, v.element_type, key, depth + 1));
      }
      break;
    }
  }
  return v;
}

GgufFile parse(std::span<const std::uint8_t> prefix, std::uint64_t file_size) {
  if (prefix.size() > file_size) file_size = prefix.size();
  Cursor c(prefix, file_size);
  GgufFile f;
  f.file_size = file_size;
  c.need(4, "the magic");
  if (!(prefix[0] == 'G' && prefix[1] == 'G' && prefix[2] == 'U' && prefix[3] == 'F')) {
    fail(core::parse_error("gguf.bad_magic",
                           "the file does not start with \"GGUF\"; not a GGUF model file"));
  }
  c.read<std::uint32_t>("the magic");
  f.version = c.read<std::uint32_t>("the version");
  if (f.version == 1) {
    fail(core::parse_error("gguf.unsupported_version",
                           "GGUF version 1 is not supported; re-convert the model with a current "
                           "llama.cpp (convert_hf_to_gguf.py)"));
  }
  if (f.version != 2 && f.version != 3) {
    const bool swapped = (f.version & 0xFFFFu) == 0 && f.version != 0;
    fail(core::parse_error(
        "gguf.unsupported_version",
        swapped ? "big-endian GGUF files are not supported"
                : "GGUF version " + std::to_string(f.version) + " is not supported (2 and 3 are)"));
  }
  const auto n_tensors = c.read<std::uint64_t>("the tensor count");
  const auto n_kv = c.read<std::uint64_t>("the metadata count");
  // Each metadata pair takes at least 13 bytes (key length, type, one byte of value) and each
  // tensor info at least 24 (name length, n_dims, type, offset).
  if (n_kv > c.left() / 13) {
    fail(core::parse_error("gguf.truncated", "the header declares " + std::to_string(n_kv) +
                                                 " metadata pairs, more than the file's " +
                                                 std::to_string(c.left()) +
                                                 " remaining bytes hold"));
  }
  if (n_tensors > c.left() / 24) {
    fail(core::parse_error("gguf.truncated", "the header declares " + std::to_string(n_tensors) +
                                                 " tensors, more than the file's " +
                                                 std::to_string(c.left()) +
                                                 " remaining bytes hold"));
  }
  std::set<std::string> keys;
  f.metadata.reserve(static_cast<std::size_t>(n_kv));
  for (std::uint64_t i = 0; i < n_kv; ++i) {
    GgufKv kv;
    kv.key = c.read_string("a metadata key");
    const auto t = c.read<std::uint32_t>(kv.key);
    if (!valid_value_type(t)) {
      invalid("metadata \"" + kv.key + "\": unknown value type " + std::to_string(t), kv.key);
    }
    kv.value = read_value(c, static_cast<GgufValueType>(t), kv.key, 0);
    if (!keys.insert(kv.key).second)
      invalid("metadata key \"" + kv.key + "\" appears twice", kv.key);
    f.metadata.push_back(std::move(kv));
  }
  if (const auto* a = f.find("general.alignment")) {
    if (a->type != GgufValueType::uint32 || a->uint_value == 0 ||
        (a->uint_value & (a->uint_value - 1)) != 0) {
      invalid("general.alignment must be a uint32 power of two", "general.alignment");
    }
    f.alignment = static_cast<std::uint32_t>(a->uint_value);
  }
  std::set<std::string> names;
  f.tensors.reserve(static_cast<std::size_t>(n_tensors));
  for (std::uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo t;
    t.name = c.read_string("a tensor name");
    const auto n_dims = c.read<std::uint32_t>(t.name);
    if (n_dims > kMaxDims) {
      invalid("tensor \"" + t.name + "\" has " + std::to_string(n_dims) + " dimensions (at most 4)",
              t.name);
    }
    for (std::uint32_t d = 0; d < n_dims; ++d) t.dims.push_back(c.read<std::uint64_t>(t.name));
    t.type = c.read<std::uint32_t>(t.name);
    t.offset = c.read<std::uint64_t>(t.name);
    auto bytes = ggml_tensor_bytes(t.type, t.dims);
    if (!bytes) {
      auto e = bytes.error();
      e.message = "tensor \"" + t.name + "\": " + e.message;
      e.field = t.name;
      fail(std::move(e));
    }
    t.bytes = *bytes;
    t.elements = 1;
    for (auto d : t.dims) t.elements *= d;  // no overflow: checked by ggml_tensor_bytes
    if (t.offset % f.alignment != 0) {
      invalid("tensor \"" + t.name + "\": offset " + std::to_string(t.offset) +
                  " is not a multiple of the alignment " + std::to_string(f.alignment),
              t.name);
    }
    if (!names.insert(t.name).second) invalid("tensor \"" + t.name + "\" appears twice", t.name);
    f.tensors.push_back(std::move(t));
  }
  f.data_offset = align_up(c.pos(), f.alignment);
  const std::uint64_t data_size = file_size > f.data_offset ? file_size - f.data_offset : 0;
  std::vector<const GgufTensorInfo*> by_offset;
  by_offset.reserve(f.tensors.size());
  for (const auto& t : f.tensors) {
    if (t.offset > data_size || t.bytes > data_size - t.offset) {
      fail(core::parse_error("gguf.truncated",
                             "tensor \"" + t.name + "\" (" + std::to_string(t.bytes) +
                                 " bytes at data offset " + std::to_string(t.offset) +
                                 ") extends past the end of the file (data area " +
                                 std::to_string(data_size) + " bytes); the file is truncated",
                             t.name));
    }
    by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const auto* a, const auto* b) { return a->offset < b->offset; });
  for (std::size_t i = 1; i < by_offset.size(); ++i) {
    const auto* prev = by_offset[i - 1];
    if (prev->bytes > 0 && prev->offset + prev->bytes > by_offset[i]->offset) {
      invalid("tensors \"" + prev->name + "\" and \"" + by_offset[i]->name + "\" overlap",
              by_offset[i]->name);
    }
  }
  return f;
}

std::optional<std::int64_t> int_or_max(const GgufValue* v) {
  if (!v) return std::nullopt;
  if (v->type != GgufValueType::array) return v->as_int();
  std::optional<std::int64_t> best;
  for (const auto& e : v->elements) {
    if (auto x = e.as_int(); x && (!best || *x > *best)) best = *x;
  }
  return best;
}

int bits_of_type(std::string_view name) {
  if (name == "Q8_0" || name == "Q8_1" || name == "Q8_K" || name == "I8") return 8;
  if (name.find('6') != std::string_view::npos) return 6;
  if (name.find('5') != std::string_view::npos) return 5;
  if (name.find('4') != std::string_view::npos) return 4;
  if (name.find('3') != std::string_view::npos) return 3;
  if (name.find('2') != std::string_view::npos) return 2;
  if (name.find('1') != std::string_view::npos) return 1;
  return 0;
}

// ---- writer helpers ----

using Sink = std::function<void(const void*, std::size_t)>;

void put_le(const Sink& out, std::uint64_t v, std::size_t n) {
  std::array<std::uint8_t, 8> b{};
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(v >> (8 * i));
  out(b.data(), n);
}

void put_string(const Sink& out, const std::string& s) {
  put_le(out, s.size(), 8);
  out(s.data(), s.size());
}

void check_value(const GgufValue& v, const std::string& key, int depth) {
  if (v.type != GgufValueType::array) return;
  if (depth >= kMaxArrayDepth) {
    fail(core::invalid("gguf.invalid", "metadata \"" + key + "\": arrays nested too deeply", key));
  }
  for (const auto& e : v.elements) {
    if (e.type != v.element_type) {
      fail(core::invalid("gguf.invalid",
                         "metadata \"" + key + "\": an element of type " +
                             std::string(to_string(e.type)) + " in an array of " +
                             std::string(to_string(v.element_type)),
                         key));
    }
    check_value(e, key, depth + 1);
  }
}

void put_value(const Sink& out, const GgufValue& v) {
  switch (v.type) {
    case GgufValueType::uint8: put_le(out, v.uint_value, 1); break;
    case GgufValueType::int8: put_le(out, static_cast<std::uint64_t>(v.int_value), 1); break;
    case GgufValueType::uint16: put_le(out, v.uint_value, 2); break;
    case GgufValueType::int16: put_le(out, static_cast<std::uint64_t>(v.int_value), 2); break;
    case GgufValueType::uint32: put_le(out, v.uint_value, 4); break;
    case GgufValueType::int32: put_le(out, static_cast<std::uint64_t>(v.int_value), 4); break;
    case GgufValueType::uint64: put_le(out, v.uint_value, 8); break;
    case GgufValueType::int64: put_le(out, static_cast<std::uint64_t>(v.int_value), 8); break;
    case GgufValueType::float32: {
      const auto f = static_cast<float>(v.float_value);
      std::uint32_t bits = 0;
      std::memcpy(&bits, &f, 4);
      put_le(out, bits, 4);
      break;
    }
    case GgufValueType::float64: {
      std::uint64_t bits = 0;
      std::memcpy(&bits, &v.float_value, 8);
      put_le(out, bits, 8);
      break;
    }
    case GgufValueType::boolean: put_le(out, v.bool_value ? 1 : 0, 1); break;
    case GgufValueType::string: put_string(out, v.string_value); break;
    case GgufValueType::array:
      put_le(out, static_cast<std::uint32_t>(v.element_type), 4);
      put_le(out, v.elements.size(), 8);
      for (const auto& e : v.elements) put_value(out, e);
      break;
  }
}

void put_zeros(const Sink& out, std::uint64_t n) {
  static constexpr std::array<std::uint8_t, 4096> kZeros{};
  while (n > 0) {
    const auto k = static_cast<std::size_t>(std::min<std::uint64_t>(n, kZeros.size()));
    out(kZeros.data(), k);
    n -= k;
  }
}

}  // namespace

std::string_view to_string(GgufValueType t) {
  switch (t) {
    case GgufValueType::uint8: return "uint8";
    case GgufValueType::int8: return "int8";
    case GgufValueType::uint16: return "uint16";
    case GgufValueType::int16: return "int16";
    case GgufValueType::uint32: return "uint32";
    case GgufValueType::int32: return "int32";
    case GgufValueType::float32: return "float32";
    case GgufValueType::boolean: return "bool";
    case GgufValueType::string: return "string";
    case GgufValueType::array: return "array";
    case GgufValueType::uint64: return "uint64";
    case GgufValueType::int64: return "int64";
    case GgufValueType::float64: return "float64";
  }
  return "unknown";
}

namespace {
// One GgufValue of a scalar type: unsigned types fill uint_value, signed int_value, floats
// float_value.
GgufValue scalar(GgufValueType type, std::uint64_t u, std::int64_t i, double f) {
  GgufValue x;
  x.type = type;
  x.uint_value = u;
  x.int_value = i;
  x.float_value = f;
  return x;
}
}  // namespace

GgufValue GgufValue::u8(std::uint8_t v) {
  return scalar(GgufValueType::uint8, v, 0, 0);
}
GgufValue GgufValue::i8(std::int8_t v) {
  return scalar(GgufValueType::int8, 0, v, 0);
}
GgufValue GgufValue::u16(std::uint16_t v) {
  return scalar(GgufValueType::uint16, v, 0, 0);
}
GgufValue GgufValue::i16(std::int16_t v) {
  return scalar(GgufValueType::int16, 0, v, 0);
}
GgufValue GgufValue::u32(std::uint32_t v) {
  return scalar(GgufValueType::uint32, v, 0, 0);
}
GgufValue GgufValue::i32(std::int32_t v) {
  return scalar(GgufValueType::int32, 0, v, 0);
}
GgufValue GgufValue::u64(std::uint64_t v) {
  return scalar(GgufValueType::uint64, v, 0, 0);
}
GgufValue GgufValue::i64(std::int64_t v) {
  return scalar(GgufValueType::int64, 0, v, 0);
}
GgufValue GgufValue::f32(float v) {
  return scalar(GgufValueType::float32, 0, 0, v);
}
GgufValue GgufValue::f64(double v) {
  return scalar(GgufValueType::float64, 0, 0, v);
}
GgufValue GgufValue::boolean(bool v) {
  GgufValue x;
  x.type = GgufValueType::boolean;
  x.bool_value = v;
  return x;
}
GgufValue GgufValue::str(std::string v) {
  GgufValue x;
  x.type = GgufValueType::string;
  x.string_value = std::move(v);
  return x;
}
GgufValue GgufValue::array(GgufValueType element_type, std::vector<GgufValue> elements) {
  GgufValue x;
  x.type = GgufValueType::array;
  x.element_type = element_type;
  x.elements = std::move(elements);
  return x;
}
GgufValue GgufValue::string_array(const std::vector<std::string>& v) {
  std::vector<GgufValue> e;
  e.reserve(v.size());
  for (const auto& s : v) e.push_back(str(s));
  return array(GgufValueType::string, std::move(e));
}
GgufValue GgufValue::i32_array(const std::vector<std::int32_t>& v) {
  std::vector<GgufValue> e;
  e.reserve(v.size());
  for (auto n : v) e.push_back(i32(n));
  return array(GgufValueType::int32, std::move(e));
}
GgufValue GgufValue::f32_array(const std::vector<float>& v) {
  std::vector<GgufValue> e;
  e.reserve(v.size());
  for (auto n : v) e.push_back(f32(n));
  return array(GgufValueType::float32, std::move(e));
}

std::optional<std::int64_t> GgufValue::as_int() const {
  switch (type) {
    case GgufValueType::uint8:
    case GgufValueType::uint16:
    case GgufValueType::uint32:
    case GgufValueType::uint64:
      if (uint_value > static_cast<std::uint64_t>(INT64_MAX)) return std::nullopt;
      return static_cast<std::int64_t>(uint_value);
    case GgufValueType::int8:
    case GgufValueType::int16:
    case GgufValueType::int32:
    case GgufValueType::int64: return int_value;
    case GgufValueType::boolean: return bool_value ? 1 : 0;
    default: return std::nullopt;
  }
}

std::optional<double> GgufValue::as_float() const {
  if (type == GgufValueType::float32 || type == GgufValueType::float64) return float_value;
  if (type == GgufValueType::uint8 || type == GgufValueType::uint16 ||
      type == GgufValueType::uint32 || type == GgufValueType::uint64) {
    return static_cast<double>(uint_value);
  }
  if (auto i = as_int()) return static_cast<double>(*i);
  return std::nullopt;
}

std::optional<std::string> GgufValue::as_string() const {
  if (type != GgufValueType::string) return std::nullopt;
  return string_value;
}

const GgmlTypeInfo* ggml_type_info(std::uint32_t id) {
  for (const auto& t : kGgmlTypes) {
    if (t.id == id) return &t;
  }
  return nullptr;
}

std::optional<std::uint32_t> ggml_type_from_name(std::string_view name) {
  const std::string upper = [&] {
    std::string s(name);
    for (auto& ch : s) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    return s;
  }();
  for (const auto& t : kGgmlTypes) {
    if (t.name == upper) return t.id;
  }
  return std::nullopt;
}

core::Result<std::uint64_t> ggml_tensor_bytes(std::uint32_t type,
                                              std::span<const std::uint64_t> dims) {
  const auto* info = ggml_type_info(type);
  if (!info) {
    return core::parse_error("gguf.unknown_type",
                             "ggml type " + std::to_string(type) +
                                 " is unknown (removed from the format or newer than this reader)");
  }
  const std::uint64_t ne0 = dims.empty() ? 1 : dims[0];
  if (ne0 % info->block_size != 0) {
    return core::parse_error("gguf.bad_tensor", "first dimension " + std::to_string(ne0) +
                                                    " is not a multiple of the " +
                                                    std::string(info->name) + " block size " +
                                                    std::to_string(info->block_size));
  }
  std::uint64_t elements = 1;
  for (auto d : dims) {
    if (d > static_cast<std::uint64_t>(INT64_MAX) ||
        __builtin_mul_overflow(elements, d, &elements) ||
        elements > static_cast<std::uint64_t>(INT64_MAX)) {
      return core::parse_error("gguf.bad_tensor", "the element count overflows 63 bits");
    }
  }
  std::uint64_t bytes = 0;
  if (__builtin_mul_overflow(elements / info->block_size, std::uint64_t{info->type_size}, &bytes)) {
    return core::parse_error("gguf.bad_tensor", "the byte size overflows 64 bits");
  }
  return bytes;
}

std::string_view GgufTensorInfo::type_name() const {
  const auto* info = ggml_type_info(type);
  return info ? info->name : std::string_view("unknown");
}

const GgufValue* GgufFile::find(std::string_view key) const {
  for (const auto& kv : metadata) {
    if (kv.key == key) return &kv.value;
  }
  return nullptr;
}

std::optional<std::int64_t> GgufFile::get_int(std::string_view key) const {
  const auto* v = find(key);
  return v ? v->as_int() : std::nullopt;
}

std::optional<double> GgufFile::get_float(std::string_view key) const {
  const auto* v = find(key);
  return v ? v->as_float() : std::nullopt;
}

std::optional<std::string> GgufFile::get_string(std::string_view key) const {
  const auto* v = find(key);
  return v ? v->as_string() : std::nullopt;
}

const GgufValue* GgufFile::get_array(std::string_view key) const {
  const auto* v = find(key);
  return v && v->type == GgufValueType::array ? v : nullptr;
}

std::string GgufFile::architecture() const {
  return get_string("general.architecture").value_or("");
}

std::string GgufFile::chat_template() const {
  return get_string("tokenizer.chat_template").value_or("");
}

std::uint64_t GgufFile::tensor_bytes() const {
  std::uint64_t sum = 0;
  for (const auto& t : tensors) sum += t.bytes;
  return sum;
}

std::uint64_t GgufFile::tensor_elements() const {
  std::uint64_t sum = 0;
  for (const auto& t : tensors) sum += t.elements;
  return sum;
}

core::Result<GgufFile> parse_gguf(std::span<const std::uint8_t> prefix, std::uint64_t file_size) {
  try {
    return parse(prefix, file_size);
  } catch (const core::ErrorException& e) {
    return e.error();
  } catch (const std::bad_alloc&) {
    return core::Error(core::Errc::resource_exhausted, "gguf.too_large",
                       "not enough memory to hold the GGUF header");
  }
}

core::Result<GgufFile> read_gguf(const std::filesystem::path& path) {
  const std::string name = path.string();
  auto with_name = [&](core::Error e) {
    e.message = name + ": " + e.message;
    if (e.field.empty()) e.field = name;
    return e;
  };
  std::ifstream in;
  auto opened = core::open_for_read(path, in);
  if (!opened) return opened.error();
  const std::uint64_t size = *opened;
  constexpr std::uint64_t kCap = 1ull << 30;
  std::uint64_t want = std::min<std::uint64_t>(size, 4u << 20);
  std::vector<std::uint8_t> buf;
  for (;;) {
    const std::size_t have = buf.size();
    buf.resize(static_cast<std::size_t>(want));
    in.read(reinterpret_cast<char*>(buf.data() + have), static_cast<std::streamsize>(want - have));
    if (static_cast<std::uint64_t>(in.gcount()) != want - have) {
      return core::io_error("file.unreadable", name + ": short read", name);
    }
    auto f = parse_gguf(buf, size);
    if (f) return f;
    if (f.error().code != "gguf.prefix_too_short") return with_name(f.error());
    if (want >= size || want >= kCap) {
      return with_name(
          core::parse_error("gguf.header_too_large", "the metadata and tensor infos exceed 1 GiB"));
    }
    want = std::min<std::uint64_t>({want * 2, size, kCap});
  }
}

core::Result<ModelArch> gguf_model_arch(const GgufFile& f) {
  const std::string arch = f.architecture();
  if (arch.empty()) {
    return core::invalid("gguf.missing_key",
                         "general.architecture is missing from the GGUF metadata",
                         "general.architecture");
  }
  const std::string p = arch + ".";
  auto key_int = [&](std::string_view k) { return int_or_max(f.find(p + std::string(k))); };
  ModelArch a;
  a.architecture = arch;
  a.model_type = arch;
  for (auto [field, key] :
       {std::pair{&a.hidden_size, "embedding_length"}, std::pair{&a.num_layers, "block_count"},
        std::pair{&a.num_attention_heads, "attention.head_count"}}) {
    auto v = key_int(key);
    if (!v || *v <= 0) {
      return core::invalid("gguf.missing_key",
                           p + key + " is missing or not a positive integer in the GGUF metadata",
                           p + key);
    }
    *field = *v;
  }
  a.num_kv_heads = key_int("attention.head_count_kv").value_or(a.num_attention_heads);
  if (a.num_kv_heads <= 0) a.num_kv_heads = a.num_attention_heads;
  a.max_position_embeddings = std::max<std::int64_t>(0, key_int("context_length").value_or(0));
  if (a.max_position_embeddings > (std::int64_t{1} << 40)) {
    return core::invalid("gguf.invalid_value", p + "context_length is out of range (at most 2^40)",
                         p + "context_length");
  }
  a.intermediate_size = std::max<std::int64_t>(0, key_int("feed_forward_length").value_or(0));
  if (auto v = key_int("vocab_size"); v && *v > 0) {
    a.vocab_size = *v;
  } else if (const auto* toks = f.get_array("tokenizer.ggml.tokens")) {
    a.vocab_size = static_cast<std::int64_t>(toks->elements.size());
  }
  if (a.vocab_size <= 0) {
    return core::invalid(
        "gguf.missing_key",
        "neither " + p + "vocab_size nor tokenizer.ggml.tokens is in the GGUF metadata",
        "tokenizer.ggml.tokens");
  }
  a.n_routed_experts = std::max<std::int64_t>(0, key_int("expert_count").value_or(0));
  a.num_experts_per_tok = std::max<std::int64_t>(0, key_int("expert_used_count").value_or(0));
  a.moe_intermediate_size =
      std::max<std::int64_t>(0, key_int("expert_feed_forward_length").value_or(0));
  a.n_shared_experts = std::max<std::int64_t>(0, key_int("expert_shared_count").value_or(0));
  a.first_k_dense_replace =
      std::max<std::int64_t>(0, key_int("leading_dense_block_count").value_or(0));

  a.kv_lora_rank = std::max<std::int64_t>(0, key_int("attention.kv_lora_rank").value_or(0));
  a.q_lora_rank = std::max<std::int64_t>(0, key_int("attention.q_lora_rank").value_or(0));
  a.is_mla = a.kv_lora_rank > 0;
  const auto key_len = key_int("attention.key_length");
  if (a.is_mla) {
    a.qk_rope_head_dim = std::max<std::int64_t>(0, key_int("rope.dimension_count").value_or(0));
    // Newer conversions store the MLA head sizes under *_mla and the latent sizes in key_length.
    const auto k_mla = key_int("attention.key_length_mla");
    const auto v_mla = key_int("attention.value_length_mla");
    const std::int64_t k = std::max<std::int64_t>(0, k_mla.value_or(key_len.value_or(0)));
    a.qk_nope_head_dim = std::max<std::int64_t>(0, k - a.qk_rope_head_dim);
    a.v_head_dim =
        std::max<std::int64_t>(0, v_mla.value_or(key_int("attention.value_length").value_or(0)));
    a.head_dim = a.hidden_size / a.num_attention_heads;
  } else {
    a.head_dim = key_len && *key_len > 0 ? *key_len : a.hidden_size / a.num_attention_heads;
  }

  if (auto type = f.get_string(p + "rope.scaling.type"); type && *type != "none") {
    RopeScaling r;
    r.type = *type;
    r.factor = f.get_float(p + "rope.scaling.factor").value_or(1.0);
    r.original_max_position_embeddings = std::max<std::int64_t>(
        0, f.get_int(p + "rope.scaling.original_context_length").value_or(0));
    // Bounds keep derived lengths (original × factor) far from overflow.
    if (!(r.factor > 0 && r.factor <= 1e6) ||
        r.original_max_position_embeddings > (std::int64_t{1} << 40)) {
      return core::invalid("gguf.invalid_value",
                           p + "rope.scaling.factor or .original_context_length is out of range",
                           p + "rope.scaling.factor");
    }
    a.rope_scaling = r;
  }

  bool has_output = false;
  std::map<std::uint32_t, std::uint64_t> by_type;
  for (const auto& t : f.tensors) {
    has_output = has_output || t.name == "output.weight";
    by_type[t.type] += t.bytes;
  }
  a.tie_word_embeddings = !f.tensors.empty() && !has_output;
  if (!by_type.empty()) {
    const auto dominant =
        std::max_element(by_type.begin(), by_type.end(), [](const auto& x, const auto& y) {
          return x.second < y.second;
        })->first;
    const std::string_view name = ggml_type_info(dominant)->name;
    if (name == "F32")
      a.torch_dtype = DType::f32;
    else if (name == "F16")
      a.torch_dtype = DType::f16;
    else if (name == "BF16")
      a.torch_dtype = DType::bf16;
    else {
      const int bits = bits_of_type(name);
      a.torch_dtype = bits == 8 ? DType::int8 : bits == 4 ? DType::int4 : DType::unknown;
      a.quantization = Quantization{"gguf", bits, std::string(name), {}};
    }
  }
  return a;
}

// ---- writer ----

void GgufWriter::set(std::string key, GgufValue value) {
  for (auto& kv : kvs_) {
    if (kv.key == key) {
      kv.value = std::move(value);
      return;
    }
  }
  kvs_.push_back({std::move(key), std::move(value)});
}

core::Result<void> GgufWriter::add_tensor(std::string name, std::vector<std::uint64_t> dims,
                                          std::uint32_t type, std::vector<std::uint8_t> data) {
  if (dims.size() > kMaxDims) {
    return core::invalid("gguf.bad_tensor", "tensor \"" + name + "\" has more than 4 dimensions",
                         name);
  }
  for (const auto& t : tensors_) {
    if (t.name == name)
      return core::invalid("gguf.bad_tensor", "tensor \"" + name + "\" added twice", name);
  }
  auto bytes = ggml_tensor_bytes(type, dims);
  if (!bytes) {
    auto e = bytes.error();
    e.message = "tensor \"" + name + "\": " + e.message;
    e.field = name;
    return e;
  }
  if (!data.empty() && data.size() != *bytes) {
    return core::invalid("gguf.bad_tensor",
                         "tensor \"" + name + "\": " + std::to_string(data.size()) +
                             " data bytes given, the type and shape need " + std::to_string(*bytes),
                         name);
  }
  tensors_.push_back({std::move(name), std::move(dims), type, *bytes, std::move(data)});
  return {};
}

core::Result<std::uint32_t> GgufWriter::alignment() const {
  for (const auto& kv : kvs_) {
    if (kv.key != "general.alignment") continue;
    const auto& v = kv.value;
    if (v.type != GgufValueType::uint32 || v.uint_value == 0 || v.uint_value > 0xFFFFFFFFu ||
        (v.uint_value & (v.uint_value - 1)) != 0) {
      return core::invalid("gguf.invalid", "general.alignment must be a uint32 power of two",
                           "general.alignment");
    }
    return static_cast<std::uint32_t>(v.uint_value);
  }
  return 32u;
}

namespace {
core::Result<void> serialize(std::uint32_t version, const std::vector<GgufKv>& kvs,
                             std::uint32_t align, const auto& tensors, const Sink& out) {
  try {
    for (const auto& kv : kvs) check_value(kv.value, kv.key, 0);
  } catch (const core::ErrorException& e) {
    return e.error();
  }
  std::uint64_t pos = 0;
  const Sink counted = [&](const void* p, std::size_t n) {
    pos += n;
    out(p, n);
  };
  counted("GGUF", 4);
  put_le(counted, version, 4);
  put_le(counted, tensors.size(), 8);
  put_le(counted, kvs.size(), 8);
  for (const auto& kv : kvs) {
    put_string(counted, kv.key);
    put_le(counted, static_cast<std::uint32_t>(kv.value.type), 4);
    put_value(counted, kv.value);
  }
  std::uint64_t offset = 0;
  for (const auto& t : tensors) {
    put_string(counted, t.name);
    put_le(counted, t.dims.size(), 4);
    for (auto d : t.dims) put_le(counted, d, 8);
    put_le(counted, t.type, 4);
    put_le(counted, offset, 8);
    offset = align_up(offset + t.bytes, align);
  }
  put_zeros(counted, align_up(pos, align) - pos);
  for (const auto& t : tensors) {
    if (t.data.empty())
      put_zeros(counted, t.bytes);
    else
      counted(t.data.data(), t.data.size());
    put_zeros(counted, align_up(t.bytes, align) - t.bytes);
  }
  return {};
}
}  // namespace

core::Result<std::vector<std::uint8_t>> GgufWriter::to_bytes() const {
  auto align = alignment();
  if (!align) return align.error();
  std::vector<std::uint8_t> bytes;
  auto r = serialize(version_, kvs_, *align, tensors_, [&](const void* p, std::size_t n) {
    const auto* b = static_cast<const std::uint8_t*>(p);
    bytes.insert(bytes.end(), b, b + n);
  });
  if (!r) return r.error();
  return bytes;
}

core::Result<void> GgufWriter::write(const std::filesystem::path& path) const {
  auto align = alignment();
  if (!align) return align.error();
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) {
    return core::io_error("file.unwritable", path.string() + ": cannot open for writing",
                          path.string());
  }
  auto r = serialize(version_, kvs_, *align, tensors_, [&](const void* p, std::size_t n) {
    out.write(static_cast<const char*>(p), static_cast<std::streamsize>(n));
  });
  if (!r) return r.error();
  out.flush();
  if (!out)
    return core::io_error("file.unwritable", path.string() + ": write failed", path.string());
  return {};
}

}  // namespace openstation::model
