#include "model/model_files.hpp"

#include "model/gguf.hpp"
#include "model/safetensors.hpp"
#include "support/model_fixtures.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace openstation::model {
namespace {

namespace fs = std::filesystem;

std::uint64_t sum_files(const fs::path& dir) {
  std::uint64_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) n += e.file_size();
  }
  return n;
}

TEST(ModelFiles, SingleShardLlama) {
  const fixtures::ScratchDir dir_scratch("model_files_llama");
  const auto dir = dir_scratch.path() / "Tiny-Llama";
  const auto m = fixtures::make_hf_model_dir(dir, fixtures::tiny_llama_arch(), "BF16", 1);
  auto info = inspect_model_path(dir);
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->id, "Tiny-Llama");
  EXPECT_EQ(info->path, dir.string());
  EXPECT_EQ(info->format, WeightFormat::safetensors);
  EXPECT_TRUE(info->weights_exact);
  EXPECT_EQ(info->weight_bytes, m.weight_bytes);
  EXPECT_EQ(info->params, static_cast<double>(m.params));
  EXPECT_EQ(info->disk_bytes, sum_files(dir));
  EXPECT_GT(info->disk_bytes, info->weight_bytes);
  EXPECT_EQ(info->bytes_by_type.at("BF16"), m.weight_bytes);
  EXPECT_EQ(info->arch.architecture, "LlamaForCausalLM");
  EXPECT_EQ(info->arch.hidden_size, 64);
  EXPECT_EQ(info->arch.num_kv_heads, 2);
  // Exact count for the tiny Llama: embed + lm_head + 2 × (q,k,v,o, gate/up/down, 2 norms) + norm.
  const std::uint64_t layer = 64 * 64 + 2 * (32 * 64) + 64 * 64 + 3 * (128 * 64) + 2 * 64;
  EXPECT_EQ(m.params, 2u * 320 * 64 + 2 * layer + 64);
}

TEST(ModelFiles, ShardedQwen2WithIndex) {
  const fixtures::ScratchDir dir_scratch("model_files_qwen2");
  const auto dir = dir_scratch.path();
  const auto m = fixtures::make_hf_model_dir(dir, fixtures::tiny_qwen2_arch(), "F16", 3);
  ASSERT_EQ(m.shards.size(), 3u);
  EXPECT_EQ(m.shards[0], "model-00001-of-00003.safetensors");
  EXPECT_TRUE(fs::exists(dir / "model.safetensors.index.json"));
  auto info = inspect_model_path(dir);
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->weight_bytes, m.weight_bytes);
  EXPECT_EQ(info->bytes_by_type.at("F16"), m.weight_bytes);
  EXPECT_TRUE(info->arch.tie_word_embeddings);
  // config.json itself as the path means its directory.
  auto via_config = inspect_model_path(dir / "config.json");
  ASSERT_TRUE(via_config) << via_config.error().message;
  EXPECT_EQ(via_config->weight_bytes, m.weight_bytes);
}

TEST(ModelFiles, MissingShardIsNamed) {
  const fixtures::ScratchDir dir_scratch("model_files_missing");
  const auto dir = dir_scratch.path();
  const auto m = fixtures::make_hf_model_dir(dir, fixtures::tiny_llama_arch(), "BF16", 2);
  fs::remove(dir / m.shards[1]);
  auto info = inspect_model_path(dir);
  ASSERT_FALSE(info);
  EXPECT_EQ(info.error().code, "model.shard_missing");
  EXPECT_NE(info.error().message.find(m.shards[1]), std::string::npos);
}

TEST(ModelFiles, TruncatedShardNamesTheFile) {
  const fixtures::ScratchDir dir_scratch("model_files_truncated");
  const auto dir = dir_scratch.path();
  const auto m = fixtures::make_hf_model_dir(dir, fixtures::tiny_llama_arch(), "BF16", 2);
  auto h = read_safetensors_header(dir / m.shards[0]);
  ASSERT_TRUE(h);
  fs::resize_file(dir / m.shards[0], h->header_bytes + 1000);
  auto info = inspect_model_path(dir);
  ASSERT_FALSE(info);
  EXPECT_EQ(info.error().code, "safetensors.bad_offsets");
  EXPECT_NE(info.error().message.find(m.shards[0]), std::string::npos);
}

