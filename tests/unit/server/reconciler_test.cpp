// The reconciliation loop against a real SQLite store and a manual clock: instances created and
// placed with their agents' assignments, notifier generations, pending reasons, scale down with
// drain, node loss and replacement, service deletion, and the background thread on trigger().

#include "server/reconciler.hpp"

#include "core/strings.hpp"
#include "model/node.hpp"
#include "support/manual_clock.hpp"
#include "support/temp_dir.hpp"
#include "support/wait_until.hpp"

#include <gtest/gtest.h>

#include <filesystem>

namespace openstation::server {
namespace {

using namespace std::chrono_literals;
using store::InstanceState;

class FakeInFlight final : public InFlightSource {
 public:
  std::size_t in_flight(std::string_view id) override {
    std::lock_guard lock(mutex_);
    auto it = counts_.find(std::string(id));
    return it == counts_.end() ? 0 : it->second;
  }
  void set(const std::string& id, std::size_t n) {
    std::lock_guard lock(mutex_);
    counts_[id] = n;
  }

 private:
  std::mutex mutex_;
  std::map<std::string, std::size_t> counts_;
};

std::string inventory(const std::string& name, int gpus, std::int64_t total_mib = 81920) {
  model::NodeSpec s;
  s.name = name;
  s.type = model::NodeType::gpu;
  s.cpu_cores = 32;
  s.memory_mib = 256 * 1024;
  s.disk_free_gib = 500;
  for (int i = 0; i < gpus; ++i) {
    model::GpuSpec g;
    g.index = i;
    g.name = "NVIDIA A100-SXM4-80GB";
    g.memory_total_mib = total_mib;
    g.cc_major = 8;
    s.gpus.push_back(g);
  }
  return "{\"node\": " + model::node_to_json(s) + "}";
}

class ReconcilerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing_support::unique_temp_path("reconciler");
    std::filesystem::remove_all(dir_);
    store::StoreOptions so;
    so.clock = &clock_;
    auto s = store::open_store((dir_ / "db.sqlite").string(), so);
    ASSERT_TRUE(s) << s.error().message;
    store_ = std::move(*s);
    notifier_ = std::make_unique<AssignmentNotifier>(clock_);
    Reconciler::Options o;
    o.engines = config::default_engines();
    reconciler_ = std::make_unique<Reconciler>(*store_, clock_, *notifier_, in_flight_, o);

    store::Model m;
    m.name = "deepseek-r1-distill-qwen-1.5b";
    m.source = store::ModelSource::catalog;
    m.repo = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B";
    m.status = store::ModelStatus::ready;
    model_ = ok(store_->models().create(m));
  }
  void TearDown() override {
    reconciler_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  template <class T>
  T ok(core::Result<T> r) {
    EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().code + ": " + r.error().message);
    return r ? std::move(*r) : T{};
  }

  store::Node add_node(const std::string& name, int gpus) {
    store::Node n;
    n.name = name;
    n.address = "10.0.0." + std::to_string(name.size());
    n.status = store::NodeStatus::ready;
    n.token_hash = "hash-" + name;
    n.inventory_json = inventory(name, gpus);
    n.last_heartbeat_at = clock_.now();
    return ok(store_->nodes().create(n));
  }
  void heartbeat(const std::string& id) {
    auto n = ok(store_->nodes().get(id));
    n.last_heartbeat_at = clock_.now();
    n.status = store::NodeStatus::ready;
    ok(store_->nodes().update(n));
  }
  store::Service add_service(const std::string& name, int replicas,
                             std::vector<std::string> nodes = {}) {
    store::Service s;
    s.name = name;
    s.model_id = model_.id;
    s.engine = "vllm";
    s.extra_args = "--max-model-len 8192";
    s.replicas = replicas;
    s.placement = std::move(nodes);
    return ok(store_->services().create(s));
  }
  std::vector<store::Instance> instances() {
    return ok(store_->instances().list({}, store::PageRequest{0, {}})).items;
  }
  Reconciler::Round round() {
    auto r = reconciler_->run_once();
    EXPECT_TRUE(r) << (r ? "" : r.error().message);
    if (r) {
      EXPECT_TRUE(r->errors.empty()) << core::join(r->errors, "\n");
    }
    return r ? *r : Reconciler::Round{};
  }
  void set_state(const std::string& id, InstanceState s, std::int64_t pid = 0) {
    auto i = ok(store_->instances().get(id));
    i.state = s;
    i.pid = pid;
    ok(store_->instances().update(i));
  }

  testing::ManualClock clock_;
  std::filesystem::path dir_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<AssignmentNotifier> notifier_;
  FakeInFlight in_flight_;
  std::unique_ptr<Reconciler> reconciler_;
  store::Model model_;
};

