#pragma once
/// Names for the process's threads, so that `top -H`, `ps -L`, gdb and perf tell them apart (the
/// gateway's I/O threads from the call-log writer, say) instead of showing every one as
/// `openstation`.

#include <string>
#include <string_view>
#include <thread>
#include <utility>

namespace openstation::core {

/// Names the calling thread. Linux keeps the first 15 bytes; a longer name is cut there.
void name_this_thread(std::string_view name);

/// The calling thread's name: what name_this_thread() set, else the process's name; "" where
/// the platform keeps none.
std::string this_thread_name();

/// Names thread `t` from another thread (the one that started it, say).
void name_thread(std::thread& t, std::string_view name);

/// A thread that runs `f`, named `name` both before `f` runs and by the time this returns (so
/// that whoever started it sees the name at once, whichever thread gets to run first).
template <class F>
std::thread named_thread(std::string name, F&& f) {
  std::thread t([name, f = std::forward<F>(f)]() mutable {
    name_this_thread(name);
    f();
  });
  name_thread(t, name);
  return t;
}

}  // namespace openstation::core
