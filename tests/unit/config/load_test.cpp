#include "config/load.hpp"
#include "config/config_json.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <unistd.h>

#include <fstream>
#include <sstream>

namespace openstation::config {
namespace {

namespace fs = std::filesystem;
using Env = std::map<std::string, std::string>;

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

class ConfigLoad : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("os-config-" + std::to_string(::getpid()) + "-" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write(const std::string& name, const std::string& text) {
    const fs::path p = dir_ / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p;
  }

  /// Options with a fixed environment: HOME under the temp dir, no OPENSTATION_* variables.
  LoadOptions options(Env env = {}) const {
    LoadOptions o;
    o.env = std::move(env);
    o.env.emplace("HOME", (dir_ / "home").string());
    return o;
  }

  core::Result<Config> load_text(const std::string& toml, Env env = {},
                                 std::vector<std::string> overrides = {}) {
    LoadOptions o = options(std::move(env));
    o.config_file = write("openstation.toml", toml);
    o.overrides = std::move(overrides);
    return load_config(o);
  }

  /// Loads `toml` and expects an error with `code` about `field`; returns its message.
  std::string expect_error(const std::string& toml, const std::string& code,
                           const std::string& field, Env env = {},
                           std::vector<std::string> overrides = {}) {
    auto r = load_text(toml, std::move(env), std::move(overrides));
    EXPECT_FALSE(r) << "expected " << code;
    if (r) return {};
    EXPECT_EQ(r.error().code, code) << r.error().message;
    EXPECT_EQ(r.error().field, field) << r.error().message;
    return r.error().message;
  }

  fs::path dir_;
};

TEST_F(ConfigLoad, DefaultsWithoutAFile) {
  auto c = load_config(options());
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->data_dir, dir_ / "home" / ".local" / "share" / "openstation");
  EXPECT_TRUE(c->config_file.empty());
  EXPECT_EQ(c->log_level, "info");
  EXPECT_EQ(c->server.port, 32206);
  EXPECT_TRUE(c->server.tls);
  EXPECT_TRUE(c->server.database.empty());
  EXPECT_EQ(c->server.session_ttl, std::chrono::hours(12));
  EXPECT_EQ(c->server.call_log_retention, std::chrono::hours(24 * 90));
  EXPECT_EQ(c->server.event_retention, std::chrono::milliseconds(0));  // audit: kept
  EXPECT_EQ(c->gateway.port, 8080);
  EXPECT_FALSE(c->gateway.tls);
  EXPECT_EQ(c->gateway.max_body_bytes, 32ull << 20);
  EXPECT_EQ(c->agent.port, 32208);
  EXPECT_EQ(c->agent.engine_ports, (PortRange{40000, 40999}));
  EXPECT_EQ(c->agent.ray_ports, (PortRange{41000, 41999}));
  EXPECT_EQ(c->agent.crash_loop_threshold, 5u);
  EXPECT_EQ(c->hub.default_source, "modelscope");
  ASSERT_EQ(c->engines.size(), 4u);
  EXPECT_EQ(c->engines.at("vllm").command, std::vector<std::string>{"vllm"});
  EXPECT_EQ(c->engines.at("vllm").kind, core::EngineKind::vllm);
  EXPECT_EQ(c->engines.at("vllm-cpu").command, std::vector<std::string>{"vllm"});
  EXPECT_EQ(c->engines.at("vllm-cpu").kind, core::EngineKind::vllm_cpu);
  EXPECT_EQ(c->engines.at("sglang").command,
            (std::vector<std::string>{"python3", "-m", "sglang.launch_server"}));
  EXPECT_EQ(c->engines.at("llama.cpp").command, std::vector<std::string>{"llama-server"});
  EXPECT_EQ(c->engines.at("llama.cpp").health_path, "/health");
  EXPECT_EQ(c->sources.at("server.port"), "default");
  EXPECT_EQ(c->sources.at("engines.sglang.command"), "default");
  EXPECT_EQ(server_cert_file(*c), c->data_dir / "tls" / "server.crt");
  EXPECT_EQ(sqlite_database_path(*c), c->data_dir / "openstation.db");
  EXPECT_EQ(model_dir(*c), c->data_dir / "models");
}

TEST_F(ConfigLoad, DataDirFollowsTheCoreRules) {
  LoadOptions root = options();
  root.is_root = true;
  EXPECT_EQ(load_config(root).value().data_dir, fs::path("/var/lib/openstation"));
  LoadOptions xdg = options({{"XDG_DATA_HOME", (dir_ / "xdg").string()}});
  EXPECT_EQ(load_config(xdg).value().data_dir, dir_ / "xdg" / "openstation");
  LoadOptions env = options({{"OPENSTATION_DATA_DIR", (dir_ / "data").string()}});
  auto c = load_config(env);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->data_dir, dir_ / "data");
  EXPECT_EQ(c->sources.at("data_dir"), "env OPENSTATION_DATA_DIR");
}

