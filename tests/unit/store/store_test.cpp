// One store suite, run against SQLite (a file in a temp dir, always) and PostgreSQL (a fresh
// database per test on the server named by OPENSTATION_TEST_PG_URL or the URL in the file
// OPENSTATION_TEST_PG_URL_FILE; skipped when neither is set, failed when the file is named but
// empty — the ctest `pg` fixture starts scripts/pg-test-server.sh and names the file).

#include "store/store.hpp"
#include "support/manual_clock.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <pqxx/pqxx>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <set>
#include <span>
#include <thread>

namespace openstation::store {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

/// The PostgreSQL server URL for tests, or "".
std::string pg_admin_url() {
  if (auto url = env("OPENSTATION_TEST_PG_URL"); !url.empty()) return url;
  if (auto file = env("OPENSTATION_TEST_PG_URL_FILE"); !file.empty()) {
    std::ifstream in(file);
    std::string url;
    std::getline(in, url);
    return url;
  }
  return "";
}

std::string random_suffix() {
  std::random_device rd;
  std::string s;
  for (int i = 0; i < 12; ++i) s += static_cast<char>('a' + rd() % 26);
  return s;
}

/// "postgresql://u@h:p/postgres" with the database name replaced.
std::string with_database(const std::string& url, const std::string& db) {
  const auto slash = url.find('/', url.find("//") + 2);
  return url.substr(0, slash) + "/" + db;
}

class StoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "postgres") {
      admin_url_ = pg_admin_url();
      if (admin_url_.empty()) {
        if (!env("OPENSTATION_TEST_PG_URL_FILE").empty()) {
          FAIL() << "no PostgreSQL URL in " << env("OPENSTATION_TEST_PG_URL_FILE")
                 << " (did the pg_server_start fixture run?)";
        }
        GTEST_SKIP() << "no PostgreSQL: set OPENSTATION_TEST_PG_URL (scripts/pg-test-server.sh "
                        "start prints one) or run ctest -L pg";
      }
      database_ = "os_test_" + random_suffix();
      pqxx::connection c(admin_url_);
      pqxx::nontransaction tx(c);
      tx.exec("CREATE DATABASE " + database_);
      url_ = with_database(admin_url_, database_);
    } else {
      dir_ = fs::path(::testing::TempDir()) / ("store-" + random_suffix());
      fs::create_directories(dir_);
      url_ = (dir_ / "data" / "openstation.db").string();
    }
    reopen();
  }

  void TearDown() override {
    store_.reset();
    if (!database_.empty()) {
      pqxx::connection c(admin_url_);
      pqxx::nontransaction tx(c);
      tx.exec("DROP DATABASE IF EXISTS " + database_ + " WITH (FORCE)");
    }
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  bool pg() const { return GetParam() == "postgres"; }

  void reopen() {
    store_.reset();
    auto s = open_store(url_, StoreOptions{.clock = &clock_});
    ASSERT_TRUE(s) << s.error().message;
    store_ = std::move(*s);
  }

  /// Runs SQL on the database behind the store, outside it.
  void raw(const std::string& sql) {
    if (pg()) {
      pqxx::connection c(url_);
      pqxx::nontransaction tx(c);
      tx.exec(sql);
    } else {
      sqlite3* db = nullptr;
      ASSERT_EQ(sqlite3_open(url_.c_str(), &db), SQLITE_OK);
      char* err = nullptr;
      const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
      const std::string msg = err ? err : "";
      sqlite3_free(err);
      sqlite3_close(db);
      ASSERT_EQ(rc, SQLITE_OK) << msg;
    }
  }

  Store& s() { return *store_; }

  User user(std::string name) {
    User u;
    u.username = std::move(name);
    u.display_name = "User " + u.username;
    u.email = u.username + "@example.com";
    u.password_hash = "$argon2id$v=19$...";
    return u;
  }

  Model model(std::string name) {
    Model m;
    m.name = std::move(name);
    m.source = ModelSource::modelscope;
    m.repo = "deepseek-ai/" + m.name;
    m.path = "/models/" + m.name;
    m.format = "safetensors";
    m.size_bytes = 3'550'000'000;
    return m;
  }

  Service service(std::string name, const std::string& model_id) {
    Service v;
    v.name = std::move(name);
    v.model_id = model_id;
    v.engine = "vllm";
    v.extra_args = "--max-model-len 65536";
    v.placement = {"node_a", "node_b"};
    v.replicas = 2;
    return v;
  }

  testing::ManualClock clock_;
  std::unique_ptr<Store> store_;
  std::string url_;
  std::string admin_url_;
  std::string database_;
  fs::path dir_;
};

template <class T>
T ok(core::Result<T> r) {
  EXPECT_TRUE(r) << r.error().code << ": " << r.error().message;
  if (!r) throw std::runtime_error(r.error().message);
  return std::move(*r);
}

void ok(const core::Result<void>& r) {
  ASSERT_TRUE(r) << r.error().code << ": " << r.error().message;
}

TEST_P(StoreTest, ReportsBackendAndSchemaVersion) {
  EXPECT_EQ(s().backend(), pg() ? "postgresql" : "sqlite");
  EXPECT_EQ(ok(s().schema_version()), latest_schema_version());
  EXPECT_GE(latest_schema_version(), 2);
}

TEST_P(StoreTest, UserCrud) {
  const auto created = ok(s().users().create(user("alice")));
  EXPECT_TRUE(created.id.starts_with("usr_")) << created.id;
  EXPECT_EQ(created.id.size(), 4 + 26u);
  EXPECT_EQ(created.created_at, clock_.now());
  EXPECT_EQ(created.updated_at, clock_.now());

  EXPECT_EQ(ok(s().users().get(created.id)), created);
  EXPECT_EQ(ok(s().users().get_by_name("alice")), created);

  clock_.advance(5s);
  auto changed = created;
  changed.display_name = "Alice A.";
  changed.role = Role::admin;
  changed.must_change_password = true;
  const auto updated = ok(s().users().update(changed));
  EXPECT_EQ(updated.updated_at, clock_.now());
  EXPECT_EQ(updated.created_at, created.created_at);
  EXPECT_EQ(ok(s().users().get(created.id)), updated);

  ok(s().users().create(user("bob")));
  const auto admins = ok(s().users().list({.role = Role::admin}));
  ASSERT_EQ(admins.items.size(), 1u);
  EXPECT_EQ(admins.items[0].username, "alice");
  EXPECT_EQ(ok(s().users().list({})).items.size(), 2u);

  ok(s().users().remove(created.id));
  auto gone = s().users().get(created.id);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, "store.not_found");
  EXPECT_EQ(gone.error().category, core::Errc::not_found);
  EXPECT_EQ(s().users().get_by_name("alice").error().code, "store.not_found");
  EXPECT_EQ(s().users().remove(created.id).error().code, "store.not_found");
  auto ghost = created;
  EXPECT_EQ(s().users().update(ghost).error().code, "store.not_found");
}

