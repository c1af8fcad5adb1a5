#pragma once
/// Running a short helper command (nvidia-smi) and capturing what it prints. An interface so the
/// probes' tests can answer with canned output. Long-lived engine processes are the supervisor's
/// business, not this.

#include "core/error.hpp"

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace openstation::agent {

/// What a finished command left behind.
struct CommandOutput {
  int exit_code = 0;  ///< the exit status, or 128 + signal number when a signal ended it
  std::string out;    ///< stdout (capped at 4 MiB)
  std::string err;    ///< stderr (capped at 4 MiB)
};

/// Runs argv (never through a shell) and waits for it.
class CommandRunner {
 public:
  virtual ~CommandRunner() = default;
  /// argv[0] is a path or a name looked up on PATH. Errors: "command.not_found" (not_found) when
  /// it cannot be executed; "command.timed_out" (unavailable) when it ran past `timeout` (it and
  /// its process group are then killed); "command.spawn_failed" (io_error) otherwise. A non-zero
  /// exit status is not an error: it is in CommandOutput.
  virtual core::Result<CommandOutput> run(const std::vector<std::string>& argv,
                                          std::chrono::milliseconds timeout) = 0;
};

/// The real runner: posix_spawnp in a new process group, stdin from /dev/null, stdout and
/// stderr through pipes. Thread-compatible (one call per object at a time).
class SpawnCommandRunner final : public CommandRunner {
 public:
  core::Result<CommandOutput> run(const std::vector<std::string>& argv,
                                  std::chrono::milliseconds timeout) override;
};

/// The first executable file called `name` in the ':'-separated `path_list` (a PATH value).
std::optional<std::filesystem::path> find_on_path(std::string_view name,
                                                  std::string_view path_list);

}  // namespace openstation::agent