TEST_F(ConfigLoad, TheFileInTheDataDirIsReadWhenPresent) {
  const fs::path data = dir_ / "data";
  write("data/openstation.toml", "[server]\nport = 9443\n");
  auto by_env = load_config(options({{"OPENSTATION_DATA_DIR", data.string()}}));
  ASSERT_TRUE(by_env) << by_env.error().message;
  EXPECT_EQ(by_env->server.port, 9443);
  EXPECT_EQ(by_env->config_file, data / "openstation.toml");

  LoadOptions by_flag = options();
  by_flag.overrides = {"data_dir=" + data.string()};
  EXPECT_EQ(load_config(by_flag).value().server.port, 9443);

  // Without it: defaults.
  LoadOptions none = options({{"OPENSTATION_DATA_DIR", (dir_ / "empty").string()}});
  EXPECT_EQ(load_config(none).value().server.port, 32206);
}

TEST_F(ConfigLoad, ParsesEverySection) {
  auto c = load_text(R"(
data_dir = "state"          # relative: against the file's directory
log_level = "debug"

[server]
host = "127.0.0.1"
port = 0
tls = false
database = "postgresql://os:secret@db.internal:5432/openstation"
public_url = "https://gpu-hub.example.com:32206"
session_ttl = "8h"
node_timeout = 45
login_attempts_per_minute = 3
call_log_retention = "30d"
event_retention = "365d"

[gateway]
port = 18080
max_body_bytes = "8MiB"
upstream_connect_timeout = "2s"
upstream_read_timeout = "0s"
sse_keepalive_interval = "20s"
drain_deadline = "1m"
requests_per_minute = 600

[agent]
server_url = "https://10.0.0.1:32206"
token = "join-abc"
port = 0
name = "gpu-07"
gpu_inventory = "inventories/a100x2.json"
engine_ports = "30000-30099"
ray_ports = "30100-30199"
log_max_bytes = 1048576
log_files = 3
restart_backoff_base = "500ms"
restart_backoff_max = "1m"
crash_loop_threshold = 4

[hub]
default_source = "huggingface"
huggingface_endpoint = "https://hf-mirror.com"
proxy = "socks5://127.0.0.1:1080"
hf_token = "hf_x"
)");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->config_file, dir_ / "openstation.toml");
  EXPECT_EQ(c->data_dir, dir_ / "state");
  EXPECT_EQ(c->log_level, "debug");
  EXPECT_EQ(c->server.host, "127.0.0.1");
  EXPECT_EQ(c->server.port, 0);
  EXPECT_FALSE(c->server.tls);
  EXPECT_EQ(c->server.database, "postgresql://os:secret@db.internal:5432/openstation");
  EXPECT_TRUE(sqlite_database_path(*c).empty());
  EXPECT_EQ(c->server.session_ttl, std::chrono::hours(8));
  EXPECT_EQ(c->server.node_timeout, std::chrono::seconds(45));
  EXPECT_EQ(c->server.login_attempts_per_minute, 3u);
  EXPECT_EQ(c->gateway.port, 18080);
  EXPECT_EQ(c->gateway.max_body_bytes, 8ull << 20);
  EXPECT_EQ(c->gateway.upstream_connect_timeout, std::chrono::seconds(2));
  EXPECT_EQ(c->gateway.upstream_read_timeout, std::chrono::milliseconds(0));
  EXPECT_EQ(c->gateway.drain_deadline, std::chrono::minutes(1));
  EXPECT_EQ(c->gateway.requests_per_minute, 600u);
  EXPECT_EQ(c->agent.server_url, "https://10.0.0.1:32206");
  EXPECT_EQ(c->agent.token, "join-abc");
  EXPECT_EQ(c->agent.name, "gpu-07");
  EXPECT_EQ(fs::path(c->agent.gpu_inventory), dir_ / "inventories" / "a100x2.json");
  EXPECT_EQ(c->agent.engine_ports, (PortRange{30000, 30099}));
  EXPECT_EQ(c->agent.log_max_bytes, 1048576u);
  EXPECT_EQ(c->agent.log_files, 3u);
  EXPECT_EQ(c->agent.restart_backoff_base, std::chrono::milliseconds(500));
  EXPECT_EQ(c->server.call_log_retention, std::chrono::hours(24 * 30));
  EXPECT_EQ(c->server.event_retention, std::chrono::hours(24 * 365));
  EXPECT_EQ(c->agent.crash_loop_threshold, 4u);
  EXPECT_EQ(c->hub.default_source, "huggingface");
  EXPECT_EQ(c->hub.huggingface_endpoint, "https://hf-mirror.com");
  EXPECT_EQ(c->hub.proxy, "socks5://127.0.0.1:1080");
  EXPECT_EQ(c->sources.at("server.port"), (dir_ / "openstation.toml").string() + ":7:8");
  EXPECT_EQ(c->sources.at("gateway.host"), "default");
}

