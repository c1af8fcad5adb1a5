// The one translation unit that includes toml++ (it is heavy): reading the file lives here.
#include "config/load.hpp"

#include "config/detail/schema.hpp"
#include "config/values.hpp"
#include "core/paths.hpp"
#include "core/strings.hpp"
#include "core/version.hpp"

#include <toml++/toml.h>

#include <unistd.h>

#include <cctype>
#include <fstream>
#include <set>
#include <sstream>

extern char** environ;

namespace openstation::config {

namespace {

using detail::Field;
using detail::Kind;
using detail::Raw;

constexpr std::string_view kEnvPrefix = "OPENSTATION_";
constexpr std::uint64_t kMaxFileBytes = 4u << 20;

std::string location(const std::filesystem::path& file, const toml::source_region& r) {
  return file.string() + ":" + std::to_string(r.begin.line) + ":" + std::to_string(r.begin.column);
}

std::string_view toml_type_name(toml::node_type t) {
  switch (t) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    default: return "nothing";
  }
}

core::Error unknown_key(std::string code, std::string_view where, const std::string& key,
                        std::string_view name, const std::vector<std::string>& candidates,
                        std::string_view prefix) {
  std::string msg = std::string(where) + ": unknown key \"" + key + "\"";
  const std::string near = core::closest(name, candidates);
  if (!near.empty())
    msg += "; did you mean \"" + std::string(prefix) + near + "\"?";
  else
    msg += " (known: " + core::join(candidates) + ")";
  return core::invalid(std::move(code), msg, key);
}

/// A TOML value as a Raw, or an error naming its location.
core::Result<Raw> raw_from_node(const toml::node& n, const std::string& key,
                                const std::string& where, Kind kind) {
  auto wrong = [&](std::string what) {
    return core::invalid("config.wrong_type", where + ": " + key + ": " + what, key);
  };
  switch (n.type()) {
    case toml::node_type::string: return Raw(std::string(n.as_string()->get()));
    case toml::node_type::integer: return Raw(n.as_integer()->get());
    case toml::node_type::boolean: return Raw(n.as_boolean()->get());
    case toml::node_type::array: {
      std::vector<std::string> out;
      std::size_t i = 0;
      for (const auto& item : *n.as_array()) {
        if (!item.is_string())
          return wrong("expected an array of strings, element " + std::to_string(i) + " is " +
                       std::string(toml_type_name(item.type())));
        out.emplace_back(item.as_string()->get());
        ++i;
      }
      return Raw(std::move(out));
    }
    case toml::node_type::table: {
      std::map<std::string, std::string> out;
      for (const auto& [k, v] : *n.as_table()) {
        if (!v.is_string())
          return wrong("expected a table of strings, \"" + std::string(k.str()) + "\" is " +
                       std::string(toml_type_name(v.type())));
        out[std::string(k.str())] = std::string(v.as_string()->get());
      }
      return Raw(std::move(out));
    }
    default: {
      // Let assign() word the expectation; a float or date matches no kind.
      (void)kind;
      return wrong("got " + std::string(toml_type_name(n.type())) + ", which no key takes here");
    }
  }
}

bool is_path_kind(const Field& f) {
  return f.kind == Kind::path;
}

/// Applies one value and records its source.
core::Result<void> apply(const Field& f, Config& c, const Raw& raw, const std::string& where) {
  auto r = detail::assign(f, c, raw, where);
  if (!r) return r;
  c.sources[f.key] = where;
  return {};
}

/// Makes a relative path from a file absolute against the file's directory.
void resolve_path(const Field& f, Config& c, const std::filesystem::path& base) {
  const detail::Target t = f.target(c);
  if (auto* p = std::get_if<std::filesystem::path*>(&t)) {
    if (!(*p)->empty() && (*p)->is_relative()) **p = (base / **p).lexically_normal();
  } else if (auto* s = std::get_if<std::string*>(&t)) {
    std::filesystem::path v(**s);
    if (!v.empty() && v.is_relative()) **s = (base / v).lexically_normal().string();
  }
}

core::Result<void> apply_file_value(const Field& f, Config& c, const toml::node& n,
                                    const std::filesystem::path& file) {
  const std::string where = location(file, n.source());
  auto raw = raw_from_node(n, f.key, where, f.kind);
  if (!raw) return raw.error();
  if (auto r = apply(f, c, *raw, where); !r) return r;
  if (is_path_kind(f)) resolve_path(f, c, file.parent_path());
  return {};
}

core::Result<void> apply_engines(const toml::node& node, Config& c,
                                 const std::filesystem::path& file) {
  const auto* engines = node.as_table();
  if (!engines)
    return core::invalid("config.wrong_type",
                         location(file, node.source()) +
                             ": engines: expected a table of engine "
                             "tables ([engines.vllm]), got " +
                             std::string(toml_type_name(node.type())),
                         "engines");
  for (const auto& [name_key, table_node] : *engines) {
    const std::string name(name_key.str());
    if (auto ok = detail::check_engine_name(name, location(file, name_key.source())); !ok)
      return ok.error();
    const auto* table = table_node.as_table();
    if (!table)
      return core::invalid("config.wrong_type",
                           location(file, table_node.source()) + ": engines." + name +
                               ": expected a table, got " +
                               std::string(toml_type_name(table_node.type())),
                           "engines." + name);
    if (!c.engines.count(name)) c.engines[name] = EngineConfig{};
    for (const auto& [k, v] : *table) {
      const std::string key = "engines." + name + "." + std::string(k.str());
      Field storage;
      const Field* f = detail::find_field(key, storage);
      if (!f)
        return unknown_key("config.unknown_key", location(file, k.source()), key, k.str(),
                           detail::engine_keys(), "engines." + name + ".");
      if (auto r = apply_file_value(*f, c, v, file); !r) return r;
    }
  }
  return {};
}

core::Result<void> apply_file(const std::filesystem::path& file, Config& c) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(file, ec);
  if (ec)
    return core::io_error("config.read_failed",
                          "cannot read the config file " + file.string() + ": " + ec.message(),
                          "config");
  if (size > kMaxFileBytes)
    return core::invalid("config.read_failed",
                         "the config file " + file.string() + " is " + std::to_string(size) +
                             " bytes; a config file is at most 4 MiB",
                         "config");
  std::ifstream in(file, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in && !in.eof())
    return core::io_error("config.read_failed", "cannot read the config file " + file.string(),
                          "config");

