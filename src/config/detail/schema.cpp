#include "config/detail/schema.hpp"

#include "config/values.hpp"
#include "core/strings.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <limits>
#include <type_traits>

namespace openstation::config::detail {

namespace {

#define OS_TARGET(member) [](Config& c) -> Target { return &c.member; }

Field make(std::string key, Kind kind, std::function<Target(Config&)> target, std::string help) {
  Field f;
  f.key = std::move(key);
  f.kind = kind;
  f.target = std::move(target);
  f.help = std::move(help);
  return f;
}

Field with_choices(Field f, std::vector<std::string> choices) {
  f.choices = std::move(choices);
  return f;
}

Field ephemeral(Field f) {
  f.zero_ok = true;
  return f;
}

Field secret(Field f) {
  f.secret = true;
  return f;
}

std::vector<Field> build_fixed() {
  std::vector<Field> v;
  v.push_back(make("data_dir", Kind::path, OS_TARGET(data_dir),
                   "Where the database, certificates, models and logs live"));
  v.push_back(with_choices(make("log_level", Kind::choice, OS_TARGET(log_level), "Log verbosity"),
                           {"trace", "debug", "info", "warn", "error", "off"}));

  v.push_back(make("server.host", Kind::string, OS_TARGET(server.host),
                   "Address the management server listens on"));
  v.push_back(ephemeral(make("server.port", Kind::port, OS_TARGET(server.port),
                             "Port of the management server (REST API, web UI); 0: ephemeral")));
  v.push_back(make("server.tls", Kind::boolean, OS_TARGET(server.tls),
                   "HTTPS (a self-signed certificate unless cert_file/key_file are given)"));
  v.push_back(make("server.cert_file", Kind::path, OS_TARGET(server.cert_file),
                   "PEM certificate (chain); empty: self-signed in <data_dir>/tls/server.crt"));
  v.push_back(make("server.key_file", Kind::path, OS_TARGET(server.key_file),
                   "PEM private key of cert_file; empty: <data_dir>/tls/server.key"));
  v.push_back(secret(make("server.database", Kind::string, OS_TARGET(server.database),
                          "Empty: SQLite in <data_dir>/openstation.db; sqlite:///path.db; "
                          "postgresql://user:pass@host/db")));
  v.push_back(with_choices(make("server.public_url", Kind::url, OS_TARGET(server.public_url),
                                "How agents and browsers reach the server; empty: derived"),
                           {"http", "https"}));
  v.push_back(make("server.model_dir", Kind::path, OS_TARGET(server.model_dir),
                   "The model store; empty: <data_dir>/models"));
  v.push_back(make("server.session_ttl", Kind::duration, OS_TARGET(server.session_ttl),
                   "Lifetime of a web UI or CLI login session"));
  v.push_back(make("server.node_timeout", Kind::duration, OS_TARGET(server.node_timeout),
                   "A node missing heartbeats this long becomes not-ready"));
  v.push_back(make("server.login_attempts_per_minute", Kind::count,
                   OS_TARGET(server.login_attempts_per_minute),
                   "Login attempts allowed per user and per address; 0: unlimited"));
  v.push_back(make("server.call_log_retention", Kind::duration,
                   OS_TARGET(server.call_log_retention),
                   "Call logs older than this are deleted (hourly); 0: kept forever"));
  v.push_back(make("server.event_retention", Kind::duration, OS_TARGET(server.event_retention),
                   "Audit events older than this are deleted (hourly); 0: kept forever"));

  v.push_back(make("gateway.host", Kind::string, OS_TARGET(gateway.host),
                   "Address the OpenAI-compatible gateway listens on"));
  v.push_back(ephemeral(make("gateway.port", Kind::port, OS_TARGET(gateway.port),
                             "Port of the gateway; 0: ephemeral")));
  v.push_back(make("gateway.tls", Kind::boolean, OS_TARGET(gateway.tls),
                   "HTTPS on the gateway (needs cert_file and key_file)"));
  v.push_back(make("gateway.cert_file", Kind::path, OS_TARGET(gateway.cert_file),
                   "PEM certificate of the gateway"));
  v.push_back(make("gateway.key_file", Kind::path, OS_TARGET(gateway.key_file),
                   "PEM private key of the gateway"));
  v.push_back(with_choices(make("gateway.server_url", Kind::url, OS_TARGET(gateway.server_url),
                                "The server a gateway replica follows; empty: in-process"),
                           {"http", "https"}));
  v.push_back(make("gateway.server_fingerprint", Kind::string,
                   OS_TARGET(gateway.server_fingerprint),
                   "A replica trusts the https server with this certificate fingerprint"));
  v.push_back(make("gateway.ca_cert", Kind::path, OS_TARGET(gateway.ca_cert),
                   "Else a replica trusts the https server through this CA file (PEM)"));
  v.push_back(secret(make("gateway.server_key", Kind::string, OS_TARGET(gateway.server_key),
                          "A replica's credential: an API key of an admin user")));
  v.push_back(make("gateway.max_body_bytes", Kind::bytes, OS_TARGET(gateway.max_body_bytes),
                   "Largest request body (413 beyond)"));
  v.push_back(make("gateway.header_timeout", Kind::duration, OS_TARGET(gateway.header_timeout),
                   "A client's request head must arrive within this"));
  v.push_back(make("gateway.upstream_connect_timeout", Kind::duration,
                   OS_TARGET(gateway.upstream_connect_timeout), "Connecting to an engine"));
  v.push_back(make("gateway.upstream_read_timeout", Kind::duration,
                   OS_TARGET(gateway.upstream_read_timeout),
                   "Longest silence from an engine between bytes; 0s: none"));
  v.push_back(make("gateway.stream_read_timeout", Kind::duration,
                   OS_TARGET(gateway.stream_read_timeout),
                   "Longest silence from an engine inside an SSE stream; 0s: none"));
  v.push_back(make("gateway.sse_keepalive_interval", Kind::duration,
                   OS_TARGET(gateway.sse_keepalive_interval),
                   "An SSE comment on streams idle this long; 0s: off"));
  v.push_back(make("gateway.drain_deadline", Kind::duration, OS_TARGET(gateway.drain_deadline),
                   "How long draining waits for in-flight requests"));
  v.push_back(make("gateway.requests_per_minute", Kind::count,
                   OS_TARGET(gateway.requests_per_minute),
                   "Default per-key request limit; 0: unlimited"));
  v.push_back(make("gateway.tokens_per_minute", Kind::count, OS_TARGET(gateway.tokens_per_minute),
                   "Default per-key token limit; 0: unlimited"));
  v.push_back(make("gateway.session_affinity", Kind::boolean, OS_TARGET(gateway.session_affinity),
                   "Requests with a session key (X-Session-ID, else body user) stick to one "
                   "instance"));
  v.push_back(make("gateway.call_log_idle_priority", Kind::boolean,
                   OS_TARGET(gateway.call_log_idle_priority),
                   "Call logs are written at idle CPU priority (normal when behind)"));

  v.push_back(with_choices(make("agent.server_url", Kind::url, OS_TARGET(agent.server_url),
                                "The server this agent joins; empty: the local server"),
                           {"http", "https"}));
  v.push_back(secret(make("agent.token", Kind::string, OS_TARGET(agent.token),
                          "Cluster join token (from the server)")));
  v.push_back(make("agent.server_fingerprint", Kind::string, OS_TARGET(agent.server_fingerprint),
                   "Trust the https server with this certificate fingerprint (sha256:AB:...)"));
  v.push_back(make("agent.ca_cert", Kind::path, OS_TARGET(agent.ca_cert),
                   "Else trust the https server through this CA file (PEM); empty: system CAs"));
  v.push_back(
      make("agent.host", Kind::string, OS_TARGET(agent.host), "Address the agent API listens on"));
  v.push_back(ephemeral(make("agent.port", Kind::port, OS_TARGET(agent.port),
                             "Port of the agent API; 0: ephemeral")));
  v.push_back(make("agent.name", Kind::string, OS_TARGET(agent.name),
                   "The node's name; empty: the host name"));
  v.push_back(make("agent.address", Kind::string, OS_TARGET(agent.address),
                   "Address other nodes reach this one on; empty: detected"));
  v.push_back(make("agent.gpu_inventory", Kind::path, OS_TARGET(agent.gpu_inventory),
                   "Read GPUs from this JSON inventory file instead of NVML (simulation, tests)"));
  v.push_back(make("agent.engine_packages_dir", Kind::path, OS_TARGET(agent.engine_packages_dir),
                   "Offline engine packages (vllm.tgz, ...); empty: <data_dir>/engine-packages"));
  v.push_back(make("agent.engine_ports", Kind::range, OS_TARGET(agent.engine_ports),
                   "Ports for engine instances"));
  v.push_back(make("agent.ray_ports", Kind::range, OS_TARGET(agent.ray_ports),
                   "Ports for Ray (multi-node vLLM)"));
  v.push_back(make("agent.log_max_bytes", Kind::bytes, OS_TARGET(agent.log_max_bytes),
                   "An engine log is rotated above this size"));
  Field log_files = make("agent.log_files", Kind::count, OS_TARGET(agent.log_files),
                         "Rotated engine log files kept (1-100)");
  log_files.max = 100;
  v.push_back(std::move(log_files));
  v.push_back(make("agent.restart_backoff_base", Kind::duration,
                   OS_TARGET(agent.restart_backoff_base), "First restart delay after a crash"));
  v.push_back(make("agent.restart_backoff_max", Kind::duration,
                   OS_TARGET(agent.restart_backoff_max), "Longest restart delay"));
  v.push_back(make("agent.crash_loop_threshold", Kind::count, OS_TARGET(agent.crash_loop_threshold),
                   "Crashes within crash_loop_window that make a crash loop"));
  v.push_back(make("agent.crash_loop_window", Kind::duration, OS_TARGET(agent.crash_loop_window),
                   "The window crashes are counted in"));
  v.push_back(make("agent.stop_grace", Kind::duration, OS_TARGET(agent.stop_grace),
                   "SIGTERM, then SIGKILL after this"));
  v.push_back(make("agent.heartbeat_interval", Kind::duration, OS_TARGET(agent.heartbeat_interval),
                   "How often the agent reports"));
  v.push_back(with_choices(make("agent.model_sync", Kind::choice, OS_TARGET(agent.model_sync),
                                "auto: pull server-store models unless on shared storage; always: "
                                "always keep a copy on the node"),
                           {"auto", "always"}));
  v.push_back(make("agent.model_sync_rate", Kind::bytes, OS_TARGET(agent.model_sync_rate),
                   "Bytes per second one model pull may take; 0: no limit"));

  v.push_back(with_choices(make("hub.default_source", Kind::choice, OS_TARGET(hub.default_source),
                                "Where catalog models download from"),
                           {"modelscope", "huggingface"}));
  v.push_back(with_choices(make("hub.modelscope_endpoint", Kind::url,
                                OS_TARGET(hub.modelscope_endpoint), "ModelScope (or a mirror)"),
                           {"http", "https"}));
  v.push_back(
      with_choices(make("hub.huggingface_endpoint", Kind::url, OS_TARGET(hub.huggingface_endpoint),
                        "HuggingFace (or a mirror such as https://hf-mirror.com)"),
                   {"http", "https"}));
  v.push_back(with_choices(
      make("hub.proxy", Kind::url, OS_TARGET(hub.proxy), "Proxy for hub downloads; empty: none"),
      {"http", "https", "socks5", "socks5h"}));
  v.push_back(secret(make("hub.hf_token", Kind::string, OS_TARGET(hub.hf_token),
                          "HuggingFace access token (gated repositories)")));
  v.push_back(secret(
      make("hub.ms_token", Kind::string, OS_TARGET(hub.ms_token), "ModelScope access token")));
  return v;
}

#undef OS_TARGET

bool is_int_kind(Kind k) {
  return k == Kind::count || k == Kind::port;
}

core::Error at(std::string code, std::string_view where, const std::string& key, std::string msg) {
  return core::invalid(std::move(code), std::string(where) + ": " + key + ": " + msg, key);
}

std::string expected_type(Kind k) {
  switch (k) {
    case Kind::boolean: return "a boolean (true or false)";
    case Kind::count: return "a whole number";
    case Kind::port: return "a port number";
    case Kind::duration: return "a duration (\"30s\") or a number of seconds";
    case Kind::bytes: return "a size (\"64MiB\") or a number of bytes";
    case Kind::words: return "an array of strings";
    case Kind::string_map: return "a table of strings";
    default: return "a string";
  }
}

}  // namespace

const std::vector<std::string>& top_level_names() {
  static const std::vector<std::string> names{"data_dir", "log_level", "server", "gateway",
                                              "agent",    "engines",   "hub"};
  return names;
}

const std::vector<Field>& fixed_fields() {
  static const std::vector<Field> fields = build_fixed();
  return fields;
}

const std::vector<std::string>& engine_keys() {
  static const std::vector<std::string> keys{"kind", "command", "version", "env", "health_path"};
  return keys;
}

std::vector<Field> engine_fields(const std::string& engine) {
  const std::string p = "engines." + engine + ".";
  std::vector<Field> v;
  v.push_back(make(
      p + "kind", Kind::engine_kind,
      [engine](Config& c) -> Target { return &c.engines[engine].kind; },
      "vllm, vllm-cpu, sglang, llama.cpp or custom; implied by the built-in names"));
  v.push_back(make(
      p + "command", Kind::words,
      [engine](Config& c) -> Target { return &c.engines[engine].command; },
      "The argv prefix the engine's arguments follow (no shell)"));
  v.push_back(make(
      p + "version", Kind::string,
      [engine](Config& c) -> Target { return &c.engines[engine].version; },
      "The installed version; empty: the newest the platform knows"));
  v.push_back(make(
      p + "env", Kind::string_map, [engine](Config& c) -> Target { return &c.engines[engine].env; },
      "Environment variables added for the engine"));
  v.push_back(make(
      p + "health_path", Kind::string,
      [engine](Config& c) -> Target { return &c.engines[engine].health_path; },
      "The readiness probe path"));
  return v;
}

const Field* find_field(std::string_view key, Field& storage) {
  for (const auto& f : fixed_fields())
    if (f.key == key) return &f;
  constexpr std::string_view kEngines = "engines.";
  if (!core::starts_with(key, kEngines)) return nullptr;
  const std::string_view rest = key.substr(kEngines.size());
  const auto dot = rest.rfind('.');
  if (dot == std::string_view::npos || dot == 0) return nullptr;
  const std::string name(rest.substr(0, dot));
  for (auto& f : engine_fields(name)) {
    if (f.key == key) {
      storage = std::move(f);
      return &storage;
    }
  }
  return nullptr;
}

std::vector<std::string> section_keys(std::string_view section) {
  std::vector<std::string> out;
  const std::string prefix = std::string(section) + ".";
  for (const auto& f : fixed_fields())
    if (core::starts_with(f.key, prefix)) out.push_back(f.key.substr(prefix.size()));
  return out;
}

std::string env_name(std::string_view key) {
  std::string out = "OPENSTATION_";
  for (char ch : key) {
    if (ch == '.' || ch == '-')
      out.push_back('_');
    else
      out.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(ch))));
  }
  return out;
}

