#include "model/node.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>

namespace openstation::model {
namespace {

const std::filesystem::path kExamples =
    std::filesystem::path(OPENSTATION_SOURCE_DIR) / "examples" / "nodes";

TEST(NodeFile, ExamplesParseWithRealisticNvmlNumbers) {
  struct Want {
    std::size_t gpus;
    std::int64_t mib;
    std::string cc;
    std::string name_part;
  };
  const std::map<std::string, Want> want = {
      {"8x-h100-80g", {8, 81559, "9.0", "H100 80GB HBM3"}},
      {"8x-a100-80g", {8, 81920, "8.0", "A100-SXM4-80GB"}},
      {"2x-a100-40g", {2, 40960, "8.0", "A100-SXM4-40GB"}},
      {"4x-t4", {4, 15360, "7.5", "Tesla T4"}},
      {"8x-v100-32g", {8, 32768, "7.0", "V100-SXM2-32GB"}},
      {"1x-rtx4090", {1, 24564, "8.9", "RTX 4090"}},
  };
  for (const auto& [file, w] : want) {
    auto n = load_node_file(kExamples / (file + ".json"));
    ASSERT_TRUE(n) << file << ": " << n.error().message;
    EXPECT_EQ(n->type, NodeType::gpu);
    ASSERT_EQ(n->gpus.size(), w.gpus) << file;
    for (const auto& g : n->gpus) {
      EXPECT_EQ(g.memory_total_mib, w.mib) << file;
      EXPECT_EQ(g.compute_capability(), w.cc) << file;
      EXPECT_NE(g.name.find(w.name_part), std::string::npos) << file;
      EXPECT_EQ(g.total_bytes(), static_cast<std::uint64_t>(w.mib) << 20);
    }
    EXPECT_GT(n->disk_free_gib, 0);
    EXPECT_GT(n->memory_mib, 0);
  }
  auto cpu = load_node_file(kExamples / "cpu-only.json");
  ASSERT_TRUE(cpu) << cpu.error().message;
  EXPECT_EQ(cpu->type, NodeType::cpu);
  EXPECT_TRUE(cpu->gpus.empty());
  EXPECT_GT(cpu->cpu_cores, 0);
}

const char* kNode = R"({"name": "n1", "type": "gpu", "cpu_cores": 8, "memory_mib": 65536,
  "disk_free_gib": 100.5, "address": "10.1.1.1",
  "gpus": [{"index": 0, "name": "NVIDIA A100-SXM4-40GB", "uuid": "GPU-1", "memory_total_mib": 40960,
            "memory_used_mib": 1024, "compute_capability": "8.0", "driver_version": "550.54.15",
            "utilization_percent": 12, "processes": [{"pid": 42, "name": "python", "used_memory_mib": 1000}]}]})";

TEST(NodeFile, ParsesAndRoundTrips) {
  auto n = parse_node_json(kNode, "n1.json");
  ASSERT_TRUE(n) << n.error().message;
  EXPECT_EQ(n->name, "n1");
  EXPECT_EQ(n->address, "10.1.1.1");
  EXPECT_DOUBLE_EQ(n->disk_free_gib, 100.5);
  ASSERT_EQ(n->gpus.size(), 1u);
  EXPECT_EQ(n->gpus[0].memory_used_mib, 1024);
  EXPECT_EQ(n->gpus[0].cc_major, 8);
  EXPECT_EQ(n->gpus[0].utilization_percent, 12);
  ASSERT_EQ(n->gpus[0].processes.size(), 1u);
  EXPECT_EQ(n->gpus[0].processes[0].pid, 42);

  auto again = parse_node_json(node_to_json(*n), "round-trip");
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(node_to_json(*again), node_to_json(*n));
  EXPECT_EQ(again->gpus[0].processes[0].used_memory_mib, 1000);
}

TEST(NodeFile, ClusterFiles) {
  const std::string two =
      std::string(R"({"nodes": [)") + kNode + "," +
      R"({"name": "n2", "type": "cpu", "cpu_cores": 4, "memory_mib": 1024, "disk_free_gib": 1}]})";
  auto c = parse_cluster_json(two, "c.json");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->nodes.size(), 2u);
  auto single = parse_cluster_json(kNode, "n.json");
  ASSERT_TRUE(single);
  EXPECT_EQ(single->nodes.size(), 1u);
  const std::string dup = std::string(R"({"nodes": [)") + kNode + "," + kNode + "]}";
  auto d = parse_cluster_json(dup, "d.json");
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().message.find("nodes[1].name"), std::string::npos) << d.error().message;
}

