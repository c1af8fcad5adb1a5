// openstation keys list|create|revoke: API keys for the OpenAI-compatible endpoint, through the
// management API.
#include "cli/client_command.hpp"
#include "cli/commands.hpp"
#include "cli/context.hpp"
#include "cli/rest_client.hpp"
#include "cli/table.hpp"

#include <CLI/CLI.hpp>
#include <boost/json.hpp>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>
#include <ostream>

namespace openstation::cli {
namespace {

std::string key_status(const boost::json::value& k) {
  if (!str_field(k, "revoked_at").empty()) return "revoked";
  const auto expires = parse_rfc3339(str_field(k, "expires_at"));
  if (expires && *expires <= std::chrono::system_clock::now()) return "expired";
  return "active";
}

/// "30d", "12h", "90m" from now, or an RFC 3339 time, as the API's RFC 3339 UTC text. Error
/// "cli.bad_expiry" (invalid_argument, field "--expires").
core::Result<std::string> expiry_time(const std::string& text) {
  if (parse_rfc3339(text)) return text;
  std::int64_t n = 0;
  std::size_t i = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9' && n < 100000000) {
    n = n * 10 + (text[i] - '0');
    ++i;
  }
  const std::string unit = text.substr(i);
  std::int64_t seconds = 0;
  if (i > 0 && n > 0) {
    if (unit == "d") seconds = n * 86400;
    if (unit == "h") seconds = n * 3600;
    if (unit == "m") seconds = n * 60;
  }
  if (seconds == 0) {
    return core::invalid("cli.bad_expiry",
                         "--expires " + text +
                             ": give a duration like 30d, 12h or 90m, or a time like "
                             "2027-01-31T00:00:00Z",
                         "--expires");
  }
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now()) +
                        static_cast<std::time_t>(seconds);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return std::string(buf);
}

core::Result<void> list_keys(const RestClient& api, Context& ctx, const std::string& user) {
  std::string path = "/keys";
  if (!user.empty()) path += "?user=" + url_encode(user);
  auto items = api.list_all(path);
  if (!items) return items.error();
  if (print_json_if(ctx, boost::json::object{{"items", *items}})) return {};
  if (items->empty()) {
    *ctx.out << "No API keys. Create one: `openstation keys create --name NAME`.\n";
    return {};
  }
  Table t({"ID", "NAME", "PREFIX", "MODELS", "CREATED", "LAST USED", "EXPIRES", "STATUS"});
  for (const auto& k : *items) {
    const std::string models = cell(k, "allowed_models");
    const std::string last_used = str_field(k, "last_used_at");
    const std::string expires = str_field(k, "expires_at");
    t.add({cell(k, "id"), cell(k, "name"), cell(k, "prefix"), models == "-" ? "all" : models,
           human_time(str_field(k, "created_at")),
           last_used.empty() ? "never" : human_time(last_used),
           expires.empty() ? "never" : human_time(expires), key_status(k)});
  }
  *ctx.out << t.render();
  return {};
}

/// The flags of `openstation keys create`.
struct CreateFlags {
  std::string name;
  std::string expires;
  std::vector<std::string> models;
};

core::Result<void> create_key(const RestClient& api, Context& ctx, const CreateFlags& flags) {
  boost::json::object body{{"name", flags.name}};
  if (!flags.expires.empty()) {
    auto at = expiry_time(flags.expires);
    if (!at) return at.error();
    body["expires_at"] = *at;
  }
  if (!flags.models.empty()) {
    boost::json::array models;
    for (const auto& m : flags.models) models.emplace_back(m);
    body["allowed_models"] = std::move(models);
  }
  auto r = api.post("/keys", body);
  if (!r) return r.error();
  if (print_json_if(ctx, *r)) return {};
  const auto* o = r->if_object();
  const auto* key = o ? o->if_contains("api_key") : nullptr;
  *ctx.out << "API key " << (key ? cell(*key, "name") : flags.name) << " created";
  if (key && !str_field(*key, "id").empty()) *ctx.out << " (id " << str_field(*key, "id") << ")";
  *ctx.out << ". Copy it now, it is not shown again:\n  " << str_field(*r, "key") << "\n";
  if (key && !str_field(*key, "expires_at").empty()) {
    *ctx.out << "It expires " << human_time(str_field(*key, "expires_at")) << " ("
             << str_field(*key, "expires_at") << ").\n";
  }
  return {};
}

}  // namespace

void register_keys_commands(CLI::App& root, Context& ctx) {
  CLI::App* keys = root.add_subcommand(
      "keys", "API keys for the OpenAI-compatible endpoint (port 8080): list, create, revoke");
  keys->require_subcommand(1);

  auto user = std::make_shared<std::string>();
  add_client_command(keys, "list", "List your API keys (admins: anyone's with --user)", ctx,
                     [user, &ctx](const RestClient& api) { return list_keys(api, ctx, *user); })
      ->add_option("--user", *user, "Another user's keys (admin; name or id)");

  auto cf = std::make_shared<CreateFlags>();
  CLI::App* create =
      add_client_command(keys, "create", "Create an API key (the key is shown once)", ctx,
                         [cf, &ctx](const RestClient& api) { return create_key(api, ctx, *cf); });
  create->add_option("--name", cf->name, "A name to recognise the key by")->required();
  create->add_option("--expires", cf->expires,
                     "Expiry: a duration from now (30d, 12h, 90m) or an RFC 3339 time (default: "
                     "never)");
  create->add_option("--model", cf->models,
                     "Allow only this model (service name); repeat for several (default: all)");

  auto revoke_id = std::make_shared<std::string>();
  add_client_command(
      keys, "revoke", "Revoke an API key: requests with it are refused at once", ctx,
      [revoke_id, &ctx](const RestClient& api) -> core::Result<void> {
        auto r = api.del("/keys/" + url_encode(*revoke_id));
        if (!r) return r.error();
        if (print_json_if(
                ctx, r->is_null() ? boost::json::value(boost::json::object{{"revoked", *revoke_id}})
                                  : *r)) {
          return {};
        }
        *ctx.out << "API key " << *revoke_id << " revoked.\n";
        return {};
      })
      ->add_option("key", *revoke_id, "Key id")
      ->required();
}

}  // namespace openstation::cli
