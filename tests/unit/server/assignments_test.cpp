// Instance assignments (the store's assignment_json), assignment ids, and the notifier that wakes
// the agents' long polls.

#include "server/assignments.hpp"

#include "support/manual_clock.hpp"

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <future>
#include <thread>

namespace openstation::server {
namespace {

using namespace std::chrono_literals;

agent::Assignment make_assignment(std::string id) {
  agent::Assignment a;
  a.id = std::move(id);
  a.service = "svc";
  a.engine = "vllm";
  a.argv = {"serve", "/models/q", "--port", "{port}"};
  a.env = {{"CUDA_VISIBLE_DEVICES", "0,1"}};
  a.ports_needed = 2;
  a.model_path = "/models/q";
  return a;
}

TEST(Assignments, RoundTripKeyedByNode) {
  InstanceAssignments a{{"node_a", make_assignment("inst_1.r0")},
                        {"node_b", make_assignment("inst_1.r1")}};
  a["node_b"].argv = {"start", "--address", "10.0.0.1:41000"};
  auto back = parse_assignments(assignments_to_json(a));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, a);
}

TEST(Assignments, EmptyTextIsNoAssignment) {
  auto back = parse_assignments("");
  ASSERT_TRUE(back);
  EXPECT_TRUE(back->empty());
}

TEST(Assignments, RefusesWhatThisBinaryDidNotWrite) {
  for (const char* bad : {"not json", "[1,2]", R"({"node_a": {"id": "x"}})",
                          R"({"node_a": {"id": "x", "engine": 3}})"}) {
    auto r = parse_assignments(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, "server.bad_assignment") << bad;
    EXPECT_EQ(r.error().category, core::Errc::internal);
  }
}

TEST(Assignments, IdsOfRanks) {
  EXPECT_EQ(assignment_id("inst_1", 0, 1), "inst_1");
  EXPECT_EQ(assignment_id("inst_1", 0, 2), "inst_1.r0");
  EXPECT_EQ(assignment_id("inst_1", 3, 4), "inst_1.r3");
  EXPECT_EQ(instance_of_assignment("inst_1"), "inst_1");
  EXPECT_EQ(instance_of_assignment("inst_1.r0"), "inst_1");
  EXPECT_EQ(instance_of_assignment("inst_1.r12"), "inst_1");
  // Not a rank suffix: the whole id.
  EXPECT_EQ(instance_of_assignment("inst_1.rx"), "inst_1.rx");
  EXPECT_EQ(instance_of_assignment("inst_1.r"), "inst_1.r");
  EXPECT_EQ(instance_of_assignment("svc.run"), "svc.run");
}

class NotifierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    guard_.reset();
    io_.stop();
    thread_.join();
  }
  std::future<std::uint64_t> wait(std::string node, std::uint64_t known,
                                  std::chrono::milliseconds timeout) {
    return boost::asio::co_spawn(io_, notifier_.wait_change(std::move(node), known, timeout),
                                 boost::asio::use_future);
  }

  testing::ManualClock clock_;
  AssignmentNotifier notifier_{clock_};
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_{
      io_.get_executor()};
  std::thread thread_;
};

TEST_F(NotifierTest, GenerationsStartFromTheWallClockAndOnlyGrow) {
  const auto start = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now().time_since_epoch())
          .count());
  EXPECT_EQ(notifier_.generation("a"), start);
  notifier_.notify("a");
  EXPECT_EQ(notifier_.generation("a"), start + 1);
  EXPECT_EQ(notifier_.generation("b"), start);
  notifier_.notify_all();
  EXPECT_EQ(notifier_.generation("a"), start + 2);
  EXPECT_EQ(notifier_.generation("b"), start + 1);
}

TEST_F(NotifierTest, AnswersAtOnceWhenTheGenerationDiffers) {
  auto f = wait("a", 7, 60s);
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(f.get(), notifier_.generation("a"));
}

TEST_F(NotifierTest, WakesOnNotifyFromAnotherThread) {
  const auto g = notifier_.generation("a");
  auto f = wait("a", g, 60s);
  EXPECT_EQ(f.wait_for(50ms), std::future_status::timeout);
  notifier_.notify("b");  // another node: still waiting
  EXPECT_EQ(f.wait_for(50ms), std::future_status::timeout);
  std::thread([this] { notifier_.notify("a"); }).join();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(f.get(), g + 1);
}

TEST_F(NotifierTest, NotifyAllWakesEveryNode) {
  auto fa = wait("a", notifier_.generation("a"), 60s);
  auto fb = wait("b", notifier_.generation("b"), 60s);
  EXPECT_EQ(fa.wait_for(30ms), std::future_status::timeout);
  notifier_.notify_all();
  ASSERT_EQ(fa.wait_for(10s), std::future_status::ready);
  ASSERT_EQ(fb.wait_for(10s), std::future_status::ready);
}

TEST_F(NotifierTest, TimesOutWithTheSameGeneration) {
  const auto g = notifier_.generation("a");
  auto f = wait("a", g, 30ms);
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(f.get(), g);
}

TEST_F(NotifierTest, ShutdownReleasesWaiters) {
  const auto g = notifier_.generation("a");
  auto f = wait("a", g, 600s);
  EXPECT_EQ(f.wait_for(30ms), std::future_status::timeout);
  notifier_.shutdown();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(f.get(), g);
}

}  // namespace
}  // namespace openstation::server
