#include "model/config_json.hpp"

#include "core/json.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <optional>
#include <string>

namespace openstation::model {

namespace {

namespace bj = boost::json;

[[noreturn]] void fail(core::Error e) {
  throw core::ErrorException(std::move(e));
}

constexpr double kMaxRopeFactor = 1e6;
constexpr std::int64_t kMaxContext = std::int64_t{1} << 40;

/// Reads keys of one config object, naming the file in every message.
class ConfigReader {
 public:
  ConfigReader(const bj::object& o, std::string_view source) : o_(o), source_(source) {}

  const bj::value* find(std::string_view key) const {
    auto it = o_.find(key);
    if (it == o_.end() || it->value().is_null()) return nullptr;
    return &it->value();
  }

  /// The first present key of `keys` as a non-negative integer.
  std::optional<std::int64_t> opt_int(std::initializer_list<std::string_view> keys) const {
    for (auto key : keys) {
      if (const auto* v = find(key)) return to_count(*v, key);
    }
    return std::nullopt;
  }

  std::int64_t int_or(std::initializer_list<std::string_view> keys, std::int64_t dflt) const {
    return opt_int(keys).value_or(dflt);
  }

  /// A required positive integer; "config.missing_key" names the first spelling.
  std::int64_t required(std::initializer_list<std::string_view> keys) const {
    auto v = opt_int(keys);
    if (!v) {
      std::string names;
      for (auto k : keys) names += (names.empty() ? "" : " / ") + std::string(k);
      fail(core::invalid("config.missing_key",
                         std::string(source_) + ": required key \"" + std::string(*keys.begin()) +
                             "\" is missing (looked for " + names +
                             "); is this the config.json of a decoder-only language model?",
                         std::string(*keys.begin())));
    }
    if (*v <= 0) {
      fail(core::invalid("config.invalid_value",
                         std::string(source_) + ": \"" + std::string(*keys.begin()) +
                             "\" must be positive, got " + std::to_string(*v),
                         std::string(*keys.begin())));
    }
    return *v;
  }

  std::optional<std::string> opt_string(std::initializer_list<std::string_view> keys) const {
    for (auto key : keys) {
      if (const auto* v = find(key)) {
        if (!v->is_string()) bad(key, "a string");
        return std::string(v->get_string());
      }
    }
    return std::nullopt;
  }

  std::optional<double> opt_number(std::string_view key) const {
    const auto* v = find(key);
    if (!v) return std::nullopt;
    if (v->is_int64()) return static_cast<double>(v->get_int64());
    if (v->is_uint64()) return static_cast<double>(v->get_uint64());
    if (v->is_double() && std::isfinite(v->get_double())) return v->get_double();
    bad(key, "a number");
  }

  std::optional<bool> opt_bool(std::string_view key) const {
    const auto* v = find(key);
    if (!v) return std::nullopt;
    if (!v->is_bool()) bad(key, "true or false");
    return v->get_bool();
  }

  const bj::object* opt_object(std::string_view key) const {
    const auto* v = find(key);
    if (!v) return nullptr;
    if (!v->is_object()) bad(key, "an object");
    return &v->get_object();
  }

  std::int64_t to_count(const bj::value& v, std::string_view key) const {
    std::int64_t n = 0;
    if (v.is_int64()) {
      n = v.get_int64();
    } else if (v.is_uint64()) {
      if (v.get_uint64() > static_cast<std::uint64_t>(INT64_MAX)) bad(key, "an integer below 2^63");
      n = static_cast<std::int64_t>(v.get_uint64());
    } else if (v.is_double() && std::isfinite(v.get_double()) &&
               std::floor(v.get_double()) == v.get_double() && std::fabs(v.get_double()) < 9.0e18) {
      n = static_cast<std::int64_t>(v.get_double());
    } else {
      bad(key, "an integer");
    }
    if (n < 0) {
      fail(core::invalid("config.invalid_value",
                         std::string(source_) + ": \"" + std::string(key) +
                             "\" must not be negative, got " + std::to_string(n),
                         std::string(key)));
    }
    return n;
  }

