// `openstation models download|downloads|pause|resume|cancel|download-log` against a fake API:
// the requests they make, their output, --json and exit codes.
#include "fake_api.hpp"
#include "support/cli_runner.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

namespace openstation::cli {
namespace {

using testing_support::CliEnv;
using testing_support::FakeApi;
using testing_support::run_cli;

constexpr const char* kDownloading = R"({"id":"dl_1","name":"qwen","source":"modelscope",
  "repo":"org/qwen","revision":"master","state":"downloading","bytes_total":2000,
  "bytes_done":500,"files_total":2,"files_done":1,"bytes_per_second":1048576.0,
  "eta_seconds":3725.0,"error":"","path":"/m/qwen"})";

class ModelsDownload : public ::testing::Test {
 protected:
  void start() {
    api_.start();
    env_.save_login(api_.url(), "tok");
  }
  boost::json::value body_of(const std::string& method, const std::string& target) {
    return boost::json::parse(api_.last(method, target).body);
  }
  CliEnv env_;
  FakeApi api_;
};

TEST_F(ModelsDownload, SubmitsByRepoOrCatalogAndShowsProgress) {
  api_.on_json("POST", "/downloads", 201, kDownloading);
  start();
  auto r = run_cli({"models", "download", "org/qwen", "--source", "huggingface", "--revision", "v1",
                    "--name", "qwen"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto b = body_of("POST", "/api/v1/downloads");
  EXPECT_EQ(b.at("repo").as_string(), "org/qwen");
  EXPECT_EQ(b.at("source").as_string(), "huggingface");
  EXPECT_EQ(b.at("revision").as_string(), "v1");
  EXPECT_EQ(b.at("name").as_string(), "qwen");
  EXPECT_TRUE(r.out_has("25.0% of")) << r.out;
  EXPECT_TRUE(r.out_has("1:02:05")) << r.out;  // ETA
  EXPECT_TRUE(r.out_has("(1/2 files)")) << r.out;

  auto c = run_cli({"models", "download", "--catalog", "deepseek-r1-distill-qwen-7b", "--json"});
  ASSERT_EQ(c.code, 0) << c.err;
  auto cb = body_of("POST", "/api/v1/downloads");
  EXPECT_EQ(cb.at("catalog").as_string(), "deepseek-r1-distill-qwen-7b");
  EXPECT_FALSE(cb.as_object().contains("repo"));
  EXPECT_EQ(boost::json::parse(c.out).at("id").as_string(), "dl_1");
}

TEST_F(ModelsDownload, WaitEndsWithTheFailureAndExitOne) {
  api_.on_json("POST", "/downloads", 201, kDownloading);
  api_.on_json("GET", "/downloads/{id}", 200,
               R"({"id":"dl_1","name":"qwen","state":"failed","bytes_total":2000,
                   "bytes_done":500,"error":"download.hash_mismatch: SHA-256 of a.bin is 00"})");
  start();
  auto r = run_cli({"models", "download", "org/qwen", "--wait"});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(r.err_has("download.hash_mismatch")) << r.err;
  EXPECT_TRUE(r.err_has("openstation models resume qwen")) << r.err;
}

TEST_F(ModelsDownload, QueueCommandsAndLog) {
  api_.on_json("GET", "/downloads", 200,
               std::string(R"({"items":[)") + kDownloading + R"(],"next_cursor":""})");
  api_.on_json("POST", "/downloads/{id}/pause", 200, kDownloading);
  api_.on_json("POST", "/downloads/{id}/resume", 200, kDownloading);
  api_.on_json(
      "POST", "/downloads/{id}/cancel", 409,
      R"({"error":{"code":"download.bad_state","message":"cannot cancel download dl_1: it is completed"}})");
  api_.on("GET", "/downloads/{id}/log", [](const http::Request&) {
    return http::Response::text(200, "2026-11-28T01:00:00.000Z started\n");
  });
  start();
  auto list = run_cli({"models", "downloads"});
  ASSERT_EQ(list.code, 0) << list.err;
  EXPECT_TRUE(list.out_has("qwen")) << list.out;
  EXPECT_TRUE(list.out_has("1.0 MiB/s")) << list.out;
  EXPECT_EQ(run_cli({"models", "pause", "qwen"}).code, 0);
  EXPECT_EQ(api_.last("POST", "/api/v1/downloads/qwen/pause").method, "POST");
  EXPECT_EQ(run_cli({"models", "resume", "qwen"}).code, 0);
  auto cancel = run_cli({"models", "cancel", "qwen"});
  EXPECT_EQ(cancel.code, 1);
  EXPECT_TRUE(cancel.err_has("(download.bad_state)")) << cancel.err;
  auto log = run_cli({"models", "download-log", "qwen", "--tail", "5"});
  ASSERT_EQ(log.code, 0) << log.err;
  EXPECT_TRUE(log.out_has("started")) << log.out;
  EXPECT_EQ(run_cli({"models", "pause"}).code, 2);  // the model is required
}

}  // namespace
}  // namespace openstation::cli
