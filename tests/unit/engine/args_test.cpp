#include "engine/args.hpp"

#include <gtest/gtest.h>

namespace openstation::engine {
namespace {

using core::EngineKind;
using Tokens = std::vector<std::string>;

const EngineSpec& vllm_cur() {
  return **resolve_engine(EngineKind::vllm, "0.21.0");
}
const EngineSpec& vllm_old() {
  return **resolve_engine(EngineKind::vllm, "0.8.4");
}
const EngineSpec& vllm_cpu() {
  return **resolve_engine(EngineKind::vllm_cpu, "");
}
const EngineSpec& sglang() {
  return **resolve_engine(EngineKind::sglang, "0.5.6.post2");
}

ParsedArgs ok(const EngineSpec& s, std::string_view text) {
  auto r = parse_args(s, text);
  EXPECT_TRUE(r) << text << ": " << (r ? "" : r.error().code + " " + r.error().message);
  return r ? *r : ParsedArgs{};
}

core::Error err(const EngineSpec& s, std::string_view text) {
  auto r = parse_args(s, text);
  EXPECT_FALSE(r) << text << " parsed";
  return r ? core::Error{} : r.error();
}

void expect_err(const EngineSpec& s, std::string_view text, std::string_view code,
                std::string_view field, std::string_view contains = {}) {
  const auto e = err(s, text);
  EXPECT_EQ(e.code, code) << text << ": " << e.message;
  EXPECT_EQ(e.field, field) << text;
  EXPECT_NE(e.message.find(contains), std::string::npos) << text << ": " << e.message;
  EXPECT_EQ(e.category, core::Errc::invalid_argument);
}

// --- split_command_line -------------------------------------------------------------------------

TEST(SplitCommandLine, WordsQuotesAndEscapes) {
  EXPECT_EQ(*split_command_line("  --a 1\t--b  2\n"), (Tokens{"--a", "1", "--b", "2"}));
  EXPECT_EQ(*split_command_line(R"(--x 'a b' "c d" e\ f)"), (Tokens{"--x", "a b", "c d", "e f"}));
  EXPECT_EQ(*split_command_line(R"(--x '' "")"), (Tokens{"--x", "", ""}));
  EXPECT_EQ(*split_command_line(R"(--j '{"a": 1}')"), (Tokens{"--j", R"({"a": 1})"}));
  EXPECT_EQ(*split_command_line(R"("a\"b\\c\d")"), (Tokens{R"(a"b\c\d)"}));
  EXPECT_EQ(*split_command_line(R"('it'\''s')"), (Tokens{"it's"}));
  EXPECT_EQ(*split_command_line("a\\\nb"), (Tokens{"ab"}));
  EXPECT_EQ(*split_command_line(""), Tokens{});
  EXPECT_EQ(*split_command_line("   "), Tokens{});
}

TEST(SplitCommandLine, NoExpansionShellMetacharactersAreLiteral) {
  EXPECT_EQ(*split_command_line("--x $(rm -rf /) ; | & > `id` $HOME *"),
            (Tokens{"--x", "$(rm", "-rf", "/)", ";", "|", "&", ">", "`id`", "$HOME", "*"}));
  EXPECT_EQ(*split_command_line(R"(--x "$(id);x|y")"), (Tokens{"--x", "$(id);x|y"}));
  EXPECT_EQ(*split_command_line("--x=a;b"), (Tokens{"--x=a;b"}));
}

TEST(SplitCommandLine, Errors) {
  for (auto text : {"--x 'abc", "--x \"abc", "'", "--x \"a\\\""}) {
    auto r = split_command_line(text);
    ASSERT_FALSE(r) << text;
    EXPECT_EQ(r.error().code, "args.unbalanced_quote") << text;
  }
  auto r = split_command_line("--x a\\");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "args.trailing_backslash");
}

