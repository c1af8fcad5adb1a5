#include "model/estimator_llama.hpp"

#include "core/strings.hpp"
#include "model/gguf.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <limits>

namespace openstation::model {
namespace {

constexpr std::uint64_t kMiB = 1ull << 20;
/// The server process besides its buffers: code, the HTTP server, tokenizer, per-slot state.
constexpr std::uint64_t kRuntimeBytes = 128 * kMiB;
/// llama.cpp's CUDA/Metal context per GPU, outside its own accounting.
constexpr std::uint64_t kGpuContextBytes = 384 * kMiB;
/// llama-server's slots when --parallel is -1 (auto) in this release: 4, sharing one unified KV
/// buffer of --ctx-size tokens.
constexpr std::int64_t kAutoSlots = 4;
constexpr std::int64_t kDefaultBatch = 2048;
constexpr std::int64_t kDefaultUbatch = 512;

std::string gib(std::uint64_t bytes) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f GiB", static_cast<double>(bytes) / (1ull << 30));
  return buf;
}

std::uint64_t to_u64(double v) {
  return v <= 0 ? 0 : static_cast<std::uint64_t>(std::llround(v));
}

/// Compute buffers: the logits and activations of one micro-batch and the attention scores of
/// a micro-batch against the whole context (without flash attention), in f32.
std::uint64_t compute_bytes(const ModelArch& a, std::int64_t ubatch, std::int64_t ctx) {
  const double ub = static_cast<double>(ubatch);
  const double per_token = static_cast<double>(a.vocab_size) +
                           4.0 * static_cast<double>(a.hidden_size) +
                           static_cast<double>(std::max(a.intermediate_size, a.hidden_size)) +
                           static_cast<double>(a.num_attention_heads) * static_cast<double>(ctx);
  return to_u64(ub * per_token * 4.0);
}

}  // namespace

