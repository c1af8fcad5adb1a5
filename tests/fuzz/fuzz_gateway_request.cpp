// libFuzzer target: what the gateway reads from clients and engines — request bodies, streamed
// SSE payloads and engine error bodies. None may crash, and every error the gateway writes must
// be valid JSON in OpenAI's shape.
#include "fuzz_common.hpp"
#include "gateway/openai_error.hpp"
#include "gateway/request.hpp"
#include "gateway/usage.hpp"
#include "http/http1.hpp"
#include "http/sse.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

using namespace openstation::gateway;

namespace {

/// What inspect_request must agree with: the body parsed into a document, read member by member.
/// Returns the error code (empty on success) and fills `out`.
std::string reference_inspect(Endpoint endpoint, std::string_view body, InspectedRequest& out) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return "gateway.bad_json";
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(body, ec);
  if (ec || !v.is_object()) return "gateway.bad_json";
  auto& obj = v.as_object();
  const auto* model = obj.if_contains("model");
  if (model == nullptr || !model->is_string() || model->as_string().empty())
    return "gateway.missing_model";
  out.model = std::string(model->as_string());
  if (const auto* user = obj.if_contains("user"); user != nullptr && user->is_string())
    out.user = std::string(user->as_string());
  if (const auto* st = obj.if_contains("stream"); st != nullptr && !st->is_null()) {
    if (!st->is_bool()) return "gateway.bad_field";
    out.stream = st->as_bool();
  }
  boost::json::object* options = nullptr;
  if (auto* so = obj.if_contains("stream_options"); so != nullptr && !so->is_null()) {
    if (!so->is_object()) return "gateway.bad_field";
    options = &so->as_object();
    if (const auto* u = options->if_contains("include_usage"); u != nullptr && u->is_bool())
      out.client_wants_usage = u->as_bool();
  }
  if (out.stream && !out.client_wants_usage &&
      (endpoint == Endpoint::chat_completions || endpoint == Endpoint::completions)) {
    if (options == nullptr) options = &obj["stream_options"].emplace_object();
    (*options)["include_usage"] = true;
    out.upstream_body = boost::json::serialize(v);
    out.rewritten = true;
  }
  return "";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const auto mode = data[0] % 7;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (mode) {
    case 0:
    case 1: {
      const auto endpoint = mode == 0 ? Endpoint::chat_completions : Endpoint::completions;
      auto r = inspect_request(endpoint, text);
      // The one-pass reading agrees with a parsed document on every input.
      InspectedRequest want;
      const std::string want_code = reference_inspect(endpoint, text, want);
      OS_FUZZ_CHECK(r.has_value() == want_code.empty());
      if (r) {
        OS_FUZZ_CHECK(r->model == want.model && r->user == want.user && r->stream == want.stream);
        OS_FUZZ_CHECK(r->client_wants_usage == want.client_wants_usage);
        OS_FUZZ_CHECK(r->rewritten == want.rewritten);
        if (r->rewritten) {  // the same document (a body without options keeps its own bytes)
          boost::system::error_code got_ec, want_ec;
          const auto got_doc = boost::json::parse(r->upstream_body, got_ec);
          const auto want_doc = boost::json::parse(want.upstream_body, want_ec);
          OS_FUZZ_CHECK(!got_ec && !want_ec && got_doc == want_doc);
        }
      } else {
        OS_FUZZ_CHECK(r.error().code == want_code);
      }
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
    case 6: {
      // An engine's SSE body: parsed whole with next(), and fed in two pieces split anywhere and
      // byte by byte into one reused event with next(SseEvent&), the events are the same; also
      // with next(SseEvent&, SseWire&) (through input() for the split), where a plain event
      // left as it came has the bytes format_sse() makes of it.
      namespace http = openstation::http;
      http::SseParser whole;
      std::vector<http::SseEvent> want;
      if (!whole.feed(text)) break;  // over the parser's limit: nothing more to compare
      while (auto e = whole.next()) want.push_back(std::move(*e));
      const auto replay = [&](std::size_t piece, bool views) {
        http::SseParser p;
        http::SseEvent ev;
        http::SseWire wire;
        std::size_t n = 0;
        const auto next = [&] {
          if (!views) return p.next(ev);
          const http::SseNext got = p.next(ev, wire);
          if (got != http::SseNext::wire) return got == http::SseNext::event;
          ev = http::SseEvent{};
          ev.data = std::string(wire.data);
          OS_FUZZ_CHECK(wire.bytes == http::format_sse(ev));
          return true;
        };
        for (std::size_t at = 0; at < text.size(); at += piece) {
          if (views) {
            p.input().append(text.substr(at, piece));
            OS_FUZZ_CHECK(p.accepted());
          } else {
            OS_FUZZ_CHECK(p.feed(text.substr(at, piece)));
          }
          while (next()) {
            OS_FUZZ_CHECK(n < want.size() && ev == want[n]);
            OS_FUZZ_CHECK(!ev.is_comment() ||
                          (ev.data.empty() && ev.event.empty() && ev.id.empty()));
            ++n;
          }
          OS_FUZZ_CHECK(p.pending_bytes() <= text.size());
        }
        OS_FUZZ_CHECK(n == want.size());
      };
      const std::size_t cut = text.empty() ? 1 : 1 + size % text.size();
      replay(cut, false);
      replay(1, false);
      replay(cut, true);
      replay(text.size() + 1, true);
      break;
    }
    default: {
      StreamMeter meter(size % 2 == 0);
      const auto verdict = meter.on_data(text);
      // The meter reads what a parse of a valid chunk says.
      boost::system::error_code parse_ec;
      const auto chunk = boost::json::parse(text, parse_ec);
      if (!parse_ec && chunk.is_object() && text != "[DONE]") {
        const auto& o = chunk.as_object();
        const bool is_error =
            o.contains("error") || (o.contains("object") && o.at("object") == "error");
        OS_FUZZ_CHECK(meter.saw_error() == is_error);
        const auto* u = o.if_contains("usage");
        const bool has_usage = !is_error && u != nullptr && u->is_object();
        OS_FUZZ_CHECK(meter.usage().reported == has_usage);
        const auto* ch = o.if_contains("choices");
        const bool no_choices = ch == nullptr || (ch->is_array() && ch->as_array().empty());
        const bool drop = has_usage && no_choices && size % 2 != 0;
        OS_FUZZ_CHECK((verdict == StreamMeter::Verdict::drop) == drop);
        OS_FUZZ_CHECK(meter.content_events() == (is_error || (has_usage && no_choices) ? 0 : 1));
      }
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
