#include "plan_test_support.hpp"
#include "scheduler/plan_json.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

namespace openstation::scheduler {
namespace {

using namespace test;
using core::EngineKind;

model::NodeSpec renamed(model::NodeSpec n, const std::string& name, const std::string& addr = {}) {
  n.name = name;
  n.address = addr;
  return n;
}

TEST(EngineChoice, DefaultsFollowTheFaq) {
  EXPECT_EQ(
      plan_of(request("deepseek-r1-distill-qwen-1.5b", {example_node("cpu-only.json")})).engine,
      EngineKind::vllm_cpu);
  EXPECT_EQ(
      plan_of(request("deepseek-r1-distill-qwen-7b", {example_node("8x-h100-80g.json")})).engine,
      EngineKind::sglang);
  EXPECT_EQ(
      plan_of(request("deepseek-r1-distill-llama-70b", example_cluster("2x8-h100.json"))).engine,
      EngineKind::vllm);
}

TEST(EngineChoice, MixedNodesGgufAndSeveralCpuNodesAreRefused) {
  const Plan mixed =
      plan_of(request("deepseek-r1-distill-qwen-7b", example_cluster("mixed-cpu-gpu.json")));
  EXPECT_FALSE(mixed.ok);
  EXPECT_NE(find_issue(mixed.errors, "plan.mixed_node_types"), nullptr) << codes(mixed);

  auto gguf = request("deepseek-r1-distill-qwen-7b", {example_node("8x-h100-80g.json")});
  gguf.model.format = model::WeightFormat::gguf;
  const Plan g = plan_of(gguf);
  EXPECT_EQ(g.engine, EngineKind::llama_cpp) << codes(g);  // GGUF → llama.cpp
  gguf.engine = EngineKind::vllm;
  EXPECT_NE(find_issue(plan_of(gguf).errors, "plan.gguf_needs_llama_cpp"), nullptr);

  const auto cpu = example_node("cpu-only.json");
  const Plan two = plan_of(request("deepseek-r1-distill-qwen-1.5b", {cpu, renamed(cpu, "cpu-02")}));
  EXPECT_NE(find_issue(two.errors, "plan.cpu_multi_node"), nullptr) << codes(two);
}

TEST(EngineChoice, UserChoiceIsHonouredWhenItCanWork) {
  auto req = request("deepseek-r1-distill-qwen-1.5b", {example_node("8x-h100-80g.json")});
  req.engine = EngineKind::vllm_cpu;
  const Plan cpu_on_gpu = plan_of(req);
  EXPECT_EQ(cpu_on_gpu.engine, EngineKind::vllm_cpu);
  EXPECT_TRUE(cpu_on_gpu.ok) << codes(cpu_on_gpu);
  EXPECT_NE(find_issue(cpu_on_gpu.warnings, "plan.gpus_unused"), nullptr);
  EXPECT_TRUE(cpu_on_gpu.nodes[0].gpus.empty());

  auto sg = request("deepseek-r1-distill-qwen-1.5b", {example_node("cpu-only.json")});
  sg.engine = EngineKind::sglang;
  const Plan refused = plan_of(sg);
  EXPECT_FALSE(refused.ok);
  const auto* e = find_issue(refused.errors, "plan.engine_needs_gpu");
  ASSERT_NE(e, nullptr) << codes(refused);
  EXPECT_NE(e->message.find("cpu-01"), std::string::npos);
  EXPECT_NE(e->message.find("vllm-cpu"), std::string::npos);
}

TEST(Plans, VllmCpuSingleNode) {
  auto req = request("deepseek-r1-distill-qwen-1.5b", {example_node("cpu-only.json")});
  req.env["VLLM_CPU_KVCACHE_SPACE"] = "40";
  const Plan p = plan_of(req);
  ASSERT_TRUE(p.ok) << codes(p);
  ASSERT_EQ(p.nodes.size(), 1u);
  const auto& n = p.nodes[0];
  EXPECT_EQ(n.role, "single");
  EXPECT_EQ(n.argv[0], "vllm");
  EXPECT_EQ(n.argv[1], "serve");
  EXPECT_EQ(n.argv[2], "deepseek-r1-distill-qwen-1.5b");
  EXPECT_TRUE(has_seq(n.argv, {"--port", "40000"}));
  EXPECT_TRUE(has_seq(n.argv, {"--host", "0.0.0.0"}));
  EXPECT_TRUE(has_seq(n.argv, {"--served-model-name", "deepseek-r1-distill-qwen-1.5b"}));
  EXPECT_EQ(n.env.at("VLLM_CPU_KVCACHE_SPACE"), "40");
  EXPECT_EQ(n.env.count("CUDA_VISIBLE_DEVICES"), 0u);
  ASSERT_TRUE(p.estimate.has_value());
  EXPECT_EQ(p.estimate->engine, "vllm-cpu");
}

TEST(Plans, SglangSingleNodeArgv) {
  auto req = request("deepseek-r1-distill-llama-70b", {example_node("8x-h100-80g.json")},
                     "--context-length 32768 --mem-fraction-static 0.85");
  req.served_name = "llama70";
  req.model_path = "/models/llama70";
  const Plan p = plan_of(req);
  ASSERT_TRUE(p.ok) << codes(p);
  EXPECT_EQ(p.tp, 8);
  const auto& argv = p.nodes[0].argv;
  EXPECT_EQ(std::vector<std::string>(argv.begin(), argv.begin() + 5),
            (std::vector<std::string>{"python3", "-m", "sglang.launch_server", "--model-path",
                                      "/models/llama70"}));
  EXPECT_TRUE(has_seq(argv, {"--context-length", "32768"}));
  EXPECT_TRUE(has_seq(argv, {"--tp-size", "8"}));
  EXPECT_TRUE(has_seq(argv, {"--served-model-name", "llama70"}));
  EXPECT_TRUE(has_seq(argv, {"--port", "40000"}));
  EXPECT_FALSE(has_token(argv, "--nnodes"));
  EXPECT_EQ(p.nodes[0].env.at("CUDA_VISIBLE_DEVICES"), "0,1,2,3,4,5,6,7");
}

TEST(Plans, HeadsNotDivisibleByTheGpusChooseASmallerTp) {
  auto req = request("deepseek-r1-distill-qwen-1.5b", {example_node("8x-h100-80g.json")});
  req.engine = EngineKind::vllm;
  const Plan p = plan_of(req);
  ASSERT_TRUE(p.ok) << codes(p);
  EXPECT_EQ(p.tp, 4);
  EXPECT_EQ(p.pp, 1);
  const auto* fix = find_fix(p, "plan.tp_adjusted");
  ASSERT_NE(fix, nullptr);
  EXPECT_NE(fix->message.find("Total number of attention heads (12) must be divisible by tensor "
                              "parallel size (8)"),
            std::string::npos);
  EXPECT_TRUE(has_seq(p.nodes[0].argv, {"--tensor-parallel-size", "4"}));
  EXPECT_EQ(p.nodes[0].gpus, (std::vector<int>{0, 1, 2, 3}));
  const auto* unused = find_issue(p.warnings, "plan.gpus_unused");
  ASSERT_NE(unused, nullptr);
  EXPECT_NE(unused->message.find("4, 5, 6, 7"), std::string::npos);
}

TEST(Plans, UserTpIsHonouredOrRefused) {
  auto req = request("deepseek-r1-distill-qwen-1.5b", {example_node("8x-h100-80g.json")}, "-tp 2");
  req.engine = EngineKind::vllm;
  const Plan two = plan_of(req);
  EXPECT_TRUE(two.ok) << codes(two);
  EXPECT_EQ(two.tp, 2);
  EXPECT_EQ(find_fix(two, "plan.tp_adjusted"), nullptr);

  req.extra_args = "--tensor-parallel-size 8";
  const Plan eight = plan_of(req);
  const auto* e = find_issue(eight.errors, "plan.tp_invalid");
  ASSERT_NE(e, nullptr) << codes(eight);
  EXPECT_NE(e->message.find("1, 2, 4"), std::string::npos);

  req.extra_args = "-tp 4 -pp 4";
  const Plan big = plan_of(req);
  EXPECT_NE(find_issue(big.errors, "plan.not_enough_gpus"), nullptr) << codes(big);
}

TEST(Plans, TwoNodesVllmWithRay) {
  const Plan p = plan_of(request("deepseek-r1-distill-llama-70b", example_cluster("2x8-h100.json"),
                                 "--max-model-len 32768"));
  ASSERT_TRUE(p.ok) << codes(p);
  EXPECT_EQ(p.engine, EngineKind::vllm);
  EXPECT_EQ(p.tp, 8);
  EXPECT_EQ(p.pp, 2);
  ASSERT_EQ(p.nodes.size(), 2u);
  const auto& head = p.nodes[0];
  const auto& worker = p.nodes[1];
  EXPECT_EQ(head.role, "head");
  EXPECT_EQ(worker.role, "worker");
  ASSERT_EQ(head.commands.size(), 2u);
  EXPECT_EQ(head.commands[0].name, "ray-head");
  EXPECT_EQ(head.commands[0].argv,
            (std::vector<std::string>{"ray", "start", "--head", "--node-ip-address=10.1.0.11",
                                      "--port=41000", "--block"}));
  EXPECT_EQ(head.commands[1].name, "engine");
  EXPECT_EQ(head.argv, head.commands[1].argv);
  EXPECT_EQ(head.argv[0], "vllm");
  EXPECT_EQ(head.argv[2], "deepseek-r1-distill-llama-70b");  // the CLI passes the hub repo
  EXPECT_TRUE(has_seq(head.argv, {"--max-model-len", "32768"}));
  EXPECT_TRUE(
      has_seq(head.argv, {"--tensor-parallel-size", "8", "--pipeline-parallel-size", "2",
                          "--distributed-executor-backend", "ray", "--host", "0.0.0.0", "--port",
                          "40000", "--served-model-name", "deepseek-r1-distill-llama-70b"}));
  EXPECT_EQ(worker.argv, (std::vector<std::string>{"ray", "start", "--address=10.1.0.11:41000",
                                                   "--node-ip-address=10.1.0.12", "--block"}));
  EXPECT_EQ(head.env.at("VLLM_HOST_IP"), "10.1.0.11");
  EXPECT_EQ(worker.env.at("VLLM_HOST_IP"), "10.1.0.12");
  EXPECT_EQ(head.ports.at("ray"), 41000);
  EXPECT_EQ(head.ports.at("engine"), 40000);
  EXPECT_EQ(worker.ports.count("engine"), 0u);
  EXPECT_EQ(worker.gpus.size(), 8u);
  ASSERT_TRUE(p.estimate.has_value());
  EXPECT_EQ(p.estimate->tp, 8);
  EXPECT_EQ(p.estimate->pp, 2);
}

TEST(Plans, UserTpAcrossNodesAndPortsFromTheBase) {
  auto req = request("deepseek-r1-distill-llama-70b", example_cluster("2x8-h100.json"), "-tp 16");
  req.ports = {50000, 51000, 52000};
  const Plan p = plan_of(req);
  ASSERT_TRUE(p.ok) << codes(p);
  EXPECT_EQ(p.tp, 16);
  EXPECT_EQ(p.pp, 1);
  EXPECT_EQ(p.nodes[0].gpus.size(), 8u);
  EXPECT_EQ(p.nodes[1].gpus.size(), 8u);
  EXPECT_TRUE(has_seq(p.nodes[0].argv, {"--port", "50000"}));
  EXPECT_TRUE(has_token(p.nodes[1].argv, "--address=10.1.0.11:51000"));

  req.extra_args = "--distributed-executor-backend mp";
  EXPECT_NE(find_issue(plan_of(req).errors, "plan.executor_backend_conflict"), nullptr);
}

TEST(Plans, SglangTwoNodes) {
  auto req = request("deepseek-r1-distill-llama-70b", example_cluster("2x8-h100.json"));
  req.engine = EngineKind::sglang;
  const Plan p = plan_of(req);
  ASSERT_TRUE(p.ok) << codes(p);
  EXPECT_EQ(p.tp, 16);
  ASSERT_EQ(p.nodes.size(), 2u);
  for (int rank = 0; rank < 2; ++rank) {
    const auto& n = p.nodes[static_cast<std::size_t>(rank)];
    EXPECT_EQ(n.role, "rank-" + std::to_string(rank));
    EXPECT_TRUE(has_seq(n.argv, {"--tp-size", "16"}));
    EXPECT_TRUE(has_seq(n.argv, {"--nnodes", "2"}));
    EXPECT_TRUE(has_seq(n.argv, {"--node-rank", std::to_string(rank)}));
    EXPECT_TRUE(has_seq(n.argv, {"--dist-init-addr", "10.1.0.11:42000"}));
    EXPECT_EQ(n.env.count("VLLM_HOST_IP"), 0u);
    EXPECT_EQ(n.gpus.size(), 8u);
  }
  EXPECT_EQ(p.nodes[0].ports.at("dist_init"), 42000);
}

TEST(Plans, UnevenGpuCountsUseTheSmallest) {
  const auto nodes = example_cluster("a100-8plus4.json");
  const Plan v = plan_of(request("deepseek-r1-distill-llama-70b", nodes, "--max-model-len 16384"));
  ASSERT_TRUE(v.ok) << codes(v);
  EXPECT_EQ(v.tp, 4);
  EXPECT_EQ(v.pp, 2);
  EXPECT_EQ(v.nodes[0].gpus.size(), 4u);
  EXPECT_EQ(v.nodes[1].gpus.size(), 4u);
  const auto* unused = find_issue(v.warnings, "plan.gpus_unused");
  ASSERT_NE(unused, nullptr);
  EXPECT_EQ(unused->node, "a100-big");
  // No addresses in the file: the names stand for them.
  EXPECT_EQ(v.nodes[0].commands[0].argv[3], "--node-ip-address=a100-big");
  EXPECT_TRUE(has_token(v.nodes[1].argv, "--address=a100-big:41000"));
  EXPECT_EQ(v.nodes[1].env.at("VLLM_HOST_IP"), "a100-small");

  auto sg = request("deepseek-r1-distill-llama-70b", nodes, "--context-length 16384");
  sg.engine = EngineKind::sglang;
  const Plan s = plan_of(sg);
  ASSERT_TRUE(s.ok) << codes(s);
  EXPECT_EQ(s.tp, 8);
  EXPECT_TRUE(has_seq(s.nodes[1].argv, {"--tp-size", "8"}));
}

TEST(Preflight, LostGpuIsNamedAndLeftOut) {
  const auto lost = example_cluster("h100-degraded.json")[0];
  const Plan p = plan_of(request("deepseek-r1-distill-qwen-7b", {lost}));
  const auto* w = find_issue(p.warnings, "plan.gpu_lost");
  ASSERT_NE(w, nullptr) << codes(p);
  EXPECT_EQ(w->node, "h100-lost");
  EXPECT_EQ(w->gpu, 3);
  EXPECT_TRUE(p.ok) << codes(p);
  EXPECT_EQ(p.tp, 4);  // 7 usable GPUs; 28 heads → 4
  EXPECT_FALSE(has_token(std::vector<std::string>{p.nodes[0].env.at("CUDA_VISIBLE_DEVICES")}, "3"));
  for (int g : p.nodes[0].gpus) EXPECT_NE(g, 3);

  const Plan eight = plan_of(request("deepseek-r1-distill-llama-8b", {lost}, "--tp-size 8"));
  const auto* e = find_issue(eight.errors, "plan.not_enough_gpus");
  ASSERT_NE(e, nullptr) << codes(eight);
  EXPECT_NE(e->message.find("GPU 3 lost"), std::string::npos);
  EXPECT_EQ(e->node, "h100-lost");
}

TEST(Preflight, GapInGpuIndexesNamesTheMissingCard) {
  const auto gap = example_cluster("h100-degraded.json")[2];
  const Plan p = plan_of(request("deepseek-r1-distill-qwen-7b", {gap}));
  const auto* w = find_issue(p.warnings, "plan.gpu_missing");
  ASSERT_NE(w, nullptr) << codes(p);
  EXPECT_EQ(w->gpu, 5);
  EXPECT_NE(w->message.find("GPU 5"), std::string::npos);
}

TEST(Preflight, GpuMemoryHeldByAnotherProcess) {
  const auto busy = example_cluster("h100-degraded.json")[1];
  auto req = request("deepseek-r1-distill-qwen-7b", {busy});
  req.engine = EngineKind::vllm;
  const Plan p = plan_of(req);  // TP 4 over GPUs 0, 1, 3, 4: the busy GPU is avoided
  EXPECT_TRUE(p.ok) << codes(p);
  EXPECT_EQ(p.nodes[0].gpus, (std::vector<int>{0, 1, 3, 4}));

  req.model = catalog_model("deepseek-r1-distill-llama-8b");  // 32 heads: TP 8 is valid
  req.extra_args = "-tp 8";
  const Plan all = plan_of(req);
  EXPECT_FALSE(all.ok);
  const auto* e = find_issue(all.errors, "plan.gpu_memory_held");
  ASSERT_NE(e, nullptr) << codes(all);
  EXPECT_EQ(e->node, "h100-busy");
  EXPECT_EQ(e->gpu, 2);
  EXPECT_NE(e->message.find("pid 4242 python3"), std::string::npos);
  EXPECT_NE(e->message.find("30.00 GiB"), std::string::npos);
  EXPECT_NE(e->message.find("--gpu-memory-utilization"), std::string::npos);
  EXPECT_EQ(find_issue(all.errors, "estimate.insufficient_free_memory"), nullptr);

  // Asking for less than what is free is only a warning.
  req.extra_args = "-tp 8 --gpu-memory-utilization 0.5";
  const Plan half = plan_of(req);
  EXPECT_TRUE(half.ok) << codes(half);
  EXPECT_NE(find_issue(half.warnings, "plan.gpu_memory_shared"), nullptr);
}

TEST(Preflight, UnreachableNode) {
  auto req = request("deepseek-r1-distill-llama-70b", example_cluster("2x8-h100.json"));
  req.unreachable.insert("h100-b");
  const Plan p = plan_of(req);
  EXPECT_FALSE(p.ok);
  const auto* e = find_issue(p.errors, "plan.node_unreachable");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->node, "h100-b");
  EXPECT_NE(e->message.find("10.1.0.12"), std::string::npos);
}

TEST(Memory, DoesNotFitProposesAContextAndMoreGpus) {
  auto req = request("deepseek-r1-distill-qwen-7b", {example_node("1x-rtx4090.json")});
  req.engine = EngineKind::vllm;
  const Plan ctx = plan_of(req);
  EXPECT_FALSE(ctx.ok) << codes(ctx);
  ASSERT_TRUE(ctx.estimate.has_value());
  EXPECT_FALSE(ctx.estimate->fits);
  bool context_proposal = false;
  for (const auto& s : ctx.proposals) {
    context_proposal |=
        s.find("--max-model-len " + std::to_string(ctx.estimate->largest_fitting_len)) !=
        std::string::npos;
  }
  EXPECT_TRUE(context_proposal) << codes(ctx);

  const Plan big = plan_of(request("deepseek-r1-distill-llama-70b", {example_node("4x-t4.json")}));
  EXPECT_FALSE(big.ok);
  EXPECT_NE(find_issue(big.errors, "estimate.weights_exceed_budget"), nullptr) << codes(big);
  bool more = false;
  for (const auto& s : big.proposals)
    more |= s.find("more GPUs like Tesla T4") != std::string::npos;
  EXPECT_TRUE(more) << codes(big);
}

TEST(Plans, BadInputIsAnError) {
  auto req = request("deepseek-r1-distill-qwen-7b", {example_node("8x-h100-80g.json")},
                     "--max-running-requests abc");
  auto r = make_plan(req);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, "args.wrong_type");