TEST_P(StoreTest, EveryRecordRoundTripsAllFields) {
  const auto u = ok(s().users().create(user("carol")));

  Session session{.token_hash = "th-1",
                  .user_id = u.id,
                  .csrf_token_hash = "csrf",
                  .created_at = clock_.now() - 1h,
                  .expires_at = clock_.now() + 24h,
                  .last_seen_at = clock_.now(),
                  .ip = "10.0.0.7"};
  EXPECT_EQ(ok(s().sessions().create(session)), session);
  EXPECT_EQ(ok(s().sessions().get("th-1")), session);

  ApiKey key{.user_id = u.id,
             .name = "laptop",
             .prefix = "os-abc123",
             .secret_hash = "hash",
             .last_used_at = std::nullopt,
             .expires_at = clock_.now() + 48h,
             .revoked_at = std::nullopt,
             .allowed_models = {"deepseek-r1", "qwen \"7b\""}};
  const auto k = ok(s().api_keys().create(key));
  EXPECT_EQ(ok(s().api_keys().get_by_name("os-abc123")), k);
  EXPECT_EQ(k.allowed_models, key.allowed_models);
  EXPECT_FALSE(k.last_used_at.has_value());

  Node node{.name = "gpu-1",
            .address = "10.0.0.2:32208",
            .labels = {{"zone", "a"}, {"gpu", "h100"}},
            .status = NodeStatus::ready,
            .status_reason = "",
            .token_hash = "node-token",
            .inventory_json = R"({"gpus":[]})",
            .last_heartbeat_at = clock_.now()};
  const auto n = ok(s().nodes().create(node));
  EXPECT_TRUE(n.id.starts_with("node_"));
  EXPECT_EQ(ok(s().nodes().get(n.id)), n);
  EXPECT_EQ(ok(s().nodes().list({.token_hash = "node-token"})).items, std::vector<Node>{n});

  JoinToken jt{.token_hash = "join", .expires_at = clock_.now() + 1h};
  const auto j = ok(s().join_tokens().create(jt));
  EXPECT_EQ(ok(s().join_tokens().get_by_name("join")), j);

  auto m = model("DeepSeek-R1-Distill-Qwen-1.5B");
  m.node_id = n.id;
  m.meta_json = R"({"params": 1.78e9})";
  const auto mo = ok(s().models().create(m));
  EXPECT_EQ(ok(s().models().get_by_name(m.name)), mo);
  EXPECT_EQ(mo.node_id, n.id);

  const auto sv = ok(s().services().create(service("r1-1.5b", mo.id)));
  EXPECT_EQ(ok(s().services().get_by_name("r1-1.5b")), sv);
  EXPECT_EQ(sv.placement, (std::vector<std::string>{"node_a", "node_b"}));

  Instance inst{.service_id = sv.id,
                .state = InstanceState::running,
                .state_reason = "ready",
                .node_ids = {n.id},
                .assignment_json = "{}",
                .port = 40001,
                .pid = 123456789012,
                .restarts = 3};
  const auto i = ok(s().instances().create(inst));
  EXPECT_EQ(ok(s().instances().get(i.id)), i);

  Download dl{.model_id = mo.id,
              .state = DownloadState::paused,
              .position = 7,
              .bytes_total = 5'000'000'000,
              .bytes_done = 1'234'567'890,
              .files_total = 4,
              .files_done = 1,
              .error = "",
              .log_path = "/var/lib/openstation/logs/dl.log",
              .started_at = clock_.now()};
  const auto d = ok(s().downloads().create(dl));
  EXPECT_EQ(ok(s().downloads().get(d.id)), d);
  EXPECT_FALSE(d.finished_at.has_value());

  const auto set = ok(s().settings().put({.key = "smtp.host", .value = "mail.example.com"}));
  EXPECT_EQ(ok(s().settings().get("smtp.host")), set);

  CallLog call{.user_id = u.id,
               .key_id = k.id,
               .service = "r1-1.5b",
               .instance_id = i.id,
               .status = 200,
               .duration_ms = 1500,
               .prompt_tokens = 12,
               .completion_tokens = 345,
               .ttft_ms = 87,
               .tokens_per_second = 123.456789,
               .error = ""};
  const auto c = ok(s().call_logs().append(call));
  EXPECT_GT(c.id, 0);
  EXPECT_EQ(c.time, clock_.now());
  const auto calls = ok(s().call_logs().list({}));
  ASSERT_EQ(calls.items.size(), 1u);
  EXPECT_EQ(calls.items[0], c);

  const auto e = ok(s().events().append({.actor = "admin",
                                         .action = "service.create",
                                         .target_kind = "service",
                                         .target_id = sv.id,
                                         .detail_json = R"({"replicas":2})"}));
  EXPECT_EQ(ok(s().events().list({.target_id = sv.id})).items, std::vector<Event>{e});
}

