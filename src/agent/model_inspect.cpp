#include "agent/model_inspect.hpp"

#include "core/json.hpp"

#include <boost/json.hpp>

namespace openstation::agent {
namespace json = boost::json;
namespace cj = core::json;

namespace {

std::string_view format_name(model::WeightFormat f) {
  switch (f) {
    case model::WeightFormat::safetensors: return "safetensors";
    case model::WeightFormat::gguf: return "gguf";
    case model::WeightFormat::unknown: break;
  }
  return "unknown";
}

model::WeightFormat parse_format(std::string_view s) {
  if (s == "safetensors") return model::WeightFormat::safetensors;
  if (s == "gguf") return model::WeightFormat::gguf;
  return model::WeightFormat::unknown;
}

json::object arch_to_json(const model::ModelArch& a) {
  json::object o;
  o["architecture"] = a.architecture;
  o["model_type"] = a.model_type;
  o["hidden_size"] = a.hidden_size;
  o["num_layers"] = a.num_layers;
  o["num_attention_heads"] = a.num_attention_heads;
  o["num_kv_heads"] = a.num_kv_heads;
  o["head_dim"] = a.head_dim;
  o["vocab_size"] = a.vocab_size;
  o["max_position_embeddings"] = a.max_position_embeddings;
  o["intermediate_size"] = a.intermediate_size;
  o["moe_intermediate_size"] = a.moe_intermediate_size;
  o["n_routed_experts"] = a.n_routed_experts;
  o["num_experts_per_tok"] = a.num_experts_per_tok;
  o["n_shared_experts"] = a.n_shared_experts;
  o["first_k_dense_replace"] = a.first_k_dense_replace;
  o["tie_word_embeddings"] = a.tie_word_embeddings;
  o["torch_dtype"] = model::to_string(a.torch_dtype);
  o["is_mla"] = a.is_mla;
  o["kv_lora_rank"] = a.kv_lora_rank;
  o["q_lora_rank"] = a.q_lora_rank;
  o["qk_rope_head_dim"] = a.qk_rope_head_dim;
  o["qk_nope_head_dim"] = a.qk_nope_head_dim;
  o["v_head_dim"] = a.v_head_dim;
  if (a.quantization) {
    json::array bs;
    for (int b : a.quantization->weight_block_size) bs.emplace_back(b);
    o["quantization"] = json::object{{"method", a.quantization->method},
                                     {"bits", a.quantization->bits},
                                     {"fmt", a.quantization->fmt},
                                     {"weight_block_size", std::move(bs)}};
  }
  if (a.rope_scaling) {
    o["rope_scaling"] = json::object{
        {"type", a.rope_scaling->type},
        {"factor", a.rope_scaling->factor},
        {"original_max_position_embeddings", a.rope_scaling->original_max_position_embeddings}};
  }
  return o;
}

std::int64_t int_or(const json::object& o, std::string_view key, std::string_view path) {
  return cj::opt_int(o, key, path).value_or(0);
}

std::string string_or(const json::object& o, std::string_view key, std::string_view path) {
  return cj::opt_string(o, key, path).value_or("");
}

model::ModelArch arch_from_json(const json::object& o, std::string_view path) {
  model::ModelArch a;
  a.architecture = string_or(o, "architecture", path);
  a.model_type = string_or(o, "model_type", path);
  a.hidden_size = int_or(o, "hidden_size", path);
  a.num_layers = int_or(o, "num_layers", path);
  a.num_attention_heads = int_or(o, "num_attention_heads", path);
  a.num_kv_heads = int_or(o, "num_kv_heads", path);
  a.head_dim = int_or(o, "head_dim", path);
  a.vocab_size = int_or(o, "vocab_size", path);
  a.max_position_embeddings = int_or(o, "max_position_embeddings", path);
  a.intermediate_size = int_or(o, "intermediate_size", path);
  a.moe_intermediate_size = int_or(o, "moe_intermediate_size", path);
  a.n_routed_experts = int_or(o, "n_routed_experts", path);
  a.num_experts_per_tok = int_or(o, "num_experts_per_tok", path);
  a.n_shared_experts = int_or(o, "n_shared_experts", path);
  a.first_k_dense_replace = int_or(o, "first_k_dense_replace", path);
  a.tie_word_embeddings = cj::opt_bool(o, "tie_word_embeddings", path).value_or(false);
  a.torch_dtype = model::parse_dtype(string_or(o, "torch_dtype", path));
  a.is_mla = cj::opt_bool(o, "is_mla", path).value_or(false);
  a.kv_lora_rank = int_or(o, "kv_lora_rank", path);
  a.q_lora_rank = int_or(o, "q_lora_rank", path);
  a.qk_rope_head_dim = int_or(o, "qk_rope_head_dim", path);
  a.qk_nope_head_dim = int_or(o, "qk_nope_head_dim", path);
  a.v_head_dim = int_or(o, "v_head_dim", path);
  if (const auto* q = o.if_contains("quantization"); q != nullptr && !q->is_null()) {
    const std::string qp = cj::join_path(path, "quantization");
    const auto& qo = cj::as_object(*q, qp);
    model::Quantization quant;
    quant.method = string_or(qo, "method", qp);
    quant.bits = static_cast<int>(int_or(qo, "bits", qp));
    quant.fmt = string_or(qo, "fmt", qp);
    if (const auto* bs = qo.if_contains("weight_block_size"); bs != nullptr && !bs->is_null()) {
      const std::string bp = cj::join_path(qp, "weight_block_size");
      for (const auto& v : cj::as_array(*bs, bp)) {
        quant.weight_block_size.push_back(static_cast<int>(cj::to_int(v, bp)));
      }
    }
    a.quantization = std::move(quant);
  }
  if (const auto* r = o.if_contains("rope_scaling"); r != nullptr && !r->is_null()) {
    const std::string rp = cj::join_path(path, "rope_scaling");
    const auto& ro = cj::as_object(*r, rp);
    model::RopeScaling rs;
    rs.type = string_or(ro, "type", rp);
    rs.factor = cj::opt_number(ro, "factor", rp).value_or(1.0);
    rs.original_max_position_embeddings = int_or(ro, "original_max_position_embeddings", rp);
    a.rope_scaling = std::move(rs);
  }
  return a;
}

json::value parse_text(std::string_view text, std::string_view what) {
  try {
    return json::parse(text);
  } catch (const std::exception& e) {
    throw core::ErrorException(core::parse_error(
        "protocol.bad_json", std::string(what) + ": not valid JSON: " + e.what()));
  }
}

}  // namespace

std::string model_info_to_json(const model::ModelInfo& info) {
  json::object o;
  o["path"] = info.path;
  o["id"] = info.id;
  o["format"] = format_name(info.format);
  o["size_bytes"] = info.disk_bytes;
  o["weight_bytes"] = info.weight_bytes;
  o["params"] = info.params;
  o["weights_exact"] = info.weights_exact;
  o["architecture"] = arch_to_json(info.arch);
  json::object by_type;
  for (const auto& [k, v] : info.bytes_by_type) by_type[k] = v;
  o["bytes_by_type"] = std::move(by_type);
  if (!info.gguf_chat_template.empty()) o["chat_template"] = info.gguf_chat_template;
  return json::serialize(o);
}

core::Result<model::ModelInfo> parse_model_info_json(std::string_view text) {
  return cj::capture([&] {
    const auto v = parse_text(text, "model summary");
    const auto& o = cj::as_object(v, "");
    model::ModelInfo info;
    info.path = string_or(o, "path", "");
    info.id = string_or(o, "id", "");
    info.format = parse_format(cj::get_string(o, "format", ""));
    info.disk_bytes = static_cast<std::uint64_t>(int_or(o, "size_bytes", ""));
    info.weight_bytes = static_cast<std::uint64_t>(int_or(o, "weight_bytes", ""));
    info.params = cj::opt_number(o, "params", "").value_or(0.0);
    info.weights_exact = cj::opt_bool(o, "weights_exact", "").value_or(false);
    if (const auto* a = o.if_contains("architecture"); a != nullptr && !a->is_null()) {
      info.arch = arch_from_json(cj::as_object(*a, "architecture"), "architecture");
    }
    if (const auto* b = o.if_contains("bytes_by_type"); b != nullptr && !b->is_null()) {
      for (const auto& [k, bytes] : cj::as_object(*b, "bytes_by_type")) {
        const std::string p = cj::join_path("bytes_by_type", k);
        info.bytes_by_type[std::string(k)] = static_cast<std::uint64_t>(cj::to_int(bytes, p));
      }
    }
    info.gguf_chat_template = string_or(o, "chat_template", "");
    return info;
  });
}

core::Result<std::string> parse_inspect_request(std::string_view text) {
  return cj::capture([&] {
    const auto v = parse_text(text, "inspect request");
    const auto& o = cj::as_object(v, "");
    cj::reject_unknown(o, {"path"}, "");
    std::string path = cj::get_string(o, "path", "");
    if (path.empty() || path.front() != '/') {
      throw core::ErrorException(core::invalid(
          "agent.bad_path",
          "path must be an absolute path on this node (a model directory or a .gguf file), not \"" +
              path + "\"",
          "path"));
    }
    return path;
  });
}

}  // namespace openstation::agent