  toml::table root;
  try {
    root = toml::parse(text.str(), file.string());
  } catch (const toml::parse_error& e) {
    return core::parse_error(
        "config.parse_error",
        location(file, e.source()) + ": invalid TOML: " + std::string(e.description()), "config");
  }
  c.config_file = file;

  // Top-level keys first (data_dir may come before the sections in any order; TOML keeps
  // insertion order, so walking once is fine).
  for (const auto& [k, v] : root) {
    const std::string name(k.str());
    if (name == "engines") {
      if (auto r = apply_engines(v, c, file); !r) return r;
      continue;
    }
    const auto& top = detail::top_level_names();
    if (std::find(top.begin(), top.end(), name) == top.end())
      return unknown_key("config.unknown_key", location(file, k.source()), name, name, top, "");
    if (!v.is_table()) {
      Field storage;
      const Field* f = detail::find_field(name, storage);
      if (!f)
        return core::invalid("config.wrong_type",
                             location(file, v.source()) + ": " + name + ": expected a table ([" +
                                 name + "]), got " + std::string(toml_type_name(v.type())),
                             name);
      if (auto r = apply_file_value(*f, c, v, file); !r) return r;
      continue;
    }
    Field storage;
    if (detail::find_field(name, storage))
      return core::invalid(
          "config.wrong_type",
          location(file, v.source()) + ": " + name + ": expected a string, got a table", name);
    for (const auto& [sk, sv] : *v.as_table()) {
      const std::string key = name + "." + std::string(sk.str());
      const Field* f = detail::find_field(key, storage);
      if (!f)
        return unknown_key("config.unknown_key", location(file, sk.source()), key, sk.str(),
                           detail::section_keys(name), name + ".");
      if (auto r = apply_file_value(*f, c, sv, file); !r) return r;
    }
  }
  return {};
}

std::string normalized_engine(std::string_view name) {
  std::string out;
  for (char ch : name)
    out.push_back(ch == '.' || ch == '-'
                      ? '_'
                      : static_cast<char>(std::toupper(static_cast<unsigned char>(ch))));
  return out;
}

bool ignored_env(std::string_view name, const LoadOptions& o) {
  if (name == "OPENSTATION_CONFIG") return true;
  if (core::starts_with(name, "OPENSTATION_TEST_") || core::starts_with(name, "OPENSTATION_FAKE_"))
    return true;
  return std::find(o.ignored_env.begin(), o.ignored_env.end(), name) != o.ignored_env.end();
}

