#include "model/catalog.hpp"

#include "core/json.hpp"
#include "core/strings.hpp"
#include "model/estimator_weights.hpp"

#include <boost/json.hpp>

#include <cmath>
#include <set>

namespace openstation::embedded {
std::string_view catalog_json();
}  // namespace openstation::embedded

namespace openstation::model {

namespace json = core::json;

namespace {

[[noreturn]] void fail(core::Error e) {
  throw core::ErrorException(std::move(e));
}

[[noreturn]] void bad(const std::string& path, const std::string& msg) {
  fail(core::invalid("catalog.invalid_card", path + " " + msg, path));
}

bool valid_id(const std::string& id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
    if (!ok) return false;
  }
  return true;
}

std::int64_t opt_positive(const boost::json::object& o, std::string_view key,
                          const std::string& path, bool required) {
  const auto v = json::opt_int(o, key, path);
  const std::string p = json::join_path(path, key);
  if (!v) {
    if (required) fail(core::invalid("json.missing_field", p + " is required", p));
    return 0;
  }
  if (*v < 0) bad(p, "must not be negative, got " + std::to_string(*v));
  if (required && *v == 0) bad(p, "must be positive");
  return *v;
}

ModelArch parse_arch(const boost::json::object& o, const std::string& path) {
  json::reject_unknown(o,
                       {"architecture",
                        "model_type",
                        "hidden_size",
                        "num_layers",
                        "num_attention_heads",
                        "num_kv_heads",
                        "head_dim",
                        "vocab_size",
                        "max_position_embeddings",
                        "intermediate_size",
                        "moe_intermediate_size",
                        "n_routed_experts",
                        "n_shared_experts",
                        "num_experts_per_tok",
                        "first_k_dense_replace",
                        "tie_word_embeddings",
                        "torch_dtype",
                        "kv_lora_rank",
                        "q_lora_rank",
                        "qk_rope_head_dim",
                        "qk_nope_head_dim",
                        "v_head_dim",
                        "quantization_config",
                        "rope_scaling"},
                       path);
  ModelArch a;
  a.architecture = json::opt_string(o, "architecture", path).value_or("");
  a.model_type = json::opt_string(o, "model_type", path).value_or("");
  a.hidden_size = opt_positive(o, "hidden_size", path, true);
  a.num_layers = opt_positive(o, "num_layers", path, true);
  a.num_attention_heads = opt_positive(o, "num_attention_heads", path, true);
  a.num_kv_heads = opt_positive(o, "num_kv_heads", path, false);
  if (a.num_kv_heads == 0) a.num_kv_heads = a.num_attention_heads;
  a.head_dim = opt_positive(o, "head_dim", path, false);
  if (a.head_dim == 0) a.head_dim = a.hidden_size / a.num_attention_heads;
  a.vocab_size = opt_positive(o, "vocab_size", path, true);
  a.max_position_embeddings = opt_positive(o, "max_position_embeddings", path, true);
  a.intermediate_size = opt_positive(o, "intermediate_size", path, false);
  a.moe_intermediate_size = opt_positive(o, "moe_intermediate_size", path, false);
  a.n_routed_experts = opt_positive(o, "n_routed_experts", path, false);
  a.n_shared_experts = opt_positive(o, "n_shared_experts", path, false);
  a.num_experts_per_tok = opt_positive(o, "num_experts_per_tok", path, false);
  a.first_k_dense_replace = opt_positive(o, "first_k_dense_replace", path, false);
  a.tie_word_embeddings = json::opt_bool(o, "tie_word_embeddings", path).value_or(false);
  if (auto t = json::opt_string(o, "torch_dtype", path)) {
    a.torch_dtype = parse_dtype(*t);
    if (a.torch_dtype == DType::unknown) {
      bad(json::join_path(path, "torch_dtype"),
          "'" + *t + "' is not a dtype (use bfloat16, float16 or float32)");
    }
  } else {
    a.torch_dtype = DType::bf16;
  }
  a.kv_lora_rank = opt_positive(o, "kv_lora_rank", path, false);
  a.q_lora_rank = opt_positive(o, "q_lora_rank", path, false);
  a.qk_rope_head_dim = opt_positive(o, "qk_rope_head_dim", path, false);
  a.qk_nope_head_dim = opt_positive(o, "qk_nope_head_dim", path, false);
  a.v_head_dim = opt_positive(o, "v_head_dim", path, false);
  a.is_mla = a.kv_lora_rank > 0;

  if (a.num_attention_heads % a.num_kv_heads != 0) {
    bad(json::join_path(path, "num_kv_heads"), "(" + std::to_string(a.num_kv_heads) +
                                                   ") must divide num_attention_heads (" +
                                                   std::to_string(a.num_attention_heads) + ")");
  }
  if (a.is_mla && (a.qk_rope_head_dim == 0 || a.qk_nope_head_dim == 0 || a.v_head_dim == 0)) {
    bad(path,
        "has kv_lora_rank (multi-head latent attention) but lacks qk_rope_head_dim, "
        "qk_nope_head_dim or v_head_dim");
  }
  if (a.n_routed_experts > 0 && a.moe_intermediate_size == 0) {
    bad(json::join_path(path, "moe_intermediate_size"), "is required when n_routed_experts is set");
  }
  if (!a.is_mla && a.n_routed_experts == 0 && a.intermediate_size == 0) {
    bad(json::join_path(path, "intermediate_size"), "is required");
  }

  if (auto it = o.find("quantization_config"); it != o.end() && !it->value().is_null()) {
    const std::string qp = json::join_path(path, "quantization_config");
    const auto& q = json::as_object(it->value(), qp);
    json::reject_unknown(q, {"quant_method", "bits", "fmt", "weight_block_size"}, qp);
    Quantization quant;
    quant.method = json::get_string(q, "quant_method", qp);
    quant.bits = static_cast<int>(opt_positive(q, "bits", qp, false));
    quant.fmt = json::opt_string(q, "fmt", qp).value_or("");
    if (auto wb = q.find("weight_block_size"); wb != q.end() && !wb->value().is_null()) {
      const std::string wp = json::join_path(qp, "weight_block_size");
      for (const auto& e : json::as_array(wb->value(), wp)) {
        const auto n = json::to_int(e, wp);
        if (n <= 0) bad(wp, "entries must be positive");
        quant.weight_block_size.push_back(static_cast<int>(n));
      }
    }
    a.quantization = quant;
  }
  if (auto it = o.find("rope_scaling"); it != o.end() && !it->value().is_null()) {
    const std::string rp = json::join_path(path, "rope_scaling");
    const auto& r = json::as_object(it->value(), rp);
    json::reject_unknown(r, {"type", "factor", "original_max_position_embeddings"}, rp);
    RopeScaling rs;
    rs.type = json::get_string(r, "type", rp);
    rs.factor = json::opt_number(r, "factor", rp).value_or(1.0);
    if (!(rs.factor > 0)) bad(json::join_path(rp, "factor"), "must be positive");
    rs.original_max_position_embeddings =
        opt_positive(r, "original_max_position_embeddings", rp, false);
    a.rope_scaling = rs;
  }
  return a;
}

std::string label_for(double params_b) {
  char buf[32];
  if (std::fabs(params_b - std::round(params_b)) < 1e-9) {
    std::snprintf(buf, sizeof buf, "%.0fB", params_b);
  } else {
    std::snprintf(buf, sizeof buf, "%gB", params_b);
  }
  return buf;
}

ModelCard parse_card(const boost::json::object& o, const std::string& path, bool builtin) {
  json::reject_unknown(o,
                       {"id", "display_name", "params_b", "params_label", "dtype", "hf_repo",
                        "ms_repo", "disk_gb", "arch"},
                       path);
  ModelCard c;
  c.builtin = builtin;
  c.id = json::get_string(o, "id", path);
  if (!valid_id(c.id)) {
    bad(json::join_path(path, "id"),
        "'" + c.id + "' must be 1-128 characters of a-z, 0-9, '-', '.' or '_'");
  }
  c.display_name = json::opt_string(o, "display_name", path).value_or(c.id);
  c.params_b = json::get_number(o, "params_b", path);
  if (!(c.params_b > 0) || c.params_b > 100000) {
    bad(json::join_path(path, "params_b"), "must be a positive number of billions of parameters");
  }
  c.params_label = json::opt_string(o, "params_label", path).value_or(label_for(c.params_b));
  const std::string dt = json::get_string(o, "dtype", path);
  c.dtype = parse_dtype(dt);
  if (c.dtype == DType::unknown) {
    bad(json::join_path(path, "dtype"),
        "'" + dt + "' is not known (use bfloat16, float16, float32, fp8, int8 or int4)");
  }
  c.hf_repo = json::opt_string(o, "hf_repo", path).value_or("");
  c.ms_repo = json::opt_string(o, "ms_repo", path).value_or("");
  for (const auto* repo : {&c.hf_repo, &c.ms_repo}) {
    if (!repo->empty() &&
        (repo->find('/') == std::string::npos || repo->front() == '/' || repo->back() == '/')) {
      bad(json::join_path(path, repo == &c.hf_repo ? "hf_repo" : "ms_repo"),
          "'" + *repo + "' must look like owner/name");
    }
  }
  c.min_vram_gb = seed_min_vram_gb(c.params_b, c.dtype);
  const auto disk = json::opt_number(o, "disk_gb", path);
  if (disk && !(*disk >= 0)) bad(json::join_path(path, "disk_gb"), "must not be negative");
  c.disk_gb = disk ? *disk : c.params_b * bytes_per_element(c.dtype);
  const auto it = o.find("arch");
  if (it == o.end() || it->value().is_null()) {
    fail(core::invalid("json.missing_field", json::join_path(path, "arch") + " is required",
                       json::join_path(path, "arch")));
  }
  c.arch = parse_arch(json::as_object(it->value(), json::join_path(path, "arch")),
                      json::join_path(path, "arch"));
  return c;
}

}  // namespace

