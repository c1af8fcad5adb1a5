#include "core/engine_kind.hpp"

namespace openstation::core {

std::string_view to_string(EngineKind k) noexcept {
  switch (k) {
    case EngineKind::vllm: return "vllm";
    case EngineKind::vllm_cpu: return "vllm-cpu";
    case EngineKind::sglang: return "sglang";
    case EngineKind::llama_cpp: return "llama.cpp";
    case EngineKind::custom: return "custom";
  }
  return "custom";
}

Result<EngineKind> parse_engine_kind(std::string_view name) {
  if (name == "vllm") return EngineKind::vllm;
  if (name == "vllm-cpu" || name == "vllm_cpu") return EngineKind::vllm_cpu;
  if (name == "sglang") return EngineKind::sglang;
  if (name == "llama.cpp" || name == "llama-cpp" || name == "llamacpp" || name == "llama_cpp")
    return EngineKind::llama_cpp;
  if (name == "custom") return EngineKind::custom;
  return invalid("engine.unknown",
                 "unknown engine '" + std::string(name) +
                     "': use one of vllm, vllm-cpu, sglang, llama.cpp, custom",
                 "engine");
}

bool needs_gpu(EngineKind k) noexcept {
  return k == EngineKind::vllm || k == EngineKind::sglang;
}

}  // namespace openstation::core
