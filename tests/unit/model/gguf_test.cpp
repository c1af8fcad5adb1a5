#include "model/gguf.hpp"

#include "support/model_fixtures.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

namespace openstation::model {
namespace {

namespace fs = std::filesystem;

void put_u32(std::vector<std::uint8_t>& b, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
void put_u64(std::vector<std::uint8_t>& b, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
void put_str(std::vector<std::uint8_t>& b, const std::string& s) {
  put_u64(b, s.size());
  b.insert(b.end(), s.begin(), s.end());
}
/// "GGUF", version, tensor count, kv count.
std::vector<std::uint8_t> head(std::uint32_t version, std::uint64_t tensors, std::uint64_t kvs) {
  std::vector<std::uint8_t> b{'G', 'G', 'U', 'F'};
  put_u32(b, version);
  put_u64(b, tensors);
  put_u64(b, kvs);
  return b;
}

core::Result<GgufFile> parse(const std::vector<std::uint8_t>& b) {
  return parse_gguf(b, b.size());
}

TEST(GgmlTypes, TableFacts) {
  struct Want {
    const char* name;
    std::uint32_t id, block, size;
  };
  const Want want[] = {
      {"F32", 0, 1, 4},         {"F16", 1, 1, 2},         {"Q4_0", 2, 32, 18},
      {"Q4_1", 3, 32, 20},      {"Q5_0", 6, 32, 22},      {"Q5_1", 7, 32, 24},
      {"Q8_0", 8, 32, 34},      {"Q8_1", 9, 32, 36},      {"Q2_K", 10, 256, 84},
      {"Q3_K", 11, 256, 110},   {"Q4_K", 12, 256, 144},   {"Q5_K", 13, 256, 176},
      {"Q6_K", 14, 256, 210},   {"Q8_K", 15, 256, 292},   {"IQ2_XXS", 16, 256, 66},
      {"IQ2_XS", 17, 256, 74},  {"IQ3_XXS", 18, 256, 98}, {"IQ1_S", 19, 256, 50},
      {"IQ4_NL", 20, 32, 18},   {"IQ3_S", 21, 256, 110},  {"IQ2_S", 22, 256, 82},
      {"IQ4_XS", 23, 256, 136}, {"I8", 24, 1, 1},         {"I16", 25, 1, 2},
      {"I32", 26, 1, 4},        {"I64", 27, 1, 8},        {"F64", 28, 1, 8},
      {"IQ1_M", 29, 256, 56},   {"BF16", 30, 1, 2},       {"TQ1_0", 34, 256, 54},
      {"TQ2_0", 35, 256, 66},   {"MXFP4", 39, 32, 17},
  };
  for (const auto& w : want) {
    const auto* info = ggml_type_info(w.id);
    ASSERT_NE(info, nullptr) << w.name;
    EXPECT_EQ(info->name, w.name);
    EXPECT_EQ(info->block_size, w.block) << w.name;
    EXPECT_EQ(info->type_size, w.size) << w.name;
    EXPECT_EQ(ggml_type_from_name(w.name), w.id);
  }
  EXPECT_EQ(ggml_type_info(4), nullptr);   // Q4_2, removed
  EXPECT_EQ(ggml_type_info(31), nullptr);  // Q4_0_4_4, removed
  EXPECT_EQ(ggml_type_info(1000), nullptr);
  EXPECT_EQ(ggml_type_from_name("q4_k"), 12u);
  EXPECT_FALSE(ggml_type_from_name("Q4_2"));
}

TEST(GgmlTypes, TensorBytes) {
  const std::uint64_t dims[] = {4096, 4096};
  EXPECT_EQ(*ggml_tensor_bytes(12, dims), 4096u * 4096 / 256 * 144);
  EXPECT_EQ(*ggml_tensor_bytes(8, dims), 4096u * 4096 / 32 * 34);
  EXPECT_EQ(*ggml_tensor_bytes(30, dims), 4096u * 4096 * 2);
  const std::uint64_t odd[] = {100, 3};
  auto bad = ggml_tensor_bytes(12, odd);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, "gguf.bad_tensor");
  auto unknown = ggml_tensor_bytes(5, dims);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, "gguf.unknown_type");
  const std::uint64_t huge[] = {1ull << 32, 1ull << 32, 16};
  ASSERT_FALSE(ggml_tensor_bytes(0, huge));
  EXPECT_EQ(*ggml_tensor_bytes(0, {}), 4u);  // a scalar
}

TEST(Gguf, WriterReaderRoundTripAllValueTypes) {
  GgufWriter w;
  w.set("general.architecture", GgufValue::str("llama"));
  w.set("u8", GgufValue::u8(200));
  w.set("i8", GgufValue::i8(-100));
  w.set("u16", GgufValue::u16(60000));
  w.set("i16", GgufValue::i16(-30000));
  w.set("u32", GgufValue::u32(4000000000u));
  w.set("i32", GgufValue::i32(-2000000000));
  w.set("u64", GgufValue::u64(1ull << 60));
  w.set("i64", GgufValue::i64(-(1ll << 60)));
  w.set("f32", GgufValue::f32(0.5f));
  w.set("f64", GgufValue::f64(-2.25));
  w.set("bool", GgufValue::boolean(true));
  w.set("empty", GgufValue::str(""));
  w.set("strs", GgufValue::string_array({"a", "", "ccc"}));
  w.set("ints", GgufValue::i32_array({1, -2, 3}));
  w.set("floats", GgufValue::f32_array({1.5f}));
  w.set("nested", GgufValue::array(GgufValueType::array,
                                   {GgufValue::i32_array({1, 2}), GgufValue::i32_array({})}));
  w.set("u32", GgufValue::u32(7));  // replaces
  std::vector<std::uint8_t> f32data(4 * 8);
  for (std::size_t i = 0; i < f32data.size(); ++i) f32data[i] = static_cast<std::uint8_t>(i);
  ASSERT_TRUE(w.add_tensor("a", {8}, ggml::kF32, f32data));
  ASSERT_TRUE(w.add_tensor("b", {64, 3}, ggml::kQ8_0));
  ASSERT_TRUE(w.add_tensor("c", {5, 2}, ggml::kF16));
  auto bytes = w.to_bytes();
  ASSERT_TRUE(bytes) << bytes.error().message;

  auto f = parse(*bytes);
  ASSERT_TRUE(f) << f.error().message;
  EXPECT_EQ(f->version, 3u);
  EXPECT_EQ(f->metadata.size(), 17u);
  EXPECT_EQ(f->architecture(), "llama");
  EXPECT_EQ(f->get_int("u8"), 200);
  EXPECT_EQ(f->get_int("i8"), -100);
  EXPECT_EQ(f->get_int("u16"), 60000);
  EXPECT_EQ(f->get_int("i16"), -30000);
  EXPECT_EQ(f->get_int("u32"), 7);
  EXPECT_EQ(f->get_int("i32"), -2000000000);
  EXPECT_EQ(f->get_int("u64"), 1ll << 60);
  EXPECT_EQ(f->get_int("i64"), -(1ll << 60));
  EXPECT_EQ(f->get_float("f32"), 0.5);
  EXPECT_EQ(f->get_float("f64"), -2.25);
  EXPECT_EQ(f->get_int("bool"), 1);
  EXPECT_EQ(f->get_string("empty"), "");
  EXPECT_FALSE(f->get_string("u8"));
  EXPECT_FALSE(f->find("absent"));
  const auto* strs = f->get_array("strs");
  ASSERT_NE(strs, nullptr);
  ASSERT_EQ(strs->elements.size(), 3u);
  EXPECT_EQ(strs->element_type, GgufValueType::string);
  EXPECT_EQ(strs->elements[2].string_value, "ccc");
  EXPECT_EQ(f->get_array("ints")->elements[1].as_int(), -2);
  const auto* nested = f->get_array("nested");
  ASSERT_NE(nested, nullptr);
  EXPECT_EQ(nested->elements[0].elements[1].as_int(), 2);
  EXPECT_TRUE(nested->elements[1].elements.empty());

  ASSERT_EQ(f->tensors.size(), 3u);
  EXPECT_EQ(f->alignment, 32u);
  EXPECT_EQ(f->data_offset % 32, 0u);
  EXPECT_EQ(f->tensors[0].name, "a");
  EXPECT_EQ(f->tensors[0].bytes, 32u);
  EXPECT_EQ(f->tensors[0].offset, 0u);
  EXPECT_EQ(f->tensors[1].type_name(), "Q8_0");
  EXPECT_EQ(f->tensors[1].bytes, 3u * 2 * 34);
  EXPECT_EQ(f->tensors[1].offset, 32u);
  EXPECT_EQ(f->tensors[1].dims, (std::vector<std::uint64_t>{64, 3}));
  EXPECT_EQ(f->tensors[2].offset, 32u + 224);
  EXPECT_EQ(f->tensors[2].elements, 10u);
  EXPECT_EQ(f->tensor_bytes(), 32u + 204 + 20);
  // The data is where the header says.
  EXPECT_EQ((*bytes)[f->data_offset + 5], 5);
}

TEST(Gguf, AlignmentVersion2AndFileReader) {
  GgufWriter w(2);
  w.set("general.architecture", GgufValue::str("x"));
  w.set("general.alignment", GgufValue::u32(64));
  ASSERT_TRUE(w.add_tensor("t0", {3}, ggml::kF32));
  ASSERT_TRUE(w.add_tensor("t1", {3}, ggml::kF32));
  const fixtures::ScratchDir dir_scratch("gguf_align");
  const auto dir = dir_scratch.path();
  ASSERT_TRUE(w.write(dir / "a.gguf"));
  auto f = read_gguf(dir / "a.gguf");
  ASSERT_TRUE(f) << f.error().message;
  EXPECT_EQ(f->version, 2u);
  EXPECT_EQ(f->alignment, 64u);
  EXPECT_EQ(f->data_offset % 64, 0u);
  EXPECT_EQ(f->tensors[1].offset, 64u);
  EXPECT_EQ(f->file_size, fs::file_size(dir / "a.gguf"));

  GgufWriter bad;
  bad.set("general.alignment", GgufValue::u32(48));
  auto r = bad.to_bytes();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "gguf.invalid");
}

TEST(Gguf, WriterRejectsBadInput) {
  GgufWriter w;
  EXPECT_EQ(w.add_tensor("x", {33}, ggml::kQ8_0).error().code, "gguf.bad_tensor");
  EXPECT_EQ(w.add_tensor("x", {4}, 4).error().code, "gguf.unknown_type");
  EXPECT_EQ(w.add_tensor("x", {4}, ggml::kF32, std::vector<std::uint8_t>(3)).error().code,
            "gguf.bad_tensor");
  EXPECT_EQ(w.add_tensor("x", {1, 1, 1, 1, 1}, ggml::kF32).error().code, "gguf.bad_tensor");
  ASSERT_TRUE(w.add_tensor("x", {4}, ggml::kF32));
  EXPECT_EQ(w.add_tensor("x", {4}, ggml::kF32).error().code, "gguf.bad_tensor");
  w.set("mixed", GgufValue::array(GgufValueType::int32, {GgufValue::i32(1), GgufValue::str("no")}));
  auto r = w.to_bytes();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "gguf.invalid");
}

