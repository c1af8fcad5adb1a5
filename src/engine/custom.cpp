#include "engine/custom.hpp"

#include "core/strings.hpp"
#include "engine/spec.hpp"

#include <algorithm>
#include <array>

namespace openstation::engine {
namespace {

constexpr std::array<std::string_view, 4> kPlaceholders = {"model_path", "port", "served_name",
                                                           "host"};

/// Walks `word`, calling on_text for literal text and on_name for each placeholder name.
template <class Text, class Name>
core::Result<void> scan(std::string_view word, Text on_text, Name on_name) {
  for (std::size_t i = 0; i < word.size(); ++i) {
    const char c = word[i];
    if ((c == '{' || c == '}') && i + 1 < word.size() && word[i + 1] == c) {
      on_text(std::string_view(&word[i], 1));
      ++i;
      continue;
    }
    if (c == '}') {
      return core::invalid("custom.bad_template",
                           "unmatched '}' in the command template word '" + std::string(word) +
                               "'; write }} for a literal brace",
                           "command_template");
    }
    if (c != '{') {
      on_text(std::string_view(&word[i], 1));
      continue;
    }
    const auto end = word.find('}', i + 1);
    if (end == std::string_view::npos) {
      return core::invalid("custom.bad_template",
                           "unclosed '{' in the command template word '" + std::string(word) +
                               "'; write {{ for a literal brace",
                           "command_template");
    }
    const auto name = word.substr(i + 1, end - i - 1);
    if (std::find(kPlaceholders.begin(), kPlaceholders.end(), name) == kPlaceholders.end()) {
      std::string msg =
          "unknown placeholder {" + std::string(name) +
          "} in the command template; known: {model_path}, {port}, {served_name}, {host}";
      const auto near =
          core::closest(name, std::vector<std::string>(kPlaceholders.begin(), kPlaceholders.end()));
      if (!near.empty()) msg += ". Did you mean {" + near + "}?";
      return core::invalid("custom.unknown_placeholder", msg, "command_template");
    }
    on_name(name);
    i = end;
  }
  return {};
}

}  // namespace

core::Result<CustomEngine> CustomEngine::parse(std::string_view command_template) {
  CustomEngine e;
  e.template_ = std::string(command_template);
  auto words = split_command_line(command_template);
  if (!words) {
    auto err = words.error();
    err.field = "command_template";
    err.message = "command template: " + err.message;
    return err;
  }
  if (words->empty()) {
    return core::invalid("custom.empty_template",
                         "the command template is empty: give the program and its arguments, e.g. "
                         "/opt/engine/serve --model {model_path} --port {port}",
                         "command_template");
  }
  for (const auto& w : *words) {
    auto r = scan(
        w, [](std::string_view) {},
        [&](std::string_view name) {
          if (std::find(e.used_.begin(), e.used_.end(), name) == e.used_.end()) {
            e.used_.emplace_back(name);
          }
        });
    if (!r) return r.error();
  }
  if (std::find(e.used_.begin(), e.used_.end(), "port") == e.used_.end()) {
    return core::invalid("custom.missing_port",
                         "the command template must contain {port}: the platform allocates the "
                         "port the engine listens on and routes requests to it",
                         "command_template");
  }
  e.words_ = std::move(*words);
  return e;
}

core::Result<std::vector<std::string>> CustomEngine::render(const CustomPlaceholders& values,
                                                            const ParsedArgs& extra) const {
  if (values.port < 1 || values.port > 65535) {
    return core::invalid("custom.bad_port",
                         "port " + std::to_string(values.port) + " is outside 1-65535", "port");
  }
  const std::string port = std::to_string(values.port);
  std::vector<std::string> argv;
  for (const auto& w : words_) {
    std::string out;
    std::string missing;
    auto r = scan(
        w, [&](std::string_view t) { out.append(t); },
        [&](std::string_view name) {
          const std::string* v = nullptr;
          if (name == "model_path") v = &values.model_path;
          if (name == "served_name") v = &values.served_name;
          if (name == "host") v = &values.host;
          if (name == "port") v = &port;
          if (v->empty() && missing.empty()) missing = std::string(name);
          out += *v;
        });
    if (!r) return r.error();
    if (!missing.empty()) {
      return core::invalid("custom.missing_value",
                           "the command template uses {" + missing + "} but no value was given",
                           missing);
    }
    argv.push_back(std::move(out));
  }
  auto spec = resolve_engine(core::EngineKind::custom, "");
  if (!spec) return spec.error();
  const auto rest = engine::render(**spec, extra);
  argv.insert(argv.end(), rest.begin(), rest.end());
  return argv;
}

}  // namespace openstation::engine
