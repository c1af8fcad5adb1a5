// The CLI's REST client against a fake API on loopback: error mapping to categories and exit
// codes, the bearer token, cursor pagination, streaming, network failures; the saved login file;
// the table and time helpers.
#include "cli/rest_client.hpp"
#include "cli/credentials.hpp"
#include "cli/table.hpp"
#include "fake_api.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <sys/stat.h>

namespace openstation::cli {
namespace {

using testing_support::CliEnv;
using testing_support::FakeApi;

TEST(RestErrors, ApiErrorBodyBecomesTheError) {
  auto e = error_from_response(
      400, R"({"error":{"code":"service.bad_replicas","message":"replicas must be 1..64",)"
           R"("field":"replicas"}})");
  EXPECT_EQ(e.category, core::Errc::invalid_argument);
  EXPECT_EQ(e.code, "service.bad_replicas");
  EXPECT_EQ(e.message, "replicas must be 1..64");
  EXPECT_EQ(e.field, "replicas");
  EXPECT_EQ(core::exit_code(e.category), 2);
}

TEST(RestErrors, StatusDecidesTheExitCode) {
  const std::string body = R"({"error":{"code":"x.y","message":"m"}})";
  EXPECT_EQ(core::exit_code(error_from_response(401, body).category), 1);
  EXPECT_EQ(core::exit_code(error_from_response(403, body).category), 1);
  EXPECT_EQ(core::exit_code(error_from_response(404, body).category), 2);
  EXPECT_EQ(core::exit_code(error_from_response(409, body).category), 1);
  EXPECT_EQ(core::exit_code(error_from_response(422, body).category), 2);
  EXPECT_EQ(core::exit_code(error_from_response(503, body).category), 1);
  EXPECT_EQ(error_from_response(429, body).category, core::Errc::resource_exhausted);
}

TEST(RestErrors, NonJsonBodyIsDescribed) {
  auto e = error_from_response(502, "<html>Bad gateway</html>");
  EXPECT_EQ(e.code, "api.http_502");
  EXPECT_EQ(e.category, core::Errc::unavailable);
  EXPECT_NE(e.message.find("502"), std::string::npos);
  EXPECT_NE(e.message.find("Bad gateway"), std::string::npos);
}

TEST(RestClient, SendsTheBearerTokenAndParsesJson) {
  FakeApi api;
  api.on_json("GET", "/auth/me", 200, R"({"username":"alice"})");
  api.on("POST", "/services",
         [](const http::Request& r) { return http::Response::json(201, r.body); });
  api.on_json("DELETE", "/keys/{id}", 204, "");
  api.start();
  RestClient client({api.url(), "tok-1", {}, std::chrono::seconds(5)});
  auto me = client.get("/auth/me");
  ASSERT_TRUE(me) << me.error().message;
  EXPECT_EQ(str_field(*me, "username"), "alice");
  EXPECT_EQ(api.last("GET", "/api/v1/auth/me").authorization, "Bearer tok-1");

  auto created = client.post("/services", boost::json::object{{"name", "chat"}});
  ASSERT_TRUE(created);
  EXPECT_EQ(str_field(*created, "name"), "chat");
  EXPECT_EQ(api.last("POST", "/api/v1/services").content_type, "application/json");

  auto deleted = client.del("/keys/k1");
  ASSERT_TRUE(deleted);
  EXPECT_TRUE(deleted->is_null());
}

TEST(RestClient, ErrorRepliesBecomeErrors) {
  FakeApi api;
  api.on_json("GET", "/nodes/{id}", 404,
              R"({"error":{"code":"node.not_found","message":"no node gpu9"}})");
  api.start();
  RestClient client({api.url(), "t", {}, std::chrono::seconds(5)});
  auto r = client.get("/nodes/gpu9");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "node.not_found");
  EXPECT_EQ(r.error().category, core::Errc::not_found);
}

TEST(RestClient, ListAllFollowsCursors) {
  FakeApi api;
  api.on("GET", "/users", [](const http::Request& r) {
    const auto cursor = r.query_param("cursor").value_or("");
    if (cursor.empty()) {
      return http::Response::json(200, R"({"items":[{"username":"a"}],"next_cursor":"c 1"})");
    }
    if (cursor == "c 1") {
      return http::Response::json(200, R"({"items":[{"username":"b"}],"next_cursor":""})");
    }
    return http::Response::json(400, R"({"error":{"code":"api.bad_query","message":"cursor"}})");
  });
  api.start();
  RestClient client({api.url(), "t", {}, std::chrono::seconds(5)});
  auto items = client.list_all("/users");
  ASSERT_TRUE(items) << items.error().message;
  ASSERT_EQ(items->size(), 2u);
  EXPECT_EQ(str_field((*items)[1], "username"), "b");
  EXPECT_EQ(api.last("GET", "/api/v1/users").target, "/api/v1/users?cursor=c%201");
}

TEST(RestClient, ListWithoutItemsIsABadReply) {
  FakeApi api;
  api.on_json("GET", "/users", 200, R"({"users":[]})");
  api.start();
  auto items = RestClient({api.url(), "t", {}, std::chrono::seconds(5)}).list_all("/users");
  ASSERT_FALSE(items);
  EXPECT_EQ(items.error().code, "cli.bad_reply");
}

TEST(RestClient, StreamDeliversTheBodyPieceByPiece) {
  FakeApi api;
  api.on_stream("GET", "/instances/{id}/logs", {"line 1\n", "line 2\n", "line 3\n"});
  api.start();
  RestClient client({api.url(), "t", {}, std::chrono::seconds(5)});
  std::string got;
  int pieces = 0;
  auto r = client.stream(
      "/instances/i1/logs?follow=1",
      [&](std::string_view d) {
        got += d;
        ++pieces;
        return true;
      },
      std::chrono::seconds(5));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(got, "line 1\nline 2\nline 3\n");
  EXPECT_GE(pieces, 1);
}

TEST(RestClient, StreamErrorStatusIsAnError) {
  FakeApi api;
  api.on_json("GET", "/instances/{id}/logs", 404,
              R"({"error":{"code":"instance.not_found","message":"no instance i9"}})");
  api.start();
  RestClient client({api.url(), "t", {}, std::chrono::seconds(5)});
  auto r = client.stream(
      "/instances/i9/logs", [](std::string_view) { return true; }, std::chrono::seconds(5));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "instance.not_found");
}

