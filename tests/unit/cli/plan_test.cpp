#include "support/cli_runner.hpp"
#include "support/model_fixtures.hpp"
#include "support/temp_dir.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace openstation::cli {
namespace {

const std::string kClusters = std::string(OPENSTATION_SOURCE_DIR) + "/examples/clusters/";
const std::string kNodes = std::string(OPENSTATION_SOURCE_DIR) + "/examples/nodes/";

using Out = testing_support::CliResult;

class CliPlan : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = openstation::testing_support::unique_temp_path("cli_plan_test");
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    ::setenv("OPENSTATION_DATA_DIR", dir_.c_str(), 1);  // no user catalog leaks in
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  Out cli(std::vector<std::string> args) {
    args.insert(args.begin(), "plan");
    return testing_support::run_cli(std::move(args));
  }

  boost::json::object json_of(const Out& r) {
    boost::system::error_code ec;
    auto v = boost::json::parse(r.out, ec);
    EXPECT_FALSE(ec) << r.out << r.err;
    return ec || !v.is_object() ? boost::json::object{} : v.as_object();
  }

  std::filesystem::path dir_;
};

TEST_F(CliPlan, TwoNodesVllmReport) {
  const Out r = cli({"--model", "deepseek-r1-distill-llama-70b", "--cluster",
                     kClusters + "2x8-h100.json", "--args", "--max-model-len 32768"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(r.out_has("Engine:     vLLM 0.21.0, tensor parallel 8, pipeline parallel 2"));
  EXPECT_TRUE(r.out_has("h100-a  role head, address 10.1.0.11"));
  EXPECT_TRUE(r.out_has("h100-b  role worker, address 10.1.0.12"));
  EXPECT_TRUE(
      r.out_has("ray-head: ray start --head --node-ip-address=10.1.0.11 --port=41000 --block"));
  EXPECT_TRUE(r.out_has("ray-worker: ray start --address=10.1.0.11:41000"));
  EXPECT_TRUE(r.out_has("engine: vllm serve deepseek-ai/DeepSeek-R1-Distill-Llama-70B"));
  EXPECT_TRUE(r.out_has("--distributed-executor-backend ray"));
  EXPECT_TRUE(r.out_has("env:   VLLM_HOST_IP=10.1.0.12"));
  EXPECT_TRUE(r.out_has("FITS"));
  EXPECT_TRUE(r.out_has("Result:     OK"));
}

TEST_F(CliPlan, JsonFields) {
  const Out r = cli({"--model", "deepseek-r1-distill-qwen-7b", "--cluster",
                     kClusters + "t4-single.json", "--json"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  const auto o = json_of(r);
  EXPECT_EQ(o.at("engine").as_string(), "sglang");
  EXPECT_EQ(o.at("engine_version").as_string(), "0.5.6.post2");
  EXPECT_EQ(o.at("tp").as_int64(), 4);
  EXPECT_EQ(o.at("pp").as_int64(), 1);
  EXPECT_TRUE(o.at("ok").as_bool());
  const auto& node = o.at("nodes").as_array().at(0).as_object();
  EXPECT_EQ(node.at("name").as_string(), "t4-01");
  EXPECT_EQ(node.at("role").as_string(), "single");
  EXPECT_TRUE(node.at("env").is_object());
  const auto& argv = node.at("argv").as_array();
  bool half = false;
  for (std::size_t i = 0; i + 1 < argv.size(); ++i) {
    half |= argv[i].as_string() == "--dtype" && argv[i + 1].as_string() == "half";
  }
  EXPECT_TRUE(half) << r.out;
  const auto& fixes = o.at("applied_fixes").as_array();
  ASSERT_FALSE(fixes.empty());
  EXPECT_EQ(fixes[0].as_object().at("code").as_string(), "compat.bf16_to_half");
  EXPECT_TRUE(o.at("errors").as_array().empty());
  EXPECT_TRUE(o.at("estimate").as_object().contains("kv_cache_tokens"));
}

TEST_F(CliPlan, PlanWithErrorsExitsOne) {
  const Out r = cli({"--model", "deepseek-r1-distill-qwen-7b", "--cluster",
                     kClusters + "t4-single.json", "--engine", "vllm", "--engine-version", "0.7.3",
                     "--args", "--dtype bfloat16", "--json"});
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  const auto o = json_of(r);
  EXPECT_FALSE(o.at("ok").as_bool());
  const auto& e = o.at("errors").as_array().at(0).as_object();
  EXPECT_EQ(e.at("code").as_string(), "compat.bf16_unsupported");
  EXPECT_EQ(e.at("node").as_string(), "t4-01");

  const Out text = cli({"--model", "deepseek-r1-distill-qwen-1.5b", "--cluster",
                        kClusters + "cpu-only.json", "--engine", "sglang"});
  EXPECT_EQ(text.code, 1);
  EXPECT_TRUE(text.out_has("[plan.engine_needs_gpu]"));
  EXPECT_TRUE(text.out_has("NOT DEPLOYABLE"));
}

TEST_F(CliPlan, V100ChunkedPrefillPerVersion) {
  const Out old =
      cli({"--model", "deepseek-r1-distill-qwen-7b", "--cluster", kClusters + "v100-node.json",
           "--engine", "vllm", "--engine-version", "0.7.3"});
  EXPECT_TRUE(old.out_has("--enable-chunked-prefill False")) << old.out;
  const Out cur = cli({"--model", "deepseek-r1-distill-qwen-7b", "--cluster",
                       kClusters + "v100-node.json", "--engine", "vllm"});
  EXPECT_TRUE(cur.out_has("--no-enable-chunked-prefill")) << cur.out;
}

TEST_F(CliPlan, NodesSelectionAndDegradedNodes) {
  const Out r =
      cli({"--model", "deepseek-r1-distill-llama-8b", "--cluster", kClusters + "h100-degraded.json",
           "--nodes", "h100-lost", "--args", "--tp-size 8"});
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_TRUE(r.out_has("[plan.gpu_lost] (node h100-lost, GPU 3)")) << r.out;
  EXPECT_TRUE(r.out_has("[plan.not_enough_gpus]"));

  const Out busy =
      cli({"--model", "deepseek-r1-distill-llama-8b", "--cluster", kClusters + "h100-degraded.json",
           "--nodes", "h100-busy", "--engine", "vllm", "--args", "-tp 8"});
  EXPECT_EQ(busy.code, 1);
  EXPECT_TRUE(busy.out_has("[plan.gpu_memory_held] (node h100-busy, GPU 2)")) << busy.out;
  EXPECT_TRUE(busy.out_has("pid 4242 python3"));

  const Out unreachable = cli({"--model", "deepseek-r1-distill-llama-70b", "--cluster",
                               kClusters + "2x8-h100.json", "--unreachable", "h100-b"});
  EXPECT_EQ(unreachable.code, 1);
  EXPECT_TRUE(unreachable.out_has("[plan.node_unreachable] (node h100-b)"));
}

TEST_F(CliPlan, BadInputExitsTwo) {
  const Out model =
      cli({"--model", "deepseek-r1-distill-qwen-7", "--cluster", kClusters + "t4-single.json"});
  EXPECT_EQ(model.code, 2);
  EXPECT_TRUE(model.err_has("did you mean")) << model.err;

  const Out node = cli({"--model", "deepseek-r1-distill-qwen-7b", "--cluster",
                        kClusters + "2x8-h100.json", "--nodes", "h100-c"});
  EXPECT_EQ(node.code, 2);
  EXPECT_TRUE(node.err_has("did you mean 'h100-a'")) << node.err;

  const auto bad = dir_ / "bad.json";
  std::ofstream(bad) << "{\"nodes\": [{\"name\": 1}]}";
  const Out file = cli({"--model", "deepseek-r1-distill-qwen-7b", "--cluster", bad.string()});
  EXPECT_EQ(file.code, 2) << file.err;

  const Out args = cli({"--model", "deepseek-r1-distill-qwen-7b", "--cluster",
                        kClusters + "t4-single.json", "--args", "--context-length abc"});
  EXPECT_EQ(args.code, 2);
  EXPECT_TRUE(args.err_has("--context-length")) << args.err;

  const Out quote = cli({"--model", "deepseek-r1-distill-qwen-7b", "--cluster",
                         kClusters + "t4-single.json", "--args", "--chat-template 'abc"});
  EXPECT_EQ(quote.code, 2);

  const Out none = cli({"--cluster", kClusters + "t4-single.json"});
  EXPECT_EQ(none.code, 2);
}

TEST_F(CliPlan, ModelPathOnCpuNode) {
  const auto model_dir = dir_ / "tiny-llama";
  fixtures::make_hf_model_dir(model_dir, fixtures::tiny_llama_arch());
  const Out r = cli({"--model-path", model_dir.string(), "--cluster", kClusters + "cpu-only.json",
                     "--env", "VLLM_CPU_KVCACHE_SPACE=8", "--json"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  const auto o = json_of(r);
  EXPECT_EQ(o.at("engine").as_string(), "vllm-cpu");
  const auto& node = o.at("nodes").as_array().at(0).as_object();
  EXPECT_EQ(node.at("argv").as_array().at(2).as_string(), model_dir.string());
  EXPECT_EQ(node.at("env").as_object().at("VLLM_CPU_KVCACHE_SPACE").as_string(), "8");
}

}  // namespace
}  // namespace openstation::cli
