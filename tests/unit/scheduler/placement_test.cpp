// Placement of one instance onto the live cluster: fewest GPUs, least-loaded node, GPU sharing
// with an adjusted utilization, listed nodes, multi-node fallback, and reasons per node.

#include "scheduler/placement.hpp"

#include "core/strings.hpp"
#include "engine/args.hpp"
#include "plan_test_support.hpp"

#include <gtest/gtest.h>

namespace openstation::scheduler {
namespace {

using test::catalog_model;
using test::has_seq;

model::GpuSpec gpu(int index, std::int64_t total_mib, std::int64_t used_mib = 0,
                   std::string name = "NVIDIA A100-SXM4-80GB") {
  model::GpuSpec g;
  g.index = index;
  g.name = std::move(name);
  g.memory_total_mib = total_mib;
  g.memory_used_mib = used_mib;
  g.cc_major = 8;
  g.cc_minor = 0;
  return g;
}

ClusterNode gpu_node(std::string id, std::string name, int gpus, std::int64_t total_mib = 81920) {
  ClusterNode n;
  n.id = std::move(id);
  n.spec.name = std::move(name);
  n.spec.type = model::NodeType::gpu;
  n.spec.cpu_cores = 32;
  n.spec.memory_mib = 512 * 1024;
  n.spec.disk_free_gib = 2000;
  n.spec.address = "10.0.0." + std::to_string(n.id.size());
  for (int i = 0; i < gpus; ++i) n.spec.gpus.push_back(gpu(i, total_mib));
  return n;
}

PlacementRequest request(const std::string& model_id, std::string args = {}) {
  PlacementRequest r;
  if (!args.empty()) r.engine = core::EngineKind::vllm;
  r.model = catalog_model(model_id);
  r.served_name = model_id;
  r.extra_args = std::move(args);
  return r;
}

PlacementResult place_ok(const PlacementRequest& req, const std::vector<ClusterNode>& cluster) {
  auto r = place(req, cluster);
  EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().code + ": " + r.error().message);
  return r ? *r : PlacementResult{};
}

std::string reasons_text(const PlacementResult& r) {
  return format_reasons(r.reasons);
}

constexpr const char* k15B = "deepseek-r1-distill-qwen-1.5b";
constexpr const char* k32B = "deepseek-r1-distill-qwen-32b";
constexpr const char* k70B = "deepseek-r1-distill-llama-70b";

TEST(Placement, SmallModelTakesOneGpuOfTheLeastLoadedNode) {
  auto a = gpu_node("n1", "a", 2);
  auto b = gpu_node("n2", "b", 2);
  a.reserved[0].push_back({"inst_other", 1.0, true});
  a.spec.gpus[0].memory_used_mib = 75000;
  auto r = place_ok(request(k15B), {a, b});
  ASSERT_TRUE(r.placement) << reasons_text(r);
  EXPECT_EQ(r.placement->node_ids, std::vector<std::string>{"n2"});
  ASSERT_EQ(r.placement->plan.nodes.size(), 1u);
  EXPECT_EQ(r.placement->plan.nodes[0].gpus, std::vector<int>{0});
  EXPECT_FALSE(r.placement->shared);
  EXPECT_DOUBLE_EQ(r.placement->gpu_fraction, 1.0);
  EXPECT_EQ(r.placement->plan.nodes[0].env.at("CUDA_VISIBLE_DEVICES"), "0");
}

TEST(Placement, FewestGpusWinsOverAnEmptierNode) {
  // The 32B model (≈ 66 GB of weights) needs two 40 GiB GPUs but fits one 80 GiB GPU.
  auto small = gpu_node("n1", "small", 4, 40960);
  auto big = gpu_node("n2", "big", 2, 81920);
  big.reserved[1].push_back({"inst_x", 1.0, true});
  auto r = place_ok(request(k32B, "--max-model-len 8192"), {small, big});
  ASSERT_TRUE(r.placement) << reasons_text(r);
  EXPECT_EQ(r.placement->node_ids, std::vector<std::string>{"n2"});
  EXPECT_EQ(r.placement->plan.nodes[0].gpus, std::vector<int>{0});
}

TEST(Placement, UsesTheFreeGpuAndSkipsOnesHeldByOthers) {
  auto a = gpu_node("n1", "a", 2);
  a.reserved[0].push_back({"inst_1", 1.0, true});
  auto r = place_ok(request(k15B), {a});
  ASSERT_TRUE(r.placement) << reasons_text(r);
  EXPECT_EQ(r.placement->plan.nodes[0].gpus, std::vector<int>{1});
}

TEST(Placement, ExternalProcessMemoryCountsAndIsNamed) {
  auto a = gpu_node("n1", "a", 1, 24576);
  a.spec.gpus[0].memory_used_mib = 20000;
  a.spec.gpus[0].processes.push_back({1234, "python3", 20000});
  auto r = place_ok(request(k15B), {a});
  ASSERT_FALSE(r.placement);
  ASSERT_EQ(r.reasons.size(), 1u);
  EXPECT_EQ(r.reasons[0].node, "a");
  EXPECT_NE(r.reasons[0].message.find("GPU 0 has"), std::string::npos) << r.reasons[0].message;
  EXPECT_NE(r.reasons[0].message.find("pid 1234 (python3)"), std::string::npos)
      << r.reasons[0].message;
  EXPECT_NE(r.reasons[0].message.find("needs"), std::string::npos) << r.reasons[0].message;
}

TEST(Placement, OwnEnginePidsAreNotOtherProcesses) {
  auto a = gpu_node("n1", "a", 1, 81920);
  a.spec.gpus[0].memory_used_mib = 40000;
  a.spec.gpus[0].processes.push_back({777, "vllm", 40000});
  a.own_pids.insert(777);
  a.reserved[0].push_back({"inst_1", 0.5, true});
  auto r = place_ok(request(k15B, "--max-model-len 8192"), {a});
  ASSERT_TRUE(r.placement) << reasons_text(r);
  EXPECT_TRUE(r.placement->shared);
  EXPECT_EQ(r.placement->plan.engine, core::EngineKind::vllm);
  // 0.5 of 80 GiB is left, less the CUDA context: 0.49.
  EXPECT_TRUE(has_seq(r.placement->plan.nodes[0].argv, {"--gpu-memory-utilization", "0.49"}))
      << engine::join_command_line(r.placement->plan.nodes[0].argv);
  EXPECT_NEAR(r.placement->gpu_fraction, 0.49, 1e-9);
}

TEST(Placement, SharingTable) {
  struct Case {
    const char* name;
    std::vector<double> existing;  // shares already on GPU 0 (1.0 = exclusive)
    std::optional<core::EngineKind> engine;
    const char* args;
    bool placed;
    const char* util;  // expected --gpu-memory-utilization, or "" for none
  };
  const std::vector<Case> cases = {
      {"empty GPU: exclusive, default utilization", {}, std::nullopt, "", true, ""},
      {"half taken: vLLM shares the rest",
       {0.5},
       core::EngineKind::vllm,
       "--max-model-len 8192",
       true,
       "0.49"},
      {"half taken, auto engine: vLLM shares",
       {0.5},
       std::nullopt,
       "--max-model-len 8192",
       true,
       "0.49"},
      {"two quarters taken",
       {0.25, 0.25},
       core::EngineKind::vllm,
       "--max-model-len 8192",
       true,
       "0.49"},
      {"exclusive holder: no sharing", {1.0}, core::EngineKind::vllm, "", false, ""},
      {"SGLang never shares", {0.5}, core::EngineKind::sglang, "", false, ""},
      {"too little left", {0.97}, core::EngineKind::vllm, "", false, ""},
      {"user utilization honoured",
       {0.5},
       core::EngineKind::vllm,
       "--max-model-len 8192 --gpu-memory-utilization 0.3",
       true,
       "0.3"},
      {"user utilization too large",
       {0.5},
       core::EngineKind::vllm,
       "--gpu-memory-utilization 0.9",
       false,
       ""},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto a = gpu_node("n1", "a", 1, 81920);
    int i = 0;
    for (double s : c.existing) a.reserved[0].push_back({"inst_" + std::to_string(i++), s, true});
    auto req = request(k15B, c.args);
    req.engine = c.engine;
    if (c.engine == core::EngineKind::sglang) req.extra_args.clear();
    auto r = place_ok(req, {a});
    ASSERT_EQ(r.placement.has_value(), c.placed) << reasons_text(r);
    if (!r.placement) {
      ASSERT_EQ(r.reasons.size(), 1u);
      EXPECT_EQ(r.reasons[0].node, "a");
      EXPECT_NE(r.reasons[0].message.find("inst_"), std::string::npos) << r.reasons[0].message;
      continue;
    }
    const auto& argv = r.placement->plan.nodes[0].argv;
    if (std::string(c.util).empty()) {
      EXPECT_FALSE(test::has_token(argv, "--gpu-memory-utilization"))
          << engine::join_command_line(argv);
      EXPECT_FALSE(r.placement->shared);
    } else {
      EXPECT_TRUE(has_seq(argv, {"--gpu-memory-utilization", c.util}))
          << engine::join_command_line(argv);
      EXPECT_EQ(r.placement->shared, !c.existing.empty());
    }
  }
}

TEST(Placement, NotReadyNodesGetTheirReasonAndOthersAreUsed) {
  auto a = gpu_node("n1", "a", 1);
  a.ready = false;
  a.not_ready = "no heartbeat for 45 s";
  auto b = gpu_node("n2", "b", 1);
  auto r = place_ok(request(k15B), {a, b});
  ASSERT_TRUE(r.placement);
  EXPECT_EQ(r.placement->node_ids, std::vector<std::string>{"n2"});

  b.ready = false;
  b.not_ready = "draining";
  r = place_ok(request(k15B), {a, b});
  ASSERT_FALSE(r.placement);
  ASSERT_EQ(r.reasons.size(), 2u);
  EXPECT_EQ(r.reasons[0], (PendingReason{"a", "not ready (no heartbeat for 45 s)"}));
  EXPECT_EQ(r.reasons[1], (PendingReason{"b", "not ready (draining)"}));
}

TEST(Placement, ReasonPerNodeWhenNothingFits) {
  auto a = gpu_node("n1", "a", 1, 16384);  // too small for the 32B model
  auto b = gpu_node("n2", "b", 1, 81920);
  b.reserved[0].push_back({"inst_big", 1.0, true});
  auto c = gpu_node("n3", "c", 1, 81920);
  c.spec.gpus[0].health = "lost";
  auto r = place_ok(request(k32B, "--max-model-len 4096"), {a, b, c});
  ASSERT_FALSE(r.placement);
  ASSERT_GE(r.reasons.size(), 3u) << reasons_text(r);
  EXPECT_EQ(r.reasons[0].node, "a");
  EXPECT_NE(r.reasons[0].message.find("GPU 0 has 16.00 GiB free, needs"), std::string::npos)
      << r.reasons[0].message;
  EXPECT_EQ(r.reasons[1].node, "b");
  EXPECT_NE(r.reasons[1].message.find("GPU 0 is taken (instance inst_big)"), std::string::npos)
      << r.reasons[1].message;
  EXPECT_EQ(r.reasons[2].node, "c");
  EXPECT_NE(r.reasons[2].message.find("health 'lost'"), std::string::npos) << r.reasons[2].message;
}

TEST(Placement, EmptyClusterSaysSo) {
  auto r = place_ok(request(k15B), {});
  ASSERT_FALSE(r.placement);
  ASSERT_EQ(r.reasons.size(), 1u);
  EXPECT_EQ(r.reasons[0].node, "");
  EXPECT_NE(r.reasons[0].message.find("no nodes"), std::string::npos);
}

TEST(Placement, ListedNodesAreUsedInOrderAsADistributedInstance) {
  auto a = gpu_node("n1", "a", 2);
  auto b = gpu_node("n2", "b", 2);
  auto req = request(k15B);
  req.nodes = {"n2", "n1"};
  auto r = place_ok(req, {a, b});
  ASSERT_TRUE(r.placement) << reasons_text(r);
  EXPECT_EQ(r.placement->node_ids, (std::vector<std::string>{"n2", "n1"}));
  EXPECT_EQ(r.placement->plan.engine, core::EngineKind::vllm);
  ASSERT_EQ(r.placement->plan.nodes.size(), 2u);
  EXPECT_EQ(r.placement->plan.nodes[0].role, "head");
  EXPECT_EQ(r.placement->plan.nodes[0].name, "b");
}

TEST(Placement, ListedNodeNotReadyOrUnknown) {
  auto a = gpu_node("n1", "a", 1);
  a.ready = false;
  a.not_ready = "no heartbeat for 90 s";
  auto req = request(k15B);
  req.nodes = {"n1"};
  auto r = place_ok(req, {a, gpu_node("n2", "b", 1)});
  ASSERT_FALSE(r.placement);
  ASSERT_EQ(r.reasons.size(), 1u);
  EXPECT_EQ(r.reasons[0], (PendingReason{"a", "not ready (no heartbeat for 90 s)"}));

  req.nodes = {"nope"};
  auto bad = place(req, {a});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, "placement.unknown_node");
}

