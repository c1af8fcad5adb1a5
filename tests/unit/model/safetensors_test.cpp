#include "model/safetensors.hpp"

#include "support/model_fixtures.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace openstation::model {
namespace {

namespace fs = std::filesystem;

/// A safetensors file image: header JSON and `data` zero bytes.
std::vector<std::uint8_t> image(const std::string& json, std::uint64_t data) {
  std::vector<std::uint8_t> out(8);
  for (int i = 0; i < 8; ++i)
    out[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(json.size() >> (8 * i));
  out.insert(out.end(), json.begin(), json.end());
  out.resize(out.size() + data);
  return out;
}

core::Result<SafetensorsHeader> parse(const std::vector<std::uint8_t>& f) {
  return parse_safetensors_header(f, f.size());
}

TEST(Safetensors, DtypeBits) {
  EXPECT_EQ(safetensors_dtype_bits("BF16"), 16);
  EXPECT_EQ(safetensors_dtype_bits("F32"), 32);
  EXPECT_EQ(safetensors_dtype_bits("F64"), 64);
  EXPECT_EQ(safetensors_dtype_bits("F8_E4M3"), 8);
  EXPECT_EQ(safetensors_dtype_bits("F8_E5M2"), 8);
  EXPECT_EQ(safetensors_dtype_bits("I64"), 64);
  EXPECT_EQ(safetensors_dtype_bits("BOOL"), 8);
  EXPECT_EQ(safetensors_dtype_bits("U8"), 8);
  EXPECT_EQ(safetensors_dtype_bits("F4"), 4);
  EXPECT_EQ(safetensors_dtype_bits("Q4"), 0);
}

TEST(Safetensors, ParsesValidHeader) {
  const auto f = image(R"({"b": {"dtype": "F32", "shape": [2, 3], "data_offsets": [4, 28]},
      "a": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]},
      "s": {"dtype": "F8_E4M3", "shape": [], "data_offsets": [28, 29]},
      "__metadata__": {"format": "pt"}})",
                       29);
  auto h = parse(f);
  ASSERT_TRUE(h) << h.error().message;
  ASSERT_EQ(h->tensors.size(), 3u);
  EXPECT_EQ(h->tensors[0].name, "a");  // in offset order
  EXPECT_EQ(h->tensors[1].name, "b");
  EXPECT_EQ(h->tensors[1].shape, (std::vector<std::int64_t>{2, 3}));
  EXPECT_EQ(h->tensors[1].elements(), 6u);
  EXPECT_EQ(h->tensors[1].bytes(), 24u);
  EXPECT_EQ(h->tensors[2].elements(), 1u);  // scalar
  EXPECT_EQ(h->metadata.at("format"), "pt");
  EXPECT_EQ(h->header_bytes, f.size() - 29);
  EXPECT_EQ(h->data_bytes, 29u);
  EXPECT_EQ(h->tensor_bytes(), 29u);
}

TEST(Safetensors, UnknownDtypeIsAcceptedWithoutSizeCheck) {
  auto h = parse(image(R"({"x": {"dtype": "Q9_FANCY", "shape": [3], "data_offsets": [0, 7]}})", 7));
  ASSERT_TRUE(h) << h.error().message;
  EXPECT_EQ(h->tensors[0].bytes(), 7u);
}

TEST(Safetensors, TruncatedInputs) {
  std::vector<std::uint8_t> tiny{1, 2, 3};
  auto a = parse_safetensors_header(tiny, tiny.size());
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, "safetensors.truncated");

  // N larger than the file.
  auto f = image(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", 4);
  f.resize(20);
  auto b = parse(f);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, "safetensors.truncated");
  EXPECT_NE(b.error().message.find("truncated"), std::string::npos);

  // A prefix shorter than 8 + N of a longer file.
  auto full = image(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", 4);
  auto c = parse_safetensors_header(std::span(full).first(30), full.size());
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, "safetensors.truncated");

  // Data area shorter than the offsets: an incomplete download.
  auto g = image(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", 10);
  auto d = parse(g);
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().code, "safetensors.bad_offsets");
  EXPECT_NE(d.error().message.find("truncated"), std::string::npos);
}

TEST(Safetensors, HugeHeaderLength) {
  std::vector<std::uint8_t> f(16, 0);
  f[7] = 0x7F;  // N ≈ 9e18
  auto a = parse(f);
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, "safetensors.header_too_large");
  std::vector<std::uint8_t> g(16, 0);
  const std::uint64_t n = 200'000'000;
  for (int i = 0; i < 8; ++i)
    g[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(n >> (8 * i));
  auto b = parse_safetensors_header(g, 300'000'000);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, "safetensors.header_too_large");
}