TEST_P(StoreTest, UniqueFieldsConflictNamingTheField) {
  const auto a = ok(s().users().create(user("dave")));
  auto dup = s().users().create(user("dave"));
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().code, "store.conflict");
  EXPECT_EQ(dup.error().category, core::Errc::conflict);
  EXPECT_EQ(dup.error().field, "username");
  EXPECT_NE(dup.error().message.find("dave"), std::string::npos) << dup.error().message;

  // Renaming onto a taken name.
  auto b = ok(s().users().create(user("erin")));
  b.username = "dave";
  auto renamed = s().users().update(b);
  ASSERT_FALSE(renamed);
  EXPECT_EQ(renamed.error().field, "username");

  ok(s().nodes().create({.name = "n1", .token_hash = "t1"}));
  EXPECT_EQ(s().nodes().create({.name = "n1", .token_hash = "t2"}).error().field, "name");
  EXPECT_EQ(s().nodes().create({.name = "n2", .token_hash = "t1"}).error().field, "token_hash");
  // Nodes without a credential yet do not collide on the empty token.
  ok(s().nodes().create({.name = "n3"}));
  ok(s().nodes().create({.name = "n4"}));

  const auto m = ok(s().models().create(model("m")));
  EXPECT_EQ(s().models().create(model("m")).error().field, "name");
  ok(s().services().create(service("svc", m.id)));
  EXPECT_EQ(s().services().create(service("svc", m.id)).error().field, "name");
  ok(s().api_keys().create({.user_id = a.id, .name = "k", .prefix = "os-1"}));
  EXPECT_EQ(s().api_keys().create({.user_id = a.id, .name = "k", .prefix = "os-1"}).error().field,
            "prefix");
  ok(s().sessions().create({.token_hash = "s", .user_id = a.id}));
  EXPECT_EQ(s().sessions().create({.token_hash = "s", .user_id = a.id}).error().field,
            "token_hash");
}

TEST_P(StoreTest, ServiceGenerationIsOptimisticConcurrency) {
  const auto m = ok(s().models().create(model("m")));
  const auto created = ok(s().services().create(service("svc", m.id)));
  EXPECT_EQ(created.generation, 0);

  auto mine = created;
  mine.replicas = 3;
  const auto first = ok(s().services().update(mine));
  EXPECT_EQ(first.generation, 1);
  EXPECT_EQ(ok(s().services().get(created.id)).generation, 1);

  auto stale = created;  // still at generation 0
  stale.replicas = 5;
  auto lost = s().services().update(stale);
  ASSERT_FALSE(lost);
  EXPECT_EQ(lost.error().code, "store.conflict");
  EXPECT_EQ(lost.error().field, "generation");
  EXPECT_EQ(ok(s().services().get(created.id)).replicas, 3);

  auto again = first;
  again.replicas = 4;
  EXPECT_EQ(ok(s().services().update(again)).generation, 2);

  auto missing = first;
  missing.id = "svc_missing";
  EXPECT_EQ(s().services().update(missing).error().code, "store.not_found");
}

TEST_P(StoreTest, InstanceRevisionAndFilters) {
  const auto m = ok(s().models().create(model("m")));
  const auto sv = ok(s().services().create(service("svc", m.id)));
  const auto other = ok(s().services().create(service("other", m.id)));
  auto a = ok(s().instances().create({.service_id = sv.id, .node_ids = {"node_1", "node_2"}}));
  ok(s().instances().create(
      {.service_id = sv.id, .state = InstanceState::running, .node_ids = {"node_10"}}));
  ok(s().instances().create({.service_id = other.id, .node_ids = {"node_2"}}));

  EXPECT_EQ(ok(s().instances().list({.service_id = sv.id})).items.size(), 2u);
  EXPECT_EQ(ok(s().instances().list({.state = InstanceState::running})).items.size(), 1u);
  // node_1 must not match node_10.
  const auto on1 = ok(s().instances().list({.node_id = "node_1"}));
  ASSERT_EQ(on1.items.size(), 1u);
  EXPECT_EQ(on1.items[0].id, a.id);
  EXPECT_EQ(ok(s().instances().list({.node_id = "node_2"})).items.size(), 2u);
  EXPECT_EQ(ok(s().instances().list({.service_id = sv.id, .node_id = "node_2"})).items.size(), 1u);
  EXPECT_EQ(ok(s().instances().list({.node_id = "node_%"})).items.size(), 0u);

  auto reconciler = a;
  auto agent = a;
  reconciler.state = InstanceState::draining;
  a = ok(s().instances().update(reconciler));
  EXPECT_EQ(a.revision, 1);
  agent.state = InstanceState::running;
  auto lost = s().instances().update(agent);
  ASSERT_FALSE(lost);
  EXPECT_EQ(lost.error().field, "revision");
  EXPECT_EQ(ok(s().instances().get(a.id)).state, InstanceState::draining);
}

TEST_P(StoreTest, ReferencesAreCheckedAndCascade) {
  auto orphan = s().sessions().create({.token_hash = "t", .user_id = "usr_nobody"});
  ASSERT_FALSE(orphan);
  EXPECT_EQ(orphan.error().code, "store.not_found");
  EXPECT_EQ(orphan.error().field, "user_id");

  const auto m = ok(s().models().create(model("m")));
  const auto sv = ok(s().services().create(service("uses-m", m.id)));
  auto refused = s().models().remove(m.id);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, "store.conflict");
  EXPECT_NE(refused.error().message.find("uses-m"), std::string::npos) << refused.error().message;
  EXPECT_TRUE(s().models().get(m.id));

  // Deleting a service deletes its instances; deleting a model its downloads.
  const auto inst = ok(s().instances().create({.service_id = sv.id}));
  ok(s().downloads().create({.model_id = m.id}));
  ok(s().services().remove(sv.id));
  EXPECT_EQ(s().instances().get(inst.id).error().code, "store.not_found");
  ok(s().models().remove(m.id));
  EXPECT_TRUE(ok(s().downloads().list({})).items.empty());

  // Deleting a user deletes their sessions and keys.
  const auto u = ok(s().users().create(user("frank")));
  ok(s().sessions().create({.token_hash = "t", .user_id = u.id}));
  ok(s().api_keys().create({.user_id = u.id, .name = "k", .prefix = "os-f"}));
  ok(s().users().remove(u.id));
  EXPECT_TRUE(ok(s().sessions().list({})).items.empty());
  EXPECT_TRUE(ok(s().api_keys().list({})).items.empty());
}

