// /api/v1/downloads* over real HTTP: a DownloadManager on the test server's store, fetching from
// the fake hub; and DELETE /api/v1/models/{id} freeing a downloaded model's files.

#include "server/api/download_routes.hpp"

#include "server/agent_link.hpp"
#include "server/download_manager.hpp"
#include "support/api_test_server.hpp"
#include "support/fake_hub.hpp"
#include "support/wait_until.hpp"

#include <gtest/gtest.h>

namespace openstation::testing_support {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace json = boost::json;

class DownloadRoutesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = unique_temp_path("dlroutes");
    fs::remove_all(dir_);
    hub_ = std::make_unique<FakeHub>(dir_ / "hub");
    hub_->add_random_file("org/tiny", "w.bin", 200000, 5);
    ApiTestServer::Options o;
    o.config.hub.modelscope_endpoint = hub_->url();
    o.config.hub.huggingface_endpoint = hub_->url();
    o.routes = [this](http::Server& s, server::ApiContext& ctx) {
      server::DownloadManager::Options mo;
      mo.store = &ctx.store();
      mo.hub = ctx.config().hub;
      mo.model_dir = dir_ / "models";
      mo.attempts = 1;
      manager_ = std::make_unique<server::DownloadManager>(mo);
      server::register_download_routes(s, ctx, *manager_);
      server::register_model_routes(s, ctx, agents_);
    };
    o.on_model_deleted = [this](const store::Model& m) { (void)manager_->forget_model(m); };
    api_ = std::make_unique<ApiTestServer>(o);
    manager_->start();
    token_ = api_->admin_token();
  }
  void TearDown() override {
    manager_->stop();
    api_.reset();
    manager_.reset();
    hub_.reset();
    fs::remove_all(dir_);
  }
  json::value get(const std::string& target) {
    auto r = api_->request("GET", target, token_);
    EXPECT_EQ(r.status, 200) << r.body;
    return ApiTestServer::json(r);
  }

  fs::path dir_;
  server::AgentLink agents_;
  std::unique_ptr<FakeHub> hub_;
  std::unique_ptr<server::DownloadManager> manager_;
  std::unique_ptr<ApiTestServer> api_;
  std::string token_;
};

std::string state_of(const json::value& v) {
  return std::string(v.at("state").as_string());
}

TEST_F(DownloadRoutesTest, SubmitFollowAndDelete) {
  auto r = api_->request("POST", "/api/v1/downloads", token_,
                         json::object{{"repo", "org/tiny"}, {"source", "huggingface"}});
  ASSERT_EQ(r.status, 201) << r.body;
  auto created = ApiTestServer::json(r);
  EXPECT_EQ(created.at("name"), "tiny");
  EXPECT_EQ(created.at("source"), "huggingface");
  EXPECT_EQ(created.at("revision"), "main");
  ASSERT_TRUE(
      testing::wait_until([&] { return state_of(get("/api/v1/downloads/tiny")) == "completed"; }));
  auto done = get("/api/v1/downloads/tiny");
  EXPECT_EQ(done.at("bytes_done"), 200000);
  EXPECT_EQ(done.at("percent").as_double(), 100.0);
  EXPECT_EQ(done.at("model_status"), "ready");
  auto list = get("/api/v1/downloads");
  ASSERT_EQ(list.at("items").as_array().size(), 1u);
  auto log = api_->request("GET", "/api/v1/downloads/tiny/log?tail=1", token_);
  ASSERT_EQ(log.status, 200);
  EXPECT_NE(log.body.find("completed"), std::string::npos) << log.body;
  // A completed download cannot be paused.
  auto paused = api_->request("POST", "/api/v1/downloads/tiny/pause", token_, std::string("{}"));
  EXPECT_EQ(paused.status, 409);
  EXPECT_EQ(ApiTestServer::json(paused).at("error").at("code"), "download.bad_state");
  // Deleting the model frees its files.
  ASSERT_TRUE(fs::exists(dir_ / "models/tiny/w.bin"));
  auto del = api_->request("DELETE", "/api/v1/models/tiny", token_);
  EXPECT_EQ(del.status, 204) << del.body;
  EXPECT_FALSE(fs::exists(dir_ / "models/tiny"));
  EXPECT_EQ(api_->request("GET", "/api/v1/downloads/tiny", token_).status, 404);
}

