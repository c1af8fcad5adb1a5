#include "server/auth/crypto.hpp"
#include "server/auth/token.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace openstation::server::auth {
namespace {

TEST(Crypto, Sha256MatchesKnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Crypto, Base64UrlHasNoPaddingOrUnsafeCharacters) {
  EXPECT_EQ(base64url(""), "");
  EXPECT_EQ(base64url("f"), "Zg");
  EXPECT_EQ(base64url("fo"), "Zm8");
  EXPECT_EQ(base64url("foo"), "Zm9v");
  EXPECT_EQ(base64url("\xfb\xff"), "-_8");
}

TEST(Crypto, ConstantTimeEqual) {
  EXPECT_TRUE(constant_time_equal("", ""));
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
  EXPECT_FALSE(constant_time_equal("abc", "abcd"));
  EXPECT_FALSE(constant_time_equal("", "a"));
  // A difference in any byte, in the words compared eight bytes at a time and in the tail.
  for (std::size_t n = 1; n <= 40; ++n) {
    const std::string a(n, 'k');
    EXPECT_TRUE(constant_time_equal(a, std::string(n, 'k'))) << n;
    for (std::size_t i = 0; i < n; ++i) {
      for (const char c : {'\0', 'j', static_cast<char>('k' ^ 0x80)}) {
        std::string b = a;
        b[i] = c;
        EXPECT_FALSE(constant_time_equal(a, b)) << n << " " << i;
      }
    }
  }
}

TEST(Crypto, RandomStringUsesOnlyTheAlphabet) {
  const auto s = random_string(1000, "ab");
  EXPECT_EQ(s.size(), 1000u);
  EXPECT_EQ(s.find_first_not_of("ab"), std::string::npos);
  EXPECT_NE(s.find('a'), std::string::npos);
  EXPECT_NE(s.find('b'), std::string::npos);
  EXPECT_EQ(random_bytes(17).size(), 17u);
  EXPECT_NE(random_bytes(32), random_bytes(32));
}

TEST(Tokens, HaveTheKindsPrefixLengthAndAlphabet) {
  const std::pair<TokenKind, std::string> kinds[] = {{TokenKind::session, "oss_"},
                                                     {TokenKind::csrf, "osc_"},
                                                     {TokenKind::cli, "ost_"},
                                                     {TokenKind::join, "osj_"},
                                                     {TokenKind::node, "osn_"}};
  for (const auto& [kind, prefix] : kinds) {
    const auto t = generate_token(kind);
    EXPECT_EQ(t.rfind(prefix, 0), 0u) << t;
    EXPECT_EQ(t.size(), prefix.size() + 43) << t;
    EXPECT_EQ(
        t.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
                            prefix.size()),
        std::string::npos)
        << t;
    EXPECT_TRUE(looks_like_token(t, kind));
  }
}

TEST(Tokens, LooksLikeTokenRejectsOtherShapesAndKinds) {
  const auto t = generate_token(TokenKind::cli);
  EXPECT_FALSE(looks_like_token(t, TokenKind::session));
  EXPECT_FALSE(looks_like_token(t.substr(0, t.size() - 1), TokenKind::cli));
  EXPECT_FALSE(looks_like_token(t + "A", TokenKind::cli));
  auto bad = t;
  bad[10] = '=';
  EXPECT_FALSE(looks_like_token(bad, TokenKind::cli));
  EXPECT_FALSE(looks_like_token("", TokenKind::cli));
}

TEST(Tokens, AreUnique) {
  std::set<std::string> seen;
  for (int i = 0; i < 2000; ++i) seen.insert(generate_token(TokenKind::session));
  EXPECT_EQ(seen.size(), 2000u);
}

TEST(Tokens, HashVerifiesOnlyTheSameToken) {
  const auto t = generate_token(TokenKind::join);
  const auto h = hash_token(t);
  EXPECT_EQ(h.size(), 64u);
  EXPECT_EQ(h, sha256_hex(t));
  EXPECT_NE(h, t);
  EXPECT_TRUE(verify_token(t, h));
  EXPECT_FALSE(verify_token(generate_token(TokenKind::join), h));
  EXPECT_FALSE(verify_token(t, ""));
  EXPECT_FALSE(verify_token(t, h.substr(1)));
}

}  // namespace
}  // namespace openstation::server::auth
