#include "cli/client_command.hpp"

#include <CLI/CLI.hpp>
#include <boost/json.hpp>

#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

#include <iostream>
#include <memory>
#include <ostream>

namespace openstation::cli {

void add_connection_flags(CLI::App* app, ConnectionFlags& flags, Context& ctx) {
  app->add_option("--server", flags.server,
                  "The OpenStation server, e.g. https://10.0.0.5:32206 (default: the server of "
                  "your saved login)");
  app->add_option("--ca-cert", flags.ca_cert,
                  "Trust the server's certificate through this CA file (PEM) instead of the "
                  "fingerprint pinned at login");
  app->add_flag("--json", ctx.json, "Print the API's JSON instead of a table");
}

CLI::App* add_client_command(CLI::App* parent, const std::string& name,
                             const std::string& description, Context& ctx, ClientBody body) {
  CLI::App* cmd = parent->add_subcommand(name, description);
  auto flags = std::make_shared<ConnectionFlags>();
  add_connection_flags(cmd, *flags, ctx);
  cmd->callback([flags, &ctx, body = std::move(body)] {
    auto client = connect(*flags);
    if (!client) {
      report(ctx, client.error());
      return;
    }
    auto done = body(*client);
    if (!done) report(ctx, done.error());
  });
  return cmd;
}

void run_without_subcommand(CLI::App* group, Context& ctx, ClientBody body) {
  auto flags = std::make_shared<ConnectionFlags>();
  add_connection_flags(group, *flags, ctx);
  group->require_subcommand(0, 1);
  group->callback([group, flags, &ctx, body = std::move(body)] {
    if (!group->get_subcommands().empty()) return;
    auto client = connect(*flags);
    if (!client) {
      report(ctx, client.error());
      return;
    }
    auto done = body(*client);
    if (!done) report(ctx, done.error());
  });
}

core::Result<RestClient> connect(const ConnectionFlags& flags, bool need_token) {
  auto path = credentials_path();
  if (!path) return path.error();
  auto saved = load_login(*path);
  if (!saved) return saved.error();
  RestOptions options;
  if (!flags.server.empty()) {
    auto url = normalize_server_url(flags.server);
    if (!url) return url.error();
    options.server = *url;
  } else if (*saved && !(*saved)->server.empty()) {
    options.server = (*saved)->server;
  } else {
    return core::invalid("cli.no_server",
                         "which server? pass --server https://HOST:32206, or run `openstation "
                         "login --server https://HOST:32206` once",
                         "--server");
  }
  const bool same_server = *saved && (*saved)->server == options.server;
  if (same_server) {
    options.token = (*saved)->token;
    options.trust.fingerprint = (*saved)->fingerprint;
    options.trust.ca_file = (*saved)->ca_file;
  }
  if (!flags.ca_cert.empty()) {
    options.trust.ca_file = flags.ca_cert;
    options.trust.fingerprint.clear();
  }
  if (need_token && options.token.empty()) {
    return core::Error(core::Errc::unauthorized, "cli.not_logged_in",
                       "not logged in to " + options.server + ": run `openstation login --server " +
                           options.server + " --username NAME` first");
  }
  return RestClient(std::move(options));
}

void report(Context& ctx, const core::Error& e) {
  if (ctx.json) {
    ctx.fail(e);
    return;
  }
  ctx.exit_code = core::exit_code(e.category);
  *ctx.err << "error: " << e.message << " (" << e.code << ")\n";
  if (e.code == "auth.session_expired" || e.code == "auth.unauthenticated") {
    *ctx.err << "hint: log in again with `openstation login`\n";
  } else if (e.code == "auth.password_change_required") {
    *ctx.err << "hint: `openstation login` asks for a new password\n";
  }
}

bool print_json_if(Context& ctx, const boost::json::value& v) {
  if (!ctx.json) return false;
  ctx.print_json(v);
  return true;
}

namespace {

/// The controlling terminal, opened for reading and writing; closed on destruction.
class Tty {
 public:
  Tty() : fd_(::open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY)) {}
  ~Tty() {
    if (fd_ >= 0) ::close(fd_);
  }
  Tty(const Tty&) = delete;
  Tty& operator=(const Tty&) = delete;
  bool ok() const { return fd_ >= 0; }
  void write(const std::string& s) const {
    std::size_t done = 0;
    while (done < s.size()) {
      const auto n = ::write(fd_, s.data() + done, s.size() - done);
      if (n <= 0) return;
      done += static_cast<std::size_t>(n);
    }
  }
  /// One line without its end; nullopt at end of input.
  std::optional<std::string> read_line() const {
    std::string line;
    char c = 0;
    for (;;) {
      const auto n = ::read(fd_, &c, 1);
      if (n <= 0) return line.empty() ? std::nullopt : std::optional<std::string>(line);
      if (c == '\n') return line;
      if (c != '\r') line.push_back(c);
    }
  }
  int fd() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

core::Result<std::string> prompt_secret(const std::string& prompt, const std::string& stdin_flag) {
  Tty tty;
  if (!tty.ok()) {
    return core::invalid(
        "cli.no_terminal",
        "there is no terminal to ask for the password on; pipe it in and pass " + stdin_flag,
        stdin_flag);
  }
  tty.write(prompt);
  termios old{};
  const bool have_termios = ::tcgetattr(tty.fd(), &old) == 0;
  if (have_termios) {
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    quiet.c_lflag |= ECHONL;
    ::tcsetattr(tty.fd(), TCSAFLUSH, &quiet);
  }
  auto line = tty.read_line();
  if (have_termios) ::tcsetattr(tty.fd(), TCSAFLUSH, &old);
  if (!line) {
    return core::invalid("cli.no_password", "no password was entered", stdin_flag);
  }
  return *line;
}

bool prompt_yes_no(const std::string& question) {
  Tty tty;
  if (!tty.ok()) return false;
  tty.write(question + " [y/N] ");
  auto line = tty.read_line();
  if (!line) return false;
  return *line == "y" || *line == "Y" || *line == "yes" || *line == "YES" || *line == "Yes";
}

core::Result<std::string> read_stdin_line(const std::string& flag) {
  std::string line;
  if (!std::getline(std::cin, line)) {
    return core::invalid("cli.stdin_empty", flag + ": standard input ended before a line was read",
                         flag);
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

}  // namespace openstation::cli