TEST(RestClient, UnreachableServerSaysWhichAndHowToFix) {
  std::string url;
  {
    FakeApi api;
    api.start();
    url = api.url();
  }  // stopped: nothing listens on that port now
  RestClient client({url, "t", {}, std::chrono::seconds(5)});
  auto r = client.get("/nodes");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().category, core::Errc::unavailable);
  EXPECT_EQ(r.error().code, "http.connect");
  EXPECT_NE(r.error().message.find(url), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("--server"), std::string::npos);
}

TEST(Credentials, PathFollowsXdgThenHome) {
  EXPECT_EQ(credentials_path({"/x/cfg", "/home/u"})->string(), "/x/cfg/openstation/cli.json");
  EXPECT_EQ(credentials_path({"relative", "/home/u"})->string(),
            "/home/u/.config/openstation/cli.json");
  EXPECT_EQ(credentials_path({std::nullopt, "/home/u"})->string(),
            "/home/u/.config/openstation/cli.json");
  auto none = credentials_path({std::nullopt, std::nullopt});
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, "cli.no_config_dir");
}

TEST(Credentials, SaveAndLoadWithMode0600) {
  CliEnv env;
  const auto file = env.credentials();
  auto missing = load_login(file);
  ASSERT_TRUE(missing);
  EXPECT_FALSE(missing->has_value());

  SavedLogin s{"https://h:32206", "admin", "tok", "2026-11-28T00:00:00Z", "sha256:AB", ""};
  ASSERT_TRUE(save_login(file, s));
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(file.parent_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  auto back = load_login(file);
  ASSERT_TRUE(back && back->has_value());
  EXPECT_EQ((*back)->token, "tok");
  EXPECT_EQ((*back)->fingerprint, "sha256:AB");
  EXPECT_EQ((*back)->server, "https://h:32206");
}

TEST(Credentials, DamagedFileIsReported) {
  CliEnv env;
  std::filesystem::create_directories(env.credentials().parent_path());
  std::ofstream(env.credentials()) << "{\"server\": 12";
  auto r = load_login(env.credentials());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "cli.credentials_invalid");
  EXPECT_NE(r.error().message.find(env.credentials().string()), std::string::npos);
}

