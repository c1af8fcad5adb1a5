// The model library's download queue end to end: a real DownloadManager over a SQLite store,
// fetching with libcurl from the fake hub (ModelScope and HuggingFace APIs on loopback), with
// faults injected per file.

#include "server/download_manager.hpp"

#include "download/fetch.hpp"
#include "model/model_files.hpp"
#include "support/fake_hub.hpp"
#include "support/model_fixtures.hpp"
#include "support/temp_dir.hpp"
#include "support/wait_until.hpp"

#include <gtest/gtest.h>
#include <sys/mount.h>

#include <fstream>
#include <sstream>

namespace openstation::server {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using download::HubKind;
using download::QueueCommand;
using store::DownloadState;
using testing::wait_until;
using testing_support::FakeHub;
using testing_support::FakeHubFault;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class DownloadManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing_support::unique_temp_path("dlm");
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "models");
    hub_ = std::make_unique<FakeHub>(dir_ / "hub");
    open();
  }
  void TearDown() override {
    manager_.reset();
    store_.reset();
    hub_.reset();
    if (tmpfs_) ::umount2((dir_ / "models").c_str(), MNT_DETACH);
    fs::remove_all(dir_);
  }
  void open() {
    auto s = store::open_store((dir_ / "store.db").string());
    ASSERT_TRUE(s) << s.error().message;
    store_ = std::move(*s);
  }
  DownloadManager::Options options() {
    DownloadManager::Options o;
    o.store = store_.get();
    o.hub.modelscope_endpoint = hub_->url();
    o.hub.huggingface_endpoint = hub_->url();
    o.model_dir = dir_ / "models";
    o.attempts = 1;
    o.retry_backoff = 10ms;
    o.progress_interval = 0ms;
    return o;
  }
  void start(DownloadManager::Options o) {
    manager_ = std::make_unique<DownloadManager>(std::move(o));
    manager_->start();
  }
  void start() { start(options()); }

  DownloadView submit(const std::string& name, const std::string& repo,
                      HubKind kind = HubKind::modelscope) {
    auto v = manager_->submit({name, kind, repo, "", "tester"});
    EXPECT_TRUE(v) << v.error().message;
    return v ? *v : DownloadView{};
  }
  DownloadState state(const std::string& name) {
    auto v = manager_->get(name);
    return v ? v->download.state : DownloadState::cancelled;
  }
  bool wait_state(const std::string& name, DownloadState s, std::chrono::milliseconds t = 20s) {
    return wait_until([&] { return state(name) == s; }, t);
  }
  /// A repository with one file of `size` bytes named after the repository.
  std::string repo_with_file(const std::string& short_name, std::int64_t size = 300000) {
    hub_->add_random_file("org/" + short_name, short_name + ".bin", size,
                          static_cast<std::uint32_t>(short_name.size() * 7 + 3));
    return "org/" + short_name;
  }
  void hold(const std::string& file, std::int64_t after = 100000) {
    FakeHubFault f;
    f.hold_after = after;
    hub_->set_fault(file, f);
  }

  fs::path dir_;
  bool tmpfs_ = false;
  std::unique_ptr<FakeHub> hub_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<DownloadManager> manager_;
};

TEST_F(DownloadManagerTest, DownloadsVerifiesAndMarksTheModelReady) {
  for (const auto kind : {HubKind::modelscope, HubKind::huggingface}) {
    const std::string name = kind == HubKind::modelscope ? "tiny-ms" : "tiny-hf";
    fixtures::make_hf_model_dir(dir_ / "hub/org" / name, fixtures::tiny_llama_arch());
    if (!manager_) start();
    submit(name, "org/" + name, kind);
    ASSERT_TRUE(wait_state(name, DownloadState::completed));
    auto v = manager_->get(name);
    ASSERT_TRUE(v);
    EXPECT_EQ(v->model.status, store::ModelStatus::ready);
    EXPECT_EQ(v->model.format, "safetensors");
    EXPECT_FALSE(v->model.meta_json.empty());
    EXPECT_EQ(v->download.bytes_done, v->download.bytes_total);
    EXPECT_EQ(v->percent(), 100.0);
    EXPECT_EQ(v->model.path, (dir_ / "models" / name).string());
    EXPECT_EQ(slurp(dir_ / "models" / name / "config.json"),
              slurp(dir_ / "hub/org" / name / "config.json"));
    EXPECT_TRUE(model::inspect_model_path(v->model.path));
    EXPECT_FALSE(fs::exists(manager_->work_dir(v->download.id) / "staging"));
    auto log = manager_->log(name, 0);
    ASSERT_TRUE(log);
    EXPECT_NE(log->find("completed"), std::string::npos) << *log;
    EXPECT_NE(log->find("verified model.safetensors"), std::string::npos) << *log;
  }
}

