#include "support/model_fixtures.hpp"

#include "model/gguf.hpp"
#include "model/safetensors.hpp"

#include <boost/json.hpp>

#include <array>
#include <cmath>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include <unistd.h>

namespace openstation::fixtures {

namespace fs = std::filesystem;
namespace bj = boost::json;

namespace {

void write_zeros(std::ofstream& out, std::uint64_t n) {
  static const std::array<char, 65536> kZeros{};
  while (n > 0) {
    const auto k = static_cast<std::streamsize>(std::min<std::uint64_t>(n, kZeros.size()));
    out.write(kZeros.data(), k);
    n -= static_cast<std::uint64_t>(k);
  }
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

bool is_fp8_block(const model::ModelArch& a) {
  return a.quantization && a.quantization->method == "fp8" &&
         a.quantization->weight_block_size.size() == 2;
}

/// Adds a linear weight [out, in], quantised to FP8 blocks when the arch says so.
void linear(std::vector<TensorSpec>& t, const model::ModelArch& a, const std::string& name,
            std::int64_t out, std::int64_t in, const std::string& dtype) {
  if (is_fp8_block(a)) {
    const std::int64_t b0 = a.quantization->weight_block_size[0];
    const std::int64_t b1 = a.quantization->weight_block_size[1];
    t.push_back({name, "F8_E4M3", {out, in}});
    t.push_back({name + "_scale_inv", "F32", {(out + b0 - 1) / b0, (in + b1 - 1) / b1}});
  } else {
    t.push_back({name, dtype, {out, in}});
  }
}

void dense_mlp(std::vector<TensorSpec>& t, const model::ModelArch& a, const std::string& p,
               std::int64_t inter, const std::string& dtype) {
  linear(t, a, p + "gate_proj.weight", inter, a.hidden_size, dtype);
  linear(t, a, p + "up_proj.weight", inter, a.hidden_size, dtype);
  linear(t, a, p + "down_proj.weight", a.hidden_size, inter, dtype);
}

// ---- GGUF helpers ----

std::uint16_t to_half(float f) {
  std::uint32_t x = 0;
  std::memcpy(&x, &f, 4);
  const std::uint32_t sign = (x >> 16) & 0x8000u;
  const int exp = static_cast<int>((x >> 23) & 0xFF) - 127 + 15;
  std::uint32_t mant = x & 0x7FFFFFu;
  if (exp <= 0) return static_cast<std::uint16_t>(sign);  // flush tiny values to zero
  if (exp >= 31) return static_cast<std::uint16_t>(sign | 0x7C00u);
  mant += 0x1000u;  // round to nearest
  if (mant & 0x800000u)
    return static_cast<std::uint16_t>(sign | ((static_cast<std::uint32_t>(exp) + 1) << 10));
  return static_cast<std::uint16_t>(sign | (static_cast<std::uint32_t>(exp) << 10) | (mant >> 13));
}

/// GPT-2's byte-level alphabet: printable bytes map to themselves, the rest to U+0100 onwards.
std::string byte_token(int b) {
  int cp = b;
  const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  if (!printable) {
    int n = 0;
    for (int i = 0; i < b; ++i) {
      const bool p = (i >= 33 && i <= 126) || (i >= 161 && i <= 172) || (i >= 174 && i <= 255);
      if (!p) ++n;
    }
    cp = 256 + n;
  }
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

struct Lcg {
  std::uint64_t state = 0x9E3779B97F4A7C15ull;
  float next() {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return (static_cast<float>((state >> 40) & 0xFFFF) / 65535.0f - 0.5f) * 0.1f;
  }
};

}  // namespace

ScratchDir::ScratchDir(const std::string& name)
    : path_(fs::temp_directory_path() /
            ("openstation_" + name + "_" + std::to_string(::getpid()))) {
  fs::remove_all(path_);
  fs::create_directories(path_);
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::uint64_t tensor_elements(const TensorSpec& t) {
  std::uint64_t n = 1;
  for (auto d : t.shape) n *= static_cast<std::uint64_t>(d);
  return n;
}

std::uint64_t tensor_bytes(const TensorSpec& t) {
  const int bits = model::safetensors_dtype_bits(t.dtype);
  if (bits == 0) throw std::runtime_error("unknown dtype " + t.dtype);
  return (tensor_elements(t) * static_cast<std::uint64_t>(bits) + 7) / 8;
}

std::uint64_t write_safetensors(const fs::path& path, const std::vector<TensorSpec>& tensors,
                                const std::map<std::string, std::string>& metadata) {
  bj::object header;
  if (!metadata.empty()) {
    bj::object meta;
    for (const auto& [k, v] : metadata) meta[k] = v;
    header["__metadata__"] = std::move(meta);
  }
  std::uint64_t offset = 0;
  for (const auto& t : tensors) {
    const std::uint64_t n = tensor_bytes(t);
    bj::array shape;
    for (auto d : t.shape) shape.push_back(d);
    header[t.name] = bj::object{{"dtype", t.dtype},
                                {"shape", std::move(shape)},
                                {"data_offsets", bj::array{offset, offset + n}}};
    offset += n;
  }
  std::string json = bj::serialize(header);
  while ((8 + json.size()) % 8 != 0) json += ' ';  // the reference writer pads to 8 bytes
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  std::array<char, 8> len{};
  for (int i = 0; i < 8; ++i)
    len[static_cast<std::size_t>(i)] = static_cast<char>((json.size() >> (8 * i)) & 0xFF);
  out.write(len.data(), 8);
  out.write(json.data(), static_cast<std::streamsize>(json.size()));
  write_zeros(out, offset);
  out.flush();
  if (!out) throw std::runtime_error("cannot write " + path.string());
  return offset;
}

model::ModelArch tiny_llama_arch() {
  model::ModelArch a;
  a.architecture = "LlamaForCausalLM";
  a.model_type = "llama";
  a.hidden_size = 64;
  a.num_layers = 2;
  a.num_attention_heads = 4;
  a.num_kv_heads = 2;
  a.head_dim = 16;
  a.vocab_size = 320;
  a.max_position_embeddings = 2048;
  a.intermediate_size = 128;
  a.torch_dtype = model::DType::bf16;
  return a;
}

model::ModelArch tiny_qwen2_arch() {
  model::ModelArch a = tiny_llama_arch();
  a.architecture = "Qwen2ForCausalLM";
  a.model_type = "qwen2";
  a.tie_word_embeddings = true;
  return a;
}

model::ModelArch tiny_deepseek_v3_arch() {
  model::ModelArch a;
  a.architecture = "DeepseekV3ForCausalLM";
  a.model_type = "deepseek_v3";
  a.hidden_size = 256;
  a.num_layers = 3;
  a.num_attention_heads = 4;
  a.num_kv_heads = 4;
  a.head_dim = a.hidden_size / a.num_attention_heads;
  a.vocab_size = 512;
  a.max_position_embeddings = 163840;
  a.intermediate_size = 512;
  a.moe_intermediate_size = 128;
  a.n_routed_experts = 4;
  a.num_experts_per_tok = 2;
  a.n_shared_experts = 1;
  a.first_k_dense_replace = 1;
  a.torch_dtype = model::DType::bf16;
  a.is_mla = true;
  a.kv_lora_rank = 64;
  a.q_lora_rank = 96;
  a.qk_rope_head_dim = 16;
  a.qk_nope_head_dim = 32;
  a.v_head_dim = 32;
  a.rope_scaling = model::RopeScaling{"yarn", 40.0, 4096};
  return a;
}

std::string config_json_text(const model::ModelArch& a) {
  bj::object o;
  o["architectures"] = bj::array{bj::value(a.architecture)};
  o["model_type"] = a.model_type;
  o["hidden_size"] = a.hidden_size;
  o["num_hidden_layers"] = a.num_layers;
  o["num_attention_heads"] = a.num_attention_heads;
  o["num_key_value_heads"] = a.num_kv_heads;
  if (!a.is_mla) o["head_dim"] = a.head_dim;
  o["vocab_size"] = a.vocab_size;
  o["max_position_embeddings"] = a.max_position_embeddings;
  o["intermediate_size"] = a.intermediate_size;
  o["tie_word_embeddings"] = a.tie_word_embeddings;
  o["torch_dtype"] = model::to_string(a.torch_dtype);
  o["rms_norm_eps"] = 1e-6;
  o["rope_theta"] = 10000.0;
  if (a.n_routed_experts > 0) {
    o["moe_intermediate_size"] = a.moe_intermediate_size;
    o["n_routed_experts"] = a.n_routed_experts;
    o["num_experts_per_tok"] = a.num_experts_per_tok;
    o["n_shared_experts"] = a.n_shared_experts;
    o["first_k_dense_replace"] = a.first_k_dense_replace;
  }
  if (a.is_mla) {
    o["kv_lora_rank"] = a.kv_lora_rank;
    o["q_lora_rank"] = a.q_lora_rank > 0 ? bj::value(a.q_lora_rank) : bj::value(nullptr);
    o["qk_rope_head_dim"] = a.qk_rope_head_dim;
    o["qk_nope_head_dim"] = a.qk_nope_head_dim;
    o["v_head_dim"] = a.v_head_dim;
  }
  if (a.rope_scaling) {
    bj::object r{{"type", a.rope_scaling->type}, {"factor", a.rope_scaling->factor}};
    if (a.rope_scaling->original_max_position_embeddings > 0) {
      r["original_max_position_embeddings"] = a.rope_scaling->original_max_position_embeddings;
    }
    o["rope_scaling"] = std::move(r);
  }
  if (a.quantization) {
    bj::object q{{"quant_method", a.quantization->method}};
    if (!a.quantization->fmt.empty()) q["fmt"] = a.quantization->fmt;
    if (a.quantization->method == "fp8") q["activation_scheme"] = "dynamic";
    if (a.quantization->bits > 0 && a.quantization->method != "fp8")
      q["bits"] = a.quantization->bits;
    if (!a.quantization->weight_block_size.empty()) {
      bj::array bs;
      for (int b : a.quantization->weight_block_size) bs.push_back(b);
      q["weight_block_size"] = std::move(bs);
    }
    o["quantization_config"] = std::move(q);
  }
  return bj::serialize(o);
}

std::vector<TensorSpec> hf_tensors(const model::ModelArch& a, const std::string& dtype) {
  std::vector<TensorSpec> t;
  const std::int64_t h = a.hidden_size;
  t.push_back({"model.embed_tokens.weight", dtype, {a.vocab_size, h}});
  const bool qkv_bias = a.model_type == "qwen2";
  for (std::int64_t l = 0; l < a.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    t.push_back({p + "input_layernorm.weight", dtype, {h}});
    t.push_back({p + "post_attention_layernorm.weight", dtype, {h}});
    if (a.is_mla) {
      const std::int64_t qk = a.qk_nope_head_dim + a.qk_rope_head_dim;
      if (a.q_lora_rank > 0) {
        linear(t, a, p + "self_attn.q_a_proj.weight", a.q_lora_rank, h, dtype);
        t.push_back({p + "self_attn.q_a_layernorm.weight", dtype, {a.q_lora_rank}});
        linear(t, a, p + "self_attn.q_b_proj.weight", a.num_attention_heads * qk, a.q_lora_rank,
               dtype);
      } else {
        linear(t, a, p + "self_attn.q_proj.weight", a.num_attention_heads * qk, h, dtype);
      }
      linear(t, a, p + "self_attn.kv_a_proj_with_mqa.weight", a.kv_lora_rank + a.qk_rope_head_dim,
             h, dtype);
      t.push_back({p + "self_attn.kv_a_layernorm.weight", dtype, {a.kv_lora_rank}});
      linear(t, a, p + "self_attn.kv_b_proj.weight",
             a.num_attention_heads * (a.qk_nope_head_dim + a.v_head_dim), a.kv_lora_rank, dtype);
      linear(t, a, p + "self_attn.o_proj.weight", h, a.num_attention_heads * a.v_head_dim, dtype);
    } else {
      const std::int64_t q = a.num_attention_heads * a.head_dim;
      const std::int64_t kv = a.num_kv_heads * a.head_dim;
      linear(t, a, p + "self_attn.q_proj.weight", q, h, dtype);
      linear(t, a, p + "self_attn.k_proj.weight", kv, h, dtype);
      linear(t, a, p + "self_attn.v_proj.weight", kv, h, dtype);
      if (qkv_bias) {
        t.push_back({p + "self_attn.q_proj.bias", dtype, {q}});
        t.push_back({p + "self_attn.k_proj.bias", dtype, {kv}});
        t.push_back({p + "self_attn.v_proj.bias", dtype, {kv}});
      }
      linear(t, a, p + "self_attn.o_proj.weight", h, q, dtype);
    }
    if (a.n_routed_experts > 0 && l >= a.first_k_dense_replace) {
      t.push_back({p + "mlp.gate.weight", dtype, {a.n_routed_experts, h}});
      t.push_back({p + "mlp.gate.e_score_correction_bias", "F32", {a.n_routed_experts}});
      for (std::int64_t e = 0; e < a.n_routed_experts; ++e) {
        dense_mlp(t, a, p + "mlp.experts." + std::to_string(e) + ".", a.moe_intermediate_size,
                  dtype);
      }
      if (a.n_shared_experts > 0) {
        dense_mlp(t, a, p + "mlp.shared_experts.", a.moe_intermediate_size * a.n_shared_experts,
                  dtype);
      }
    } else {
      dense_mlp(t, a, p + "mlp.", a.intermediate_size, dtype);
    }
  }
  t.push_back({"model.norm.weight", dtype, {h}});
  if (!a.tie_word_embeddings) t.push_back({"lm_head.weight", dtype, {a.vocab_size, h}});
  return t;
}

HfModel make_hf_model_dir(const fs::path& dir, const model::ModelArch& arch,
                          const std::string& dtype, int shards) {
  if (shards < 1) throw std::runtime_error("shards must be >= 1");
  fs::create_directories(dir);
  write_text(dir / "config.json", config_json_text(arch));
  const auto tensors = hf_tensors(arch, dtype);
  HfModel m;
  m.dir = dir;
  m.tensor_count = tensors.size();
  std::vector<std::vector<TensorSpec>> parts(static_cast<std::size_t>(shards));
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    // Contiguous runs, as the HuggingFace writer fills shards in order.
    const std::size_t s = i * static_cast<std::size_t>(shards) / tensors.size();
    parts[s].push_back(tensors[i]);
    m.weight_bytes += tensor_bytes(tensors[i]);
    m.params += tensor_elements(tensors[i]);
  }
  bj::object weight_map;
  for (int s = 0; s < shards; ++s) {
    std::string name = "model.safetensors";
    if (shards > 1) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "model-%05d-of-%05d.safetensors", s + 1, shards);
      name = buf;
    }
    write_safetensors(dir / name, parts[static_cast<std::size_t>(s)]);
    for (const auto& t : parts[static_cast<std::size_t>(s)]) weight_map[t.name] = name;
    m.shards.push_back(name);
  }
  if (shards > 1) {
    const bj::object index{{"metadata", bj::object{{"total_size", m.weight_bytes}}},
                           {"weight_map", std::move(weight_map)}};
    write_text(dir / "model.safetensors.index.json", bj::serialize(index));
  }
  write_text(dir / "generation_config.json", R"({"bos_token_id": 0, "eos_token_id": 1})");
  return m;
}

HfModel make_fp8_model_dir(const fs::path& dir, int shards) {
  model::ModelArch a = tiny_deepseek_v3_arch();
  a.quantization = model::Quantization{"fp8", 8, "e4m3", {128, 128}};
  return make_hf_model_dir(dir, a, "BF16", shards);
}

GgufModel make_gguf_model(const fs::path& path, const model::ModelArch& a,
                          std::uint32_t matrix_type, bool random_weights) {
  using model::GgufValue;
  if (a.vocab_size < 259) throw std::runtime_error("make_gguf_model needs vocab_size >= 259");
  model::GgufWriter w;
  const std::string arch = "qwen2";
  w.set("general.architecture", GgufValue::str(arch));
  w.set("general.name", GgufValue::str("openstation-tiny-qwen2"));
  w.set("general.file_type", GgufValue::u32(matrix_type == model::ggml::kF32    ? 0
                                            : matrix_type == model::ggml::kQ8_0 ? 7
                                                                                : 1));
  w.set(arch + ".block_count", GgufValue::u32(static_cast<std::uint32_t>(a.num_layers)));
  w.set(arch + ".context_length",
        GgufValue::u32(static_cast<std::uint32_t>(a.max_position_embeddings)));
  w.set(arch + ".embedding_length", GgufValue::u32(static_cast<std::uint32_t>(a.hidden_size)));
  w.set(arch + ".feed_forward_length",
        GgufValue::u32(static_cast<std::uint32_t>(a.intermediate_size)));
  w.set(arch + ".attention.head_count",
        GgufValue::u32(static_cast<std::uint32_t>(a.num_attention_heads)));
  w.set(arch + ".attention.head_count_kv",
        GgufValue::u32(static_cast<std::uint32_t>(a.num_kv_heads)));
  w.set(arch + ".rope.freq_base", GgufValue::f32(1000000.0f));
  w.set(arch + ".attention.layer_norm_rms_epsilon", GgufValue::f32(1e-6f));

  std::vector<std::string> tokens;
  std::vector<std::int32_t> types;
  for (int b = 0; b < 256; ++b) {
    tokens.push_back(byte_token(b));
    types.push_back(1);  // normal
  }
  for (const char* s : {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}) {
    tokens.emplace_back(s);
    types.push_back(3);  // control
  }
  while (static_cast<std::int64_t>(tokens.size()) < a.vocab_size) {
    tokens.push_back("[PAD" + std::to_string(tokens.size()) + "]");
    types.push_back(4);  // user-defined
  }
  w.set("tokenizer.ggml.model", GgufValue::str("gpt2"));
  w.set("tokenizer.ggml.pre", GgufValue::str("qwen2"));
  w.set("tokenizer.ggml.tokens", GgufValue::string_array(tokens));
  w.set("tokenizer.ggml.token_type", GgufValue::i32_array(types));
  w.set("tokenizer.ggml.merges", GgufValue::string_array({}));
  w.set("tokenizer.ggml.eos_token_id", GgufValue::u32(258));
  w.set("tokenizer.ggml.padding_token_id", GgufValue::u32(256));
  w.set("tokenizer.ggml.bos_token_id", GgufValue::u32(256));
  w.set("tokenizer.ggml.add_bos_token", GgufValue::boolean(false));
  w.set("tokenizer.chat_template",
        GgufValue::str("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
                       "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if "
                       "add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"));

  GgufModel m;
  m.path = path;
  Lcg rng;
  auto add = [&](const std::string& name, std::vector<std::uint64_t> dims, bool matrix, bool norm) {
    std::uint32_t type = model::ggml::kF32;
    if (matrix) {
      const auto* info = model::ggml_type_info(matrix_type);
      type = info && dims[0] % info->block_size == 0 ? matrix_type : model::ggml::kF16;
    }
    std::uint64_t elements = 1;
    for (auto d : dims) elements *= d;
    std::vector<std::uint8_t> data;
    if (random_weights && (type == model::ggml::kF32 || type == model::ggml::kF16)) {
      const std::size_t es = type == model::ggml::kF32 ? 4 : 2;
      data.resize(static_cast<std::size_t>(elements) * es);
      for (std::uint64_t i = 0; i < elements; ++i) {
        const float v = norm ? 1.0f : rng.next();
        if (type == model::ggml::kF32) {
          std::memcpy(data.data() + i * 4, &v, 4);
        } else {
          const std::uint16_t hv = to_half(v);
          std::memcpy(data.data() + i * 2, &hv, 2);
        }
      }
    }
    auto r = w.add_tensor(name, dims, type, std::move(data));
    if (!r) throw std::runtime_error(r.error().message);
    m.params += elements;
    m.weight_bytes += *model::ggml_tensor_bytes(type, dims);
    ++m.tensor_count;
  };
  const auto h = static_cast<std::uint64_t>(a.hidden_size);
  const auto q = static_cast<std::uint64_t>(a.num_attention_heads * a.head_dim);
  const auto kv = static_cast<std::uint64_t>(a.num_kv_heads * a.head_dim);
  const auto ff = static_cast<std::uint64_t>(a.intermediate_size);
  const auto vocab = static_cast<std::uint64_t>(a.vocab_size);
  add("token_embd.weight", {h, vocab}, true, false);
  for (std::int64_t l = 0; l < a.num_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    add(p + "attn_norm.weight", {h}, false, true);
    add(p + "attn_q.weight", {h, q}, true, false);
    add(p + "attn_q.bias", {q}, false, false);
    add(p + "attn_k.weight", {h, kv}, true, false);
    add(p + "attn_k.bias", {kv}, false, false);
    add(p + "attn_v.weight", {h, kv}, true, false);
    add(p + "attn_v.bias", {kv}, false, false);
    add(p + "attn_output.weight", {q, h}, true, false);
    add(p + "ffn_norm.weight", {h}, false, true);
    add(p + "ffn_gate.weight", {h, ff}, true, false);
    add(p + "ffn_up.weight", {h, ff}, true, false);
    add(p + "ffn_down.weight", {ff, h}, true, false);
  }
  add("output_norm.weight", {h}, false, true);
  if (!a.tie_word_embeddings) add("output.weight", {h, vocab}, true, false);
  auto r = w.write(path);
  if (!r) throw std::runtime_error(r.error().message);
  return m;
}

}  // namespace openstation::fixtures
