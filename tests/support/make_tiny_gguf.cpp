// make-tiny-gguf: writes a tiny random-weight Qwen2-architecture GGUF model (2 layers, 64-wide)
// with a real vocabulary, for tests that run a real inference engine (llama.cpp's server). Its
// output is gibberish; its tokens, usage counts, streaming and timings are real.
//
//   make-tiny-gguf VOCAB.gguf OUT.gguf [--with-chat-template] [--seed N]
//
// VOCAB.gguf is a vocabulary-only GGUF such as llama.cpp's models/ggml-vocab-qwen2.gguf; its
// tokenizer.* metadata is copied (tokenizer.chat_template only with --with-chat-template, so that
// by default the platform's "no chat template → ChatML" rule is exercised). Matrices are Q8_0,
// norms and biases F32. Exit status: 0 written, 2 bad usage, 1 any other failure.
#include "model/gguf.hpp"

#include <cstdint>
#include <cstring>
#include <iostream>
#include <random>
#include <string>
#include <vector>

namespace {

using openstation::model::GgufValue;
using openstation::model::GgufWriter;
namespace ggml = openstation::model::ggml;

constexpr std::uint64_t kEmbd = 64;
constexpr std::uint64_t kHeads = 4;
constexpr std::uint64_t kKvHeads = 2;
constexpr std::uint64_t kHeadDim = kEmbd / kHeads;
constexpr std::uint64_t kFf = 128;
constexpr std::uint32_t kLayers = 2;
constexpr std::uint32_t kContext = 4096;

/// IEEE half from a float in the normal range (the scales written here are).
std::uint16_t to_half(float f) {
  std::uint32_t x = 0;
  std::memcpy(&x, &f, 4);
  const std::uint32_t sign = (x >> 16) & 0x8000u;
  const int exp = static_cast<int>((x >> 23) & 0xffu) - 127 + 15;
  const std::uint32_t mant = (x >> 13) & 0x3ffu;
  if (exp <= 0) return static_cast<std::uint16_t>(sign);
  if (exp >= 31) return static_cast<std::uint16_t>(sign | 0x7c00u);
  return static_cast<std::uint16_t>(sign | (static_cast<std::uint32_t>(exp) << 10) | mant);
}

class Builder {
 public:
  explicit Builder(std::uint32_t seed) : rng_(seed) {}

  /// Q8_0: blocks of 32 weights, an f16 scale then 32 int8 values.
  bool q8(GgufWriter& w, const std::string& name, std::uint64_t ne0, std::uint64_t ne1) {
    std::uniform_int_distribution<int> q(-127, 127);
    const std::uint64_t blocks = ne0 * ne1 / 32;
    std::vector<std::uint8_t> data(blocks * 34);
    const std::uint16_t d = to_half(0.02f / 127.0f * 3.0f);
    for (std::uint64_t b = 0; b < blocks; ++b) {
      std::memcpy(data.data() + b * 34, &d, 2);
      for (int i = 0; i < 32; ++i) {
        data[b * 34 + 2 + static_cast<std::uint64_t>(i)] =
            static_cast<std::uint8_t>(static_cast<std::int8_t>(q(rng_)));
      }
    }
    return check(w.add_tensor(name, {ne0, ne1}, ggml::kQ8_0, std::move(data)), name);
  }

  bool f32(GgufWriter& w, const std::string& name, std::uint64_t n, bool ones) {
    std::normal_distribution<float> dist(0.0f, 0.02f);
    std::vector<std::uint8_t> data(n * 4);
    for (std::uint64_t i = 0; i < n; ++i) {
      const float v = ones ? 1.0f : dist(rng_);
      std::memcpy(data.data() + i * 4, &v, 4);
    }
    return check(w.add_tensor(name, {n}, ggml::kF32, std::move(data)), name);
  }