TEST_F(ConfigLoad, EnginesTableWithCustomEngines) {
  auto c = load_text(R"(
[engines.vllm]
version = "0.8.4"
env = { VLLM_USE_V1 = "0", HF_HOME = "/data/hf" }

[engines."llama.cpp"]
command = ["/opt/llama.cpp/build/bin/llama-server"]

[engines.vllm-nightly]
kind = "vllm"
command = ["/opt/venvs/nightly/bin/vllm"]
version = "0.21.0"

[engines.my-engine]
command = ["/opt/myengine/bin/serve", "--verbose"]
health_path = "/v1/models"
)");
  ASSERT_TRUE(c) << c.error().message;
  ASSERT_EQ(c->engines.size(), 6u);
  const auto& vllm = c->engines.at("vllm");
  EXPECT_EQ(vllm.command, std::vector<std::string>{"vllm"}) << "a partial table keeps the default";
  EXPECT_EQ(vllm.version, "0.8.4");
  EXPECT_EQ(vllm.env.at("HF_HOME"), "/data/hf");
  EXPECT_EQ(vllm.env.at("VLLM_USE_V1"), "0");
  EXPECT_EQ(c->engines.at("llama.cpp").command,
            std::vector<std::string>{"/opt/llama.cpp/build/bin/llama-server"});
  EXPECT_EQ(c->engines.at("llama.cpp").kind, core::EngineKind::llama_cpp);
  EXPECT_EQ(c->engines.at("vllm-nightly").kind, core::EngineKind::vllm);
  EXPECT_EQ(c->engines.at("vllm-nightly").health_path, "/health");
  const auto& mine = c->engines.at("my-engine");
  EXPECT_EQ(mine.kind, core::EngineKind::custom);
  EXPECT_EQ(mine.command, (std::vector<std::string>{"/opt/myengine/bin/serve", "--verbose"}));
  EXPECT_EQ(mine.health_path, "/v1/models");
  EXPECT_EQ(c->sources.at("engines.my-engine.kind"), "default");
  EXPECT_EQ(c->sources.at("engines.my-engine.command"),
            (dir_ / "openstation.toml").string() + ":15:11");
}

TEST_F(ConfigLoad, PrecedenceFileThenEnvThenFlags) {
  const std::string toml = "[server]\nport = 1000\nhost = \"10.0.0.1\"\n";
  auto file_only = load_text(toml);
  ASSERT_TRUE(file_only) << file_only.error().message;
  EXPECT_EQ(file_only->server.port, 1000);

  const Env env{{"OPENSTATION_SERVER_PORT", "2000"}, {"OPENSTATION_GATEWAY_PORT", "2001"}};
  auto with_env = load_text(toml, env);
  ASSERT_TRUE(with_env) << with_env.error().message;
  EXPECT_EQ(with_env->server.port, 2000);
  EXPECT_EQ(with_env->server.host, "10.0.0.1") << "the file still counts for what env leaves";
  EXPECT_EQ(with_env->gateway.port, 2001);
  EXPECT_EQ(with_env->sources.at("server.port"), "env OPENSTATION_SERVER_PORT");

  auto with_flags = load_text(toml, env, {"server.port=3000"});
  ASSERT_TRUE(with_flags) << with_flags.error().message;
  EXPECT_EQ(with_flags->server.port, 3000);
  EXPECT_EQ(with_flags->gateway.port, 2001);
  EXPECT_EQ(with_flags->sources.at("server.port"), "command line");
  EXPECT_EQ(with_flags->sources.at("server.host"), (dir_ / "openstation.toml").string() + ":3:8");

  // Later flags win over earlier ones.
  auto twice = load_text(toml, env, {"server.port=3000", "server.port=3001"});
  EXPECT_EQ(twice.value().server.port, 3001);
}

