#pragma once
/// The effective config as JSON, for `openstation config show --json` and the settings API.
/// Durations, sizes and port ranges keep their text forms ("30s", "64MiB", "40000-40999"), so the
/// JSON reads like the TOML file.

#include "config/config.hpp"

#include <boost/json/value.hpp>

namespace openstation::config {

/// {"data_dir": ..., "server": {...}, ..., "engines": {"vllm": {...}}}. With `redact`, secrets
/// (tokens, the database password) are "***".
boost::json::object to_json(const Config& c, bool redact = false);

/// {"server.port": "default", "engines.vllm.command": "/etc/openstation.toml:12:11", ...}.
boost::json::object sources_json(const Config& c);

}  // namespace openstation::config