TEST_F(DownloadRoutesTest, PauseResumeCancelOverHttp) {
  FakeHubFault hold;
  hold.hold_after = 50000;
  hub_->set_fault("w.bin", hold);
  auto r = api_->request("POST", "/api/v1/downloads", token_,
                         json::object{{"repo", "org/tiny"}, {"name", "t1"}});
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(ApiTestServer::json(r).at("source"), "modelscope");  // the default source
  ASSERT_TRUE(testing::wait_until([&] { return hub_->held() == 1; }));
  // Every byte sent before the hold point has been written (live progress).
  ASSERT_TRUE(
      testing::wait_until([&] { return get("/api/v1/downloads/t1").at("bytes_done") == 50000; }));
  auto p = api_->request("POST", "/api/v1/downloads/t1/pause", token_, std::string("{}"));
  ASSERT_EQ(p.status, 200) << p.body;
  EXPECT_EQ(state_of(ApiTestServer::json(p)), "paused");
  EXPECT_EQ(ApiTestServer::json(p).at("bytes_done"), 50000);
  auto c = api_->request("POST", "/api/v1/downloads/t1/cancel", token_, std::string("{}"));
  ASSERT_EQ(c.status, 200) << c.body;
  EXPECT_EQ(state_of(ApiTestServer::json(c)), "cancelled");
  EXPECT_EQ(ApiTestServer::json(c).at("bytes_done"), 0);
  hub_->release();
  auto s = api_->request("POST", "/api/v1/downloads/t1/resume", token_, std::string("{}"));
  ASSERT_EQ(s.status, 200) << s.body;
  ASSERT_TRUE(
      testing::wait_until([&] { return state_of(get("/api/v1/downloads/t1")) == "completed"; }));
}

TEST_F(DownloadRoutesTest, BadRequestsGetStableCodes) {
  struct Case {
    json::object body;
    int status;
    const char* code;
  };
  const Case cases[] = {
      {{{"repo", "nope"}}, 400, "hub.bad_repo"},
      {{{"repo", "org/tiny"}, {"source", "github"}}, 400, "hub.unknown_source"},
      {{}, 400, "download.bad_request"},
      {{{"repo", "org/tiny"}, {"catalog", "x"}}, 400, "download.bad_request"},
      {{{"repo", "org/tiny"}, {"name", "bad/name"}}, 400, "model.bad_name"},
      {{{"repo", "org/tiny"}, {"colour", "red"}}, 400, "json.unknown_field"},
      {{{"catalog", "no-such-model"}}, 404, "catalog.unknown_model"},
  };
  for (const auto& c : cases) {
    auto r = api_->request("POST", "/api/v1/downloads", token_, c.body);
    EXPECT_EQ(r.status, c.status) << json::serialize(c.body) << " " << r.body;
    if (r.status >= 400) {
      EXPECT_EQ(ApiTestServer::json(r).at("error").at("code"), c.code) << r.body;
    }
  }
  ASSERT_EQ(
      api_->request("POST", "/api/v1/downloads", token_, json::object{{"repo", "org/tiny"}}).status,
      201);
  auto dup = api_->request("POST", "/api/v1/downloads", token_, json::object{{"repo", "org/tiny"}});
  EXPECT_EQ(dup.status, 409);
  EXPECT_EQ(ApiTestServer::json(dup).at("error").at("code"), "model.name_taken");
  EXPECT_EQ(api_->request("GET", "/api/v1/downloads/none", token_).status, 404);
  EXPECT_EQ(api_->request("GET", "/api/v1/downloads/tiny/log?tail=x", token_).status, 400);
  EXPECT_EQ(api_->request("GET", "/api/v1/downloads", "").status, 401);
}

TEST_F(DownloadRoutesTest, ACatalogIdPicksTheCardsRepository) {
  auto r = api_->request("POST", "/api/v1/downloads", token_,
                         json::object{{"catalog", "deepseek-r1-distill-qwen-1.5b"}});
  ASSERT_EQ(r.status, 201) << r.body;
  auto v = ApiTestServer::json(r);
  EXPECT_EQ(v.at("name"), "deepseek-r1-distill-qwen-1.5b");
  EXPECT_EQ(v.at("repo"), "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B");
  // The fake hub has no such repository: the download fails with the hub's reason.
  ASSERT_TRUE(testing::wait_until([&] {
    return state_of(get("/api/v1/downloads/" + std::string(v.at("id").as_string()))) == "failed";
  }));
  EXPECT_NE(
      std::string(get("/api/v1/downloads/deepseek-r1-distill-qwen-1.5b").at("error").as_string())
          .find("hub.not_found"),
      std::string::npos);
}

}  // namespace
}  // namespace openstation::testing_support
