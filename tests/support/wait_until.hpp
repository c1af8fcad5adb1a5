#pragma once
/// Waiting for something real (a process to exit, a port to open) without fixed sleeps: polls
/// `done` every few milliseconds and gives up after `timeout`, so a test fails instead of hanging.

#include <chrono>
#include <thread>

namespace openstation::testing {

template <class Pred>
bool wait_until(Pred&& done, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

}  // namespace openstation::testing
