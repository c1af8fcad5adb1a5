// The client commands (nodes, models, services, instances, users, keys, join-token) against a
// fake API: the requests they make, their tables, --json, exit codes and error display.
#include "fake_api.hpp"
#include "support/cli_runner.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <atomic>
#include <fstream>

namespace openstation::cli {
namespace {

using testing_support::CliEnv;
using testing_support::CliResult;
using testing_support::FakeApi;
using testing_support::run_cli;

/// A fake API with a saved login for it.
class CliCommands : public ::testing::Test {
 protected:
  void SetUp() override {}
  void start() {
    api_.start();
    env_.save_login(api_.url(), "tok");
  }
  CliResult run(std::vector<std::string> args) { return run_cli(std::move(args)); }
  boost::json::value body_of(const std::string& method, const std::string& target) {
    return boost::json::parse(api_.last(method, target).body);
  }

  CliEnv env_;
  FakeApi api_;
};

TEST_F(CliCommands, NodesTableShowsGpusMemoryAndStatusReason) {
  api_.on_json("GET", "/nodes", 200, R"({"items":[
    {"id":"nd_1","name":"gpu-a","address":"10.0.0.5","status":"ready","status_reason":"",
     "labels":{},"last_heartbeat_at":null,
     "gpus":[{"index":0,"name":"NVIDIA A100","memory_total_mib":81920,"memory_used_mib":1024},
             {"index":1,"name":"NVIDIA A100","memory_total_mib":81920,"memory_used_mib":0}]},
    {"id":"nd_2","name":"cpu-b","address":"10.0.0.6","status":"not_ready",
     "status_reason":"no heartbeat for 45 s","labels":{},"gpus":[]}],"next_cursor":""})");
  start();
  auto r = run({"nodes"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(r.out_has("NAME   STATUS")) << r.out;
  EXPECT_TRUE(r.out_has("2× NVIDIA A100")) << r.out;
  EXPECT_TRUE(r.out_has("1.0 GiB / 160.0 GiB")) << r.out;
  EXPECT_TRUE(r.out_has("not_ready (no heartbeat for 45 s)")) << r.out;

  auto j = run({"nodes", "list", "--json"});
  ASSERT_EQ(j.code, 0) << j.err;
  auto v = boost::json::parse(j.out);
  EXPECT_EQ(v.at("items").as_array().size(), 2u);
  EXPECT_EQ(v.at("items").at(1).at("name").as_string(), "cpu-b");
}

TEST_F(CliCommands, NodeShowAndRemove) {
  api_.on("GET", "/nodes/{id}", [](const http::Request& r) {
    if (r.param("id") != "gpu-a") {
      return http::Response::json(
          404, R"({"error":{"code":"node.not_found","message":"no node named gpu-z"}})");
    }
    return http::Response::json(200, R"({"id":"nd_1","name":"gpu-a","address":"10.0.0.5",
      "status":"ready","labels":{"zone":"a"},"cpu":{"cores":32},"memory":{"total_mib":257000},
      "gpus":[{"index":0,"name":"NVIDIA H100","memory_total_mib":81559,"memory_used_mib":512}],
      "instances":[{"id":"ins_1","service":"chat","state":"running","port":40001}]})");
  });
  api_.on_json("DELETE", "/nodes/{id}", 202, R"({"id":"nd_1","name":"gpu-a","status":"draining"})");
  start();
  auto r = run({"nodes", "show", "gpu-a"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(r.out_has("Labels:")) << r.out;
  EXPECT_TRUE(r.out_has("zone=a")) << r.out;
  EXPECT_TRUE(r.out_has("NVIDIA H100")) << r.out;
  EXPECT_TRUE(r.out_has("79.6 GiB")) << r.out;
  EXPECT_TRUE(r.out_has("ins_1")) << r.out;

  auto missing = run({"nodes", "show", "gpu-z"});
  EXPECT_EQ(missing.code, 2);
  EXPECT_TRUE(missing.err_has("error: no node named gpu-z (node.not_found)")) << missing.err;

  auto rm = run({"nodes", "remove", "gpu-a"});
  ASSERT_EQ(rm.code, 0) << rm.err;
  EXPECT_TRUE(rm.out_has("drain")) << rm.out;
}

TEST_F(CliCommands, JoinTokenCreate) {
  api_.on_json("POST", "/join-tokens", 201,
               R"({"token":"jt-abc","expires_at":"2030-01-01T00:00:00.000Z"})");
  start();
  auto r = run({"join-token", "create", "--ttl", "3600"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(r.out_has("jt-abc")) << r.out;
  EXPECT_TRUE(r.out_has("openstation agent --server " + api_.url() + " --token jt-abc")) << r.out;
  EXPECT_EQ(body_of("POST", "/api/v1/join-tokens").at("ttl_seconds").as_int64(), 3600);
}

TEST_F(CliCommands, ModelsImportListShowDelete) {
  api_.on("POST", "/models", [](const http::Request& r) {
    auto b = boost::json::parse(r.body).as_object();
    b["id"] = "mdl_1";
    b["status"] = "ready";
    b["format"] = "safetensors";
    b["size_bytes"] = 3554214752;
    return http::Response::json(201, boost::json::serialize(b));
  });
  api_.on_json("GET", "/models", 200, R"({"items":[{"id":"mdl_1","name":"qwen-1.5b",
    "status":"ready","format":"safetensors","size_bytes":3554214752,"node":"gpu-a",
    "path":"/models/q","created_at":"2026-11-27T20:00:00.000Z"}],"next_cursor":""})");
  api_.on_json("GET", "/models/{id}", 200,
               R"({"id":"mdl_1","name":"qwen-1.5b","path":"/models/q"})");
  api_.on_json(
      "DELETE", "/models/{id}", 409,
      R"({"error":{"code":"model.in_use","message":"service chat uses model qwen-1.5b"}})");
  start();
  auto imp =
      run({"models", "import", "--name", "qwen-1.5b", "--path", "/models/q", "--node", "gpu-a"});
  ASSERT_EQ(imp.code, 0) << imp.err;
  auto b = body_of("POST", "/api/v1/models");
  EXPECT_EQ(b.at("name").as_string(), "qwen-1.5b");
  EXPECT_EQ(b.at("path").as_string(), "/models/q");
  EXPECT_EQ(b.at("node").as_string(), "gpu-a");
  EXPECT_TRUE(imp.out_has("3.3 GiB")) << imp.out;

  auto list = run({"models", "list"});
  ASSERT_EQ(list.code, 0) << list.err;
  EXPECT_TRUE(list.out_has("qwen-1.5b")) << list.out;
  EXPECT_TRUE(list.out_has("safetensors")) << list.out;

  auto show = run({"models", "show", "qwen-1.5b", "--json"});
  ASSERT_EQ(show.code, 0) << show.err;
  EXPECT_EQ(boost::json::parse(show.out).at("id").as_string(), "mdl_1");

  auto del = run({"models", "delete", "qwen-1.5b"});
  EXPECT_EQ(del.code, 1);
  EXPECT_TRUE(del.err_has("error: service chat uses model qwen-1.5b (model.in_use)")) << del.err;

  auto missing_flag = run({"models", "import", "--name", "x"});
  EXPECT_EQ(missing_flag.code, 2);
}

TEST_F(CliCommands, ModelsCatalogStillWorksOffline) {
  auto r = run({"models", "catalog", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_GE(boost::json::parse(r.out).as_array().size(), 10u);
}

constexpr const char* kService =
    R"({"id":"svc_1","name":"chat","model":"qwen-1.5b","engine":"vllm","engine_version":"",
    "extra_args":"--max-model-len 4096","nodes":["gpu-a"],"replicas":1,
    "created_at":"2026-11-27T20:00:00.000Z","updated_at":"2026-11-27T20:00:00.000Z",)";

TEST_F(CliCommands, DeployWaitsPrintingStatesAndPendingReasons) {
  api_.on("POST", "/services", [](const http::Request&) {
    return http::Response::json(201, std::string(kService) + R"("instances":[]})");
  });
  auto polls = std::make_shared<std::atomic<int>>(0);
  api_.on("GET", "/services/{id}", [polls](const http::Request&) {
    const int n = ++*polls;
    std::string inst;
    if (n == 1) {
      inst = R"({"id":"ins_1","state":"pending","state_reason":"","pending_reasons":[
        {"node":"gpu-a","message":"GPU 0 has 2.0 GiB free, the model needs 5.1 GiB"}]})";
    } else if (n == 2) {
      inst = R"({"id":"ins_1","state":"starting","pending_reasons":[]})";
    } else {
      inst = R"({"id":"ins_1","state":"running","pending_reasons":[],
        "endpoint":"http://10.0.0.5:40001"})";
    }
    return http::Response::json(200, std::string(kService) + R"("instances":[)" + inst + "]}");
  });
  start();
  auto r = run({"services", "deploy", "--name", "chat", "--model", "qwen-1.5b", "--engine", "vllm",
                "--args", "--max-model-len 4096", "--node", "gpu-a", "--replicas", "1",
                "--poll-interval", "0.05"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  auto b = body_of("POST", "/api/v1/services");
  EXPECT_EQ(b.at("name").as_string(), "chat");
  EXPECT_EQ(b.at("model").as_string(), "qwen-1.5b");
  EXPECT_EQ(b.at("engine").as_string(), "vllm");
  EXPECT_EQ(b.at("extra_args").as_string(), "--max-model-len 4096");
  EXPECT_EQ(b.at("nodes").at(0).as_string(), "gpu-a");
  EXPECT_EQ(b.at("replicas").as_int64(), 1);
  EXPECT_TRUE(r.out_has("instance ins_1: pending")) << r.out;
  EXPECT_TRUE(r.out_has("gpu-a: GPU 0 has 2.0 GiB free, the model needs 5.1 GiB")) << r.out;
  EXPECT_TRUE(r.out_has("instance ins_1: starting")) << r.out;
  EXPECT_TRUE(r.out_has("Service chat is running.")) << r.out;
  EXPECT_TRUE(r.out_has("http://10.0.0.5:40001")) << r.out;
  EXPECT_GE(polls->load(), 3);
}

TEST_F(CliCommands, DeployTimesOutWithExitOne) {
  api_.on_json("POST", "/services", 201, std::string(kService) + R"("instances":[]})");
  api_.on_json("GET", "/services/{id}", 200,
               std::string(kService) +
                   R"("instances":[{"id":"ins_1","state":"pending","pending_reasons":[]}]})");
  start();
  auto r = run({"services", "deploy", "--model", "qwen-1.5b", "--timeout", "0.2", "--poll-interval",
                "0.05"});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(r.err_has("(cli.deploy_timeout)")) << r.err;
  // Without --name the service is named after the model.
  EXPECT_EQ(body_of("POST", "/api/v1/services").at("name").as_string(), "qwen-1.5b");
}

TEST_F(CliCommands, DeployNoWaitJsonAndValidationError) {
  api_.on("POST", "/services", [](const http::Request& r) {
    auto b = boost::json::parse(r.body).as_object();
    if (b.contains("replicas") && b.at("replicas").as_int64() > 64) {
      return http::Response::json(400, R"({"error":{"code":"service.bad_replicas",
        "message":"replicas must be between 1 and 64","field":"replicas"}})");
    }
    return http::Response::json(201, std::string(kService) + R"("instances":[]})");
  });
  start();
  auto r = run({"services", "deploy", "--model", "qwen-1.5b", "--no-wait", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(boost::json::parse(r.out).at("id").as_string(), "svc_1");

  auto bad = run({"services", "deploy", "--model", "qwen-1.5b", "--replicas", "100"});
  EXPECT_EQ(bad.code, 2);
  EXPECT_TRUE(bad.err_has("error: replicas must be between 1 and 64 (service.bad_replicas)"))
      << bad.err;
}

TEST_F(CliCommands, ServicesListShowScaleDelete) {
  api_.on_json(
      "GET", "/services", 200,
      std::string(R"({"items":[)") + kService +
          R"("instances":[{"id":"ins_1","state":"running"},{"id":"ins_2","state":"starting"}]}],"next_cursor":""})");
  api_.on_json(
      "GET", "/services/{id}", 200,
      std::string(kService) +
          R"("instances":[{"id":"ins_1","state":"running","nodes":["gpu-a"],"port":40001,"restarts":2}]})");
  api_.on_json("PATCH", "/services/{id}", 200, std::string(kService) + R"("instances":[]})");
  api_.on_json("DELETE", "/services/{id}", 202, std::string(kService) + R"("instances":[]})");
  start();
  auto list = run({"services", "list"});
  ASSERT_EQ(list.code, 0) << list.err;
  EXPECT_TRUE(list.out_has("chat")) << list.out;
  EXPECT_TRUE(list.out_has("1/1")) << list.out;

  auto show = run({"services", "show", "chat"});
  ASSERT_EQ(show.code, 0) << show.err;
  EXPECT_TRUE(show.out_has("Extended parameters:")) << show.out;
  EXPECT_TRUE(show.out_has("ins_1")) << show.out;
  EXPECT_TRUE(show.out_has("40001")) << show.out;

  auto scale = run({"services", "scale", "chat", "3"});
  ASSERT_EQ(scale.code, 0) << scale.err;
  EXPECT_EQ(body_of("PATCH", "/api/v1/services/chat").at("replicas").as_int64(), 3);
  auto scale_flag = run({"services", "scale", "chat", "--replicas", "2"});
  ASSERT_EQ(scale_flag.code, 0) << scale_flag.err;
  EXPECT_EQ(body_of("PATCH", "/api/v1/services/chat").at("replicas").as_int64(), 2);
  auto no_count = run({"services", "scale", "chat"});
  EXPECT_EQ(no_count.code, 2);

  auto del = run({"services", "delete", "chat"});
  ASSERT_EQ(del.code, 0) << del.err;
  EXPECT_TRUE(del.out_has("drain")) << del.out;
}

TEST_F(CliCommands, InstancesListAddRemoveCheck) {
  api_.on_json("GET", "/instances", 200, R"({"items":[{"id":"ins_1","service":"chat",
    "state":"pending","nodes":[],"pending_reasons":[{"node":"gpu-b","message":"node not ready"}]}],
    "next_cursor":""})");
  api_.on_json("POST", "/services/{id}/instances", 201,
               R"({"id":"ins_2","service":"chat","state":"pending","nodes":["gpu-a","gpu-b"]})");
  api_.on_json("DELETE", "/instances/{id}", 202, R"({"id":"ins_2","state":"draining"})");
  api_.on("POST", "/instances/{id}/check", [](const http::Request& r) {
    if (r.param("id") == "ins_1") {
      return http::Response::json(200,
                                  R"({"healthy":true,"status":200,"latency_ms":12,"message":""})");
    }
    return http::Response::json(
        200, R"({"healthy":false,"status":0,"latency_ms":null,"message":"connection refused"})");
  });
  start();
  auto list = run({"instances", "list", "--service", "chat"});
  ASSERT_EQ(list.code, 0) << list.err;
  EXPECT_EQ(api_.last("GET", "/api/v1/instances").target, "/api/v1/instances?service=chat");
  EXPECT_TRUE(list.out_has("gpu-b: node not ready")) << list.out;

  auto add = run({"instances", "add", "chat", "--node", "gpu-a", "--node", "gpu-b"});
  ASSERT_EQ(add.code, 0) << add.err;
  auto b = body_of("POST", "/api/v1/services/chat/instances");
  EXPECT_EQ(b.at("nodes").as_array().size(), 2u);
  EXPECT_TRUE(add.out_has("Instance ins_2 added")) << add.out;

  auto rm = run({"instances", "remove", "ins_2"});
  ASSERT_EQ(rm.code, 0) << rm.err;
  EXPECT_TRUE(rm.out_has("draining")) << rm.out;

  auto ok = run({"instances", "check", "ins_1"});
  EXPECT_EQ(ok.code, 0) << ok.err;
  EXPECT_TRUE(ok.out_has("is healthy (HTTP 200, 12 ms)")) << ok.out;
  auto bad = run({"instances", "check", "ins_9"});
  EXPECT_EQ(bad.code, 1);
  EXPECT_TRUE(bad.out_has("NOT healthy")) << bad.out;
  EXPECT_TRUE(bad.out_has("connection refused")) << bad.out;
}