TEST(Gguf, RejectsBadHeaders) {
  auto magic = parse({'G', 'G', 'M', 'L', 3, 0, 0, 0});
  ASSERT_FALSE(magic);
  EXPECT_EQ(magic.error().code, "gguf.bad_magic");
  auto v1 = parse(head(1, 0, 0));
  ASSERT_FALSE(v1);
  EXPECT_EQ(v1.error().code, "gguf.unsupported_version");
  auto be = parse(head(0x03000000u, 0, 0));
  ASSERT_FALSE(be);
  EXPECT_EQ(be.error().code, "gguf.unsupported_version");
  EXPECT_NE(be.error().message.find("big-endian"), std::string::npos);
  auto empty = parse({});
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().code, "gguf.truncated");
  auto ok = parse(head(3, 0, 0));
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_TRUE(ok->tensors.empty());
}

TEST(Gguf, AbsurdCountsFailFastWithoutHugeAllocations) {
  auto tensors = parse(head(3, 1ull << 62, 0));
  ASSERT_FALSE(tensors);
  EXPECT_EQ(tensors.error().code, "gguf.truncated");
  auto kvs = parse(head(3, 0, ~0ull));
  ASSERT_FALSE(kvs);
  EXPECT_EQ(kvs.error().code, "gguf.truncated");

  // A string of 2^63 bytes.
  auto s = head(3, 0, 1);
  put_u64(s, 1ull << 63);
  s.resize(s.size() + 64);
  auto sr = parse(s);
  ASSERT_FALSE(sr);
  EXPECT_EQ(sr.error().code, "gguf.truncated");

  // An array of 2^60 strings.
  auto a = head(3, 0, 1);
  put_str(a, "tokenizer.ggml.tokens");
  put_u32(a, 9);
  put_u32(a, 8);
  put_u64(a, 1ull << 60);
  a.resize(a.size() + 64);
  auto ar = parse(a);
  ASSERT_FALSE(ar);
  EXPECT_EQ(ar.error().code, "gguf.truncated");
  EXPECT_NE(ar.error().message.find("tokenizer.ggml.tokens"), std::string::npos);

  // Bad value type, bad bool, arrays nested too deeply.
  auto t = head(3, 0, 1);
  put_str(t, "k");
  put_u32(t, 13);
  t.resize(t.size() + 16);
  EXPECT_EQ(parse(t).error().code, "gguf.invalid");
  auto b = head(3, 0, 1);
  put_str(b, "k");
  put_u32(b, 7);
  b.push_back(2);
  EXPECT_EQ(parse(b).error().code, "gguf.invalid");
  auto deep = head(3, 0, 1);
  put_str(deep, "k");
  put_u32(deep, 9);
  for (int i = 0; i < 6; ++i) {
    put_u32(deep, 9);
    put_u64(deep, 1);
  }
  deep.resize(deep.size() + 64);
  EXPECT_EQ(parse(deep).error().code, "gguf.invalid");
}

