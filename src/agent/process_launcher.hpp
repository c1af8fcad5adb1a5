#pragma once
/// Starting and signalling long-lived engine processes. An interface so the supervisor's state
/// machine can be tested against a fake; `PosixProcessLauncher` is the real one.
///
/// Every process is started in a new process group whose id is its pid, with stdin from
/// /dev/null and stdout and stderr appended to one log file (O_APPEND, opened by the child
/// itself), so the engine keeps writing its log even when the agent that started it is gone.

#include "core/error.hpp"

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace openstation::agent {

/// What to run. argv[0] is a path, or a name looked up on the agent's PATH. Never a shell.
struct LaunchRequest {
  std::vector<std::string> argv;
  /// Variables set for the child, on top of the agent's environment when `inherit_env`.
  std::vector<std::pair<std::string, std::string>> env;
  bool inherit_env = true;
  /// The child's working directory; empty keeps the agent's.
  std::filesystem::path working_dir;
  /// stdout and stderr go here (created 0644 if missing, appended to).
  std::filesystem::path log_file;
};

/// A started process: its pid (also its process-group id) and its start time, the 22nd field of
/// /proc/<pid>/stat, which tells the process apart from a later one that reuses the pid.
struct ProcessHandle {
  pid_t pid = -1;
  std::uint64_t start_time = 0;
};

/// How a process ended.
struct ExitStatus {
  enum class Kind { exited, signaled, unknown };
  Kind kind = Kind::unknown;
  int code = 0;    ///< the exit code when `exited`
  int signal = 0;  ///< the signal number when `signaled`

  static ExitStatus exited_with(int c) { return {Kind::exited, c, 0}; }
  static ExitStatus killed_by(int s) { return {Kind::signaled, 0, s}; }
  /// "exited with code 3", "killed by signal 9 (SIGKILL)", "exited (status unknown: not our
  /// child)".
  std::string describe() const;
  friend bool operator==(const ExitStatus&, const ExitStatus&) = default;
};

/// Starts, signals and reaps processes. Implementations are thread-compatible.
class ProcessLauncher {
 public:
  virtual ~ProcessLauncher() = default;
  /// Starts `req` in a new process group. Errors: "process.not_found" (not_found) when argv[0]
  /// cannot be executed; "process.log_open_failed" (io_error) when the log file cannot be opened;
  /// "process.spawn_failed" (io_error) otherwise; "process.empty_argv" (invalid_argument).
  virtual core::Result<ProcessHandle> launch(const LaunchRequest& req) = 0;
  /// Sends `sig` to the whole process group of `p` (a no-op when it is gone). Refuses (returns
  /// false) when the pid now belongs to another process (its start time differs).
  virtual bool signal_group(const ProcessHandle& p, int sig) = 0;
  /// Non-blocking: nullopt while `p` runs; its exit status once it has ended. Own children are
  /// reaped with waitpid(WNOHANG); other processes (adopted after an agent restart) are watched
  /// through /proc/<pid>, and their status is `unknown`.
  virtual std::optional<ExitStatus> poll(const ProcessHandle& p) = 0;
  /// True when a process with this pid and start time runs (a zombie does not count).
  virtual bool alive(const ProcessHandle& p) = 0;
};

/// The real launcher: posix_spawnp with POSIX_SPAWN_SETPGROUP; descriptors other than 0–2 closed.
class PosixProcessLauncher final : public ProcessLauncher {
 public:
  core::Result<ProcessHandle> launch(const LaunchRequest& req) override;
  bool signal_group(const ProcessHandle& p, int sig) override;
  std::optional<ExitStatus> poll(const ProcessHandle& p) override;
  bool alive(const ProcessHandle& p) override;
};

/// What /proc/<pid>/stat says about a process: its state letter, process group and start time.
struct ProcStat {
  char state = '?';
  pid_t pgid = 0;
  std::uint64_t start_time = 0;
};

/// Parses the text of /proc/<pid>/stat (the command name may hold spaces and parentheses).
std::optional<ProcStat> parse_proc_stat(std::string_view text);
/// Reads /proc/<pid>/stat under `proc_root`; nullopt when the process does not exist.
std::optional<ProcStat> read_proc_stat(pid_t pid, const std::filesystem::path& proc_root = "/proc");
/// The command name of a process (/proc/<pid>/comm), empty when unknown.
std::string process_name(pid_t pid, const std::filesystem::path& proc_root = "/proc");

}  // namespace openstation::agent
