// libFuzzer target: what the gateway reads from clients and engines — request bodies, streamed
// SSE payloads and engine error bodies. None may crash, and every error the gateway writes must
// be valid JSON in OpenAI's shape.
#include "fuzz_common.hpp"
#include "gateway/openai_error.hpp"
#include "gateway/request.hpp"
#include "gateway/usage.hpp"
#include "http/http1.hpp"

#include <boost/json/parse.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

using namespace openstation::gateway;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const auto mode = data[0] % 6;
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
        const auto v =
            boost::json::parse(r->rewritten ? std::string_view(r->upstream_body) : text, ec);
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
    case 4:
    case 5: {
      // The gateway's HTTP/1.1 parsers: a request (4) or response (5) head, then a chunked body.
      namespace wire = openstation::http::wire;
      wire::Head head;
      std::string why;
      const auto parsed = mode == 4 ? wire::parse_request_head(text, head, why)
                                    : wire::parse_response_head(text, head, why);
      if (parsed == wire::Parse::error) OS_FUZZ_CHECK(!why.empty());
      if (parsed != wire::Parse::complete) break;
      OS_FUZZ_CHECK(head.size > 0 && head.size <= text.size());
      for (const auto& [k, v] : head.fields) {
        OS_FUZZ_CHECK(!k.empty() && k.data() >= text.data() &&
                      v.data() + v.size() <= text.data() + head.size);
      }
      wire::Framing framing;
      const bool framed = mode == 4 ? wire::request_framing(head, framing, why)
                                    : wire::response_framing(head, "GET", framing, why);
      OS_FUZZ_CHECK(framed || !why.empty());
      // A chunked body decodes the same whole and in two pieces split anywhere.
      const std::string_view body = text.substr(head.size);
      wire::ChunkedDecoder whole;
      wire::ChunkedDecoder split;
      std::string a;
      std::string b;
      const auto used = whole.feed(body, a, why);
      const std::size_t cut = body.empty() ? 0 : size % body.size();
      auto first = split.feed(body.substr(0, cut), b, why);
      if (used) OS_FUZZ_CHECK(first.has_value());  // a prefix of a valid body is not an error
      if (used && first) {
        OS_FUZZ_CHECK(*first == cut || split.done());
        if (!split.done()) {
          auto second = split.feed(body.substr(cut), b, why);
          OS_FUZZ_CHECK(second.has_value());
          OS_FUZZ_CHECK(cut + *second == *used);
        }
        OS_FUZZ_CHECK(a == b && whole.done() == split.done());
      }
      break;
    }
    default: {
      StreamMeter meter(size % 2 == 0);
      (void)meter.on_data(text);
      // The response scan reads what a parse of a valid document says.
      const auto got = usage_of_response(text);
      boost::system::error_code ec;
      const auto doc = boost::json::parse(text, ec);
      if (!ec && doc.is_object()) {
        const auto* u = doc.as_object().if_contains("usage");
        OS_FUZZ_CHECK(got.reported == (u != nullptr && u->is_object()));
        if (got.reported) {
          const auto* p = u->as_object().if_contains("prompt_tokens");
          if (p != nullptr && p->is_int64()) OS_FUZZ_CHECK(got.prompt_tokens == p->as_int64());
        }
      } else if (!ec) {
        OS_FUZZ_CHECK(!got.reported);
      }
      OS_FUZZ_CHECK(meter.usage().total_tokens >= 0 || meter.usage().reported);
      break;
    }
  }
  return 0;
}
