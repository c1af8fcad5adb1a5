#include "server/auth/password.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

namespace openstation::server::auth {
namespace {

std::vector<std::string> rule_ids(std::string_view pw) {
  std::vector<std::string> ids;
  for (auto r : failed_password_rules(pw)) ids.emplace_back(to_string(r));
  return ids;
}

TEST(PasswordRules, AcceptsAPasswordMeetingEveryRule) {
  EXPECT_TRUE(check_password_rules("abcdef1!"));
  EXPECT_TRUE(check_password_rules("Zz9?Zz9?Zz9?"));
  EXPECT_TRUE(rule_ids("hello#2025").empty());
}

TEST(PasswordRules, NamesEachMissingRule) {
  using V = std::vector<std::string>;
  EXPECT_EQ(rule_ids("abc1!"), (V{"too_short"}));
  EXPECT_EQ(rule_ids("abcdefgh!"), (V{"no_digit"}));
  EXPECT_EQ(rule_ids("ABCDEFG1!"), (V{"no_lower"}));
  EXPECT_EQ(rule_ids("abcdefg12"), (V{"no_special"}));
  EXPECT_EQ(rule_ids(""), (V{"too_short", "no_digit", "no_lower", "no_special"}));
  EXPECT_EQ(rule_ids("ABCDEFGH"), (V{"no_digit", "no_lower", "no_special"}));
  // Only the listed specials count.
  EXPECT_EQ(rule_ids("abcdefg1+"), (V{"no_special"}));
  for (char c : std::string("!@#$%^&*?")) {
    EXPECT_TRUE(rule_ids(std::string("abcdefg1") + c).empty()) << c;
  }
  EXPECT_EQ(rule_ids(std::string(1025, 'a') + "1!"), (V{"too_long"}));
}

TEST(PasswordRules, CountsCharactersNotBytes) {
  // "密码ab1!" is 6 characters in 12 bytes: too short.
  EXPECT_EQ(rule_ids("\xE5\xAF\x86\xE7\xA0\x81"
                     "ab1!"),
            std::vector<std::string>{"too_short"});
  EXPECT_TRUE(rule_ids("\xE5\xAF\x86\xE7\xA0\x81"
                       "abcd1!")
                  .empty());
}

TEST(PasswordRules, ErrorCarriesCodeFieldAndEveryRule) {
  const auto r = check_password_rules("ABCDEFGH");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "auth.weak_password");
  EXPECT_EQ(r.error().category, core::Errc::invalid_argument);
  EXPECT_EQ(r.error().field, "password");
  const auto& m = r.error().message;
  EXPECT_NE(m.find("a digit"), std::string::npos) << m;
  EXPECT_NE(m.find("a lower-case letter"), std::string::npos) << m;
  EXPECT_NE(m.find("!@#$%^&*?"), std::string::npos) << m;
  EXPECT_NE(m.find("[rules: no_digit, no_lower, no_special]"), std::string::npos) << m;
  EXPECT_EQ(m.find("at least 8 characters,"), std::string::npos) << m;
}

TEST(GeneratedPassword, AlwaysMeetsTheRulesAndDiffers) {
  std::set<std::string> seen;
  for (int i = 0; i < 500; ++i) {
    const auto pw = generate_password();
    EXPECT_EQ(pw.size(), 16u);
    EXPECT_TRUE(check_password_rules(pw)) << pw;
    for (char c : pw) EXPECT_EQ(std::string("0O1lI").find(c), std::string::npos) << pw;
    seen.insert(pw);
  }
  EXPECT_EQ(seen.size(), 500u);
}

TEST(PasswordHash, RoundTripsAndRejectsTheWrongPassword) {
  const auto limits = PasswordHashLimits::minimum();
  const auto hash = hash_password("correct horse 1!", limits);
  ASSERT_TRUE(hash) << hash.error().message;
  EXPECT_EQ(hash->rfind("$argon2id$", 0), 0u) << *hash;
  EXPECT_TRUE(verify_password(*hash, "correct horse 1!"));
  EXPECT_FALSE(verify_password(*hash, "correct horse 1?"));
  EXPECT_FALSE(verify_password(*hash, ""));
  // Salted: the same password hashes differently each time.
  const auto again = hash_password("correct horse 1!", limits);
  ASSERT_TRUE(again);
  EXPECT_NE(*hash, *again);
  EXPECT_TRUE(verify_password(*again, "correct horse 1!"));
}

TEST(PasswordHash, GarbageHashesNeverVerify) {
  EXPECT_FALSE(verify_password("", "x"));
  EXPECT_FALSE(verify_password("not a hash", "not a hash"));
  EXPECT_FALSE(verify_password(std::string(500, '$'), "x"));
  EXPECT_FALSE(verify_password("$argon2id$v=19$m=8,t=1,p=1$AAAA$AAAA", "x"));
}

TEST(PasswordHash, RefusesOverlongPasswords) {
  const auto r = hash_password(std::string(2000, 'a'), PasswordHashLimits::minimum());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "auth.weak_password");
}

TEST(PasswordHash, NeedsRehashWhenLimitsChange) {
  const auto min = PasswordHashLimits::minimum();
  const auto hash = hash_password("abcdefg1!", min);
  ASSERT_TRUE(hash);
  EXPECT_FALSE(needs_rehash(*hash, min));
  EXPECT_TRUE(needs_rehash(*hash, PasswordHashLimits::interactive()));
  EXPECT_TRUE(needs_rehash("garbage", min));
  EXPECT_TRUE(needs_rehash("", min));
}

TEST(PasswordHash, DefaultLimitsAreLibsodiumInteractive) {
  const auto d = PasswordHashLimits::interactive();
  EXPECT_EQ(d.ops, 2u);
  EXPECT_EQ(d.mem, 64u * 1024 * 1024);
  const auto m = PasswordHashLimits::moderate();
  EXPECT_GT(m.mem, d.mem);
}

}  // namespace
}  // namespace openstation::server::auth
