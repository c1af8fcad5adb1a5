#include "model/config_json.hpp"

#include "support/model_fixtures.hpp"

#include <gtest/gtest.h>

namespace openstation::model {
namespace {

constexpr std::string_view kQwen7b = R"({
  "architectures": ["Qwen2ForCausalLM"],
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "eos_token_id": 151643,
  "hidden_act": "silu",
  "hidden_size": 3584,
  "initializer_range": 0.02,
  "intermediate_size": 18944,
  "max_position_embeddings": 131072,
  "max_window_layers": 28,
  "model_type": "qwen2",
  "num_attention_heads": 28,
  "num_hidden_layers": 28,
  "num_key_value_heads": 4,
  "rms_norm_eps": 1e-06,
  "rope_theta": 10000,
  "sliding_window": 4096,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "use_sliding_window": false,
  "vocab_size": 152064
})";

constexpr std::string_view kDeepSeekV3 = R"({
  "architectures": ["DeepseekV3ForCausalLM"],
  "model_type": "deepseek_v3",
  "hidden_size": 7168,
  "intermediate_size": 18432,
  "moe_intermediate_size": 2048,
  "num_hidden_layers": 61,
  "num_attention_heads": 128,
  "num_key_value_heads": 128,
  "n_shared_experts": 1,
  "n_routed_experts": 256,
  "num_experts_per_tok": 8,
  "first_k_dense_replace": 3,
  "kv_lora_rank": 512,
  "q_lora_rank": 1536,
  "qk_rope_head_dim": 64,
  "qk_nope_head_dim": 128,
  "v_head_dim": 128,
  "max_position_embeddings": 163840,
  "vocab_size": 129280,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3",
                          "quant_method": "fp8", "weight_block_size": [128, 128]},
  "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0,
                   "mscale_all_dim": 1.0, "original_max_position_embeddings": 4096, "type": "yarn"}
})";

TEST(ConfigJson, ReadsQwen2) {
  auto a = parse_config_json(kQwen7b, "config.json");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->architecture, "Qwen2ForCausalLM");
  EXPECT_EQ(a->model_type, "qwen2");
  EXPECT_EQ(a->hidden_size, 3584);
  EXPECT_EQ(a->num_layers, 28);
  EXPECT_EQ(a->num_attention_heads, 28);
  EXPECT_EQ(a->num_kv_heads, 4);
  EXPECT_EQ(a->head_dim, 128);  // hidden / heads
  EXPECT_EQ(a->vocab_size, 152064);
  EXPECT_EQ(a->max_position_embeddings, 131072);
  EXPECT_EQ(a->intermediate_size, 18944);
  EXPECT_FALSE(a->tie_word_embeddings);
  EXPECT_EQ(a->torch_dtype, DType::bf16);
  EXPECT_FALSE(a->is_mla);
  EXPECT_FALSE(a->quantization);
  EXPECT_FALSE(a->rope_scaling);
  EXPECT_EQ(a->derived_max_len(), 131072);
}

TEST(ConfigJson, ReadsDeepSeekV3MlaMoeFp8AndYarn) {
  auto a = parse_config_json(kDeepSeekV3, "config.json");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_TRUE(a->is_mla);
  EXPECT_EQ(a->kv_lora_rank, 512);
  EXPECT_EQ(a->q_lora_rank, 1536);
  EXPECT_EQ(a->qk_rope_head_dim, 64);
  EXPECT_EQ(a->qk_nope_head_dim, 128);
  EXPECT_EQ(a->v_head_dim, 128);
  EXPECT_EQ(a->n_routed_experts, 256);
  EXPECT_EQ(a->num_experts_per_tok, 8);
  EXPECT_EQ(a->n_shared_experts, 1);
  EXPECT_EQ(a->first_k_dense_replace, 3);
  EXPECT_EQ(a->moe_intermediate_size, 2048);
  EXPECT_EQ(a->num_layers, 61);
  ASSERT_TRUE(a->quantization);
  EXPECT_EQ(a->quantization->method, "fp8");
  EXPECT_EQ(a->quantization->fmt, "e4m3");
  EXPECT_EQ(a->quantization->bits, 8);
  EXPECT_EQ(a->quantization->weight_block_size, (std::vector<int>{128, 128}));
  ASSERT_TRUE(a->rope_scaling);
  EXPECT_EQ(a->rope_scaling->type, "yarn");
  EXPECT_DOUBLE_EQ(a->rope_scaling->factor, 40.0);
  EXPECT_EQ(a->rope_scaling->original_max_position_embeddings, 4096);
  EXPECT_EQ(a->derived_max_len(), 4096 * 40);
  EXPECT_EQ(a->derived_max_len(), 163840);
}