TEST_F(ConfigLoad, EnvironmentForEveryType) {
  auto c = load_config(options({
      {"OPENSTATION_SERVER_TLS", "false"},
      {"OPENSTATION_LOG_LEVEL", "warn"},
      {"OPENSTATION_GATEWAY_MAX_BODY_BYTES", "1MiB"},
      {"OPENSTATION_GATEWAY_DRAIN_DEADLINE", "90s"},
      {"OPENSTATION_AGENT_ENGINE_PORTS", "45000-45099"},
      {"OPENSTATION_AGENT_TOKEN", "tok"},
      {"OPENSTATION_ENGINES_SGLANG_COMMAND", "/opt/py/bin/python3 -m sglang.launch_server"},
      {"OPENSTATION_ENGINES_VLLM_CPU_COMMAND", "'/opt/vllm cpu/bin/vllm'"},
      {"OPENSTATION_ENGINES_LLAMA_CPP_COMMAND", "/usr/local/bin/llama-server"},
      {"OPENSTATION_ENGINES_VLLM_ENV", "HF_HOME=/data/hf VLLM_LOGGING_LEVEL=DEBUG"},
      {"OPENSTATION_FAKE_ENGINE_CRASH_AFTER", "3"},  // the stand-in's own: ignored
      {"OPENSTATION_ENGINES_MYENG_COMMAND", "/opt/myeng/serve"},
      {"OPENSTATION_HUB_HF_TOKEN", ""},  // empty: ignored
      {"OPENSTATION_TEST_SOMETHING", "x"},
      {"OPENSTATION_CONFIG", ""},
      {"PATH", "/usr/bin"},
  }));
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_FALSE(c->server.tls);
  EXPECT_EQ(c->log_level, "warn");
  EXPECT_EQ(c->gateway.max_body_bytes, 1ull << 20);
  EXPECT_EQ(c->gateway.drain_deadline, std::chrono::seconds(90));
  EXPECT_EQ(c->agent.engine_ports, (PortRange{45000, 45099}));
  EXPECT_EQ(c->agent.token, "tok");
  EXPECT_EQ(c->engines.at("sglang").command,
            (std::vector<std::string>{"/opt/py/bin/python3", "-m", "sglang.launch_server"}));
  EXPECT_EQ(c->engines.at("vllm-cpu").command, std::vector<std::string>{"/opt/vllm cpu/bin/vllm"});
  EXPECT_EQ(c->engines.at("vllm").command, std::vector<std::string>{"vllm"});
  EXPECT_EQ(c->engines.at("llama.cpp").command,
            std::vector<std::string>{"/usr/local/bin/llama-server"});
  EXPECT_EQ(c->engines.at("vllm").env.at("VLLM_LOGGING_LEVEL"), "DEBUG");
  EXPECT_EQ(c->engines.at("myeng").command, std::vector<std::string>{"/opt/myeng/serve"});
  EXPECT_EQ(c->engines.at("myeng").kind, core::EngineKind::custom);
  EXPECT_TRUE(c->hub.hf_token.empty());
  EXPECT_EQ(c->sources.at("engines.vllm-cpu.command"), "env OPENSTATION_ENGINES_VLLM_CPU_COMMAND");
}

TEST_F(ConfigLoad, EnvNamesACustomEngineFromTheFileByItsNormalizedName) {
  auto c = load_text("[engines.my-engine]\ncommand = [\"a\"]\n",
                     {{"OPENSTATION_ENGINES_MY_ENGINE_COMMAND", "b c"}});
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->engines.at("my-engine").command, (std::vector<std::string>{"b", "c"}));
  EXPECT_EQ(c->engines.count("my_engine"), 0u);
}

TEST_F(ConfigLoad, FlagOverridesForEveryShape) {
  LoadOptions o = options();
  o.overrides = {"gateway.port=0",
                 "agent.port=0",
                 "server.port=0",
                 "server.tls=false",
                 "engines.vllm.command=/work/build/fake-engine vllm",
                 "engines.vllm.env.FAKE_ENGINE_DELAY_MS=0",
                 "engines.llama.cpp.version=b6100",
                 "engines.stand-in.command=/work/build/fake-engine",
                 "engines.stand-in.kind=vllm",
                 "agent.gpu_inventory=rel/inventory.json"};
  auto c = load_config(o);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->gateway.port, 0);
  EXPECT_EQ(c->engines.at("vllm").command,
            (std::vector<std::string>{"/work/build/fake-engine", "vllm"}));
  EXPECT_EQ(c->engines.at("vllm").env.at("FAKE_ENGINE_DELAY_MS"), "0");
  EXPECT_EQ(c->engines.at("llama.cpp").version, "b6100");
  EXPECT_EQ(c->engines.at("stand-in").kind, core::EngineKind::vllm);
  EXPECT_EQ(c->agent.gpu_inventory, "rel/inventory.json")
      << "relative paths on the command line stay relative to the working directory";
}

// ---- errors --------------------------------------------------------------------------------

TEST_F(ConfigLoad, UnknownKeysSuggestTheRightOne) {
  auto m = expect_error("[server]\nprot = 9443\n", "config.unknown_key", "server.prot");
  EXPECT_TRUE(has(m, "openstation.toml:2:1")) << m;
  EXPECT_TRUE(has(m, "did you mean \"server.port\"")) << m;

  m = expect_error("[sever]\nport = 1\n", "config.unknown_key", "sever");
  EXPECT_TRUE(has(m, "did you mean \"server\"")) << m;

  m = expect_error("[engines.vllm]\ncomand = [\"vllm\"]\n", "config.unknown_key",
                   "engines.vllm.comand");
  EXPECT_TRUE(has(m, "did you mean \"engines.vllm.command\"")) << m;

  m = expect_error("[gateway]\nmax_body_size = 10\n", "config.unknown_key",
                   "gateway.max_body_size");
  EXPECT_TRUE(has(m, "gateway.max_body_bytes")) << m;
}

