// Writes the seed corpora of the fuzz targets: seeds <dir> creates <dir>/{safetensors,gguf,
// config_json}/ with small valid and near-valid inputs made by the real writers.
#include "model/gguf.hpp"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using namespace openstation::model;

namespace {

void write(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) {
    std::fprintf(stderr, "cannot write %s\n", p.c_str());
    std::exit(1);
  }
}

void write(const fs::path& p, const std::vector<std::uint8_t>& bytes) {
  write(p, std::string(bytes.begin(), bytes.end()));
}

std::string safetensors(const std::string& json, std::size_t data) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i)
    out[static_cast<std::size_t>(i)] = static_cast<char>((json.size() >> (8 * i)) & 0xFF);
  return out + json + std::string(data, '\0');
}

std::vector<std::uint8_t> gguf_bytes(const GgufWriter& w) {
  auto b = w.to_bytes();
  if (!b) {
    std::fprintf(stderr, "seed: %s\n", b.error().message.c_str());
    std::exit(1);
  }
  return *b;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_seeds DIR\n");
    return 2;
  }
  const fs::path root = argv[1];
  for (const char* d : {"safetensors", "gguf", "config_json", "gateway_request"})
    fs::create_directories(root / d);

  // safetensors
  const fs::path st = root / "safetensors";
  write(
      st / "two_tensors",
      safetensors(
          R"({"__metadata__":{"format":"pt"},"a":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]},)"
          R"("b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})",
          20));
  write(st / "fp8_block",
        safetensors(R"({"w":{"dtype":"F8_E4M3","shape":[4,4],"data_offsets":[0,16]},)"
                    R"("w_scale_inv":{"dtype":"F32","shape":[1,1],"data_offsets":[16,20]}})",
                    20));
  write(st / "empty", safetensors("{}", 0));
  write(st / "scalar", safetensors(R"({"s":{"dtype":"I64","shape":[],"data_offsets":[0,8]}})", 8));
  write(st / "truncated",
        safetensors(R"({"a":{"dtype":"F16","shape":[8],"data_offsets":[0,16]}})", 5));
  write(st / "index",
        std::string(
            R"({"metadata":{"total_size":40},"weight_map":{"a":"model-00001-of-00002.safetensors",)"
            R"("b":"model-00002-of-00002.safetensors"}})"));

  // gguf
  const fs::path gg = root / "gguf";
  {
    GgufWriter w;
    w.set("general.architecture", GgufValue::str("qwen2"));
    w.set("qwen2.block_count", GgufValue::u32(1));
    w.set("qwen2.context_length", GgufValue::u32(2048));
    w.set("qwen2.embedding_length", GgufValue::u32(32));
    w.set("qwen2.feed_forward_length", GgufValue::u32(64));
    w.set("qwen2.attention.head_count", GgufValue::u32(2));
    w.set("qwen2.attention.head_count_kv", GgufValue::u32(1));
    w.set("qwen2.rope.freq_base", GgufValue::f32(1e6f));
    w.set("tokenizer.ggml.model", GgufValue::str("gpt2"));
    w.set("tokenizer.ggml.tokens", GgufValue::string_array({"a", "b", "c", "<|im_end|>"}));
    w.set("tokenizer.ggml.token_type", GgufValue::i32_array({1, 1, 1, 3}));
    w.set("tokenizer.chat_template", GgufValue::str("{{ messages }}"));
    (void)w.add_tensor("token_embd.weight", {32, 4}, ggml::kF16);
    (void)w.add_tensor("blk.0.attn_norm.weight", {32}, ggml::kF32);
    (void)w.add_tensor("blk.0.attn_q.weight", {32, 32}, ggml::kQ8_0);
    write(gg / "qwen2", gguf_bytes(w));
  }
  {
    GgufWriter w;
    w.set("general.architecture", GgufValue::str("deepseek2"));
    w.set("deepseek2.block_count", GgufValue::u32(2));
    w.set("deepseek2.embedding_length", GgufValue::u32(64));
    w.set("deepseek2.attention.head_count", GgufValue::u32(4));
    w.set("deepseek2.attention.kv_lora_rank", GgufValue::u32(16));
    w.set("deepseek2.attention.key_length", GgufValue::u32(24));
    w.set("deepseek2.attention.value_length", GgufValue::u32(16));
    w.set("deepseek2.rope.dimension_count", GgufValue::u32(8));
    w.set("deepseek2.expert_count", GgufValue::u32(4));
    w.set("deepseek2.vocab_size", GgufValue::u32(10));
    w.set("deepseek2.rope.scaling.type", GgufValue::str("yarn"));
    w.set("deepseek2.rope.scaling.factor", GgufValue::f32(40));
    w.set("deepseek2.rope.scaling.original_context_length", GgufValue::u32(4096));
    (void)w.add_tensor("output.weight", {256, 1}, ggml::kQ4_K);
    write(gg / "deepseek2", gguf_bytes(w));
  }
  {
    GgufWriter w(2);
    w.set("general.alignment", GgufValue::u32(64));
    w.set("nested", GgufValue::array(GgufValueType::array, {GgufValue::i32_array({1, 2})}));
    w.set("all", GgufValue::array(GgufValueType::uint64, {GgufValue::u64(1)}));
    w.set("i8", GgufValue::i8(-1));
    w.set("u16", GgufValue::u16(2));
    w.set("i16", GgufValue::i16(-3));
    w.set("i64", GgufValue::i64(-4));
    w.set("f64", GgufValue::f64(0.25));
    w.set("b", GgufValue::boolean(true));
    (void)w.add_tensor("x", {2, 2}, ggml::kBF16);
    (void)w.add_tensor("y", {32}, ggml::kQ4_0);
    write(gg / "v2_align64", gguf_bytes(w));
  }
  write(gg / "header_only", gguf_bytes(GgufWriter()));

  // config.json
  const fs::path cj = root / "config_json";
  write(cj / "qwen2",
        std::string(
            R"({"architectures":["Qwen2ForCausalLM"],"model_type":"qwen2","hidden_size":1536,)"
            R"("num_hidden_layers":28,"num_attention_heads":12,"num_key_value_heads":2,)"
            R"("vocab_size":151936,"max_position_embeddings":131072,"intermediate_size":8960,)"
            R"("tie_word_embeddings":false,"torch_dtype":"bfloat16"})"));
  write(
      cj / "deepseek_v3",
      std::string(
          R"({"architectures":["DeepseekV3ForCausalLM"],"model_type":"deepseek_v3","hidden_size":7168,)"
          R"("num_hidden_layers":61,"num_attention_heads":128,"num_key_value_heads":128,"vocab_size":129280,)"
          R"("kv_lora_rank":512,"q_lora_rank":1536,"qk_rope_head_dim":64,"qk_nope_head_dim":128,)"
          R"("v_head_dim":128,"n_routed_experts":256,"num_experts_per_tok":8,"n_shared_experts":1,)"
          R"("first_k_dense_replace":3,"moe_intermediate_size":2048,"max_position_embeddings":163840,)"
          R"("quantization_config":{"quant_method":"fp8","fmt":"e4m3","weight_block_size":[128,128]},)"
          R"("rope_scaling":{"type":"yarn","factor":40,"original_max_position_embeddings":4096}})"));
  write(
      cj / "llama4_text_config",
      std::string(
          R"({"architectures":["Llama4ForConditionalGeneration"],"model_type":"llama4",)"
          R"("text_config":{"hidden_size":5120,"num_hidden_layers":48,"num_attention_heads":40,)"
          R"("num_key_value_heads":8,"head_dim":128,"vocab_size":202048,"num_local_experts":16,)"
          R"("rope_scaling":{"rope_type":"llama3","factor":16.0,"original_max_position_embeddings":8192}}})"));
  write(cj / "compressed_tensors",
        std::string(R"({"n_embd":64,"n_layer":2,"n_head":4,"vocab_size":100,"dtype":"float16",)"
                    R"("quantization_config":{"quant_method":"compressed-tensors","config_groups":)"
                    R"({"g":{"weights":{"num_bits":8,"type":"float"}}}}})"));

  // gateway_request: the first byte picks the endpoint, the rest is the body (or an SSE payload).
  const fs::path gw = root / "gateway_request";
  write(gw / "chat",
        std::string("\x00") + R"({"model":"r1","messages":[{"role":"user","content":"hi"}]})");
  write(gw / "stream",
        std::string("\x01") + R"({"model":"r1","prompt":"x","stream":true,"stream_options":{}})");
  write(gw / "usage_chunk",
        std::string("\x03") +
            R"({"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}})");
  write(
      gw / "duplicates",
      std::string("\x00") +
          R"({"model":"a","stream":true,"stream_options":{"include_usage":false,"x":[{}]},)"
          R"("\u006dodel":"b\u00e9","user":"u","messages":[{"model":"c"}],"stream_options":null})");
  write(gw / "token_chunk",
        std::string("\x03") +
            R"({"id":"c","choices":[{"index":0,"delta":{"content":"x"}}],"usage":null})");
  write(gw / "spaced_error", std::string("\x03") + R"({ "object" : "error", "message" : "x" })");
  write(gw / "response",
        std::string("\x03") +
            R"({"id":"c","choices":[{"message":{"content":"say \"usage\""},"usage":{}}],)"
            R"("usage":{"prompt_tokens":7,"completion_tokens":1,"total_tokens":8}})");
  write(gw / "engine_error",
        std::string("\x02") +
            R"({"object":"error","message":"too long","type":"BadRequestError","code":400})");
  write(gw / "http_request",
        std::string("\x04") +
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            "5;e=1\r\nhello\r\n0\r\nT: v\r\n\r\n");
  write(gw / "sse",
        std::string("\x06") +
            "event: first\nid: 1\nretry: 5\ndata: a\ndata: b\n\n: note\r\ndata: {\"x\":1}\r\n\r\n"
            "data: partial\n: inside\ndata: rest\r\rdata: [DONE]\n\ndata: unfinished");
  write(gw / "http_response",
        std::string("\x05") +
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
            "\r\n6\r\ndata: \r\n0\r\n\r\n");
  return 0;
}