TEST(Placement, ModelTooBigForAnyNodeSpansNodes) {
  // 70B BF16 ≈ 141 GB: not on one node of 2 × 40 GiB, but on two nodes with 4 GPUs.
  auto a = gpu_node("n1", "a", 2, 40960);
  auto b = gpu_node("n2", "b", 2, 40960);
  auto c = gpu_node("n3", "c", 2, 40960);
  auto r = place_ok(request(k70B, "--max-model-len 4096"), {a, b, c});
  ASSERT_TRUE(r.placement) << reasons_text(r);
  EXPECT_GE(r.placement->node_ids.size(), 2u);
  EXPECT_EQ(r.placement->plan.engine, core::EngineKind::vllm);
}

TEST(Placement, BadExtraArgsIsAnError) {
  auto r = place(request(k15B, "--max-modle-len 4096"), {gpu_node("n1", "a", 1)});
  ASSERT_FALSE(r);
  EXPECT_TRUE(core::starts_with(r.error().code, "args.")) << r.error().code;
}

TEST(Placement, CpuNodeRunsOneVllmCpuInstance) {
  ClusterNode cpu;
  cpu.id = "n1";
  cpu.spec.name = "cpu";
  cpu.spec.type = model::NodeType::cpu;
  cpu.spec.cpu_cores = 64;
  cpu.spec.memory_mib = 256 * 1024;
  cpu.spec.disk_free_gib = 500;
  auto req = request(k15B, "--max-model-len 8192");
  req.engine.reset();  // the platform picks vLLM CPU for a CPU node
  auto r = place_ok(req, {cpu});
  ASSERT_TRUE(r.placement) << reasons_text(r);
  EXPECT_EQ(r.placement->plan.engine, core::EngineKind::vllm_cpu);
  cpu.reserved[-1].push_back({"inst_cpu", 1.0, true});
  r = place_ok(request(k15B), {cpu});
  ASSERT_FALSE(r.placement);
  EXPECT_NE(r.reasons.at(0).message.find("inst_cpu"), std::string::npos);
}

