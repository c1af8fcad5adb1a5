// agent.server_fingerprint and agent.ca_cert: how an agent trusts an https server.
#include "config/load.hpp"
#include "support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <fstream>

namespace openstation::config {
namespace {

namespace fs = std::filesystem;

const std::string kFingerprint =
    "sha256:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:"
    "23:45:67:89";

class AgentTrust : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing_support::unique_temp_path("agent-trust");
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  core::Result<Config> load(std::vector<std::string> overrides, std::string toml = {}) {
    LoadOptions o;
    o.env = {{"HOME", (dir_ / "home").string()}};
    if (!toml.empty()) {
      o.config_file = dir_ / "openstation.toml";
      std::ofstream(*o.config_file) << toml;
    }
    o.overrides = std::move(overrides);
    return load_config(o);
  }

  fs::path dir_;
};

TEST_F(AgentTrust, DefaultsTrustNothingExtra) {
  auto c = load({});
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->agent.server_fingerprint, "");
  EXPECT_EQ(c->agent.ca_cert, "");
}

TEST_F(AgentTrust, AcceptsAFingerprintInEveryWrittenForm) {
  for (const std::string& fp :
       {kFingerprint,
        std::string("abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789"),
        std::string("SHA256:") + kFingerprint.substr(7)}) {
    auto c = load({"agent.server_fingerprint=" + fp});
    ASSERT_TRUE(c) << fp << ": " << c.error().message;
    EXPECT_EQ(c->agent.server_fingerprint, fp);
  }
}

TEST_F(AgentTrust, RefusesWhatIsNotASha256Fingerprint) {
  for (const std::string& fp : {std::string("sha256:AB:CD"), std::string("not-a-fingerprint"),
                                kFingerprint + ":00", "sha256:" + std::string(64, 'g')}) {
    auto c = load({"agent.server_fingerprint=" + fp});
    ASSERT_FALSE(c) << fp;
    EXPECT_EQ(c.error().code, "config.bad_value") << fp;
    EXPECT_EQ(c.error().field, "agent.server_fingerprint");
    EXPECT_NE(c.error().message.find("32 hex pairs"), std::string::npos) << c.error().message;
  }
}

TEST_F(AgentTrust, CaCertResolvesAgainstTheConfigFile) {
  auto c = load({}, "[agent]\nca_cert = \"tls/ca.pem\"\n");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(fs::path(c->agent.ca_cert), dir_ / "tls" / "ca.pem");
  auto env = load({"agent.ca_cert=/etc/openstation/ca.pem"});
  ASSERT_TRUE(env);
  EXPECT_EQ(env->agent.ca_cert, "/etc/openstation/ca.pem");
}

}  // namespace
}  // namespace openstation::config
