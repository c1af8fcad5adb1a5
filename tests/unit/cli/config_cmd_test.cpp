#include "support/cli_runner.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace openstation::cli {
namespace {

namespace fs = std::filesystem;
using testing_support::run_cli;

class CliConfig : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("os-cli-config-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
    return (dir_ / name).string();
  }
  fs::path dir_;
};

TEST_F(CliConfig, ShowPrintsValuesWithTheirSources) {
  const auto file = write("os.toml",
                          "[server]\nport = 9443\n[agent]\ntoken = \"s3cret\"\n"
                          "[engines.vllm]\ncommand = [\"/opt/fake-engine\", \"vllm\"]\n");
  auto r = run_cli({"config", "show", "--config", file, "--set", "gateway.port=0"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(r.out_has("port = 9443  # " + file + ":2:8")) << r.out;
  EXPECT_TRUE(r.out_has("port = 0  # command line")) << r.out;
  EXPECT_TRUE(r.out_has("command = [\"/opt/fake-engine\", \"vllm\"]")) << r.out;
  EXPECT_TRUE(r.out_has("token = \"***\"")) << r.out;
  EXPECT_FALSE(r.out_has("s3cret")) << r.out;

  auto secrets = run_cli({"config", "show", "--config", file, "--show-secrets", "--no-sources"});
  ASSERT_EQ(secrets.code, 0) << secrets.err;
  EXPECT_TRUE(secrets.out_has("token = \"s3cret\"")) << secrets.out;
  EXPECT_FALSE(secrets.out_has("# default")) << secrets.out;
}

TEST_F(CliConfig, ShowJson) {
  const auto file = write("os.toml", "[gateway]\nport = 18080\n");
  auto r = run_cli({"config", "show", "--config", file, "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto v = boost::json::parse(r.out);
  EXPECT_EQ(v.at("config").at("gateway").at("port").to_number<std::int64_t>(), 18080);
  EXPECT_EQ(v.at("config").at("engines").at("sglang").at("command").as_array().size(), 3u);
  EXPECT_EQ(v.at("sources").at("gateway.port").as_string(), file + ":2:8");
  EXPECT_EQ(v.at("config_file").as_string(), file);
}

TEST_F(CliConfig, CheckReportsErrorsWithExitTwo) {
  const auto good = write("good.toml", "[server]\ntls = false\n");
  auto ok = run_cli({"config", "check", "--config", good});
  EXPECT_EQ(ok.code, 0) << ok.err;
  EXPECT_TRUE(ok.out_has("config OK")) << ok.out;

  const auto bad = write("bad.toml", "[server]\nprot = 1\n");
  auto r = run_cli({"config", "check", "--config", bad});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(r.err_has(bad + ":2:1")) << r.err;
  EXPECT_TRUE(r.err_has("did you mean \"server.port\"")) << r.err;

  auto j = run_cli({"config", "show", "--config", bad, "--json"});
  EXPECT_EQ(j.code, 2);
  auto v = boost::json::parse(j.out);
  EXPECT_EQ(v.at("error").at("code").as_string(), "config.unknown_key");
  EXPECT_EQ(v.at("error").at("field").as_string(), "server.prot");

  auto missing = run_cli({"config", "check", "--config", (dir_ / "none.toml").string()});
  EXPECT_EQ(missing.code, 2);
  EXPECT_TRUE(missing.err_has("none.toml")) << missing.err;
}

}  // namespace
}  // namespace openstation::cli