TEST_F(DownloadManagerTest, OneAtATimeAndPauseStartsTheNext) {
  const auto a = repo_with_file("a");
  const auto b = repo_with_file("b");
  const auto c = repo_with_file("c");
  hold("a.bin");
  start();
  submit("a", a);
  submit("b", b);
  submit("c", c);
  ASSERT_TRUE(wait_until([&] { return hub_->held() == 1; }));
  EXPECT_EQ(state("a"), DownloadState::downloading);
  EXPECT_EQ(state("b"), DownloadState::queued);
  EXPECT_EQ(state("c"), DownloadState::queued);
  {
    auto v = manager_->get("a");
    ASSERT_TRUE(v);
    EXPECT_EQ(v->download.bytes_total, 300000);
  }

  ASSERT_TRUE(wait_until([&] { return manager_->get("a")->download.bytes_done == 100000; }));
  hold("b.bin");
  auto paused = manager_->command("a", QueueCommand::pause, "tester");
  ASSERT_TRUE(paused) << paused.error().message;
  EXPECT_EQ(paused->download.state, DownloadState::paused);
  EXPECT_EQ(paused->download.bytes_done, 100000);  // progress kept
  ASSERT_TRUE(
      wait_until([&] { return hub_->held() == 1 && state("b") == DownloadState::downloading; }));

  // Starting a paused one queues it right after the one downloading (before c).
  auto resumed = manager_->command("a", QueueCommand::resume, "tester");
  ASSERT_TRUE(resumed);
  EXPECT_EQ(resumed->download.state, DownloadState::queued);
  auto list = manager_->list();
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 3u);
  EXPECT_EQ((*list)[0].model.name, "b");
  EXPECT_EQ((*list)[1].model.name, "a");
  EXPECT_EQ((*list)[2].model.name, "c");

  hub_->release();
  for (const char* n : {"a", "b", "c"}) ASSERT_TRUE(wait_state(n, DownloadState::completed)) << n;
  // a resumed from the 100000 bytes it had when paused.
  EXPECT_EQ(hub_->offsets("a.bin"), (std::vector<std::int64_t>{0, 100000}));
  EXPECT_EQ(slurp(dir_ / "models/a/a.bin"), slurp(dir_ / "hub/org/a/a.bin"));
  // a finished before c: it was queued ahead of it.
  auto va = manager_->get("a");
  auto vc = manager_->get("c");
  ASSERT_TRUE(va && vc);
  EXPECT_LE(*va->download.finished_at, *vc->download.finished_at);
  EXPECT_LT(va->download.position, vc->download.position);
}

TEST_F(DownloadManagerTest, SeveralPausedTheOneStartedLastGoesFirst) {
  const auto a = repo_with_file("a");
  const auto b = repo_with_file("b");
  const auto c = repo_with_file("c");
  const auto d = repo_with_file("d");
  hold("a.bin");
  start();
  submit("a", a);
  submit("b", b);
  submit("c", c);
  submit("d", d);
  ASSERT_TRUE(wait_until([&] { return hub_->held() == 1; }));
  hold("b.bin");
  ASSERT_TRUE(manager_->command("a", QueueCommand::pause, "t"));
  ASSERT_TRUE(
      wait_until([&] { return hub_->held() == 1 && state("b") == DownloadState::downloading; }));
  hold("c.bin");
  ASSERT_TRUE(manager_->command("b", QueueCommand::pause, "t"));
  ASSERT_TRUE(
      wait_until([&] { return hub_->held() == 1 && state("c") == DownloadState::downloading; }));
  ASSERT_TRUE(manager_->command("a", QueueCommand::resume, "t"));
  ASSERT_TRUE(manager_->command("b", QueueCommand::resume, "t"));
  auto list = manager_->list();
  ASSERT_TRUE(list);
  std::vector<std::string> order;
  for (const auto& v : *list) order.push_back(v.model.name);
  EXPECT_EQ(order, (std::vector<std::string>{"c", "b", "a", "d"}));
}