TEST_F(ConfigLoad, WrongTypesNameTheLocation) {
  auto m = expect_error("[server]\nport = \"9443\"\n", "config.wrong_type", "server.port");
  EXPECT_TRUE(has(m, "openstation.toml:2:8")) << m;
  EXPECT_TRUE(has(m, "expected a port number, got a string")) << m;
  expect_error("[server]\ntls = \"yes\"\n", "config.wrong_type", "server.tls");
  m = expect_error("[engines.vllm]\ncommand = \"vllm serve\"\n", "config.wrong_type",
                   "engines.vllm.command");
  EXPECT_TRUE(has(m, "an array of strings")) << m;
  m = expect_error("[engines.vllm]\ncommand = [\"vllm\", 2]\n", "config.wrong_type",
                   "engines.vllm.command");
  EXPECT_TRUE(has(m, "element 1 is an integer")) << m;
  expect_error("[engines.vllm]\nenv = { A = 1 }\n", "config.wrong_type", "engines.vllm.env");
  m = expect_error("[gateway]\ndrain_deadline = 1.5\n", "config.wrong_type",
                   "gateway.drain_deadline");
  EXPECT_TRUE(has(m, "float")) << m;
  expect_error("server = 5\n", "config.wrong_type", "server");
  expect_error("[data_dir]\nx = 1\n", "config.wrong_type", "data_dir");
  expect_error("engines = 1\n", "config.wrong_type", "engines");
  expect_error("[engines]\nvllm = \"vllm\"\n", "config.wrong_type", "engines.vllm");
}

TEST_F(ConfigLoad, PortsAndRanges) {
  auto m = expect_error("[server]\nport = 70000\n", "config.port_out_of_range", "server.port");
  EXPECT_TRUE(has(m, "between 0 and 65535")) << m;
  EXPECT_TRUE(has(m, "openstation.toml:2:8")) << m;
  expect_error("[agent]\nport = -1\n", "config.port_out_of_range", "agent.port");
  m = expect_error("[agent]\nengine_ports = \"41000-40000\"\n", "config.bad_range",
                   "agent.engine_ports");
  EXPECT_TRUE(has(m, "above the last")) << m;
  expect_error("[agent]\nengine_ports = \"0-100\"\n", "config.bad_range", "agent.engine_ports");
  m = expect_error("[agent]\nengine_ports = \"8000-8099\"\n", "config.range_overlap",
                   "agent.engine_ports");
  EXPECT_TRUE(has(m, "gateway.port (8080)")) << m;
  EXPECT_TRUE(has(m, "openstation.toml:2:16")) << m;
  m = expect_error("[agent]\nray_ports = \"40500-41500\"\n", "config.range_overlap",
                   "agent.ray_ports");
  EXPECT_TRUE(has(m, "engine_ports")) << m;
  m = expect_error("[gateway]\nport = 32206\n", "config.port_conflict", "gateway.port");
  EXPECT_TRUE(has(m, "server.port")) << m;
  // Ephemeral ports never conflict.
  auto ok = load_text("[server]\nport = 0\n[gateway]\nport = 0\n[agent]\nport = 0\n");
  EXPECT_TRUE(ok) << ok.error().message;
}

TEST_F(ConfigLoad, EngineErrors) {
  auto m = expect_error("[engines.vllm]\ncommand = []\n", "config.empty_command",
                        "engines.vllm.command");
  EXPECT_TRUE(has(m, "openstation.toml:2:11")) << m;
  expect_error("[engines.mine]\nversion = \"1.0\"\n", "config.empty_command",
               "engines.mine.command");
  expect_error("[engines.vllm]\ncommand = [\"\"]\n", "config.empty_command",
               "engines.vllm.command");
  expect_error("", "config.empty_command", "engines.sglang.command",
               {{"OPENSTATION_ENGINES_SGLANG_COMMAND", "  "}});
  m = expect_error("[engines.\"Bad Name\"]\ncommand = [\"x\"]\n", "config.bad_engine_name",
                   "engines.Bad Name");
  EXPECT_TRUE(has(m, "lower-case")) << m;
  m = expect_error("[engines.sglang]\nkind = \"vllm\"\n", "config.bad_value",
                   "engines.sglang.kind");
  EXPECT_TRUE(has(m, "always sglang")) << m;
  expect_error("[engines.x]\ncommand = [\"x\"]\nkind = \"tensorrt\"\n", "config.bad_value",
               "engines.x.kind");
  expect_error("[engines.vllm]\nhealth_path = \"health\"\n", "config.bad_value",
               "engines.vllm.health_path");
  expect_error("[engines.vllm]\nversion = \"latest\"\n", "config.bad_value",
               "engines.vllm.version");
}

TEST_F(ConfigLoad, TlsNeedsBothCertAndKey) {
  auto m = expect_error("[server]\ncert_file = \"/etc/os/server.crt\"\n", "config.tls_incomplete",
                        "server.key_file");
  EXPECT_TRUE(has(m, "server.cert_file is set")) << m;
  expect_error("[gateway]\ntls = true\nkey_file = \"k.pem\"\n", "config.tls_incomplete",
               "gateway.cert_file");
  // TLS off: a lone cert is not used, so it is not an error.
  EXPECT_TRUE(load_text("[server]\ntls = false\ncert_file = \"c.pem\"\n"));
  auto both = load_text("[server]\ncert_file = \"tls/c.pem\"\nkey_file = \"/k.pem\"\n");
  ASSERT_TRUE(both) << both.error().message;
  EXPECT_EQ(server_cert_file(*both), dir_ / "tls" / "c.pem");
  EXPECT_EQ(server_key_file(*both), fs::path("/k.pem"));
}

