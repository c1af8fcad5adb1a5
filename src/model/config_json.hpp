#pragma once
/// Reading a HuggingFace config.json into ModelArch: the architecture facts the estimator and the
/// planner need. Multimodal configs (Llama-4, Qwen2-VL, Gemma-3) keep the text model in a nested
/// `text_config`; its values override the top level, except `architectures` and `model_type`,
/// which describe the checkpoint as the engines see it.

#include "core/error.hpp"
#include "model/arch.hpp"

#include <filesystem>
#include <string_view>

namespace openstation::model {

/// Parses config.json text. `source` names the file in messages.
/// Errors: "json.invalid" (with line and column), "config.missing_key" (hidden_size, layers,
/// heads or vocab_size absent; names the key and the file), "config.invalid_value" (a size that is
/// zero, negative or of the wrong type).
core::Result<ModelArch> parse_config_json(std::string_view text, std::string_view source);

/// Reads and parses a config.json file (at most 16 MiB). File errors are "file.*".
core::Result<ModelArch> load_config_json(const std::filesystem::path& path);

}  // namespace openstation::model