TEST(JoinCommandLine, QuotesOnlyWhatNeedsIt) {
  const Tokens argv{"--max-model-len", "65536", "--x", "a b", "", "it's", "$(id)", "--j={\"a\":1}"};
  EXPECT_EQ(join_command_line(argv),
            R"(--max-model-len 65536 --x 'a b' '' 'it'\''s' '$(id)' '--j={"a":1}')");
  EXPECT_EQ(*split_command_line(join_command_line(argv)), argv);
}

// --- the FAQ's extended parameters ---------------------------------------------------------------

TEST(ParseArgs, FaqExampleOnEveryVllm) {
  for (const auto* s : {&vllm_cur(), &vllm_old(), &vllm_cpu()}) {
    auto a = ok(*s, "--max-model-len 65536 --gpu-memory-utilization 0.98 --max-num-seqs 256");
    ASSERT_EQ(a.flags.size(), 3u);
    EXPECT_EQ(a.flags[0].name, "--max-model-len");
    EXPECT_EQ(a.flags[0].values, Tokens{"65536"});
    EXPECT_EQ(a.find("--gpu-memory-utilization")->values, Tokens{"0.98"});
    EXPECT_EQ(a.find("--max-num-seqs")->values, Tokens{"256"});
    EXPECT_EQ(render(*s, a), (Tokens{"--max-model-len", "65536", "--gpu-memory-utilization", "0.98",
                                     "--max-num-seqs", "256"}));
  }
}

TEST(ParseArgs, EqualsFormsUnderscoresAndShortAliases) {
  auto a = ok(vllm_cur(), "--max_model_len=4096 -tp 2 -q fp8 --dtype=half -pp=2");
  EXPECT_EQ(a.find("--max-model-len")->values, Tokens{"4096"});
  EXPECT_EQ(a.find("--max-model-len")->as_typed, "--max_model_len");
  EXPECT_EQ(a.find("--tensor-parallel-size")->values, Tokens{"2"});
  EXPECT_EQ(a.find("--quantization")->values, Tokens{"fp8"});
  EXPECT_EQ(a.find("--dtype")->values, Tokens{"half"});
  EXPECT_EQ(a.find("--pipeline-parallel-size")->values, Tokens{"2"});
  EXPECT_EQ(render(vllm_cur(), a),
            (Tokens{"--max-model-len", "4096", "--tensor-parallel-size", "2", "--quantization",
                    "fp8", "--dtype", "half", "--pipeline-parallel-size", "2"}));
  // One-letter aliases take an attached value like argparse: -qfp8, -O3.
  EXPECT_EQ(ok(vllm_cur(), "-qfp8").find("--quantization")->values, Tokens{"fp8"});
  EXPECT_EQ(ok(vllm_cur(), "-O3").find("--optimization-level")->values, Tokens{"3"});
  EXPECT_EQ(ok(vllm_old(), "-O3").find("--compilation-config")->values, Tokens{"3"});
  // SGLang does not fold underscores.
  expect_err(sglang(), "--context_length 4096", "args.unknown_flag", "--context_length",
             "Did you mean --context-length?");
}

