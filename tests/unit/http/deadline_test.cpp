// The per-connection I/O deadline (http/detail/deadline.hpp): it fires once its time has passed
// and never before, however often it is moved, and a cleared one does not fire.
#include "http/detail/deadline.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <optional>

namespace openstation::http::detail {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

TEST(Deadline, FiresAfterItsTimeAndNeverBefore) {
  asio::io_context ioc{1};
  std::optional<Clock::time_point> fired;
  Deadline d(ioc.get_executor(), [&] { fired = Clock::now(); });
  const auto set_at = Clock::now();
  d.set(30ms);
  ioc.run_for(2s);
  ASSERT_TRUE(fired.has_value());
  EXPECT_GE(*fired - set_at, 30ms);
  EXPECT_TRUE(d.expired());
}

TEST(Deadline, AMovedDeadlineCountsFromTheLastSet) {
  asio::io_context ioc{1};
  std::optional<Clock::time_point> fired;
  Deadline d(ioc.get_executor(), [&] { fired = Clock::now(); });
  d.set(20ms);
  // Moved later every 5 ms for 60 ms, as a connection busy with short reads and writes does.
  Clock::time_point last_set{};
  asio::steady_timer t(ioc);
  int moves = 0;
  std::function<void()> again = [&] {
    last_set = Clock::now();
    d.set(20ms);
    if (++moves == 12) return;
    t.expires_after(5ms);
    t.async_wait([&](const boost::system::error_code&) { again(); });
  };
  again();
  ioc.run_for(2s);
  ASSERT_TRUE(fired.has_value());
  EXPECT_GE(*fired - last_set, 20ms);
  EXPECT_EQ(moves, 12);
}

TEST(Deadline, AClearedDeadlineDoesNotFire) {
  asio::io_context ioc{1};
  bool fired = false;
  Deadline d(ioc.get_executor(), [&] { fired = true; });
  d.set(10ms);
  d.clear();
  ioc.run_for(100ms);
  EXPECT_FALSE(fired);
  EXPECT_FALSE(d.expired());
}

}  // namespace
}  // namespace openstation::http::detail
