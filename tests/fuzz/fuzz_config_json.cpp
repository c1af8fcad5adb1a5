// libFuzzer target: config.json parsing into ModelArch.
#include "fuzz_common.hpp"
#include "model/config_json.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

using namespace openstation::model;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto a = parse_config_json(text, "fuzz/config.json");
  if (!a) return 0;
  OS_FUZZ_CHECK(a->hidden_size > 0 && a->num_layers > 0 && a->num_attention_heads > 0);
  OS_FUZZ_CHECK(a->vocab_size > 0 && a->num_kv_heads > 0);
  OS_FUZZ_CHECK(a->is_mla == (a->kv_lora_rank > 0));
  OS_FUZZ_CHECK(a->derived_max_len() >= 0);
  return 0;
}
