// The agent daemon against the in-process fake control plane, over real engine processes
// (test-child configured as the "vllm" engine's command). Logic runs on a manual clock; waits for
// real processes are bounded by wait_until; every process group is killed in TearDown.

#include "agent/daemon.hpp"
#include "agent/model_sync.hpp"
#include "agent/process_launcher.hpp"
#include "download/fetch.hpp"
#include "support/fake_control_plane.hpp"
#include "support/manual_clock.hpp"
#include "support/recording_launcher.hpp"
#include "support/wait_until.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>

namespace openstation::agent {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

using testing_support::RecordingLauncher;

std::uint16_t ephemeral_base() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

class DaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        fs::path(::testing::TempDir()) /
        ("daemon-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    const auto base = ephemeral_base();
    sup_options_.data_dir = dir_;
    sup_options_.ports = {base, static_cast<std::uint16_t>(std::min(base + 40, 65535))};
    sup_options_.policy.stop_grace = 10s;
    sup_options_.policy.startup_probe_interval = 0s;
    sup_options_.policy.health_probe_interval = 5s;

    options_.data_dir = dir_;
    options_.server_url = server_.url();
    options_.join_token = "join-secret";
    options_.name = "node-a";
    options_.address = "127.0.0.1";
    options_.engines["vllm"] = EngineCommand{{OPENSTATION_TEST_CHILD}, {}};
    options_.heartbeat_interval = 5s;
    options_.retry_base = 1s;
    options_.retry_max = 8s;
    options_.request_timeout = 5s;
  }
  void TearDown() override {
    daemon_.reset();
    supervisor_.reset();
    for (pid_t pid : pids_) {
      ::kill(-pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
  void make(ModelSync* sync = nullptr) {
    daemon_.reset();
    supervisor_ = std::make_unique<Supervisor>(sup_options_, launcher_, probe_, checker_, clock_);
    daemon_ = std::make_unique<Daemon>(
        options_, *supervisor_, [] { return std::string(R"({"node":{"name":"node-a"}})"); }, clock_,
        sync);
  }
  static Assignment engine(std::string id) {
    Assignment a;
    a.id = std::move(id);
    a.service = "svc";
    a.engine = "vllm";
    a.argv = {"--listen", "{port}"};
    a.startup_timeout_s = 30;
    return a;
  }
  bool in(const std::string& id, InstanceState st) {
    const auto s = supervisor_->status(id);
    return s && s->state == st;
  }
  bool tick_until_state(const std::string& id, InstanceState st) {
    return testing::wait_until([&] {
      supervisor_->tick();
      return in(id, st);
    });
  }
  static const InstanceReport* find(const HeartbeatRequest& hb, const std::string& id) {
    for (const auto& r : hb.instances) {
      if (r.id == id) return &r;
    }
    return nullptr;
  }

  fs::path dir_;
  testing::FakeControlPlane server_{"join-secret"};
  testing::ManualClock clock_;
  std::vector<pid_t> pids_;
  RecordingLauncher launcher_{pids_};
  HttpReadinessProbe probe_{1000ms};
  SystemPortChecker checker_;
  SupervisorOptions sup_options_;
  DaemonOptions options_;
  std::unique_ptr<Supervisor> supervisor_;
  std::unique_ptr<Daemon> daemon_;
};

TEST_F(DaemonTest, RegistersOncePersistsTheIdentityAndReusesIt) {
  make();
  ASSERT_TRUE(daemon_->start());
  ASSERT_EQ(server_.registrations().size(), 1u);
  EXPECT_EQ(server_.registrations()[0].name, "node-a");
  EXPECT_NE(server_.registrations()[0].inventory_json.find("node-a"), std::string::npos);
  const auto id = daemon_->identity();
  ASSERT_TRUE(id);
  EXPECT_TRUE(fs::exists(identity_path(dir_)));

  make();  // an agent restart
  ASSERT_TRUE(daemon_->start());
  EXPECT_EQ(server_.registrations().size(), 1u) << "a known node must not register again";
  EXPECT_EQ(daemon_->identity(), id);

  auto hb = daemon_->heartbeat_now();
  ASSERT_TRUE(hb) << hb.error().message;
  ASSERT_EQ(server_.heartbeats().size(), 1u);
  EXPECT_EQ(server_.heartbeats()[0].node_id, id->node_id);
  EXPECT_NE(server_.heartbeats()[0].inventory_json.find("node-a"), std::string::npos);
}

TEST_F(DaemonTest, NoIdentityAndNoTokenIsAClearError) {
  options_.join_token.clear();
  make();
  auto r = daemon_->start();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "agent.no_join_token");
}

TEST_F(DaemonTest, AssignmentsStartAndANewGenerationWithoutThemStops) {
  make();
  ASSERT_TRUE(daemon_->start());
  server_.publish({engine("svc-0")});
  auto changed = daemon_->watch_once(0s);
  ASSERT_TRUE(changed) << changed.error().message;
  EXPECT_TRUE(*changed);
  EXPECT_EQ(daemon_->generation(), server_.generation());
  ASSERT_TRUE(tick_until_state("svc-0", InstanceState::running));
  const auto argv0 = supervisor_->status("svc-0");
  ASSERT_TRUE(argv0);

  // The transition is reported at once, not at the next interval.
  EXPECT_TRUE(daemon_->poll());
  auto hbs = server_.heartbeats();
  ASSERT_FALSE(hbs.empty());
  const auto* r = find(hbs.back(), "svc-0");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->state, "running");
  EXPECT_GT(r->pid, 0);
  EXPECT_EQ(r->ports.size(), 1u);
  EXPECT_FALSE(daemon_->poll()) << "nothing changed and the interval has not passed";
  clock_.advance(6s);
  EXPECT_TRUE(daemon_->poll()) << "the interval passed";

  // The same generation again changes nothing.
  auto same = daemon_->watch_once(0s);
  ASSERT_TRUE(same);
  EXPECT_FALSE(*same);

  server_.publish({});
  ASSERT_TRUE(daemon_->watch_once(0s));
  ASSERT_TRUE(testing::wait_until([&] {
    supervisor_->tick();
    return supervisor_->idle();
  }));
  EXPECT_TRUE(daemon_->poll());
  EXPECT_EQ(find(server_.heartbeats().back(), "svc-0"), nullptr);
}

TEST_F(DaemonTest, ALostLongPollAnswerHealsOnTheNextPoll) {
  make();
  ASSERT_TRUE(daemon_->start());
  server_.publish({engine("svc-0")});
  server_.drop_next_watches(1);
  auto lost = daemon_->watch_once(0s);
  ASSERT_FALSE(lost);
  EXPECT_EQ(lost.error().category, core::Errc::unavailable);
  EXPECT_EQ(supervisor_->status("svc-0"), std::nullopt);

  auto healed = daemon_->watch_once(0s);
  ASSERT_TRUE(healed) << healed.error().message;
  EXPECT_TRUE(*healed);
  EXPECT_TRUE(tick_until_state("svc-0", InstanceState::running));
}

TEST_F(DaemonTest, ServerDownTheAgentRetriesWithBackoffAndInstancesKeepRunning) {
  make();
  ASSERT_TRUE(daemon_->start());
  server_.publish({engine("svc-0")});
  ASSERT_TRUE(daemon_->watch_once(0s));
  ASSERT_TRUE(tick_until_state("svc-0", InstanceState::running));
  ASSERT_TRUE(daemon_->poll());
  const auto pid = supervisor_->status("svc-0")->pid;
  const auto before = server_.heartbeats().size();

  server_.go_down();
  clock_.advance(6s);
  EXPECT_TRUE(daemon_->poll());  // due, fails
  EXPECT_FALSE(daemon_->last_error().empty());
  EXPECT_FALSE(daemon_->watch_once(0s));
  EXPECT_FALSE(daemon_->poll()) << "retried before the backoff expired";
  clock_.advance(1500ms);
  EXPECT_TRUE(daemon_->poll());  // second failure: the next try is 2 s later
  clock_.advance(1500ms);
  EXPECT_FALSE(daemon_->poll());
  for (int i = 0; i < 5; ++i) supervisor_->tick();
  EXPECT_TRUE(in("svc-0", InstanceState::running));
  EXPECT_EQ(supervisor_->status("svc-0")->pid, pid);
  EXPECT_EQ(::kill(pid, 0), 0);

  server_.come_back();
  clock_.advance(1s);
  EXPECT_TRUE(daemon_->poll());
  EXPECT_TRUE(daemon_->last_error().empty()) << daemon_->last_error();
  EXPECT_EQ(server_.heartbeats().size(), before + 1);
  auto again = daemon_->watch_once(0s);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_FALSE(*again);
  EXPECT_TRUE(in("svc-0", InstanceState::running));
}

TEST_F(DaemonTest, ARefusedTokenReRegistersWithTheJoinToken) {
  make();
  ASSERT_TRUE(daemon_->start());
  const auto first = daemon_->identity();
  server_.revoke_tokens();
  auto hb = daemon_->heartbeat_now();
  ASSERT_TRUE(hb) << hb.error().message;
  EXPECT_EQ(server_.registrations().size(), 2u);
  EXPECT_NE(daemon_->identity(), first);
  auto saved = load_identity(dir_);
  ASSERT_TRUE(saved && saved->has_value());
  EXPECT_EQ(**saved, *daemon_->identity());
}

TEST_F(DaemonTest, ARefusedTokenWithoutAJoinTokenIsAClearError) {
  make();
  ASSERT_TRUE(daemon_->start());
  options_.join_token.clear();
  make();
  ASSERT_TRUE(daemon_->start());  // the saved identity is enough to start
  server_.revoke_tokens();
  auto hb = daemon_->heartbeat_now();
  ASSERT_FALSE(hb);
  EXPECT_EQ(hb.error().code, "agent.identity_rejected");
  EXPECT_NE(hb.error().message.find("--token"), std::string::npos);
}

TEST_F(DaemonTest, AnUnknownEngineIsReportedAsFailed) {
  make();
  ASSERT_TRUE(daemon_->start());
  auto a = engine("svc-x");
  a.engine = "sglang";
  server_.publish({a, engine("svc-0")});
  ASSERT_TRUE(daemon_->watch_once(0s));
  ASSERT_TRUE(daemon_->heartbeat_now());
  const auto hb = server_.heartbeats().back();  // a copy: heartbeats() returns by value
  const auto* r = find(hb, "svc-x");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->state, "failed");
  EXPECT_NE(r->reason.find("sglang"), std::string::npos);
  EXPECT_TRUE(tick_until_state("svc-0", InstanceState::running));
}

