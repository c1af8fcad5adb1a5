// libFuzzer target: GGUF header parsing, metadata → ModelArch, and writer round trips.
#include "fuzz_common.hpp"
#include "model/gguf.hpp"

#include <cstddef>
#include <cstdint>
#include <span>

using namespace openstation::model;

namespace {
constexpr std::uint32_t kMaxRoundTripAlignment = 64 * 1024;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> bytes(data, size);
  auto f = parse_gguf(bytes, size);
  if (size > 16) {
    // A prefix of a longer file either parses the same header or asks for more bytes.
    auto p = parse_gguf(bytes.first(size / 2), size);
    if (p) OS_FUZZ_CHECK(f && p->tensors.size() == f->tensors.size());
  }
  if (!f) return 0;
  OS_FUZZ_CHECK(f->data_offset % f->alignment == 0);
  for (const auto& t : f->tensors) {
    OS_FUZZ_CHECK(t.offset % f->alignment == 0);
    OS_FUZZ_CHECK(f->data_offset + t.offset + t.bytes <= size || t.bytes == 0);
    OS_FUZZ_CHECK(ggml_type_info(t.type) != nullptr);
  }
  if (auto a = gguf_model_arch(*f)) {
    OS_FUZZ_CHECK(a->hidden_size > 0 && a->num_layers > 0 && a->num_attention_heads > 0);
    (void)a->derived_max_len();
  }
  (void)f->chat_template();

  // Write what was read and read it back: the same metadata and tensors. The writer pads every
  // tensor to the alignment, so a legal but huge general.alignment (any power of two up to 2^31)
  // turns a 2 KiB input into gigabytes of zeros; the round trip is only meaningful below that.
  if (f->alignment > kMaxRoundTripAlignment) return 0;
  GgufWriter w(f->version);
  for (const auto& kv : f->metadata) w.set(kv.key, kv.value);
  for (const auto& t : f->tensors) OS_FUZZ_CHECK(w.add_tensor(t.name, t.dims, t.type).has_value());
  auto out = w.to_bytes();
  OS_FUZZ_CHECK(out.has_value());
  auto g = parse_gguf(*out, out->size());
  OS_FUZZ_CHECK(g.has_value());
  OS_FUZZ_CHECK(g->metadata.size() == f->metadata.size());
  OS_FUZZ_CHECK(g->tensors.size() == f->tensors.size());
  OS_FUZZ_CHECK(g->tensor_bytes() == f->tensor_bytes());
  return 0;
}
