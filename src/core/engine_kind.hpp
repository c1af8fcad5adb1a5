#pragma once
/// The identity of an inference engine: its kind plus its version. Shared by the estimator
/// (memory accounting differs by engine and version), the engine specs and the planner.

#include "core/error.hpp"
#include "core/version.hpp"

#include <string>
#include <string_view>

namespace openstation::core {

enum class EngineKind { vllm, vllm_cpu, sglang, llama_cpp, custom };

/// "vllm", "vllm-cpu", "sglang", "llama.cpp", "custom".
std::string_view to_string(EngineKind k) noexcept;
/// Accepts the names above and a few aliases ("vllm_cpu", "llama-cpp", "llamacpp").
Result<EngineKind> parse_engine_kind(std::string_view name);
/// True for engines that run on GPUs only.
bool needs_gpu(EngineKind k) noexcept;

/// An engine kind and version, e.g. vllm 0.8.4.
struct EngineId {
  EngineKind kind = EngineKind::vllm;
  Version version;
};

}  // namespace openstation::core
