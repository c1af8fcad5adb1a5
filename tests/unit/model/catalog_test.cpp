#include "model/catalog.hpp"
#include "core/paths.hpp"
#include "model/estimator_weights.hpp"
#include "support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

namespace openstation::model {
namespace {

TEST(SeedFormula, EveryFaqRowComesOutIdentical) {
  // FAQ §1's table, literally: id → minimum GPU memory (GB).
  const std::map<std::string, std::int64_t> faq = {
      {"deepseek-r1", 807},
      {"deepseek-r1-bf16", 1612},
      {"deepseek-v3", 807},
      {"deepseek-v3-bf16", 1612},
      {"deepseek-r1-distill-llama-70b", 170},
      {"deepseek-r1-distill-llama-8b", 21},
      {"deepseek-r1-distill-qwen-32b", 79},
      {"deepseek-r1-distill-qwen-14b", 36},
      {"deepseek-r1-distill-qwen-7b", 19},
      {"deepseek-r1-distill-qwen-1.5b", 6},
  };
  const Catalog c = Catalog::builtin();
  ASSERT_EQ(c.cards().size(), 10u);
  for (const auto& [id, gb] : faq) {
    auto card = c.find(id);
    ASSERT_TRUE(card) << id;
    EXPECT_EQ(card->min_vram_gb, gb) << id;
    EXPECT_EQ(seed_min_vram_gb(card->params_b, card->dtype), gb) << id;
  }
}

TEST(SeedFormula, Arithmetic) {
  EXPECT_EQ(seed_min_vram_gb(7, DType::bf16), 19);    // 14 × 1.2 + 2 = 18.8
  EXPECT_EQ(seed_min_vram_gb(671, DType::fp8), 807);  // 805.2 + 2
  EXPECT_EQ(seed_min_vram_gb(1, DType::f32), 7);      // 4.8 + 2 = 6.8
}

TEST(Catalog, CardsCarrySourcesAndArchitecture) {
  const Catalog c = Catalog::builtin();
  auto r1 = c.find("deepseek-r1");
  ASSERT_TRUE(r1);
  EXPECT_EQ(r1->display_name, "DeepSeek-R1");
  EXPECT_EQ(r1->hf_repo, "deepseek-ai/DeepSeek-R1");
  EXPECT_EQ(r1->ms_repo, "deepseek-ai/DeepSeek-R1");
  EXPECT_EQ(r1->dtype, DType::fp8);
  EXPECT_EQ(r1->params_label, "671B");
  EXPECT_TRUE(r1->arch.is_mla);
  EXPECT_EQ(r1->arch.kv_lora_rank, 512);
  EXPECT_EQ(r1->arch.qk_rope_head_dim, 64);
  EXPECT_EQ(r1->arch.num_layers, 61);
  ASSERT_TRUE(r1->arch.quantization);
  EXPECT_EQ(r1->arch.quantization->method, "fp8");
  EXPECT_EQ(r1->arch.quantization->weight_block_size, (std::vector<int>{128, 128}));
  ASSERT_TRUE(r1->arch.rope_scaling);
  EXPECT_EQ(r1->arch.derived_max_len(), 163840);

  auto bf16 = c.find("deepseek-r1-bf16");
  ASSERT_TRUE(bf16);
  EXPECT_EQ(bf16->hf_repo, "unsloth/DeepSeek-R1-BF16");
  EXPECT_EQ(bf16->ms_repo, "unsloth/DeepSeek-r1-bf16");
  EXPECT_FALSE(bf16->arch.quantization);
  EXPECT_EQ(c.find("deepseek-v3-bf16")->hf_repo, "unsloth/DeepSeek-V3-bf16");

  auto q7 = c.find("deepseek-r1-distill-qwen-7b");
  ASSERT_TRUE(q7);
  EXPECT_EQ(q7->arch.num_kv_heads, 4);
  EXPECT_EQ(q7->arch.head_dim, 128);
  EXPECT_EQ(q7->arch.vocab_size, 152064);
  EXPECT_EQ(q7->hf_repo, "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B");
  auto l8 = c.find("deepseek-r1-distill-llama-8b");
  EXPECT_EQ(l8->arch.derived_max_len(), 131072);  // llama3 rope scaling is not multiplied
  for (const auto& card : c.cards()) {
    EXPECT_TRUE(card.builtin);
    EXPECT_GT(card.disk_gb, 0) << card.id;
    EXPECT_FALSE(card.ms_repo.empty()) << card.id;
  }
}

TEST(Catalog, DiskMatchesFaqClasses) {
  const Catalog c = Catalog::builtin();
  // FAQ §2: 671B BF16 needs more than 800 GB, FP8 less than 800 GB; distills 10-200 GB or less.
  EXPECT_GT(c.find("deepseek-r1-bf16")->disk_gb, 1000);
  EXPECT_LT(c.find("deepseek-r1")->disk_gb, 800);
  EXPECT_LT(c.find("deepseek-r1-distill-llama-70b")->disk_gb, 200);
}

TEST(Catalog, ParameterCountsFromArchitectureMatchPublishedSizes) {
  const Catalog c = Catalog::builtin();
  const std::map<std::string, double> published_b = {{"deepseek-r1-distill-qwen-1.5b", 1.78},
                                                     {"deepseek-r1-distill-qwen-7b", 7.62},
                                                     {"deepseek-r1-distill-qwen-14b", 14.77},
                                                     {"deepseek-r1-distill-qwen-32b", 32.76},
                                                     {"deepseek-r1-distill-llama-8b", 8.03},
                                                     {"deepseek-r1-distill-llama-70b", 70.55},
                                                     {"deepseek-r1", 671.0}};
  for (const auto& [id, b] : published_b) {
    auto p = count_params(c.find(id)->arch);
    ASSERT_TRUE(p) << id;
    EXPECT_NEAR(p->total() / 1e9, b, b * 0.01) << id;
  }
  // FP8 weights: about one byte per parameter (embeddings stay bf16).
  const ModelInfo r1 = c.find("deepseek-r1")->to_model_info();
  EXPECT_GT(r1.weight_bytes, 670e9);
  EXPECT_LT(r1.weight_bytes, 680e9);
  EXPECT_FALSE(r1.weights_exact);
  EXPECT_DOUBLE_EQ(r1.params, 671e9);
}

TEST(Catalog, FindSuggestsTheClosestId) {
  const Catalog c = Catalog::builtin();
  auto r = c.find("deepseek-r1-distill-qwen-7");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "catalog.unknown_model");
  EXPECT_NE(r.error().message.find("did you mean 'deepseek-r1-distill-qwen-7b'"), std::string::npos)
      << r.error().message;
  EXPECT_EQ(r.error().category, core::Errc::not_found);
  EXPECT_TRUE(c.find("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"));  // by HF repo id
}

std::string card(const std::string& id, const std::string& extra_arch = "",
                 const std::string& extra = "") {
  return R"({"id": ")" + id + R"(", "display_name": "Mine", "params_b": 7, "dtype": "bfloat16",)" +
         extra + R"( "arch": {"hidden_size": 4096, "num_layers": 32, "num_attention_heads": 32,
         "num_kv_heads": 8, "vocab_size": 32000, "max_position_embeddings": 32768,
         "intermediate_size": 11008)" +
         extra_arch + "}}";
}

