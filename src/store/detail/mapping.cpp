// The table mappings of every record type and the filter → WHERE conversions.

#include "store/detail/mapping.hpp"

#include <boost/json.hpp>

#include <cstdlib>

namespace openstation::store::detail {

bool Codec<double>::decode(const Value& v, double& out) {
  if (const auto* d = std::get_if<double>(&v)) {
    out = *d;
    return true;
  }
  if (const auto* n = std::get_if<std::int64_t>(&v)) {
    out = static_cast<double>(*n);
    return true;
  }
  if (const auto* s = std::get_if<std::string>(&v)) {
    char* end = nullptr;
    out = std::strtod(s->c_str(), &end);
    return end != s->c_str() && *end == '\0';
  }
  return false;
}

Value Codec<std::vector<std::string>>::encode(const std::vector<std::string>& list) {
  boost::json::array a;
  for (const auto& s : list) a.emplace_back(s);
  return boost::json::serialize(a);
}

bool Codec<std::vector<std::string>>::decode(const Value& v, std::vector<std::string>& out) {
  const auto* s = std::get_if<std::string>(&v);
  if (s == nullptr) return false;
  boost::system::error_code ec;
  auto parsed = boost::json::parse(*s, ec);
  if (ec || !parsed.is_array()) return false;
  out.clear();
  for (const auto& item : parsed.get_array()) {
    if (!item.is_string()) return false;
    out.emplace_back(item.get_string());
  }
  return true;
}

Value Codec<std::map<std::string, std::string>>::encode(
    const std::map<std::string, std::string>& map) {
  boost::json::object o;
  for (const auto& [k, val] : map) o[k] = val;
  return boost::json::serialize(o);
}

bool Codec<std::map<std::string, std::string>>::decode(const Value& v,
                                                       std::map<std::string, std::string>& out) {
  const auto* s = std::get_if<std::string>(&v);
  if (s == nullptr) return false;
  boost::system::error_code ec;
  auto parsed = boost::json::parse(*s, ec);
  if (ec || !parsed.is_object()) return false;
  out.clear();
  for (const auto& [k, item] : parsed.get_object()) {
    if (!item.is_string()) return false;
    out.emplace(std::string(k), std::string(item.get_string()));
  }
  return true;
}

std::string like_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '%' || c == '_' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

namespace {

/// Appends "column <op> ?" when the filter member is set.
template <class M>
void add(Conditions& out, std::string_view column, std::string_view op, const std::optional<M>& v) {
  if (v) out.push_back({std::string(column) + " " + std::string(op) + " ?", {param(*v)}});
}

/// Appends "column IS [NOT] NULL" when the filter member is set.
void add_null_check(Conditions& out, std::string_view column, const std::optional<bool>& not_null) {
  if (not_null)
    out.push_back({std::string(column) + (*not_null ? " IS NOT NULL" : " IS NULL"), {}});
}

}  // namespace

const Mapping<User>& mapping_of(std::type_identity<User>) {
  static const Mapping<User> m{
      .table = "users",
      .entity = "user",
      .id_prefix = "usr",
      .fields = {field("id", &User::id), field("username", &User::username),
                 field("display_name", &User::display_name), field("email", &User::email),
                 field("role", &User::role), field("password_hash", &User::password_hash),
                 field("must_change_password", &User::must_change_password),
                 field("disabled", &User::disabled), field("created_at", &User::created_at),
                 field("updated_at", &User::updated_at)},
      .name_column = "username",
      .unique_columns = {"username"},
      .created = &User::created_at,
      .updated = &User::updated_at,
  };
  return m;
}

const Mapping<Session>& mapping_of(std::type_identity<Session>) {
  static const Mapping<Session> m{
      .table = "sessions",
      .entity = "session",
      .fields = {field("token_hash", &Session::token_hash), field("user_id", &Session::user_id),
                 field("csrf_token_hash", &Session::csrf_token_hash),
                 field("created_at", &Session::created_at),
                 field("expires_at", &Session::expires_at),
                 field("last_seen_at", &Session::last_seen_at), field("ip", &Session::ip)},
      .created = &Session::created_at,
      .references = {{"user_id", "users", "user", {}}},
  };
  return m;
}

const Mapping<ApiKey>& mapping_of(std::type_identity<ApiKey>) {
  static const Mapping<ApiKey> m{
      .table = "api_keys",
      .entity = "API key",
      .id_prefix = "key",
      .fields = {field("id", &ApiKey::id), field("user_id", &ApiKey::user_id),
                 field("name", &ApiKey::name), field("prefix", &ApiKey::prefix),
                 field("secret_hash", &ApiKey::secret_hash),
                 field("created_at", &ApiKey::created_at),
                 field("last_used_at", &ApiKey::last_used_at),
                 field("expires_at", &ApiKey::expires_at), field("revoked_at", &ApiKey::revoked_at),
                 field("allowed_models", &ApiKey::allowed_models)},
      .name_column = "prefix",
      .unique_columns = {"prefix"},
      .created = &ApiKey::created_at,
      .references = {{"user_id", "users", "user", {}}},
  };
  return m;
}

const Mapping<Node>& mapping_of(std::type_identity<Node>) {
  static const Mapping<Node> m{
      .table = "nodes",
      .entity = "node",
      .id_prefix = "node",
      .fields = {field("id", &Node::id), field("name", &Node::name),
                 field("address", &Node::address), field("labels", &Node::labels),
                 field("status", &Node::status), field("status_reason", &Node::status_reason),
                 field("token_hash", &Node::token_hash),
                 field("inventory_json", &Node::inventory_json),
                 field("last_heartbeat_at", &Node::last_heartbeat_at),
                 field("created_at", &Node::created_at), field("updated_at", &Node::updated_at)},
      .name_column = "name",
      .unique_columns = {"name", "token_hash"},
      .created = &Node::created_at,
      .updated = &Node::updated_at,
  };
  return m;
}

const Mapping<JoinToken>& mapping_of(std::type_identity<JoinToken>) {
  static const Mapping<JoinToken> m{
      .table = "join_tokens",
      .entity = "join token",
      .id_prefix = "jt",
      .fields = {field("id", &JoinToken::id), field("token_hash", &JoinToken::token_hash),
                 field("created_at", &JoinToken::created_at),
                 field("expires_at", &JoinToken::expires_at), field("used", &JoinToken::used)},
      .name_column = "token_hash",
      .unique_columns = {"token_hash"},
      .created = &JoinToken::created_at,
  };
  return m;
}

const Mapping<Model>& mapping_of(std::type_identity<Model>) {
  static const Mapping<Model> m{
      .table = "models",
      .entity = "model",
      .id_prefix = "mdl",
      .fields = {field("id", &Model::id), field("name", &Model::name),
                 field("source", &Model::source), field("repo", &Model::repo),
                 field("path", &Model::path), field("node_id", &Model::node_id),
                 field("format", &Model::format), field("size_bytes", &Model::size_bytes),
                 field("status", &Model::status), field("status_reason", &Model::status_reason),
                 field("meta_json", &Model::meta_json), field("created_at", &Model::created_at),
                 field("updated_at", &Model::updated_at)},
      .name_column = "name",
      .unique_columns = {"name"},
      .created = &Model::created_at,
      .updated = &Model::updated_at,
      .referrers = {{"model_id", "services", "service", "name"}},
  };
  return m;
}

const Mapping<Service>& mapping_of(std::type_identity<Service>) {
  static const Mapping<Service> m{
      .table = "services",
      .entity = "service",
      .id_prefix = "svc",
      .fields = {field("id", &Service::id), field("name", &Service::name),
                 field("model_id", &Service::model_id), field("engine", &Service::engine),
                 field("engine_version", &Service::engine_version),
                 field("extra_args", &Service::extra_args), field("placement", &Service::placement),
                 field("replicas", &Service::replicas), field("spec_json", &Service::spec_json),
                 field("generation", &Service::generation),
                 field("created_at", &Service::created_at),
                 field("updated_at", &Service::updated_at)},
      .name_column = "name",
      .unique_columns = {"name"},
      .version_column = "generation",
      .created = &Service::created_at,
      .updated = &Service::updated_at,
      .references = {{"model_id", "models", "model", {}}},
  };
  return m;
}

const Mapping<Instance>& mapping_of(std::type_identity<Instance>) {
  static const Mapping<Instance> m{
      .table = "instances",
      .entity = "instance",
      .id_prefix = "inst",
      .fields = {field("id", &Instance::id), field("service_id", &Instance::service_id),
                 field("state", &Instance::state), field("state_reason", &Instance::state_reason),
                 field("node_ids", &Instance::node_ids),
                 field("assignment_json", &Instance::assignment_json),
                 field("port", &Instance::port), field("pid", &Instance::pid),
                 field("restarts", &Instance::restarts), field("revision", &Instance::revision),
                 field("created_at", &Instance::created_at),
                 field("updated_at", &Instance::updated_at)},
      .version_column = "revision",
      .created = &Instance::created_at,
      .updated = &Instance::updated_at,
      .references = {{"service_id", "services", "service", {}}},
  };
  return m;
}

const Mapping<Download>& mapping_of(std::type_identity<Download>) {
  static const Mapping<Download> m{
      .table = "downloads",
      .entity = "download",
      .id_prefix = "dl",
      .fields = {field("id", &Download::id), field("model_id", &Download::model_id),
                 field("state", &Download::state), field("position", &Download::position),
                 field("bytes_total", &Download::bytes_total),
                 field("bytes_done", &Download::bytes_done),
                 field("files_total", &Download::files_total),
                 field("files_done", &Download::files_done), field("error", &Download::error),
                 field("log_path", &Download::log_path), field("started_at", &Download::started_at),
                 field("finished_at", &Download::finished_at),
                 field("created_at", &Download::created_at),
                 field("updated_at", &Download::updated_at)},
      .created = &Download::created_at,
      .updated = &Download::updated_at,
      .references = {{"model_id", "models", "model", {}}},
  };
  return m;
}

const Mapping<Setting>& mapping_of(std::type_identity<Setting>) {
  static const Mapping<Setting> m{
      .table = "settings",
      .entity = "setting",
      .fields = {field("key", &Setting::key), field("value", &Setting::value),
                 field("updated_at", &Setting::updated_at)},
      .updated = &Setting::updated_at,
  };
  return m;
}

const Mapping<Event>& mapping_of(std::type_identity<Event>) {
  static const Mapping<Event> m{
      .table = "events",
      .entity = "event",
      .serial_id = true,
      .fields = {field("id", &Event::id), field("time", &Event::time),
                 field("actor", &Event::actor), field("action", &Event::action),
                 field("target_kind", &Event::target_kind), field("target_id", &Event::target_id),
                 field("detail_json", &Event::detail_json)},
      .time_column = "time",
      .created = &Event::time,
  };
  return m;
}

const Mapping<CallLog>& mapping_of(std::type_identity<CallLog>) {
  static const Mapping<CallLog> m{
      .table = "call_logs",
      .entity = "call log",
      .serial_id = true,
      .fields = {field("id", &CallLog::id), field("time", &CallLog::time),
                 field("user_id", &CallLog::user_id), field("key_id", &CallLog::key_id),
                 field("service", &CallLog::service), field("instance_id", &CallLog::instance_id),
                 field("status", &CallLog::status), field("duration_ms", &CallLog::duration_ms),
                 field("prompt_tokens", &CallLog::prompt_tokens),
                 field("completion_tokens", &CallLog::completion_tokens),
                 field("ttft_ms", &CallLog::ttft_ms),
                 field("tokens_per_second", &CallLog::tokens_per_second),
                 field("error", &CallLog::error)},
      .time_column = "time",
      .created = &CallLog::time,
  };
  return m;
}

Conditions conditions(const UserFilter& f) {
  Conditions c;
  add(c, "role", "=", f.role);
  add(c, "disabled", "=", f.disabled);
  return c;
}

Conditions conditions(const SessionFilter& f) {
  Conditions c;
  add(c, "user_id", "=", f.user_id);
  add(c, "expires_at", "<", f.expires_before);
  return c;
}

Conditions conditions(const ApiKeyFilter& f) {
  Conditions c;
  add(c, "user_id", "=", f.user_id);
  add_null_check(c, "revoked_at", f.revoked);
  return c;
}

Conditions conditions(const NodeFilter& f) {
  Conditions c;
  add(c, "status", "=", f.status);
  add(c, "token_hash", "=", f.token_hash);
  return c;
}

Conditions conditions(const JoinTokenFilter& f) {
  Conditions c;
  add(c, "used", "=", f.used);
  add(c, "expires_at", "<", f.expires_before);
  return c;
}

Conditions conditions(const ModelFilter& f) {
  Conditions c;
  add(c, "source", "=", f.source);
  add(c, "status", "=", f.status);
  add(c, "node_id", "=", f.node_id);
  return c;
}

Conditions conditions(const ServiceFilter& f) {
  Conditions c;
  add(c, "model_id", "=", f.model_id);
  return c;
}

Conditions conditions(const InstanceFilter& f) {
  Conditions c;
  add(c, "service_id", "=", f.service_id);
  add(c, "state", "=", f.state);
  if (f.node_id) {
    // node_ids is a JSON array of strings; matching the quoted JSON string makes it exact.
    const std::string quoted = boost::json::serialize(boost::json::value(*f.node_id));
    c.push_back({"node_ids LIKE ? ESCAPE '\\'", {"%" + like_escape(quoted) + "%"}});
  }
  return c;
}

Conditions conditions(const DownloadFilter& f) {
  Conditions c;
  add(c, "model_id", "=", f.model_id);
  add(c, "state", "=", f.state);
  return c;
}

Conditions conditions(const SettingFilter& f) {
  Conditions c;
  if (f.key_prefix) c.push_back({"key LIKE ? ESCAPE '\\'", {like_escape(*f.key_prefix) + "%"}});
  return c;
}

Conditions conditions(const EventFilter& f) {
  Conditions c;
  add(c, "actor", "=", f.actor);
  add(c, "action", "=", f.action);
  add(c, "target_kind", "=", f.target_kind);
  add(c, "target_id", "=", f.target_id);
  add(c, "time", ">=", f.since);
  add(c, "time", "<", f.until);
  return c;
}

Conditions conditions(const CallLogFilter& f) {
  Conditions c;
  add(c, "service", "=", f.service);
  add(c, "user_id", "=", f.user_id);
  add(c, "key_id", "=", f.key_id);
  add(c, "time", ">=", f.since);
  add(c, "time", "<", f.until);
  return c;
}

}  // namespace openstation::store::detail
