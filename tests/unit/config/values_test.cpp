#include "config/values.hpp"

#include <gtest/gtest.h>

namespace openstation::config {
namespace {

using std::chrono::milliseconds;

TEST(ConfigValues, Durations) {
  EXPECT_EQ(parse_duration("30s").value(), milliseconds(30'000));
  EXPECT_EQ(parse_duration("250ms").value(), milliseconds(250));
  EXPECT_EQ(parse_duration("5m").value(), milliseconds(300'000));
  EXPECT_EQ(parse_duration("1h30m").value(), milliseconds(5'400'000));
  EXPECT_EQ(parse_duration("2d").value(), milliseconds(172'800'000));
  EXPECT_EQ(parse_duration("45").value(), milliseconds(45'000)) << "a bare number is seconds";
  EXPECT_EQ(parse_duration(" 0s ").value(), milliseconds(0));
  EXPECT_EQ(parse_duration("10S").value(), milliseconds(10'000));
  for (const char* bad :
       {"", "s", "5 minutes", "5x", "1.5s", "-3s", "5m3", "99999999999999999999s"}) {
    auto r = parse_duration(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, "config.bad_duration") << bad;
  }
  EXPECT_EQ(format_duration(milliseconds(250)), "250ms");
  EXPECT_EQ(format_duration(milliseconds(30'000)), "30s");
  EXPECT_EQ(format_duration(milliseconds(300'000)), "5m");
  EXPECT_EQ(format_duration(milliseconds(5'400'000)), "1h30m");
  EXPECT_EQ(format_duration(milliseconds(3'723'000)), "1h2m3s");
  EXPECT_EQ(format_duration(milliseconds(0)), "0s");
  EXPECT_EQ(format_duration(std::chrono::hours(24 * 90)), "90d");
  EXPECT_EQ(format_duration(std::chrono::hours(36)), "1d12h");
  EXPECT_EQ(format_duration(std::chrono::hours(24)), "1d");
  for (std::int64_t ms : {1LL, 999LL, 1000LL, 61'000LL, 3'600'000LL, 90'061'500LL, 7'776'000'000LL})
    EXPECT_EQ(parse_duration(format_duration(milliseconds(ms))).value(), milliseconds(ms));
}

TEST(ConfigValues, Sizes) {
  EXPECT_EQ(parse_bytes("64MiB").value(), 64ull << 20);
  EXPECT_EQ(parse_bytes("64 mib").value(), 64ull << 20);
  EXPECT_EQ(parse_bytes("1GiB").value(), 1ull << 30);
  EXPECT_EQ(parse_bytes("500MB").value(), 500'000'000ull);
  EXPECT_EQ(parse_bytes("1048576").value(), 1048576ull);
  EXPECT_EQ(parse_bytes("12B").value(), 12ull);
  for (const char* bad : {"", "MiB", "64 megs", "1.5GiB", "-1"}) {
    auto r = parse_bytes(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, "config.bad_size");
  }
  EXPECT_EQ(format_bytes(64ull << 20), "64MiB");
  EXPECT_EQ(format_bytes(1000), "1000B");
  EXPECT_EQ(format_bytes(0), "0B");
  EXPECT_EQ(format_bytes(3ull << 40), "3TiB");
  for (std::uint64_t v : {0ull, 1ull, 1536ull, 64ull << 20, 500'000'000ull})
    EXPECT_EQ(parse_bytes(format_bytes(v)).value(), v);
}

TEST(ConfigValues, PortRanges) {
  auto r = parse_port_range("40000-40999");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->first, 40000);
  EXPECT_EQ(r->last, 40999);
  EXPECT_EQ(r->size(), 1000u);
  EXPECT_EQ(parse_port_range(" 5 - 5 ").value(), (PortRange{5, 5}));
  EXPECT_EQ(format_port_range(PortRange{41000, 41999}), "41000-41999");
  for (const char* bad : {"40000", "41000-40000", "0-10", "1-70000", "a-b", "-5", "5-"}) {
    auto e = parse_port_range(bad);
    ASSERT_FALSE(e) << bad;
    EXPECT_EQ(e.error().code, "config.bad_range") << bad;
  }
  EXPECT_TRUE((PortRange{10, 20}).overlaps(PortRange{20, 30}));
  EXPECT_FALSE((PortRange{10, 19}).overlaps(PortRange{20, 30}));
}

TEST(ConfigValues, Booleans) {
  for (const char* t : {"true", "YES", "on", "1"}) EXPECT_TRUE(parse_bool(t).value()) << t;
  for (const char* f : {"false", "No", "off", "0"}) EXPECT_FALSE(parse_bool(f).value()) << f;
  EXPECT_EQ(parse_bool("maybe").error().code, "config.bad_bool");
}

TEST(ConfigValues, WordLists) {
  using V = std::vector<std::string>;
  EXPECT_EQ(split_words("python3 -m sglang.launch_server").value(),
            (V{"python3", "-m", "sglang.launch_server"}));
  EXPECT_EQ(split_words("  '/opt/my engine/bin/serve'  --x \"a \\\"b\\\" c\" d\\ e").value(),
            (V{"/opt/my engine/bin/serve", "--x", "a \"b\" c", "d e"}));
  EXPECT_EQ(split_words("''").value(), (V{""}));
  EXPECT_TRUE(split_words("   ").value().empty());
  EXPECT_EQ(split_words("'abc").error().code, "config.bad_words");
  EXPECT_EQ(split_words("\"abc").error().code, "config.bad_words");
  EXPECT_EQ(split_words("abc\\").error().code, "config.bad_words");
  for (const V& words : {V{"vllm"}, V{"a b", "it's", "$HOME", "", "x\"y", "back\\slash"}}) {
    EXPECT_EQ(split_words(join_words(words)).value(), words) << join_words(words);
  }
}

}  // namespace
}  // namespace openstation::config
