// ApiContext helpers: times, paging, body parsing, error responses.

#include "server/api/context.hpp"

#include <gtest/gtest.h>

namespace openstation::server {
namespace {

using namespace std::chrono;

TEST(ApiContextTime, FormatsRfc3339WithMilliseconds) {
  const core::Clock::TimePoint t{seconds(1735689600) + milliseconds(123) + nanoseconds(999)};
  EXPECT_EQ(format_time(t), "2025-01-01T00:00:00.123Z");
  EXPECT_EQ(format_time(core::Clock::TimePoint{}), "1970-01-01T00:00:00.000Z");
  EXPECT_TRUE(format_time_or_null(std::nullopt).is_null());
}

TEST(ApiContextTime, ParsesWhatItFormatsAndOffsets) {
  const core::Clock::TimePoint t{seconds(1764280839) + milliseconds(456)};
  auto back = parse_time(format_time(t), "t");
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, t);
  auto offset = parse_time("2025-01-01T02:30:00+02:30", "t");
  ASSERT_TRUE(offset);
  EXPECT_EQ(*offset, core::Clock::TimePoint{seconds(1735689600)});
  auto lower = parse_time("2024-12-31t22:00:00-02:00", "t");
  ASSERT_TRUE(lower);
  EXPECT_EQ(*lower, core::Clock::TimePoint{seconds(1735689600)});
  for (const char* bad :
       {"", "2025-01-01", "2025-13-01T00:00:00Z", "2025-02-30T00:00:00Z", "2025-01-01T00:00:00",
        "2025-01-01T24:00:00Z", "2025-01-01T00:00:00.Z", "2025-01-01T00:00:00Zjunk", "yesterday"}) {
    auto r = parse_time(bad, "since");
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, "api.bad_time");
    EXPECT_EQ(r.error().field, "since");
  }
}

TEST(ApiContextPaging, LimitAndCursor) {
  http::Request req;
  req.target = "/api/v1/users";
  auto def = page_request(req);
  ASSERT_TRUE(def);
  EXPECT_EQ(def->limit, 100u);
  req.target = "/api/v1/users?limit=5&cursor=abc";
  auto some = page_request(req);
  ASSERT_TRUE(some);
  EXPECT_EQ(some->limit, 5u);
  EXPECT_EQ(some->cursor, "abc");
  for (const char* bad : {"?limit=0", "?limit=1001", "?limit=x", "?limit=", "?limit=5x"}) {
    req.target = std::string("/api/v1/users") + bad;
    auto r = page_request(req);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, "api.bad_query");
    EXPECT_EQ(r.error().field, "limit");
  }
}

TEST(ApiContextBody, OnlyJsonObjects) {
  http::Request req;
  req.body = R"({"a": 1})";
  ASSERT_TRUE(parse_body(req));
  for (const char* bad : {"", "  ", "[1]", "\"x\"", "{\"a\":"}) {
    req.body = bad;
    auto r = parse_body(req);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, "api.bad_json");
  }
}

TEST(ApiContextErrors, RateLimitIs429WithRetryAfter) {
  auto r = error_response(core::Error{core::Errc::resource_exhausted, "auth.rate_limited", "wait"},
                          seconds(42));
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.headers.get_or("Retry-After", ""), "42");
  EXPECT_NE(r.body.find("\"code\":\"auth.rate_limited\""), std::string::npos);
  EXPECT_EQ(error_response(core::not_found("user.not_found", "no")).status, 404);
  EXPECT_EQ(error_response(core::Error{core::Errc::conflict, "user.exists", "x"}).status, 409);
}

}  // namespace
}  // namespace openstation::server