TEST_F(CliCommands, InstanceLogsTailAndFollow) {
  api_.on_stream("GET", "/instances/{id}/logs", {"INFO start\n", "INFO ready\n"});
  start();
  auto r = run({"instances", "logs", "ins_1", "--tail", "50", "-f"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "INFO start\nINFO ready\n");
  EXPECT_EQ(api_.last("GET", "/api/v1/instances/ins_1/logs").target,
            "/api/v1/instances/ins_1/logs?tail=50&follow=1");
}

TEST_F(CliCommands, UsersCreateActionsAndImport) {
  api_.on_json("GET", "/users", 200, R"({"items":[{"id":"usr_1","username":"admin",
    "role":"admin","disabled":false,"must_change_password":false},{"id":"usr_2",
    "username":"bob","role":"user","disabled":true,"must_change_password":false}],"next_cursor":""})");
  api_.on("POST", "/users", [](const http::Request& r) {
    auto b = boost::json::parse(r.body).as_object();
    if (b.at("username").as_string() == "admin") {
      return http::Response::json(
          409, R"({"error":{"code":"user.exists","message":"a user named admin exists"}})");
    }
    return http::Response::json(
        201, R"({"user":{"username":"carol","role":"user"},"password":"Gen#pass1"})");
  });
  api_.on_json("POST", "/users/{id}/disable", 200, R"({"username":"bob","disabled":true})");
  api_.on_json("POST", "/users/{id}/reset-password", 200, R"({"password":"New#pass2"})");
  api_.on_json("DELETE", "/users/{id}", 204, "");
  api_.on("POST", "/users/import", [](const http::Request& r) {
    if (r.body.find("bad") != std::string::npos) {
      return http::Response::json(
          400, R"({"error":{"code":"users_csv.bad_role","message":"line 3: bad role",)"
               R"("field":"role"},"created":[],"errors":[{"line":3,"code":"users_csv.bad_role",)"
               R"("field":"role","message":"role must be user or admin"}]})");
    }
    return http::Response::json(
        201, R"({"created":[{"username":"dan","password":"P#ss1word"}],"errors":[]})");
  });
  start();
  auto list = run({"users", "list"});
  ASSERT_EQ(list.code, 0) << list.err;
  EXPECT_TRUE(list.out_has("disabled")) << list.out;

  auto create = run({"users", "create", "carol", "--email", "c@example.com"});
  ASSERT_EQ(create.code, 0) << create.err;
  EXPECT_TRUE(create.out_has("Gen#pass1")) << create.out;
  auto b = body_of("POST", "/api/v1/users");
  EXPECT_EQ(b.at("role").as_string(), "user");
  EXPECT_EQ(b.at("email").as_string(), "c@example.com");

  auto dup = run({"users", "create", "admin"});
  EXPECT_EQ(dup.code, 1);
  EXPECT_TRUE(dup.err_has("(user.exists)")) << dup.err;

  EXPECT_EQ(run({"users", "disable", "bob"}).code, 0);
  auto reset = run({"users", "reset-password", "bob"});
  EXPECT_TRUE(reset.out_has("New#pass2")) << reset.out;
  EXPECT_EQ(run({"users", "delete", "bob"}).code, 0);
  EXPECT_EQ(api_.last("DELETE", "/api/v1/users/").target, "/api/v1/users/bob");

  const auto good = env_.dir() / "good.csv";
  std::ofstream(good) << "username,role\ndan,user\n";
  auto imp = run({"users", "import", good.string()});
  ASSERT_EQ(imp.code, 0) << imp.err;
  EXPECT_TRUE(imp.out_has("P#ss1word")) << imp.out;
  EXPECT_EQ(api_.last("POST", "/api/v1/users/import").content_type, "text/csv");
  EXPECT_EQ(api_.last("POST", "/api/v1/users/import").body, "username,role\ndan,user\n");

  const auto bad = env_.dir() / "bad.csv";
  std::ofstream(bad) << "username,role\nerin,user\nbad,root\n";
  auto imp_bad = run({"users", "import", bad.string()});
  EXPECT_EQ(imp_bad.code, 2);
  EXPECT_TRUE(imp_bad.err_has("line 3: role must be user or admin")) << imp_bad.err;
  EXPECT_TRUE(imp_bad.err_has("(users_csv.bad_role)")) << imp_bad.err;

  auto missing = run({"users", "import", (env_.dir() / "none.csv").string()});
  EXPECT_EQ(missing.code, 2);
  EXPECT_TRUE(missing.err_has("(file.not_found)")) << missing.err;
}

TEST_F(CliCommands, KeysCreateListRevoke) {
  api_.on("POST", "/keys", [](const http::Request&) {
    return http::Response::json(201, R"({"key":"sk-os-abc123","api_key":{"id":"key_1",
      "name":"ci","prefix":"sk-os-abc","expires_at":null,"allowed_models":["chat"]}})");
  });
  api_.on_json("GET", "/keys", 200, R"({"items":[{"id":"key_1","name":"ci","prefix":"sk-os-abc",
    "created_at":"2026-11-27T20:00:00.000Z","last_used_at":null,"expires_at":null,
    "revoked_at":null,"allowed_models":["chat"]},{"id":"key_2","name":"old","prefix":"sk-os-xyz",
    "revoked_at":"2026-11-27T21:00:00.000Z","allowed_models":[]}],"next_cursor":""})");
  api_.on_json("DELETE", "/keys/{id}", 204, "");
  start();
  auto create = run({"keys", "create", "--name", "ci", "--expires", "30d", "--model", "chat"});
  ASSERT_EQ(create.code, 0) << create.err;
  EXPECT_TRUE(create.out_has("sk-os-abc123")) << create.out;
  auto b = body_of("POST", "/api/v1/keys");
  EXPECT_EQ(b.at("name").as_string(), "ci");
  EXPECT_EQ(b.at("allowed_models").at(0).as_string(), "chat");
  const std::string expires(b.at("expires_at").as_string());
  EXPECT_EQ(expires.size(), 20u) << expires;
  EXPECT_EQ(expires.back(), 'Z');

  auto bad = run({"keys", "create", "--name", "ci", "--expires", "soon"});
  EXPECT_EQ(bad.code, 2);
  EXPECT_TRUE(bad.err_has("(cli.bad_expiry)")) << bad.err;

  auto list = run({"keys", "list", "--user", "bob"});
  ASSERT_EQ(list.code, 0) << list.err;
  EXPECT_EQ(api_.last("GET", "/api/v1/keys").target, "/api/v1/keys?user=bob");
  EXPECT_TRUE(list.out_has("revoked")) << list.out;
  EXPECT_TRUE(list.out_has("never")) << list.out;

  auto revoke = run({"keys", "revoke", "key_1"});
  ASSERT_EQ(revoke.code, 0) << revoke.err;
  EXPECT_TRUE(revoke.out_has("revoked")) << revoke.out;
}

TEST_F(CliCommands, HelpOnEveryLevel) {
  for (const auto& args :
       std::vector<std::vector<std::string>>{{"--help"},
                                             {"login", "--help"},
                                             {"nodes", "--help"},
                                             {"models", "import", "--help"},
                                             {"services", "--help"},
                                             {"services", "deploy", "--help"},
                                             {"instances", "logs", "--help"},
                                             {"users", "import", "--help"},
                                             {"keys", "create", "--help"},
                                             {"join-token", "create", "--help"}}) {
    auto r = run_cli(args);
    EXPECT_EQ(r.code, 0) << args[0];
    EXPECT_FALSE(r.out.empty()) << args[0];
  }
  auto deploy = run_cli({"services", "deploy", "--help"});
  EXPECT_TRUE(deploy.out_has("--no-wait")) << deploy.out;
  EXPECT_TRUE(deploy.out_has("--args")) << deploy.out;
}

}  // namespace
}  // namespace openstation::cli
