#pragma once
/// Thread names as the kernel shows them (`/proc/self/task/*/comm`, what `top -H` and `ps -L`
/// read), for the tests of core::name_this_thread and of the threads that use it.

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

namespace openstation::testing {

/// The name of task `dir` (a /proc/self/task/TID directory).
inline std::string comm_of(const std::filesystem::path& dir) {
  std::ifstream in(dir / "comm");
  std::string name;
  std::getline(in, name);
  return name;
}

/// The calling thread's name.
inline std::string comm_of_this_thread() {
  return comm_of("/proc/self/task/" + std::to_string(gettid()));
}

/// The names of all of the process's threads.
inline std::multiset<std::string> thread_names() {
  std::multiset<std::string> names;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    names.insert(comm_of(task.path()));
  }
  return names;
}

}  // namespace openstation::testing