TEST(ParseArgs, HumanReadableIntegersWhereTheVersionAcceptsThem) {
  const auto v = [](std::string_view text) {
    return ok(vllm_cur(), text).flags.at(0).values.at(0);
  };
  EXPECT_EQ(v("--max-model-len 1k"), "1000");
  EXPECT_EQ(v("--max-model-len 1K"), "1024");
  EXPECT_EQ(v("--max-model-len 25.6k"), "25600");
  EXPECT_EQ(v("--max-model-len 64k"), "64000");
  EXPECT_EQ(v("--max-model-len 64K"), "65536");
  EXPECT_EQ(v("--max-model-len 2m"), "2000000");
  EXPECT_EQ(v("--max-num-batched-tokens 8K"), "8192");
  EXPECT_EQ(v("--kv-cache-memory-bytes 8G"), "8589934592");
  EXPECT_EQ(v("--max-model-len auto"), "auto");
  EXPECT_EQ(v("--max-model-len AUTO"), "auto");
  EXPECT_EQ(v("--max-model-len -1"), "-1");
  EXPECT_EQ(v("--max-model-len +4096"), "4096");

  expect_err(vllm_cur(), "--max-model-len 2.5K", "args.wrong_type", "--max-model-len",
             "Did you mean 2.5k");
  expect_err(vllm_cur(), "--max-model-len 1.2345k", "args.wrong_type", "--max-model-len",
             "whole number");
  expect_err(vllm_cur(), "--max-model-len 64x", "args.wrong_type", "--max-model-len", "64K");
  expect_err(vllm_cur(), "--max-model-len 99999999999T", "args.wrong_type", "--max-model-len",
             "too large");
  expect_err(vllm_cur(), "--max-model-len 0", "args.out_of_range", "--max-model-len", ">= 1");
  expect_err(vllm_cur(), "--max-model-len -2", "args.out_of_range", "--max-model-len");
  // vLLM <= 0.8.4 takes plain integers only; the message says the number to write.
  expect_err(vllm_old(), "--max-model-len 64K", "args.wrong_type", "--max-model-len",
             "write 65536");
  expect_err(vllm_old(), "--max-model-len auto", "args.wrong_type", "--max-model-len");
  // Not human-readable in current vLLM either.
  expect_err(vllm_cur(), "--max-num-seqs 1k", "args.wrong_type", "--max-num-seqs", "write 1000");
  // SGLang: plain integers.
  expect_err(sglang(), "--context-length 32k", "args.wrong_type", "--context-length");
}

TEST(ParseHumanInt, Direct) {
  EXPECT_EQ(*parse_human_int("0"), 0);
  EXPECT_EQ(*parse_human_int("1t"), 1000000000000);
  EXPECT_EQ(*parse_human_int("1T"), std::int64_t{1} << 40);
  EXPECT_EQ(*parse_human_int("0.5k"), 500);
  EXPECT_EQ(*parse_human_int("1.500k"), 1500);
  EXPECT_FALSE(parse_human_int("k"));
  EXPECT_FALSE(parse_human_int("1.k"));
  EXPECT_FALSE(parse_human_int(".5k"));
  EXPECT_FALSE(parse_human_int("1e3"));
  EXPECT_FALSE(parse_human_int("1kk"));
  EXPECT_FALSE(parse_human_int("9223372036854775808"));
  EXPECT_FALSE(parse_human_int("9999999999T"));
}

