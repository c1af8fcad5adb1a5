#pragma once
/// Maps parsed engine flags to the estimator's EngineMemorySettings.

#include "core/error.hpp"
#include "engine/args.hpp"
#include "engine/spec.hpp"
#include "model/estimator.hpp"

#include <map>
#include <string>

namespace openstation::engine {

/// Reads the memory-relevant flags of `args` for `spec`'s engine (and, for vLLM CPU, the
/// VLLM_CPU_KVCACHE_SPACE variable from `env`). Errors for values the estimator cannot use.
core::Result<model::EngineMemorySettings> memory_settings(
    const EngineSpec& spec, const ParsedArgs& args,
    const std::map<std::string, std::string>& env = {});

}  // namespace openstation::engine
