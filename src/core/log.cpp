#include "core/log.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace openstation::core {

void init_logging(LogLevel level) {
  // Reuse the logger on a second call (in-process CLI tests run `cli::run` many times).
  auto logger = spdlog::get("openstation");
  if (!logger) logger = spdlog::stderr_color_mt("openstation");
  logger->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%^%l%$] %v");
  spdlog::level::level_enum lvl = spdlog::level::info;
  switch (level) {
    case LogLevel::trace: lvl = spdlog::level::trace; break;
    case LogLevel::debug: lvl = spdlog::level::debug; break;
    case LogLevel::info: lvl = spdlog::level::info; break;
    case LogLevel::warn: lvl = spdlog::level::warn; break;
    case LogLevel::error: lvl = spdlog::level::err; break;
    case LogLevel::off: lvl = spdlog::level::off; break;
  }
  logger->set_level(lvl);
  spdlog::set_default_logger(std::move(logger));
}

LogLevel parse_log_level(std::string_view name) noexcept {
  if (name == "trace") return LogLevel::trace;
  if (name == "debug") return LogLevel::debug;
  if (name == "warn" || name == "warning") return LogLevel::warn;
  if (name == "error") return LogLevel::error;
  if (name == "off") return LogLevel::off;
  return LogLevel::info;
}

}  // namespace openstation::core