TEST(Credentials, ServerUrlIsNormalised) {
  EXPECT_EQ(*normalize_server_url("10.0.0.5:32206"), "https://10.0.0.5:32206");
  EXPECT_EQ(*normalize_server_url("http://h:1/"), "http://h:1");
  EXPECT_EQ(*normalize_server_url("https://h:32206/api/v1/"), "https://h:32206");
  EXPECT_FALSE(normalize_server_url(""));
  EXPECT_FALSE(normalize_server_url("ftp://h"));
  auto path = normalize_server_url("http://h:1/ui");
  ASSERT_FALSE(path);
  EXPECT_EQ(path.error().field, "--server");
}

TEST(Table, AlignsColumnsAndTrimsTrailingSpace) {
  Table t({"NAME", "SIZE", "NOTE"});
  t.align(1, Table::Align::right);
  t.add({"a", "1 GiB", ""});
  t.add({"longer×", "10.5 GiB", "x"});
  EXPECT_EQ(t.render(),
            "NAME         SIZE  NOTE\n"
            "a           1 GiB\n"
            "longer×  10.5 GiB  x\n");
}

TEST(Table, HumanSizes) {
  EXPECT_EQ(human_mib(512), "512 MiB");
  EXPECT_EQ(human_mib(81920), "80.0 GiB");
  EXPECT_EQ(human_mib(2 * 1024 * 1024), "2.0 TiB");
  EXPECT_EQ(human_bytes(900), "900 B");
  EXPECT_EQ(human_bytes(3ull * 1024 * 1024 * 1024 + 400ull * 1024 * 1024), "3.4 GiB");
}

TEST(Table, HumanTimes) {
  const auto now = *parse_rfc3339("2026-11-27T22:00:00Z");
  EXPECT_EQ(human_time("2026-11-27T21:59:58.500Z", now), "just now");
  EXPECT_EQ(human_time("2026-11-27T21:59:18Z", now), "42s ago");
  EXPECT_EQ(human_time("2026-11-27T21:55:00.000Z", now), "5m ago");
  EXPECT_EQ(human_time("2026-11-27T19:00:00+00:00", now), "3h ago");
  EXPECT_EQ(human_time("2026-11-25T22:00:00Z", now), "2d ago");
  EXPECT_EQ(human_time("2026-12-03T22:00:00Z", now), "in 6d");
  EXPECT_EQ(human_time("", now), "-");
  EXPECT_EQ(human_time("yesterday", now), "yesterday");
  EXPECT_EQ(*parse_rfc3339("2026-11-27T23:00:00+01:00"), now);
  EXPECT_FALSE(parse_rfc3339("2026-13-27T23:00:00Z"));
}

TEST(Table, CellsFromJson) {
  const auto v = boost::json::parse(
      R"({"s":"x","n":3,"b":true,"null":null,"a":["p","q"],"o":{"name":"gpu1"},"e":""})");
  EXPECT_EQ(cell(v, "s"), "x");
  EXPECT_EQ(cell(v, "n"), "3");
  EXPECT_EQ(cell(v, "b"), "yes");
  EXPECT_EQ(cell(v, "null"), "-");
  EXPECT_EQ(cell(v, "missing"), "-");
  EXPECT_EQ(cell(v, "a"), "p,q");
  EXPECT_EQ(cell(v, "o"), "gpu1");
  EXPECT_EQ(cell(v, "e"), "-");
}

}  // namespace
}  // namespace openstation::cli
