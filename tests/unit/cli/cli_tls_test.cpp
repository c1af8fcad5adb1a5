// openstation login against an https fake API with a self-signed certificate: the fingerprint
// pinned at first login (--yes, --trust-fingerprint), later calls pinned to it, a changed
// certificate refused.
#include "fake_api.hpp"
#include "http/tls.hpp"
#include "support/cli_runner.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

namespace openstation::cli {
namespace {

using testing_support::CliEnv;
using testing_support::FakeApi;
using testing_support::run_cli;

constexpr const char* kLogin =
    R"({"token":"tok-tls","csrf_token":"c","expires_at":"2030-01-01T00:00:00.000Z",)"
    R"("user":{"username":"admin","role":"admin"},"must_change_password":false})";

class CliTls : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto cert = env_.dir() / "server.crt";
    const auto key = env_.dir() / "server.key";
    auto made = http::ensure_self_signed_certificate(cert, key, {"127.0.0.1"});
    ASSERT_TRUE(made) << made.error().message;
    auto fp = http::certificate_fingerprint(cert);
    ASSERT_TRUE(fp) << fp.error().message;
    fingerprint_ = *fp;
    api_ = std::make_unique<FakeApi>(http::TlsServerOptions{cert.string(), key.string()});
    api_->on_json("POST", "/auth/login", 200, kLogin);
    api_->on_json("GET", "/nodes", 200, R"({"items":[],"next_cursor":""})");
    api_->start();
  }

  CliEnv env_;
  std::unique_ptr<FakeApi> api_;
  std::string fingerprint_;
};

TEST_F(CliTls, FirstLoginWithYesPinsThePresentedCertificate) {
  env_.stdin_text("pw\n");
  auto r = run_cli(
      {"login", "--server", api_->url("https"), "-u", "admin", "--password-stdin", "--yes"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(r.err_has(fingerprint_)) << r.err;
  auto saved = boost::json::parse(env_.read_credentials());
  EXPECT_EQ(saved.at("fingerprint").as_string(), fingerprint_);

  auto nodes = run_cli({"nodes"});
  EXPECT_EQ(nodes.code, 0) << nodes.err;
}

TEST_F(CliTls, WithoutATerminalOrYesTheCertificateIsNotTrusted) {
  env_.stdin_text("pw\n");
  auto r = run_cli({"login", "--server", api_->url("https"), "-u", "admin", "--password-stdin"});
  if (r.code == 0) GTEST_SKIP() << "a terminal answered the trust question";
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(r.err_has("(cli.certificate_not_trusted)") || r.err_has("(cli.no_terminal)"))
      << r.err;
  EXPECT_FALSE(std::filesystem::exists(env_.credentials()));
}

TEST_F(CliTls, TrustFingerprintMustMatch) {
  env_.stdin_text("pw\n");
  auto ok = run_cli({"login", "--server", api_->url("https"), "-u", "admin", "--password-stdin",
                     "--trust-fingerprint", fingerprint_});
  ASSERT_EQ(ok.code, 0) << ok.err;

  CliEnv other;
  other.stdin_text("pw\n");
  const std::string wrong = "sha256:" + std::string(64, 'A');
  auto bad = run_cli({"login", "--server", api_->url("https"), "-u", "admin", "--password-stdin",
                      "--trust-fingerprint", wrong});
  EXPECT_EQ(bad.code, 1) << bad.err;
  EXPECT_TRUE(bad.err_has("(cli.certificate_changed)")) << bad.err;
}

TEST_F(CliTls, ChangedCertificateIsRefusedLater) {
  env_.save_login(api_->url("https"), "tok-tls", "sha256:" + std::string(64, 'B'));
  auto r = run_cli({"nodes"});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(r.err_has("(cli.certificate_changed)")) << r.err;
  EXPECT_TRUE(r.err_has("--trust-fingerprint")) << r.err;
  EXPECT_TRUE(api_->seen().empty());
}

}  // namespace
}  // namespace openstation::cli
