#include "agent/protocol.hpp"
#include "agent/agent_client.hpp"
#include "support/fake_control_plane.hpp"
#include "support/temp_dir.hpp"
#include "support/wait_until.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <filesystem>
#include <thread>

namespace openstation::agent {
namespace {

Assignment sample_assignment() {
  Assignment a;
  a.id = "svc-a-0";
  a.service = "svc-a";
  a.engine = "vllm";
  a.argv = {"serve", "/models/m", "--port", "{port}"};
  a.env = {{"CUDA_VISIBLE_DEVICES", "0"}};
  a.health_path = "/health";
  a.ports_needed = 2;
  a.startup_timeout_s = 120;
  a.model_path = "/models/m";
  return a;
}

TEST(Protocol, MessagesRoundTrip) {
  RegisterRequest reg{"join", "node-a", "10.0.0.5", 32208, R"({"node":{"name":"node-a"}})"};
  auto reg2 = parse_register_request(to_json(reg));
  ASSERT_TRUE(reg2) << reg2.error().message;
  EXPECT_EQ(*reg2, reg);

  HeartbeatRequest hb;
  hb.node_id = "node-1";
  hb.inventory_json = R"({"node":{"gpus":[]}})";
  hb.instances.push_back(
      InstanceReport{"svc-a-0", "running", 4242, {40000, 40001}, 2, "", {"line 1"}, true});
  auto hb2 = parse_heartbeat_request(to_json(hb));
  ASSERT_TRUE(hb2) << hb2.error().message;
  EXPECT_EQ(*hb2, hb);

  AssignmentSet set{7, {sample_assignment()}};
  auto set2 = parse_assignment_set(to_json(set));
  ASSERT_TRUE(set2) << set2.error().message;
  EXPECT_EQ(*set2, set);

  auto id = parse_node_identity(to_json(NodeIdentity{"n", "t"}));
  ASSERT_TRUE(id);
  EXPECT_EQ(id->node_token, "t");
}

TEST(Protocol, RequestsRefuseUnknownFieldsResponsesIgnoreThem) {
  auto reg = parse_register_request(R"({"join_token":"j","name":"n","nmae":"x"})");
  ASSERT_FALSE(reg);
  EXPECT_EQ(reg.error().category, core::Errc::invalid_argument);
  EXPECT_NE(reg.error().message.find("nmae"), std::string::npos);

  auto set = parse_assignment_set(R"({"generation":3,"instances":[],"future":1})");
  ASSERT_TRUE(set);
  EXPECT_EQ(set->generation, 3u);
  EXPECT_TRUE(set->instances.empty());
}

TEST(Protocol, MalformedAnswersAreErrorsNamingTheField) {
  auto bad = parse_assignment_set("{not json");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, "protocol.bad_json");

  auto no_gen = parse_assignment_set(R"({"instances":[]})");
  ASSERT_FALSE(no_gen);
  EXPECT_NE(no_gen.error().message.find("generation"), std::string::npos);

  auto bad_argv = parse_assignment_set(
      R"({"generation":1,"instances":[{"id":"a","engine":"vllm","argv":["x",3]}]})");
  ASSERT_FALSE(bad_argv);
  EXPECT_EQ(bad_argv.error().field, "instances[0].argv[1]");

  auto bad_ports = parse_assignment_set(
      R"({"generation":1,"instances":[{"id":"a","engine":"vllm","ports_needed":1000}]})");
  ASSERT_FALSE(bad_ports);
  EXPECT_EQ(bad_ports.error().code, "protocol.out_of_range");
}

TEST(Protocol, NodeSyncFieldsRoundTripAndStayOutOfReportsWithoutAPull) {
  HeartbeatRequest hb;
  hb.node_id = "n1";
  hb.inventory_json = "{}";
  InstanceReport preparing{"a", "preparing", 0, {}, 0, "pulling", {}, false, 10, 40};
  InstanceReport running{"b", "running", 7, {40000}, 0, "", {}, false, 0, 0};
  hb.instances = {preparing, running};
  EXPECT_EQ(*parse_heartbeat_request(to_json(hb)), hb);
  EXPECT_EQ(to_json(running).find("bytes_"), std::string::npos);  // older servers read it too

  AssignmentSet set;
  Assignment a;
  a.id = "x";
  a.engine = "vllm";
  a.model_path = "/srv/m";
  a.model_id = "mdl_1";
  a.model_sync = true;
  set.instances = {a};
  EXPECT_EQ(*parse_assignment_set(to_json(set)), set);

  ModelManifest m{"mdl_1", "m", "/srv/m", false, "/srv", "store_1", {{"w.bin", 5, "ab"}}};
  EXPECT_EQ(*parse_model_manifest(to_json(m)), m);
}

TEST(Protocol, ManifestPathsMustStayInsideTheModel) {
  for (const char* bad : {"../x", "/etc/passwd", "a//b", "a/./b", "a\\b", ""}) {
    ModelManifest m{"mdl_1", "m", "/srv/m", false, "/srv", "s", {{bad, 1, ""}}};
    auto parsed = parse_model_manifest(to_json(m));
    ASSERT_FALSE(parsed) << bad;
    EXPECT_EQ(parsed.error().code, "protocol.bad_field") << bad;
  }
  EXPECT_FALSE(parse_model_manifest(R"({"model_id": "m", "path": "/p"})"));  // no files
  EXPECT_FALSE(parse_model_manifest("not json"));
}

TEST(Protocol, AssignmentBecomesSpecWithTheConfiguredEngineCommand) {
  std::map<std::string, EngineCommand> engines{{"vllm", {{"/opt/fake-engine", "vllm"}, {}}}};
  engines["vllm"].env = {{"VLLM_X", "1"}, {"CUDA_VISIBLE_DEVICES", "all"}};
  auto spec = to_spec(sample_assignment(), engines);
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_EQ(spec->id, "svc-a-0");
  EXPECT_EQ(spec->argv, (std::vector<std::string>{"/opt/fake-engine", "vllm", "serve", "/models/m",
                                                  "--port", "{port}"}));
  // The assignment's env wins over the engine's.
  EXPECT_EQ(spec->env, (std::vector<std::pair<std::string, std::string>>{
                           {"CUDA_VISIBLE_DEVICES", "0"}, {"VLLM_X", "1"}}));
  EXPECT_EQ(spec->ports, 2u);
  EXPECT_EQ(spec->startup_timeout, std::chrono::seconds(120));

  auto a = sample_assignment();
  a.engine = "vlm";
  auto unknown = to_spec(a, engines);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, "agent.unknown_engine");
  EXPECT_NE(unknown.error().message.find("did you mean vllm"), std::string::npos);
}

