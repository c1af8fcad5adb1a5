// llama.cpp's server as an engine: its flag table (generated from the server README of the
// release node-llama-cpp 3.21.1 ships), parsing, "did you mean", platform-owned flags, render.
#include "engine/args.hpp"
#include "engine/memory_settings.hpp"
#include "engine/spec.hpp"

#include <gtest/gtest.h>

namespace openstation::engine {
namespace {

using core::EngineKind;

const EngineSpec& llama() {
  auto s = resolve_engine(EngineKind::llama_cpp, "");
  EXPECT_TRUE(s) << (s ? "" : s.error().message);
  return **s;
}

core::Error err(std::string_view text) {
  auto r = parse_args(llama(), text);
  EXPECT_FALSE(r) << text;
  return r ? core::Error{} : r.error();
}

TEST(LlamaCppSpec, HasAFlagTableForEveryRelease) {
  const auto& s = llama();
  EXPECT_FALSE(s.open_flags);
  EXPECT_EQ(s.version.str(), "0.4.0");
  EXPECT_EQ(s.display_name, "llama.cpp 0.4.0");
  EXPECT_GT(s.flags.size(), 200u);
  // Build-number releases (b6100) and newer tags resolve to the same table.
  for (const char* v : {"b6100", "0.3.2", "0.4.0", "1.0.0"}) {
    auto r = resolve_engine(EngineKind::llama_cpp, v);
    ASSERT_TRUE(r) << v;
    EXPECT_EQ((*r)->version.str(), "0.4.0") << v;
  }
}

TEST(LlamaCppSpec, FlagsCarryTypesAliasesAndChoices) {
  const auto& s = llama();
  const auto* ctx = s.find("-c");
  ASSERT_NE(ctx, nullptr);
  EXPECT_EQ(ctx->name, "--ctx-size");
  EXPECT_EQ(ctx->type, FlagType::integer);
  EXPECT_EQ(s.find("-np")->name, "--parallel");
  EXPECT_EQ(s.find("-ngl")->name, "--n-gpu-layers");
  EXPECT_EQ(s.find("--gpu-layers")->name, "--n-gpu-layers");
  EXPECT_EQ(s.find("-t")->name, "--threads");
  const auto* ctk = s.find("-ctk");
  ASSERT_NE(ctk, nullptr);
  EXPECT_EQ(ctk->type, FlagType::choice);
  EXPECT_NE(std::find(ctk->choices.begin(), ctk->choices.end(), "q8_0"), ctk->choices.end());
  EXPECT_EQ(s.find("--temp")->type, FlagType::number);
  EXPECT_EQ(s.find("--jinja")->type, FlagType::boolean);
  EXPECT_NE(s.find("--no-jinja"), nullptr);
  EXPECT_NE(s.find("-nkvo"), nullptr);
  EXPECT_TRUE(s.find("-fa")->value_optional);
  EXPECT_TRUE(s.find("--alias")->platform_owned);
  EXPECT_TRUE(s.find("-m")->platform_owned);
  EXPECT_TRUE(s.find("--port")->platform_owned);
  EXPECT_TRUE(s.find("-hf")->platform_owned);
  // llama.cpp has no underscore spelling and no prefix abbreviations.
  EXPECT_EQ(s.find("--ctx_size"), nullptr);
  EXPECT_EQ(s.find("--ctx"), nullptr);
}

TEST(LlamaCppArgs, ParsesAndRendersTheUsualFlags) {
  auto a = parse_args(llama(),
                      "-c 4096 -np 2 -t 1 -ngl all --cache-type-k q8_0 -fa on --jinja "
                      "--chat-template chatml --temp 0.7 --no-warmup");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(render(llama(), *a),
            (std::vector<std::string>{"--ctx-size", "4096", "--parallel", "2", "--threads", "1",
                                      "--n-gpu-layers", "all", "--cache-type-k", "q8_0",
                                      "--flash-attn", "on", "--jinja", "--chat-template", "chatml",
                                      "--temp", "0.7", "--no-warmup"}));
  auto again = parse_args(llama(), join_command_line(render(llama(), *a)));
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, *a);
}

TEST(LlamaCppArgs, RefusesBadInputWithStableCodes) {
  auto e = err("--ctx-sise 4096");
  EXPECT_EQ(e.code, "args.unknown_flag");
  EXPECT_NE(e.message.find("--ctx-size"), std::string::npos) << e.message;  // did you mean
  EXPECT_EQ(err("-c big").code, "args.wrong_type");
  EXPECT_EQ(err("-c -5").code, "args.out_of_range");
  EXPECT_EQ(err("-ngl some").code, "args.wrong_type");
  e = err("--cache-type-k q3_k");
  EXPECT_EQ(e.code, "args.invalid_choice");
  EXPECT_NE(e.message.find("q8_0"), std::string::npos);
  e = err("--alias my-model");
  EXPECT_EQ(e.code, "args.platform_owned");
  EXPECT_EQ(err("--port 8001").code, "args.platform_owned");
  EXPECT_EQ(err("-hf Qwen/Qwen2-0.5B-GGUF").code, "args.platform_owned");
  EXPECT_EQ(err("--api-key secret").code, "args.platform_owned");
  EXPECT_EQ(err("-c 1 --ctx-size 2").code, "args.duplicate_flag");
  EXPECT_EQ(err("--jinja yes").code, "args.unexpected_value");
}

TEST(LlamaCppArgs, MemorySettingsReadTheCanonicalFlags) {
  auto a = parse_args(llama(), "-c 2048 -np 2 -ctk q4_0");
  ASSERT_TRUE(a);
  auto s = memory_settings(llama(), *a, {});
  ASSERT_TRUE(s);
  EXPECT_EQ(s->max_model_len, 2048);
  EXPECT_EQ(s->max_num_seqs, 2);
  EXPECT_EQ(s->kv_cache_dtype, "q4_0");
}

}  // namespace
}  // namespace openstation::engine
