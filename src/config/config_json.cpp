#include "config/config_json.hpp"

#include "config/detail/schema.hpp"
#include "config/load.hpp"
#include "config/values.hpp"

#include <boost/json.hpp>

#include <type_traits>

namespace openstation::config {

namespace {

boost::json::value json_value(const detail::Field& f, Config& c) {
  return std::visit(
      [](auto* p) -> boost::json::value {
        using T = std::remove_pointer_t<decltype(p)>;
        if constexpr (std::is_same_v<T, std::string>) {
          return boost::json::value(*p);
        } else if constexpr (std::is_same_v<T, std::filesystem::path>) {
          return boost::json::value(p->string());
        } else if constexpr (std::is_same_v<T, bool>) {
          return boost::json::value(*p);
        } else if constexpr (std::is_same_v<T, std::uint64_t>) {
          return boost::json::value(format_bytes(*p));
        } else if constexpr (std::is_same_v<T, std::chrono::milliseconds>) {
          return boost::json::value(format_duration(*p));
        } else if constexpr (std::is_same_v<T, PortRange>) {
          return boost::json::value(format_port_range(*p));
        } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
          boost::json::array a;
          for (const auto& s : *p) a.emplace_back(s);
          return a;
        } else if constexpr (std::is_same_v<T, std::map<std::string, std::string>>) {
          boost::json::object o;
          for (const auto& [k, v] : *p) o[k] = v;
          return o;
        } else if constexpr (std::is_same_v<T, core::EngineKind>) {
          return boost::json::value(std::string(core::to_string(*p)));
        } else {
          return boost::json::value(static_cast<std::uint64_t>(*p));
        }
      },
      f.target(c));
}

boost::json::value shown(const detail::Field& f, Config& c, bool redact) {
  if (!redact || !f.secret) return json_value(f, c);
  // describe() knows how to redact (a database URL keeps all but its password).
  for (const auto& k : describe(c, true))
    if (k.key == f.key) {
      std::string v = k.value;
      if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
      return boost::json::value(v);
    }
  return json_value(f, c);
}

}  // namespace

boost::json::object to_json(const Config& config, bool redact) {
  Config c = config;
  boost::json::object out;
  for (const auto& f : detail::fixed_fields()) {
    const auto dot = f.key.find('.');
    if (dot == std::string::npos) {
      out[f.key] = shown(f, c, redact);
      continue;
    }
    auto& section = out[f.key.substr(0, dot)];
    if (!section.is_object()) section = boost::json::object();
    section.as_object()[f.key.substr(dot + 1)] = shown(f, c, redact);
  }
  boost::json::object engines;
  for (const auto& [name, e] : config.engines) {
    boost::json::object one;
    for (const auto& f : detail::engine_fields(name))
      one[f.key.substr(f.key.rfind('.') + 1)] = shown(f, c, redact);
    engines[name] = std::move(one);
  }
  out["engines"] = std::move(engines);
  return out;
}

boost::json::object sources_json(const Config& c) {
  boost::json::object out;
  for (const auto& [k, v] : c.sources) out[k] = v;
  return out;
}

}  // namespace openstation::config
