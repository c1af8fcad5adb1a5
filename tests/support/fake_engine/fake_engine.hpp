#pragma once
/// The stand-in engine (test support, never shipped): what the command line said and what the
/// OpenAI-compatible API serves. main.cpp validates the command line like the real engine and
/// starts the server; api.cpp holds the routes.

#include "core/engine_kind.hpp"
#include "http/server.hpp"

#include <atomic>
#include <cstdint>
#include <string>

namespace openstation::fake_engine {

/// Settings from the command line and FAKE_ENGINE_* variables, plus live counters for /metrics.
struct EngineState {
  core::EngineKind kind = core::EngineKind::vllm;
  std::string version;      ///< "0.21.0"
  std::string served_name;  ///< --served-model-name, else the model
  std::string model_path;   ///< the model as given
  std::int64_t max_model_len = 32768;
  std::string api_key;        ///< --api-key / VLLM_API_KEY; empty: no auth
  double tokens_per_sec = 0;  ///< FAKE_ENGINE_TOKENS_PER_SEC; 0 = as fast as possible
  int output_tokens = 16;     ///< FAKE_ENGINE_OUTPUT_TOKENS: tokens a reply has without max_tokens
  int embedding_dim = 8;      ///< FAKE_ENGINE_EMBEDDING_DIM
  std::int64_t crash_after = -1;         ///< FAKE_ENGINE_CRASH_AFTER: requests served before exit
  std::int64_t crash_after_tokens = -1;  ///< FAKE_ENGINE_CRASH_AFTER_TOKENS: streamed tokens
  int exit_code = 1;                     ///< FAKE_ENGINE_EXIT_CODE
  bool hang_requests = false;            ///< FAKE_ENGINE_HANG=request
  bool hang_health = false;              ///< FAKE_ENGINE_HANG=health
  /// FAKE_ENGINE_STAMP_EVENTS=1: each streamed chunk carries "os_emit_ns", the CLOCK_MONOTONIC
  /// time it was made (bench/gateway measures per-event latency against it).
  bool stamp_events = false;
  std::int64_t created = 0;  ///< unix time of start

  std::atomic<std::int64_t> requests{0};
  std::atomic<std::int64_t> running{0};
  std::atomic<std::int64_t> prompt_tokens_total{0};
  std::atomic<std::int64_t> generation_tokens_total{0};
  std::atomic<std::int64_t> success_stop{0};
  std::atomic<std::int64_t> success_length{0};
  std::atomic<std::int64_t> streamed_tokens{0};
};

/// Registers /health, /version, /metrics and the /v1 routes on `server`.
void add_routes(http::Server& server, EngineState& state);

}  // namespace openstation::fake_engine