TEST_F(ConfigLoad, DatabaseUrls) {
  auto m = expect_error("[server]\ndatabase = \"mysql://u:p@h/db\"\n", "config.bad_database_url",
                        "server.database");
  EXPECT_TRUE(has(m, "postgresql://")) << m;
  expect_error("[server]\ndatabase = \"postgresql://\"\n", "config.bad_database_url",
               "server.database");
  expect_error("[server]\ndatabase = \"openstation.db\"\n", "config.bad_database_url",
               "server.database");
  EXPECT_TRUE(load_text("[server]\ndatabase = \"postgres://localhost/os\"\n"));
  auto sqlite = load_text("[server]\ndatabase = \"sqlite:///srv/os/os.db\"\n");
  ASSERT_TRUE(sqlite) << sqlite.error().message;
  EXPECT_EQ(sqlite_database_path(*sqlite), fs::path("/srv/os/os.db"));
}

TEST_F(ConfigLoad, ValueErrors) {
  auto m = expect_error("log_level = \"wran\"\n", "config.bad_value", "log_level");
  EXPECT_TRUE(has(m, "did you mean \"warn\"")) << m;
  m = expect_error("[gateway]\nupstream_read_timeout = \"10 minutes\"\n", "config.bad_duration",
                   "gateway.upstream_read_timeout");
  EXPECT_TRUE(has(m, "openstation.toml:2:25")) << m;
  expect_error("[gateway]\ndrain_deadline = -5\n", "config.bad_duration", "gateway.drain_deadline");
  expect_error("[gateway]\nmax_body_bytes = \"lots\"\n", "config.bad_size",
               "gateway.max_body_bytes");
  expect_error("[hub]\nproxy = \"ftp://proxy:21\"\n", "config.bad_url", "hub.proxy");
  expect_error("[agent]\nserver_url = \"10.0.0.1:32206\"\n", "config.bad_url", "agent.server_url");
  expect_error("[hub]\ndefault_source = \"github\"\n", "config.bad_value", "hub.default_source");
  expect_error("[agent]\nlog_files = 1000\n", "config.bad_value", "agent.log_files");
  expect_error("[agent]\nlog_files = 0\n", "config.bad_value", "agent.log_files");
  expect_error("[agent]\ncrash_loop_threshold = 0\n", "config.bad_value",
               "agent.crash_loop_threshold");
  m = expect_error("[agent]\nrestart_backoff_base = \"10m\"\n", "config.bad_value",
                   "agent.restart_backoff_base");
  EXPECT_TRUE(has(m, "restart_backoff_max")) << m;
  // A bare number is seconds: a retention that short would empty the log as it is written.
  m = expect_error("[server]\ncall_log_retention = 30\n", "config.bad_value",
                   "server.call_log_retention");
  EXPECT_TRUE(has(m, "30s")) << m;
  EXPECT_TRUE(has(m, "\"30d\"")) << m;
  expect_error("[server]\nevent_retention = \"59m\"\n", "config.bad_value",
               "server.event_retention");
  auto off = load_text("[server]\ncall_log_retention = 0\n");
  ASSERT_TRUE(off) << off.error().message;
  EXPECT_EQ(off->server.call_log_retention, std::chrono::milliseconds(0));
}

TEST_F(ConfigLoad, MissingAndMalformedFiles) {
  LoadOptions o = options();
  o.config_file = dir_ / "nope.toml";
  auto r = load_config(o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "config.file_not_found");
  EXPECT_EQ(r.error().category, core::Errc::not_found);
  EXPECT_TRUE(has(r.error().message, "nope.toml")) << r.error().message;

  auto by_env = load_config(options({{"OPENSTATION_CONFIG", (dir_ / "gone.toml").string()}}));
  ASSERT_FALSE(by_env);
  EXPECT_EQ(by_env.error().code, "config.file_not_found");
  EXPECT_TRUE(has(by_env.error().message, "OPENSTATION_CONFIG")) << by_env.error().message;

  auto env_file = load_config(
      options({{"OPENSTATION_CONFIG", write("other.toml", "[gateway]\nport = 18081\n").string()}}));
  ASSERT_TRUE(env_file) << env_file.error().message;
  EXPECT_EQ(env_file->gateway.port, 18081);

  auto m =
      expect_error("[server]\nport = 1\n[server]\nhost = \"x\"\n", "config.parse_error", "config");
  EXPECT_TRUE(has(m, "openstation.toml:3:")) << m;
  m = expect_error("[server\nport = 1\n", "config.parse_error", "config");
  EXPECT_TRUE(has(m, "openstation.toml:1:")) << m;
  EXPECT_TRUE(has(m, "invalid TOML")) << m;
  m = expect_error("[agent]\nname = \"unterminated\n", "config.parse_error", "config");
  EXPECT_TRUE(has(m, "openstation.toml:2:")) << m;
}

