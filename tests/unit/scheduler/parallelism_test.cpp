#include "scheduler/parallelism.hpp"
#include "plan_test_support.hpp"

#include <gtest/gtest.h>

namespace openstation::scheduler {
namespace {

using namespace test;

TEST(Parallelism, HeadsDecideTheTensorParallelSize) {
  const auto q15 = catalog_model("deepseek-r1-distill-qwen-1.5b").arch;  // 12 heads, 2 KV heads
  EXPECT_EQ(largest_valid_tp(q15, 8), 4);
  EXPECT_EQ(valid_tps(q15, 8), (std::vector<int>{1, 2, 4}));
  EXPECT_EQ(tp_invalid_reason(q15, 8),
            "Total number of attention heads (12) must be divisible by tensor parallel size (8).");
  EXPECT_TRUE(tp_valid_for_model(q15, 4));

  const auto q7 = catalog_model("deepseek-r1-distill-qwen-7b").arch;  // 28 heads, 4 KV heads
  EXPECT_EQ(largest_valid_tp(q7, 8), 4);
  EXPECT_FALSE(tp_valid_for_model(q7, 7));  // 28 % 7 == 0 but 4 KV heads vs 7
  EXPECT_NE(tp_invalid_reason(q7, 7).find("KV heads"), std::string::npos);

  const auto llama70 = catalog_model("deepseek-r1-distill-llama-70b").arch;  // 64 heads
  EXPECT_EQ(largest_valid_tp(llama70, 8), 8);
  EXPECT_EQ(largest_valid_tp(llama70, 16), 16);
  EXPECT_EQ(largest_valid_tp(llama70, 0), 0);
}

TEST(Parallelism, LostAndMissingGpusAreNotUsable) {
  const auto nodes = example_cluster("h100-degraded.json");
  ASSERT_EQ(nodes.size(), 3u);
  const auto& lost = nodes[0];
  EXPECT_EQ(healthy_gpus(lost).size(), 7u);
  EXPECT_TRUE(missing_gpu_indexes(lost).empty());
  EXPECT_EQ(pick_gpus(lost, 8), (std::vector<int>{0, 1, 2, 4, 5, 6, 7}));
  const auto& gap = nodes[2];
  EXPECT_EQ(missing_gpu_indexes(gap), (std::vector<int>{5}));
}

TEST(Parallelism, PickGpusPrefersFreeOnes) {
  const auto busy = example_cluster("h100-degraded.json")[1];  // GPU 2 held by pid 4242
  EXPECT_EQ(pick_gpus(busy, 4), (std::vector<int>{0, 1, 3, 4}));
  EXPECT_EQ(pick_gpus(busy, 8), (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7}));
}

}  // namespace
}  // namespace openstation::scheduler
