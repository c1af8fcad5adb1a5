#include "engine/memory_settings.hpp"

#include "core/strings.hpp"

#include <charconv>
#include <cmath>
#include <limits>

namespace openstation::engine {
namespace {

using core::Result;

const std::string* first_value(const ParsedArgs& args, std::string_view name) {
  const auto* f = args.find(name);
  if (f == nullptr || f->values.empty() || f->values[0] == "None") return nullptr;
  return &f->values[0];
}

core::Error unusable(std::string_view flag, const std::string& value, std::string_view why) {
  return core::invalid("args.unusable_value",
                       std::string(flag) + " " + value + " cannot be used: " + std::string(why),
                       std::string(flag));
}

Result<std::optional<std::int64_t>> int_of(const ParsedArgs& args, std::string_view name) {
  const auto* v = first_value(args, name);
  if (v == nullptr) return std::optional<std::int64_t>();
  std::int64_t out = 0;
  const auto r = std::from_chars(v->data(), v->data() + v->size(), out);
  if (r.ec != std::errc() || r.ptr != v->data() + v->size()) {
    return unusable(name, *v, "expected an integer");
  }
  return std::optional<std::int64_t>(out);
}

Result<std::optional<double>> number_of(const ParsedArgs& args, std::string_view name) {
  const auto* v = first_value(args, name);
  if (v == nullptr) return std::optional<double>();
  std::string_view s = *v;
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  double out = 0;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size() || !std::isfinite(out)) {
    return unusable(name, *v, "expected a number");
  }
  return std::optional<double>(out);
}

std::optional<bool> bool_of(const ParsedArgs& args, std::string_view name) {
  const auto* f = args.find(name);
  if (f == nullptr) return std::nullopt;
  return f->bool_value.value_or(true);
}

std::optional<std::string> string_of(const ParsedArgs& args, std::string_view name) {
  const auto* v = first_value(args, name);
  if (v == nullptr) return std::nullopt;
  return *v;
}

Result<void> vllm_settings(const EngineSpec& spec, const ParsedArgs& args,
                           const std::map<std::string, std::string>& env,
                           model::EngineMemorySettings& s) {
  auto util = number_of(args, "--gpu-memory-utilization");
  if (!util) return util.error();
  s.gpu_memory_utilization = *util;

  if (const auto* v = first_value(args, "--max-model-len");
      v != nullptr && *v != "auto" && *v != "-1") {
    auto n = int_of(args, "--max-model-len");
    if (!n) return n.error();
    s.max_model_len = *n;
  }
  auto seqs = int_of(args, "--max-num-seqs");
  if (!seqs) return seqs.error();
  s.max_num_seqs = *seqs;
  auto batched = int_of(args, "--max-num-batched-tokens");
  if (!batched) return batched.error();
  s.max_num_batched_tokens = *batched;
  s.kv_cache_dtype = string_of(args, "--kv-cache-dtype");
  s.dtype = string_of(args, "--dtype");
  auto kv_bytes = int_of(args, "--kv-cache-memory-bytes");
  if (!kv_bytes) return kv_bytes.error();
  if (*kv_bytes) {
    if (**kv_bytes <= 0) {
      return unusable("--kv-cache-memory-bytes", std::to_string(**kv_bytes),
                      "it leaves no memory for the KV cache; give a size such as 8G or leave it "
                      "out to use --gpu-memory-utilization");
    }
    s.kv_cache_memory_bytes = static_cast<std::uint64_t>(**kv_bytes);
  }
  s.enforce_eager = bool_of(args, "--enforce-eager").value_or(false);
  s.enable_chunked_prefill = bool_of(args, "--enable-chunked-prefill");

  if (spec.kind == core::EngineKind::vllm_cpu) {
    if (auto it = env.find("VLLM_CPU_KVCACHE_SPACE"); it != env.end() && !it->second.empty()) {
      const std::string& text = it->second;
      double gib = 0;
      const auto r = std::from_chars(text.data(), text.data() + text.size(), gib);
      if (r.ec != std::errc() || r.ptr != text.data() + text.size() || !std::isfinite(gib)) {
        return core::invalid("args.unusable_value",
                             "VLLM_CPU_KVCACHE_SPACE=" + text +
                                 " cannot be used: expected the KV cache size in GiB, e.g. 40",
                             "VLLM_CPU_KVCACHE_SPACE");
      }
      if (gib < 0) {
        return core::invalid("args.unusable_value",
                             "VLLM_CPU_KVCACHE_SPACE=" + text +
                                 " cannot be used: the KV cache size must not be negative",
                             "VLLM_CPU_KVCACHE_SPACE");
      }
      s.cpu_kvcache_space_gib = gib;
    }
  }
  return {};
}

Result<void> sglang_settings(const ParsedArgs& args, model::EngineMemorySettings& s) {
  auto frac = number_of(args, "--mem-fraction-static");
  if (!frac) return frac.error();
  s.mem_fraction_static = *frac;
  auto ctx = int_of(args, "--context-length");
  if (!ctx) return ctx.error();
  s.max_model_len = *ctx;
  auto running = int_of(args, "--max-running-requests");
  if (!running) return running.error();
  s.max_num_seqs = *running;
  auto chunk = int_of(args, "--chunked-prefill-size");
  if (!chunk) return chunk.error();
  if (*chunk) {
    if (**chunk == -1) {
      s.enable_chunked_prefill = false;
    } else if (**chunk <= 0) {
      return unusable("--chunked-prefill-size", std::to_string(**chunk),
                      "give a positive number of tokens, or -1 to disable chunked prefill");
    } else {
      s.max_num_batched_tokens = *chunk;
      s.enable_chunked_prefill = true;
    }
  }
  if (auto kv = string_of(args, "--kv-cache-dtype")) {
    s.kv_cache_dtype = (*kv == "bf16") ? std::string("bfloat16") : *kv;
  }
  s.dtype = string_of(args, "--dtype");
  auto total = int_of(args, "--max-total-tokens");
  if (!total) return total.error();
  s.max_total_tokens = *total;
  auto bs = int_of(args, "--cuda-graph-max-bs");
  if (!bs) return bs.error();
  s.cuda_graph_max_bs = *bs;
  s.enforce_eager = bool_of(args, "--disable-cuda-graph").value_or(false);
  return {};
}

/// llama.cpp (flag table 0.4.0; the parser stores canonical names): --ctx-size, --parallel,
/// --batch-size, --n-gpu-layers (a number, "auto" = the engine decides, "all" = every layer),
/// --cache-type-k, --cache-type-v.
Result<void> llama_settings(const ParsedArgs& args, model::EngineMemorySettings& s) {
  auto ctx = int_of(args, "--ctx-size");
  if (!ctx) return ctx.error();
  s.max_model_len = *ctx;
  auto par = int_of(args, "--parallel");
  if (!par) return par.error();
  if (*par && **par > 0) s.max_num_seqs = *par;  // -1 = auto
  auto batch = int_of(args, "--batch-size");
  if (!batch) return batch.error();
  s.max_num_batched_tokens = *batch;
  if (auto ngl = string_of(args, "--n-gpu-layers")) {
    if (*ngl == "all") {
      s.n_gpu_layers = std::numeric_limits<std::int32_t>::max();
    } else if (*ngl != "auto") {
      auto n = int_of(args, "--n-gpu-layers");
      if (!n) return n.error();
      if (*n && **n >= 0) s.n_gpu_layers = *n;  // -1 = auto
    }
  }
  s.kv_cache_dtype = string_of(args, "--cache-type-k");
  s.kv_cache_dtype_v = string_of(args, "--cache-type-v");
  return {};
}

}  // namespace

core::Result<model::EngineMemorySettings> memory_settings(
    const EngineSpec& spec, const ParsedArgs& args, const std::map<std::string, std::string>& env) {
  model::EngineMemorySettings s;
  Result<void> r;
  switch (spec.kind) {
    case core::EngineKind::vllm:
    case core::EngineKind::vllm_cpu: r = vllm_settings(spec, args, env, s); break;
    case core::EngineKind::sglang: r = sglang_settings(args, s); break;
    case core::EngineKind::llama_cpp: r = llama_settings(args, s); break;
    case core::EngineKind::custom: break;
  }
  if (!r) return r.error();
  return s;
}

}  // namespace openstation::engine
