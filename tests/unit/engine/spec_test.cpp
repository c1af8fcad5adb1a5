#include "engine/spec.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace openstation::engine {
namespace {

using core::EngineKind;

const EngineSpec& spec(EngineKind kind, std::string_view version) {
  auto s = resolve_engine(kind, version);
  EXPECT_TRUE(s) << (s ? "" : s.error().message);
  return **s;
}

TEST(EngineSpec, KnownEnginesHaveTheirTables) {
  EXPECT_EQ(engines_of(EngineKind::vllm).size(), 2u);
  EXPECT_EQ(engines_of(EngineKind::vllm_cpu).size(), 2u);
  EXPECT_EQ(engines_of(EngineKind::sglang).size(), 1u);
  EXPECT_EQ(engines_of(EngineKind::custom).size(), 1u);
  EXPECT_EQ(engines_of(EngineKind::vllm)[0]->version.str(), "0.7.3");
  EXPECT_EQ(engines_of(EngineKind::vllm)[1]->version.str(), "0.21.0");
  EXPECT_EQ(engines_of(EngineKind::sglang)[0]->version.str(), "0.5.6.post2");
  for (const auto& s : known_engines()) {
    if (s.open_flags) continue;
    EXPECT_GT(s.flags.size(), 100u) << s.display_name;
  }
}

TEST(EngineSpec, ResolveMapsVersionsToTheSyntaxTheyUse) {
  EXPECT_EQ(spec(EngineKind::vllm, "").version.str(), "0.21.0");
  EXPECT_EQ(spec(EngineKind::vllm, "0.7.2").version.str(), "0.7.3");
  EXPECT_EQ(spec(EngineKind::vllm, "0.8.4").version.str(), "0.7.3");
  EXPECT_EQ(spec(EngineKind::vllm, "0.8.4.post1").version.str(), "0.7.3");
  EXPECT_EQ(spec(EngineKind::vllm, "0.8.5").version.str(), "0.21.0");
  EXPECT_EQ(spec(EngineKind::vllm, "v0.10.1").version.str(), "0.21.0");
  EXPECT_EQ(spec(EngineKind::vllm, "0.30.0").version.str(), "0.21.0");
  EXPECT_EQ(spec(EngineKind::vllm_cpu, "0.8.4").kind, EngineKind::vllm_cpu);
  EXPECT_EQ(spec(EngineKind::vllm_cpu, "0.8.4").display_name, "vLLM CPU 0.7.3");
  EXPECT_EQ(spec(EngineKind::sglang, "0.5.6.post2").display_name, "SGLang 0.5.6.post2");
  EXPECT_EQ(spec(EngineKind::sglang, "0.5.9").version.str(), "0.5.6.post2");
  EXPECT_TRUE(spec(EngineKind::custom, "whatever-1").open_flags);

  auto old = resolve_engine(EngineKind::vllm, "0.6.3");
  ASSERT_FALSE(old);
  EXPECT_EQ(old.error().code, "engine.version_too_old");
  EXPECT_NE(old.error().message.find("vLLM 0.7.3 (0.7.0 - 0.8.4)"), std::string::npos);
  auto bad = resolve_engine(EngineKind::sglang, "latest");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, "engine.bad_version");
  EXPECT_EQ(bad.error().field, "engine_version");
}

TEST(EngineSpec, FlagsCarryTypesStylesChoicesAndRanges) {
  const auto& cur = spec(EngineKind::vllm, "0.21.0");
  const auto& old = spec(EngineKind::vllm, "0.7.3");
  const auto& sg = spec(EngineKind::sglang, "");

  const auto* util = cur.find("--gpu-memory-utilization");
  ASSERT_NE(util, nullptr);
  EXPECT_EQ(util->type, FlagType::number);
  EXPECT_EQ(util->min, 0.0);
  EXPECT_TRUE(util->min_exclusive);
  EXPECT_EQ(util->max, 1.0);
  EXPECT_EQ(util->default_value, "0.92");
  EXPECT_EQ(old.find("--gpu-memory-utilization")->default_value, "0.9");

  EXPECT_TRUE(cur.find("--max-model-len")->human_readable);
  EXPECT_FALSE(old.find("--max-model-len")->human_readable);
  EXPECT_TRUE(cur.find("--max-num-batched-tokens")->human_readable);
  EXPECT_TRUE(cur.find("--kv-cache-memory-bytes")->human_readable);

  EXPECT_EQ(cur.find("--enable-chunked-prefill")->bool_style, BoolStyle::optional_action);
  EXPECT_EQ(old.find("--enable-chunked-prefill")->bool_style, BoolStyle::store_boolean);
  EXPECT_EQ(old.find("--enforce-eager")->bool_style, BoolStyle::presence);
  EXPECT_EQ(old.find("--enable-prefix-caching")->bool_style, BoolStyle::optional_action);
  EXPECT_EQ(sg.find("--disable-cuda-graph")->bool_style, BoolStyle::presence);

  const auto* q_old = old.find("-q");
  ASSERT_NE(q_old, nullptr);
  EXPECT_EQ(q_old->name, "--quantization");
  EXPECT_TRUE(q_old->choices_strict);
  EXPECT_TRUE(q_old->accepts_none);
  const auto* q_cur = cur.find("--quantization");
  EXPECT_FALSE(q_cur->choices_strict);
  EXPECT_NE(std::find(q_cur->choices.begin(), q_cur->choices.end(), "fp8"), q_cur->choices.end());
  EXPECT_EQ(old.find("--load-format")->choices.size(), 11u);  // the FAQ §4.4 list

  EXPECT_EQ(cur.find("-tp"), cur.find("--tensor-parallel-size"));
  EXPECT_EQ(cur.find("--max_model_len"), cur.find("--max-model-len"));  // underscore ≡ dash
  EXPECT_EQ(sg.find("--tp-size"), sg.find("--tensor-parallel-size"));
  EXPECT_EQ(sg.find("--context_length"), nullptr);  // SGLang: no underscore folding

  EXPECT_EQ(cur.find("--compilation-config")->type, FlagType::json);
  EXPECT_TRUE(cur.find("--compilation-config")->dotted_keys);
  EXPECT_EQ(cur.find("--cudagraph-capture-sizes")->type, FlagType::list);
  EXPECT_EQ(cur.find("--cudagraph-capture-sizes")->item_type, FlagType::integer);
  EXPECT_TRUE(cur.find("--cudagraph-capture-sizes")->multi_value);
  EXPECT_EQ(sg.find("--chunked-prefill-size")->min, -1.0);

  // Versions a flag exists in.
  EXPECT_EQ(old.find("--swap-space")->versions, std::vector<std::string>{"0.7.3"});
  EXPECT_EQ(cur.find("--swap-space"), nullptr);
  EXPECT_EQ(cur.find("--max-model-len")->versions, (std::vector<std::string>{"0.7.3", "0.21.0"}));
}

