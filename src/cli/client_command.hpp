#pragma once
/// What the client commands (login, nodes, models, services, instances, users, keys, join-token)
/// share: the connection flags every one of them takes, building the RestClient from those flags
/// and the saved login, reporting errors, and asking the user for secrets.
///
/// Connection flags on every client command:
///   --server URL   the management API (default: the saved login's server)
///   --ca-cert FILE trust an https server's certificate through this CA instead of the pinned
///                  fingerprint
///   --json         print the API's JSON instead of a table
/// The saved token is sent only to the server it was issued by.

#include "cli/context.hpp"
#include "cli/credentials.hpp"
#include "cli/rest_client.hpp"
#include "core/error.hpp"

#include <boost/json/value.hpp>

#include <functional>
#include <string>

namespace CLI {
class App;
}

namespace openstation::cli {

/// The connection flags of a client command.
struct ConnectionFlags {
  std::string server;
  std::string ca_cert;
};

/// The body of a client command: runs with a ready client, returns an error to report.
using ClientBody = std::function<core::Result<void>(const RestClient&)>;

/// Adds subcommand `name` to `parent` with the connection flags and --json, and a callback that
/// builds the client (connect()) and runs `body`; an error from either is reported with report().
CLI::App* add_client_command(CLI::App* parent, const std::string& name,
                             const std::string& description, Context& ctx, ClientBody body);
/// Lets `group` (e.g. `nodes`) run `body` when it is given without a subcommand, with the
/// connection flags and --json of its own.
void run_without_subcommand(CLI::App* group, Context& ctx, ClientBody body);
/// Adds only the connection flags and --json to `app` (for commands that build their client
/// themselves, like login).
void add_connection_flags(CLI::App* app, ConnectionFlags& flags, Context& ctx);

/// The client for a command: the server from --server or the saved login, the saved token when
/// it was issued by that server, and the TLS trust (--ca-cert, else the saved login's CA file or
/// fingerprint). Errors: "cli.no_server" (invalid_argument) when there is neither --server nor a
/// saved login, "cli.not_logged_in" (unauthorized) when `need_token` and there is no token for
/// that server, plus those of credentials_path() and load_login().
core::Result<RestClient> connect(const ConnectionFlags& flags, bool need_token = true);

/// Reports an error: with --json the {"error": {...}} object on stdout, else
/// "error: <message> (<code>)" on stderr plus a hint for session problems; sets the exit code
/// from the error's category.
void report(Context& ctx, const core::Error& e);

/// Prints `v` as JSON (--json) and returns true, or returns false for the caller's table.
bool print_json_if(Context& ctx, const boost::json::value& v);

/// Reads a secret from the terminal with echo off (/dev/tty), after printing `prompt` on it.
/// Error "cli.no_terminal" (invalid_argument) naming `stdin_flag` when there is no terminal.
core::Result<std::string> prompt_secret(const std::string& prompt, const std::string& stdin_flag);
/// Asks a yes/no question on the terminal; false without a terminal or on anything but y/yes.
bool prompt_yes_no(const std::string& question);
/// One line from standard input without its line end. Error "cli.stdin_empty" naming `flag`.
core::Result<std::string> read_stdin_line(const std::string& flag);

}  // namespace openstation::cli