TEST(Safetensors, BadOffsetsAndShapes) {
  struct Case {
    const char* json;
    std::uint64_t data;
    const char* code;
  };
  const Case cases[] = {
      {R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", 4,
       "safetensors.bad_offsets"},
      {R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}})", 8,
       "safetensors.bad_offsets"},
      {R"({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", 8,
       "safetensors.bad_offsets"},
      {R"({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", 8,
       "safetensors.invalid_header"},
      {R"({"a": {"dtype": "F32", "shape": [2.5], "data_offsets": [0, 8]}})", 8,
       "safetensors.invalid_header"},
      {R"({"a": {"dtype": "F32", "shape": "2", "data_offsets": [0, 8]}})", 8,
       "safetensors.invalid_header"},
      {R"({"a": {"dtype": 3, "shape": [2], "data_offsets": [0, 8]}})", 8,
       "safetensors.invalid_header"},
      {R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0]}})", 8,
       "safetensors.invalid_header"},
      {R"({"a": {"dtype": "F32", "shape": [2]}})", 8, "safetensors.invalid_header"},
      {R"({"a": {"dtype": "U8", "shape": [4294967296, 4294967296, 16], "data_offsets": [0, 8]}})",
       8, "safetensors.invalid_header"},
      {R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 18446744073709551615]}})", 8,
       "safetensors.bad_offsets"},
      {R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
           "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
       12, "safetensors.bad_offsets"},
      {R"({"a": 5})", 0, "safetensors.invalid_header"},
      {R"({"__metadata__": {"x": 1}})", 0, "safetensors.invalid_header"},
      {R"([1, 2])", 0, "safetensors.invalid_header"},
      {R"({"a": {"dtype": "F32", )", 0, "json.invalid"},
  };
  for (const auto& c : cases) {
    auto h = parse(image(c.json, c.data));
    ASSERT_FALSE(h) << c.json;
    EXPECT_EQ(h.error().code, c.code) << c.json << " → " << h.error().message;
  }
}

TEST(Safetensors, FixtureWriterAndFileReader) {
  const fixtures::ScratchDir dir_scratch("safetensors_file");
  const auto dir = dir_scratch.path();
  const std::vector<fixtures::TensorSpec> tensors{
      {"model.embed_tokens.weight", "BF16", {320, 64}},
      {"model.norm.weight", "BF16", {64}},
      {"scale", "F32", {3, 5}},
  };
  const auto bytes = fixtures::write_safetensors(dir / "m.safetensors", tensors);
  EXPECT_EQ(bytes, 320u * 64 * 2 + 64 * 2 + 15 * 4);
  auto h = read_safetensors_header(dir / "m.safetensors");
  ASSERT_TRUE(h) << h.error().message;
  EXPECT_EQ(h->tensors.size(), 3u);
  EXPECT_EQ(h->tensor_bytes(), bytes);
  EXPECT_EQ(h->header_bytes % 8, 0u);
  EXPECT_EQ(h->header_bytes + h->data_bytes, fs::file_size(dir / "m.safetensors"));

  // Truncate the file: the error names it.
  fs::resize_file(dir / "m.safetensors", h->header_bytes + 100);
  auto t = read_safetensors_header(dir / "m.safetensors");
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().code, "safetensors.bad_offsets");
  EXPECT_NE(t.error().message.find("m.safetensors"), std::string::npos);
  fs::resize_file(dir / "m.safetensors", 40);
  auto u = read_safetensors_header(dir / "m.safetensors");
  ASSERT_FALSE(u);
  EXPECT_EQ(u.error().code, "safetensors.truncated");

  auto missing = read_safetensors_header(dir / "nope.safetensors");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, "file.not_found");
}

TEST(Safetensors, Index) {
  auto idx = parse_safetensors_index(R"({"metadata": {"total_size": 15231233024},
      "weight_map": {"a": "model-00002-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",
                     "c": "model-00001-of-00002.safetensors"}})",
                                     "index.json");
  ASSERT_TRUE(idx) << idx.error().message;
  EXPECT_EQ(idx->total_size, 15231233024u);
  EXPECT_EQ(idx->weight_map.size(), 3u);
  EXPECT_EQ(idx->shards, (std::vector<std::string>{"model-00001-of-00002.safetensors",
                                                   "model-00002-of-00002.safetensors"}));

  auto no_map = parse_safetensors_index(R"({"metadata": {}})", "i");
  ASSERT_FALSE(no_map);
  EXPECT_EQ(no_map.error().code, "safetensors.invalid_index");
  auto escape = parse_safetensors_index(R"({"weight_map": {"a": "../../etc/passwd"}})", "i");
  ASSERT_FALSE(escape);
  EXPECT_EQ(escape.error().code, "safetensors.invalid_index");
  auto bad_size =
      parse_safetensors_index(R"({"metadata": {"total_size": -1}, "weight_map": {}})", "i");
  ASSERT_FALSE(bad_size);
  auto bad_json = parse_safetensors_index("{", "i");
  ASSERT_FALSE(bad_json);
  EXPECT_EQ(bad_json.error().code, "json.invalid");

  const fixtures::ScratchDir dir_scratch("safetensors_index");
  const auto dir = dir_scratch.path();
  std::ofstream(dir / "model.safetensors.index.json")
      << R"({"weight_map": {"w": "x.safetensors"}})";
  auto f = read_safetensors_index(dir / "model.safetensors.index.json");
  ASSERT_TRUE(f);
  EXPECT_EQ(f->total_size, 0u);
  EXPECT_EQ(f->shards, std::vector<std::string>{"x.safetensors"});
}

}  // namespace
}  // namespace openstation::model