TEST_F(DownloadManagerTest, CancelDeletesPartialFilesProgressAndLogThenTheNextStarts) {
  const auto a = repo_with_file("a");
  const auto b = repo_with_file("b");
  hold("a.bin");
  start();
  const auto va = submit("a", a);
  submit("b", b);
  ASSERT_TRUE(wait_until([&] { return hub_->held() == 1; }));
  ASSERT_TRUE(fs::exists(manager_->work_dir(va.download.id) / "staging/a.bin.part"));
  auto cancelled = manager_->command("a", QueueCommand::cancel, "tester");
  ASSERT_TRUE(cancelled) << cancelled.error().message;
  EXPECT_EQ(cancelled->download.state, DownloadState::cancelled);
  EXPECT_EQ(cancelled->download.bytes_done, 0);
  EXPECT_EQ(cancelled->model.status, store::ModelStatus::failed);
  EXPECT_FALSE(fs::exists(manager_->work_dir(va.download.id) / "staging"));
  EXPECT_FALSE(fs::exists(dir_ / "models/a"));
  auto log = manager_->log("a", 0);
  ASSERT_TRUE(log);
  EXPECT_EQ(log->find("started"), std::string::npos) << *log;
  ASSERT_TRUE(wait_state("b", DownloadState::completed));
  EXPECT_EQ(state("a"), DownloadState::cancelled);
}

TEST_F(DownloadManagerTest, HashMismatchFailsWithTheReasonAndARetryRefetches) {
  const auto a = repo_with_file("a");
  FakeHubFault wrong;
  wrong.wrong_bytes = true;
  hub_->set_fault("a.bin", wrong);
  start();
  submit("a", a);
  ASSERT_TRUE(wait_state("a", DownloadState::failed));
  auto v = manager_->get("a");
  ASSERT_TRUE(v);
  EXPECT_NE(v->download.error.find("download.hash_mismatch"), std::string::npos)
      << v->download.error;
  EXPECT_EQ(v->model.status, store::ModelStatus::failed);
  EXPECT_NE(v->model.status_reason.find("SHA-256"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir_ / "models/a/a.bin"));  // never visible
  hub_->clear_faults();
  ASSERT_TRUE(manager_->command("a", QueueCommand::resume, "tester"));
  ASSERT_TRUE(wait_state("a", DownloadState::completed));
  EXPECT_EQ(slurp(dir_ / "models/a/a.bin"), slurp(dir_ / "hub/org/a/a.bin"));
}

TEST_F(DownloadManagerTest, AFailedDownloadResumesFromTheBytesOnDisk) {
  const auto a = repo_with_file("a");
  FakeHubFault cut;
  cut.cut_after = 123456;
  hub_->set_fault("a.bin", cut);
  start();
  submit("a", a);
  ASSERT_TRUE(wait_state("a", DownloadState::failed));
  auto v = manager_->get("a");
  ASSERT_TRUE(v);
  EXPECT_NE(v->download.error.find("hub.unavailable"), std::string::npos) << v->download.error;
  EXPECT_EQ(v->download.bytes_done, 123456);
  ASSERT_TRUE(manager_->command("a", QueueCommand::resume, "tester"));
  ASSERT_TRUE(wait_state("a", DownloadState::completed));
  EXPECT_EQ(hub_->offsets("a.bin"), (std::vector<std::int64_t>{0, 123456}));
  EXPECT_EQ(slurp(dir_ / "models/a/a.bin"), slurp(dir_ / "hub/org/a/a.bin"));
}

