#pragma once
/// Generators of model files for tests: safetensors files with real headers (zero data),
/// HuggingFace model directories (config.json + shards + index) with the tensor names and shapes of
/// a Llama/Qwen2 or DeepSeek-V3 (MLA, MoE, FP8 block-quantised) checkpoint, and small Qwen2 GGUF
/// models. Dimensions are small so the files stay a few MB.

#include "model/arch.hpp"

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace openstation::fixtures {

/// A fresh directory under testing::TempDir()-style temp space, unique per process and name,
/// removed with everything in it when destroyed.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& name);
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& child) const { return path_ / child; }

 private:
  std::filesystem::path path_;
};

/// One tensor to write: HuggingFace order shape (out features first).
struct TensorSpec {
  std::string name;
  std::string dtype;  ///< safetensors dtype: "BF16", "F32", "F8_E4M3", ...
  std::vector<std::int64_t> shape;
};

/// Bytes of a tensor (elements × dtype size).
std::uint64_t tensor_bytes(const TensorSpec& t);
/// Elements of a tensor.
std::uint64_t tensor_elements(const TensorSpec& t);

/// Writes a valid safetensors file with zero-filled data; returns the data bytes. Throws
/// std::runtime_error when the file cannot be written (tests only).
std::uint64_t write_safetensors(const std::filesystem::path& path,
                                const std::vector<TensorSpec>& tensors,
                                const std::map<std::string, std::string>& metadata = {
                                    {"format", "pt"}});

/// A small Llama-style model: hidden 64, 2 layers, 4 heads, 2 KV heads, vocab 320.
model::ModelArch tiny_llama_arch();
/// A small Qwen2-style model (q/k/v biases), same sizes as tiny_llama_arch, tied embeddings.
model::ModelArch tiny_qwen2_arch();
/// A small DeepSeek-V3-style model: MLA (kv_lora_rank 32, q_lora_rank 48, rope 16, nope 32,
/// v 32), 3 layers of which the first is dense, 4 routed experts + 1 shared, yarn rope scaling
/// (factor 40 over 4096 = 163840, as DeepSeek-V3).
model::ModelArch tiny_deepseek_v3_arch();

/// config.json text for an arch (architectures, model_type, sizes, MLA, MoE, rope_scaling,
/// quantization_config, torch_dtype).
std::string config_json_text(const model::ModelArch& arch);

/// The checkpoint tensors of an arch, every tensor in `dtype`. When the arch has an fp8
/// quantization_config with a weight_block_size, the linear weights are F8_E4M3 and each gets an
/// F32
/// `<name>_scale_inv` of ceil(out/bs0) × ceil(in/bs1); embeddings, norms, router and lm_head stay
/// in `dtype`.
std::vector<TensorSpec> hf_tensors(const model::ModelArch& arch, const std::string& dtype);

/// What a generated model directory holds.
struct HfModel {
  std::filesystem::path dir;
  std::vector<std::string> shards;  ///< shard file names
  std::uint64_t weight_bytes = 0;   ///< sum of tensor bytes
  std::uint64_t params = 0;         ///< sum of tensor elements
  std::size_t tensor_count = 0;
};

/// Writes config.json and the tensors of `arch` in `dtype` over `shards` files
/// (model.safetensors for 1; model-0000i-of-0000N.safetensors plus model.safetensors.index.json
/// otherwise). Creates `dir`.
HfModel make_hf_model_dir(const std::filesystem::path& dir, const model::ModelArch& arch,
                          const std::string& dtype = "BF16", int shards = 1);

/// A DeepSeek-V3-style FP8 checkpoint: tiny_deepseek_v3_arch() with quantization_config
/// {quant_method fp8, fmt e4m3, activation_scheme dynamic, weight_block_size [128, 128]},
/// torch_dtype bfloat16, F8_E4M3 linear weights with weight_scale_inv tensors.
HfModel make_fp8_model_dir(const std::filesystem::path& dir, int shards = 2);

/// What a generated GGUF file holds.
struct GgufModel {
  std::filesystem::path path;
  std::uint64_t weight_bytes = 0;
  std::uint64_t params = 0;
  std::size_t tensor_count = 0;
};

/// Writes a Qwen2-architecture GGUF (v3) for `arch`: llama.cpp's metadata keys and tensor names,
/// a byte-level "gpt2" tokenizer with exactly arch.vocab_size tokens (256 byte tokens, then
/// <|endoftext|>, <|im_start|>, <|im_end|>, then padding tokens; needs vocab_size ≥ 259) and a
/// ChatML chat template. 2-D weights use `matrix_type` where the row length allows it, else F16;
/// norms and biases are F32. With `random_weights`, F32/F16 weights get small deterministic
/// pseudo-random values (norm weights 1), otherwise zeros.
GgufModel make_gguf_model(const std::filesystem::path& path,
                          const model::ModelArch& arch = tiny_qwen2_arch(),
                          std::uint32_t matrix_type = 1 /* F16 */, bool random_weights = false);

}  // namespace openstation::fixtures
