#pragma once
/// Names for the process's threads, so that `top -H`, `ps -L`, gdb and perf tell them apart (the
/// gateway's I/O threads from the call-log writer, say) instead of showing every one as
/// `openstation`.

#include <string>
#include <string_view>

namespace openstation::core {

/// Names the calling thread. Linux keeps the first 15 bytes; a longer name is cut there.
void name_this_thread(std::string_view name);

/// The calling thread's name: what name_this_thread() set, else the process's name; "" where
/// the platform keeps none.
std::string this_thread_name();

}  // namespace openstation::core