TEST(ConfigJson, KvHeadsDefaultToHeadsAndAliasesAreRead) {
  auto a = parse_config_json(
      R"({"n_embd": 768, "n_layer": 12, "n_head": 12, "vocab_size": 50257, "n_positions": 1024,
          "model_type": "gpt2", "dtype": "float16"})",
      "gpt2/config.json");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->hidden_size, 768);
  EXPECT_EQ(a->num_layers, 12);
  EXPECT_EQ(a->num_kv_heads, 12);
  EXPECT_EQ(a->head_dim, 64);
  EXPECT_EQ(a->max_position_embeddings, 1024);
  EXPECT_EQ(a->torch_dtype, DType::f16);
}

TEST(ConfigJson, NullHeadDimAndExplicitHeadDim) {
  auto a = parse_config_json(
      R"({"hidden_size": 4096, "num_hidden_layers": 2, "num_attention_heads": 32,
          "num_layers": 99, "head_dim": null, "vocab_size": 10})",
      "c");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->head_dim, 128);
  EXPECT_EQ(a->num_layers, 2);  // num_hidden_layers wins over the alias
  auto b = parse_config_json(
      R"({"hidden_size": 2560, "num_hidden_layers": 2, "num_attention_heads": 32,
          "head_dim": 128, "vocab_size": 10})",
      "c");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->head_dim, 128);
}

TEST(ConfigJson, TextConfigOverridesTopLevel) {
  // Llama-4 / Gemma-3 style: the language model lives under text_config.
  auto a = parse_config_json(R"({
      "architectures": ["Llama4ForConditionalGeneration"],
      "model_type": "llama4",
      "torch_dtype": "bfloat16",
      "hidden_size": 1408,
      "text_config": {
        "model_type": "llama4_text",
        "hidden_size": 5120, "num_hidden_layers": 48, "num_attention_heads": 40,
        "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 202048,
        "intermediate_size": 8192, "num_local_experts": 16, "num_experts_per_tok": 1,
        "max_position_embeddings": 10485760,
        "rope_scaling": {"rope_type": "llama3", "factor": 16.0,
                         "original_max_position_embeddings": 8192}
      },
      "vision_config": {"hidden_size": 1408, "num_hidden_layers": 34}
    })",
                             "llama4/config.json");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->architecture, "Llama4ForConditionalGeneration");
  EXPECT_EQ(a->model_type, "llama4");
  EXPECT_EQ(a->hidden_size, 5120);
  EXPECT_EQ(a->num_layers, 48);
  EXPECT_EQ(a->num_kv_heads, 8);
  EXPECT_EQ(a->vocab_size, 202048);
  EXPECT_EQ(a->n_routed_experts, 16);
  EXPECT_EQ(a->torch_dtype, DType::bf16);
  ASSERT_TRUE(a->rope_scaling);
  EXPECT_EQ(a->rope_scaling->type, "llama3");
  EXPECT_EQ(a->derived_max_len(), 10485760);  // llama3 scaling is not multiplied
}

TEST(ConfigJson, MissingKeyNamesKeyAndFile) {
  auto a =
      parse_config_json(R"({"num_hidden_layers": 2, "num_attention_heads": 2, "vocab_size": 5})",
                        "/models/x/config.json");
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, "config.missing_key");
  EXPECT_NE(a.error().message.find("hidden_size"), std::string::npos);
  EXPECT_NE(a.error().message.find("/models/x/config.json"), std::string::npos);
  EXPECT_EQ(a.error().field, "hidden_size");

  auto b = parse_config_json(
      R"({"hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2})", "c.json");
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, "config.missing_key");
  EXPECT_NE(b.error().message.find("vocab_size"), std::string::npos);
}

TEST(ConfigJson, MalformedJsonHasLineAndColumn) {
  auto a = parse_config_json("{\n  \"hidden_size\": 8,\n  \"x\": ]\n}", "bad/config.json");
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, "json.invalid");
  EXPECT_NE(a.error().message.find("line 3"), std::string::npos) << a.error().message;
  EXPECT_NE(a.error().message.find("bad/config.json"), std::string::npos);

  auto b = parse_config_json("[1, 2]", "arr.json");
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, "config.not_object");
}

