#include "scheduler/compat.hpp"
#include "engine/args.hpp"
#include "engine/spec.hpp"
#include "plan_test_support.hpp"

#include <gtest/gtest.h>

namespace openstation::scheduler {
namespace {

using namespace test;
using core::EngineKind;

TEST(Compat, T4With7BGetsDtypeHalf) {
  for (auto kind : {EngineKind::vllm, EngineKind::sglang}) {
    auto req = request("deepseek-r1-distill-qwen-7b", {example_node("4x-t4.json")});
    req.engine = kind;
    const Plan p = plan_of(req);
    ASSERT_NE(find_fix(p, "compat.bf16_to_half"), nullptr) << codes(p);
    EXPECT_NE(find_fix(p, "compat.bf16_to_half")->message.find("Tesla T4"), std::string::npos);
    EXPECT_NE(find_fix(p, "compat.bf16_to_half")->message.find("7.5"), std::string::npos);
    ASSERT_FALSE(p.nodes.empty());
    EXPECT_TRUE(has_seq(p.nodes[0].argv, {"--dtype", "half"}));
    EXPECT_TRUE(has_seq(p.engine_args, {"--dtype", "half"}));
  }
}

TEST(Compat, ExplicitBfloat16OnT4IsRefused) {
  const Plan p = plan_of(
      request("deepseek-r1-distill-qwen-7b", {example_node("4x-t4.json")}, "--dtype bfloat16"));
  EXPECT_FALSE(p.ok);
  const auto* e = find_issue(p.errors, "compat.bf16_unsupported");
  ASSERT_NE(e, nullptr) << codes(p);
  EXPECT_NE(e->message.find("Bfloat16 is only supported on GPUs with compute capability of at "
                            "least 8.0"),
            std::string::npos);
  EXPECT_NE(e->message.find("7.5"), std::string::npos);
  EXPECT_NE(e->message.find("--dtype half"), std::string::npos);
  EXPECT_EQ(e->node, "gpu-t4-01");
  EXPECT_EQ(find_fix(p, "compat.bf16_to_half"), nullptr);
}

TEST(Compat, A100NeedsNoDtypeFix) {
  const Plan p =
      plan_of(request("deepseek-r1-distill-qwen-7b", {example_node("8x-a100-80g.json")}));
  EXPECT_TRUE(p.ok) << codes(p);
  EXPECT_EQ(find_fix(p, "compat.bf16_to_half"), nullptr);
  EXPECT_FALSE(has_token(p.nodes[0].argv, "--dtype"));
}

TEST(Compat, V100WithVllmDisablesChunkedPrefillInTheVersionsSyntax) {
  auto req = request("deepseek-r1-distill-qwen-7b", {example_node("8x-v100-32g.json")});
  req.engine = EngineKind::vllm;
  req.engine_version = "0.7.3";
  Plan old = plan_of(req);
  ASSERT_NE(find_fix(old, "compat.v100_chunked_prefill"), nullptr) << codes(old);
  EXPECT_TRUE(has_seq(old.nodes[0].argv, {"--enable-chunked-prefill", "False"}));
  EXPECT_TRUE(has_seq(old.nodes[0].argv, {"--dtype", "half"}));
  EXPECT_NE(
      find_fix(old, "compat.v100_chunked_prefill")->message.find("--enable-chunked-prefill False"),
      std::string::npos);

  req.engine_version.clear();
  Plan cur = plan_of(req);
  ASSERT_NE(find_fix(cur, "compat.v100_chunked_prefill"), nullptr) << codes(cur);
  EXPECT_TRUE(has_token(cur.nodes[0].argv, "--no-enable-chunked-prefill"));
  EXPECT_FALSE(has_token(cur.nodes[0].argv, "False"));
  EXPECT_TRUE(has_seq(cur.nodes[0].argv, {"--dtype", "half"}));

  // A user who enabled it is overridden, and told so.
  req.extra_args = "--enable-chunked-prefill";
  Plan over = plan_of(req);
  ASSERT_NE(find_fix(over, "compat.v100_chunked_prefill"), nullptr);
  EXPECT_NE(find_fix(over, "compat.v100_chunked_prefill")->message.find("replaced"),
            std::string::npos);
  EXPECT_TRUE(has_token(over.nodes[0].argv, "--no-enable-chunked-prefill"));
  EXPECT_FALSE(has_token(over.nodes[0].argv, "--enable-chunked-prefill"));
}

TEST(Compat, V100WithSglangOnlyGetsHalf) {
  auto req = request("deepseek-r1-distill-qwen-7b", {example_node("8x-v100-32g.json")});
  const Plan p = plan_of(req);
  EXPECT_EQ(p.engine, EngineKind::sglang);
  EXPECT_EQ(find_fix(p, "compat.v100_chunked_prefill"), nullptr);
  EXPECT_NE(find_fix(p, "compat.bf16_to_half"), nullptr);
}

TEST(Compat, Fp8CheckpointOnA100IsRefusedAndOnH100SetsQuantization) {
  const Plan a100 = plan_of(request("deepseek-r1", {example_node("8x-a100-80g.json")}));
  EXPECT_FALSE(a100.ok);
  const auto* e = find_issue(a100.errors, "compat.quantization_needs_newer_gpu");
  ASSERT_NE(e, nullptr) << codes(a100);
  EXPECT_NE(e->message.find("8.9"), std::string::npos);
  EXPECT_NE(e->message.find("A100"), std::string::npos);
  EXPECT_NE(e->message.find("compute capability 8.0"), std::string::npos);
  EXPECT_EQ(e->node, "gpu-a100-01");

  const Plan h100 = plan_of(request("deepseek-r1", example_cluster("2x8-h100.json")));
  ASSERT_NE(find_fix(h100, "compat.quantization_from_checkpoint"), nullptr) << codes(h100);
  EXPECT_TRUE(has_seq(h100.nodes[0].argv, {"--quantization", "fp8"}));
  EXPECT_EQ(find_issue(h100.errors, "compat.quantization_needs_newer_gpu"), nullptr);
}

TEST(Compat, OnlineFp8OnA100IsRefused) {
  const Plan p = plan_of(request("deepseek-r1-distill-qwen-7b", {example_node("8x-a100-80g.json")},
                                 "--quantization fp8"));
  EXPECT_NE(find_issue(p.errors, "compat.quantization_needs_newer_gpu"), nullptr) << codes(p);
}

TEST(Compat, QuantizationMismatchIsRefused) {
  auto req = request("deepseek-r1", example_cluster("2x8-h100.json"), "--quantization awq");
  const Plan p = plan_of(req);
  const auto* e = find_issue(p.errors, "compat.quantization_mismatch");
  ASSERT_NE(e, nullptr) << codes(p);
  EXPECT_NE(e->message.find("fp8"), std::string::npos);
  EXPECT_NE(e->message.find("awq"), std::string::npos);
}

TEST(Compat, QuantizationTheEngineDoesNotKnowIsRefusedWithItsList) {
  auto req = request("deepseek-r1-distill-qwen-7b", {example_node("8x-h100-80g.json")});
  req.model.arch.quantization = model::Quantization{"hqq", 4, "", {}};
  const Plan p = plan_of(req);  // SGLang
  const auto* e = find_issue(p.errors, "compat.quantization_unknown");
  ASSERT_NE(e, nullptr) << codes(p);
  EXPECT_NE(e->message.find("hqq"), std::string::npos);
  EXPECT_NE(e->message.find("w8a8_int8"), std::string::npos);  // SGLang's list
}

TEST(Compat, AwqNeedsTuringOrNewer) {
  EXPECT_EQ(min_cc_for_quantization("fp8"), 89);
  EXPECT_EQ(min_cc_for_quantization("awq"), 75);
  EXPECT_EQ(min_cc_for_quantization("gptq_marlin"), 80);
  EXPECT_EQ(min_cc_for_quantization("compressed-tensors"), 0);
  auto req = request("deepseek-r1-distill-qwen-7b", {example_node("8x-v100-32g.json")});
  req.model.arch.quantization = model::Quantization{"awq", 4, "", {}};
  const Plan p = plan_of(req);
  EXPECT_NE(find_issue(p.errors, "compat.quantization_needs_newer_gpu"), nullptr) << codes(p);
}

TEST(Compat, ContextAboveTheModelsMaximumIsRefused) {
  auto req = request("deepseek-r1-distill-qwen-7b", {example_node("8x-h100-80g.json")},
                     "--max-model-len 200000");
  req.engine = EngineKind::vllm;
  const Plan v = plan_of(req);
  const auto* e = find_issue(v.errors, "compat.max_model_len_exceeds_model");
  ASSERT_NE(e, nullptr) << codes(v);
  EXPECT_NE(e->message.find("131072"), std::string::npos);
  EXPECT_NE(e->message.find("max_model_len"), std::string::npos);
  EXPECT_EQ(find_issue(v.errors, "estimate.max_model_len_exceeds_model"), nullptr);

  req.engine = EngineKind::sglang;
  req.extra_args = "--context-length 200000";
  const Plan s = plan_of(req);
  const auto* se = find_issue(s.errors, "compat.max_model_len_exceeds_model");
  ASSERT_NE(se, nullptr) << codes(s);
  EXPECT_NE(se->message.find("context_length"), std::string::npos);
  EXPECT_NE(se->message.find("--context-length 131072"), std::string::npos);
}

TEST(Compat, RulesApplyDirectlyToParsedArgs) {
  auto spec = engine::resolve_engine(EngineKind::vllm, "0.8.4");
  ASSERT_TRUE(spec.has_value());
  const auto v100 = example_node("8x-v100-32g.json");
  const auto m = catalog_model("deepseek-r1-distill-qwen-7b");
  CompatInput in;
  in.spec = *spec;
  in.kind = EngineKind::vllm;
  in.model = &m;
  in.gpus.push_back({v100.name, &v100.gpus[0]});
  engine::ParsedArgs args;
  CompatFindings out;
  apply_compat_rules(in, args, out);
  EXPECT_TRUE(out.errors.empty());
  EXPECT_EQ(engine::render(**spec, args),
            (std::vector<std::string>{"--dtype", "half", "--enable-chunked-prefill", "False"}));
}

}  // namespace
}  // namespace openstation::scheduler
