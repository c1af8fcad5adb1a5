// The text form of call-log blocks (store/detail/call_log_blocks.hpp): random calls, drawn from
// small pools so that fields repeat from call to call ("=") and strings hold every character
// the format escapes, read back as written; damaged text is refused, never half-read.

#include "store/detail/call_log_blocks.hpp"

#include <gtest/gtest.h>

#include <limits>
#include <random>
#include <string>
#include <vector>

namespace openstation::store::detail {
namespace {

TEST(CallLogBlocks, RandomCallsReadBackAsWritten) {
  std::mt19937_64 rng(12345);
  const std::string alphabet = std::string("ab=\\\t\n\r ") + '\0' + "\xe6\x97\xa5";
  const auto random_text = [&] {
    std::string s;
    const auto n = rng() % 6;
    for (std::size_t i = 0; i < n; ++i) s += alphabet[rng() % alphabet.size()];
    return s;
  };
  std::vector<std::string> strings;
  for (int i = 0; i < 6; ++i) strings.push_back(random_text());
  strings.push_back("=");
  strings.push_back("");
  const std::vector<std::int64_t> numbers{0,
                                          1,
                                          -1,
                                          42,
                                          std::numeric_limits<std::int64_t>::max(),
                                          std::numeric_limits<std::int64_t>::min()};
  const std::vector<double> reals{0.0, 0.1, 12.5, -3.25, 1e300, 5e-324};
  const auto pick = [&](const auto& pool) { return pool[rng() % pool.size()]; };
  for (int round = 0; round < 200; ++round) {
    std::vector<CallLog> calls;
    const std::int64_t base = 1'700'000'000'000 + static_cast<std::int64_t>(rng() % 1000);
    const auto n = 1 + rng() % 40;
    for (std::size_t i = 0; i < n; ++i) {
      CallLog c;
      c.time =
          TimePoint(std::chrono::milliseconds(base + static_cast<std::int64_t>(rng() % 50) - 25));
      c.user_id = pick(strings);
      c.key_id = pick(strings);
      c.service = "svc";
      c.instance_id = pick(strings);
      c.status = static_cast<int>(pick(numbers) % 1000);
      c.duration_ms = pick(numbers);
      c.prompt_tokens = pick(numbers);
      c.completion_tokens = pick(numbers);
      if (rng() % 3 != 0) c.ttft_ms = pick(numbers);
      c.tokens_per_second = pick(reals);
      c.error = pick(strings);
      calls.push_back(std::move(c));
    }
    std::string text;
    for (std::size_t i = 0; i < calls.size(); ++i) {
      encode_call_log(text, calls[i], to_millis(calls[i].time), i > 0 ? &calls[i - 1] : nullptr,
                      i > 0 ? to_millis(calls[i - 1].time) : 0);
    }
    std::vector<CallLog> got;
    ASSERT_TRUE(decode_call_logs(text, 100, "svc", got)) << round;
    ASSERT_EQ(got.size(), calls.size()) << round;
    for (std::size_t i = 0; i < calls.size(); ++i) {
      calls[i].id = 100 + static_cast<std::int64_t>(i);
      EXPECT_EQ(got[i], calls[i]) << "round " << round << ", call " << i;
    }
    // Every strict prefix that cuts a line, and a line with a field too many or too few, is
    // refused.
    std::vector<CallLog> scratch;
    const auto cut = text.size() - 1 - rng() % std::min<std::size_t>(text.size(), 8);
    if (text[cut - 1] != '\n') {
      EXPECT_FALSE(decode_call_logs(text.substr(0, cut), 100, "svc", scratch)) << round;
    }
    scratch.clear();
    EXPECT_FALSE(decode_call_logs(text + "1\t=\n", 100, "svc", scratch)) << round;
    scratch.clear();
    std::string extra = text;
    extra.insert(extra.size() - 1, "\t0");
    EXPECT_FALSE(decode_call_logs(extra, 100, "svc", scratch)) << round;
  }
}

TEST(CallLogBlocks, TheFirstCallCannotRepeatAField) {
  std::vector<CallLog> out;
  EXPECT_FALSE(decode_call_logs("5\t=\tk\ti\t200\t1\t2\t3\t\t0.5\t\n", 1, "s", out));
  out.clear();
  EXPECT_FALSE(decode_call_logs("5\tu\tk\ti\t200\t1\t2\t3\t=\t0.5\t\n", 1, "s", out));
  out.clear();
  EXPECT_FALSE(decode_call_logs("5\tu\tk\ti\t200\t1\t2\t3\t\t0.5\tbad\\escape\n", 1, "s", out));
  out.clear();
  ASSERT_TRUE(decode_call_logs("5\tu\tk\ti\t200\t1\t2\t3\t\t0.5\t\\=\n", 1, "s", out));
  EXPECT_EQ(out[0].error, "=");
  EXPECT_EQ(out[0].ttft_ms, std::nullopt);
}

// Tokens per second are written as hexadecimal floats (exact and cheap to write); blocks written
// before that hold decimals, which still read.
TEST(CallLogBlocks, TokensPerSecondAreHexadecimalAndDecimalsStillRead) {
  CallLog log;
  log.user_id = "u";
  log.tokens_per_second = 120.0;
  std::string text;
  encode_call_log(text, log, 5, nullptr, 0);
  EXPECT_NE(text.find("\t1.ep+6\t"), std::string::npos) << text;
  std::vector<CallLog> out;
  ASSERT_TRUE(decode_call_logs(text, 1, "s", out));
  EXPECT_EQ(out[0].tokens_per_second, 120.0);
  out.clear();
  ASSERT_TRUE(
      decode_call_logs("5\tu\tk\ti\t200\t1\t2\t3\t\t33.333333333333336\t\n"
                       "1\t=\t=\t=\t=\t=\t=\t=\t\t-1.8p-1\t\n",
                       1, "s", out));
  EXPECT_EQ(out[0].tokens_per_second, 100.0 / 3);
  EXPECT_EQ(out[1].tokens_per_second, -0.75);
  out.clear();
  EXPECT_FALSE(decode_call_logs("5\tu\tk\ti\t200\t1\t2\t3\t\t1.ep\t\n", 1, "s", out));
}

}  // namespace
}  // namespace openstation::store::detail
