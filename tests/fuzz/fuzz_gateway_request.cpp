// libFuzzer target: what the gateway reads from clients and engines — request bodies, streamed
// SSE payloads and engine error bodies. None may crash, and every error the gateway writes must
// be valid JSON in OpenAI's shape.
#include "fuzz_common.hpp"
#include "gateway/openai_error.hpp"
#include "gateway/request.hpp"
#include "gateway/usage.hpp"

#include <boost/json/parse.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

using namespace openstation::gateway;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const auto mode = data[0] % 4;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (mode) {
    case 0:
    case 1: {
      const auto endpoint = mode == 0 ? Endpoint::chat_completions : Endpoint::completions;
      auto r = inspect_request(endpoint, text);
      if (r) {
        OS_FUZZ_CHECK(!r->model.empty());
        // What goes upstream parses, and asks for usage on a stream.
        boost::system::error_code ec;
        const auto v = boost::json::parse(r->upstream_body, ec);
        OS_FUZZ_CHECK(!ec && v.is_object());
        if (r->stream) {
          OS_FUZZ_CHECK(v.as_object().at("stream_options").as_object().at("include_usage") == true);
        }
        OS_FUZZ_CHECK(!r->rewritten || r->stream);
      } else {
        OS_FUZZ_CHECK(!r.error().code.empty() && !r.error().message.empty());
        // The refusal becomes a valid OpenAI body.
        const auto body = from_error(400, r.error()).body();
        boost::system::error_code ec;
        (void)boost::json::parse(body, ec);
        OS_FUZZ_CHECK(!ec);
      }
      break;
    }
    case 2: {
      const auto e = normalise_engine_error(400 + static_cast<int>(size % 200), text);
      OS_FUZZ_CHECK(!e.message.empty());
      boost::system::error_code ec;
      const auto v = boost::json::parse(e.body(), ec);
      OS_FUZZ_CHECK(!ec && v.as_object().at("error").as_object().at("message").is_string());
      break;
    }
    default: {
      StreamMeter meter(size % 2 == 0);
      (void)meter.on_data(text);
      (void)usage_of_response(text);
      OS_FUZZ_CHECK(meter.usage().total_tokens >= 0 || meter.usage().reported);
      break;
    }
  }
  return 0;
}