void expect_error(const std::string& text, const std::string& needle) {
  auto n = parse_node_json(text, "bad.json");
  ASSERT_FALSE(n) << text;
  EXPECT_NE(n.error().message.find(needle), std::string::npos) << n.error().message;
  EXPECT_NE(n.error().message.find("bad.json"), std::string::npos) << n.error().message;
}

TEST(NodeFile, BadInputNamesTheField) {
  const std::string base =
      R"({"name": "n", "type": "gpu", "cpu_cores": 1, "memory_mib": 1, "disk_free_gib": 1, )";
  const std::string gpu =
      R"({"index": 0, "name": "g", "memory_total_mib": 100, "compute_capability": "8.0")";
  expect_error(base + R"("gpus": []})", "gpus must list at least one GPU");
  expect_error(base + R"("gpus": [)" + gpu + R"(, "memory_used_mib": 200}]})",
               "gpus[0].memory_used_mib");
  expect_error(
      base +
          R"("gpus": [{"index": 0, "name": "g", "memory_total_mib": 100, "compute_capability": "eight"}]})",
      "gpus[0].compute_capability");
  expect_error(base + R"("gpus": [)" + gpu + "}," + gpu + "}]}", "duplicates GPU index 0");
  expect_error(base + R"("gpus": [{"index": 0, "name": "g", "compute_capability": "8.0"}]})",
               "gpus[0].memory_total_mib is required");
  expect_error(base + R"("gpus": [)" + gpu + R"(, "memory_totl_mib": 1}]})", "memory_totl_mib");
  expect_error(
      R"({"name": "n", "type": "tpu", "cpu_cores": 1, "memory_mib": 1, "disk_free_gib": 1})",
      "type must be");
  expect_error(
      R"({"name": "n", "type": "cpu", "cpu_cores": 1, "memory_mib": -5, "disk_free_gib": 1})",
      "memory_mib must not be negative");
  expect_error(R"({"name": "n", "type": "cpu", "cpu_cores": 1, "memory_mib": 5})",
               "disk_free_gib is required");
  auto truncated = parse_node_json(R"({"name": "n", "type")", "t.json");
  ASSERT_FALSE(truncated);
  EXPECT_EQ(truncated.error().category, core::Errc::parse_error);
  auto missing = load_node_file("/nonexistent/node.json");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().category, core::Errc::not_found);
}

}  // namespace
}  // namespace openstation::model

namespace openstation::model {
namespace {

TEST(NodeFile, LostGpuWithPlaceholderSizesIsKept) {
  // What `openstation agent inventory --json` writes for a GPU that fell off the bus.
  const char* text = R"({"name": "n2", "type": "gpu", "cpu_cores": 8, "memory_mib": 65536,
    "disk_free_gib": 10, "gpus": [
      {"index": 0, "name": "NVIDIA A100-SXM4-40GB", "memory_total_mib": 40960,
       "compute_capability": "8.0"},
      {"index": 1, "name": "unknown", "memory_total_mib": 0, "compute_capability": "0.0",
       "health": "lost"}]})";
  auto n = parse_node_json(text, "n2.json");
  ASSERT_TRUE(n) << n.error().message;
  ASSERT_EQ(n->gpus.size(), 2u);
  EXPECT_EQ(n->gpus[1].health, "lost");
  EXPECT_EQ(n->gpus[1].memory_total_mib, 0);

  // A healthy GPU still needs real values.
  auto bad = parse_node_json(R"({"name": "n3", "type": "gpu", "cpu_cores": 8, "memory_mib": 1,
    "disk_free_gib": 1, "gpus": [{"index": 0, "name": "x", "memory_total_mib": 0,
    "compute_capability": "8.0"}]})",
                             "n3.json");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("must be positive"), std::string::npos);
}

}  // namespace
}  // namespace openstation::model