  req.extra_args = "--port 8001";
  r = make_plan(req);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, "args.platform_owned");

  req.extra_args.clear();
  req.engine_version = "0.1.0";
  req.engine = EngineKind::vllm;
  EXPECT_FALSE(make_plan(req).has_value());

  req.engine_version.clear();
  req.nodes.clear();
  r = make_plan(req);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, "plan.no_nodes");
}

TEST(Plans, ShellMetacharactersStayLiteral) {
  auto req = request("deepseek-r1-distill-qwen-7b", {example_node("8x-h100-80g.json")},
                     "--chat-template '$(rm -rf /); echo'");
  req.served_name = "a b;c";
  const Plan p = plan_of(req);
  ASSERT_TRUE(p.ok) << codes(p);
  EXPECT_TRUE(has_seq(p.nodes[0].argv, {"--chat-template", "$(rm -rf /); echo"}));
  EXPECT_TRUE(has_seq(p.nodes[0].argv, {"--served-model-name", "a b;c"}));
}

TEST(Plans, JsonHasTheDocumentedFields) {
  const Plan p =
      plan_of(request("deepseek-r1-distill-llama-70b", example_cluster("2x8-h100.json")));
  const auto o = plan_to_json(p);
  for (const char* k : {"engine", "engine_version", "tp", "pp", "nodes", "applied_fixes", "errors",
                        "warnings", "estimate", "ok", "proposals"}) {
    EXPECT_TRUE(o.contains(k)) << k;
  }
  EXPECT_EQ(o.at("engine").as_string(), "vllm");
  const auto& n0 = o.at("nodes").as_array()[0].as_object();
  EXPECT_EQ(n0.at("role").as_string(), "head");
  EXPECT_TRUE(n0.at("argv").is_array());
  EXPECT_TRUE(n0.at("env").is_object());
  EXPECT_EQ(n0.at("env").as_object().at("VLLM_HOST_IP").as_string(), "10.1.0.11");
  EXPECT_TRUE(o.at("estimate").is_object());
}

}  // namespace
}  // namespace openstation::scheduler