  [[noreturn]] void bad(std::string_view key, std::string_view want) const {
    fail(core::invalid(
        "config.invalid_value",
        std::string(source_) + ": \"" + std::string(key) + "\" must be " + std::string(want),
        std::string(key)));
  }

 private:
  const bj::object& o_;
  std::string_view source_;
};

std::optional<Quantization> read_quantization(const ConfigReader& top, std::string_view source) {
  const bj::object* q = top.opt_object("quantization_config");
  if (!q) return std::nullopt;
  const ConfigReader r(*q, source);
  Quantization out;
  out.method = r.opt_string({"quant_method", "quant_type"}).value_or("");
  out.fmt = r.opt_string({"fmt"}).value_or("");
  out.bits = static_cast<int>(r.int_or({"bits", "w_bit", "weight_bits", "num_bits"}, 0));
  if (out.bits == 0 && r.opt_bool("load_in_4bit").value_or(false)) out.bits = 4;
  if (out.bits == 0 && r.opt_bool("load_in_8bit").value_or(false)) out.bits = 8;
  if (const auto* bs = r.find("weight_block_size")) {
    if (!bs->is_array()) r.bad("weight_block_size", "an array of integers");
    for (const auto& e : bs->get_array()) {
      out.weight_block_size.push_back(static_cast<int>(r.to_count(e, "weight_block_size")));
    }
  }
  // compressed-tensors: config_groups.<group>.weights.num_bits (and .type "float" for fp8).
  if (out.bits == 0) {
    if (const bj::object* groups = r.opt_object("config_groups")) {
      for (const auto& g : *groups) {
        if (!g.value().is_object()) continue;
        const ConfigReader gr(g.value().get_object(), source);
        const bj::object* w = gr.opt_object("weights");
        if (!w) continue;
        const ConfigReader wr(*w, source);
        out.bits = static_cast<int>(wr.int_or({"num_bits"}, 0));
        if (out.fmt.empty() && out.bits == 8 && wr.opt_string({"type"}).value_or("") == "float") {
          out.fmt = "e4m3";
        }
        if (out.bits != 0) break;
      }
    }
  }
  if (out.bits == 0 && (out.method == "fp8" || out.method == "fbgemm_fp8")) out.bits = 8;
  return out;
}

std::optional<RopeScaling> read_rope(const ConfigReader& top, std::string_view source) {
  const bj::object* o = top.opt_object("rope_scaling");
  if (!o) o = top.opt_object("rope_parameters");  // transformers v5 spelling
  if (!o) return std::nullopt;
  const ConfigReader r(*o, source);
  RopeScaling out;
  out.type = r.opt_string({"rope_type", "type"}).value_or("");
  out.factor = r.opt_number("factor").value_or(1.0);
  out.original_max_position_embeddings = r.int_or({"original_max_position_embeddings"}, 0);
  // Bounds keep derived lengths (original × factor) far from overflow.
  if (!(out.factor > 0 && out.factor <= kMaxRopeFactor))
    r.bad("rope_scaling.factor", "in (0, 1e6]");
  if (out.original_max_position_embeddings > kMaxContext) {
    r.bad("rope_scaling.original_max_position_embeddings", "at most 2^40");
  }
  if ((out.type.empty() || out.type == "default") && out.factor == 1.0 &&
      out.original_max_position_embeddings == 0) {
    return std::nullopt;  // only rope_theta and friends: no scaling
  }
  return out;
}

/// The object the text model's facts come from: the top level with text_config's keys over it.
bj::object effective_object(const bj::object& top, std::string_view source) {
  const ConfigReader r(top, source);
  const bj::object* text = r.opt_object("text_config");
  if (!text) return top;
  bj::object merged = top;
  for (const auto& kv : *text) {
    if (kv.key() == "architectures" || kv.key() == "model_type") continue;
    if (kv.value().is_null()) continue;
    merged[kv.key()] = kv.value();
  }
  return merged;
}

ModelArch parse_arch(std::string_view text, std::string_view source) {
  const bj::value doc = core::json::parse(text, source);
  if (!doc.is_object()) {
    fail(core::parse_error("config.not_object",
                           std::string(source) + ": expected a JSON object at the top level"));
  }
  const bj::object& top = doc.get_object();
  const ConfigReader tr(top, source);
  ModelArch a;
  if (const auto* archs = tr.find("architectures")) {
    if (!archs->is_array()) tr.bad("architectures", "an array of strings");
    if (!archs->get_array().empty()) {
      const auto& first = archs->get_array().front();
      if (!first.is_string()) tr.bad("architectures", "an array of strings");
      a.architecture = std::string(first.get_string());
    }
  }
  a.model_type = tr.opt_string({"model_type"}).value_or("");

  const bj::object eff = effective_object(top, source);
  const ConfigReader r(eff, source);
  if (a.model_type.empty()) a.model_type = r.opt_string({"model_type"}).value_or("");

  a.hidden_size = r.required({"hidden_size", "n_embd", "d_model"});
  a.num_layers = r.required({"num_hidden_layers", "n_layer", "num_layers", "n_layers"});
  a.num_attention_heads = r.required({"num_attention_heads", "n_head", "num_heads", "n_heads"});
  a.vocab_size = r.required({"vocab_size", "padded_vocab_size"});
  a.num_kv_heads =
      r.int_or({"num_key_value_heads", "num_kv_heads", "n_head_kv", "multi_query_group_num"},
               a.num_attention_heads);
  if (a.num_kv_heads == 0) a.num_kv_heads = a.num_attention_heads;
  a.head_dim = r.int_or({"head_dim", "head_size"}, 0);
  if (a.head_dim == 0) a.head_dim = a.hidden_size / a.num_attention_heads;

  // vLLM takes the smallest of the length keys present.
  std::int64_t max_len = 0;
  for (auto key : {"max_position_embeddings", "n_positions", "max_seq_len", "seq_length",
                   "max_sequence_length", "max_seq_length", "seq_len"}) {
    if (auto v = r.opt_int({key}); v && *v > 0) max_len = max_len == 0 ? *v : std::min(max_len, *v);
  }
  if (max_len > kMaxContext) r.bad("max_position_embeddings", "at most 2^40");
  a.max_position_embeddings = max_len;

  a.intermediate_size = r.int_or({"intermediate_size", "ffn_dim", "n_inner", "ffn_hidden_size"}, 0);
  a.moe_intermediate_size = r.int_or({"moe_intermediate_size", "expert_intermediate_size"}, 0);
  a.n_routed_experts = r.int_or({"n_routed_experts", "num_experts", "num_local_experts"}, 0);
  a.num_experts_per_tok = r.int_or({"num_experts_per_tok", "num_experts_per_token", "moe_topk"}, 0);
  a.n_shared_experts = r.int_or({"n_shared_experts", "num_shared_experts"}, 0);
  a.first_k_dense_replace = r.int_or({"first_k_dense_replace"}, 0);
  a.tie_word_embeddings = r.opt_bool("tie_word_embeddings").value_or(false);
  if (auto d = r.opt_string({"torch_dtype", "dtype"})) a.torch_dtype = parse_dtype(*d);

  a.kv_lora_rank = r.int_or({"kv_lora_rank"}, 0);
  a.q_lora_rank = r.int_or({"q_lora_rank"}, 0);
  a.qk_rope_head_dim = r.int_or({"qk_rope_head_dim"}, 0);
  a.qk_nope_head_dim = r.int_or({"qk_nope_head_dim"}, 0);
  a.v_head_dim = r.int_or({"v_head_dim"}, 0);
  a.is_mla = a.kv_lora_rank > 0;

  a.quantization = read_quantization(r, source);
  a.rope_scaling = read_rope(r, source);
  return a;
}

}  // namespace

core::Result<ModelArch> parse_config_json(std::string_view text, std::string_view source) {
  return core::json::capture([&] { return parse_arch(text, source); });
}

core::Result<ModelArch> load_config_json(const std::filesystem::path& path) {
  auto text = core::json::read_file(path, 16u << 20);
  if (!text) return text.error();
  return parse_config_json(*text, path.string());
}

}  // namespace openstation::model
