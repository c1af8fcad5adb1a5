// /api/v1/services* and /api/v1/instances*: create validates everything up front (model, engine,
// extended parameters, nodes, replicas, name) and refuses deploys the dry plan proves impossible;
// list/show/scale/delete; instances added on chosen nodes, removed with drain, and checked.

#include "http/server.hpp"
#include "model/node.hpp"
#include "server/api/routes.hpp"
#include "server/reconciler.hpp"
#include "support/api_test_server.hpp"

#include <gtest/gtest.h>

#include <atomic>

namespace openstation::server {
namespace {

using testing_support::ApiTestServer;
namespace json = boost::json;

class CountingTrigger final : public ReconcileTrigger {
 public:
  void trigger() override { ++count; }
  std::atomic<int> count{0};
};

std::string inventory(const std::string& name, int gpus, std::int64_t total_mib) {
  model::NodeSpec s;
  s.name = name;
  s.type = model::NodeType::gpu;
  s.cpu_cores = 32;
  s.memory_mib = 256 * 1024;
  s.disk_free_gib = 500;
  for (int i = 0; i < gpus; ++i) {
    model::GpuSpec g;
    g.index = i;
    g.name = "NVIDIA A100-SXM4-80GB";
    g.memory_total_mib = total_mib;
    g.cc_major = 8;
    s.gpus.push_back(g);
  }
  return "{\"node\": " + model::node_to_json(s) + "}";
}

class ServiceRoutesTest : public ::testing::Test {
 protected:
  static ApiTestServer::Options options(ServiceRoutesTest* self) {
    ApiTestServer::Options o;
    o.config = config::default_config({});
    o.routes = [self](http::Server& s, ApiContext& ctx) {
      register_service_routes(s, ctx, *self->notifier_, self->trigger_);
      register_event_routes(s, ctx);
    };
    return o;
  }

  testing::ManualClock notifier_clock_;
  std::unique_ptr<AssignmentNotifier> notifier_ =
      std::make_unique<AssignmentNotifier>(notifier_clock_);
  CountingTrigger trigger_;
  ApiTestServer api_{options(this)};

  void SetUp() override {
    token_ = api_.user_token("alice");
    store::Model m;
    m.name = "deepseek-r1-distill-qwen-1.5b";
    m.source = store::ModelSource::catalog;
    m.repo = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B";
    m.status = store::ModelStatus::ready;
    model_ = *api_.store().models().create(m);
    m.name = "deepseek-r1-distill-llama-70b";
    m.repo = "deepseek-ai/DeepSeek-R1-Distill-Llama-70B";
    big_model_ = *api_.store().models().create(m);
  }

  store::Node add_node(const std::string& name, int gpus, std::int64_t total_mib = 81920,
                       const std::string& address = "10.0.0.9") {
    store::Node n;
    n.name = name;
    n.address = address;
    n.status = store::NodeStatus::ready;
    n.token_hash = "hash-" + name;
    n.inventory_json = inventory(name, gpus, total_mib);
    n.last_heartbeat_at = api_.clock.now();
    return *api_.store().nodes().create(n);
  }

  http::Response post(const std::string& path, json::object body) {
    return api_.request("POST", path, token_, json::value(std::move(body)));
  }
  http::Response deploy(json::object body) { return post("/api/v1/services", std::move(body)); }
  std::size_t service_count() { return api_.store().services().list({})->items.size(); }

  std::string token_;
  store::Model model_;
  store::Model big_model_;
};

TEST_F(ServiceRoutesTest, DeployCreatesTheServiceAndTriggersTheReconciler) {
  add_node("gpu-a", 2);
  auto r = deploy({{"name", "qwen-small"},
                   {"model", "deepseek-r1-distill-qwen-1.5b"},
                   {"engine", "vllm"},
                   {"extra_args", "--max-model-len 8192"},
                   {"replicas", 2}});
  ASSERT_EQ(r.status, 201) << r.body;
  const auto v = ApiTestServer::json(r).as_object();
  EXPECT_EQ(v.at("name").as_string(), "qwen-small");
  EXPECT_EQ(v.at("model").as_string(), "deepseek-r1-distill-qwen-1.5b");
  EXPECT_EQ(v.at("engine").as_string(), "vllm");
  EXPECT_EQ(v.at("replicas").as_int64(), 2);
  EXPECT_EQ(v.at("state").as_string(), "active");
  EXPECT_TRUE(v.at("nodes").as_array().empty());
  EXPECT_TRUE(v.at("instances").as_array().empty());
  EXPECT_GE(trigger_.count.load(), 1);

  auto stored = api_.store().services().get_by_name("qwen-small");
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->model_id, model_.id);
  EXPECT_EQ(stored->extra_args, "--max-model-len 8192");