core::Result<void> check_engine_name(std::string_view name, std::string_view where) {
  bool ok = !name.empty() && name.size() <= 64 &&
            (std::islower(static_cast<unsigned char>(name[0])) ||
             std::isdigit(static_cast<unsigned char>(name[0])));
  for (char ch : name) {
    const auto u = static_cast<unsigned char>(ch);
    if (!(std::islower(u) || std::isdigit(u) || ch == '.' || ch == '-' || ch == '_')) ok = false;
  }
  if (ok) return {};
  return core::invalid("config.bad_engine_name",
                       std::string(where) + ": engines." + std::string(name) +
                           ": an engine name is 1-64 lower-case letters, digits, '.', '-' or '_', "
                           "starting with a letter or digit",
                       "engines." + std::string(name));
}

std::string_view raw_type_name(const Raw& r) {
  switch (r.index()) {
    case 0: return "a string";
    case 1: return "an integer";
    case 2: return "a boolean";
    case 3: return "an array";
    default: return "a table";
  }
}

core::Result<Raw> raw_from_text(const Field& f, std::string_view text, std::string_view where) {
  if (is_int_kind(f.kind)) {
    const std::string t = core::trim(text);
    std::int64_t n = 0;
    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), n);
    if (t.empty() || ec != std::errc() || p != t.data() + t.size())
      return at("config.bad_value", where, f.key,
                "\"" + std::string(text) + "\" is not " + expected_type(f.kind));
    return Raw(n);
  }
  if (f.kind == Kind::boolean) {
    auto b = parse_bool(text);
    if (!b) return at(b.error().code, where, f.key, b.error().message);
    return Raw(*b);
  }
  if (f.kind == Kind::words || f.kind == Kind::string_map) {
    auto words = split_words(text);
    if (!words) return at(words.error().code, where, f.key, words.error().message);
    if (f.kind == Kind::words) return Raw(std::move(*words));
    std::map<std::string, std::string> m;
    for (const auto& w : *words) {
      const auto eq = w.find('=');
      if (eq == std::string::npos || eq == 0)
        return at(
            "config.bad_value", where, f.key,
            "\"" + w + "\" is not KEY=VALUE (write e.g. \"HF_HOME=/data/hf CUDA_HOME=/usr\")");
      m[w.substr(0, eq)] = w.substr(eq + 1);
    }
    return Raw(std::move(m));
  }
  return Raw(std::string(text));
}

