#pragma once
/// Architecture facts of a model: what the memory estimator and the planner need. Filled from a
/// catalog card, from config.json (config_json.hpp) or from GGUF metadata (gguf.hpp).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace openstation::model {

/// Storage/compute dtypes the estimator distinguishes.
enum class DType { f32, f16, bf16, fp8, int8, int4, unknown };

/// "float32", "float16", "bfloat16", "fp8", "int8", "int4", "unknown".
std::string to_string(DType d);
/// Accepts config.json spellings ("bfloat16", "float16", "half", "float32", "fp8", ...).
DType parse_dtype(const std::string& s);
/// Bytes per element; fractional for int4 (0.5). 0 for unknown.
double bytes_per_element(DType d);

/// config.json's quantization_config, reduced to what matters for memory and flags.
struct Quantization {
  std::string method;  ///< quant_method: "fp8", "awq", "gptq", "compressed-tensors", ...
  int bits = 0;        ///< weight bits (4, 8); 0 if unknown
  std::string fmt;     ///< e.g. "e4m3" for fp8
  std::vector<int> weight_block_size;  ///< e.g. {128, 128}
};

/// rope_scaling, for the derived maximum context length.
struct RopeScaling {
  std::string type;  ///< "yarn", "llama3", "linear", "dynamic", ...
  double factor = 1.0;
  std::int64_t original_max_position_embeddings = 0;
};

/// Architecture of a decoder-only transformer. Zero means "not known".
struct ModelArch {
  std::string architecture;  ///< architectures[0], e.g. "Qwen2ForCausalLM"
  std::string model_type;    ///< e.g. "qwen2", "llama", "deepseek_v3"
  std::int64_t hidden_size = 0;
  std::int64_t num_layers = 0;
  std::int64_t num_attention_heads = 0;
  std::int64_t num_kv_heads = 0;  ///< num_key_value_heads; equals heads when absent
  std::int64_t head_dim = 0;      ///< head_dim, else hidden / heads
  std::int64_t vocab_size = 0;
  std::int64_t max_position_embeddings = 0;
  std::int64_t intermediate_size = 0;
  std::int64_t moe_intermediate_size = 0;
  std::int64_t n_routed_experts = 0;
  std::int64_t num_experts_per_tok = 0;
  std::int64_t n_shared_experts = 0;       ///< DeepSeek MoE: shared experts per MoE layer
  std::int64_t first_k_dense_replace = 0;  ///< DeepSeek MoE: leading layers with a dense MLP
  bool tie_word_embeddings = false;
  DType torch_dtype = DType::unknown;  ///< the checkpoint's declared dtype

  // Multi-head latent attention (DeepSeek-V2/V3/R1). is_mla is true when kv_lora_rank > 0.
  bool is_mla = false;
  std::int64_t kv_lora_rank = 0;
  std::int64_t q_lora_rank = 0;
  std::int64_t qk_rope_head_dim = 0;
  std::int64_t qk_nope_head_dim = 0;
  std::int64_t v_head_dim = 0;

  std::optional<Quantization> quantization;
  std::optional<RopeScaling> rope_scaling;

  /// The longest context the model supports as the engines derive it: max_position_embeddings,
  /// scaled by rope_scaling (yarn: original × factor; llama3: not multiplied).
  std::int64_t derived_max_len() const;
};

}  // namespace openstation::model
