// Property-based tests of the extended-parameter parser, randomised with fixed seeds:
//  - random valid flag sets built from each spec render to argv, join to text, split and parse
//    back to the same flags;
//  - random garbage never crashes and gives either flags (which then round-trip) or a coded error.
#include "engine/args.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>

namespace openstation::engine {
namespace {

/// A small deterministic generator (the standard distributions differ between libraries).
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : gen_(seed) {}
  std::size_t below(std::size_t n) { return n == 0 ? 0 : static_cast<std::size_t>(gen_() % n); }
  bool chance(int percent) { return below(100) < static_cast<std::size_t>(percent); }
  template <class T>
  const T& pick(const std::vector<T>& v) {
    return v[below(v.size())];
  }

 private:
  std::mt19937_64 gen_;
};

std::string random_text(Rng& rng, bool allow_leading_dash) {
  static const std::string kChars = "abcXYZ019 _-./:=,'\"\\$;|&<>(){}[]*?!#~`%@+\t\xe4\xb8\xad";
  std::string s;
  const auto n = rng.below(12);
  for (std::size_t i = 0; i < n; ++i) s += kChars[rng.below(kChars.size())];
  if (!allow_leading_dash && !s.empty() && s[0] == '-') s[0] = 'x';
  return s;
}

std::string random_value(Rng& rng, const FlagSpec& f, FlagType type, bool in_list) {
  if (f.accepts_none && rng.chance(5)) return "None";
  if (!f.special_values.empty() && rng.chance(10)) return rng.pick(f.special_values);
  if (!f.choices.empty() && (type != FlagType::integer || f.choices_strict)) {
    return rng.pick(f.choices);
  }
  switch (type) {
    case FlagType::integer: {
      const auto lo = static_cast<std::int64_t>(f.min.value_or(-1000) + (f.min_exclusive ? 1 : 0));
      const auto hi = static_cast<std::int64_t>(f.max.value_or(static_cast<double>(lo) + 100000));
      const auto v =
          lo + static_cast<std::int64_t>(rng.below(static_cast<std::size_t>(hi - lo + 1)));
      if (f.human_readable && v > 0 && rng.chance(30)) {
        return std::to_string(v % 512 + 1) + std::string(1, "kKmMgG"[rng.below(6)]);
      }
      return std::to_string(v);
    }
    case FlagType::number: {
      const double lo = f.min.value_or(-100);
      const double hi = f.max.value_or(lo + 1000);
      const double v = lo + (hi - lo) * static_cast<double>(rng.below(1000) + 1) / 1000.0;
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.3f", v);
      return buf;
    }
    case FlagType::json: {
      static const std::vector<std::string> kJson = {
          "3", "{\"mode\": 3}", "[1, 2]", "\"a b\"", "null", "{\"a\": {\"b\": [true, 1.5]}}"};
      return rng.pick(kJson);
    }
    default: return random_text(rng, !in_list);
  }
}

ParsedArgs random_valid_args(Rng& rng, const EngineSpec& spec) {
  ParsedArgs args;
  const auto n = rng.below(8);
  for (std::size_t k = 0; k < n; ++k) {
    const FlagSpec& f = spec.flags[rng.below(spec.flags.size())];
    if (f.platform_owned || args.find(f.name) != nullptr) continue;
    core::Result<ParsedFlag> pf = core::Error{};
    if (f.is_bool()) {
      const bool value = f.bool_style == BoolStyle::presence || rng.chance(50);
      pf = make_bool_flag(spec, f.name, value);
    } else {
      std::vector<std::string> values;
      const std::size_t count = f.multi_value ? (f.value_optional ? rng.below(4) : 1 + rng.below(4))
                                              : (f.value_optional && rng.chance(30) ? 0 : 1);
      for (std::size_t i = 0; i < count; ++i) {
        values.push_back(random_value(rng, f, f.multi_value ? f.item_type : f.type, f.multi_value));
      }
      pf = make_flag(spec, f.name, values);
    }
    EXPECT_TRUE(pf) << f.name << ": " << (pf ? "" : pf.error().message);
    if (pf) args.flags.push_back(*pf);
  }
  return args;
}

std::vector<const EngineSpec*> all_specs() {
  std::vector<const EngineSpec*> out;
  for (const auto& s : known_engines()) out.push_back(&s);
  return out;
}

TEST(ArgsProperty, RandomValidFlagSetsRoundTrip) {
  Rng rng(20250601);
  int checked = 0;
  for (const auto* spec : all_specs()) {
    if (spec->open_flags) continue;
    for (int round = 0; round < 400; ++round) {
      const ParsedArgs args = random_valid_args(rng, *spec);
      const auto argv = render(*spec, args);
      // argv → parse
      auto parsed = parse_args(*spec, argv);
      ASSERT_TRUE(parsed) << spec->display_name << ": " << join_command_line(argv) << ": "
                          << parsed.error().message;
      EXPECT_EQ(*parsed, args) << spec->display_name << ": " << join_command_line(argv);
      // argv → text → split → parse
      const auto text = join_command_line(argv);
      auto split = split_command_line(text);
      ASSERT_TRUE(split) << text;
      EXPECT_EQ(*split, argv) << text;
      auto reparsed = parse_args(*spec, std::string_view(text));
      ASSERT_TRUE(reparsed) << text << ": " << reparsed.error().message;
      EXPECT_EQ(*reparsed, args) << text;
      // render is stable.
      EXPECT_EQ(render(*spec, *reparsed), argv) << text;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 6 * 400);  // vLLM 0.7.3, 0.21.0 (also as vLLM CPU), SGLang, llama.cpp
}

std::string garbage(Rng& rng, const EngineSpec& spec) {
  static const std::vector<std::string> kPieces = {
      "--", "-", "=",  " ",  " ",    " ",     "'",    "\"",   "\\",   "k",
      "K",  "1", "-1", ".5", "true", "False", "None", "auto", "$(x)", ";",
      "|",  "{", "}",  "\n", "\t",   "--no-", ".",    "_",    "1e9",  "2.5K"};
  std::string s;
  const auto n = rng.below(14);
  for (std::size_t i = 0; i < n; ++i) {
    switch (rng.below(3)) {
      case 0: s += rng.pick(kPieces); break;
      case 1:
        if (!spec.flags.empty()) {
          const auto& f = spec.flags[rng.below(spec.flags.size())];
          std::string name = f.name;
          if (rng.chance(20)) name = name.substr(0, 2 + rng.below(name.size() - 1));
          s += " " + name + " ";
        }
        break;
      default: s += static_cast<char>(rng.below(256));
    }
  }
  return s;
}

TEST(ArgsProperty, GarbageNeverCrashesAndAlwaysGivesResultOrCodedError) {
  Rng rng(424242);
  int ok = 0;
  int errors = 0;
  for (const auto* spec : all_specs()) {
    for (int round = 0; round < 1500; ++round) {
      const std::string text = garbage(rng, *spec);
      auto r = parse_args(*spec, std::string_view(text));
      if (!r) {
        ++errors;
        EXPECT_TRUE(r.error().code.rfind("args.", 0) == 0) << text << ": " << r.error().code;
        EXPECT_FALSE(r.error().message.empty()) << text;
        EXPECT_EQ(r.error().category, core::Errc::invalid_argument);
        continue;
      }
      ++ok;
      // Whatever parses renders to argv that parses to the same flags.
      const auto argv = render(*spec, *r);
      auto again = parse_args(*spec, argv);
      ASSERT_TRUE(again) << text << " → " << join_command_line(argv) << ": "
                         << again.error().message;
      EXPECT_EQ(*again, *r) << text;
    }
  }
  // The generator reaches both outcomes.
  EXPECT_GT(ok, 100);
  EXPECT_GT(errors, 100);
}

TEST(ArgsProperty, SplitJoinRoundTripsArbitraryTokens) {
  Rng rng(7);
  for (int round = 0; round < 2000; ++round) {
    std::vector<std::string> argv;
    const auto n = rng.below(6);
    for (std::size_t i = 0; i < n; ++i) {
      std::string t;
      const auto len = rng.below(10);
      for (std::size_t j = 0; j < len; ++j) t += static_cast<char>(1 + rng.below(255));
      argv.push_back(t);
    }
    const auto text = join_command_line(argv);
    auto back = split_command_line(text);
    ASSERT_TRUE(back) << text;
    EXPECT_EQ(*back, argv) << text;
  }
}

}  // namespace
}  // namespace openstation::engine