TEST(ParseArgs, BooleansPerVersion) {
  // vLLM <= 0.8.4: StoreBoolean.
  for (auto [text, value] : {std::pair{"--enable-chunked-prefill", true},
                             {"--enable-chunked-prefill False", false},
                             {"--enable-chunked-prefill false", false},
                             {"--enable-chunked-prefill TRUE", true},
                             {"--enable-chunked-prefill=false", false},
                             {"--enable-chunked-prefill=True", true}}) {
    auto a = ok(vllm_old(), text);
    ASSERT_EQ(a.flags.size(), 1u) << text;
    EXPECT_EQ(a.flags[0].bool_value, value) << text;
  }
  EXPECT_EQ(render(vllm_old(), ok(vllm_old(), "--enable-chunked-prefill False")),
            (Tokens{"--enable-chunked-prefill", "False"}));
  EXPECT_EQ(render(vllm_old(), ok(vllm_old(), "--enable-chunked-prefill --dtype half")),
            (Tokens{"--enable-chunked-prefill", "--dtype", "half"}));
  expect_err(vllm_old(), "--enable-chunked-prefill maybe", "args.wrong_type",
             "--enable-chunked-prefill", "true or false");
  expect_err(vllm_old(), "--no-enable-chunked-prefill", "args.unknown_flag",
             "--no-enable-chunked-prefill", "--enable-chunked-prefill False");
  expect_err(vllm_old(), "--no-enforce-eager", "args.unknown_flag", "--no-enforce-eager",
             "leave it out");
  expect_err(vllm_old(), "--enforce-eager true", "args.unexpected_value", "--enforce-eager");
  // BooleanOptionalAction already in 0.7 for prefix caching.
  EXPECT_EQ(ok(vllm_old(), "--no-enable-prefix-caching").flags[0].bool_value, false);

  // vLLM >= 0.8.5: --x / --no-x only.
  EXPECT_EQ(ok(vllm_cur(), "--enable-chunked-prefill").flags[0].bool_value, true);
  auto off = ok(vllm_cur(), "--no-enable-chunked-prefill");
  EXPECT_EQ(off.flags[0].name, "--enable-chunked-prefill");
  EXPECT_EQ(off.flags[0].bool_value, false);
  EXPECT_EQ(render(vllm_cur(), off), Tokens{"--no-enable-chunked-prefill"});
  EXPECT_EQ(ok(vllm_cur(), "--no_enforce_eager").flags[0].bool_value, false);
  expect_err(vllm_cur(), "--enable-chunked-prefill False", "args.unexpected_value",
             "--enable-chunked-prefill", "--no-enable-chunked-prefill");
  expect_err(vllm_cur(), "--enable-chunked-prefill=false", "args.unexpected_value",
             "--enable-chunked-prefill", "--no-enable-chunked-prefill");
  expect_err(vllm_cur(), "--enforce-eager 1", "args.unexpected_value", "--enforce-eager");
  expect_err(vllm_cur(), "--enforce-eager --no-enforce-eager", "args.duplicate_flag",
             "--no-enforce-eager", "--enforce-eager and as --no-enforce-eager");
  // store_true in current vLLM has no --no- form.
  EXPECT_EQ(ok(vllm_cur(), "--disable-log-stats").flags[0].bool_value, true);
  expect_err(vllm_cur(), "--no-disable-log-stats", "args.unknown_flag", "--no-disable-log-stats");

  // SGLang store_true: no value, no --no- form.
  EXPECT_EQ(ok(sglang(), "--disable-cuda-graph").flags[0].bool_value, true);
  expect_err(sglang(), "--disable-cuda-graph true", "args.unexpected_value", "--disable-cuda-graph",
             "leave it out");
  expect_err(sglang(), "--disable-cuda-graph=1", "args.unexpected_value", "--disable-cuda-graph");
  expect_err(sglang(), "--no-disable-cuda-graph", "args.unknown_flag", "--no-disable-cuda-graph");
}

TEST(ParseArgs, SglangPrefixAbbreviations) {
  auto a = ok(sglang(), "--tp 4 --dp 2 --mem-frac 0.85 --context-length 8192");
  EXPECT_EQ(a.find("--tensor-parallel-size")->values, Tokens{"4"});
  EXPECT_EQ(a.find("--tensor-parallel-size")->as_typed, "--tp");
  EXPECT_EQ(a.find("--data-parallel-size")->values, Tokens{"2"});
  EXPECT_EQ(a.find("--mem-fraction-static")->values, Tokens{"0.85"});
  EXPECT_EQ(render(sglang(), a),
            (Tokens{"--tensor-parallel-size", "4", "--data-parallel-size", "2",
                    "--mem-fraction-static", "0.85", "--context-length", "8192"}));
  // An exact match wins over longer candidates: --ep is an alias of --expert-parallel-size.
  EXPECT_EQ(ok(sglang(), "--ep 2").find("--expert-parallel-size")->values, Tokens{"2"});
  expect_err(sglang(), "--pp 2", "args.ambiguous_flag", "--pp", "--pp-size");
  expect_err(sglang(), "--pp 2", "args.ambiguous_flag", "--pp", "--pp-max-micro-batch-size");
  expect_err(sglang(), "--tp=2 --tp-size 2", "args.duplicate_flag", "--tp-size",
             "as --tp=2 and as --tp-size");
  // An abbreviation of a platform-owned flag is refused too.
  expect_err(sglang(), "--po 1", "args.platform_owned", "--po");
  // vLLM does not abbreviate.
  expect_err(vllm_cur(), "--max-model 4096", "args.unknown_flag", "--max-model",
             "Did you mean --max-model-len?");
}

