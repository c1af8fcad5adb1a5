#include "scheduler/parallelism.hpp"

#include <algorithm>
#include <set>

namespace openstation::scheduler {

std::string tp_invalid_reason(const model::ModelArch& arch, int tp) {
  if (tp < 1) return "tensor parallel size must be at least 1";
  const auto t = static_cast<std::int64_t>(tp);
  if (arch.num_attention_heads > 0 && arch.num_attention_heads % t != 0) {
    return "Total number of attention heads (" + std::to_string(arch.num_attention_heads) +
           ") must be divisible by tensor parallel size (" + std::to_string(tp) + ").";
  }
  const std::int64_t kv = arch.num_kv_heads > 0 ? arch.num_kv_heads : arch.num_attention_heads;
  if (kv > 0 && kv % t != 0 && t % kv != 0) {
    return "the " + std::to_string(kv) +
           " KV heads can be neither split nor replicated evenly over tensor parallel size " +
           std::to_string(tp) + " (one must divide the other).";
  }
  if (arch.intermediate_size > 0 && arch.intermediate_size % t != 0) {
    return "the MLP width (intermediate_size " + std::to_string(arch.intermediate_size) +
           ") is not divisible by tensor parallel size " + std::to_string(tp) + ".";
  }
  return {};
}

bool tp_valid_for_model(const model::ModelArch& arch, int tp) {
  return tp_invalid_reason(arch, tp).empty();
}

int largest_valid_tp(const model::ModelArch& arch, int max_tp) {
  for (int t = max_tp; t >= 1; --t) {
    if (tp_valid_for_model(arch, t)) return t;
  }
  return 0;
}

std::vector<int> valid_tps(const model::ModelArch& arch, int max_tp) {
  std::vector<int> out;
  for (int t = 1; t <= max_tp; ++t) {
    if (tp_valid_for_model(arch, t)) out.push_back(t);
  }
  return out;
}

std::vector<const model::GpuSpec*> healthy_gpus(const model::NodeSpec& node) {
  std::vector<const model::GpuSpec*> out;
  for (const auto& g : node.gpus) {
    if (g.health == "ok") out.push_back(&g);
  }
  std::sort(out.begin(), out.end(),
            [](const model::GpuSpec* a, const model::GpuSpec* b) { return a->index < b->index; });
  return out;
}

std::vector<int> missing_gpu_indexes(const model::NodeSpec& node) {
  std::set<int> present;
  for (const auto& g : node.gpus) present.insert(g.index);
  std::vector<int> out;
  if (present.empty()) return out;
  for (int i = 0; i < *present.rbegin(); ++i) {
    if (!present.count(i)) out.push_back(i);
  }
  return out;
}

std::vector<int> pick_gpus(const model::NodeSpec& node, int count) {
  auto gpus = healthy_gpus(node);
  std::stable_sort(gpus.begin(), gpus.end(), [](const model::GpuSpec* a, const model::GpuSpec* b) {
    return a->memory_used_mib < b->memory_used_mib;
  });
  std::vector<int> out;
  for (const auto* g : gpus) {
    if (static_cast<int>(out.size()) >= count) break;
    out.push_back(g->index);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace openstation::scheduler
