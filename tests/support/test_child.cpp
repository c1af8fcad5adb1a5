// test-child: a tiny, scriptable process for the supervisor's tests. Driven by argv:
//   --listen PORT        listen on 127.0.0.1:PORT and answer GET /health (exit 98 if it can't bind)
//   --ready-after-ms N   /health answers 503 until N ms after start, then 200 (default 0)
//   --never-ready        /health always answers 503
//   --ignore-sigterm     print "test-child: ignoring SIGTERM" on SIGTERM and keep running
//   --exit-after-ms N    exit after N ms with --exit-code (default 0)
//   --exit-code C
//   --print N            print N lines "test-child line <i> xxxx…" at start
//   --line-bytes B       pad each printed line to B bytes (default 40)
//   --print-env NAME     print "NAME=<value>"
//   --print-cwd          print "cwd=<dir>"
//   --lifetime-ms N      exit 0 after N ms whatever happens (default 120000: never outlives a test)
// Everything goes to stdout, unbuffered.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

volatile sig_atomic_t g_sigterm = 0;

void on_sigterm(int /*sig*/) {
  g_sigterm = 1;
}

void say(const std::string& line) {
  const std::string text = line + "\n";
  std::size_t done = 0;
  while (done < text.size()) {
    const auto n = ::write(1, text.data() + done, text.size() - done);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      return;
    }
    done += static_cast<std::size_t>(n);
  }
}

long long arg_num(int& i, int argc, char** argv) {
  if (i + 1 >= argc) {
    say(std::string("test-child: ") + argv[i] + " needs a value");
    std::exit(2);
  }
  return std::atoll(argv[++i]);
}

}  // namespace

int main(int argc, char** argv) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  int port = -1;
  long long ready_after_ms = 0, exit_after_ms = -1, lifetime_ms = 120000;
  int exit_code = 0;
  bool never_ready = false, ignore_sigterm = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--listen") {
      port = static_cast<int>(arg_num(i, argc, argv));
    } else if (a == "--ready-after-ms") {
      ready_after_ms = arg_num(i, argc, argv);
    } else if (a == "--never-ready") {
      never_ready = true;
    } else if (a == "--ignore-sigterm") {
      ignore_sigterm = true;
    } else if (a == "--exit-after-ms") {
      exit_after_ms = arg_num(i, argc, argv);
    } else if (a == "--exit-code") {
      exit_code = static_cast<int>(arg_num(i, argc, argv));
    } else if (a == "--lifetime-ms") {
      lifetime_ms = arg_num(i, argc, argv);
    } else if (a == "--print") {
      const long long n = arg_num(i, argc, argv);
      long long bytes = 40;
      if (i + 2 < argc && std::string(argv[i + 1]) == "--line-bytes") {
        ++i;
        bytes = arg_num(i, argc, argv);
      }
      for (long long k = 0; k < n; ++k) {
        std::string line = "test-child line " + std::to_string(k) + " ";
        if (static_cast<long long>(line.size()) < bytes) line.append(bytes - line.size(), 'x');
        say(line);
      }
    } else if (a == "--print-env") {
      const char* name = argv[++i];
      const char* v = std::getenv(name);
      say(std::string(name) + "=" + (v ? v : "<unset>"));
    } else if (a == "--print-cwd") {
      char buf[4096];
      say(std::string("cwd=") + (::getcwd(buf, sizeof buf) ? buf : "?"));
    } else {
      say("test-child: unknown argument " + a);
      return 2;
    }
  }
  if (ignore_sigterm) {
    struct sigaction sa {};
    sa.sa_handler = on_sigterm;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: poll() returns EINTR and we report it
    sigaction(SIGTERM, &sa, nullptr);
  }
  say("test-child: started pid " + std::to_string(::getpid()));

  int lfd = -1;
  if (port >= 0) {
    lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    ::setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    if (::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(lfd, 16) != 0) {
      say("test-child: cannot listen on port " + std::to_string(port) + ": " +
          std::strerror(errno));
      return 98;
    }
    say("test-child: listening on port " + std::to_string(port));
  }

  const auto elapsed_ms = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
  };
  for (;;) {
    if (g_sigterm) {
      g_sigterm = 0;
      say("test-child: ignoring SIGTERM");
    }
    const long long now = elapsed_ms();
    if (exit_after_ms >= 0 && now >= exit_after_ms) {
      say("test-child: exiting with code " + std::to_string(exit_code));
      return exit_code;
    }
    if (now >= lifetime_ms) return 0;
    long long wait = lifetime_ms - now;
    if (exit_after_ms >= 0) wait = std::min(wait, exit_after_ms - now);
    wait = std::min(wait, 200LL);
    pollfd p{lfd, POLLIN, 0};
    const int r = ::poll(&p, lfd >= 0 ? 1 : 0, static_cast<int>(wait));
    if (r <= 0 || lfd < 0) continue;
    const int c = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    std::string req;
    char buf[1024];
    while (req.find("\r\n\r\n") == std::string::npos && req.size() < 8192) {
      pollfd cp{c, POLLIN, 0};
      if (::poll(&cp, 1, 1000) <= 0) break;
      const auto n = ::read(c, buf, sizeof buf);
      if (n <= 0) break;
      req.append(buf, static_cast<std::size_t>(n));
    }
    const bool health = req.rfind("GET /health", 0) == 0;
    const bool ready = !never_ready && elapsed_ms() >= ready_after_ms;
    std::string status = !health ? "404 Not Found" : ready ? "200 OK" : "503 Service Unavailable";
    const std::string body = !health ? "not found" : ready ? "ok" : "loading";
    const std::string resp = "HTTP/1.1 " + status +
                             "\r\nContent-Length: " + std::to_string(body.size()) +
                             "\r\nConnection: close\r\n\r\n" + body;
    [[maybe_unused]] const auto w = ::write(c, resp.data(), resp.size());
    ::close(c);
  }
}
