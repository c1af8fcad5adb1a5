#pragma once
/// Weight accounting from architecture facts: parameter counts of a decoder-only transformer and
/// how its bytes split between the vocabulary tensors and the decoder layers (what TP and PP
/// divide). Pure functions; method in docs/estimator.md.

#include "model/arch.hpp"

#include <cstdint>
#include <optional>

namespace openstation::model {

/// Parameters by where they live. Counts, not bytes.
struct ParamBreakdown {
  double embedding = 0;  ///< vocab × hidden
  double lm_head = 0;    ///< vocab × hidden, 0 when tied to the embedding
  double linear = 0;     ///< decoder-layer matrices (the part quantization applies to)
  double small = 0;      ///< norms, biases, MoE router: kept in the activation dtype
  double fp32 = 0;       ///< stored in float32 whatever the dtype (DeepSeek's router score bias)
  double total() const { return embedding + lm_head + linear + small + fp32; }
};

/// Counts parameters from the dims (dense Llama/Qwen2-style attention + gated MLP; DeepSeek MLA
/// and MoE). nullopt when hidden size, layers, heads or vocab are unknown.
std::optional<ParamBreakdown> count_params(const ModelArch& a);

/// Bytes of the activation dtype: the checkpoint's torch_dtype (bf16/fp16/fp32), 2 when unknown.
double activation_bytes(const ModelArch& a);

/// Weight bytes as loaded: linear matrices in the quantized format when quantization_config
/// says so (fp8: 1 byte plus one fp32 scale per weight block; 4-bit: half a byte plus a 16-bit
/// scale and zero per group of 128), everything else in the activation dtype.
std::uint64_t weight_bytes_from_params(const ModelArch& a, const ParamBreakdown& p);

/// Bytes of the vocabulary tensors (embedding and, unless tied, lm_head) in the activation dtype.
std::uint64_t vocab_tensor_bytes(const ModelArch& a);

}  // namespace openstation::model