TEST(Gguf, BadTensorInfos) {
  auto with_tensor = [](std::uint32_t n_dims, std::uint64_t dim, std::uint32_t type,
                        std::uint64_t offset, std::uint64_t data) {
    auto b = head(3, 1, 0);
    put_str(b, "t");
    put_u32(b, n_dims);
    for (std::uint32_t i = 0; i < n_dims; ++i) put_u64(b, dim);
    put_u32(b, type);
    put_u64(b, offset);
    while (b.size() % 32 != 0) b.push_back(0);
    b.resize(b.size() + data);
    return b;
  };
  auto ok = parse(with_tensor(1, 8, ggml::kF32, 0, 32));
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->tensors[0].bytes, 32u);
  EXPECT_EQ(parse(with_tensor(5, 1, ggml::kF32, 0, 32)).error().code, "gguf.invalid");
  EXPECT_EQ(parse(with_tensor(1, 8, 77, 0, 32)).error().code, "gguf.unknown_type");
  EXPECT_EQ(parse(with_tensor(1, 8, ggml::kF32, 16, 64)).error().code,
            "gguf.invalid");  // misaligned
  auto beyond = parse(with_tensor(1, 8, ggml::kF32, 0, 31));
  ASSERT_FALSE(beyond);
  EXPECT_EQ(beyond.error().code, "gguf.truncated");
  EXPECT_EQ(parse(with_tensor(1, 8, ggml::kF32, 1ull << 63, 32)).error().code, "gguf.truncated");
  EXPECT_EQ(parse(with_tensor(2, 1ull << 40, ggml::kF32, 0, 32)).error().code, "gguf.bad_tensor");
  EXPECT_EQ(parse(with_tensor(1, 33, ggml::kQ8_0, 0, 64)).error().code, "gguf.bad_tensor");

  // Duplicate names and overlapping data.
  auto dup = head(3, 2, 0);
  for (int i = 0; i < 2; ++i) {
    put_str(dup, "same");
    put_u32(dup, 1);
    put_u64(dup, 8);
    put_u32(dup, ggml::kF32);
    put_u64(dup, static_cast<std::uint64_t>(i) * 32);
  }
  while (dup.size() % 32 != 0) dup.push_back(0);
  dup.resize(dup.size() + 64);
  EXPECT_EQ(parse(dup).error().code, "gguf.invalid");
  auto overlap = head(3, 2, 0);
  for (int i = 0; i < 2; ++i) {
    put_str(overlap, i == 0 ? "a" : "b");
    put_u32(overlap, 1);
    put_u64(overlap, 16);
    put_u32(overlap, ggml::kF32);
    put_u64(overlap, static_cast<std::uint64_t>(i) * 32);
  }
  while (overlap.size() % 32 != 0) overlap.push_back(0);
  overlap.resize(overlap.size() + 128);
  EXPECT_EQ(parse(overlap).error().code, "gguf.invalid");
}

