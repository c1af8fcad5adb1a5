#include "model/estimator_weights.hpp"

#include <cmath>

namespace openstation::model {

namespace {
double d(std::int64_t v) {
  return static_cast<double>(v);
}
}  // namespace

std::optional<ParamBreakdown> count_params(const ModelArch& a) {
  if (a.hidden_size <= 0 || a.num_layers <= 0 || a.num_attention_heads <= 0 || a.vocab_size <= 0) {
    return std::nullopt;
  }
  const double h = d(a.hidden_size);
  const double heads = d(a.num_attention_heads);
  const double kv = d(a.num_kv_heads > 0 ? a.num_kv_heads : a.num_attention_heads);
  const double hd = d(a.head_dim > 0 ? a.head_dim : a.hidden_size / a.num_attention_heads);

  ParamBreakdown p;
  p.embedding = d(a.vocab_size) * h;
  p.lm_head = a.tie_word_embeddings ? 0 : d(a.vocab_size) * h;
  p.small = h;  // final norm

  double attn_linear = 0;
  double attn_small = 2 * h;  // input and post-attention norms
  if (a.is_mla || a.kv_lora_rank > 0) {
    const double qk = d(a.qk_nope_head_dim + a.qk_rope_head_dim);
    if (a.q_lora_rank > 0) {
      attn_linear += h * d(a.q_lora_rank) + d(a.q_lora_rank) * heads * qk;
      attn_small += d(a.q_lora_rank);
    } else {
      attn_linear += h * heads * qk;
    }
    attn_linear += h * d(a.kv_lora_rank + a.qk_rope_head_dim);
    attn_small += d(a.kv_lora_rank);
    attn_linear += d(a.kv_lora_rank) * heads * d(a.qk_nope_head_dim + a.v_head_dim);
    attn_linear += heads * d(a.v_head_dim) * h;
  } else {
    attn_linear = h * heads * hd + 2 * h * kv * hd + heads * hd * h;
    if (a.model_type == "qwen2") attn_small += heads * hd + 2 * kv * hd;  // q/k/v biases
  }

  const bool moe = a.n_routed_experts > 0 && a.moe_intermediate_size > 0;
  const double dense_mlp = 3 * h * d(a.intermediate_size);
  for (std::int64_t layer = 0; layer < a.num_layers; ++layer) {
    p.linear += attn_linear;
    p.small += attn_small;
    if (moe && layer >= a.first_k_dense_replace) {
      p.linear += d(a.n_routed_experts + a.n_shared_experts) * 3 * h * d(a.moe_intermediate_size);
      p.small += d(a.n_routed_experts) * h;  // router
      p.fp32 += d(a.n_routed_experts);       // e_score_correction_bias
    } else {
      p.linear += dense_mlp;
    }
  }
  return p;
}

double activation_bytes(const ModelArch& a) {
  switch (a.torch_dtype) {
    case DType::f32: return 4;
    case DType::f16:
    case DType::bf16: return 2;
    default: return 2;
  }
}

std::uint64_t weight_bytes_from_params(const ModelArch& a, const ParamBreakdown& p) {
  const double act = activation_bytes(a);
  double linear_bytes = p.linear * act;
  if (a.quantization) {
    const auto& q = *a.quantization;
    if (q.method == "fp8" || q.bits == 8) {
      double block = 128.0 * 128.0;
      if (q.weight_block_size.size() == 2 && q.weight_block_size[0] > 0 &&
          q.weight_block_size[1] > 0) {
        block = d(q.weight_block_size[0]) * d(q.weight_block_size[1]);
      }
      linear_bytes = p.linear * (1.0 + 4.0 / block);
    } else if (q.bits == 4) {
      linear_bytes = p.linear * (0.5 + 4.0 / 128.0);
    }
  }
  const double other = (p.embedding + p.lm_head + p.small) * act + p.fp32 * 4;
  return static_cast<std::uint64_t>(std::llround(linear_bytes + other));
}

std::uint64_t vocab_tensor_bytes(const ModelArch& a) {
  const double one = d(a.vocab_size) * d(a.hidden_size) * activation_bytes(a);
  return static_cast<std::uint64_t>(std::llround(a.tie_word_embeddings ? one : 2 * one));
}

}  // namespace openstation::model
