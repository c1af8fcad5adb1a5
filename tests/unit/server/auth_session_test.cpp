#include "server/auth/session.hpp"

#include "server/auth/token.hpp"

#include <gtest/gtest.h>

#include <string>

namespace openstation::server::auth {
namespace {

using namespace std::chrono_literals;

TEST(Session, GeneratesDistinctTokensWithTheirHashes) {
  const auto a = generate_session();
  const auto b = generate_session();
  EXPECT_TRUE(looks_like_token(a.session_token, TokenKind::session));
  EXPECT_TRUE(looks_like_token(a.csrf_token, TokenKind::csrf));
  EXPECT_TRUE(verify_token(a.session_token, a.session_hash));
  EXPECT_TRUE(verify_token(a.csrf_token, a.csrf_hash));
  EXPECT_NE(a.session_token, b.session_token);
  EXPECT_NE(a.csrf_token, b.csrf_token);
  EXPECT_NE(a.session_token, a.csrf_token);
}

TEST(Session, AliveUntilIdleOrAbsoluteTimeout) {
  const core::Clock::TimePoint t0{std::chrono::seconds(1735689600)};
  const SessionLifetime life{1h, 24h};
  EXPECT_TRUE(session_alive(t0, t0, t0, life));
  EXPECT_TRUE(session_alive(t0, t0, t0 + 59min, life));
  EXPECT_FALSE(session_alive(t0, t0, t0 + 1h, life));
  EXPECT_TRUE(session_alive(t0, t0 + 23h, t0 + 23h + 30min, life));
  EXPECT_FALSE(session_alive(t0, t0 + 23h + 50min, t0 + 24h, life));
}

TEST(Cookies, SetCookieCarriesTheSecurityAttributes) {
  EXPECT_EQ(format_set_cookie("os_session", "oss_abc", {true, true, 3600s}),
            "os_session=oss_abc; Path=/; Max-Age=3600; HttpOnly; Secure; SameSite=Strict");
  EXPECT_EQ(format_set_cookie("os_csrf", "osc_x", {false, false, std::nullopt}),
            "os_csrf=osc_x; Path=/; SameSite=Strict");
}

TEST(Cookies, LoginAndLogoutCookies) {
  const auto s = generate_session();
  const auto set = login_cookies(s, /*secure=*/true, SessionLifetime{1h, 48h});
  ASSERT_EQ(set.size(), 2u);
  EXPECT_EQ(set[0], "os_session=" + s.session_token +
                        "; Path=/; Max-Age=172800; HttpOnly; Secure; SameSite=Strict");
  EXPECT_EQ(set[1],
            "os_csrf=" + s.csrf_token + "; Path=/; Max-Age=172800; Secure; SameSite=Strict");
  const auto plain = login_cookies(s, /*secure=*/false);
  EXPECT_EQ(plain[0].find("Secure"), std::string::npos);
  EXPECT_NE(plain[0].find("HttpOnly"), std::string::npos);

  const auto out = logout_cookies(true);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0], "os_session=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict");
  EXPECT_EQ(out[1], "os_csrf=; Path=/; Max-Age=0; Secure; SameSite=Strict");
}

TEST(Cookies, ParsesTheCookieHeader) {
  const auto pairs = parse_cookie_header(" a=1; os_session=oss_x ;b=\"q v\";flag; =nameless; c=");
  ASSERT_EQ(pairs.size(), 4u);
  EXPECT_EQ(pairs[0].first, "a");
  EXPECT_EQ(pairs[0].second, "1");
  EXPECT_EQ(pairs[1].first, "os_session");
  EXPECT_EQ(pairs[1].second, "oss_x");
  EXPECT_EQ(pairs[2].second, "q v");
  EXPECT_EQ(pairs[3].first, "c");
  EXPECT_EQ(pairs[3].second, "");
  EXPECT_EQ(find_cookie("a=1; os_session=one; os_session=two", "os_session"), "one");
  EXPECT_FALSE(find_cookie("a=1", "os_session"));
  EXPECT_FALSE(find_cookie("", "os_session"));
  EXPECT_TRUE(parse_cookie_header("").empty());
  EXPECT_FALSE(find_cookie("xos_session=1", "os_session"));
}

