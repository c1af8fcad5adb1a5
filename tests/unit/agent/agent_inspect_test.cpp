// The agent API's POST /api/v1/models/inspect and the model summary's JSON codec.

#include "agent/agent_api.hpp"
#include "agent/model_inspect.hpp"
#include "agent/supervisor.hpp"
#include "http/client.hpp"
#include "model/model_files.hpp"
#include "support/fake_supervisor_seams.hpp"
#include "support/manual_clock.hpp"
#include "support/model_fixtures.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace openstation::agent {
namespace {

using namespace std::chrono_literals;

TEST(ModelSummaryJson, RoundTripsWhatThePlannerNeeds) {
  fixtures::ScratchDir dir("inspect-codec");
  const auto m = fixtures::make_fp8_model_dir(dir / "ds", 2);
  auto info = model::inspect_model_path(m.dir);
  ASSERT_TRUE(info) << info.error().message;
  ASSERT_TRUE(info->arch.quantization);
  ASSERT_TRUE(info->arch.rope_scaling);
  auto back = parse_model_info_json(model_info_to_json(*info));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->path, info->path);
  EXPECT_EQ(back->format, model::WeightFormat::safetensors);
  EXPECT_EQ(back->weight_bytes, info->weight_bytes);
  EXPECT_EQ(back->disk_bytes, info->disk_bytes);
  EXPECT_DOUBLE_EQ(back->params, info->params);
  EXPECT_EQ(back->weights_exact, info->weights_exact);
  const auto& a = back->arch;
  const auto& b = info->arch;
  EXPECT_EQ(a.architecture, b.architecture);
  EXPECT_EQ(a.model_type, b.model_type);
  EXPECT_EQ(a.hidden_size, b.hidden_size);
  EXPECT_EQ(a.num_layers, b.num_layers);
  EXPECT_EQ(a.num_kv_heads, b.num_kv_heads);
  EXPECT_EQ(a.is_mla, b.is_mla);
  EXPECT_EQ(a.kv_lora_rank, b.kv_lora_rank);
  EXPECT_EQ(a.n_routed_experts, b.n_routed_experts);
  EXPECT_EQ(a.torch_dtype, b.torch_dtype);
  EXPECT_EQ(a.quantization->method, b.quantization->method);
  EXPECT_EQ(a.quantization->weight_block_size, b.quantization->weight_block_size);
  EXPECT_EQ(a.rope_scaling->type, b.rope_scaling->type);
  EXPECT_DOUBLE_EQ(a.rope_scaling->factor, b.rope_scaling->factor);
  EXPECT_EQ(a.derived_max_len(), b.derived_max_len());

  const auto g = fixtures::make_gguf_model(dir / "tiny.gguf");
  auto ginfo = model::inspect_model_path(g.path);
  ASSERT_TRUE(ginfo) << ginfo.error().message;
  auto gback = parse_model_info_json(model_info_to_json(*ginfo));
  ASSERT_TRUE(gback);
  EXPECT_EQ(gback->format, model::WeightFormat::gguf);
  EXPECT_EQ(gback->bytes_by_type, ginfo->bytes_by_type);
  EXPECT_EQ(gback->gguf_chat_template, ginfo->gguf_chat_template);
}

TEST(ModelSummaryJson, RefusesWhatIsNotASummary) {
  EXPECT_EQ(parse_model_info_json("nope").error().code, "protocol.bad_json");
  EXPECT_FALSE(parse_model_info_json(R"({"path": "/x"})"));  // no format
  EXPECT_FALSE(parse_model_info_json(R"({"format": "gguf", "weight_bytes": "many"})"));
  EXPECT_TRUE(parse_model_info_json(R"({"format": "gguf", "from_the_future": 1})"));
}

TEST(InspectRequest, NeedsOneAbsolutePath) {
  EXPECT_EQ(*parse_inspect_request(R"({"path": "/models/q"})"), "/models/q");
  EXPECT_EQ(parse_inspect_request(R"({"path": "models/q"})").error().code, "agent.bad_path");
  EXPECT_EQ(parse_inspect_request(R"({"path": ""})").error().field, "path");
  EXPECT_EQ(parse_inspect_request(R"({"path": "/m", "deep": true})").error().field, "deep");
  EXPECT_FALSE(parse_inspect_request("{}"));
}

class AgentInspectTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SupervisorOptions so;
    so.data_dir = dir_ / "agent";
    so.ports = {45100, 45110};
    supervisor_ = std::make_unique<Supervisor>(so, launcher_, probe_, ports_, clock_);
    AgentApiOptions ao;
    ao.host = "127.0.0.1";
    ao.port = 0;
    api_ = std::make_unique<AgentApi>(ao, *supervisor_, [] { return std::string("node-secret"); });
    ASSERT_TRUE(api_->start());
  }
  core::Result<http::Response> inspect(const std::string& body, const std::string& token) {
    http::Headers h;
    if (!token.empty()) h.set("Authorization", "Bearer " + token);
    h.set("Content-Type", "application/json");
    return http::Client().request(
        "POST", "http://127.0.0.1:" + std::to_string(api_->port()) + "/api/v1/models/inspect", h,
        body, 10s);
  }
  static std::string code_of(const http::Response& r) {
    return std::string(boost::json::parse(r.body).at("error").at("code").as_string());
  }

  fixtures::ScratchDir dir_{"agent-inspect"};
  testing::ManualClock clock_;
  testing::FakeProcessLauncher launcher_;
  testing::FakeReadinessProbe probe_;
  testing::FakePortChecker ports_;
  std::unique_ptr<Supervisor> supervisor_;
  std::unique_ptr<AgentApi> api_;
};

TEST_F(AgentInspectTest, AnswersWhatTheFilesSay) {
  const auto m =
      fixtures::make_hf_model_dir(dir_ / "llama", fixtures::tiny_llama_arch(), "BF16", 2);
  auto r = inspect(R"({"path": ")" + m.dir.string() + R"("})", "node-secret");
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->status, 200) << r->body;
  auto info = parse_model_info_json(r->body);
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->format, model::WeightFormat::safetensors);
  EXPECT_EQ(info->weight_bytes, m.weight_bytes);
  EXPECT_EQ(info->arch.num_layers, 2);
  EXPECT_TRUE(info->weights_exact);
}

TEST_F(AgentInspectTest, AnswersTheReadersErrorAs400) {
  auto r = inspect(R"({"path": ")" + (dir_ / "missing").string() + R"("})", "node-secret");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400) << r->body;
  EXPECT_EQ(code_of(*r), "model.path_not_found");
  r = inspect(R"({"path": "relative"})", "node-secret");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(code_of(*r), "agent.bad_path");
  r = inspect("not json", "node-secret");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
}

TEST_F(AgentInspectTest, NeedsTheNodeToken) {
  for (const std::string token : {"", "wrong"}) {
    auto r = inspect(R"({"path": "/"})", token);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 401);
    EXPECT_EQ(code_of(*r), "agent.unauthorized");
  }
}

}  // namespace
}  // namespace openstation::agent
