#pragma once
/// Custom engines: a command template an administrator registers, such as
///   /opt/myengine/bin/serve --model {model_path} --listen {host}:{port} --name {served_name}
/// The template is split into words once (quotes and backslashes as in split_command_line, no
/// expansion); placeholders are replaced inside each word with the values given, which never
/// split a word or pass through a shell. `{{` and `}}` stand for literal braces.

#include "core/error.hpp"
#include "engine/args.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace openstation::engine {

/// The values a custom engine's placeholders take for one instance.
struct CustomPlaceholders {
  std::string model_path;   ///< {model_path}
  int port = 0;             ///< {port}
  std::string served_name;  ///< {served_name}
  std::string host;         ///< {host}
};

/// A validated command template. {port} is required (the platform must know where the engine
/// listens); the other placeholders are optional.
class CustomEngine {
 public:
  /// Validates and splits `command_template`. Errors: custom.empty_template,
  /// custom.unknown_placeholder (names the known ones), custom.bad_template (an unclosed brace),
  /// custom.missing_port, and split_command_line's quote errors.
  static core::Result<CustomEngine> parse(std::string_view command_template);

  /// The argv for one instance: the template's words with placeholders filled in, then the
  /// extended parameters (parsed against the custom engine's open spec) rendered after them.
  /// Errors: custom.missing_value when a used placeholder has no value, custom.bad_port.
  core::Result<std::vector<std::string>> render(const CustomPlaceholders& values,
                                                const ParsedArgs& extra = {}) const;

  const std::string& command_template() const { return template_; }
  /// The placeholders the template uses, in order of first use ("port", "model_path", ...).
  const std::vector<std::string>& placeholders() const { return used_; }

 private:
  std::string template_;
  std::vector<std::string> words_;
  std::vector<std::string> used_;
};

}  // namespace openstation::engine
