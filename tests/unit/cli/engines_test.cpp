#include "support/cli_runner.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

namespace openstation::cli {
namespace {

using testing_support::run_cli;

TEST(CliEngines, ListShowsEveryEngineAndVersion) {
  auto r = run_cli({"engines", "list"});
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* s :
       {"vllm", "vllm-cpu", "sglang", "llama.cpp", "custom", "0.7.3", "0.21.0", "0.5.6.post2"}) {
    EXPECT_TRUE(r.out_has(s)) << s << "\n" << r.out;
  }
  auto j = run_cli({"engines", "list", "--json"});
  ASSERT_EQ(j.code, 0) << j.err;
  auto v = boost::json::parse(j.out);
  ASSERT_TRUE(v.is_array() || v.is_object()) << j.out;
}

TEST(CliEngines, FlagsOfAVersion) {
  auto r = run_cli({"engines", "flags", "vllm", "--engine-version", "0.8.4", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(r.out_has("--swap-space")) << "0.7-era table expected";
  auto cur = run_cli({"engines", "flags", "vllm", "--json"});
  ASSERT_EQ(cur.code, 0) << cur.err;
  EXPECT_FALSE(cur.out_has("\"--swap-space\"")) << "removed in current vLLM";
  EXPECT_TRUE(cur.out_has("--max-model-len"));
}

TEST(CliEngines, CheckRendersArgvInTheVersionsSyntax) {
  auto old = run_cli({"engines", "check", "vllm", "--engine-version", "0.8.4", "--args",
                      "--enable-chunked-prefill=false --max_model_len 65536", "--json"});
  ASSERT_EQ(old.code, 0) << old.err << old.out;
  EXPECT_TRUE(old.out_has("\"--enable-chunked-prefill\"")) << old.out;
  EXPECT_TRUE(old.out_has("\"--max-model-len\"")) << old.out;

  auto cur = run_cli({"engines", "check", "vllm", "--args", "--no-enable-chunked-prefill -tp 2"});
  ASSERT_EQ(cur.code, 0) << cur.err;
  EXPECT_TRUE(cur.out_has("--no-enable-chunked-prefill")) << cur.out;
}

TEST(CliEngines, BadArgsExitTwoWithTheExactFlag) {
  auto typo = run_cli({"engines", "check", "vllm", "--args", "--max-model-lenn 4096"});
  EXPECT_EQ(typo.code, 2);
  EXPECT_TRUE(typo.err_has("--max-model-lenn")) << typo.err;
  EXPECT_TRUE(typo.err_has("--max-model-len")) << typo.err;

  auto owned = run_cli({"engines", "check", "vllm", "--args", "--port 9000", "--json"});
  EXPECT_EQ(owned.code, 2);
  EXPECT_TRUE(owned.out_has("args.platform_owned")) << owned.out;

  auto choice = run_cli({"engines", "check", "sglang", "--args", "--quantization fp9"});
  EXPECT_EQ(choice.code, 2);
  EXPECT_TRUE(choice.err_has("fp8")) << "the allowed values are listed: " << choice.err;

  auto quote = run_cli({"engines", "check", "vllm", "--args", "--chat-template 'abc"});
  EXPECT_EQ(quote.code, 2);

  auto unknown = run_cli({"engines", "flags", "tgi"});
  EXPECT_EQ(unknown.code, 2);
}

}  // namespace
}  // namespace openstation::cli