TEST(ParseArgs, MultiValueJsonAndDottedKeys) {
  auto a = ok(vllm_cur(), "--cudagraph-capture-sizes 1 2 4 8 --dtype half");
  EXPECT_EQ(a.find("--cudagraph-capture-sizes")->values, (Tokens{"1", "2", "4", "8"}));
  EXPECT_EQ(render(vllm_cur(), a),
            (Tokens{"--cudagraph-capture-sizes", "1", "2", "4", "8", "--dtype", "half"}));
  expect_err(vllm_cur(), "--cudagraph-capture-sizes 1 two", "args.wrong_type",
             "--cudagraph-capture-sizes");
  expect_err(vllm_cur(), "--cudagraph-capture-sizes --dtype half", "args.missing_value",
             "--cudagraph-capture-sizes");
  expect_err(vllm_cur(), "--collect-detailed-traces model gpu", "args.invalid_choice",
             "--collect-detailed-traces", "model, worker, all");
  // SGLang nargs '*': zero values allowed.
  EXPECT_TRUE(ok(sglang(), "--lora-paths").find("--lora-paths")->values.empty());

  auto j =
      ok(vllm_cur(), R"(--compilation-config '{"mode": 3, "cudagraph_capture_sizes": [1,2]}')");
  EXPECT_EQ(j.flags[0].values, Tokens{R"({"mode": 3, "cudagraph_capture_sizes": [1,2]})"});
  expect_err(vllm_cur(), "--compilation-config {mode:3}", "args.wrong_type", "--compilation-config",
             "JSON");
  auto d =
      ok(vllm_cur(),
         "--compilation-config.mode 3 --compilation_config.level=2 --hf-overrides.rope_theta 1e6");
  ASSERT_EQ(d.flags.size(), 3u);
  EXPECT_EQ(d.flags[0].name, "--compilation-config.mode");
  EXPECT_EQ(d.flags[0].values, Tokens{"3"});
  EXPECT_EQ(render(vllm_cur(), d),
            (Tokens{"--compilation-config.mode", "3", "--compilation-config.level", "2",
                    "--hf-overrides.rope_theta", "1e6"}));
  expect_err(vllm_cur(), "--compilation-config.mode 3 --compilation-config.mode 2",
             "args.duplicate_flag", "--compilation-config.mode");
  // Dotted keys exist only in current vLLM.
  expect_err(vllm_old(), "--compilation-config.mode 3", "args.unknown_flag",
             "--compilation-config.mode");
  // Repeatable flags (action=append).
  EXPECT_EQ(ok(vllm_cur(), "--middleware a.B --middleware c.D").flags.size(), 2u);
}

TEST(ParseArgs, NegativeNumbersAreValues) {
  EXPECT_EQ(ok(sglang(), "--chunked-prefill-size -1").flags[0].values, Tokens{"-1"});
  EXPECT_EQ(ok(sglang(), "--offload-group-size -1").flags[0].values, Tokens{"-1"});
  EXPECT_EQ(ok(vllm_cur(), "--seed -5").flags[0].values, Tokens{"-5"});
  EXPECT_EQ(ok(sglang(), "--schedule-conservativeness -.5").flags[0].values, Tokens{"-.5"});
  expect_err(sglang(), "--chunked-prefill-size -2", "args.out_of_range", "--chunked-prefill-size",
             ">= -1");
  // A value that starts with '-' but is not a number must be attached with '='.
  expect_err(vllm_cur(), "--tokenizer -weird", "args.missing_value", "--tokenizer",
             "--tokenizer=VALUE");
  auto a = ok(vllm_cur(), "--tokenizer=-weird");
  EXPECT_EQ(a.flags[0].values, Tokens{"-weird"});
  EXPECT_EQ(render(vllm_cur(), a), Tokens{"--tokenizer=-weird"});
}

