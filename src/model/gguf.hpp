#pragma once
/// GGUF (llama.cpp's model file) reader and writer, version 2 and 3, little-endian.
///
/// Layout: "GGUF" magic, u32 version, u64 tensor count, u64 metadata count; metadata as
/// (string key, u32 value type, value); tensor infos as (string name, u32 n_dims, u64 dims[n_dims],
/// u32 ggml type, u64 offset); padding to the alignment (metadata general.alignment, default 32);
/// then the tensor data, each tensor at its offset from the data start. Strings are a u64 length
/// and that many bytes. The reader never reads tensor data and never allocates more than the
/// bytes it was given can describe.

#include "core/error.hpp"
#include "model/arch.hpp"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace openstation::model {

/// GGUF metadata value types (the numbers are the file format's).
enum class GgufValueType : std::uint32_t {
  uint8 = 0,
  int8 = 1,
  uint16 = 2,
  int16 = 3,
  uint32 = 4,
  int32 = 5,
  float32 = 6,
  boolean = 7,
  string = 8,
  array = 9,
  uint64 = 10,
  int64 = 11,
  float64 = 12,
};

/// "uint32", "string", ...
std::string_view to_string(GgufValueType t);

/// One metadata value. Scalars live in the field matching their type family; arrays hold their
/// element type and elements (arrays of arrays are allowed).
struct GgufValue {
  GgufValueType type = GgufValueType::uint32;
  std::uint64_t uint_value = 0;  ///< uint8/16/32/64
  std::int64_t int_value = 0;    ///< int8/16/32/64
  double float_value = 0;        ///< float32/64
  bool bool_value = false;
  std::string string_value;
  GgufValueType element_type = GgufValueType::uint8;  ///< arrays only
  std::vector<GgufValue> elements;                    ///< arrays only

  static GgufValue u8(std::uint8_t v);
  static GgufValue i8(std::int8_t v);
  static GgufValue u16(std::uint16_t v);
  static GgufValue i16(std::int16_t v);
  static GgufValue u32(std::uint32_t v);
  static GgufValue i32(std::int32_t v);
  static GgufValue u64(std::uint64_t v);
  static GgufValue i64(std::int64_t v);
  static GgufValue f32(float v);
  static GgufValue f64(double v);
  static GgufValue boolean(bool v);
  static GgufValue str(std::string v);
  /// An array; every element must have type `element_type` (checked by GgufWriter).
  static GgufValue array(GgufValueType element_type, std::vector<GgufValue> elements);
  static GgufValue string_array(const std::vector<std::string>& v);
  static GgufValue i32_array(const std::vector<std::int32_t>& v);
  static GgufValue f32_array(const std::vector<float>& v);

  /// Integer value of any integer (or bool) type; nullopt for others or out-of-range uint64.
  std::optional<std::int64_t> as_int() const;
  /// Number of any numeric type.
  std::optional<double> as_float() const;
  /// The string of a string value.
  std::optional<std::string> as_string() const;
};

/// One metadata key/value pair.
struct GgufKv {
  std::string key;
  GgufValue value;
};

/// ggml tensor types as numbered in the GGUF format.
struct GgmlTypeInfo {
  std::uint32_t id = 0;
  std::string_view name;         ///< "Q4_K"
  std::uint32_t block_size = 0;  ///< elements per block
  std::uint32_t type_size = 0;   ///< bytes per block
};

/// The table entry for a ggml type id; nullptr for ids that are unknown or removed from the format.
const GgmlTypeInfo* ggml_type_info(std::uint32_t id);
/// The id of a ggml type name ("Q8_0" → 8); nullopt if unknown.
std::optional<std::uint32_t> ggml_type_from_name(std::string_view name);
/// Bytes of a tensor of `type` with `dims` (ne[0] first). Errors: "gguf.unknown_type",
/// "gguf.bad_tensor" (ne[0] not a multiple of the block size, overflow).
core::Result<std::uint64_t> ggml_tensor_bytes(std::uint32_t type,
                                              std::span<const std::uint64_t> dims);

/// Named ggml type ids used in code.
namespace ggml {
inline constexpr std::uint32_t kF32 = 0;
inline constexpr std::uint32_t kF16 = 1;
inline constexpr std::uint32_t kQ4_0 = 2;
inline constexpr std::uint32_t kQ8_0 = 8;
inline constexpr std::uint32_t kQ4_K = 12;
inline constexpr std::uint32_t kQ6_K = 14;
inline constexpr std::uint32_t kBF16 = 30;
}  // namespace ggml

