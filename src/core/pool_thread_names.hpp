#pragma once
/// Names for the threads of an Asio thread pool (core::name_this_thread), kept apart from
/// thread_name.hpp so that the files naming plain threads do not include Asio.

#include "core/thread_name.hpp"

#include <boost/asio/post.hpp>

#include <cstddef>
#include <latch>
#include <memory>
#include <string>
#include <string_view>

namespace openstation::core {

/// Names every thread of an Asio thread pool of `threads` threads: one job per thread, each of
/// which waits until all have started, so that no thread takes two. Returns once all are named.
template <class Pool>
void name_pool_threads(Pool& pool, std::size_t threads, std::string_view name) {
  auto started = std::make_shared<std::latch>(static_cast<std::ptrdiff_t>(threads));
  for (std::size_t i = 0; i < threads; ++i) {
    boost::asio::post(pool, [started, name = std::string(name)] {
      name_this_thread(name);
      started->arrive_and_wait();
    });
  }
  started->wait();
}

}  // namespace openstation::core