TEST(Protocol, ReportCarriesTheSupervisorStatus) {
  InstanceStatus s;
  s.id = "x";
  s.state = InstanceState::crash_loop;
  s.pid = 0;
  s.ports = {40001};
  s.restarts = 5;
  s.reason = "exited with code 3";
  s.last_log_lines = {"boom"};
  const auto r = to_report(s);
  EXPECT_EQ(r.state, "crash_loop");
  EXPECT_EQ(r.restarts, 5u);
  EXPECT_EQ(r.last_log_lines, std::vector<std::string>{"boom"});
}

TEST(Protocol, IdentityIsPersistedAtomicallyWithMode0600) {
  const auto dir = openstation::testing_support::unique_temp_path("protocol_identity");
  std::filesystem::remove_all(dir);
  auto none = load_identity(dir);
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());

  ASSERT_TRUE(save_identity(dir, NodeIdentity{"node-1", "secret"}));
  struct stat st {};
  ASSERT_EQ(::stat(identity_path(dir).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_FALSE(std::filesystem::exists(identity_path(dir).string() + ".tmp"));
  auto loaded = load_identity(dir);
  ASSERT_TRUE(loaded);
  ASSERT_TRUE(loaded->has_value());
  EXPECT_EQ(**loaded, (NodeIdentity{"node-1", "secret"}));

  std::filesystem::resize_file(identity_path(dir), 5);
  auto damaged = load_identity(dir);
  ASSERT_FALSE(damaged);
  EXPECT_EQ(damaged.error().code, "agent.identity_unreadable");
  forget_identity(dir);
  EXPECT_FALSE(std::filesystem::exists(identity_path(dir)));
}

TEST(AgentClient, RegisterHeartbeatAndWatchAgainstTheFakeServer) {
  testing::FakeControlPlane server("join-secret");
  AgentClient client(server.url());

  auto bad = client.register_node(RegisterRequest{"wrong", "n", "", 0, ""});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, "agent.unauthorized");

  auto id = client.register_node(RegisterRequest{"join-secret", "n", "127.0.0.1", 1, "{}"});
  ASSERT_TRUE(id) << id.error().message;
  EXPECT_FALSE(id->node_token.empty());

  HeartbeatRequest hb;
  hb.node_id = id->node_id;
  auto ok = client.heartbeat(*id, hb);
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_TRUE(ok->ok);
  EXPECT_EQ(server.heartbeats().size(), 1u);

  const auto gen = server.publish({sample_assignment()});
  auto set = client.watch(*id, 0, std::chrono::seconds(0));
  ASSERT_TRUE(set) << set.error().message;
  EXPECT_EQ(set->generation, gen);
  ASSERT_EQ(set->instances.size(), 1u);
  EXPECT_EQ(set->instances[0], sample_assignment());

  // Same generation, no wait: the same set comes back.
  auto same = client.watch(*id, gen, std::chrono::seconds(0));
  ASSERT_TRUE(same);
  EXPECT_EQ(same->generation, gen);

  server.drop_next_watches(1);
  auto dropped = client.watch(*id, 0, std::chrono::seconds(0));
  ASSERT_FALSE(dropped);
  EXPECT_EQ(dropped.error().category, core::Errc::unavailable);

  server.revoke_tokens();
  auto revoked = client.heartbeat(*id, hb);
  ASSERT_FALSE(revoked);
  EXPECT_EQ(revoked.error().code, "agent.unauthorized");

  server.go_down();
  auto down = client.heartbeat(*id, hb);
  ASSERT_FALSE(down);
  EXPECT_EQ(down.error().category, core::Errc::unavailable);
}

TEST(AgentClient, ALongPollAnswersWhenTheGenerationChanges) {
  testing::FakeControlPlane server("join-secret");
  AgentClient client(server.url(), std::chrono::seconds(5));
  auto id = client.register_node(RegisterRequest{"join-secret", "n", "", 0, ""});
  ASSERT_TRUE(id) << id.error().message;
  const auto gen = server.generation();
  std::thread publisher([&] {
    testing::wait_until([&] { return server.watch_count() >= 1; });
    server.publish({sample_assignment()});
  });
  // The wait is far longer than the client's own timeout: the watch must allow for it.
  auto set = client.watch(*id, gen, std::chrono::seconds(60));
  publisher.join();
  ASSERT_TRUE(set) << set.error().message;
  EXPECT_EQ(set->generation, gen + 1);
  EXPECT_EQ(set->instances.size(), 1u);
}

}  // namespace
}  // namespace openstation::agent