/// One 64 KiB file whose transfer holds after its first half until released.
class GatedSource final : public ModelSource {
 public:
  const std::string bytes = std::string(65536, 'm');
  core::Result<ModelManifest> manifest(std::string_view id) override {
    ModelManifest m;
    m.model_id = std::string(id);
    m.name = "m";
    m.path = "/srv/models/m";
    download::Sha256 h;
    h.update(bytes);
    m.files.push_back(
        ManifestFile{"w.bin", static_cast<std::int64_t>(bytes.size()), h.hex_digest()});
    return m;
  }
  core::Result<void> fetch(std::string_view, std::string_view, std::int64_t offset,
                           const download::ChunkSink& sink, const std::function<bool()>&) override {
    const std::string_view all(bytes);
    if (offset < 32768 && !sink(all.substr(offset, 32768 - offset))) return {};
    std::unique_lock lock(mutex_);
    holding_ = true;
    cv_.notify_all();
    cv_.wait(lock, [this] { return released_; });
    lock.unlock();
    sink(all.substr(std::max<std::int64_t>(offset, 32768)));
    return {};
  }
  bool holding() {
    std::lock_guard lock(mutex_);
    return holding_;
  }
  void release() {
    std::lock_guard lock(mutex_);
    released_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool holding_ = false;
  bool released_ = false;
};

TEST_F(DaemonTest, AModelOnTheServerIsPulledFirstThenLaunchedFromTheCopy) {
  GatedSource source;
  ModelSyncOptions so;
  so.data_dir = dir_;
  so.retry_delay = 1ms;
  core::SystemClock system_clock;
  ModelSync sync(so, source, system_clock);
  make(&sync);
  ASSERT_TRUE(daemon_->start());
  auto a = engine("svc-m");
  a.model_id = "mdl_1";
  a.model_path = "/srv/models/m";
  a.model_sync = true;
  a.argv = {"--listen", "{port}", "--print-env", "/srv/models/m/w.bin"};
  server_.publish({a});
  ASSERT_TRUE(daemon_->watch_once(0s));
  EXPECT_FALSE(supervisor_->status("svc-m"));  // not launched while its model is missing
  ASSERT_TRUE(testing::wait_until([&] { return source.holding(); }));
  ASSERT_TRUE(daemon_->heartbeat_now());
  const auto hb = server_.heartbeats().back();
  const auto* r = find(hb, "svc-m");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->state, "preparing");
  EXPECT_EQ(r->bytes_total, 65536);
  EXPECT_NE(r->reason.find("pulling model files from the server"), std::string::npos) << r->reason;

