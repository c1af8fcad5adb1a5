#include "agent/process_launcher.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <string_view>

extern char** environ;

namespace openstation::agent {
namespace {

const char* signal_name(int sig) {
  switch (sig) {
    case SIGHUP: return "SIGHUP";
    case SIGINT: return "SIGINT";
    case SIGQUIT: return "SIGQUIT";
    case SIGILL: return "SIGILL";
    case SIGABRT: return "SIGABRT";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGKILL: return "SIGKILL";
    case SIGSEGV: return "SIGSEGV";
    case SIGPIPE: return "SIGPIPE";
    case SIGTERM: return "SIGTERM";
    default: return nullptr;
  }
}

ExitStatus from_wait_status(int status) {
  if (WIFEXITED(status)) return ExitStatus::exited_with(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return ExitStatus::killed_by(WTERMSIG(status));
  return {};
}

}  // namespace

std::string ExitStatus::describe() const {
  switch (kind) {
    case Kind::exited: return "exited with code " + std::to_string(code);
    case Kind::signaled: {
      std::string s = "killed by signal " + std::to_string(signal);
      if (const char* n = signal_name(signal)) s += std::string(" (") + n + ")";
      return s;
    }
    case Kind::unknown: break;
  }
  return "exited (status unknown: the process was started by an earlier agent)";
}

std::optional<ProcStat> parse_proc_stat(std::string_view text) {
  // "pid (comm) S ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime
  //  cutime cstime priority nice num_threads itrealvalue starttime ..."; comm may hold ") ".
  const auto close = text.rfind(')');
  if (close == std::string_view::npos) return std::nullopt;
  std::istringstream in(std::string(text.substr(close + 1)));
  std::vector<std::string> fields;  // fields[0] is field 3 (state)
  std::string f;
  while (fields.size() < 20 && in >> f) fields.push_back(f);
  if (fields.size() < 20 || fields[0].size() != 1) return std::nullopt;
  ProcStat st;
  st.state = fields[0][0];
  try {
    st.pgid = static_cast<pid_t>(std::stol(fields[2]));  // field 5
    st.start_time = std::stoull(fields[19]);             // field 22
  } catch (const std::exception&) {
    return std::nullopt;
  }
  return st;
}

std::optional<ProcStat> read_proc_stat(pid_t pid, const std::filesystem::path& proc_root) {
  if (pid <= 0) return std::nullopt;
  std::ifstream in(proc_root / std::to_string(pid) / "stat");
  if (!in) return std::nullopt;
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return parse_proc_stat(text);
}

std::string process_name(pid_t pid, const std::filesystem::path& proc_root) {
  std::ifstream in(proc_root / std::to_string(pid) / "comm");
  std::string name;
  std::getline(in, name);
  return name;
}

core::Result<ProcessHandle> PosixProcessLauncher::launch(const LaunchRequest& req) {
  if (req.argv.empty()) return core::invalid("process.empty_argv", "no command given");
  std::error_code ec;
  if (!req.log_file.empty()) {
    std::filesystem::create_directories(req.log_file.parent_path(), ec);
    const int fd = ::open(req.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
      return core::io_error("process.log_open_failed",
                            "cannot open the log file " + req.log_file.string() + ": " +
                                std::strerror(errno) + " (check the agent's log directory)");
    }
    ::close(fd);
  }

  std::vector<std::string> env_strings;
  std::set<std::string> overridden;
  for (const auto& [k, v] : req.env) overridden.insert(k);
  if (req.inherit_env) {
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
      std::string_view entry(*e);
      const auto eq = entry.find('=');
      if (eq != std::string_view::npos && overridden.count(std::string(entry.substr(0, eq)))) {
        continue;
      }
      env_strings.emplace_back(entry);
    }
  }
  for (const auto& [k, v] : req.env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_copy = req.argv;
  std::vector<char*> argv;
  for (auto& s : argv_copy) argv.push_back(s.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  if (!req.log_file.empty()) {
    posix_spawn_file_actions_addopen(&actions, 1, req.log_file.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
  } else {
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  }
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  if (!req.working_dir.empty()) {
    posix_spawn_file_actions_addchdir_np(&actions, req.working_dir.c_str());
  }
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
#endif
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, argv[0], &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    if (rc == ENOENT || rc == EACCES || rc == ENOTDIR) {
      std::string msg = "cannot run " + req.argv[0] + ": " + std::strerror(rc);
      if (!req.working_dir.empty()) msg += " (working directory " + req.working_dir.string() + ")";
      return core::not_found("process.not_found",
                             msg + "; check the engine's command in the agent's configuration");
    }
    return core::io_error("process.spawn_failed",
                          "cannot start " + req.argv[0] + ": " + std::strerror(rc));
  }
  ProcessHandle h;
  h.pid = pid;
  if (auto st = read_proc_stat(pid)) h.start_time = st->start_time;
  return h;
}

bool PosixProcessLauncher::alive(const ProcessHandle& p) {
  const auto st = read_proc_stat(p.pid);
  return st && st->state != 'Z' && st->state != 'X' && st->start_time == p.start_time;
}

bool PosixProcessLauncher::signal_group(const ProcessHandle& p, int sig) {
  if (p.pid <= 1) return false;
  const auto st = read_proc_stat(p.pid);
  if (st && st->start_time != p.start_time) return false;  // the pid was reused
  // The leader may be a zombie or gone while the rest of its group still runs: signal anyway.
  return ::kill(-p.pid, sig) == 0;
}

std::optional<ExitStatus> PosixProcessLauncher::poll(const ProcessHandle& p) {
  if (p.pid <= 1) return ExitStatus{};
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(p.pid, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  std::optional<ExitStatus> result;
  if (r == p.pid) {
    result = from_wait_status(status);
  } else if (r == 0) {
    return std::nullopt;
  } else if (!alive(p)) {
    result = ExitStatus{};  // not our child (adopted): only /proc tells that it ended
  } else {
    return std::nullopt;
  }
  // The leader is gone; whatever it left in its group must not outlive it.
  ::kill(-p.pid, SIGKILL);
  return result;
}

}  // namespace openstation::agent