core::Result<void> assign(const Field& f, Config& c, const Raw& raw, std::string_view where) {
  const Target target = f.target(c);
  auto wrong_type = [&]() -> core::Result<void> {
    return at("config.wrong_type", where, f.key,
              "expected " + expected_type(f.kind) + ", got " + std::string(raw_type_name(raw)));
  };
  const std::string* str = std::get_if<std::string>(&raw);
  const std::int64_t* num = std::get_if<std::int64_t>(&raw);
  switch (f.kind) {
    case Kind::string:
      if (!str) return wrong_type();
      *std::get<std::string*>(target) = *str;
      return {};
    case Kind::path:
      if (!str) return wrong_type();
      if (auto* p = std::get_if<std::filesystem::path*>(&target))
        **p = *str;
      else
        *std::get<std::string*>(target) = *str;
      return {};
    case Kind::choice:
      if (!str) return wrong_type();
      if (std::find(f.choices.begin(), f.choices.end(), *str) == f.choices.end()) {
        std::string msg = "\"" + *str + "\" is not one of " + core::join(f.choices);
        const std::string near = core::closest(*str, f.choices);
        if (!near.empty()) msg += "; did you mean \"" + near + "\"?";
        return at("config.bad_value", where, f.key, msg);
      }
      *std::get<std::string*>(target) = *str;
      return {};
    case Kind::url: {
      if (!str) return wrong_type();
      if (!str->empty()) {
        const auto sep = str->find("://");
        const std::string scheme =
            sep == std::string::npos ? std::string() : core::to_lower(str->substr(0, sep));
        if (sep == std::string::npos || sep + 3 >= str->size() ||
            std::find(f.choices.begin(), f.choices.end(), scheme) == f.choices.end()) {
          return at("config.bad_url", where, f.key,
                    "\"" + *str + "\" is not a URL with scheme " + core::join(f.choices, ", ") +
                        " (write e.g. \"" + f.choices.front() + "://host:port\")");
        }
      }
      *std::get<std::string*>(target) = *str;
      return {};
    }
    case Kind::boolean:
      if (!std::holds_alternative<bool>(raw)) return wrong_type();
      *std::get<bool*>(target) = std::get<bool>(raw);
      return {};
    case Kind::count: {
      if (!num) return wrong_type();
      const std::uint64_t limit = f.max ? f.max : std::numeric_limits<std::uint32_t>::max();
      if (*num < 0 || static_cast<std::uint64_t>(*num) > limit)
        return at(
            "config.bad_value", where, f.key,
            "must be between 0 and " + std::to_string(limit) + ", got " + std::to_string(*num));
      *std::get<std::uint32_t*>(target) = static_cast<std::uint32_t>(*num);
      return {};
    }
    case Kind::port: {
      if (!num) return wrong_type();
      const std::int64_t low = f.zero_ok ? 0 : 1;
      if (*num < low || *num > 65535)
        return at("config.port_out_of_range", where, f.key,
                  "must be between " + std::to_string(low) + " and 65535" +
                      (f.zero_ok ? " (0: an ephemeral port)" : "") + ", got " +
                      std::to_string(*num));
      *std::get<std::uint16_t*>(target) = static_cast<std::uint16_t>(*num);
      return {};
    }
    case Kind::duration: {
      std::chrono::milliseconds d{0};
      if (num) {
        if (*num < 0 || *num > std::numeric_limits<std::int64_t>::max() / 1000)
          return at("config.bad_duration", where, f.key,
                    "must be a non-negative number of seconds, got " + std::to_string(*num));
        d = std::chrono::seconds(*num);
      } else if (str) {
        auto parsed = parse_duration(*str);
        if (!parsed) return at(parsed.error().code, where, f.key, parsed.error().message);
        d = *parsed;
      } else {
        return wrong_type();
      }
      *std::get<std::chrono::milliseconds*>(target) = d;
      return {};
    }
    case Kind::bytes: {
      std::uint64_t b = 0;
      if (num) {
        if (*num < 0)
          return at("config.bad_size", where, f.key,
                    "must not be negative, got " + std::to_string(*num));
        b = static_cast<std::uint64_t>(*num);
      } else if (str) {
        auto parsed = parse_bytes(*str);
        if (!parsed) return at(parsed.error().code, where, f.key, parsed.error().message);
        b = *parsed;
      } else {
        return wrong_type();
      }
      *std::get<std::uint64_t*>(target) = b;
      return {};
    }
    case Kind::range: {
      if (!str) return wrong_type();
      auto r = parse_port_range(*str);
      if (!r) return at(r.error().code, where, f.key, r.error().message);
      *std::get<PortRange*>(target) = *r;
      return {};
    }
    case Kind::words:
      if (!std::holds_alternative<std::vector<std::string>>(raw)) return wrong_type();
      *std::get<std::vector<std::string>*>(target) = std::get<std::vector<std::string>>(raw);
      return {};
    case Kind::string_map:
      if (!std::holds_alternative<std::map<std::string, std::string>>(raw)) return wrong_type();
      *std::get<std::map<std::string, std::string>*>(target) =
          std::get<std::map<std::string, std::string>>(raw);
      return {};
    case Kind::engine_kind: {
      if (!str) return wrong_type();
      auto k = core::parse_engine_kind(*str);
      if (!k)
        return at(
            "config.bad_value", where, f.key,
            "\"" + *str + "\" is not an engine kind (vllm, vllm-cpu, sglang, llama.cpp, custom)");
      *std::get<core::EngineKind*>(target) = *k;
      return {};
    }
  }
  return wrong_type();
}

