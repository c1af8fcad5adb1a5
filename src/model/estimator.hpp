#pragma once
/// The memory estimator: what an engine itself will compute at start-up, per GPU, before anything
/// launches. Pure function, no I/O. Method and limits: docs/estimator.md.

#include "core/engine_kind.hpp"
#include "core/error.hpp"
#include "model/model_info.hpp"
#include "model/node.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace openstation::model {

/// The engine settings that change memory, already parsed from the user's flags by the engine
/// module (engine/memory_settings.hpp). Unset = the engine version's default.
struct EngineMemorySettings {
  std::optional<double> gpu_memory_utilization;  ///< vLLM --gpu-memory-utilization
  std::optional<double> mem_fraction_static;     ///< SGLang --mem-fraction-static
  std::optional<std::int64_t>
      max_model_len;  ///< vLLM --max-model-len, SGLang --context-length, llama.cpp --ctx-size
  std::optional<std::int64_t>
      max_num_seqs;  ///< vLLM --max-num-seqs, SGLang --max-running-requests, llama.cpp --parallel
  std::optional<std::int64_t>
      max_num_batched_tokens;  ///< vLLM --max-num-batched-tokens, SGLang --chunked-prefill-size,
                               ///< llama.cpp --batch-size
  std::optional<std::string>
      kv_cache_dtype;  ///< "auto", "fp8", "fp8_e4m3", "bfloat16", llama.cpp "q8_0", ...
  std::optional<std::string> dtype;                    ///< --dtype
  std::optional<std::uint64_t> kv_cache_memory_bytes;  ///< vLLM --kv-cache-memory-bytes
  std::optional<std::int64_t> max_total_tokens;        ///< SGLang --max-total-tokens
  std::optional<std::int64_t> cuda_graph_max_bs;       ///< SGLang --cuda-graph-max-bs
  std::optional<double> cpu_kvcache_space_gib;         ///< vLLM CPU: VLLM_CPU_KVCACHE_SPACE
  std::optional<bool> enable_chunked_prefill;
  bool enforce_eager = false;                ///< vLLM --enforce-eager, SGLang --disable-cuda-graph
  std::optional<std::int64_t> n_gpu_layers;  ///< llama.cpp -ngl
  std::optional<std::string> kv_cache_dtype_v;  ///< llama.cpp --cache-type-v (K: kv_cache_dtype)
};

struct EstimateRequest {
  ModelInfo model;
  std::optional<NodeSpec> node;  ///< without a node only the seed figures and KV bytes per token
  core::EngineId engine;
  int tp = 1;
  int pp = 1;
  EngineMemorySettings settings;
};

/// A problem or note with a stable code ("estimate.kv_cache_too_small") and a message that names
/// the numbers in the engine's terms.
struct Finding {
  std::string code;
  std::string message;
};

struct Estimate {
  std::string model;
  std::string engine;          ///< "vllm"
  std::string engine_version;  ///< "0.21.0"
  int tp = 1;
  int pp = 1;
  std::uint64_t weights_bytes = 0;
  std::uint64_t weights_bytes_per_gpu = 0;
  std::int64_t min_vram_gb = 0;       ///< the seed formula
  std::uint64_t gpu_total_bytes = 0;  ///< per GPU (smallest of the node's GPUs used)
  std::uint64_t budget_bytes_per_gpu =
      0;  ///< total × utilization (vLLM) or × mem fraction (SGLang)
  double utilization = 0;
  std::uint64_t activation_bytes_per_gpu = 0;
  std::uint64_t non_torch_bytes_per_gpu = 0;
  std::uint64_t cuda_graph_bytes_per_gpu = 0;
  std::uint64_t kv_bytes_per_token = 0;  ///< per GPU
  std::uint64_t kv_cache_bytes_per_gpu = 0;
  std::int64_t kv_cache_tokens = 0;
  std::int64_t max_model_len = 0;  ///< the context length the estimate is for
  std::int64_t model_max_len = 0;  ///< the model's derived maximum
  std::int64_t max_num_seqs = 0;
  std::int64_t max_num_batched_tokens = 0;
  double max_concurrency = 0;  ///< kv_cache_tokens / max_model_len
  std::int64_t largest_fitting_len = 0;
  std::uint64_t disk_bytes = 0;
  bool fits = false;
  std::vector<Finding> problems;
  std::vector<std::string> suggestions;
  std::vector<std::string> notes;  ///< assumptions made (defaults resolved, etc.)

  // Added by the estimator implementation (additive fields):
  bool has_verdict = false;  ///< false without a node: `fits` is then meaningless
  std::string node;          ///< node name, empty without one
  std::string gpu_name;      ///< the GPU the numbers are for ("" on CPU)
  int gpus_used = 0;         ///< GPUs of the node the ranks use (tp × pp, at most the node's)
  std::uint64_t free_bytes_per_gpu = 0;  ///< total − other processes' memory (smallest)
  std::uint64_t other_processes_bytes_per_gpu = 0;  ///< memory_used_mib of the worst GPU
  int block_size = 0;                               ///< KV block (page) size in tokens
  std::string kv_cache_dtype;                       ///< resolved: "bfloat16", "fp8", ...
  double mem_fraction_static = 0;                   ///< SGLang: resolved --mem-fraction-static
  std::int64_t gpus_needed = 0;  ///< when it does not fit: GPUs like these that would (0: unknown)
};

/// Runs the estimate. Errors only for impossible input (tp < 1, utilization outside (0, 1],
/// a model without the architecture facts needed); "does not fit" is a verdict, not an error.
core::Result<Estimate> estimate(const EstimateRequest& req);

}  // namespace openstation::model