/// The field an OPENSTATION_* variable names, or nullptr.
const Field* field_for_env(const std::string& var, const Config& c, Field& storage) {
  for (const auto& f : detail::fixed_fields())
    if (detail::env_name(f.key) == var) return &f;
  const std::string prefix = "OPENSTATION_ENGINES_";
  if (!core::starts_with(var, prefix)) return nullptr;
  const std::string rest = var.substr(prefix.size());
  for (const auto& sub : detail::engine_keys()) {
    const std::string suffix = "_" + normalized_engine(sub);
    if (rest.size() <= suffix.size() ||
        rest.compare(rest.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    const std::string token = rest.substr(0, rest.size() - suffix.size());
    std::string name;
    for (const auto& [existing, e] : c.engines)
      if (normalized_engine(existing) == token) name = existing;
    if (name.empty()) name = core::to_lower(token);
    return detail::find_field("engines." + name + "." + sub, storage);
  }
  return nullptr;
}

core::Result<void> apply_env(const LoadOptions& o, Config& c) {
  for (const auto& [var, value] : o.env) {
    if (!core::starts_with(var, kEnvPrefix) || value.empty() || ignored_env(var, o)) continue;
    const std::string where = "env " + var;
    Field storage;
    const Field* f = field_for_env(var, c, storage);
    if (!f) {
      std::vector<std::string> names;
      for (const auto& fld : detail::fixed_fields()) names.push_back(detail::env_name(fld.key));
      for (const auto& [name, e] : c.engines)
        for (const auto& fld : detail::engine_fields(name))
          names.push_back(detail::env_name(fld.key));
      std::string msg = "environment variable " + var + " names no setting";
      const std::string near = core::closest(var, names);
      if (!near.empty())
        msg += "; did you mean " + near + "?";
      else
        msg += " (see docs/configuration.md, or unset it)";
      return core::invalid("config.unknown_env", msg, var);
    }
    if (core::starts_with(f->key, "engines.")) {
      const std::string name = f->key.substr(8, f->key.rfind('.') - 8);
      if (auto ok = detail::check_engine_name(name, where); !ok) return ok.error();
    }
    auto raw = detail::raw_from_text(*f, value, where);
    if (!raw) return raw.error();
    if (auto r = apply(*f, c, *raw, where); !r) return r;
  }
  return {};
}

core::Result<void> apply_overrides(const LoadOptions& o, Config& c) {
  const std::string where = "command line";
  for (const auto& kv : o.overrides) {
    const auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0)
      return core::invalid("config.bad_override",
                           "command line: \"" + kv + "\" is not key=value (e.g. server.port=9443)",
                           kv);
    const std::string key = core::trim(std::string_view(kv).substr(0, eq));
    const std::string value = kv.substr(eq + 1);

    // engines.<name>.env.<VAR>=value sets one variable.
    if (core::starts_with(key, "engines.")) {
      const auto env_at = key.find(".env.", 8);
      if (env_at != std::string::npos && env_at > 8) {
        const std::string name = key.substr(8, env_at - 8);
        const std::string var = key.substr(env_at + 5);
        if (auto ok = detail::check_engine_name(name, where); !ok) return ok.error();
        if (var.empty() || var.find_first_of("= ") != std::string::npos)
          return core::invalid("config.bad_override",
                               "command line: " + key + ": not a variable name", key);
        c.engines[name].env[var] = value;
        c.sources["engines." + name + ".env"] = where;
        continue;
      }
    }

    Field storage;
    const Field* f = detail::find_field(key, storage);
    if (!f) {
      std::vector<std::string> keys;
      for (const auto& fld : detail::fixed_fields()) keys.push_back(fld.key);
      for (const auto& [name, e] : c.engines)
        for (const auto& fld : detail::engine_fields(name)) keys.push_back(fld.key);
      std::string msg = "command line: unknown key \"" + key + "\"";
      const std::string near = core::closest(key, keys);
      if (!near.empty()) msg += "; did you mean \"" + near + "\"?";
      return core::invalid("config.unknown_key", msg, key);
    }
    if (core::starts_with(f->key, "engines.")) {
      const std::string name = f->key.substr(8, f->key.rfind('.') - 8);
      if (auto ok = detail::check_engine_name(name, where); !ok) return ok.error();
    }
    auto raw = detail::raw_from_text(*f, value, where);
    if (!raw) return raw.error();
    if (auto r = apply(*f, c, *raw, where); !r) return r;
  }
  return {};
}

std::optional<std::string> env_value(const LoadOptions& o, const std::string& name) {
  auto it = o.env.find(name);
  if (it == o.env.end() || it->second.empty()) return std::nullopt;
  return it->second;
}

std::string source_of(const Config& c, const std::string& key) {
  auto it = c.sources.find(key);
  return it == c.sources.end() ? std::string("config") : it->second;
}

core::Error invalid_at(const Config& c, std::string code, const std::string& key,
                       const std::string& msg) {
  return core::invalid(std::move(code), source_of(c, key) + ": " + key + ": " + msg, key);
}

core::Result<void> check_tls(const Config& c, const std::string& section, bool on,
                             const std::string& cert, const std::string& key) {
  if (!on || cert.empty() == key.empty()) return {};
  const std::string given = cert.empty() ? section + ".key_file" : section + ".cert_file";
  const std::string missing = cert.empty() ? section + ".cert_file" : section + ".key_file";
  return core::invalid("config.tls_incomplete",
                       source_of(c, given) + ": " + section + ".tls is on and " + given +
                           " is set, but " + missing +
                           " is not: give both (a PEM certificate and its key), or neither for a "
                           "self-signed certificate in the data dir",
                       missing);
}

/// llama.cpp names its releases by build number: "b6100".
bool is_build_number(std::string_view v) {
  return v.size() > 1 && v[0] == 'b' &&
         v.substr(1).find_first_not_of("0123456789") == std::string_view::npos;
}

}  // namespace