TEST_F(DownloadManagerTest, ACutIsRetriedAutomaticallyFromTheBytesOnDisk) {
  const auto a = repo_with_file("a");
  FakeHubFault cut;
  cut.cut_after = 54321;
  hub_->set_fault("a.bin", cut);
  auto o = options();
  o.attempts = 3;
  start(o);
  submit("a", a);
  ASSERT_TRUE(wait_state("a", DownloadState::completed));
  EXPECT_EQ(hub_->offsets("a.bin"), (std::vector<std::int64_t>{0, 54321}));
}

TEST_F(DownloadManagerTest, AServerRestartMidDownloadResumesTheQueue) {
  const auto a = repo_with_file("a");
  const auto b = repo_with_file("b");
  hold("a.bin", 150000);
  start();
  submit("a", a);
  submit("b", b);
  ASSERT_TRUE(wait_until([&] { return hub_->held() == 1; }));
  ASSERT_TRUE(wait_until([&] { return manager_->get("a")->download.bytes_done == 150000; }));
  manager_->stop();  // the process stops mid-download
  manager_.reset();
  store_.reset();
  open();  // a new process: the same database and model store
  {
    auto rows = store_->downloads().list({});
    ASSERT_TRUE(rows);
    ASSERT_EQ(rows->items.size(), 2u);
    EXPECT_EQ(rows->items[0].state, DownloadState::downloading);
  }
  start();
  ASSERT_TRUE(wait_state("a", DownloadState::completed));
  ASSERT_TRUE(wait_state("b", DownloadState::completed));
  EXPECT_EQ(hub_->offsets("a.bin"), (std::vector<std::int64_t>{0, 150000}));
  EXPECT_EQ(slurp(dir_ / "models/a/a.bin"), slurp(dir_ / "hub/org/a/a.bin"));
  auto log = manager_->log("a", 0);
  ASSERT_TRUE(log);
  EXPECT_NE(log->find("resuming after a restart"), std::string::npos) << *log;
}

TEST_F(DownloadManagerTest, ARestartBeforeTheFlushRechecksFinishedFilesAndRefetchesDamagedOnes) {
  const auto a = repo_with_file("a");
  start();
  submit("a", a);
  ASSERT_TRUE(wait_state("a", DownloadState::completed));
  {
    auto log = manager_->log("a", 0);
    ASSERT_TRUE(log);
    EXPECT_NE(log->find("ready: 1 files"), std::string::npos) << *log;
    EXPECT_NE(log->find("completed: flushed to disk in"), std::string::npos) << *log;
  }
  manager_->stop();
  manager_.reset();
  // As a crash between "ready" and the end of the flush leaves it: the row still downloading,
  // and a finished file whose last bytes never reached the disk.
  auto rows = store_->downloads().list({});
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->items.size(), 1u);
  auto row = rows->items[0];
  row.state = DownloadState::downloading;
  ASSERT_TRUE(store_->downloads().update(row));
  {
    std::fstream io(dir_ / "models/a/a.bin", std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(200000);
    io.write("\0\0\0\0\0\0\0\0", 8);
  }
  start();
  ASSERT_TRUE(wait_until([&] {
    auto v = manager_->get("a");
    return v && v->download.state == DownloadState::completed &&
           v->model.status == store::ModelStatus::ready;
  }));
  EXPECT_EQ(slurp(dir_ / "models/a/a.bin"), slurp(dir_ / "hub/org/a/a.bin"));
  EXPECT_EQ(hub_->offsets("a.bin"), (std::vector<std::int64_t>{0, 0}));  // fetched again
  auto log = manager_->log("a", 0);
  ASSERT_TRUE(log);
  EXPECT_NE(log->find("re-checking the files finished before the restart"), std::string::npos)
      << *log;
  EXPECT_NE(log->find("SHA-256 of a.bin"), std::string::npos) << *log;

  // A good file is kept: another restart before the flush re-checks and fetches nothing.
  manager_->stop();
  manager_.reset();
  row = store_->downloads().list({})->items[0];
  row.state = DownloadState::downloading;
  ASSERT_TRUE(store_->downloads().update(row));
  start();
  ASSERT_TRUE(wait_until([&] {
    auto v = manager_->get("a");
    return v && v->download.state == DownloadState::completed;
  }));
  EXPECT_EQ(hub_->offsets("a.bin"), (std::vector<std::int64_t>{0, 0}));
  EXPECT_EQ(manager_->get("a")->model.status, store::ModelStatus::ready);
}

