// First start: the admin user and its password file.

#include "server/bootstrap.hpp"

#include "server/auth/password.hpp"
#include "support/temp_dir.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

namespace openstation::server {
namespace {

namespace fs = std::filesystem;

class Bootstrap : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing_support::unique_temp_path("bootstrap");
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    auto s = store::open_store((dir_ / "store.db").string());
    ASSERT_TRUE(s) << s.error().message;
    store_ = std::move(*s);
  }
  void TearDown() override {
    store_.reset();
    std::error_code ec;
    fs::permissions(dir_ / "data", fs::perms::owner_all, ec);
    fs::remove_all(dir_, ec);
  }
  static std::string read(const fs::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  std::size_t users() { return store_->users().list({})->items.size(); }

  fs::path dir_;
  std::unique_ptr<store::Store> store_;
};

TEST_F(Bootstrap, CreatesAdminWithAOneTimePasswordFile) {
  const auto data = dir_ / "data";
  auto r = bootstrap_admin(*store_, data, auth::PasswordHashLimits::minimum());
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_TRUE(r->has_value());
  const auto& admin = **r;
  EXPECT_EQ(admin.user.username, "admin");
  EXPECT_EQ(admin.user.role, store::Role::admin);
  EXPECT_TRUE(admin.user.must_change_password);
  EXPECT_TRUE(auth::check_password_rules(admin.password));
  EXPECT_EQ(admin.password_file, data / "initial-admin-password");
  EXPECT_EQ(read(admin.password_file), admin.password + "\n");

  struct stat st {};
  ASSERT_EQ(::stat(admin.password_file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  auto stored = store_->users().get_by_name("admin");
  ASSERT_TRUE(stored);
  EXPECT_TRUE(auth::verify_password(stored->password_hash, admin.password));
  EXPECT_EQ(stored->password_hash.find(admin.password), std::string::npos);
  auto events = store_->events().list({});
  ASSERT_EQ(events->items.size(), 1u);
  EXPECT_EQ(events->items[0].actor, "system");
  EXPECT_EQ(events->items[0].action, "user.create");
}

TEST_F(Bootstrap, DoesNothingWhenAnAdminExists) {
  const auto data = dir_ / "data";
  auto first = bootstrap_admin(*store_, data, auth::PasswordHashLimits::minimum());
  ASSERT_TRUE(first && first->has_value());
  const auto written = read(data / "initial-admin-password");
  auto second = bootstrap_admin(*store_, data, auth::PasswordHashLimits::minimum());
  ASSERT_TRUE(second);
  EXPECT_FALSE(second->has_value());
  EXPECT_EQ(read(data / "initial-admin-password"), written);
  EXPECT_EQ(users(), 1u);
}

TEST_F(Bootstrap, AnyAdminCountsNotJustOneCalledAdmin) {
  store::User root;
  root.username = "root";
  root.role = store::Role::admin;
  root.password_hash = "x";
  ASSERT_TRUE(store_->users().create(root));
  auto r = bootstrap_admin(*store_, dir_ / "data", auth::PasswordHashLimits::minimum());
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->has_value());
  EXPECT_FALSE(fs::exists(dir_ / "data" / "initial-admin-password"));
}

TEST_F(Bootstrap, ANonAdminCalledAdminIsReported) {
  store::User u;
  u.username = "admin";
  u.password_hash = "x";
  ASSERT_TRUE(store_->users().create(u));
  auto r = bootstrap_admin(*store_, dir_ / "data", auth::PasswordHashLimits::minimum());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "bootstrap.admin_name_taken");
}

TEST_F(Bootstrap, AnUnwritableDataDirCreatesNoUser) {
  const auto data = dir_ / "data";
  fs::create_directories(data);
  fs::permissions(data, fs::perms::owner_read | fs::perms::owner_exec);
  if (::access(data.c_str(), W_OK) == 0) GTEST_SKIP() << "running as root: permissions ignored";
  auto r = bootstrap_admin(*store_, data, auth::PasswordHashLimits::minimum());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "bootstrap.write_failed");
  EXPECT_EQ(users(), 0u);
}

TEST_F(Bootstrap, ADataDirThatIsAFileCreatesNoUser) {
  const auto data = dir_ / "data";
  std::ofstream(data) << "not a directory";
  auto r = bootstrap_admin(*store_, data, auth::PasswordHashLimits::minimum());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "bootstrap.write_failed");
  EXPECT_EQ(users(), 0u);
  EXPECT_EQ(store_->events().list({})->items.size(), 0u);
}

}  // namespace
}  // namespace openstation::server
