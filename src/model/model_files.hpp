#pragma once
/// Inspecting model files on disk ("precise mode"): a HuggingFace directory (config.json plus
/// safetensors shards) or a GGUF file, read from headers only, into a ModelInfo with exact weight
/// bytes and parameter counts.

#include "core/error.hpp"
#include "model/model_info.hpp"

#include <filesystem>
#include <string>
#include <vector>

namespace openstation::model {

/// Inspects a model path:
/// - a directory with config.json and *.safetensors (or model.safetensors.index.json): format
///   safetensors, arch from config.json, weight_bytes = the sum of every shard's tensor bytes
///   (FP8 checkpoints as stored, scale tensors included), params = the sum of tensor elements;
/// - a .gguf file, or a directory holding one GGUF model (a single file or split shards
///   "<name>-00001-of-0000N.gguf"; mmproj*.gguf projector files are ignored): format gguf, arch
///   from the metadata, weights from the tensor infos, bytes_by_type by ggml type name.
/// disk_bytes is the sum of all regular files (for a directory, recursively).
/// Errors: "model.path_not_found", "model.no_weights" (says what was expected),
/// "model.shard_missing" (names the shard), "model.ambiguous_gguf" (several unrelated .gguf files),
/// and the readers' errors ("safetensors.*", "gguf.*", "config.*", "json.invalid") with the file.
core::Result<ModelInfo> inspect_model_path(const std::filesystem::path& p);

/// The shards of a split GGUF model given any one of them ("x-00002-of-00003.gguf" → all three,
/// in order); a single-file model gives itself. Error "model.shard_missing" names the missing one.
core::Result<std::vector<std::filesystem::path>> gguf_shard_paths(
    const std::filesystem::path& file);

}  // namespace openstation::model