TEST_F(ConfigLoad, EnvironmentErrors) {
  auto r = load_config(options({{"OPENSTATION_SERVER_PROT", "1"}}));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "config.unknown_env");
  EXPECT_EQ(r.error().field, "OPENSTATION_SERVER_PROT");
  EXPECT_TRUE(has(r.error().message, "did you mean OPENSTATION_SERVER_PORT?")) << r.error().message;

  LoadOptions ignored = options({{"OPENSTATION_ADMIN_PASSWORD", "x"}});
  EXPECT_EQ(load_config(ignored).error().code, "config.unknown_env");
  ignored.ignored_env = {"OPENSTATION_ADMIN_PASSWORD"};
  EXPECT_TRUE(load_config(ignored));

  auto bad = load_config(options({{"OPENSTATION_SERVER_PORT", "https"}}));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, "config.bad_value");
  EXPECT_EQ(bad.error().field, "server.port");
  EXPECT_TRUE(has(bad.error().message, "env OPENSTATION_SERVER_PORT")) << bad.error().message;

  auto big = load_config(options({{"OPENSTATION_SERVER_PORT", "65536"}}));
  EXPECT_EQ(big.error().code, "config.port_out_of_range");

  auto words = load_config(options({{"OPENSTATION_ENGINES_VLLM_COMMAND", "'unclosed"}}));
  EXPECT_EQ(words.error().code, "config.bad_words");
  auto map = load_config(options({{"OPENSTATION_ENGINES_VLLM_ENV", "NOEQUALS"}}));
  EXPECT_EQ(map.error().code, "config.bad_value");
  auto flag = load_config(options({{"OPENSTATION_SERVER_TLS", "maybe"}}));
  EXPECT_EQ(flag.error().code, "config.bad_bool");

  // A value checked after merging names the env variable it came from.
  auto overlap = load_config(options({{"OPENSTATION_AGENT_ENGINE_PORTS", "32000-33000"}}));
  ASSERT_FALSE(overlap);
  EXPECT_EQ(overlap.error().code, "config.range_overlap");
  EXPECT_TRUE(has(overlap.error().message, "env OPENSTATION_AGENT_ENGINE_PORTS"))
      << overlap.error().message;
}

TEST_F(ConfigLoad, OverrideErrors) {
  LoadOptions o = options();
  o.overrides = {"server.port"};
  EXPECT_EQ(load_config(o).error().code, "config.bad_override");
  o.overrides = {"=5"};
  EXPECT_EQ(load_config(o).error().code, "config.bad_override");
  o.overrides = {"server.prot=5"};
  auto r = load_config(o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "config.unknown_key");
  EXPECT_TRUE(has(r.error().message, "did you mean \"server.port\"")) << r.error().message;
  o.overrides = {"server.port=99999"};
  r = load_config(o);
  EXPECT_EQ(r.error().code, "config.port_out_of_range");
  EXPECT_TRUE(has(r.error().message, "command line")) << r.error().message;
  o.overrides = {"engines.Bad!.command=x"};
  EXPECT_EQ(load_config(o).error().code, "config.bad_engine_name");
  o.overrides = {"engines.vllm.env.=x"};
  EXPECT_EQ(load_config(o).error().code, "config.bad_override");
}

// ---- writing -------------------------------------------------------------------------------

TEST_F(ConfigLoad, RoundTripThroughToml) {
  auto original = load_text(R"(
log_level = "trace"
[server]
port = 9443
database = "postgresql://os:p\"w@db/os"
session_ttl = "90m"
[gateway]
max_body_bytes = 1000
upstream_read_timeout = "1500ms"
[agent]
name = "nödé \"7\" \\ tab\t"
token = "t0k"
engine_ports = "30000-30999"
[engines."llama.cpp"]
command = ["/opt/llama server/bin/llama-server", "--log-disable"]
env = { "LLAMA ARG" = "1", GGML_NTHREADS = "8" }
[engines.vllm-nightly]
kind = "vllm"
command = ["vllm"]
version = "0.21.0"
[hub]
hf_token = "hf_abc"
)");
  ASSERT_TRUE(original) << original.error().message;
  const std::string text = to_toml(*original);
  LoadOptions o = options();
  o.config_file = write("round.toml", text);
  auto again = load_config(o);
  ASSERT_TRUE(again) << again.error().message << "\n" << text;
  EXPECT_EQ(again->data_dir, original->data_dir);
  EXPECT_EQ(again->log_level, original->log_level);
  EXPECT_EQ(again->server, original->server);
  EXPECT_EQ(again->gateway, original->gateway);
  EXPECT_EQ(again->agent, original->agent);
  EXPECT_EQ(again->hub, original->hub);
  EXPECT_EQ(again->engines, original->engines);
  EXPECT_EQ(to_toml(*again), text);
  EXPECT_TRUE(has(text, "[engines.\"llama.cpp\"]")) << text;
  EXPECT_TRUE(has(text, "upstream_read_timeout = \"1500ms\"")) << text;
  EXPECT_TRUE(has(text, "max_body_bytes = \"1000B\"")) << text;

  // Defaults round-trip too.
  auto defaults = load_config(options());
  ASSERT_TRUE(defaults);
  o.config_file = write("defaults.toml", to_toml(*defaults));
  auto defaults_again = load_config(o);
  ASSERT_TRUE(defaults_again) << defaults_again.error().message;
  EXPECT_EQ(defaults_again->engines, defaults->engines);
  EXPECT_EQ(defaults_again->agent, defaults->agent);
}

