#pragma once
/// Reading safetensors headers without touching tensor data.
///
/// The file format: an 8-byte little-endian u64 N, then N bytes of JSON
///   {"<tensor name>": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, ...,
///    "__metadata__": {"<key>": "<string>"}}
/// then the data area; offsets are relative to the data area's start (byte 8 + N).
/// Sharded checkpoints add model.safetensors.index.json: {"metadata": {"total_size": ...},
/// "weight_map": {"<tensor name>": "<shard file name>"}}.

#include "core/error.hpp"

#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace openstation::model {

/// Largest header accepted (the reference implementation's limit is 100 MB as well).
inline constexpr std::uint64_t kMaxSafetensorsHeader = 100'000'000;

/// One tensor entry of a safetensors header.
struct SafetensorsTensor {
  std::string name;
  std::string dtype;                ///< as written: "BF16", "F8_E4M3", ...
  std::vector<std::int64_t> shape;  ///< empty for a scalar
  std::uint64_t begin = 0;          ///< offset in the data area
  std::uint64_t end = 0;            ///< one past the last byte

  std::uint64_t bytes() const { return end - begin; }
  /// Product of the shape (1 for a scalar); validated not to overflow when parsed.
  std::uint64_t elements() const;
};

/// A parsed safetensors header.
struct SafetensorsHeader {
  std::vector<SafetensorsTensor> tensors;  ///< in data-offset order
  std::map<std::string, std::string> metadata;
  std::uint64_t header_bytes = 0;  ///< 8 + N: the bytes before the data area
  std::uint64_t data_bytes = 0;    ///< file size − header_bytes
  std::uint64_t tensor_bytes() const;
};

/// Bits per element of a safetensors dtype name ("BF16" → 16, "F4" → 4); 0 when unknown.
int safetensors_dtype_bits(std::string_view dtype);

/// Parses a header from the first bytes of a file of `file_size` bytes. The prefix must hold at
/// least 8 + N bytes. Errors: "safetensors.truncated" (prefix or file too short),
/// "safetensors.header_too_large", "json.invalid", "safetensors.invalid_header" (wrong shapes,
/// types or keys), "safetensors.bad_offsets" (outside the data area, end < begin, size not
/// matching shape × dtype, overlapping tensors).
core::Result<SafetensorsHeader> parse_safetensors_header(std::span<const std::uint8_t> file_prefix,
                                                         std::uint64_t file_size);

/// Reads only the header bytes of a .safetensors file and parses them; messages name the file.
core::Result<SafetensorsHeader> read_safetensors_header(const std::filesystem::path& path);

/// model.safetensors.index.json.
struct SafetensorsIndex {
  std::uint64_t total_size = 0;                   ///< metadata.total_size; 0 when absent
  std::map<std::string, std::string> weight_map;  ///< tensor name → shard file name
  std::vector<std::string> shards;                ///< distinct shard names, sorted
};

/// Parses index JSON text. Errors: "json.invalid", "safetensors.invalid_index" (no weight_map,
/// non-string shard names, a shard name with a path separator).
core::Result<SafetensorsIndex> parse_safetensors_index(std::string_view text,
                                                       std::string_view source);
/// Reads and parses an index file.
core::Result<SafetensorsIndex> read_safetensors_index(const std::filesystem::path& path);

}  // namespace openstation::model
