#include "model/arch.hpp"

#include "core/strings.hpp"

namespace openstation::model {

std::string to_string(DType d) {
  switch (d) {
    case DType::f32: return "float32";
    case DType::f16: return "float16";
    case DType::bf16: return "bfloat16";
    case DType::fp8: return "fp8";
    case DType::int8: return "int8";
    case DType::int4: return "int4";
    case DType::unknown: return "unknown";
  }
  return "unknown";
}

DType parse_dtype(const std::string& s) {
  const std::string l = core::to_lower(s);
  if (l == "float32" || l == "fp32" || l == "f32" || l == "float") return DType::f32;
  if (l == "float16" || l == "fp16" || l == "f16" || l == "half") return DType::f16;
  if (l == "bfloat16" || l == "bf16") return DType::bf16;
  if (l == "fp8" || l == "float8" || l == "f8_e4m3" || l == "fp8_e4m3" || l == "f8_e5m2" ||
      l == "float8_e4m3fn" || l == "e4m3")
    return DType::fp8;
  if (l == "int8" || l == "i8") return DType::int8;
  if (l == "int4" || l == "i4") return DType::int4;
  return DType::unknown;
}

double bytes_per_element(DType d) {
  switch (d) {
    case DType::f32: return 4;
    case DType::f16:
    case DType::bf16: return 2;
    case DType::fp8:
    case DType::int8: return 1;
    case DType::int4: return 0.5;
    case DType::unknown: return 0;
  }
  return 0;
}

std::int64_t ModelArch::derived_max_len() const {
  std::int64_t base = max_position_embeddings;
  if (!rope_scaling) return base;
  const auto& r = *rope_scaling;
  if (r.type == "llama3" || r.factor <= 1.0) return base;
  if (r.type == "yarn" && r.original_max_position_embeddings > 0) {
    // vLLM: original_max_position_embeddings × factor replaces max_position_embeddings.
    return static_cast<std::int64_t>(static_cast<double>(r.original_max_position_embeddings) *
                                     r.factor);
  }
  if (r.type == "dynamic") return base;
  return static_cast<std::int64_t>(static_cast<double>(base) * r.factor);
}

}  // namespace openstation::model
