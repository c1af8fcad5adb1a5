#pragma once
/// What a model path on a node is, as the agent's POST /api/v1/models/inspect answers it and as
/// the server keeps it (store::Model::meta_json): model::ModelInfo as JSON, both ways.
///
/// JSON: {"path", "id", "format": "safetensors"|"gguf"|"unknown", "size_bytes" (all files),
///        "weight_bytes", "params", "weights_exact",
///        "architecture": {"architecture", "model_type", "hidden_size", "num_layers",
///                         "num_attention_heads", "num_kv_heads", "head_dim", "vocab_size",
///                         "max_position_embeddings", "intermediate_size", ..., "torch_dtype",
///                         "is_mla", "kv_lora_rank", ..., "quantization"?: {"method", "bits",
///                         "fmt", "weight_block_size"}, "rope_scaling"?: {"type", "factor",
///                         "original_max_position_embeddings"}},
///        "bytes_by_type": {"Q4_K": bytes, ...}, "chat_template"?}

#include "core/error.hpp"
#include "model/model_info.hpp"

#include <string>
#include <string_view>

namespace openstation::agent {

/// The agent API's endpoint (POST, Bearer node token, body {"path"}).
inline constexpr std::string_view kInspectModelPath = "/api/v1/models/inspect";

/// JSON text of a ModelInfo.
std::string model_info_to_json(const model::ModelInfo& info);
/// The inverse. Unknown fields are ignored (a newer agent may add some). Errors:
/// "protocol.bad_json" for text that is not JSON, core::json's errors naming the field for a
/// wrong type or a missing "format".
core::Result<model::ModelInfo> parse_model_info_json(std::string_view json);

/// Parses the endpoint's body {"path": "..."} (unknown fields refused). Errors:
/// "protocol.bad_json", "agent.bad_path" (invalid_argument, field "path") for an empty or relative
/// path.
core::Result<std::string> parse_inspect_request(std::string_view json);

}  // namespace openstation::agent