TEST(Gguf, EveryTruncationFailsCleanly) {
  const fixtures::ScratchDir dir_scratch("gguf_trunc");
  const auto dir = dir_scratch.path();
  const auto m = fixtures::make_gguf_model(dir / "m.gguf");
  std::ifstream in(dir / "m.gguf", std::ios::binary);
  std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                  std::istreambuf_iterator<char>());
  auto full = parse(bytes);
  ASSERT_TRUE(full) << full.error().message;
  // Every cut inside the header is truncated; every cut inside the data too.
  for (std::size_t n = 0; n < full->data_offset; n += 7) {
    auto r = parse_gguf(std::span(bytes).first(n), n);
    ASSERT_FALSE(r) << n;
    EXPECT_EQ(r.error().code, "gguf.truncated") << n << ": " << r.error().message;
  }
  auto cut = parse_gguf(std::span(bytes).first(bytes.size() - 1), bytes.size() - 1);
  ASSERT_FALSE(cut);
  EXPECT_EQ(cut.error().code, "gguf.truncated");
  // A short prefix of the whole file asks for more.
  auto prefix = parse_gguf(std::span(bytes).first(100), bytes.size());
  ASSERT_FALSE(prefix);
  EXPECT_EQ(prefix.error().code, "gguf.prefix_too_short");

  fs::resize_file(dir / "m.gguf", full->data_offset + 10);
  auto r = read_gguf(dir / "m.gguf");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "gguf.truncated");
  EXPECT_NE(r.error().message.find("m.gguf"), std::string::npos);
  auto missing = read_gguf(dir / "none.gguf");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, "file.not_found");
}