std::int64_t seed_min_vram_gb(double params_b, DType dtype) {
  const double weights_gb = params_b * bytes_per_element(dtype);
  return static_cast<std::int64_t>(std::llround(weights_gb * 1.2 + 2.0));
}

ModelInfo ModelCard::to_model_info() const {
  ModelInfo m;
  m.id = id;
  m.arch = arch;
  m.params = params_b * 1e9;
  m.weights_exact = false;
  if (auto p = count_params(arch)) {
    m.weight_bytes = weight_bytes_from_params(arch, *p);
  } else {
    m.weight_bytes = static_cast<std::uint64_t>(std::llround(m.params * bytes_per_element(dtype)));
  }
  m.disk_bytes = static_cast<std::uint64_t>(std::llround(disk_gb * 1e9));
  return m;
}

core::Result<std::vector<ModelCard>> Catalog::parse(std::string_view json_text,
                                                    std::string_view source, bool builtin) {
  return json::capture([&] {
    const auto doc = json::parse(json_text, source);
    const auto& root = json::as_object(doc, "");
    json::reject_unknown(root, {"models"}, "");
    const auto it = root.find("models");
    if (it == root.end()) {
      fail(core::invalid("catalog.invalid_card",
                         std::string(source) + ": the file must be {\"models\": [card, ...]}",
                         "models"));
    }
    const auto& arr = json::as_array(it->value(), "models");
    std::vector<ModelCard> cards;
    std::set<std::string> seen;
    for (std::size_t i = 0; i < arr.size(); ++i) {
      const std::string path = "models[" + std::to_string(i) + "]";
      std::string id_hint;
      if (arr[i].is_object()) {
        if (auto id = arr[i].get_object().find("id");
            id != arr[i].get_object().end() && id->value().is_string()) {
          id_hint = std::string(id->value().get_string());
        }
      }
      try {
        ModelCard c = parse_card(json::as_object(arr[i], path), path, builtin);
        if (!seen.insert(c.id).second) {
          fail(core::invalid("catalog.duplicate_id",
                             "id '" + c.id + "' appears more than once; ids must be unique",
                             path + ".id"));
        }
        cards.push_back(std::move(c));
      } catch (const core::ErrorException& e) {
        core::Error err = e.error();
        const std::string where = std::string(source) + ": card " + std::to_string(i) +
                                  (id_hint.empty() ? "" : " ('" + id_hint + "')") + ": ";
        err.message = where + err.message;
        if (err.code == "json.unknown_field") {
          err.code = "catalog.unknown_field";
        } else if (err.code.rfind("json.", 0) == 0) {
          err.code = "catalog.invalid_card";
        }
        fail(err);
      }
    }
    return cards;
  });
}

