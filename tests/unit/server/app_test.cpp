// ServerApp: the control-plane process composed from a config (store, bootstrap, TLS, routes).
#include "server/app.hpp"

#include "config/config.hpp"
#include "http/client.hpp"
#include "http/server.hpp"
#include "http/tls.hpp"
#include "server/api/openapi.hpp"
#include "server/bootstrap.hpp"
#include "support/temp_dir.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

namespace openstation::server {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

class ServerAppTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing_support::unique_temp_path("server-app");
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  config::Config config(bool tls) const {
    config::Config c = config::default_config(dir_ / "data");
    c.server.host = "127.0.0.1";
    c.server.port = 0;
    c.server.tls = tls;
    return c;
  }

  std::unique_ptr<ServerApp> make(const config::Config& c, std::ostream* notices = nullptr) {
    ServerAppOptions o;
    o.fast_password_hashing = true;
    o.worker_threads = 2;
    o.io_threads = 1;
    o.notices = notices;
    auto app = ServerApp::create(c, o);
    EXPECT_TRUE(app) << app.error().code << ": " << app.error().message;
    return app ? std::move(*app) : nullptr;
  }

  fs::path dir_;
};

TEST_F(ServerAppTest, FirstStartCreatesTheAdminAndServesHealthOverPlainHttpWhenConfigured) {
  std::ostringstream notices;
  auto app = make(config(false), &notices);
  ASSERT_TRUE(app);
  ASSERT_TRUE(app->initial_admin_password().has_value());
  const std::string password = *app->initial_admin_password();
  EXPECT_NE(notices.str().find(password), std::string::npos) << notices.str();
  std::ifstream file(dir_ / "data" / kInitialAdminPasswordFile);
  std::string in_file;
  std::getline(file, in_file);
  EXPECT_NE(in_file.find(password), std::string::npos);
  EXPECT_EQ(app->store().backend(), "sqlite");
  EXPECT_TRUE(fs::exists(dir_ / "data" / "openstation.db"));
  EXPECT_FALSE(app->tls());
  EXPECT_EQ(app->fingerprint(), "");

  ASSERT_TRUE(app->start());
  EXPECT_EQ(app->local_url(), "http://127.0.0.1:" + std::to_string(app->port()));
  http::Client client;
  auto health = client.get(app->local_url() + "/health");
  ASSERT_TRUE(health) << health.error().message;
  EXPECT_EQ(health->status, 200);
  auto body = json::parse(health->body).as_object();
  EXPECT_EQ(body.at("status"), "ok");
  EXPECT_EQ(body.at("store"), "sqlite");
  EXPECT_TRUE(body.contains("version"));

  auto doc = client.get(app->local_url() + "/api/v1/openapi.json");
  ASSERT_TRUE(doc);
  EXPECT_EQ(doc->status, 200);
  EXPECT_EQ(json::parse(doc->body).at("openapi"), "3.0.3");

  // An API route answers (and wants a login): the route groups are registered.
  auto nodes = client.get(app->local_url() + "/api/v1/nodes");
  ASSERT_TRUE(nodes);
  EXPECT_EQ(nodes->status, 401);
  app->stop();
  app->stop();  // idempotent
}

TEST_F(ServerAppTest, ARestartKeepsTheStoreAndMakesNoSecondAdmin) {
  {
    auto app = make(config(false));
    ASSERT_TRUE(app);
    ASSERT_TRUE(app->initial_admin_password());
  }
  auto again = make(config(false));
  ASSERT_TRUE(again);
  EXPECT_FALSE(again->initial_admin_password().has_value());
  auto admins = again->store().users().get_by_name(kInitialAdminName);
  ASSERT_TRUE(admins);
  EXPECT_TRUE(admins->must_change_password);
}

TEST_F(ServerAppTest, HttpsByDefaultWithASelfSignedCertificateKeptInTheDataDir) {
  auto app = make(config(true));
  ASSERT_TRUE(app);
  ASSERT_TRUE(app->tls());
  EXPECT_EQ(app->certificate_file(), dir_ / "data" / "tls" / "server.crt");
  ASSERT_TRUE(fs::exists(dir_ / "data" / "tls" / "server.key"));
  auto fp = http::certificate_fingerprint(app->certificate_file());
  ASSERT_TRUE(fp);
  EXPECT_EQ(app->fingerprint(), *fp);
  ASSERT_TRUE(app->start());
  EXPECT_EQ(app->local_url(), "https://127.0.0.1:" + std::to_string(app->port()));

  http::TlsClientOptions pinned;
  pinned.pinned_sha256 = app->fingerprint();
  auto health = http::Client(pinned).get(app->local_url() + "/health");
  ASSERT_TRUE(health) << health.error().code << ": " << health.error().message;
  EXPECT_EQ(health->status, 200);

  // The certificate names this machine's loopback address, so a CA-file client trusts it too.
  http::TlsClientOptions ca;
  ca.ca_file = app->certificate_file().string();
  auto via_ca = http::Client(ca).get(app->local_url() + "/health");
  ASSERT_TRUE(via_ca) << via_ca.error().code << ": " << via_ca.error().message;

  http::TlsClientOptions wrong;
  wrong.pinned_sha256 = "sha256:" + std::string(64, '0');
  auto refused = http::Client(wrong).get(app->local_url() + "/health");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, "http.tls_fingerprint_mismatch");

  auto plain = http::Client().get("http://127.0.0.1:" + std::to_string(app->port()) + "/health");
  EXPECT_TRUE(!plain || plain->status == 400);
  const std::string first = app->fingerprint();
  app->stop();
  app.reset();

  auto again = make(config(true));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->fingerprint(), first) << "the certificate must be reused, not remade";
}