TEST(Gguf, Qwen2ModelArch) {
  const fixtures::ScratchDir dir_scratch("gguf_qwen2");
  const auto dir = dir_scratch.path();
  const auto want = fixtures::tiny_qwen2_arch();
  const auto m = fixtures::make_gguf_model(dir / "q.gguf", want, ggml::kQ8_0);
  auto f = read_gguf(dir / "q.gguf");
  ASSERT_TRUE(f) << f.error().message;
  EXPECT_EQ(f->architecture(), "qwen2");
  EXPECT_EQ(f->tensors.size(), m.tensor_count);
  EXPECT_EQ(f->tensor_bytes(), m.weight_bytes);
  EXPECT_EQ(f->tensor_elements(), m.params);
  EXPECT_NE(f->chat_template().find("<|im_start|>"), std::string::npos);
  auto a = gguf_model_arch(*f);
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->architecture, "qwen2");
  EXPECT_EQ(a->hidden_size, want.hidden_size);
  EXPECT_EQ(a->num_layers, want.num_layers);
  EXPECT_EQ(a->num_attention_heads, want.num_attention_heads);
  EXPECT_EQ(a->num_kv_heads, want.num_kv_heads);
  EXPECT_EQ(a->head_dim, want.head_dim);
  EXPECT_EQ(a->vocab_size, want.vocab_size);  // from tokenizer.ggml.tokens
  EXPECT_EQ(a->max_position_embeddings, want.max_position_embeddings);
  EXPECT_EQ(a->intermediate_size, want.intermediate_size);
  EXPECT_TRUE(a->tie_word_embeddings);
  EXPECT_EQ(a->torch_dtype, DType::int8);
  ASSERT_TRUE(a->quantization);
  EXPECT_EQ(a->quantization->method, "gguf");
  EXPECT_EQ(a->quantization->fmt, "Q8_0");
  const auto* tokens = f->get_array("tokenizer.ggml.tokens");
  ASSERT_NE(tokens, nullptr);
  EXPECT_EQ(tokens->elements[65].string_value, "A");         // printable bytes map to themselves
  EXPECT_EQ(tokens->elements[0].string_value, "\xC4\x80");   // byte 0 → U+0100
  EXPECT_EQ(tokens->elements[32].string_value, "\xC4\xA0");  // space → U+0120
  EXPECT_EQ(tokens->elements[256].string_value, "<|endoftext|>");
}