TEST_F(ConfigLoad, ShowRedactsSecretsAndNamesSources) {
  auto c = load_text(
      "[server]\ndatabase = \"postgresql://os:hunter2@db:5432/os\"\n[agent]\ntoken = \"jt\"\n",
      {{"OPENSTATION_HUB_HF_TOKEN", "hf_secret"}}, {"gateway.port=18080"});
  ASSERT_TRUE(c) << c.error().message;
  TomlOptions shown;
  shown.sources = true;
  shown.redact = true;
  const std::string text = to_toml(*c, shown);
  EXPECT_FALSE(has(text, "hunter2")) << text;
  EXPECT_FALSE(has(text, "hf_secret")) << text;
  EXPECT_FALSE(has(text, "\"jt\"")) << text;
  EXPECT_TRUE(has(text, "postgresql://os:***@db:5432/os")) << text;
  EXPECT_TRUE(has(text, "hf_token = \"***\"  # env OPENSTATION_HUB_HF_TOKEN")) << text;
  EXPECT_TRUE(has(text, "port = 18080  # command line")) << text;
  EXPECT_TRUE(has(text, "port = 32206  # default")) << text;

  const auto info = describe(*c, true);
  bool saw = false;
  for (const auto& k : info) {
    EXPECT_EQ(k.env, env_var_for(k.key));
    EXPECT_FALSE(k.help.empty()) << k.key;
    if (k.key == "engines.vllm-cpu.command") {
      saw = true;
      EXPECT_EQ(k.env, "OPENSTATION_ENGINES_VLLM_CPU_COMMAND");
      EXPECT_EQ(k.value, "[\"vllm\"]");
    }
  }
  EXPECT_TRUE(saw);

  const auto json = to_json(*c, true);
  EXPECT_EQ(json.at("server").at("port").as_uint64(), 32206u);
  EXPECT_EQ(json.at("agent").at("token").as_string(), "***");
  EXPECT_EQ(json.at("agent").at("engine_ports").as_string(), "40000-40999");
  EXPECT_EQ(json.at("engines").at("sglang").at("command").as_array().size(), 3u);
  EXPECT_EQ(json.at("engines").at("llama.cpp").at("kind").as_string(), "llama.cpp");
  EXPECT_EQ(to_json(*c).at("agent").at("token").as_string(), "jt");
  EXPECT_EQ(sources_json(*c).at("gateway.port").as_string(), "command line");
}

// ---- the shipped example and docs -----------------------------------------------------------

std::string read_source(const std::string& rel) {
  std::ifstream in(fs::path(OPENSTATION_SOURCE_DIR) / rel);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST_F(ConfigLoad, TheExampleFileParsesAndMentionsEveryKey) {
  LoadOptions o = options();
  o.config_file = fs::path(OPENSTATION_SOURCE_DIR) / "examples" / "openstation.toml";
  auto c = load_config(o);
  ASSERT_TRUE(c) << c.error().message;
  const std::string text = read_source("examples/openstation.toml");
  ASSERT_FALSE(text.empty());
  for (const auto& k : describe(*c)) {
    const std::string name = k.key.substr(k.key.rfind('.') + 1);
    EXPECT_TRUE(has(text, name + " =")) << k.key << " is not in examples/openstation.toml";
  }
}

TEST_F(ConfigLoad, TheDocsListEveryKeyAndItsEnvironmentVariable) {
  auto c = load_config(options());
  ASSERT_TRUE(c);
  const std::string docs = read_source("docs/configuration.md");
  ASSERT_FALSE(docs.empty());
  for (const auto& k : describe(*c)) {
    if (k.key.rfind("engines.", 0) == 0 && k.key.rfind("engines.vllm.", 0) != 0) continue;
    std::string documented = k.key;
    if (k.key.rfind("engines.vllm.", 0) == 0) documented = "engines.<name>." + k.key.substr(13);
    EXPECT_TRUE(has(docs, "`" + documented + "`")) << documented << " is not in the docs";
    if (k.key.rfind("engines.", 0) != 0) {
      EXPECT_TRUE(has(docs, k.env)) << k.env << " is not in the docs";
    }
  }
}

}  // namespace
}  // namespace openstation::config