TEST_P(StoreTest, MarkingKeysUsedMovesLastUsedForwardOnly) {
  const auto u = ok(s().users().create(user("ivan")));
  const auto a = ok(s().api_keys().create({.user_id = u.id, .name = "a", .prefix = "os-a"}));
  const auto b = ok(s().api_keys().create({.user_id = u.id, .name = "b", .prefix = "os-b"}));
  const auto t0 = clock_.now();
  const std::vector<KeyUse> first{{a.id, t0 + std::chrono::seconds(5)},
                                  {"key_gone", t0},  // a key deleted meanwhile: skipped
                                  {b.id, t0 + std::chrono::seconds(1)}};
  ok(s().mark_keys_used(first));
  const auto a1 = ok(s().api_keys().get(a.id));
  ASSERT_TRUE(a1.last_used_at);
  EXPECT_EQ(*a1.last_used_at, t0 + std::chrono::seconds(5));
  EXPECT_EQ(*ok(s().api_keys().get(b.id)).last_used_at, t0 + std::chrono::seconds(1));

  // An older use (a batch that was retried late) never moves it back; a newer one does.
  const std::vector<KeyUse> second{{a.id, t0 + std::chrono::seconds(2)},
                                   {b.id, t0 + std::chrono::seconds(9)}};
  ok(s().transaction([&](Store& tx) { return tx.mark_keys_used(second); }));
  EXPECT_EQ(*ok(s().api_keys().get(a.id)).last_used_at, t0 + std::chrono::seconds(5));
  EXPECT_EQ(*ok(s().api_keys().get(b.id)).last_used_at, t0 + std::chrono::seconds(9));
  ok(s().mark_keys_used({}));
}

TEST_P(StoreTest, TransactionCommitsAllOrNothing) {
  ok(s().transaction([&](Store& tx) -> core::Result<void> {
    auto u = tx.users().create(user("gina"));
    if (!u) return u.error();
    auto k = tx.api_keys().create({.user_id = u->id, .name = "k", .prefix = "os-g"});
    if (!k) return k.error();
    return {};
  }));
  EXPECT_TRUE(s().users().get_by_name("gina"));
  EXPECT_TRUE(s().api_keys().get_by_name("os-g"));

  // An error returned by the callback undoes everything it wrote and is passed on.
  auto failed = s().transaction([&](Store& tx) -> core::Result<void> {
    auto u = tx.users().create(user("hank"));
    if (!u) return u.error();
    if (auto n = tx.nodes().create({.name = "hank-node"}); !n) return n.error();
    return core::invalid("test.refused", "refused by the test");
  });
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code, "test.refused");
  EXPECT_EQ(s().users().get_by_name("hank").error().code, "store.not_found");
  EXPECT_EQ(s().nodes().get_by_name("hank-node").error().code, "store.not_found");

  // A constraint failure inside: the caller may handle it and keep going (PostgreSQL too).
  ok(s().transaction([&](Store& tx) -> core::Result<void> {
    auto dup = tx.users().create(user("gina"));
    EXPECT_EQ(dup.error().field, "username");
    auto u = tx.users().create(user("ivan"));
    if (!u) return u.error();
    return {};
  }));
  EXPECT_TRUE(s().users().get_by_name("ivan"));

  // ... or pass it on, and nothing stays.
  auto conflict = s().transaction([&](Store& tx) -> core::Result<void> {
    if (auto u = tx.users().create(user("judy")); !u) return u.error();
    auto dup = tx.users().create(user("gina"));
    if (!dup) return dup.error();
    return {};
  });
  EXPECT_EQ(conflict.error().code, "store.conflict");
  EXPECT_EQ(s().users().get_by_name("judy").error().code, "store.not_found");

  // An exception becomes store.internal and rolls back.
  auto thrown = s().transaction([&](Store& tx) -> core::Result<void> {
    (void)tx.users().create(user("kate"));
    throw std::runtime_error("boom");
  });
  EXPECT_EQ(thrown.error().code, "store.internal");
  EXPECT_EQ(s().users().get_by_name("kate").error().code, "store.not_found");
}

TEST_P(StoreTest, NestedTransactionsAreSavepoints) {
  ok(s().transaction([&](Store& tx) -> core::Result<void> {
    if (auto u = tx.users().create(user("outer")); !u) return u.error();
    auto inner = tx.transaction([&](Store& tx2) -> core::Result<void> {
      if (auto u = tx2.users().create(user("inner")); !u) return u.error();
      return core::invalid("test.inner", "inner fails");
    });
    EXPECT_EQ(inner.error().code, "test.inner");
    auto kept = tx.transaction([&](Store& tx2) -> core::Result<void> {
      if (auto u = tx2.users().create(user("inner-kept")); !u) return u.error();
      return {};
    });
    EXPECT_TRUE(kept);
    // Writes of the transaction are visible inside it.
    EXPECT_TRUE(tx.users().get_by_name("inner-kept"));
    return {};
  }));
  EXPECT_TRUE(s().users().get_by_name("outer"));
  EXPECT_TRUE(s().users().get_by_name("inner-kept"));
  EXPECT_EQ(s().users().get_by_name("inner").error().code, "store.not_found");
}

TEST_P(StoreTest, EntityPagesFollowCreationOrder) {
  std::vector<std::string> ids;
  for (int i = 0; i < 25; ++i) {
    ids.push_back(ok(s().nodes().create({.name = "node-" + std::to_string(i)})).id);
    if (i % 3 == 0) clock_.advance(1ms);  // some share a millisecond: ids stay in order
  }
  std::vector<std::string> seen;
  PageRequest page{.limit = 10};
  int pages = 0;
  do {
    auto p = ok(s().nodes().list({}, page));
    ++pages;
    EXPECT_LE(p.items.size(), 10u);
    for (const auto& n : p.items) seen.push_back(n.id);
    page.cursor = p.next_cursor;
  } while (!page.cursor.empty());
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(seen, ids);
  EXPECT_EQ(ok(s().nodes().list({}, {.limit = 0})).items.size(), 25u);
  auto exact = ok(s().nodes().list({}, {.limit = 25}));
  EXPECT_EQ(exact.items.size(), 25u);
  EXPECT_TRUE(exact.next_cursor.empty());
}

