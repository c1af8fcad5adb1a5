// Node sync's server side over real HTTP: GET /api/v1/agent/models/{id}/manifest and
// /api/v1/agent/models/{id}/files/* (ranges, 416, path traversal, node-token auth), the store's
// marker and the manifest cache; and the pure helpers (parse_byte_range).

#include "server/model_files.hpp"

#include "download/fetch.hpp"
#include "server/api/routes.hpp"
#include "server/auth/token.hpp"
#include "unit/server/node_fixture.hpp"

#include <gtest/gtest.h>

#include <fstream>

namespace openstation::testing_support {
namespace {

namespace fs = std::filesystem;
using server::ByteRange;
using server::parse_byte_range;

std::string pattern(std::size_t n, int seed) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 31 + seed) & 0xff);
  return s;
}

void write(const fs::path& p, const std::string& bytes) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << bytes;
}

class ModelFileRoutesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    notifier_ = std::make_unique<server::AssignmentNotifier>(clock_);
    ApiTestServer::Options o;
    o.routes = [this](http::Server& s, server::ApiContext& ctx) {
      model_dir_ = config::model_dir(ctx.config());
      server::register_node_routes(s, ctx, *notifier_, trigger_, agents_);
      server::register_model_file_routes(s, ctx);
    };
    api_ = std::make_unique<ApiTestServer>(std::move(o));
    a_ = pattern(3 * 1048576 + 17, 1);
    b_ = "{\"hidden_size\": 8}";
    write(model_dir_ / "tiny" / "w.bin", a_);
    write(model_dir_ / "tiny" / "sub" / "config.json", b_);
    write(model_dir_.parent_path() / "secret.txt", "not a model file");
    model_ = add_model("tiny", (model_dir_ / "tiny").string());

    auto jt = api_->request("POST", "/api/v1/join-tokens", api_->admin_token(), std::string());
    ASSERT_EQ(jt.status, 201) << jt.body;
    agent::RegisterRequest req;
    req.join_token = std::string(ApiTestServer::json(jt).at("token").as_string());
    req.name = "n1";
    req.inventory_json = gpu_inventory("n1");
    auto id = agent::AgentClient(api_->url(""), std::chrono::seconds(10)).register_node(req);
    ASSERT_TRUE(id) << id.error().message;
    node_token_ = id->node_token;
  }
  void TearDown() override {
    notifier_->shutdown();
    api_.reset();
  }

  store::Model add_model(const std::string& name, const std::string& path,
                         store::ModelStatus status = store::ModelStatus::ready,
                         std::optional<std::string> node = std::nullopt) {
    store::Model m;
    m.name = name;
    m.source = store::ModelSource::huggingface;
    m.path = path;
    m.node_id = node;
    m.status = status;
    auto c = api_->store().models().create(m);
    EXPECT_TRUE(c) << c.error().message;
    return *c;
  }

  http::Response get(const std::string& target, http::Headers h = {}) {
    return api_->request("GET", target, node_token_, {}, std::move(h));
  }
  std::string files(const std::string& rel) {
    return "/api/v1/agent/models/" + model_.id + "/files/" + rel;
  }
  static std::string code_of(const http::Response& r) {
    return http::parse_error_body(r.body).code;
  }

  core::SystemClock clock_;
  CountingTrigger trigger_;
  server::AgentLink agents_;
  std::unique_ptr<server::AssignmentNotifier> notifier_;
  std::unique_ptr<ApiTestServer> api_;
  fs::path model_dir_;
  store::Model model_;
  std::string node_token_;
  std::string a_, b_;
};

TEST_F(ModelFileRoutesTest, ManifestListsFilesWithSizesHashesAndTheStoreId) {
  auto r = get("/api/v1/agent/models/" + model_.id + "/manifest");
  ASSERT_EQ(r.status, 200) << r.body;
  auto m = agent::parse_model_manifest(r.body);
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->model_id, model_.id);
  EXPECT_EQ(m->path, model_.path);
  EXPECT_FALSE(m->single_file);
  EXPECT_EQ(m->store_root, model_dir_.string());
  EXPECT_EQ(m->store_id, agent::read_store_id(model_dir_).value_or("?"));
  EXPECT_TRUE(m->store_id.starts_with("store_"));
  ASSERT_EQ(m->files.size(), 2u);
  EXPECT_EQ(m->files[0].path, "sub/config.json");
  EXPECT_EQ(m->files[0].size, static_cast<std::int64_t>(b_.size()));
  EXPECT_EQ(m->files[1].path, "w.bin");
  EXPECT_EQ(m->files[1].size, static_cast<std::int64_t>(a_.size()));
  EXPECT_EQ(m->files[1].sha256, *download::sha256_file(model_dir_ / "tiny" / "w.bin"));
  // Kept beside the store, recomputed when a file changes.
  EXPECT_TRUE(fs::exists(model_dir_ / ".manifests" / (model_.id + ".json")));
  write(model_dir_ / "tiny" / "w.bin", pattern(5000, 9));
  auto again =
      agent::parse_model_manifest(get("/api/v1/agent/models/" + model_.id + "/manifest").body);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->files[1].size, 5000);
  EXPECT_EQ(again->files[1].sha256, *download::sha256_file(model_dir_ / "tiny" / "w.bin"));
}

