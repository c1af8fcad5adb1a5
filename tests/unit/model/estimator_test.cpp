#include "model/estimator.hpp"
#include "core/strings.hpp"
#include "model/catalog.hpp"
#include "model/estimator_json.hpp"
#include "model/estimator_weights.hpp"
#include "model/model_files.hpp"
#include "support/model_fixtures.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <cmath>
#include <filesystem>

namespace openstation::model {
namespace {

const std::filesystem::path kExamples =
    std::filesystem::path(OPENSTATION_SOURCE_DIR) / "examples" / "nodes";

ModelInfo card(const std::string& id) {
  return Catalog::builtin().find(id).value().to_model_info();
}
NodeSpec node(const std::string& file) {
  return load_node_file(kExamples / (file + ".json")).value();
}
core::EngineId engine(core::EngineKind k, const char* v) {
  return {k, core::Version::parse(v).value()};
}

EstimateRequest req(const std::string& model, const std::string& node_file, int tp = 1,
                    core::EngineKind k = core::EngineKind::vllm, const char* v = "0.21.0") {
  EstimateRequest r;
  r.model = card(model);
  if (!node_file.empty()) r.node = node(node_file);
  r.engine = engine(k, v);
  r.tp = tp;
  return r;
}

const Finding* find(const Estimate& e, const std::string& code) {
  for (const auto& p : e.problems) {
    if (p.code == code) return &p;
  }
  return nullptr;
}

Estimate run(const EstimateRequest& r) {
  auto e = estimate(r);
  EXPECT_TRUE(e) << (e ? "" : e.error().message);
  return e ? *e : Estimate{};
}

TEST(Estimator, KvBytesPerTokenOfEnginesMd) {
  const std::vector<std::pair<std::string, std::uint64_t>> want = {
      {"deepseek-r1-distill-qwen-1.5b", 28672},
      {"deepseek-r1-distill-qwen-7b", 57344},
      {"deepseek-r1-distill-qwen-14b", 196608},
      {"deepseek-r1-distill-qwen-32b", 262144},
      {"deepseek-r1-distill-llama-8b", 131072},
      {"deepseek-r1-distill-llama-70b", 327680},
      {"deepseek-r1", 70272},
      {"deepseek-v3-bf16", 70272}};
  for (const auto& [id, bytes] : want) {
    const Estimate e = run(req(id, ""));
    EXPECT_EQ(e.kv_bytes_per_token, bytes) << id;
  }
  auto fp8 = req("deepseek-r1", "");
  fp8.settings.kv_cache_dtype = "fp8";
  EXPECT_EQ(run(fp8).kv_bytes_per_token, 35136u);
}

TEST(Estimator, WithoutNodeGivesSeedFiguresOnly) {
  const Estimate e = run(req("deepseek-r1-distill-qwen-7b", ""));
  EXPECT_FALSE(e.has_verdict);
  EXPECT_EQ(e.min_vram_gb, 19);
  EXPECT_NEAR(static_cast<double>(e.weights_bytes) / 1e9, 15.23, 0.05);  // 7.62B × 2 bytes
  EXPECT_EQ(e.kv_cache_tokens, 0);
  bool noted = false;
  for (const auto& n : e.notes) noted = noted || n.find("no node given") != std::string::npos;
  EXPECT_TRUE(noted);
  const auto j = estimate_to_json(e);
  EXPECT_TRUE(j.at("fits").is_null());
  for (const char* key :
       {"model", "engine", "tp", "pp", "weights_bytes", "weights_bytes_per_gpu", "min_vram_gb",
        "kv_bytes_per_token", "kv_cache_bytes_per_gpu", "kv_cache_tokens", "max_model_len",
        "max_concurrency", "fits", "problems", "suggestions", "engine_version"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
}

TEST(Estimator, TensorParallelDividesKvHeadsAndReplicatesBelowOne) {
  auto kv = [](const char* id, int tp, int pp = 1) {
    auto r = req(id, "");
    r.tp = tp;
    r.pp = pp;
    return run(r).kv_bytes_per_token;
  };
  EXPECT_EQ(kv("deepseek-r1-distill-qwen-7b", 2), 28672u);
  EXPECT_EQ(kv("deepseek-r1-distill-qwen-7b", 4), 14336u);
  // 7B has 4 KV heads: at TP 7 each rank still holds one (replicated).
  EXPECT_EQ(kv("deepseek-r1-distill-qwen-7b", 7), 14336u);
  EXPECT_EQ(kv("deepseek-r1-distill-qwen-7b", 14), 14336u);
  // 1.5B has 2 KV heads: TP 4 → max(1, 2 / 4) = 1 head per rank.
  EXPECT_EQ(kv("deepseek-r1-distill-qwen-1.5b", 4), 14336u);
  EXPECT_EQ(kv("deepseek-r1-distill-llama-70b", 8), 40960u);
  // MLA: the latent cache is on every rank, whatever the TP.
  EXPECT_EQ(kv("deepseek-r1", 8), 70272u);
  // PP splits the layers: 80 → 40 per stage; 61 → 31 on the largest stage.
  EXPECT_EQ(kv("deepseek-r1-distill-llama-70b", 8, 2), 20480u);
  EXPECT_EQ(kv("deepseek-r1", 8, 2), 31u * 576 * 2);
  // Weights per GPU shrink with TP and PP.
  auto w = [](int tp, int pp) {
    auto r = req("deepseek-r1-distill-llama-70b", "");
    r.tp = tp;
    r.pp = pp;
    return run(r).weights_bytes_per_gpu;
  };
  EXPECT_NEAR(static_cast<double>(w(8, 1)), static_cast<double>(w(1, 1)) / 8, 1e6);
  EXPECT_LT(w(8, 2), w(8, 1));
}

TEST(Estimator, SevenBOnRtx4090FitsOnlyWithAReducedContext) {
  const Estimate e = run(req("deepseek-r1-distill-qwen-7b", "1x-rtx4090"));
  EXPECT_TRUE(e.has_verdict);
  EXPECT_FALSE(e.fits);
  EXPECT_EQ(e.max_model_len, 131072);
  EXPECT_DOUBLE_EQ(e.utilization, 0.92);
  EXPECT_EQ(e.max_num_seqs, 256);
  EXPECT_EQ(e.max_num_batched_tokens, 2048);
  EXPECT_EQ(e.block_size, 16);
  EXPECT_GT(e.kv_cache_tokens, 32768);
  EXPECT_LT(e.kv_cache_tokens, 131072);
  EXPECT_EQ(e.kv_cache_tokens % 16, 0);
  EXPECT_EQ(e.largest_fitting_len, e.kv_cache_tokens);
  EXPECT_EQ(e.kv_cache_bytes_per_gpu, static_cast<std::uint64_t>(e.kv_cache_tokens) * 57344);
  // The pieces add up to the budget (KV rounded down to whole blocks).
  const std::uint64_t used = e.weights_bytes_per_gpu + e.activation_bytes_per_gpu +
                             e.non_torch_bytes_per_gpu + e.cuda_graph_bytes_per_gpu +
                             e.kv_cache_bytes_per_gpu;
  EXPECT_LE(used, e.budget_bytes_per_gpu);
  EXPECT_GT(used + 16 * 57344, e.budget_bytes_per_gpu);
  const Finding* f = find(e, "estimate.kv_cache_too_small");
  ASSERT_NE(f, nullptr);
  const std::string tokens = core::with_commas(e.kv_cache_tokens);
  EXPECT_NE(
      f->message.find("the KV cache holds " + tokens + " tokens but --max-model-len is 131072"),
      std::string::npos)
      << f->message;
  EXPECT_NE(
      f->message.find("use --max-model-len " + std::to_string(e.kv_cache_tokens) + " or less"),
      std::string::npos);
  EXPECT_NEAR(e.max_concurrency, static_cast<double>(e.kv_cache_tokens) / 131072, 1e-9);
  EXPECT_FALSE(e.suggestions.empty());

  auto shorter = req("deepseek-r1-distill-qwen-7b", "1x-rtx4090");
  shorter.settings.max_model_len = 32768;
  const Estimate s = run(shorter);
  EXPECT_TRUE(s.fits);
  EXPECT_TRUE(s.problems.empty());
  EXPECT_NEAR(s.max_concurrency, static_cast<double>(s.kv_cache_tokens) / 32768, 1e-9);
  EXPECT_GT(s.max_concurrency, 3);
}

TEST(Estimator, ThirtyTwoBDoesNotFitOnOneRtx4090) {
  const Estimate e = run(req("deepseek-r1-distill-qwen-32b", "1x-rtx4090"));
  EXPECT_FALSE(e.fits);
  ASSERT_NE(find(e, "estimate.weights_exceed_budget"), nullptr);
  EXPECT_EQ(e.kv_cache_tokens, 0);
  EXPECT_EQ(e.largest_fitting_len, 0);
  EXPECT_GT(e.gpus_needed, 2);
  bool more = false;
  for (const auto& s : e.suggestions)
    more = more || s.find("more GPUs needed") != std::string::npos;
  EXPECT_TRUE(more);
}

TEST(Estimator, R1Fp8DoesNotFitOnEightH100ButTheMlaMathIsRight) {
  const Estimate e = run(req("deepseek-r1", "8x-h100-80g", 8));
  EXPECT_FALSE(e.fits);
  EXPECT_EQ(e.kv_bytes_per_token, 70272u);
  EXPECT_EQ(e.max_num_seqs, 1024);  // ≥ 70 GiB, not A100
  EXPECT_EQ(e.max_num_batched_tokens, 8192);
  const Finding* f = find(e, "estimate.weights_exceed_budget");
  ASSERT_NE(f, nullptr);
  EXPECT_NE(f->message.find("--gpu-memory-utilization 0.92"), std::string::npos) << f->message;
  EXPECT_EQ(e.gpus_needed, 16);  // two such nodes: TP 8 × PP 2
  // FP8 KV halves the latent cache; with two nodes the context fits.
  auto two = req("deepseek-r1", "8x-h100-80g", 8);
  two.pp = 2;
  two.settings.kv_cache_dtype = "fp8";
  const Estimate t = run(two);
  EXPECT_EQ(t.kv_bytes_per_token, 31u * 576);
  EXPECT_TRUE(t.fits) << (t.problems.empty() ? "" : t.problems[0].message);
  EXPECT_EQ(t.kv_cache_bytes_per_gpu, static_cast<std::uint64_t>(t.kv_cache_tokens) * 31 * 576);
}

TEST(Estimator, SeventyBFitsOnEightA100WithA100Defaults) {
  const Estimate e = run(req("deepseek-r1-distill-llama-70b", "8x-a100-80g", 8));
  EXPECT_TRUE(e.fits);
  EXPECT_EQ(e.kv_bytes_per_token, 40960u);
  EXPECT_EQ(e.max_num_seqs, 256);  // A100 keeps the smaller defaults
  EXPECT_EQ(e.max_num_batched_tokens, 2048);
  EXPECT_EQ(e.largest_fitting_len, 131072);
  EXPECT_GT(e.max_concurrency, 1);
}

TEST(Estimator, VersionsDiffer) {
  auto r = req("deepseek-r1-distill-qwen-7b", "1x-rtx4090", 1, core::EngineKind::vllm, "0.7.3");
  const Estimate old = run(r);
  const Estimate cur = run(req("deepseek-r1-distill-qwen-7b", "1x-rtx4090"));
  EXPECT_DOUBLE_EQ(old.utilization, 0.9);
  EXPECT_DOUBLE_EQ(cur.utilization, 0.92);
  EXPECT_LT(old.budget_bytes_per_gpu, cur.budget_bytes_per_gpu);
  EXPECT_EQ(old.engine_version, "0.7.3");
  EXPECT_EQ(cur.engine_version, "0.21.0");
  EXPECT_EQ(old.max_num_seqs, 256);
  // 0.7 captures CUDA graphs outside the budget; 0.21 subtracts them from it.
  const std::uint64_t old_rest = old.budget_bytes_per_gpu - old.weights_bytes_per_gpu -
                                 old.activation_bytes_per_gpu - old.non_torch_bytes_per_gpu;
  EXPECT_GE(old_rest, old.kv_cache_bytes_per_gpu);
  EXPECT_LT(old_rest - old.kv_cache_bytes_per_gpu, 16u * 57344);
  EXPECT_NE(old.kv_cache_tokens, cur.kv_cache_tokens);

  // V0 without chunked prefill batches a whole max_model_len in the profile run.
  r.settings.enable_chunked_prefill = false;
  const Estimate nochunk = run(r);
  EXPECT_EQ(nochunk.max_num_batched_tokens, 131072);
  EXPECT_GT(nochunk.activation_bytes_per_gpu, 10 * old.activation_bytes_per_gpu);
  // Shorter contexts shrink the batch too, so the largest fitting context exceeds the KV
  // tokens at the default length.
  EXPECT_GT(nochunk.largest_fitting_len, nochunk.kv_cache_tokens);
  // With chunked prefill on by default only above 32K in V0.
  auto short_ctx =
      req("deepseek-r1-distill-qwen-7b", "1x-rtx4090", 1, core::EngineKind::vllm, "0.7.3");
  short_ctx.settings.max_model_len = 16384;
  EXPECT_EQ(run(short_ctx).max_num_batched_tokens, 16384);
}

TEST(Estimator, CudaGraphsAndEagerMode) {
  auto r = req("deepseek-r1-distill-qwen-7b", "1x-rtx4090");
  r.settings.max_model_len = 32768;
  const Estimate graphs = run(r);
  EXPECT_GT(graphs.cuda_graph_bytes_per_gpu, 0u);
  r.settings.enforce_eager = true;
  const Estimate eager = run(r);
  EXPECT_EQ(eager.cuda_graph_bytes_per_gpu, 0u);
  EXPECT_GT(eager.kv_cache_tokens, graphs.kv_cache_tokens);

  // 0.7: graphs must fit in the (1 − util) headroom; at 0.98 of a 24 GiB card they do not.
  auto old = req("deepseek-r1-distill-qwen-7b", "1x-rtx4090", 1, core::EngineKind::vllm, "0.7.3");
  old.settings.max_model_len = 32768;
  old.settings.gpu_memory_utilization = 0.98;
  const Estimate tight = run(old);
  ASSERT_NE(find(tight, "estimate.cuda_graph_headroom"), nullptr);
  old.settings.enforce_eager = true;
  EXPECT_EQ(find(run(old), "estimate.cuda_graph_headroom"), nullptr);
  // 0.21 subtracts them instead: no headroom problem at 0.98.
  r.settings.enforce_eager = false;
  r.settings.gpu_memory_utilization = 0.98;
  EXPECT_EQ(find(run(r), "estimate.cuda_graph_headroom"), nullptr);
}

TEST(Estimator, KvCacheMemoryBytesBypassesProfiling) {
  auto r = req("deepseek-r1-distill-qwen-7b", "1x-rtx4090");
  r.settings.kv_cache_memory_bytes = 4ull << 30;
  const Estimate e = run(r);
  EXPECT_EQ(e.kv_cache_tokens, static_cast<std::int64_t>((4ull << 30) / (16 * 57344)) * 16);
  r.settings.kv_cache_memory_bytes = 20ull << 30;
  ASSERT_NE(find(run(r), "estimate.kv_cache_memory_exceeds_gpu"), nullptr);
}

TEST(Estimator, OtherProcessesOnTheGpu) {
  auto r = req("deepseek-r1-distill-qwen-7b", "1x-rtx4090");
  r.settings.max_model_len = 8192;
  r.node->gpus[0].memory_used_mib = 6000;
  const Estimate e = run(r);
  EXPECT_FALSE(e.fits);
  const Finding* f = find(e, "estimate.insufficient_free_memory");
  ASSERT_NE(f, nullptr);
  EXPECT_NE(f->message.find("Free memory on device"), std::string::npos) << f->message;
  EXPECT_NE(f->message.find("is less than desired GPU memory utilization (0.92"),
            std::string::npos);
  EXPECT_EQ(e.other_processes_bytes_per_gpu, 6000ull << 20);
}

TEST(Estimator, VllmCpu) {
  auto r = req("deepseek-r1-distill-qwen-7b", "cpu-only", 1, core::EngineKind::vllm_cpu, "0.7.3");
  const Estimate old = run(r);
  EXPECT_EQ(old.block_size, 128);
  EXPECT_EQ(old.cuda_graph_bytes_per_gpu, 0u);
  // 0.7 era: VLLM_CPU_KVCACHE_SPACE unset → 4 GiB.
  EXPECT_EQ(old.kv_cache_tokens, static_cast<std::int64_t>((4ull << 30) / (128 * 57344)) * 128);
  const Finding* f = find(old, "estimate.kv_cache_too_small");
  ASSERT_NE(f, nullptr);
  EXPECT_NE(f->message.find("VLLM_CPU_KVCACHE_SPACE"), std::string::npos) << f->message;
  auto huge = r;
  huge.settings.cpu_kvcache_space_gib = 300;  // more than the node's 251.5 GiB of RAM
  EXPECT_NE(find(run(huge), "estimate.host_memory_insufficient"), nullptr);
  r.settings.cpu_kvcache_space_gib = 40;
  const Estimate space = run(r);
  EXPECT_EQ(space.kv_cache_tokens, static_cast<std::int64_t>((40ull << 30) / (128 * 57344)) * 128);
  EXPECT_TRUE(space.fits) << (space.problems.empty() ? "" : space.problems[0].message);

  // Current: util × RAM − weights − activations − runtime.
  const Estimate cur =
      run(req("deepseek-r1-distill-qwen-7b", "cpu-only", 1, core::EngineKind::vllm_cpu));
  EXPECT_TRUE(cur.fits);
  EXPECT_EQ(cur.budget_bytes_per_gpu,
            static_cast<std::uint64_t>(std::llround(257572.0 * (1 << 20) * 0.92)));
  EXPECT_GT(cur.kv_cache_tokens, 1000000);
  EXPECT_EQ(cur.max_num_seqs, 128);
  EXPECT_EQ(cur.max_num_batched_tokens, 2048);
}

TEST(Estimator, SglangMemFractionAndPool) {
  auto r =
      req("deepseek-r1-distill-qwen-7b", "8x-h100-80g", 1, core::EngineKind::sglang, "0.5.6.post2");
  const Estimate e = run(r);
  // reserved = 512 + 8192 × 1.5 + 256 × 2 + 1/8 × 1024 = 13,440 MiB of 81,559.
  EXPECT_DOUBLE_EQ(e.mem_fraction_static, 0.835);
  EXPECT_EQ(e.block_size, 1);
  const double pool = 81559.0 * (1 << 20) * 0.835 - static_cast<double>(e.weights_bytes_per_gpu) -
                      512.0 * (1 << 20);
  EXPECT_EQ(e.kv_cache_tokens, static_cast<std::int64_t>(pool / 57344));
  EXPECT_TRUE(e.fits);

  // TP 8: cuda_graph_max_bs 512, reserved 14,848 MiB.
  auto r8 = req("deepseek-r1-distill-llama-70b", "8x-h100-80g", 8, core::EngineKind::sglang,
                "0.5.6.post2");
  EXPECT_DOUBLE_EQ(run(r8).mem_fraction_static, 0.818);

  r.settings.mem_fraction_static = 0.5;
  r.settings.max_total_tokens = 1000;
  r.settings.max_model_len = 4096;
  const Estimate capped = run(r);
  EXPECT_EQ(capped.kv_cache_tokens, 1000);
  const Finding* f = find(capped, "estimate.kv_cache_too_small");
  ASSERT_NE(f, nullptr);
  EXPECT_NE(f->message.find("--context-length"), std::string::npos) << f->message;

  auto big = req("deepseek-r1", "8x-h100-80g", 8, core::EngineKind::sglang, "0.5.6.post2");
  const Estimate b = run(big);
  EXPECT_FALSE(b.fits);
  EXPECT_EQ(b.kv_bytes_per_token, 70272u);
  EXPECT_NE(find(b, "estimate.weights_exceed_budget"), nullptr);
}

TEST(Estimator, ContextBeyondTheModel) {
  auto r = req("deepseek-r1-distill-qwen-7b", "8x-h100-80g");
  r.settings.max_model_len = 200000;
  const Estimate e = run(r);
  const Finding* f = find(e, "estimate.max_model_len_exceeds_model");
  ASSERT_NE(f, nullptr);
  EXPECT_NE(f->message.find("User-specified max_model_len (200000) is greater than the derived "
                            "max_model_len (131072"),
            std::string::npos)
      << f->message;
  EXPECT_LE(e.largest_fitting_len, 131072);
}

TEST(Estimator, DiskIsChecked) {
  const Estimate e = run(req("deepseek-r1-bf16", "1x-rtx4090"));
  const Finding* f = find(e, "estimate.disk_insufficient");
  ASSERT_NE(f, nullptr);
  EXPECT_NE(f->message.find("1343.0 GB"), std::string::npos) << f->message;
  EXPECT_EQ(
      find(run(req("deepseek-r1-distill-qwen-7b", "8x-h100-80g")), "estimate.disk_insufficient"),
      nullptr);
}

TEST(Estimator, BadInput) {
  auto tp3 = req("deepseek-r1-distill-qwen-7b", "8x-h100-80g", 3);
  auto e = estimate(tp3);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, "estimate.tp_not_dividing_heads");
  EXPECT_EQ(e.error().category, core::Errc::invalid_argument);
  EXPECT_NE(
      e.error().message.find(
          "Total number of attention heads (28) must be divisible by tensor parallel size (3)."),
      std::string::npos);
  for (double u : {0.0, -0.1, 1.01}) {
    auto r = req("deepseek-r1-distill-qwen-7b", "1x-rtx4090");
    r.settings.gpu_memory_utilization = u;
    auto bad = estimate(r);
    ASSERT_FALSE(bad) << u;
    EXPECT_EQ(bad.error().code, "estimate.bad_utilization");
  }
  auto one = req("deepseek-r1-distill-qwen-7b", "1x-rtx4090");
  one.settings.gpu_memory_utilization = 1.0;
  EXPECT_TRUE(estimate(one));
  auto frac = req("deepseek-r1-distill-qwen-7b", "1x-rtx4090", 1, core::EngineKind::sglang);
  frac.settings.mem_fraction_static = 1.5;
  EXPECT_FALSE(estimate(frac));
  auto empty = req("deepseek-r1-distill-qwen-7b", "");
  empty.model.arch = ModelArch{};
  auto inc = estimate(empty);
  ASSERT_FALSE(inc);
  EXPECT_EQ(inc.error().code, "estimate.model_incomplete");
  auto gpu_engine_on_cpu = req("deepseek-r1-distill-qwen-7b", "cpu-only");
  EXPECT_FALSE(estimate(gpu_engine_on_cpu));
}

TEST(Estimator, MoreTensorParallelGpusThanTheNodeHas) {
  const Estimate e = run(req("deepseek-r1-distill-qwen-7b", "1x-rtx4090", 2));
  EXPECT_NE(find(e, "estimate.not_enough_gpus"), nullptr);
}

// Precise mode: model directories the readers' fixtures generate.

std::filesystem::path fresh_dir(const std::string& name) {
  const auto d = std::filesystem::path(testing::TempDir()) / ("estimator_" + name);
  std::filesystem::remove_all(d);
  return d;
}

TEST(EstimatorPrecise, ArchitectureCountMatchesGeneratedCheckpoints) {
  for (const auto& arch : {fixtures::tiny_llama_arch(), fixtures::tiny_qwen2_arch(),
                           fixtures::tiny_deepseek_v3_arch()}) {
    const auto dir = fresh_dir("count_" + arch.model_type);
    const auto m = fixtures::make_hf_model_dir(dir, arch, "BF16");
    auto p = count_params(arch);
    ASSERT_TRUE(p);
    EXPECT_EQ(static_cast<std::uint64_t>(p->total()), m.params) << arch.model_type;
    EXPECT_EQ(weight_bytes_from_params(arch, *p), m.weight_bytes) << arch.model_type;
    std::filesystem::remove_all(dir);
  }
}

TEST(EstimatorPrecise, MlaDirectory) {
  const auto dir = fresh_dir("mla");
  const auto m = fixtures::make_hf_model_dir(dir, fixtures::tiny_deepseek_v3_arch(), "BF16", 2);
  auto info = inspect_model_path(dir);
  ASSERT_TRUE(info) << info.error().message;
  EstimateRequest r;
  r.model = *info;
  r.node = node("1x-rtx4090");
  r.engine = engine(core::EngineKind::vllm, "0.21.0");
  const Estimate e = run(r);
  EXPECT_EQ(e.weights_bytes, m.weight_bytes);
  const auto& a = info->arch;
  ASSERT_TRUE(a.is_mla);
  // MLA: layers × (kv_lora_rank + qk_rope_head_dim) × 2 bytes, on every rank.
  EXPECT_EQ(e.kv_bytes_per_token,
            static_cast<std::uint64_t>(a.num_layers * (a.kv_lora_rank + a.qk_rope_head_dim) * 2));
  EXPECT_EQ(e.model_max_len, 163840);  // yarn: 4096 × 40
  EXPECT_TRUE(e.fits) << (e.problems.empty() ? "" : e.problems[0].message);
  for (const auto& n : e.notes) EXPECT_EQ(n.find("not from files"), std::string::npos) << n;
  auto fp8 = r;
  fp8.settings.kv_cache_dtype = "fp8";
  EXPECT_EQ(run(fp8).kv_bytes_per_token, e.kv_bytes_per_token / 2);
  std::filesystem::remove_all(dir);
}

TEST(EstimatorPrecise, Fp8Directory) {
  const auto dir = fresh_dir("fp8");
  const auto m = fixtures::make_fp8_model_dir(dir, 2);
  auto info = inspect_model_path(dir);
  ASSERT_TRUE(info) << info.error().message;
  ASSERT_TRUE(info->arch.quantization);
  EstimateRequest r;
  r.model = *info;
  r.engine = engine(core::EngineKind::vllm, "0.21.0");
  const Estimate no_node = run(r);
  EXPECT_EQ(no_node.weights_bytes, m.weight_bytes);  // FP8 weights + scales as stored
  EXPECT_FALSE(no_node.has_verdict);
  r.node = node("8x-h100-80g");
  const Estimate e = run(r);
  EXPECT_TRUE(e.fits);
  EXPECT_EQ(e.kv_bytes_per_token, no_node.kv_bytes_per_token);
  std::filesystem::remove_all(dir);
}

TEST(EstimatorPrecise, GgufFile) {
  const auto dir = fresh_dir("gguf");
  std::filesystem::create_directories(dir);
  const auto g = fixtures::make_gguf_model(dir / "tiny.gguf");
  auto info = inspect_model_path(g.path);
  ASSERT_TRUE(info) << info.error().message;
  EstimateRequest r;
  r.model = *info;
  r.node = node("1x-rtx4090");
  r.engine = engine(core::EngineKind::vllm, "0.21.0");
  const Estimate e = run(r);
  EXPECT_EQ(e.weights_bytes, g.weight_bytes);
  const auto& a = info->arch;
  EXPECT_EQ(e.kv_bytes_per_token,
            static_cast<std::uint64_t>(2 * a.num_layers * a.num_kv_heads * a.head_dim * 2));
  std::filesystem::remove_all(dir);
}

TEST(Estimator, BfloatOnOldGpusIsNoted) {
  const Estimate e = run(req("deepseek-r1-distill-qwen-1.5b", "4x-t4", 4));
  bool noted = false;
  for (const auto& n : e.notes) noted = noted || n.find("--dtype half") != std::string::npos;
  EXPECT_TRUE(noted);
  EXPECT_EQ(e.kv_bytes_per_token, 28672u / 2);  // 2 KV heads over TP 4: one per rank
  auto half = req("deepseek-r1-distill-qwen-1.5b", "4x-t4", 4);
  half.settings.dtype = "half";
  for (const auto& n : run(half).notes) EXPECT_EQ(n.find("--dtype half"), std::string::npos);
}

}  // namespace
}  // namespace openstation::model