TEST_P(StoreTest, LogsListNewestFirstWithFiltersAndRetention) {
  for (int i = 0; i < 25; ++i) {
    ok(s().events().append({.actor = i % 2 ? "admin" : "system",
                            .action = "node.update",
                            .target_kind = "node",
                            .target_id = "node_" + std::to_string(i % 5)}));
    clock_.advance(1s);
  }
  std::vector<std::int64_t> ids;
  PageRequest page{.limit = 10};
  do {
    auto p = ok(s().events().list({}, page));
    for (const auto& e : p.items) ids.push_back(e.id);
    page.cursor = p.next_cursor;
  } while (!page.cursor.empty());
  ASSERT_EQ(ids.size(), 25u);
  EXPECT_TRUE(std::is_sorted(ids.rbegin(), ids.rend()));
  EXPECT_EQ(std::set<std::int64_t>(ids.begin(), ids.end()).size(), 25u);

  EXPECT_EQ(ok(s().events().list({.target_kind = "node", .target_id = "node_3"})).items.size(), 5u);
  EXPECT_EQ(ok(s().events().list({.actor = "admin"})).items.size(), 12u);
  const auto start = clock_.now() - 25s;
  EXPECT_EQ(ok(s().events().list({.since = start + 10s, .until = start + 15s})).items.size(), 5u);
  EXPECT_EQ(s().events().list({}, {.limit = 5, .cursor = "not-a-number"}).error().code,
            "store.invalid");

  // Call logs: a batch all or nothing, per-service pages, retention.
  std::vector<CallLog> batch;
  for (int i = 0; i < 6; ++i) {
    batch.push_back({.time = clock_.now() + std::chrono::seconds(i),
                     .service = i < 4 ? "a" : "b",
                     .status = 200});
  }
  ok(s().call_logs().append_all(batch));
  const auto a = ok(s().call_logs().list({.service = "a"}, {.limit = 3}));
  ASSERT_EQ(a.items.size(), 3u);
  EXPECT_FALSE(a.next_cursor.empty());
  EXPECT_GT(a.items[0].time, a.items[2].time);
  EXPECT_EQ(ok(s().call_logs().list({.service = "a"}, {.limit = 3, .cursor = a.next_cursor}))
                .items.size(),
            1u);
  EXPECT_EQ(ok(s().call_logs().remove_before(clock_.now() + 2s)), 2u);
  EXPECT_EQ(ok(s().call_logs().list({})).items.size(), 4u);
  EXPECT_EQ(ok(s().events().remove_before(start + 5s)), 5u);
}

TEST_P(StoreTest, LargeCallLogBatchesKeepEveryRowAndValue) {
  // 70 rows: two 32-row statements and six single-row ones, in one transaction.
  std::vector<CallLog> batch;
  for (int i = 0; i < 70; ++i) {
    batch.push_back({.time = clock_.now() + std::chrono::milliseconds(i),
                     .user_id = "usr_" + std::to_string(i % 3),
                     .key_id = "key_" + std::to_string(i),
                     .service = "svc",
                     .instance_id = "ins_" + std::to_string(i % 2),
                     .status = 200 + i,
                     .duration_ms = i,
                     .prompt_tokens = 10 * i,
                     .completion_tokens = i,
                     .ttft_ms = i % 5 == 0 ? std::optional<std::int64_t>() : i,
                     .tokens_per_second = i / 2.0,
                     .error = i % 7 == 0 ? "e" + std::to_string(i) : ""});
  }
  ok(s().call_logs().append_all(batch));
  std::vector<CallLog> got;
  PageRequest page{.limit = 25};
  do {
    auto p = ok(s().call_logs().list({.service = "svc"}, page));
    got.insert(got.end(), p.items.begin(), p.items.end());
    page.cursor = p.next_cursor;
  } while (!page.cursor.empty());
  ASSERT_EQ(got.size(), 70u);
  std::sort(got.begin(), got.end(),
            [](const CallLog& a, const CallLog& b) { return a.key_id < b.key_id; });
  std::sort(batch.begin(), batch.end(),
            [](const CallLog& a, const CallLog& b) { return a.key_id < b.key_id; });
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].status, batch[i].status) << i;
    EXPECT_EQ(got[i].user_id, batch[i].user_id) << i;
    EXPECT_EQ(got[i].instance_id, batch[i].instance_id) << i;
    EXPECT_EQ(got[i].prompt_tokens, batch[i].prompt_tokens) << i;
    EXPECT_EQ(got[i].ttft_ms, batch[i].ttft_ms) << i;
    EXPECT_DOUBLE_EQ(got[i].tokens_per_second, batch[i].tokens_per_second) << i;
    EXPECT_EQ(got[i].error, batch[i].error) << i;
    EXPECT_GT(got[i].id, 0) << i;
  }
}

TEST_P(StoreTest, ABatchKeepsNothingOfTheBatchWrittenBeforeIt) {
  // The writer's statement parameters are kept between batches and overwritten in place: a
  // second batch with shorter or empty strings and no TTFT must read back as itself.
  const auto make = [&](const std::string& tag, bool full, int n) {
    std::vector<CallLog> batch;
    for (int i = 0; i < n; ++i) {
      const std::string long_text(full ? 40 : 0, 'x');
      batch.push_back({.time = clock_.now() + std::chrono::milliseconds(i),
                       .user_id = full ? "usr_" + long_text + std::to_string(i) : "u",
                       .key_id = tag + std::to_string(i),
                       .service = tag,
                       .instance_id = full ? "ins_" + long_text : "",
                       .status = full ? 500 : 200,
                       .duration_ms = full ? 1000 + i : i,
                       .ttft_ms = full ? std::optional<std::int64_t>(7) : std::nullopt,
                       .tokens_per_second = full ? 12.5 : 0.0,
                       .error = full ? "the engine failed: " + long_text : ""});
    }
    return batch;
  };
  const auto first = make("full", true, 40);
  const auto second = make("short", false, 40);
  ok(s().call_logs().append_all(first));
  ok(s().call_logs().append_all(second));
  for (const auto* batch : {&first, &second}) {
    auto got = ok(s().call_logs().list({.service = batch->front().service}, {.limit = 100})).items;
    ASSERT_EQ(got.size(), batch->size());
    std::reverse(got.begin(), got.end());  // listed newest first
    for (std::size_t i = 0; i < got.size(); ++i) {
      const auto& want = (*batch)[i];
      EXPECT_EQ(got[i].user_id, want.user_id) << i;
      EXPECT_EQ(got[i].key_id, want.key_id) << i;
      EXPECT_EQ(got[i].instance_id, want.instance_id) << i;
      EXPECT_EQ(got[i].status, want.status) << i;
      EXPECT_EQ(got[i].duration_ms, want.duration_ms) << i;
      EXPECT_EQ(got[i].ttft_ms, want.ttft_ms) << i;
      EXPECT_DOUBLE_EQ(got[i].tokens_per_second, want.tokens_per_second) << i;
      EXPECT_EQ(got[i].error, want.error) << i;
    }
  }
}

