#include "cli/commands.hpp"
#include "support/cli_runner.hpp"
#include "support/model_fixtures.hpp"
#include "support/temp_dir.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace openstation::cli {
namespace {

const std::string kNodes = std::string(OPENSTATION_SOURCE_DIR) + "/examples/nodes/";

using Out = testing_support::CliResult;

class CliEstimate : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = openstation::testing_support::unique_temp_path("cli_estimate_test");
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    // No user catalog from the real data dir leaks into the tests.
    ::setenv("OPENSTATION_DATA_DIR", dir_.c_str(), 1);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  Out cli(std::vector<std::string> args) { return testing_support::run_cli(std::move(args)); }

  std::string write(const std::string& name, const std::string& text) {
    const auto p = dir_ / name;
    std::ofstream(p) << text;
    return p.string();
  }

  std::filesystem::path dir_;
};

bool contains(const std::string& s, const std::string& needle) {
  return s.find(needle) != std::string::npos;
}

TEST_F(CliEstimate, CatalogTableAndJson) {
  const Out t = cli({"models", "catalog"});
  ASSERT_EQ(t.code, 0) << t.err;
  for (const char* id : {"deepseek-r1 ", "deepseek-r1-bf16", "deepseek-v3 ", "deepseek-v3-bf16",
                         "deepseek-r1-distill-llama-70b", "deepseek-r1-distill-llama-8b",
                         "deepseek-r1-distill-qwen-32b", "deepseek-r1-distill-qwen-14b",
                         "deepseek-r1-distill-qwen-7b", "deepseek-r1-distill-qwen-1.5b"}) {
    EXPECT_TRUE(contains(t.out, id)) << id;
  }
  EXPECT_TRUE(contains(t.out, "807 GB"));
  EXPECT_TRUE(contains(t.out, "1612 GB"));
  EXPECT_TRUE(contains(t.out, "ms:unsloth/DeepSeek-r1-bf16"));

  const Out j = cli({"models", "catalog", "--json"});
  ASSERT_EQ(j.code, 0) << j.err;
  const auto arr = boost::json::parse(j.out).as_array();
  ASSERT_EQ(arr.size(), 10u);
  EXPECT_EQ(arr[0].at("id").as_string(), "deepseek-r1");
  EXPECT_EQ(arr[0].at("min_vram_gb").as_int64(), 807);
  EXPECT_EQ(arr[9].at("min_vram_gb").as_int64(), 6);
}

TEST_F(CliEstimate, CatalogWithUserCardsAndBadFiles) {
  const std::string good = write("cards.json", R"({"models": [{"id": "my-llama", "params_b": 3,
    "dtype": "bfloat16", "hf_repo": "me/my-llama", "arch": {"hidden_size": 3072, "num_layers": 28,
    "num_attention_heads": 24, "num_kv_heads": 8, "vocab_size": 128256,
    "max_position_embeddings": 131072, "intermediate_size": 8192}}]})");
  const Out t = cli({"models", "catalog", "--catalog", good});
  ASSERT_EQ(t.code, 0) << t.err;
  EXPECT_TRUE(contains(t.out, "my-llama *"));
  EXPECT_TRUE(contains(t.out, " 9 GB"));  // 3B × 2 bytes × 1.2 + 2 = 9.2
  const Out e = cli({"estimate", "--model", "my-llama", "--catalog", good, "--json"});
  EXPECT_EQ(e.code, 0) << e.err;

  // The data dir's catalog.json is picked up without --catalog.
  write("catalog.json", R"({"models": [{"id": "dd-model", "params_b": 1, "dtype": "bf16",
    "arch": {"hidden_size": 2048, "num_layers": 16, "num_attention_heads": 16,
    "vocab_size": 32000, "max_position_embeddings": 4096, "intermediate_size": 5632}}]})");
  EXPECT_TRUE(contains(cli({"models", "catalog"}).out, "dd-model"));

  const std::string bad = write("bad.json", R"({"models": [{"id": "x", "params_b": 1,
    "dtype": "bf16", "arch": {"hidden_size": 1, "num_layers": 1, "num_attention_heads": 1,
    "vocab_size": 1, "max_position_embeddings": 1, "intermediate_size": 1, "colour": "red"}}]})");
  const Out b = cli({"models", "catalog", "--catalog", bad});
  EXPECT_EQ(b.code, 2);
  EXPECT_TRUE(contains(b.err, "card 0 ('x')")) << b.err;
  EXPECT_TRUE(contains(b.err, "colour")) << b.err;
  EXPECT_EQ(cli({"models", "catalog", "--catalog", (dir_ / "absent.json").string()}).code, 2);
}

