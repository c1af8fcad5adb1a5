// The llama.cpp estimate: cache type sizes, KV cache for --ctx-size, RAM and GPU verdicts.
#include "model/estimator_llama.hpp"

#include <gtest/gtest.h>

namespace openstation::model {
namespace {

EstimateRequest request(std::int64_t ctx) {
  EstimateRequest r;
  r.model.id = "tiny";
  r.model.format = WeightFormat::gguf;
  r.model.arch.hidden_size = 64;
  r.model.arch.num_layers = 2;
  r.model.arch.num_attention_heads = 4;
  r.model.arch.num_kv_heads = 2;
  r.model.arch.vocab_size = 151936;
  r.model.arch.max_position_embeddings = 4096;
  r.model.weight_bytes = 40ull << 20;
  r.engine = {core::EngineKind::llama_cpp, core::Version::parse("0.4.0").value()};
  r.settings.max_model_len = ctx;
  r.settings.max_num_seqs = 1;
  return r;
}

TEST(LlamaCppEstimate, CacheTypesHaveTheirGgmlSizes) {
  EXPECT_EQ(llama_cache_type_bytes("f16"), 2.0);
  EXPECT_EQ(llama_cache_type_bytes("F32"), 4.0);
  EXPECT_EQ(llama_cache_type_bytes("q8_0"), 34.0 / 32);
  EXPECT_EQ(llama_cache_type_bytes("q4_0"), 18.0 / 32);
  EXPECT_FALSE(llama_cache_type_bytes("fp8"));
}

TEST(LlamaCppEstimate, KvCacheFollowsTheContextAndTheCacheTypes) {
  auto r = request(1024);
  auto e = estimate(r);
  ASSERT_TRUE(e) << e.error().message;
  EXPECT_EQ(e->engine, "llama.cpp");
  // 2 layers × 2 KV heads × head dim 16 × (2 + 2) bytes.
  EXPECT_EQ(e->kv_bytes_per_token, 2u * 2 * 16 * 4);
  EXPECT_EQ(e->kv_cache_bytes_per_gpu, 2u * 2 * 16 * 4 * 1024);
  EXPECT_FALSE(e->has_verdict);
  r.settings.kv_cache_dtype = "q4_0";
  r.settings.kv_cache_dtype_v = "q4_0";
  EXPECT_EQ(estimate(r)->kv_bytes_per_token, 2u * 2 * 16 * 2 * 18 / 32);
  r.settings.kv_cache_dtype = "fp8";
  auto bad = estimate(r);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, "estimate.unknown_cache_type");
  EXPECT_EQ(bad.error().field, "--cache-type-k");
}

TEST(LlamaCppEstimate, CpuNodesAreCheckedAgainstRam) {
  auto r = request(2048);
  NodeSpec n;
  n.name = "cpu";
  n.type = NodeType::cpu;
  n.memory_mib = 1024;
  r.node = n;
  auto e = estimate(r);
  ASSERT_TRUE(e);
  EXPECT_TRUE(e->has_verdict);
  EXPECT_TRUE(e->fits);
  n.memory_mib = 100;
  r.node = n;
  e = estimate(r);
  ASSERT_TRUE(e);
  EXPECT_FALSE(e->fits);
  ASSERT_FALSE(e->problems.empty());
  EXPECT_EQ(e->problems[0].code, "estimate.host_memory_insufficient");
  n.memory_mib = 0;
  r.node = n;
  EXPECT_EQ(estimate(r).error().code, "estimate.node_without_memory");
}

TEST(LlamaCppEstimate, GpuLayersSplitOverTheGpus) {
  auto r = request(2048);
  NodeSpec n;
  n.name = "gpu";
  n.type = NodeType::gpu;
  n.memory_mib = 65536;
  for (int i = 0; i < 2; ++i) {
    GpuSpec g;
    g.index = i;
    g.name = "NVIDIA T4";
    g.memory_total_mib = 15360;
    n.gpus.push_back(g);
  }
  r.node = n;
  auto e = estimate(r);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->gpus_used, 2);
  EXPECT_EQ(e->weights_bytes_per_gpu, 20ull << 20);
  EXPECT_TRUE(e->fits);
  r.settings.n_gpu_layers = 1;  // half the layers: a quarter per GPU
  EXPECT_EQ(estimate(r)->weights_bytes_per_gpu, 10ull << 20);
}

}  // namespace
}  // namespace openstation::model
