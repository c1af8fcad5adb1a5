#include "model/estimator.hpp"

#include "core/strings.hpp"
#include "model/catalog.hpp"
#include "model/estimator_llama.hpp"
#include "model/estimator_weights.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>

namespace openstation::model {

namespace {

using core::EngineKind;

constexpr std::uint64_t kMiB = 1ull << 20;
constexpr std::uint64_t kGiB = 1ull << 30;
/// CUDA context and driver allocations of the engine process, outside the engine's accounting.
constexpr std::uint64_t kCudaContextBytes = 512 * kMiB;
/// Non-torch memory that appears during vLLM's profile run: cuBLAS/cuDNN workspaces and other
/// library allocations; NCCL and custom all-reduce buffers with TP > 1; send/recv buffers with PP.
constexpr std::uint64_t kNonTorchBaseBytes = 192 * kMiB;
constexpr std::uint64_t kNonTorchTpBytes = 512 * kMiB;
constexpr std::uint64_t kNonTorchPpBytes = 128 * kMiB;
/// Per captured CUDA graph and decoder layer on the rank: graph nodes, kernel parameters and
/// per-graph buffers (sized so a 7B model with V0's 35 graphs needs ≈ 0.5 GiB, the size
/// engines.md §4.1 gives as typical).
constexpr std::uint64_t kGraphPerLayerBytes = 512 * 1024;
/// vLLM CPU: Python, torch and the oneDNN runtime in the process RSS besides weights.
constexpr std::uint64_t kCpuRuntimeBytes = 1 * kGiB;

core::Version version_of(const char* s) {
  return core::Version::parse(s).value();
}

std::string fmt_num(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

/// 0.92 → "0.92", 0.9 → "0.9".
std::string fmt_frac(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

std::string gb(std::uint64_t bytes) {
  return fmt_num(static_cast<double>(bytes) / 1e9, 1) + " GB";
}

std::uint64_t to_u64(double v) {
  return v <= 0 ? 0 : static_cast<std::uint64_t>(std::llround(v));
}

std::int64_t ceil_div(std::int64_t a, std::int64_t b) {
  return (a + b - 1) / b;
}

/// What the request resolves to before any per-layout arithmetic.
struct Resolved {
  const ModelArch* arch = nullptr;
  EngineKind kind = EngineKind::vllm;
  core::Version version;
  bool v1 = true;               ///< vLLM ≥ 0.8.0: the V1 engine and its batch defaults
  bool graphs_profiled = true;  ///< vLLM ≥ 0.21.0: CUDA-graph memory subtracted before KV
  double act_b = 2;             ///< activation dtype bytes
  double kv_b = 2;              ///< KV element bytes
  std::string kv_name;
  bool ds_mla_fp8 = false;  ///< fp8_ds_mla: 656 bytes per token and layer
  std::uint64_t weights_total = 0;
  std::int64_t derived_max = 0;
  std::int64_t vocab_bytes = 0;  ///< embedding + lm_head bytes within weights_total
};

/// One GPU as the ranks see it: the smallest and busiest among those used.
struct GpuView {
  std::uint64_t total = 0;
  std::uint64_t used = 0;
  std::string name;
  int cc_major = 0;
  int index = 0;
};

/// The arithmetic of one layout (tp, pp, max_model_len).
struct Numbers {
  std::uint64_t budget = 0;
  double util = 0;
  std::uint64_t weights_r = 0;
  std::uint64_t act = 0;
  std::uint64_t non_torch = 0;
  std::uint64_t graphs = 0;
  std::uint64_t reserved = 0;  ///< SGLang's reserve outside mem_fraction_static
  std::uint64_t kv_per_token = 0;
  std::int64_t avail = 0;  ///< bytes for KV (may be negative)
  std::int64_t tokens = 0;
  std::uint64_t kv_bytes = 0;
  int block = 16;
  std::int64_t seqs = 0;
  std::int64_t batched = 0;
  bool chunked = true;
  bool weights_over = false;
  std::int64_t graph_bs = 0;
  int n_graphs = 0;
  std::int64_t chunked_prefill = 0;  ///< SGLang
};

/// vLLM's paged KV cache: whole blocks of `block` tokens out of the available bytes.
void fill_kv_blocks(Numbers& n) {
  const std::uint64_t page = static_cast<std::uint64_t>(n.block) * n.kv_per_token;
  const std::int64_t blocks =
      (n.avail > 0 && page > 0)
          ? static_cast<std::int64_t>(static_cast<std::uint64_t>(n.avail) / page)
          : 0;
  n.tokens = blocks * n.block;
  n.kv_bytes = static_cast<std::uint64_t>(blocks) * page;
}

std::int64_t layers_per_rank(const ModelArch& a, int pp) {
  return ceil_div(a.num_layers, pp);
}

std::uint64_t kv_bytes_per_token(const Resolved& r, int tp, int pp) {
  const ModelArch& a = *r.arch;
  const double layers = static_cast<double>(layers_per_rank(a, pp));
  if (a.is_mla) {
    if (r.ds_mla_fp8) return to_u64(layers * 656);
    return to_u64(layers * static_cast<double>(a.kv_lora_rank + a.qk_rope_head_dim) * r.kv_b);
  }
  const std::int64_t kv = a.num_kv_heads > 0 ? a.num_kv_heads : a.num_attention_heads;
  const std::int64_t per_rank = std::max<std::int64_t>(1, kv / tp);
  const std::int64_t hd = a.head_dim > 0 ? a.head_dim : a.hidden_size / a.num_attention_heads;
  return to_u64(2 * layers * static_cast<double>(per_rank * hd) * r.kv_b);
}

std::uint64_t weights_per_rank(const Resolved& r, int tp, int pp) {
  const ModelArch& a = *r.arch;
  const double vocab = static_cast<double>(r.vocab_bytes);
  const double layers = static_cast<double>(r.weights_total) - vocab;
  const double layer_share =
      static_cast<double>(layers_per_rank(a, pp)) / static_cast<double>(a.num_layers);
  // The embedding sits on the first stage, lm_head on the last; both are vocab-sharded by TP.
  const double vocab_on_rank = pp == 1 ? vocab : (a.tie_word_embeddings ? vocab : vocab / 2);
  return to_u64((layers * layer_share + vocab_on_rank) / tp);
}

/// Elements per token alive at the forward pass's peak on one rank (activation dtype).
double activation_elems_per_token(const ModelArch& a, int tp) {
  const double h = static_cast<double>(a.hidden_size);
  const double heads = static_cast<double>(a.num_attention_heads) / tp;
  double attn = 0;
  if (a.is_mla) {
    const double qk = static_cast<double>(a.qk_nope_head_dim + a.qk_rope_head_dim);
    const double v = static_cast<double>(a.v_head_dim);
    attn = static_cast<double>(a.q_lora_rank + a.kv_lora_rank + a.qk_rope_head_dim) +
           heads * (2 * qk + static_cast<double>(a.qk_nope_head_dim) + 2 * v);
  } else {
    const double kv = static_cast<double>(std::max<std::int64_t>(
        1, (a.num_kv_heads > 0 ? a.num_kv_heads : a.num_attention_heads) / tp));
    const double hd =
        static_cast<double>(a.head_dim > 0 ? a.head_dim : a.hidden_size / a.num_attention_heads);
    attn = (heads + 2 * kv) * hd + heads * hd;
  }
  double mlp = 0;
  const bool moe = a.n_routed_experts > 0 && a.moe_intermediate_size > 0;
  if (!moe || a.first_k_dense_replace > 0) mlp = 3 * static_cast<double>(a.intermediate_size) / tp;
  if (moe) {
    const double topk = static_cast<double>(std::max<std::int64_t>(1, a.num_experts_per_tok));
    const double n = static_cast<double>(a.moe_intermediate_size) / tp;
    mlp = std::max(mlp, topk * (3 * n + h) + static_cast<double>(a.n_routed_experts));
  }
  return 2 * h + std::max(attn, mlp);
}

std::uint64_t activation_peak(const Resolved& r, int tp, std::int64_t tokens, std::int64_t seqs) {
  const ModelArch& a = *r.arch;
  const double forward = static_cast<double>(tokens) * activation_elems_per_token(a, tp) * r.act_b;
  // The sampler's dummy run: fp32 logits over the full (gathered) vocabulary per sequence.
  const double logits =
      static_cast<double>(std::min(seqs, tokens)) * static_cast<double>(a.vocab_size) * 4.0;
  return to_u64(forward + logits);
}

// ---------------------------------------------------------------------------------------------
// vLLM on GPUs

bool big_gpu_defaults(const GpuView& g) {
  const double gib_total = static_cast<double>(g.total) / static_cast<double>(kGiB);
  return gib_total >= 70 && g.name.find("A100") == std::string::npos;
}

void vllm_batch(const Resolved& r, const EngineMemorySettings& s, const GpuView& g,
                std::int64_t len, Numbers& n) {
  if (r.v1) {
    const bool big = big_gpu_defaults(g);
    n.seqs = s.max_num_seqs.value_or(big ? 1024 : 256);
    n.chunked = s.enable_chunked_prefill.value_or(true);
    if (s.max_num_batched_tokens) {
      n.batched = *s.max_num_batched_tokens;
    } else {
      std::int64_t t = big ? 8192 : 2048;
      if (!n.chunked) t = std::max(t, len);
      n.batched = std::min(t, n.seqs * len);
    }
  } else {
    n.seqs = s.max_num_seqs.value_or(256);
    n.chunked = s.enable_chunked_prefill.value_or(len > 32768);
    n.batched =
        s.max_num_batched_tokens.value_or(n.chunked ? 2048 : std::max<std::int64_t>(len, 2048));
  }
}

void vllm_graphs(const Resolved& r, const EngineMemorySettings& s, int tp, int pp, Numbers& n) {
  if (s.enforce_eager) return;
  std::vector<std::int64_t> sizes = {1, 2, 4};
  std::int64_t cap = 0;
  if (r.v1) {
    cap = std::min<std::int64_t>(2 * n.seqs, 512);
    for (std::int64_t b = 8; b < 256; b += 8) sizes.push_back(b);
    for (std::int64_t b = 256; b <= 512; b += 16) sizes.push_back(b);
  } else {
    for (std::int64_t b = 8; b <= 256; b += 8) sizes.push_back(b);
    // V0 captures every size up to max_num_seqs rounded up to the next captured size.
    cap = sizes.back();
    for (auto b : sizes) {
      if (b >= n.seqs) {
        cap = b;
        break;
      }
    }
  }
  for (auto b : sizes) {
    if (b <= cap) {
      ++n.n_graphs;
      n.graph_bs = b;
    }
  }
  const double pool =
      static_cast<double>(n.graph_bs) * activation_elems_per_token(*r.arch, tp) * r.act_b;
  n.graphs = static_cast<std::uint64_t>(n.n_graphs) *
                 static_cast<std::uint64_t>(layers_per_rank(*r.arch, pp)) * kGraphPerLayerBytes +
             to_u64(pool);
}

Numbers vllm_gpu(const Resolved& r, const EngineMemorySettings& s, const GpuView& g, int tp, int pp,
                 std::int64_t len) {
  Numbers n;
  n.util = s.gpu_memory_utilization.value_or(r.graphs_profiled ? 0.92 : 0.9);
  n.budget = static_cast<std::uint64_t>(std::ceil(static_cast<double>(g.total) * n.util));
  n.weights_r = weights_per_rank(r, tp, pp);
  vllm_batch(r, s, g, len, n);
  n.act = activation_peak(r, tp, n.batched, n.seqs);
  n.non_torch =
      kNonTorchBaseBytes + (tp > 1 ? kNonTorchTpBytes : 0) + (pp > 1 ? kNonTorchPpBytes : 0);
  vllm_graphs(r, s, tp, pp, n);
  n.block = (r.arch->is_mla && g.cc_major >= 9) ? 64 : 16;
  n.kv_per_token = kv_bytes_per_token(r, tp, pp);
  if (s.kv_cache_memory_bytes) {
    n.avail = static_cast<std::int64_t>(*s.kv_cache_memory_bytes);
    n.weights_over = n.weights_r > g.total;
  } else {
    n.avail = static_cast<std::int64_t>(n.budget) - static_cast<std::int64_t>(n.weights_r) -
              static_cast<std::int64_t>(n.act) - static_cast<std::int64_t>(n.non_torch) -
              (r.graphs_profiled ? static_cast<std::int64_t>(n.graphs) : 0);
    n.weights_over = n.weights_r > n.budget;
  }
  fill_kv_blocks(n);
  return n;
}

// ---------------------------------------------------------------------------------------------
// SGLang

Numbers sglang_gpu(const Resolved& r, const EngineMemorySettings& s, const GpuView& g, int tp,
                   int pp, std::int64_t len) {
  (void)len;
  Numbers n;
  const double gib_total = static_cast<double>(g.total) / static_cast<double>(kGiB);
  std::int64_t chunked = 0;
  if (gib_total < 60) {
    chunked = gib_total < 35 ? 2048 : 4096;
  } else {
    chunked = gib_total < 160 ? 8192 : 16384;
  }
  n.chunked_prefill = s.max_num_batched_tokens.value_or(chunked);
  std::int64_t graph_bs = 0;
  if (gib_total < 20) {
    graph_bs = 8;
  } else if (gib_total < 35) {
    graph_bs = tp < 4 ? 24 : 80;
  } else if (gib_total < 60) {
    graph_bs = tp < 4 ? 32 : 160;
  } else if (gib_total < 160) {
    graph_bs = tp < 4 ? 256 : 512;
  } else {
    graph_bs = 512;
  }
  n.graph_bs = s.cuda_graph_max_bs.value_or(graph_bs);
  const double total_mib = static_cast<double>(g.total) / static_cast<double>(kMiB);
  double reserved_mib =
      512 + static_cast<double>(std::max<std::int64_t>(n.chunked_prefill, 2048)) * 1.5 +
      static_cast<double>(n.graph_bs) * 2 + static_cast<double>(tp * pp) / 8.0 * 1024;
  if (gib_total > 60) reserved_mib = std::max(reserved_mib, 10.0 * 1024);
  n.reserved = to_u64(reserved_mib * static_cast<double>(kMiB));
  if (s.mem_fraction_static) {
    n.util = *s.mem_fraction_static;
  } else {
    n.util = std::round((total_mib - reserved_mib) / total_mib * 1000.0) / 1000.0;
  }
  n.budget = to_u64(static_cast<double>(g.total) * n.util);
  n.weights_r = weights_per_rank(r, tp, pp);
  n.block = 1;
  n.kv_per_token = kv_bytes_per_token(r, tp, pp);
  n.seqs = s.max_num_seqs.value_or(0);
  n.batched = n.chunked_prefill;
  n.avail = static_cast<std::int64_t>(n.budget) - static_cast<std::int64_t>(n.weights_r) -
            static_cast<std::int64_t>(g.used) - static_cast<std::int64_t>(kCudaContextBytes);
  n.weights_over = n.weights_r + g.used + kCudaContextBytes > n.budget;
  std::int64_t tokens =
      (n.avail > 0 && n.kv_per_token > 0)
          ? static_cast<std::int64_t>(static_cast<std::uint64_t>(n.avail) / n.kv_per_token)
          : 0;
  if (s.max_total_tokens && *s.max_total_tokens > 0) tokens = std::min(tokens, *s.max_total_tokens);
  n.tokens = tokens;
  n.kv_bytes = static_cast<std::uint64_t>(tokens) * n.kv_per_token;
  return n;
}

// ---------------------------------------------------------------------------------------------
// vLLM CPU

Numbers vllm_cpu(const Resolved& r, const EngineMemorySettings& s, std::uint64_t ram_per_rank,
                 int tp, int pp, std::int64_t len) {
  Numbers n;
  const int world = tp * pp;
  n.util = s.gpu_memory_utilization.value_or(r.graphs_profiled ? 0.92 : 0.9);
  n.budget = to_u64(static_cast<double>(ram_per_rank) * n.util);
  n.weights_r = weights_per_rank(r, tp, pp);
  if (r.v1) {
    n.seqs = s.max_num_seqs.value_or(128 * world);
    n.chunked = s.enable_chunked_prefill.value_or(true);
    n.batched = s.max_num_batched_tokens.value_or(
        n.chunked ? 2048 * world : std::max<std::int64_t>(len, 2048 * world));
  } else {
    n.seqs = s.max_num_seqs.value_or(256);
    n.chunked = s.enable_chunked_prefill.value_or(false);
    n.batched =
        s.max_num_batched_tokens.value_or(n.chunked ? 2048 : std::max<std::int64_t>(len, 2048));
  }
  n.act = activation_peak(r, tp, n.batched, n.seqs);
  n.non_torch = kCpuRuntimeBytes;
  n.block = 128;
  n.kv_per_token = kv_bytes_per_token(r, tp, pp);
  if (s.cpu_kvcache_space_gib && *s.cpu_kvcache_space_gib > 0) {
    n.avail = static_cast<std::int64_t>(*s.cpu_kvcache_space_gib * static_cast<double>(kGiB));
  } else if (s.kv_cache_memory_bytes) {
    n.avail = static_cast<std::int64_t>(*s.kv_cache_memory_bytes);
  } else if (r.v1) {
    n.avail = static_cast<std::int64_t>(n.budget) - static_cast<std::int64_t>(n.weights_r) -
              static_cast<std::int64_t>(n.act) - static_cast<std::int64_t>(n.non_torch);
  } else {
    n.avail = static_cast<std::int64_t>(4 * kGiB);
  }
  n.weights_over = n.weights_r > n.budget;
  fill_kv_blocks(n);
  return n;
}

// ---------------------------------------------------------------------------------------------

struct Layout {
  int tp = 1;
  int pp = 1;
};

std::string engine_label(EngineKind k) {
  switch (k) {
    case EngineKind::vllm: return "vLLM";
    case EngineKind::vllm_cpu: return "vLLM CPU";
    case EngineKind::sglang: return "SGLang";
    case EngineKind::llama_cpp: return "llama.cpp";
    case EngineKind::custom: return "custom";
  }
  return "engine";
}

double kv_element_bytes(const std::string& name, double act_b, bool& known) {
  known = true;
  const std::string l = core::to_lower(name);
  if (l.empty() || l == "auto") return act_b;
  if (l.rfind("fp8", 0) == 0 || l == "int8_per_token_head" || l == "turboquant_k8v4") return 1;
  if (l == "float16" || l == "bfloat16" || l == "bf16" || l == "half" || l == "fp16") return 2;
  if (l == "float32" || l == "float") return 4;
  if (l == "fp4_e2m1" || l == "nvfp4" || l == "turboquant_4bit_nc") return 0.5;
  known = false;
  return act_b;
}

std::string kv_dtype_name(const std::string& setting, double kv_b, bool ds_mla) {
  if (ds_mla) return "fp8_ds_mla";
  if (!setting.empty() && core::to_lower(setting) != "auto") return setting;
  if (kv_b == 4) return "float32";
  return "bfloat16";
}

}  // namespace

core::Result<Estimate> estimate(const EstimateRequest& req) {
  const ModelArch& a = req.model.arch;
  const EngineMemorySettings& s = req.settings;
  const EngineKind kind = req.engine.kind;

  if (kind == EngineKind::llama_cpp) return estimate_llama_cpp(req);
  if (kind == EngineKind::custom) {
    return core::Error(core::Errc::unsupported, "estimate.engine_unsupported",
                       "the estimator knows vllm, sglang, vllm-cpu and llama.cpp; " +
                           std::string(core::to_string(kind)) + " is not supported yet",
                       "engine");
  }
  if (req.tp < 1) return core::invalid("estimate.bad_tp", "--tp must be at least 1", "tp");
  if (req.pp < 1) return core::invalid("estimate.bad_pp", "--pp must be at least 1", "pp");
  if (a.num_layers <= 0 || a.num_attention_heads <= 0 || a.hidden_size <= 0 || a.vocab_size <= 0) {
    return core::invalid("estimate.model_incomplete",
                         "model '" + req.model.id +
                             "' lacks the architecture facts the estimator needs (hidden size, "
                             "layers, attention heads, vocabulary size)",
                         "model");
  }
  if (a.is_mla && (a.kv_lora_rank <= 0 || a.qk_rope_head_dim <= 0)) {
    return core::invalid("estimate.model_incomplete",
                         "model '" + req.model.id +
                             "' uses MLA but kv_lora_rank or "
                             "qk_rope_head_dim is unknown",
                         "model");
  }
  if (a.num_attention_heads % req.tp != 0) {
    std::vector<std::string> valid;
    for (int t = 1; t <= std::max(req.tp, 8); ++t) {
      if (a.num_attention_heads % t == 0) valid.push_back(std::to_string(t));
    }
    return core::invalid(
        "estimate.tp_not_dividing_heads",
        "Total number of attention heads (" + std::to_string(a.num_attention_heads) +
            ") must be divisible by tensor parallel size (" + std::to_string(req.tp) +
            "). Valid --tp values for this model: " + core::join(valid) + ".",
        "tp");
  }
  for (auto [value, flag] : {std::pair{s.gpu_memory_utilization, "--gpu-memory-utilization"},
                             std::pair{s.mem_fraction_static, "--mem-fraction-static"}}) {
    if (value && !(*value > 0 && *value <= 1)) {
      return core::invalid("estimate.bad_utilization",
                           std::string(flag) + " must be in (0, 1], got " + fmt_frac(*value), flag);
    }
  }
  if (s.cpu_kvcache_space_gib && *s.cpu_kvcache_space_gib < 0) {
    return core::invalid(
        "estimate.bad_kv_space",
        "VLLM_CPU_KVCACHE_SPACE must not be negative, got " + fmt_frac(*s.cpu_kvcache_space_gib),
        "VLLM_CPU_KVCACHE_SPACE");
  }

  Resolved r;
  r.arch = &a;
  r.kind = kind;
  if (req.engine.version.parts().empty()) {
    r.version = version_of(kind == EngineKind::sglang ? "0.5.6.post2" : "0.21.0");
  } else {
    r.version = req.engine.version;
  }
  r.v1 = r.version >= version_of("0.8.0");
  r.graphs_profiled = r.version >= version_of("0.21.0");

  Estimate e;
  e.model = req.model.id;
  e.engine = std::string(core::to_string(kind));
  e.engine_version = r.version.str();
  e.tp = req.tp;
  e.pp = req.pp;

  // Dtypes: --dtype changes the activation dtype (and the weights of unquantized models).
  const double model_act = activation_bytes(a);
  r.act_b = model_act == 4 ? 2 : model_act;  // auto: fp32 checkpoints run in fp16
  if (s.dtype) {
    const std::string d = core::to_lower(*s.dtype);
    if (d == "float32" || d == "float")
      r.act_b = 4;
    else if (d == "half" || d == "float16" || d == "bfloat16")
      r.act_b = 2;
  }
  if (kind == EngineKind::vllm_cpu && r.act_b == 2 && a.torch_dtype == DType::f16) {
    e.notes.push_back("vLLM CPU runs float16 checkpoints in bfloat16 (same size)");
  }
  bool kv_known = true;
  const std::string kv_setting = s.kv_cache_dtype.value_or("auto");
  r.kv_b = kv_element_bytes(kv_setting, r.act_b, kv_known);
  r.ds_mla_fp8 = a.is_mla && core::to_lower(kv_setting) == "fp8_ds_mla";
  if (!kv_known) {
    e.notes.push_back("KV cache dtype '" + kv_setting +
                      "' is not known to the estimator; counted as " + fmt_num(r.kv_b, 0) +
                      " bytes per element");
  }
  e.kv_cache_dtype = kv_dtype_name(kv_setting, r.kv_b, r.ds_mla_fp8);

  std::uint64_t weights = req.model.weight_bytes;
  if (weights == 0) weights = to_u64(req.model.params * bytes_per_element(a.torch_dtype));
  if (!a.quantization && model_act != r.act_b) {
    weights = to_u64(static_cast<double>(weights) * r.act_b / model_act);
    e.notes.push_back("--dtype " + s.dtype.value_or("auto") + " changes the weights to " +
                      fmt_num(r.act_b, 0) + " bytes per parameter");
  }
  r.weights_total = weights;
  {
    ModelArch scaled = a;
    scaled.torch_dtype = r.act_b == 4 ? DType::f32 : DType::bf16;
    r.vocab_bytes =
        static_cast<std::int64_t>(std::min<std::uint64_t>(vocab_tensor_bytes(scaled), weights));
  }
  r.derived_max = a.derived_max_len() > 0 ? a.derived_max_len() : a.max_position_embeddings;

  e.weights_bytes = weights;
  e.weights_bytes_per_gpu = weights_per_rank(r, req.tp, req.pp);
  DType seed_dtype = a.torch_dtype == DType::unknown ? DType::bf16 : a.torch_dtype;
  if (a.quantization) {
    if (a.quantization->method == "fp8" || a.quantization->bits == 8)
      seed_dtype = DType::fp8;
    else if (a.quantization->bits == 4)
      seed_dtype = DType::int4;
  }
  const double params_b = req.model.params > 0
                              ? req.model.params / 1e9
                              : static_cast<double>(weights) / 1e9 / bytes_per_element(seed_dtype);
  e.min_vram_gb = seed_min_vram_gb(params_b, seed_dtype);
  e.kv_bytes_per_token = kv_bytes_per_token(r, req.tp, req.pp);
  e.model_max_len = r.derived_max;
  e.disk_bytes = req.model.disk_bytes;
  const bool user_len = s.max_model_len.has_value() && *s.max_model_len > 0;
  std::int64_t len = user_len ? *s.max_model_len : r.derived_max;
  e.max_model_len = len;
  if (!req.model.weights_exact) {
    e.notes.push_back("weights counted from the architecture (" + gb(weights) +
                      "), not from files: pass --model-path for exact tensor sizes");
  }

  if (!req.node) {
    e.has_verdict = false;
    e.fits = false;
    e.notes.push_back(
        "no node given (--node FILE.json): showing the weights, the seed minimum "
        "GPU memory and the KV bytes per token only");
    return e;
  }

  const NodeSpec& node = *req.node;
  e.node = node.name;
  e.has_verdict = true;
  const std::string eng = engine_label(kind) + " " + r.version.str();
  const int world = req.tp * req.pp;
  std::vector<Finding> problems;
  auto problem = [&](std::string code, std::string msg) {
    problems.push_back({std::move(code), std::move(msg)});
  };
  const bool is_sglang = kind == EngineKind::sglang;
  const std::string len_flag = is_sglang ? "--context-length" : "--max-model-len";
  const std::string util_flag = is_sglang ? "--mem-fraction-static" : "--gpu-memory-utilization";

  if (len > r.derived_max) {
    if (is_sglang) {
      problem("estimate.max_model_len_exceeds_model",
              "User-specified context_length (" + std::to_string(len) +
                  ") is greater than the derived context_length (" + std::to_string(r.derived_max) +
                  "): use --context-length " + std::to_string(r.derived_max) +
                  " or less (SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN=1 overrides it, at the risk "
                  "of wrong outputs)");
    } else {
      problem("estimate.max_model_len_exceeds_model",
              "User-specified max_model_len (" + std::to_string(len) +
                  ") is greater than the derived max_model_len (" + std::to_string(r.derived_max) +
                  " from max_position_embeddings and rope_scaling in config.json): use "
                  "--max-model-len " +
                  std::to_string(r.derived_max) +
                  " or less (VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 overrides it, at the risk of wrong "
                  "outputs)");
    }
  }

  Numbers n;
  GpuView g;
  std::uint64_t ram_per_rank = 0;
  std::function<Numbers(int, int, std::int64_t)> compute;

  if (kind == EngineKind::vllm_cpu) {
    e.block_size = 128;
    if (node.memory_mib <= 0) {
      return core::invalid(
          "estimate.node_without_memory",
          "node " + node.name + " has memory_mib 0; the CPU engine needs the RAM size", "node");
    }
    ram_per_rank =
        (static_cast<std::uint64_t>(node.memory_mib) << 20) / static_cast<std::uint64_t>(world);
    compute = [&](int tp, int pp, std::int64_t l) {
      return vllm_cpu(
          r, s,
          (static_cast<std::uint64_t>(node.memory_mib) << 20) / static_cast<std::uint64_t>(tp * pp),
          tp, pp, l);
    };
    if (world > 1) {
      e.notes.push_back("the node's RAM is split evenly between the " + std::to_string(world) +
                        " ranks (one NUMA node each)");
    } else {
      e.notes.push_back(
          "vLLM CPU sizes the KV cache from one NUMA node's memory; the whole RAM "
          "of the node counts as one NUMA node here");
    }
    if (a.quantization) {
      e.notes.push_back("quantized checkpoints (" + a.quantization->method +
                        ") may not be supported by the vLLM CPU backend");
    }
  } else {
    if (node.gpus.empty()) {
      return core::invalid("estimate.node_without_gpus",
                           "node " + node.name + " has no GPUs; " + engine_label(kind) +
                               " needs GPUs (use --engine vllm-cpu for a CPU node)",
                           "engine");
    }
    std::vector<GpuSpec> gpus = node.gpus;
    std::sort(gpus.begin(), gpus.end(),
              [](const GpuSpec& x, const GpuSpec& y) { return x.index < y.index; });
    const std::size_t used = std::min<std::size_t>(gpus.size(), static_cast<std::size_t>(world));
    e.gpus_used = static_cast<int>(used);
    g.total = gpus[0].total_bytes();
    g.used = gpus[0].used_bytes();
    g.name = gpus[0].name;
    g.cc_major = gpus[0].cc_major;
    g.index = gpus[0].index;
    std::uint64_t worst_free = gpus[0].total_bytes() - gpus[0].used_bytes();
    for (std::size_t i = 0; i < used; ++i) {
      g.total = std::min(g.total, gpus[i].total_bytes());
      g.cc_major = std::min(g.cc_major, gpus[i].cc_major);
      const std::uint64_t free = gpus[i].total_bytes() - gpus[i].used_bytes();
      if (free <= worst_free) {
        worst_free = free;
        g.used = gpus[i].used_bytes();
        g.index = gpus[i].index;
      }
    }
    e.gpu_name = g.name;
    e.gpu_total_bytes = g.total;
    e.other_processes_bytes_per_gpu = g.used;
    e.free_bytes_per_gpu = g.total > g.used ? g.total - g.used : 0;
    if (static_cast<std::size_t>(req.tp) > gpus.size()) {
      problem("estimate.not_enough_gpus", "--tensor-parallel-size " + std::to_string(req.tp) +
                                              " needs " + std::to_string(req.tp) +
                                              " GPUs but node " + node.name + " has " +
                                              std::to_string(gpus.size()));
    } else if (static_cast<std::size_t>(world) > gpus.size()) {
      e.notes.push_back("tp × pp = " + std::to_string(world) + " GPUs but node " + node.name +
                        " has " + std::to_string(gpus.size()) +
                        ": the other pipeline stages are assumed to run on identical nodes");
    }
    const bool bf16 = s.dtype
                          ? (core::to_lower(*s.dtype) == "bfloat16" ||
                             (core::to_lower(*s.dtype) == "auto" && a.torch_dtype == DType::bf16))
                          : a.torch_dtype == DType::bf16;
    if (bf16 && g.cc_major > 0 && g.cc_major < 8) {
      e.notes.push_back(g.name + " (compute capability " + gpus[0].compute_capability() +
                        ") has no bfloat16: run with --dtype half (same memory; the engine "
                        "refuses or falls back to float16)");
    }
    if (is_sglang) {
      compute = [&](int tp, int pp, std::int64_t l) { return sglang_gpu(r, s, g, tp, pp, l); };
    } else {
      compute = [&](int tp, int pp, std::int64_t l) { return vllm_gpu(r, s, g, tp, pp, l); };
    }
  }

  n = compute(req.tp, req.pp, len);
  if (!user_len && len > 0 && s.max_model_len && *s.max_model_len <= 0) {
    // --max-model-len auto / -1: vLLM fits the context to the KV cache.
    len = std::min<std::int64_t>(r.derived_max, n.tokens);
    n = compute(req.tp, req.pp, len);
    e.notes.push_back("--max-model-len auto: the context is fitted to the KV cache");
  }
  e.max_model_len = len;
  e.utilization = n.util;
  e.budget_bytes_per_gpu = n.budget;
  e.weights_bytes_per_gpu = n.weights_r;
  e.activation_bytes_per_gpu = n.act;
  e.non_torch_bytes_per_gpu = n.non_torch;
  e.cuda_graph_bytes_per_gpu = n.graphs;
  e.kv_bytes_per_token = n.kv_per_token;
  e.kv_cache_bytes_per_gpu = n.kv_bytes;
  e.kv_cache_tokens = n.tokens;
  e.block_size = n.block;
  e.max_num_seqs = n.seqs;
  e.max_num_batched_tokens = n.batched;
  e.max_concurrency = len > 0 ? static_cast<double>(n.tokens) / static_cast<double>(len) : 0;
  if (is_sglang) e.mem_fraction_static = n.util;

  // Largest context that fits: the KV cache must hold one full-length request. The batch
  // defaults may depend on the length (no chunked prefill), so search rather than read it off.
  auto fits_at = [&](int tp, int pp, std::int64_t l) {
    const Numbers m = compute(tp, pp, l);
    return !m.weights_over && m.tokens >= l && m.tokens > 0;
  };
  {
    std::int64_t lo = 0, hi = r.derived_max;
    while (lo < hi) {
      const std::int64_t mid = lo + (hi - lo + 1) / 2;
      if (fits_at(req.tp, req.pp, mid))
        lo = mid;
      else
        hi = mid - 1;
    }
    e.largest_fitting_len = lo;
  }

  const std::string where = kind == EngineKind::vllm_cpu
                                ? "of the node's RAM (" + core::gib(ram_per_rank) + " per rank)"
                                : "of the " + core::gib(g.total) + " " + g.name;

  // Not enough free memory at start-up (other processes).
  if (kind == EngineKind::vllm) {
    const std::uint64_t free_now =
        g.total > g.used + kCudaContextBytes ? g.total - g.used - kCudaContextBytes : 0;
    if (free_now < n.budget && !s.kv_cache_memory_bytes) {
      const double max_util =
          std::floor(static_cast<double>(free_now) / static_cast<double>(g.total) * 100) / 100;
      if (r.v1) {
        problem("estimate.insufficient_free_memory",
                "Free memory on device cuda:" + std::to_string(g.index) + " (" +
                    fmt_num(static_cast<double>(free_now) / kGiB, 2) + "/" +
                    fmt_num(static_cast<double>(g.total) / kGiB, 2) +
                    " GiB) on startup is less than desired GPU memory utilization (" +
                    fmt_frac(n.util) + ", " + fmt_num(static_cast<double>(n.budget) / kGiB, 2) +
                    " GiB): other processes hold " + core::gib(g.used) +
                    " on that GPU; use --gpu-memory-utilization " + fmt_frac(max_util) +
                    " or less, or free the GPU");
      } else {
        problem("estimate.insufficient_free_memory",
                "only " + core::gib(free_now) + " of GPU " + std::to_string(g.index) +
                    " is free (other processes hold " + core::gib(g.used) +
                    ") but --gpu-memory-utilization " + fmt_frac(n.util) + " asks for " +
                    core::gib(n.budget) + ": " + eng +
                    " runs out of memory (CUDA out of memory) when it allocates the KV cache; "
                    "use --gpu-memory-utilization " +
                    fmt_frac(max_util) + " or less, or free the GPU");
      }
    }
  }

  if (n.weights_over) {
    if (kind == EngineKind::vllm_cpu) {
      problem("estimate.weights_exceed_budget",
              "model weights need " + core::gib(n.weights_r) +
                  " per rank but --gpu-memory-utilization " + fmt_frac(n.util) +
                  " (it also sets the CPU memory share) " + where + " allows " +
                  core::gib(n.budget) + ": the model does not fit in this node's memory");
    } else if (is_sglang) {
      problem("estimate.weights_exceed_budget",
              "model weights need " + core::gib(n.weights_r) + " per GPU (tp " +
                  std::to_string(req.tp) + ", pp " + std::to_string(req.pp) +
                  ") but --mem-fraction-static " + fmt_frac(n.util) + " " + where + " allows " +
                  core::gib(n.budget) +
                  " for weights and KV cache: SGLang stops with \"Not enough "
                  "memory. Please try to increase --mem-fraction-static.\" or runs out of memory "
                  "while loading");
    } else if (s.kv_cache_memory_bytes) {
      problem("estimate.weights_exceed_budget",
              "model weights need " + core::gib(n.weights_r) + " per GPU but the GPU has " +
                  core::gib(g.total) + ": " + eng + " runs out of memory while loading the model");
    } else {
      problem("estimate.weights_exceed_budget",
              "model weights need " + core::gib(n.weights_r) + " per GPU (tp " +
                  std::to_string(req.tp) + ", pp " + std::to_string(req.pp) +
                  ") but --gpu-memory-utilization " + fmt_frac(n.util) + " " + where + " allows " +
                  core::gib(n.budget) + ": " + eng + " runs out of memory while loading the model");
    }
  } else if (n.tokens <= 0) {
    if (is_sglang) {
      problem("estimate.no_kv_memory",
              "after the weights (" + core::gib(n.weights_r) + ") nothing is left of the " +
                  core::gib(n.budget) + " that --mem-fraction-static " + fmt_frac(n.util) +
                  " allows for the KV cache pool: SGLang stops with \"Not enough memory. Please "
                  "try to increase --mem-fraction-static.\"");
    } else {
      std::string parts = "weights (" + core::gib(n.weights_r) + "), activations (" +
                          core::gib(n.act) + ") and " +
                          (kind == EngineKind::vllm_cpu ? "runtime" : "non-torch") + " memory (" +
                          core::gib(n.non_torch) + ")";
      if (r.graphs_profiled && kind == EngineKind::vllm && n.graphs > 0) {
        parts += " and CUDA graphs (" + core::gib(n.graphs) + ")";
      }
      problem("estimate.no_kv_memory",
              "after " + parts + " nothing is left of the " + core::gib(n.budget) + " budget " +
                  "(--gpu-memory-utilization " + fmt_frac(n.util) + ") for the KV cache: " + eng +
                  " stops with \"No available memory for the cache blocks. Try increasing "
                  "`gpu_memory_utilization` when initializing the engine.\"");
    }
  } else if (n.tokens < len) {
    std::string fix;
    if (is_sglang) {
      fix = "use --context-length " + std::to_string(e.largest_fitting_len) +
            " or less, or raise --mem-fraction-static";
    } else if (kind == EngineKind::vllm_cpu && (s.cpu_kvcache_space_gib || !r.v1)) {
      fix = "use --max-model-len " + std::to_string(e.largest_fitting_len) +
            " or less, or raise VLLM_CPU_KVCACHE_SPACE";
    } else {
      fix = "use --max-model-len " + std::to_string(e.largest_fitting_len) +
            " or less, or raise --gpu-memory-utilization";
    }
    const std::string holds = is_sglang ? "the KV cache pool holds " : "the KV cache holds ";
    problem("estimate.kv_cache_too_small",
            holds + core::with_commas(n.tokens) + " tokens but " + len_flag + " is " +
                std::to_string(len) + (user_len ? "" : " (the model's default)") + ": " + fix);
  }

  if (kind == EngineKind::vllm_cpu && !n.weights_over) {
    const std::uint64_t need = n.weights_r + n.act + n.non_torch + n.kv_bytes;
    if (need > ram_per_rank) {
      problem("estimate.host_memory_insufficient",
              "weights (" + core::gib(n.weights_r) + "), activations (" + core::gib(n.act) +
                  "), runtime (" + core::gib(n.non_torch) + ") and the KV cache (" +
                  core::gib(n.kv_bytes) + ") need " + core::gib(need) + " but each rank has " +
                  core::gib(ram_per_rank) + " of RAM: " + eng +
                  " runs out of memory; lower VLLM_CPU_KVCACHE_SPACE or --max-num-batched-tokens");
    }
  }

  if (kind == EngineKind::vllm && s.kv_cache_memory_bytes) {
    const std::uint64_t need =
        n.weights_r + n.act + n.non_torch + n.graphs + n.kv_bytes + kCudaContextBytes;
    if (!n.weights_over && need > e.free_bytes_per_gpu) {
      problem("estimate.kv_cache_memory_exceeds_gpu",
              "--kv-cache-memory-bytes " + std::to_string(*s.kv_cache_memory_bytes) +
                  " plus weights, activations, CUDA graphs and the CUDA context need " +
                  core::gib(need) + " but GPU " + std::to_string(g.index) + " has " +
                  core::gib(e.free_bytes_per_gpu) + " free: " + eng + " runs out of memory");
    }
  }

  if (kind == EngineKind::vllm && !r.graphs_profiled && !s.enforce_eager &&
      !s.kv_cache_memory_bytes) {
    const std::uint64_t outside = g.total > n.budget ? g.total - n.budget : 0;
    const std::uint64_t taken = g.used + kCudaContextBytes;
    const std::uint64_t headroom = outside > taken ? outside - taken : 0;
    if (n.graphs > headroom) {
      const double ok_util =
          std::floor((static_cast<double>(g.total) - static_cast<double>(taken + n.graphs)) /
                     static_cast<double>(g.total) * 100) /
          100;
      problem("estimate.cuda_graph_headroom",
              "CUDA graphs need about " + core::gib(n.graphs) + " per GPU but only " +
                  core::gib(headroom) + " is left outside --gpu-memory-utilization " +
                  fmt_frac(n.util) + " (after the CUDA context" +
                  (g.used ? std::string(" and other processes") : std::string()) + "): " + eng +
                  " captures graphs after allocating the KV cache and can run out of memory; use "
                  "--gpu-memory-utilization " +
                  fmt_frac(ok_util) + " or less, or --enforce-eager");
    }
  }

  if (kind == EngineKind::vllm && !n.chunked && s.max_num_batched_tokens &&
      *s.max_num_batched_tokens < len) {
    problem("estimate.batched_tokens_below_max_model_len",
            "--max-num-batched-tokens " + std::to_string(*s.max_num_batched_tokens) +
                " is smaller than --max-model-len " + std::to_string(len) +
                " with chunked prefill disabled: vLLM refuses this configuration; raise "
                "--max-num-batched-tokens to " +
                std::to_string(len) + " or lower --max-model-len");
  }

  if (e.disk_bytes > 0) {
    const double free_bytes = node.disk_free_gib * static_cast<double>(kGiB);
    if (static_cast<double>(e.disk_bytes) > free_bytes) {
      problem("estimate.disk_insufficient", "the model's files need " + gb(e.disk_bytes) +
                                                " of disk but node " + node.name + " has " +
                                                fmt_num(node.disk_free_gib, 1) + " GiB (" +
                                                gb(to_u64(free_bytes)) + ") free");
    }
  }

  // Suggestions.
  const bool too_small = n.tokens < len;
  if (n.weights_over || (n.tokens <= 0) ||
      (too_small && e.largest_fitting_len < std::min<std::int64_t>(len, 4096))) {
    // Smallest number of GPUs like these on which the requested context fits.
    const std::int64_t want = std::min(len, r.derived_max);
    const int per_node = kind == EngineKind::vllm_cpu ? 1 : static_cast<int>(node.gpus.size());
    int best_world = 0, best_tp = 0, best_pp = 0;
    // Layouts the platform would deploy: on one node, TP over a power of two of its GPUs; across
    // k nodes, TP = the largest such TP per node and PP = k (FAQ §3's defaults).
    std::vector<Layout> layouts;
    int node_tp = 1;
    for (int tp = 1; tp <= per_node; tp *= 2) {
      if (a.num_attention_heads % tp != 0) continue;
      layouts.push_back({tp, 1});
      node_tp = tp;
    }
    for (int k = 2; k <= 16 && k <= a.num_layers; ++k) layouts.push_back({node_tp, k});
    if (kind != EngineKind::vllm_cpu) {
      for (const Layout& l : layouts) {
        if (fits_at(l.tp, l.pp, want)) {
          best_world = l.tp * l.pp;
          best_tp = l.tp;
          best_pp = l.pp;
          break;
        }
      }
    }
    if (best_world > 0 && best_world != world) {
      e.gpus_needed = best_world;
      std::string how = "--tensor-parallel-size " + std::to_string(best_tp);
      if (best_pp > 1) how += " --pipeline-parallel-size " + std::to_string(best_pp);
      if (is_sglang) {
        how = "--tp-size " + std::to_string(best_tp);
        if (best_pp > 1) how += " --pp-size " + std::to_string(best_pp);
      }
      const int nodes = best_pp;
      e.suggestions.push_back(
          "more GPUs needed: " + std::to_string(best_world) + " × " + g.name + " (" + how +
          (nodes > 1 ? ", " + std::to_string(nodes) + " nodes like " + node.name : std::string()) +
          ") hold this model with " + len_flag + " " + std::to_string(want));
    }
  }
  if (too_small && e.largest_fitting_len > 0 && !n.weights_over) {
    e.suggestions.push_back("lower the context: " + len_flag + " " +
                            std::to_string(e.largest_fitting_len) +
                            " fits (max concurrency 1 at that length)");
  }
  if ((too_small || n.tokens <= 0) && !n.weights_over && r.kv_b > 1 && !r.ds_mla_fp8) {
    Resolved r8 = r;
    r8.kv_b = 1;
    const Numbers m = [&] {
      if (kind == EngineKind::vllm_cpu) return vllm_cpu(r8, s, ram_per_rank, req.tp, req.pp, len);
      if (is_sglang) return sglang_gpu(r8, s, g, req.tp, req.pp, len);
      return vllm_gpu(r8, s, g, req.tp, req.pp, len);
    }();
    if (m.tokens > n.tokens) {
      e.suggestions.push_back("--kv-cache-dtype " + std::string(is_sglang ? "fp8_e4m3" : "fp8") +
                              " halves the KV bytes per token (" +
                              core::with_commas(static_cast<std::int64_t>(n.kv_per_token)) + " → " +
                              core::with_commas(static_cast<std::int64_t>(m.kv_per_token)) +
                              "): the KV cache would hold " + core::with_commas(m.tokens) +
                              " tokens");
    }
  }
  if ((too_small || n.tokens <= 0) && !n.weights_over && kind == EngineKind::vllm &&
      !s.kv_cache_memory_bytes && n.util < 0.95) {
    EngineMemorySettings hi = s;
    hi.gpu_memory_utilization = 0.95;
    const Numbers m = vllm_gpu(r, hi, g, req.tp, req.pp, len);
    if (m.tokens > n.tokens) {
      e.suggestions.push_back("--gpu-memory-utilization 0.95 gives the KV cache " +
                              core::with_commas(m.tokens) +
                              " tokens (leaves less headroom for "
                              "other processes and CUDA graphs)");
    }
  }
  if (is_sglang) {
    e.notes.push_back("--mem-fraction-static " + fmt_frac(n.util) +
                      (s.mem_fraction_static
                           ? std::string(" (given)")
                           : " (SGLang's default for this GPU: reserves " + core::gib(n.reserved) +
                                 " for activations and CUDA graphs)") +
                      "; --chunked-prefill-size " + std::to_string(n.chunked_prefill) +
                      ", --cuda-graph-max-bs " + std::to_string(n.graph_bs));
    if (g.used > 0) {
      e.notes.push_back("other processes hold " + core::gib(g.used) + " on GPU " +
                        std::to_string(g.index) + ": SGLang's KV pool shrinks by that much");
    }
  } else {
    std::string d = "max_num_seqs " + std::to_string(n.seqs) + ", max_num_batched_tokens " +
                    std::to_string(n.batched) +
                    (n.chunked ? " (chunked prefill on)" : " (chunked prefill off)");
    if (!s.max_num_seqs || !s.max_num_batched_tokens) d += "; defaults of " + eng;
    if (kind == EngineKind::vllm && r.v1 && (!s.max_num_seqs || !s.max_num_batched_tokens)) {
      d += big_gpu_defaults(g) ? " for GPUs of 70 GiB or more (not A100)" : " for this GPU size";
    }
    e.notes.push_back(d);
    if (!s.gpu_memory_utilization && (kind == EngineKind::vllm || r.v1)) {
      e.notes.push_back("--gpu-memory-utilization " + fmt_frac(n.util) + " is the default of " +
                        eng);
    }
    if (kind == EngineKind::vllm) {
      if (s.enforce_eager) {
        e.notes.push_back("--enforce-eager: no CUDA graphs");
      } else if (r.graphs_profiled) {
        e.notes.push_back("CUDA graphs (" + std::to_string(n.n_graphs) + " batch sizes up to " +
                          std::to_string(n.graph_bs) +
                          ") are estimated and subtracted before the KV cache");
      } else {
        e.notes.push_back("CUDA graphs (" + std::to_string(n.n_graphs) + " batch sizes up to " +
                          std::to_string(n.graph_bs) +
                          ") are captured after the KV cache, outside "
                          "--gpu-memory-utilization");
      }
    }
    if (kind == EngineKind::vllm_cpu) {
      if (s.cpu_kvcache_space_gib && *s.cpu_kvcache_space_gib > 0) {
        e.notes.push_back("VLLM_CPU_KVCACHE_SPACE=" + fmt_frac(*s.cpu_kvcache_space_gib) +
                          " GiB sets the KV cache");
      } else if (!r.v1) {
        e.notes.push_back("VLLM_CPU_KVCACHE_SPACE is not set: " + eng + " uses 4 GiB by default");
      }
    }
  }
  if (s.kv_cache_memory_bytes && kind == EngineKind::vllm) {
    e.notes.push_back(
        "--kv-cache-memory-bytes sets the KV cache directly; vLLM skips memory profiling");
  }

  e.problems = std::move(problems);
  e.fits = e.problems.empty();
  return e;
}

}  // namespace openstation::model