TEST_F(ReconcilerTest, CreatesPlacedInstancesWithAssignmentsAndNotifies) {
  const auto node = add_node("gpu-a", 2);
  const auto gen0 = notifier_->generation(node.id);
  const auto svc = add_service("qwen-small", 2);
  const auto r = round();
  EXPECT_EQ(r.applied, 2u);
  EXPECT_EQ(r.notified, std::set<std::string>{node.id});
  EXPECT_GT(notifier_->generation(node.id), gen0);

  const auto list = instances();
  ASSERT_EQ(list.size(), 2u);
  std::set<std::string> gpus;
  for (const auto& i : list) {
    EXPECT_EQ(i.service_id, svc.id);
    EXPECT_EQ(i.state, InstanceState::scheduled);
    EXPECT_EQ(i.node_ids, std::vector<std::string>{node.id});
    auto a = parse_assignments(i.assignment_json);
    ASSERT_TRUE(a) << i.assignment_json;
    ASSERT_EQ(a->size(), 1u);
    const auto& x = a->at(node.id);
    EXPECT_EQ(x.id, i.id);
    EXPECT_EQ(x.engine, "vllm");
    EXPECT_EQ(x.service, "qwen-small");
    EXPECT_EQ(x.argv.at(0), "serve");
    EXPECT_EQ(x.argv.at(1), "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B");
    EXPECT_NE(std::find(x.argv.begin(), x.argv.end(), "{port}"), x.argv.end());
    EXPECT_EQ(x.health_path, "/health");
    gpus.insert(x.env.at("CUDA_VISIBLE_DEVICES"));
  }
  EXPECT_EQ(gpus, (std::set<std::string>{"0", "1"}));

  // Converged: a second round changes nothing and notifies nobody.
  const auto gen1 = notifier_->generation(node.id);
  const auto again = round();
  EXPECT_TRUE(again.actions.empty());
  EXPECT_EQ(notifier_->generation(node.id), gen1);

  const auto events = ok(store_->events().list({}, {})).items;
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events[0].actor, "system");
  EXPECT_EQ(events[0].action, "instance.create");
}

TEST_F(ReconcilerTest, PendingWithReasonsThenPlacedWhenANodeJoins) {
  const auto a = add_node("gpu-a", 1);
  add_service("one", 2);
  round();
  auto list = instances();
  ASSERT_EQ(list.size(), 2u);
  const auto pending = std::find_if(list.begin(), list.end(), [](const store::Instance& i) {
    return i.state == InstanceState::pending;
  });
  ASSERT_NE(pending, list.end());
  const auto reasons = scheduler::parse_reasons(pending->state_reason);
  ASSERT_EQ(reasons.size(), 1u) << pending->state_reason;
  EXPECT_EQ(reasons[0].node, "gpu-a");
  EXPECT_NE(reasons[0].message.find("GPU 0 is taken"), std::string::npos) << reasons[0].message;

  const auto b = add_node("gpu-b", 1);
  const auto gen = notifier_->generation(b.id);
  heartbeat(a.id);
  round();
  const auto placed = ok(store_->instances().get(pending->id));
  EXPECT_EQ(placed.state, InstanceState::scheduled);
  EXPECT_EQ(placed.node_ids, std::vector<std::string>{b.id});
  EXPECT_EQ(placed.state_reason, "");
  EXPECT_GT(notifier_->generation(b.id), gen);
}

TEST_F(ReconcilerTest, ScaleDownDrainsUntilIdleThenRemoves) {
  const auto node = add_node("gpu-a", 2);
  auto svc = add_service("svc", 2);
  round();
  for (const auto& i : instances()) set_state(i.id, InstanceState::running);
  svc = ok(store_->services().get(svc.id));
  svc.replicas = 1;
  ok(store_->services().update(svc));
  round();
  auto list = instances();
  ASSERT_EQ(list.size(), 2u);
  const auto drained = list[1];  // the newest (a copy: `list` is replaced below)
  EXPECT_EQ(drained.state, InstanceState::draining);
  EXPECT_EQ(list[0].state, InstanceState::running);

  in_flight_.set(drained.id, 2);
  clock_.advance(10s);
  heartbeat(node.id);
  round();
  EXPECT_EQ(instances().size(), 2u);  // still busy, within the deadline
  const auto gen = notifier_->generation(node.id);
  in_flight_.set(drained.id, 0);
  round();
  list = instances();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_NE(list[0].id, drained.id);
  EXPECT_GT(notifier_->generation(node.id), gen);  // the agent stops it
}