TEST_F(ModelFileRoutesTest, ManifestOfASingleFileModel) {
  write(model_dir_ / "one.gguf", pattern(777, 3));
  auto m = add_model("one", (model_dir_ / "one.gguf").string());
  auto r = get("/api/v1/agent/models/" + m.id + "/manifest");
  ASSERT_EQ(r.status, 200) << r.body;
  auto parsed = agent::parse_model_manifest(r.body);
  ASSERT_TRUE(parsed);
  EXPECT_TRUE(parsed->single_file);
  ASSERT_EQ(parsed->files.size(), 1u);
  EXPECT_EQ(parsed->files[0].path, "one.gguf");
  auto f = get("/api/v1/agent/models/" + m.id + "/files/one.gguf");
  EXPECT_EQ(f.status, 200);
  EXPECT_EQ(f.body, pattern(777, 3));
}

TEST_F(ModelFileRoutesTest, ManifestRefusesWhatNodesCannotPull) {
  auto on_node = add_model("elsewhere", "/srv/m", store::ModelStatus::ready, std::string("nd_x"));
  auto r = get("/api/v1/agent/models/" + on_node.id + "/manifest");
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(code_of(r), "model_files.not_on_server");
  auto pending = add_model("later", (model_dir_ / "tiny").string(), store::ModelStatus::pending);
  r = get("/api/v1/agent/models/" + pending.id + "/manifest");
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(code_of(r), "model_files.not_ready");
  auto gone = add_model("gone", (model_dir_ / "gone").string());
  r = get("/api/v1/agent/models/" + gone.id + "/manifest");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(code_of(r), "model_files.missing");
  r = get("/api/v1/agent/models/mdl_nope/manifest");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(code_of(r), "model.not_found");
}

TEST_F(ModelFileRoutesTest, OnlyANodeTokenMayPull) {
  auto r = api_->request("GET", "/api/v1/agent/models/" + model_.id + "/manifest", "");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(code_of(r), "node.bad_token");
  r = api_->request("GET", files("w.bin"), api_->admin_token());
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(code_of(r), "node.bad_token");
  r = api_->request("GET", files("w.bin"),
                    server::auth::generate_token(server::auth::TokenKind::node));  // unknown
  EXPECT_EQ(r.status, 401);
}

TEST_F(ModelFileRoutesTest, FilesStreamWholeOrByRange) {
  auto r = get(files("w.bin"));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body, a_);
  EXPECT_EQ(r.headers.get_or("Accept-Ranges", ""), "bytes");

  http::Headers h;
  h.set("Range", "bytes=2099000-");
  r = get(files("w.bin"), h);
  ASSERT_EQ(r.status, 206);
  EXPECT_EQ(r.body, a_.substr(2099000));
  EXPECT_EQ(r.headers.get_or("Content-Range", ""), "bytes 2099000-3145744/3145745");

  h.set("Range", "bytes=10-19");
  r = get(files("w.bin"), h);
  ASSERT_EQ(r.status, 206);
  EXPECT_EQ(r.body, a_.substr(10, 10));

  h.set("Range", "bytes=-5");
  r = get(files("w.bin"), h);
  ASSERT_EQ(r.status, 206);
  EXPECT_EQ(r.body, a_.substr(a_.size() - 5));

  r = get(files("sub/config.json"));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body, b_);
}

TEST_F(ModelFileRoutesTest, UnsatisfiableRangesAre416) {
  for (const char* range :
       {"bytes=3145745-", "bytes=5-2", "items=0-1", "bytes=0-1,5-6", "bytes=x-"}) {
    http::Headers h;
    h.set("Range", range);
    auto r = get(files("w.bin"), h);
    EXPECT_EQ(r.status, 416) << range;
    EXPECT_EQ(code_of(r), "model_files.bad_range") << range;
    EXPECT_EQ(r.headers.get_or("Content-Range", ""), "bytes */3145745") << range;
  }
}

TEST_F(ModelFileRoutesTest, PathsCannotLeaveTheModel) {
  auto r = get(files("%2E%2E/secret.txt"));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(code_of(r), "model_files.bad_path");
  r = get(files("sub/..%2F..%2Fsecret.txt"));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(code_of(r), "model_files.bad_path");
  fs::create_symlink(model_dir_.parent_path() / "secret.txt", model_dir_ / "tiny" / "link");
  r = get(files("link"));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(code_of(r), "model_files.bad_path");
  r = get(files("nope.bin"));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(code_of(r), "model_files.not_found");
}

TEST(ByteRangeTest, ParsesTheFormsAgentsSend) {
  EXPECT_EQ(*parse_byte_range("", 10), std::nullopt);
  EXPECT_EQ(*parse_byte_range("bytes=3-", 10), (ByteRange{3, 9}));
  EXPECT_EQ(*parse_byte_range("bytes=3-4", 10), (ByteRange{3, 4}));
  EXPECT_EQ(*parse_byte_range("bytes=3-400", 10), (ByteRange{3, 9}));
  EXPECT_EQ(*parse_byte_range("bytes=-4", 10), (ByteRange{6, 9}));
  EXPECT_EQ(*parse_byte_range("bytes=-40", 10), (ByteRange{0, 9}));
  for (const char* bad : {"bytes=10-", "bytes=4-3", "bytes=-0", "bytes=a-", "bytes=1-2,3-4",
                          "lines=1-2", "bytes=", "bytes=--1"}) {
    auto r = parse_byte_range(bad, 10);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, "model_files.bad_range") << bad;
  }
  EXPECT_FALSE(parse_byte_range("bytes=0-", 0));
}

TEST(StoreIdTest, WrittenOnceAndKept) {
  const auto dir = unique_temp_path("storeid");
  fs::remove_all(dir);
  auto a = server::ensure_store_id(dir);
  ASSERT_TRUE(a) << a.error().message;
  auto b = server::ensure_store_id(dir);
  ASSERT_TRUE(b);
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(agent::read_store_id(dir), *a);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace openstation::testing_support
