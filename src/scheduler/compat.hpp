#pragma once
/// Compatibility rules (FAQ §4): checks of the user's flags against the model and the GPUs that
/// will run it, each with a stable code, a message in the FAQ's and the engine's terms, and —
/// where one exists — a fix applied to the flags. DESIGN.md places these in the engine module; they
/// live here to keep the engine module's files with their owner. Codes: docs/plans.md.

#include "core/engine_kind.hpp"
#include "engine/args.hpp"
#include "engine/spec.hpp"
#include "model/model_info.hpp"
#include "model/node.hpp"
#include "scheduler/plan.hpp"

#include <string>
#include <vector>

namespace openstation::scheduler {

/// One GPU the plan uses, with the node it is on.
struct PlacedGpu {
  std::string node;
  const model::GpuSpec* gpu = nullptr;
};

/// What the rules look at.
struct CompatInput {
  const engine::EngineSpec* spec = nullptr;  ///< the engine version's flag table
  core::EngineKind kind = core::EngineKind::vllm;
  const model::ModelInfo* model = nullptr;
  std::vector<PlacedGpu> gpus;  ///< empty for the CPU engine
};

/// What the rules found.
struct CompatFindings {
  std::vector<AppliedFix> fixes;
  std::vector<PlanIssue> warnings;
  std::vector<PlanIssue> errors;
};

/// Compute capability 7.0 (V100) — the GPU FAQ §4.2 is about.
bool is_v100(const model::GpuSpec& gpu);

/// The minimum compute capability (major × 10 + minor) a quantization method needs on NVIDIA
/// GPUs, 0 when the platform knows no limit ("fp8" → 89).
int min_cc_for_quantization(const std::string& method);

/// Applies every rule to `args` in order — bf16 on compute capability < 8.0, V100 with vLLM,
/// quantization, context length above the model's maximum — fixing what can be fixed with
/// ParsedArgs::set/erase and listing the rest as errors.
void apply_compat_rules(const CompatInput& in, engine::ParsedArgs& args, CompatFindings& out);

}  // namespace openstation::scheduler
