// openstation users list|create|disable|enable|reset-password|delete|import (admin) through the
// management API.
#include "cli/client_command.hpp"
#include "cli/commands.hpp"
#include "cli/context.hpp"
#include "cli/rest_client.hpp"
#include "cli/table.hpp"
#include "core/fs.hpp"

#include <CLI/CLI.hpp>
#include <boost/json.hpp>

#include <fstream>
#include <memory>
#include <ostream>
#include <sstream>

namespace openstation::cli {
namespace {

std::string user_status(const boost::json::value& u) {
  if (bool_field(u, "disabled")) return "disabled";
  if (bool_field(u, "must_change_password")) return "must change password";
  return "active";
}

core::Result<void> list_users(const RestClient& api, Context& ctx) {
  auto items = api.list_all("/users");
  if (!items) return items.error();
  if (print_json_if(ctx, boost::json::object{{"items", *items}})) return {};
  Table t({"USERNAME", "ROLE", "NAME", "EMAIL", "STATUS", "CREATED"});
  for (const auto& u : *items) {
    t.add({cell(u, "username"), cell(u, "role"), cell(u, "display_name"), cell(u, "email"),
           user_status(u), human_time(str_field(u, "created_at"))});
  }
  *ctx.out << t.render();
  return {};
}

/// The flags of `openstation users create`.
struct CreateFlags {
  std::string username;
  std::string role = "user";
  std::string display_name;
  std::string email;
};

/// A subcommand USER that POSTs to /users/{id}/<action> and reports the user it gets back.
void add_user_action(CLI::App* users, Context& ctx, const std::string& name,
                     const std::string& action, const std::string& description,
                     const std::string& done) {
  auto id = std::make_shared<std::string>();
  add_client_command(users, name, description, ctx,
                     [id, &ctx, action, done](const RestClient& api) -> core::Result<void> {
                       auto u = api.post("/users/" + url_encode(*id) + "/" + action);
                       if (!u) return u.error();
                       if (print_json_if(ctx, *u)) return {};
                       *ctx.out << "User " << *id << " " << done << ".\n";
                       return {};
                     })
      ->add_option("user", *id, "User name or id")
      ->required();
}

/// Prints the per-line problems of a refused import ({"errors": [{"line", "code", "field",
/// "message"}]}) on stderr.
void print_import_errors(const boost::json::value& body, const std::string& file, Context& ctx) {
  const auto* o = body.if_object();
  const auto* errors = o ? o->if_contains("errors") : nullptr;
  if (!errors || !errors->is_array() || errors->get_array().empty()) return;
  *ctx.err << "Nothing was imported. Problems in " << file << ":\n";
  for (const auto& e : errors->get_array()) {
    const std::string line = cell(e, "line");
    std::string message = str_field(e, "message");
    if (message.empty()) message = e.is_string() ? std::string(e.get_string()) : serialize(e);
    *ctx.err << "  " << (line == "-" ? "" : "line " + line + ": ") << message << "\n";
  }
}

core::Result<void> import_users(const RestClient& api, Context& ctx, const std::string& file) {
  std::ifstream in;
  auto opened = core::open_for_read(file, in);
  if (!opened) {
    core::Error e = opened.error();
    e.field = "file";
    return e;
  }
  std::ostringstream text;
  text << in.rdbuf();
  auto res = api.raw("POST", "/users/import", text.str(), "text/csv");
  if (!res) return res.error();
  boost::system::error_code ec;
  const auto body = boost::json::parse(res->body, ec);
  if (res->status < 200 || res->status > 299) {
    if (!ec && !ctx.json) print_import_errors(body, file, ctx);
    return error_from_response(res->status, res->body);
  }
  if (ec) {
    return core::Error(core::Errc::unavailable, "cli.bad_reply",
                       "the server's answer to the import is not JSON");
  }
  if (print_json_if(ctx, body)) return {};
  const auto* o = body.if_object();
  const auto* created = o ? o->if_contains("created") : nullptr;
  Table t({"USERNAME", "PASSWORD"});
  std::size_t n = 0;
  if (created && created->is_array()) {
    for (const auto& c : created->get_array()) {
      t.add({cell(c, "username"), cell(c, "password")});
      ++n;
    }
  }
  *ctx.out << n << " user" << (n == 1 ? "" : "s")
           << " created. Their passwords are shown once; each must change it at first login:\n"
           << t.render();
  return {};
}

}  // namespace

void register_users_commands(CLI::App& root, Context& ctx) {
  CLI::App* users =
      root.add_subcommand("users", "Users (admin): create, disable, reset passwords, import CSV");
  users->require_subcommand(1);

  add_client_command(users, "list", "List the users", ctx,
                     [&ctx](const RestClient& api) { return list_users(api, ctx); });

  auto cf = std::make_shared<CreateFlags>();
  CLI::App* create = add_client_command(
      users, "create", "Create a user with a generated password (shown once)", ctx,
      [cf, &ctx](const RestClient& api) -> core::Result<void> {
        boost::json::object body{{"username", cf->username}, {"role", cf->role}};
        if (!cf->display_name.empty()) body["display_name"] = cf->display_name;
        if (!cf->email.empty()) body["email"] = cf->email;
        auto r = api.post("/users", body);
        if (!r) return r.error();
        if (print_json_if(ctx, *r)) return {};
        const auto* o = r->if_object();
        const auto* user = o ? o->if_contains("user") : nullptr;
        *ctx.out << "User " << (user ? cell(*user, "username") : cf->username) << " ("
                 << (user ? cell(*user, "role") : cf->role) << ") created.\n"
                 << "Password (shown once; it must be changed at first login): "
                 << str_field(*r, "password") << "\n";
        return {};
      });
  create->add_option("username", cf->username, "The new user's login name")->required();
  create->add_option("--role", cf->role, "user or admin (default: user)");
  create->add_option("--display-name", cf->display_name, "The name people see");
  create->add_option("--email", cf->email, "E-mail address for notifications");

  add_user_action(users, ctx, "disable", "disable",
                  "Disable a user: logins, sessions and API keys stop working", "disabled");
  add_user_action(users, ctx, "enable", "enable", "Enable a disabled user again", "enabled");

  auto reset_id = std::make_shared<std::string>();
  add_client_command(
      users, "reset-password", "Give a user a new generated password (shown once)", ctx,
      [reset_id, &ctx](const RestClient& api) -> core::Result<void> {
        auto r = api.post("/users/" + url_encode(*reset_id) + "/reset-password");
        if (!r) return r.error();
        if (print_json_if(ctx, *r)) return {};
        *ctx.out << "New password for " << *reset_id
                 << " (shown once; it must be changed at next login): " << str_field(*r, "password")
                 << "\n";
        return {};
      })
      ->add_option("user", *reset_id, "User name or id")
      ->required();

  auto delete_id = std::make_shared<std::string>();
  add_client_command(
      users, "delete", "Delete a user (the last admin cannot be deleted)", ctx,
      [delete_id, &ctx](const RestClient& api) -> core::Result<void> {
        auto r = api.del("/users/" + url_encode(*delete_id));
        if (!r) return r.error();
        if (print_json_if(
                ctx, r->is_null() ? boost::json::value(boost::json::object{{"deleted", *delete_id}})
                                  : *r)) {
          return {};
        }
        *ctx.out << "User " << *delete_id << " deleted.\n";
        return {};
      })
      ->add_option("user", *delete_id, "User name or id")
      ->required();

  auto file = std::make_shared<std::string>();
  add_client_command(users, "import",
                     "Create users from a CSV file (header: username,role,display_name,email); "
                     "all or nothing",
                     ctx,
                     [file, &ctx](const RestClient& api) { return import_users(api, ctx, *file); })
      ->add_option("file", *file, "The CSV file")
      ->required();
}

}  // namespace openstation::cli