Catalog Catalog::builtin() {
  Catalog c;
  auto cards = parse(embedded::catalog_json(), "built-in catalog", true);
  if (cards) c.cards_ = std::move(*cards);  // a bad built-in file fails the catalog unit tests
  return c;
}

core::Result<Catalog> Catalog::load(const std::filesystem::path& user_file) {
  Catalog c = builtin();
  std::error_code ec;
  if (user_file.empty() || !std::filesystem::exists(user_file, ec)) return c;
  auto text = json::read_file(user_file);
  if (!text) return text.error();
  auto user = parse(*text, user_file.string(), false);
  if (!user) return user.error();
  for (auto& card : *user) {
    bool replaced = false;
    for (auto& existing : c.cards_) {
      if (existing.id == card.id) {
        existing = card;
        replaced = true;
      }
    }
    if (!replaced) c.cards_.push_back(std::move(card));
  }
  return c;
}

core::Result<ModelCard> Catalog::find(std::string_view id) const {
  std::vector<std::string> ids;
  for (const auto& c : cards_) {
    if (c.id == id) return c;
    ids.push_back(c.id);
  }
  // Accept the display name or the HF/ModelScope repo id, case-insensitively.
  const std::string lower = core::to_lower(id);
  for (const auto& c : cards_) {
    if (core::to_lower(c.display_name) == lower || core::to_lower(c.hf_repo) == lower ||
        core::to_lower(c.ms_repo) == lower) {
      return c;
    }
  }
  std::string msg = "unknown model '" + std::string(id) + "'";
  const std::string guess = core::closest(lower, ids);
  if (!guess.empty()) msg += "; did you mean '" + guess + "'?";
  msg += " Run `openstation models catalog` to list the models.";
  return core::not_found("catalog.unknown_model", msg, "model");
}

}  // namespace openstation::model