TEST(ModelFiles, Fp8DeepSeekCheckpoint) {
  const fixtures::ScratchDir dir_scratch("model_files_fp8");
  const auto dir = dir_scratch.path();
  const auto m = fixtures::make_fp8_model_dir(dir, 2);
  auto info = inspect_model_path(dir);
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->weight_bytes, m.weight_bytes);  // as stored, scales included
  ASSERT_TRUE(info->bytes_by_type.count("F8_E4M3"));
  ASSERT_TRUE(info->bytes_by_type.count("F32"));
  ASSERT_TRUE(info->bytes_by_type.count("BF16"));
  EXPECT_GT(info->bytes_by_type.at("F8_E4M3"), info->bytes_by_type.at("BF16"));
  EXPECT_TRUE(info->arch.is_mla);
  EXPECT_EQ(info->arch.kv_lora_rank, 64);
  EXPECT_EQ(info->arch.derived_max_len(), 163840);
  ASSERT_TRUE(info->arch.quantization);
  EXPECT_EQ(info->arch.quantization->method, "fp8");
  EXPECT_EQ(info->arch.quantization->weight_block_size, (std::vector<int>{128, 128}));
  EXPECT_EQ(info->arch.torch_dtype, DType::bf16);

  // The FP8 checkpoint stores fewer bytes than the same model in BF16.
  const fixtures::ScratchDir bf16_scratch("model_files_bf16ds");
  const auto bf16 = fixtures::make_hf_model_dir(bf16_scratch.path(),
                                                fixtures::tiny_deepseek_v3_arch(), "BF16", 1);
  EXPECT_LT(m.weight_bytes, bf16.weight_bytes);
  // Expert tensors exist from layer first_k_dense_replace on.
  const auto tensors = fixtures::hf_tensors(fixtures::tiny_deepseek_v3_arch(), "BF16");
  bool dense0 = false, expert1 = false;
  for (const auto& t : tensors) {
    dense0 = dense0 || t.name == "model.layers.0.mlp.gate_proj.weight";
    expert1 = expert1 || t.name == "model.layers.1.mlp.experts.3.down_proj.weight";
  }
  EXPECT_TRUE(dense0);
  EXPECT_TRUE(expert1);
}

TEST(ModelFiles, GgufFileAndDirectory) {
  const fixtures::ScratchDir dir_scratch("model_files_gguf");
  const auto dir = dir_scratch.path();
  const auto m = fixtures::make_gguf_model(dir / "tiny-qwen2-f16.gguf");
  auto info = inspect_model_path(dir / "tiny-qwen2-f16.gguf");
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->format, WeightFormat::gguf);
  EXPECT_EQ(info->id, "tiny-qwen2-f16");
  EXPECT_EQ(info->weight_bytes, m.weight_bytes);
  EXPECT_EQ(info->params, static_cast<double>(m.params));
  EXPECT_EQ(info->disk_bytes, fs::file_size(dir / "tiny-qwen2-f16.gguf"));
  EXPECT_TRUE(info->weights_exact);
  EXPECT_EQ(info->bytes_by_type.at("F16") + info->bytes_by_type.at("F32"), m.weight_bytes);
  EXPECT_EQ(info->arch.model_type, "qwen2");
  EXPECT_NE(info->gguf_chat_template.find("im_start"), std::string::npos);

  // A directory with the model and a multimodal projector: the projector is ignored.
  fixtures::make_gguf_model(dir / "mmproj-tiny.gguf");
  auto d = inspect_model_path(dir);
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(d->weight_bytes, m.weight_bytes);
  EXPECT_EQ(d->disk_bytes, sum_files(dir));

  // Two unrelated models are ambiguous.
  fixtures::make_gguf_model(dir / "other.gguf");
  auto amb = inspect_model_path(dir);
  ASSERT_FALSE(amb);
  EXPECT_EQ(amb.error().code, "model.ambiguous_gguf");
}