TEST_F(ServerAppTest, AConfiguredCertificateThatIsMissingIsAnError) {
  auto c = config(true);
  c.server.cert_file = (dir_ / "nope.crt").string();
  c.server.key_file = (dir_ / "nope.key").string();
  ServerAppOptions o;
  o.fast_password_hashing = true;
  auto app = ServerApp::create(c, o);
  ASSERT_FALSE(app);
  EXPECT_EQ(app.error().code, "http.tls_cert");
  EXPECT_NE(app.error().message.find("nope.crt"), std::string::npos) << app.error().message;
}

TEST_F(ServerAppTest, ADataDirThatIsAFileIsRefused) {
  fs::create_directories(dir_);
  std::ofstream(dir_ / "data") << "not a directory";
  ServerAppOptions o;
  o.fast_password_hashing = true;
  auto app = ServerApp::create(config(false), o);
  ASSERT_FALSE(app);
  EXPECT_EQ(app.error().code, "server.bad_data_dir");
}

TEST_F(ServerAppTest, APortInUseIsReportedAtStart) {
  auto first = make(config(false));
  ASSERT_TRUE(first);
  ASSERT_TRUE(first->start());
  auto c = config(false);
  c.server.port = first->port();
  c.data_dir = dir_ / "data2";
  auto second = make(c);
  ASSERT_TRUE(second);
  auto started = second->start();
  ASSERT_FALSE(started);
  EXPECT_EQ(started.error().code, "http.bind");
}

TEST(StoreUrl, SqliteInTheDataDirUnlessPostgres) {
  config::Config c = config::default_config("/var/lib/os");
  EXPECT_EQ(store_url(c), "/var/lib/os/openstation.db");
  c.server.database = "sqlite:///srv/os.db";
  EXPECT_EQ(store_url(c), "/srv/os.db");
  c.server.database = "postgresql://u:p@db:5432/os";
  EXPECT_EQ(store_url(c), "postgresql://u:p@db:5432/os");
  c.server.database = "postgres://db/os";
  EXPECT_EQ(store_url(c), "postgres://db/os");
}

TEST(CertificateNames, LoopbackLocalhostAndTheConfiguredNames) {
  config::Config c = config::default_config("/tmp/x");
  c.server.host = "10.1.2.3";
  c.server.public_url = "https://os.example.com:32206";
  const auto names = certificate_names(c);
  for (const char* want : {"localhost", "127.0.0.1", "::1", "10.1.2.3", "os.example.com"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), want), names.end()) << want;
  }
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()).size(), names.size())
      << "no duplicates";
}

// Every route the server registers is documented in the merged OpenAPI document, and every
// documented operation is served: an undocumented route (or a stale document) fails here.
TEST_F(ServerAppTest, EveryRegisteredRouteIsInTheOpenApiDocumentAndBack) {
  auto app = make(config(false));
  ASSERT_TRUE(app);
  auto doc = merge_openapi(embedded_openapi_fragments(), "0");
  ASSERT_TRUE(doc) << doc.error().message;

  std::set<std::pair<std::string, std::string>> documented;  // (method, normalized path)
  for (const auto& [path, item] : doc->at("paths").as_object()) {
    for (const auto& [method, op] : item.as_object()) {
      if (method == "parameters" || method == "summary" || method == "description") continue;
      std::string m(method);
      std::transform(m.begin(), m.end(), m.begin(), ::toupper);
      documented.emplace(m, normalize_api_path(path));
    }
  }
  std::set<std::pair<std::string, std::string>> served;
  for (const auto& route : app->http_server().router().routes()) {
    served.emplace(route.method, normalize_api_path(route.pattern));
  }
  ASSERT_FALSE(served.empty());
  for (const auto& r : served) {
    EXPECT_TRUE(documented.count(r))
        << r.first << " " << r.second
        << " is served but not documented: add it to its group's docs/openapi/<group>.json";
  }
  for (const auto& d : documented) {
    EXPECT_TRUE(served.count(d)) << d.first << " " << d.second
                                 << " is documented but no route serves it";
  }
}

}  // namespace
}  // namespace openstation::server
