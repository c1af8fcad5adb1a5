#pragma once
/// What the platform knows about one model, from whichever source: a catalog card (no files) or
/// a model directory / GGUF file on disk (read by model_files.hpp).

#include "model/arch.hpp"

#include <cstdint>
#include <map>
#include <string>

namespace openstation::model {

enum class WeightFormat { safetensors, gguf, unknown };

struct ModelInfo {
  std::string id;    ///< catalog id or directory name
  std::string path;  ///< model directory or .gguf file; empty for catalog-only
  WeightFormat format = WeightFormat::unknown;
  ModelArch arch;
  double params = 0;               ///< parameter count (exact from files, nominal from a card)
  std::uint64_t weight_bytes = 0;  ///< bytes of all weight tensors
  std::uint64_t disk_bytes = 0;    ///< bytes of all model files (what a download needs)
  bool weights_exact = false;      ///< true when weight_bytes came from tensor headers
  /// For GGUF: bytes per tensor type name ("Q4_K" → bytes), for the llama.cpp estimate.
  std::map<std::string, std::uint64_t> bytes_by_type;
  std::string gguf_chat_template;  ///< tokenizer.chat_template from GGUF metadata, if any
};

}  // namespace openstation::model
