// openstation login / logout: a session token for the client commands, saved with the server's
// URL and certificate fingerprint (cli/credentials.hpp).
#include "cli/client_command.hpp"
#include "cli/commands.hpp"
#include "cli/context.hpp"
#include "cli/credentials.hpp"
#include "cli/rest_client.hpp"
#include "cli/table.hpp"
#include "http/client.hpp"
#include "http/tls.hpp"

#include <CLI/CLI.hpp>
#include <boost/json.hpp>

#include <memory>
#include <ostream>

namespace openstation::cli {
namespace {

/// The flags of `openstation login`.
struct LoginFlags {
  ConnectionFlags connection;
  std::string username;
  bool password_stdin = false;
  bool new_password_stdin = false;
  std::string trust_fingerprint;
  bool yes = false;
};

/// Decides how to trust an https server at login: --ca-cert, --trust-fingerprint, the fingerprint
/// saved for this server, or the one the server presents now once the user accepts it.
core::Result<TlsTrust> login_trust(const LoginFlags& flags, const std::string& server,
                                   const std::optional<SavedLogin>& saved, Context& ctx) {
  TlsTrust trust;
  auto url = http::parse_url(server);
  if (!url) return url.error();
  if (url->scheme != "https") return trust;
  if (!flags.connection.ca_cert.empty()) {
    trust.ca_file = flags.connection.ca_cert;
    return trust;
  }
  if (!flags.trust_fingerprint.empty()) {
    auto fp = http::normalize_fingerprint(flags.trust_fingerprint);
    if (!fp) {
      return core::invalid("cli.bad_fingerprint",
                           "--trust-fingerprint: " + fp.error().message +
                               " (copy it from the server's log or `openstation server` output)",
                           "--trust-fingerprint");
    }
    trust.fingerprint = *fp;
    return trust;
  }
  if (saved && saved->server == server && !saved->fingerprint.empty()) {
    trust.fingerprint = saved->fingerprint;  // a changed certificate is refused by the client
    return trust;
  }
  if (saved && saved->server == server && !saved->ca_file.empty()) {
    trust.ca_file = saved->ca_file;
    return trust;
  }
  auto fp = http::fetch_peer_fingerprint(url->host, url->port);
  if (!fp) {
    core::Error e = fp.error();
    e.message += " (is the OpenStation server running at " + server + "?)";
    if (e.field.empty()) e.field = "--server";
    return e;
  }
  *ctx.err << "The server " << server << " presents a certificate with the SHA-256 fingerprint\n  "
           << *fp << "\nCompare it with the one the server printed when it started (or "
           << "`openstation server` logs).\n";
  if (!flags.yes && !prompt_yes_no("Trust this certificate?")) {
    return core::Error(core::Errc::unauthorized, "cli.certificate_not_trusted",
                       "the server's certificate was not trusted; to trust it without a prompt "
                       "pass --trust-fingerprint " +
                           *fp + " (or --yes), or --ca-cert FILE",
                       "--trust-fingerprint");
  }
  trust.fingerprint = *fp;
  return trust;
}

core::Result<std::string> new_password(const LoginFlags& flags) {
  if (flags.new_password_stdin) return read_stdin_line("--new-password-stdin");
  auto first = prompt_secret(
      "You must change your password now.\nAt least 8 characters with a digit, a lower-case "
      "letter and one of !@#$%^&*?\nNew password: ",
      "--new-password-stdin");
  if (!first) return first.error();
  auto again = prompt_secret("Repeat the new password: ", "--new-password-stdin");
  if (!again) return again.error();
  if (*first != *again) {
    return core::invalid("cli.password_mismatch", "the two new passwords differ; try again",
                         "--new-password-stdin");
  }
  return *first;
}

core::Result<void> run_login(const LoginFlags& flags, Context& ctx) {
  auto path = credentials_path();
  if (!path) return path.error();
  auto saved = load_login(*path);
  if (!saved) return saved.error();
  std::string server_text = flags.connection.server;
  if (server_text.empty() && *saved) server_text = (*saved)->server;
  if (server_text.empty()) {
    return core::invalid("cli.no_server", "which server? pass --server https://HOST:32206",
                         "--server");
  }
  auto server = normalize_server_url(server_text);
  if (!server) return server.error();
  std::string username = flags.username;
  if (username.empty() && *saved && (*saved)->server == *server) username = (*saved)->username;
  if (username.empty()) {
    return core::invalid("cli.no_username", "pass --username NAME", "--username");
  }
  auto trust = login_trust(flags, *server, *saved, ctx);
  if (!trust) return trust.error();

  std::string password;
  if (flags.password_stdin) {
    auto line = read_stdin_line("--password-stdin");
    if (!line) return line.error();
    password = *line;
  } else {
    auto secret =
        prompt_secret("Password for " + username + " at " + *server + ": ", "--password-stdin");
    if (!secret) return secret.error();
    password = *secret;
  }

  RestOptions options;
  options.server = *server;
  options.trust = *trust;
  RestClient anonymous(options);
  auto reply = anonymous.post("/auth/login",
                              boost::json::object{{"username", username}, {"password", password}});
  if (!reply) return reply.error();
  std::string token = str_field(*reply, "token");
  if (token.empty()) {
    return core::Error(core::Errc::unavailable, "cli.bad_reply",
                       "the server's login reply has no token; is --server an OpenStation server?");
  }
  boost::json::value shown = *reply;

  if (bool_field(*reply, "must_change_password")) {
    auto fresh = new_password(flags);
    if (!fresh) return fresh.error();
    options.token = token;
    RestClient session(options);
    auto changed =
        session.post("/auth/password",
                     boost::json::object{{"current_password", password}, {"new_password", *fresh}});
    if (!changed) return changed.error();
    *ctx.err << "Password changed.\n";
    // The server may end the sessions of a user whose password changed; log in again if so.
    auto me = session.get("/auth/me");
    if (!me && me.error().category == core::Errc::unauthorized) {
      options.token.clear();
      auto again = RestClient(options).post(
          "/auth/login", boost::json::object{{"username", username}, {"password", *fresh}});
      if (!again) return again.error();
      token = str_field(*again, "token");
      shown = *again;
    } else if (!me) {
      return me.error();
    } else if (auto* o = shown.if_object()) {
      (*o)["user"] = *me;
      (*o)["must_change_password"] = false;
    }
  }

  SavedLogin login;
  login.server = *server;
  login.username = username;
  login.token = token;
  login.expires_at = str_field(shown, "expires_at");
  login.fingerprint = trust->fingerprint;
  login.ca_file = trust->ca_file;
  if (auto saved_ok = save_login(*path, login); !saved_ok) return saved_ok.error();

  if (auto* o = shown.if_object()) {
    o->erase("token");
    o->erase("csrf_token");
    (*o)["server"] = *server;
    if (!login.fingerprint.empty()) (*o)["fingerprint"] = login.fingerprint;
  }
  if (print_json_if(ctx, shown)) return {};
  const auto* user = shown.as_object().if_contains("user");
  const std::string role = user ? str_field(*user, "role") : "";
  *ctx.out << "Logged in to " << *server << " as " << username
           << (role.empty() ? "" : " (" + role + ")");
  if (!login.expires_at.empty())
    *ctx.out << "; the session expires " << human_time(login.expires_at);
  *ctx.out << ".\n";
  if (!login.fingerprint.empty()) {
    *ctx.out << "Certificate pinned: " << login.fingerprint << "\n";
  }
  return {};
}

core::Result<void> run_logout(const ConnectionFlags& flags, Context& ctx) {
  auto path = credentials_path();
  if (!path) return path.error();
  auto saved = load_login(*path);
  if (!saved) return saved.error();
  if (!*saved || (*saved)->token.empty()) {
    *ctx.out << "Not logged in.\n";
    return {};
  }
  SavedLogin login = **saved;
  if (!flags.server.empty()) {
    auto server = normalize_server_url(flags.server);
    if (!server) return server.error();
    if (*server != login.server) {
      *ctx.out << "Not logged in to " << *server << ".\n";
      return {};
    }
  }
  auto client = connect(ConnectionFlags{login.server, flags.ca_cert});
  if (!client) return client.error();
  auto ended = client->post("/auth/logout");
  // The local token goes even when the server could not be told (it expires there on its own).
  login.token.clear();
  login.expires_at.clear();
  if (auto saved_ok = save_login(*path, login); !saved_ok) return saved_ok.error();
  if (!ended && ended.error().category != core::Errc::unauthorized) {
    *ctx.err << "warning: the server was not told (" << ended.error().message
             << "); the local token is removed\n";
  }
  if (ctx.json) {
    ctx.print_json(boost::json::object{{"server", login.server}, {"logged_out", true}});
  } else {
    *ctx.out << "Logged out of " << login.server << ".\n";
  }
  return {};
}

}  // namespace

void register_login_commands(CLI::App& root, Context& ctx) {
  auto flags = std::make_shared<LoginFlags>();
  CLI::App* login = root.add_subcommand(
      "login",
      "Log in to an OpenStation server and save the session for the client commands "
      "(~/.config/openstation/cli.json, mode 0600)");
  add_connection_flags(login, flags->connection, ctx);
  login->add_option("--username,-u", flags->username, "Your user name (default: the saved one)");
  login->add_flag("--password-stdin", flags->password_stdin,
                  "Read the password from the first line of standard input instead of asking");
  login->add_flag("--new-password-stdin", flags->new_password_stdin,
                  "When the server requires a new password, read it from the next line of "
                  "standard input instead of asking");
  login->add_option("--trust-fingerprint", flags->trust_fingerprint,
                    "Trust the https server whose certificate has this SHA-256 fingerprint "
                    "(sha256:AB:CD:...) without asking");
  login->add_flag("--yes,-y", flags->yes,
                  "Trust the certificate the server presents at first login without asking");
  login->callback([flags, &ctx] {
    if (auto done = run_login(*flags, ctx); !done) report(ctx, done.error());
  });

  auto out_flags = std::make_shared<ConnectionFlags>();
  CLI::App* logout =
      root.add_subcommand("logout", "End the saved session on the server and forget its token");
  add_connection_flags(logout, *out_flags, ctx);
  logout->callback([out_flags, &ctx] {
    if (auto done = run_logout(*out_flags, ctx); !done) report(ctx, done.error());
  });
}

}  // namespace openstation::cli
