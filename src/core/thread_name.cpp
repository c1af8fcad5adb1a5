#include "core/thread_name.hpp"

#include <pthread.h>

#include <array>

namespace openstation::core {

namespace {

constexpr std::size_t kMaxName = 15;  // Linux's TASK_COMM_LEN, less the terminating NUL

void name_pthread(pthread_t t, std::string_view name) {
#ifdef __linux__
  const std::string cut(name.substr(0, kMaxName));
  (void)pthread_setname_np(t, cut.c_str());  // fails only on a name too long
#else
  (void)t;
  (void)name;
#endif
}

}  // namespace

void name_this_thread(std::string_view name) {
  name_pthread(pthread_self(), name);
}

void name_thread(std::thread& t, std::string_view name) {
  if (t.joinable()) name_pthread(t.native_handle(), name);
}

std::string this_thread_name() {
#ifdef __linux__
  std::array<char, kMaxName + 1> buf{};
  if (pthread_getname_np(pthread_self(), buf.data(), buf.size()) != 0) return {};
  return buf.data();
#else
  return {};
#endif
}

}  // namespace openstation::core