TEST(ConfigJson, BadValues) {
  auto neg = parse_config_json(
      R"({"hidden_size": -8, "num_hidden_layers": 2, "num_attention_heads": 2, "vocab_size": 5})",
      "c");
  ASSERT_FALSE(neg);
  EXPECT_EQ(neg.error().code, "config.invalid_value");
  auto frac = parse_config_json(
      R"({"hidden_size": 8, "num_hidden_layers": 2.5, "num_attention_heads": 2, "vocab_size": 5})",
      "c");
  ASSERT_FALSE(frac);
  EXPECT_EQ(frac.error().code, "config.invalid_value");
  EXPECT_NE(frac.error().message.find("num_hidden_layers"), std::string::npos);
  auto str = parse_config_json(
      R"({"hidden_size": "8", "num_hidden_layers": 2, "num_attention_heads": 2, "vocab_size": 5})",
      "c");
  ASSERT_FALSE(str);
  EXPECT_EQ(str.error().code, "config.invalid_value");
  auto zero = parse_config_json(
      R"({"hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 0, "vocab_size": 5})",
      "c");
  ASSERT_FALSE(zero);
  EXPECT_EQ(zero.error().code, "config.invalid_value");
  auto whole_double = parse_config_json(
      R"({"hidden_size": 8.0, "num_hidden_layers": 2, "num_attention_heads": 2, "vocab_size": 5})",
      "c");
  ASSERT_TRUE(whole_double);
  EXPECT_EQ(whole_double->hidden_size, 8);
}

TEST(ConfigJson, QuantizationVariants) {
  const std::string base =
      R"("hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2, "vocab_size": 5)";
  auto gptq = parse_config_json(
      "{" + base +
          R"(, "quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": 128}})",
      "c");
  ASSERT_TRUE(gptq);
  EXPECT_EQ(gptq->quantization->method, "gptq");
  EXPECT_EQ(gptq->quantization->bits, 4);
  auto ct = parse_config_json("{" + base + R"(, "quantization_config": {
      "quant_method": "compressed-tensors",
      "config_groups": {"group_0": {"targets": ["Linear"],
                                    "weights": {"num_bits": 8, "type": "float", "strategy": "channel"}}}}})",
                              "c");
  ASSERT_TRUE(ct) << ct.error().message;
  EXPECT_EQ(ct->quantization->method, "compressed-tensors");
  EXPECT_EQ(ct->quantization->bits, 8);
  EXPECT_EQ(ct->quantization->fmt, "e4m3");
  auto bnb = parse_config_json(
      "{" + base +
          R"(, "quantization_config": {"quant_method": "bitsandbytes", "load_in_4bit": true}})",
      "c");
  ASSERT_TRUE(bnb);
  EXPECT_EQ(bnb->quantization->bits, 4);
  auto bad = parse_config_json(
      "{" + base +
          R"(, "quantization_config": {"quant_method": "fp8", "weight_block_size": [128, -1]}})",
      "c");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, "config.invalid_value");
}

TEST(ConfigJson, RopeParametersAndDefaultRope) {
  const std::string base =
      R"("hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2, "vocab_size": 5,
         "max_position_embeddings": 32768)";
  auto v5 =
      parse_config_json("{" + base + R"(, "rope_parameters": {"rope_type": "yarn", "factor": 4.0,
      "original_max_position_embeddings": 32768, "rope_theta": 1000000}})",
                        "c");
  ASSERT_TRUE(v5);
  ASSERT_TRUE(v5->rope_scaling);
  EXPECT_EQ(v5->derived_max_len(), 131072);
  auto plain = parse_config_json(
      "{" + base + R"(, "rope_parameters": {"rope_type": "default", "rope_theta": 1e6}})", "c");
  ASSERT_TRUE(plain);
  EXPECT_FALSE(plain->rope_scaling);
  EXPECT_EQ(plain->derived_max_len(), 32768);
}

TEST(ConfigJson, FixtureConfigRoundTrips) {
  const ModelArch want = fixtures::tiny_deepseek_v3_arch();
  auto a = parse_config_json(fixtures::config_json_text(want), "fixture");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->architecture, want.architecture);
  EXPECT_EQ(a->hidden_size, want.hidden_size);
  EXPECT_EQ(a->kv_lora_rank, want.kv_lora_rank);
  EXPECT_EQ(a->head_dim, want.head_dim);
  EXPECT_EQ(a->n_routed_experts, want.n_routed_experts);
  EXPECT_EQ(a->derived_max_len(), 163840);
}

TEST(ConfigJson, LoadMissingFile) {
  auto a = load_config_json("/nonexistent/openstation/config.json");
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, "file.not_found");
}

}  // namespace
}  // namespace openstation::model

namespace openstation::model {
namespace {

TEST(ConfigJson, AbsurdRopeAndLengthsAreRejected) {
  const std::string base =
      R"("hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2, "vocab_size": 5)";
  for (
      const std::string extra :
      {R"("rope_scaling": {"type": "linear", "factor": 1e300})",
       R"("rope_scaling": {"type": "linear", "factor": -2})",
       R"("rope_scaling": {"type": "yarn", "factor": 4, "original_max_position_embeddings": 9000000000000000000})",
       R"("max_position_embeddings": 9000000000000000000)"}) {
    auto a = parse_config_json("{" + base + ", " + extra + "}", "c");
    ASSERT_FALSE(a) << extra;
    EXPECT_EQ(a.error().code, "config.invalid_value") << extra;
  }
}

}  // namespace
}  // namespace openstation::model