core::Result<void> validate(const Config& c) {
  if (c.data_dir.empty()) return invalid_at(c, "config.bad_value", "data_dir", "must not be empty");

  if (auto r = check_tls(c, "server", c.server.tls, c.server.cert_file, c.server.key_file); !r)
    return r;
  if (auto r = check_tls(c, "gateway", c.gateway.tls, c.gateway.cert_file, c.gateway.key_file); !r)
    return r;

  const std::string& db = c.server.database;
  if (!db.empty()) {
    const auto sep = db.find("://");
    const std::string scheme = sep == std::string::npos ? "" : core::to_lower(db.substr(0, sep));
    const bool known = scheme == "postgresql" || scheme == "postgres" || scheme == "sqlite";
    if (!known || sep + 3 >= db.size())
      return invalid_at(c, "config.bad_database_url", "server.database",
                        "\"" + (known ? db : db.substr(0, std::min<std::size_t>(db.size(), 40))) +
                            "\" is not a database URL: leave it empty for SQLite in the data "
                            "dir, or write postgresql://user:password@host:5432/dbname or "
                            "sqlite:///path/to/openstation.db");
  }

  // Ports: the three services differ, and the agent's ranges hold none of them.
  struct Service {
    std::string key;
    std::uint16_t port;
  };
  const std::vector<Service> services{{"server.port", c.server.port},
                                      {"gateway.port", c.gateway.port},
                                      {"agent.port", c.agent.port}};
  for (std::size_t i = 0; i < services.size(); ++i)
    for (std::size_t j = i + 1; j < services.size(); ++j)
      if (services[i].port != 0 && services[i].port == services[j].port)
        return invalid_at(c, "config.port_conflict", services[j].key,
                          "port " + std::to_string(services[j].port) + " is also " +
                              services[i].key + "; give each service its own port");
  struct Range {
    std::string key;
    PortRange range;
  };
  const std::vector<Range> ranges{{"agent.engine_ports", c.agent.engine_ports},
                                  {"agent.ray_ports", c.agent.ray_ports}};
  for (const auto& r : ranges)
    for (const auto& s : services)
      if (s.port != 0 && r.range.contains(s.port))
        return invalid_at(c, "config.range_overlap", r.key,
                          std::to_string(r.range.first) + "-" + std::to_string(r.range.last) +
                              " contains " + s.key + " (" + std::to_string(s.port) +
                              "); move the range or the port");
  if (ranges[0].range.overlaps(ranges[1].range))
    return invalid_at(c, "config.range_overlap", "agent.ray_ports",
                      "overlaps agent.engine_ports; engine and Ray ports need separate ranges");

  if (!c.agent.server_fingerprint.empty()) {
    std::string hex;
    std::string_view fp = c.agent.server_fingerprint;
    if (core::to_lower(fp.substr(0, 7)) == "sha256:") fp.remove_prefix(7);
    bool ok = true;
    for (char ch : fp) {
      if (ch == ':') continue;
      if (!std::isxdigit(static_cast<unsigned char>(ch))) ok = false;
      hex += ch;
    }
    if (!ok || hex.size() != 64)
      return invalid_at(c, "config.bad_value", "agent.server_fingerprint",
                        "\"" + c.agent.server_fingerprint +
                            "\" is not a SHA-256 fingerprint: copy the one `openstation server` "
                            "prints at start (sha256:AB:CD:... with 32 hex pairs)");
  }
  // A bare number is seconds: "call_log_retention = 30" would delete logs as they are written.
  for (const auto& [key, value] :
       {std::pair{"server.call_log_retention", c.server.call_log_retention},
        std::pair{"server.event_retention", c.server.event_retention}}) {
    if (value.count() > 0 && value < std::chrono::hours(1)) {
      return invalid_at(c, "config.bad_value", key,
                        "is " + format_duration(value) +
                            ", under an hour: that would delete entries almost as they are "
                            "written; write days, e.g. \"30d\" (0 keeps them forever)");
    }
  }
  if (c.agent.restart_backoff_base > c.agent.restart_backoff_max)
    return invalid_at(c, "config.bad_value", "agent.restart_backoff_base",
                      "is above agent.restart_backoff_max");
  if (c.agent.crash_loop_threshold == 0)
    return invalid_at(c, "config.bad_value", "agent.crash_loop_threshold", "must be at least 1");
  if (c.agent.log_files == 0)
    return invalid_at(c, "config.bad_value", "agent.log_files", "must be at least 1");
  if (c.agent.log_max_bytes < 4096)
    return invalid_at(c, "config.bad_value", "agent.log_max_bytes", "must be at least 4KiB");

  const auto builtin = default_engines();
  for (const auto& [name, e] : c.engines) {
    const std::string p = "engines." + name + ".";
    if (e.command.empty() || e.command.front().empty())
      return invalid_at(c, "config.empty_command", p + "command",
                        "the engine's command is empty; give the argv prefix of its launch, e.g. "
                        "command = [\"vllm\"] or [\"/opt/llama.cpp/bin/llama-server\"]");
    if (auto it = builtin.find(name); it != builtin.end() && it->second.kind != e.kind)
      return invalid_at(c, "config.bad_value", p + "kind",
                        "the built-in engine " + name + " is always " +
                            std::string(core::to_string(it->second.kind)) +
                            "; give your engine its own name, e.g. [engines." + name + "-custom]");
    if (e.health_path.empty() || e.health_path.front() != '/')
      return invalid_at(c, "config.bad_value", p + "health_path",
                        "\"" + e.health_path + "\" must start with '/'");
    if (!e.version.empty() && !core::Version::parse(e.version) && !is_build_number(e.version))
      return invalid_at(c, "config.bad_value", p + "version",
                        "\"" + e.version +
                            "\" is not a version (e.g. \"0.8.4\", \"0.5.6.post2\", or a llama.cpp "
                            "build such as \"b6100\")");
  }
  return {};
}

