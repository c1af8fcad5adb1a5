#include "model/estimator_json.hpp"

#include <boost/json.hpp>

namespace openstation::model {

boost::json::object estimate_to_json(const Estimate& e) {
  boost::json::object o;
  o["model"] = e.model;
  o["engine"] = e.engine;
  o["engine_version"] = e.engine_version;
  o["node"] = e.node.empty() ? boost::json::value(nullptr) : boost::json::value(e.node);
  o["gpu_name"] = e.gpu_name;
  o["gpus_used"] = e.gpus_used;
  o["tp"] = e.tp;
  o["pp"] = e.pp;
  o["weights_bytes"] = e.weights_bytes;
  o["weights_bytes_per_gpu"] = e.weights_bytes_per_gpu;
  o["min_vram_gb"] = e.min_vram_gb;
  o["gpu_total_bytes"] = e.gpu_total_bytes;
  o["free_bytes_per_gpu"] = e.free_bytes_per_gpu;
  o["other_processes_bytes_per_gpu"] = e.other_processes_bytes_per_gpu;
  o["budget_bytes_per_gpu"] = e.budget_bytes_per_gpu;
  o["utilization"] = e.utilization;
  o["mem_fraction_static"] = e.mem_fraction_static;
  o["activation_bytes_per_gpu"] = e.activation_bytes_per_gpu;
  o["non_torch_bytes_per_gpu"] = e.non_torch_bytes_per_gpu;
  o["cuda_graph_bytes_per_gpu"] = e.cuda_graph_bytes_per_gpu;
  o["kv_cache_dtype"] = e.kv_cache_dtype;
  o["kv_bytes_per_token"] = e.kv_bytes_per_token;
  o["block_size"] = e.block_size;
  o["kv_cache_bytes_per_gpu"] = e.kv_cache_bytes_per_gpu;
  o["kv_cache_tokens"] = e.kv_cache_tokens;
  o["max_model_len"] = e.max_model_len;
  o["model_max_len"] = e.model_max_len;
  o["max_num_seqs"] = e.max_num_seqs;
  o["max_num_batched_tokens"] = e.max_num_batched_tokens;
  o["max_concurrency"] = e.max_concurrency;
  o["largest_fitting_len"] = e.largest_fitting_len;
  o["disk_bytes"] = e.disk_bytes;
  o["gpus_needed"] = e.gpus_needed;
  o["fits"] = e.has_verdict ? boost::json::value(e.fits) : boost::json::value(nullptr);
  boost::json::array problems;
  for (const auto& p : e.problems) {
    problems.push_back(boost::json::object{{"code", p.code}, {"message", p.message}});
  }
  o["problems"] = std::move(problems);
  boost::json::array suggestions;
  for (const auto& s : e.suggestions) suggestions.push_back(boost::json::value(s));
  o["suggestions"] = std::move(suggestions);
  boost::json::array notes;
  for (const auto& s : e.notes) notes.push_back(boost::json::value(s));
  o["notes"] = std::move(notes);
  return o;
}

}  // namespace openstation::model
