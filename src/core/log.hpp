#pragma once
/// Logging set-up. Modules log through spdlog's default logger; `init_logging` is called once by
/// each entry point. Logs go to stderr so that stdout stays clean for `--json` output.

#include <string_view>

namespace openstation::core {

enum class LogLevel { trace, debug, info, warn, error, off };

/// Configures the default logger: stderr, the given level, "[time] [level] message".
void init_logging(LogLevel level);
/// Parses "trace|debug|info|warn|error|off"; unknown names give `info`.
LogLevel parse_log_level(std::string_view name) noexcept;

}  // namespace openstation::core