TEST_F(DownloadManagerTest, AFullDiskFailsBeforeDownloadingWithAClearError) {
  // A 1 MiB tmpfs as the model store (needs root; elsewhere the test says why it cannot run).
  if (::mount("tmpfs", (dir_ / "models").c_str(), "tmpfs", 0, "size=1m") != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs here (needs root): " << std::strerror(errno);
  }
  tmpfs_ = true;
  const auto a = repo_with_file("a", 3 * 1024 * 1024);
  start();
  submit("a", a);
  ASSERT_TRUE(wait_state("a", DownloadState::failed));
  auto v = manager_->get("a");
  ASSERT_TRUE(v);
  EXPECT_NE(v->download.error.find("download.disk_full"), std::string::npos) << v->download.error;
  EXPECT_TRUE(hub_->offsets("a.bin").empty());  // nothing was fetched
}

TEST_F(DownloadManagerTest, MissingAndGatedRepositoriesFailWithTheHubsReason) {
  start();
  submit("none", "org/none");
  ASSERT_TRUE(wait_state("none", DownloadState::failed));
  EXPECT_NE(manager_->get("none")->download.error.find("hub.not_found"), std::string::npos);
  const auto a = repo_with_file("a");
  hub_->require_token("tok");
  submit("a", a);
  ASSERT_TRUE(wait_state("a", DownloadState::failed));
  EXPECT_NE(manager_->get("a")->download.error.find("hub.unauthorized"), std::string::npos);
}

TEST_F(DownloadManagerTest, BadRequestsAreRefused) {
  start();
  auto bad = manager_->submit({"x", HubKind::modelscope, "not a repo", "", "t"});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, "hub.bad_repo");
  const auto a = repo_with_file("a");
  submit("a", a);
  auto dup = manager_->submit({"a", HubKind::modelscope, a, "", "t"});
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().code, "model.name_taken");
  auto missing = manager_->command("nope", QueueCommand::pause, "t");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, "download.not_found");
  ASSERT_TRUE(wait_state("a", DownloadState::completed));
  auto done = manager_->command("a", QueueCommand::pause, "t");
  ASSERT_FALSE(done);
  EXPECT_EQ(done.error().code, "download.bad_state");
}

TEST_F(DownloadManagerTest, DeletingAModelMidDownloadStopsItAndFreesItsFiles) {
  const auto a = repo_with_file("a");
  const auto b = repo_with_file("b");
  hold("a.bin");
  start();
  const auto va = submit("a", a);
  submit("b", b);
  ASSERT_TRUE(wait_until([&] { return hub_->held() == 1; }));
  // As DELETE /api/v1/models does: the row goes first (its download row with it), then the files.
  ASSERT_TRUE(store_->models().remove(va.model.id));
  ASSERT_TRUE(manager_->forget_model(va.model));
  EXPECT_FALSE(fs::exists(manager_->work_dir(va.download.id)));
  EXPECT_FALSE(fs::exists(dir_ / "models/a"));
  ASSERT_TRUE(wait_state("b", DownloadState::completed));
  EXPECT_FALSE(fs::exists(dir_ / "models/a"));
}

TEST_F(DownloadManagerTest, ForgetModelRemovesItsFiles) {
  const auto a = repo_with_file("a");
  start();
  const auto v = submit("a", a);
  ASSERT_TRUE(wait_state("a", DownloadState::completed));
  ASSERT_TRUE(fs::exists(dir_ / "models/a/a.bin"));
  ASSERT_TRUE(manager_->forget_model(manager_->get("a")->model));
  EXPECT_FALSE(fs::exists(dir_ / "models/a"));
  EXPECT_FALSE(fs::exists(manager_->work_dir(v.download.id)));
}

}  // namespace
}  // namespace openstation::server