TEST(ParseArgs, ChoicesListAllowedValues) {
  // FAQ §4.4: vLLM's quantization and load-format lists for the version.
  expect_err(vllm_old(), "--quantization int4", "args.invalid_choice", "--quantization",
             "aqlm, awq, deepspeedfp, tpu_int8, fp8");
  EXPECT_EQ(ok(vllm_old(), "--quantization None").flags[0].values, Tokens{"None"});
  EXPECT_EQ(ok(vllm_old(), "-q gptq_marlin_24").flags[0].values, Tokens{"gptq_marlin_24"});
  expect_err(
      vllm_old(), "--load-format fastsafetensors", "args.invalid_choice", "--load-format",
      "auto, pt, safetensors, npcache, dummy, tensorizer, sharded_state, gguf, bitsandbytes, "
      "mistral, runai_streamer");
  // Current vLLM: known values, still refused when unknown.
  expect_err(vllm_cur(), "--quantization deepspeedfp", "args.invalid_choice", "--quantization",
             "known values");
  expect_err(vllm_cur(), "--quantization fp9", "args.invalid_choice", "--quantization",
             "Did you mean fp8?");
  EXPECT_TRUE(ok(vllm_cur(), "--load-format fastsafetensors").find("--load-format"));
  // SGLang.
  expect_err(sglang(), "--quantization aqlm", "args.invalid_choice", "--quantization", "w8a8_int8");
  expect_err(sglang(), "--kv-cache-dtype fp8", "args.invalid_choice", "--kv-cache-dtype",
             "fp8_e5m2, fp8_e4m3");
  expect_err(vllm_cur(), "--dtype bf16", "args.invalid_choice", "--dtype",
             "auto, bfloat16, float, float16, float32, half");
  expect_err(vllm_old(), "--block-size 24", "args.invalid_choice", "--block-size",
             "8, 16, 32, 64, 128");
  EXPECT_TRUE(ok(vllm_cur(), "--block-size 24").find("--block-size"));
  expect_err(sglang(), "--log-requests-level 7", "args.invalid_choice", "--log-requests-level");
}

TEST(ParseArgs, RangesAndTypes) {
  expect_err(vllm_cur(), "--gpu-memory-utilization 1.5", "args.out_of_range",
             "--gpu-memory-utilization", "> 0 and <= 1");
  expect_err(vllm_cur(), "--gpu-memory-utilization 0", "args.out_of_range",
             "--gpu-memory-utilization");
  EXPECT_TRUE(ok(vllm_cur(), "--gpu-memory-utilization 1").find("--gpu-memory-utilization"));
  expect_err(vllm_cur(), "--gpu-memory-utilization high", "args.wrong_type",
             "--gpu-memory-utilization", "expects a number");
  expect_err(vllm_cur(), "--gpu-memory-utilization nan", "args.wrong_type",
             "--gpu-memory-utilization");
  expect_err(vllm_cur(), "--gpu-memory-utilization 0.9x", "args.wrong_type",
             "--gpu-memory-utilization");
  expect_err(vllm_cur(), "-tp 0", "args.out_of_range", "-tp", ">= 1");
  expect_err(vllm_cur(), "-tp two", "args.wrong_type", "-tp", "expects an integer");
  expect_err(vllm_cur(), "--max-num-seqs 2.5", "args.wrong_type", "--max-num-seqs");
  expect_err(sglang(), "--mem-fraction-static 1.2", "args.out_of_range", "--mem-fraction-static");
  expect_err(vllm_cur(), "--master-port 70000", "args.out_of_range", "--master-port", "<= 65535");
  expect_err(vllm_cur(), "--cpu-offload-gb -1", "args.out_of_range", "--cpu-offload-gb", ">= 0");
  EXPECT_EQ(ok(vllm_cur(), "--gpu-memory-utilization +0.5").flags[0].values, Tokens{"+0.5"});
  EXPECT_EQ(ok(vllm_cur(), "--gpu-memory-utilization 9e-1").flags[0].values, Tokens{"9e-1"});
}