core::Result<Config> load_config(const LoadOptions& o) {
  core::DataDirInputs inputs;
  inputs.is_root = o.is_root;
  inputs.xdg_data_home = env_value(o, "XDG_DATA_HOME");
  inputs.home = env_value(o, "HOME");
  Config c = default_config(core::data_dir_for(inputs));
  for (const auto& f : detail::fixed_fields()) c.sources[f.key] = "default";
  for (const auto& [name, e] : default_engines())
    for (const auto& f : detail::engine_fields(name)) c.sources[f.key] = "default";

  // Where to look for the default file: the data dir the later layers will settle on.
  std::filesystem::path data_dir = c.data_dir;
  if (auto v = env_value(o, "OPENSTATION_DATA_DIR")) data_dir = *v;
  for (const auto& kv : o.overrides)
    if (core::starts_with(kv, "data_dir=")) data_dir = kv.substr(9);

  std::optional<std::filesystem::path> file = o.config_file;
  std::string file_origin = "--config";
  if (!file) {
    if (auto v = env_value(o, "OPENSTATION_CONFIG")) {
      file = *v;
      file_origin = "OPENSTATION_CONFIG";
    }
  }
  if (file) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(*file, ec))
      return core::not_found("config.file_not_found",
                             "the config file " + file->string() + " (from " + file_origin +
                                 ") does not exist or is not a file",
                             "config");
  } else {
    const auto candidate = data_dir / "openstation.toml";
    std::error_code ec;
    if (std::filesystem::is_regular_file(candidate, ec)) file = candidate;
  }
  if (file) {
    std::error_code ec;
    auto abs = std::filesystem::absolute(*file, ec);
    if (auto r = apply_file(ec ? *file : abs.lexically_normal(), c); !r) return r.error();
  }
  for (const auto& [name, e] : c.engines)
    for (const auto& f : detail::engine_fields(name))
      if (!c.sources.count(f.key)) c.sources[f.key] = "default";

  if (auto r = apply_env(o, c); !r) return r.error();
  if (auto r = apply_overrides(o, c); !r) return r.error();
  for (const auto& [name, e] : c.engines)
    for (const auto& f : detail::engine_fields(name))
      if (!c.sources.count(f.key)) c.sources[f.key] = "default";

  if (auto r = validate(c); !r) return r.error();
  return c;
}

