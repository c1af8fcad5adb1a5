#include "server/auth/login_limiter.hpp"

#include "support/manual_clock.hpp"

#include <gtest/gtest.h>

#include <string>

namespace openstation::server::auth {
namespace {

using namespace std::chrono_literals;

class LoginLimiterTest : public ::testing::Test {
 protected:
  testing::ManualClock clock_;
};

TEST_F(LoginLimiterTest, LocksAUserOutAfterFiveFailuresForFifteenMinutes) {
  LoginLimiter limiter(clock_);
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(limiter.check("alice", "10.0.0.1")) << i;
    limiter.record_failure("alice", "10.0.0.1");
    clock_.advance(1s);
  }
  ASSERT_TRUE(limiter.check("alice", "10.0.0.1"));
  limiter.record_failure("alice", "10.0.0.1");  // the 5th, at t = 4 s

  const auto r = limiter.check("alice", "10.0.0.9");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "auth.rate_limited");
  EXPECT_EQ(r.error().field, "username");
  // The first failure (t = 0) leaves the window at 15 min; now is t = 4 s.
  const auto l = limiter.lockout("alice", "10.0.0.9");
  ASSERT_TRUE(l);
  EXPECT_EQ(l->scope, Lockout::Scope::user);
  EXPECT_EQ(l->retry_after, 15min - 4s);
  EXPECT_NE(r.error().message.find("896 seconds"), std::string::npos) << r.error().message;

  // Another user from the same address is fine; the same user in other letter case is not
  // (usernames are counted case-insensitively).
  EXPECT_TRUE(limiter.check("bob", "10.0.0.1"));
  EXPECT_FALSE(limiter.check("ALICE", "10.0.0.2"));

  clock_.advance(15min - 4s - 1s);
  EXPECT_FALSE(limiter.check("alice", "10.0.0.1"));
  ASSERT_TRUE(limiter.lockout("alice", "x"));
  EXPECT_EQ(limiter.lockout("alice", "x")->retry_after, 1s);
  clock_.advance(1s);
  EXPECT_TRUE(limiter.check("alice", "10.0.0.1"));
  // The window slides: one more failure relocks until the second failure (t = 1 s) expires.
  limiter.record_failure("alice", "10.0.0.1");
  const auto again = limiter.lockout("alice", "10.0.0.1");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->retry_after, 1s);
}

TEST_F(LoginLimiterTest, RetryAfterRoundsUpToWholeSeconds) {
  LoginLimiter limiter(clock_, {1, 10s, 100, 10s, 100});
  limiter.record_failure("u", "a");
  clock_.advance(2500ms);
  EXPECT_EQ(limiter.lockout("u", "a")->retry_after, 8s);
  clock_.advance(7499ms);
  ASSERT_TRUE(limiter.lockout("u", "a"));
  EXPECT_EQ(limiter.lockout("u", "a")->retry_after, 1s);
  clock_.advance(1ms);
  EXPECT_FALSE(limiter.lockout("u", "a"));
}

TEST_F(LoginLimiterTest, SuccessResetsTheUserButNotTheAddress) {
  LoginLimiter limiter(clock_, {3, 15min, 5, 15min, 100});
  for (int i = 0; i < 3; ++i) limiter.record_failure("alice", "10.0.0.1");
  EXPECT_FALSE(limiter.check("alice", "10.0.0.1"));
  limiter.record_success("alice", "10.0.0.1");
  EXPECT_TRUE(limiter.check("alice", "10.0.0.1"));
  // The address has 3 of its 5; two more failures for other users lock it.
  limiter.record_failure("bob", "10.0.0.1");
  limiter.record_failure("carol", "10.0.0.1");
  const auto r = limiter.check("dave", "10.0.0.1");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "address");
  EXPECT_EQ(limiter.lockout("dave", "10.0.0.1")->scope, Lockout::Scope::address);
  EXPECT_TRUE(limiter.check("dave", "10.0.0.2"));
}

TEST_F(LoginLimiterTest, AddressLimitDefaultsToTwentyAcrossUsers) {
  LoginLimiter limiter(clock_);
  for (int i = 0; i < 19; ++i) limiter.record_failure("user" + std::to_string(i), "203.0.113.7");
  EXPECT_TRUE(limiter.check("someone", "203.0.113.7"));
  limiter.record_failure("user19", "203.0.113.7");
  const auto l = limiter.lockout("someone", "203.0.113.7");
  ASSERT_TRUE(l);
  EXPECT_EQ(l->scope, Lockout::Scope::address);
  EXPECT_EQ(l->retry_after, 15min);
}

TEST_F(LoginLimiterTest, MemoryStaysBounded) {
  LoginLimiter limiter(clock_, {5, 15min, 20, 15min, 100});
  for (int i = 0; i < 5000; ++i) {
    limiter.record_failure("user" + std::to_string(i), "addr" + std::to_string(i));
    clock_.advance(1ms);
  }
  EXPECT_LE(limiter.tracked(), 200u);
  // The newest entries survive eviction and still count.
  for (int i = 0; i < 4; ++i) limiter.record_failure("user4999", "addr4999");
  EXPECT_FALSE(limiter.check("user4999", "elsewhere"));
}

TEST_F(LoginLimiterTest, ExpiredEntriesAreEvictedFirst) {
  LoginLimiter limiter(clock_, {2, 1min, 100, 1min, 4});
  limiter.record_failure("old", "a1");
  limiter.record_failure("old", "a1");  // locked
  clock_.advance(2min);
  limiter.record_failure("n1", "a2");
  limiter.record_failure("n2", "a3");
  limiter.record_failure("n3", "a4");
  limiter.record_failure("n4", "a5");  // the tables are full: "old" goes, not a fresh entry
  EXPECT_EQ(limiter.tracked(), 8u);
  limiter.record_failure("n1", "a2");
  EXPECT_FALSE(limiter.check("n1", "zz"));
  EXPECT_TRUE(limiter.check("old", "zz"));
}

TEST_F(LoginLimiterTest, HugeUsernamesAreCapped) {
  LoginLimiter limiter(clock_, {1, 1min, 100, 1min, 100});
  const std::string long_name(100000, 'x');
  limiter.record_failure(long_name, "a");
  EXPECT_FALSE(limiter.check(long_name, "b"));
  EXPECT_EQ(limiter.tracked(), 2u);
}

}  // namespace
}  // namespace openstation::server::auth