TEST_P(StoreTest, RetentionCutsInAppendOrderAndNeverDropsANewerEntry) {
  const auto t0 = clock_.now();
  // Appended in this order; the fourth arrived late from a replica with an older time.
  const std::vector<CallLog> batch{{.time = t0, .service = "r", .status = 1},
                                   {.time = t0 + 1s, .service = "r", .status = 2},
                                   {.time = t0 + 2s, .service = "r", .status = 3},
                                   {.time = t0 + 500ms, .service = "r", .status = 4},
                                   {.time = t0 + 3s, .service = "r", .status = 5}};
  ok(s().call_logs().append_all(batch));
  const auto statuses = [&] {
    std::vector<int> out;
    for (const auto& l : ok(s().call_logs().list({.service = "r"})).items) out.push_back(l.status);
    return out;
  };
  EXPECT_EQ(ok(s().call_logs().remove_before(t0 - 1s)), 0u);
  // Older than t0 + 1.5 s: the first two go; the late one stays behind a newer entry.
  EXPECT_EQ(ok(s().call_logs().remove_before(t0 + 1500ms)), 2u);
  EXPECT_EQ(statuses(), (std::vector<int>{5, 4, 3}));
  EXPECT_EQ(ok(s().call_logs().remove_before(t0 + 2500ms)), 2u);
  EXPECT_EQ(statuses(), (std::vector<int>{5}));
  // Everything older: all of it, and an empty table stays empty.
  EXPECT_EQ(ok(s().call_logs().remove_before(t0 + 1h)), 1u);
  EXPECT_TRUE(statuses().empty());
  EXPECT_EQ(ok(s().call_logs().remove_before(t0 + 1h)), 0u);
}

TEST_P(StoreTest, RetentionInChunksTakesTheOldestFirstAndStopsAtTheCut) {
  const auto t0 = clock_.now();
  std::vector<CallLog> batch;
  for (int i = 0; i < 7; ++i) batch.push_back({.time = t0 + i * 1s, .service = "c", .status = i});
  ok(s().call_logs().append_all(batch));
  const auto statuses = [&] {
    std::vector<int> out;
    for (const auto& l : ok(s().call_logs().list({.service = "c"})).items) out.push_back(l.status);
    return out;
  };
  // Older than t0 + 4.5 s: five entries, at most two per call, oldest first.
  EXPECT_EQ(ok(s().call_logs().remove_before(t0 + 4500ms, 2)), 2u);
  EXPECT_EQ(statuses(), (std::vector<int>{6, 5, 4, 3, 2}));
  EXPECT_EQ(ok(s().call_logs().remove_before(t0 + 4500ms, 2)), 2u);
  EXPECT_EQ(ok(s().call_logs().remove_before(t0 + 4500ms, 2)), 1u);  // the cut: one was left
  EXPECT_EQ(ok(s().call_logs().remove_before(t0 + 4500ms, 2)), 0u);
  EXPECT_EQ(statuses(), (std::vector<int>{6, 5}));
}

TEST_P(StoreTest, CallLogBatchesAreStampedInTheDatabaseOnly) {
  // A row at the epoch gets the store's time; the caller's batch stays as it was (a writer that
  // must retry sends the same rows again).
  const std::vector<CallLog> batch{{.service = "stamped", .status = 200},
                                   {.time = clock_.now() - 1h, .service = "kept", .status = 201}};
  const auto before = batch;
  ok(s().call_logs().append_all(batch));
  EXPECT_EQ(batch[0].time, before[0].time);
  EXPECT_EQ(batch[0].id, 0);
  const auto stamped = ok(s().call_logs().list({.service = "stamped"})).items;
  ASSERT_EQ(stamped.size(), 1u);
  EXPECT_EQ(stamped[0].time, clock_.now());
  const auto kept = ok(s().call_logs().list({.service = "kept"})).items;
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(kept[0].time, clock_.now() - 1h);
}

TEST_P(StoreTest, CallLogsKeepEveryCharacterAndNumber) {
  // Calls are stored as text in blocks: separators, escapes and extreme numbers read back as
  // they were written.
  const std::vector<std::string> odd{
      "tab\there",     "new\nline", "back\\slash\\", "cr\r", std::string("nul\0x", 5),
      "\\t not a tab", "",          "日本",          "=",    "=x",
      "\\=",           "a=b"};
  std::vector<CallLog> batch;
  for (std::size_t i = 0; i < odd.size(); ++i) {
    batch.push_back({.time = clock_.now() + std::chrono::milliseconds(i),
                     .user_id = odd[i],
                     .key_id = odd[(i + 1) % odd.size()],
                     .service = "odd",
                     .instance_id = odd[(i + 2) % odd.size()],
                     .status = static_cast<int>(i) - 1,
                     .duration_ms = i == 0 ? std::numeric_limits<std::int64_t>::max() : -7,
                     .prompt_tokens = std::numeric_limits<std::int64_t>::min(),
                     .completion_tokens = 0,
                     .ttft_ms = i % 2 == 0 ? std::optional<std::int64_t>(0) : std::nullopt,
                     .tokens_per_second = i == 0 ? 0.1 : 1e300 / static_cast<double>(i),
                     .error = odd[(i + 3) % odd.size()]});
  }
  ok(s().call_logs().append_all(batch));
  auto got = ok(s().call_logs().list({.service = "odd"})).items;
  ASSERT_EQ(got.size(), batch.size());
  std::reverse(got.begin(), got.end());
  for (std::size_t i = 0; i < got.size(); ++i) {
    auto want = batch[i];
    want.id = got[i].id;
    EXPECT_EQ(got[i], want) << i;
  }
}