 private:
  static bool check(const openstation::core::Result<void>& r, const std::string& name) {
    if (!r) std::cerr << "make-tiny-gguf: tensor " << name << ": " << r.error().message << "\n";
    return static_cast<bool>(r);
  }
  std::mt19937 rng_;
};

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> pos;
  bool with_template = false;
  std::uint32_t seed = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--with-chat-template") {
      with_template = true;
    } else if (a == "--seed" && i + 1 < argc) {
      seed = static_cast<std::uint32_t>(std::stoul(argv[++i]));
    } else if (!a.empty() && a[0] == '-') {
      std::cerr << "make-tiny-gguf: unknown option " << a << "\n";
      return 2;
    } else {
      pos.push_back(a);
    }
  }
  if (pos.size() != 2) {
    std::cerr << "usage: make-tiny-gguf VOCAB.gguf OUT.gguf [--with-chat-template] [--seed N]\n";
    return 2;
  }
  auto vocab = openstation::model::read_gguf(pos[0]);
  if (!vocab) {
    std::cerr << "make-tiny-gguf: " << vocab.error().message << "\n";
    return 1;
  }
  const auto* tokens = vocab->get_array("tokenizer.ggml.tokens");
  if (tokens == nullptr || tokens->elements.empty()) {
    std::cerr << "make-tiny-gguf: " << pos[0] << " has no tokenizer.ggml.tokens\n";
    return 1;
  }
  const std::uint64_t n_vocab = tokens->elements.size();

  GgufWriter w;
  const std::string arch = "qwen2";
  w.set("general.architecture", GgufValue::str(arch));
  w.set("general.name", GgufValue::str("openstation-tiny-qwen2-random"));
  w.set("general.file_type", GgufValue::u32(7));  // mostly Q8_0
  w.set(arch + ".block_count", GgufValue::u32(kLayers));
  w.set(arch + ".context_length", GgufValue::u32(kContext));
  w.set(arch + ".embedding_length", GgufValue::u32(kEmbd));
  w.set(arch + ".feed_forward_length", GgufValue::u32(kFf));
  w.set(arch + ".attention.head_count", GgufValue::u32(kHeads));
  w.set(arch + ".attention.head_count_kv", GgufValue::u32(kKvHeads));
  w.set(arch + ".rope.freq_base", GgufValue::f32(1000000.0f));
  w.set(arch + ".attention.layer_norm_rms_epsilon", GgufValue::f32(1e-6f));
  for (const auto& kv : vocab->metadata) {
    if (kv.key.rfind("tokenizer.", 0) != 0) continue;
    if (kv.key == "tokenizer.chat_template" && !with_template) continue;
    w.set(kv.key, kv.value);
  }

  Builder b(seed);
  constexpr std::uint64_t kv = kKvHeads * kHeadDim;
  bool ok = b.q8(w, "token_embd.weight", kEmbd, n_vocab);  // tied: also the output matrix
  for (std::uint32_t l = 0; l < kLayers && ok; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    ok = b.f32(w, p + "attn_norm.weight", kEmbd, true) &&
         b.q8(w, p + "attn_q.weight", kEmbd, kEmbd) && b.f32(w, p + "attn_q.bias", kEmbd, false) &&
         b.q8(w, p + "attn_k.weight", kEmbd, kv) && b.f32(w, p + "attn_k.bias", kv, false) &&
         b.q8(w, p + "attn_v.weight", kEmbd, kv) && b.f32(w, p + "attn_v.bias", kv, false) &&
         b.q8(w, p + "attn_output.weight", kEmbd, kEmbd) &&
         b.f32(w, p + "ffn_norm.weight", kEmbd, true) &&
         b.q8(w, p + "ffn_gate.weight", kEmbd, kFf) && b.q8(w, p + "ffn_up.weight", kEmbd, kFf) &&
         b.q8(w, p + "ffn_down.weight", kFf, kEmbd);
  }
  ok = ok && b.f32(w, "output_norm.weight", kEmbd, true);
  if (!ok) return 1;
  if (auto r = w.write(pos[1]); !r) {
    std::cerr << "make-tiny-gguf: " << r.error().message << "\n";
    return 1;
  }
  std::cout << pos[1] << "\n";
  return 0;
}