TEST(ModelFiles, SplitGguf) {
  const fixtures::ScratchDir dir_scratch("model_files_split");
  const auto dir = dir_scratch.path();
  const auto a = fixtures::tiny_qwen2_arch();
  // Shard 1: metadata and the embedding; shard 2: the rest of a (fake) split.
  GgufWriter w1;
  w1.set("general.architecture", GgufValue::str("qwen2"));
  w1.set("qwen2.block_count", GgufValue::u32(2));
  w1.set("qwen2.embedding_length", GgufValue::u32(64));
  w1.set("qwen2.attention.head_count", GgufValue::u32(4));
  w1.set("qwen2.vocab_size", GgufValue::u32(320));
  w1.set("split.no", GgufValue::u16(0));
  w1.set("split.count", GgufValue::u16(2));
  ASSERT_TRUE(w1.add_tensor("token_embd.weight", {64, 320}, ggml::kF16));
  ASSERT_TRUE(w1.write(dir / "big-00001-of-00002.gguf"));
  GgufWriter w2;
  w2.set("split.no", GgufValue::u16(1));
  w2.set("split.count", GgufValue::u16(2));
  ASSERT_TRUE(w2.add_tensor("output.weight", {64, 320}, ggml::kQ8_0));
  ASSERT_TRUE(w2.write(dir / "big-00002-of-00002.gguf"));

  auto info = inspect_model_path(dir / "big-00002-of-00002.gguf");
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->id, "big");
  EXPECT_EQ(info->weight_bytes, 64u * 320 * 2 + 64u * 320 / 32 * 34);
  EXPECT_EQ(info->bytes_by_type.at("Q8_0"), 64u * 320 / 32 * 34);
  EXPECT_FALSE(info->arch.tie_word_embeddings);  // output.weight is in shard 2
  EXPECT_EQ(info->disk_bytes, sum_files(dir));
  auto d = inspect_model_path(dir);
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(d->weight_bytes, info->weight_bytes);

  auto shards = gguf_shard_paths(dir / "big-00001-of-00002.gguf");
  ASSERT_TRUE(shards);
  EXPECT_EQ(shards->size(), 2u);
  fs::remove(dir / "big-00002-of-00002.gguf");
  auto missing = inspect_model_path(dir);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, "model.shard_missing");
  EXPECT_NE(missing.error().message.find("big-00002-of-00002.gguf"), std::string::npos);
  (void)a;
}

TEST(ModelFiles, Errors) {
  auto none = inspect_model_path("/nonexistent/openstation/model");
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, "model.path_not_found");

  const fixtures::ScratchDir empty_scratch("model_files_empty");
  const auto empty = empty_scratch.path();
  auto e = inspect_model_path(empty);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, "model.no_weights");
  EXPECT_NE(e.error().message.find("config.json"), std::string::npos);

  const fixtures::ScratchDir bin_scratch("model_files_bin");
  const auto bin = bin_scratch.path();
  std::ofstream(bin / "config.json") << fixtures::config_json_text(fixtures::tiny_llama_arch());
  std::ofstream(bin / "pytorch_model.bin") << "x";
  auto b = inspect_model_path(bin);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, "model.no_weights");
  EXPECT_NE(b.error().message.find(".bin"), std::string::npos);

  const fixtures::ScratchDir noconf_scratch("model_files_noconf");
  const auto noconf = noconf_scratch.path();
  fixtures::write_safetensors(noconf / "model.safetensors", {{"w", "F32", {2}}});
  auto n = inspect_model_path(noconf);
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().code, "model.no_weights");

  auto txt = inspect_model_path(noconf / "model.safetensors");
  ASSERT_FALSE(txt);
  EXPECT_EQ(txt.error().code, "model.no_weights");

  const fixtures::ScratchDir badconf_scratch("model_files_badconf");
  const auto badconf = badconf_scratch.path();
  std::ofstream(badconf / "config.json") << "{\"hidden_size\": 8,";
  fixtures::write_safetensors(badconf / "model.safetensors", {{"w", "F32", {2}}});
  auto c = inspect_model_path(badconf);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, "json.invalid");
  EXPECT_NE(c.error().message.find("config.json"), std::string::npos);

  const fixtures::ScratchDir badgguf_scratch("model_files_badgguf");
  const auto badgguf = badgguf_scratch.path();
  std::ofstream(badgguf / "m.gguf") << "GGUF\x03";
  auto g = inspect_model_path(badgguf / "m.gguf");
  ASSERT_FALSE(g);
  EXPECT_EQ(g.error().code, "gguf.truncated");
  EXPECT_NE(g.error().message.find("m.gguf"), std::string::npos);
}

}  // namespace
}  // namespace openstation::model