  source.release();
  ASSERT_TRUE(sync.wait_idle(10s));
  daemon_->poll();  // the pull ended: the last set is applied again
  ASSERT_TRUE(tick_until_state("svc-m", InstanceState::running));
  const auto copy = (dir_ / "agent" / "models" / "mdl_1" / "w.bin").string();
  ASSERT_TRUE(testing::wait_until([&] {
    for (const auto& line : supervisor_->tail("svc-m", 20)) {
      if (line.find(copy + "=") != std::string::npos) return true;
    }
    return false;
  })) << "the engine's argv does not name the node's copy "
      << copy;
}

TEST_F(DaemonTest, ARestartedAgentAdoptsItsInstances) {
  make();
  ASSERT_TRUE(daemon_->start());
  server_.publish({engine("svc-0")});
  ASSERT_TRUE(daemon_->watch_once(0s));
  ASSERT_TRUE(tick_until_state("svc-0", InstanceState::running));
  const auto pid = supervisor_->status("svc-0")->pid;

  make();  // the old daemon and supervisor go; the engine keeps running
  auto report = daemon_->start();
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(report->adopted, std::vector<std::string>{"svc-0"});
  ASSERT_TRUE(daemon_->watch_once(0s));
  for (int i = 0; i < 3; ++i) supervisor_->tick();
  ASSERT_TRUE(in("svc-0", InstanceState::running));
  EXPECT_EQ(supervisor_->status("svc-0")->pid, pid);
  ASSERT_TRUE(daemon_->heartbeat_now());
  const auto last = server_.heartbeats().back();  // a copy: heartbeats() returns by value
  const auto* r = find(last, "svc-0");
  ASSERT_NE(r, nullptr);
  EXPECT_TRUE(r->adopted);
}

TEST_F(DaemonTest, RunAndStopDriveTheLoopsOnThreads) {
  options_.watch_wait = 1s;
  options_.loop_interval = 10ms;
  make();
  ASSERT_TRUE(daemon_->start());
  server_.publish({engine("svc-0")});
  daemon_->run();
  EXPECT_TRUE(testing::wait_until([&] { return in("svc-0", InstanceState::running); }));
  EXPECT_TRUE(testing::wait_until([&] {
    const auto hbs = server_.heartbeats();
    if (hbs.empty()) return false;
    const auto* r = find(hbs.back(), "svc-0");
    return r != nullptr && r->state == "running";
  }));
  daemon_->stop();
  EXPECT_TRUE(in("svc-0", InstanceState::running)) << "stopping the agent leaves engines running";
}

}  // namespace
}  // namespace openstation::agent