TEST(Gguf, DeepSeek2MlaArch) {
  GgufWriter w;
  w.set("general.architecture", GgufValue::str("deepseek2"));
  w.set("deepseek2.block_count", GgufValue::u32(61));
  w.set("deepseek2.context_length", GgufValue::u32(163840));
  w.set("deepseek2.embedding_length", GgufValue::u32(7168));
  w.set("deepseek2.feed_forward_length", GgufValue::u32(18432));
  w.set("deepseek2.attention.head_count", GgufValue::u32(128));
  w.set("deepseek2.attention.head_count_kv", GgufValue::u32(128));
  w.set("deepseek2.attention.key_length", GgufValue::u32(192));
  w.set("deepseek2.attention.value_length", GgufValue::u32(128));
  w.set("deepseek2.attention.q_lora_rank", GgufValue::u32(1536));
  w.set("deepseek2.attention.kv_lora_rank", GgufValue::u32(512));
  w.set("deepseek2.rope.dimension_count", GgufValue::u32(64));
  w.set("deepseek2.expert_count", GgufValue::u32(256));
  w.set("deepseek2.expert_used_count", GgufValue::u32(8));
  w.set("deepseek2.expert_shared_count", GgufValue::u32(1));
  w.set("deepseek2.expert_feed_forward_length", GgufValue::u32(2048));
  w.set("deepseek2.leading_dense_block_count", GgufValue::u32(3));
  w.set("deepseek2.vocab_size", GgufValue::u32(129280));
  w.set("deepseek2.rope.scaling.type", GgufValue::str("yarn"));
  w.set("deepseek2.rope.scaling.factor", GgufValue::f32(40));
  w.set("deepseek2.rope.scaling.original_context_length", GgufValue::u32(4096));
  ASSERT_TRUE(w.add_tensor("output.weight", {32, 2}, ggml::kQ4_0));
  auto bytes = w.to_bytes();
  ASSERT_TRUE(bytes);
  auto f = parse(*bytes);
  ASSERT_TRUE(f) << f.error().message;
  auto a = gguf_model_arch(*f);
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_TRUE(a->is_mla);
  EXPECT_EQ(a->kv_lora_rank, 512);
  EXPECT_EQ(a->q_lora_rank, 1536);
  EXPECT_EQ(a->qk_rope_head_dim, 64);
  EXPECT_EQ(a->qk_nope_head_dim, 128);
  EXPECT_EQ(a->v_head_dim, 128);
  EXPECT_EQ(a->n_routed_experts, 256);
  EXPECT_EQ(a->num_experts_per_tok, 8);
  EXPECT_EQ(a->n_shared_experts, 1);
  EXPECT_EQ(a->first_k_dense_replace, 3);
  EXPECT_EQ(a->moe_intermediate_size, 2048);
  EXPECT_EQ(a->vocab_size, 129280);
  EXPECT_FALSE(a->tie_word_embeddings);
  EXPECT_EQ(a->torch_dtype, DType::int4);
  ASSERT_TRUE(a->rope_scaling);
  EXPECT_EQ(a->derived_max_len(), 163840);

  // Newer conversions: latent sizes in key_length, head sizes in *_mla.
  w.set("deepseek2.attention.key_length", GgufValue::u32(576));
  w.set("deepseek2.attention.value_length", GgufValue::u32(512));
  w.set("deepseek2.attention.key_length_mla", GgufValue::u32(192));
  w.set("deepseek2.attention.value_length_mla", GgufValue::u32(128));
  auto f2 = parse(*w.to_bytes());
  ASSERT_TRUE(f2);
  auto a2 = gguf_model_arch(*f2);
  ASSERT_TRUE(a2);
  EXPECT_EQ(a2->qk_nope_head_dim, 128);
  EXPECT_EQ(a2->v_head_dim, 128);
}

TEST(Gguf, ArchMissingKeys) {
  GgufWriter w;
  auto f = parse(*w.to_bytes());
  ASSERT_TRUE(f);
  auto a = gguf_model_arch(*f);
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, "gguf.missing_key");
  EXPECT_EQ(a.error().field, "general.architecture");

  w.set("general.architecture", GgufValue::str("llama"));
  w.set("llama.block_count", GgufValue::u32(2));
  w.set("llama.attention.head_count", GgufValue::u32(2));
  auto b = gguf_model_arch(*parse(*w.to_bytes()));
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().field, "llama.embedding_length");

  w.set("llama.embedding_length", GgufValue::u32(8));
  auto c = gguf_model_arch(*parse(*w.to_bytes()));
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().field, "tokenizer.ggml.tokens");

  // Per-layer head counts (an array) give the largest.
  w.set("llama.vocab_size", GgufValue::u32(100));
  w.set("llama.attention.head_count_kv", GgufValue::i32_array({1, 2, 4}));
  auto d = gguf_model_arch(*parse(*w.to_bytes()));
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(d->num_kv_heads, 4);
  EXPECT_EQ(d->head_dim, 4);
}

}  // namespace
}  // namespace openstation::model