  auto trail = ApiTestServer::json(
      api_.request("GET", "/api/v1/events?action=service.create", api_.admin_token()));
  EXPECT_EQ(trail.at("items").at(0).at("actor").as_string(), "alice");

  // By name and by id; in the list.
  auto by_name = api_.request("GET", "/api/v1/services/qwen-small", token_);
  ASSERT_EQ(by_name.status, 200) << by_name.body;
  auto by_id = api_.request("GET", "/api/v1/services/" + stored->id, token_);
  ASSERT_EQ(by_id.status, 200);
  auto list = ApiTestServer::json(api_.request("GET", "/api/v1/services", token_));
  EXPECT_EQ(list.at("items").as_array().size(), 1u);
}

TEST_F(ServiceRoutesTest, CreateValidatesEverythingUpFront) {
  add_node("gpu-a", 1);
  struct Case {
    const char* name;
    json::object body;
    int status;
    const char* code;
    const char* field;
  };
  const json::object base{{"name", "svc"}, {"model", "deepseek-r1-distill-qwen-1.5b"}};
  auto with = [&](json::object extra) {
    json::object o = base;
    for (auto& [k, v] : extra) o[k] = v;
    return o;
  };
  const std::vector<Case> cases = {
      {"unknown field", with({{"replica", 2}}), 400, "json.unknown_field", "replica"},
      {"bad name", with({{"name", "-bad name"}}), 400, "service.bad_name", "name"},
      {"replicas too many", with({{"replicas", 65}}), 400, "service.bad_replicas", "replicas"},
      {"replicas negative", with({{"replicas", -1}}), 400, "service.bad_replicas", "replicas"},
      {"unknown engine", with({{"engine", "vlm"}}), 400, "service.unknown_engine", "engine"},
      {"bad extra args", with({{"engine", "vllm"}, {"extra_args", "--max-modle-len 4096"}}), 400,
       "args.unknown_flag", "extra_args"},
      {"unknown model", with({{"model", "no-such-model"}}), 404, "model.not_found", "model"},
      {"unknown node", with({{"nodes", json::array{"gpu-z"}}}), 404, "node.not_found", "nodes[0]"},
      {"node twice", with({{"nodes", json::array{"gpu-a", "gpu-a"}}}), 400,
       "service.duplicate_node", "nodes[1]"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto r = deploy(c.body);
    EXPECT_EQ(r.status, c.status) << r.body;
    EXPECT_EQ(ApiTestServer::error_code(r), c.code) << r.body;
    EXPECT_EQ(ApiTestServer::error_field(r), c.field) << r.body;
  }
  EXPECT_EQ(service_count(), 0u);
  EXPECT_EQ(trigger_.count.load(), 0);
}

TEST_F(ServiceRoutesTest, NameCollisionsAndModelsNotReady) {
  add_node("gpu-a", 1);
  ASSERT_EQ(deploy({{"name", "svc"}, {"model", model_.name}}).status, 201);
  auto again = deploy({{"name", "SVC"}, {"model", model_.name}});
  EXPECT_EQ(again.status, 409);
  EXPECT_EQ(ApiTestServer::error_code(again), "service.exists");

  auto m = model_;
  m.status = store::ModelStatus::downloading;
  ASSERT_TRUE(api_.store().models().update(m));
  auto waiting = deploy({{"name", "other"}, {"model", model_.name}});
  EXPECT_EQ(waiting.status, 409);
  EXPECT_EQ(ApiTestServer::error_code(waiting), "service.model_not_ready");
  EXPECT_EQ(service_count(), 1u);
}

TEST_F(ServiceRoutesTest, ImpossibleDeploysAreRefusedBusyClustersAreNot) {
  const auto small = add_node("gpu-small", 1, 16384);
  // 70B on one 16 GiB GPU: impossible even on an empty cluster.
  auto r = deploy({{"name", "big"},
                   {"model", big_model_.name},
                   {"engine", "vllm"},
                   {"nodes", json::array{"gpu-small"}}});
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_EQ(ApiTestServer::error_code(r), "service.unplaceable");
  EXPECT_NE(r.body.find("node gpu-small:"), std::string::npos) << r.body;
  EXPECT_EQ(service_count(), 0u);

  // The small model fits the GPU once it is free; a process holding it now does not matter here.
  auto n = *api_.store().nodes().get(small.id);
  n.inventory_json = inventory("gpu-small", 1, 16384);
  auto busy = json::parse(n.inventory_json).as_object();
  busy["node"].as_object()["gpus"].as_array()[0].as_object()["memory_used_mib"] = 16000;
  n.inventory_json = json::serialize(busy);
  ASSERT_TRUE(api_.store().nodes().update(n));
  auto ok = deploy({{"name", "small"},
                    {"model", model_.name},
                    {"engine", "vllm"},
                    {"extra_args", "--max-model-len 4096"}});
  EXPECT_EQ(ok.status, 201) << ok.body;
}

TEST_F(ServiceRoutesTest, ScaleAndDelete) {
  add_node("gpu-a", 1);
  ASSERT_EQ(deploy({{"name", "svc"}, {"model", model_.name}}).status, 201);
  auto scaled = api_.request("PATCH", "/api/v1/services/svc", token_,
                             json::value(json::object{{"replicas", 3}}));
  ASSERT_EQ(scaled.status, 200) << scaled.body;
  EXPECT_EQ(ApiTestServer::json(scaled).at("replicas").as_int64(), 3);
  auto bad = api_.request("PATCH", "/api/v1/services/svc", token_,
                          json::value(json::object{{"replicas", 100}}));
  EXPECT_EQ(ApiTestServer::error_code(bad), "service.bad_replicas");
  auto args = api_.request("PATCH", "/api/v1/services/svc", token_,
                           json::value(json::object{{"extra_args", "--nope"}}));
  EXPECT_EQ(args.status, 400);
  EXPECT_EQ(api_.store().services().get_by_name("svc")->extra_args, "");

  auto del = api_.request("DELETE", "/api/v1/services/svc", token_);
  ASSERT_EQ(del.status, 202) << del.body;
  EXPECT_EQ(ApiTestServer::json(del).at("state").as_string(), "deleting");
  EXPECT_TRUE(service_deleting(*api_.store().services().get_by_name("svc")));
  auto missing = api_.request("GET", "/api/v1/services/nope", token_);
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(ApiTestServer::error_code(missing), "service.not_found");
  // The name stays taken until the reconciler has removed it.
  auto again = deploy({{"name", "svc"}, {"model", model_.name}});
  EXPECT_EQ(ApiTestServer::error_code(again), "service.exists");
}

TEST_F(ServiceRoutesTest, InstancesAddListRemove) {
  const auto a = add_node("gpu-a", 1);
  add_node("gpu-b", 1);
  ASSERT_EQ(deploy({{"name", "svc"}, {"model", model_.name}, {"replicas", 0}}).status, 201);
  auto added = post("/api/v1/services/svc/instances", {{"nodes", json::array{"gpu-a"}}});
  ASSERT_EQ(added.status, 201) << added.body;
  const auto inst = ApiTestServer::json(added).as_object();
  EXPECT_EQ(inst.at("state").as_string(), "pending");
  EXPECT_EQ(inst.at("service").as_string(), "svc");
  const std::string id(inst.at("id").as_string());
  EXPECT_EQ(api_.store().services().get_by_name("svc")->replicas, 1);
  EXPECT_EQ(api_.store().instances().get(id)->node_ids, std::vector<std::string>{a.id});

  auto list = ApiTestServer::json(api_.request("GET", "/api/v1/instances?service=svc", token_));
  ASSERT_EQ(list.at("items").as_array().size(), 1u);
  auto none = api_.request("GET", "/api/v1/instances?service=zzz", token_);
  EXPECT_EQ(none.status, 404);

  // A placed, running instance drains; the service keeps one fewer.
  auto i = *api_.store().instances().get(id);
  i.state = store::InstanceState::running;
  i.port = 40001;
  ASSERT_TRUE(api_.store().instances().update(i));
  auto shown = ApiTestServer::json(api_.request("GET", "/api/v1/instances/" + id, token_));
  EXPECT_EQ(shown.at("nodes").at(0).as_string(), "gpu-a");
  EXPECT_EQ(shown.at("endpoint").as_string(), "http://10.0.0.9:40001");
  auto removed = api_.request("DELETE", "/api/v1/instances/" + id, token_);
  ASSERT_EQ(removed.status, 202) << removed.body;
  EXPECT_EQ(ApiTestServer::json(removed).at("state").as_string(), "draining");
  EXPECT_EQ(api_.store().services().get_by_name("svc")->replicas, 0);

  // A pending instance goes at once.
  auto second = post("/api/v1/services/svc/instances", json::object{});
  ASSERT_EQ(second.status, 201) << second.body;
  const std::string id2(ApiTestServer::json(second).at("id").as_string());
  EXPECT_EQ(api_.request("DELETE", "/api/v1/instances/" + id2, token_).status, 204);
  EXPECT_FALSE(api_.store().instances().get(id2));
  EXPECT_EQ(api_.request("GET", "/api/v1/instances/" + id2, token_).status, 404);
}

TEST_F(ServiceRoutesTest, PendingReasonsAreListedPerNode) {
  add_node("gpu-a", 1);
  ASSERT_EQ(deploy({{"name", "svc"}, {"model", model_.name}, {"replicas", 0}}).status, 201);
  store::Instance i;
  i.service_id = api_.store().services().get_by_name("svc")->id;
  i.state_reason = "node gpu-a: GPU 0 has 1.00 GiB free, needs 8.00 GiB\nnode gpu-b: not ready";
  const auto made = *api_.store().instances().create(i);
  auto v = ApiTestServer::json(api_.request("GET", "/api/v1/instances/" + made.id, token_));
  const auto& reasons = v.at("pending_reasons").as_array();
  ASSERT_EQ(reasons.size(), 2u);
  EXPECT_EQ(reasons[0].at("node").as_string(), "gpu-a");
  EXPECT_EQ(reasons[1].at("message").as_string(), "not ready");
}

TEST_F(ServiceRoutesTest, CheckProbesTheHealthPath) {
  http::ServerOptions ho;
  ho.host = "127.0.0.1";
  ho.port = 0;
  ho.threads = 1;
  http::Server engine(ho);
  std::atomic<int> status{200};
  engine.route("GET", "/health", [&](http::Request&) -> http::Awaitable<http::Response> {
    co_return http::Response::text(status.load(), "ok");
  });
  ASSERT_TRUE(engine.start());
  const auto node = add_node("local", 1, 81920, "127.0.0.1");
  ASSERT_EQ(deploy({{"name", "svc"}, {"model", model_.name}, {"replicas", 0}}).status, 201);
  store::Instance i;
  i.service_id = api_.store().services().get_by_name("svc")->id;
  i.state = store::InstanceState::running;
  i.node_ids = {node.id};
  i.port = engine.port();
  const auto made = *api_.store().instances().create(i);

  auto r = api_.request("POST", "/api/v1/instances/" + made.id + "/check", token_);
  ASSERT_EQ(r.status, 200) << r.body;
  auto v = ApiTestServer::json(r);
  EXPECT_TRUE(v.at("healthy").as_bool()) << r.body;
  EXPECT_EQ(v.at("status").as_int64(), 200);
  status = 503;
  v = ApiTestServer::json(api_.request("POST", "/api/v1/instances/" + made.id + "/check", token_));
  EXPECT_FALSE(v.at("healthy").as_bool());
  EXPECT_EQ(v.at("status").as_int64(), 503);
  engine.stop(std::chrono::milliseconds(500));

  store::Instance p;
  p.service_id = i.service_id;
  const auto pending = *api_.store().instances().create(p);
  v = ApiTestServer::json(
      api_.request("POST", "/api/v1/instances/" + pending.id + "/check", token_));
  EXPECT_FALSE(v.at("healthy").as_bool());
  EXPECT_NE(std::string(v.at("message").as_string()).find("pending"), std::string::npos);
}

}  // namespace
}  // namespace openstation::server