/// One tensor info record.
struct GgufTensorInfo {
  std::string name;
  std::vector<std::uint64_t> dims;  ///< ne[0] (fastest varying) first, as stored
  std::uint32_t type = 0;           ///< ggml type id
  std::uint64_t offset = 0;         ///< from the start of the data area
  std::uint64_t bytes = 0;          ///< computed from the type table
  std::uint64_t elements = 0;
  std::string_view type_name() const;
};

/// A parsed GGUF header.
struct GgufFile {
  std::uint32_t version = 0;
  std::vector<GgufKv> metadata;  ///< in file order
  std::vector<GgufTensorInfo> tensors;
  std::uint32_t alignment = 32;
  std::uint64_t data_offset = 0;  ///< where the data area starts in the file
  std::uint64_t file_size = 0;

  /// The value of a key, or nullptr.
  const GgufValue* find(std::string_view key) const;
  std::optional<std::int64_t> get_int(std::string_view key) const;
  std::optional<double> get_float(std::string_view key) const;
  std::optional<std::string> get_string(std::string_view key) const;
  /// The array value of a key, or nullptr when absent or not an array.
  const GgufValue* get_array(std::string_view key) const;
  /// general.architecture ("qwen2", "llama", "deepseek2"), empty if absent.
  std::string architecture() const;
  /// tokenizer.chat_template, empty if absent.
  std::string chat_template() const;
  /// Sum of all tensors' bytes and elements.
  std::uint64_t tensor_bytes() const;
  std::uint64_t tensor_elements() const;
};

/// Parses the header from the first bytes of a file of `file_size` bytes.
/// Errors: "gguf.bad_magic", "gguf.unsupported_version" (v1, big-endian), "gguf.truncated" (the
/// file ends inside the header, or tensor data extends past the end of the file),
/// "gguf.prefix_too_short" (the file is longer but the prefix given ends inside the header),
/// "gguf.invalid" (bad value type, absurd counts, too many dims, misaligned or overlapping
/// tensors, duplicate names), "gguf.unknown_type", "gguf.bad_tensor".
core::Result<GgufFile> parse_gguf(std::span<const std::uint8_t> prefix, std::uint64_t file_size);

/// Reads a GGUF file's header (growing the read until the header fits, up to 1 GiB) without
/// reading tensor data. Messages name the file.
core::Result<GgufFile> read_gguf(const std::filesystem::path& path);

/// Architecture facts from GGUF metadata: `<arch>.block_count`, `.embedding_length`,
/// `.attention.head_count`, `.attention.head_count_kv`, `.context_length`,
/// `.feed_forward_length`, `.attention.key_length`, vocab from `<arch>.vocab_size` or the length
/// of tokenizer.ggml.tokens, MoE (`.expert_count`, `.expert_used_count`,
/// `.expert_feed_forward_length`, `.expert_shared_count`, `.leading_dense_block_count`), MLA
/// (`.attention.kv_lora_rank`, `.attention.q_lora_rank`, `.rope.dimension_count`,
/// `.attention.value_length`) and rope scaling. Errors: "gguf.missing_key" naming the key.
core::Result<ModelArch> gguf_model_arch(const GgufFile& file);

/// Builds a GGUF file: metadata and tensors in insertion order.
class GgufWriter {
 public:
  /// version 2 or 3.
  explicit GgufWriter(std::uint32_t version = 3) : version_(version) {}

  /// Adds or replaces a metadata pair. general.alignment (uint32, a power of two) sets the
  /// alignment of tensor data.
  void set(std::string key, GgufValue value);
  /// Adds a tensor. `data` must be exactly the tensor's byte size, or empty for zeros.
  /// Errors: "gguf.unknown_type", "gguf.bad_tensor" (wrong data size, > 4 dims, duplicate name).
  core::Result<void> add_tensor(std::string name, std::vector<std::uint64_t> dims,
                                std::uint32_t type, std::vector<std::uint8_t> data = {});

  /// The whole file in memory.
  core::Result<std::vector<std::uint8_t>> to_bytes() const;
  /// Writes the file. Errors: "gguf.invalid" (bad metadata), "file.unwritable".
  core::Result<void> write(const std::filesystem::path& path) const;

 private:
  struct Tensor {
    std::string name;
    std::vector<std::uint64_t> dims;
    std::uint32_t type = 0;
    std::uint64_t bytes = 0;
    std::vector<std::uint8_t> data;
  };
  core::Result<std::uint32_t> alignment() const;

  std::uint32_t version_;
  std::vector<GgufKv> kvs_;
  std::vector<Tensor> tensors_;
};

}  // namespace openstation::model
