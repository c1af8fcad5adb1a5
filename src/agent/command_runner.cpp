#include "agent/command_runner.hpp"

#include "core/strings.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

extern char** environ;

namespace openstation::agent {
namespace {

constexpr std::size_t kMaxCapture = 4u << 20;

/// Closes a descriptor once.
struct Fd {
  int fd = -1;
  Fd() = default;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  void reset() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

std::string describe(const std::vector<std::string>& argv) {
  return core::join(argv, " ");
}

core::Error spawn_error(int code, const std::vector<std::string>& argv) {
  if (code == ENOENT || code == EACCES || code == ENOTDIR) {
    return core::not_found(
        "command.not_found",
        "cannot run " + argv[0] + ": " + std::strerror(code) + " (is it installed and on PATH?)");
  }
  return core::io_error("command.spawn_failed",
                        "cannot start `" + describe(argv) + "`: " + std::strerror(code));
}

int wait_child(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

core::Result<CommandOutput> SpawnCommandRunner::run(const std::vector<std::string>& argv,
                                                    std::chrono::milliseconds timeout) {
  if (argv.empty()) return core::invalid("command.empty", "no command given");
  Fd out_r, out_w, err_r, err_w;
  {
    std::array<int, 2> p{};
    if (::pipe2(p.data(), O_CLOEXEC) != 0) return spawn_error(errno, argv);
    out_r.fd = p[0];
    out_w.fd = p[1];
    if (::pipe2(p.data(), O_CLOEXEC) != 0) return spawn_error(errno, argv);
    err_r.fd = p[0];
    err_w.fd = p[1];
  }

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_w.fd, 1);
  posix_spawn_file_actions_adddup2(&actions, err_w.fd, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(
      &attr,
      static_cast<short>(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF));

  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  pid_t pid = 0;
  int rc = ::posix_spawnp(&pid, argv[0].c_str(), &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return spawn_error(rc, argv);
  out_w.reset();
  err_w.reset();

  CommandOutput result;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::array<char, 16384> buf{};
  while (out_r.fd >= 0 || err_r.fd >= 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      ::kill(-pid, SIGKILL);
      wait_child(pid);
      return core::Error(core::Errc::unavailable, "command.timed_out",
                         "`" + describe(argv) + "` did not finish within " +
                             std::to_string(timeout.count()) + " ms and was killed");
    }
    std::array<pollfd, 2> fds{pollfd{out_r.fd, POLLIN, 0}, pollfd{err_r.fd, POLLIN, 0}};
    int n = ::poll(fds.data(), fds.size(), static_cast<int>(left.count()));
    if (n < 0) {
      if (errno == EINTR) continue;
      ::kill(-pid, SIGKILL);
      wait_child(pid);
      return spawn_error(errno, argv);
    }
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      Fd& fd = i == 0 ? out_r : err_r;
      std::string& sink = i == 0 ? result.out : result.err;
      ssize_t got = ::read(fd.fd, buf.data(), buf.size());
      if (got > 0) {
        std::size_t room = kMaxCapture - std::min(kMaxCapture, sink.size());
        sink.append(buf.data(), std::min(room, static_cast<std::size_t>(got)));
      } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
        fd.reset();
      }
    }
  }
  result.exit_code = wait_child(pid);
  return result;
}

std::optional<std::filesystem::path> find_on_path(std::string_view name,
                                                  std::string_view path_list) {
  if (name.find('/') != std::string_view::npos) {
    std::filesystem::path p(name);
    if (::access(p.c_str(), X_OK) == 0) return p;
    return std::nullopt;
  }
  std::size_t start = 0;
  while (start <= path_list.size()) {
    std::size_t end = path_list.find(':', start);
    if (end == std::string_view::npos) end = path_list.size();
    std::string_view dir = path_list.substr(start, end - start);
    std::filesystem::path candidate = std::filesystem::path(dir.empty() ? "." : dir) / name;
    std::error_code ec;
    if (std::filesystem::is_regular_file(candidate, ec) && ::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
    start = end + 1;
  }
  return std::nullopt;
}

}  // namespace openstation::agent