std::optional<double> llama_cache_type_bytes(std::string_view type) {
  std::string upper(type);
  std::transform(upper.begin(), upper.end(), upper.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  const auto id = ggml_type_from_name(upper);
  if (!id) return std::nullopt;
  const auto* info = ggml_type_info(*id);
  if (info == nullptr || info->block_size == 0) return std::nullopt;
  return static_cast<double>(info->type_size) / static_cast<double>(info->block_size);
}

core::Result<Estimate> estimate_llama_cpp(const EstimateRequest& req) {
  const ModelArch& a = req.model.arch;
  const EngineMemorySettings& s = req.settings;
  if (a.num_layers <= 0 || a.num_attention_heads <= 0 || a.hidden_size <= 0) {
    return core::invalid("estimate.model_incomplete",
                         "model '" + req.model.id +
                             "' lacks the architecture facts the estimator needs (layers, "
                             "attention heads, embedding length)",
                         "model");
  }
  Estimate e;
  e.model = req.model.id;
  e.engine = "llama.cpp";
  e.engine_version = req.engine.version.str();
  e.tp = 1;
  e.pp = 1;
  e.block_size = 1;
  e.disk_bytes = req.model.disk_bytes;
  e.model_max_len = a.derived_max_len();

  // Weights: the GGUF tensors as stored (quantized types included).
  e.weights_bytes = req.model.weight_bytes;
  if (!req.model.bytes_by_type.empty()) {
    std::vector<std::string> parts;
    for (const auto& [type, bytes] : req.model.bytes_by_type)
      parts.push_back(type + " " + gib(bytes));
    e.notes.push_back("weights from the GGUF tensor infos: " + core::join(parts));
  }
  e.min_vram_gb =
      static_cast<std::int64_t>(std::ceil(static_cast<double>(e.weights_bytes) / 1e9 * 1.2 + 2.0));

  // Context, slots, batches.
  std::int64_t ctx = s.max_model_len.value_or(0);
  if (ctx <= 0) {
    ctx = e.model_max_len > 0 ? e.model_max_len : 4096;
    e.notes.push_back("--ctx-size not given (or 0): llama.cpp uses the model's training context, " +
                      std::to_string(ctx) + " tokens");
  }
  const std::int64_t slots = s.max_num_seqs.value_or(kAutoSlots);
  if (!s.max_num_seqs) {
    e.notes.push_back("--parallel not given: llama-server runs " + std::to_string(kAutoSlots) +
                      " slots sharing the context");
  }
  e.max_model_len = ctx;
  e.max_num_seqs = slots;
  e.max_num_batched_tokens = s.max_num_batched_tokens.value_or(kDefaultBatch);
  const std::int64_t ubatch = std::min<std::int64_t>(kDefaultUbatch, e.max_num_batched_tokens);

  // KV cache: --ctx-size cells (shared by the slots), K and V per layer and KV head.
  const std::string k_type = s.kv_cache_dtype.value_or("f16");
  const std::string v_type = s.kv_cache_dtype_v.value_or("f16");
  const auto kb = llama_cache_type_bytes(k_type);
  const auto vb = llama_cache_type_bytes(v_type);
  if (!kb || !vb) {
    const std::string bad = kb ? v_type : k_type;
    return core::invalid("estimate.unknown_cache_type",
                         "KV cache type '" + bad +
                             "' is unknown to the estimator (llama.cpp: f32, "
                             "f16, bf16, q8_0, q4_0, q4_1, iq4_nl, q5_0, q5_1)",
                         kb ? "--cache-type-v" : "--cache-type-k");
  }
  e.kv_cache_dtype = k_type == v_type ? k_type : "K " + k_type + ", V " + v_type;
  const std::int64_t kv_heads = a.num_kv_heads > 0 ? a.num_kv_heads : a.num_attention_heads;
  const std::int64_t head_k = a.head_dim > 0 ? a.head_dim : a.hidden_size / a.num_attention_heads;
  const std::int64_t head_v = a.v_head_dim > 0 ? a.v_head_dim : head_k;
  const double per_token = static_cast<double>(a.num_layers * kv_heads) *
                           (static_cast<double>(head_k) * *kb + static_cast<double>(head_v) * *vb);
  e.kv_bytes_per_token = to_u64(per_token);
  const std::uint64_t kv_total = to_u64(per_token * static_cast<double>(ctx));
  e.kv_cache_tokens = ctx;
  e.max_concurrency = static_cast<double>(slots);
  if (slots > 1) {
    e.notes.push_back("each of the " + std::to_string(slots) + " slots holds up to " +
                      std::to_string(ctx / slots) + " tokens (--ctx-size / --parallel)");
  }
  const std::uint64_t compute = compute_bytes(a, ubatch, ctx / std::max<std::int64_t>(1, slots));

  if (!req.node) {
    e.kv_cache_bytes_per_gpu = kv_total;
    e.weights_bytes_per_gpu = e.weights_bytes;
    e.notes.push_back("no node given: showing the weights, the KV cache and the seed minimum");
    return e;
  }
  const NodeSpec& node = *req.node;
  e.node = node.name;
  e.has_verdict = true;

  // Layers on the GPUs: -ngl (all by default where there are GPUs).
  const bool on_cpu = node.type == NodeType::cpu || node.gpus.empty();
  std::int64_t gpu_layers = on_cpu ? 0 : a.num_layers;
  if (!on_cpu && s.n_gpu_layers) gpu_layers = std::min<std::int64_t>(*s.n_gpu_layers, a.num_layers);
  const double on_gpu = static_cast<double>(gpu_layers) / static_cast<double>(a.num_layers);

  const std::uint64_t host_weights = to_u64(static_cast<double>(e.weights_bytes) * (1.0 - on_gpu));
  const std::uint64_t host_kv = to_u64(static_cast<double>(kv_total) * (1.0 - on_gpu));
  const std::uint64_t host_need = host_weights + host_kv + kRuntimeBytes + (on_cpu ? compute : 0);
  const std::uint64_t ram = static_cast<std::uint64_t>(std::max<std::int64_t>(0, node.memory_mib))
                            << 20;

  auto largest_len = [&](std::uint64_t room, double share) -> std::int64_t {
    // The largest --ctx-size whose KV cache (and compute buffers) still fit `room`.
    if (per_token * share <= 0) return 0;
    std::int64_t lo = 0;
    std::int64_t hi = std::max<std::int64_t>(ctx, e.model_max_len > 0 ? e.model_max_len : ctx);
    while (lo < hi) {
      const std::int64_t mid = lo + (hi - lo + 1) / 2;
      const auto kv = to_u64(per_token * share * static_cast<double>(mid));
      const auto c = compute_bytes(a, ubatch, mid / std::max<std::int64_t>(1, slots));
      if (kv + c <= room) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    return lo;
  };

  if (on_cpu) {
    if (node.memory_mib <= 0) {
      return core::invalid("estimate.node_without_memory",
                           "node " + node.name +
                               " has memory_mib 0; llama.cpp on a CPU node "
                               "needs the RAM size",
                           "node");
    }
    e.gpu_name = "";
    e.gpus_used = 0;
    e.weights_bytes_per_gpu = e.weights_bytes;
    e.kv_cache_bytes_per_gpu = kv_total;
    e.activation_bytes_per_gpu = compute;
    e.non_torch_bytes_per_gpu = kRuntimeBytes;
    e.budget_bytes_per_gpu = host_need;
    e.gpu_total_bytes = ram;
    e.free_bytes_per_gpu = ram;
    e.utilization = ram > 0 ? static_cast<double>(host_need) / static_cast<double>(ram) : 0;
    e.notes.push_back("CPU node: weights (memory-mapped), KV cache and compute buffers in RAM, " +
                      gib(host_need) + " of " + gib(ram));
    e.fits = host_need <= ram;
    if (!e.fits) {
      const std::uint64_t fixed = e.weights_bytes + kRuntimeBytes;
      e.largest_fitting_len = ram > fixed ? largest_len(ram - fixed, 1.0) : 0;
      e.problems.push_back({"estimate.host_memory_insufficient",
                            "llama.cpp needs " + gib(host_need) + " of RAM on node " + node.name +
                                " (weights " + gib(e.weights_bytes) + ", KV cache " +
                                gib(kv_total) + " for --ctx-size " + std::to_string(ctx) +
                                ", compute " + gib(compute) + ") but the node has " + gib(ram)});
      if (e.largest_fitting_len > 0) {
        e.suggestions.push_back("lower the context: --ctx-size " +
                                std::to_string(e.largest_fitting_len) + " fits");
      }
      if (k_type == "f16" || v_type == "f16") {
        e.suggestions.push_back("--cache-type-k q8_0 --cache-type-v q8_0 halves the KV cache");
      }
    }
  } else {
    std::vector<GpuSpec> gpus = node.gpus;
    const std::size_t n = gpus.size();
    e.gpus_used = static_cast<int>(n);
    std::uint64_t total = std::numeric_limits<std::uint64_t>::max();
    std::uint64_t free = std::numeric_limits<std::uint64_t>::max();
    std::uint64_t others = 0;
    for (const auto& g : gpus) {
      total = std::min(total, g.total_bytes());
      const std::uint64_t f =
          g.total_bytes() > g.used_bytes() ? g.total_bytes() - g.used_bytes() : 0;
      if (f < free) {
        free = f;
        e.gpu_name = g.name;
      }
      others = std::max(others, g.used_bytes());
    }
    // --split-mode layer: layers and their KV cells spread evenly; compute buffers on each.
    const double share = on_gpu / static_cast<double>(n);
    e.weights_bytes_per_gpu = to_u64(static_cast<double>(e.weights_bytes) * share);
    e.kv_cache_bytes_per_gpu = to_u64(static_cast<double>(kv_total) * share);
    e.activation_bytes_per_gpu = compute;
    e.non_torch_bytes_per_gpu = kGpuContextBytes;
    const std::uint64_t need =
        e.weights_bytes_per_gpu + e.kv_cache_bytes_per_gpu + compute + kGpuContextBytes;
    e.budget_bytes_per_gpu = need;
    e.gpu_total_bytes = total;
    e.free_bytes_per_gpu = free;
    e.other_processes_bytes_per_gpu = others;
    e.utilization = total > 0 ? static_cast<double>(need) / static_cast<double>(total) : 0;
    e.notes.push_back(std::to_string(gpu_layers) + " of " + std::to_string(a.num_layers) +
                      " layers on " + std::to_string(n) + " GPU(s) (-ngl; all by default)");
    const bool gpu_ok = need <= free;
    const bool host_ok = ram == 0 || host_need <= ram;
    e.fits = gpu_ok && host_ok;
    if (!gpu_ok) {
      const std::uint64_t fixed = e.weights_bytes_per_gpu + kGpuContextBytes;
      e.largest_fitting_len = free > fixed ? largest_len(free - fixed, share) : 0;
      e.problems.push_back({"estimate.insufficient_free_memory",
                            "llama.cpp needs " + gib(need) + " per GPU (weights " +
                                gib(e.weights_bytes_per_gpu) + ", KV cache " +
                                gib(e.kv_cache_bytes_per_gpu) + " for --ctx-size " +
                                std::to_string(ctx) + ", compute " + gib(compute) + ") but " +
                                e.gpu_name + " has " + gib(free) + " free"});
      if (e.largest_fitting_len > 0) {
        e.suggestions.push_back("lower the context: --ctx-size " +
                                std::to_string(e.largest_fitting_len) + " fits");
      }
      const double per_layer = static_cast<double>(e.weights_bytes + kv_total) /
                               static_cast<double>(a.num_layers) / static_cast<double>(n);
      const double room =
          static_cast<double>(free) - static_cast<double>(compute + kGpuContextBytes);
      const auto layers = room > 0 ? static_cast<std::int64_t>(room / per_layer) : 0;
      if (layers > 0 && layers < gpu_layers) {
        e.suggestions.push_back("offload fewer layers: -ngl " + std::to_string(layers) +
                                " keeps the rest in RAM (slower)");
      }
    }
    if (!host_ok) {
      e.problems.push_back({"estimate.host_memory_insufficient",
                            "the layers kept on the CPU need " + gib(host_need) +
                                " of RAM on node " + node.name + " but it has " + gib(ram)});
    }
  }
  if (e.model_max_len > 0 && ctx > e.model_max_len) {
    e.notes.push_back("--ctx-size " + std::to_string(ctx) + " is above the model's training " +
                      "context (" + std::to_string(e.model_max_len) +
                      "); llama.cpp allows it but quality degrades");
  }
  return e;
}

}  // namespace openstation::model
