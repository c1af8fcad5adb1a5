#include "http/message.hpp"
#include "http/client.hpp"
#include "http/server.hpp"

#include <gtest/gtest.h>

namespace openstation::http {
namespace {

TEST(Headers, CaseInsensitiveLookupSetErase) {
  Headers h{{"Content-Type", "application/json"}, {"X-A", "1"}};
  EXPECT_EQ(h.get("content-type").value(), "application/json");
  EXPECT_EQ(h.get_or("x-missing", "d"), "d");
  h.add("x-a", "2");
  EXPECT_EQ(h.size(), 3u);
  h.set("X-A", "3");
  EXPECT_EQ(h.size(), 2u);
  EXPECT_EQ(h.get("x-a").value(), "3");
  EXPECT_TRUE(h.erase("CONTENT-TYPE"));
  EXPECT_FALSE(h.has("content-type"));
}

TEST(Headers, RetainKeepsOnlyTheNamedFieldsInOrder) {
  Headers h{{"Authorization", "Bearer k"},
            {"content-type", "application/json"},
            {"X-A", "1"},
            {"ACCEPT", "text/event-stream"},
            {"Content-Length", "2"},
            {"Accept", "*/*"}};
  constexpr std::string_view kKeep[] = {"Content-Type", "Accept"};
  h.retain(kKeep);
  ASSERT_EQ(h.size(), 3u);
  EXPECT_EQ(h.fields()[0], (Headers::Field{"content-type", "application/json"}));
  EXPECT_EQ(h.fields()[1], (Headers::Field{"ACCEPT", "text/event-stream"}));
  EXPECT_EQ(h.fields()[2], (Headers::Field{"Accept", "*/*"}));
  h.retain({});
  EXPECT_TRUE(h.empty());
}

// Removed fields keep their storage for later ones (Headers' reason to exist for the server's
// per-connection Request); none of them may show again, and a copy or a move carries only the
// live fields.
TEST(Headers, RemovedFieldsNeverComeBack) {
  const std::string long_value(40, 'v');
  Headers h{{"Authorization", "Bearer " + long_value}, {"X-A", "1"}, {"X-B", long_value}};
  constexpr std::string_view kKeep[] = {"X-A"};
  h.retain(kKeep);
  ASSERT_EQ(h.size(), 1u);
  EXPECT_FALSE(h.has("Authorization"));
  EXPECT_FALSE(h.has("X-B"));
  h.add("X-C", "3");
  h.set("X-A", "4");
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h.fields()[0], (Headers::Field{"X-C", "3"}));
  EXPECT_EQ(h.fields()[1], (Headers::Field{"X-A", "4"}));
  EXPECT_FALSE(h.has("Authorization"));

  Headers copy = h;
  EXPECT_EQ(copy.size(), 2u);
  EXPECT_EQ(copy.get("x-c").value(), "3");
  Headers assigned{{"Old", "o"}, {"Older", "oo"}, {"Oldest", "ooo"}};
  assigned = h;
  ASSERT_EQ(assigned.size(), 2u);
  EXPECT_FALSE(assigned.has("Oldest"));
  Headers moved = std::move(assigned);
  EXPECT_EQ(moved.size(), 2u);
  EXPECT_TRUE(assigned.empty());  // NOLINT(bugprone-use-after-move): moved-from is empty
  EXPECT_FALSE(assigned.has("X-A"));

  // A refill over the spare fields shows only the new ones.
  h.assign({});
  EXPECT_TRUE(h.empty());
  EXPECT_FALSE(h.has("X-C"));
  const std::string bearer = "Bearer " + long_value;
  const std::pair<std::string_view, std::string_view> again[] = {
      {"X-1", "1"}, {"X-2", "2"}, {"Authorization", bearer}};
  h.assign(again);
  ASSERT_EQ(h.size(), 3u);
  EXPECT_EQ(h.get("authorization").value(), bearer);
  EXPECT_FALSE(h.has("X-A"));
  EXPECT_FALSE(h.has("X-B"));
}

TEST(Headers, AssignReplacesEveryField) {
  Headers h{{"Content-Type", "application/json"}, {"X-A", "1"}, {"X-B", "2"}};
  const std::pair<std::string_view, std::string_view> two[] = {{"Host", "h"}, {"X-C", "3"}};
  h.assign(two);
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h.fields()[0], (Headers::Field{"Host", "h"}));
  EXPECT_EQ(h.fields()[1], (Headers::Field{"X-C", "3"}));
  EXPECT_FALSE(h.has("x-a"));
  const std::pair<std::string_view, std::string_view> three[] = {
      {"A", "a long value that does not fit in a small string"}, {"B", ""}, {"C", "c"}};
  h.assign(three);
  ASSERT_EQ(h.size(), 3u);
  EXPECT_EQ(h.get("a").value(), "a long value that does not fit in a small string");
  EXPECT_EQ(h.get("b").value(), "");
  h.assign({});
  EXPECT_TRUE(h.empty());
}

TEST(Request, PathQueryAndParams) {
  Request r;
  r.target = "/api/v1/logs?follow=true&name=a%20b+c&empty";
  EXPECT_EQ(r.path(), "/api/v1/logs");
  EXPECT_EQ(r.query_param("follow").value(), "true");
  EXPECT_EQ(r.query_param("name").value(), "a b c");
  EXPECT_EQ(r.query_param("empty").value(), "");
  EXPECT_FALSE(r.query_param("nope"));
}

