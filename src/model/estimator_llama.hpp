#pragma once
/// The memory estimate for llama.cpp's server on a GGUF model: weights by tensor type from the
/// GGUF tensor infos, the KV cache for --ctx-size with the K and V cache types, compute buffers;
/// against the GPUs' memory (layers offloaded with -ngl) or, on a CPU node, against RAM. Pure
/// function, no I/O. Method: docs/estimator.md ("llama.cpp").

#include "core/error.hpp"
#include "model/estimator.hpp"

#include <optional>
#include <string_view>

namespace openstation::model {

/// Called by estimate() for EngineKind::llama_cpp. Errors: "estimate.model_incomplete" (no layer
/// or head counts), "estimate.unknown_cache_type" (a K/V cache type this table does not know),
/// "estimate.node_without_memory" (a CPU node without its RAM size).
core::Result<Estimate> estimate_llama_cpp(const EstimateRequest& req);

/// Bytes per element of a llama.cpp KV cache type ("f16" → 2, "q8_0" → 34/32); nullopt if unknown.
std::optional<double> llama_cache_type_bytes(std::string_view type);

}  // namespace openstation::model