TEST(Catalog, ParsesUserCards) {
  auto r = Catalog::parse(R"({"models": [)" + card("my-model") + "]}", "user.json", false);
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].params_label, "7B");
  EXPECT_EQ((*r)[0].min_vram_gb, 19);
  EXPECT_EQ((*r)[0].arch.head_dim, 128);
  EXPECT_FALSE((*r)[0].builtin);
}

TEST(Catalog, ErrorsNameTheCardAndField) {
  auto missing = Catalog::parse(
      R"({"models": [)" + card("ok") + "," +
          R"({"id": "broken", "params_b": 7, "dtype": "bf16", "arch": {"hidden_size": 1}}]})",
      "user.json", false);
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("card 1 ('broken')"), std::string::npos)
      << missing.error().message;
  EXPECT_NE(missing.error().message.find("models[1].arch.num_layers"), std::string::npos);
  EXPECT_EQ(missing.error().field, "models[1].arch.num_layers");

  auto unknown = Catalog::parse(R"({"models": [)" + card("x", R"(, "num_layer": 3)") + "]}",
                                "user.json", false);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, "catalog.unknown_field");
  EXPECT_NE(unknown.error().message.find("num_layer"), std::string::npos);

  auto dup =
      Catalog::parse(R"({"models": [)" + card("x") + "," + card("x") + "]}", "u.json", false);
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().code, "catalog.duplicate_id");

  auto bad_dtype = Catalog::parse(R"({"models": [{"id": "y", "params_b": 7, "dtype": "bf17",
      "arch": {}}]})",
                                  "u.json", false);
  ASSERT_FALSE(bad_dtype);
  EXPECT_NE(bad_dtype.error().message.find("bf17"), std::string::npos);

  auto bad_id = Catalog::parse(R"({"models": [)" + card("Has Space") + "]}", "u.json", false);
  ASSERT_FALSE(bad_id);
  EXPECT_NE(bad_id.error().message.find("models[0].id"), std::string::npos);

  auto bad_kv = Catalog::parse(R"({"models": [)" + card("z", R"(, "num_kv_heads": 5)") + "]}",
                               "u.json", false);
  ASSERT_FALSE(bad_kv);

  auto not_json = Catalog::parse("{", "u.json", false);
  ASSERT_FALSE(not_json);
  EXPECT_EQ(not_json.error().category, core::Errc::parse_error);
}

TEST(Catalog, LoadMergesTheUserFile) {
  const auto dir = openstation::testing_support::unique_temp_path("catalog_load_test");
  std::filesystem::create_directories(dir);
  const auto file = dir / "catalog.json";
  {
    std::ofstream out(file);
    out << R"({"models": [)" << card("my-model") << "," << card("deepseek-r1-distill-qwen-7b")
        << "]}";
  }
  auto c = Catalog::load(file);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->cards().size(), 11u);
  EXPECT_TRUE(c->find("my-model"));
  EXPECT_FALSE(c->find("deepseek-r1-distill-qwen-7b")->builtin);  // replaced

  auto none = Catalog::load(dir / "absent.json");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->cards().size(), 10u);

  {
    std::ofstream out(file);
    out << R"({"models": [{"id": "q"}]})";
  }
  auto bad = Catalog::load(file);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find(file.string()), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(DataDir, WhereUserCardsLive) {
  core::DataDirInputs in;
  in.home = "/home/ann";
  EXPECT_EQ(core::data_dir_for(in), "/home/ann/.local/share/openstation");
  in.xdg_data_home = "/xdg";
  EXPECT_EQ(core::data_dir_for(in), "/xdg/openstation");
  in.is_root = true;
  EXPECT_EQ(core::data_dir_for(in), "/var/lib/openstation");
  in.override_dir = "/srv/os";
  EXPECT_EQ(core::data_dir_for(in), "/srv/os");
  EXPECT_EQ(core::user_catalog_path("/srv/os"), "/srv/os/catalog.json");
}

}  // namespace
}  // namespace openstation::model