TEST(Placement, CapacityViewIgnoresLoad) {
  auto a = gpu_node("n1", "a", 1);
  a.ready = false;
  a.reserved[0].push_back({"inst_1", 1.0, true});
  a.spec.gpus[0].memory_used_mib = 80000;
  auto r = place_ok(request(k15B), capacity_view({a}));
  EXPECT_TRUE(r.placement) << reasons_text(r);
}

TEST(Placement, GpuFractionOf) {
  using core::EngineKind;
  EXPECT_DOUBLE_EQ(
      gpu_fraction_of(EngineKind::vllm, {"serve", "m", "--gpu-memory-utilization", "0.4"}), 0.4);
  EXPECT_DOUBLE_EQ(gpu_fraction_of(EngineKind::vllm, {"serve", "--gpu_memory_utilization=0.3"}),
                   0.3);
  EXPECT_DOUBLE_EQ(gpu_fraction_of(EngineKind::vllm, {"serve", "m"}), 1.0);
  EXPECT_DOUBLE_EQ(gpu_fraction_of(EngineKind::vllm, {"--gpu-memory-utilization", "bad"}), 1.0);
  EXPECT_DOUBLE_EQ(gpu_fraction_of(EngineKind::sglang, {"--mem-fraction-static", "0.4"}), 1.0);
}

TEST(Placement, ReasonsRoundTripThroughText) {
  const std::vector<PendingReason> rs = {{"a", "GPU 1 has 9.80 GiB free, needs 14.20 GiB"},
                                         {"b", "not ready (no heartbeat: 45 s)"},
                                         {"", "across nodes: not enough GPUs"}};
  const auto text = format_reasons(rs);
  EXPECT_EQ(text.substr(0, text.find('\n')), "node a: GPU 1 has 9.80 GiB free, needs 14.20 GiB");
  EXPECT_EQ(parse_reasons(text), rs);
  EXPECT_TRUE(parse_reasons("").empty());
}

}  // namespace
}  // namespace openstation::scheduler