namespace {

std::string redacted(const Field& f, Config& c) {
  const std::string v = detail::toml_literal(f, c);
  if (!f.secret || v == "\"\"") return v;
  if (f.key == "server.database") {
    const std::string& db = c.server.database;
    const auto sep = db.find("://");
    const auto at = db.rfind('@');
    if (sep != std::string::npos && at != std::string::npos && at > sep) {
      const auto colon = db.find(':', sep + 3);
      if (colon != std::string::npos && colon < at)
        return detail::toml_quote(db.substr(0, colon + 1) + "***" + db.substr(at));
    }
    return v;
  }
  return "\"***\"";
}

std::vector<std::pair<std::string, std::vector<Field>>> grouped(const Config& c) {
  std::vector<std::pair<std::string, std::vector<Field>>> groups;
  groups.push_back({"", {}});
  for (const auto& f : detail::fixed_fields()) {
    const auto dot = f.key.find('.');
    const std::string section = dot == std::string::npos ? "" : f.key.substr(0, dot);
    if (groups.back().first != section) groups.push_back({section, {}});
    groups.back().second.push_back(f);
  }
  for (const auto& [name, e] : c.engines)
    groups.push_back({"engines." + detail::toml_key(name), detail::engine_fields(name)});
  return groups;
}

}  // namespace

std::string to_toml(const Config& config, const TomlOptions& options) {
  Config c = config;  // fields address members through a mutable Config
  std::string out;
  for (const auto& [section, fields] : grouped(config)) {
    if (!section.empty()) out += "\n[" + section + "]\n";
    for (const auto& f : fields) {
      const std::string name =
          f.key.substr(f.key.rfind('.') == std::string::npos ? 0 : f.key.rfind('.') + 1);
      std::string line = detail::toml_key(name) + " = " +
                         (options.redact ? redacted(f, c) : detail::toml_literal(f, c));
      if (options.sources) {
        auto it = config.sources.find(f.key);
        line += "  # " + (it == config.sources.end() ? std::string("default") : it->second);
      }
      out += line + "\n";
    }
  }
  return out;
}

std::vector<KeyInfo> describe(const Config& config, bool redact) {
  Config c = config;
  std::vector<KeyInfo> out;
  for (const auto& [section, fields] : grouped(config)) {
    for (const auto& f : fields) {
      KeyInfo k;
      k.key = f.key;
      k.value = redact ? redacted(f, c) : detail::toml_literal(f, c);
      k.env = detail::env_name(f.key);
      auto it = config.sources.find(f.key);
      k.source = it == config.sources.end() ? "default" : it->second;
      k.help = f.help;
      k.secret = f.secret;
      out.push_back(std::move(k));
    }
  }
  return out;
}

std::string env_var_for(std::string_view key) {
  return detail::env_name(key);
}

std::map<std::string, std::string> process_environment() {
  std::map<std::string, std::string> out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string_view kv(*e);
    const auto eq = kv.find('=');
    if (eq == std::string_view::npos) continue;
    out.emplace(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
  }
  return out;
}

bool running_as_root() {
  return ::geteuid() == 0;
}

}  // namespace openstation::config