TEST(ParseArgs, PlatformOwnedFlagsAreRefusedWithTheReason) {
  for (const auto* s : {&vllm_cur(), &vllm_old(), &vllm_cpu()}) {
    expect_err(*s, "--port 8001", "args.platform_owned", "--port", "port range");
    expect_err(*s, "--host=0.0.0.0", "args.platform_owned", "--host", "gateway");
    expect_err(*s, "--model /x", "args.platform_owned", "--model", "model path");
    expect_err(*s, "--served-model-name a b", "args.platform_owned", "--served-model-name");
    expect_err(*s, "--served_model_name a", "args.platform_owned", "--served_model_name");
    expect_err(*s, "--api-key k", "args.platform_owned", "--api-key", "authentication");
  }
  expect_err(vllm_cur(), "--uds /tmp/s", "args.platform_owned", "--uds");
  for (auto text : {"--nnodes 2", "--node-rank 1", "--dist-init-addr 1.2.3.4:5000",
                    "--nccl-init-addr 1.2.3.4:5000", "--model-path /m", "--model /m", "--port 1",
                    "--host h", "--served-model-name n", "--api-key k"}) {
    const auto e = err(sglang(), text);
    EXPECT_EQ(e.code, "args.platform_owned") << text;
  }
  expect_err(sglang(), "--nnodes 2", "args.platform_owned", "--nnodes", "deployment plan");
  // The model as a positional.
  expect_err(vllm_cur(), "deepseek-ai/DeepSeek-R1 --dtype half", "args.stray_value",
             "deepseek-ai/DeepSeek-R1", "the platform passes the model");
}

TEST(ParseArgs, BadInputGivesAPreciseErrorEach) {
  expect_err(vllm_cur(), "--max-model-len 4096 --", "args.empty_flag", "--");
  expect_err(vllm_cur(), "- --dtype half", "args.empty_flag", "-");
  expect_err(vllm_cur(), "--=3", "args.empty_flag", "--=3");
  expect_err(vllm_cur(), "--dtype", "args.missing_value", "--dtype", "one of auto");
  expect_err(vllm_cur(), "--max-model-len --dtype half", "args.missing_value", "--max-model-len");
  expect_err(vllm_cur(), "--max-num-seqs 256 512", "args.stray_value", "512",
             "--max-num-seqs takes one value");
  expect_err(vllm_cur(), "--max-model-len 4096 --max_model_len 8192", "args.duplicate_flag",
             "--max_model_len", "--max-model-len and as --max_model_len");
  expect_err(vllm_cur(), "--dtype half --dtype half", "args.duplicate_flag", "--dtype",
             "twice as --dtype");
  expect_err(vllm_cur(), "-tp 2 --tensor-parallel-size 2", "args.duplicate_flag",
             "--tensor-parallel-size", "as -tp and as --tensor-parallel-size");
  expect_err(vllm_cur(), "--max-model-len 'abc", "args.unbalanced_quote", "args");
  expect_err(vllm_cur(), "--max-num-seqs abc", "args.wrong_type", "--max-num-seqs");
  expect_err(vllm_cur(), "--max-modle-len 4096", "args.unknown_flag", "--max-modle-len",
             "Did you mean --max-model-len?");
  // A flag of the other vLLM syntax: the message says where it exists.
  expect_err(vllm_cur(), "--swap-space 4", "args.unknown_flag", "--swap-space",
             "it exists in vLLM 0.7.3 (0.7.0 - 0.8.4)");
  expect_err(vllm_old(), "--kv-cache-memory-bytes 8G", "args.unknown_flag",
             "--kv-cache-memory-bytes", "vLLM 0.21.0 (>= 0.8.5)");
  expect_err(vllm_cpu(), "--swap-space 4", "args.unknown_flag", "--swap-space", "vLLM CPU 0.7.3");
  // Empty input is fine.
  EXPECT_TRUE(ok(vllm_cur(), "").flags.empty());
}

TEST(ParseArgs, ShellMetacharactersStayLiteral) {
  auto a =
      ok(vllm_cur(), R"(--chat-template '$(rm -rf /); echo `id` | cat > x' --tokenizer "a;b")");
  EXPECT_EQ(a.find("--chat-template")->values, Tokens{"$(rm -rf /); echo `id` | cat > x"});
  EXPECT_EQ(a.find("--tokenizer")->values, Tokens{"a;b"});
  EXPECT_EQ(render(vllm_cur(), a),
            (Tokens{"--chat-template", "$(rm -rf /); echo `id` | cat > x", "--tokenizer", "a;b"}));
  // Unquoted, the engine would see the separate words: so do we, and they are stray values.
  expect_err(vllm_cur(), "--tokenizer a ; rm -rf /", "args.stray_value", ";");
}