TEST(Response, ErrorBodyFromCoreError) {
  auto r = Response::error(core::not_found("node.not_found", "no node \"x\"", "id"));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.headers.get("content-type").value(), "application/json");
  EXPECT_EQ(r.body,
            R"({"error":{"code":"node.not_found","message":"no node \"x\"","field":"id"}})");
  auto r2 = Response::error(413, core::invalid("http.body_too_large", "too big"));
  EXPECT_EQ(r2.status, 413);
  EXPECT_EQ(r2.body, R"({"error":{"code":"http.body_too_large","message":"too big"}})");
}

TEST(Router, PatternsParamsWildcard) {
  PathParams p;
  EXPECT_TRUE(Router::match_pattern("/health", "/health", p));
  EXPECT_FALSE(Router::match_pattern("/health", "/health/x", p));
  EXPECT_FALSE(Router::match_pattern("/health", "/healthz", p));
  ASSERT_TRUE(Router::match_pattern("/api/v1/nodes/{id}", "/api/v1/nodes/n%201", p));
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].first, "id");
  EXPECT_EQ(p[0].second, "n 1");
  EXPECT_FALSE(Router::match_pattern("/api/v1/nodes/{id}", "/api/v1/nodes/", p));
  EXPECT_FALSE(Router::match_pattern("/api/v1/nodes/{id}", "/api/v1/nodes/a/b", p));
  ASSERT_TRUE(Router::match_pattern("/v1/*", "/v1/models/x", p));
  EXPECT_EQ(p[0].second, "models/x");
  ASSERT_TRUE(Router::match_pattern("/a/{x}/b/{y}", "/a/1/b/2", p));
  EXPECT_EQ(p[1].second, "2");
}

TEST(Router, MethodNotAllowedListsMethods) {
  Router r;
  r.add({"GET", "/x", [](Request&) -> Awaitable<Response> { co_return Response{}; }, {}});
  r.add({"POST", "/x", [](Request&) -> Awaitable<Response> { co_return Response{}; }, {}});
  PathParams params;
  auto m = r.match("DELETE", "/x", params);
  EXPECT_EQ(m.route, nullptr);
  EXPECT_EQ(m.allowed, (std::vector<std::string>{"GET", "POST"}));
  EXPECT_NE(r.match("POST", "/x", params).route, nullptr);
  EXPECT_TRUE(r.match("GET", "/y", params).allowed.empty());

  // The first route that serves the method wins, with only its own parameters; HEAD is GET's.
  Router g;
  g.add({"GET",
         "/v1/models/{model}",
         [](Request&) -> Awaitable<Response> { co_return Response{}; },
         {}});
  g.add({"POST", "/v1/*", [](Request&) -> Awaitable<Response> { co_return Response{}; }, {}});
  g.add({"*",
         "/v1/models/{other}",
         [](Request&) -> Awaitable<Response> { co_return Response{}; },
         {}});
  // One PathParams for every match, as a server's per-connection Request keeps it.
  using Params = std::vector<std::pair<std::string, std::string>>;
  const auto all = [&] {
    Params out;
    for (std::size_t i = 0; i < params.size(); ++i) out.push_back(params[i]);
    return out;
  };
  auto post = g.match("POST", "/v1/models/m", params);
  ASSERT_NE(post.route, nullptr);
  EXPECT_EQ(post.route->method, "POST");
  EXPECT_EQ(all(), (Params{{"*", "models/m"}}));
  EXPECT_TRUE(post.allowed.empty());
  auto head = g.match("HEAD", "/v1/models/m", params);
  ASSERT_NE(head.route, nullptr);
  EXPECT_EQ(head.route->method, "GET");
  EXPECT_EQ(all(), (Params{{"model", "m"}}));
  auto any = g.match("DELETE", "/v1/models/m", params);
  ASSERT_NE(any.route, nullptr);
  EXPECT_EQ(any.route->method, "*");
  EXPECT_EQ(all(), (Params{{"other", "m"}}));
  EXPECT_EQ(params.get("other"), "m");
  EXPECT_EQ(params.get("model"), "");  // an earlier match's parameter does not linger
  EXPECT_EQ(g.match("GET", "/nowhere", params).route, nullptr);
  EXPECT_TRUE(params.empty());
}

TEST(Url, Parses) {
  auto u = parse_url("http://127.0.0.1:8080/v1/models?x=1");
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, 8080);
  EXPECT_EQ(u->target, "/v1/models?x=1");
  auto d = parse_url("https://example.com");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->port, 443);
  EXPECT_EQ(d->target, "/");
  auto v6 = parse_url("http://[::1]:9/");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 9);
  EXPECT_EQ(parse_url("127.0.0.1:80").error().code, "http.bad_url");
  EXPECT_EQ(parse_url("ftp://x/").error().code, "http.bad_url");
  EXPECT_EQ(parse_url("http://x:99999/").error().code, "http.bad_url");
  EXPECT_EQ(parse_url("http://:80/").error().code, "http.bad_url");
}

TEST(ErrorBody, ParsesWhatErrorBodyWritesAndNothingElse) {
  auto round = parse_error_body(
      error_body(core::Error(core::Errc::invalid_argument, "x.bad", "bad x", "x")));
  EXPECT_TRUE(round.found);
  EXPECT_EQ(round.code, "x.bad");
  EXPECT_EQ(round.message, "bad x");
  EXPECT_EQ(round.field, "x");
  auto partial = parse_error_body(R"({"error": {"message": "only text", "code": 7}})");
  EXPECT_TRUE(partial.found);
  EXPECT_EQ(partial.code, "");  // not a string
  EXPECT_EQ(partial.message, "only text");
  EXPECT_FALSE(parse_error_body("<html>502</html>").found);
  EXPECT_FALSE(parse_error_body(R"({"error": "flat"})").found);
  EXPECT_FALSE(parse_error_body("[1]").found);
  EXPECT_FALSE(parse_error_body("").found);
}

}  // namespace
}  // namespace openstation::http
