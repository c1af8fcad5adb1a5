// libFuzzer target: safetensors header and index parsing.
#include "fuzz_common.hpp"
#include "model/safetensors.hpp"

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

using namespace openstation::model;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> bytes(data, size);
  auto h = parse_safetensors_header(bytes, size);
  if (h) {
    OS_FUZZ_CHECK(h->header_bytes + h->data_bytes == size);
    OS_FUZZ_CHECK(h->header_bytes >= 8);
    std::uint64_t prev_end = 0;
    for (const auto& t : h->tensors) {
      OS_FUZZ_CHECK(t.begin <= t.end && t.end <= h->data_bytes);
      const int bits = safetensors_dtype_bits(t.dtype);
      if (bits > 0)
        OS_FUZZ_CHECK(t.bytes() == (t.elements() * static_cast<std::uint64_t>(bits) + 7) / 8);
      if (t.bytes() > 0) {
        OS_FUZZ_CHECK(t.begin >= prev_end);
        prev_end = t.end;
      }
    }
  }
  // The same file seen through a shorter prefix must not succeed differently or crash.
  if (size > 8) (void)parse_safetensors_header(bytes.first(size / 2), size);
  (void)parse_safetensors_index(std::string_view(reinterpret_cast<const char*>(data), size),
                                "fuzz");
  return 0;
}
