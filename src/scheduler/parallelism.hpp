#pragma once
/// Tensor-parallel sizes a model accepts, and which GPUs of a node a plan may use.

#include "model/arch.hpp"
#include "model/node.hpp"

#include <string>
#include <vector>

namespace openstation::scheduler {

/// True when the engines can split `arch` over `tp` GPUs: the attention heads are divisible by
/// tp, the KV heads divide tp or are divisible by it, and the MLP width is divisible by tp (facts
/// the model does not state are not checked).
bool tp_valid_for_model(const model::ModelArch& arch, int tp);

/// The largest tp in [1, max_tp] with tp_valid_for_model; 0 when max_tp < 1.
int largest_valid_tp(const model::ModelArch& arch, int max_tp);

/// The valid tp values in [1, max_tp], ascending, for messages.
std::vector<int> valid_tps(const model::ModelArch& arch, int max_tp);

/// Why `tp` is not valid for `arch`, in vLLM's words ("Total number of attention heads (12) must
/// be divisible by tensor parallel size (8)."); empty when it is valid.
std::string tp_invalid_reason(const model::ModelArch& arch, int tp);

/// The GPUs of a node that can be used: health "ok", in index order.
std::vector<const model::GpuSpec*> healthy_gpus(const model::NodeSpec& node);

/// GPU indexes missing between 0 and the highest index listed (cards that fell off the bus and
/// are no longer reported at all).
std::vector<int> missing_gpu_indexes(const model::NodeSpec& node);

/// Picks `count` healthy GPUs of `node`, preferring those with the least memory held by other
/// processes (then the lowest index); returned in index order. Fewer when the node has fewer.
std::vector<int> pick_gpus(const model::NodeSpec& node, int count);

}  // namespace openstation::scheduler