TEST(ParsedArgs, SetEraseFind) {
  auto a = ok(vllm_cur(), "--max-model-len 4096 --dtype bfloat16 --max-num-seqs 8");
  auto half = make_flag(vllm_cur(), "--dtype", {"half"});
  ASSERT_TRUE(half);
  a.set(*half);
  EXPECT_EQ(a.flags[1].values, Tokens{"half"});
  auto off = make_bool_flag(vllm_cur(), "--enable-chunked-prefill", false);
  ASSERT_TRUE(off);
  a.set(*off);
  EXPECT_EQ(render(vllm_cur(), a), (Tokens{"--max-model-len", "4096", "--dtype", "half",
                                           "--max-num-seqs", "8", "--no-enable-chunked-prefill"}));
  EXPECT_TRUE(a.erase("--max-num-seqs"));
  EXPECT_FALSE(a.erase("--max-num-seqs"));
  EXPECT_EQ(a.find("--max-num-seqs"), nullptr);

  // The same fix in the old syntax.
  ParsedArgs b;
  b.set(*make_bool_flag(vllm_old(), "--enable-chunked-prefill", false));
  EXPECT_EQ(render(vllm_old(), b), (Tokens{"--enable-chunked-prefill", "False"}));

  // Platform-owned flags can be made by the planner.
  auto nn = make_flag(sglang(), "--nnodes", {"2"});
  ASSERT_TRUE(nn);
  EXPECT_EQ(nn->name, "--nnodes");
  auto tp = make_flag(vllm_cur(), "-tp", {"4"});
  ASSERT_TRUE(tp);
  EXPECT_EQ(tp->name, "--tensor-parallel-size");

  EXPECT_EQ(make_flag(vllm_cur(), "--dtype", {"bf16"}).error().code, "args.invalid_choice");
  EXPECT_EQ(make_flag(vllm_cur(), "--nope", {"1"}).error().code, "args.unknown_flag");
  EXPECT_EQ(make_flag(vllm_cur(), "--dtype", {}).error().code, "args.missing_value");
  EXPECT_EQ(make_flag(vllm_cur(), "--dtype", {"half", "auto"}).error().code, "args.stray_value");
  EXPECT_EQ(make_flag(vllm_cur(), "--enforce-eager", {}).error().code, "args.wrong_type");
  EXPECT_EQ(make_bool_flag(vllm_cur(), "--dtype", true).error().code, "args.wrong_type");
  EXPECT_EQ(make_bool_flag(sglang(), "--disable-cuda-graph", false).error().code,
            "args.cannot_negate");
  EXPECT_TRUE(make_bool_flag(sglang(), "--disable-cuda-graph", true));
}

TEST(ParseArgs, CustomEnginesAcceptAnyFlag) {
  const auto& custom = **resolve_engine(EngineKind::custom, "");
  auto a = ok(custom, "--ctx 4096 --flag --pair a b --neg=-3 --port 9");
  ASSERT_EQ(a.flags.size(), 5u);
  EXPECT_EQ(a.flags[0].name, "--ctx");
  EXPECT_TRUE(a.flags[1].values.empty());
  EXPECT_EQ(a.flags[2].values, (Tokens{"a", "b"}));
  EXPECT_EQ(render(custom, a),
            (Tokens{"--ctx", "4096", "--flag", "--pair", "a", "b", "--neg", "-3", "--port", "9"}));
  expect_err(custom, "model --x", "args.stray_value", "model");
  expect_err(custom, "--x 'a", "args.unbalanced_quote", "args");
  expect_err(custom, "--", "args.empty_flag", "--");
}

}  // namespace
}  // namespace openstation::engine