TEST_F(ReconcilerTest, DrainDeadlineRemovesABusyInstance) {
  const auto node = add_node("gpu-a", 1);
  auto svc = add_service("svc", 1);
  round();
  const auto id = instances().at(0).id;
  set_state(id, InstanceState::running);
  svc = ok(store_->services().get(svc.id));
  svc.replicas = 0;
  ok(store_->services().update(svc));
  in_flight_.set(id, 5);
  round();
  EXPECT_EQ(instances().at(0).state, InstanceState::draining);
  round();  // the loop sees it draining from now
  clock_.advance(29s);
  heartbeat(node.id);
  round();
  EXPECT_EQ(instances().size(), 1u);
  clock_.advance(2s);
  heartbeat(node.id);
  round();
  EXPECT_TRUE(instances().empty());
}

TEST_F(ReconcilerTest, NodeLostMarksUnhealthyThenReplacesElsewhere) {
  const auto a = add_node("gpu-a", 1);
  add_service("svc", 1);
  round();
  const auto first = instances().at(0);
  ASSERT_EQ(first.node_ids, std::vector<std::string>{a.id});
  set_state(first.id, InstanceState::running, 4242);
  const auto b = add_node("gpu-b", 1);

  clock_.advance(31s);  // a's heartbeats stop; b keeps sending
  heartbeat(b.id);
  round();
  auto inst = ok(store_->instances().get(first.id));
  EXPECT_EQ(inst.state, InstanceState::unhealthy);
  EXPECT_NE(inst.state_reason.find("node gpu-a not ready (no heartbeat for 31 s)"),
            std::string::npos)
      << inst.state_reason;

  clock_.advance(30s);
  heartbeat(b.id);
  round();
  EXPECT_EQ(ok(store_->instances().get(first.id)).state, InstanceState::unhealthy);  // grace

  clock_.advance(31s);
  heartbeat(b.id);
  const auto gen_a = notifier_->generation(a.id);
  round();
  const auto list = instances();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_NE(list[0].id, first.id);
  EXPECT_EQ(list[0].node_ids, std::vector<std::string>{b.id});
  EXPECT_GT(notifier_->generation(a.id), gen_a);  // a no longer runs it once it is back
}

TEST_F(ReconcilerTest, DeletedServiceDrainsThenDisappears) {
  add_node("gpu-a", 1);
  auto svc = add_service("svc", 1);
  round();
  set_state(instances().at(0).id, InstanceState::running);
  svc = ok(store_->services().get(svc.id));
  svc.spec_json = mark_deleting(svc.spec_json);
  ok(store_->services().update(svc));
  EXPECT_TRUE(service_deleting(svc));
  round();  // drain, then (nothing in flight) remove at the next round
  EXPECT_EQ(instances().at(0).state, InstanceState::draining);
  round();
  EXPECT_TRUE(instances().empty());
  round();
  EXPECT_EQ(store_->services().get(svc.id).error().code, "store.not_found");
}

TEST_F(ReconcilerTest, ModelNotReadyKeepsPending) {
  add_node("gpu-a", 1);
  auto m = model_;
  m.status = store::ModelStatus::downloading;
  ok(store_->models().update(m));
  add_service("svc", 1);
  round();
  const auto i = instances().at(0);
  EXPECT_EQ(i.state, InstanceState::pending);
  EXPECT_NE(i.state_reason.find("is downloading"), std::string::npos) << i.state_reason;
}

TEST_F(ReconcilerTest, BackgroundThreadRunsOnTrigger) {
  Reconciler::Options o;
  o.engines = config::default_engines();
  o.interval = std::chrono::hours(1);  // only trigger() wakes it
  Reconciler loop(*store_, clock_, *notifier_, in_flight_, o);
  add_node("gpu-a", 1);
  loop.start();
  ASSERT_TRUE(testing::wait_until([&] { return loop.rounds() >= 1; }));
  add_service("svc", 1);
  loop.trigger();
  EXPECT_TRUE(testing::wait_until([&] { return instances().size() == 1; }));
  loop.stop();
}

TEST(ReconcilerHelpers, EngineNameAndDeletingMark) {
  const auto engines = config::default_engines();
  EXPECT_EQ(engine_name_for(engines, core::EngineKind::sglang), "sglang");
  config::EngineConfig mine;
  mine.kind = core::EngineKind::vllm;
  mine.command = {"v"};
  std::map<std::string, config::EngineConfig> custom{{"my-vllm", mine}};
  EXPECT_EQ(engine_name_for(custom, core::EngineKind::vllm), "my-vllm");
  EXPECT_EQ(engine_name_for({}, core::EngineKind::vllm_cpu), "vllm-cpu");
  store::Service s;
  EXPECT_FALSE(service_deleting(s));
  s.spec_json = mark_deleting("{\"x\":1}");
  EXPECT_TRUE(service_deleting(s));
  EXPECT_NE(s.spec_json.find("\"x\":1"), std::string::npos);
}

}  // namespace
}  // namespace openstation::server