TEST_P(StoreTest, CallLogsListInAppendOrderPerServiceAndUser) {
  // One batch, three services and users interleaved (user ids with LIKE's wildcards and case):
  // each service's list, and each user's within it, is the batch's order reversed, and a user
  // sees only their own calls.
  const std::vector<std::string> services{"s1", "s2", "s3"};
  const std::vector<std::string> users{"usr_a", "usr%b", "USR_A"};
  std::vector<CallLog> batch;
  for (int i = 0; i < 60; ++i) {
    batch.push_back({.time = clock_.now() + std::chrono::milliseconds(i),
                     .user_id = users[static_cast<std::size_t>(i / 3) % 3],
                     .key_id = "k" + std::to_string(i),
                     .service = services[static_cast<std::size_t>(i) % 3],
                     .status = i});
  }
  ok(s().call_logs().append_all(batch));
  ok(s().call_logs().append_all(std::span(batch).subspan(0, 5)));  // a second batch: newer
  for (const auto& svc : services) {
    for (const std::optional<std::string>& who :
         {std::optional<std::string>(), std::optional<std::string>(users[0]),
          std::optional<std::string>(users[1]), std::optional<std::string>(users[2]),
          std::optional<std::string>("usr_")}) {
      std::vector<int> want;
      for (const auto& part : {std::span(batch), std::span(batch).subspan(0, 5)}) {
        for (const auto& l : part) {
          if (l.service == svc && (!who || l.user_id == *who)) want.push_back(l.status);
        }
      }
      std::reverse(want.begin(), want.end());
      // Pages of 4 through the blocks.
      std::vector<int> got;
      std::int64_t last = std::numeric_limits<std::int64_t>::max();
      PageRequest page{.limit = 4};
      do {
        auto p = ok(s().call_logs().list({.service = svc, .user_id = who}, page));
        for (const auto& l : p.items) {
          EXPECT_LT(l.id, last);
          last = l.id;
          got.push_back(l.status);
        }
        page.cursor = p.next_cursor;
      } while (!page.cursor.empty());
      EXPECT_EQ(got, want) << svc << " " << who.value_or("(all)");
    }
  }
  // Key and time filters apply to single calls.
  const auto one = ok(s().call_logs().list({.key_id = "k7"})).items;
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].status, 7);
  const auto window = ok(s().call_logs().list(
      {.service = "s1", .since = clock_.now() + 10ms, .until = clock_.now() + 20ms}));
  std::vector<int> statuses;
  for (const auto& l : window.items) statuses.push_back(l.status);
  EXPECT_EQ(statuses, (std::vector<int>{18, 15, 12}));
}

TEST_P(StoreTest, CallLogsWrittenBeforeBlocksAreListedAfterThemAndCut) {
  // A database from before migration 4: its calls in call_logs. After the upgrade they are
  // listed after the new calls (their ids are lower), pages cross from blocks to rows, and
  // retention takes the rows first.
  raw("DROP TABLE call_log_blocks");
  raw("DROP TABLE call_log_ids");
  raw("DELETE FROM schema_migrations WHERE version = 4");
  const auto t0 = clock_.now();
  for (int i = 0; i < 5; ++i) {
    raw("INSERT INTO call_logs (time, user_id, key_id, service, instance_id, status, duration_ms, "
        "prompt_tokens, completion_tokens, ttft_ms, tokens_per_second, error) VALUES (" +
        std::to_string(
            std::chrono::duration_cast<std::chrono::milliseconds>((t0 + i * 1s).time_since_epoch())
                .count()) +
        ", 'u', 'k', 'old', 'i', " + std::to_string(i) + ", 1, 2, 3, NULL, 0.5, '')");
  }
  reopen();
  EXPECT_EQ(ok(s().schema_version()), latest_schema_version());
  std::vector<CallLog> batch;
  for (int i = 5; i < 9; ++i) {
    batch.push_back({.time = t0 + i * 1s, .user_id = "u", .service = "old", .status = i});
  }
  ok(s().call_logs().append_all(batch));
  const auto statuses = [&](const CallLogFilter& f) {
    std::vector<int> out;
    PageRequest page{.limit = 3};
    do {
      auto p = ok(s().call_logs().list(f, page));
      for (const auto& l : p.items) out.push_back(l.status);
      page.cursor = p.next_cursor;
    } while (!page.cursor.empty());
    return out;
  };
  EXPECT_EQ(statuses({.service = "old"}), (std::vector<int>{8, 7, 6, 5, 4, 3, 2, 1, 0}));
  EXPECT_EQ(statuses({.service = "old", .user_id = "u"}),
            (std::vector<int>{8, 7, 6, 5, 4, 3, 2, 1, 0}));
  const auto old = ok(s().call_logs().list({.service = "old"}, {.limit = 9})).items;
  EXPECT_EQ(old[4].ttft_ms, std::nullopt);
  EXPECT_EQ(old[4].completion_tokens, 3);
  // At most 3 a call, oldest first: rows, then the block is cut.
  EXPECT_EQ(ok(s().call_logs().remove_before(t0 + 6500ms, 3)), 3u);  // rows 0-2
  EXPECT_EQ(ok(s().call_logs().remove_before(t0 + 6500ms, 3)), 3u);  // rows 3-4, then 5
  EXPECT_EQ(ok(s().call_logs().remove_before(t0 + 6500ms, 3)), 1u);  // 6: 7 is the cut
  EXPECT_EQ(ok(s().call_logs().remove_before(t0 + 6500ms, 3)), 0u);
  EXPECT_EQ(statuses({.service = "old"}), (std::vector<int>{8, 7}));
  // New ids continue after the old rows' and never come back after a purge.
  const auto before_purge = ok(s().call_logs().list({.service = "old"}, {.limit = 1})).items;
  EXPECT_EQ(ok(s().call_logs().remove_before(t0 + 1h)), 2u);
  const auto next = ok(s().call_logs().append({.time = t0 + 2h, .service = "old"}));
  EXPECT_GT(next.id, before_purge[0].id);
}

TEST_P(StoreTest, ConcurrentCallLogBatchesGetDistinctIds) {
  constexpr int kBatches = 20;
  auto writer = [&](int t) {
    for (int b = 0; b < kBatches; ++b) {
      std::vector<CallLog> batch(7, CallLog{.service = "c" + std::to_string(t), .status = b});
      ASSERT_TRUE(s().call_logs().append_all(batch));
    }
  };
  std::thread a(writer, 0);
  std::thread b(writer, 1);
  a.join();
  b.join();
  std::set<std::int64_t> ids;
  for (const auto& l : ok(s().call_logs().list({}, {.limit = 0})).items) ids.insert(l.id);
  EXPECT_EQ(ids.size(), 2u * kBatches * 7);
  // Forty blocks: retention reads them in growing chunks and takes every call.
  EXPECT_EQ(ok(s().call_logs().remove_before(clock_.now() + 1h)), 2u * kBatches * 7);
  EXPECT_TRUE(ok(s().call_logs().list({})).items.empty());
}

