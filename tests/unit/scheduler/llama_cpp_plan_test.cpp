// GGUF models on llama.cpp's server: engine choice, the argv, the default chat template, the
// refusals (safetensors, several nodes, bad flags) and the estimate against RAM or GPU memory.
#include "plan_test_support.hpp"

#include <gtest/gtest.h>

namespace openstation::scheduler {
namespace {

using core::EngineKind;
using namespace test;

/// A Qwen2.5-0.5B-shaped GGUF (Q8_0): 24 layers, 2 KV heads of 64, vocabulary 151936.
model::ModelInfo gguf_model(std::string chat_template = {}) {
  model::ModelInfo m;
  m.id = "qwen2.5-0.5b-instruct-q8_0";
  m.path = "/models/qwen2.5-0.5b-instruct-q8_0.gguf";
  m.format = model::WeightFormat::gguf;
  m.arch.model_type = "qwen2";
  m.arch.hidden_size = 896;
  m.arch.num_layers = 24;
  m.arch.num_attention_heads = 14;
  m.arch.num_kv_heads = 2;
  m.arch.head_dim = 64;
  m.arch.vocab_size = 151936;
  m.arch.intermediate_size = 4864;
  m.arch.max_position_embeddings = 32768;
  m.weight_bytes = 531ull << 20;
  m.disk_bytes = m.weight_bytes + (2ull << 20);
  m.bytes_by_type = {{"Q8_0", 500ull << 20}, {"F32", 31ull << 20}};
  m.weights_exact = true;
  m.gguf_chat_template = std::move(chat_template);
  return m;
}

PlanRequest gguf_request(std::vector<model::NodeSpec> nodes, std::string args = {},
                         std::string chat_template = {}) {
  PlanRequest r;
  r.model = gguf_model(std::move(chat_template));
  r.nodes = std::move(nodes);
  r.extra_args = std::move(args);
  r.served_name = "qwen-small";
  return r;
}

TEST(LlamaCppPlan, GgufOnACpuNodeRunsLlamaServer) {
  const Plan p = plan_of(gguf_request({example_node("cpu-only.json")}, "-c 4096 -np 2 -t 4"));
  ASSERT_TRUE(p.ok) << codes(p);
  EXPECT_EQ(p.engine, EngineKind::llama_cpp);
  EXPECT_EQ(p.engine_version, "0.4.0");
  ASSERT_EQ(p.nodes.size(), 1u);
  const auto& argv = p.nodes[0].argv;
  ASSERT_GE(argv.size(), 3u);
  EXPECT_EQ(argv[0], "llama-server");
  EXPECT_TRUE(has_seq(argv, {"--model", "/models/qwen2.5-0.5b-instruct-q8_0.gguf"}));
  EXPECT_TRUE(has_seq(argv, {"--ctx-size", "4096", "--parallel", "2", "--threads", "4"}));
  EXPECT_TRUE(has_seq(argv, {"--host", "0.0.0.0", "--port", "40000", "--alias", "qwen-small"}));
  EXPECT_FALSE(has_token(argv, "--served-model-name"));
  EXPECT_TRUE(p.nodes[0].gpus.empty());
  EXPECT_FALSE(p.nodes[0].env.contains("CUDA_VISIBLE_DEVICES"));
  // No chat template in the GGUF: ChatML, said in the plan.
  EXPECT_TRUE(has_seq(argv, {"--chat-template", "chatml"}));
  ASSERT_NE(find_fix(p, "plan.default_chat_template"), nullptr) << codes(p);
  // The estimate is against the node's RAM.
  ASSERT_TRUE(p.estimate);
  EXPECT_EQ(p.estimate->engine, "llama.cpp");
  EXPECT_TRUE(p.estimate->fits);
  EXPECT_EQ(p.estimate->max_model_len, 4096);
  EXPECT_EQ(p.estimate->max_num_seqs, 2);
  // 24 layers × 2 KV heads × 64 × (2 + 2) bytes (f16) per token.
  EXPECT_EQ(p.estimate->kv_bytes_per_token, 24u * 2 * 64 * 4);
  EXPECT_EQ(p.estimate->kv_cache_bytes_per_gpu, 24u * 2 * 64 * 4 * 4096);
}

TEST(LlamaCppPlan, AChatTemplateInTheGgufOrTheFlagsIsKept) {
  const Plan with = plan_of(gguf_request({example_node("cpu-only.json")}, "-c 2048", "{{ x }}"));
  ASSERT_TRUE(with.ok) << codes(with);
  EXPECT_EQ(find_fix(with, "plan.default_chat_template"), nullptr);
  EXPECT_FALSE(has_token(with.nodes[0].argv, "--chat-template"));
  const Plan own = plan_of(gguf_request({example_node("cpu-only.json")}, "--chat-template llama3"));
  ASSERT_TRUE(own.ok) << codes(own);
  EXPECT_EQ(find_fix(own, "plan.default_chat_template"), nullptr);
  EXPECT_TRUE(has_seq(own.nodes[0].argv, {"--chat-template", "llama3"}));
}

TEST(LlamaCppPlan, GgufOnAGpuNodeOffloadsToItsGpus) {
  const Plan p = plan_of(gguf_request({example_node("1x-rtx4090.json")}, "-c 8192 -ngl all"));
  ASSERT_TRUE(p.ok) << codes(p);
  EXPECT_EQ(p.engine, EngineKind::llama_cpp);
  EXPECT_EQ(p.nodes[0].gpus, std::vector<int>{0});
  EXPECT_EQ(p.nodes[0].env.at("CUDA_VISIBLE_DEVICES"), "0");
  ASSERT_TRUE(p.estimate);
  EXPECT_EQ(p.estimate->gpus_used, 1);
  EXPECT_EQ(p.estimate->weights_bytes_per_gpu, 531ull << 20);
  EXPECT_TRUE(p.estimate->fits);
}

TEST(LlamaCppPlan, RefusesWhatLlamaCppCannotRun) {
  // safetensors on llama.cpp.
  auto st = request("deepseek-r1-distill-qwen-1.5b", {example_node("cpu-only.json")});
  st.engine = EngineKind::llama_cpp;
  const Plan s = plan_of(st);
  EXPECT_FALSE(s.ok);
  const auto* i = find_issue(s.errors, "plan.llama_cpp_needs_gguf");
  ASSERT_NE(i, nullptr) << codes(s);
  EXPECT_NE(i->message.find("convert"), std::string::npos);
  EXPECT_NE(i->message.find("vLLM or SGLang"), std::string::npos);
  // GGUF on SGLang.
  auto sg = gguf_request({example_node("1x-rtx4090.json")});
  sg.engine = EngineKind::sglang;
  EXPECT_NE(find_issue(plan_of(sg).errors, "plan.gguf_needs_llama_cpp"), nullptr);
  // Two nodes.
  const auto cpu = example_node("cpu-only.json");
  auto two_nodes = cpu;
  two_nodes.name = "cpu-02";
  const Plan two = plan_of(gguf_request({cpu, two_nodes}));
  EXPECT_NE(find_issue(two.errors, "plan.llama_cpp_multi_node"), nullptr) << codes(two);
  // Flags are checked against llama.cpp's table.
  auto bad = make_plan(gguf_request({cpu}, "--ctx-sise 4096"));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, "args.unknown_flag");
  EXPECT_NE(bad.error().message.find("--ctx-size"), std::string::npos);
  auto owned = make_plan(gguf_request({cpu}, "--alias other"));
  ASSERT_FALSE(owned);
  EXPECT_EQ(owned.error().code, "args.platform_owned");
}

TEST(LlamaCppPlan, AContextTooLargeForTheRamIsRefusedWithTheLargestThatFits) {
  auto small = example_node("cpu-only.json");
  small.memory_mib = 2048;
  const Plan p = plan_of(gguf_request({small}, "-c 262144 -np 1"));
  EXPECT_FALSE(p.ok);
  EXPECT_NE(find_issue(p.errors, "estimate.host_memory_insufficient"), nullptr) << codes(p);
  ASSERT_TRUE(p.estimate);
  EXPECT_GT(p.estimate->largest_fitting_len, 0);
  EXPECT_LT(p.estimate->largest_fitting_len, 262144);
  bool proposed = false;
  for (const auto& s : p.proposals) proposed |= s.find("--ctx-size") != std::string::npos;
  EXPECT_TRUE(proposed) << codes(p);
  // q8_0 caches are about half of f16.
  const Plan q =
      plan_of(gguf_request({example_node("cpu-only.json")}, "-c 4096 -ctk q8_0 -ctv q8_0"));
  ASSERT_TRUE(q.estimate);
  EXPECT_EQ(q.estimate->kv_bytes_per_token, 24u * 2 * 64 * 2 * 34 / 32);
}

}  // namespace
}  // namespace openstation::scheduler