TEST(Credentials, BearerWinsOverTheCookie) {
  EXPECT_EQ(bearer_token("Bearer ost_abc"), "ost_abc");
  EXPECT_EQ(bearer_token("bearer   ost_abc  "), "ost_abc");
  EXPECT_FALSE(bearer_token("Basic dXNlcjpwYXNz"));
  EXPECT_FALSE(bearer_token("Bearer "));
  EXPECT_FALSE(bearer_token(""));

  auto c = find_credential("Bearer ost_abc", "os_session=oss_x");
  EXPECT_EQ(c.method, AuthMethod::bearer);
  EXPECT_EQ(c.token, "ost_abc");
  c = find_credential("", "theme=dark; os_session=oss_x");
  EXPECT_EQ(c.method, AuthMethod::cookie);
  EXPECT_EQ(c.token, "oss_x");
  c = find_credential("Basic xyz", "os_session=");
  EXPECT_EQ(c.method, AuthMethod::none);
  c = find_credential("", "");
  EXPECT_EQ(c.method, AuthMethod::none);
}

/// The CSRF rule as a table: method × how the request authenticated × what the header holds.
TEST(Csrf, RuleTable) {
  const auto s = generate_session();
  const auto other = generate_session();
  enum class Header { absent, empty, right, wrong };
  struct Row {
    const char* method;
    AuthMethod auth;
    Header header;
    bool ok;
  };
  const Row rows[] = {
      {"GET", AuthMethod::cookie, Header::absent, true},
      {"HEAD", AuthMethod::cookie, Header::absent, true},
      {"OPTIONS", AuthMethod::cookie, Header::wrong, true},
      {"POST", AuthMethod::cookie, Header::absent, false},
      {"POST", AuthMethod::cookie, Header::empty, false},
      {"POST", AuthMethod::cookie, Header::wrong, false},
      {"POST", AuthMethod::cookie, Header::right, true},
      {"PUT", AuthMethod::cookie, Header::absent, false},
      {"PATCH", AuthMethod::cookie, Header::right, true},
      {"DELETE", AuthMethod::cookie, Header::wrong, false},
      {"DELETE", AuthMethod::cookie, Header::right, true},
      {"get", AuthMethod::cookie, Header::absent, false},  // methods are case-sensitive
      {"POST", AuthMethod::bearer, Header::absent, true},
      {"DELETE", AuthMethod::bearer, Header::wrong, true},
      {"POST", AuthMethod::none, Header::absent, true},
  };
  for (const auto& row : rows) {
    CsrfInput in{row.method, row.auth, std::nullopt, s.csrf_hash};
    switch (row.header) {
      case Header::absent: break;
      case Header::empty: in.csrf_header = ""; break;
      case Header::right: in.csrf_header = s.csrf_token; break;
      case Header::wrong: in.csrf_header = other.csrf_token; break;
    }
    const auto r = check_csrf(in);
    EXPECT_EQ(static_cast<bool>(r), row.ok) << row.method << " auth=" << static_cast<int>(row.auth)
                                            << " header=" << static_cast<int>(row.header);
    if (!r) {
      EXPECT_EQ(r.error().code, "auth.csrf_failed");
      EXPECT_EQ(r.error().category, core::Errc::forbidden);
      EXPECT_EQ(r.error().field, "X-CSRF-Token");
    }
  }
}

TEST(Csrf, ASessionWithoutAStoredHashNeverPasses) {
  const auto s = generate_session();
  EXPECT_FALSE(check_csrf({"POST", AuthMethod::cookie, s.csrf_token, ""}));
  EXPECT_FALSE(check_csrf({"POST", AuthMethod::cookie, s.csrf_hash, s.csrf_hash}));
}

}  // namespace
}  // namespace openstation::server::auth
