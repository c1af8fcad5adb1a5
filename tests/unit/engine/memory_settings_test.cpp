#include "engine/memory_settings.hpp"

#include <gtest/gtest.h>

namespace openstation::engine {
namespace {

using core::EngineKind;

model::EngineMemorySettings settings(EngineKind kind, std::string_view version,
                                     std::string_view text,
                                     const std::map<std::string, std::string>& env = {}) {
  const auto& spec = **resolve_engine(kind, version);
  auto args = parse_args(spec, text);
  EXPECT_TRUE(args) << (args ? "" : args.error().message);
  auto s = memory_settings(spec, args ? *args : ParsedArgs{}, env);
  EXPECT_TRUE(s) << (s ? "" : s.error().message);
  return s ? *s : model::EngineMemorySettings{};
}

core::Error failure(EngineKind kind, std::string_view text,
                    const std::map<std::string, std::string>& env = {}) {
  const auto& spec = **resolve_engine(kind, "");
  auto args = parse_args(spec, text);
  EXPECT_TRUE(args) << (args ? "" : args.error().message);
  auto s = memory_settings(spec, args ? *args : ParsedArgs{}, env);
  EXPECT_FALSE(s);
  return s ? core::Error{} : s.error();
}

TEST(MemorySettings, VllmCurrent) {
  const auto s = settings(EngineKind::vllm, "",
                          "--gpu-memory-utilization 0.95 --max-model-len 64K --max-num-seqs 128 "
                          "--max-num-batched-tokens 8k --kv-cache-dtype fp8 --dtype half "
                          "--kv-cache-memory-bytes 8G --enforce-eager --no-enable-chunked-prefill");
  EXPECT_EQ(s.gpu_memory_utilization, 0.95);
  EXPECT_EQ(s.max_model_len, 65536);
  EXPECT_EQ(s.max_num_seqs, 128);
  EXPECT_EQ(s.max_num_batched_tokens, 8000);
  EXPECT_EQ(s.kv_cache_dtype, "fp8");
  EXPECT_EQ(s.dtype, "half");
  EXPECT_EQ(s.kv_cache_memory_bytes, 8ull << 30);
  EXPECT_TRUE(s.enforce_eager);
  EXPECT_EQ(s.enable_chunked_prefill, false);
  EXPECT_FALSE(s.mem_fraction_static);
}

TEST(MemorySettings, VllmDefaultsStayUnset) {
  const auto s = settings(EngineKind::vllm, "", "");
  EXPECT_FALSE(s.gpu_memory_utilization);
  EXPECT_FALSE(s.max_model_len);
  EXPECT_FALSE(s.enable_chunked_prefill);
  EXPECT_FALSE(s.enforce_eager);
  // auto / -1: the engine fits the length to memory; the estimator decides.
  EXPECT_FALSE(settings(EngineKind::vllm, "", "--max-model-len auto").max_model_len);
  EXPECT_FALSE(settings(EngineKind::vllm, "", "--max-model-len -1").max_model_len);
}

TEST(MemorySettings, VllmOldSyntax) {
  const auto s = settings(EngineKind::vllm, "0.8.4",
                          "--enable-chunked-prefill False --enforce-eager --max-model-len 4096");
  EXPECT_EQ(s.enable_chunked_prefill, false);
  EXPECT_TRUE(s.enforce_eager);
  EXPECT_EQ(s.max_model_len, 4096);
  EXPECT_EQ(settings(EngineKind::vllm, "0.8.4", "--enable-chunked-prefill").enable_chunked_prefill,
            true);
}

TEST(MemorySettings, VllmCpuReadsTheKvCacheVariable) {
  auto s = settings(EngineKind::vllm_cpu, "", "--max-model-len 4096",
                    {{"VLLM_CPU_KVCACHE_SPACE", "40"}});
  EXPECT_EQ(s.cpu_kvcache_space_gib, 40.0);
  EXPECT_EQ(s.max_model_len, 4096);
  EXPECT_FALSE(settings(EngineKind::vllm_cpu, "", "").cpu_kvcache_space_gib);
  // The GPU engine ignores the CPU variable.
  EXPECT_FALSE(
      settings(EngineKind::vllm, "", "", {{"VLLM_CPU_KVCACHE_SPACE", "40"}}).cpu_kvcache_space_gib);
  auto e = failure(EngineKind::vllm_cpu, "", {{"VLLM_CPU_KVCACHE_SPACE", "forty"}});
  EXPECT_EQ(e.code, "args.unusable_value");
  EXPECT_EQ(e.field, "VLLM_CPU_KVCACHE_SPACE");
  EXPECT_EQ(failure(EngineKind::vllm_cpu, "", {{"VLLM_CPU_KVCACHE_SPACE", "-4"}}).code,
            "args.unusable_value");
}

TEST(MemorySettings, Sglang) {
  const auto s = settings(EngineKind::sglang, "",
                          "--mem-fraction-static 0.85 --context-length 32768 "
                          "--max-running-requests 64 --chunked-prefill-size 4096 "
                          "--kv-cache-dtype bf16 --dtype bfloat16 --max-total-tokens 100000 "
                          "--cuda-graph-max-bs 32 --disable-cuda-graph");
  EXPECT_EQ(s.mem_fraction_static, 0.85);
  EXPECT_EQ(s.max_model_len, 32768);
  EXPECT_EQ(s.max_num_seqs, 64);
  EXPECT_EQ(s.max_num_batched_tokens, 4096);
  EXPECT_EQ(s.enable_chunked_prefill, true);
  EXPECT_EQ(s.kv_cache_dtype, "bfloat16");
  EXPECT_EQ(s.dtype, "bfloat16");
  EXPECT_EQ(s.max_total_tokens, 100000);
  EXPECT_EQ(s.cuda_graph_max_bs, 32);
  EXPECT_TRUE(s.enforce_eager);
  EXPECT_FALSE(s.gpu_memory_utilization);

  const auto off = settings(EngineKind::sglang, "", "--chunked-prefill-size -1");
  EXPECT_EQ(off.enable_chunked_prefill, false);
  EXPECT_FALSE(off.max_num_batched_tokens);
  EXPECT_EQ(failure(EngineKind::sglang, "--chunked-prefill-size 0").code, "args.unusable_value");
}

TEST(MemorySettings, ValuesTheEstimatorCannotUse) {
  auto e = failure(EngineKind::vllm, "--kv-cache-memory-bytes 0");
  EXPECT_EQ(e.code, "args.unusable_value");
  EXPECT_EQ(e.field, "--kv-cache-memory-bytes");
}

TEST(MemorySettings, LlamaCppFlags) {
  const auto s =
      settings(EngineKind::llama_cpp, "", "-c 8192 -np 4 -b 512 -ngl 99 -ctk q8_0 -ctv q4_0");
  EXPECT_EQ(s.max_model_len, 8192);
  EXPECT_EQ(s.max_num_seqs, 4);
  EXPECT_EQ(s.max_num_batched_tokens, 512);
  EXPECT_EQ(s.n_gpu_layers, 99);
  EXPECT_EQ(s.kv_cache_dtype, "q8_0");
  EXPECT_EQ(s.kv_cache_dtype_v, "q4_0");
  // -1 (auto) and "auto" leave the engine's default; "all" is every layer.
  const auto a = settings(EngineKind::llama_cpp, "", "--parallel -1 --n-gpu-layers auto");
  EXPECT_FALSE(a.max_num_seqs);
  EXPECT_FALSE(a.n_gpu_layers);
  EXPECT_GT(settings(EngineKind::llama_cpp, "", "-ngl all").n_gpu_layers.value_or(0), 1000);
}

}  // namespace
}  // namespace openstation::engine