TEST(EngineSpec, PlatformOwnedFlagsHaveReasons) {
  for (const auto* s : {&spec(EngineKind::vllm, "0.7.3"), &spec(EngineKind::vllm, "0.21.0")}) {
    for (auto name : {"--port", "--host", "--model", "--served-model-name", "--api-key"}) {
      const auto* f = s->find(name);
      ASSERT_NE(f, nullptr) << name;
      EXPECT_TRUE(f->platform_owned) << name;
      EXPECT_FALSE(f->owned_reason.empty()) << name;
    }
  }
  EXPECT_TRUE(spec(EngineKind::vllm, "0.21.0").find("--uds")->platform_owned);
  const auto& sg = spec(EngineKind::sglang, "");
  for (auto name :
       {"--port", "--host", "--model-path", "--model", "--served-model-name", "--api-key",
        "--nnodes", "--node-rank", "--dist-init-addr", "--nccl-init-addr"}) {
    ASSERT_NE(sg.find(name), nullptr) << name;
    EXPECT_TRUE(sg.find(name)->platform_owned) << name;
  }
  EXPECT_FALSE(sg.find("--tensor-parallel-size")->platform_owned);
}

TEST(EngineSpec, LoadFlagTableReportsTheBadPath) {
  auto r = load_flag_table(R"({"engine":"vllm","version":"0.1","applies_from":"0.1",
      "version_range":"x","display_name":"vLLM","flags":[{"name":"--a","type":"integer"}]})",
                           EngineKind::vllm);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "engine.bad_table");
  EXPECT_NE(r.error().message.find("flags[0].type"), std::string::npos);
}

// The committed data files are what the generator makes from the reference tables.
std::filesystem::path reference_dir() {
  const std::filesystem::path src = OPENSTATION_SOURCE_DIR;
  for (const auto& p :
       {src / ".." / "shared" / "reference", std::filesystem::path("/work/shared/reference")}) {
    if (std::filesystem::is_directory(p / "flags")) return p;
  }
  return {};
}

std::string run_capture(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  std::array<char, 4096> buf{};
  std::size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  ::pclose(p);
  return out;
}

TEST(EngineSpec, GeneratedTablesAreInSyncWithTheReference) {
  const auto ref = reference_dir();
  if (ref.empty()) GTEST_SKIP() << "shared/reference not present";
  if (run_capture("command -v python3").empty()) GTEST_SKIP() << "python3 not installed";
  const std::filesystem::path src = OPENSTATION_SOURCE_DIR;
  int checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(src / "src" / "engine" / "data")) {
    if (entry.path().extension() != ".json") continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream committed;
    committed << in.rdbuf();
    const std::string expected = run_capture(
        "python3 '" + (src / "scripts" / "gen-engine-flags.py").string() + "' --reference '" +
        ref.string() + "' --print '" + entry.path().filename().string() + "'");
    // llama.cpp's table comes from its server README, which only a machine that built
    // llama-server (scripts/llama-server.sh) has; the generator prints nothing without it.
    if (expected.empty() && entry.path().filename().string().rfind("llama_cpp-", 0) == 0) continue;
    EXPECT_EQ(committed.str(), expected)
        << entry.path().filename() << " is stale: run scripts/gen-engine-flags.py";
    ++checked;
  }
  EXPECT_GE(checked, 3);  // 4 where the llama.cpp README is cached
}

}  // namespace
}  // namespace openstation::engine
