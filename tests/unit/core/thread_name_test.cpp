// core::name_this_thread: the name the kernel shows for the thread, cut at Linux's 15 bytes;
// core::name_pool_threads: every thread of a pool named.
#include "core/thread_name.hpp"

#include "core/pool_thread_names.hpp"
#include "support/thread_names.hpp"

#include <boost/asio/thread_pool.hpp>

#include <gtest/gtest.h>

#include <unistd.h>

#include <future>
#include <latch>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace openstation::core {
namespace {

using testing::comm_of_this_thread;
using testing::thread_names;

TEST(ThreadName, NamesTheCallingThreadAsTheKernelShowsIt) {
  std::string seen, comm;
  std::thread([&] {
    name_this_thread("gateway-io-0");
    seen = this_thread_name();
    comm = comm_of_this_thread();
  }).join();
  EXPECT_EQ(seen, "gateway-io-0");
  EXPECT_EQ(comm, "gateway-io-0");
}

TEST(ThreadName, ALongNameIsCutAtFifteenBytes) {
  std::string seen;
  std::thread([&] {
    name_this_thread("a-name-longer-than-fifteen");
    seen = this_thread_name();
  }).join();
  EXPECT_EQ(seen, "a-name-longer-t");
}

TEST(ThreadName, ANamedThreadHasItsNameBeforeItsWorkRunsAndWhenItIsReturned) {
  std::string seen;
  named_thread("test-named", [&seen] { seen = comm_of_this_thread(); }).join();
  EXPECT_EQ(seen, "test-named");
  // Named by the time named_thread() returns, even when the new threads have not run yet.
  std::promise<void> go;
  std::shared_future<void> release = go.get_future().share();
  std::vector<std::thread> waiting;
  for (int i = 0; i < 8; ++i)
    waiting.push_back(named_thread("test-waiting", [release] { release.wait(); }));
  EXPECT_EQ(thread_names().count("test-waiting"), 8u);
  go.set_value();
  for (auto& t : waiting) t.join();
}

TEST(ThreadName, EveryThreadOfAPoolIsNamed) {
  boost::asio::thread_pool pool(3);
  name_pool_threads(pool, 3, "test-pool");
  // Three jobs that each hold their thread until all three run: one on each of the pool's threads.
  std::latch together(3);
  std::vector<std::future<std::pair<int, std::string>>> seen;
  for (int i = 0; i < 3; ++i) {
    std::packaged_task<std::pair<int, std::string>()> job([&together] {
      together.arrive_and_wait();
      return std::pair{static_cast<int>(gettid()), comm_of_this_thread()};
    });
    seen.push_back(job.get_future());
    boost::asio::post(pool, std::move(job));
  }
  std::set<int> tids;
  for (auto& f : seen) {
    auto [tid, name] = f.get();
    tids.insert(tid);
    EXPECT_EQ(name, "test-pool");
  }
  EXPECT_EQ(tids.size(), 3u);
  pool.join();
}

}  // namespace
}  // namespace openstation::core
