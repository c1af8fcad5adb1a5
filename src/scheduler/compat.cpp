#include "scheduler/compat.hpp"

#include "core/strings.hpp"

#include <algorithm>
#include <charconv>
#include <set>

namespace openstation::scheduler {
namespace {

int cc_of(const model::GpuSpec& g) {
  return g.cc_major * 10 + g.cc_minor;
}

std::string where(const PlacedGpu& p) {
  return p.gpu->name + " (node " + p.node + ", GPU " + std::to_string(p.gpu->index) + ")";
}

/// The placed GPU with the lowest compute capability (the first of them), or nullptr.
const PlacedGpu* lowest_cc(const std::vector<PlacedGpu>& gpus) {
  const PlacedGpu* best = nullptr;
  for (const auto& p : gpus) {
    if (best == nullptr || cc_of(*p.gpu) < cc_of(*best->gpu)) best = &p;
  }
  return best;
}

std::string value_of(const engine::ParsedArgs& args, std::string_view name) {
  const auto* f = args.find(name);
  if (f == nullptr || f->values.empty()) return {};
  return f->values[0];
}

/// Sets `name` to `values` via make_flag; on failure (a table without the flag) records an error.
bool set_flag(const CompatInput& in, engine::ParsedArgs& args, std::string_view name,
              std::vector<std::string> values, CompatFindings& out) {
  auto f = engine::make_flag(*in.spec, name, std::move(values));
  if (!f) {
    out.errors.push_back({"compat.cannot_apply_fix", f.error().message, {}, std::nullopt});
    return false;
  }
  args.set(std::move(*f));
  return true;
}

/// The argv a single flag renders to in this engine version, for messages.
std::string rendered(const CompatInput& in, const engine::ParsedFlag& f) {
  engine::ParsedArgs one;
  one.flags.push_back(f);
  return core::join(engine::render(*in.spec, one), " ");
}

// FAQ §4.1: bfloat16 needs compute capability 8.0.
void rule_bf16(const CompatInput& in, engine::ParsedArgs& args, CompatFindings& out) {
  const PlacedGpu* low = lowest_cc(in.gpus);
  if (low == nullptr || low->gpu->cc_major >= 8 || low->gpu->cc_major == 0) return;
  const std::string dtype = core::to_lower(value_of(args, "--dtype"));
  const std::string cc = low->gpu->compute_capability();
  if (dtype == "bfloat16") {
    out.errors.push_back(
        {"compat.bf16_unsupported",
         "Bfloat16 is only supported on GPUs with compute capability of at least 8.0. Your " +
             where(*low) + " has compute capability " + cc +
             ": --dtype bfloat16 cannot run there. Use --dtype half instead (FAQ §4.1), or GPUs "
             "with compute capability 8.0 or newer (A100, H100)",
         low->node, low->gpu->index});
    return;
  }
  if ((dtype.empty() || dtype == "auto") && in.model->arch.torch_dtype == model::DType::bf16) {
    if (!set_flag(in, args, "--dtype", {"half"}, out)) return;
    out.fixes.push_back(
        {"compat.bf16_to_half",
         "the model's weights are bfloat16 but " + where(*low) + " has compute capability " + cc +
             " and bfloat16 needs at least 8.0 (the engine would stop with \"Bfloat16 is only "
             "supported on GPUs with compute capability of at least 8.0\"): --dtype half set "
             "(FAQ §4.1)"});
  }
}

// FAQ §4.2: V100 with vLLM stalls or crashes with chunked prefill; it has no bfloat16 either.
void rule_v100(const CompatInput& in, engine::ParsedArgs& args, CompatFindings& out) {
  if (in.kind != core::EngineKind::vllm) return;
  const PlacedGpu* v100 = nullptr;
  for (const auto& p : in.gpus) {
    if (is_v100(*p.gpu)) {
      v100 = &p;
      break;
    }
  }
  if (v100 == nullptr) return;
  const auto* cp = args.find("--enable-chunked-prefill");
  if (cp == nullptr || cp->bool_value.value_or(true)) {
    const bool user_enabled = cp != nullptr;
    auto f = engine::make_bool_flag(*in.spec, "--enable-chunked-prefill", false);
    if (!f) {
      out.errors.push_back({"compat.cannot_apply_fix", f.error().message, {}, std::nullopt});
    } else {
      const std::string syntax = rendered(in, *f);
      args.set(std::move(*f));
      out.fixes.push_back(
          {"compat.v100_chunked_prefill",
           where(*v100) +
               " is a V100 (compute capability 7.0): vLLM stalls or crashes there with "
               "chunked prefill (FAQ §4.2), so chunked prefill is disabled with `" +
               syntax + "` (" + in.spec->describe() + " syntax)" +
               (user_enabled ? "; your --enable-chunked-prefill was replaced" : "")});
    }
  }
  const std::string dtype = core::to_lower(value_of(args, "--dtype"));
  if (dtype.empty() || dtype == "auto") {
    if (!set_flag(in, args, "--dtype", {"half"}, out)) return;
    out.fixes.push_back({"compat.v100_dtype_half",
                         where(*v100) + " has no bfloat16 support: --dtype half set (FAQ §4.2)"});
  }
}

bool quantization_compatible(const std::string& given, const std::string& method) {
  if (given == method) return true;
  if (core::starts_with(given, method + "_")) return true;  // gptq_marlin, awq_marlin
  if ((given == "marlin" || given == "moe_wna16") && (method == "gptq" || method == "awq")) {
    return true;
  }
  return false;
}

// FAQ §4.4: quantized models need --quantization from the engine's list.
void rule_quantization(const CompatInput& in, engine::ParsedArgs& args, CompatFindings& out) {
  const auto& q = in.model->arch.quantization;
  const std::string ckpt = q ? core::to_lower(q->method) : std::string();
  std::string given = value_of(args, "--quantization");
  if (given == "None") given.clear();
  const engine::FlagSpec* flag = in.spec->find("--quantization");

  std::string method = given;
  if (!ckpt.empty() && given.empty()) {
    if (flag == nullptr) return;
    if (!flag->choices.empty() &&
        std::find(flag->choices.begin(), flag->choices.end(), ckpt) == flag->choices.end()) {
      out.errors.push_back({"compat.quantization_unknown",
                            "the checkpoint is quantized with " + ckpt +
                                " (quantization_config in config.json), which " +
                                in.spec->describe() +
                                " does not know; its --quantization "
                                "methods are: " +
                                core::join(flag->choices) + " (FAQ §4.4)",
                            {},
                            std::nullopt});
      return;
    }
    if (!set_flag(in, args, "--quantization", {ckpt}, out)) return;
    out.fixes.push_back({"compat.quantization_from_checkpoint",
                         "the checkpoint's quantization_config says quant_method " + ckpt +
                             ": --quantization " + ckpt + " set (FAQ §4.4)"});
    method = ckpt;
  } else if (!ckpt.empty() && !quantization_compatible(given, ckpt)) {
    out.errors.push_back({"compat.quantization_mismatch",
                          "--quantization " + given +
                              " does not match the checkpoint, whose quantization_config says "
                              "quant_method " +
                              ckpt + ": use --quantization " + ckpt +
                              " or leave the flag out (it is then set from the checkpoint)",
                          {},
                          std::nullopt});
    return;
  }
  if (method.empty()) return;
  const int need = min_cc_for_quantization(method);
  if (need == 0) return;
  std::set<std::string> reported;
  for (const auto& p : in.gpus) {
    if (p.gpu->cc_major == 0 || cc_of(*p.gpu) >= need || reported.count(p.node)) continue;
    reported.insert(p.node);
    const std::string need_text = std::to_string(need / 10) + "." + std::to_string(need % 10);
    out.errors.push_back(
        {"compat.quantization_needs_newer_gpu",
         method + " quantization needs GPUs with compute capability " + need_text + " or newer" +
             (need == 89 ? " (FP8 tensor cores: L40/L4/RTX 4090, H100/H200)" : "") + ", but " +
             where(p) + " has compute capability " + p.gpu->compute_capability() +
             ". Use an unquantized (BF16/FP16) version of the model, or GPUs with compute "
             "capability " +
             need_text + " or newer",
         p.node, p.gpu->index});
  }
}

std::int64_t parse_len(const std::string& v) {
  std::int64_t n = 0;
  const auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || ptr != v.data() + v.size()) return 0;
  return n;
}

// A context length above the model's maximum.
void rule_context_length(const CompatInput& in, engine::ParsedArgs& args, CompatFindings& out) {
  const bool sglang = in.kind == core::EngineKind::sglang;
  const std::string flag = sglang ? "--context-length" : "--max-model-len";
  const std::int64_t len = parse_len(value_of(args, flag));
  const std::int64_t max = in.model->arch.derived_max_len();
  if (len <= 0 || max <= 0 || len <= max) return;
  if (sglang) {
    out.errors.push_back(
        {"compat.max_model_len_exceeds_model",
         "--context-length " + std::to_string(len) +
             ": User-specified context_length is greater than the derived context_length (" +
             std::to_string(max) + ") of the model: use --context-length " + std::to_string(max) +
             " or less",
         {},
         std::nullopt});
  } else {
    out.errors.push_back(
        {"compat.max_model_len_exceeds_model",
         "--max-model-len " + std::to_string(len) +
             ": User-specified max_model_len is greater than the derived max_model_len (" +
             std::to_string(max) +
             " from max_position_embeddings and rope_scaling in config.json): use "
             "--max-model-len " +
             std::to_string(max) + " or less",
         {},
         std::nullopt});
  }
}

}  // namespace

bool is_v100(const model::GpuSpec& gpu) {
  return gpu.cc_major == 7 && gpu.cc_minor == 0;
}

int min_cc_for_quantization(const std::string& method) {
  static const std::set<std::string> fp8 = {
      "fp8",          "fbgemm_fp8", "fp8_per_tensor", "fp8_per_block", "ptpc_fp8",       "modelopt",
      "modelopt_fp8", "w8a8_fp8",   "modelopt_mxfp8", "mxfp8",         "deepseek_v4_fp8"};
  const std::string m = core::to_lower(method);
  if (fp8.count(m)) return 89;
  if (m == "gptq_marlin" || m == "awq_marlin" || m == "marlin" || m == "gptq_marlin_24") return 80;
  if (m == "awq") return 75;
  if (m == "bitsandbytes") return 70;
  if (m == "gptq") return 60;
  return 0;
}

void apply_compat_rules(const CompatInput& in, engine::ParsedArgs& args, CompatFindings& out) {
  if (in.spec == nullptr || in.model == nullptr) return;
  rule_bf16(in, args, out);
  rule_v100(in, args, out);
  rule_quantization(in, args, out);
  rule_context_length(in, args, out);
}

}  // namespace openstation::scheduler