std::string toml_quote(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    const auto u = static_cast<unsigned char>(ch);
    switch (ch) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (u < 0x20 || u == 0x7f) {
          static constexpr char kHex[] = "0123456789ABCDEF";
          out += "\\u00";
          out.push_back(kHex[u >> 4]);
          out.push_back(kHex[u & 15]);
        } else {
          out.push_back(ch);
        }
    }
  }
  out.push_back('"');
  return out;
}

std::string toml_key(std::string_view k) {
  bool bare = !k.empty();
  for (char ch : k) {
    const auto u = static_cast<unsigned char>(ch);
    if (!(std::isalnum(u) || ch == '_' || ch == '-')) bare = false;
  }
  return bare ? std::string(k) : toml_quote(k);
}

std::string toml_literal(const Field& f, Config& c) {
  const Target t = f.target(c);
  return std::visit(
      [&](auto* p) -> std::string {
        using T = std::remove_pointer_t<decltype(p)>;
        if constexpr (std::is_same_v<T, std::string>) {
          return toml_quote(*p);
        } else if constexpr (std::is_same_v<T, std::filesystem::path>) {
          return toml_quote(p->string());
        } else if constexpr (std::is_same_v<T, bool>) {
          return *p ? "true" : "false";
        } else if constexpr (std::is_same_v<T, std::uint64_t>) {
          return toml_quote(format_bytes(*p));
        } else if constexpr (std::is_same_v<T, std::chrono::milliseconds>) {
          return toml_quote(format_duration(*p));
        } else if constexpr (std::is_same_v<T, PortRange>) {
          return toml_quote(format_port_range(*p));
        } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
          std::string out = "[";
          for (std::size_t i = 0; i < p->size(); ++i) out += (i ? ", " : "") + toml_quote((*p)[i]);
          return out + "]";
        } else if constexpr (std::is_same_v<T, std::map<std::string, std::string>>) {
          if (p->empty()) return "{}";
          std::string out = "{ ";
          bool first = true;
          for (const auto& [k, v] : *p) {
            out += (first ? "" : ", ") + toml_key(k) + " = " + toml_quote(v);
            first = false;
          }
          return out + " }";
        } else if constexpr (std::is_same_v<T, core::EngineKind>) {
          return toml_quote(core::to_string(*p));
        } else {
          return std::to_string(*p);
        }
      },
      t);
}

}  // namespace openstation::config::detail