TEST_P(StoreTest, PutUpsertsAndRemoveAllFilters) {
  ok(s().settings().put({.key = "smtp.host", .value = "a"}));
  clock_.advance(1s);
  const auto second = ok(s().settings().put({.key = "smtp.host", .value = "b"}));
  ok(s().settings().put({.key = "smtp.port", .value = "25"}));
  ok(s().settings().put({.key = "ui.lang", .value = "zh-CN"}));
  EXPECT_EQ(ok(s().settings().get("smtp.host")), second);
  EXPECT_EQ(ok(s().settings().list({.key_prefix = "smtp."})).items.size(), 2u);
  EXPECT_EQ(ok(s().settings().list({.key_prefix = "smtp%"})).items.size(), 0u);

  const auto u = ok(s().users().create(user("lena")));
  ok(s().sessions().create(
      {.token_hash = "old", .user_id = u.id, .expires_at = clock_.now() - 1s}));
  ok(s().sessions().create(
      {.token_hash = "new", .user_id = u.id, .expires_at = clock_.now() + 1h}));
  EXPECT_EQ(ok(s().sessions().remove_all({.expires_before = clock_.now()})), 1u);
  EXPECT_TRUE(s().sessions().get("new"));
  EXPECT_EQ(s().sessions().get("old").error().code, "store.not_found");
}

TEST_P(StoreTest, MigrationsAreIdempotentAcrossReopen) {
  const auto u = ok(s().users().create(user("mike")));
  reopen();
  reopen();
  EXPECT_EQ(ok(s().schema_version()), latest_schema_version());
  EXPECT_EQ(ok(s().users().get(u.id)), u);
}

TEST_P(StoreTest, RefusesASchemaNewerThanTheBinary) {
  const int newer = latest_schema_version() + 1;
  raw("INSERT INTO schema_migrations (version, name, applied_at) VALUES (" + std::to_string(newer) +
      ", 'from_the_future', 0)");
  store_.reset();
  auto opened = open_store(url_, StoreOptions{.clock = &clock_});
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().code, "store.migration_failed");
  EXPECT_NE(opened.error().message.find("version " + std::to_string(newer) + ", newer"),
            std::string::npos)
      << opened.error().message;
}

TEST_P(StoreTest, ConcurrentWritersAllLand) {
  constexpr int kPerThread = 60;
  std::atomic<int> failures{0};
  auto writer = [&](int t) {
    for (int i = 0; i < kPerThread; ++i) {
      const auto name = "w" + std::to_string(t) + "-" + std::to_string(i);
      auto r = s().transaction([&](Store& tx) -> core::Result<void> {
        auto u = tx.users().create(user(name));
        if (!u) return u.error();
        auto e = tx.events().append({.actor = name, .action = "user.create"});
        if (!e) return e.error();
        return {};
      });
      if (!r) ++failures;
    }
  };
  std::thread a(writer, 0);
  std::thread b(writer, 1);
  a.join();
  b.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(ok(s().users().list({}, {.limit = 0})).items.size(), 2u * kPerThread);
  EXPECT_EQ(ok(s().events().list({}, {.limit = 0})).items.size(), 2u * kPerThread);
}

TEST_P(StoreTest, BackupCopiesASqliteDatabase) {
  ok(s().users().create(user("nina")));
  const auto dest = fs::path(::testing::TempDir()) / ("backup-" + random_suffix() + ".db");
  auto r = s().backup_to(dest);
  if (pg()) {
    EXPECT_EQ(r.error().code, "store.invalid");
    return;
  }
  ok(r);
  auto copy = ok(open_store(dest.string(), StoreOptions{.clock = &clock_}));
  EXPECT_TRUE(copy->users().get_by_name("nina"));
  copy.reset();
  fs::remove(dest);
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreTest, ::testing::Values("sqlite", "postgres"),
                         [](const auto& param_info) {
                           return param_info.param == "sqlite" ? std::string("Sqlite")
                                                               : std::string("Postgres");
                         });

TEST(SqliteStore, TwoStoresOnOneFileWriteConcurrently) {
  const auto dir = fs::path(::testing::TempDir()) / ("store-two-" + random_suffix());
  const auto path = (dir / "openstation.db").string();
  auto first = open_store(path);
  auto second = open_store(path);
  ASSERT_TRUE(first && second);
  constexpr int kEach = 50;
  auto writer = [&](Store& st, const std::string& tag) {
    for (int i = 0; i < kEach; ++i) {
      auto r = st.nodes().create({.name = tag + std::to_string(i)});
      ASSERT_TRUE(r) << r.error().message;
    }
  };
  std::thread a(writer, std::ref(**first), "a");
  std::thread b(writer, std::ref(**second), "b");
  a.join();
  b.join();
  EXPECT_EQ((*first)->nodes().list({}, {.limit = 0})->items.size(), 2u * kEach);
  first->reset();
  second->reset();
  fs::remove_all(dir);
}

TEST(SqliteStore, InMemoryDatabaseWorks) {
  auto st = open_store(":memory:");
  ASSERT_TRUE(st) << st.error().message;
  ASSERT_TRUE((*st)->users().create({.username = "x"}));
  EXPECT_TRUE((*st)->users().get_by_name("x"));
}

TEST(OpenStore, ReportsAnUnreachableServerAsUnavailable) {
  // A unix socket directory where no server listens: refused at once, no network involved.
  const auto dir = fs::path(::testing::TempDir()) / ("no-server-" + random_suffix());
  auto st = open_store("postgresql:///openstation?host=" + dir.string());
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, "store.unavailable");
  EXPECT_EQ(st.error().category, core::Errc::unavailable);
  EXPECT_NE(st.error().message.find("PostgreSQL"), std::string::npos);
}

TEST(OpenStore, RefusesAnEmptyPathAndAnUnusableFile) {
  EXPECT_EQ(open_store("").error().code, "store.invalid");
  const auto dir = fs::path(::testing::TempDir()) / ("store-bad-" + random_suffix());
  fs::create_directories(dir);
  {
    std::ofstream junk(dir / "not-a-db");
    junk << std::string(4096, 'x');
  }
  auto st = open_store((dir / "not-a-db").string());
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, "store.unavailable") << st.error().message;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace openstation::store