TEST_F(CliEstimate, SevenBOnRtx4090) {
  const Out r = cli(
      {"estimate", "--model", "deepseek-r1-distill-qwen-7b", "--node", kNodes + "1x-rtx4090.json"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_TRUE(contains(r.out, "DOES NOT FIT")) << r.out;
  EXPECT_TRUE(contains(r.out, "estimate.kv_cache_too_small"));
  EXPECT_TRUE(contains(r.out, "but --max-model-len is 131072"));
  EXPECT_TRUE(contains(r.out, "vLLM 0.21.0"));

  const Out ok = cli({"estimate", "--model", "deepseek-r1-distill-qwen-7b", "--node",
                      kNodes + "1x-rtx4090.json", "--args", "--max-model-len 32768", "--json"});
  ASSERT_EQ(ok.code, 0) << ok.err << ok.out;
  const auto j = boost::json::parse(ok.out).as_object();
  EXPECT_EQ(j.at("fits").as_bool(), true);
  EXPECT_EQ(j.at("max_model_len").as_int64(), 32768);
  EXPECT_EQ(j.at("kv_bytes_per_token").as_int64(), 57344);
  EXPECT_EQ(j.at("engine").as_string(), "vllm");
  EXPECT_EQ(j.at("tp").as_int64(), 1);
  EXPECT_EQ(j.at("min_vram_gb").as_int64(), 19);
  for (const char* key :
       {"model", "engine", "tp", "pp", "weights_bytes", "weights_bytes_per_gpu", "min_vram_gb",
        "kv_bytes_per_token", "kv_cache_bytes_per_gpu", "kv_cache_tokens", "max_model_len",
        "max_concurrency", "fits", "problems", "suggestions", "engine_version"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
}

TEST_F(CliEstimate, DefaultsTpToTheNodesGpus) {
  const Out o = cli({"estimate", "--model", "deepseek-r1-distill-llama-70b", "--node",
                     kNodes + "8x-a100-80g.json", "--json"});
  ASSERT_EQ(o.code, 0) << o.err << o.out;
  const auto j = boost::json::parse(o.out).as_object();
  EXPECT_EQ(j.at("tp").as_int64(), 8);
  EXPECT_EQ(j.at("kv_bytes_per_token").as_int64(), 40960);

  const Out old = cli({"estimate", "--model", "deepseek-r1-distill-llama-70b", "--node",
                       kNodes + "8x-a100-80g.json", "--engine-version", "0.7.3", "--json"});
  ASSERT_EQ(old.code, 0) << old.err << old.out;
  const auto jo = boost::json::parse(old.out).as_object();
  EXPECT_EQ(jo.at("engine_version").as_string(), "0.7.3");
  EXPECT_DOUBLE_EQ(jo.at("utilization").as_double(), 0.9);
  EXPECT_DOUBLE_EQ(j.at("utilization").as_double(), 0.92);
  EXPECT_NE(jo.at("kv_cache_tokens").as_int64(), j.at("kv_cache_tokens").as_int64());

  const Out sg = cli({"estimate", "--model", "deepseek-r1-distill-llama-70b", "--node",
                      kNodes + "8x-a100-80g.json", "--engine", "sglang", "--json"});
  ASSERT_EQ(sg.code, 0) << sg.err << sg.out;
  EXPECT_EQ(boost::json::parse(sg.out).at("engine").as_string(), "sglang");

  const Out cpu = cli({"estimate", "--model", "deepseek-r1-distill-qwen-1.5b", "--node",
                       kNodes + "cpu-only.json", "--json"});
  ASSERT_EQ(cpu.code, 0) << cpu.err << cpu.out;
  const auto jc = boost::json::parse(cpu.out).as_object();
  EXPECT_EQ(jc.at("engine").as_string(), "vllm-cpu");
  EXPECT_EQ(jc.at("block_size").as_int64(), 128);

  const Out space =
      cli({"estimate", "--model", "deepseek-r1-distill-qwen-7b", "--node", kNodes + "cpu-only.json",
           "--engine-version", "0.7.3", "--env", "VLLM_CPU_KVCACHE_SPACE=2", "--json"});
  EXPECT_EQ(space.code, 1) << space.err << space.out;
  EXPECT_EQ(boost::json::parse(space.out).at("kv_cache_tokens").as_int64(),
            static_cast<std::int64_t>((2ull << 30) / (128 * 57344)) * 128);
}

TEST_F(CliEstimate, DoesNotFitExitsOneWithTheFullReport) {
  const Out r = cli({"estimate", "--model", "deepseek-r1", "--node", kNodes + "8x-h100-80g.json"});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.out, "estimate.weights_exceed_budget")) << r.out;
  EXPECT_TRUE(contains(r.out, "70,272 bytes per GPU"));
  EXPECT_TRUE(contains(r.out, "more GPUs needed: 16"));
  const Out j = cli({"estimate", "--model", "deepseek-r1-distill-qwen-32b", "--node",
                     kNodes + "1x-rtx4090.json", "--json"});
  EXPECT_EQ(j.code, 1);
  const auto o = boost::json::parse(j.out).as_object();
  EXPECT_FALSE(o.at("fits").as_bool());
  EXPECT_EQ(o.at("problems").as_array()[0].at("code").as_string(),
            "estimate.weights_exceed_budget");
}

TEST_F(CliEstimate, WithoutANode) {
  const Out r = cli({"estimate", "--model", "deepseek-r1-distill-qwen-14b"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "196,608 bytes")) << r.out;
  EXPECT_TRUE(contains(r.out, "no node given"));
  const Out j = cli({"estimate", "--model", "deepseek-r1-distill-qwen-14b", "--json"});
  EXPECT_TRUE(boost::json::parse(j.out).at("fits").is_null());
}

TEST_F(CliEstimate, BadInputExitsTwo) {
  const Out unknown = cli({"estimate", "--model", "deepseek-r1-distill-qwen-7"});
  EXPECT_EQ(unknown.code, 2);
  EXPECT_TRUE(contains(unknown.err, "did you mean 'deepseek-r1-distill-qwen-7b'")) << unknown.err;

  const Out tp = cli({"estimate", "--model", "deepseek-r1-distill-qwen-7b", "--node",
                      kNodes + "8x-h100-80g.json", "--tp", "3"});
  EXPECT_EQ(tp.code, 2);
  EXPECT_TRUE(contains(tp.err,
                       "Total number of attention heads (28) must be divisible by tensor "
                       "parallel size (3)."))
      << tp.err;
  // The default TP (8 GPUs) does not divide 28 heads either: a clear error, not a crash.
  const Out dflt = cli({"estimate", "--model", "deepseek-r1-distill-qwen-7b", "--node",
                        kNodes + "8x-h100-80g.json"});
  EXPECT_EQ(dflt.code, 2);
  EXPECT_TRUE(contains(dflt.err, "Valid --tp values")) << dflt.err;

  const Out util = cli({"estimate", "--model", "deepseek-r1-distill-qwen-7b", "--node",
                        kNodes + "1x-rtx4090.json", "--args", "--gpu-memory-utilization 1.5"});
  EXPECT_EQ(util.code, 2) << util.out;
  const Out util0 = cli({"estimate", "--model", "deepseek-r1-distill-qwen-7b", "--node",
                         kNodes + "1x-rtx4090.json", "--args", "--gpu-memory-utilization 0"});
  EXPECT_EQ(util0.code, 2) << util0.out;
  const Out flag =
      cli({"estimate", "--model", "deepseek-r1-distill-qwen-7b", "--args", "--max-modle-len 4096"});
  EXPECT_EQ(flag.code, 2);
  const Out missing_node = cli({"estimate", "--model", "deepseek-r1-distill-qwen-7b", "--node",
                                (dir_ / "absent.json").string()});
  EXPECT_EQ(missing_node.code, 2);
  const std::string bad = write("bad-node.json", R"({"name": "x", "type": "gpu"})");
  const Out bad_node = cli({"estimate", "--model", "deepseek-r1-distill-qwen-7b", "--node", bad});
  EXPECT_EQ(bad_node.code, 2);
  EXPECT_TRUE(contains(bad_node.err, "cpu_cores is required")) << bad_node.err;
  const Out path = cli({"estimate", "--model-path", (dir_ / "no-such-model").string()});
  EXPECT_EQ(path.code, 2) << path.err;
  const Out both = cli({"estimate", "--model", "deepseek-r1", "--model-path", "/tmp"});
  EXPECT_EQ(both.code, 2);
  const Out none = cli({"estimate"});
  EXPECT_EQ(none.code, 2);
  const Out engine = cli({"estimate", "--model", "deepseek-r1", "--engine", "tensorrt"});
  EXPECT_EQ(engine.code, 2);
  const Out json_err = cli({"estimate", "--model", "nope", "--json"});
  EXPECT_EQ(json_err.code, 2);
  EXPECT_EQ(boost::json::parse(json_err.out).at("error").at("code").as_string(),
            "catalog.unknown_model");
}

TEST_F(CliEstimate, PreciseModeFromModelDirectories) {
  const auto mla = fixtures::make_hf_model_dir(dir_ / "mla", fixtures::tiny_deepseek_v3_arch());
  const Out o = cli({"estimate", "--model-path", mla.dir.string(), "--node",
                     kNodes + "1x-rtx4090.json", "--json"});
  ASSERT_EQ(o.code, 0) << o.err << o.out;
  const auto j = boost::json::parse(o.out).as_object();
  EXPECT_EQ(j.at("weights_bytes").as_int64(), static_cast<std::int64_t>(mla.weight_bytes));
  const auto a = fixtures::tiny_deepseek_v3_arch();
  EXPECT_EQ(j.at("kv_bytes_per_token").as_int64(),
            a.num_layers * (a.kv_lora_rank + a.qk_rope_head_dim) * 2);
  EXPECT_EQ(j.at("model_max_len").as_int64(), 163840);

  const auto fp8 = fixtures::make_fp8_model_dir(dir_ / "fp8");
  const Out f = cli({"estimate", "--model-path", fp8.dir.string(), "--json"});
  ASSERT_EQ(f.code, 0) << f.err << f.out;
  EXPECT_EQ(boost::json::parse(f.out).at("weights_bytes").as_int64(),
            static_cast<std::int64_t>(fp8.weight_bytes));

  // A directory without the needed files is bad input.
  std::filesystem::create_directories(dir_ / "empty");
  EXPECT_EQ(cli({"estimate", "--model-path", (dir_ / "empty").string()}).code, 2);
}

}  // namespace
}  // namespace openstation::cli
